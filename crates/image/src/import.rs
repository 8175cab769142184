//! Importing `docker save` and OCI image-layout archives.
//!
//! The archive (plain, gzip or zstd; a file or stdin) is first unpacked into a staging
//! directory in `tmp/`, since a `docker save` archive names its layers in a `manifest.json`
//! that comes last. Then:
//!
//! - an OCI layout (`index.json`, `oci-layout`) is walked from its index: nested indexes are
//!   followed to this platform's manifest, names come from the annotations
//!   `io.containerd.image.name` or `org.opencontainers.image.ref.name` (when that is a whole
//!   reference, not a bare tag), and every blob is checked against its digest and size;
//! - a `docker save` archive is read from `manifest.json`: `Config`, `RepoTags`, `Layers`.
//!
//! Either way every layer's uncompressed content must hash to the diff id in the image config.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::digest::{hex_of, sha256, HashingReader};
use crate::error::{ImageError, IoContext};
use crate::manifest::{
    is_index_type, parse_config, parse_manifest, select_platform, Descriptor, Manifest,
};
use crate::reference::ImageRef;
use crate::store::{lock, remove_any, ImageRecord, LayerRecord, Lease};
use crate::{Image, ImageStore};

/// Index nesting deeper than this is refused.
const MAX_INDEX_DEPTH: usize = 4;

#[derive(Debug, Deserialize)]
struct DockerSaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// One image found in an archive, ready to be stored.
struct Found {
    names: Vec<String>,
    digests: Vec<String>,
    config: PathBuf,
    config_digest: String,
    layers: Vec<(PathBuf, Option<Descriptor>)>,
    manifests: Vec<(String, Vec<u8>)>,
}

impl ImageStore {
    /// Imports every image of a `docker save` or OCI-layout archive (`-` reads stdin).
    /// Blocking: async callers use `spawn_blocking`.
    pub fn import(&self, archive: &Path) -> Result<Vec<Image>, ImageError> {
        let operation = format!("import {:?}", archive.display().to_string());
        let lease = self.lease(&[])?;
        let staging = self.paths.tmp_entry(&lease.id, "import");
        let result = self.import_staged(&operation, archive, &staging, &lease);
        let _ = remove_any(&staging);
        match result {
            Ok(images) => {
                drop(lease);
                Ok(images)
            }
            Err(e) => {
                self.clean_after_failure(lease);
                Err(e)
            }
        }
    }

    fn import_staged(
        &self,
        operation: &str,
        archive: &Path,
        staging: &Path,
        lease: &Lease,
    ) -> Result<Vec<Image>, ImageError> {
        let input: Box<dyn Read> = if archive == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(archive).at(archive)?)
        };
        stage(operation, input, staging)?;

        let found = if staging.join("index.json").is_file() {
            oci_layout(operation, staging)?
        } else if staging.join("manifest.json").is_file() {
            docker_save(operation, staging)?
        } else {
            return Err(ImageError::corrupt(
                operation,
                "not a docker-save or OCI layout archive: no manifest.json or index.json",
            ));
        };

        let mut images = Vec::new();
        for image in found {
            images.push(self.store_found(operation, image, lease)?);
        }
        Ok(images)
    }

    fn store_found(
        &self,
        operation: &str,
        found: Found,
        lease: &Lease,
    ) -> Result<Image, ImageError> {
        let config = read_verified(operation, &found.config, &found.config_digest, None)?;
        let summary = parse_config(operation, &found.config_digest, &config, found.layers.len())?;
        self.extend_lease(lease, &summary.diff_ids)?;

        let mut layers = Vec::new();
        for ((path, descriptor), diff_id) in found.layers.iter().zip(&summary.diff_ids) {
            // Even a layer the store has must not come from a corrupt archive unnoticed.
            if let Some(d) = descriptor {
                verify_file(operation, path, d)?;
            }
            let _guard = lock(&self.paths.layer_lock(diff_id), true)?;
            let size = if self.has_layer(diff_id) {
                self.layer_size(diff_id)?
            } else {
                self.unpack_layer(operation, path, diff_id)?
            };
            layers.push(LayerRecord {
                diff_id: diff_id.clone(),
                size,
                digest: descriptor.as_ref().map(|d| d.digest.clone()),
            });
        }
        let record = ImageRecord {
            id: found.config_digest.clone(),
            repo_tags: found.names,
            repo_digests: found.digests,
            created: summary.created,
            layers,
            manifests: found.manifests.iter().map(|(d, _)| d.clone()).collect(),
        };
        let image = self.commit(record, &config, &found.manifests)?;
        tracing::info!(id = %image.id, names = ?image.repo_tags, "image imported");
        Ok(image)
    }
}

/// Unpacks the archive's files into `staging`, refusing anything but files and directories
/// inside it.
fn stage(operation: &str, input: Box<dyn Read>, staging: &Path) -> Result<(), ImageError> {
    let corrupt = |e: io::Error| ImageError::corrupt(operation, format!("archive: {e}"));
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let magic = reader.fill_buf().map_err(corrupt)?;
    if magic.is_empty() {
        return Err(ImageError::corrupt(operation, "archive: empty file"));
    }
    let plain: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(corrupt)?)
    } else {
        Box::new(reader)
    };

    fs::create_dir(staging).at(staging)?;
    let mut tar = tar::Archive::new(plain);
    tar.set_preserve_permissions(false);
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue; // docker save writes symlinks for duplicate layers; never needed
        }
        let path = entry.path().map_err(corrupt)?.into_owned();
        if !entry.unpack_in(staging).map_err(corrupt)? {
            return Err(ImageError::corrupt(
                operation,
                format!("archive entry {:?} escapes the archive", path.display()),
            ));
        }
    }
    Ok(())
}

/// The images of a `docker save` archive.
fn docker_save(operation: &str, staging: &Path) -> Result<Vec<Found>, ImageError> {
    let path = staging.join("manifest.json");
    let bytes = fs::read(&path).at(&path)?;
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::corrupt(operation, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let config = inside(operation, staging, &entry.config)?;
        let bytes = fs::read(&config).at(&config)?;
        let digest = sha256(&bytes);
        // The config is named after its digest (`<hex>.json` or `blobs/sha256/<hex>`).
        let stem = Path::new(&entry.config)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".json").to_string())
            .unwrap_or_default();
        if stem.len() == 64 && stem != hex_of(&digest) {
            return Err(ImageError::DigestMismatch {
                operation: operation.to_string(),
                what: format!("config {}", entry.config),
                expected: format!("sha256:{stem}"),
                actual: digest,
            });
        }
        let mut names = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            names.push(normalised_name(operation, &tag)?);
        }
        let layers = entry
            .layers
            .iter()
            .map(|l| inside(operation, staging, l).map(|p| (p, None)))
            .collect::<Result<_, _>>()?;
        out.push(Found {
            names,
            digests: Vec::new(),
            config,
            config_digest: digest,
            layers,
            manifests: Vec::new(),
        });
    }
    Ok(out)
}

/// The images of an OCI image layout.
fn oci_layout(operation: &str, staging: &Path) -> Result<Vec<Found>, ImageError> {
    let path = staging.join("index.json");
    let bytes = fs::read(&path).at(&path)?;
    let Manifest::Index(entries) = parse_manifest(operation, "index.json", &bytes)? else {
        return Err(ImageError::corrupt(
            operation,
            "index.json is not an image index",
        ));
    };

    // Top-level entries for other platforms are skipped, unless nothing else is left.
    let (os, arch) = crate::host_platform();
    let usable: Vec<Descriptor> = entries
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_none_or(|p| p.os == os && p.architecture == arch)
        })
        .cloned()
        .collect();
    if usable.is_empty() {
        select_platform(operation, &entries)?;
    }

    let mut out = Vec::new();
    for entry in usable {
        let name = entry
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| entry.annotations.get("org.opencontainers.image.ref.name"))
            .filter(|n| n.contains('/') || n.contains(':'))
            .map(|n| normalised_name(operation, n))
            .transpose()?;
        let mut manifests = Vec::new();
        let (config, layers) = resolve_layout(operation, staging, &entry, &mut manifests, 0)?;
        let image_ref = name.as_deref().map(ImageRef::parse).transpose()?;
        out.push(Found {
            digests: image_ref
                .iter()
                .map(|r| format!("{}@{}", r.name(), entry.digest))
                .collect(),
            names: name.into_iter().collect(),
            config: blob_path(staging, &config.digest),
            config_digest: config.digest.clone(),
            layers: layers
                .into_iter()
                .map(|d| (blob_path(staging, &d.digest), Some(d)))
                .collect(),
            manifests,
        });
    }
    Ok(out)
}

/// Follows `entry` (a manifest or an index) to this platform's image manifest.
fn resolve_layout(
    operation: &str,
    staging: &Path,
    entry: &Descriptor,
    manifests: &mut Vec<(String, Vec<u8>)>,
    depth: usize,
) -> Result<(Descriptor, Vec<Descriptor>), ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::corrupt(operation, "indexes nested too deep"));
    }
    let bytes = read_verified(
        operation,
        &blob_path(staging, &entry.digest),
        &entry.digest,
        Some(entry.size),
    )?;
    manifests.push((entry.digest.clone(), bytes.clone()));
    let what = if is_index_type(entry.media_type.as_deref()) {
        "index"
    } else {
        "manifest"
    };
    match parse_manifest(operation, &format!("{what} {}", entry.digest), &bytes)? {
        Manifest::Image { config, layers } => Ok((config, layers)),
        Manifest::Index(entries) => {
            let chosen = select_platform(operation, &entries)?.clone();
            resolve_layout(operation, staging, &chosen, manifests, depth + 1)
        }
    }
}

/// `staging/blobs/sha256/<hex>`.
fn blob_path(staging: &Path, digest: &str) -> PathBuf {
    staging.join("blobs/sha256").join(hex_of(digest))
}

/// `staging/name`, refusing names that leave the staging directory.
fn inside(operation: &str, staging: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ImageError::corrupt(
            operation,
            format!("manifest.json names {name:?} outside the archive"),
        ));
    }
    let path = staging.join(rel);
    if !path.is_file() {
        return Err(ImageError::corrupt(
            operation,
            format!("{name:?} is missing from the archive"),
        ));
    }
    Ok(path)
}

/// Reads a small blob and checks its digest (and size, if known).
fn read_verified(
    operation: &str,
    path: &Path,
    digest: &str,
    size: Option<u64>,
) -> Result<Vec<u8>, ImageError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ImageError::corrupt(
                operation,
                format!("blob {digest} is missing from the archive"),
            ))
        }
        Err(e) => return Err(ImageError::io(path, e)),
    };
    if let Some(size) = size.filter(|s| *s != bytes.len() as u64) {
        return Err(ImageError::SizeMismatch {
            operation: operation.to_string(),
            what: format!("blob {digest}"),
            expected: size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            operation: operation.to_string(),
            what: format!("blob {digest}"),
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

/// Checks a layer blob file against its descriptor before it is unpacked.
fn verify_file(operation: &str, path: &Path, descriptor: &Descriptor) -> Result<(), ImageError> {
    let digest = &descriptor.digest;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ImageError::corrupt(
                operation,
                format!("blob {digest} is missing from the archive"),
            ))
        }
        Err(e) => return Err(ImageError::io(path, e)),
    };
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).at(path)?;
    let (actual, len) = (reader.hasher().digest(), reader.hasher().len());
    if len != descriptor.size {
        return Err(ImageError::SizeMismatch {
            operation: operation.to_string(),
            what: format!("blob {digest}"),
            expected: descriptor.size,
            actual: len,
        });
    }
    if &actual != digest {
        return Err(ImageError::DigestMismatch {
            operation: operation.to_string(),
            what: format!("blob {digest}"),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// A name from an archive, normalised (`busybox:latest` → `docker.io/library/busybox:latest`).
fn normalised_name(operation: &str, name: &str) -> Result<String, ImageError> {
    let r = ImageRef::parse(name).map_err(|e| ImageError::corrupt(operation, e.to_string()))?;
    Ok(r.tagged().unwrap_or_else(|| r.to_string()))
}
