//! NB201 cells: nodes 0 (the input) to 3 (the output), an edge from every node to every later
//! one, each edge one of five ops; node `j` sums its incoming edges' outputs. The arch string
//! lists the edges into node 1, then node 2, then node 3, each as `op~SOURCE`:
//! `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|`.

/// An edge's op, in NB201's order (its `CellStructure` search space list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    None,
    SkipConnect,
    Conv1x1,
    Conv3x3,
    AvgPool3x3,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::None,
        Op::SkipConnect,
        Op::Conv1x1,
        Op::Conv3x3,
        Op::AvgPool3x3,
    ];

    /// The name NB201's arch strings use.
    pub fn name(self) -> &'static str {
        match self {
            Op::None => "none",
            Op::SkipConnect => "skip_connect",
            Op::Conv1x1 => "nor_conv_1x1",
            Op::Conv3x3 => "nor_conv_3x3",
            Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == name)
    }

    fn index(self) -> usize {
        Op::ALL
            .iter()
            .position(|&o| o == self)
            .expect("every op is listed")
    }
}

/// The six edges (source, target), in arch-string order.
pub const EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)];

/// How many cells the space holds: 5^6.
pub const CELLS: usize = 15_625;

/// Why an arch string is not an NB201 cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("arch string {0:?}: expected 3 nodes separated by `+`, each `|op~source|...|` (e.g. `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|`)")]
    Shape(String),
    #[error("arch string {arch:?}: unknown op {op:?} (one of none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)")]
    Op { arch: String, op: String },
    #[error(
        "arch string {arch:?}: node {node} lists source {found:?} where source {expected} belongs"
    )]
    Source {
        arch: String,
        node: usize,
        expected: usize,
        found: String,
    },
}

/// A cell: the op of each edge, in [`EDGES`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub ops: [Op; 6],
}

impl Cell {
    /// Cell number `i` of nasflow's order (edge `e`'s op is digit `e` of `i` in base 5, ops in
    /// [`Op::ALL`] order). NB201's own arch index, the order of its benchmark file, is another.
    pub fn from_index(mut i: usize) -> Option<Cell> {
        if i >= CELLS {
            return None;
        }
        let mut ops = [Op::None; 6];
        for op in &mut ops {
            *op = Op::ALL[i % 5];
            i /= 5;
        }
        Some(Cell { ops })
    }

    pub fn index(&self) -> usize {
        self.ops.iter().rev().fold(0, |acc, o| acc * 5 + o.index())
    }

    /// Every cell, in index order.
    pub fn all() -> impl Iterator<Item = Cell> {
        (0..CELLS).filter_map(Cell::from_index)
    }

    pub fn parse(arch: &str) -> Result<Cell, ArchError> {
        let nodes: Vec<&str> = arch.split('+').collect();
        let shape = || ArchError::Shape(arch.to_string());
        if nodes.len() != 3 {
            return Err(shape());
        }
        let mut ops = Vec::with_capacity(6);
        for (k, node) in nodes.iter().enumerate() {
            let inner = node
                .strip_prefix('|')
                .and_then(|n| n.strip_suffix('|'))
                .ok_or_else(shape)?;
            let parts: Vec<&str> = inner.split('|').collect();
            if parts.len() != k + 1 {
                return Err(shape());
            }
            for (source, part) in parts.iter().enumerate() {
                let (op, src) = part.split_once('~').ok_or_else(shape)?;
                if src != source.to_string() {
                    return Err(ArchError::Source {
                        arch: arch.to_string(),
                        node: k + 1,
                        expected: source,
                        found: src.to_string(),
                    });
                }
                let op = Op::from_name(op).ok_or_else(|| ArchError::Op {
                    arch: arch.to_string(),
                    op: op.to_string(),
                })?;
                ops.push(op);
            }
        }
        Ok(Cell {
            ops: ops.try_into().expect("1 + 2 + 3 edges"),
        })
    }

    pub fn arch_string(&self) -> String {
        let mut nodes = Vec::new();
        let mut e = 0;
        for target in 1..4 {
            let parts: Vec<String> = (0..target)
                .map(|source| {
                    let s = format!("{}~{source}", self.ops[e].name());
                    e += 1;
                    s
                })
                .collect();
            nodes.push(format!("|{}|", parts.join("|")));
        }
        nodes.join("+")
    }

    /// NB201's isomorphism key: the text its authors' `Structure.to_unique_str(consider_zero=True)`
    /// builds (D-X-Y/AutoDL-Projects `xautodl/models/cell_searchs/genotypes.py`). Node 0 is `0`;
    /// an edge gives `#` (zero) when its op is `none` or its source's text is exactly `#`, its
    /// source's text for `skip_connect`, else `(source)@op`; a node joins its edges' texts,
    /// sorted, with `+`, zeros kept. Two cells with equal keys are one network up to isomorphism;
    /// the space has 6,466 keys, the count the authors publish (NATS-Bench issue 43). Unlike
    /// [`Cell::expression`] it keeps `#` terms in sums, so it merges fewer cells.
    pub fn unique_str(&self) -> String {
        let mut node = vec!["0".to_string()];
        for target in 1..4 {
            let mut terms: Vec<String> = EDGES
                .iter()
                .enumerate()
                .filter(|(_, &(_, t))| t == target)
                .map(|(e, &(source, _))| match self.ops[e] {
                    _ if self.ops[e] == Op::None || node[source] == "#" => "#".to_string(),
                    Op::SkipConnect => node[source].clone(),
                    op => format!("({})@{}", node[source], op.name()),
                })
                .collect();
            terms.sort();
            node.push(terms.join("+"));
        }
        node.pop().expect("four nodes")
    }

    /// Whether some path of non-`none` edges leads from the input to the output (15,284 cells).
    pub fn is_connected(&self) -> bool {
        self.reach()[3]
    }

    /// Whether every non-`none` edge lies on a path of non-`none` edges from the input to the
    /// output: no op computes something the output never sees, or sees nothing (9,444 cells).
    /// zc_combine's "valid" networks are these and the all-`none` cell (9,445).
    pub fn has_no_dangling_op(&self) -> bool {
        let forward = self.reach();
        let mut backward = [false, false, false, true];
        for source in (0..3).rev() {
            backward[source] = EDGES
                .iter()
                .enumerate()
                .any(|(e, &(s, t))| s == source && backward[t] && self.ops[e] != Op::None);
        }
        forward[3]
            && EDGES
                .iter()
                .enumerate()
                .all(|(e, &(s, t))| self.ops[e] == Op::None || (forward[s] && backward[t]))
    }

    /// Which nodes a path of non-`none` edges from the input reaches.
    fn reach(&self) -> [bool; 4] {
        let mut reached = [true, false, false, false];
        for target in 1..4 {
            reached[target] = EDGES
                .iter()
                .enumerate()
                .any(|(e, &(s, t))| t == target && reached[s] && self.ops[e] != Op::None);
        }
        reached
    }

    /// What the cell computes, as a canonical text: each node is the sorted sum of its terms,
    /// a `none` edge adds nothing, a `skip_connect` edge adds its source's terms, another op adds
    /// `op(source)`, and a node without terms is zero (`0`). Cells that compute the same function
    /// of the input for every weight value get equal texts (the sum is commutative; weights are
    /// per edge, so two convolutions of the same input stay two terms).
    pub fn expression(&self) -> String {
        let mut node: Vec<Vec<String>> = vec![vec!["x".to_string()]];
        for target in 1..4 {
            let mut terms = Vec::new();
            for (e, &(source, t)) in EDGES.iter().enumerate() {
                if t != target || self.ops[e] == Op::None || node[source].is_empty() {
                    continue;
                }
                let src = &node[source];
                match self.ops[e] {
                    Op::SkipConnect => terms.extend(src.iter().cloned()),
                    op => terms.push(format!("{}({})", op.name(), src.join("+"))),
                }
            }
            terms.sort();
            node.push(terms);
        }
        match node[3].is_empty() {
            true => "0".to_string(),
            false => node[3].join("+"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_cell_round_trips_through_its_index_and_arch_string() {
        let mut seen = HashSet::new();
        for (i, c) in Cell::all().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Cell::parse(&c.arch_string()).unwrap(), c);
            seen.insert(c.arch_string());
        }
        assert_eq!(seen.len(), CELLS);
        assert_eq!(Cell::from_index(CELLS), None);
        let a = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|";
        let c = Cell::parse(a).unwrap();
        assert_eq!(
            c.ops[2],
            Op::SkipConnect,
            "node 2's second edge comes from node 1"
        );
        assert_eq!(c.arch_string(), a);
    }

    #[test]
    fn bad_arch_strings_say_what_is_wrong() {
        let e = Cell::parse("|nor_conv_3x3~0|").unwrap_err();
        assert!(matches!(e, ArchError::Shape(_)), "{e}");
        let e = Cell::parse("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|").unwrap_err();
        assert!(e.to_string().contains("unknown op \"conv\""), "{e}");
        let e = Cell::parse("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|").unwrap_err();
        assert!(
            e.to_string()
                .contains("node 2 lists source \"1\" where source 0 belongs"),
            "{e}"
        );
    }

    #[test]
    fn equivalent_cells_compute_the_same_expression() {
        let p = |s: &str| Cell::parse(s).unwrap();
        // Output cut off from the input: zero, whatever the rest.
        let zero = p("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|");
        assert_eq!(zero.expression(), "0");
        // A skip into node 1 and a conv from node 1, or the conv from the input directly.
        let via_skip = p("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|");
        let direct = p("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|");
        assert_eq!(via_skip.expression(), direct.expression());
        // Sums commute: the same two terms reach the output by different edges.
        let a =
            p("|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|");
        let b =
            p("|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|");
        assert_eq!(a.expression(), b.expression());
        assert_ne!(a.expression(), direct.expression());
        // Under this definition the space has 4,930 classes and 341 cells compute zero: it
        // merges more than NB201's own key (`unique_str`, 6,466), which keeps zero terms.
        let classes: HashSet<String> = Cell::all().map(|c| c.expression()).collect();
        assert_eq!(classes.len(), 4930);
        assert_eq!(Cell::all().filter(|c| c.expression() == "0").count(), 341);
    }

    #[test]
    fn the_space_has_the_published_6466_isomorphism_classes() {
        // D-X-Y/NATS-Bench issue 43 (the authors' notebook issue-12): 6,466 unique
        // architectures in NB201's 15,625, by `to_unique_str(consider_zero=True)`.
        let keys: HashSet<String> = Cell::all().map(|c| c.unique_str()).collect();
        assert_eq!(keys.len(), 6466);
        assert_eq!(Cell::all().filter(|c| c.is_connected()).count(), 15284);
        assert_eq!(Cell::all().filter(|c| c.has_no_dangling_op()).count(), 9444);
    }

    #[test]
    fn isomorphic_cells_share_the_key_and_others_do_not() {
        let p = |s: &str| Cell::parse(s).unwrap();
        // A skip in front of a conv, or the conv straight from the input: one network.
        let via_skip = p("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|");
        let plain = p("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|");
        assert_eq!(via_skip.unique_str(), "#+#+(0)@nor_conv_3x3");
        assert_eq!(via_skip.unique_str(), plain.unique_str());
        // A conv through node 1 and a pool straight to the output, or the other way round.
        let a = p("|nor_conv_1x1~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|");
        let b = p("|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|");
        assert_eq!(a.unique_str(), b.unique_str());
        assert_ne!(plain.unique_str(), a.unique_str());
        // The authors' key keeps a zero term inside an op's input (`(#+0)`): this cell computes
        // what `plain` does, yet is its own class there; `expression` merges them.
        let direct = p("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|");
        assert_eq!(direct.unique_str(), "#+#+(#+0)@nor_conv_3x3");
        assert_eq!(plain.expression(), direct.expression());
    }
}
