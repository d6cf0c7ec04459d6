//! A NAS-Bench-101 cell: an upper-triangular adjacency over at most 7 vertices and one op per
//! vertex, with NB101's pruning and validity rules (`ModelSpec._prune` and `NASBench._check_spec`
//! of google-research/nasbench).
use std::fmt;

/// Vertices in a cell, input and output included (NB101's `module_vertices`).
pub const MAX_VERTICES: usize = 7;
/// Edges in a cell (NB101's `max_edges`).
pub const MAX_EDGES: usize = 9;

/// A vertex label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Op {
    #[default]
    Input,
    Conv3x3,
    Conv1x1,
    MaxPool3x3,
    Output,
}

impl Op {
    /// The interior ops in NB101's canonical order (the order of `available_ops`, which the
    /// module hash labels as 0, 1, 2).
    pub const INTERIOR: [Op; 3] = [Op::Conv3x3, Op::Conv1x1, Op::MaxPool3x3];
    pub const ALL: [Op; 5] = [
        Op::Input,
        Op::Conv3x3,
        Op::Conv1x1,
        Op::MaxPool3x3,
        Op::Output,
    ];

    /// NB101's name (`conv3x3-bn-relu` ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv3x3 => "conv3x3-bn-relu",
            Op::Conv1x1 => "conv1x1-bn-relu",
            Op::MaxPool3x3 => "maxpool3x3",
            Op::Output => "output",
        }
    }

    /// Parses an NB101 op name.
    pub fn parse(name: &str) -> Result<Op, CellError> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == name.trim())
            .ok_or_else(|| CellError::UnknownOp(name.to_string()))
    }

    /// The label `hash_module` uses: -1 input, -2 output, else the index in [`Op::INTERIOR`].
    pub fn hash_label(self) -> i8 {
        match self {
            Op::Input => -1,
            Op::Output => -2,
            Op::Conv3x3 => 0,
            Op::Conv1x1 => 1,
            Op::MaxPool3x3 => 2,
        }
    }

    /// The column of arch2vec's one-hot encoding: input 0, conv1x1 1, conv3x3 2, maxpool 3,
    /// output 4 (not the hash order).
    pub fn arch2vec_index(self) -> usize {
        match self {
            Op::Input => 0,
            Op::Conv1x1 => 1,
            Op::Conv3x3 => 2,
            Op::MaxPool3x3 => 3,
            Op::Output => 4,
        }
    }

    pub fn from_arch2vec_index(i: usize) -> Option<Op> {
        [
            Op::Input,
            Op::Conv1x1,
            Op::Conv3x3,
            Op::MaxPool3x3,
            Op::Output,
        ]
        .get(i)
        .copied()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a matrix and ops do not describe a cell, or a cell is not in the NB101 space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    #[error("unknown op `{0}` (expected one of input, conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3, output)")]
    UnknownOp(String),
    #[error("the matrix must be square with one row per op: {rows} rows, {ops} ops")]
    Shape { rows: usize, ops: usize },
    #[error("a cell has at most {MAX_VERTICES} vertices, this one has {0}")]
    TooManyVertices(usize),
    #[error("matrix entries must be 0 or 1 (row {row}, column {col})")]
    NotBinary { row: usize, col: usize },
    #[error("the matrix must be strictly upper triangular (no self-loops, no backward edges): entry {row},{col} is 1")]
    NotUpperTriangular { row: usize, col: usize },
    #[error("the input is not connected to the output")]
    Disconnected,
    #[error("{0} edges after pruning; NB101 allows at most {MAX_EDGES}")]
    TooManyEdges(usize),
    #[error("the first op must be `input` and the last `output`, and only they")]
    BadEnds,
    #[error("a 0/1 string of {len} characters is not a square matrix")]
    BitsNotSquare { len: usize },
}

/// A cell as given: n vertices (n <= 7), `adj[i]` has bit j set for an edge i -> j.
/// Construction checks shape, binary entries, upper-triangularity and op names; whether the
/// cell lies in the NB101 space is [`Cell::prune`]'s and [`Cell::validate`]'s business.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    n: u8,
    adj: [u8; MAX_VERTICES],
    ops: [Op; MAX_VERTICES],
}

impl Cell {
    /// From a matrix (a list of rows) and ops.
    pub fn new<R: AsRef<[u8]>>(matrix: &[R], ops: &[Op]) -> Result<Cell, CellError> {
        let n = ops.len();
        if matrix.len() != n || matrix.iter().any(|r| r.as_ref().len() != n) {
            return Err(CellError::Shape {
                rows: matrix.len(),
                ops: n,
            });
        }
        if n > MAX_VERTICES {
            return Err(CellError::TooManyVertices(n));
        }
        let mut adj = [0u8; MAX_VERTICES];
        for (i, row) in matrix.iter().enumerate() {
            for (j, &v) in row.as_ref().iter().enumerate() {
                match v {
                    0 => {}
                    1 if j > i => adj[i] |= 1 << j,
                    1 => return Err(CellError::NotUpperTriangular { row: i, col: j }),
                    _ => return Err(CellError::NotBinary { row: i, col: j }),
                }
            }
        }
        let mut o = [Op::Input; MAX_VERTICES];
        o[..n].copy_from_slice(ops);
        Ok(Cell {
            n: n as u8,
            adj,
            ops: o,
        })
    }

    /// From raw rows (bit j of `adj[i]` = edge i -> j, j > i assumed) and ops; for enumeration.
    pub(crate) fn from_raw(n: usize, adj: [u8; MAX_VERTICES], ops: [Op; MAX_VERTICES]) -> Cell {
        Cell {
            n: n as u8,
            adj,
            ops,
        }
    }

    /// From NB101's tfrecord form: a row-major '0'/'1' string of n*n characters and op names
    /// separated by commas (`nasflow nb101 info --matrix BITS --ops OPS` takes the same).
    pub fn parse(bits: &str, ops: &str) -> Result<Cell, CellError> {
        let bits = bits.trim();
        let n = (bits.len() as f64).sqrt() as usize;
        if n * n != bits.len() {
            return Err(CellError::BitsNotSquare { len: bits.len() });
        }
        let ops = ops
            .split(',')
            .map(Op::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let mut rows = vec![vec![0u8; n]; n];
        for (k, c) in bits.bytes().enumerate() {
            rows[k / n][k % n] = match c {
                b'0' => 0,
                b'1' => 1,
                _ => {
                    return Err(CellError::NotBinary {
                        row: k / n,
                        col: k % n,
                    })
                }
            };
        }
        Cell::new(&rows, &ops)
    }

    pub fn num_vertices(&self) -> usize {
        self.n as usize
    }
    pub fn ops(&self) -> &[Op] {
        &self.ops[..self.n as usize]
    }
    /// Whether there is an edge i -> j.
    pub fn edge(&self, i: usize, j: usize) -> bool {
        self.adj[i] >> j & 1 == 1
    }
    /// Successor bitmask of vertex i.
    pub fn successors(&self, i: usize) -> u8 {
        self.adj[i]
    }
    pub fn num_edges(&self) -> usize {
        self.adj[..self.n as usize]
            .iter()
            .map(|r| r.count_ones() as usize)
            .sum()
    }
    pub fn out_degree(&self, v: usize) -> usize {
        self.adj[v].count_ones() as usize
    }
    pub fn in_degree(&self, v: usize) -> usize {
        (0..self.n as usize).filter(|&u| self.edge(u, v)).count()
    }
    /// The matrix as a list of rows.
    pub fn matrix(&self) -> Vec<Vec<u8>> {
        let n = self.n as usize;
        (0..n)
            .map(|i| (0..n).map(|j| self.edge(i, j) as u8).collect())
            .collect()
    }
    /// The row-major '0'/'1' string of NB101's tfrecord.
    pub fn bits(&self) -> String {
        self.matrix()
            .concat()
            .iter()
            .map(|&b| if b == 1 { '1' } else { '0' })
            .collect()
    }
    /// The op names joined by commas.
    pub fn ops_string(&self) -> String {
        self.ops()
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// NB101's pruning: drops every vertex not on an input -> output path, keeping the order of
    /// the rest. `Disconnected` when the input does not reach the output.
    pub fn prune(&self) -> Result<Cell, CellError> {
        let n = self.n as usize;
        if n == 0 {
            return Err(CellError::Disconnected);
        }
        let mut from_input = 1u8;
        for v in 0..n {
            if from_input >> v & 1 == 1 {
                from_input |= self.adj[v];
            }
        }
        let mut to_output = 1u8 << (n - 1);
        for v in (0..n).rev() {
            if self.adj[v] & to_output != 0 {
                to_output |= 1 << v;
            }
        }
        let keep = from_input & to_output;
        // NB101: invalid when more than n-2 vertices are extraneous, i.e. input and output are
        // not both kept. A single-vertex "cell" has input == output and is invalid too.
        if n < 2 || keep & 1 == 0 || keep >> (n - 1) & 1 == 0 {
            return Err(CellError::Disconnected);
        }
        let kept: Vec<usize> = (0..n).filter(|&v| keep >> v & 1 == 1).collect();
        let mut adj = [0u8; MAX_VERTICES];
        let mut ops = [Op::Input; MAX_VERTICES];
        for (a, &i) in kept.iter().enumerate() {
            ops[a] = self.ops[i];
            for (b, &j) in kept.iter().enumerate() {
                if self.edge(i, j) {
                    adj[a] |= 1 << b;
                }
            }
        }
        Ok(Cell {
            n: kept.len() as u8,
            adj,
            ops,
        })
    }

    /// NB101's `_check_spec` on an already pruned cell.
    pub fn validate(&self) -> Result<(), CellError> {
        let edges = self.num_edges();
        if edges > MAX_EDGES {
            return Err(CellError::TooManyEdges(edges));
        }
        let ops = self.ops();
        let ends_ok = ops.first() == Some(&Op::Input)
            && ops.last() == Some(&Op::Output)
            && ops.len() >= 2
            && ops[1..ops.len() - 1]
                .iter()
                .all(|o| Op::INTERIOR.contains(o));
        if !ends_ok {
            return Err(CellError::BadEnds);
        }
        Ok(())
    }

    /// Prunes and validates: the cell NB101 would train, or why it is not in the space.
    pub fn canonical(&self) -> Result<Cell, CellError> {
        let pruned = self.prune()?;
        pruned.validate()?;
        Ok(pruned)
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cell({} / {})", self.bits(), self.ops_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(rows: &[&[u8]], ops: &[Op]) -> Cell {
        Cell::new(rows, ops).unwrap()
    }

    #[test]
    fn parse_round_trips_bits_and_ops() {
        let c = Cell::parse(
            "0110001000010000",
            "input,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        assert_eq!(c.num_vertices(), 4);
        assert_eq!(c.bits(), "0110001000010000");
        assert_eq!(c.ops_string(), "input,conv3x3-bn-relu,maxpool3x3,output");
        assert_eq!(c.num_edges(), 4);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(
            Cell::parse("01100", "input,output").unwrap_err(),
            CellError::BitsNotSquare { len: 5 }
        );
        assert!(matches!(
            Cell::parse("0100", "input,conv5x5").unwrap_err(),
            CellError::UnknownOp(_)
        ));
        assert!(matches!(
            Cell::parse("0010", "input,output").unwrap_err(),
            CellError::NotUpperTriangular { row: 1, col: 0 }
        ));
        assert!(matches!(
            Cell::parse("0200", "input,output").unwrap_err(),
            CellError::NotBinary { .. }
        ));
        assert!(matches!(
            Cell::parse("0100", "input,conv3x3-bn-relu,output").unwrap_err(),
            CellError::Shape { .. }
        ));
    }

    #[test]
    fn prune_removes_vertices_off_every_input_output_path() {
        use Op::*;
        // 0->1->3, 0->2 (2 is a dead end), 1->3 ; vertex 2 reaches nothing.
        let c = cell(
            &[&[0, 1, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 0], &[0, 0, 0, 0]],
            &[Input, Conv3x3, MaxPool3x3, Output],
        );
        let p = c.prune().unwrap();
        assert_eq!(p.ops(), &[Input, Conv3x3, Output]);
        assert_eq!(
            p.matrix(),
            vec![vec![0, 1, 0], vec![0, 0, 1], vec![0, 0, 0]]
        );
        // A vertex not reachable from the input goes too.
        let c = cell(
            &[&[0, 0, 1], &[0, 0, 1], &[0, 0, 0]],
            &[Input, Conv1x1, Output],
        );
        assert_eq!(c.prune().unwrap().num_vertices(), 2);
        // Input not connected to output.
        let c = cell(
            &[&[0, 1, 0], &[0, 0, 0], &[0, 0, 0]],
            &[Input, Conv1x1, Output],
        );
        assert_eq!(c.prune().unwrap_err(), CellError::Disconnected);
    }

    #[test]
    fn validity_follows_nb101() {
        use Op::*;
        // Ten edges on 7 vertices: too many.
        let mut rows = vec![vec![0u8; 7]; 7];
        let mut k = 0;
        'outer: for i in 0..7 {
            for j in i + 1..7 {
                if k == 10 {
                    break 'outer;
                }
                rows[i][j] = 1;
                k += 1;
            }
        }
        for r in rows.iter_mut().take(6) {
            r[6] = 1;
        }
        let ops = [Input, Conv3x3, Conv3x3, Conv3x3, Conv3x3, Conv3x3, Output];
        let c = Cell::new(&rows, &ops).unwrap();
        assert!(matches!(c.canonical(), Err(CellError::TooManyEdges(_))));
        let c = cell(&[&[0, 1], &[0, 0]], &[Output, Input]);
        assert_eq!(c.canonical().unwrap_err(), CellError::BadEnds);
        let c = cell(
            &[&[0, 1, 0], &[0, 0, 1], &[0, 0, 0]],
            &[Input, Input, Output],
        );
        assert_eq!(c.canonical().unwrap_err(), CellError::BadEnds);
        let c = cell(&[&[0, 1], &[0, 0]], &[Input, Output]);
        assert!(c.canonical().is_ok());
    }
}
