//! Running `iptables` and `ip6tables` for the node's own rules (masquerade, leftover sweeps).

use tokio::process::Command;

/// An `iptables` command that could not run or failed, with its complaint.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {reason}")]
pub struct IptablesError {
    /// The command line, without `-w`.
    pub command: String,
    /// Why it failed: the tool's stderr, or why it could not be run.
    pub reason: String,
}

/// Runs `tool -w args…` (waiting for the xtables lock) and returns its stdout.
pub(crate) async fn output(tool: &str, args: &[&str]) -> Result<String, IptablesError> {
    let error = |reason: String| IptablesError {
        command: format!("{tool} {}", args.join(" ")),
        reason,
    };
    let out = Command::new(tool)
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| error(e.to_string()))?;
    if !out.status.success() {
        return Err(error(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `tool -w args…`, discarding its output.
pub(crate) async fn run(tool: &str, args: &[&str]) -> Result<(), IptablesError> {
    output(tool, args).await.map(drop)
}
