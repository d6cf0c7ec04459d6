//! NB101's one-edit neighbourhood, for local search (and the `one-edit` mutation): one edge
//! flip or one op change of a cell, pruned and validated as NB101 does, identified by the module
//! hash.
//!
//! A table's cells are pruned (fewer than 7 vertices when some were extraneous); as NB101's API
//! does, the cell is padded back to 7 vertices with unconnected ones before it is edited, so that
//! an edit can reconnect a vertex. An edit whose result prunes back to the same cell (an op
//! change of an unconnected vertex, an edge to one) is no move and is dropped.
use rustc_hash::FxHashMap;

use super::table::Searchable;
use crate::nb101::cell::MAX_VERTICES;
use crate::nb101::{module_hash, Cell, ModuleHash, Op};

/// The edits of a 7-vertex cell: 21 edge flips (i < j), then 5 interior vertices x 2 other ops.
pub const EDITS: usize = 21 + 5 * 2;

/// A cell padded to 7 vertices: the extra vertices (conv3x3, no edges) go before the output.
pub fn padded(cell: &Cell) -> (Vec<Vec<u8>>, Vec<Op>) {
    let n = cell.num_vertices();
    let m = cell.matrix();
    // Vertex v of the cell sits at `at(v)` in the 7-vertex form: the output moves to 6.
    let at = |v: usize| if v + 1 == n { MAX_VERTICES - 1 } else { v };
    let mut matrix = vec![vec![0u8; MAX_VERTICES]; MAX_VERTICES];
    let mut ops = vec![Op::Conv3x3; MAX_VERTICES];
    for i in 0..n {
        ops[at(i)] = cell.ops()[i];
        for j in 0..n {
            matrix[at(i)][at(j)] = m[i][j];
        }
    }
    (matrix, ops)
}

/// Applies edit `k` (< [`EDITS`]) to a padded cell; the canonical result and its hash, or
/// `None` when it is not in the NB101 space.
pub fn apply(matrix: &[Vec<u8>], ops: &[Op], k: usize) -> Option<(ModuleHash, Cell)> {
    let mut m = matrix.to_vec();
    let mut o = ops.to_vec();
    if k < 21 {
        let (i, j) = edge_of(k);
        m[i][j] ^= 1;
    } else {
        let v = 1 + (k - 21) / 2;
        let others: Vec<Op> = Op::INTERIOR.into_iter().filter(|&x| x != o[v]).collect();
        o[v] = others[(k - 21) % 2];
    }
    let cell = Cell::new(&m, &o).ok()?.canonical().ok()?;
    Some((module_hash(&cell), cell))
}

/// The k-th upper-triangular pair of a 7-vertex matrix, row by row.
pub(crate) fn edge_of(k: usize) -> (usize, usize) {
    let mut k = k;
    for i in 0..MAX_VERTICES - 1 {
        let row = MAX_VERTICES - 1 - i;
        if k < row {
            return (i, i + 1 + k);
        }
        k -= row;
    }
    unreachable!("edge index below 21")
}

/// Every distinct cell one edit away (NB101-valid, not the cell itself), in edit order.
pub fn neighbours(cell: &Cell) -> Vec<(ModuleHash, Cell)> {
    let own = module_hash(cell);
    let (m, o) = padded(cell);
    let mut seen = vec![own];
    let mut out = Vec::new();
    for k in 0..EDITS {
        if let Some((h, c)) = apply(&m, &o, k) {
            if !seen.contains(&h) {
                seen.push(h);
                out.push((h, c));
            }
        }
    }
    out
}

/// Cell positions in a table by module hash.
pub struct Lookup(FxHashMap<ModuleHash, usize>);

impl Lookup {
    pub fn new(table: &Searchable) -> Lookup {
        Lookup(
            table
                .hashes
                .iter()
                .enumerate()
                .map(|(i, h)| (*h, i))
                .collect(),
        )
    }
    pub fn get(&self, h: &ModuleHash) -> Option<usize> {
        self.0.get(h).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neighbourhood_of_a_one_op_cell_has_three_cells() {
        // input -> conv3x3 -> output: two op changes and the skip edge input -> output; every
        // other flip disconnects the cell or touches only unconnected vertices.
        let cell = crate::search::tests::tiny_cell();
        let n = neighbours(&cell);
        assert_eq!(n.len(), 3, "{n:?}");
        let ops: Vec<String> = n.iter().map(|(_, c)| c.ops_string()).collect();
        assert!(ops.contains(&"input,conv1x1-bn-relu,output".to_string()));
        assert!(ops.contains(&"input,maxpool3x3,output".to_string()));
        assert!(n.iter().any(|(_, c)| c.edge(0, 2) && c.num_edges() == 3));
        for (h, c) in &n {
            assert_eq!(*h, module_hash(c));
            assert!(c.validate().is_ok());
        }
    }

    #[test]
    fn every_neighbour_of_every_cell_of_a_sample_is_a_cell_of_the_space() {
        let space = crate::nb101::Space::enumerate();
        let mut total = 0;
        for (h, cell) in space.entries().iter().step_by(997) {
            for (nh, nc) in neighbours(cell) {
                assert_ne!(nh, *h);
                assert!(
                    space.get(&nh).is_some(),
                    "neighbour {nc:?} of {cell:?} not in the space"
                );
                total += 1;
            }
        }
        assert!(total > 1000, "{total}");
    }

    #[test]
    fn edges_are_numbered_row_by_row() {
        assert_eq!(edge_of(0), (0, 1));
        assert_eq!(edge_of(5), (0, 6));
        assert_eq!(edge_of(6), (1, 2));
        assert_eq!(edge_of(20), (5, 6));
    }
}
