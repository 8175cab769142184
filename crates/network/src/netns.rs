//! Telling whether a path is a network namespace.

use std::path::Path;

use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// Whether `path` is a mounted namespace file (an `ip netns` bind mount or `/proc/<pid>/ns/net`).
/// A plain file left behind after the namespace was unmounted is not.
pub(crate) fn is_namespace(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_network_namespace_is_one_and_a_plain_file_is_not() {
        let file = tempfile::NamedTempFile::new().unwrap();

        assert!(is_namespace(Path::new("/proc/self/ns/net")));
        assert!(!is_namespace(file.path()));
        assert!(!is_namespace(Path::new("/nonexistent/netns")));
    }
}
