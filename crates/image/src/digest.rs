//! sha256 digests of content as it streams by.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// Hashes and counts bytes written to it.
#[derive(Default, Clone)]
pub(crate) struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// `sha256:<hex>` of everything seen.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha.clone().finalize()))
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    let mut h = Hasher::default();
    h.update(bytes);
    h.digest()
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// The hash of what was read so far.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The 64 hex digits of a `sha256:` digest (the caller has validated it).
pub(crate) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}
