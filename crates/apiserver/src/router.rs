//! The HTTP routes: health and version without authentication, everything else behind the
//! bearer token or a client certificate.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::codec::MAX_BODY;
use crate::discovery;
use crate::http::ClientCertificate;
use crate::openapi;
use crate::query::Query;
use crate::rest::{self, json_response};
use crate::state::ApiState;
use crate::status_error::ApiError;

/// The server's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/version", get(version))
        // The official clients (Python, Java) ask for `/version/`; upstream serves both.
        .route("/version/", get(version))
        .fallback(api)
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn version() -> Response {
    json_response(StatusCode::OK, &version_info(), &[])
}

/// The `/version` document (Kubernetes 1.33, the k8s-openapi types in use).
pub fn version_info() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": crate::GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

async fn api(State(state): State<Arc<ApiState>>, req: axum::extract::Request) -> Response {
    match handle(state, req).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

fn authenticated(state: &ApiState, headers: &HeaderMap, req: &axum::extract::Request) -> bool {
    if req.extensions().get::<ClientCertificate>().is_some() {
        return true;
    }
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) else {
        return false;
    };
    // Constant-time comparison.
    let (a, b) = (token.as_bytes(), state.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(state: Arc<ApiState>, req: axum::extract::Request) -> Result<Response, ApiError> {
    if !authenticated(&state, req.headers(), &req) {
        return Err(ApiError::Unauthorized);
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let query = Query::parse(parts.uri.query())?;
    let accept = parts
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = parts.method == Method::GET;

    // Upgrades need the request's parts (its `OnUpgrade`), not a body read to the end.
    if let ["api", "v1", "namespaces", ns, "pods", name, "exec"] = segs.as_slice() {
        if matches!(parts.method, Method::GET | Method::POST) {
            return crate::exec::serve(state.clone(), ns, name, parts).await;
        }
    }
    if let ["api", "v1", "namespaces", ns, "pods", name, "portforward"] = segs.as_slice() {
        if matches!(parts.method, Method::GET | Method::POST) {
            return crate::portforward::serve(state.clone(), ns, name, parts).await;
        }
    }

    match segs.as_slice() {
        ["api"] | ["apis"] if is_get => {
            let core = segs[0] == "api";
            if let Some(v) = discovery::aggregated_version(&accept) {
                let body = serde_json::to_vec(&discovery::aggregated(core, v)).unwrap_or_default();
                let ct = discovery::aggregated_content_type(v);
                return Ok(([(axum::http::header::CONTENT_TYPE, ct)], body).into_response());
            }
            let body = if core {
                discovery::api_versions(&state.server_address)
            } else {
                discovery::api_group_list()
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        ["api", "v1"] if is_get => Ok(json_response(
            StatusCode::OK,
            &discovery::resource_list("", "v1").ok_or(ApiError::NoSuchPath)?,
            &[],
        )),
        ["apis", group] if is_get => Ok(json_response(
            StatusCode::OK,
            &discovery::api_group(group).ok_or(ApiError::NoSuchPath)?,
            &[],
        )),
        ["apis", group, version] if is_get => Ok(json_response(
            StatusCode::OK,
            &discovery::resource_list(group, version).ok_or(ApiError::NoSuchPath)?,
            &[],
        )),
        ["openapi", "v2"] if is_get => openapi::v2::response(&parts.headers),
        ["openapi", "v3"] if is_get => Ok(json_response(StatusCode::OK, &openapi::index(), &[])),
        ["openapi", "v3", rest @ ..] if is_get => {
            let doc = openapi::document(&rest.join("/")).ok_or(ApiError::NoSuchPath)?;
            Ok(json_response(StatusCode::OK, &doc, &[]))
        }
        ["api", "v1", rest @ ..] => dispatch(state, "", "v1", rest, parts, query, body).await,
        ["apis", group, version, rest @ ..] => {
            let (group, version) = ((*group).to_owned(), (*version).to_owned());
            dispatch(state, &group, &version, rest, parts, query, body).await
        }
        _ => Err(ApiError::NoSuchPath),
    }
}

async fn dispatch(
    state: Arc<ApiState>,
    group: &str,
    version: &str,
    segs: &[&str],
    parts: axum::http::request::Parts,
    query: Query,
    body: Body,
) -> Result<Response, ApiError> {
    let target = rest::parse_target(group, version, segs)?;
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge { limit: MAX_BODY })?;
    rest::Request {
        state,
        method: parts.method,
        target,
        query,
        headers: parts.headers,
        body,
    }
    .handle()
    .await
}
