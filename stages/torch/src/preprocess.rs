//! `preprocess`'s computation (tch): see `nasflow_stages::preprocess` for the transform.
//!
//! Outputs:
//! - `io.safetensors`: per set `S` in `train, valid, valid_unseen, test_unseen, test_valid`:
//!   `S_targets` (rows x (C+1), f32), `S_network` (rows, i64: index into `networks.jsonl`),
//!   `S_image` (rows, i64: position in `seen_indices` or `unseen_indices`); and `seen_indices`,
//!   `unseen_indices` (the images' indices in the training / test images), `network_mean`,
//!   `network_std` (per network), `position_mean`, `position_std` (C+1, fitted on `train`);
//! - `networks.jsonl`: the networks in order (`hash`, `matrix`, `ops`, `split`);
//! - `summary.json`: per set the rows, networks, images and the mean-vector baseline L1.
use std::collections::BTreeMap;

use serde_json::{json, Value};
use tch::{Kind, Tensor};

use nasflow_stages::preprocess::{unseen_valid_count, SETS};
use nasflow_stages::pretrain::{write_json, write_jsonl};
use nasflow_stages::{StageContext, StageError};

use crate::train::torch_err;

/// One network's extracted outputs.
pub struct NetOutputs {
    pub seen: Tensor,
    pub seen_labels: Tensor,
    pub unseen: Tensor,
    pub unseen_labels: Tensor,
    /// Classifier rows with the bias appended: classes x (C+1).
    pub wb: Tensor,
}

/// Per-network statistics: mean and (population) standard deviation of the unweighted seen
/// features with the 1.0 column appended.
pub fn network_stats(seen: &Tensor) -> (f64, f64) {
    let x = with_bias(seen);
    (
        x.mean(Kind::Double).double_value(&[]),
        x.std(false).double_value(&[]),
    )
}

fn with_bias(x: &Tensor) -> Tensor {
    let ones = Tensor::ones([x.size()[0], 1], (Kind::Float, x.device()));
    Tensor::cat(&[x, &ones], 1)
}

/// Steps 1-3 for a block of features with their true classes.
pub fn transform(features: &Tensor, labels: &Tensor, wb: &Tensor, mean: f64, std: f64) -> Tensor {
    let rows = wb.index_select(0, labels);
    let x = (with_bias(features) * &rows - mean) / (std + f32::EPSILON as f64);
    let (_, order) = rows.sort(1, true);
    x.gather(1, &order, false)
}

fn read(path: &std::path::Path) -> Result<BTreeMap<String, Tensor>, StageError> {
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))?
        .into_iter()
        .collect())
}

fn take(
    m: &mut BTreeMap<String, Tensor>,
    name: &str,
    path: &std::path::Path,
) -> Result<Tensor, StageError> {
    m.remove(name).ok_or_else(|| {
        StageError::Failed(format!(
            "{}: no tensor `{name}` (is it extract's output?)",
            path.display()
        ))
    })
}

pub fn run(ctx: &StageContext) -> Result<(), StageError> {
    let dir = ctx.input("extract")?;
    let list = dir.join("items.jsonl");
    let text = std::fs::read_to_string(&list).map_err(|e| StageError::io(&list, e))?;
    let items: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| StageError::Failed(format!("{} line {}: {e}", list.display(), i + 1)))
        })
        .collect::<Result<_, _>>()?;
    let (mut seen_idx, mut unseen_idx): (Option<Tensor>, Option<Tensor>) = (None, None);
    let mut nets = Vec::with_capacity(items.len());
    for k in 0..items.len() {
        let path = dir.join(format!("items/{k:05}/features.safetensors"));
        let mut m = read(&path)?;
        for (name, slot) in [
            ("seen_indices", &mut seen_idx),
            ("unseen_indices", &mut unseen_idx),
        ] {
            let t = take(&mut m, name, &path)?;
            match slot {
                Some(first) if !first.equal(&t) => {
                    return Err(StageError::Failed(format!(
                        "{}: `{name}` differs from the first network's: all networks must be extracted on the same images",
                        path.display()
                    )))
                }
                Some(_) => {}
                None => *slot = Some(t),
            }
        }
        let w = take(&mut m, "classifier_weight", &path)?;
        let b = take(&mut m, "classifier_bias", &path)?;
        nets.push(NetOutputs {
            seen: take(&mut m, "seen_features", &path)?,
            seen_labels: take(&mut m, "seen_labels", &path)?,
            unseen: take(&mut m, "unseen_features", &path)?,
            unseen_labels: take(&mut m, "unseen_labels", &path)?,
            wb: Tensor::cat(&[w, b.unsqueeze(1)], 1),
        });
        (ctx.progress)((k + 1) as u64, items.len() as u64);
    }
    let (Some(seen_idx), Some(unseen_idx)) = (seen_idx, unseen_idx) else {
        return Err(StageError::Failed(format!(
            "{}: no networks",
            list.display()
        )));
    };
    let split = |v: &Value| v["split"].as_str().unwrap_or("").to_string();
    let hash = |v: &Value| v["hash"].as_str().unwrap_or("").to_string();
    let train: Vec<usize> = (0..items.len())
        .filter(|&i| split(&items[i]) == "train")
        .collect();
    let valid: Vec<usize> = (0..items.len())
        .filter(|&i| split(&items[i]) == "valid")
        .collect();
    if train.is_empty() {
        return Err(StageError::Failed(
            "no train networks among extract's items (split = \"train\")".into(),
        ));
    }
    // The first networks by hash (info-NAS: np.unique of the hashes) validate on unseen images.
    let mut by_hash = train.clone();
    by_hash.sort_by_key(|&i| hash(&items[i]));
    let n_vu = unseen_valid_count(train.len(), ctx.float("unseen_valid_fraction")?);
    let valid_unseen: Vec<usize> = by_hash[..n_vu].to_vec();
    let test_unseen: Vec<usize> = train
        .iter()
        .copied()
        .filter(|i| !valid_unseen.contains(i))
        .collect();

    let stats: Vec<(f64, f64)> = nets.iter().map(|n| network_stats(&n.seen)).collect();
    // (targets, network index, image position) of a set.
    let build = |members: &[usize], unseen: bool| -> (Tensor, Tensor, Tensor) {
        let mut xs = Vec::new();
        let mut net_ids = Vec::new();
        let mut img_ids = Vec::new();
        for &i in members {
            let n = &nets[i];
            let (f, y) = if unseen {
                (&n.unseen, &n.unseen_labels)
            } else {
                (&n.seen, &n.seen_labels)
            };
            xs.push(transform(f, y, &n.wb, stats[i].0, stats[i].1));
            let rows = f.size()[0];
            net_ids.push(Tensor::full(
                [rows],
                i as i64,
                (Kind::Int64, tch::Device::Cpu),
            ));
            img_ids.push(Tensor::arange(rows, (Kind::Int64, tch::Device::Cpu)));
        }
        if xs.is_empty() {
            let c = nets[0].wb.size()[1];
            let e = || Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu));
            return (
                Tensor::zeros([0, c], (Kind::Float, tch::Device::Cpu)),
                e(),
                e(),
            );
        }
        (
            Tensor::cat(&xs, 0),
            Tensor::cat(&net_ids, 0),
            Tensor::cat(&img_ids, 0),
        )
    };
    let members: [(&[usize], bool); 5] = [
        (&train, false),
        (&valid, false),
        (&valid_unseen, true),
        (&test_unseen, true),
        (&valid, true),
    ];
    let mut sets: Vec<(Tensor, Tensor, Tensor)> =
        members.iter().map(|(m, u)| build(m, *u)).collect();
    let position_mean = sets[0].0.mean_dim(0, false, Kind::Float);
    let position_std = sets[0].0.std_dim(0, false, false);
    // A constant position (std 0) is centred, not divided.
    let safe_std = position_std.where_self(&position_std.gt(0.0), &position_std.ones_like());
    for s in &mut sets {
        s.0 = (&s.0 - &position_mean) / &safe_std;
    }
    let train_mean = sets[0].0.mean_dim(0, false, Kind::Float);
    let mut summary = serde_json::Map::new();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, ((targets, net, img), (m, unseen))) in
        SETS.iter().zip(sets.into_iter().zip(members.iter()))
    {
        let baseline = if targets.size()[0] > 0 {
            (&targets - &train_mean)
                .abs()
                .mean(Kind::Double)
                .double_value(&[])
        } else {
            f64::NAN
        };
        let images = if *unseen {
            unseen_idx.size()[0]
        } else {
            seen_idx.size()[0]
        };
        summary.insert(
            name.to_string(),
            json!({"rows": targets.size()[0], "networks": m.len(), "images": images, "mean_baseline_l1": baseline}),
        );
        tensors.push((format!("{name}_targets"), targets));
        tensors.push((format!("{name}_network"), net));
        tensors.push((format!("{name}_image"), img));
    }
    let f = |v: Vec<f64>| Tensor::from_slice(&v);
    tensors.push(("seen_indices".into(), seen_idx));
    tensors.push(("unseen_indices".into(), unseen_idx));
    tensors.push((
        "network_mean".into(),
        f(stats.iter().map(|s| s.0).collect()),
    ));
    tensors.push(("network_std".into(), f(stats.iter().map(|s| s.1).collect())));
    tensors.push(("position_mean".into(), position_mean));
    tensors.push(("position_std".into(), position_std));
    Tensor::write_safetensors(&tensors, ctx.out.join("io.safetensors")).map_err(torch_err)?;

    write_jsonl(
        &ctx.out.join("networks.jsonl"),
        items.iter().map(|it| {
            json!({"hash": it["hash"], "matrix": it["matrix"], "ops": it["ops"], "split": it["split"]})
        }),
    )?;
    write_json(&ctx.out.join("summary.json"), &Value::Object(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed sample: C = 2 features [1, 3], class 1 with weights [0.5, -2] and bias 4.
    /// 1. with bias: [1, 3, 1]; network stats over the unweighted rows.
    /// 2. weighted: [0.5, -6, 4]; scaled: (v - mean) / (std + eps).
    /// 3. sorted by the class's weights descending: bias 4 (pos 2), 0.5 (pos 0), -2 (pos 1).
    #[test]
    fn transform_matches_a_hand_computed_example() {
        let f = Tensor::from_slice(&[1.0f32, 3.0]).view([1, 2]);
        let (mean, std) = network_stats(&f);
        // unweighted [1, 3, 1]: mean 5/3, population std sqrt(((2/3)^2 + (4/3)^2 + (2/3)^2) / 3)
        assert!((mean - 5.0 / 3.0).abs() < 1e-6);
        let want_std = ((4.0 / 9.0 + 16.0 / 9.0 + 4.0 / 9.0) / 3.0f64).sqrt();
        assert!((std - want_std).abs() < 1e-6);
        let wb = Tensor::from_slice(&[9.0f32, 9.0, 9.0, 0.5, -2.0, 4.0]).view([2, 3]);
        let y = Tensor::from_slice(&[1i64]);
        let out = transform(&f, &y, &wb, mean, std);
        let d = std + f32::EPSILON as f64;
        let want = [(4.0 - mean) / d, (0.5 - mean) / d, (-6.0 - mean) / d];
        let got: Vec<f32> = Vec::<f32>::try_from(out.view([-1])).unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
