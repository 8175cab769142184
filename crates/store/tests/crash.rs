//! Durability: a writer process killed with SIGKILL mid-stream loses no acknowledged write
//! and leaves no half-written one.
//!
//! The test re-runs this test executable as the child (`crash_child_writes_until_killed`,
//! ignored unless asked for with the environment variable below), reads the revisions it
//! acknowledges on stdout, kills it at an arbitrary point and inspects the reopened store.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::*;
use coracle_store::{ListOptions, Prefix, Store, StoreError};
use serde_json::{json, Value};

const CHILD_ENV: &str = "CORACLE_STORE_CRASH_CHILD";
const ROUND_ENV: &str = "CORACLE_STORE_CRASH_ROUND";

/// The object the child writes as write `i` of `round`: big enough to span several pages.
fn payload(round: u32, i: u64) -> Value {
    let filler: String = (0..4096)
        .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
        .collect();
    json!({"metadata": {"name": format!("r{round}-{i}")}, "data": {"i": i, "filler": filler}})
}

fn counter_key() -> coracle_store::Key {
    pod_key("crash", "counter")
}

#[test]
#[ignore = "child process of store_survives_sigkill_mid_write_without_losing_acknowledged_writes"]
fn crash_child_writes_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        eprintln!("{CHILD_ENV} is not set: this test only runs as a crash-test child");
        return;
    };
    let round: u32 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let store = Store::open(std::path::Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let (rev, _) = store
            .create(
                &pod_key("crash", &format!("r{round}-{i}")),
                payload(round, i),
            )
            .unwrap();
        writeln!(out, "ACK create {rev} {i}").unwrap();
        let (rev, counter) = store
            .guaranteed_update::<StoreError, _>(&counter_key(), |current| {
                let count = current.map_or(0, |c| c["count"].as_u64().unwrap());
                Ok(Some(
                    json!({"metadata": {"name": "counter"}, "count": count + 1}),
                ))
            })
            .unwrap()
            .unwrap();
        writeln!(out, "ACK counter {rev} {}", counter["count"]).unwrap();
        out.flush().unwrap();
    }
}

#[derive(Default, Debug)]
struct Acked {
    /// Highest acknowledged revision.
    revision: u64,
    /// Acknowledged creates per round: the highest `i`.
    created: BTreeMap<u32, u64>,
    counter: u64,
}

/// Runs the child for `round` until it has acknowledged `kill_after` writes, then SIGKILLs it.
fn run_child_and_kill(path: &std::path::Path, round: u32, kill_after: usize, acked: &mut Acked) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child_writes_until_killed",
            "--nocapture",
        ])
        .env(CHILD_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    let mut killed = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ["ACK", what, rev, value] = fields[..] else {
            continue;
        };
        let (rev, value): (u64, u64) = (rev.parse().unwrap(), value.parse().unwrap());
        assert!(rev > acked.revision, "acknowledged revisions increase");
        acked.revision = rev;
        match what {
            "create" => {
                acked.created.insert(round, value);
            }
            _ => acked.counter = value,
        }
        seen += 1;
        if seen == kill_after && !killed {
            child.kill().unwrap(); // SIGKILL: no destructors, no flush, mid-write.
            killed = true;
        }
    }
    // Lines already in the pipe were acknowledged before the kill and were read above.
    let status = child.wait().unwrap();
    assert!(killed, "child exited by itself: {status:?}");
}

#[test]
fn store_survives_sigkill_mid_write_without_losing_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut acked = Acked::default();

    for (round, kill_after) in [(0, 61), (1, 240), (2, 17)] {
        run_child_and_kill(&path, round, kill_after, &mut acked);
        let store = Store::open(&path).unwrap();

        // Nothing acknowledged is lost; at most the one write in flight went further.
        let revision = store.current_revision();
        assert!(
            revision == acked.revision || revision == acked.revision + 1,
            "store at {revision}, acknowledged {}",
            acked.revision
        );
        let (_, counter) = store.get(&counter_key()).unwrap().unwrap();
        let count = counter["count"].as_u64().unwrap();
        assert!(
            count == acked.counter || count == acked.counter + 1,
            "{count} vs {acked:?}"
        );

        // Every object is whole: each acknowledged create is there with its exact payload,
        // and so is the unacknowledged one, if it committed.
        let all = store.list(&Prefix::all(), &ListOptions::default()).unwrap();
        assert_eq!(all.revision, revision);
        let mut objects = 0;
        for (&r, &last) in &acked.created {
            for i in 0..=last + 1 {
                let key = pod_key("crash", &format!("r{r}-{i}"));
                match store.get(&key).unwrap() {
                    Some((rev, mut object)) => {
                        assert_eq!(resource_version(&object), rev);
                        object["metadata"]
                            .as_object_mut()
                            .unwrap()
                            .remove("resourceVersion");
                        assert_eq!(object, payload(r, i), "object {key} is intact");
                        objects += 1;
                    }
                    None => assert_eq!(i, last + 1, "acknowledged {key} is missing"),
                }
            }
        }
        assert_eq!(
            all.items.len(),
            objects + 1,
            "the created objects plus the counter"
        );
        // Every revision is accounted for: creates and counter updates alternate.
        assert_eq!(revision, objects as u64 + count);
    }
}
