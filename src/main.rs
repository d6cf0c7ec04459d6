//! The `nasflow` command line: parses arguments, dispatches to a command, and maps errors to
//! exit codes (0 ok, 1 a stage failed, 2 bad usage or config) in one place.
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if commands::is_usage_error(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
