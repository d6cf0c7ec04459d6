//! NASLib's NB201 moves (`NasBench201SearchSpace.mutate` and `get_nbhd` in
//! `naslib/search_spaces/nasbench201/graph.py`, read at commit dfa2e67): a mutation changes the
//! op of one uniformly drawn edge to one of the four other ops, uniformly; the neighbourhood of a
//! cell is the 24 cells that differ from it in exactly one edge's op (NASLib shuffles them; here
//! they come in a fixed order and the caller draws one). NASLib numbers the ops differently
//! (skip, none, conv 3x3, conv 1x1, avg pool); the moves do not depend on the numbering.
use rand::{Rng, RngExt};

use super::cell::{Cell, Op};

/// One mutation of `cell`.
pub fn mutate(cell: &Cell, rng: &mut impl Rng) -> Cell {
    let e = rng.random_range(0..cell.ops.len());
    let others: Vec<Op> = Op::ALL.into_iter().filter(|&o| o != cell.ops[e]).collect();
    let mut child = *cell;
    child.ops[e] = others[rng.random_range(0..others.len())];
    child
}

/// The 24 cells one op change away, edge by edge, ops in [`Op::ALL`] order.
pub fn neighbours(cell: &Cell) -> Vec<Cell> {
    let mut out = Vec::with_capacity(24);
    for e in 0..cell.ops.len() {
        for op in Op::ALL.into_iter().filter(|&o| o != cell.ops[e]) {
            let mut n = *cell;
            n.ops[e] = op;
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn differing(a: &Cell, b: &Cell) -> usize {
        a.ops.iter().zip(&b.ops).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn a_mutation_changes_one_edge_and_covers_the_neighbourhood_evenly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let parent = Cell::from_index(1234).unwrap();
        let mut counts = std::collections::HashMap::new();
        let draws = 48_000;
        for _ in 0..draws {
            let child = mutate(&parent, &mut rng);
            assert_eq!(differing(&parent, &child), 1);
            *counts.entry(child).or_insert(0usize) += 1;
        }
        // Each of the 24 neighbours w.p. 1/24: 2,000 expected, sd about 44.
        assert_eq!(counts.len(), 24);
        assert!(
            counts.values().all(|&n| (1800..2200).contains(&n)),
            "{counts:?}"
        );
        let n = neighbours(&parent);
        assert_eq!(n.len(), 24);
        assert!(n.iter().all(|c| differing(&parent, c) == 1));
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!(set.len(), 24);
        assert!(counts.keys().all(|c| set.contains(c)));
    }
}
