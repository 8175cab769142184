//! PATCH bodies: JSON patch, merge patch, strategic merge patch and (as a merge) apply.

pub mod json;
pub mod merge;
pub mod strategic;

use serde_json::Value;

use crate::resources::Resource;
use crate::status_error::ApiError;

/// The patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// From the request's media type; anything else is 415.
    pub fn from_media_type(media: &str) -> Result<PatchKind, ApiError> {
        match media {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            _ => Err(ApiError::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json, \
                           application/apply-patch+yaml, application/strategic-merge-patch+json",
            }),
        }
    }
}

/// Applies `patch` to `current`.
///
/// Server-side apply merges here as a strategic merge; field ownership (conflicts, removal of
/// fields an applier drops) is [`crate::fieldmanager`]'s.
pub fn apply(
    kind: PatchKind,
    res: &Resource,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Json => json::apply(current, patch),
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "merge patch must be a JSON object".into(),
                ));
            }
            Ok(merge::apply(current, patch))
        }
        PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "strategic merge patch must be a JSON object".into(),
                ));
            }
            strategic::apply(res, current, patch)
        }
    }
}
