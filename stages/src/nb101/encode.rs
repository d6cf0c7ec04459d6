//! arch2vec's encoding of a cell: a 7x7 adjacency and 7x5 one-hot ops in arch2vec's op order
//! (input, conv1x1, conv3x3, maxpool, output). A cell of n < 7 vertices is padded with zero rows
//! and columns *after* its output vertex, so the output stays at row n-1, and the padded op rows
//! are all zero (not one-hot), as `preprocessing/gen_json.py` writes them.
use super::cell::{Cell, CellError, Op, MAX_VERTICES};

pub const OPS: usize = 5;

/// The padded 7x7 adjacency and 7x5 one-hot ops of a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch2vec {
    pub adj: [[u8; MAX_VERTICES]; MAX_VERTICES],
    pub ops: [[u8; OPS]; MAX_VERTICES],
}

/// An encoding that is not one arch2vec writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error("op row {0} is neither one-hot nor all zero")]
    NotOneHot(usize),
    #[error("op row {0} is one-hot after an all-zero (padding) row")]
    GapInOps(usize),
    #[error("edge {0}->{1} touches a padding vertex")]
    EdgeInPadding(usize, usize),
    #[error("shape: expected 7x7 adjacency and 7x5 ops")]
    Shape,
    #[error(transparent)]
    Cell(#[from] CellError),
}

impl Arch2vec {
    pub fn encode(cell: &Cell) -> Arch2vec {
        let n = cell.num_vertices();
        let mut adj = [[0u8; MAX_VERTICES]; MAX_VERTICES];
        let mut ops = [[0u8; OPS]; MAX_VERTICES];
        for i in 0..n {
            for j in 0..n {
                adj[i][j] = cell.edge(i, j) as u8;
            }
            ops[i][cell.ops()[i].arch2vec_index()] = 1;
        }
        Arch2vec { adj, ops }
    }

    /// From nested lists (as in arch2vec's data.json).
    pub fn from_lists(adj: &[Vec<u8>], ops: &[Vec<u8>]) -> Result<Arch2vec, EncodingError> {
        if adj.len() != MAX_VERTICES
            || ops.len() != MAX_VERTICES
            || adj.iter().any(|r| r.len() != MAX_VERTICES)
            || ops.iter().any(|r| r.len() != OPS)
        {
            return Err(EncodingError::Shape);
        }
        let mut a = Arch2vec {
            adj: [[0; MAX_VERTICES]; MAX_VERTICES],
            ops: [[0; OPS]; MAX_VERTICES],
        };
        for i in 0..MAX_VERTICES {
            a.adj[i].copy_from_slice(&adj[i]);
            a.ops[i].copy_from_slice(&ops[i]);
        }
        Ok(a)
    }

    /// Back to a cell; rejects anything arch2vec would not have written.
    pub fn decode(&self) -> Result<Cell, EncodingError> {
        let mut ops = Vec::new();
        for (i, row) in self.ops.iter().enumerate() {
            let ones = row.iter().filter(|&&x| x == 1).count();
            let zeros = row.iter().filter(|&&x| x == 0).count();
            match (ones, zeros) {
                (1, 4) if ops.len() == i => {
                    let k = row.iter().position(|&x| x == 1).expect("one-hot");
                    ops.push(Op::from_arch2vec_index(k).expect("index < 5"));
                }
                (1, 4) => return Err(EncodingError::GapInOps(i)),
                (0, 5) => {}
                _ => return Err(EncodingError::NotOneHot(i)),
            }
        }
        let n = ops.len();
        for i in 0..MAX_VERTICES {
            for j in 0..MAX_VERTICES {
                if self.adj[i][j] != 0 && (i >= n || j >= n) {
                    return Err(EncodingError::EdgeInPadding(i, j));
                }
            }
        }
        let rows: Vec<Vec<u8>> = self.adj[..n].iter().map(|r| r[..n].to_vec()).collect();
        Ok(Cell::new(&rows, &ops)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_after_the_output_and_round_trips() {
        let c = Cell::parse(
            "0110001000010000",
            "input,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        let e = Arch2vec::encode(&c);
        // output at row 3, not 6; padded rows all zero.
        assert_eq!(e.ops[3], [0, 0, 0, 0, 1]);
        assert_eq!(e.ops[1], [0, 0, 1, 0, 0], "conv3x3 is arch2vec column 2");
        assert_eq!(e.ops[2], [0, 0, 0, 1, 0]);
        assert_eq!(e.ops[4], [0; 5]);
        assert_eq!(e.adj[2][3], 1);
        assert!(e.adj[4..].iter().all(|r| r.iter().all(|&x| x == 0)));
        assert_eq!(e.decode().unwrap(), c);
    }

    #[test]
    fn rejects_malformed_encodings() {
        let c = Cell::parse("0100", "input,output").unwrap();
        let mut e = Arch2vec::encode(&c);
        e.ops[0] = [1, 1, 0, 0, 0];
        assert_eq!(e.decode().unwrap_err(), EncodingError::NotOneHot(0));
        let mut e = Arch2vec::encode(&c);
        e.ops[3] = [0, 1, 0, 0, 0];
        assert_eq!(e.decode().unwrap_err(), EncodingError::GapInOps(3));
        let mut e = Arch2vec::encode(&c);
        e.adj[1][5] = 1;
        assert_eq!(e.decode().unwrap_err(), EncodingError::EdgeInPadding(1, 5));
        assert_eq!(
            Arch2vec::from_lists(&[vec![0; 7]], &[vec![0; 5]]).unwrap_err(),
            EncodingError::Shape
        );
    }
}
