//! The on-disk cache of attachments, so that `DEL` and `CHECK` work after coracle restarts.
//!
//! Like libcni, one JSON file per attachment at `<state>/results/<network>-<container>-<ifname>`,
//! holding what `DEL` needs to undo an `ADD`: the network configuration used, the `CNI_ARGS`, the
//! capability arguments (port mappings) and the final result. The field names are libcni's
//! (`kind: cniCacheV1`), with two differences: `config` is the configuration list as a JSON object
//! rather than base64 bytes, and `netns` records the namespace path, so teardown can find it when
//! the caller no longer knows it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::NetworkError;

const CACHE_KIND: &str = "cniCacheV1";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CacheEntry {
    /// Always `cniCacheV1`.
    pub kind: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The network configuration list used for `ADD`.
    pub config: Value,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The network name.
    pub network_name: String,
    /// `CNI_ARGS` as pairs.
    #[serde(default)]
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments, e.g. `portMappings`.
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The final result of `ADD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// `CNI_NETNS` at `ADD` time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
}

impl CacheEntry {
    /// A new entry of the current kind.
    pub fn new(container_id: &str, if_name: &str, network_name: &str, config: Value) -> Self {
        CacheEntry {
            kind: CACHE_KIND.to_owned(),
            container_id: container_id.to_owned(),
            config,
            if_name: if_name.to_owned(),
            network_name: network_name.to_owned(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: None,
            netns: None,
        }
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub(crate) struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// The cache under `state_dir/results`.
    pub fn new(state_dir: &Path) -> Self {
        ResultCache {
            dir: state_dir.join("results"),
        }
    }

    /// The file of one attachment.
    pub fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{if_name}"))
    }

    /// Reads an attachment; `None` when there is no cache file or it is unreadable garbage (a
    /// torn write is logged and treated as missing, so teardown still runs with what is known).
    pub fn read(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Result<Option<CacheEntry>, NetworkError> {
        let path = self.path(network, container_id, if_name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NetworkError::Cache { path, source }),
        };
        match serde_json::from_slice::<CacheEntry>(&bytes) {
            Ok(entry) if entry.kind == CACHE_KIND => Ok(Some(entry)),
            Ok(entry) => {
                tracing::warn!(path = %path.display(), kind = entry.kind, "ignoring cni cache of unknown kind");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unparsable cni cache");
                Ok(None)
            }
        }
    }

    /// Writes an attachment atomically (temporary file, fsync, rename).
    pub fn write(&self, entry: &CacheEntry) -> Result<(), NetworkError> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let cache_error = |source| NetworkError::Cache {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(cache_error)?;

        let bytes = serde_json::to_vec(entry).expect("a cache entry always serializes");
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(cache_error)
    }

    /// Removes an attachment; a missing file is fine.
    pub fn remove(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Result<(), NetworkError> {
        let path = self.path(network, container_id, if_name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(NetworkError::Cache { path, source: e })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_survives_a_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let mut entry = CacheEntry::new("sb1", "eth0", "coracle", json!({"name": "coracle"}));
        entry.cni_args = vec![("K8S_POD_NAME".into(), "web".into())];
        entry.result = Some(json!({"cniVersion": "1.0.0"}));
        entry.netns = Some("/run/netns/x".into());

        cache.write(&entry).unwrap();
        let read = cache.read("coracle", "sb1", "eth0").unwrap();

        assert_eq!(read, Some(entry));
        assert!(dir.path().join("results/coracle-sb1-eth0").is_file());
    }

    #[test]
    fn a_missing_or_corrupt_entry_reads_as_none_and_removing_twice_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        assert_eq!(cache.read("coracle", "sb1", "eth0").unwrap(), None);

        fs::create_dir_all(dir.path().join("results")).unwrap();
        fs::write(cache.path("coracle", "sb1", "eth0"), "{\"kind\":").unwrap();

        assert_eq!(cache.read("coracle", "sb1", "eth0").unwrap(), None);
        cache.remove("coracle", "sb1", "eth0").unwrap();
        cache.remove("coracle", "sb1", "eth0").unwrap();
    }
}
