//! Search over a benchmark table in a latent space (the `reinforce` stage's environment, traces
//! and random-search baseline; the REINFORCE policy itself is in `nasflow_torch::reinforce`).
pub mod bo;
pub mod dngo;
pub mod edits;
pub mod evolution;
pub mod headline;
pub mod local;
pub mod methods;
pub mod moves;
pub mod mutation;
pub mod nearest;
pub mod report;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::images;
use table::Searchable;

/// One search run: every query in order, with the running best.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub method: String,
    pub seed: u64,
    /// The queried cells' hashes, in order.
    pub queries: Vec<String>,
    /// Cumulative simulated training seconds after each query.
    pub cost: Vec<f64>,
    /// Best validation accuracy so far.
    pub best_valid: Vec<f64>,
    /// Test accuracy of the cell with the best validation accuracy so far (when the table has it).
    pub best_test: Vec<Option<f64>>,
    /// The table's best validation accuracy minus `best_valid`.
    pub regret_valid: Vec<f64>,
    /// The table's best test accuracy minus `best_test`.
    pub regret_test: Vec<Option<f64>>,
    /// Valid mutations or neighbours whose cell was not in the table, drawn again or skipped
    /// (evolution, local search; 0 on a complete table and for the other methods).
    #[serde(default)]
    pub outside_table: usize,
    /// Mutations that found no child in the table (evolution on a partial table).
    #[serde(default)]
    pub failed_mutations: usize,
    /// Why the run ended before its budget was spent, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Records queries against a budget, as arch2vec's search loops do: the best is replaced only by
/// a strictly higher validation accuracy, and the query that crosses the budget counts.
pub struct Tracker<'a> {
    table: &'a Searchable,
    budget: f64,
    best: (f64, Option<f64>),
    pub spent: f64,
    best_valid: f64,
    best_test: Option<f64>,
    pub trace: Trace,
}

impl<'a> Tracker<'a> {
    pub fn new(table: &'a Searchable, budget: f64, method: &str, seed: u64) -> Self {
        Tracker {
            table,
            budget,
            best: table.best(),
            spent: 0.0,
            best_valid: 0.0,
            best_test: None,
            trace: Trace {
                method: method.into(),
                seed,
                ..Trace::default()
            },
        }
    }
    pub fn exhausted(&self) -> bool {
        self.spent >= self.budget
    }
    /// Records a query of cell `i`; returns its validation accuracy (the reward).
    pub fn query(&mut self, i: usize) -> f64 {
        let t = self.table;
        self.spent += t.cost[i];
        if t.valid[i] > self.best_valid || self.trace.queries.is_empty() {
            self.best_valid = t.valid[i];
            self.best_test = t.test[i];
        }
        let tr = &mut self.trace;
        tr.queries.push(t.hashes[i].hex());
        tr.cost.push(self.spent);
        tr.best_valid.push(self.best_valid);
        tr.best_test.push(self.best_test);
        tr.regret_valid.push(self.best.0 - self.best_valid);
        tr.regret_test
            .push(self.best.1.zip(self.best_test).map(|(b, x)| b - x));
        t.valid[i]
    }
}

/// Random search: queries cells in a seeded random order until the budget is spent or the table
/// is exhausted.
pub fn random_search(table: &Searchable, budget: f64, seed: u64) -> Trace {
    use rand::RngExt;
    let mut rng = images::rng(seed, RANDOM_STREAM);
    let mut order: Vec<usize> = (0..table.len()).collect();
    let mut tracker = Tracker::new(table, budget, "random", seed);
    for k in 0..order.len() {
        if tracker.exhausted() {
            break;
        }
        let j = rng.random_range(k..order.len());
        order.swap(k, j);
        tracker.query(order[k]);
    }
    tracker.trace
}

/// RNG streams of the search methods (distinct from each other for the same seed).
pub const RANDOM_STREAM: u64 = 0x5ea2_c400;
pub const REINFORCE_STREAM: u64 = 0x5ea2_c401;
pub const EVOLUTION_STREAM: u64 = 0x5ea2_c402;
pub const LOCAL_STREAM: u64 = 0x5ea2_c403;
pub const BO_STREAM: u64 = 0x5ea2_c404;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nb101::ModuleHash;

    /// input -> conv3x3 -> output.
    pub(crate) fn tiny_cell() -> crate::nb101::Cell {
        use crate::nb101::Op;
        crate::nb101::Cell::new(
            &[[0u8, 1, 0], [0, 0, 1], [0, 0, 0]],
            &[Op::Input, Op::Conv3x3, Op::Output],
        )
        .unwrap()
    }

    pub(crate) fn table(n: usize, dim: usize) -> Searchable {
        let mut s = Searchable {
            dim,
            source: "test".into(),
            ..Searchable::default()
        };
        for i in 0..n {
            let h = format!("{:032x}", i + 1);
            s.hashes.push(h.parse::<ModuleHash>().unwrap());
            s.features
                .extend((0..dim).map(|k| (i * dim + k) as f32 * 0.01));
            s.valid.push(0.5 + 0.4 * ((i * 7919) % n) as f64 / n as f64);
            s.test
                .push(Some(0.49 + 0.4 * ((i * 104729) % n) as f64 / n as f64));
            s.cost.push(10.0 + (i % 5) as f64);
            s.labeled_train.push(false);
        }
        s.cells = vec![crate::space::Arch::Nb101(tiny_cell()); n];
        s
    }

    #[test]
    fn tracker_keeps_the_first_strictly_better_cell_and_counts_the_crossing_query() {
        let mut t = table(4, 2);
        t.valid = vec![0.9, 0.95, 0.95, 0.8];
        t.test = vec![Some(0.91), Some(0.93), Some(0.94), Some(0.97)];
        t.cost = vec![10.0, 10.0, 10.0, 10.0];
        let mut tr = Tracker::new(&t, 25.0, "x", 1);
        for i in [3, 1, 2] {
            tr.query(i);
        }
        assert!(tr.exhausted());
        let trace = tr.trace;
        assert_eq!(trace.cost, vec![10.0, 20.0, 30.0]);
        assert_eq!(trace.best_valid, vec![0.8, 0.95, 0.95]);
        assert_eq!(trace.best_test, vec![Some(0.97), Some(0.93), Some(0.93)]);
        let r: Vec<f64> = trace.regret_test.iter().map(|r| r.unwrap()).collect();
        assert!((r[0] - 0.0).abs() < 1e-12 && (r[1] - 0.04).abs() < 1e-12);
        assert!((trace.regret_valid[0] - 0.15).abs() < 1e-12);
        assert_eq!(trace.regret_valid[1], 0.0);
    }

    #[test]
    fn random_search_is_deterministic_per_seed_and_stops_at_the_budget() {
        let t = table(200, 16);
        let a = random_search(&t, 500.0, 7);
        assert_eq!(a, random_search(&t, 500.0, 7));
        assert_ne!(a.queries, random_search(&t, 500.0, 8).queries);
        let n = a.cost.len();
        assert!(a.cost[n - 1] >= 500.0 && a.cost[n - 2] < 500.0);
        let unique: std::collections::HashSet<_> = a.queries.iter().collect();
        assert_eq!(unique.len(), n, "no cell twice");
        // A budget beyond the table's total cost queries every cell once.
        assert_eq!(random_search(&t, 1e9, 1).queries.len(), 200);
    }
}
