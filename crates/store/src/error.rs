//! The store's error type.
//!
//! One enum for every operation, because the API server maps each variant to exactly one
//! Kubernetes `Status`: `AlreadyExists` → 409 AlreadyExists, `NotFound` → 404, `Conflict` → 409
//! Conflict, `Expired` → 410 Gone (reason `Expired`), `FutureRevision` → 504 "Too large resource
//! version", `InvalidContinue` → 400, everything else → 500.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` found a live object at the key.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The key that is taken.
        key: String,
    },

    /// The key holds no live object.
    #[error("{key} not found")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },

    /// An optimistic-concurrency precondition failed: the object changed since the caller read it.
    #[error("{key} has been modified: expected revision {expected}, current revision {current}")]
    Conflict {
        /// The key that was written.
        key: String,
        /// The revision the caller expected.
        expected: u64,
        /// The object's revision in the store.
        current: u64,
    },

    /// The requested revision has been compacted away (a watch or list from it is impossible).
    #[error("revision {requested} has been compacted, the oldest available is {oldest}")]
    Expired {
        /// The revision the caller asked for.
        requested: u64,
        /// The compacted revision: the oldest one a watch or a list can start from.
        oldest: u64,
    },

    /// The requested revision has not been written yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },

    /// A list `continue` token could not be decoded or does not belong to this list.
    #[error("invalid continue token: {reason}")]
    InvalidContinue {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A key or prefix segment is empty or contains a `/`.
    #[error("invalid {part} {segment:?} in a store key: {reason}")]
    InvalidKey {
        /// Which segment (group, resource, namespace, name).
        part: &'static str,
        /// The offending text.
        segment: String,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// A value to be stored is not a JSON object, so it cannot carry `metadata.resourceVersion`.
    #[error("value for {key} is not a json object")]
    NotAnObject {
        /// The key that was written.
        key: String,
    },

    /// A log record on disk could not be decoded.
    #[error("corrupt log record at revision {revision}: {reason}")]
    Corrupt {
        /// The log revision of the record.
        revision: u64,
        /// What was wrong with it.
        reason: String,
    },

    /// The database file could not be opened or initialised.
    #[error("cannot open store database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying redb error.
        #[source]
        source: redb::Error,
    },

    /// A database operation failed.
    #[error("store database {operation} failed")]
    Database {
        /// What the store was doing (begin read, commit, ...).
        operation: &'static str,
        /// The underlying redb error.
        #[source]
        source: redb::Error,
    },

    /// A background task (replay, compaction) panicked or was cancelled.
    #[error("store background task {task} failed")]
    Task {
        /// Which task.
        task: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Attaches the name of the failing database operation to a redb error.
pub(crate) trait DbContext<T> {
    /// Maps the error to [`StoreError::Database`] with `operation` as context.
    fn db(self, operation: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for Result<T, E> {
    fn db(self, operation: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Database {
            operation,
            source: e.into(),
        })
    }
}
