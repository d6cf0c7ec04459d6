//! Local search as BANANAS's code runs it (naszilla `local_search`, `DEFAULT_NUM_INIT = 10`):
//! query 10 random cells not queried before and start from the best; query the neighbours of
//! the current cell ([`edits::neighbours`], in a random order) that were not queried before; move
//! to the best of them if it beats the current cell, else (a local optimum) start again with 10
//! new random cells. With `first_improvement`, the scan of a neighbourhood stops at the first
//! neighbour better than the current cell (naszilla's default `query_full_nbhd=False`); without,
//! the whole neighbourhood is queried and the best taken. Neighbours that are not in the table
//! are skipped and counted as re-draws.
use rand::RngExt;

use super::edits::{self, Lookup};
use super::table::Searchable;
use super::{Trace, Tracker, LOCAL_STREAM};
use crate::images;

/// Local search's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Local {
    pub init: usize,
    pub first_improvement: bool,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            init: 10,
            first_improvement: false,
        }
    }
}

struct State<'t> {
    table: &'t Searchable,
    tracker: Tracker<'t>,
    queried: Vec<bool>,
    left: usize,
}

impl State<'_> {
    /// Queries cell `i` (not queried before); false when the run is over.
    fn query(&mut self, i: usize) -> bool {
        self.queried[i] = true;
        self.left -= 1;
        self.tracker.query(i);
        !self.tracker.exhausted() && self.left > 0
    }
    fn better(&self, a: usize, b: usize) -> bool {
        self.table.valid[a] > self.table.valid[b]
    }
}

/// One run of local search until the budget is spent or every cell is queried.
pub fn local_search(
    table: &Searchable,
    lookup: &Lookup,
    l: Local,
    budget: f64,
    seed: u64,
) -> Trace {
    let mut rng = images::rng(seed, LOCAL_STREAM);
    let mut s = State {
        table,
        tracker: Tracker::new(table, budget, "local_search", seed),
        queried: vec![false; table.len()],
        left: table.len(),
    };
    let mut redraws = 0;
    'restart: while s.left > 0 {
        let mut current: Option<usize> = None;
        for _ in 0..l.init.max(1) {
            let i = loop {
                let i = rng.random_range(0..table.len());
                if !s.queried[i] {
                    break i;
                }
            };
            let go_on = s.query(i);
            if current.is_none_or(|c| s.better(i, c)) {
                current = Some(i);
            }
            if !go_on {
                break 'restart;
            }
        }
        let mut current = current.expect("at least one start cell");
        loop {
            let mut nbhd = edits::neighbours(&table.cells[current]);
            images::shuffle(&mut nbhd, &mut rng);
            let mut best: Option<usize> = None;
            for (h, _) in &nbhd {
                let Some(j) = lookup.get(h) else {
                    redraws += 1;
                    continue;
                };
                if s.queried[j] {
                    continue;
                }
                let go_on = s.query(j);
                if best.is_none_or(|b| s.better(j, b)) {
                    best = Some(j);
                }
                if !go_on {
                    break 'restart;
                }
                if l.first_improvement && s.better(j, current) {
                    break;
                }
            }
            match best {
                Some(b) if s.better(b, current) => current = b,
                _ => continue 'restart,
            }
        }
    }
    let mut trace = s.tracker.trace;
    trace.redraws = redraws;
    trace
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::evolution::tests::full_table;

    #[test]
    fn local_search_climbs_to_better_neighbours_and_never_queries_twice() {
        let t = full_table();
        let lookup = Lookup::new(&t);
        for first_improvement in [false, true] {
            let l = Local {
                init: 10,
                first_improvement,
            };
            let a = local_search(&t, &lookup, l, 200.0, 5);
            assert_eq!(a.queries.len(), 200);
            assert_eq!(a, local_search(&t, &lookup, l, 200.0, 5));
            let unique: std::collections::HashSet<_> = a.queries.iter().collect();
            assert_eq!(unique.len(), 200, "no cell twice");
            assert_eq!(a.redraws, 0);
            assert!(a.best_valid[199] > a.best_valid[9], "climbs from its start");
            // The 11th query is a neighbour of the best of the first 10.
            let at = |h: &str| lookup.get(&h.parse().unwrap()).unwrap();
            let start = (0..10)
                .map(|q| at(&a.queries[q]))
                .reduce(|b, c| if t.valid[c] > t.valid[b] { c } else { b })
                .unwrap();
            let next = t.hashes[at(&a.queries[10])];
            assert!(edits::neighbours(&t.cells[start])
                .iter()
                .any(|(h, _)| *h == next));
        }
    }

    #[test]
    fn a_budget_beyond_the_table_queries_every_cell_once() {
        let t = crate::search::tests::table(50, 2);
        let lookup = Lookup::new(&t);
        let a = local_search(&t, &lookup, Local::default(), 1e9, 1);
        assert_eq!(a.queries.len(), 50);
    }
}
