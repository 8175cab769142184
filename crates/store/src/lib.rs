//! coracle-store: the embedded, durable, revisioned object store under coracle's API server.
//!
//! It plays the part etcd plays for Kubernetes, in the shape kine gives etcd on top of SQL:
//! an append-only log of writes, each at one global revision, plus an index of each key's
//! newest revision. Objects are JSON (`serde_json::Value`); typing them is the API layer's
//! job. Keys are `/<group>/<resource>/<namespace>/<name>` (see [`key`]).
//!
//! # Why redb
//!
//! redb is pure Rust (no C toolchain, no 40-second bundled SQLite build), its read
//! transactions are MVCC snapshots that never block the writer, and its ordered B-trees give
//! prefix lists as plain range scans; a durable one-record commit measured about 250 µs on
//! this machine, far more than an API server for one node needs. SQLite would have been as
//! fast (and offers SQL for ad-hoc inspection), but the store needs no query language: every
//! access is a point read, a key range or a revision range.
//!
//! # Guarantees
//!
//! * Every write gets the next revision (one global counter, never reused, surviving
//!   restarts) and the object's `metadata.resourceVersion` becomes that revision.
//! * A write is fsynced before the call returns; a crash never leaves part of a write.
//! * Lists are consistent at one revision across pages; watches deliver every change after
//!   their start revision, in order, exactly once.
//! * After compaction to revision `C`, everything at or after `C` still works and older
//!   requests fail with [`StoreError::Expired`], also after a restart.
//!
//! # Caveats
//!
//! The API is synchronous (each call is one short transaction); an async server calls it
//! from `spawn_blocking`. Watches are async and need a tokio runtime. One process owns the
//! database file at a time, and the file stays open while any clone of the [`Store`] or any
//! [`WatchStream`] is alive.
//!
//! The crash test kills a writer process, which proves atomicity and that a commit is on disk
//! when acknowledged (redb discards non-durable commits on reopen); it cannot simulate power
//! loss, where durability rests on `fsync` doing its job.

mod compact;
mod db;
mod error;
pub mod key;
mod list;
mod record;
mod watch;

pub use compact::{spawn_compactor, CompactStats, CompactionPolicy, RetentionClock};
pub use db::{Store, StoreConfig};
pub use error::StoreError;
pub use key::{Key, Prefix, CORE_GROUP};
pub use list::{ListOptions, ListResult};
pub use record::EventType;
pub use watch::{Event, WatchItem, WatchStream};
