//! Running one plugin binary the way SPEC.md section 2 describes: parameters in `CNI_*`
//! environment variables, the configuration on stdin, a result or an error object on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{NetworkError, PluginCall};
use crate::result::PluginError;

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CniCommand {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify an attachment.
    Check,
}

impl CniCommand {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

/// The per-attachment parameters passed in the environment.
#[derive(Debug, Clone)]
pub(crate) struct Invocation<'a> {
    /// `CNI_COMMAND`.
    pub command: CniCommand,
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: &'a str,
    /// `CNI_NETNS`; empty when the namespace is gone (allowed for `DEL`).
    pub netns: Option<&'a Path>,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS` as key/value pairs.
    pub args: &'a [(String, String)],
    /// The network name, for error messages.
    pub network: &'a str,
    /// The pod as `namespace/name`, for error messages.
    pub pod: &'a str,
}

/// Finds and runs plugin binaries.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    /// Directories searched for plugins, in order; also passed as `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// How long one plugin may run before it is killed.
    pub timeout: Duration,
}

impl Executor {
    /// The binary for a plugin `type`, from the first directory that has it.
    pub fn find(&self, plugin: &str) -> Option<PathBuf> {
        // A type is a file name, never a path: refuse anything that could escape the dirs.
        if plugin.is_empty() || plugin.contains('/') || plugin == "." || plugin == ".." {
            return None;
        }
        self.plugin_dirs
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|path| path.is_file())
    }

    /// Fails with the first plugin of `types` that is in none of the directories.
    pub fn require<'a>(
        &self,
        types: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), NetworkError> {
        for plugin in types {
            if self.find(plugin).is_none() {
                return Err(NetworkError::MissingPlugin {
                    plugin: plugin.to_owned(),
                    dirs: self.dirs_text(", "),
                });
            }
        }
        Ok(())
    }

    fn dirs_text(&self, separator: &str) -> String {
        let dirs: Vec<String> = self
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(separator)
    }

    /// Runs `plugin` with `config` on stdin. Returns the parsed stdout on success (`None` when the
    /// plugin printed nothing, which `DEL` and `CHECK` may do).
    pub async fn run(
        &self,
        plugin: &str,
        invocation: &Invocation<'_>,
        config: &Value,
    ) -> Result<Option<Value>, NetworkError> {
        let command = invocation.command.as_str();
        let path = self
            .find(plugin)
            .ok_or_else(|| NetworkError::MissingPlugin {
                plugin: plugin.to_owned(),
                dirs: self.dirs_text(", "),
            })?;
        let call = || {
            Box::new(PluginCall {
                plugin: plugin.to_owned(),
                network: invocation.network.to_owned(),
                command,
                pod: invocation.pod.to_owned(),
            })
        };
        let spawn_error = |source| NetworkError::Spawn {
            plugin: plugin.to_owned(),
            path: path.clone(),
            source,
        };
        tracing::debug!(
            plugin,
            command,
            network = invocation.network,
            pod = invocation.pod,
            "running cni plugin"
        );

        // Plugins inherit the environment (they need PATH to find iptables), minus any CNI_*
        // variable of our own, which would confuse them.
        let mut cmd = Command::new(&path);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CNI_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", invocation.container_id)
            .env("CNI_NETNS", invocation.netns.unwrap_or(Path::new("")))
            .env("CNI_IFNAME", invocation.ifname)
            .env("CNI_ARGS", cni_args(invocation.args))
            .env("CNI_PATH", self.dirs_text(":"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(spawn_error)?;

        // Write stdin while reading stdout so a plugin that answers early cannot block us.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = config.to_string().into_bytes();
        let feed = async move {
            // A plugin may exit without reading all of stdin; that is its business.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        let output = match tokio::time::timeout(self.timeout, run).await {
            Ok(output) => output.map_err(spawn_error)?,
            Err(_) => {
                return Err(NetworkError::Timeout {
                    call: call(),
                    timeout: self.timeout,
                })
            }
        };

        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.trim().is_empty() {
            tracing::debug!(plugin, command, stderr = %stderr.trim(), "cni plugin stderr");
        }

        if !output.status.success() {
            if let Some(error) = PluginError::parse(&output.stdout) {
                return Err(NetworkError::Plugin {
                    call: call(),
                    error: Box::new(error),
                });
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            let text = format!("{} {}", stdout.trim(), stderr.trim());
            return Err(NetworkError::PluginCrashed {
                call: call(),
                status: output.status.to_string(),
                output: text.trim().to_owned(),
            });
        }

        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| NetworkError::InvalidResult {
                plugin: plugin.to_owned(),
                network: invocation.network.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// Formats `CNI_ARGS`: `KEY=VALUE` pairs joined by `;`.
pub(crate) fn cni_args(args: &[(String, String)]) -> String {
    let pairs: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_are_semicolon_separated_pairs() {
        let args = [
            ("IgnoreUnknown".to_owned(), "1".to_owned()),
            ("A".to_owned(), "b".to_owned()),
        ];

        assert_eq!(cni_args(&args), "IgnoreUnknown=1;A=b");
    }

    #[test]
    fn a_plugin_type_is_never_a_path() {
        let executor = Executor {
            plugin_dirs: vec!["/usr/lib/cni".into()],
            timeout: Duration::ZERO,
        };

        assert_eq!(executor.find("../../bin/sh"), None);
        assert_eq!(executor.find(".."), None);
    }

    #[test]
    fn missing_plugin_error_names_plugin_dirs_and_debian_package() {
        let dir = tempfile::tempdir().unwrap();
        let executor = Executor {
            plugin_dirs: vec![dir.path().into()],
            timeout: Duration::ZERO,
        };

        let message = executor.require(["bridge"]).unwrap_err().to_string();

        assert!(message.contains("\"bridge\""), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("containernetworking-plugins"), "{message}");
    }
}
