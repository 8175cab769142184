//! Compaction: forgetting history nobody can ask for any more.
//!
//! `compact(C)` keeps, for every key, the state it had at revision `C` and every record after
//! `C`, and drops the rest: records superseded at or before `C`, and delete records at or
//! before `C` (with their `latest` entry when nothing newer exists). Afterwards a list at any
//! revision `R >= C` and a watch from any `R >= C` still work, and older ones fail with
//! [`StoreError::Expired`]. `C` is persisted, so this holds across restarts. This is etcd's
//! compaction rule (kine's too); every live key stays listable.
//!
//! The work is proportional to the records in the compacted window `(previous C, C]`: each
//! such record names its predecessor, which is superseded and dropped.
//!
//! [`spawn_compactor`] runs compaction periodically under a [`CompactionPolicy`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use crate::db::{Store, LATEST, LOG, META, META_COMPACTED};
use crate::error::{DbContext, StoreError};
use crate::record::{self, EventType};

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// The compacted revision afterwards.
    pub compacted: u64,
    /// How many log records were dropped.
    pub dropped: u64,
}

impl Store {
    /// Drops the history at or before `revision` (clamped to the current revision) that no
    /// list or watch from `revision` on can need. A revision at or below the current
    /// compacted revision does nothing.
    pub fn compact(&self, revision: u64) -> Result<CompactStats, StoreError> {
        // Under the writer lock: `latest` and the log must not move underneath.
        let _writer = self.inner.lock_writer();
        let old = self.compacted_revision();
        let target = revision.min(self.current_revision());
        if target <= old {
            return Ok(CompactStats {
                compacted: old,
                dropped: 0,
            });
        }

        let txn = self.inner.begin_write()?;
        let mut dropped = 0;
        {
            let mut log = txn.open_table(LOG).db("open log")?;
            let mut latest = txn.open_table(LATEST).db("open latest")?;

            // Collect first: the window is read while the table is modified below.
            let mut window = Vec::new();
            for entry in log.range(old + 1..=target).db("range log")? {
                let (rev, bytes) = entry.db("range log")?;
                let (event, prev, key) = record::header(rev.value(), bytes.value())?;
                window.push((rev.value(), event, prev, key.to_string()));
            }

            for (rev, event, prev, key) in window {
                // The predecessor is superseded by a record at or before the target.
                if prev != 0 && log.remove(prev).db("compact log")?.is_some() {
                    dropped += 1;
                }
                if event == EventType::Deleted {
                    if log.remove(rev).db("compact log")?.is_some() {
                        dropped += 1;
                    }
                    let newest = latest
                        .get(key.as_str())
                        .db("read latest")?
                        .map(|v| v.value());
                    if newest == Some(rev) {
                        latest.remove(key.as_str()).db("compact latest")?;
                    }
                }
            }
            let mut meta = txn.open_table(META).db("open meta")?;
            meta.insert(META_COMPACTED, target).db("write meta")?;
        }
        txn.commit().db("commit compaction")?;
        self.inner.compacted.store(target, Ordering::SeqCst);
        tracing::debug!(compacted = target, dropped, "store compacted");
        Ok(CompactStats {
            compacted: target,
            dropped,
        })
    }
}

/// When and how much to compact.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// How often to compact.
    pub interval: Duration,
    /// Keep the history of at least this long (Kubernetes' apiserver keeps 5 minutes).
    pub retain_for: Duration,
    /// And always keep at least this many of the newest revisions.
    pub retain_revisions: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(60),
            retain_for: Duration::from_secs(300),
            retain_revisions: 1000,
        }
    }
}

/// Remembers which revision was current when, to turn "keep 5 minutes" into a revision.
#[derive(Debug)]
pub struct RetentionClock {
    policy: CompactionPolicy,
    /// `(time, current revision then)`, oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl RetentionClock {
    /// A clock with no samples yet.
    pub fn new(policy: CompactionPolicy) -> RetentionClock {
        RetentionClock {
            policy,
            samples: VecDeque::new(),
        }
    }

    /// Records that `current` is the current revision at `now` and returns the revision to
    /// compact to: the newest revision that was already current `retain_for` ago, and at
    /// least `retain_revisions` behind `current`. 0 means nothing to compact yet.
    pub fn target(&mut self, now: Instant, current: u64) -> u64 {
        self.samples.push_back((now, current));
        let horizon = now.checked_sub(self.policy.retain_for);
        let old_enough = |t: &Instant| horizon.is_some_and(|h| *t <= h);

        // Drop samples once a newer one is also old enough; the newest old-enough one stays.
        while self.samples.len() > 1 && old_enough(&self.samples[1].0) {
            self.samples.pop_front();
        }
        let by_time = match self.samples.front() {
            Some((t, rev)) if old_enough(t) => *rev,
            _ => 0,
        };
        by_time.min(current.saturating_sub(self.policy.retain_revisions))
    }
}

/// Compacts `store` every `policy.interval` until the returned task is aborted. Failures are
/// logged and retried at the next tick.
pub fn spawn_compactor(store: Store, policy: CompactionPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(policy.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clock = RetentionClock::new(policy);
        loop {
            ticks.tick().await;
            let target = clock.target(Instant::now(), store.current_revision());
            if target <= store.compacted_revision() {
                continue;
            }
            let worker = store.clone();
            match tokio::task::spawn_blocking(move || worker.compact(target)).await {
                Ok(Ok(stats)) => tracing::debug!(?stats, "periodic compaction"),
                Ok(Err(e)) => tracing::warn!(error = %e, "periodic compaction failed"),
                Err(e) => tracing::warn!(error = %e, "periodic compaction task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_clock_keeps_the_time_window_and_the_revision_floor() {
        let policy = CompactionPolicy {
            interval: Duration::from_secs(60),
            retain_for: Duration::from_secs(300),
            retain_revisions: 10,
        };
        let mut clock = RetentionClock::new(policy);
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);

        assert_eq!(clock.target(at(0), 100), 0, "nothing is 5 minutes old yet");
        assert_eq!(clock.target(at(120), 200), 0);
        assert_eq!(
            clock.target(at(300), 300),
            100,
            "revision current 5 minutes ago"
        );
        assert_eq!(clock.target(at(420), 400), 200);
        assert_eq!(clock.target(at(1000), 205), 195, "the revision floor wins");
    }
}
