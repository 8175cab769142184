//! One test per STATUS/READY/RESTARTS rule of upstream's `printPod` (reference §1.13, §2.8,
//! §3.2–§3.4, and the cases of upstream's printer tests).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::*;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

/// A pod with init containers `init` (name, sidecar?) and app containers `app`.
fn pod(init: &[(&str, bool)], app: &[&str], status: Value) -> Pod {
    let init: Vec<Value> = init
        .iter()
        .map(|(n, sidecar)| {
            let mut c = json!({"name": n, "image": "busybox"});
            if *sidecar {
                c["restartPolicy"] = json!("Always");
            }
            c
        })
        .collect();
    let app: Vec<Value> = app
        .iter()
        .map(|n| json!({"name": n, "image": "busybox"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": init, "containers": app},
        "status": status,
    }))
    .unwrap()
}

fn cols(p: &Pod) -> (String, String, String) {
    let c = pod_status_columns(p, now());
    (c.status, c.ready, c.restarts)
}

fn running(name: &str, ready: bool) -> Value {
    json!({"name": name, "ready": ready, "restartCount": 0, "started": true, "state": {"running": {"startedAt": ago(60)}}})
}

fn waiting(name: &str, reason: &str) -> Value {
    json!({"name": name, "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}})
}

fn terminated(name: &str, exit: i32, reason: Option<&str>, signal: i32) -> Value {
    let mut t =
        json!({"exitCode": exit, "signal": signal, "startedAt": ago(90), "finishedAt": ago(80)});
    if let Some(r) = reason {
        t["reason"] = json!(r);
    }
    json!({"name": name, "ready": exit == 0, "restartCount": 0, "state": {"terminated": t}})
}

fn with_restarts(mut s: Value, count: i32, finished_secs_ago: i64) -> Value {
    s["restartCount"] = json!(count);
    s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(finished_secs_ago)}});
    s
}

fn status(phase: &str, init: Vec<Value>, app: Vec<Value>) -> Value {
    json!({"phase": phase, "initContainerStatuses": init, "containerStatuses": app})
}

const TWO_INIT: &[(&str, bool)] = &[("init1", false), ("init2", false)];

#[test]
fn pod_without_statuses_shows_its_phase() {
    let p = pod(TWO_INIT, &["app"], json!({"phase": "Pending"}));
    assert_eq!(cols(&p), ("Pending".into(), "0/1".into(), "0".into()));
}

#[test]
fn status_reason_replaces_the_phase() {
    let p = pod(
        &[],
        &["app"],
        json!({"phase": "Failed", "reason": "DeadlineExceeded"}),
    );
    assert_eq!(cols(&p).0, "DeadlineExceeded");
    let p = pod(
        &[],
        &["app"],
        json!({"phase": "Failed", "reason": "Evicted"}),
    );
    assert_eq!(cols(&p).0, "Evicted");
}

#[test]
fn scheduling_gated_condition_shows_scheduling_gated() {
    let st = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
    assert_eq!(cols(&pod(&[], &["app"], st)).0, "SchedulingGated");
}

#[test]
fn all_statuses_pod_initializing_shows_init_zero_of_m() {
    let st = status(
        "Pending",
        vec![
            waiting("init1", "PodInitializing"),
            waiting("init2", "PodInitializing"),
        ],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        ("Init:0/2".into(), "0/1".into(), "0".into())
    );
}

#[test]
fn running_first_init_container_shows_init_zero_of_two() {
    let st = status(
        "Pending",
        vec![running("init1", false), waiting("init2", "PodInitializing")],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:0/2");
}

#[test]
fn completed_first_and_running_second_init_shows_init_one_of_two() {
    let st = status(
        "Pending",
        vec![
            terminated("init1", 0, Some("Completed"), 0),
            running("init2", false),
        ],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:1/2");
}

#[test]
fn waiting_without_reason_counts_as_not_finished() {
    let st = status(
        "Pending",
        vec![
            terminated("init1", 0, None, 0),
            json!({"name": "init2", "ready": false, "restartCount": 0, "state": {"waiting": {}}}),
        ],
        vec![],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:1/2");
}

#[test]
fn init_failure_with_reason_shows_init_reason() {
    let st = status(
        "Pending",
        vec![
            terminated("init1", 1, Some("Error"), 0),
            waiting("init2", "PodInitializing"),
        ],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:Error");
    let st = status(
        "Pending",
        vec![terminated("init1", 137, Some("OOMKilled"), 0)],
        vec![],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:OOMKilled");
}

#[test]
fn init_failure_without_reason_shows_the_signal() {
    let st = status("Pending", vec![terminated("init1", 137, None, 9)], vec![]);
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:Signal:9");
}

#[test]
fn init_failure_without_reason_or_signal_shows_the_exit_code() {
    let st = status("Pending", vec![terminated("init1", 3, None, 0)], vec![]);
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:ExitCode:3");
}

#[test]
fn init_in_crash_loop_shows_init_crash_loop_back_off_and_init_restarts() {
    let init1 = with_restarts(waiting("init1", "CrashLoopBackOff"), 3, 10);
    let st = status(
        "Pending",
        vec![init1, waiting("init2", "PodInitializing")],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        (
            "Init:CrashLoopBackOff".into(),
            "0/1".into(),
            "3 (10s ago)".into()
        )
    );
}

#[test]
fn init_image_pull_failures_show_their_waiting_reason() {
    for reason in [
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
    ] {
        let st = status(
            "Pending",
            vec![
                terminated("init1", 0, Some("Completed"), 0),
                waiting("init2", reason),
            ],
            vec![],
        );
        assert_eq!(
            cols(&pod(TWO_INIT, &["app"], st)).0,
            format!("Init:{reason}")
        );
    }
}

#[test]
fn init_status_of_an_unknown_container_counts_as_regular() {
    let st = status(
        "Pending",
        vec![running("ghost", true), running("ghost2", true)],
        vec![],
    );
    assert_eq!(cols(&pod(TWO_INIT, &["app"], st)).0, "Init:0/2");
}

#[test]
fn finished_init_and_waiting_app_shows_pod_initializing() {
    let st = status(
        "Pending",
        vec![
            terminated("init1", 0, Some("Completed"), 0),
            terminated("init2", 0, Some("Completed"), 0),
        ],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        ("PodInitializing".into(), "0/1".into(), "0".into())
    );
}

#[test]
fn ready_running_app_shows_running() {
    let st = status(
        "Running",
        vec![
            terminated("init1", 0, Some("Completed"), 0),
            terminated("init2", 0, Some("Completed"), 0),
        ],
        vec![running("app", true)],
    );
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        ("Running".into(), "1/1".into(), "0".into())
    );
}

#[test]
fn running_but_unready_app_is_not_counted_ready() {
    let st = status("Running", vec![], vec![running("app", false)]);
    assert_eq!(
        cols(&pod(&[], &["app"], st)),
        ("Running".into(), "0/1".into(), "0".into())
    );
}

#[test]
fn app_waiting_reason_wins_and_lowest_index_decides() {
    let st = status(
        "Running",
        vec![],
        vec![
            waiting("a", "CrashLoopBackOff"),
            waiting("b", "ErrImagePull"),
        ],
    );
    assert_eq!(cols(&pod(&[], &["a", "b"], st)).0, "CrashLoopBackOff");
}

#[test]
fn succeeded_pod_shows_completed() {
    let st = status(
        "Succeeded",
        vec![
            terminated("init1", 0, Some("Completed"), 0),
            terminated("init2", 0, Some("Completed"), 0),
        ],
        vec![terminated("app", 0, Some("Completed"), 0)],
    );
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        ("Completed".into(), "0/1".into(), "0".into())
    );
}

#[test]
fn completed_container_next_to_a_running_one_shows_running_when_pod_ready() {
    let mut st = status(
        "Running",
        vec![],
        vec![terminated("a", 0, Some("Completed"), 0), running("b", true)],
    );
    st["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert_eq!(
        cols(&pod(&[], &["a", "b"], st)),
        ("Running".into(), "1/2".into(), "0".into())
    );
}

#[test]
fn completed_container_next_to_a_running_one_shows_not_ready_without_ready_condition() {
    let st = status(
        "Running",
        vec![],
        vec![terminated("a", 0, Some("Completed"), 0), running("b", true)],
    );
    assert_eq!(cols(&pod(&[], &["a", "b"], st)).0, "NotReady");
}

#[test]
fn app_terminated_without_reason_shows_signal_or_exit_code() {
    let st = status("Running", vec![], vec![terminated("app", 137, None, 9)]);
    assert_eq!(cols(&pod(&[], &["app"], st)).0, "Signal:9");
    let st = status("Running", vec![], vec![terminated("app", 2, None, 0)]);
    assert_eq!(cols(&pod(&[], &["app"], st)).0, "ExitCode:2");
}

#[test]
fn app_terminated_with_error_reason_shows_it() {
    let st = status(
        "Failed",
        vec![],
        vec![terminated("app", 1, Some("Error"), 0)],
    );
    assert_eq!(cols(&pod(&[], &["app"], st)).0, "Error");
}

#[test]
fn deleted_pod_that_is_still_running_shows_terminating() {
    let mut p = pod(
        TWO_INIT,
        &["app"],
        status("Pending", vec![running("init1", false)], vec![]),
    );
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(cols(&p).0, "Terminating");
}

#[test]
fn deleted_pod_in_a_terminal_phase_keeps_its_status() {
    let mut p = pod(
        &[],
        &["app"],
        status(
            "Succeeded",
            vec![],
            vec![terminated("app", 0, Some("Completed"), 0)],
        ),
    );
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(cols(&p).0, "Completed");
    let mut p = pod(
        &[],
        &["app"],
        status(
            "Failed",
            vec![],
            vec![terminated("app", 1, Some("Error"), 0)],
        ),
    );
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(cols(&p).0, "Error");
}

#[test]
fn deleted_pod_of_a_lost_node_shows_unknown() {
    let mut p = pod(
        &[],
        &["app"],
        json!({"phase": "Running", "reason": "NodeLost"}),
    );
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(cols(&p).0, "Unknown");
}

#[test]
fn sidecars_count_in_the_ready_total() {
    let init = &[("init", false), ("side1", true), ("side2", true)];
    let st = status("Pending", vec![running("init", false)], vec![]);
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        ("Init:0/3".into(), "0/3".into(), "0".into())
    );
}

#[test]
fn running_but_not_started_sidecar_blocks_init() {
    let init = &[("side1", true), ("side2", true)];
    let mut side1 = running("side1", false);
    side1["started"] = json!(false);
    let st = status(
        "Pending",
        vec![side1, waiting("side2", "PodInitializing")],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        ("Init:0/2".into(), "0/3".into(), "0".into())
    );
}

#[test]
fn started_ready_sidecar_counts_ready_and_moves_init_on() {
    let init = &[("side1", true), ("side2", true)];
    let mut side2 = running("side2", false);
    side2["started"] = json!(false);
    let st = status(
        "Pending",
        vec![running("side1", true), side2],
        vec![waiting("app", "PodInitializing")],
    );
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        ("Init:1/2".into(), "1/3".into(), "0".into())
    );
}

#[test]
fn after_init_restarts_are_sidecars_plus_apps() {
    let init = &[("side1", true), ("side2", true)];
    let s1 = with_restarts(running("side1", true), 1, 100);
    let s2 = with_restarts(running("side2", true), 2, 10);
    let app = with_restarts(running("app", true), 4, 20);
    let mut st = status("Running", vec![s1, s2], vec![app]);
    st["conditions"] =
        json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]);
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        ("Running".into(), "3/3".into(), "7 (10s ago)".into())
    );
}

#[test]
fn after_init_regular_init_restarts_drop_out() {
    let init1 = with_restarts(terminated("init1", 0, Some("Completed"), 0), 2, 5);
    let app = with_restarts(running("app", true), 4, 20);
    let st = status("Running", vec![init1], vec![app]);
    assert_eq!(
        cols(&pod(&[("init1", false)], &["app"], st)).2,
        "4 (20s ago)"
    );
}

#[test]
fn restarts_while_initializing_sum_all_init_containers() {
    let init1 = with_restarts(terminated("init1", 0, Some("Completed"), 0), 2, 50);
    let init2 = with_restarts(waiting("init2", "CrashLoopBackOff"), 3, 30);
    let app = with_restarts(waiting("app", "PodInitializing"), 9, 1);
    let st = status("Pending", vec![init1, init2], vec![app]);
    assert_eq!(
        cols(&pod(TWO_INIT, &["app"], st)),
        (
            "Init:CrashLoopBackOff".into(),
            "0/1".into(),
            "5 (30s ago)".into()
        )
    );
}

#[test]
fn restarts_without_a_last_termination_have_no_age() {
    let mut app = running("app", true);
    app["restartCount"] = json!(2);
    assert_eq!(
        cols(&pod(&[], &["app"], status("Running", vec![], vec![app]))).2,
        "2"
    );
}

#[test]
fn crash_looping_sidecar_after_initialization_still_runs_the_app_loop() {
    let init = &[("side", true)];
    let side = with_restarts(waiting("side", "CrashLoopBackOff"), 5, 15);
    let mut st = status("Running", vec![side], vec![running("app", true)]);
    st["conditions"] = json!([{"type": "Initialized", "status": "True"}]);
    // The app loop runs (READY and RESTARTS come from it) but a running app says nothing,
    // so the sidecar's Init: reason stays.
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        (
            "Init:CrashLoopBackOff".into(),
            "1/2".into(),
            "5 (15s ago)".into()
        )
    );
}

#[test]
fn job_with_failed_sidecars_and_completed_app_shows_completed() {
    let init = &[("side1", true), ("side2", true)];
    let mut s1 = terminated("side1", 137, Some("Error"), 0);
    s1["started"] = json!(false);
    let mut s2 = terminated("side2", 137, Some("Error"), 0);
    s2["started"] = json!(false);
    let mut st = status(
        "Succeeded",
        vec![s1, s2],
        vec![terminated("app", 0, Some("Completed"), 0)],
    );
    st["conditions"] = json!([{"type": "Initialized", "status": "True", "reason": "PodCompleted"}]);
    assert_eq!(
        cols(&pod(init, &["app"], st)),
        ("Completed".into(), "0/3".into(), "0".into())
    );
}

#[test]
fn human_duration_matches_apimachinery() {
    let d = |s: i64| human_duration(SignedDuration::from_secs(s));
    assert_eq!(d(-5), "<invalid>");
    assert_eq!(d(-1), "0s");
    assert_eq!(d(0), "0s");
    assert_eq!(d(119), "119s");
    assert_eq!(d(120), "2m");
    assert_eq!(d(200), "3m20s");
    assert_eq!(d(600), "10m");
    assert_eq!(d(3 * 3600 - 1), "179m");
    assert_eq!(d(3 * 3600), "3h");
    assert_eq!(d(3 * 3600 + 25 * 60), "3h25m");
    assert_eq!(d(8 * 3600), "8h");
    assert_eq!(d(47 * 3600), "47h");
    assert_eq!(d(48 * 3600), "2d");
    assert_eq!(d(51 * 3600), "2d3h");
    assert_eq!(d(8 * 86400), "8d");
    assert_eq!(d(729 * 86400), "729d");
    assert_eq!(d(730 * 86400), "2y");
    assert_eq!(d(740 * 86400), "2y10d");
    assert_eq!(d(8 * 365 * 86400), "8y");
}

#[test]
fn age_without_timestamp_is_unknown() {
    assert_eq!(age(None, now()), "<unknown>");
    let t = Time(now() - SignedDuration::from_secs(5));
    assert_eq!(age(Some(&t), now()), "5s");
}
