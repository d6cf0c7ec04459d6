//! `preprocess`'s computation (tch): see `nasflow_stages::preprocess` for the transform.
//!
//! Outputs:
//! - `io.safetensors`: per set `S` in `train, valid, valid_unseen, test_unseen, test_valid`:
//!   `S_targets` (rows x (C+1), f32), `S_network` (rows, i64: index into `networks.jsonl`),
//!   `S_image` (rows, i64: position in `seen_indices` or `unseen_indices`); and `seen_indices`,
//!   `unseen_indices` (the images' indices in the training / test images), `network_mean`,
//!   `network_std` (per network), `position_mean`, `position_std` (C+1, fitted on `train`);
//! - `networks.jsonl`: the networks in order (the items' cell fields and `split`);
//! - `summary.json`: per set the rows, networks, images, and the mean-vector baselines: the L1 of
//!   predicting the set's own mean vector (`mean_baseline_l1`, info-NAS's), and of predicting the
//!   train set's (`train_mean_baseline_l1`).
use std::collections::BTreeMap;

use serde_json::{json, Value};
use tch::{Kind, Tensor};

use nasflow_contract::layout::{ITEMS_LIST, SUMMARY};
use nasflow_stages::files::{write_json, write_jsonl};
use nasflow_stages::preprocess::{unseen_valid_count, PreprocessParams, SETS};
use nasflow_stages::{StageContext, StageError};

use crate::device::torch_err;

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

/// Every network's extracted outputs, and the images they were extracted on.
struct Extracted {
    items: Vec<Value>,
    nets: Vec<NetOutputs>,
    seen_idx: Tensor,
    unseen_idx: Tensor,
}

/// The members (network indices) of each set, in [`SETS`] order, and whether it is on the
/// unseen images.
type Members = [(Vec<usize>, bool); 5];

/// (targets, network index, image position) of each set.
type Set = (Tensor, Tensor, Tensor);

pub fn run(ctx: &StageContext<PreprocessParams>) -> Result<(), StageError> {
    // 1. Read every network's outputs (all extracted on the same images).
    let e = read_extracted(ctx)?;
    // 2. Split the networks into the paper's five sets.
    let members = members(&e.items, ctx.params.unseen_valid_fraction)?;
    // 3. Transform every sample (bias, weighting, per-network scaling, sort by weights).
    let stats: Vec<(f64, f64)> = e.nets.iter().map(|n| network_stats(&n.seen)).collect();
    let mut sets: Vec<Set> = members
        .iter()
        .map(|(m, unseen)| build_set(&e.nets, &stats, m, *unseen))
        .collect();
    // 4. Per-position scaling fitted on train, applied to every set.
    let position_mean = sets[0].0.mean_dim(0, false, Kind::Float);
    let position_std = sets[0].0.std_dim(0, false, false);
    // A constant position (std 0) is centred, not divided.
    let safe_std = position_std.where_self(&position_std.gt(0.0), &position_std.ones_like());
    for s in &mut sets {
        s.0 = (&s.0 - &position_mean) / &safe_std;
    }
    // 5. Write the sets, their baselines and the networks.
    let (summary, mut tensors) = describe_sets(sets, &members, &e);
    let f = |v: Vec<f64>| Tensor::from_slice(&v);
    tensors.push(("seen_indices".into(), e.seen_idx));
    tensors.push(("unseen_indices".into(), e.unseen_idx));
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
        e.items.iter().map(network_line),
    )?;
    write_json(&ctx.out.join(SUMMARY), &Value::Object(summary))
}

/// A network's line of `networks.jsonl`: the item's cell fields (NB101 `hash`, `matrix`,
/// `ops`; NB201 `space`, `hash`, `arch`) and its `split`.
fn network_line(item: &Value) -> Value {
    let keys = ["space", "hash", "matrix", "ops", "arch", "split"];
    let kept = keys
        .iter()
        .filter_map(|&k| item.get(k).map(|v| (k.to_string(), v.clone())));
    Value::Object(kept.collect())
}

fn read_extracted(ctx: &StageContext<PreprocessParams>) -> Result<Extracted, StageError> {
    let list = ctx.item_list("extract")?;
    let (mut seen_idx, mut unseen_idx): (Option<Tensor>, Option<Tensor>) = (None, None);
    let mut nets = Vec::with_capacity(list.len());
    for k in 0..list.len() {
        let path = list.item(k).join("features.safetensors");
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
        ctx.progress((k + 1) as u64, list.len() as u64);
    }
    let (Some(seen_idx), Some(unseen_idx)) = (seen_idx, unseen_idx) else {
        return Err(StageError::Failed(format!(
            "{}: no networks",
            list.dir.join(ITEMS_LIST).display()
        )));
    };
    Ok(Extracted {
        items: list.values,
        nets,
        seen_idx,
        unseen_idx,
    })
}

/// The paper's sets: train and validation networks on the seen images; the first train networks
/// by hash (info-NAS: np.unique of the hashes) on unseen images as `valid_unseen`, the other
/// train networks as `test_unseen`; validation networks on unseen images as `test_valid`.
fn members(items: &[Value], unseen_valid_fraction: f64) -> Result<Members, StageError> {
    let split = |v: &Value| v["split"].as_str().unwrap_or("").to_string();
    let hash = |v: &Value| v["hash"].as_str().unwrap_or("").to_string();
    let of = |s: &str| -> Vec<usize> {
        (0..items.len())
            .filter(|&i| split(&items[i]) == s)
            .collect()
    };
    let (train, valid) = (of("train"), of("valid"));
    if train.is_empty() {
        return Err(StageError::Failed(
            "no train networks among extract's items (split = \"train\")".into(),
        ));
    }
    let mut by_hash = train.clone();
    by_hash.sort_by_key(|&i| hash(&items[i]));
    let n_vu = unseen_valid_count(train.len(), unseen_valid_fraction);
    let valid_unseen: Vec<usize> = by_hash[..n_vu].to_vec();
    let test_unseen: Vec<usize> = train
        .iter()
        .copied()
        .filter(|i| !valid_unseen.contains(i))
        .collect();
    Ok([
        (train, false),
        (valid.clone(), false),
        (valid_unseen, true),
        (test_unseen, true),
        (valid, true),
    ])
}

/// Steps 1-3 of every sample of the member networks.
fn build_set(nets: &[NetOutputs], stats: &[(f64, f64)], members: &[usize], unseen: bool) -> Set {
    let cpu = tch::Device::Cpu;
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
        net_ids.push(Tensor::full([rows], i as i64, (Kind::Int64, cpu)));
        img_ids.push(Tensor::arange(rows, (Kind::Int64, cpu)));
    }
    if xs.is_empty() {
        let c = nets[0].wb.size()[1];
        let e = || Tensor::zeros([0], (Kind::Int64, cpu));
        return (Tensor::zeros([0, c], (Kind::Float, cpu)), e(), e());
    }
    (
        Tensor::cat(&xs, 0),
        Tensor::cat(&net_ids, 0),
        Tensor::cat(&img_ids, 0),
    )
}

/// Mean L1 of predicting `mean` (a position vector) for every row of `targets`.
pub fn mean_baseline(targets: &Tensor, mean: &Tensor) -> f64 {
    if targets.size()[0] == 0 {
        return f64::NAN;
    }
    (targets - mean).abs().mean(Kind::Double).double_value(&[])
}

/// Each set's summary (rows, networks, images, the mean-vector baselines) and tensors. The
/// baseline is info-NAS's (`compute_dataset_stats.py`): the L1 of predicting the set's *own* mean
/// vector; predicting the train set's mean is kept beside it as `train_mean_baseline_l1`.
fn describe_sets(
    sets: Vec<Set>,
    members: &Members,
    e: &Extracted,
) -> (serde_json::Map<String, Value>, Vec<(String, Tensor)>) {
    let train_mean = sets[0].0.mean_dim(0, false, Kind::Float);
    let mut summary = serde_json::Map::new();
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, ((targets, net, img), (m, unseen))) in
        SETS.iter().zip(sets.into_iter().zip(members.iter()))
    {
        let own = mean_baseline(&targets, &targets.mean_dim(0, false, Kind::Float));
        let from_train = mean_baseline(&targets, &train_mean);
        let images = if *unseen {
            e.unseen_idx.size()[0]
        } else {
            e.seen_idx.size()[0]
        };
        summary.insert(
            name.to_string(),
            json!({"rows": targets.size()[0], "networks": m.len(), "images": images,
                   "mean_baseline_l1": own, "train_mean_baseline_l1": from_train}),
        );
        tensors.push((format!("{name}_targets"), targets));
        tensors.push((format!("{name}_network"), net));
        tensors.push((format!("{name}_image"), img));
    }
    (summary, tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_set_is_compared_with_its_own_mean() {
        // Targets 1, 3 (mean 2) and a train mean of 0: own-mean L1 1, train-mean L1 2.
        let t = Tensor::from_slice(&[1.0f32, 3.0]).view([2, 1]);
        let own = mean_baseline(&t, &t.mean_dim(0, false, Kind::Float));
        assert!((own - 1.0).abs() < 1e-9, "{own}");
        let train = mean_baseline(&t, &Tensor::from_slice(&[0.0f32]));
        assert!((train - 2.0).abs() < 1e-9, "{train}");
        assert!(
            mean_baseline(&Tensor::zeros([0, 1], (Kind::Float, tch::Device::Cpu)), &t).is_nan()
        );
    }

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
