//! Watches: the store's changes under a prefix, in revision order.
//!
//! # How a watch is served
//!
//! The single writer broadcasts every committed write, in revision order, on an in-memory
//! channel (no polling). A watch subscribes to that channel first, then replays the log from
//! its start revision in a read snapshot, then takes live events, skipping the ones it has
//! already seen. Subscribing before reading the snapshot means no write can fall between the
//! two.
//!
//! A watcher that falls more than [`crate::StoreConfig::watch_buffer`] events behind the
//! broadcast is not ended: it goes back to reading the log from the last revision it delivered
//! and then rejoins the live channel. It ends with [`StoreError::Expired`] only if compaction
//! has meanwhile passed that revision (the API server sends the ERROR 410 event, and the
//! client lists and watches again). A watcher that never reads keeps only a bounded buffer
//! alive, because the channel overwrites the oldest events.
//!
//! # Bookmarks
//!
//! [`WatchStream::with_bookmarks`] makes the stream yield [`WatchItem::Bookmark`] with the
//! revision the watcher is caught up to, when no event was delivered for the given interval
//! and that revision moved since the last event or bookmark. Catching up counts events under
//! other prefixes too, so an idle watcher's bookmark still advances with the store.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use redb::ReadableTable;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::db::{Inner, Store, LOG};
use crate::error::{DbContext, StoreError};
use crate::key::Prefix;
use crate::list::read_meta;
use crate::record::{self, EventType};

/// How many log records one replay step reads.
const REPLAY_BATCH: usize = 512;

/// One committed write.
#[derive(Debug, Clone)]
pub struct Event {
    /// What the write did.
    pub event: EventType,
    /// The write's revision.
    pub revision: u64,
    /// The key written.
    pub key: String,
    /// The object at this revision (for `DELETED`, its last state), with
    /// `metadata.resourceVersion` = `revision`.
    pub object: Arc<Value>,
}

/// What a watch yields.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A change under the watched prefix.
    Event(Event),
    /// Every change under the prefix up to this revision has been delivered.
    Bookmark {
        /// The revision the watcher is caught up to.
        revision: u64,
    },
}

/// A running watch. Obtain one from [`Store::watch`]; read it with [`WatchStream::next`] or
/// turn it into a [`Stream`] with [`WatchStream::into_stream`].
pub struct WatchStream {
    inner: Arc<Inner>,
    prefix: Prefix,
    live: broadcast::Receiver<Arc<Event>>,
    /// Every revision up to this one has been delivered or filtered out.
    caught_up: u64,
    /// Replayed events not yet handed out.
    backlog: VecDeque<Event>,
    /// Whether the log must be read before taking live events again.
    replaying: bool,
    bookmarks: Option<Bookmarks>,
    /// Set once the stream has ended (error or closed store).
    done: bool,
}

struct Bookmarks {
    every: Duration,
    due: Instant,
    /// The revision of the last event or bookmark handed out.
    sent: u64,
}

impl Store {
    /// Watches the keys under `prefix` for writes after revision `from_rev` (0: from now).
    ///
    /// Fails with [`StoreError::Expired`] if `from_rev` is below the compacted revision and
    /// with [`StoreError::FutureRevision`] if it has not been written yet.
    pub fn watch(&self, prefix: &Prefix, from_rev: u64) -> Result<WatchStream, StoreError> {
        // Subscribe before looking at any revision, so nothing committed later is missed.
        let live = self.inner.events.subscribe();
        let current = self.current_revision();
        let compacted = self.compacted_revision();
        if from_rev != 0 && from_rev < compacted {
            return Err(StoreError::Expired {
                requested: from_rev,
                oldest: compacted,
            });
        }
        if from_rev > current {
            return Err(StoreError::FutureRevision {
                requested: from_rev,
                current,
            });
        }
        let (caught_up, replaying) = match from_rev {
            0 => (current, false),
            from => (from, from < current),
        };
        tracing::debug!(prefix = %prefix, from_rev, current, "watch started");
        Ok(WatchStream {
            inner: self.inner.clone(),
            prefix: prefix.clone(),
            live,
            caught_up,
            backlog: VecDeque::new(),
            replaying,
            bookmarks: None,
            done: false,
        })
    }
}

impl WatchStream {
    /// Also yield a bookmark after `every` without events, when the revision moved.
    pub fn with_bookmarks(mut self, every: Duration) -> WatchStream {
        let sent = self.caught_up;
        self.bookmarks = Some(Bookmarks {
            every,
            due: Instant::now() + every,
            sent,
        });
        self
    }

    /// The revision the watcher is caught up to.
    pub fn revision(&self) -> u64 {
        self.caught_up
    }

    /// The next event or bookmark. A watch never ends by itself (it holds the store open);
    /// the caller drops it to stop, e.g. at the request's `timeoutSeconds`. After an error
    /// the stream is over and returns `Ok(None)`.
    pub async fn next(&mut self) -> Result<Option<WatchItem>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let item = self.next_inner().await;
        if !matches!(item, Ok(Some(_))) {
            self.done = true;
        }
        if let Ok(Some(item)) = &item {
            if let Some(bookmarks) = &mut self.bookmarks {
                bookmarks.sent = match item {
                    WatchItem::Event(e) => e.revision,
                    WatchItem::Bookmark { revision } => *revision,
                };
                bookmarks.due = Instant::now() + bookmarks.every;
            }
        }
        item
    }

    /// The watch as a [`Stream`]; it ends after the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<WatchItem, StoreError>> + Send {
        futures::stream::unfold(self, |mut watch| async move {
            match watch.next().await {
                Ok(Some(item)) => Some((Ok(item), watch)),
                Ok(None) => None,
                Err(e) => Some((Err(e), watch)),
            }
        })
    }

    async fn next_inner(&mut self) -> Result<Option<WatchItem>, StoreError> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Ok(Some(WatchItem::Event(event)));
            }
            if self.replaying {
                self.replay_step().await?;
                continue;
            }

            let received = match &self.bookmarks {
                Some(bookmarks) => {
                    tokio::select! {
                        received = self.live.recv() => received,
                        () = tokio::time::sleep_until(bookmarks.due) => {
                            if let Some(item) = self.bookmark_due() {
                                return Ok(Some(item));
                            }
                            continue;
                        }
                    }
                }
                None => self.live.recv().await,
            };
            match received {
                Ok(event) => {
                    if let Some(event) = self.accept_live(&event) {
                        return Ok(Some(WatchItem::Event(event)));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(prefix = %self.prefix, missed, "watcher lagged, reading the log");
                    self.replaying = true;
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// A live event, if it is new and under the prefix.
    fn accept_live(&mut self, event: &Arc<Event>) -> Option<Event> {
        if event.revision <= self.caught_up {
            return None;
        }
        if event.revision != self.caught_up + 1 {
            // Cannot happen with an ordered broadcast; the log is the truth if it does.
            self.replaying = true;
            return None;
        }
        self.caught_up = event.revision;
        self.prefix
            .contains(&event.key)
            .then(|| Event::clone(event))
    }

    fn bookmark_due(&mut self) -> Option<WatchItem> {
        let bookmarks = self.bookmarks.as_mut().expect("called with bookmarks on");
        bookmarks.due = Instant::now() + bookmarks.every;
        (self.caught_up > bookmarks.sent).then(|| {
            bookmarks.sent = self.caught_up;
            WatchItem::Bookmark {
                revision: self.caught_up,
            }
        })
    }

    /// Reads the next batch of the log after `caught_up` into the backlog.
    async fn replay_step(&mut self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let prefix = self.prefix.clone();
        let after = self.caught_up;
        let step = tokio::task::spawn_blocking(move || read_log(&inner, &prefix, after))
            .await
            .map_err(|source| StoreError::Task {
                task: "watch replay",
                source,
            })??;
        self.backlog.extend(step.events);
        self.caught_up = step.caught_up;
        self.replaying = !step.complete;
        Ok(())
    }
}

struct ReplayStep {
    events: Vec<Event>,
    caught_up: u64,
    /// Whether the step reached the end of the log.
    complete: bool,
}

/// Up to [`REPLAY_BATCH`] log records after `after`, keeping those under `prefix`.
fn read_log(inner: &Inner, prefix: &Prefix, after: u64) -> Result<ReplayStep, StoreError> {
    let txn = inner.begin_read()?;
    let (current, compacted) = read_meta(&txn)?;
    if after < compacted {
        return Err(StoreError::Expired {
            requested: after,
            oldest: compacted,
        });
    }
    let log = txn.open_table(LOG).db("open log")?;
    let mut events = Vec::new();
    let mut caught_up = after;
    let mut complete = true;
    for (read, entry) in log.range(after + 1..).db("range log")?.enumerate() {
        if read == REPLAY_BATCH {
            complete = false;
            break;
        }
        let (revision, bytes) = entry.db("range log")?;
        let revision = revision.value();
        caught_up = revision;
        let (_, _, key) = record::header(revision, bytes.value())?;
        if !prefix.contains(key) {
            continue;
        }
        let record = record::decode(revision, bytes.value())?;
        let object = Arc::new(record.object);
        events.push(Event {
            event: record.event,
            revision,
            key: record.key,
            object,
        });
    }
    if complete {
        caught_up = current;
    }
    Ok(ReplayStep {
        events,
        caught_up,
        complete,
    })
}
