//! The NB101 space against the real NB101 figures in ../shared/data (see its README).
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use nasflow_stages::nb101::params::{trainable_parameters, Skeleton};
use nasflow_stages::nb101::space::NB101_CELLS;
use nasflow_stages::nb101::{module_hash, ModuleHash, Space, Table};

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(name)
}

fn space() -> &'static Space {
    static SPACE: OnceLock<Space> = OnceLock::new();
    SPACE.get_or_init(Space::enumerate)
}

fn one_k() -> Table {
    Table::load(&shared("nb101-1k.jsonl")).expect("../shared/data/nb101-1k.jsonl")
}

#[test]
fn hashes_and_parameter_counts_of_1k_cells() {
    let t = one_k();
    assert_eq!(t.len(), 1000);
    for row in t.rows() {
        let cell = row.cell.expect("1k rows store cells");
        assert_eq!(
            module_hash(&cell.canonical().unwrap()),
            row.hash,
            "{cell:?}"
        );
        assert_eq!(
            trainable_parameters(&cell, &Skeleton::NB101) as u64,
            row.figures.trainable_parameters.unwrap(),
            "parameters of {}",
            row.hash
        );
    }
}

#[test]
fn enumeration_has_every_cell_once_sorted() {
    let s = space();
    assert_eq!(s.len(), NB101_CELLS);
    assert!(s.entries().windows(2).all(|w| w[0].0 < w[1].0));
    // Each representative is a valid pruned cell hashing to its key (spot check every 97th).
    for (h, c) in s.entries().iter().step_by(97) {
        assert_eq!(c.canonical().as_ref(), Ok(c));
        assert_eq!(module_hash(c), *h);
    }
}

#[test]
fn the_1k_file_is_the_first_1000_hashes_of_the_space() {
    let t = one_k();
    let first: Vec<ModuleHash> = space().entries()[..1000].iter().map(|e| e.0).collect();
    let file: Vec<ModuleHash> = t.rows().iter().map(|r| r.hash).collect();
    assert_eq!(first, file);
}

#[test]
fn every_10k_hash_is_in_the_space() {
    let t = Table::load(&shared("nb101-10k.jsonl")).expect("../shared/data/nb101-10k.jsonl");
    assert_eq!(t.len(), 10_000);
    let (found, missing) = t.join(space());
    assert_eq!(missing, 0);
    assert_eq!(found.len(), 10_000);
    let distinct: HashSet<usize> = found.iter().map(|(i, _)| *i).collect();
    assert_eq!(distinct.len(), 10_000);
}

/// Each hash keeps the first cell met in generate_graphs' order; that is the vertex order NB101
/// stored and trained, which matters for parameter counts (the remainder channel goes to the
/// lowest-numbered vertices).
#[test]
fn representatives_match_nb101s_stored_vertex_order() {
    let t = one_k();
    let s = space();
    let same = t
        .rows()
        .iter()
        .filter(|r| s.get(&r.hash) == r.cell.as_ref())
        .count();
    assert_eq!(same, 1000, "representatives in NB101's stored order");
}
