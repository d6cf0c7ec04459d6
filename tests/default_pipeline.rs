//! The shipped pipelines through the binary, at tiny sizes (`--set` shrinks the networks, the
//! training and the seeds, never the tables): the default pipeline searches and predicts over the
//! 10,000 real NB101 cells built into nasflow, and the ablation's variants give different answers.
mod common;

use common::{stderr, stdout, Project};
use serde_json::Value;

const TINY: &[&str] = &[
    "--set=sample.train_nets=3",
    "--set=sample.valid_nets=1",
    "--set=pretrain.epochs=1",
    "--set=pretrain.init_channels=8",
    "--set=pretrain.train_limit=256",
    "--set=pretrain.test_limit=128",
    "--set=pretrain.held_out=64",
    "--set=extract.unseen=64",
    "--set=train-vae.epochs=2",
    "--set=train-vae.checkpoints=[1, 2]",
    "--set=train-vae.prior_samples=100",
    "--set=reinforce.seeds=4",
    "--set=reinforce.budget=30000",
    "--set=predict.seeds=2",
    "--set=predict.train_sizes=[50]",
];

fn summary(p: &Project, pipeline: &str, stage: &str, extra: &[&str]) -> Value {
    let mut args = vec!["-p", pipeline, "show", "--path", stage];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    let out = p.nasflow(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = std::path::PathBuf::from(stdout(&out).trim());
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn run(p: &Project, pipeline: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["-p", pipeline, "run", "predict", "reinforce"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    let out = p.nasflow(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn the_default_pipeline_searches_and_predicts_over_10k_real_cells() {
    let root = env!("CARGO_MANIFEST_DIR");
    let p = Project::new(&std::fs::read_to_string(format!("{root}/pipeline.toml")).unwrap());
    std::fs::create_dir_all(p.path().join("examples")).unwrap();
    std::fs::copy(
        format!("{root}/examples/ablation.toml"),
        p.path().join("examples/ablation.toml"),
    )
    .unwrap();
    let out = run(&p, "pipeline.toml", &[]);
    // The run ends with the answer: both stages' headline tables, io against reference, tested.
    let text = stdout(&out);
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    for want in [
        "reinforce: final validation regret",
        "predict: how well each feature set",
        "reinforce: io vs reference: final regret",
        "Mann-Whitney U p = ",
        "fit 50: io vs reference: Kendall tau",
        "Wilcoxon signed-rank p = ",
    ] {
        assert!(
            tail.contains(want),
            "{want:?} not in the run's last lines:\n{tail}"
        );
    }
    for row in [
        "reinforce     io",
        "reinforce     reference",
        "50   io",
        "50   reference",
    ] {
        assert!(tail.contains(row), "{row:?} not in:\n{tail}");
    }
    // A --set run (TINY) says where its own outputs are, last.
    let err = stderr(&out);
    assert!(err.contains("this run's outputs:"), "{err}");

    // metrics: a short default view (40 lines or fewer at any width), --all for every number,
    // --filter by name.
    let metrics = |extra: &[&str], columns: &str| {
        let mut args = vec!["metrics"];
        args.extend_from_slice(extra);
        args.extend_from_slice(TINY);
        let out = p.cmd(&args).env("COLUMNS", columns).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    for columns in ["80", "200"] {
        let short = metrics(&[], columns);
        assert!(
            short.lines().count() <= 40,
            "{} lines:\n{short}",
            short.lines().count()
        );
        assert!(short.contains("reinforce-io.final_regret_valid"), "{short}");
        assert!(short.contains("rf.io.fit_50.kendall_tau"), "{short}");
        let width: usize = columns.parse().unwrap();
        assert!(short.lines().all(|l| l.chars().count() <= width), "{short}");
    }
    assert!(metrics(&["--all"], "200").lines().count() > 200);
    let filtered = metrics(&["--filter", "*p_kendall_tau", "--format", "csv"], "200");
    assert_eq!(
        filtered.lines().count(),
        1 + 1,
        "one fit size in TINY: {filtered}"
    );
    // The logs of a fresh run are kept: train-vae's progress.
    let mut args = vec!["log", "train-vae"];
    args.extend_from_slice(TINY);
    let log = stdout(&p.nasflow(&args));
    assert!(
        log.contains("==> progress.log <==") && log.contains("batches"),
        "{log}"
    );

    let sample = summary(&p, "pipeline.toml", "sample", &[]);
    assert_eq!(sample["table_rows"], 10000, "{sample}");
    assert_eq!(sample["cells"], 12000, "{sample}");
    let reinforce = summary(&p, "pipeline.toml", "reinforce", &[]);
    assert_eq!(
        reinforce["table"]["cells"], 10000,
        "every table cell is searchable: {reinforce}"
    );
    assert_eq!(reinforce["table"]["without_feature"], 0);
    // NB101's best validation accuracy among these 10,000 cells (one run, 108 epochs).
    let best = reinforce["table"]["best_valid"].as_f64().unwrap();
    assert!(best > 0.94 && best < 0.951, "{best}");
    let predict = summary(&p, "pipeline.toml", "predict", &[]);
    let scored = predict["rf"]["io"]["fit_50"]["scored_cells"]
        .as_u64()
        .unwrap();
    assert!(
        scored > 9000,
        "scored on the table's cells above 0.8: {scored}"
    );

    // The ablation shares the cache: its base is the default pipeline, nothing upstream reruns;
    // its reference variant reads the other model of the same train-vae run.
    let abl = "examples/ablation.toml";
    let mut args = vec!["-p", abl, "plan", "predict"];
    args.extend_from_slice(TINY);
    let out = p.nasflow(&args);
    assert!(
        stdout(&out).lines().all(|l| l.starts_with("cached")),
        "{}",
        stdout(&out)
    );
    run(&p, abl, &["--variant", "epoch-1"]);
    let last = summary(&p, abl, "predict", &[]);
    let first = summary(&p, abl, "predict", &["--variant", "epoch-1"]);
    let rmse = |s: &Value, f: &str| s["rf"][f]["fit_50"]["rmse"].as_f64().unwrap();
    assert_ne!(
        rmse(&last, "io"),
        rmse(&first, "io"),
        "checkpoints predict differently"
    );
    assert_ne!(
        rmse(&last, "io"),
        rmse(&last, "reference"),
        "io and reference features predict differently"
    );
    let s = summary(&p, abl, "reinforce", &[]);
    let regret = |s: &Value, m: &str| s[m]["final_regret_valid"].as_f64().unwrap();
    assert_ne!(
        regret(&s, "reinforce-io"),
        regret(&s, "reinforce-reference"),
        "and search differently"
    );
    let p_value = s["compare"]["reinforce"]["io_vs_reference"]["p_final_regret_valid"].as_f64();
    assert!(p_value.is_some_and(|p| (0.0..=1.0).contains(&p)), "{s}");
}
