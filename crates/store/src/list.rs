//! Consistent, paged lists.
//!
//! A list reads every key under a prefix as it was at one revision: the current one, or the
//! one a `continue` token carries, so the pages of one list fit together even while writes
//! happen between them (Kubernetes gives the same guarantee). The state of a key at revision
//! `R` is found by walking its `prev` chain back from the newest record to the first one at or
//! below `R`; compaction keeps exactly the records such walks need for every `R` at or above
//! the compacted revision, and a list at an older revision fails with
//! [`StoreError::Expired`] (the API server answers 410 Gone, and the client lists afresh).
//!
//! A `continue` token is the hex encoding of a small JSON object holding the list revision
//! and the last key returned; like the API server's it is opaque to clients.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{Store, LATEST, LOG, META, META_COMPACTED, META_REVISION};
use crate::error::{DbContext, StoreError};
use crate::key::Prefix;
use crate::record::{self, EventType};

/// How to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// At most this many items per page; 0 means no limit.
    pub limit: usize,
    /// Continue a previous list from the token in its [`ListResult::continue_token`]. The
    /// token fixes the revision, so `revision` must then be `None`.
    pub continue_token: Option<String>,
    /// List the state at exactly this revision (`resourceVersionMatch=Exact`); `None` or
    /// `Some(0)` means the current revision. The API server maps the other
    /// `resourceVersion` semantics (`NotOlderThan`, `0` = any) onto the current revision.
    pub revision: Option<u64>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// The live objects, in key order, each with its own `metadata.resourceVersion`.
    pub items: Vec<Value>,
    /// The revision the list reflects (the list's `metadata.resourceVersion`).
    pub revision: u64,
    /// Set when more items follow: pass it in [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
    /// With a `continue_token`, how many items are left after this page.
    pub remaining_item_count: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    /// The list revision.
    rv: u64,
    /// The last key returned.
    start: String,
}

impl Store {
    /// Lists the live objects under `prefix` at one revision, a page at a time.
    pub fn list(&self, prefix: &Prefix, options: &ListOptions) -> Result<ListResult, StoreError> {
        let txn = self.inner.begin_read()?;
        let (current, compacted) = read_meta(&txn)?;

        let (revision, after) = match &options.continue_token {
            Some(token) => {
                if options.revision.is_some_and(|r| r != 0) {
                    return Err(StoreError::InvalidContinue {
                        reason: "a continue token cannot be combined with a revision",
                    });
                }
                let token = decode_token(token, prefix)?;
                (token.rv, Some(token.start))
            }
            None => (
                options.revision.filter(|r| *r != 0).unwrap_or(current),
                None,
            ),
        };
        if revision < compacted {
            return Err(StoreError::Expired {
                requested: revision,
                oldest: compacted,
            });
        }
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }

        let latest = txn.open_table(LATEST).db("open latest")?;
        let log = txn.open_table(LOG).db("open log")?;
        let end = prefix.end();
        let range = match &after {
            // Strictly after the last key: the smallest greater string is `key + "\0"`.
            Some(last) => latest.range(format!("{last}\0").as_str()..end.as_str()),
            None => latest.range(prefix.as_str()..end.as_str()),
        }
        .db("range latest")?;

        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0u64;
        for entry in range {
            let (key, newest) = entry.db("range latest")?;
            let Some(found) = at_revision(&log, newest.value(), revision)? else {
                continue;
            };
            if options.limit != 0 && items.len() == options.limit {
                remaining += 1;
                continue;
            }
            let bytes = log
                .get(found)
                .db("read log")?
                .expect("at_revision found the record");
            items.push(record::decode(found, bytes.value())?.object);
            last_key = Some(key.value().to_string());
        }

        let continue_token = match (remaining, last_key) {
            (0, _) | (_, None) => None,
            (_, Some(start)) => Some(encode_token(&ContinueToken {
                rv: revision,
                start,
            })),
        };
        let remaining_item_count = continue_token.as_ref().map(|_| remaining);
        Ok(ListResult {
            items,
            revision,
            continue_token,
            remaining_item_count,
        })
    }
}

/// The revision of the live record of a key at `revision`, walking back from its newest
/// record `newest`; `None` if the key had no live object then.
fn at_revision(
    log: &impl ReadableTable<u64, &'static [u8]>,
    newest: u64,
    revision: u64,
) -> Result<Option<u64>, StoreError> {
    let mut at = newest;
    while at != 0 {
        // A missing record is one compaction dropped: superseded or deleted at or before the
        // compacted revision, so the key had no live object at `revision`.
        let Some(bytes) = log.get(at).db("read log")? else {
            return Ok(None);
        };
        let (event, prev, _) = record::header(at, bytes.value())?;
        if at <= revision {
            return Ok((event != EventType::Deleted).then_some(at));
        }
        at = prev;
    }
    Ok(None)
}

/// `(current revision, compacted revision)` as of this transaction.
pub(crate) fn read_meta(txn: &ReadTransaction) -> Result<(u64, u64), StoreError> {
    let meta = txn.open_table(META).db("open meta")?;
    let read = |name| -> Result<u64, StoreError> {
        Ok(meta
            .get(name)
            .db("read meta")?
            .map(|v| v.value())
            .unwrap_or(0))
    };
    Ok((read(META_REVISION)?, read(META_COMPACTED)?))
}

fn encode_token(token: &ContinueToken) -> String {
    hex::encode(serde_json::to_vec(token).expect("a token always serializes"))
}

fn decode_token(token: &str, prefix: &Prefix) -> Result<ContinueToken, StoreError> {
    let invalid = |reason| StoreError::InvalidContinue { reason };
    let bytes = hex::decode(token).map_err(|_| invalid("not hex"))?;
    let token: ContinueToken =
        serde_json::from_slice(&bytes).map_err(|_| invalid("not a continue token"))?;
    if !prefix.contains(&token.start) {
        return Err(invalid("the token belongs to a different list"));
    }
    Ok(token)
}
