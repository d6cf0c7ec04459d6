//! The `train-vae` stage: arch2vec's graph VAE, trained three ways (`variant`):
//!
//! - `"io"`: info-NAS's semi-supervised training of the VAE with the input-output head, and with
//!   it (`reference = true`) info-NAS's reference model: the plain VAE from the same initial
//!   weights on the same batches, labeled batches giving it their VAE loss only;
//! - `"arch2vec"`: that reference model alone (a run equals io's reference, latent for latent);
//! - `"arch2vec-original"`: arch2vec's own pretraining on the unlabeled cells, with its quirks
//!   (`original_quirks`: eval mode after the first epoch, one shuffle).
//!
//! Each model draws its noise (reparameterization, dropout, prior samples) from a stream of its
//! own, seeded by `seed` (default the pipeline's): info-NAS shares one generator, so there the
//! head's dropout shifts the reference's noise; here the reference is a function of its own
//! stream. The computation is in `nasflow_torch::train_vae`; this module declares the kind.
//!
//! Inputs: `sample` (the unlabeled cells) and `preprocess` (the labeled datasets). Outputs:
//! `checkpoint-epoch-E.safetensors` at the checkpoints and the last epoch (every model's variables,
//! `MODEL.vae.*`, `io.head.*`); `metrics.json` ([`Metrics`]: per epoch and model the losses,
//! reconstruction accuracy on the unlabeled validation cells and on the labeled validation
//! networks, validity and uniqueness of prior samples, labeled L1 per set next to its mean
//! baselines); the latent features of every cell at every checkpoint (`latent.safetensors`,
//! tensors `MODEL/epoch-E`, cells x 16, the mean over the 7 nodes of the encoder mean, rows in
//! the order of `latent-cells.nb101`; `latent.json`, a [`LatentIndex`]); `summary.json` and
//! per-epoch charts ([`report`]). Timings go to the provenance directory (`timing.json`).
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use nasflow_contract::layout::SUMMARY;
use nasflow_contract::{Kind, KindInfo, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::images::ImageSource;
use crate::report::{write_chart, Chart, Series};

/// The `train-vae` kind.
pub struct TrainVae;

impl Kind for TrainVae {
    type Params = TrainVaeParams;
    const INFO: KindInfo = KindInfo {
        name: "train-vae",
        version: 4,
        doc: "Train arch2vec's graph VAE, extended with info-NAS's input-output head (variant = \"io\", with the reference VAE alongside), plain on the same batches (\"arch2vec\") or as arch2vec's own pretraining (\"arch2vec-original\")",
        reads_seed: true,
        uses_device: true,
        item_level: false,
        key_metrics: &[
            "io.valid_adj_accuracy",
            "io.l1_valid",
            "io.l1_valid_own_mean",
            "reference.valid_adj_accuracy",
            "arch2vec.valid_adj_accuracy",
            "original.valid_adj_accuracy",
        ],
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
    /// io variant: also train info-NAS's reference model (the plain VAE from the same initial weights on the same batches, VAE loss only); its features are `features = ["reference"]` (or `["io", "reference"]`) downstream
    pub reference: bool,
    /// the training seed (initial weights, batch order, noise); unset: the pipeline's seed. A sweep over it retrains only this stage
    pub seed: Option<u64>,
    /// arch2vec-original only: arch2vec's loop as published: epochs after the first run in eval mode (no noise, no dropout, frozen batch-norm statistics; `model.eval()` is never undone) and the cells are shuffled once, not per epoch
    pub original_quirks: bool,
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
            reference: true,
            seed: None,
            original_quirks: true,
        }
    }
}

/// The model `train-vae` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// info-NAS: arch2vec's VAE with the input-output head, semi-supervised (and, with `reference`, the reference VAE alongside)
    Io,
    /// the plain arch2vec VAE on the io variant's batch stream, alone (equal to io's reference)
    Arch2vec,
    /// arch2vec's own pretraining: the unlabeled cells only, its loop and its quirks (paper: 8 epochs)
    Arch2vecOriginal,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Io => "io",
            Variant::Arch2vec => "arch2vec",
            Variant::Arch2vecOriginal => "arch2vec-original",
        }
    }

    /// The models a run of this variant trains, the main one first.
    pub fn models(self, reference: bool) -> Vec<Model> {
        match self {
            Variant::Io if reference => vec![Model::Io, Model::Reference],
            Variant::Io => vec![Model::Io],
            Variant::Arch2vec => vec![Model::Arch2vec],
            Variant::Arch2vecOriginal => vec![Model::Original],
        }
    }
}

/// A model whose latent features train-vae writes; downstream stages pick one by name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// the io model's VAE (variant "io")
    Io,
    /// the reference VAE trained alongside it (variant "io", `reference = true`)
    Reference,
    /// the plain VAE alone (variant "arch2vec")
    Arch2vec,
    /// arch2vec's original training (variant "arch2vec-original")
    Original,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Io => "io",
            Model::Reference => "reference",
            Model::Arch2vec => "arch2vec",
            Model::Original => "original",
        }
    }
}

/// `latent.json`: what `latent.safetensors` holds. Its tensors are named
/// [`latent_tensor`]`(model, epoch)`, each cells x `dim` (f32), rows in `latent-cells.nb101` order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentIndex {
    /// The models, the main one (the variant's own) first.
    pub models: Vec<Model>,
    /// The epochs with features, ascending; the last is the last epoch.
    pub checkpoints: Vec<usize>,
    pub dim: usize,
    pub cells: usize,
}

/// The name of a model's features at a checkpoint in `latent.safetensors`.
pub fn latent_tensor(model: Model, epoch: usize) -> String {
    format!("{}/epoch-{epoch}", model.name())
}

/// Reconstruction accuracy on a set of cells (arch2vec's `get_accuracy`, weighted by batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    pub ops: f64,
    pub adj: f64,
    pub mean_corr_adj: f64,
    pub mean_fal_pos_adj: f64,
}

/// A labeled set's L1 and its mean-vector baselines: the set's own mean (info-NAS's) and the
/// train set's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetL1 {
    pub l1: f64,
    pub own_mean: Option<f64>,
    pub train_mean: Option<f64>,
}

/// One model's numbers after an epoch. `None` where there was nothing to measure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelEpoch {
    /// Mean loss per unlabeled and per labeled batch.
    pub unlabeled_loss: Option<f64>,
    pub labeled_loss: Option<f64>,
    /// On the unlabeled validation cells.
    pub valid: Option<Reconstruction>,
    /// On the labeled validation networks (info-NAS's `eval.py`).
    pub labeled_valid: Option<Reconstruction>,
    /// Of cells decoded from the prior fitted to the epoch's encoder means.
    pub validity: Option<f64>,
    pub uniqueness: Option<f64>,
    /// Per labeled set other than train (io model only).
    pub l1: BTreeMap<String, SetL1>,
}

/// One epoch of every model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub labeled_batches: usize,
    pub unlabeled_batches: usize,
    pub models: BTreeMap<Model, ModelEpoch>,
}

/// `metrics.json`: a function of the inputs, params and seed (timings are in the provenance
/// directory's `timing.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub variant: Variant,
    pub seed: u64,
    /// The interleaving: `k` labeled batches, then `coef` unlabeled ones.
    pub k: usize,
    pub coef: usize,
    pub models: Vec<Model>,
    pub checkpoints: Vec<usize>,
    pub epochs: Vec<Epoch>,
}

/// A number, or `None` for NaN and infinities (JSON has no NaN).
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Writes train-vae's reports from its metrics: `summary.json` (per model the last epoch's
/// numbers, and under `checkpoint.E` each checkpoint's) and per-epoch charts (PNG, SVG and chart
/// data): `loss`, `reconstruction`, `validity` (with uniqueness) and, with the io model, `l1`
/// (labeled L1 per set against its own-mean baseline).
pub fn report(out: &Path, m: &Metrics) -> Result<(), StageError> {
    charts(out, m)?;
    crate::files::write_json(&out.join(SUMMARY), &summary(m))
}

/// A model's numbers after an epoch, flat.
fn flat(e: &ModelEpoch) -> Map<String, Value> {
    let mut o = Map::new();
    let mut put = |k: String, v: Option<f64>| {
        if let Some(v) = v {
            o.insert(k, json!(v));
        }
    };
    put("unlabeled_loss".into(), e.unlabeled_loss);
    put("labeled_loss".into(), e.labeled_loss);
    for (name, r) in [("valid", &e.valid), ("labeled_valid", &e.labeled_valid)] {
        if let Some(r) = r {
            put(format!("{name}_ops_accuracy"), Some(r.ops));
            put(format!("{name}_adj_accuracy"), Some(r.adj));
            put(format!("{name}_mean_corr_adj"), Some(r.mean_corr_adj));
            put(format!("{name}_mean_fal_pos_adj"), Some(r.mean_fal_pos_adj));
        }
    }
    put("validity".into(), e.validity);
    put("uniqueness".into(), e.uniqueness);
    for (set, l) in &e.l1 {
        put(format!("l1_{set}"), Some(l.l1));
        put(format!("l1_{set}_own_mean"), l.own_mean);
        put(format!("l1_{set}_train_mean"), l.train_mean);
    }
    o
}

fn summary(m: &Metrics) -> Value {
    let mut s = Map::new();
    let models = |e: &Epoch| -> Map<String, Value> {
        e.models
            .iter()
            .map(|(k, v)| (k.name().to_string(), Value::Object(flat(v))))
            .collect()
    };
    if let Some(last) = m.epochs.last() {
        s.insert("epoch".into(), json!(last.epoch));
        s.extend(models(last));
    }
    let checkpoints: Map<String, Value> = m
        .epochs
        .iter()
        .filter(|e| m.checkpoints.contains(&e.epoch))
        .map(|e| (e.epoch.to_string(), Value::Object(models(e))))
        .collect();
    s.insert("checkpoint".into(), Value::Object(checkpoints));
    s.insert("units".into(), units(&s));
    Value::Object(s)
}

/// The unit of each number of a summary, by its name (`nasflow metrics` shows them).
fn units(summary: &Map<String, Value>) -> Value {
    let mut names = std::collections::BTreeSet::new();
    for v in summary.values().filter_map(Value::as_object) {
        names.extend(v.keys().cloned());
    }
    let unit = |n: &str| {
        if n.ends_with("_loss") {
            "loss (mean per batch)"
        } else if n.starts_with("l1_") {
            "L1 (mean per output)"
        } else if n.ends_with("_accuracy") {
            "fraction of vertices or edges"
        } else if n == "validity" || n == "uniqueness" {
            "fraction of prior samples"
        } else {
            "fraction of edges"
        }
    };
    let mut u: Map<String, Value> = names.iter().map(|n| (n.clone(), json!(unit(n)))).collect();
    u.insert("epoch".into(), json!("epochs"));
    Value::Object(u)
}

/// The paper's figures of one run: `loss`, `reconstruction` (Figs 5-6), `validity` (Figs 14-15)
/// and, with the io model, `l1` (Figs 3-4: each set's L1 with its own-mean baseline dashed in the
/// set's colour).
fn charts(out: &Path, m: &Metrics) -> Result<(), StageError> {
    let curve = |model: Model, pick: &dyn Fn(&ModelEpoch) -> Option<f64>| -> Vec<(f64, f64)> {
        m.epochs
            .iter()
            .filter_map(|e| Some((e.epoch as f64, pick(e.models.get(&model)?)?)))
            .collect()
    };
    let chart = |title: &str, y: &str, series: Vec<Series>| Chart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        series,
        ..Chart::default()
    };
    type Pick = fn(&ModelEpoch) -> Option<f64>;
    // One colour per model; a model's second quantity dashed.
    let lines = |picks: &[(&str, Pick)]| -> Vec<Series> {
        let mut all = Vec::new();
        for &model in &m.models {
            for (k, (label, pick)) in picks.iter().enumerate() {
                let line = curve(model, pick);
                if !line.is_empty() {
                    all.push(Series {
                        name: format!("{}: {label}", model.name()),
                        group: Some(model.name().to_string()),
                        dashed: k > 0,
                        line,
                        ..Series::default()
                    });
                }
            }
        }
        all
    };
    let loss: [(&str, Pick); 2] = [
        ("unlabeled (VAE)", |e| e.unlabeled_loss),
        ("labeled", |e| e.labeled_loss),
    ];
    let loss = chart(
        "train-vae: training loss",
        "mean loss per batch",
        lines(&loss),
    );
    write_chart(out, "loss", &loss)?;
    let recon: [(&str, Pick); 2] = [
        ("unlabeled validation", |e| e.valid.map(|r| r.adj)),
        ("labeled validation", |e| e.labeled_valid.map(|r| r.adj)),
    ];
    let title = "train-vae: reconstruction (adjacency accuracy)";
    write_chart(
        out,
        "reconstruction",
        &chart(title, "accuracy", lines(&recon)),
    )?;
    let prior: [(&str, Pick); 2] = [
        ("validity", |e| e.validity),
        ("uniqueness", |e| e.uniqueness),
    ];
    let title = "train-vae: cells decoded from prior samples";
    write_chart(out, "validity", &chart(title, "fraction", lines(&prior)))?;
    if m.models.contains(&Model::Io) {
        write_chart(
            out,
            "l1",
            &l1_chart(m, chart("train-vae: labeled L1 (io model)", "L1", vec![])),
        )?;
    }
    Ok(())
}

/// Each labeled set's L1 and, dashed in its colour, its own-mean baseline.
fn l1_chart(m: &Metrics, mut chart: Chart) -> Chart {
    fn io(e: &Epoch) -> Option<&ModelEpoch> {
        e.models.get(&Model::Io)
    }
    let sets: Vec<String> = (m.epochs.last().and_then(io))
        .map(|e| e.l1.keys().cloned().collect())
        .unwrap_or_default();
    for set in &sets {
        type Pick = fn(&SetL1) -> Option<f64>;
        for (name, pick, dashed) in [
            (set.to_string(), (|l: &SetL1| Some(l.l1)) as Pick, false),
            (format!("{set}: own-mean baseline"), |l| l.own_mean, true),
        ] {
            let line = (m.epochs.iter())
                .filter_map(|e| Some((e.epoch as f64, pick(io(e)?.l1.get(set)?)?)))
                .collect();
            chart.series.push(Series {
                name,
                group: Some(set.clone()),
                dashed,
                line,
                ..Series::default()
            });
        }
    }
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: usize, adj: f64, validity: Option<f64>) -> Epoch {
        let io = ModelEpoch {
            unlabeled_loss: Some(1.0 / n as f64),
            labeled_loss: Some(2.0 / n as f64),
            valid: Some(Reconstruction {
                adj,
                ..Default::default()
            }),
            validity,
            l1: BTreeMap::from([(
                "valid".to_string(),
                SetL1 {
                    l1: 0.9 - 0.1 * n as f64,
                    own_mean: Some(0.9),
                    train_mean: None,
                },
            )]),
            ..Default::default()
        };
        let reference = ModelEpoch {
            unlabeled_loss: Some(0.5),
            ..Default::default()
        };
        Epoch {
            epoch: n,
            models: BTreeMap::from([(Model::Io, io), (Model::Reference, reference)]),
            ..Default::default()
        }
    }

    #[test]
    fn report_writes_per_model_and_per_checkpoint_summaries_and_charts() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics {
            variant: Variant::Io,
            seed: 1,
            k: 3,
            coef: 2,
            models: vec![Model::Io, Model::Reference],
            checkpoints: vec![1, 2],
            epochs: vec![epoch(1, 0.6, Some(0.3)), epoch(2, 0.8, None)],
        };
        report(dir.path(), &m).unwrap();
        let s: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s["epoch"], 2);
        assert_eq!(s["io"]["valid_adj_accuracy"], 0.8);
        assert_eq!(s["io"]["l1_valid"], 0.7);
        assert_eq!(s["io"]["l1_valid_own_mean"], 0.9);
        assert!(s["io"].get("l1_valid_train_mean").is_none());
        assert!(
            s["io"].get("validity").is_none(),
            "unmeasured numbers are left out"
        );
        assert_eq!(s["checkpoint"]["1"]["io"]["validity"], 0.3);
        assert_eq!(s["checkpoint"]["1"]["reference"]["unlabeled_loss"], 0.5);
        for f in [
            "loss.png",
            "reconstruction.svg",
            "validity.png",
            "l1.png",
            "charts/l1.json",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let l1 = Chart::read(&dir.path().join("charts/l1.json")).unwrap();
        let base = l1
            .series
            .iter()
            .find(|s| s.name == "valid: own-mean baseline")
            .unwrap();
        assert!(
            base.dashed && base.group() == "valid",
            "a baseline dashed in its set's colour"
        );
        assert!(l1
            .series
            .iter()
            .any(|s| s.name == "valid" && !s.dashed && s.group() == "valid"));
        // metrics.json round-trips through its type.
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Metrics>(&text).unwrap(), m);
    }

    #[test]
    fn variants_train_their_models() {
        assert_eq!(Variant::Io.models(true), vec![Model::Io, Model::Reference]);
        assert_eq!(Variant::Io.models(false), vec![Model::Io]);
        assert_eq!(
            Variant::Arch2vecOriginal.models(true),
            vec![Model::Original]
        );
        assert_eq!(latent_tensor(Model::Reference, 10), "reference/epoch-10");
        let v: Variant = serde_json::from_value(json!("arch2vec-original")).unwrap();
        assert_eq!(v, Variant::Arch2vecOriginal);
    }
}
