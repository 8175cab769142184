//! Lists: paging at a consistent revision, list at a revision, compaction.

mod common;

use std::collections::BTreeMap;

use common::*;
use coracle_store::{ListOptions, Prefix, StoreError};

#[test]
fn paged_list_returns_every_item_once_at_one_revision_despite_writes_between_pages() {
    let (_dir, store) = fresh_store();
    for i in 0..25 {
        let name = format!("p{i:02}");
        store
            .create(&pod_key("default", &name), pod(&name, 0))
            .unwrap();
    }
    // A neighbour namespace whose name shares the prefix must stay out.
    store
        .create(&pod_key("default2", "intruder"), pod("intruder", 0))
        .unwrap();

    let prefix = pods_in("default");
    let mut options = ListOptions {
        limit: 10,
        ..Default::default()
    };
    let mut seen = BTreeMap::new();
    let mut list_revision = None;
    let mut pages = 0;
    loop {
        let page = store.list(&prefix, &options).unwrap();
        pages += 1;
        assert_eq!(*list_revision.get_or_insert(page.revision), page.revision);
        for item in &page.items {
            assert_eq!(
                item["spec"]["generation"], 0,
                "items are as of the list revision"
            );
            assert!(
                seen.insert(name(item), resource_version(item)).is_none(),
                "duplicate"
            );
        }

        // Churn between pages: modify, delete and add objects on both sides of the cursor.
        let n = pages * 3;
        let changed = format!("p{n:02}");
        store
            .update(&pod_key("default", &changed), pod(&changed, 9), None)
            .unwrap();
        store
            .delete(&pod_key("default", &format!("p{:02}", n + 1)), None)
            .unwrap();
        store
            .create(&pod_key("default", &format!("a-new{n}")), pod("new", 9))
            .unwrap();
        store
            .create(&pod_key("default", &format!("z-new{n}")), pod("new", 9))
            .unwrap();

        match page.continue_token {
            Some(token) => {
                let expected_left = 25 - seen.len() as u64;
                assert_eq!(page.remaining_item_count, Some(expected_left));
                options.continue_token = Some(token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);

    // A fresh list sees the churn.
    let now = store.list(&prefix, &ListOptions::default()).unwrap();
    assert_eq!(now.revision, store.current_revision());
    assert_eq!(now.items.len(), 25 - 3 + 6);
    assert_eq!(now.continue_token, None);
    assert_eq!(now.remaining_item_count, None);
}

#[test]
fn list_at_an_exact_past_revision_shows_that_state() {
    let (_dir, store) = fresh_store();
    let (r1, _) = store.create(&pod_key("ns", "a"), pod("a", 1)).unwrap();
    store.create(&pod_key("ns", "b"), pod("b", 1)).unwrap();
    store
        .update(&pod_key("ns", "a"), pod("a", 2), None)
        .unwrap();
    store.delete(&pod_key("ns", "b"), None).unwrap();

    let at = |revision| {
        let options = ListOptions {
            revision: Some(revision),
            ..Default::default()
        };
        let list = store.list(&pods_in("ns"), &options).unwrap();
        list.items
            .iter()
            .map(|i| (name(i), i["spec"]["generation"].as_u64().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(at(r1), vec![("a".into(), 1)]);
    assert_eq!(at(r1 + 1), vec![("a".into(), 1), ("b".into(), 1)]);
    assert_eq!(at(r1 + 2), vec![("a".into(), 2), ("b".into(), 1)]);
    assert_eq!(at(r1 + 3), vec![("a".into(), 2)]);

    let future = ListOptions {
        revision: Some(99),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&pods_in("ns"), &future),
        Err(StoreError::FutureRevision { .. })
    ));
}

#[test]
fn compaction_keeps_live_keys_listable_and_expires_older_revisions() {
    let (_dir, store) = fresh_store();
    let prefix = Prefix::resource("", "pods").unwrap();
    let key = |i| pod_key("ns", &format!("p{i}"));
    for i in 0..10 {
        store.create(&key(i), pod(&format!("p{i}"), 0)).unwrap();
    }
    for i in 0..10 {
        store
            .update(&key(i), pod(&format!("p{i}"), 1), None)
            .unwrap();
    }
    // Start a paged list at revision 20, before the deletes and the compaction.
    let first = store
        .list(
            &prefix,
            &ListOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(first.revision, 20);
    for i in 0..5 {
        store.delete(&key(i), None).unwrap();
    }
    // Revision 25 now; p5..p9 live at generation 1.
    let before = store.list(
        &prefix,
        &ListOptions {
            revision: Some(15),
            ..Default::default()
        },
    );
    assert_eq!(before.unwrap().items.len(), 10);

    let stats = store.compact(20).unwrap();
    assert_eq!(stats.compacted, 20);
    assert_eq!(stats.dropped, 10, "the ten superseded creates");
    store.compact(25).unwrap();

    let live = store.list(&prefix, &ListOptions::default()).unwrap();
    let names: Vec<_> = live.items.iter().map(name).collect();
    assert_eq!(names, ["p5", "p6", "p7", "p8", "p9"]);
    for i in 5..10 {
        let (rev, object) = store
            .get(&pod_key("ns", &format!("p{i}")))
            .unwrap()
            .unwrap();
        assert_eq!(
            (rev, object["spec"]["generation"].as_u64()),
            (10 + i + 1, Some(1))
        );
    }
    for i in 0..5 {
        assert_eq!(store.get(&pod_key("ns", &format!("p{i}"))).unwrap(), None);
    }

    // Older revisions and the continue token from before are gone, with 410 semantics.
    let old = ListOptions {
        revision: Some(15),
        ..Default::default()
    };
    let err = store.list(&prefix, &old).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Expired {
                requested: 15,
                oldest: 25
            }
        ),
        "{err:?}"
    );
    let cont = ListOptions {
        continue_token: first.continue_token,
        ..Default::default()
    };
    assert!(matches!(
        store.list(&prefix, &cont),
        Err(StoreError::Expired { .. })
    ));

    // The compacted revision itself is still listable, and writes go on.
    let at = ListOptions {
        revision: Some(25),
        ..Default::default()
    };
    assert_eq!(store.list(&prefix, &at).unwrap().items.len(), 5);
    store.create(&pod_key("ns", "p0"), pod("p", 2)).unwrap();
    assert_eq!(
        store
            .list(&prefix, &ListOptions::default())
            .unwrap()
            .items
            .len(),
        6
    );
}

#[test]
fn list_at_a_revision_after_compaction_still_sees_objects_modified_since() {
    let (_dir, store) = fresh_store();
    store.create(&pod_key("ns", "a"), pod("a", 1)).unwrap(); // 1
    store
        .update(&pod_key("ns", "a"), pod("a", 2), None)
        .unwrap(); // 2
    store.create(&pod_key("ns", "b"), pod("b", 1)).unwrap(); // 3
    store
        .update(&pod_key("ns", "a"), pod("a", 3), None)
        .unwrap(); // 4
    store.delete(&pod_key("ns", "b"), None).unwrap(); // 5
    store.compact(3).unwrap();

    // At 3, a was at generation 2 (written at 2, superseded only at 4) and b was live.
    let at3 = store.list(
        &pods_in("ns"),
        &ListOptions {
            revision: Some(3),
            ..Default::default()
        },
    );
    let items = at3.unwrap().items;
    let gens: Vec<_> = items
        .iter()
        .map(|i| (name(i), i["spec"]["generation"].clone()))
        .collect();
    assert_eq!(gens, vec![("a".into(), 2.into()), ("b".into(), 1.into())]);
}

#[test]
fn continue_tokens_from_another_list_or_garbage_are_rejected() {
    let (_dir, store) = fresh_store();
    for i in 0..3 {
        store
            .create(&pod_key("a", &format!("p{i}")), pod("p", 0))
            .unwrap();
    }
    let page = store
        .list(
            &pods_in("a"),
            &ListOptions {
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let token = page.continue_token.unwrap();
    let elsewhere = ListOptions {
        continue_token: Some(token),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&pods_in("b"), &elsewhere),
        Err(StoreError::InvalidContinue { .. })
    ));
    let garbage = ListOptions {
        continue_token: Some("zz".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&pods_in("a"), &garbage),
        Err(StoreError::InvalidContinue { .. })
    ));
}

#[tokio::test]
async fn periodic_compactor_compacts_to_the_retained_window_and_keeps_live_keys() {
    use coracle_store::{spawn_compactor, CompactionPolicy};
    use std::time::Duration;

    let (_dir, store) = fresh_store();
    for i in 0..10 {
        let name = format!("p{i}");
        store.create(&pod_key("ns", &name), pod(&name, 0)).unwrap();
        store
            .update(&pod_key("ns", &name), pod(&name, 1), None)
            .unwrap();
    }
    let policy = CompactionPolicy {
        interval: Duration::from_millis(20),
        retain_for: Duration::ZERO,
        retain_revisions: 5,
    };
    let compactor = spawn_compactor(store.clone(), policy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.compacted_revision() != 15 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "compactor did not run"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    compactor.abort();

    assert_eq!(
        store
            .list(&pods_in("ns"), &ListOptions::default())
            .unwrap()
            .items
            .len(),
        10
    );
    let old = ListOptions {
        revision: Some(14),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&pods_in("ns"), &old),
        Err(StoreError::Expired { .. })
    ));
}
