//! Small stage kinds for testing the engine (and for trying nasflow out) without NAS code:
//! `test-write` writes a text file, `test-items` writes an item list, `test-item` processes one
//! item. They follow the same contract as the NAS kinds.
use std::io::Write;
use std::time::Duration;

use nasflow_stages::{KindSpec, ParamSpec, ParamType, RunFn, StageContext, StageError};

pub fn kinds() -> Vec<&'static KindSpec> {
    vec![&WRITE, &ITEMS, &ITEM]
}

pub fn runner(name: &str) -> Option<RunFn> {
    match name {
        "test-write" => Some(run_write),
        "test-items" => Some(run_items),
        "test-item" => Some(run_item),
        _ => None,
    }
}

const SLEEP: ParamSpec = ParamSpec {
    name: "sleep_ms",
    ty: ParamType::Int,
    default: Some("0"),
    doc: "milliseconds to sleep before writing",
};

static WRITE: KindSpec = KindSpec {
    name: "test-write",
    version: 1,
    doc: "writes `text` (repeated `repeat` times) to out.txt, after the upstream out.txt files",
    params: &[
        ParamSpec {
            name: "text",
            ty: ParamType::Str,
            default: None,
            doc: "the text to write",
        },
        ParamSpec {
            name: "repeat",
            ty: ParamType::Int,
            default: Some("1"),
            doc: "how many times",
        },
        ParamSpec {
            name: "scale",
            ty: ParamType::Float,
            default: Some("1.0"),
            doc: "a float param, written after the text",
        },
        SLEEP,
    ],
    reads_seed: false,
    uses_device: false,
    item_level: false,
};

static ITEMS: KindSpec = KindSpec {
    name: "test-items",
    version: 1,
    doc: "writes items.jsonl: the integers 0..count as {\"id\": i}",
    params: &[
        ParamSpec {
            name: "count",
            ty: ParamType::Int,
            default: None,
            doc: "how many items",
        },
        SLEEP,
    ],
    reads_seed: false,
    uses_device: false,
    item_level: false,
};

static ITEM: KindSpec = KindSpec {
    name: "test-item",
    version: 1,
    doc: "per item: writes item.txt with the item and `label`; fails on the item whose id is `fail_on`",
    params: &[
        ParamSpec { name: "label", ty: ParamType::Str, default: Some("\"item\""), doc: "text written with each item" },
        ParamSpec { name: "fail_on", ty: ParamType::Int, default: Some("-1"), doc: "an item id to fail on (-1: none)" },
        SLEEP,
    ],
    reads_seed: true,
    uses_device: false,
    item_level: true,
};

fn sleep(ctx: &StageContext) -> Result<(), StageError> {
    let ms = ctx.int("sleep_ms")?;
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms as u64));
    }
    Ok(())
}

fn write(ctx: &StageContext, name: &str, text: &str) -> Result<(), StageError> {
    let path = ctx.out.join(name);
    std::fs::write(&path, text).map_err(|e| StageError::io(path, e))
}

fn run_write(ctx: &StageContext) -> Result<(), StageError> {
    sleep(ctx)?;
    let mut text = String::new();
    for (dep, dir) in ctx.inputs {
        let upstream = std::fs::read_to_string(dir.join("out.txt")).unwrap_or_default();
        text.push_str(&format!("[{dep}] {upstream}\n"));
    }
    let repeat = ctx.int("repeat")?;
    for k in 0..repeat {
        text.push_str(ctx.str("text")?);
        (ctx.progress)(k as u64 + 1, repeat as u64);
    }
    text.push_str(&format!(" x{}", ctx.float("scale")?));
    write(ctx, "out.txt", &text)
}

fn run_items(ctx: &StageContext) -> Result<(), StageError> {
    sleep(ctx)?;
    let path = ctx.out.join("items.jsonl");
    let mut file = std::fs::File::create(&path).map_err(|e| StageError::io(&path, e))?;
    for i in 0..ctx.int("count")? {
        writeln!(file, "{{\"id\":{i}}}").map_err(|e| StageError::io(&path, e))?;
    }
    Ok(())
}

fn run_item(ctx: &StageContext) -> Result<(), StageError> {
    let item = ctx
        .item
        .ok_or_else(|| StageError::Config("test-item needs an item".into()))?;
    if item.value.get("id").and_then(|v| v.as_i64()) == Some(ctx.int("fail_on")?) {
        return Err(StageError::Failed(format!(
            "item {} failed on purpose (fail_on)",
            item.value
        )));
    }
    sleep(ctx)?;
    let text = format!("{} {} seed={}\n", ctx.str("label")?, item.value, ctx.seed);
    write(ctx, "item.txt", &text)
}
