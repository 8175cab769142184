//! Native sidecars (reference §2): an init container with `restartPolicy: Always` lets the next
//! entry start while it runs, is restarted whatever the pod's policy, does not block the pod's
//! completion, and is stopped after the app containers, in reverse order.

mod pod_support;

use pod_support::*;

fn finished_at(s: &k8s_openapi::api::core::v1::ContainerStatus) -> jiff::Timestamp {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .and_then(|t| t.finished_at.clone())
        .unwrap_or_else(|| panic!("{} not terminated", s.name))
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_run_alongside_later_entries_and_stop_after_the_app_in_reverse_order() {
    let lab = Lab::new();
    let sidecar = |n: &str| {
        format!(
            r#"
  - name: side-{n}
    image: busybox
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    command: [sh, -c, "trap 'echo term-{n} >> /h/log; exit 0' TERM; echo start-{n} >> /h/log; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: h, mountPath: /h}}]"#
        )
    };
    let uid = lab.admit(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: sidecars}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  initContainers:{s1}
  - name: init-2
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "grep -q start-1 /h/log && echo init-2 >> /h/log"]
    volumeMounts: [{{name: h, mountPath: /h}}]{s2}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "grep -q start-2 /h/log && echo app >> /h/log && sleep 0.5"]
    volumeMounts: [{{name: h, mountPath: /h}}]
  volumes: [{{name: h, hostPath: {{path: HOST}}}}]
"#,
        s1 = sidecar("1"),
        s2 = sidecar("2")
    ));
    let status = lab.wait_phase(&uid, "Succeeded", secs(40)).await;

    // init-2 ran while side-1 ran; the app while both ran; then the sidecars were stopped,
    // the last one first.
    assert_eq!(
        lab.env.host_lines("log"),
        ["start-1", "init-2", "start-2", "app", "term-2", "term-1"]
    );
    let app = app_status(&status, "app");
    assert_eq!(state_of(app), "terminated:Completed:0");
    let s1 = init_status(&status, "side-1");
    let s2 = init_status(&status, "side-2");
    assert_eq!(s1.restart_count, 0, "a sidecar that runs is not restarted");
    assert_eq!(s2.restart_count, 0);
    assert!(finished_at(s2) >= finished_at(app));
    assert!(finished_at(s1) >= finished_at(s2));

    // While the app ran, both sidecars were started and ready; the pod Running.
    let running = lab
        .history(&uid)
        .into_iter()
        .find(|s| shows(s, "app", "running"))
        .expect("a status with the app running");
    assert_eq!(running.phase.as_deref(), Some("Running"));
    for n in ["side-1", "side-2"] {
        let s = init_status(&running, n);
        assert_eq!(state_of(s), "running");
        assert_eq!(s.started, Some(true));
        assert!(s.ready);
    }
    assert_eq!(condition(&running, "Initialized").status, "True");
    assert_eq!(condition(&running, "ContainersReady").status, "True");

    // Sidecars stopped with Killing events, side-2 before side-1.
    let events = lab.event_lines(&uid);
    let killing: Vec<&String> = events.iter().filter(|e| e.starts_with("Killing")).collect();
    assert_eq!(
        killing,
        [
            "Killing|spec.initContainers{side-2}|Stopping container side-2",
            "Killing|spec.initContainers{side-1}|Stopping container side-1"
        ]
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_is_restarted_even_under_never_and_does_not_block_completion() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sidecar-restarts}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: side
    image: busybox
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    command: [sh, -c, "echo run >> /h/side; [ $(wc -l < /h/side) -ge 3 ] && exec sleep 1000; exit 1"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "while [ $(wc -l < /h/side) -lt 3 ]; do sleep 0.1; done"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    let status = lab.wait_phase(&uid, "Succeeded", secs(40)).await;
    let side = init_status(&status, "side");
    assert_eq!(side.restart_count, 2);
    assert_eq!(lab.env.host_lines("side").len(), 3);
    let last = side
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(last.exit_code, 1);
    // The sidecar was stopped by the kubelet (SIGTERM ignored by pid 1 sleep → killed),
    // which does not fail the pod.
    assert!(
        state_of(side).starts_with("terminated:"),
        "{}",
        state_of(side)
    );
    assert_eq!(
        state_of(app_status(&status, "app")),
        "terminated:Completed:0"
    );
    lab.shutdown().await;
}
