//! GPU placement through the binary, without a GPU: `cmd` stages with `gpu = true` on an explicit
//! `gpus` list record what they were given and when they ran.
mod common;

use std::collections::BTreeMap;

use common::{stderr, Project};

const PIPELINE: &str = r#"
[pipeline]
gpus = [0, 1]
gpu_slots = 1

[stages.list]
kind = "cmd"
run = "printf '1\n2\n3\n4\n' > $NASFLOW_OUT/items.jsonl"

[stages.work]
kind = "cmd"
foreach = "list"
gpu = true
run = "s=$(date +%s%N); sleep 0.5; echo \"$NASFLOW_ITEM $CUDA_VISIBLE_DEVICES $NASFLOW_GPU $NASFLOW_DEVICE $s $(date +%s%N)\" >> log.txt; echo ok > $NASFLOW_OUT/ok.txt"

[stages.plain]
kind = "cmd"
deps = ["list"]
run = "echo \"${CUDA_VISIBLE_DEVICES:-unset}\" > $NASFLOW_OUT/seen.txt"
"#;

#[test]
fn four_items_on_two_gpus_one_at_a_time_each() {
    let p = Project::new(PIPELINE);
    let out = p.nasflow(&["run", "-j", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(p.path().join("log.txt")).unwrap();
    let mut by_gpu: BTreeMap<String, Vec<(u128, u128)>> = BTreeMap::new();
    for line in log.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w.len(), 6, "{line}");
        assert_eq!(
            w[1], w[2],
            "CUDA_VISIBLE_DEVICES and NASFLOW_GPU agree: {line}"
        );
        assert_eq!(w[3], "cuda:0", "the job sees its GPU as device 0: {line}");
        by_gpu
            .entry(w[1].to_string())
            .or_default()
            .push((w[4].parse().unwrap(), w[5].parse().unwrap()));
    }
    assert_eq!(log.lines().count(), 4, "{log}");
    assert_eq!(
        by_gpu.keys().collect::<Vec<_>>(),
        ["0", "1"],
        "both GPUs used: {log}"
    );
    for (gpu, mut runs) in by_gpu {
        runs.sort();
        for pair in runs.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "two jobs at once on GPU {gpu}: {log}"
            );
        }
    }
    // A stage that does not ask for a GPU is not placed.
    let seen = common::files_under(&p.cache().join("out/plain"));
    let text =
        std::fs::read_to_string(seen.iter().find(|f| f.ends_with("seen.txt")).unwrap()).unwrap();
    assert_eq!(text.trim(), "unset");
}
