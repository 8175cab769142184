//! Unpacking one layer blob into its own directory, ready to be an overlayfs lower layer.
//!
//! The blob may be gzip, zstd or plain tar; the magic bytes decide, whatever the media type
//! says. While the tar streams by, its uncompressed bytes are hashed: the result must be the
//! layer's diff id from the image config, or the layer is refused.
//!
//! OCI whiteouts become overlayfs ones: `.wh.NAME` a character device 0/0 named `NAME`, and
//! `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory. Since every layer has
//! a directory of its own, an opaque marker hides only lower layers; entries of the same layer
//! in that directory stay, wherever they are in the tar.
//!
//! Entries keep their type (files, directories, symlinks, hard links within the layer, device
//! nodes, fifos), owner, mode, mtime and xattrs. No entry may leave the layer directory: `..`
//! is refused, leading `/` are dropped, parents are never followed through a symlink, and a
//! hard link must point inside the layer.
//!
//! The tree is built in a temp directory next to the final one and renamed into place only
//! when complete and verified, after a `syncfs`: a directory under its final name is always a
//! whole layer.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};

use crate::digest::{hex_of, HashingReader};
use crate::error::{ImageError, IoContext};
use crate::store::{remove_any, write_atomic, ImageStore, LayerInfo};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

impl ImageStore {
    /// Unpacks `blob` as the layer `diff_id`. The caller holds the layer's lock and has
    /// checked that the layer is not there yet. Returns the uncompressed size.
    pub(crate) fn unpack_layer(
        &self,
        operation: &str,
        blob: &Path,
        diff_id: &str,
    ) -> Result<u64, ImageError> {
        let hex = hex_of(diff_id);
        let tmp = self.paths.tmp_entry(hex, "unpack");
        fs::create_dir(&tmp).at(&tmp)?;
        let result = self.unpack_into(operation, blob, diff_id, &tmp);
        if result.is_err() {
            let _ = remove_any(&tmp);
        }
        result
    }

    fn unpack_into(
        &self,
        operation: &str,
        blob: &Path,
        diff_id: &str,
        tmp: &Path,
    ) -> Result<u64, ImageError> {
        let file = File::open(blob).at(blob)?;
        let mut hashing = HashingReader::new(decompressor(file).at(blob)?);
        let what = format!("layer {diff_id}");
        let corrupt = |e: io::Error| ImageError::corrupt(operation, format!("{what}: {e}"));

        // Entries, then the tar's trailing blocks: the diff id covers the whole stream.
        let mut dirs = Vec::new();
        {
            let mut archive = tar::Archive::new(&mut hashing);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.set_preserve_mtime(true);
            archive.set_unpack_xattrs(true);
            archive.set_mask(0);
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                apply_entry(&mut entry, tmp, &mut dirs).map_err(|reason| {
                    ImageError::corrupt(operation, format!("{what}: {reason}"))
                })?;
            }
        }
        io::copy(&mut hashing, &mut io::sink()).map_err(corrupt)?;
        let actual = hashing.hasher().digest();
        if actual != diff_id {
            return Err(ImageError::DigestMismatch {
                operation: operation.to_string(),
                what: format!("uncompressed {what}"),
                expected: diff_id.to_string(),
                actual,
            });
        }

        // Children changed their directories' mtimes: set them last, deepest first.
        for (dir, mtime) in dirs.iter().rev() {
            let t = TimeSpec::new(*mtime, 0);
            let _ = utimensat(None, dir, &t, &t, UtimensatFlags::NoFollowSymlink);
        }

        let size = hashing.hasher().len();
        let info = LayerInfo {
            diff_id: diff_id.to_string(),
            size,
        };
        let info_path = self.paths.layer_info(diff_id);
        write_atomic(&info_path, &serde_json::to_vec(&info).expect("serialises"))?;
        let dir = File::open(tmp).at(tmp)?;
        nix::unistd::syncfs(dir.as_raw_fd()).map_err(|e| ImageError::io(tmp, e.into()))?;
        let dest = self.paths.layer(diff_id);
        fs::rename(tmp, &dest).at(&dest)?;
        tracing::debug!(layer = %diff_id, size, "layer unpacked");
        Ok(size)
    }
}

/// A reader of the uncompressed tar in `file`, chosen by its magic bytes.
fn decompressor(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let magic = reader.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

/// Applies one tar entry to the layer directory `root`.
fn apply_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    root: &Path,
    dirs: &mut Vec<(PathBuf, i64)>,
) -> Result<(), String> {
    let raw = entry.path().map_err(|e| format!("bad entry name: {e}"))?;
    let display = raw.display().to_string();
    let rel = relative(&raw).ok_or_else(|| format!("entry {display:?} escapes the layer"))?;
    let kind = entry.header().entry_type();
    let fail = |e: io::Error| format!("entry {display:?}: {e}");

    if rel.as_os_str().is_empty() {
        // `./` itself: the layer root takes its mode and owner.
        if kind.is_dir() {
            set_owner_mode(root, entry.header()).map_err(fail)?;
            dirs.push((
                root.to_path_buf(),
                entry.header().mtime().unwrap_or(0) as i64,
            ));
        }
        return Ok(());
    }
    let name = rel
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = ensure_dir(root, parent_rel)?;

    if name == OPAQUE_MARKER {
        return xattr::set(&parent, OPAQUE_XATTR, b"y").map_err(fail);
    }
    if name.starts_with(".wh..wh.") {
        return Ok(()); // other AUFS metadata (e.g. `.wh..wh.plnk`): not content
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        let target = parent.join(hidden);
        if fs::symlink_metadata(&target).is_ok() {
            return Ok(()); // this layer has the entry itself: it wins over the whiteout
        }
        return mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| fail(e.into()));
    }

    let dst = parent.join(&name);
    clear_for(&dst, kind.is_dir()).map_err(fail)?;
    match kind {
        tar::EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(fail)?
                .ok_or_else(|| format!("entry {display:?}: hard link without a target"))?;
            let link_rel = relative(&link)
                .filter(|r| !r.as_os_str().is_empty())
                .ok_or_else(|| format!("entry {display:?}: hard link escapes the layer"))?;
            let src = existing_inside(root, &link_rel)
                .ok_or_else(|| format!("entry {display:?}: hard link target not in the layer"))?;
            fs::hard_link(&src, &dst).map_err(fail)
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let header = entry.header().clone();
            let sflag = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let dev = makedev(major.into(), minor.into());
            mknod(&dst, sflag, Mode::empty(), dev).map_err(|e| fail(e.into()))?;
            set_owner_mode(&dst, &header).map_err(fail)?;
            set_xattrs(entry, &dst).map_err(fail)?;
            let mtime = TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0);
            utimensat(None, &dst, &mtime, &mtime, UtimensatFlags::NoFollowSymlink)
                .map_err(|e| fail(e.into()))
        }
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => Ok(()),
        _ => {
            entry.unpack(&dst).map_err(fail)?;
            if kind.is_dir() {
                set_xattrs(entry, &dst).map_err(fail)?;
                dirs.push((dst, entry.header().mtime().unwrap_or(0) as i64));
            }
            Ok(())
        }
    }
}

/// `path` as a relative path of normal components; `None` if it has `..`.
fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `root/rel`, creating missing directories, never following a symlink.
fn ensure_dir(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut path = root.to_path_buf();
    for part in rel.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if is_whiteout(&meta) => {
                // A whiteout of this layer, then content under it: the content wins.
                fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(_) => {
                return Err(format!(
                    "parent {:?} is not a directory (a symlink is never followed)",
                    rel.display()
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(path)
}

/// `root/rel` if it exists, is not a directory, and its parents are real directories.
fn existing_inside(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = fs::symlink_metadata(&path).ok()?;
        let last = i + 1 == parts.len();
        if last && meta.is_dir() || !last && !meta.is_dir() {
            return None;
        }
    }
    Some(path)
}

/// Makes room for a new entry at `dst`: a later entry replaces an earlier one.
fn clear_for(dst: &Path, is_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(dst) {
        Ok(meta) if meta.is_dir() && is_dir => Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(dst),
        Ok(_) => fs::remove_file(dst),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Owner (not following symlinks) and then mode, as in the header.
fn set_owner_mode(path: &Path, header: &tar::Header) -> io::Result<()> {
    let uid = header.uid()? as u32;
    let gid = header.gid()? as u32;
    fchownat(
        None,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    let mode = header.mode()? & 0o7777;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Applies the entry's `SCHILY.xattr.*` PAX records (the tar crate does so for files only).
fn set_xattrs<R: Read>(entry: &mut tar::Entry<R>, path: &Path) -> io::Result<()> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(());
    };
    for ext in extensions {
        let ext = ext?;
        let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
            continue;
        };
        if let Err(e) = xattr::set(path, name, ext.value_bytes()) {
            // A file system without that xattr namespace: keep the file, as containerd does.
            tracing::debug!(path = %path.display(), xattr = name, "xattr not set: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    /// A tar with raw entry names (the tar crate's builder refuses `..`, as it should).
    fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            let raw = &mut header.as_gnu_mut().unwrap().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_700_000_000);
            if !link.is_empty() {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpack(tar: &[u8]) -> (tempfile::TempDir, Result<u64, ImageError>) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, tar).unwrap();
        let result = store.unpack_layer("test", &blob, &sha256(tar));
        (dir, result)
    }

    #[test]
    fn parent_dir_names_are_refused() {
        let tar = tar_of(&[("a/../../evil", tar::EntryType::Regular, "", b"x")]);
        let (dir, result) = unpack(&tar);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("escapes the layer"), "{err}");
        assert!(!dir.path().join("images/evil").exists());
        assert!(std::fs::read_dir(dir.path().join("images/l"))
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn writes_through_a_symlink_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap();
        let tar = tar_of(&[
            ("link", tar::EntryType::Symlink, target, b""),
            ("link/pwned", tar::EntryType::Regular, "", b"x"),
        ]);
        let (_dir, result) = unpack(&tar);
        assert!(result.unwrap_err().to_string().contains("not a directory"));
        assert!(!outside.path().join("pwned").exists());
    }

    #[test]
    fn hard_links_out_of_the_layer_are_refused() {
        let tar = tar_of(&[("h", tar::EntryType::Link, "../../../etc/passwd", b"")]);
        let (_dir, result) = unpack(&tar);
        assert!(result.unwrap_err().to_string().contains("hard link"));
    }

    #[test]
    fn absolute_names_land_inside_the_layer() {
        let tar = tar_of(&[("/etc/motd", tar::EntryType::Regular, "", b"hi\n")]);
        let (dir, result) = unpack(&tar);
        result.unwrap();
        let layer = dir.path().join("images/l").join(hex_of(&sha256(&tar)));
        assert_eq!(std::fs::read(layer.join("etc/motd")).unwrap(), b"hi\n");
    }

    #[test]
    fn a_wrong_diff_id_leaves_no_layer() {
        let tar = tar_of(&[("f", tar::EntryType::Regular, "", b"x")]);
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, &tar).unwrap();
        let wrong = format!("sha256:{}", "1".repeat(64));
        let err = store.unpack_layer("test", &blob, &wrong).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(std::fs::read_dir(dir.path().join("images/l"))
            .unwrap()
            .next()
            .is_none());
        assert!(std::fs::read_dir(dir.path().join("images/tmp"))
            .unwrap()
            .next()
            .is_none());
    }
}
