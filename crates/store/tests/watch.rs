//! Watches: replay from the log, live events, lagging, bookmarks, expiry.

mod common;

use std::time::Duration;

use common::*;
use coracle_store::{EventType, Prefix, Store, StoreConfig, StoreError, WatchItem, WatchStream};
use futures::StreamExt;

/// The next item, failing the test instead of hanging.
async fn next(watch: &mut WatchStream) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("watch event within 5s")
        .expect("watch error")
        .expect("watch ended")
}

/// `(type, revision, name)` of the next item, which must be an event.
async fn next_event(watch: &mut WatchStream) -> (EventType, u64, String) {
    match next(watch).await {
        WatchItem::Event(e) => {
            assert_eq!(resource_version(&e.object), e.revision);
            (e.event, e.revision, name(&e.object))
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Asserts nothing arrives for a short while.
async fn assert_quiet(watch: &mut WatchStream) {
    let got = tokio::time::timeout(Duration::from_millis(150), watch.next()).await;
    assert!(got.is_err(), "unexpected item: {got:?}");
}

fn write_history(store: &Store) {
    store.create(&pod_key("ns", "a"), pod("a", 1)).unwrap(); // 1
    store.create(&pod_key("other", "x"), pod("x", 1)).unwrap(); // 2
    store
        .update(&pod_key("ns", "a"), pod("a", 2), None)
        .unwrap(); // 3
    store.create(&pod_key("ns", "b"), pod("b", 1)).unwrap(); // 4
    store.delete(&pod_key("ns", "a"), None).unwrap(); // 5
}

#[tokio::test]
async fn watch_from_a_past_revision_replays_exactly_what_follows_then_goes_live() {
    let (_dir, store) = fresh_store();
    write_history(&store);

    let mut watch = store.watch(&pods_in("ns"), 1).unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Modified, 3, "a".into())
    );
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Added, 4, "b".into())
    );
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Deleted, 5, "a".into())
    );
    assert_quiet(&mut watch).await;

    let writer = store.clone();
    tokio::task::spawn_blocking(move || {
        writer.create(&pod_key("other", "y"), pod("y", 1)).unwrap(); // 6, filtered out
        writer
            .update(&pod_key("ns", "b"), pod("b", 2), None)
            .unwrap(); // 7
    })
    .await
    .unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Modified, 7, "b".into())
    );
    assert_eq!(watch.revision(), 7);
}

#[tokio::test]
async fn deleted_event_carries_the_last_state_at_the_delete_revision() {
    let (_dir, store) = fresh_store();
    store.create(&pod_key("ns", "a"), pod("a", 7)).unwrap();
    let mut watch = store.watch(&pods_in("ns"), 0).unwrap();
    store.delete(&pod_key("ns", "a"), None).unwrap();
    let WatchItem::Event(event) = next(&mut watch).await else {
        panic!("expected event")
    };
    assert_eq!(event.event, EventType::Deleted);
    assert_eq!(event.object["spec"]["generation"], 7);
    assert_eq!(resource_version(&event.object), 2);
}

#[tokio::test]
async fn watch_from_zero_starts_now_and_two_watchers_see_identical_sequences() {
    let (_dir, store) = fresh_store();
    write_history(&store);
    let prefix = Prefix::resource("", "pods").unwrap();
    let first = store.watch(&prefix, 0).unwrap();
    let second = store.watch(&prefix, 3).unwrap(); // replays 4 and 5 first

    let writer = store.clone();
    let writes = tokio::task::spawn_blocking(move || {
        for i in 0..50 {
            let key = pod_key(if i % 2 == 0 { "ns" } else { "other" }, &format!("w{i}"));
            writer.create(&key, pod(&format!("w{i}"), 0)).unwrap();
        }
    });

    let collect = |watch: WatchStream, n| async move {
        let items: Vec<_> = watch.into_stream().take(n).collect().await;
        items
            .into_iter()
            .map(|item| match item.unwrap() {
                WatchItem::Event(e) => (e.event, e.revision, e.key),
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join(collect(first, 50), collect(second, 52)),
    )
    .await
    .expect("both watchers finish");
    writes.await.unwrap();

    let revisions: Vec<u64> = a.iter().map(|e| e.1).collect();
    assert_eq!(
        revisions,
        (6..56).collect::<Vec<_>>(),
        "from now, in order, no gaps"
    );
    assert_eq!(b[..2].iter().map(|e| e.1).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(a, b[2..], "both watchers saw the same live sequence");
}

#[tokio::test]
async fn watcher_that_lags_behind_the_broadcast_catches_up_from_the_log() {
    let (_dir, store) = fresh_store_with(StoreConfig { watch_buffer: 4 });
    let mut watch = store.watch(&pods_in("ns"), 0).unwrap();
    for i in 0..100 {
        store
            .create(
                &pod_key("ns", &format!("p{i:03}")),
                pod(&format!("p{i:03}"), 0),
            )
            .unwrap();
    }
    for expected in 1..=100 {
        let (event, revision, _) = next_event(&mut watch).await;
        assert_eq!((event, revision), (EventType::Added, expected));
    }
    store
        .create(&pod_key("ns", "late"), pod("late", 0))
        .unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Added, 101, "late".into())
    );
}

#[tokio::test]
async fn bookmarks_report_progress_made_under_other_prefixes() {
    let (_dir, store) = fresh_store();
    let mut watch = store
        .watch(&pods_in("ns"), 0)
        .unwrap()
        .with_bookmarks(Duration::from_millis(50));
    // No progress yet: no bookmark.
    assert_quiet(&mut watch).await;

    store.create(&pod_key("other", "x"), pod("x", 0)).unwrap();
    store.create(&pod_key("other", "y"), pod("y", 0)).unwrap();
    match next(&mut watch).await {
        WatchItem::Bookmark { revision } => assert_eq!(revision, 2),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    assert_quiet(&mut watch).await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_expired_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = Store::open(&path).unwrap();
        write_history(&store);
        store.compact(4).unwrap();
        assert!(store.watch(&pods_in("ns"), 4).is_ok());
        let err = store.watch(&pods_in("ns"), 3).err().expect("expired");
        assert!(
            matches!(
                err,
                StoreError::Expired {
                    requested: 3,
                    oldest: 4
                }
            ),
            "{err:?}"
        );
    }
    let store = Store::open(&path).unwrap();
    let err = store
        .watch(&pods_in("ns"), 2)
        .err()
        .expect("expired after restart");
    assert!(
        matches!(
            err,
            StoreError::Expired {
                requested: 2,
                oldest: 4
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        store.watch(&pods_in("ns"), 9),
        Err(StoreError::FutureRevision { .. })
    ));

    // From the compacted revision itself, the retained history replays.
    let mut watch = store.watch(&pods_in("ns"), 4).unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        (EventType::Deleted, 5, "a".into())
    );
}

#[tokio::test]
async fn watcher_whose_replay_is_overtaken_by_compaction_ends_with_expired() {
    let (_dir, store) = fresh_store();
    write_history(&store);
    let mut watch = store.watch(&pods_in("ns"), 1).unwrap();
    store.compact(5).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    assert!(
        matches!(
            err,
            Err(StoreError::Expired {
                requested: 1,
                oldest: 5
            })
        ),
        "{err:?}"
    );
    assert!(
        watch.next().await.unwrap().is_none(),
        "the stream is over after an error"
    );
}
