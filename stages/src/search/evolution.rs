//! Regularized evolution (Real et al. 2019) as NASLib's `RegularizedEvolution` runs it, with
//! naszilla's population and tournament sizes (`evolution_search`: `population_size=30`,
//! `tournament_size=10`; NASLib's configs disagree among themselves, 30 or 50 / 10):
//!
//! - the first `population` queries are cells drawn uniformly from the table (with replacement,
//!   as NASLib's `sample_random_architecture`);
//! - then each query: draw `sample` members of the population uniformly with replacement, take
//!   the one with the highest validation accuracy (the first of equals) as the parent, query a
//!   mutation of it ([`mutation::mutate`], NASLib's operator by default), append it and drop
//!   the oldest member (aging).
//!
//! A child may be a cell queried before (or its parent's own cell): it is queried (and paid for)
//! again, as in NASLib. On a table that holds part of the space, a mutation that yields no
//! child in the table fails (counted); its parent can no longer be drawn in a tournament, and
//! when no member of the population can, the run stops early and says so (`stopped`).
use std::collections::VecDeque;

use rand::RngExt;

use super::edits::Lookup;
use super::moves::{self, Genome};
use super::mutation::{Counts, Mutation, MAX_PROPOSALS};
use super::table::Searchable;
use super::{Trace, Tracker, EVOLUTION_STREAM};
use crate::images;

/// Regularized evolution's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evolution {
    pub population: usize,
    pub sample: usize,
    pub mutation: Mutation,
}

impl Default for Evolution {
    fn default() -> Self {
        Evolution {
            population: 30,
            sample: 10,
            mutation: Mutation::Naslib,
        }
    }
}

/// A member of the population: its table position, its spec as mutated, and whether a
/// mutation of it has failed (it is then no parent any more).
struct Member {
    cell: usize,
    spec: Genome,
    barren: bool,
}

/// One run of regularized evolution until the budget is spent (or no member can be a parent).
pub fn evolution(
    table: &Searchable,
    lookup: &Lookup,
    e: Evolution,
    budget: f64,
    seed: u64,
) -> Trace {
    let mut rng = images::rng(seed, EVOLUTION_STREAM);
    let mut tracker = Tracker::new(table, budget, "evolution", seed);
    let size = e.population.max(1);
    let mut population: VecDeque<Member> = VecDeque::with_capacity(size + 1);
    let mut counts = Counts::default();
    while !tracker.exhausted() && !table.is_empty() {
        let child = if population.len() < size {
            let cell = rng.random_range(0..table.len());
            Member {
                cell,
                spec: Genome::of(&table.cells[cell]),
                barren: false,
            }
        } else {
            let parents: Vec<usize> = (0..population.len())
                .filter(|&k| !population[k].barren)
                .collect();
            if parents.is_empty() {
                tracker.trace.stopped = Some(format!(
                    "no member of the population yields a child in the table within {MAX_PROPOSALS} proposals"
                ));
                break;
            }
            let parent = tournament(table, &population, &parents, e.sample, &mut rng);
            let spec = population[parent].spec;
            match moves::mutate(e.mutation, lookup, &spec, &mut rng, &mut counts) {
                Some((cell, spec)) => Member {
                    cell,
                    spec,
                    barren: false,
                },
                None => {
                    population[parent].barren = true;
                    continue;
                }
            }
        };
        tracker.query(child.cell);
        population.push_back(child);
        if population.len() > size {
            population.pop_front();
        }
    }
    let mut trace = tracker.trace;
    trace.outside_table = counts.outside_table;
    trace.failed_mutations = counts.failed;
    trace
}

/// The best of `sample` members drawn uniformly with replacement from `parents`.
fn tournament(
    table: &Searchable,
    population: &VecDeque<Member>,
    parents: &[usize],
    sample: usize,
    rng: &mut impl rand::Rng,
) -> usize {
    (0..sample.max(1))
        .map(|_| parents[rng.random_range(0..parents.len())])
        .reduce(|best, k| {
            if table.valid[population[k].cell] > table.valid[population[best].cell] {
                k
            } else {
                best
            }
        })
        .expect("a sample of at least one")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nb101::Space;
    use crate::search::table::join;
    use crate::space::{Arch, CellList, SearchSpace};

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
        let cells: Vec<Arch> = (space.into_entries().into_iter())
            .map(|(_, c)| Arch::Nb101(c))
            .collect();
        join(
            rows,
            &CellList::new(SearchSpace::Nb101, cells),
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
        for mutation in [Mutation::Naslib, Mutation::Naszilla, Mutation::OneEdit] {
            let e = Evolution {
                population: 20,
                sample: 5,
                mutation,
            };
            let a = evolution(&t, &lookup, e, 300.0, 3);
            assert_eq!(a.queries.len(), 300, "unit costs: one query per second");
            assert_eq!(
                a,
                evolution(&t, &lookup, e, 300.0, 3),
                "deterministic per seed"
            );
            assert_eq!(a.outside_table, 0, "nothing outside the complete table");
            assert_eq!((a.failed_mutations, a.stopped.as_ref()), (0, None));
            assert!(
                a.best_valid[299] > a.best_valid[19],
                "{mutation:?} improves on its start"
            );
        }
    }

    #[test]
    fn on_a_partial_table_children_outside_it_are_redrawn_and_counted() {
        let full = full_table();
        let keep: Vec<usize> = (0..full.len()).step_by(10).collect();
        let part = full.keep(&keep);
        let lookup = Lookup::new(&part);
        let a = evolution(&part, &lookup, Evolution::default(), 400.0, 1);
        assert_eq!(a.queries.len(), 400);
        assert!(a.outside_table > 100, "{}", a.outside_table);
        assert!(a
            .queries
            .iter()
            .all(|h| lookup.get(&h.parse().unwrap()).is_some()));
    }

    #[test]
    fn no_random_fallback_a_population_without_children_stops_the_run() {
        // 12 cells scattered over the space: one-edit children of one are almost never another.
        // Each failed mutation retires its parent; with none left the run stops and says why,
        // rather than querying random cells.
        let full = full_table();
        let keep: Vec<usize> = (0..full.len()).step_by(full.len() / 12).take(12).collect();
        let part = full.keep(&keep);
        let lookup = Lookup::new(&part);
        let e = Evolution {
            population: 4,
            sample: 2,
            mutation: Mutation::OneEdit,
        };
        let a = evolution(&part, &lookup, e, 1000.0, 7);
        assert!(a.queries.len() < 1000, "{}", a.queries.len());
        assert!(
            a.stopped.as_deref().unwrap().contains("no member"),
            "{:?}",
            a.stopped
        );
        assert!(a.failed_mutations >= 4, "{}", a.failed_mutations);
        assert!(a.outside_table > 0);
    }
}
