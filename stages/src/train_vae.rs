//! The `train-vae` stage: info-NAS's semi-supervised training of arch2vec's graph VAE with the
//! input-output head (`variant = "io"`), or of the plain VAE on the same batch stream
//! (`variant = "arch2vec"`, the paper's reference model). The computation is in
//! `nasflow_torch::train_vae`; this module declares the kind.
//!
//! Inputs: `sample` (the unlabeled cells) and `preprocess` (the labeled datasets). Outputs:
//! `checkpoint-epoch-E.safetensors` at the configured epochs and at the end, `metrics.json`
//! (per epoch: losses, reconstruction accuracy of ops and adjacency on the unlabeled validation
//! cells, validity and uniqueness of cells decoded from the prior, labeled L1 on each labeled
//! set next to its mean baseline, seconds), and the latent features of every cell (`latent.safetensors`:
//! `features`, cells x 16, the mean over the 7 nodes of the encoder mean, rows in the order of
//! `latent-cells.nb101`, sorted by hash); `summary.json` and per-epoch charts ([`report`]).
use std::path::Path;

use serde_json::{json, Value};

use nasflow_contract::layout::SUMMARY;
use nasflow_contract::{Kind, KindInfo, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::images::ImageSource;
use crate::report::{Chart, Series};

/// The `train-vae` kind.
pub struct TrainVae;

impl Kind for TrainVae {
    type Params = TrainVaeParams;
    const INFO: KindInfo = KindInfo {
        name: "train-vae",
        version: 2,
        doc: "Train arch2vec's graph VAE, extended with info-NAS's input-output head (variant = \"io\") or plain (variant = \"arch2vec\"), semi-supervised",
        reads_seed: true,
        uses_device: true,
        item_level: false,
    };
}

/// The params of `train-vae`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainVaeParams {
    /// which model to train
    pub variant: Variant,
    /// training epochs (paper: 30)
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// epochs after which to save a checkpoint (the last epoch always is)
    pub checkpoints: Vec<usize>,
    /// batch size of labeled and unlabeled batches
    #[schemars(range(min = 2))]
    pub batch_size: usize,
    /// Adam learning rate (each optimizer)
    #[schemars(range(min = 0.0))]
    pub lr: f64,
    /// gradient-norm clipping
    #[schemars(range(min = 0.0))]
    pub grad_clip: f64,
    /// labeled batches per run of the interleaving
    #[schemars(range(min = 1))]
    pub k: usize,
    /// scales the unlabeled run length of the interleaving
    #[schemars(range(min = 0.0))]
    pub coef_k: f64,
    /// first width of the head's image branch (paper: 128)
    #[schemars(range(min = 1))]
    pub image_channels: usize,
    /// the image set pretrain and extract used
    pub images: ImageSource,
    /// cells decoded from the prior per epoch for validity and uniqueness
    pub prior_samples: usize,
    /// train on the first N unlabeled train cells only (0: all)
    pub unlabeled_limit: usize,
}

impl Default for TrainVaeParams {
    fn default() -> Self {
        TrainVaeParams {
            variant: Variant::Io,
            epochs: 30,
            checkpoints: vec![10, 30],
            batch_size: 32,
            lr: 0.001,
            grad_clip: 5.0,
            k: 300,
            coef_k: 0.33,
            image_channels: 128,
            images: ImageSource::default(),
            prior_samples: 10000,
            unlabeled_limit: 0,
        }
    }
}

/// The model `train-vae` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// info-NAS: arch2vec's VAE with the input-output head, semi-supervised
    Io,
    /// the plain arch2vec VAE on the same batch stream (the paper's reference model)
    Arch2vec,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Io => "io",
            Variant::Arch2vec => "arch2vec",
        }
    }
}

/// Writes train-vae's reports from its `metrics.json` value: `summary.json` (the last epoch's
/// numbers) and per-epoch charts, `loss.png`, `quality.png` (reconstruction accuracy, validity,
/// uniqueness) and, for the io variant, `l1.png` (labeled L1 per set against its mean baseline).
pub fn report(out: &Path, metrics: &Value) -> Result<(), StageError> {
    let epochs = metrics["epochs"].as_array().cloned().unwrap_or_default();
    let sets: Vec<String> = epochs
        .last()
        .and_then(|e| e["l1"].as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    charts(out, &epochs, &sets)?;
    crate::files::write_json(&out.join(SUMMARY), &summary(&epochs, &sets))
}

fn charts(out: &Path, epochs: &[Value], sets: &[String]) -> Result<(), StageError> {
    let curve = |pick: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs
            .iter()
            .filter_map(|e| Some((e["epoch"].as_f64()?, pick(e)?)))
            .collect()
    };
    let series = |name: &str, key: &str| Series {
        name: name.into(),
        line: curve(&|e| e[key].as_f64()),
        ..Series::default()
    };
    let chart = |title: &str, y: &str, series: Vec<Series>| Chart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        series,
        ..Chart::default()
    };
    chart(
        "train-vae: training loss",
        "mean loss per batch",
        vec![
            series("unlabeled (VAE)", "unlabeled_loss"),
            series("labeled (VAE + L1)", "labeled_loss"),
        ],
    )
    .write_png(&out.join("loss.png"))?;
    chart(
        "train-vae: reconstruction and prior samples",
        "fraction",
        vec![
            series("ops accuracy (validation cells)", "valid_ops_accuracy"),
            series(
                "adjacency accuracy (validation cells)",
                "valid_adj_accuracy",
            ),
            series("validity", "validity"),
            series("uniqueness", "uniqueness"),
        ],
    )
    .write_png(&out.join("quality.png"))?;
    if sets.is_empty() {
        return Ok(());
    }
    let mut all = Vec::new();
    for set in sets {
        for (i, name) in [(0, set.to_string()), (1, format!("{set} mean baseline"))] {
            all.push(Series {
                name,
                line: curve(&|e| e["l1"][set][i].as_f64()),
                ..Series::default()
            });
        }
    }
    chart("train-vae: labeled L1", "L1", all).write_png(&out.join("l1.png"))
}

/// The last epoch's numbers, each set's L1 and baseline, and the summed seconds.
fn summary(epochs: &[Value], sets: &[String]) -> Value {
    let mut summary = serde_json::Map::new();
    if let Some(last) = epochs.last() {
        for key in [
            "epoch",
            "unlabeled_loss",
            "labeled_loss",
            "valid_ops_accuracy",
            "valid_adj_accuracy",
            "validity",
            "uniqueness",
        ] {
            if let Some(v) = last.get(key).filter(|v| v.is_number()) {
                summary.insert(key.into(), v.clone());
            }
        }
        for set in sets {
            summary.insert(format!("l1_{set}"), last["l1"][set][0].clone());
            summary.insert(format!("l1_{set}_baseline"), last["l1"][set][1].clone());
        }
    }
    let seconds: f64 = epochs.iter().filter_map(|e| e["seconds"].as_f64()).sum();
    summary.insert("seconds".into(), json!(seconds));
    Value::Object(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_writes_summary_of_the_last_epoch_and_charts() {
        let dir = tempfile::tempdir().unwrap();
        let m = json!({"epochs": [
            {"epoch": 1, "unlabeled_loss": 0.9, "labeled_loss": 1.5, "valid_ops_accuracy": 0.5,
             "valid_adj_accuracy": 0.6, "validity": 0.3, "uniqueness": 0.9, "seconds": 2.0,
             "l1": {"valid": [0.8, 0.9]}},
            {"epoch": 2, "unlabeled_loss": 0.7, "labeled_loss": 1.2, "valid_ops_accuracy": 0.7,
             "valid_adj_accuracy": 0.8, "validity": null, "uniqueness": 0.95, "seconds": 3.0,
             "l1": {"valid": [0.7, 0.9]}}
        ]});
        report(dir.path(), &m).unwrap();
        let s: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s["epoch"], 2);
        assert_eq!(s["valid_adj_accuracy"], 0.8);
        assert_eq!(s["l1_valid"], 0.7);
        assert_eq!(s["l1_valid_baseline"], 0.9);
        assert_eq!(s["seconds"], 5.0);
        assert!(s.get("validity").is_none(), "NaN (null) is left out");
        for f in ["loss.png", "quality.png", "l1.png"] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
    }
}
