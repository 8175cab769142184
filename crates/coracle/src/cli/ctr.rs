//! `coracle ctr` (placeholder until implemented).

use crate::GlobalArgs;

/// Subcommands of `coracle ctr`.
#[derive(Debug, clap::Subcommand)]
pub enum CtrCommand {
    /// Not implemented yet.
    Todo,
}

/// Runs one `coracle ctr` subcommand.
pub async fn run(_global: &GlobalArgs, _cmd: CtrCommand) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
