//! Early cutoff on the NAS stages: outputs are a function of inputs, params, seed and thread
//! count, so rerunning a stage (`--force`) with the same `-j` writes the same output digest and
//! nothing downstream becomes stale. Timings go to the provenance directory instead.
mod common;

use std::path::Path;

use common::{stdout, Project};
use serde_json::Value;

const PIPELINE: &str = r#"
[pipeline]
seed = 3
[stages.sample]
kind = "sample"
space = "SPACE"
cells = 300
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
train_limit = 128
test_limit = 50
held_out = 30
[stages.extract]
kind = "extract"
foreach = "pretrain"
unseen = 20
[stages.preprocess]
kind = "preprocess"
deps = ["extract"]
[stages.train-vae]
kind = "train-vae"
deps = ["sample", "preprocess"]
epochs = 2
checkpoints = [1]
image_channels = 4
prior_samples = 50
[stages.reinforce]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
seeds = 3
budget = 1e9
[stages.predict]
kind = "predict"
deps = ["train-vae", "pretrain"]
fit_outside_train = false
train_sizes = [2]
threshold = 0.0
seeds = 2
"#;

const STAGES: [&str; 7] = [
    "sample",
    "pretrain",
    "extract",
    "preprocess",
    "train-vae",
    "reinforce",
    "predict",
];

fn show(p: &Project, stage: &str) -> Value {
    serde_json::from_slice(&p.nasflow(&["show", stage, "--json"]).stdout).unwrap()
}

fn digests(p: &Project) -> Vec<String> {
    STAGES
        .iter()
        .map(|s| show(p, s)["output_digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forcing_each_nas_stage_gives_the_same_outputs_and_nothing_goes_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let space = common::enumerated_space(tmp.path());
    let p = Project::new(&PIPELINE.replace("SPACE", &space.to_string_lossy()));
    p.run_ok(&["-j", "2"]);
    let before = digests(&p);
    for (i, stage) in STAGES.iter().enumerate() {
        let ran = p.run_ok(&["-j", "2", "--force", stage]);
        assert_eq!(
            ran,
            common::set(&[stage]),
            "{stage}: only the forced stage reruns"
        );
        assert_eq!(
            digests(&p),
            before,
            "{stage}: a rerun changed an output digest"
        );
        let status = stdout(&p.nasflow(&["status"]));
        assert!(
            !status.contains("stale"),
            "after --force {stage}, nothing is stale:\n{status}"
        );
        // The timings of the rerun are in its provenance, outside the output.
        if ["pretrain", "train-vae"].contains(stage) {
            let record = show(&p, stage);
            let provenance: Vec<&str> = record["provenance"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["path"].as_str())
                .collect();
            assert!(
                provenance.iter().any(|f| f.ends_with("timing.json")),
                "{stage}: {provenance:?}"
            );
            let out = Path::new(record["out_dir"].as_str().unwrap());
            let metrics = std::fs::read_to_string(if i == 1 {
                out.join("items/00000/metrics.json")
            } else {
                out.join("metrics.json")
            })
            .unwrap();
            assert!(!metrics.contains("seconds"), "{stage}: {metrics}");
            let mut args = vec!["log", stage, "--file", "timing.json"];
            if i == 1 {
                args.extend(["--item", "0"]);
            }
            let timing = stdout(&p.nasflow(&args));
            assert!(timing.contains("wall_seconds"), "{stage}: {timing}");
        }
    }
}
