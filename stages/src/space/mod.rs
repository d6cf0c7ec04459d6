//! The search spaces nasflow covers, behind one type: [`SearchSpace`] names a space (a param of
//! `sample`), [`Arch`] is one network's cell in its space. Stages that handle cells go through
//! `Arch`'s methods, which dispatch once per space; each space's code stays in its module
//! (`nb101`, `nb201`).
//!
//! A labeled network travels between stages as one line of `items.jsonl`:
//! - NB101: `{"hash", "matrix", "ops", "split"}` (NB101's module hash, its stored matrix and op
//!   names), as before NB201 existed;
//! - NB201: `{"space": "nb201", "hash", "arch", "split"}`, `hash` the md5 of the cell's
//!   isomorphism key (`nb201::Cell::unique_str`), so that equivalent cells hash equal.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::nb101::params::Skeleton;
use crate::nb101::{self, module_hash, Arch2vec, ModuleHash};
use crate::nb201;

mod cells;
pub use cells::{CellList, CellListError};

/// A search space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchSpace {
    /// NAS-Bench-101: 423,624 cells of up to 7 vertices (ops on vertices)
    #[default]
    Nb101,
    /// NAS-Bench-201: 15,625 cells of 4 nodes and 6 edges (ops on edges), its table built in
    Nb201,
}

impl SearchSpace {
    pub fn name(self) -> &'static str {
        match self {
            SearchSpace::Nb101 => "nb101",
            SearchSpace::Nb201 => "nb201",
        }
    }
}

impl SearchSpace {
    /// arch2vec's graph of a cell: (nodes, labels of the one-hot). NB101: 7 vertices, 5 ops;
    /// NB201: 8 nodes (input, six edge ops, output), 7 labels.
    pub fn graph_size(self) -> (usize, usize) {
        match self {
            SearchSpace::Nb101 => (nb101::cell::MAX_VERTICES, nb101::encode::OPS),
            SearchSpace::Nb201 => (nb201::encode::NODES, nb201::encode::LABELS),
        }
    }

    /// A decoded graph (`rows`: upper-triangle adjacency; `labels`: each node's argmax label)
    /// judged as arch2vec does: `None` when invalid, else the graph's hash (uniqueness counts
    /// distinct hashes). NB101: valid when NB101 accepts the cell (pruned), hashed unpruned.
    /// NB201 (`is_valid_nasbench201`): node 0 the input, the last the output, nodes 2 to 6 one
    /// of the five ops (node 1 is not checked: arch2vec's loop starts at 2), the adjacency not
    /// checked; hashed with `hash_module` of the graph and its labels.
    pub fn decoded(self, rows: &[Vec<u8>], labels: &[usize]) -> Option<ModuleHash> {
        let hash = || {
            let l: Vec<i64> = labels.iter().map(|&k| k as i64).collect();
            nb101::hash::hash_graph(rows, &l)
        };
        match self {
            SearchSpace::Nb101 => {
                let ops: Option<Vec<nb101::Op>> = labels
                    .iter()
                    .map(|&k| nb101::Op::from_arch2vec_index(k))
                    .collect();
                let ok = nb101::Cell::new(rows, &ops?)
                    .and_then(|c| c.canonical())
                    .is_ok();
                ok.then(hash)
            }
            SearchSpace::Nb201 => {
                let (n, l) = self.graph_size();
                let op = |k: usize| (1..l - 1).contains(&k);
                let ok = labels.len() == n
                    && labels[0] == 0
                    && labels[n - 1] == l - 1
                    && labels[2..n - 1].iter().all(|&k| op(k));
                ok.then(hash)
            }
        }
    }
}

/// One network's cell, in its space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Nb101(nb101::Cell),
    Nb201(nb201::Cell),
}

/// Why an item is not a network.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("not a network: {0}")]
    Shape(String),
    #[error("invalid cell: {0}")]
    Cell(String),
    #[error("the cell hashes to {found}, not {given}")]
    Hash {
        found: ModuleHash,
        given: ModuleHash,
    },
}

impl Arch {
    pub fn space(&self) -> SearchSpace {
        match self {
            Arch::Nb101(_) => SearchSpace::Nb101,
            Arch::Nb201(_) => SearchSpace::Nb201,
        }
    }

    /// Appends arch2vec's graph of the cell to flat buffers: the one-hot labels (nodes x
    /// labels) and the adjacency (nodes x nodes), sizes as [`SearchSpace::graph_size`].
    pub fn push_graph(&self, ops: &mut Vec<f32>, adj: &mut Vec<f32>) {
        match self {
            Arch::Nb101(c) => {
                let e = Arch2vec::encode(c);
                ops.extend(e.ops.iter().flatten().map(|&v| v as f32));
                adj.extend(e.adj.iter().flatten().map(|&v| v as f32));
            }
            Arch::Nb201(c) => {
                ops.extend(
                    nb201::encode::one_hot(c)
                        .iter()
                        .flatten()
                        .map(|&v| v as f32),
                );
                adj.extend(nb201::encode::ADJACENCY.iter().flatten().map(|&v| v as f32));
            }
        }
    }

    /// The cell's identity in tables, latent lists and searches: NB101's module hash (one cell
    /// per hash in NB101's space), the md5 of the arch string for NB201 (each of the 15,625
    /// cells its own: NB201 trained and measured every one, equivalent or not).
    pub fn id(&self) -> ModuleHash {
        match self {
            Arch::Nb101(c) => module_hash(c),
            Arch::Nb201(c) => ModuleHash(md5::compute(c.arch_string()).0),
        }
    }

    /// The NB101 cell, if it is one.
    pub fn nb101(&self) -> Option<&nb101::Cell> {
        match self {
            Arch::Nb101(c) => Some(c),
            Arch::Nb201(_) => None,
        }
    }

    /// The plain encoding predictors read: NB101's flattened 7x7 adjacency and 7x5 one-hot ops;
    /// NB201's one-hot op of each of its six edges (6 x 5, NASLib's `adjacency_one_hot`: the
    /// adjacency is fixed).
    pub fn plain_encoding(&self) -> Vec<f64> {
        match self {
            Arch::Nb101(c) => {
                let e = Arch2vec::encode(c);
                let adj = e.adj.iter().flatten();
                adj.chain(e.ops.iter().flatten())
                    .map(|&v| v as f64)
                    .collect()
            }
            Arch::Nb201(c) => c
                .ops
                .iter()
                .flat_map(|&op| nb201::Op::ALL.map(|o| f64::from(u8::from(o == op))))
                .collect(),
        }
    }

    /// The cell's hash: equal for equivalent cells (NB101's module hash; for NB201 the md5 of
    /// the authors' isomorphism key).
    pub fn hash(&self) -> ModuleHash {
        match self {
            Arch::Nb101(c) => module_hash(c),
            Arch::Nb201(c) => ModuleHash(md5::compute(c.unique_str()).0),
        }
    }

    /// The network's trainable parameters for `sk`'s sizes.
    pub fn trainable_parameters(&self, sk: &Skeleton) -> usize {
        match self {
            Arch::Nb101(c) => nb101::params::trainable_parameters(c, sk),
            Arch::Nb201(c) => nb201::params::trainable_parameters(c, sk),
        }
    }

    /// Multiply-accumulates of the network's forward pass on one `side` x `side` image.
    pub fn multiply_accumulates(&self, sk: &Skeleton, side: usize) -> u64 {
        match self {
            Arch::Nb101(c) => nb101::params::multiply_accumulates(c, sk, side),
            Arch::Nb201(c) => nb201::params::multiply_accumulates(c, sk, side),
        }
    }

    /// The cell's fields of an `items.jsonl` line (and of pretrain's `network.json`).
    pub fn fields(&self) -> Value {
        match self {
            Arch::Nb101(c) => json!({
                "hash": module_hash(c),
                "matrix": c.matrix(),
                "ops": c.ops().iter().map(|o| o.name()).collect::<Vec<_>>(),
            }),
            Arch::Nb201(c) => json!({
                "space": "nb201",
                "hash": self.hash(),
                "arch": c.arch_string(),
            }),
        }
    }

    /// One labeled network as `items.jsonl` holds it.
    pub fn item_json(&self, split: &str) -> Value {
        let mut v = self.fields();
        v["split"] = json!(split);
        v
    }

    /// The cell of an item's (or `network.json`'s) fields; its `hash` must match.
    pub fn from_fields(v: &Value) -> Result<Arch, ItemError> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            space: SearchSpace,
            hash: ModuleHash,
            #[serde(default)]
            matrix: Vec<Vec<u8>>,
            #[serde(default)]
            ops: Vec<String>,
            #[serde(default)]
            arch: String,
        }
        let f: Fields =
            serde_json::from_value(v.clone()).map_err(|e| ItemError::Shape(e.to_string()))?;
        let arch = match f.space {
            SearchSpace::Nb101 => Arch::Nb101(nb101_cell(&f.matrix, &f.ops)?),
            SearchSpace::Nb201 => Arch::Nb201(
                nb201::Cell::parse(&f.arch).map_err(|e| ItemError::Cell(e.to_string()))?,
            ),
        };
        let found = arch.hash();
        if found != f.hash {
            return Err(ItemError::Hash {
                found,
                given: f.hash,
            });
        }
        Ok(arch)
    }
}

fn nb101_cell(matrix: &[Vec<u8>], ops: &[String]) -> Result<nb101::Cell, ItemError> {
    let ops = ops
        .iter()
        .map(|o| nb101::Op::parse(o))
        .collect::<Result<Vec<_>, _>>();
    ops.and_then(|ops| nb101::Cell::new(matrix, &ops))
        .and_then(|c| c.canonical())
        .map_err(|e| ItemError::Cell(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_in_both_spaces_and_equivalent_nb201_cells_hash_equal() {
        let a =
            nb201::Cell::parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
                .unwrap();
        let b =
            nb201::Cell::parse("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|").unwrap();
        assert_eq!(Arch::Nb201(a).hash(), Arch::Nb201(b).hash());
        let item = Arch::Nb201(a).item_json("train");
        assert_eq!(item["space"], "nb201");
        assert_eq!(Arch::from_fields(&item).unwrap(), Arch::Nb201(a));
        let c101 = crate::search::tests::tiny_cell();
        let item = Arch::Nb101(c101).item_json("valid");
        assert!(
            item.get("space").is_none(),
            "NB101 items keep their old form"
        );
        assert_eq!(Arch::from_fields(&item).unwrap(), Arch::Nb101(c101));
        let mut bad = Arch::Nb201(a).item_json("train");
        bad["hash"] = json!("00000000000000000000000000000000");
        let e = Arch::from_fields(&bad).unwrap_err();
        assert!(e.to_string().contains("the cell hashes to"), "{e}");
        let mut bad = Arch::Nb201(a).item_json("train");
        bad["arch"] = json!("|conv~0|");
        assert!(matches!(Arch::from_fields(&bad), Err(ItemError::Cell(_))));
    }

    #[test]
    fn decoded_nb201_graphs_are_judged_as_arch2vec_does() {
        let space = SearchSpace::Nb201;
        let rows: Vec<Vec<u8>> = nb201::encode::ADJACENCY
            .iter()
            .map(|r| r.to_vec())
            .collect();
        let label = |c: &nb201::Cell| -> Vec<usize> {
            nb201::encode::one_hot(c)
                .iter()
                .map(|r| r.iter().position(|&v| v == 1).unwrap())
                .collect()
        };
        let a = nb201::Cell::from_index(1234).unwrap();
        let b = nb201::Cell::from_index(4321).unwrap();
        let (ha, hb) = (
            space.decoded(&rows, &label(&a)),
            space.decoded(&rows, &label(&b)),
        );
        assert!(ha.is_some() && hb.is_some());
        assert_ne!(ha, hb);
        let mut l = label(&a);
        l[3] = 6; // an op node decoded as the output
        assert_eq!(space.decoded(&rows, &l), None);
        let mut l = label(&a);
        l[1] = 0; // node 1 is not checked (arch2vec's loop starts at node 2)
        assert!(space.decoded(&rows, &l).is_some());
        let mut l = label(&a);
        l[7] = 5;
        assert_eq!(space.decoded(&rows, &l), None);
        assert_eq!(space.graph_size(), (8, 7));
        // One cell's graph in flat buffers: 8 x 7 labels, 8 x 8 adjacency.
        let (mut ops, mut adj) = (Vec::new(), Vec::new());
        Arch::Nb201(a).push_graph(&mut ops, &mut adj);
        assert_eq!((ops.len(), adj.len()), (56, 64));
    }
}
