//! The container's root file system: an overlayfs over the image's layer directories.
//!
//! Each container instance gets a fresh `upper/` and `work/` directory in its own directory, so
//! what it writes never reaches the image and disappears with the instance. The layers are given
//! lowest first; overlayfs wants `lowerdir=top:…:bottom`.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::RuntimeError;

/// The merged directory of the container whose directory is `dir`.
pub fn merged_dir(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Creates `upper/`, `work/` and `rootfs/` in `dir` and mounts the overlay on `rootfs/`.
pub fn mount_overlay(dir: &Path, layers: &[PathBuf]) -> Result<PathBuf, RuntimeError> {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), merged_dir(dir));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(RuntimeError::io("cannot create", d))?;
    }
    if layers.is_empty() {
        return Err(RuntimeError::Sys {
            action: format!(
                "cannot mount the rootfs at {}: the image has no layers",
                merged.display()
            ),
            source: nix::Error::EINVAL,
        });
    }

    // Overlayfs separates lower dirs with ':' and options with ','; such paths cannot be used.
    for path in layers.iter().chain([&upper, &work]) {
        let text = path.to_string_lossy();
        if text.contains([':', ',']) {
            return Err(RuntimeError::Sys {
                action: format!("cannot use {text} in an overlay mount: it contains ':' or ','"),
                source: nix::Error::EINVAL,
            });
        }
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    tracing::debug!(rootfs = %merged.display(), layers = layers.len(), "mounting overlay");
    let overlay = |options: &str| {
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options),
        )
    };
    // `volatile`: the upper layer is never synced. Without it, the unmount after the exit
    // syncs the whole file system the upper dir is on, waiting for everything anyone has
    // written there (hundreds of milliseconds on a busy machine). The layer is thrown away
    // with the instance and never mounted again, so there is nothing to keep after a crash.
    // Kernels before 5.10 do not know the option.
    match overlay(&format!("{options},volatile")) {
        Err(nix::Error::EINVAL) => overlay(&options),
        result => result,
    }
    .map_err(RuntimeError::sys(format!(
        "cannot mount the overlay rootfs at {}",
        merged.display()
    )))?;
    Ok(merged)
}

/// Unmounts the rootfs of the container whose directory is `dir`; not mounted is fine.
pub fn unmount(dir: &Path) -> Result<(), RuntimeError> {
    let merged = merged_dir(dir);
    if !is_mount_point(&merged) {
        return Ok(());
    }
    match umount2(&merged, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(err) => Err(RuntimeError::Sys {
            action: format!("cannot unmount the rootfs at {}", merged.display()),
            source: err,
        }),
    }
}

/// True if `path` is listed as a mount point in this process's mount table.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    // Field 5 is the mount point, with spaces and the like octal-escaped.
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mp| unescape(mp) == wanted)
}

fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}
