//! The moves of evolution and local search in each space: NB101's (its mutation operators,
//! [`mutation`], on the unpruned 7-vertex spec; its one-edit neighbourhood, [`edits`]) and
//! NB201's (NASLib's `mutate` and `get_nbhd`, `nb201::moves`). Cells are found in the table by
//! their id ([`Arch::id`]).
use super::edits::{self, Lookup};
use super::mutation::{self, Counts, Mutation, Spec, MAX_PROPOSALS};
use crate::nb101::ModuleHash;
use crate::nb201;
use crate::space::Arch;

/// What evolution mutates: NB101's 7-vertex spec as its sources keep it, or an NB201 cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Genome {
    Nb101(Spec),
    Nb201(nb201::Cell),
}

impl Genome {
    pub fn of(a: &Arch) -> Genome {
        match a {
            Arch::Nb101(c) => Genome::Nb101(Spec::of(c)),
            Arch::Nb201(c) => Genome::Nb201(*c),
        }
    }
}

/// A child of `parent` that the table holds: its position and genome, drawn again while it is
/// not in the table (counted), at most [`MAX_PROPOSALS`] times; `None` (counted as failed)
/// after that. NB101 follows `kind`; NB201 has NASLib's operator only.
pub fn mutate(
    kind: Mutation,
    lookup: &Lookup,
    parent: &Genome,
    rng: &mut impl rand::Rng,
    counts: &mut Counts,
) -> Option<(usize, Genome)> {
    match parent {
        Genome::Nb101(s) => {
            mutation::mutate(kind, lookup, s, rng, counts).map(|(j, s)| (j, Genome::Nb101(s)))
        }
        Genome::Nb201(c) => {
            for _ in 0..MAX_PROPOSALS {
                let child = nb201::moves::mutate(c, rng);
                match lookup.get(&Arch::Nb201(child).id()) {
                    Some(j) => return Some((j, Genome::Nb201(child))),
                    None => counts.outside_table += 1,
                }
            }
            counts.failed += 1;
            None
        }
    }
}

/// The cells one move away (by id), in a fixed order: NB101's one-edit neighbours, NB201's 24.
pub fn neighbours(a: &Arch) -> Vec<(ModuleHash, Arch)> {
    match a {
        Arch::Nb101(c) => edits::neighbours(c)
            .into_iter()
            .map(|(h, c)| (h, Arch::Nb101(c)))
            .collect(),
        Arch::Nb201(c) => nb201::moves::neighbours(c)
            .into_iter()
            .map(|n| {
                let a = Arch::Nb201(n);
                (a.id(), a)
            })
            .collect(),
    }
}
