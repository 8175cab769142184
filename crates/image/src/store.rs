//! The content-addressed store on disk: image records, blobs, unpacked layers, locks.
//!
//! See the crate docs for the layout. Every change to records and blobs happens under the
//! store-wide lock (`DATA/images/lock`); layers are guarded by one lock file each
//! (`locks/<diff-id hex>`), and pulls or imports in flight announce the layers they will
//! reference in a lease file, so that `remove` never deletes a layer an unfinished pull is about
//! to reference.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::digest::hex_of;
use crate::error::{ImageError, IoContext};
use crate::reference::{is_lower_hex, ImageRef};
use crate::Image;

/// The image store under `DATA/images`. Cheap to clone; safe to share between threads and
/// between processes (coordination is by `flock`).
#[derive(Debug, Clone)]
pub struct ImageStore {
    pub(crate) paths: Arc<Paths>,
}

/// Where everything lives; see the crate docs.
#[derive(Debug)]
pub(crate) struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn store_lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn records(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn record(&self, id: &str) -> PathBuf {
        self.records().join(format!("{}.json", hex_of(id)))
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.blobs().join(hex_of(digest))
    }
    pub fn layers(&self) -> PathBuf {
        self.root.join("l")
    }
    pub fn layer(&self, diff_id: &str) -> PathBuf {
        self.layers().join(hex_of(diff_id))
    }
    pub fn layer_infos(&self) -> PathBuf {
        self.root.join("layer-info")
    }
    pub fn layer_info(&self, diff_id: &str) -> PathBuf {
        self.layer_infos().join(format!("{}.json", hex_of(diff_id)))
    }
    pub fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
    pub fn layer_lock(&self, diff_id: &str) -> PathBuf {
        self.locks().join(hex_of(diff_id))
    }
    pub fn leases(&self) -> PathBuf {
        self.root.join("leases")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// A fresh name in `tmp/` owned by the lock named `owner` (a layer hex or a lease id).
    pub fn tmp_entry(&self, owner: &str, what: &str) -> PathBuf {
        self.tmp()
            .join(format!("{owner}.{what}.{}", random_suffix()))
    }
}

/// What the store keeps about one image, in `images/<id hex>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageRecord {
    pub id: String,
    #[serde(default)]
    pub repo_tags: Vec<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    pub layers: Vec<LayerRecord>,
    /// Manifests (and indexes) kept as blobs for this image.
    #[serde(default)]
    pub manifests: Vec<String>,
}

/// One layer of an image record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerRecord {
    pub diff_id: String,
    /// Size of the uncompressed layer tar.
    pub size: u64,
    /// Digest of the blob it came from (compressed or not), if known.
    pub digest: Option<String>,
}

/// `layer-info/<hex>.json`: written before the layer directory is renamed into place.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerInfo {
    pub diff_id: String,
    pub size: u64,
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _lock: Flock<File>,
}

/// Takes the lock on `path` (creating the file); `None` if `wait` is false and it is held.
pub(crate) fn lock(path: &Path, wait: bool) -> Result<Option<LockGuard>, ImageError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)?;
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(file, arg) {
        Ok(lock) => Ok(Some(LockGuard { _lock: lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => Ok(None),
        Err((_, errno)) => Err(ImageError::io(path, errno.into())),
    }
}

/// A pull or import in flight: the layers it will reference, locked until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    pub id: String,
    path: PathBuf,
    _lock: LockGuard,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl ImageStore {
    /// Opens (creating it if needed) the store in `DATA/images` and removes what interrupted
    /// pulls and imports left behind.
    pub fn open(data_dir: &Path) -> Result<ImageStore, ImageError> {
        let paths = Paths {
            root: data_dir.join("images"),
        };
        for dir in [
            paths.records(),
            paths.blobs(),
            paths.layers(),
            paths.layer_infos(),
            paths.locks(),
            paths.leases(),
            paths.tmp(),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let store = ImageStore {
            paths: Arc::new(paths),
        };
        store.clean_stale()?;
        Ok(store)
    }

    /// The store's root, `DATA/images`.
    pub fn root(&self) -> &Path {
        &self.paths.root
    }

    /// The image `reference` names: a name (`busybox`, `name:tag`, `name@digest`), an id
    /// (`sha256:…`) or a unique prefix of an id's hex.
    pub fn get(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        match self.find(reference)? {
            Some((record, _)) => Ok(Some(self.image(&record)?)),
            None => Ok(None),
        }
    }

    /// All images, sorted by their first name (unnamed ones last, by id).
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let mut records = self.records()?;
        records.sort_by(|a, b| {
            let key = |r: &ImageRecord| (r.repo_tags.is_empty(), r.repo_tags.first().cloned());
            key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
        });
        records.iter().map(|r| self.image(r)).collect()
    }

    /// Removes a name from an image, or the whole image when `reference` is its id or its
    /// last name, then deletes layers and blobs no image uses any more. Returns the image as
    /// it was.
    pub fn remove(&self, reference: &str) -> Result<Image, ImageError> {
        let _store_lock = lock(&self.paths.store_lock(), true)?;
        let (mut record, matched) = self.find(reference)?.ok_or_else(|| ImageError::NotFound {
            reference: reference.to_string(),
        })?;
        let before = self.image(&record)?;
        let path = self.paths.record(&record.id);
        match matched {
            Match::Tag(name) => {
                record.repo_tags.retain(|t| *t != name);
            }
            Match::Digest(name) => {
                record.repo_digests.retain(|d| *d != name);
                if record.repo_digests.is_empty() {
                    record.repo_tags.clear();
                }
            }
            Match::Id => record.repo_tags.clear(),
        }
        if record.repo_tags.is_empty() {
            fs::remove_file(&path).at(&path)?;
            tracing::info!(image = %record.id, "image removed");
        } else {
            write_atomic(&path, &to_json(&record))?;
        }
        self.collect_garbage()?;
        Ok(before)
    }

    /// Records a complete image: its blobs, then its record, moving its tags away from any
    /// other image. The layers must be in place already.
    pub(crate) fn commit(
        &self,
        mut record: ImageRecord,
        config: &[u8],
        manifests: &[(String, Vec<u8>)],
    ) -> Result<Image, ImageError> {
        let _store_lock = lock(&self.paths.store_lock(), true)?;
        write_atomic(&self.paths.blob(&record.id), config)?;
        for (digest, bytes) in manifests {
            write_atomic(&self.paths.blob(digest), bytes)?;
        }

        for mut other in self.records()? {
            if other.id == record.id {
                merge_names(&mut record.repo_tags, &other.repo_tags);
                merge_names(&mut record.repo_digests, &other.repo_digests);
                merge_names(&mut record.manifests, &other.manifests);
                continue;
            }
            let before = other.repo_tags.len();
            other.repo_tags.retain(|t| !record.repo_tags.contains(t));
            if other.repo_tags.len() != before {
                tracing::debug!(image = %other.id, "tag moved to {}", record.id);
                write_atomic(&self.paths.record(&other.id), &to_json(&other))?;
            }
        }
        write_atomic(&self.paths.record(&record.id), &to_json(&record))?;
        self.image(&record)
    }

    /// Announces that the caller will reference `diff_ids`, until the lease is dropped.
    pub(crate) fn lease(&self, diff_ids: &[String]) -> Result<Lease, ImageError> {
        let _store_lock = lock(&self.paths.store_lock(), true)?;
        let id = format!("{}-{}", std::process::id(), random_suffix());
        let path = self.paths.leases().join(&id);
        let guard = lock(&path, true)?.expect("a blocking lock always returns a guard");
        fs::write(&path, serde_json::to_vec(diff_ids).unwrap_or_default()).at(&path)?;
        Ok(Lease {
            id,
            path,
            _lock: guard,
        })
    }

    /// Adds `diff_ids` to the layers `lease` protects.
    pub(crate) fn extend_lease(
        &self,
        lease: &Lease,
        diff_ids: &[String],
    ) -> Result<(), ImageError> {
        let _store_lock = lock(&self.paths.store_lock(), true)?;
        let mut ids: Vec<String> = fs::read(&lease.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ids.extend(diff_ids.iter().cloned());
        fs::write(&lease.path, serde_json::to_vec(&ids).unwrap_or_default()).at(&lease.path)
    }

    /// After a failed pull or import: deletes the layers it unpacked that no image uses, so
    /// that the store is as it was. Errors are logged, not returned: the caller has one.
    pub(crate) fn clean_after_failure(&self, lease: Lease) {
        drop(lease);
        let result = lock(&self.paths.store_lock(), true).and_then(|_guard| self.collect_garbage());
        if let Err(e) = result {
            tracing::warn!("cleaning up after a failed pull or import: {e}");
        }
    }

    /// True if the layer with `diff_id` is unpacked and complete.
    pub(crate) fn has_layer(&self, diff_id: &str) -> bool {
        self.paths.layer(diff_id).is_dir() && self.paths.layer_info(diff_id).is_file()
    }

    /// The recorded size of a complete layer.
    pub(crate) fn layer_size(&self, diff_id: &str) -> Result<u64, ImageError> {
        let path = self.paths.layer_info(diff_id);
        let bytes = fs::read(&path).at(&path)?;
        let info: LayerInfo = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::io(&path, std::io::Error::new(ErrorKind::InvalidData, e)))?;
        Ok(info.size)
    }

    fn find(&self, reference: &str) -> Result<Option<(ImageRecord, Match)>, ImageError> {
        let records = self.records()?;

        // A name as stored (normalised) needs no parsing, and parsing is not free: the
        // reference grammar's regex takes tens of milliseconds to compile, once per process,
        // which a one-shot `coracle ctr run` would pay on every start. A normalised name
        // parses to itself, so this finds what the parse below would.
        if let Some(rec) = records
            .iter()
            .find(|x| x.repo_tags.iter().any(|t| t == reference))
        {
            return Ok(Some((rec.clone(), Match::Tag(reference.to_string()))));
        }
        if let Some(rec) = records
            .iter()
            .find(|x| x.repo_digests.iter().any(|d| d == reference))
        {
            return Ok(Some((rec.clone(), Match::Digest(reference.to_string()))));
        }

        // A name first, as Docker does: `abc` is the image named abc before an id prefix.
        if let Ok(r) = ImageRef::parse(reference) {
            if let Some(digested) = r.digested() {
                if let Some(rec) = records.iter().find(|x| x.repo_digests.contains(&digested)) {
                    return Ok(Some((rec.clone(), Match::Digest(digested))));
                }
            } else if let Some(tagged) = r.tagged() {
                if let Some(rec) = records.iter().find(|x| x.repo_tags.contains(&tagged)) {
                    return Ok(Some((rec.clone(), Match::Tag(tagged))));
                }
            }
        }

        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !is_lower_hex(prefix) || prefix.len() > 64 {
            return Ok(None);
        }
        let found: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| hex_of(&r.id).starts_with(prefix))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(((*one).clone(), Match::Id))),
            many => Err(ImageError::AmbiguousId {
                prefix: reference.to_string(),
                count: many.len(),
            }),
        }
    }

    pub(crate) fn records(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.paths.records();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match self.read_record(&entry.path()) {
                Ok(record) => out.push(record),
                // Removed between read_dir and open by a concurrent `remove`.
                Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn read_record(&self, path: &Path) -> Result<ImageRecord, ImageError> {
        let bytes = fs::read(path).at(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::io(path, std::io::Error::new(ErrorKind::InvalidData, e)))
    }

    fn image(&self, record: &ImageRecord) -> Result<Image, ImageError> {
        let path = self.paths.blob(&record.id);
        let bytes = fs::read(&path).at(&path)?;
        let config: ImageConfiguration = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::io(&path, std::io::Error::new(ErrorKind::InvalidData, e)))?;
        Ok(Image {
            id: record.id.clone(),
            repo_tags: record.repo_tags.clone(),
            repo_digests: record.repo_digests.clone(),
            size: record.layers.iter().map(|l| l.size).sum(),
            created: record.created.clone(),
            config,
            layers: record
                .layers
                .iter()
                .map(|l| self.paths.layer(&l.diff_id))
                .collect(),
            diff_ids: record.layers.iter().map(|l| l.diff_id.clone()).collect(),
            layer_sizes: record.layers.iter().map(|l| l.size).collect(),
        })
    }

    /// Deletes layers and blobs that no record and no live lease references.
    fn collect_garbage(&self) -> Result<(), ImageError> {
        let records = self.records()?;
        let mut layers: HashSet<String> = HashSet::new();
        let mut blobs: HashSet<String> = HashSet::new();
        for r in &records {
            blobs.insert(hex_of(&r.id).to_string());
            blobs.extend(r.manifests.iter().map(|m| hex_of(m).to_string()));
            layers.extend(r.layers.iter().map(|l| hex_of(&l.diff_id).to_string()));
        }
        for diff_id in self.live_lease_layers()? {
            layers.insert(hex_of(&diff_id).to_string());
        }

        for hex in list_names(&self.paths.layers())? {
            if layers.contains(&hex) || !is_lower_hex(&hex) {
                continue;
            }
            let diff_id = format!("sha256:{hex}");
            let Some(_layer_lock) = lock(&self.paths.layer_lock(&diff_id), false)? else {
                continue; // being unpacked right now
            };
            let doomed = self.paths.tmp_entry("del", &hex);
            let dir = self.paths.layer(&diff_id);
            fs::rename(&dir, &doomed).at(&dir)?;
            let info = self.paths.layer_info(&diff_id);
            let _ = fs::remove_file(&info);
            fs::remove_dir_all(&doomed).at(&doomed)?;
            tracing::info!(layer = %diff_id, "unused layer deleted");
        }
        for hex in list_names(&self.paths.blobs())? {
            if !blobs.contains(&hex) && !hex.starts_with('.') {
                let path = self.paths.blobs().join(&hex);
                fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// The diff ids named by leases whose owner is alive; stale leases are deleted.
    fn live_lease_layers(&self) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for id in list_names(&self.paths.leases())? {
            let path = self.paths.leases().join(&id);
            match lock(&path, false) {
                Ok(Some(_stale)) => {
                    let _ = fs::remove_file(&path);
                }
                Ok(None) => {
                    let ids: Vec<String> = fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok())
                        .unwrap_or_default();
                    out.extend(ids);
                }
                Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Removes temp files and directories whose owner (a layer lock or a lease) is free.
    fn clean_stale(&self) -> Result<(), ImageError> {
        let _store_lock = lock(&self.paths.store_lock(), true)?;
        self.live_lease_layers()?;
        for name in list_names(&self.paths.tmp())? {
            let owner = name.split('.').next().unwrap_or_default();
            let owner_lock = if owner == "del" {
                None
            } else if owner.len() == 64 && is_lower_hex(owner) {
                match lock(&self.paths.layer_lock(&format!("sha256:{owner}")), false)? {
                    Some(guard) => Some(guard),
                    None => continue,
                }
            } else if self.paths.leases().join(owner).exists() {
                continue; // the lease is live (stale ones were just deleted)
            } else {
                None
            };
            let path = self.paths.tmp().join(&name);
            tracing::debug!(path = %path.display(), "removing what an interrupted run left");
            remove_any(&path)?;
            drop(owner_lock);
        }
        for dir in [
            self.paths.records(),
            self.paths.blobs(),
            self.paths.layer_infos(),
        ] {
            for name in list_names(&dir)? {
                if name.starts_with(".tmp-") {
                    remove_any(&dir.join(name))?;
                }
            }
        }
        Ok(())
    }
}

/// How `find` matched: the name to drop on `remove`.
enum Match {
    Tag(String),
    Digest(String),
    Id,
}

fn merge_names(into: &mut Vec<String>, from: &[String]) {
    for name in from {
        if !into.contains(name) {
            into.push(name.clone());
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("records serialise")
}

/// Writes `bytes` to `path` so that a crash leaves the old content or the new, never a part:
/// a temp file in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().expect("store paths have a parent");
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".tmp-{name}-{}", random_suffix()));
    let result = (|| {
        let mut file = File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)?;
        File::open(dir).and_then(|d| d.sync_all()).at(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Names of the entries of `dir`.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        out.push(entry.at(dir)?.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

/// Removes a file or a directory tree; a missing one is fine.
pub(crate) fn remove_any(path: &Path) -> Result<(), ImageError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(ImageError::io(path, e)),
        _ => Ok(()),
    }
}

/// 16 random hex digits, for temp names.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}
