//! arch2vec's BO (`search_methods/dngo.py`): Bayesian optimisation in the latent space with
//! DNGO ([`super::dngo`]) and expected improvement.
//!
//! - The first `init` (16) queries: the first cells of a seeded random permutation of the table,
//!   queried whatever the budget (as arch2vec's init loop).
//! - Then until the budget is spent: train DNGO on the queried cells' features and validation
//!   accuracies, score every cell of the table (EI against 0.95, [`expected_improvement`]), take
//!   the `top_k` (5) cells of highest EI and query them in increasing EI order (arch2vec's
//!   `argsort(ei)[-k:]`), stopping when the budget is crossed.
//! - One random generator per seed drives the permutation, the networks' initialisation, their
//!   batch shuffles and the hyperparameters' start (arch2vec reseeds DNGO with the seed at every
//!   iteration).
//!
//! Two ways to treat the top cells (the `bo_quirks` param):
//! - `none` (nasflow's method): cells queried before are dropped from the top `k` without
//!   replacement (when all `k` were queried, the top `k` of the cells not yet queried are taken),
//!   and EI is computed in f64.
//! - `arch2vec` (what arch2vec's code does): its `visited` dict is keyed by 0-d tensors, which
//!   hash by identity, so `idx not in visited` always holds: every top-EI cell is queried and
//!   paid for again, and enters DNGO's training set again. EI is computed in float32
//!   ([`expected_improvement_f32`]), where it underflows to 0 far from the target.
//!
//! Not reproduced: the order of cells of equal EI (torch's unstable `argsort`; here the lower
//! index ranks higher) and pybnn's normalisation of a constant feature (it divides by a zero
//! standard deviation; here the feature is left unscaled: latent features are not constant).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::dngo::{expected_improvement, expected_improvement_f32, Dngo, Settings};
use super::table::Searchable;
use super::{Trace, Tracker, BO_STREAM};
use crate::images;

/// Which of arch2vec's quirks BO reproduces (the `bo_quirks` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoQuirks {
    /// nasflow's: queried cells skipped, EI in f64
    #[default]
    None,
    /// arch2vec's dngo.py as run: top-EI cells re-queried (its dedup never fires), EI in float32
    Arch2vec,
}

impl BoQuirks {
    pub fn name(self) -> &'static str {
        match self {
            BoQuirks::None => "none",
            BoQuirks::Arch2vec => "arch2vec",
        }
    }
}

/// BO's settings (arch2vec's by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bo {
    pub init: usize,
    pub top_k: usize,
    pub target: f64,
    pub dngo: Settings,
    pub quirks: BoQuirks,
}

impl Default for Bo {
    fn default() -> Self {
        Bo {
            init: 16,
            top_k: 5,
            target: 0.95,
            dngo: Settings::default(),
            quirks: BoQuirks::None,
        }
    }
}

/// One BO run until the budget is spent (or, without quirks, every cell is queried).
pub fn bo(table: &Searchable, b: Bo, budget: f64, seed: u64) -> Trace {
    let mut rng = images::rng(seed, BO_STREAM);
    let mut tracker = Tracker::new(table, budget, "bo", seed);
    let n = table.len();
    let mut order: Vec<usize> = (0..n).collect();
    images::shuffle(&mut order, &mut rng);
    let mut queried = vec![false; n];
    let mut fresh = n;
    let mut picked: Vec<usize> = order.into_iter().take(b.init.max(1)).collect();
    for &i in &picked {
        queried[i] = true;
        fresh -= 1;
        tracker.query(i);
    }
    let d = table.dim;
    let quirks = b.quirks == BoQuirks::Arch2vec;
    while !tracker.exhausted() && (quirks || fresh > 0) {
        let x: Vec<f32> = picked
            .iter()
            .flat_map(|&i| table.feature(i).to_vec())
            .collect();
        let y: Vec<f64> = picked.iter().map(|&i| table.valid[i]).collect();
        let model = Dngo::train(&x, d, &y, b.dngo, &mut rng);
        let ei = score(&model, table, b.target, b.quirks);
        let next = if quirks {
            top(&ei, b.top_k.max(1), &|_| true)
        } else {
            propose(&ei, &queried, b.top_k.max(1))
        };
        for i in next {
            if !queried[i] {
                queried[i] = true;
                fresh -= 1;
            }
            picked.push(i);
            tracker.query(i);
            if tracker.exhausted() {
                break;
            }
        }
    }
    tracker.trace
}

/// EI of every cell (in f64, or rounded through float32 under arch2vec's quirks), scored in
/// windows of 2,048 rows.
fn score(model: &Dngo, table: &Searchable, target: f64, quirks: BoQuirks) -> Vec<f64> {
    let rows = 2048 * table.dim.max(1);
    let mut ei = Vec::with_capacity(table.len());
    for chunk in table.features.chunks(rows) {
        let (m, v) = model.predict(chunk);
        ei.extend(m.iter().zip(&v).map(|(&m, &v)| match quirks {
            BoQuirks::None => expected_improvement(m, v, target),
            BoQuirks::Arch2vec => expected_improvement_f32(m, v, target) as f64,
        }));
    }
    ei
}

/// The `k` cells of highest EI that pass `filter`, in increasing EI order (`argsort[-k:]`);
/// equal EI: the lower index ranks higher. Only the top `k` are sorted.
fn top(ei: &[f64], k: usize, filter: &dyn Fn(usize) -> bool) -> Vec<usize> {
    let mut ix: Vec<usize> = (0..ei.len()).filter(|&i| filter(i)).collect();
    let order = |a: &usize, b: &usize| ei[*b].total_cmp(&ei[*a]).then(a.cmp(b));
    if ix.len() > k {
        ix.select_nth_unstable_by(k - 1, order);
        ix.truncate(k);
    }
    ix.sort_by(order);
    ix.reverse();
    ix
}

/// The cells to query: the `k` of highest EI not queried before, in increasing EI order; when
/// all `k` were queried, the `k` best of those not queried.
pub fn propose(ei: &[f64], queried: &[bool], k: usize) -> Vec<usize> {
    let fresh: Vec<usize> = top(ei, k, &|_| true)
        .into_iter()
        .filter(|&i| !queried[i])
        .collect();
    if fresh.is_empty() {
        top(ei, k, &|i| !queried[i])
    } else {
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_are_the_top_k_not_queried_and_never_stall() {
        let ei = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2];
        let mut q = vec![false; 6];
        assert_eq!(propose(&ei, &q, 3), vec![1, 4, 3], "increasing EI");
        q[3] = true;
        assert_eq!(
            propose(&ei, &q, 3),
            vec![1, 4],
            "the queried one is dropped, not replaced"
        );
        q[4] = true;
        q[1] = true;
        assert_eq!(
            propose(&ei, &q, 3),
            vec![0, 5, 2],
            "all of the top 3 queried: the next best"
        );
    }

    #[test]
    fn arch2vec_quirks_query_a_top_ei_cell_again_that_plain_bo_skips() {
        let mut t = crate::search::tests::table(300, 2);
        for i in 0..300 {
            t.valid[i] = 0.85 + 0.1 * (i as f64 / 299.0).powi(2);
            t.cost[i] = 1.0;
        }
        let settings = |quirks| Bo {
            dngo: Settings {
                epochs: 20,
                ..Settings::default()
            },
            quirks,
            ..Bo::default()
        };
        let plain = bo(&t, settings(BoQuirks::None), 60.0, 3);
        let unique: std::collections::HashSet<_> = plain.queries.iter().collect();
        assert_eq!(
            unique.len(),
            plain.queries.len(),
            "plain BO never pays twice"
        );
        let quirky = bo(&t, settings(BoQuirks::Arch2vec), 60.0, 3);
        assert_eq!(quirky.queries.len(), 60);
        let unique: std::collections::HashSet<_> = quirky.queries.iter().collect();
        assert!(
            unique.len() < quirky.queries.len(),
            "arch2vec's BO re-queries its top-EI cells: {} distinct of {}",
            unique.len(),
            quirky.queries.len()
        );
        // The same initial permutation: the first 16 queries agree.
        assert_eq!(plain.queries[..16], quirky.queries[..16]);
    }

    #[test]
    fn bo_finds_good_cells_of_a_smooth_table_faster_than_chance() {
        // Accuracy a smooth function of the feature, 0.85 to 0.95, best at the last cell.
        let mut t = crate::search::tests::table(400, 2);
        for i in 0..400 {
            t.valid[i] = 0.85 + 0.1 * (i as f64 / 399.0).powi(2);
            t.cost[i] = 1.0;
        }
        let b = Bo {
            dngo: Settings {
                epochs: 30,
                ..Settings::default()
            },
            ..Bo::default()
        };
        let a = bo(&t, b, 40.0, 2);
        assert_eq!(a.queries.len(), 40);
        assert_eq!(a, bo(&t, b, 40.0, 2), "deterministic per seed");
        let unique: std::collections::HashSet<_> = a.queries.iter().collect();
        assert_eq!(unique.len(), 40);
        let mean_final = |f: &dyn Fn(u64) -> Trace| -> f64 {
            (1..=4)
                .map(|s| *f(s).regret_valid.last().unwrap())
                .sum::<f64>()
                / 4.0
        };
        let by_bo = mean_final(&|s| bo(&t, b, 40.0, s));
        let by_chance = mean_final(&|s| crate::search::random_search(&t, 40.0, s));
        assert!(by_bo < by_chance / 3.0, "BO {by_bo} vs random {by_chance}");
    }
}
