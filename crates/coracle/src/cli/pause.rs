//! `coracle pause <dir>`: the helper that becomes PID 1 of a pod's shared PID namespace.
//!
//! main.rs dispatches here before any async runtime exists: the helper forks, and the forked
//! pause process goes on running Rust code. The logic lives in `coracle_runtime::pause`.

/// Arguments of the pause helper.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The sandbox directory (where the namespace file and `pause.json` go).
    pub dir: std::path::PathBuf,
}

/// Starts the pause process; returns once it runs (the pause process itself never returns).
pub fn run(args: PauseArgs) -> anyhow::Result<i32> {
    Ok(coracle_runtime::pause::run(&args.dir))
}
