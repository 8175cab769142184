//! The one error type of the image store.
//!
//! Callers (the kubelet above all) match on the variant: a missing image in the local store,
//! an unknown tag on the registry, a refused login, an unreachable registry and a wrong
//! platform each lead to a different pod status reason. Every message is one line that names
//! the operation and the object (`pull "127.0.0.1:5000/nosuch:latest": manifest unknown`).

use std::path::PathBuf;

/// What went wrong in the image store, a pull or an import.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The text is not a valid image reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as the user wrote it.
        reference: String,
        /// Why it was refused.
        reason: String,
    },

    /// The image is not in the local store.
    #[error("image {reference:?} not found")]
    NotFound {
        /// The reference that matched nothing.
        reference: String,
    },

    /// An image id prefix matches more than one image.
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousId {
        /// The prefix given.
        prefix: String,
        /// How many images it matched.
        count: usize,
    },

    /// The registry does not know the tag or digest.
    #[error("pull {reference:?}: manifest unknown")]
    ManifestUnknown {
        /// The normalised reference pulled.
        reference: String,
        /// The registry (or mirror) that answered.
        registry: String,
    },

    /// The registry refused the credentials (or demanded some).
    #[error("pull {reference:?}: unauthorized at registry {registry}")]
    Unauthorized {
        /// The normalised reference pulled.
        reference: String,
        /// The registry (or mirror) that refused.
        registry: String,
    },

    /// No connection could be made to the registry.
    #[error("pull {reference:?}: registry {registry} unreachable")]
    RegistryUnreachable {
        /// The normalised reference pulled.
        reference: String,
        /// The registry host that could not be reached.
        registry: String,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The registry answered with an error that fits no other variant.
    #[error("pull {reference:?}: registry {registry}: {message}")]
    Registry {
        /// The normalised reference pulled.
        reference: String,
        /// The registry (or mirror) that answered.
        registry: String,
        /// The registry's own words.
        message: String,
    },

    /// The image has no manifest for this machine's platform.
    #[error("{operation}: no image for platform {wanted}; the image has {}", available.join(", "))]
    PlatformMismatch {
        /// `pull "ref"` or `import "file"`.
        operation: String,
        /// This machine's platform, e.g. `linux/amd64`.
        wanted: String,
        /// The platforms the image offers.
        available: Vec<String>,
    },

    /// Content did not hash to the digest that names it.
    #[error("{operation}: {what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `pull "ref"` or `import "file"`.
        operation: String,
        /// Which blob or layer, e.g. `layer sha256:…`.
        what: String,
        /// The digest it should have had.
        expected: String,
        /// The digest it had.
        actual: String,
    },

    /// Content was not of the size its descriptor announced.
    #[error("{operation}: {what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// `pull "ref"` or `import "file"`.
        operation: String,
        /// Which blob.
        what: String,
        /// The announced size.
        expected: u64,
        /// The size seen (so far).
        actual: u64,
    },

    /// An archive, manifest, config or layer is malformed, truncated or unsafe.
    #[error("{operation}: {reason}")]
    CorruptArchive {
        /// `pull "ref"` or `import "file"`.
        operation: String,
        /// What is wrong, naming the entry or blob.
        reason: String,
    },

    /// The registries file cannot be read or parsed.
    #[error("registry config {path:?}: {reason}")]
    RegistryConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file system operation in the store failed.
    #[error("{path:?}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`ImageError::CorruptArchive`] for the operation `operation`.
    pub(crate) fn corrupt(operation: &str, reason: impl Into<String>) -> Self {
        ImageError::CorruptArchive {
            operation: operation.to_string(),
            reason: reason.into(),
        }
    }
}

/// Adds the path to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`ImageError::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::io(path, source))
    }
}
