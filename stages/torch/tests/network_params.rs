//! The tch network's trainable parameters equal NB101's for all 1,000 cells of the shared data,
//! in their stored vertex order, at NB101's sizes (128 channels, 3 x 3 cells, 10 classes).
use std::path::PathBuf;

use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::nb101::Table;
use nasflow_torch::network::{count_trainable, Init, Network};

#[test]
fn parameter_counts_of_all_1k_cells() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nb101-1k.jsonl");
    let table = Table::load(&path).expect("../shared/data/nb101-1k.jsonl");
    assert_eq!(table.len(), 1000);
    for row in table.rows() {
        let cell = row.cell.expect("stored cell");
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _net = Network::new(&vs.root(), &cell, &Skeleton::NB101, Init::Zeros);
        assert_eq!(
            count_trainable(&vs) as u64,
            row.figures.trainable_parameters.unwrap(),
            "{}",
            row.hash
        );
    }
}
