//! The database: tables, the single writer, and the point operations.
//!
//! # Tables
//!
//! * `log`: revision → record (event type, previous revision of the same key, key, object).
//!   Every write appends exactly one record at `revision + 1`.
//! * `latest`: key → revision of the key's newest record. A deleted key keeps pointing at its
//!   delete record (a tombstone) until compaction passes it, so a list at an older revision
//!   still finds objects deleted since.
//! * `meta`: `revision` (the last assigned revision, which survives even when compaction drops
//!   that record) and `compacted` (the oldest revision a watch or a list can start from).
//!
//! # Guarantees
//!
//! Each write is one redb transaction committed with `Durability::Immediate` (fsync) before the
//! call returns, so an acknowledged write survives a crash and a crash never leaves part of a
//! write. Writes are serialised by one mutex that is held through the commit and the broadcast
//! to watchers, so watchers receive events in revision order with no gaps.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{DbContext, StoreError};
use crate::key::Key;
use crate::record::{self, EventType};
use crate::watch::Event;

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const LATEST: TableDefinition<&str, u64> = TableDefinition::new("latest");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

/// Tunables of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many events the live broadcast to watchers buffers. A watcher that falls further
    /// behind catches up from the log (see [`crate::WatchStream`]).
    pub watch_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { watch_buffer: 1024 }
    }
}

/// The revisioned object store. Cheap to clone: clones share one database.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Database,
    /// Serialises writes, their commit and their broadcast.
    pub writer: Mutex<()>,
    /// The last committed revision.
    pub revision: AtomicU64,
    /// The compacted revision.
    pub compacted: AtomicU64,
    pub events: broadcast::Sender<Arc<Event>>,
}

/// The state of a key as seen inside a write transaction.
struct Current {
    /// Revision of the key's newest record (live or tombstone), 0 if never written.
    newest: u64,
    /// The live object and its revision.
    live: Option<(u64, Value)>,
}

/// What a write closure decided.
enum Plan {
    Write(EventType, Value),
    Keep(Option<(u64, Value)>),
}

impl Store {
    /// Opens (or creates) the store in the database file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreConfig::default())
    }

    /// Opens (or creates) the store with explicit tunables.
    pub fn open_with(path: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let open_err = |e: redb::Error| StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        };
        let db = Database::create(path).map_err(|e| open_err(e.into()))?;

        // Create the tables so read transactions can always open them.
        let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
        let (revision, compacted) = {
            txn.open_table(LOG).map_err(|e| open_err(e.into()))?;
            txn.open_table(LATEST).map_err(|e| open_err(e.into()))?;
            let meta = txn.open_table(META).map_err(|e| open_err(e.into()))?;
            let read = |name| -> Result<u64, redb::Error> {
                Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0))
            };
            (
                read(META_REVISION).map_err(open_err)?,
                read(META_COMPACTED).map_err(open_err)?,
            )
        };
        txn.commit().map_err(|e| open_err(e.into()))?;

        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        tracing::info!(path = %path.display(), revision, compacted, "store opened");
        let inner = Inner {
            db,
            writer: Mutex::new(()),
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            events,
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The revision of the last write.
    pub fn current_revision(&self) -> u64 {
        self.inner.revision.load(Ordering::SeqCst)
    }

    /// The compacted revision: watches and lists from an older revision get
    /// [`StoreError::Expired`].
    pub fn compacted_revision(&self) -> u64 {
        self.inner.compacted.load(Ordering::SeqCst)
    }

    /// The live object at `key` and its revision.
    pub fn get(&self, key: &Key) -> Result<Option<(u64, Value)>, StoreError> {
        let txn = self.inner.begin_read()?;
        let latest = txn.open_table(LATEST).db("open latest")?;
        let log = txn.open_table(LOG).db("open log")?;
        let Some(revision) = latest
            .get(key.as_str())
            .db("read latest")?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let Some(bytes) = log.get(revision).db("read log")? else {
            return Ok(None);
        };
        let record = record::decode(revision, bytes.value())?;
        Ok((record.event != EventType::Deleted).then_some((revision, record.object)))
    }

    /// Creates the object at `key`; fails with [`StoreError::AlreadyExists`] if one is live.
    /// Returns the new revision and the object as stored (with `metadata.resourceVersion`).
    pub fn create(&self, key: &Key, value: Value) -> Result<(u64, Value), StoreError> {
        let written = self.write(key, |current| match current.live {
            Some(_) => Err(StoreError::AlreadyExists {
                key: key.to_string(),
            }),
            None => Ok(Plan::Write(EventType::Added, value)),
        })?;
        Ok(written.expect("create always writes"))
    }

    /// Replaces the live object at `key`. With `expected_rev`, fails with
    /// [`StoreError::Conflict`] unless the object's revision is exactly that (optimistic
    /// concurrency, as a PUT with `metadata.resourceVersion`). An update that changes nothing
    /// but `resourceVersion` writes nothing and returns the stored object, as Kubernetes does.
    pub fn update(
        &self,
        key: &Key,
        value: Value,
        expected_rev: Option<u64>,
    ) -> Result<(u64, Value), StoreError> {
        let written = self.write(key, |current| {
            let Some((revision, old)) = current.live else {
                return Err(StoreError::NotFound {
                    key: key.to_string(),
                });
            };
            check_expected(key, expected_rev, revision)?;
            unless_unchanged(key, revision, old, value)
        })?;
        Ok(written.expect("update of a live object returns it"))
    }

    /// Read-modify-write in one transaction. `f` receives the live object (or `None`) and
    /// returns the object to store (creating the key if needed), or `None` to leave the key
    /// as it is. Returns the key's state afterwards.
    ///
    /// `f` runs exactly once, inside the write lock, so no other write can slip in between the
    /// read and the write and no retry loop is needed. It must therefore be quick and must
    /// not write to this store itself (that would deadlock); reading is fine. As with
    /// [`Store::update`], a result equal to the current object is not written.
    pub fn guaranteed_update<E, F>(&self, key: &Key, f: F) -> Result<Option<(u64, Value)>, E>
    where
        E: From<StoreError>,
        F: FnOnce(Option<Value>) -> Result<Option<Value>, E>,
    {
        self.write(key, |current| {
            let (old_rev, old) = match current.live {
                Some((revision, object)) => (revision, Some(object)),
                None => (0, None),
            };
            match (f(old.clone())?, old) {
                (None, old) => Ok(Plan::Keep(old.map(|o| (old_rev, o)))),
                (Some(new), None) => Ok(Plan::Write(EventType::Added, new)),
                (Some(new), Some(old)) => Ok(unless_unchanged(key, old_rev, old, new)?),
            }
        })
    }

    /// Deletes the live object at `key`, with the same precondition as [`Store::update`].
    /// Returns the delete revision and the object's last state, whose `resourceVersion` is
    /// the delete revision (what a `DELETED` watch event carries).
    pub fn delete(&self, key: &Key, expected_rev: Option<u64>) -> Result<(u64, Value), StoreError> {
        let written = self.write(key, |current| {
            let Some((revision, old)) = current.live else {
                return Err(StoreError::NotFound {
                    key: key.to_string(),
                });
            };
            check_expected(key, expected_rev, revision)?;
            Ok(Plan::Write(EventType::Deleted, old))
        })?;
        Ok(written.expect("delete always writes"))
    }

    /// The one write path: read the key's state, let `decide` plan, append the record,
    /// commit durably, broadcast.
    fn write<E, D>(&self, key: &Key, decide: D) -> Result<Option<(u64, Value)>, E>
    where
        E: From<StoreError>,
        D: FnOnce(Current) -> Result<Plan, E>,
    {
        let _writer = self.inner.lock_writer();
        let mut txn = self.inner.begin_write()?;
        let current = read_current(&txn, key)?;
        let prev = current.newest;
        let (event, mut object) = match decide(current)? {
            Plan::Keep(state) => return Ok(state),
            Plan::Write(event, object) => (event, object),
        };

        let revision = self.current_revision() + 1;
        stamp(key, &mut object, revision)?;
        append(&mut txn, revision, event, prev, key.as_str(), &object)?;
        txn.commit().db("commit")?;
        tracing::debug!(key = %key, revision, event = event.as_str(), "store write");

        // Still under the writer lock: watchers see revisions in order.
        self.inner.revision.store(revision, Ordering::SeqCst);
        let shared = Arc::new(Event {
            event,
            revision,
            key: key.to_string(),
            object: Arc::new(object.clone()),
        });
        // No receivers is fine: nobody is watching.
        let _ = self.inner.events.send(shared);
        Ok(Some((revision, object)))
    }
}

impl Inner {
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave the database half-written (the
        // transaction is dropped, i.e. aborted), so a poisoned lock is safe to reuse.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().db("begin read")
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().db("begin write")?;
        // The default already, stated because the store's guarantees rest on it.
        txn.set_durability(redb::Durability::Immediate)
            .db("set durability")?;
        Ok(txn)
    }
}

fn read_current(txn: &WriteTransaction, key: &Key) -> Result<Current, StoreError> {
    let latest = txn.open_table(LATEST).db("open latest")?;
    let Some(newest) = latest
        .get(key.as_str())
        .db("read latest")?
        .map(|v| v.value())
    else {
        return Ok(Current {
            newest: 0,
            live: None,
        });
    };
    let log = txn.open_table(LOG).db("open log")?;
    let Some(bytes) = log.get(newest).db("read log")? else {
        return Ok(Current { newest, live: None });
    };
    let record = record::decode(newest, bytes.value())?;
    let live = (record.event != EventType::Deleted).then_some((newest, record.object));
    Ok(Current { newest, live })
}

fn append(
    txn: &mut WriteTransaction,
    revision: u64,
    event: EventType,
    prev: u64,
    key: &str,
    object: &Value,
) -> Result<(), StoreError> {
    let bytes = record::encode(event, prev, key, object);
    txn.open_table(LOG)
        .db("open log")?
        .insert(revision, bytes.as_slice())
        .db("append log")?;
    txn.open_table(LATEST)
        .db("open latest")?
        .insert(key, revision)
        .db("write latest")?;
    txn.open_table(META)
        .db("open meta")?
        .insert(META_REVISION, revision)
        .db("write meta")?;
    Ok(())
}

fn check_expected(key: &Key, expected: Option<u64>, current: u64) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Conflict {
            key: key.to_string(),
            expected,
            current,
        }),
        _ => Ok(()),
    }
}

/// Plans a `MODIFIED` write unless `new` equals `old` once stamped with `old`'s revision.
fn unless_unchanged(
    key: &Key,
    revision: u64,
    old: Value,
    mut new: Value,
) -> Result<Plan, StoreError> {
    stamp(key, &mut new, revision)?;
    if new == old {
        return Ok(Plan::Keep(Some((revision, old))));
    }
    Ok(Plan::Write(EventType::Modified, new))
}

/// Sets `metadata.resourceVersion` to `revision` as a decimal string.
pub(crate) fn stamp(key: &Key, object: &mut Value, revision: u64) -> Result<(), StoreError> {
    let not_object = || StoreError::NotAnObject {
        key: key.to_string(),
    };
    let map = object.as_object_mut().ok_or_else(not_object)?;
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let metadata = metadata.as_object_mut().ok_or_else(not_object)?;
    metadata.insert(
        "resourceVersion".to_string(),
        Value::String(revision.to_string()),
    );
    Ok(())
}
