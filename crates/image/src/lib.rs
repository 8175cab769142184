//! The OCI image store of coracle: pull from registries, import archives, keep blobs and
//! unpacked layers.
//!
//! # On-disk layout
//!
//! Everything lives under `DATA/images` (`DATA` is `--data-dir`, `/var/lib/coracle` by
//! default):
//!
//! | path | what |
//! |---|---|
//! | `lock` | store-wide `flock`, held while records and blobs change and during clean-up |
//! | `images/<id hex>.json` | one record per image: names, digests, layers (diff ids, sizes) |
//! | `blobs/sha256/<hex>` | image configs and manifests, verified against their digests |
//! | `l/<diff-id hex>/` | one unpacked layer, shared by every image that has it |
//! | `layer-info/<diff-id hex>.json` | the layer's uncompressed size |
//! | `locks/<diff-id hex>` | per-layer `flock`: whoever holds it may create or delete the layer |
//! | `leases/<pid>-<random>` | a pull or import in flight: the layers it will reference |
//! | `tmp/` | downloads, layer trees being unpacked, import staging, layers being deleted |
//!
//! An image's id is the digest of its config. Compressed layer blobs are not kept once the
//! layer is unpacked; a layer directory is named after the layer's diff id (the digest of the
//! uncompressed tar), so an image pulled from a registry and the same image imported from an
//! archive share their layers.
//!
//! # Guarantees
//!
//! - Every byte is verified while it streams: blobs against their digest and size, layers
//!   against the diff ids in the image config.
//! - A layer directory under `l/` is complete: it is unpacked in `tmp/`, flushed with
//!   `syncfs`, and renamed into place. Records are written to a temp file, fsynced and renamed.
//! - Two processes pulling or importing the same layer serialise on its lock file; the second
//!   finds the layer done. `remove` does not delete a layer that a pull in flight has leased.
//! - What an interrupted run leaves in `tmp/` is deleted by the next [`ImageStore::open`]
//!   once its owner's lock is free.
//!
//! # Caveats
//!
//! - Layer paths are short on purpose: the kernel takes overlay mount options up to one page
//!   (4096 bytes). With the default data dir a layer path is `/var/lib/coracle/images/l/` plus
//!   64 hex digits, 90 bytes, so 30 layers take 2730 bytes of `lowerdir=` with their `:`
//!   separators and leave room for `upperdir=` and `workdir=`. A data dir path longer than
//!   about 40 bytes makes 30-layer images too long to mount in one go.
//! - `remove` knows nothing of containers: removing an image whose layers a running container
//!   uses deletes them under it. The kubelet only removes images no pod uses.
//! - Image records are not locked against readers: a reader may see a tag on an image and,
//!   a moment later, on the image it moved to.

mod digest;
mod error;
mod import;
mod layer;
mod manifest;
mod pull;
mod reference;
mod registry_config;
mod store;

use std::path::PathBuf;

use serde::Serialize;

pub use error::ImageError;
pub use pull::PullProgress;
pub use reference::{normalize_reference, ImageRef};
pub use registry_config::RegistryConfig;
pub use store::ImageStore;

/// One stored image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// `sha256:<hex>`, the digest of the image config.
    pub id: String,
    /// Names with tags, e.g. `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Names with the manifest digest they were pulled by, e.g. `…/busybox@sha256:…`.
    pub repo_digests: Vec<String>,
    /// Sum of the uncompressed layer sizes, in bytes.
    pub size: u64,
    /// When the image was built (RFC 3339), from its config.
    pub created: Option<String>,
    /// The OCI image config: entrypoint, cmd, env, user, working dir, …
    pub config: oci_spec::image::ImageConfiguration,
    /// The unpacked layer directories, lowest first: overlay wants them reversed in `lowerdir`.
    pub layers: Vec<PathBuf>,
    /// The diff id of each layer, in the order of `layers`.
    pub diff_ids: Vec<String>,
    /// The uncompressed size of each layer, in the order of `layers`.
    pub layer_sizes: Vec<u64>,
}

/// The platform of this machine in OCI words: (`linux`, `amd64`).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    };
    ("linux", arch)
}
