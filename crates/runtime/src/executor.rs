//! How the container's init process finds and runs its executable.
//!
//! libcontainer's default executor reports a missing program as `executable 'x' not found in
//! $PATH`; this one checks the same things but words the errors as runc does
//! (`exec: "x": executable file not found in $PATH`), the message Kubernetes users see and
//! match on. The check runs inside the container before `start`, so the failure reaches the
//! caller of `start` instead of becoming an exit code.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

use crate::spec::DEFAULT_PATH;

/// Runs `process.args` with `execvp`, after checking the program exists and is executable.
#[derive(Debug, Clone, Default)]
pub struct ContainerExecutor;

fn args(spec: &Spec) -> Option<&Vec<String>> {
    spec.process()
        .as_ref()?
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
}

impl Executor for ContainerExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = args(spec).ok_or(ExecutorError::InvalidArg)?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        let err = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
        Err(ExecutorError::Other(format!(
            "exec: \"{}\": {}",
            args[0],
            err.desc()
        )))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(args) = args(spec) else {
            return Err(ExecutorValidationError::ArgValidationError(
                "no command specified".into(),
            ));
        };
        let env = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default();
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        find_executable(&args[0], &path_var)
            .map(|_| ())
            .map_err(ExecutorValidationError::ArgValidationError)
    }
}

/// Resolves `name` as `execvp` would, or returns runc's wording of why it cannot run.
pub fn find_executable(name: &str, path_var: &str) -> Result<PathBuf, String> {
    if name.contains('/') {
        let path = Path::new(name);
        return match path.metadata() {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(path.into()),
            Ok(_) => Err(format!("exec: \"{name}\": permission denied")),
            Err(_) => Err(format!(
                "exec: \"{name}\": stat {name}: no such file or directory"
            )),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = candidate.metadata() {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "exec: \"{name}\": executable file not found in $PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_reported_in_runc_words() {
        assert_eq!(
            find_executable("nosuch-program", "/bin:/usr/bin").unwrap_err(),
            "exec: \"nosuch-program\": executable file not found in $PATH"
        );
        assert_eq!(
            find_executable("/nosuch", "/bin").unwrap_err(),
            "exec: \"/nosuch\": stat /nosuch: no such file or directory"
        );
        assert_eq!(
            find_executable("/etc/passwd", "/bin").unwrap_err(),
            "exec: \"/etc/passwd\": permission denied"
        );
        assert!(find_executable("sh", "/nosuch:/bin").is_ok());
    }
}
