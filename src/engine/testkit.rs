//! Engine tests on fake kinds, computed in-process on temp dirs (as ninja's tests run on a fake
//! disk): no NAS code, no libtorch, no child process for native kinds.
//!
//! `test-write` writes `text` (`repeat` times, then ` x{scale}`) after its upstreams' `out.txt`,
//! and the run counter to its provenance directory; `test-items` writes `count` items;
//! `test-item` writes one item, failing on `fail_on`. `test-fetch` has an unkeyed `url`.
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use nasflow_contract::layout::ITEMS_LIST;
use nasflow_contract::{Computations, Kind, KindInfo, Registrar, StageContext, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::config::{self, Override, Pipeline};
use crate::dag::Dag;
use crate::engine::Engine;
use crate::progress::Ui;
use crate::registry::Registry;
use crate::runner::in_process::InProcess;
use crate::schedule::{RunOptions, StageOutcome, Status};

pub struct TestWrite;
impl Kind for TestWrite {
    type Params = WriteParams;
    const INFO: KindInfo = KindInfo {
        name: "test-write",
        version: 1,
        doc: "writes `text` to out.txt after the upstream out.txt files",
        reads_seed: false,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };
}

/// The params of `test-write`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WriteParams {
    /// the text to write
    pub text: String,
    /// how many times
    #[schemars(range(min = 1))]
    pub repeat: usize,
    /// a float, written after the text
    pub scale: f64,
    /// a choice
    pub mode: Mode,
}

impl Default for WriteParams {
    fn default() -> Self {
        WriteParams {
            text: "x".into(),
            repeat: 1,
            scale: 1.0,
            mode: Mode::Plain,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// as is
    Plain,
    /// upper case
    Loud,
}

pub struct TestItems;
impl Kind for TestItems {
    type Params = ItemsParams;
    const INFO: KindInfo = KindInfo {
        name: "test-items",
        version: 1,
        doc: "writes items.jsonl: {\"id\": i} for i in 0..count",
        reads_seed: false,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };
}

/// The params of `test-items`.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ItemsParams {
    /// how many items
    pub count: usize,
}

pub struct TestItem;
impl Kind for TestItem {
    type Params = ItemParams;
    const INFO: KindInfo = KindInfo {
        name: "test-item",
        version: 1,
        doc: "per item: writes item.txt; fails on the item whose id is `fail_on`",
        reads_seed: true,
        uses_device: false,
        item_level: true,
        key_metrics: &[],
    };
}

/// The params of `test-item`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ItemParams {
    /// text written with each item
    pub label: String,
    /// an item id to fail on (-1: none)
    pub fail_on: i64,
}

impl Default for ItemParams {
    fn default() -> Self {
        ItemParams {
            label: "item".into(),
            fail_on: -1,
        }
    }
}

pub struct TestFetch;
impl Kind for TestFetch {
    type Params = FetchParams;
    const INFO: KindInfo = KindInfo {
        name: "test-fetch",
        version: 1,
        doc: "writes its `digest`; `url` reaches the run but not the key",
        reads_seed: false,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };
}

/// The params of `test-fetch`.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FetchParams {
    /// where from (not part of the key)
    #[schemars(extend("x-nasflow-unkeyed" = true))]
    pub url: String,
    /// what content
    pub digest: String,
    /// a file whose text is written after the digest ("" for none)
    pub from: nasflow_contract::PathParam,
}

pub struct TestDevice;
impl Kind for TestDevice {
    type Params = ItemParams;
    const INFO: KindInfo = KindInfo {
        name: "test-device",
        version: 1,
        doc: "per item, on the device: writes the device it computed on and sleeps 50 ms",
        reads_seed: false,
        uses_device: true,
        item_level: true,
        key_metrics: &[],
    };
}

fn run_device(ctx: &StageContext<ItemParams>) -> Result<(), StageError> {
    let item = ctx.item()?;
    std::thread::sleep(std::time::Duration::from_millis(50));
    write(
        &ctx.out.join("device.txt"),
        &format!("{} {}\n", item.value, ctx.device),
    )
}

fn write(path: &Path, text: &str) -> Result<(), StageError> {
    std::fs::write(path, text).map_err(|e| StageError::io(path, e))
}

fn run_write(ctx: &StageContext<WriteParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let mut text = String::new();
    for (dep, dir) in ctx.inputs.iter() {
        let upstream = std::fs::read_to_string(dir.join("out.txt")).unwrap_or_default();
        text.push_str(&format!("[{dep}] {upstream}\n"));
    }
    for k in 0..p.repeat {
        text.push_str(&p.text);
        ctx.progress(k as u64 + 1, p.repeat as u64);
    }
    text.push_str(&format!(" x{}", p.scale));
    if p.mode == Mode::Loud {
        text = text.to_uppercase();
    }
    // Something that differs on every run, in provenance only.
    let stamp = format!("{:?}\n", std::time::SystemTime::now());
    write(&ctx.provenance.join("timing.txt"), &stamp)?;
    write(&ctx.out.join("out.txt"), &text)
}

fn run_items(ctx: &StageContext<ItemsParams>) -> Result<(), StageError> {
    let path = ctx.out.join(ITEMS_LIST);
    let mut file = std::fs::File::create(&path).map_err(|e| StageError::io(&path, e))?;
    for i in 0..ctx.params.count {
        writeln!(file, "{{\"id\":{i}}}").map_err(|e| StageError::io(&path, e))?;
    }
    Ok(())
}

fn run_item(ctx: &StageContext<ItemParams>) -> Result<(), StageError> {
    let item = ctx.item()?;
    if item.value.get("id").and_then(|v| v.as_i64()) == Some(ctx.params.fail_on) {
        return Err(StageError::Failed(format!(
            "item {} failed on purpose (fail_on)",
            item.value
        )));
    }
    let text = format!("{} {} seed={}\n", ctx.params.label, item.value, ctx.seed);
    write(&ctx.out.join("item.txt"), &text)
}

fn run_fetch(ctx: &StageContext<FetchParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let from = match p.from.path() {
        Some(f) => std::fs::read_to_string(f).map_err(|e| StageError::io(f, e))?,
        None => String::new(),
    };
    write(&ctx.out.join("content.txt"), &format!("{}{from}", p.digest))?;
    write(&ctx.provenance.join("source.txt"), &p.url)
}

/// The test-only registration.
pub fn register(r: &mut impl Registrar) {
    r.kind::<TestWrite, _>(run_write);
    r.kind::<TestItems, _>(run_items);
    r.kind::<TestItem, _>(run_item);
    r.kind::<TestFetch, _>(run_fetch);
    r.kind::<TestDevice, _>(run_device);
}

/// A project on a temp dir with the test kinds, run in-process.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub reg: Registry,
    pub runner: InProcess,
    /// `-j` of [`Fixture::run`].
    pub jobs: usize,
}

impl Fixture {
    pub fn new(toml: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.toml"), toml).expect("pipeline");
        let mut comp = Computations::default();
        register(&mut comp);
        Fixture {
            dir,
            reg: Registry::from(register),
            runner: InProcess::new(comp),
            jobs: 2,
        }
    }

    /// As [`Fixture::new`], on a runner that reports `gpus` CUDA devices (and computes on the
    /// CPU), recording each job's placement.
    pub fn with_fake_gpus(toml: &str, gpus: usize) -> Fixture {
        let mut f = Fixture::new(toml);
        let mut comp = Computations::default();
        register(&mut comp);
        f.runner = InProcess::new(comp).with_fake_gpus(gpus);
        f
    }

    pub fn write(&self, toml: &str) {
        std::fs::write(self.dir.path().join("pipeline.toml"), toml).expect("pipeline");
    }

    pub fn pipeline(&self, sets: &[&str]) -> Result<Pipeline, config::ConfigError> {
        let o: Vec<Override> = sets.iter().map(|s| s.parse().expect("override")).collect();
        config::load(&self.dir.path().join("pipeline.toml"), &self.reg, &o)
    }

    /// Runs every stage; returns the names of those that ran.
    pub fn run(&self, sets: &[&str], force: &[&str]) -> (Vec<StageOutcome>, HashSet<String>) {
        self.run_on(&self.runner, sets, force)
    }

    /// As [`Fixture::run`], with `runner` executing the jobs (a fake executor).
    pub fn run_on(
        &self,
        runner: &dyn crate::runner::Runner,
        sets: &[&str],
        force: &[&str],
    ) -> (Vec<StageOutcome>, HashSet<String>) {
        let p = self.pipeline(sets).expect("valid pipeline");
        let dag = Dag::build(&p).expect("dag");
        let cache = Cache::open(&p.cache_dir).expect("cache");
        let e = Engine::new(&p, &dag, &self.reg, &cache, runner);
        let force = force.iter().map(|f| p.index(f).expect("stage")).collect();
        let opts = RunOptions {
            jobs: self.jobs,
            force,
            slots: None,
        };
        let outcomes = crate::schedule::run(&e, dag.order(), &opts, &Ui::quiet()).expect("run");
        let ran = outcomes
            .iter()
            .filter(|o| o.status == Status::Ran)
            .map(|o| p.decl(o.stage).name.clone())
            .collect();
        (outcomes, ran)
    }

    /// Runs and returns the names of the stages that ran.
    pub fn ran(&self, sets: &[&str]) -> HashSet<String> {
        self.run(sets, &[]).1
    }

    /// `f` with the engine of the current pipeline (with `sets`).
    pub fn with_engine<T>(&self, sets: &[&str], f: impl FnOnce(&Engine) -> T) -> T {
        let p = self.pipeline(sets).expect("valid pipeline");
        let dag = Dag::build(&p).expect("dag");
        let cache = Cache::open(&p.cache_dir).expect("cache");
        let e = Engine::new(&p, &dag, &self.reg, &cache, &self.runner);
        f(&e)
    }
}

pub fn names(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}
