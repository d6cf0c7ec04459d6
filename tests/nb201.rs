//! NAS-Bench-201 through the binary: `sample` with `search_space = "nb201"`, then `pretrain`,
//! `extract`, `preprocess` and `train-vae` on NB201 cells at tiny sizes.
mod common;

use common::{stderr, Project};
use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::space::Arch;
use serde_json::Value;

const PIPELINE: &str = r#"
[pipeline]
seed = 3
jobs = 2
[stages.sample]
kind = "sample"
search_space = "nb201"
table = "nb201"
cells = 300
train_nets = 2
valid_nets = 1
[stages.pretrain]
kind = "pretrain"
foreach = "sample"
init_channels = 4
stacks = 3
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
epochs = 2
checkpoints = [1]
image_channels = 4
prior_samples = 100
[stages.reinforce]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "nb201"
features = ["io", "reference"]
methods = ["reinforce", "bo", "evolution", "local_search"]
seeds = 2
bo_seeds = 1
bo_epochs = 5
population = 4
tournament = 2
budget = 300000.0
[stages.predict]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "nb201"
features = ["io", "reference"]
train_sizes = [20, 50]
seeds = 2
[stages.zero-cost]
kind = "zero-cost"
deps = ["sample"]
sample = "sample"
cells = 40
batch_size = 8
init_channels = 4
cells_per_stack = 1
[stages.predict-zc]
kind = "predict"
deps = ["train-vae", "pretrain", "zero-cost"]
table = "nb201"
features = ["io", "reference"]
feature_sets = ["latent", "zero-cost", "latent+zero-cost"]
zero_cost = "zero-cost"
train_sizes = [10, 20]
threshold = 0.0
seeds = 2
"#;

#[test]
fn sample_pretrain_extract_and_train_vae_on_nb201_cells() {
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    let sample = p.out_dir("sample");
    let items = common::read_jsonl(&sample.join("items.jsonl"));
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["space"] == "nb201"), "{items:?}");
    // 300 cells, 270 train and 30 validation, the labeled ones left out of the unlabeled files.
    let lines = |name: &str| {
        std::fs::read_to_string(sample.join(name))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines("unlabeled-train.nb201"), 268);
    assert_eq!(lines("unlabeled-valid.nb201"), 29);
    let figures = common::read_jsonl(&sample.join("figures.jsonl"));
    assert_eq!(figures.len(), 300);
    assert_eq!(figures.iter().filter(|f| f["labeled"] == true).count(), 3);
    let acc = figures[0]["validation_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{acc}");

    let pre = p.out_dir("pretrain");
    let ext = p.out_dir("extract");
    let sk = Skeleton {
        in_channels: 3,
        init_channels: 4,
        stacks: 3,
        cells_per_stack: 1,
        classes: 10,
    };
    for (k, item) in items.iter().enumerate() {
        let dir = pre.join(format!("items/{k:05}"));
        let net: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("network.json")).unwrap())
                .unwrap();
        assert_eq!(net["space"], "nb201");
        assert_eq!(net["arch"], item["arch"]);
        assert_eq!(net["hash"], item["hash"]);
        let arch = Arch::from_fields(item).unwrap();
        assert_eq!(
            net["trainable_parameters"].as_u64().unwrap() as usize,
            arch.trainable_parameters(&sk)
        );
        let w: std::collections::HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(dir.join("weights.safetensors"))
                .unwrap()
                .into_iter()
                .collect();
        assert!(
            w.contains_key("cells.1.conv_a.op.1.weight"),
            "{:?}",
            w.keys()
        );
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        assert!(m["epochs"][0]["train_loss"].as_f64().unwrap().is_finite());

        let f: std::collections::HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(ext.join(format!("items/{k:05}/features.safetensors")))
                .unwrap()
                .into_iter()
                .collect();
        // C 4 doubled twice: 16 features per image.
        assert_eq!(f["seen_features"].size(), vec![20, 16]);
        assert_eq!(f["unseen_features"].size(), vec![10, 16]);
        assert_eq!(f["classifier_weight"].size(), vec![10, 16]);
    }

    // train-vae: arch2vec's NB201 graphs (8 nodes, 7 labels); latents of all 300 cells, in
    // the unlabeled files' order then the labeled networks.
    let vae = p.out_dir("train-vae");
    let cells = std::fs::read_to_string(vae.join("latent-cells.nb201")).unwrap();
    assert_eq!(cells.lines().count(), 300);
    let first_unlabeled = std::fs::read_to_string(sample.join("unlabeled-train.nb201")).unwrap();
    assert_eq!(cells.lines().next(), first_unlabeled.lines().next());
    let lat: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(vae.join("latent.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    for name in ["io/epoch-1", "io/epoch-2", "reference/epoch-2"] {
        assert_eq!(lat[name].size(), vec![300, 16], "{name}");
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(vae.join("summary.json")).unwrap()).unwrap();
    let text = summary.to_string();
    assert!(text.contains("validity"), "{text}");

    // reinforce and predict on the NB201 table: the 300 sampled cells are searchable; regret
    // is against the best of them.
    let search = p.out_dir("reinforce");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(search.join("summary.json")).unwrap())
            .unwrap();
    let text = s.to_string();
    for method in [
        "reinforce-io",
        "bo-reference",
        "evolution",
        "local_search",
        "random",
    ] {
        assert!(text.contains(method), "{method} in {text}");
    }
    let traces = common::read_jsonl(&search.join("traces.jsonl"));
    assert!(!traces.is_empty());
    let pred = p.out_dir("predict");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(pred.join("summary.json")).unwrap()).unwrap();
    let text = s.to_string();
    assert!(text.contains("fit_50"), "{text}");
    assert!(text.contains("path encoding is NB101's"), "{text}");

    // zero-cost on 40 of the sampled cells; predict on those cells from the proxies alone and
    // appended to each model's latent features.
    let zc = p.out_dir("zero-cost");
    let lines = common::read_jsonl(&zc.join("proxies.jsonl"));
    assert_eq!(lines.len(), 40);
    let sampled: std::collections::HashSet<String> = figures
        .iter()
        .map(|f| f["arch"].as_str().unwrap().to_string())
        .collect();
    for l in &lines {
        assert!(sampled.contains(l["arch"].as_str().unwrap()), "{l}");
        for proxy in ["synflow", "nwot", "snip", "grad_norm"] {
            assert!(
                l[proxy].as_f64().is_some_and(f64::is_finite),
                "{proxy}: {l}"
            );
        }
    }
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(zc.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["cells"], 40);
    assert!(s["spearman_valid"]["synflow"].is_number(), "{s}");
    let pzc = p.out_dir("predict-zc");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(pzc.join("summary.json")).unwrap()).unwrap();
    let text = s.to_string();
    for set in ["zero-cost", "io+zero-cost", "reference+zero-cost"] {
        assert!(text.contains(&format!("\"{set}\"")), "{set} in {text}");
    }
    assert!(text.contains("table cells with all five proxies"), "{text}");
    // The two predict stages' headlines are told apart by their stage names.
    let out = p.nasflow(&["run"]);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("\npredict: how well"), "{shown}");
    assert!(shown.contains("\npredict-zc: how well"), "{shown}");
}

/// Settings of the other space are refused when the pipeline is read (`nasflow plan`, exit 2),
/// each placed at its param with a message that names the fix.
#[test]
fn nb201_settings_of_the_other_space_are_refused_at_plan() {
    let refused = |pipeline: &str, want: &str| {
        let p = Project::new(pipeline);
        let out = p.nasflow(&["plan"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{want} in {}", stderr(&out));
    };
    refused(
        &PIPELINE.replacen("table = \"nb201\"", "table = \"nb101-10k\"", 1),
        "`table` in [stages.sample] is not valid: \"nb101-10k\" is not an NB201 table",
    );
    refused(
        &PIPELINE.replace("search_space = \"nb201\"\n", ""),
        "`table` in [stages.sample] is not valid: \"nb201\" is NB201's table; set search_space = \"nb201\"",
    );
    refused(
        &PIPELINE.replace("valid_nets = 1\n", "valid_nets = 1\ninclude_table = true\n"),
        "`include_table` in [stages.sample] is not valid: every NB201 cell is in its table",
    );
    refused(
        &PIPELINE.replace(
            "budget = 300000.0\n",
            "budget = 300000.0\nmutation = \"naszilla\"\n",
        ),
        "`mutation` in [stages.reinforce] is not valid: \"naszilla\" is an NB101 operator",
    );
}

/// The NB201 examples are valid pipelines: every stage plans (nothing cached yet).
#[test]
fn the_nb201_examples_plan() {
    let root = env!("CARGO_MANIFEST_DIR");
    let p = Project::new("");
    std::fs::create_dir_all(p.path().join("examples")).unwrap();
    for name in ["nb201.toml", "nb201-paper.toml"] {
        std::fs::copy(
            format!("{root}/examples/{name}"),
            p.path().join("examples").join(name),
        )
        .unwrap();
        let file = format!("examples/{name}");
        let out = p.nasflow(&["-p", &file, "plan"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let plan = String::from_utf8_lossy(&out.stdout).to_string();
        for stage in ["sample", "pretrain", "train-vae", "reinforce", "predict"] {
            assert!(plan.contains(stage), "{name}: {plan}");
        }
    }
}
