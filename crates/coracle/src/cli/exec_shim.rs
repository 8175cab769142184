//! `coracle exec-shim <dir> [--tty] -- <command>…`: the single-threaded helper that runs one
//! `kubectl exec` process inside a running container.
//!
//! main.rs dispatches here before any async runtime exists, and before logging is set up:
//! this process's stderr is the exec'd process's stderr, so the helper logs to the
//! container's `exec.log` instead. The logic lives in `coracle_runtime::exec_shim`.

use std::sync::Mutex;

/// Arguments of the exec helper.
#[derive(Debug, clap::Args)]
pub struct ExecShimArgs {
    /// The container's directory (with `shim.json` and `config.json`).
    pub dir: std::path::PathBuf,
    /// Give the process a terminal.
    #[arg(long)]
    pub tty: bool,
    /// The terminal's initial size, `COLUMNSxROWS`.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u16, u16)>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the command until it exits.
pub fn run(args: ExecShimArgs) -> anyhow::Result<i32> {
    log_to_file(&args.dir.join(coracle_runtime::state::EXEC_LOG));
    Ok(coracle_runtime::exec_shim::run(
        &args.dir,
        args.command,
        args.tty,
        args.size,
    )?)
}

fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let (width, height) = text.split_once('x').ok_or("expected COLUMNSxROWS")?;
    let number = |s: &str| s.parse::<u16>().map_err(|e| format!("{s:?}: {e}"));
    Ok((number(width)?, number(height)?))
}

fn log_to_file(path: &std::path::Path) {
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let filter = std::env::var("CORACLE_LOG")
        .unwrap_or_else(|_| "info,libcgroups=error,libcontainer=error".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}
