//! A model's evaluation after an epoch (info-NAS's `eval.py`, arch2vec's
//! `eval_validation_accuracy` and `eval_validity_and_uniqueness`), in eval mode.
use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use nasflow_stages::train_vae::{finite, ModelEpoch, Reconstruction, SetL1};

use super::data::Data;
use super::trainee::Trainee;
use crate::arch2vec::{accuracy, sample_prior, Vae};
use crate::io_model::{forward_labeled, IoHead};
use crate::noise::Noise;

/// Cells per evaluation batch; the accuracies are means over batches weighted by their rows.
const CHUNK: i64 = 500;

/// The model's numbers after an epoch; `prior_samples` cells decoded from the prior of its
/// encoder means this epoch.
pub fn evaluate(t: &mut Trainee, d: &Data, prior_samples: usize, dev: tch::Device) -> ModelEpoch {
    let _guard = tch::no_grad_guard();
    let [unlabeled_loss, labeled_loss] = [0, 1].map(|k| (t.losses[k].0.value(), t.losses[k].1));
    let (z_mean, z_std) = t.z.mean_std();
    let (validity, uniqueness) = if prior_samples > 0 {
        let (v, u) = sample_prior(
            d.space,
            &t.vae,
            &z_mean,
            &z_std,
            prior_samples as i64,
            &mut t.prior,
        );
        (Some(v), Some(u))
    } else {
        (None, None)
    };
    let mean = |(s, n): (f64, usize)| (n > 0).then(|| s / n as f64);
    ModelEpoch {
        unlabeled_loss: mean(unlabeled_loss),
        labeled_loss: mean(labeled_loss),
        valid: reconstruction(&t.vae, &d.va, dev),
        labeled_valid: reconstruction(&t.vae, &d.valid_nets, dev),
        validity,
        uniqueness,
        l1: t
            .head()
            .map(|h| labeled_l1(&t.vae, h, d, dev))
            .unwrap_or_default(),
    }
}

/// Reconstruction accuracy of `cells` (ops, adjacency), or `None` for no cells.
pub fn reconstruction(
    vae: &Vae,
    cells: &(Tensor, Tensor),
    dev: tch::Device,
) -> Option<Reconstruction> {
    let n = cells.0.size()[0];
    if n == 0 {
        return None;
    }
    let mut sum = Reconstruction::default();
    let mut eval_noise = Noise::new(0, 0); // draws nothing in eval mode
    for s in (0..n).step_by(CHUNK as usize) {
        let len = CHUNK.min(n - s);
        let o = cells.0.narrow(0, s, len).to_device(dev);
        let a = cells.1.narrow(0, s, len).to_device(dev);
        let acc = accuracy(&vae.forward_t(&o, &a, false, &mut eval_noise), &o, &a);
        let w = len as f64;
        sum.ops += acc.ops * w;
        sum.adj += acc.adj * w;
        sum.mean_corr_adj += acc.mean_corr_adj * w;
        sum.mean_fal_pos_adj += acc.mean_fal_pos_adj * w;
    }
    let n = n as f64;
    Some(Reconstruction {
        ops: sum.ops / n,
        adj: sum.adj / n,
        mean_corr_adj: sum.mean_corr_adj / n,
        mean_fal_pos_adj: sum.mean_fal_pos_adj / n,
    })
}

/// Per labeled set other than train: the L1 of the predicted outputs and the set's mean
/// baselines (preprocess's summary).
fn labeled_l1(vae: &Vae, head: &IoHead, d: &Data, dev: tch::Device) -> BTreeMap<String, SetL1> {
    let mut l1 = BTreeMap::new();
    let mut eval_noise = Noise::new(0, 0);
    for (name, set) in &d.sets {
        let rows = set.targets.size()[0];
        if *name == "train" || rows == 0 {
            continue;
        }
        let px = if name.contains("unseen") || *name == "test_valid" {
            &d.unseen_px
        } else {
            &d.seen_px
        };
        let mut err = 0.0;
        for s in (0..rows).step_by(1024) {
            let len = 1024.min(rows - s);
            let nets_i = set.network.narrow(0, s, len);
            let o = d.net.0.index_select(0, &nets_i).to_device(dev);
            let a = d.net.1.index_select(0, &nets_i).to_device(dev);
            let x = px
                .index_select(0, &set.image.narrow(0, s, len))
                .to_device(dev);
            let (_, pred) = forward_labeled((vae, head), &o, &a, &x, false, &mut eval_noise);
            let target = set.targets.narrow(0, s, len).to_device(dev);
            err += (pred - target).abs().sum(Kind::Double).double_value(&[]);
        }
        let baseline = |key: &str| d.summary[*name][key].as_f64().and_then(finite);
        let set_l1 = SetL1 {
            l1: err / (rows * set.targets.size()[1]) as f64,
            own_mean: baseline("mean_baseline_l1"),
            train_mean: baseline("train_mean_baseline_l1"),
        };
        l1.insert(name.to_string(), set_l1);
    }
    l1
}
