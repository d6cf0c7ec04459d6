//! BANANAS's path encoding of a cell (naszilla `Cell101.get_path_indices`, `encode_paths`): one
//! bit per input-to-output path, a path identified by its sequence of interior ops. A path of
//! ops `o_0 .. o_{l-1}` (l = 0..5) has index `sum_i 3^i (label(o_i) + 1)` with labels conv3x3 0,
//! conv1x1 1, maxpool3x3 2, so indices run over 0..364 (3^0 + ... + 3^5 paths) and shorter paths
//! come first. Truncated to the first `cutoff` indices (naszilla's default 40: the paths of up
//! to 3 ops, the most common ones).
use super::Cell;

/// All paths of NB101: 3^0 + 3^1 + ... + 3^5.
pub const PATHS: usize = 364;
/// naszilla's truncation.
pub const DEFAULT_CUTOFF: usize = 40;

/// The sorted path indices of a cell.
pub fn path_indices(cell: &Cell) -> Vec<usize> {
    let n = cell.num_vertices();
    // paths[j]: (index, length) of every path from the input to vertex j.
    let mut paths: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    for j in 1..n {
        if cell.edge(0, j) {
            paths[j].push((0, 0));
        }
    }
    for i in 1..n.saturating_sub(1) {
        let label = cell.ops()[i].hash_label().max(0) as usize;
        for j in i + 1..n {
            if cell.edge(i, j) {
                let ext: Vec<(usize, u32)> = paths[i]
                    .iter()
                    .map(|&(ix, len)| (ix + 3usize.pow(len) * (label + 1), len + 1))
                    .collect();
                paths[j].extend(ext);
            }
        }
    }
    let mut ix: Vec<usize> = paths[n - 1].iter().map(|&(i, _)| i).collect();
    ix.sort_unstable();
    ix
}

/// The 0/1 path encoding truncated to `cutoff` entries.
pub fn path_encoding(cell: &Cell, cutoff: usize) -> Vec<f64> {
    let mut v = vec![0.0; cutoff.min(PATHS)];
    for i in path_indices(cell) {
        if i < v.len() {
            v[i] = 1.0;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb101::Op;

    #[test]
    fn path_indices_by_hand() {
        // input -> conv3x3 -> maxpool -> output, plus input -> conv1x1 -> output, plus the skip
        // input -> output: paths [], [conv1x1], [conv3x3, maxpool] = 0, 2, 1 + 3 * 3 = 10.
        let m = [
            [0u8, 1, 0, 1, 1],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0],
        ];
        let cell = Cell::new(
            &m,
            &[
                Op::Input,
                Op::Conv3x3,
                Op::MaxPool3x3,
                Op::Conv1x1,
                Op::Output,
            ],
        )
        .unwrap();
        assert_eq!(path_indices(&cell), vec![0, 2, 10]);
        let e = path_encoding(&cell, DEFAULT_CUTOFF);
        assert_eq!(e.len(), 40);
        assert_eq!(e.iter().sum::<f64>(), 3.0);
        assert_eq!((e[0], e[2], e[10]), (1.0, 1.0, 1.0));
        // A path of 5 maxpools has the last index, 363, cut off at 40.
        assert_eq!(path_encoding(&cell, 5), vec![1.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_chain_of_five_ops_has_the_index_of_its_sequence() {
        let mut m = [[0u8; 7]; 7];
        for i in 0..6 {
            m[i][i + 1] = 1;
        }
        let mut ops = vec![Op::Input];
        ops.extend([Op::MaxPool3x3; 5]);
        ops.push(Op::Output);
        let cell = Cell::new(&m, &ops).unwrap();
        assert_eq!(path_indices(&cell), vec![PATHS - 1]);
    }
}
