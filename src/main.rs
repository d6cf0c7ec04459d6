//! `nasflow`: the engine's command line, with the kinds and tools of the registration list
//! (declarations only: this binary never loads libtorch).
use std::process::ExitCode;

use nasflow_engine::registry::Registry;

fn main() -> ExitCode {
    nasflow_engine::cli::main(Registry::from(nasflow::register))
}
