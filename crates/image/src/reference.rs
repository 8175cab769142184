//! Image references and their Docker normalisation.
//!
//! A reference is `[registry/]repository[:tag][@digest]`. As Docker and containerd do, a name
//! with no registry is on Docker Hub (`docker.io`), a Docker Hub name with one path component is
//! under `library/`, and a reference with neither tag nor digest means `:latest`. The grammar
//! itself is the one of `distribution/reference`, as implemented by `oci-spec`.

use std::fmt;

use oci_spec::distribution::Reference;

use crate::error::ImageError;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path in the registry, e.g. `library/busybox`.
    pub repository: String,
    /// The tag, if given (`latest` when neither tag nor digest was).
    pub tag: Option<String>,
    /// The manifest digest, if given, as `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `reference`.
    pub fn parse(reference: &str) -> Result<ImageRef, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if reference.trim() != reference {
            return Err(invalid("leading or trailing white space".into()));
        }
        let parsed = Reference::try_from(reference).map_err(|e| invalid(e.to_string()))?;
        if let Some(digest) = parsed.digest() {
            if !is_sha256_digest(digest) {
                return Err(invalid(format!(
                    "unsupported digest {digest:?}: only sha256"
                )));
            }
        }
        Ok(ImageRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag`, if the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest`, if the reference has a digest.
    pub fn digested(&self) -> Option<String> {
        self.digest.as_ref().map(|d| format!("{}@{d}", self.name()))
    }

    /// The reference as oci-client wants it, on `registry` (a mirror's host or the upstream).
    pub(crate) fn on_registry(&self, registry: &str) -> Reference {
        match (&self.tag, &self.digest) {
            (_, Some(digest)) => Reference::with_digest(
                registry.to_string(),
                self.repository.clone(),
                digest.clone(),
            ),
            (Some(tag), None) => {
                Reference::with_tag(registry.to_string(), self.repository.clone(), tag.clone())
            }
            (None, None) => Reference::with_tag(
                registry.to_string(),
                self.repository.clone(),
                "latest".to_string(),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Normalises an image reference: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize_reference(reference: &str) -> Result<String, ImageError> {
    Ok(ImageRef::parse(reference)?.to_string())
}

/// True for `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && is_lower_hex(hex))
}

/// True if `s` is non-empty and only lowercase hex digits.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn short_docker_hub_names_get_library_and_latest() {
        assert_eq!(
            normalize_reference("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_reference("library/busybox:1.36").unwrap(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            normalize_reference("myuser/app").unwrap(),
            "docker.io/myuser/app:latest"
        );
        assert_eq!(
            normalize_reference("index.docker.io/myuser/app:v2").unwrap(),
            "docker.io/myuser/app:v2"
        );
    }

    #[test]
    fn registries_with_ports_and_localhost_are_kept() {
        assert_eq!(
            normalize_reference("127.0.0.1:5000/busybox").unwrap(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(
            normalize_reference("localhost/a/b:c").unwrap(),
            "localhost/a/b:c"
        );
        assert_eq!(
            normalize_reference("coracle.test/layered:v1").unwrap(),
            "coracle.test/layered:v1"
        );
    }

    #[test]
    fn digest_references_have_no_implicit_tag() {
        let r = ImageRef::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.tagged(), None);

        let r = ImageRef::parse(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.tagged().unwrap(), "docker.io/library/busybox:1.36");
        assert_eq!(
            r.digested().unwrap(),
            format!("docker.io/library/busybox@{D}")
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "busybox:",
            "busybox@sha256:abc",
            "busybox@md5:ffffffffffffffffffffffffffffffff",
            " busybox",
            "-busybox",
            "a//b",
        ] {
            let err = normalize_reference(bad).unwrap_err();
            assert!(
                matches!(err, ImageError::InvalidReference { .. }),
                "{bad:?} gave {err}"
            );
        }
    }
}
