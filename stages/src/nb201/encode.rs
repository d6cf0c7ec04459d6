//! arch2vec's NB201 graph (its `preprocessing/nasbench201_json.py`): the ops become nodes, so a
//! cell is 8 nodes (the input, the six edges' ops in arch-string order, the output) with one
//! fixed adjacency, and each node a one-hot over 7 labels in arch2vec's order: input,
//! nor_conv_1x1, nor_conv_3x3, avg_pool_3x3, skip_connect, none, output.
use super::cell::{Cell, Op};

/// Nodes of the encoded graph.
pub const NODES: usize = 8;
/// Labels of the one-hot.
pub const LABELS: usize = 7;

/// Which node feeds which: node 1 + e is edge e's op ([`super::EDGES`] order); an op node
/// feeds the op nodes leaving its edge's target, and the ops into cell node 3 feed the output.
pub const ADJACENCY: [[u8; NODES]; NODES] = [
    [0, 1, 1, 0, 1, 0, 0, 0],
    [0, 0, 0, 1, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 1],
    [0; NODES],
];

/// The label of an op in arch2vec's NB201 one-hot.
fn label(op: Op) -> usize {
    match op {
        Op::Conv1x1 => 1,
        Op::Conv3x3 => 2,
        Op::AvgPool3x3 => 3,
        Op::SkipConnect => 4,
        Op::None => 5,
    }
}

/// The one-hot node labels of a cell (rows: nodes).
pub fn one_hot(cell: &Cell) -> [[u8; LABELS]; NODES] {
    let mut m = [[0u8; LABELS]; NODES];
    m[0][0] = 1;
    for (e, &op) in cell.ops.iter().enumerate() {
        m[1 + e][label(op)] = 1;
    }
    m[NODES - 1][LABELS - 1] = 1;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb201::EDGES;

    #[test]
    fn the_adjacency_follows_the_cells_edges() {
        // Op node 1 + a feeds op node 1 + b exactly when edge a's target is edge b's source;
        // the ops into cell node 3 feed the output node.
        for (a, &(_, ta)) in EDGES.iter().enumerate() {
            for (b, &(sb, _)) in EDGES.iter().enumerate() {
                assert_eq!(ADJACENCY[1 + a][1 + b] == 1, ta == sb, "edges {a} {b}");
            }
            assert_eq!(ADJACENCY[1 + a][NODES - 1] == 1, ta == 3);
            assert_eq!(ADJACENCY[0][1 + a] == 1, EDGES[a].0 == 0);
        }
    }

    #[test]
    fn one_label_per_node() {
        let c = Cell::parse(
            "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
        )
        .unwrap();
        let m = one_hot(&c);
        assert!(m.iter().all(|row| row.iter().sum::<u8>() == 1));
        let labels: Vec<usize> = m
            .iter()
            .map(|r| r.iter().position(|&v| v == 1).unwrap())
            .collect();
        assert_eq!(labels, [0, 2, 5, 4, 3, 1, 5, 6]);
    }
}
