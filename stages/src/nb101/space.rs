//! The whole NB101 space: enumeration and its compact binary file.
//!
//! Enumeration follows `scripts/generate_graphs.py` of google-research/nasbench: for n = 2..7
//! vertices, every upper-triangular bitmask (edge x -> y is bit `y*(y-1)/2 + x`) that is a full
//! DAG (no all-zero row but the last, no all-zero column but the first, so nothing to prune)
//! with at most 9 edges, and every labelling of its interior vertices in `itertools.product`
//! order; cells are deduplicated by module hash, and each hash keeps the first cell met in that
//! order as its representative. That is 1,293,208 labelled graphs and 423,624 unique cells. The
//! result is sorted by hash, the order of NB101's published tables.
//!
//! File format (`.nb101`, little-endian): magic `NB101SPC`, u32 version (1), u64 count, then
//! `count` records of 24 bytes — hash (16 bytes), vertex count (1), the adjacency's upper
//! triangle in generate_graphs bit order (3 bytes), the interior ops as 2-bit indices into
//! NB101's canonical order conv3x3/conv1x1/maxpool, vertex 1 lowest (2 bytes), 2 zero bytes —
//! then the masked-free crc32c of everything before it (4 bytes).
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::cell::{Cell, Op, MAX_EDGES, MAX_VERTICES};
use super::hash::{module_hash, ModuleHash};

/// The number of unique cells of NB101.
pub const NB101_CELLS: usize = 423_624;

const MAGIC: &[u8; 8] = b"NB101SPC";
const VERSION: u32 = 1;
const HEADER: usize = 20;
const RECORD: usize = 24;

/// A set of cells sorted by hash, each with its hash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    entries: Vec<(ModuleHash, Cell)>,
}

/// Whether an n-vertex bitmask is an edge x -> y (generate_graphs' `gen_is_edge_fn`).
fn bit(x: usize, y: usize) -> usize {
    y * (y - 1) / 2 + x
}

fn rows_from_bits(n: usize, bits: u32) -> [u8; MAX_VERTICES] {
    let mut adj = [0u8; MAX_VERTICES];
    for y in 1..n {
        for (x, row) in adj.iter_mut().enumerate().take(y) {
            if bits >> bit(x, y) & 1 == 1 {
                *row |= 1 << y;
            }
        }
    }
    adj
}

fn bits_from_cell(cell: &Cell) -> u32 {
    let n = cell.num_vertices();
    let mut bits = 0u32;
    for y in 1..n {
        for x in 0..y {
            if cell.edge(x, y) {
                bits |= 1 << bit(x, y);
            }
        }
    }
    bits
}

/// generate_graphs' `is_full_dag`.
fn is_full_dag(n: usize, adj: &[u8; MAX_VERTICES]) -> bool {
    let rows_ok = adj[..n - 1].iter().all(|&r| r != 0);
    let cols = adj[..n].iter().fold(0u8, |acc, &r| acc | r);
    let want = ((1u16 << n) - 2) as u8; // every column but the first
    rows_ok && cols & want == want
}

/// Every cell of one bitmask, in labelling order.
fn labelled(n: usize, adj: [u8; MAX_VERTICES]) -> Vec<(ModuleHash, Cell)> {
    let interior = n - 2;
    let count = 3usize.pow(interior as u32);
    (0..count)
        .map(|mut k| {
            let mut ops = [Op::Input; MAX_VERTICES];
            // itertools.product: the last position varies fastest.
            for v in (1..=interior).rev() {
                ops[v] = Op::INTERIOR[k % 3];
                k /= 3;
            }
            ops[n - 1] = Op::Output;
            let cell = Cell::from_raw(n, adj, ops);
            (module_hash(&cell), cell)
        })
        .collect()
}

impl Space {
    /// Enumerates the whole NB101 space (parallel over bitmasks with rayon).
    pub fn enumerate() -> Space {
        let graphs: Vec<(usize, [u8; MAX_VERTICES])> = (2..=MAX_VERTICES)
            .flat_map(|n| {
                let pairs = n * (n - 1) / 2;
                (0..1u32 << pairs).filter_map(move |bits| {
                    if bits.count_ones() as usize > MAX_EDGES {
                        return None;
                    }
                    let adj = rows_from_bits(n, bits);
                    is_full_dag(n, &adj).then_some((n, adj))
                })
            })
            .collect();
        let per_graph: Vec<Vec<(ModuleHash, Cell)>> = graphs
            .into_par_iter()
            .with_min_len(8)
            .map(|(n, adj)| labelled(n, adj))
            .collect();
        let mut first: FxHashMap<ModuleHash, Cell> = FxHashMap::default();
        first.reserve(NB101_CELLS);
        for (h, c) in per_graph.into_iter().flatten() {
            if let Entry::Vacant(e) = first.entry(h) {
                e.insert(c);
            }
        }
        let mut entries: Vec<(ModuleHash, Cell)> = first.into_iter().collect();
        entries.par_sort_unstable_by_key(|e| e.0);
        Space { entries }
    }

    /// From cells given in any order (each hashed after pruning; duplicates keep the first).
    pub fn from_entries(mut entries: Vec<(ModuleHash, Cell)>) -> Space {
        entries.sort_by_key(|e| e.0); // stable: the first of equal hashes stays first
        entries.dedup_by_key(|e| e.0);
        Space { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn entries(&self) -> &[(ModuleHash, Cell)] {
        &self.entries
    }
    pub fn into_entries(self) -> Vec<(ModuleHash, Cell)> {
        self.entries
    }
    /// The index of a hash, by binary search.
    pub fn position(&self, hash: &ModuleHash) -> Option<usize> {
        self.entries.binary_search_by_key(hash, |e| e.0).ok()
    }
    pub fn get(&self, hash: &ModuleHash) -> Option<&Cell> {
        self.position(hash).map(|i| &self.entries[i].1)
    }

    /// The binary file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + RECORD * self.entries.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (h, c) in &self.entries {
            out.extend_from_slice(&h.0);
            out.push(c.num_vertices() as u8);
            out.extend_from_slice(&bits_from_cell(c).to_le_bytes()[..3]);
            let mut ops = 0u16;
            let n = c.num_vertices();
            for (k, op) in c.ops()[1..n - 1].iter().enumerate() {
                let idx = Op::INTERIOR.iter().position(|o| o == op).unwrap_or(0);
                ops |= (idx as u16) << (2 * k);
            }
            out.extend_from_slice(&ops.to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a binary file's bytes; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Space, SpaceFileError> {
        let err = |record: Option<usize>, what: String| SpaceFileError {
            path: path.to_path_buf(),
            record,
            what,
        };
        if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
            return Err(err(None, "not an nb101 space file (bad magic; write one with `nasflow nb101 enumerate --out FILE`)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(err(
                None,
                format!("format version {version}, this nasflow reads {VERSION}; regenerate it"),
            ));
        }
        let count = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
        let want = count
            .checked_mul(RECORD)
            .and_then(|b| b.checked_add(HEADER + 4))
            .ok_or_else(|| err(None, format!("impossible record count {count}")))?;
        if bytes.len() != want {
            return Err(err(
                None,
                format!(
                    "{} bytes, but {count} records need {want} (truncated?)",
                    bytes.len()
                ),
            ));
        }
        let body = &bytes[..want - 4];
        let crc = u32::from_le_bytes(bytes[want - 4..].try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != crc {
            return Err(err(
                None,
                "checksum mismatch: the file is corrupt; regenerate it".into(),
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for (i, r) in body[HEADER..].chunks_exact(RECORD).enumerate() {
            let hash = ModuleHash(r[..16].try_into().expect("16 bytes"));
            let n = r[16] as usize;
            if !(2..=MAX_VERTICES).contains(&n) {
                return Err(err(Some(i), format!("{n} vertices")));
            }
            let bits = u32::from_le_bytes([r[17], r[18], r[19], 0]);
            let opbits = u16::from_le_bytes([r[20], r[21]]);
            let mut ops = [Op::Input; MAX_VERTICES];
            for (k, op) in ops[1..n - 1].iter_mut().enumerate() {
                *op = *Op::INTERIOR
                    .get((opbits >> (2 * k) & 3) as usize)
                    .ok_or_else(|| err(Some(i), "op index 3".into()))?;
            }
            ops[n - 1] = Op::Output;
            entries.push((hash, Cell::from_raw(n, rows_from_bits(n, bits), ops)));
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(err(None, "records are not sorted by hash".into()));
        }
        Ok(Space { entries })
    }

    /// Writes the binary file atomically (a temp file renamed into place).
    pub fn write(&self, path: &Path) -> Result<(), std::io::Error> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> Result<Space, SpaceFileError> {
        let bytes = std::fs::read(path).map_err(|e| SpaceFileError {
            path: path.to_path_buf(),
            record: None,
            what: e.to_string(),
        })?;
        Space::from_bytes(&bytes, path)
    }
}

/// A space file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {what}", path.display(), record.map(|r| format!(" record {r}")).unwrap_or_default())]
pub struct SpaceFileError {
    pub path: PathBuf,
    pub record: Option<usize>,
    pub what: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_is_edge_bit_order_matches_nasbench() {
        // graph_util_test.py::test_gen_is_edge
        let m = |n, bits| Cell::from_raw(n, rows_from_bits(n, bits), [Op::Input; 7]).matrix();
        assert_eq!(m(3, 3), vec![vec![0, 1, 1], vec![0, 0, 0], vec![0, 0, 0]]);
        assert_eq!(m(3, 5), vec![vec![0, 1, 0], vec![0, 0, 1], vec![0, 0, 0]]);
        assert_eq!(
            m(4, 18),
            vec![
                vec![0, 0, 1, 0],
                vec![0, 0, 0, 1],
                vec![0, 0, 0, 0],
                vec![0, 0, 0, 0]
            ]
        );
        assert_eq!(
            m(4, 35),
            vec![
                vec![0, 1, 1, 0],
                vec![0, 0, 0, 0],
                vec![0, 0, 0, 1],
                vec![0, 0, 0, 0]
            ]
        );
        let c = Cell::from_raw(4, rows_from_bits(4, 35), [Op::Input; 7]);
        assert_eq!(bits_from_cell(&c), 35);
    }

    #[test]
    fn full_dag_matches_nasbench() {
        // graph_util_test.py::test_is_full_dag
        let full = |rows: &[&[u8]]| {
            let ops = vec![Op::Input; rows.len()];
            let c = Cell::new(rows, &ops).unwrap();
            let mut adj = [0u8; 7];
            for (i, a) in adj.iter_mut().enumerate().take(rows.len()) {
                *a = c.successors(i);
            }
            is_full_dag(rows.len(), &adj)
        };
        assert!(full(&[&[0, 1, 0], &[0, 0, 1], &[0, 0, 0]]));
        assert!(full(&[&[0, 1, 1], &[0, 0, 1], &[0, 0, 0]]));
        assert!(full(&[
            &[0, 1, 1, 0],
            &[0, 0, 0, 1],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0]
        ]));
        assert!(!full(&[&[0, 0, 1], &[0, 0, 1], &[0, 0, 0]]));
        assert!(!full(&[&[0, 1, 1], &[0, 0, 0], &[0, 0, 0]]));
        assert!(!full(&[
            &[0, 0, 1, 0, 0],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0]
        ]));
        assert!(!full(&[
            &[0, 0, 1, 0],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[0, 0, 0, 0]
        ]));
        assert!(!full(&[
            &[0, 1, 0, 0],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[0, 0, 0, 0]
        ]));
    }

    fn small_space() -> Space {
        let a = Cell::parse(
            "0110001000010000",
            "input,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        let b = Cell::parse("0100", "input,output").unwrap();
        let c = Cell::parse("011001000", "input,conv1x1-bn-relu,output").unwrap();
        Space::from_entries([a, b, c].iter().map(|c| (module_hash(c), *c)).collect())
    }

    #[test]
    fn binary_round_trip() {
        let s = small_space();
        let bytes = s.to_bytes();
        assert_eq!(bytes.len(), HEADER + RECORD * 3 + 4);
        let back = Space::from_bytes(&bytes, Path::new("x.nb101")).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn corrupt_or_truncated_files_are_errors() {
        let bytes = small_space().to_bytes();
        let p = Path::new("x.nb101");
        let e = Space::from_bytes(&bytes[..bytes.len() - 5], p).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut bad = bytes.clone();
        bad[HEADER + 3] ^= 1;
        let e = Space::from_bytes(&bad, p).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let e = Space::from_bytes(b"hello world, not a space file", p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.nb101: not an nb101 space file"),
            "{e}"
        );
    }
}
