//! The kernel steps volumes need: reading the mount table, mounting a tmpfs, and unmounting
//! everything below a directory. Mount points are compared as canonical paths, the form
//! `/proc/self/mountinfo` uses.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use tracing::debug;

/// One line of `/proc/self/mountinfo`: where something is mounted and its file system type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPoint {
    /// The mount point.
    pub path: PathBuf,
    /// The file system type, e.g. `tmpfs`.
    pub fs_type: String,
}

/// The mount table of coracle's own mount namespace.
pub(crate) fn mount_points() -> io::Result<Vec<MountPoint>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table.lines().filter_map(parse_mountinfo_line).collect())
}

/// Fields: id, parent, major:minor, root, mount point, options, optional fields..., "-",
/// fs type, source, super options. Spaces in paths are escaped as octal (`\040`).
fn parse_mountinfo_line(line: &str) -> Option<MountPoint> {
    let mut fields = line.split(' ');
    let path = fields.nth(4)?;
    let fs_type = fields.skip_while(|f| *f != "-").nth(1)?;
    Some(MountPoint {
        path: PathBuf::from(unescape(path)),
        fs_type: fs_type.to_owned(),
    })
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `dir` itself is the mount point of a tmpfs.
pub(crate) fn is_tmpfs_mount(dir: &Path) -> io::Result<bool> {
    let dir = dir.canonicalize()?;
    Ok(mount_points()?
        .iter()
        .any(|m| m.path == dir && m.fs_type == "tmpfs"))
}

/// Mounts a tmpfs on `dir`, limited to `size_bytes` when given (upstream's `size=` option).
pub(crate) fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> nix::Result<()> {
    let options = size_bytes.map(|size| format!("size={size}"));
    debug!(path = %dir.display(), ?size_bytes, "mounting tmpfs");
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        options.as_deref(),
    )
}

/// Detaches every mount at or below `dir`, deepest first, so that removing `dir` afterwards
/// cannot reach into a mounted file system.
pub(crate) fn unmount_all_below(dir: &Path) -> io::Result<()> {
    let dir = dir.canonicalize()?;
    let mut below: Vec<PathBuf> = mount_points()?
        .into_iter()
        .map(|m| m.path)
        .filter(|path| path.starts_with(&dir))
        .collect();
    below.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    below.dedup();
    for path in below {
        debug!(path = %path.display(), "unmounting");
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_unescaped_path_and_type() {
        let line = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - tmpfs tmpfs rw,size=64k";
        let point = parse_mountinfo_line(line).unwrap();
        assert_eq!(point.path, PathBuf::from("/mnt/with space"));
        assert_eq!(point.fs_type, "tmpfs");
        let plain = "22 1 8:1 / / rw - ext4 /dev/sda1 rw";
        assert_eq!(parse_mountinfo_line(plain).unwrap().fs_type, "ext4");
    }
}
