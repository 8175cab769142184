//! Watches: a chunked stream of JSON watch events, one per line.
//!
//! `resourceVersion` absent or `0` first sends the current state as synthetic `ADDED` events;
//! `N` sends the changes after `N`; a compacted `N` gets an `ERROR` event with a 410 Status.
//! Bookmarks when asked for, the end at `timeoutSeconds`, Table events for `get -w`.
//! Objects are sent in the version watched (`events.k8s.io/v1` Events converted).
//! A change that moves an object out of a selector is not turned into `DELETED`: the
//! watcher just stops hearing about it.

use crate::state::stopped;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coracle_store::{ListOptions, WatchItem};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::rest::Request;
use crate::status_error::ApiError;
use crate::table::{self, IncludeObject};

/// Serves a watch request.
pub async fn serve(req: &Request) -> Result<Response, ApiError> {
    let (labels, fields) = req.selectors()?;
    let res = req.target.res;
    let prefix = req.state.prefix(res, req.target.namespace.as_deref())?;
    let store = req.state.store.clone();
    let rv = req.query.int("resourceVersion")?.unwrap_or(0).max(0) as u64;

    let mut initial = Vec::new();
    let start = if rv == 0 {
        let page = store
            .list(&prefix, &ListOptions::default())
            .map_err(|e| ApiError::from_store(e, &res.qualified(), ""))?;
        initial = page.items;
        page.revision
    } else {
        rv
    };
    let accept = req
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let as_table = table::wants_table(accept);
    let include = IncludeObject::parse(req.query.get("includeObject"));
    let timeout = match req.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => Duration::from_secs(1800 + rand::random_range(0..1800)),
    };
    let bookmarks = req.query.flag("allowWatchBookmarks");

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut shutdown = req.state.shutdown.clone();
    let watch = store.watch(&prefix, start);
    tokio::spawn(async move {
        let mut first = true;
        let mut encode = |kind: &str, object: &Value| -> Bytes {
            // Stored v1 Events in the version watched (a Status passes unchanged).
            let object = crate::events::served(res, object.clone());
            let object = &object;
            let object = if as_table {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let t = table::table(res, std::slice::from_ref(object), rv, None, include, first);
                first = false;
                t
            } else {
                object.clone()
            };
            let mut line =
                serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        };
        let mut watch = match watch {
            Ok(w) if bookmarks => w.with_bookmarks(Duration::from_secs(10)),
            Ok(w) => w,
            Err(err) => {
                let status = ApiError::from_store(err, &res.qualified(), "").status();
                let _ = tx.send(encode("ERROR", &status)).await;
                return;
            }
        };
        for object in initial
            .iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            if tx.send(encode("ADDED", object)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let item = tokio::select! {
                item = watch.next() => item,
                _ = &mut deadline => return,
                _ = stopped(&mut shutdown) => return,
                _ = tx.closed() => return,
            };
            let line = match item {
                Ok(Some(WatchItem::Event(event))) => {
                    let object = event.object.as_ref();
                    if !(labels.matches(object) && fields.matches(object)) {
                        continue;
                    }
                    encode(event.event.as_str(), object)
                }
                Ok(Some(WatchItem::Bookmark { revision })) => {
                    let mark = json!({"kind": res.kind, "apiVersion": res.api_version(),
                                      "metadata": {"resourceVersion": revision.to_string()}});
                    let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": mark}))
                        .unwrap_or_default();
                    line.push(b'\n');
                    Bytes::from(line)
                }
                Ok(None) => return,
                Err(err) => {
                    let status = ApiError::from_store(err, &res.qualified(), "").status();
                    let _ = tx.send(encode("ERROR", &status)).await;
                    return;
                }
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
