//! `reinforce`, `predict` and `nasflow metrics` end to end at tiny sizes, through the binary: on
//! the networks pretrained in the pipeline and on real NB101 figures (../shared/data).
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::{stderr, stdout, Project};
use nasflow_stages::nb101::Space;
use serde_json::Value;

const PIPELINE: &str = r#"
[pipeline]
seed = 5
jobs = 2
[stages.sample]
kind = "sample"
space = "SPACE"
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
variant = "arch2vec"
epochs = 1
checkpoints = []
prior_samples = 50
[stages.reinforce]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "TABLE"
seeds = 4
budget = 50000.0
[stages.predict]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "TABLE"
train_sizes = [50, 100, 100000]
seeds = 2
[stages.search-all]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "TABLE"
methods = ["reinforce", "bo", "evolution", "local_search"]
seeds = 3
bo_seeds = 2
bo_epochs = 10
population = 4
tournament = 2
budget = 30000.0
[stages.reinforce-pre]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
seeds = 3
budget = 1e9
[stages.predict-pre]
kind = "predict"
deps = ["train-vae", "pretrain"]
fit_outside_train = false
train_sizes = [2]
threshold = 0.0
seeds = 2
[stages.predict-naslib]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "TABLE"
protocol = "naslib"
regressors = ["rf"]
feature_sets = ["latent"]
seeds = 2
"#;

/// The first 400 cells of the sorted space: the first 400 rows of nb101-1k.jsonl.
fn small_space(dir: &Path) -> PathBuf {
    let full = common::enumerated_space(dir);
    let space = Space::read(&full).unwrap();
    let small = dir.join("space-400.nb101");
    Space::from_entries(space.entries()[..400].to_vec())
        .write(&small)
        .unwrap();
    small
}

fn traces(p: &Project, stage: &str) -> HashMap<(String, u64), Value> {
    common::read_jsonl(&p.out_dir(stage).join("traces.jsonl"))
        .into_iter()
        .map(|t| {
            (
                (
                    t["method"].as_str().unwrap().to_string(),
                    t["seed"].as_u64().unwrap(),
                ),
                t,
            )
        })
        .collect()
}

#[test]
fn reinforce_and_predict_on_nb101_figures_and_on_pretrained_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let space = small_space(tmp.path());
    let table = std::fs::canonicalize("../shared/data/nb101-1k.jsonl").unwrap();
    let figures: HashMap<String, (f64, f64)> = common::read_jsonl(&table)
        .iter()
        .map(|l| {
            (
                l["hash"].as_str().unwrap().to_string(),
                (
                    l["validation_accuracy"]["108"].as_f64().unwrap(),
                    l["training_time_108"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    let pipeline = PIPELINE
        .replace("SPACE", &space.to_string_lossy())
        .replace("TABLE", &table.to_string_lossy());
    let a = Project::new(&pipeline);
    a.run_ok(&[]);

    // reinforce on the real figures: 400 of the table's 1,000 cells have features.
    let dir = a.out_dir("reinforce");
    let s = common::read_json(&dir.join("summary.json"));
    assert_eq!(s["table"]["cells"], 400);
    assert_eq!(s["table"]["without_feature"], 600);
    let best = (0..400)
        .map(|i| {
            let h = Space::read(&space).unwrap().entries()[i].0.hex();
            figures[&h].0
        })
        .fold(f64::MIN, f64::max);
    assert_eq!(s["table"]["best_valid"].as_f64().unwrap(), best);
    for method in ["reinforce", "random"] {
        assert_eq!(s[method]["seeds"], 4, "{method}");
        let r = s[method]["final_regret_valid"].as_f64().unwrap();
        assert!((0.0..0.2).contains(&r), "{method}: {r}");
        assert!(
            s[method].get("final_regret_test").is_none(),
            "the 1k table has no test accuracies"
        );
    }
    let ts = traces(&a, "reinforce");
    assert_eq!(ts.len(), 8);
    for ((method, seed), t) in &ts {
        let q: Vec<&str> = t["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        let unique: BTreeSet<_> = q.iter().collect();
        assert_eq!(
            unique.len(),
            q.len(),
            "{method} {seed}: a cell queried twice"
        );
        // The cumulative cost is the sum of the queried cells' training times, and the run
        // stops at the first query that reaches the budget.
        let mut spent = 0.0;
        let mut best_valid = 0.0f64;
        for (k, h) in q.iter().enumerate() {
            let (v, c) = figures[*h];
            spent += c;
            best_valid = best_valid.max(v);
            assert!((t["cost"][k].as_f64().unwrap() - spent).abs() < 1e-6);
            assert_eq!(t["best_valid"][k].as_f64().unwrap(), best_valid);
            assert!((t["regret_valid"][k].as_f64().unwrap() - (best - best_valid)).abs() < 1e-12);
            assert!(t["regret_test"][k].is_null());
            assert_eq!(
                k + 1 == q.len(),
                spent >= 50000.0,
                "{method} {seed} query {k}"
            );
        }
    }
    assert!(dir.join("regret-valid.png").exists());
    assert!(!dir.join("regret-test.png").exists());

    // On the pretrained networks (3 cells), a large budget queries every cell once; the table
    // has test accuracies, so there is a test regret.
    let pre = common::read_json(&a.out_dir("reinforce-pre").join("summary.json"));
    assert_eq!(pre["table"]["cells"], 3);
    assert!(pre["reinforce"]["final_regret_test"].is_number());
    assert_eq!(pre["reinforce"]["final_regret_valid"], 0.0);
    for t in traces(&a, "reinforce-pre").values() {
        let n = t["queries"].as_array().unwrap().len();
        if t["method"] == "reinforce" {
            assert_eq!(n, 2, "the start cell is visited but not a query");
        } else {
            assert_eq!(n, 3);
        }
    }
    assert!(a.out_dir("reinforce-pre").join("regret-test.png").exists());

    // Every method on the same seeds and table; BO on its 2 seeds. The table holds 400 of
    // NB101's cells, so evolution's mutations and local search's neighbours are mostly outside
    // it and drawn again or skipped (counted); every query is a cell of the table.
    let all = common::read_json(&a.out_dir("search-all").join("summary.json"));
    let all_traces = traces(&a, "search-all");
    for (method, seeds) in [
        ("reinforce", 3),
        ("bo", 2),
        ("evolution", 3),
        ("local_search", 3),
        ("random", 3),
    ] {
        assert_eq!(all[method]["seeds"], seeds, "{method}");
        let r = all[method]["final_regret_valid"].as_f64().unwrap();
        assert!((0.0..0.2).contains(&r), "{method}: {r}");
        if method != "random" {
            let p = all[method]["p_vs_random"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "{method}: p {p}");
        }
        assert!(all[method]["by_queries_index"].as_f64().unwrap() >= 1.0);
        let outside = all[method]["outside_table"].as_f64();
        assert_eq!(
            outside.is_some_and(|o| o > 0.0),
            method == "evolution" || method == "local_search",
            "{method}: {outside:?}"
        );
        for seed in 0..seeds {
            let t = &all_traces[&(method.to_string(), 5 + seed)];
            for h in t["queries"].as_array().unwrap() {
                assert!(figures.contains_key(h.as_str().unwrap()), "{method}: {h}");
            }
        }
    }
    // The table does not cover NB101: the summary says so, names the settings, and warns
    // that evolution and local search are not comparable with published numbers.
    assert_eq!(all["settings"]["covers_space"], false);
    assert_eq!(all["settings"]["local_search"], "naszilla");
    assert!(all["settings"]["evolution"]
        .as_str()
        .unwrap()
        .contains("mutation naslib, population 4, tournament 2"));
    let warnings = all["warnings"].as_array().unwrap();
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("neighbours of evolution and local_search that fall outside"),
        "{warnings:?}"
    );
    // The stages report only progress; their records keep it, and `nasflow log` shows it.
    let out = a.nasflow(&["log", "search-all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("==> progress.log <=="), "{text}");
    assert!(
        text.contains("/14 runs"),
        "3 seeds x 4 methods + 2 BO seeds: {text}"
    );
    let out = a.nasflow(&["metrics", "--all", "search-all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warning: search-all: the table holds 400 of NB101's"),
        "{text}"
    );
    // The same seed gives REINFORCE and random search the same traces in both stages (budgets
    // aside: the shorter run is a prefix of the longer).
    let t = &all_traces[&("random".to_string(), 5)]["queries"];
    let u = &ts[&("random".to_string(), 5)]["queries"];
    let n = t.as_array().unwrap().len();
    assert_eq!(t.as_array().unwrap()[..], u.as_array().unwrap()[..n]);
    let sdir = a.out_dir("search-all");
    let chart: Value = common::read_json(&sdir.join("charts/regret-valid-queries.json"));
    assert_eq!(
        chart["series"].as_array().unwrap().len(),
        5,
        "a line per method"
    );

    // predict: 2 sizes (100000 is skipped) x 2 seeds x 3 feature sets x 2 regressors, each on 2
    // result sets (outside the fit set, all cells; the 1k table has no test accuracies).
    let pdir = a.out_dir("predict");
    let rows = common::read_jsonl(&pdir.join("results.jsonl"));
    assert_eq!(rows.len(), 48);
    let ps = common::read_json(&pdir.join("summary.json"));
    assert_eq!(ps["skipped_sizes"], serde_json::json!([100000]));
    assert_eq!(ps["table"]["labeled_train"], 2);
    for r in &rows {
        let rmse = r["rmse"].as_f64().unwrap();
        assert!(rmse.is_finite() && rmse > 0.0, "{r}");
        // Scored: the 398 cells outside the labeled train networks, minus the fit set (unless
        // the set is all cells), above 0.8.
        let scored = r["scored"].as_u64().unwrap();
        let fit = if r["set"] == "_all" {
            0
        } else {
            r["train_size"].as_u64().unwrap()
        };
        assert!(scored > 0 && scored <= 400 - fit, "{r}");
        assert!(r["kendall_tau"].as_f64().unwrap().is_finite(), "{r}");
    }
    let rf = ps["rf"]["latent"]["fit_100"]["rmse"].as_f64().unwrap();
    assert!(
        rf < 0.1,
        "an RF on 100 cells predicts NB101 accuracy within 0.1: {rf}"
    );
    let path = ps["rf"]["path"]["fit_100_all"]["spearman"]
        .as_f64()
        .unwrap();
    assert!(
        path.is_finite(),
        "the path encoding is a feature set: {path}"
    );
    for f in ["rmse.png", "pearson.svg", "charts/rmse.json", "kendall.png"] {
        assert!(pdir.join(f).exists(), "{f}");
    }
    let pp = common::read_json(&a.out_dir("predict-pre").join("summary.json"));
    assert_eq!(pp["gp"]["latent"]["fit_2"]["seeds"], 2);
    // NASLib's protocol: its sizes that fit beside a 200-cell test set in 400 cells, every
    // test cell scored, charts by fit size.
    let ndir = a.out_dir("predict-naslib");
    let ns = common::read_json(&ndir.join("summary.json"));
    assert_eq!(ns["settings"]["protocol"], "naslib");
    assert_eq!(
        ns["skipped_sizes"],
        serde_json::json!([205, 347, 589, 1000])
    );
    assert_eq!(ns["threshold"], Value::Null);
    for r in common::read_jsonl(&ndir.join("results.jsonl")) {
        assert_eq!(r["scored"], 200, "{r}");
    }
    assert_eq!(ns["rf"]["latent"]["fit_121"]["seeds"], 2);
    assert!(ns["rf"]["latent"]["fit_5"]["pearson"].as_f64().unwrap() >= 0.0);
    for f in ["spearman.png", "kendall.svg", "charts/pearson.json"] {
        assert!(ndir.join(f).exists(), "{f}");
    }

    // Deterministic per seed: fewer seeds, one job (so other thread counts) -> the same traces.
    let before = traces(&a, "reinforce");
    a.write_pipeline(&pipeline.replacen("seeds = 4", "seeds = 2", 1));
    let ran = a.run_ok(&["-j", "1", "reinforce"]);
    assert_eq!(ran, common::set(&["reinforce"]));
    let after = traces(&a, "reinforce");
    assert_eq!(after.len(), 4);
    for (k, t) in &after {
        assert_eq!(t, &before[k], "{k:?}");
    }
    a.write_pipeline(&pipeline);

    // nasflow metrics: the summary numbers, and a --compare-set variant side by side.
    let out = a.nasflow(&["metrics", "--all", "reinforce", "predict"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("reinforce.final_regret_valid"), "{text}");
    assert!(text.contains("rf.latent.fit_100.rmse"), "{text}");
    let out = a.nasflow(&[
        "metrics",
        "--all",
        "reinforce",
        "--compare-set",
        "reinforce.seeds=2",
    ]);
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("reinforce.seeds=2") && header.contains("diff (2)"),
        "{text}"
    );
    let seeds = text
        .lines()
        .skip(1)
        .find(|l| l.contains(" reinforce.seeds "))
        .unwrap();
    assert!(seeds.contains("-2"), "4 seeds against 2: {seeds}");
    let out = a.nasflow(&["metrics", "--json", "predict"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["columns"][0]["stages"]["predict"]["gp.latent.fit_50.rmse"].is_f64());
    assert!(v["columns"][0]["stages"]["predict"]["gp.latent.fit_50.seeds"].is_u64());
}

#[test]
fn a_pretrained_table_needs_the_pretrain_dependency() {
    let p = Project::new(
        r#"
[stages.sample]
kind = "sample"
cells = 50
train_nets = 1
valid_nets = 1
[stages.preprocess]
kind = "cmd"
run = "true"
[stages.train-vae]
kind = "cmd"
deps = ["sample"]
run = "true"
[stages.reinforce]
kind = "reinforce"
deps = ["train-vae"]
"#,
    );
    let out = p.nasflow(&["run", "reinforce"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("needs the pretrain stage in deps"), "{err}");
}

/// One train-vae run (io, checkpoints 1 and 2) feeds reinforce and predict with both models'
/// features at both checkpoints; a new consumer of other features trains nothing.
#[test]
fn one_training_run_feeds_both_models_at_both_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let space = small_space(tmp.path());
    let table = std::fs::canonicalize("../shared/data/nb101-1k.jsonl").unwrap();
    let head = PIPELINE
        .split("[stages.reinforce]")
        .next()
        .unwrap()
        .replace("SPACE", &space.to_string_lossy())
        .replace(
            "variant = \"arch2vec\"\nepochs = 1\ncheckpoints = []",
            "variant = \"io\"\nepochs = 2\ncheckpoints = [1, 2]\nimage_channels = 4",
        );
    let mut pipeline = head.clone();
    for model in ["io", "reference"] {
        for checkpoint in [1, 2] {
            pipeline.push_str(&format!(
                r#"
[stages.reinforce-{model}-{checkpoint}]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "{table}"
features = ["{model}"]
checkpoint = {checkpoint}
seeds = 2
budget = 30000.0
[stages.predict-{model}-{checkpoint}]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "{table}"
features = ["{model}"]
checkpoint = {checkpoint}
train_sizes = [50]
seeds = 2
baseline = false
"#,
                table = table.display()
            ));
        }
    }
    let p = Project::new(&pipeline);
    let ran = p.run_ok(&[]);
    assert!(ran.contains("train-vae") && ran.len() == 13, "{ran:?}");
    let mut rmse = Vec::new();
    for model in ["io", "reference"] {
        for checkpoint in [1, 2] {
            let want = format!("{model}/epoch-{checkpoint}");
            let r = common::read_json(
                &p.out_dir(&format!("reinforce-{model}-{checkpoint}"))
                    .join("summary.json"),
            );
            assert_eq!(r["latent"], want.as_str());
            assert_eq!(r["table"]["cells"], 400);
            let s = common::read_json(
                &p.out_dir(&format!("predict-{model}-{checkpoint}"))
                    .join("summary.json"),
            );
            assert_eq!(s["table"]["latent"], want.as_str());
            rmse.push(s["rf"]["latent"]["fit_50"]["rmse"].as_f64().unwrap());
        }
    }
    // Four different feature sets: four different fits.
    let distinct: BTreeSet<u64> = rmse.iter().map(|r| r.to_bits()).collect();
    assert_eq!(distinct.len(), 4, "{rmse:?}");

    // Another consumer of the same features runs alone: no second training.
    let more = format!(
        "{pipeline}\n[stages.predict-default]\nkind = \"predict\"\ndeps = [\"train-vae\", \"pretrain\"]\ntable = \"{}\"\ntrain_sizes = [50]\nseeds = 2\n",
        table.display()
    );
    p.write_pipeline(&more);
    assert_eq!(p.run_ok(&[]), common::set(&["predict-default"]));
    let d = common::read_json(&p.out_dir("predict-default").join("summary.json"));
    assert_eq!(
        d["table"]["latent"], "io/epoch-2",
        "the default: the main model, the last epoch"
    );

    // Features the run does not have: a config error that says what there is.
    let bad = format!("{more}\n[stages.predict-bad]\nkind = \"predict\"\ndeps = [\"train-vae\", \"pretrain\"]\nfeatures = [\"original\"]\ncheckpoint = 2\n");
    p.write_pipeline(&bad);
    let out = p.nasflow(&["run", "predict-bad"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("features = \"original\" but train-vae trained io, reference"),
        "{err}"
    );
}
