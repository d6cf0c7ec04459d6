//! Regularized evolution's mutation of an NB101 cell, each as its source writes it (the
//! `mutation` param):
//!
//! - `naslib` (automl/NASLib `naslib/search_spaces/nasbench101/graph.py`, `mutate`): flip each
//!   of the 21 upper-triangle edges of the 7-vertex spec with probability 1/7, then change each
//!   of the 5 interior ops with probability 1/3 to one of the two others; draw again from the
//!   same parent until the spec is valid. A child equal to its parent is valid and kept.
//! - `naszilla` (naszilla `nas_bench_101/mutations.py`, `adj_mutate`): the same with
//!   probabilities `rate`/21 per edge and `rate`/5 per op, `rate` starting at 1 and raised by 1
//!   after every 5,000 invalid draws (its `patience`).
//! - `one-edit`: nasflow's earlier operator, kept for comparison: one of the 31 single edits
//!   (21 edge flips, 5 ops x 2 others) drawn uniformly, drawn again while the result is invalid
//!   or the parent's own cell.
//!
//! The parent is the spec as its sources keep it: 7 vertices, unpruned (a child keeps the
//! extraneous edges and ops its mutation made; a cell drawn from the table is padded back to 7
//! vertices, as NB101's API and NASLib's `convert_to_cell` do).
//!
//! On a table that holds part of the space (nb101-10k, the pretrained networks), a valid child
//! that is not in the table is drawn again from the same parent, as an invalid one is, and
//! counted (`outside_table`). A mutation that finds no child in the table within
//! [`MAX_PROPOSALS`] proposals fails; there is no fallback to a random cell.
use rand::RngExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::edits::{self, Lookup};
use crate::nb101::cell::MAX_VERTICES;
use crate::nb101::{module_hash, Cell, Op};

/// Proposals one mutation may draw (invalid, outside the table or, for `one-edit`, no change)
/// before it fails: two of naszilla's patience rounds, so its rate raise is reached.
pub const MAX_PROPOSALS: usize = 10_000;
/// naszilla's `patience`: invalid draws before its mutation rate is raised by 1.
pub const NASZILLA_PATIENCE: usize = 5_000;
/// The upper-triangle edges of a 7-vertex spec.
const EDGES: usize = MAX_VERTICES * (MAX_VERTICES - 1) / 2;
/// The interior vertices whose op may change.
const OP_SPOTS: usize = MAX_VERTICES - 2;

/// The mutation operator (the `mutation` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Mutation {
    /// NASLib's NB101 `mutate`: each edge flipped w.p. 1/7, each interior op changed w.p. 1/3
    #[default]
    #[serde(rename = "naslib")]
    Naslib,
    /// naszilla's `adj_mutate`: each edge w.p. 1/21, each op w.p. 1/5; the rate + 1 after 5,000 invalid draws
    #[serde(rename = "naszilla")]
    Naszilla,
    /// one uniformly drawn edge flip or op change (nasflow's earlier operator; no reference)
    #[serde(rename = "one-edit")]
    OneEdit,
}

impl Mutation {
    pub fn name(self) -> &'static str {
        match self {
            Mutation::Naslib => "naslib",
            Mutation::Naszilla => "naszilla",
            Mutation::OneEdit => "one-edit",
        }
    }
}

/// A 7-vertex spec as the references mutate it: rows of successor bits and ops, unpruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    adj: [u8; MAX_VERTICES],
    ops: [Op; MAX_VERTICES],
}

impl Spec {
    /// A table cell padded back to 7 vertices ([`edits::padded`]).
    pub fn of(cell: &Cell) -> Spec {
        let (m, o) = edits::padded(cell);
        let mut s = Spec {
            adj: [0; MAX_VERTICES],
            ops: [Op::Conv3x3; MAX_VERTICES],
        };
        for (i, row) in m.iter().enumerate() {
            s.ops[i] = o[i];
            s.adj[i] = row.iter().enumerate().fold(0, |a, (j, &b)| a | b << j);
        }
        s
    }
    fn flip(&mut self, i: usize, j: usize) {
        self.adj[i] ^= 1 << j;
    }
    /// Changes the op of vertex `v` to one of the two others, drawn uniformly.
    fn change_op(&mut self, v: usize, rng: &mut impl rand::Rng) {
        let others: Vec<Op> = Op::INTERIOR
            .into_iter()
            .filter(|&o| o != self.ops[v])
            .collect();
        self.ops[v] = others[rng.random_range(0..others.len())];
    }
    /// The cell NB101 would train (pruned, validated), or `None` outside the space.
    pub fn cell(&self) -> Option<Cell> {
        Cell::from_raw(MAX_VERTICES, self.adj, self.ops)
            .canonical()
            .ok()
    }
}

/// One proposal: the child spec and how many edges and ops it changed (before validation).
#[derive(Clone, Copy, Debug)]
pub struct Proposal {
    pub spec: Spec,
    pub flips: usize,
    pub changes: usize,
}

/// Draws one proposal from `parent` (`rate`: naszilla's mutation rate; 1 for the others).
pub fn propose(kind: Mutation, parent: &Spec, rate: f64, rng: &mut impl rand::Rng) -> Proposal {
    let (p_edge, p_op) = match kind {
        Mutation::Naslib => (1.0 / MAX_VERTICES as f64, 1.0 / Op::INTERIOR.len() as f64),
        Mutation::Naszilla => (rate / EDGES as f64, rate / OP_SPOTS as f64),
        Mutation::OneEdit => return one_edit(parent, rng),
    };
    let mut p = Proposal {
        spec: *parent,
        flips: 0,
        changes: 0,
    };
    for i in 0..MAX_VERTICES - 1 {
        for j in i + 1..MAX_VERTICES {
            if rng.random::<f64>() < p_edge {
                p.spec.flip(i, j);
                p.flips += 1;
            }
        }
    }
    for v in 1..=OP_SPOTS {
        if rng.random::<f64>() < p_op {
            p.spec.change_op(v, rng);
            p.changes += 1;
        }
    }
    p
}

/// One of the 31 single edits, drawn uniformly.
fn one_edit(parent: &Spec, rng: &mut impl rand::Rng) -> Proposal {
    let mut p = Proposal {
        spec: *parent,
        flips: 0,
        changes: 0,
    };
    let k = rng.random_range(0..EDGES + 2 * OP_SPOTS);
    if k < EDGES {
        let (i, j) = edits::edge_of(k);
        p.spec.flip(i, j);
        p.flips = 1;
    } else {
        let v = 1 + (k - EDGES) / 2;
        let others: Vec<Op> = Op::INTERIOR
            .into_iter()
            .filter(|&o| o != p.spec.ops[v])
            .collect();
        p.spec.ops[v] = others[(k - EDGES) % 2];
        p.changes = 1;
    }
    p
}

/// What one run's mutations cost: proposals outside the space, valid ones outside the table,
/// and mutations that failed (no child in the table within [`MAX_PROPOSALS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub invalid: usize,
    pub outside_table: usize,
    pub failed: usize,
    /// naszilla's rate raises (after [`NASZILLA_PATIENCE`] invalid draws in one mutation).
    pub raises: usize,
}

/// A child of `parent` that is in the table: its table position and spec; `None` when the
/// mutation failed (counted in `counts.failed`).
pub fn mutate(
    kind: Mutation,
    lookup: &Lookup,
    parent: &Spec,
    rng: &mut impl rand::Rng,
    counts: &mut Counts,
) -> Option<(usize, Spec)> {
    let own = parent.cell().map(|c| module_hash(&c));
    let mut rate = 1.0;
    let mut invalid_streak = 0;
    for _ in 0..MAX_PROPOSALS {
        if kind == Mutation::Naszilla && invalid_streak == NASZILLA_PATIENCE {
            rate += 1.0;
            invalid_streak = 0;
            counts.raises += 1;
        }
        let p = propose(kind, parent, rate, rng);
        let Some(cell) = p.spec.cell() else {
            counts.invalid += 1;
            invalid_streak += 1;
            continue;
        };
        let h = module_hash(&cell);
        if kind == Mutation::OneEdit && Some(h) == own {
            continue;
        }
        match lookup.get(&h) {
            Some(j) => return Some((j, p.spec)),
            None => {
                counts.outside_table += 1;
                invalid_streak += 1;
            }
        }
    }
    counts.failed += 1;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images;
    use crate::search::evolution::tests::full_table;
    use crate::space::Arch;

    /// Mean edge flips and op changes over 10,000 proposals from one parent.
    fn rates(kind: Mutation) -> (f64, f64) {
        let parent = Spec::of(&crate::search::tests::tiny_cell());
        let mut rng = images::rng(11, 0);
        let n = 10_000;
        let (mut f, mut c) = (0, 0);
        for _ in 0..n {
            let p = propose(kind, &parent, 1.0, &mut rng);
            f += p.flips;
            c += p.changes;
        }
        (f as f64 / n as f64, c as f64 / n as f64)
    }

    #[test]
    fn proposals_change_edges_and_ops_at_each_sources_rates() {
        // NASLib: 21 edges x 1/7 = 3.0 flips (sd of the mean sqrt(21/7*6/7/1e4) = 0.016) and
        // 5 ops x 1/3 = 1.67 changes (sd 0.011). naszilla: 1.0 and 1.0 (sd 0.010 and 0.009).
        let (f, c) = rates(Mutation::Naslib);
        assert!((f - 3.0).abs() < 0.07, "naslib flips {f}");
        assert!((c - 5.0 / 3.0).abs() < 0.05, "naslib op changes {c}");
        let (f, c) = rates(Mutation::Naszilla);
        assert!((f - 1.0).abs() < 0.05, "naszilla flips {f}");
        assert!((c - 1.0).abs() < 0.05, "naszilla op changes {c}");
        let (f, c) = rates(Mutation::OneEdit);
        assert_eq!(f + c, 1.0, "one edit per proposal");
        assert!((f - 21.0 / 31.0).abs() < 0.03, "one-edit flips {f}");
    }

    #[test]
    fn an_op_change_picks_one_of_the_two_other_ops() {
        let parent = Spec::of(&crate::search::tests::tiny_cell());
        let mut rng = images::rng(3, 0);
        for _ in 0..200 {
            let p = propose(Mutation::Naslib, &parent, 1.0, &mut rng);
            let changed = (1..=OP_SPOTS)
                .filter(|&v| p.spec.ops[v] != parent.ops[v])
                .count();
            assert_eq!(changed, p.changes);
            assert!(p.spec.ops[1..=OP_SPOTS]
                .iter()
                .all(|o| Op::INTERIOR.contains(o)));
            assert_eq!((p.spec.ops[0], p.spec.ops[6]), (Op::Input, Op::Output));
        }
    }

    #[test]
    fn a_padded_cell_prunes_back_to_itself() {
        let t = full_table();
        for i in (0..t.len()).step_by(4999) {
            let c = *t.cells[i].nb101().unwrap();
            assert_eq!(Spec::of(&c).cell(), Some(c));
        }
    }

    #[test]
    fn children_are_table_cells_and_a_table_without_any_fails_the_mutation() {
        let full = full_table();
        let lookup = Lookup::new(&full);
        let mut rng = images::rng(5, 0);
        let parent = Spec::of(full.cells[1234].nb101().unwrap());
        for kind in [Mutation::Naslib, Mutation::Naszilla, Mutation::OneEdit] {
            let mut counts = Counts::default();
            let (j, spec) = mutate(kind, &lookup, &parent, &mut rng, &mut counts).unwrap();
            assert_eq!(
                spec.cell().map(Arch::Nb101),
                Some(full.cells[j]),
                "{kind:?}"
            );
            assert_eq!(counts.outside_table, 0, "the whole space: nothing outside");
        }
        // A table of one cell: every valid child but the parent itself is outside it. one-edit
        // never proposes the parent, so it fails after MAX_PROPOSALS draws: no random cell.
        let mut one = full.clone();
        one.hashes.truncate(1);
        one.cells.truncate(1);
        let lookup = Lookup::new(&one);
        let mut counts = Counts::default();
        let parent = Spec::of(one.cells[0].nb101().unwrap());
        let child = mutate(Mutation::OneEdit, &lookup, &parent, &mut rng, &mut counts);
        assert_eq!(child, None);
        assert_eq!(counts.failed, 1);
        assert!(counts.outside_table + counts.invalid <= MAX_PROPOSALS);
        assert!(counts.outside_table > 0);
    }

    #[test]
    fn naszilla_raises_its_rate_after_its_patience() {
        // A parent of 5 unconnected maxpools (only input -> output), and a table holding only
        // the chain of 5 conv1x1s: no proposal reaches it (5 op changes and 7 edge flips), so
        // the mutation fails after MAX_PROPOSALS draws, having raised naszilla's rate once (at
        // draw 5,000); NASLib's operator never raises.
        let matrix = |edges: &[(usize, usize)]| {
            let mut m = vec![vec![0u8; MAX_VERTICES]; MAX_VERTICES];
            for &(i, j) in edges {
                m[i][j] = 1;
            }
            m
        };
        let with_ops = |op| {
            let mut ops = [op; MAX_VERTICES];
            (ops[0], ops[6]) = (Op::Input, Op::Output);
            ops
        };
        let parent = Cell::new(&matrix(&[(0, 6)]), &with_ops(Op::MaxPool3x3)).unwrap();
        let parent = Spec::of(&parent);
        let chain = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)];
        let target = Cell::new(&matrix(&chain), &with_ops(Op::Conv1x1)).unwrap();
        let mut table = crate::search::tests::table(1, 1);
        table.cells[0] = Arch::Nb101(target);
        table.hashes[0] = module_hash(&target);
        let lookup = Lookup::new(&table);
        let mut rng = images::rng(2, 0);
        for (kind, raises) in [(Mutation::Naszilla, 1), (Mutation::Naslib, 0)] {
            let mut counts = Counts::default();
            let child = mutate(kind, &lookup, &parent, &mut rng, &mut counts);
            assert_eq!(child, None, "{kind:?}");
            assert_eq!(counts.raises, raises, "{kind:?}");
            assert_eq!(counts.invalid + counts.outside_table, MAX_PROPOSALS);
        }
    }
}
