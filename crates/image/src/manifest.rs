//! Manifests, indexes and image configs, in both the OCI and the Docker schema 2 formats, and
//! the choice of this machine's platform in a multi-platform index.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use crate::error::ImageError;
use crate::host_platform;
use crate::reference::is_sha256_digest;

/// Media types a pull accepts for the manifest a tag names.
pub(crate) const ACCEPTED_MANIFESTS: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A content descriptor, as in manifests and indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// A manifest or an index.
#[derive(Debug)]
pub(crate) enum Manifest {
    /// A list of per-platform manifests (or, in an OCI layout, of images).
    Index(Vec<Descriptor>),
    /// One image: its config and layers, lowest first.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Parses a manifest or index; `what` names it in errors.
pub(crate) fn parse_manifest(
    operation: &str,
    what: &str,
    bytes: &[u8],
) -> Result<Manifest, ImageError> {
    let bad = |reason: String| ImageError::corrupt(operation, format!("{what}: {reason}"));
    let json: ManifestJson =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a manifest: {e}")))?;
    if json.schema_version.is_some_and(|v| v != 2) {
        return Err(bad(format!(
            "schema version {} is not supported",
            json.schema_version.unwrap_or_default()
        )));
    }
    let manifest = match (json.manifests, json.config, json.layers) {
        (Some(entries), _, _) => Manifest::Index(entries),
        (None, Some(config), Some(layers)) => Manifest::Image { config, layers },
        _ => {
            let kind = json.media_type.unwrap_or_else(|| "no media type".into());
            return Err(bad(format!(
                "neither an image manifest nor an index ({kind})"
            )));
        }
    };
    let descriptors: Vec<&Descriptor> = match &manifest {
        Manifest::Index(entries) => entries.iter().collect(),
        Manifest::Image { config, layers } => std::iter::once(config).chain(layers).collect(),
    };
    if let Some(d) = descriptors.iter().find(|d| !is_sha256_digest(&d.digest)) {
        return Err(bad(format!("unsupported digest {:?}", d.digest)));
    }
    Ok(manifest)
}

/// True if `media_type` names an index rather than one image's manifest.
pub(crate) fn is_index_type(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m.contains("index") || m.contains("manifest.list"))
}

/// The entry of `entries` for this machine's platform.
pub(crate) fn select_platform<'a>(
    operation: &str,
    entries: &'a [Descriptor],
) -> Result<&'a Descriptor, ImageError> {
    let (os, arch) = host_platform();
    if let Some(found) = entries.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == os && p.architecture == arch)
    }) {
        return Ok(found);
    }
    if let Some(first) = entries.iter().find(|d| d.platform.is_none()) {
        return Ok(first);
    }
    Err(ImageError::PlatformMismatch {
        operation: operation.to_string(),
        wanted: format!("{os}/{arch}"),
        available: entries
            .iter()
            .filter_map(|d| d.platform.as_ref().map(Platform::describe))
            .collect(),
    })
}

/// What the store needs from an image config.
#[derive(Debug)]
pub(crate) struct ConfigSummary {
    pub diff_ids: Vec<String>,
    pub created: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigJson {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    rootfs: RootFsJson,
}

#[derive(Debug, Deserialize)]
struct RootFsJson {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Parses an image config, checks it is for this platform and has one diff id per layer.
pub(crate) fn parse_config(
    operation: &str,
    id: &str,
    bytes: &[u8],
    layer_count: usize,
) -> Result<ConfigSummary, ImageError> {
    let bad = |reason: String| ImageError::corrupt(operation, format!("config {id}: {reason}"));
    let json: ConfigJson =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not an image config: {e}")))?;
    // The store hands out the config as oci-spec's type: it must parse as one.
    serde_json::from_slice::<ImageConfiguration>(bytes)
        .map_err(|e| bad(format!("not an image config: {e}")))?;
    let (os, arch) = host_platform();
    let image_os = json.os.as_deref().unwrap_or(os);
    let image_arch = json.architecture.as_deref().unwrap_or(arch);
    if image_os != os || image_arch != arch {
        let mut platform = format!("{image_os}/{image_arch}");
        if let Some(v) = &json.variant {
            platform = format!("{platform}/{v}");
        }
        return Err(ImageError::PlatformMismatch {
            operation: operation.to_string(),
            wanted: format!("{os}/{arch}"),
            available: vec![platform],
        });
    }
    if json.rootfs.diff_ids.len() != layer_count {
        return Err(bad(format!(
            "{} diff ids for {layer_count} layers",
            json.rootfs.diff_ids.len()
        )));
    }
    if let Some(d) = json.rootfs.diff_ids.iter().find(|d| !is_sha256_digest(d)) {
        return Err(bad(format!("unsupported diff id {d:?}")));
    }
    Ok(ConfigSummary {
        diff_ids: json.rootfs.diff_ids,
        created: json.created,
    })
}
