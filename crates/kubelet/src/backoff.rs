//! Restart and image-pull back-off, as the upstream kubelet applies it.
//!
//! Upstream keeps one entry per container (keyed by pod name, namespace, uid, container name
//! and a hash of the container's name and image) in client-go's `flowcontrol.Backoff`:
//! - the first failure has no entry, so the first restart is immediate and creates an entry of
//!   10 s;
//! - while less than the entry's duration has passed since the last exit, the container waits
//!   in `CrashLoopBackOff`;
//! - each restart after that doubles the entry, up to 5 minutes;
//! - an entry not touched for twice the maximum (10 minutes) has expired, which is how a
//!   container that ran for ten minutes gets its back-off reset.
//!
//! Entries carry wall-clock times so they survive a restart of coracle. The initial and
//! maximum durations are a [`BackoffPolicy`]; shorter ones are a development knob that the
//! command line announces to the user when it is in effect.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first delay (upstream: 10 s).
    pub initial: Duration,
    /// The cap (upstream: 300 s).
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy::KUBERNETES
    }
}

impl BackoffPolicy {
    /// The kubelet's defaults: 10 s doubling to 5 minutes.
    pub const KUBERNETES: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };

    /// Whether this policy differs from upstream's.
    pub fn is_shortened(&self) -> bool {
        *self != BackoffPolicy::KUBERNETES
    }
}

/// One back-off entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffEntry {
    /// The current delay.
    pub delay: Duration,
    /// When the entry was last moved (a restart happened).
    pub last_update: Timestamp,
}

/// Whether `entry` has expired for an event at `event_time` (upstream's `hasExpired`).
fn expired(policy: &BackoffPolicy, entry: &BackoffEntry, event_time: Timestamp) -> bool {
    let since = event_time.duration_since(entry.last_update);
    since > SignedDuration::try_from(policy.max * 2).unwrap_or(SignedDuration::MAX)
}

/// How long is left of the back-off that started at `event_time` (an exit), if any.
///
/// `None` means the container may be started now.
pub fn remaining(
    policy: &BackoffPolicy,
    entry: Option<&BackoffEntry>,
    event_time: Timestamp,
    now: Timestamp,
) -> Option<Duration> {
    let entry = entry?;
    if expired(policy, entry, event_time) {
        return None;
    }
    let elapsed = now.duration_since(event_time);
    let delay = SignedDuration::try_from(entry.delay).ok()?;
    if elapsed < delay {
        Some(Duration::try_from(delay - elapsed.max(SignedDuration::ZERO)).unwrap_or_default())
    } else {
        None
    }
}

/// The entry after a restart at `now` for an exit at `event_time` (upstream's `Next`).
pub fn next(
    policy: &BackoffPolicy,
    entry: Option<&BackoffEntry>,
    event_time: Timestamp,
    now: Timestamp,
) -> BackoffEntry {
    let delay = match entry {
        Some(e) if !expired(policy, e, event_time) => (e.delay * 2).min(policy.max),
        _ => policy.initial,
    };
    BackoffEntry {
        delay,
        last_update: now,
    }
}

/// Formats a duration as Go's `time.Duration.String()` does: `10s`, `1m20s`, `5m0s`, `1.5s`.
pub fn go_duration(d: Duration) -> String {
    let total_ms = d.as_millis() as u64;
    if total_ms == 0 {
        return "0s".to_string();
    }
    let hours = total_ms / 3_600_000;
    let minutes = (total_ms / 60_000) % 60;
    let ms = total_ms % 60_000;
    let seconds = if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let text = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", text.trim_end_matches('0'))
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}")
    } else {
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    const P: BackoffPolicy = BackoffPolicy::KUBERNETES;

    #[test]
    fn first_restart_is_immediate_then_ten_seconds_doubling_to_five_minutes() {
        // First exit: no entry, no back-off.
        assert_eq!(remaining(&P, None, t(0), t(0)), None);
        let mut entry = next(&P, None, t(0), t(0));
        assert_eq!(entry.delay, Duration::from_secs(10));

        let mut delays = vec![];
        let mut clock = 0;
        for _ in 0..7 {
            // The container exits right after its restart.
            let exit = t(clock);
            let left = remaining(&P, Some(&entry), exit, exit).unwrap();
            delays.push(left.as_secs());
            clock += left.as_secs() as i64;
            assert_eq!(remaining(&P, Some(&entry), exit, t(clock)), None);
            entry = next(&P, Some(&entry), exit, t(clock));
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn backoff_resets_after_running_for_ten_minutes() {
        let entry = next(&P, None, t(0), t(0));
        let entry = next(&P, Some(&entry), t(0), t(10));
        assert_eq!(entry.delay, Duration::from_secs(20));
        // Exit 10 minutes and a second after the last restart: the entry has expired.
        let exit = t(10 + 601);
        assert_eq!(remaining(&P, Some(&entry), exit, exit), None);
        assert_eq!(next(&P, Some(&entry), exit, exit).delay, P.initial);
    }

    #[test]
    fn go_duration_matches_go_formatting() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(160)), "2m40s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
