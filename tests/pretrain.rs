//! `pretrain` and `extract` end to end on the synthetic images at tiny sizes, through the binary.
mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{stderr, Project};
use serde_json::Value;

const PIPELINE: &str = r#"
[pipeline]
seed = 5
jobs = 2
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
stacks = 2
cells_per_stack = 1
epochs = 2
batch_size = 32
train_limit = 192
test_limit = 100
held_out = 40
[stages.extract]
kind = "extract"
foreach = "pretrain"
unseen = 30
[stages.preprocess]
kind = "preprocess"
deps = ["extract"]
[stages.vae-io]
kind = "train-vae"
deps = ["sample", "preprocess"]
epochs = 2
checkpoints = [1]
image_channels = 4
prior_samples = 200
[stages.vae-ref]
kind = "train-vae"
deps = ["sample", "preprocess"]
variant = "arch2vec"
epochs = 2
checkpoints = [1]
prior_samples = 200
[stages.vae-orig]
kind = "train-vae"
deps = ["sample", "preprocess"]
variant = "arch2vec-original"
epochs = 2
checkpoints = []
prior_samples = 200
"#;

/// The space, enumerated once for the three projects below.
fn space_file(dir: &std::path::Path) -> PathBuf {
    common::enumerated_space(dir)
}

fn tensors(path: &std::path::Path) -> HashMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn pretrain_and_extract_tiny_networks_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let space = space_file(tmp.path());
    let pipeline = PIPELINE.replace("SPACE", &space.to_string_lossy());
    let a = Project::new(&pipeline);
    a.run_ok(&[]);

    let pre = a.out_dir("pretrain");
    let ext = a.out_dir("extract");
    for k in 0..3 {
        let item = pre.join(format!("items/{k:05}"));
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(item.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(m["epochs"].as_array().unwrap().len(), 2);
        let e0 = &m["epochs"][0];
        assert!(
            (e0["lr"].as_f64().unwrap() - 0.025).abs() < 1e-12,
            "cosine starts at lr"
        );
        assert!(
            (m["epochs"][1]["lr"].as_f64().unwrap() - 0.0125).abs() < 1e-12,
            "cos(pi/2) halves it"
        );
        for key in [
            "train_loss",
            "train_accuracy",
            "held_out_loss",
            "held_out_accuracy",
        ] {
            assert!(e0[key].as_f64().unwrap().is_finite(), "{key}");
        }
        let acc = m["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert_eq!(m["test_images"], 100);
        let net: Value =
            serde_json::from_str(&std::fs::read_to_string(item.join("network.json")).unwrap())
                .unwrap();
        let w = tensors(&item.join("weights.safetensors"));
        let params: i64 = w
            .iter()
            .filter(|(n, _)| !n.contains("running_") && !n.contains("num_batches"))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        assert_eq!(params, net["trainable_parameters"].as_i64().unwrap());

        let f = tensors(&ext.join(format!("items/{k:05}/features.safetensors")));
        let c = 8; // 4 channels doubled once
        assert_eq!(f["seen_features"].size(), vec![40, c]);
        assert_eq!(f["seen_labels"].size(), vec![40]);
        assert_eq!(f["unseen_features"].size(), vec![30, c]);
        assert_eq!(f["unseen_indices"].size(), vec![30]);
        assert_eq!(f["classifier_weight"].size(), vec![10, c]);
        assert_eq!(f["classifier_bias"].size(), vec![10]);
        // The classifier in the features file is the trained one.
        assert!(f["classifier_weight"].equal(&w["classifier.weight"]));
        // GAP features after ReLU are non-negative.
        assert!(f["seen_features"].min().double_value(&[]) >= 0.0);
    }

    // preprocess: the paper's five sets, scaled per position on train.
    let pre_dir = a.out_dir("preprocess");
    let io = tensors(&pre_dir.join("io.safetensors"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(pre_dir.join("summary.json")).unwrap())
            .unwrap();
    for (set, rows, nets) in [
        ("train", 80, 2),
        ("valid", 40, 1),
        ("valid_unseen", 30, 1),
        ("test_unseen", 30, 1),
        ("test_valid", 30, 1),
    ] {
        assert_eq!(io[&format!("{set}_targets")].size(), vec![rows, 9], "{set}");
        assert_eq!(io[&format!("{set}_network")].size(), vec![rows]);
        assert_eq!(summary[set]["networks"], nets, "{set}");
        let b = summary[set]["mean_baseline_l1"].as_f64().unwrap();
        assert!(b.is_finite() && b > 0.0, "{set}: {b}");
    }
    let train = &io["train_targets"];
    let col_mean = train
        .mean_dim(0, false, tch::Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    assert!(col_mean < 1e-4, "train is centred per position: {col_mean}");
    let lines = std::fs::read_to_string(pre_dir.join("networks.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);

    // train-vae, the three variants, on the same upstream results.
    for (stage, models) in [
        ("vae-io", &["io", "reference"][..]),
        ("vae-ref", &["arch2vec"][..]),
        ("vae-orig", &["original"][..]),
    ] {
        let dir = a.out_dir(stage);
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        let epochs = m["epochs"].as_array().unwrap();
        assert_eq!(epochs.len(), 2, "{stage}");
        for e in epochs {
            assert_eq!(
                e["models"].as_object().unwrap().len(),
                models.len(),
                "{stage}"
            );
            for model in models {
                let me = &e["models"][model];
                let mut keys = vec!["unlabeled_loss", "validity", "uniqueness"];
                if *model != "original" {
                    keys.push("labeled_loss");
                }
                for key in keys {
                    let v = me[key].as_f64().unwrap_or(f64::NAN);
                    assert!(v.is_finite() && v >= 0.0, "{stage} {model} {key} {v}");
                }
                for set in ["valid", "labeled_valid"] {
                    for key in ["ops", "adj", "mean_corr_adj", "mean_fal_pos_adj"] {
                        let v = me[set][key].as_f64().unwrap_or(f64::NAN);
                        assert!((0.0..=1.0).contains(&v), "{stage} {model} {set}.{key} {v}");
                    }
                }
                let sets = me["l1"].as_object().unwrap();
                assert_eq!(sets.len(), if *model == "io" { 4 } else { 0 }, "{stage}");
                for (set, l) in sets {
                    let own = l["own_mean"].as_f64().unwrap();
                    assert!(own > 0.0 && l["l1"].as_f64().unwrap() > 0.0, "{set}");
                }
            }
        }
        let ck = tensors(&dir.join("checkpoint-epoch-2.safetensors"));
        for model in models {
            assert!(
                ck.keys().any(|k| k.starts_with(&format!("{model}.vae."))),
                "{stage}"
            );
        }
        assert_eq!(
            ck.keys().any(|k| k.starts_with("io.head.")),
            stage == "vae-io"
        );
        assert_eq!(
            dir.join("checkpoint-epoch-1.safetensors").exists(),
            stage != "vae-orig",
            "{stage}"
        );
        // One 16-d latent feature per cell at each checkpoint: 297 unlabeled cells, 3 networks.
        let latent = tensors(&dir.join("latent.safetensors"));
        for model in models {
            assert_eq!(
                latent[&format!("{model}/epoch-2")].size(),
                vec![300, 16],
                "{stage}"
            );
        }
        let cells = std::fs::metadata(dir.join("latent-cells.nb101"))
            .unwrap()
            .len();
        assert_eq!((cells - 24) / 24, 300);
    }
    // The reference trained alongside the io model equals arch2vec trained alone: same initial
    // weights, same batches, its own noise stream.
    let io = tensors(&a.out_dir("vae-io").join("latent.safetensors"));
    let alone = tensors(&a.out_dir("vae-ref").join("latent.safetensors"));
    for epoch in [1, 2] {
        let (r, s) = (
            &io[&format!("reference/epoch-{epoch}")],
            &alone[&format!("arch2vec/epoch-{epoch}")],
        );
        assert!(r.equal(s), "epoch {epoch}: reference != arch2vec alone");
        assert!(
            !r.equal(&io[&format!("io/epoch-{epoch}")]),
            "the io model differs"
        );
    }

    // Same seed, same device and threads: bit-identical weights in a second project.
    let b = Project::new(&pipeline);
    b.run_ok(&[]);
    let pb = b.out_dir("pretrain");
    for k in 0..3 {
        let w = format!("items/{k:05}/weights.safetensors");
        assert_eq!(
            std::fs::read(pre.join(&w)).unwrap(),
            std::fs::read(pb.join(&w)).unwrap(),
            "item {k}"
        );
    }
    // Another seed: different weights.
    let c = Project::new(&pipeline.replace("seed = 5", "seed = 6"));
    c.run_ok(&[]);
    let w0 = "items/00000/weights.safetensors";
    assert_ne!(
        std::fs::read(pre.join(w0)).unwrap(),
        std::fs::read(c.out_dir("pretrain").join(w0)).unwrap()
    );

    // bf16 autocast and channels-last on the CPU (the shim's code path): a new key, finite
    // training, weights saved (contiguous) and loaded by extract, features stored as fp32.
    let mixed = [
        "--set",
        "pretrain.precision=\"bf16\"",
        "--set",
        "pretrain.channels_last=true",
        "--set",
        "extract.precision=\"bf16\"",
        "--set",
        "extract.channels_last=true",
    ];
    let out = a.nasflow(&[&["run", "extract"][..], &mixed[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(common::ran(&out), common::set(&["pretrain", "extract"]));
    let bf = {
        let out = a.nasflow(&[&["show", "pretrain", "--json"][..], &mixed[..]].concat());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        PathBuf::from(v["out_dir"].as_str().unwrap())
    };
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(bf.join("items/00000/metrics.json")).unwrap(),
    )
    .unwrap();
    assert!(m["epochs"][1]["train_loss"].as_f64().unwrap().is_finite());
    assert_ne!(
        std::fs::read(pre.join(w0)).unwrap(),
        std::fs::read(bf.join(w0)).unwrap(),
        "bf16 trains differently"
    );
    let feats = {
        let out = a.nasflow(&[&["show", "extract", "--json"][..], &mixed[..]].concat());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        tensors(
            &PathBuf::from(v["out_dir"].as_str().unwrap()).join("items/00000/features.safetensors"),
        )
    };
    assert_eq!(feats["seen_features"].kind(), tch::Kind::Float);

    // extract must read the images pretrain trained on.
    let bad = pipeline.replace("unseen = 30", "unseen = 30\nimages = \"nowhere\"");
    a.write_pipeline(&bad);
    let out = a.nasflow(&["run"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
}
