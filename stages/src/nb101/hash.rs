//! NB101's module hash, byte for byte as `graph_util.hash_module` of google-research/nasbench
//! computes it:
//!
//! 1. each vertex starts as `md5(str((out_degree, in_degree, label)))`, Python's tuple text
//!    (`"(2, 0, -1)"`), labels -1 input, -2 output, 0/1/2 for conv3x3/conv1x1/maxpool;
//! 2. n times: `h[v] = md5(''.join(sorted(h[in])) + '|' + ''.join(sorted(h[out])) + '|' + h[v])`;
//! 3. the fingerprint is `md5(str(sorted(h)))`, i.e. of the text `"['…', '…']"`.
//!
//! Every digest is used as lowercase hex. Hashing assumes a pruned cell, as NB101 does.
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::cell::{Cell, MAX_VERTICES};

/// An NB101 module hash (the md5 digest; shown as 32 lowercase hex digits). Ordering by bytes is
/// ordering by the hex text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ModuleHash(pub [u8; 16]);

impl ModuleHash {
    pub fn hex(&self) -> String {
        String::from_utf8(hex(&self.0).to_vec()).expect("hex is ascii")
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleHash({self})")
    }
}

/// Not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an NB101 hash (32 hex digits)")]
pub struct BadHash(pub String);

impl FromStr for ModuleHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, BadHash> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return Err(BadHash(s.to_string()));
        }
        let nib = |c: u8| -> Result<u8, BadHash> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(BadHash(s.to_string())),
            }
        };
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
        }
        Ok(ModuleHash(out))
    }
}

impl serde::Serialize for ModuleHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for ModuleHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

type Hex = [u8; 32];

fn hex(d: &[u8; 16]) -> Hex {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    out
}

fn md5_hex(bytes: &[u8]) -> Hex {
    hex(&md5::compute(bytes).0)
}

/// The initial vertex hashes, `md5(str((out, in, label)))`, for every degree pair and label.
fn initial(out_deg: usize, in_deg: usize, label: i8) -> &'static Hex {
    const N: usize = MAX_VERTICES;
    static TABLE: OnceLock<Vec<Hex>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = Vec::with_capacity(N * N * 5);
        for o in 0..N {
            for i in 0..N {
                for l in -2i8..=2 {
                    t.push(md5_hex(format!("({o}, {i}, {l})").as_bytes()));
                }
            }
        }
        t
    });
    &table[(out_deg * N + in_deg) * 5 + (label + 2) as usize]
}

/// The NB101 module hash of a (pruned) cell.
pub fn module_hash(cell: &Cell) -> ModuleHash {
    let n = cell.num_vertices();
    let ops = cell.ops();
    let mut preds = [0u8; MAX_VERTICES];
    for u in 0..n {
        for v in 0..n {
            if cell.edge(u, v) {
                preds[v] |= 1 << u;
            }
        }
    }
    let mut h = [[0u8; 32]; MAX_VERTICES];
    for v in 0..n {
        h[v] = *initial(
            cell.out_degree(v),
            preds[v].count_ones() as usize,
            ops[v].hash_label(),
        );
    }
    // Longest input: 6 in + 6 out neighbours (never both), two bars and the vertex itself.
    let mut buf = Vec::with_capacity(32 * (2 * MAX_VERTICES + 1) + 2);
    for _ in 0..n {
        let mut next = [[0u8; 32]; MAX_VERTICES];
        for v in 0..n {
            buf.clear();
            let mut nbrs: [&Hex; MAX_VERTICES] = [&[0; 32]; MAX_VERTICES];
            for mask in [preds[v], cell.successors(v)] {
                let mut k = 0;
                for (w, hw) in h.iter().enumerate().take(n) {
                    if mask >> w & 1 == 1 {
                        nbrs[k] = hw;
                        k += 1;
                    }
                }
                nbrs[..k].sort_unstable();
                for x in &nbrs[..k] {
                    buf.extend_from_slice(&x[..]);
                }
                buf.push(b'|');
            }
            buf.extend_from_slice(&h[v]);
            next[v] = md5_hex(&buf);
        }
        h = next;
    }
    let sorted = &mut h[..n];
    sorted.sort_unstable();
    buf.clear();
    buf.push(b'[');
    for (i, x) in sorted.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(b", ");
        }
        buf.push(b'\'');
        buf.extend_from_slice(x);
        buf.push(b'\'');
    }
    buf.push(b']');
    ModuleHash(md5::compute(&buf).0)
}

/// `hash_module` for any directed graph with integer labels (no size or DAG limits): the
/// reference form, used to check [`module_hash`] and to hash graphs outside the cell type.
pub fn hash_graph(matrix: &[Vec<u8>], labels: &[i64]) -> ModuleHash {
    let n = labels.len();
    let deg_out = |v: usize| matrix[v].iter().filter(|&&x| x != 0).count();
    let deg_in = |v: usize| (0..n).filter(|&u| matrix[u][v] != 0).count();
    let mut h: Vec<Hex> = (0..n)
        .map(|v| md5_hex(format!("({}, {}, {})", deg_out(v), deg_in(v), labels[v]).as_bytes()))
        .collect();
    for _ in 0..n {
        h = (0..n)
            .map(|v| {
                let mut ins: Vec<&Hex> = (0..n)
                    .filter(|&w| matrix[w][v] != 0)
                    .map(|w| &h[w])
                    .collect();
                let mut outs: Vec<&Hex> = (0..n)
                    .filter(|&w| matrix[v][w] != 0)
                    .map(|w| &h[w])
                    .collect();
                ins.sort_unstable();
                outs.sort_unstable();
                let mut buf = Vec::new();
                ins.iter().for_each(|x| buf.extend_from_slice(&x[..]));
                buf.push(b'|');
                outs.iter().for_each(|x| buf.extend_from_slice(&x[..]));
                buf.push(b'|');
                buf.extend_from_slice(&h[v]);
                md5_hex(&buf)
            })
            .collect();
    }
    h.sort_unstable();
    let items: Vec<String> = h
        .iter()
        .map(|x| format!("'{}'", std::str::from_utf8(x).expect("hex")))
        .collect();
    ModuleHash(md5::compute(format!("[{}]", items.join(", "))).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb101::cell::Op::*;
    use rand::{seq::SliceRandom, RngExt, SeedableRng};

    fn g(rows: &[&[u8]], labels: &[i64]) -> ModuleHash {
        hash_graph(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), labels)
    }

    /// The Inception-like cell of the NB101 README, by both implementations.
    #[test]
    fn readme_cell_hash() {
        let rows: &[&[u8]] = &[
            &[0, 1, 1, 1, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 1, 0, 0],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0],
        ];
        let cell = Cell::new(
            rows,
            &[
                Input, Conv1x1, Conv3x3, Conv3x3, Conv3x3, MaxPool3x3, Output,
            ],
        )
        .unwrap();
        assert_eq!(module_hash(&cell).hex(), "28cfc7874f6d200472e1a9dcd8650aa0");
        assert_eq!(
            g(rows, &[-1, 1, 0, 0, 0, 2, -2]).hex(),
            "28cfc7874f6d200472e1a9dcd8650aa0"
        );
    }

    #[test]
    fn hex_round_trip_and_bad_hash() {
        let h: ModuleHash = "28cfc7874f6d200472e1a9dcd8650aa0".parse().unwrap();
        assert_eq!(h.to_string(), "28cfc7874f6d200472e1a9dcd8650aa0");
        assert!("28cfc7874f6d200472e1a9dcd8650aa"
            .parse::<ModuleHash>()
            .is_err());
        assert!("zzcfc7874f6d200472e1a9dcd8650aa0"
            .parse::<ModuleHash>()
            .is_err());
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<ModuleHash>(&j).unwrap(), h);
    }

    // The cases of nasbench's graph_util_test.py::test_hash_module.

    #[test]
    fn label_permutation_invariance() {
        let m: &[&[u8]] = &[&[0, 1, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 1], &[0, 0, 0, 0]];
        assert_eq!(g(m, &[-1, 1, 2, -2]), g(m, &[-1, 2, 1, -2]));
    }

    #[test]
    fn edge_permutation_invariance() {
        let m1: &[&[u8]] = &[
            &[0, 1, 1, 0, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0],
        ];
        let m2: &[&[u8]] = &[
            &[0, 1, 0, 1, 0],
            &[0, 0, 1, 0, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0],
        ];
        let m3: &[&[u8]] = &[
            &[0, 1, 1, 0, 0],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0],
        ];
        let (l1, l2, l3) = ([-1, 1, 2, 3, -2], [-1, 2, 3, 1, -2], [-1, 2, 1, 3, -2]);
        assert_eq!(g(m1, &l1), g(m2, &l2));
        assert_eq!(g(m2, &l2), g(m3, &l3));
        assert_ne!(g(m1, &l2), g(m1, &l1));
        assert_ne!(g(m1, &l3), g(m1, &l1));
    }

    #[test]
    fn non_isomorphic_cases_differ() {
        // Connected non-isomorphic regular graphs on 6 interior vertices (8 in all).
        let m1: &[&[u8]] = &[
            &[0, 1, 0, 0, 0, 0, 0, 0],
            &[0, 0, 1, 1, 0, 0, 1, 0],
            &[0, 0, 0, 0, 1, 1, 0, 0],
            &[0, 0, 0, 0, 1, 1, 0, 0],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ];
        let m2: &[&[u8]] = &[
            &[0, 1, 0, 0, 0, 0, 0, 0],
            &[0, 0, 1, 1, 0, 1, 0, 0],
            &[0, 0, 0, 0, 1, 0, 1, 0],
            &[0, 0, 0, 0, 1, 1, 0, 0],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ];
        let l = [-1, 1, 1, 1, 1, 1, 1, -2];
        assert_ne!(g(m1, &l), g(m2, &l));
        // Breaks if the vertex's own hash is left out.
        let chain: &[&[u8]] = &[
            &[0, 1, 0, 0, 0],
            &[0, 0, 1, 0, 0],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0],
        ];
        assert_ne!(g(chain, &[-1, 1, 0, 0, -2]), g(chain, &[-1, 0, 0, 1, -2]));
        // Breaks without directed edges.
        let m: &[&[u8]] = &[&[0, 1, 0, 1], &[0, 0, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 0]];
        assert_ne!(g(m, &[-1, 1, 0, -2]), g(m, &[-1, 0, 1, -2]));
        // Breaks with only out-neighbours and self.
        let m: &[&[u8]] = &[
            &[0, 1, 1, 1, 1, 0, 0],
            &[0, 0, 1, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0],
        ];
        assert_ne!(
            g(m, &[-1, 1, 0, 0, 0, 0, -2]),
            g(m, &[-1, 0, 0, 0, 1, 0, -2])
        );
    }

    /// test_random_isomorphism_hashing: random directed graphs (3..20 vertices, any edges, labels
    /// 0..10) hash the same under a random relabelling of their vertices.
    #[test]
    fn random_isomorphism_hashing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.random_range(3..=20usize);
            let m: Vec<Vec<u8>> = (0..n)
                .map(|_| (0..n).map(|_| rng.random_range(0..2u8)).collect())
                .collect();
            let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..=10)).collect();
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut rng);
            // permute_graph: vertex i becomes perm[i].
            let mut pm = vec![vec![0u8; n]; n];
            let mut pl = vec![0i64; n];
            for i in 0..n {
                pl[perm[i]] = labels[i];
                for j in 0..n {
                    pm[perm[i]][perm[j]] = m[i][j];
                }
            }
            assert_eq!(hash_graph(&m, &labels), hash_graph(&pm, &pl));
        }
    }
}
