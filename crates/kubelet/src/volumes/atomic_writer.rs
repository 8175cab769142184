//! Writes the files of configMap, secret, downwardAPI and projected volumes so that a reader
//! never sees a half-updated volume, with upstream's layout (pkg/volume/util/atomic_writer.go):
//!
//! ```text
//! <volume>/..2024_05_01_12_00_00.123456789/   the files, in a timestamped directory (0755)
//! <volume>/..data -> ..2024_05_01_12_00_00.123456789
//! <volume>/<key>  -> ..data/<key>              one symlink per top-level path
//! ```
//!
//! An update writes a new timestamped directory, points `..data_tmp` at it and renames that
//! over `..data` (rename is atomic), then drops symlinks of removed keys and the old directory.
//! Nothing is rewritten when contents and modes are unchanged. Unlike upstream, leftover
//! timestamped directories of an interrupted update are removed too.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Component, Path};

use tracing::debug;

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";

/// One file of a volume: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProjection {
    /// File content.
    pub data: Vec<u8>,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
}

/// Relative path inside the volume -> file.
pub(crate) type Payload = BTreeMap<String, FileProjection>;

/// Why a volume's files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A path of the payload is not a clean relative path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file system step failed.
    #[error("failed to {step} {path}")]
    Io {
        /// What was being done, e.g. "write file".
        step: &'static str,
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Writes `payload` into `target` (which must exist); returns whether anything changed.
pub(crate) fn write(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    let payload = clean_payload(payload)?;
    let data_link = target.join(DATA_DIR);
    let old_dir = match std::fs::read_link(&data_link) {
        Ok(dir) => Some(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(io_error("read link", &data_link, source)),
    };

    // Skip the write when the current version already has exactly these files.
    let mut stale_paths = BTreeSet::new();
    if let Some(old_dir) = &old_dir {
        let old_dir = target.join(old_dir);
        let old_paths = walk(&old_dir).map_err(|e| io_error("read", &old_dir, e))?;
        stale_paths = old_paths
            .difference(&paths_with_parents(&payload))
            .cloned()
            .collect();
        if stale_paths.is_empty() && !differs(&payload, &old_dir) {
            debug!(volume = %target.display(), "volume content unchanged");
            return Ok(false);
        }
    }

    // Write the new version beside the old one.
    let new_dir_name = new_timestamped_dir(target)?;
    let new_dir = target.join(&new_dir_name);
    for (path, file) in &payload {
        write_file(&new_dir.join(path), file)?;
    }

    // Make the user-visible symlinks, then swap `..data` atomically.
    for path in &payload {
        let top = path.0.split('/').next().unwrap_or(path.0);
        let visible = target.join(top);
        if visible.symlink_metadata().is_err() {
            symlink(Path::new(DATA_DIR).join(top), &visible)
                .map_err(|e| io_error("create symlink", &visible, e))?;
        }
    }
    let new_link = target.join(NEW_DATA_DIR);
    let _ = std::fs::remove_file(&new_link);
    symlink(&new_dir_name, &new_link).map_err(|e| io_error("create symlink", &new_link, e))?;
    std::fs::rename(&new_link, &data_link).map_err(|e| io_error("rename", &new_link, e))?;
    debug!(volume = %target.display(), data = %new_dir_name, "volume content swapped");

    // Drop what the new version no longer has: top-level symlinks, then old directories.
    for path in stale_paths.iter().filter(|p| !p.contains('/')) {
        let visible = target.join(path);
        std::fs::remove_file(&visible).map_err(|e| io_error("remove", &visible, e))?;
    }
    remove_old_versions(target, &new_dir_name)?;
    Ok(true)
}

/// Validates each path as upstream's `validatePath` does and returns them cleaned.
fn clean_payload(payload: &Payload) -> Result<Payload, WriteError> {
    let mut clean = Payload::new();
    for (path, file) in payload {
        let invalid = |reason| WriteError::InvalidPath {
            path: path.clone(),
            reason,
        };
        if path.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if path.len() > 4096 {
            return Err(invalid("must be less than or equal to 4096 characters"));
        }
        let mut parts = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => {
                    let part = part.to_str().unwrap_or_default();
                    if part.len() > 255 {
                        return Err(invalid(
                            "filenames must be less than or equal to 255 characters",
                        ));
                    }
                    parts.push(part);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(invalid("must not contain '..'")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid("must be relative path"))
                }
            }
        }
        match parts.first() {
            None => return Err(invalid("must not be empty")),
            Some(first) if first.starts_with("..") => {
                return Err(invalid("must not start with '..'"))
            }
            Some(_) => {}
        }
        clean.insert(parts.join("/"), file.clone());
    }
    Ok(clean)
}

/// Every file and directory below `dir`, as relative paths.
fn walk(dir: &Path) -> io::Result<BTreeSet<String>> {
    let mut paths = BTreeSet::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, relative)) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            if entry.file_type()?.is_dir() {
                pending.push((entry.path(), rel.clone()));
            }
            paths.insert(rel);
        }
    }
    Ok(paths)
}

/// The payload's paths and all their parent directories.
fn paths_with_parents(payload: &Payload) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for path in payload.keys() {
        let mut current = path.as_str();
        loop {
            paths.insert(current.to_owned());
            match current.rsplit_once('/') {
                Some((parent, _)) => current = parent,
                None => break,
            }
        }
    }
    paths
}

/// Whether any file of `payload` is missing from `dir` or has other content or mode.
fn differs(payload: &Payload, dir: &Path) -> bool {
    payload.iter().any(|(path, file)| {
        let path = dir.join(path);
        let same_mode = path
            .symlink_metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o7777 == file.mode);
        !same_mode || std::fs::read(&path).map_or(true, |data| data != file.data)
    })
}

/// Creates `..<UTC timestamp>.<unique digits>` (0755) in `target` and returns its name.
fn new_timestamped_dir(target: &Path) -> Result<String, WriteError> {
    let stamp = chrono::Utc::now().format("..%Y_%m_%d_%H_%M_%S");
    for attempt in 0u32..100 {
        let nanos = chrono::Utc::now().timestamp_subsec_nanos();
        let name = format!("{stamp}.{}", nanos.wrapping_add(attempt));
        let dir = target.join(&name);
        match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755)?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(io_error("create directory", &dir, source)),
        }
    }
    Err(io_error(
        "create directory",
        target,
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

fn write_file(path: &Path, file: &FileProjection) -> Result<(), WriteError> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| io_error("create directory", parent, e))?;
    }
    std::fs::write(path, &file.data).map_err(|e| io_error("write file", path, e))?;
    // The mode is set after writing so that the umask does not change it.
    set_mode(path, file.mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), WriteError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("set mode of", path, e))
}

/// Removes every `..<timestamp>` directory but `current`.
fn remove_old_versions(target: &Path, current: &str) -> Result<(), WriteError> {
    let entries = std::fs::read_dir(target).map_err(|e| io_error("read", target, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_version = name.starts_with("..") && name != DATA_DIR && name != NEW_DATA_DIR;
        if is_version && name != current && entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| io_error("remove", &entry.path(), e))?;
        }
    }
    Ok(())
}

fn io_error(step: &'static str, path: &Path, source: io::Error) -> WriteError {
    WriteError::Io {
        step,
        path: path.display().to_string(),
        source,
    }
}
