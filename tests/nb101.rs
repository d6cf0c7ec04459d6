//! `nasflow nb101 ...` and the `sample` stage, driven through the real binary.
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::{stderr, stdout, Project};
use serde_json::Value;

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

fn info(p: &Project, matrix: &str, ops: &str) -> (Option<i32>, Value, String) {
    let out = p.nasflow(&["nb101", "info", "--matrix", matrix, "--ops", ops]);
    let v = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    (out.status.code(), v, stderr(&out))
}

#[test]
fn info_describes_a_cell_and_rejects_bad_input() {
    let p = Project::new("");
    let (code, v, _) = info(
        &p,
        "0111010000000100000010000100000000100000010000000",
        "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output",
    );
    assert_eq!(code, Some(0));
    assert_eq!(v["valid"], true);
    assert_eq!(v["hash"], "28cfc7874f6d200472e1a9dcd8650aa0");
    assert_eq!(v["trainable_parameters"], 2_694_282);
    assert_eq!(v["arch2vec"]["ops"][1], serde_json::json!([0, 1, 0, 0, 0]));

    // Pruning: vertex 1 feeds nothing.
    let (_, v, _) = info(&p, "011000000", "input,conv3x3-bn-relu,output");
    assert_eq!(v["valid"], true);
    assert_eq!(v["pruned"], true);
    assert_eq!(v["ops"], serde_json::json!(["input", "output"]));
    // Outside the space: reported, not an error.
    let (code, v, _) = info(&p, "0000", "input,output");
    assert_eq!((code, &v["valid"]), (Some(0), &Value::Bool(false)));
    assert!(v["reason"].as_str().unwrap().contains("not connected"));
    // Malformed: exit 2 with the reason.
    for (m, o, want) in [
        ("010", "input,output", "not a square"),
        ("0100", "input,conv9x9", "unknown op `conv9x9`"),
        ("0110", "input,output", "upper triangular"),
    ] {
        let (code, _, err) = info(&p, m, o);
        assert_eq!(code, Some(2), "{m} {o}");
        assert!(err.contains(want), "{err}");
    }
}

const SAMPLE: &str = r#"
[pipeline]
seed = 3
[stages.sample]
kind = "sample"
space = "space.nb101"
table = "TABLE"
cells = CELLS
train_nets = 10
valid_nets = 3
"#;

fn sample_project(space: &Path, table: &Path, cells: usize) -> Project {
    let p = Project::new(
        &SAMPLE
            .replace("TABLE", &table.to_string_lossy())
            .replace("CELLS", &cells.to_string()),
    );
    std::fs::copy(space, p.path().join("space.nb101")).unwrap();
    p
}

/// One enumeration through the CLI, shared by the sample tests below.
fn enumerated(dir: &Path) -> PathBuf {
    common::enumerated_space(dir)
}

#[test]
fn enumerate_and_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let space = enumerated(tmp.path());
    assert_eq!(
        std::fs::metadata(&space).unwrap().len(),
        20 + 24 * 423_624 + 4
    );

    // The whole space, joined with the 10k table.
    let p = sample_project(&space, &shared("nb101-10k.jsonl"), 0);
    p.run_ok(&[]);
    let dir = p.out_dir("sample");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["cells"], 423_624);
    assert_eq!(summary["train"], 381_261, "int(0.9 * 423624), as arch2vec");
    assert_eq!(summary["valid"], 42_363);
    assert_eq!(
        summary["with_figures"], 10_000,
        "every 10k hash is in the space"
    );
    let items = common::read_jsonl(&dir.join("items.jsonl"));
    assert_eq!(items.len(), 13);
    assert_eq!(items.iter().filter(|i| i["split"] == "train").count(), 10);
    let hashes: HashSet<String> = items
        .iter()
        .map(|i| i["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hashes.len(), 13, "labeled nets are distinct");
    // Each item's cell hashes to its hash (checked through `nb101 info`).
    for it in items.iter().take(3) {
        let m: Vec<Vec<u8>> = serde_json::from_value(it["matrix"].clone()).unwrap();
        let bits: String = m.concat().iter().map(|b| b.to_string()).collect();
        let ops: Vec<String> = serde_json::from_value(it["ops"].clone()).unwrap();
        let (_, v, _) = info(&p, &bits, &ops.join(","));
        assert_eq!(v["hash"], it["hash"]);
    }
    for (name, want) in [
        ("unlabeled-train.nb101", 381_251u64),
        ("unlabeled-valid.nb101", 42_360),
    ] {
        let len = std::fs::metadata(dir.join(name)).unwrap().len();
        assert_eq!((len - 24) / 24, want, "{name}: labeled nets removed");
    }
    assert_eq!(common::read_jsonl(&dir.join("figures.jsonl")).len(), 10_000);

    // A subsample: seeded, so a rerun elsewhere gives the same items; another seed differs.
    let q = sample_project(&space, &shared("nb101-1k.jsonl"), 1000);
    q.run_ok(&[]);
    let qdir = q.out_dir("sample");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(qdir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (s["train"].as_u64(), s["valid"].as_u64()),
        (Some(900), Some(100))
    );
    let first = std::fs::read(qdir.join("items.jsonl")).unwrap();
    let r = sample_project(&space, &shared("nb101-1k.jsonl"), 1000);
    r.run_ok(&[]);
    assert_eq!(
        std::fs::read(r.out_dir("sample").join("items.jsonl")).unwrap(),
        first
    );
    let mut pipeline = std::fs::read_to_string(r.path().join("pipeline.toml")).unwrap();
    pipeline = pipeline.replace("seed = 3", "seed = 4");
    r.write_pipeline(&pipeline);
    r.run_ok(&[]);
    assert_ne!(
        std::fs::read(r.out_dir("sample").join("items.jsonl")).unwrap(),
        first
    );

    // order = "table": the table's cells come first, so all 1,000 land in the train part.
    let t = sample_project(&space, &shared("nb101-1k.jsonl"), 0);
    let pipeline =
        std::fs::read_to_string(t.path().join("pipeline.toml")).unwrap() + "order = \"table\"\n";
    t.write_pipeline(&pipeline);
    t.run_ok(&[]);
    let figs = common::read_jsonl(&t.out_dir("sample").join("figures.jsonl"));
    assert_eq!(figs.len(), 1000);
    assert!(figs.iter().all(|f| f["split"] == "train"));
}

#[test]
fn sample_reports_bad_settings() {
    let p = Project::new("[stages.sample]\nkind = \"sample\"\nspace = \"missing.nb101\"\n");
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.nb101"), "{}", stderr(&out));

    std::fs::write(p.path().join("bad.nb101"), b"not a space").unwrap();
    p.write_pipeline("[stages.sample]\nkind = \"sample\"\nspace = \"bad.nb101\"\n");
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an nb101 space file"),
        "{}",
        stderr(&out)
    );
}
