//! One module per verb of the `coracle` command line.

pub mod convert;
pub mod ctr;
pub mod exec_shim;
pub mod image;
pub mod pause;
pub mod run;
pub mod server;
pub mod shim;
pub mod view;

use std::process::ExitCode;

/// Logs go to stderr; `RUST_LOG` (or `CORACLE_LOG`) picks the level, `warn` by default.
pub fn init_tracing() {
    let filter = std::env::var("CORACLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error with its whole chain of causes on one line, as `coracle: a: b: c`.
pub fn exit_code(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("coracle: {}", error_chain(&err));
            ExitCode::from(1)
        }
    }
}

/// `err` and its sources joined with ": ", skipping a cause its parent already quotes.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Where runtime state that does not outlive a reboot goes (`CORACLE_RUN_DIR`, default
/// `/run/coracle`).
pub fn run_dir() -> std::path::PathBuf {
    std::env::var_os("CORACLE_RUN_DIR").map_or_else(
        || std::path::PathBuf::from("/run/coracle"),
        std::path::PathBuf::from,
    )
}

/// The node's name: the machine's hostname, as the kubelet defaults it.
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_lowercase())
        .unwrap_or_else(|| "localhost".into())
}
