//! Pulling an image from an OCI / Docker v2 registry.
//!
//! The manifest (and, for a multi-platform index, this platform's manifest) is resolved on the
//! first endpoint that answers: the registry's mirrors, then the registry itself. The config
//! and the layers then come from that endpoint. Layer blobs stream to a temp file while they
//! are hashed and counted (oci-client's `pull()` would buffer whole layers in memory, so it is
//! not used), then are unpacked under the layer's lock. Three layers download at a time.

use std::sync::Once;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;

use crate::digest::{hex_of, sha256, Hasher};
use crate::error::ImageError;
use crate::manifest::ACCEPTED_MANIFESTS;
use crate::manifest::{parse_config, parse_manifest, select_platform, Descriptor, Manifest};
use crate::reference::ImageRef;
use crate::registry_config::{Credentials, Endpoint, RegistryConfig};
use crate::store::{lock, remove_any, ImageRecord, LayerRecord};
use crate::{Image, ImageStore};

/// Layers downloaded at the same time.
const PARALLEL_LAYERS: usize = 3;
/// Configs and manifests larger than this are refused.
const MAX_SMALL_BLOB: u64 = 16 << 20;
/// A progress report every this many bytes of a layer.
const PROGRESS_STEP: u64 = 1 << 20;

/// What a pull is doing, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// Asking `registry` for the manifest of `reference`.
    Resolving {
        /// The normalised reference.
        reference: String,
        /// The endpoint host asked.
        registry: String,
    },
    /// The manifest is known: the image has `layers` layers.
    Resolved {
        /// The normalised reference.
        reference: String,
        /// The digest the reference resolved to (an index's, for a multi-platform image).
        digest: String,
        /// Number of layers.
        layers: usize,
    },
    /// A layer blob is downloading (`done` false) or downloaded and verified (`done` true).
    Layer {
        /// The blob digest.
        digest: String,
        /// The blob size.
        size: u64,
        /// Whether the download is complete.
        done: bool,
        /// Bytes downloaded so far.
        bytes: u64,
    },
    /// The layer is already in the store: nothing to download.
    LayerExists {
        /// The blob digest.
        digest: String,
        /// The blob size.
        size: u64,
    },
    /// The image is in the store.
    Done {
        /// The image id.
        id: String,
    },
}

type Progress<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

/// The manifest resolved on one endpoint.
struct Resolved {
    client: Client,
    reference: Reference,
    config: Descriptor,
    layers: Vec<Descriptor>,
    /// The digest the user's reference resolved to.
    top_digest: String,
    manifests: Vec<(String, Vec<u8>)>,
}

impl ImageStore {
    /// Pulls `reference` into the store, trying the mirrors `registries` names first.
    pub async fn pull(
        &self,
        reference: &str,
        registries: &RegistryConfig,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        install_crypto_provider();
        let image_ref = ImageRef::parse(reference)?;
        let operation = format!("pull {:?}", image_ref.to_string());

        let mut last_error = None;
        let mut resolved = None;
        for endpoint in registries.endpoints(&image_ref.registry) {
            match resolve(&image_ref, &operation, &endpoint, progress).await {
                Ok(r) => {
                    resolved = Some(r);
                    break;
                }
                Err(e) => {
                    tracing::debug!(registry = %endpoint.host, "resolve failed: {e}");
                    last_error = Some(e);
                }
            }
        }
        let resolved = match (resolved, last_error) {
            (Some(r), _) => r,
            (None, Some(e)) => return Err(e),
            (None, None) => unreachable!("endpoints() always has the upstream registry"),
        };
        progress(PullProgress::Resolved {
            reference: image_ref.to_string(),
            digest: resolved.top_digest.clone(),
            layers: resolved.layers.len(),
        });

        let image = self
            .fetch(&image_ref, &operation, resolved, progress)
            .await?;
        tracing::info!(image = %image_ref, id = %image.id, "image pulled");
        progress(PullProgress::Done {
            id: image.id.clone(),
        });
        Ok(image)
    }

    /// Fetches the config and the layers of a resolved image and records it.
    async fn fetch(
        &self,
        image_ref: &ImageRef,
        operation: &str,
        resolved: Resolved,
        progress: Progress<'_>,
    ) -> Result<Image, ImageError> {
        let registry = resolved.reference.registry().to_string();
        let config_bytes =
            pull_small_blob(&resolved, &resolved.config, image_ref, operation).await?;
        let summary = parse_config(
            operation,
            &resolved.config.digest,
            &config_bytes,
            resolved.layers.len(),
        )?;

        let mut record = ImageRecord {
            id: resolved.config.digest.clone(),
            repo_tags: image_ref.tagged().into_iter().collect(),
            repo_digests: vec![format!("{}@{}", image_ref.name(), resolved.top_digest)],
            created: summary.created.clone(),
            layers: Vec::new(),
            manifests: resolved.manifests.iter().map(|(d, _)| d.clone()).collect(),
        };
        let lease = self.lease(&summary.diff_ids)?;
        // Owned items: a closure taking references here makes the future not `Send`.
        let jobs: Vec<(Descriptor, String)> = (resolved.layers.iter().cloned())
            .zip(summary.diff_ids.iter().cloned())
            .collect();
        let resolved = &resolved;
        let layers = futures::stream::iter(jobs)
            .map(|(blob, diff_id)| async move {
                self.fetch_layer(resolved, image_ref, operation, &blob, &diff_id, progress)
                    .await
            })
            .buffered(PARALLEL_LAYERS)
            .try_collect()
            .await;
        let result = layers.and_then(|layers| {
            record.layers = layers;
            self.commit(record, &config_bytes, &resolved.manifests)
        });
        match result {
            Ok(image) => {
                drop(lease);
                tracing::debug!(%registry, "pull complete");
                Ok(image)
            }
            Err(e) => {
                self.clean_after_failure(lease);
                Err(e)
            }
        }
    }

    /// Makes sure the layer `diff_id` is unpacked, downloading `blob` if it is not.
    async fn fetch_layer(
        &self,
        resolved: &Resolved,
        image_ref: &ImageRef,
        operation: &str,
        blob: &Descriptor,
        diff_id: &str,
        progress: Progress<'_>,
    ) -> Result<LayerRecord, ImageError> {
        let record = |size| LayerRecord {
            diff_id: diff_id.to_string(),
            size,
            digest: Some(blob.digest.clone()),
        };
        let lock_path = self.paths.layer_lock(diff_id);
        let guard = tokio::task::spawn_blocking(move || lock(&lock_path, true))
            .await
            .expect("lock task does not panic")?;
        if self.has_layer(diff_id) {
            progress(PullProgress::LayerExists {
                digest: blob.digest.clone(),
                size: blob.size,
            });
            return Ok(record(self.layer_size(diff_id)?));
        }

        let tmp = self.paths.tmp_entry(hex_of(diff_id), "download");
        let result = async {
            download(resolved, image_ref, operation, blob, &tmp, progress).await?;
            let store = self.clone();
            let (op, tmp, diff) = (operation.to_string(), tmp.clone(), diff_id.to_string());
            // The lock goes with the unpacking: if this pull is cancelled (another layer
            // failed), the unpack still finishes, or fails, before anyone else may start.
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                store.unpack_layer(&op, &tmp, &diff)
            })
            .await
            .expect("unpack task does not panic")
        }
        .await;
        let _ = remove_any(&tmp);
        Ok(record(result?))
    }
}

/// Finds the manifest for this platform on `endpoint`.
async fn resolve(
    image_ref: &ImageRef,
    operation: &str,
    endpoint: &Endpoint,
    progress: Progress<'_>,
) -> Result<Resolved, ImageError> {
    let client = client_for(image_ref, endpoint)?;
    let auth = registry_auth(endpoint);
    let reference = image_ref.on_registry(&endpoint.host);
    let fail = |e| map_error(e, image_ref, &endpoint.host);
    progress(PullProgress::Resolving {
        reference: image_ref.to_string(),
        registry: endpoint.host.clone(),
    });

    let (bytes, _) = client
        .pull_manifest_raw(&reference, &auth, ACCEPTED_MANIFESTS)
        .await
        .map_err(fail)?;
    let top_digest = checked_digest(operation, "manifest", &bytes, image_ref.digest.as_deref())?;
    let mut manifests = vec![(top_digest.clone(), bytes.to_vec())];
    let mut manifest = parse_manifest(operation, "manifest", &bytes)?;

    if let Manifest::Index(entries) = &manifest {
        let chosen = select_platform(operation, entries)?;
        let by_digest = reference.clone_with_digest(chosen.digest.clone());
        let (bytes, _) = client
            .pull_manifest_raw(&by_digest, &auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(fail)?;
        let digest = checked_digest(operation, "manifest", &bytes, Some(&chosen.digest))?;
        manifest = parse_manifest(operation, &format!("manifest {digest}"), &bytes)?;
        manifests.push((digest, bytes.to_vec()));
    }
    match manifest {
        Manifest::Image { config, layers } => Ok(Resolved {
            client,
            reference,
            config,
            layers,
            top_digest,
            manifests,
        }),
        Manifest::Index(_) => Err(ImageError::corrupt(
            operation,
            "an index inside an index is not supported in a registry",
        )),
    }
}

/// The digest of `bytes`, which must be `expected` if that is given.
fn checked_digest(
    operation: &str,
    what: &str,
    bytes: &[u8],
    expected: Option<&str>,
) -> Result<String, ImageError> {
    let actual = sha256(bytes);
    match expected {
        Some(expected) if expected != actual => Err(ImageError::DigestMismatch {
            operation: operation.to_string(),
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        }),
        _ => Ok(actual),
    }
}

/// Downloads a config-sized blob into memory, verified.
async fn pull_small_blob(
    resolved: &Resolved,
    blob: &Descriptor,
    image_ref: &ImageRef,
    operation: &str,
) -> Result<Vec<u8>, ImageError> {
    if blob.size > MAX_SMALL_BLOB {
        return Err(ImageError::corrupt(
            operation,
            format!("config {} is {} bytes: too large", blob.digest, blob.size),
        ));
    }
    let mut bytes = Vec::with_capacity(blob.size as usize);
    resolved
        .client
        .pull_blob(&resolved.reference, blob.digest.as_str(), &mut bytes)
        .await
        .map_err(|e| map_error(e, image_ref, resolved.reference.registry()))?;
    checked_digest(operation, "config", &bytes, Some(&blob.digest))?;
    Ok(bytes)
}

/// Streams `blob` into the file `tmp`, hashing and counting as it goes.
async fn download(
    resolved: &Resolved,
    image_ref: &ImageRef,
    operation: &str,
    blob: &Descriptor,
    tmp: &std::path::Path,
    progress: Progress<'_>,
) -> Result<(), ImageError> {
    let registry = resolved.reference.registry();
    let mut stream = resolved
        .client
        .pull_blob_stream(&resolved.reference, blob.digest.as_str())
        .await
        .map_err(|e| map_error(e, image_ref, registry))?;
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| ImageError::io(tmp, e))?;
    let report = |bytes, done| {
        progress(PullProgress::Layer {
            digest: blob.digest.clone(),
            size: blob.size,
            done,
            bytes,
        })
    };
    report(0, false);

    let what = format!("layer blob {}", blob.digest);
    let mut hasher = Hasher::default();
    let mut next_report = PROGRESS_STEP;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // oci-client checks the digest too, and says so at the end of the stream.
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<DigestError>()) => break,
            Err(e) => {
                return Err(ImageError::RegistryUnreachable {
                    reference: image_ref.to_string(),
                    registry: registry.to_string(),
                    source: Box::new(e),
                })
            }
        };
        hasher.update(&chunk);
        if hasher.len() > blob.size {
            return Err(size_mismatch(operation, &what, blob.size, hasher.len()));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ImageError::io(tmp, e))?;
        if hasher.len() >= next_report {
            report(hasher.len(), false);
            next_report = hasher.len() + PROGRESS_STEP;
        }
    }
    file.flush().await.map_err(|e| ImageError::io(tmp, e))?;

    let actual = hasher.digest();
    if actual != blob.digest {
        return Err(ImageError::DigestMismatch {
            operation: operation.to_string(),
            what,
            expected: blob.digest.clone(),
            actual,
        });
    }
    if hasher.len() != blob.size {
        return Err(size_mismatch(operation, &what, blob.size, hasher.len()));
    }
    report(hasher.len(), true);
    Ok(())
}

fn size_mismatch(operation: &str, what: &str, expected: u64, actual: u64) -> ImageError {
    ImageError::SizeMismatch {
        operation: operation.to_string(),
        what: what.to_string(),
        expected,
        actual,
    }
}

/// An oci-client for one endpoint.
fn client_for(image_ref: &ImageRef, endpoint: &Endpoint) -> Result<Client, ImageError> {
    let registry_error = |message: String| ImageError::Registry {
        reference: image_ref.to_string(),
        registry: endpoint.host.clone(),
        message,
    };
    if let Some(unsupported) = &endpoint.tls.unsupported {
        return Err(registry_error(unsupported.clone()));
    }
    let mut extra_root_certificates = Vec::new();
    if let Some(ca_file) = &endpoint.tls.ca_file {
        let data = std::fs::read(ca_file).map_err(|e| ImageError::io(ca_file, e))?;
        extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    Ok(Client::new(ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: endpoint.tls.insecure_skip_verify,
        extra_root_certificates,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("coracle/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    }))
}

fn registry_auth(endpoint: &Endpoint) -> RegistryAuth {
    match &endpoint.credentials {
        Some(Credentials::Basic(user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
        Some(Credentials::Token(token)) => RegistryAuth::Bearer(token.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// Sorts oci-client's errors into the variants callers tell apart.
fn map_error(error: OciDistributionError, image_ref: &ImageRef, registry: &str) -> ImageError {
    let reference = image_ref.to_string();
    let registry = registry.to_string();
    let other = |message: String| ImageError::Registry {
        reference: reference.clone(),
        registry: registry.clone(),
        message,
    };
    match error {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            ImageError::RegistryUnreachable {
                reference,
                registry,
                source: Box::new(e),
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => ImageError::Unauthorized {
            reference,
            registry,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => ImageError::ManifestUnknown {
            reference,
            registry,
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                ImageError::ManifestUnknown {
                    reference,
                    registry,
                }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ImageError::Unauthorized {
                    reference,
                    registry,
                }
            } else {
                other(envelope.to_string())
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => ImageError::ManifestUnknown {
            reference,
            registry,
        },
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => ImageError::Unauthorized {
            reference,
            registry,
        },
        OciDistributionError::ServerError { code, message, .. } => {
            other(format!("HTTP {code}: {}", message.trim()))
        }
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            ImageError::DigestMismatch {
                operation: format!("pull {reference:?}"),
                what: "blob".to_string(),
                expected,
                actual,
            }
        }
        other_error => other(other_error.to_string()),
    }
}

/// Installs rustls' ring provider as the process default, once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means some other part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn pull_future_is_send_so_the_kubelet_can_spawn_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let registries = RegistryConfig::default();
        let progress = |_: PullProgress| {};
        let fut = store.pull("busybox", &registries, &progress);
        assert_send(&fut);
        drop(fut);
        fn assert_static_send<T: Send + 'static>(_: T) {}
        let store2 = store.clone();
        assert_static_send(async move {
            let registries = RegistryConfig::default();
            let _ = store2.pull("busybox", &registries, &|_| {}).await;
        });
    }
}
