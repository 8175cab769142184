//! `coracle image` (placeholder until implemented).

use crate::GlobalArgs;

/// Subcommands of `coracle image`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Not implemented yet.
    Todo,
}

/// Runs one `coracle image` subcommand.
pub async fn run(_global: &GlobalArgs, _cmd: ImageCommand) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
