//! Regularized evolution (Real et al. 2019) as NASLib's `RegularizedEvolution` runs it, with
//! NASLib's defaults (`naslib/defaults/darts_defaults.yaml`: `population_size: 100`,
//! `sample_size: 10`):
//!
//! - the first `population` queries are cells drawn uniformly from the table (with replacement,
//!   as NASLib's `sample_random_architecture`);
//! - then each query: draw `sample` members of the population uniformly with replacement, take
//!   the one with the highest validation accuracy (the first of equals) as the parent, query a
//!   mutation of it ([`edits::mutate`]: one edge flip or op change), append it and drop the
//!   oldest member (aging).
//!
//! A child may be a cell queried before; it is queried (and paid for) again, as in NASLib.
use std::collections::VecDeque;

use rand::RngExt;

use super::edits::{self, Lookup};
use super::table::Searchable;
use super::{Trace, Tracker, EVOLUTION_STREAM};
use crate::images;

/// Regularized evolution's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evolution {
    pub population: usize,
    pub sample: usize,
}

impl Default for Evolution {
    fn default() -> Self {
        Evolution {
            population: 100,
            sample: 10,
        }
    }
}

/// One run of regularized evolution until the budget is spent.
pub fn evolution(
    table: &Searchable,
    lookup: &Lookup,
    e: Evolution,
    budget: f64,
    seed: u64,
) -> Trace {
    let mut rng = images::rng(seed, EVOLUTION_STREAM);
    let mut tracker = Tracker::new(table, budget, "evolution", seed);
    let mut population: VecDeque<usize> = VecDeque::with_capacity(e.population + 1);
    let mut redraws = 0;
    while !tracker.exhausted() && !table.is_empty() {
        let cell = if population.len() < e.population.max(1) {
            rng.random_range(0..table.len())
        } else {
            let parent = (0..e.sample.max(1))
                .map(|_| population[rng.random_range(0..population.len())])
                .reduce(|best, c| {
                    if table.valid[c] > table.valid[best] {
                        c
                    } else {
                        best
                    }
                })
                .expect("a sample of at least one");
            edits::mutate(table, lookup, parent, &mut rng, &mut redraws)
                .unwrap_or_else(|| rng.random_range(0..table.len()))
        };
        tracker.query(cell);
        population.push_back(cell);
        if population.len() > e.population.max(1) {
            population.pop_front();
        }
    }
    let mut trace = tracker.trace;
    trace.redraws = redraws;
    trace
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nb101::Space;
    use crate::search::table::join;

    /// The whole NB101 space with validation accuracies that reward conv3x3 ops (so evolution
    /// has somewhere to go) and unit costs.
    pub(crate) fn full_table() -> Searchable {
        let space = Space::enumerate();
        let rows = space
            .entries()
            .iter()
            .map(|(h, c)| {
                let convs = c
                    .ops()
                    .iter()
                    .filter(|&&o| o == crate::nb101::Op::Conv3x3)
                    .count();
                let v = 0.8 + 0.02 * convs as f64 + 0.001 * (h.0[0] as f64 / 255.0);
                (*h, Some(v), None, Some(1.0))
            })
            .collect();
        let features = vec![0f32; space.len()];
        join(
            rows,
            &space,
            &features,
            1,
            &Default::default(),
            "test".into(),
        )
    }

    #[test]
    fn children_are_cells_of_the_space_and_the_population_ages() {
        let t = full_table();
        let lookup = Lookup::new(&t);
        let e = Evolution {
            population: 20,
            sample: 5,
        };
        let a = evolution(&t, &lookup, e, 300.0, 3);
        assert_eq!(a.queries.len(), 300, "unit costs: one query per second");
        assert_eq!(
            a,
            evolution(&t, &lookup, e, 300.0, 3),
            "deterministic per seed"
        );
        assert_eq!(a.redraws, 0, "no re-draws on the complete table");
        // After the random population, every query is one edit away from an earlier query
        // still in the population (the last 20 queries).
        let at = |h: &str| lookup.get(&h.parse().unwrap()).unwrap();
        for q in 20..a.queries.len() {
            let child = at(&a.queries[q]);
            let members: Vec<usize> = a.queries[q - 20..q].iter().map(|h| at(h)).collect();
            let parent_found = members.iter().any(|&p| {
                edits::neighbours(&t.cells[p])
                    .iter()
                    .any(|(h, _)| *h == t.hashes[child])
            });
            assert!(parent_found, "query {q} is no mutation of a live member");
        }
        let first: f64 = a.best_valid[19];
        assert!(
            a.best_valid[299] > first,
            "evolution improves on its random start"
        );
    }

    #[test]
    fn on_a_partial_table_mutations_outside_it_are_redrawn_and_counted() {
        let full = full_table();
        let mut part = full.clone();
        let keep: Vec<usize> = (0..full.len()).step_by(10).collect();
        part.hashes = keep.iter().map(|&i| full.hashes[i]).collect();
        part.cells = keep.iter().map(|&i| full.cells[i]).collect();
        part.valid = keep.iter().map(|&i| full.valid[i]).collect();
        part.test = vec![None; keep.len()];
        part.cost = vec![1.0; keep.len()];
        part.labeled_train = vec![false; keep.len()];
        part.features = vec![0.0; keep.len()];
        let lookup = Lookup::new(&part);
        let a = evolution(&part, &lookup, Evolution::default(), 400.0, 1);
        assert_eq!(a.queries.len(), 400);
        assert!(a.redraws > 100, "{}", a.redraws);
        assert!(a
            .queries
            .iter()
            .all(|h| lookup.get(&h.parse().unwrap()).is_some()));
    }
}
