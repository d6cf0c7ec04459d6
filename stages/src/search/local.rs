//! Local search, as one of two references runs it (the `local_search` param):
//!
//! - `naszilla` (BANANAS's code, naszilla `algorithms.py` `local_search` with its defaults
//!   `num_init=10`, `query_full_nbhd=False`, `stop_at_minimum=True`): query 10 random cells not
//!   queried before and start from the best; query the current cell's neighbours
//!   ([`edits::neighbours`], in a random order) that were not queried before, and move to the
//!   first that beats the current cell; when none does (a local optimum), start again with 10
//!   new random cells. No cell is queried twice.
//! - `naslib` (NASLib `optimizers/discrete/ls/optimizer.py`, `num_init` 10): query 10 random
//!   cells and take the best; query its whole neighbourhood one cell at a time (in a random
//!   order), keeping the best seen; then move to that best and query its neighbourhood; when a
//!   neighbourhood brought nothing better (a local optimum), query one random cell and start
//!   from it. Nothing is deduplicated: a cell met again is queried and paid for again. (NASLib
//!   would fail on a cell with no neighbour in the table; here that is a local optimum.)
//!
//! Random cells are drawn uniformly from the table; neighbours that are not in the table are
//! skipped and counted (`outside_table`). NASLib's neighbourhood list can hold one cell twice
//! when two edits prune to the same cell; [`edits::neighbours`] holds it once.
use rand::RngExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::edits::Lookup;
use super::moves;
use super::table::Searchable;
use super::{Trace, Tracker, LOCAL_STREAM};
use crate::images;

/// Random cells a (re)start picks the best of, in both references.
pub const NUM_INIT: usize = 10;

/// Which reference's local search (the `local_search` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Local {
    /// naszilla's (BANANAS): first improvement, 10 fresh random cells per restart, no cell twice
    #[default]
    Naszilla,
    /// NASLib's: the whole neighbourhood, restart from one random cell, no deduplication
    Naslib,
}

impl Local {
    pub fn name(self) -> &'static str {
        match self {
            Local::Naszilla => "naszilla",
            Local::Naslib => "naslib",
        }
    }
}

/// One run of local search until the budget is spent (naszilla's also when every cell is
/// queried).
pub fn local_search(
    table: &Searchable,
    lookup: &Lookup,
    l: Local,
    budget: f64,
    seed: u64,
) -> Trace {
    let mut rng = images::rng(seed, LOCAL_STREAM);
    let tracker = Tracker::new(table, budget, "local_search", seed);
    if table.is_empty() {
        return tracker.trace;
    }
    match l {
        Local::Naszilla => naszilla(table, lookup, tracker, &mut rng),
        Local::Naslib => naslib(table, lookup, tracker, &mut rng),
    }
}

/// The in-table neighbours of cell `i` in a random order; the others counted in `outside`.
fn neighbourhood(
    table: &Searchable,
    lookup: &Lookup,
    i: usize,
    rng: &mut impl rand::Rng,
    outside: &mut usize,
) -> Vec<usize> {
    let mut nbhd = moves::neighbours(&table.cells[i]);
    images::shuffle(&mut nbhd, rng);
    let all = nbhd.len();
    let inside: Vec<usize> = nbhd.iter().filter_map(|(h, _)| lookup.get(h)).collect();
    *outside += all - inside.len();
    inside
}

struct Fresh<'t> {
    table: &'t Searchable,
    tracker: Tracker<'t>,
    queried: Vec<bool>,
    left: usize,
}

impl Fresh<'_> {
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

fn naszilla(
    table: &Searchable,
    lookup: &Lookup,
    tracker: Tracker<'_>,
    rng: &mut impl rand::Rng,
) -> Trace {
    let mut s = Fresh {
        table,
        tracker,
        queried: vec![false; table.len()],
        left: table.len(),
    };
    let mut outside = 0;
    'restart: loop {
        let mut current: Option<usize> = None;
        for _ in 0..NUM_INIT {
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
        'climb: loop {
            for j in neighbourhood(table, lookup, current, rng, &mut outside) {
                if s.queried[j] {
                    continue;
                }
                let go_on = s.query(j);
                if !go_on {
                    break 'restart;
                }
                if s.better(j, current) {
                    current = j;
                    continue 'climb;
                }
            }
            continue 'restart;
        }
    }
    let mut trace = s.tracker.trace;
    trace.outside_table = outside;
    trace
}

fn naslib(
    table: &Searchable,
    lookup: &Lookup,
    mut tracker: Tracker<'_>,
    rng: &mut impl rand::Rng,
) -> Trace {
    let valid = |i: usize| table.valid[i];
    let mut outside = 0;
    let mut best: Option<usize> = None;
    for _ in 0..NUM_INIT {
        if tracker.exhausted() {
            break;
        }
        let i = rng.random_range(0..table.len());
        tracker.query(i);
        if best.is_none_or(|b| valid(i) > valid(b)) {
            best = Some(i);
        }
    }
    let mut best = best.expect("at least one start cell");
    let mut chosen: Option<usize> = None;
    let mut nbhd: Vec<usize> = Vec::new();
    while !tracker.exhausted() {
        if nbhd.is_empty() && chosen.is_some_and(|c| valid(best) <= valid(c)) {
            // A local optimum: one random cell, and its neighbourhood.
            let r = rng.random_range(0..table.len());
            tracker.query(r);
            (best, chosen) = (r, Some(r));
            nbhd = neighbourhood(table, lookup, r, rng, &mut outside);
            continue;
        }
        if nbhd.is_empty() {
            chosen = Some(best);
            nbhd = neighbourhood(table, lookup, best, rng, &mut outside);
            continue;
        }
        let j = nbhd.pop().expect("a neighbour left");
        tracker.query(j);
        if valid(j) > valid(best) {
            best = j;
        }
    }
    let mut trace = tracker.trace;
    trace.outside_table = outside;
    trace
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::evolution::tests::full_table;

    fn at(lookup: &Lookup, h: &str) -> usize {
        lookup.get(&h.parse().unwrap()).unwrap()
    }

    /// The best of the first `n` queries (the first of equals).
    fn best_of(t: &Searchable, lookup: &Lookup, q: &[String]) -> usize {
        q.iter()
            .map(|h| at(lookup, h))
            .reduce(|b, c| if t.valid[c] > t.valid[b] { c } else { b })
            .unwrap()
    }

    fn is_neighbour(t: &Searchable, of: usize, cell: usize) -> bool {
        moves::neighbours(&t.cells[of])
            .iter()
            .any(|(h, _)| *h == t.hashes[cell])
    }

    #[test]
    fn naszilla_moves_to_the_first_better_neighbour_and_never_queries_twice() {
        let t = full_table();
        let lookup = Lookup::new(&t);
        let a = local_search(&t, &lookup, Local::Naszilla, 200.0, 5);
        assert_eq!(a.queries.len(), 200);
        assert_eq!(a, local_search(&t, &lookup, Local::Naszilla, 200.0, 5));
        let unique: std::collections::HashSet<_> = a.queries.iter().collect();
        assert_eq!(unique.len(), 200, "no cell twice");
        assert_eq!(a.outside_table, 0);
        assert!(a.best_valid[199] > a.best_valid[9], "climbs from its start");
        // The 11th query is a neighbour of the best of the first 10; every later query in the
        // climb is a neighbour of the last query that beat the cell before it.
        let start = best_of(&t, &lookup, &a.queries[..10]);
        let mut current = start;
        for q in 10..a.queries.len() {
            let c = at(&lookup, &a.queries[q]);
            if !is_neighbour(&t, current, c) {
                break; // a restart
            }
            if t.valid[c] > t.valid[current] {
                current = c;
            }
        }
        assert_ne!(current, start, "moved at least once before restarting");
    }

    #[test]
    fn naslib_scans_the_whole_neighbourhood_then_moves_to_its_best() {
        let t = full_table();
        let lookup = Lookup::new(&t);
        let a = local_search(&t, &lookup, Local::Naslib, 300.0, 5);
        assert_eq!(a.queries.len(), 300);
        assert_eq!(a, local_search(&t, &lookup, Local::Naslib, 300.0, 5));
        assert!(a.best_valid[299] > a.best_valid[9], "climbs from its start");
        let start = best_of(&t, &lookup, &a.queries[..10]);
        let first = moves::neighbours(&t.cells[start]).len();
        // Queries 10..10+first are exactly the start's neighbourhood, each once.
        let scanned: std::collections::HashSet<usize> = a.queries[10..10 + first]
            .iter()
            .map(|h| at(&lookup, h))
            .collect();
        assert_eq!(scanned.len(), first);
        assert!(scanned.iter().all(|&c| is_neighbour(&t, start, c)));
        // Then the neighbourhood of the best seen so far (or, at an optimum, a random cell).
        let best = best_of(&t, &lookup, &a.queries[..10 + first]);
        let next = at(&lookup, &a.queries[10 + first + 1]);
        if best != start {
            assert!(is_neighbour(&t, best, next));
        }
    }

    #[test]
    fn naslib_queries_cells_again_naszilla_does_not() {
        // A small table: NASLib's restarts and neighbourhoods meet cells again and pay again.
        let full = full_table();
        let lookup_full = Lookup::new(&full);
        let mut t = full.clone();
        let a = local_search(&full, &lookup_full, Local::Naslib, 3000.0, 2);
        let unique: std::collections::HashSet<_> = a.queries.iter().collect();
        assert!(unique.len() < a.queries.len(), "NASLib repeats cells");
        t.cost = vec![1.0; t.len()];
        let b = local_search(&t, &lookup_full, Local::Naszilla, 3000.0, 2);
        let unique: std::collections::HashSet<_> = b.queries.iter().collect();
        assert_eq!(unique.len(), b.queries.len());
    }

    #[test]
    fn a_budget_beyond_the_table_queries_every_cell_once_under_naszilla() {
        let t = crate::search::tests::table(50, 2);
        let lookup = Lookup::new(&t);
        let a = local_search(&t, &lookup, Local::Naszilla, 1e9, 1);
        assert_eq!(a.queries.len(), 50);
        // NASLib's has no such end: it spends the budget, cells again and again.
        let b = local_search(&t, &lookup, Local::Naslib, 500.0, 1);
        assert!(b.queries.len() > 30);
        assert!(*b.cost.last().unwrap() >= 500.0);
    }
}
