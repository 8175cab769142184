//! `coracle shim`: the single-threaded helper process that owns one container (placeholder).

use crate::GlobalArgs;

/// Arguments of the helper process.
#[derive(Debug, clap::Args)]
pub struct ShimArgs {
    /// The container's directory.
    pub dir: std::path::PathBuf,
}

/// Runs the helper process to the end of its container.
pub fn run(_global: &GlobalArgs, _args: ShimArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
