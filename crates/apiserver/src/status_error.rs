//! Every error the API answers, and the one place it becomes a Kubernetes `Status`.
//!
//! Handlers return [`ApiError`]; its [`IntoResponse`] renders the `Status` object kubectl
//! parses (`reason`, `code`, `details`), with the HTTP status equal to `code`, exactly as
//! kube-apiserver does (reference kubectl-wire.md §4.1).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coracle_store::StoreError;
use serde_json::{json, Value};

/// One validation cause, as `details.causes[]`.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: String,
    /// The message without the field path.
    pub message: String,
    /// The field path.
    pub field: String,
}

/// What an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist: `pods "web" not found`.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// The resource, with its group for non-core groups (`leases.coordination.k8s.io`).
        resource: String,
        /// The object's name.
        name: String,
    },
    /// A create found the name taken.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// The resource.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// A write carried a stale `resourceVersion`.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {reason}")]
    Conflict {
        /// The resource.
        resource: String,
        /// The object's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A server-side apply changes fields that other managers own (409), as upstream's
    /// `Apply failed with 1 conflict: conflict with "kubectl": .data.key`.
    #[error("{message}")]
    ApplyConflict {
        /// The whole message, one line per conflict when there are several.
        message: String,
        /// One `FieldManagerConflict` per field.
        causes: Vec<Cause>,
    },
    /// Validation failed (422), with causes.
    #[error("{message}")]
    Invalid {
        /// The kind (`Pod`).
        kind: String,
        /// The object's name.
        name: String,
        /// The full message, e.g. `Pod "x" is invalid: spec...: Required value`.
        message: String,
        /// The per-field causes.
        causes: Vec<Cause>,
    },
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong credentials (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// The request is not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The verb is not supported on this resource (405).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The path names nothing this server serves (404, no details).
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    /// The body is in a format the server does not read (415).
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType {
        /// The media types accepted here.
        accepted: &'static str,
    },
    /// No representation the `Accept` header allows (406).
    #[error("the server was unable to respond with a content type that the client supports")]
    NotAcceptable,
    /// The body is larger than the server reads (413).
    #[error("Request entity too large: limit is {limit}")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A watch or list from a compacted revision (410).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available.
        oldest: u64,
    },
    /// A revision that was not written yet (504, as upstream answers after its wait).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The revision asked for.
        requested: u64,
        /// The current revision.
        current: u64,
    },
    /// Something failed inside the server (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The `Status` fields: HTTP code and reason.
    fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchPath => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => {
                (StatusCode::CONFLICT, "Conflict")
            }
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::Expired { .. } => (StatusCode::GONE, "Expired"),
            ApiError::TooLargeResourceVersion { .. } => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The error as a `Status` object.
    pub fn status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => Some(resource_details(resource, name)),
            ApiError::Invalid {
                kind, name, causes, ..
            } => Some(json!({
                "name": name,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::ApplyConflict { causes, .. } => Some(json!({
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::TooLargeResourceVersion { .. } => Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// `details` naming one object: `{"name":"web","kind":"pods"}` (with `group` outside core).
fn resource_details(resource: &str, name: &str) -> Value {
    match resource.split_once('.') {
        Some((plural, group)) => json!({"name": name, "group": group, "kind": plural}),
        None => json!({"name": name, "kind": resource}),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        if code.is_server_error() {
            tracing::warn!("request failed: {self}");
        } else {
            tracing::debug!("request refused: {self}");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl ApiError {
    /// The 409 of an apply's field-manager conflicts.
    pub fn from_conflicts(conflicts: crate::fieldmanager::Conflicts) -> ApiError {
        ApiError::ApplyConflict {
            message: conflicts.message(),
            causes: conflicts
                .0
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with {}", c.manager),
                    field: c.field.clone(),
                })
                .collect(),
        }
    }

    /// Maps a store error on the object `name` of `resource`.
    pub fn from_store(err: StoreError, resource: &str, name: &str) -> ApiError {
        match err {
            StoreError::NotFound { .. } => ApiError::NotFound {
                resource: resource.to_owned(),
                name: name.to_owned(),
            },
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists {
                resource: resource.to_owned(),
                name: name.to_owned(),
            },
            StoreError::Conflict { .. } => ApiError::Conflict {
                resource: resource.to_owned(),
                name: name.to_owned(),
                reason: "the object has been modified; please apply your changes to the latest \
                         version and try again"
                    .to_owned(),
            },
            StoreError::Expired { requested, oldest } => ApiError::Expired { requested, oldest },
            StoreError::FutureRevision { requested, current } => {
                ApiError::TooLargeResourceVersion { requested, current }
            }
            StoreError::InvalidContinue { reason } => {
                ApiError::BadRequest(format!("invalid continue token: {reason}"))
            }
            StoreError::InvalidKey {
                segment, reason, ..
            } => ApiError::BadRequest(format!("invalid name {segment:?}: {reason}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
