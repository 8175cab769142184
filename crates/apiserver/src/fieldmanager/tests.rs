use super::*;
use crate::patch::{self, PatchKind};

fn scope() -> Scope {
    Scope {
        api_version: "v1".into(),
        subresource: None,
        has_status: false,
    }
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "namespace": "default"}, "data": data})
}

/// One server-side apply as the REST layer runs it: merge, prune, then ownership.
fn server_apply(
    entries: &mut Vec<Entry>,
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Conflicts> {
    let res = crate::resources::find("", "v1", "configmaps").unwrap();
    let mut merged = patch::apply(PatchKind::Apply, res, live, config).unwrap();
    let applied = applied_fields(config, &scope());
    prune(entries, &mut merged, &applied, manager, &scope());
    apply(
        entries,
        live,
        &merged,
        applied,
        manager,
        &scope(),
        force,
        None,
        "now",
    )?;
    Ok(merged)
}

fn owner_of<'a>(entries: &'a [Entry], manager: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.manager == manager)
}

fn path(steps: &[&str]) -> Path {
    steps.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn an_applied_configuration_owns_its_leaves_in_fields_v1() {
    let config = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a/b"]},
        "spec": {"containers": [{"name": "web", "image": "nginx", "args": ["-g", "x"],
                                 "ports": [{"containerPort": 80}]}]},
    });
    let set = applied_fields(&config, &scope());
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a/b\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}},
            }}},
        })
    );
    assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
}

#[test]
fn a_create_owns_the_maps_it_added_with_a_dot_but_not_the_top_level_structs() {
    let mut object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "uid": "u", "labels": {"run": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Pending"},
    });
    let pods = Scope {
        has_status: true,
        ..scope()
    };
    record_create(&mut object, "kubectl-run", &pods);
    let entries = decode(&object).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager, "kubectl-run");
    assert_eq!(entries[0].operation, Operation::Update);
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:run": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                ".": {}, "f:image": {}, "f:name": {}}}},
        })
    );
    let mf = &object["metadata"]["managedFields"][0];
    assert_eq!(mf["fieldsType"], "FieldsV1");
    assert_eq!(mf["apiVersion"], "v1");
    assert!(mf["time"].is_string());
}

#[test]
fn applying_a_different_value_of_anothers_field_is_a_conflict() {
    let mut entries = Vec::new();
    let live = server_apply(
        &mut entries,
        &json!({}),
        &configmap(json!({"key": "one"})),
        "kubectl",
        false,
    )
    .unwrap();
    let err = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"key": "two"})),
        "other",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .data.key"
    );
    assert_eq!(err.0[0].manager, "\"kubectl\"");
    assert_eq!(err.0[0].field, ".data.key");
    let error = crate::status_error::ApiError::from_conflicts(err);
    assert_eq!(
        error.status(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "Conflict", "code": 409,
               "message": "Apply failed with 1 conflict: conflict with \"kubectl\": .data.key",
               "details": {"causes": [{"reason": "FieldManagerConflict",
                                       "message": "conflict with \"kubectl\"",
                                       "field": ".data.key"}]}})
    );
    // Nothing changed.
    assert!(owner_of(&entries, "other").is_none());
}

#[test]
fn the_same_value_is_shared_and_force_moves_ownership() {
    let mut entries = Vec::new();
    let live = server_apply(
        &mut entries,
        &json!({}),
        &configmap(json!({"key": "one", "extra": "e"})),
        "kubectl",
        false,
    )
    .unwrap();

    // Same value: both own it.
    let live = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"key": "one"})),
        "other",
        false,
    )
    .unwrap();
    let key = path(&["f:data", "f:key"]);
    assert!(owner_of(&entries, "kubectl").unwrap().fields.contains(&key));
    assert!(owner_of(&entries, "other").unwrap().fields.contains(&key));

    // Forced: other takes it, kubectl keeps only what it alone set.
    let live = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"key": "two"})),
        "other",
        true,
    )
    .unwrap();
    assert_eq!(live["data"], json!({"key": "two", "extra": "e"}));
    assert!(!owner_of(&entries, "kubectl").unwrap().fields.contains(&key));
    assert!(owner_of(&entries, "other").unwrap().fields.contains(&key));
}

#[test]
fn fields_an_applier_drops_are_removed_unless_another_manager_owns_them() {
    let mut entries = Vec::new();
    let live = server_apply(
        &mut entries,
        &json!({}),
        &configmap(json!({"a": "1", "b": "2", "c": "3"})),
        "kubectl",
        false,
    )
    .unwrap();
    let live = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"b": "2"})),
        "other",
        false,
    )
    .unwrap();
    let live = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"c": "3"})),
        "kubectl",
        false,
    )
    .unwrap();
    // a was kubectl's alone: gone. b is other's too: kept, now other's alone.
    assert_eq!(live["data"], json!({"b": "2", "c": "3"}));
    assert_eq!(
        owner_of(&entries, "kubectl").unwrap().fields.to_fields_v1(),
        json!({"f:data": {"f:c": {}}})
    );

    // Dropping every key leaves no empty data map behind.
    let live = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"b": "2"})),
        "kubectl",
        false,
    )
    .unwrap();
    let mut cm = configmap(json!(null));
    cm.as_object_mut().unwrap().remove("data");
    let live = server_apply(&mut entries, &live, &cm, "other", false).unwrap();
    let live = server_apply(&mut entries, &live, &cm, "kubectl", false).unwrap();
    assert_eq!(live.get("data"), None, "{live}");
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn dropped_list_items_are_removed_by_their_key() {
    let res = crate::resources::find("", "v1", "pods").unwrap();
    let pod = |containers: Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p"}, "spec": {"containers": containers}})
    };
    let first = pod(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
    let mut entries = Vec::new();
    let applied = applied_fields(&first, &scope());
    apply(
        &mut entries,
        &json!({}),
        &first,
        applied,
        "kubectl",
        &scope(),
        false,
        None,
        "now",
    )
    .unwrap();
    let second = pod(json!([{"name": "a", "image": "x"}]));
    let mut merged = patch::apply(PatchKind::Apply, res, &first, &second).unwrap();
    let applied = applied_fields(&second, &scope());
    prune(&entries, &mut merged, &applied, "kubectl", &scope());
    assert_eq!(
        merged["spec"]["containers"],
        json!([{"name": "a", "image": "x"}])
    );
}

#[test]
fn an_update_takes_the_fields_it_changes_without_conflicts() {
    let mut entries = Vec::new();
    let live = server_apply(
        &mut entries,
        &json!({}),
        &configmap(json!({"key": "one", "other": "o"})),
        "kubectl",
        false,
    )
    .unwrap();
    let mut new = live.clone();
    new["data"]["key"] = json!("edited");
    new["data"].as_object_mut().unwrap().remove("other");
    update(&mut entries, &live, &new, "kubectl-edit", &scope(), "now");
    assert_eq!(
        owner_of(&entries, "kubectl-edit")
            .unwrap()
            .fields
            .to_fields_v1(),
        json!({"f:data": {"f:key": {}}})
    );
    // The applier lost both: the changed one and the removed one.
    assert!(owner_of(&entries, "kubectl").is_none(), "{entries:?}");

    // An update that changes nothing records nothing.
    let before = entries.len();
    update(&mut entries, &new, &new, "nobody", &scope(), "now");
    assert_eq!(entries.len(), before);
}

#[test]
fn conflicts_with_update_managers_name_their_version_and_several_are_listed_per_manager() {
    let live = configmap(json!({"a": "1", "b": "2", "c": "3"}));
    let mut entries = vec![
        Entry {
            manager: "kubectl-client-side-apply".into(),
            operation: Operation::Update,
            api_version: "v1".into(),
            subresource: None,
            time: Some("t".into()),
            fields: applied_fields(&configmap(json!({"a": "1", "b": "2"})), &scope()),
        },
        Entry {
            manager: "helm".into(),
            operation: Operation::Apply,
            api_version: "v1".into(),
            subresource: None,
            time: None,
            fields: applied_fields(&configmap(json!({"c": "3"})), &scope()),
        },
    ];
    let one = server_apply(
        &mut entries.clone(),
        &live,
        &configmap(json!({"a": "x"})),
        "mine",
        false,
    )
    .unwrap_err();
    assert_eq!(
        one.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.a"
    );
    let many = server_apply(
        &mut entries,
        &live,
        &configmap(json!({"a": "x", "b": "y", "c": "z"})),
        "mine",
        false,
    )
    .unwrap_err();
    assert_eq!(
        many.message(),
        "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .data.c\n\
         conflicts with \"kubectl-client-side-apply\" using v1:\n- .data.a\n- .data.b"
    );
}

#[test]
fn kubectl_may_take_over_what_its_client_side_apply_last_applied() {
    let mut live = configmap(json!({"key": "one", "edited": "by-hand"}));
    let annotation = configmap(json!({"key": "one", "edited": "original"})).to_string();
    live["metadata"]["annotations"] = json!({ LAST_APPLIED: annotation });
    let entries = vec![Entry {
        manager: "kubectl-client-side-apply".into(),
        operation: Operation::Update,
        api_version: "v1".into(),
        subresource: None,
        time: None,
        fields: applied_fields(&live, &scope()),
    }];
    let allowed = allowed_from_last_applied(&live, &scope()).unwrap();
    assert!(allowed.contains(&path(&["f:data", "f:key"])));
    // Changed since it was applied: not kubectl's to take.
    assert!(!allowed.contains(&path(&["f:data", "f:edited"])));

    let config = configmap(json!({"key": "two", "edited": "again"}));
    let mut new = live.clone();
    new["data"] = config["data"].clone();
    let err = apply(
        &mut entries.clone(),
        &live,
        &new,
        applied_fields(&config, &scope()),
        "kubectl",
        &scope(),
        false,
        Some(&allowed),
        "now",
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.edited"
    );

    sync_last_applied(&mut new, &config);
    assert_eq!(
        new["metadata"]["annotations"][LAST_APPLIED],
        json!(config.to_string())
    );
}

#[test]
fn the_status_subresource_owns_only_status_and_the_main_resource_never_does() {
    let old = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a"}, "status": {}});
    let new = json!({"metadata": {"name": "p", "labels": {"x": "y"}}, "spec": {"nodeName": "a"},
                     "status": {"phase": "Running",
                                "conditions": [{"type": "Ready", "status": "True"}]}});
    let status = Scope {
        subresource: Some("status".into()),
        has_status: true,
        ..scope()
    };
    let mut entries = Vec::new();
    update(&mut entries, &old, &new, "kubelet", &status, "now");
    assert_eq!(entries[0].subresource.as_deref(), Some("status"));
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {
            ".": {}, "f:status": {}, "f:type": {}}}, "f:phase": {}}})
    );
    let main = Scope {
        has_status: true,
        ..scope()
    };
    let mut entries = Vec::new();
    update(&mut entries, &old, &new, "kubectl", &main, "now");
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    );
}

#[test]
fn paths_print_as_upstream_prints_them() {
    assert_eq!(
        path_string(&path(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
            "f:image"
        ])),
        ".spec.containers[name=\"web\"].image"
    );
    assert_eq!(
        path_string(&path(&["f:metadata", "f:finalizers", "v:\"a\""])),
        ".metadata.finalizers[=\"a\"]"
    );
}

#[test]
fn entries_sort_as_upstream_and_server_metadata_is_nobodys() {
    let mut object = configmap(json!({"k": "v"}));
    object["metadata"]["uid"] = json!("u");
    object["metadata"]["resourceVersion"] = json!("7");
    let entries = vec![
        Entry {
            manager: "b".into(),
            operation: Operation::Update,
            api_version: "v1".into(),
            subresource: None,
            time: Some("2026-01-01T00:00:00Z".into()),
            fields: applied_fields(&object, &scope()),
        },
        Entry {
            manager: "a".into(),
            operation: Operation::Apply,
            api_version: "v1".into(),
            subresource: None,
            time: Some("2026-02-01T00:00:00Z".into()),
            fields: applied_fields(&object, &scope()),
        },
    ];
    encode(&mut object, entries);
    let mf = object["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf[0]["manager"], "a");
    assert_eq!(mf[1]["manager"], "b");
    assert_eq!(mf[0]["fieldsV1"], json!({"f:data": {"f:k": {}}}));
}

#[test]
fn beyond_ten_update_managers_the_oldest_merge_into_ancient_changes() {
    let mut entries = Vec::new();
    let mut live = configmap(json!({}));
    for i in 0..12 {
        let mut new = live.clone();
        new["data"][format!("k{i:02}")] = json!("v");
        let time = format!("2026-01-01T00:00:{i:02}Z");
        update(
            &mut entries,
            &live,
            &new,
            &format!("m{i:02}"),
            &scope(),
            &time,
        );
        live = new;
    }
    assert_eq!(entries.len(), 10);
    let bucket = owner_of(&entries, "ancient-changes").unwrap();
    assert_eq!(bucket.operation, Operation::Update);
    assert_eq!(bucket.time.as_deref(), Some("2026-01-01T00:00:02Z"));
    assert_eq!(
        bucket.fields.to_fields_v1(),
        json!({"f:data": {"f:k00": {}, "f:k01": {}, "f:k02": {}}})
    );
    for gone in ["m00", "m01", "m02"] {
        assert!(owner_of(&entries, gone).is_none(), "{gone}");
    }
    assert!(owner_of(&entries, "m03").is_some());
}
