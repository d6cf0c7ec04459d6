//! The `nasflow` command line: parses arguments, dispatches to a command, and maps errors to
//! exit codes (0 ok, 1 a stage failed, 2 bad usage or config) in one place.
mod cli;
mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use nasflow::registry;
use nasflow_stages::tools::ToolError;

fn main() -> ExitCode {
    // `nasflow show STAGE | head` must end quietly, as other Unix tools do, not panic on EPIPE.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The engine's commands, plus the utility commands of the stage crate (`nasflow nb101`).
    let tools = registry::tools();
    let mut command = cli::Cli::command();
    for t in &tools {
        command = command.subcommand((t.command)());
    }
    let matches = command.get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(tool) = tools.iter().find(|t| t.name() == name) {
            return match (tool.run)(sub) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(if matches!(e, ToolError::Usage(_)) {
                        2
                    } else {
                        1
                    })
                }
            };
        }
    }
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
