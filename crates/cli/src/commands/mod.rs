//! One file per subcommand.

pub mod demo;
pub mod executions;
pub mod graph;
pub mod hooks;
pub mod modules;
pub mod run;
pub mod serve;
pub mod sim;
pub mod validate;

/// A command failed before doing its work.
pub enum CliError {
    /// Bad usage: exit 2.
    Usage(anyhow::Error),
    /// The work failed: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

/// Result of a command.
pub type CmdResult = Result<crate::Outcome, CliError>;
