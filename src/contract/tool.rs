//! Utility subcommands a stage package adds to the `nasflow` CLI (`nasflow nb101 ...`): the
//! engine knows them only as clap commands with a run function.

/// A subcommand of the `nasflow` CLI.
pub struct Tool {
    pub command: fn() -> clap::Command,
    pub run: fn(&clap::ArgMatches) -> Result<(), ToolError>,
}

impl Tool {
    pub fn name(&self) -> String {
        (self.command)().get_name().to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad arguments or input (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}
