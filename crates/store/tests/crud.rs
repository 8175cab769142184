//! Point operations: create, get, update, guaranteed_update, delete, reopen.

mod common;

use std::sync::Arc;

use common::*;
use coracle_store::{Store, StoreError};
use serde_json::json;

#[test]
fn create_get_update_delete_round_trip() {
    let (_dir, store) = fresh_store();
    let key = pod_key("default", "web");

    let (rev, created) = store.create(&key, pod("web", 1)).unwrap();
    assert_eq!(resource_version(&created), rev);
    assert_eq!(store.get(&key).unwrap(), Some((rev, created.clone())));

    let (rev2, updated) = store.update(&key, pod("web", 2), Some(rev)).unwrap();
    assert_eq!(rev2, rev + 1);
    assert_eq!(updated["spec"]["generation"], 2);
    assert_eq!(store.get(&key).unwrap(), Some((rev2, updated.clone())));

    let (rev3, last) = store.delete(&key, None).unwrap();
    assert_eq!(rev3, rev2 + 1);
    assert_eq!(
        last["spec"]["generation"], 2,
        "delete returns the last state"
    );
    assert_eq!(
        resource_version(&last),
        rev3,
        "stamped with the delete revision"
    );
    assert_eq!(store.get(&key).unwrap(), None);

    // The key can be created again after a delete.
    let (rev4, _) = store.create(&key, pod("web", 3)).unwrap();
    assert_eq!(rev4, rev3 + 1);
}

#[test]
fn revision_increases_by_one_per_write_across_all_keys() {
    let (_dir, store) = fresh_store();
    assert_eq!(store.current_revision(), 0);
    let mut expected = 0;
    for i in 0..5 {
        let key = pod_key(if i % 2 == 0 { "a" } else { "b" }, &format!("p{i}"));
        expected += 1;
        assert_eq!(store.create(&key, pod("p", 0)).unwrap().0, expected);
        expected += 1;
        assert_eq!(store.update(&key, pod("p", 1), None).unwrap().0, expected);
    }
    let node = coracle_store::Key::cluster("", "nodes", "n1").unwrap();
    assert_eq!(
        store.create(&node, json!({"kind": "Node"})).unwrap().0,
        expected + 1
    );
    assert_eq!(store.current_revision(), expected + 1);
}

#[test]
fn stale_expected_revision_is_a_conflict_and_missing_keys_are_not_found() {
    let (_dir, store) = fresh_store();
    let key = pod_key("default", "web");
    let (rev, _) = store.create(&key, pod("web", 1)).unwrap();
    store.update(&key, pod("web", 2), Some(rev)).unwrap();

    let err = store.update(&key, pod("web", 3), Some(rev)).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected, current, .. } if expected == rev && current == rev + 1),
        "{err:?}"
    );
    let err = store.delete(&key, Some(rev)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.get(&key).unwrap().unwrap().1["spec"]["generation"], 2);

    let err = store.create(&key, pod("web", 9)).unwrap_err();
    assert_eq!(err.to_string(), "/core/pods/default/web already exists");
    let missing = pod_key("default", "nope");
    assert!(matches!(
        store.update(&missing, pod("x", 0), None),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&missing, None),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.current_revision(),
        rev + 1,
        "failed writes take no revision"
    );
}

#[test]
fn update_that_changes_nothing_takes_no_revision() {
    let (_dir, store) = fresh_store();
    let key = pod_key("default", "web");
    let (rev, _) = store.create(&key, pod("web", 1)).unwrap();
    let (same, object) = store.update(&key, pod("web", 1), None).unwrap();
    assert_eq!((same, resource_version(&object)), (rev, rev));
    assert_eq!(store.current_revision(), rev);
}

#[test]
fn non_object_values_are_rejected() {
    let (_dir, store) = fresh_store();
    let err = store
        .create(&pod_key("default", "x"), json!([1, 2]))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotAnObject { .. }), "{err:?}");
    assert_eq!(store.current_revision(), 0);
}

#[test]
fn guaranteed_update_loses_no_increment_under_concurrent_writers() {
    let (_dir, store) = fresh_store();
    let key = pod_key("default", "counter");
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50;

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Interleave plain writes to another key to shuffle the revisions.
                    if i % 10 == 0 {
                        let other = pod_key("default", &format!("noise-{t}-{i}"));
                        store.create(&other, pod("noise", i)).unwrap();
                    }
                    store
                        .guaranteed_update::<StoreError, _>(&key, |current| {
                            let count = current.map_or(0, |c| c["count"].as_u64().unwrap());
                            Ok(Some(
                                json!({"metadata": {"name": "counter"}, "count": count + 1}),
                            ))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let (rev, object) = store.get(&key).unwrap().unwrap();
    assert_eq!(object["count"], THREADS * PER_THREAD);
    assert_eq!(resource_version(&object), rev);
    let noise = THREADS * PER_THREAD / 10;
    assert_eq!(store.current_revision(), THREADS * PER_THREAD + noise);
}

#[test]
fn guaranteed_update_can_decline_and_passes_its_own_error_through() {
    let (_dir, store) = fresh_store();
    let key = pod_key("default", "web");

    let nothing = store
        .guaranteed_update::<StoreError, _>(&key, |_| Ok(None))
        .unwrap();
    assert_eq!(nothing, None);
    assert_eq!(store.current_revision(), 0);

    #[derive(Debug)]
    enum PatchError {
        Invalid,
        Store(StoreError),
    }
    impl From<StoreError> for PatchError {
        fn from(e: StoreError) -> Self {
            PatchError::Store(e)
        }
    }
    store.create(&key, pod("web", 1)).unwrap();
    let err = store
        .guaranteed_update(&key, |_| Err(PatchError::Invalid))
        .unwrap_err();
    assert!(matches!(err, PatchError::Invalid));
    let err = store
        .guaranteed_update(&key, |_| Ok::<_, PatchError>(Some(json!("not an object"))))
        .unwrap_err();
    assert!(
        matches!(err, PatchError::Store(StoreError::NotAnObject { .. })),
        "{err:?}"
    );
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn reopened_store_keeps_objects_and_continues_the_revision_counter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = Store::open(&path).unwrap();
        store.create(&pod_key("default", "a"), pod("a", 1)).unwrap();
        store.create(&pod_key("default", "b"), pod("b", 1)).unwrap();
        store.delete(&pod_key("default", "b"), None).unwrap();
        // Even with the newest record compacted away, the counter must not go back.
        store.compact(3).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.current_revision(), 3);
    assert_eq!(store.compacted_revision(), 3);
    assert_eq!(store.get(&pod_key("default", "a")).unwrap().unwrap().0, 1);
    assert_eq!(store.get(&pod_key("default", "b")).unwrap(), None);
    assert_eq!(
        store
            .create(&pod_key("default", "c"), pod("c", 1))
            .unwrap()
            .0,
        4
    );
}

#[test]
fn clones_share_one_store() {
    let (_dir, store) = fresh_store();
    let other = Arc::new(store.clone());
    store.create(&pod_key("default", "a"), pod("a", 1)).unwrap();
    assert!(other.get(&pod_key("default", "a")).unwrap().is_some());
}
