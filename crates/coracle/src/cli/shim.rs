//! `coracle shim <dir>`: the single-threaded helper process that owns one container.
//!
//! main.rs dispatches here before any async runtime exists; the logic lives in
//! `coracle_runtime::shim`.

use crate::GlobalArgs;

/// Arguments of the helper process.
#[derive(Debug, clap::Args)]
pub struct ShimArgs {
    /// The container's directory (the OCI bundle with `shim.json`).
    pub dir: std::path::PathBuf,
}

/// Runs the helper process to the end of its container.
pub fn run(_global: &GlobalArgs, args: ShimArgs) -> anyhow::Result<i32> {
    Ok(coracle_runtime::shim::run(&args.dir)?)
}
