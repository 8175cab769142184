//! Init containers as the kubelet runs them (reference §1, §3): strictly in order, app
//! containers only after all succeeded, only the failed one retried with back-off, `Never`
//! failing the pod, app restarts never re-running init containers; statuses, conditions and
//! events field for field. Real containers through the kubelet library.

mod pod_support;

use pod_support::*;

const ORDERED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ordered}
spec:
  initContainers:
  - name: init-1
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo start-1 >> /h/log; sleep 0.3; echo end-1 >> /h/log"]
    volumeMounts: [{name: h, mountPath: /h}]
  - name: init-2
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo start-2 >> /h/log; sleep 0.5; echo end-2 >> /h/log"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo app >> /h/log; exec sleep 1000"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_one_at_a_time_in_order_before_the_app() {
    let lab = Lab::new();
    let uid = lab.admit(ORDERED);
    let status = lab
        .wait_for(&uid, "app running", secs(30), |s| {
            s.phase.as_deref() == Some("Running")
        })
        .await;

    // Each init container started after the previous one exited; the app after the last.
    assert_eq!(
        lab.env.host_lines("log"),
        ["start-1", "end-1", "start-2", "end-2", "app"]
    );

    // Init statuses in spec order, terminated/Completed, ready, not started.
    let names: Vec<&str> = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["init-1", "init-2"]);
    for name in ["init-1", "init-2"] {
        let s = init_status(&status, name);
        assert_eq!(state_of(s), "terminated:Completed:0", "{name}");
        assert!(s.ready, "{name} ready");
        assert_eq!(s.started, Some(false), "{name} started");
        assert_eq!(s.restart_count, 0);
        assert_eq!(s.image, "docker.io/library/busybox:latest");
        assert!(!s.image_id.is_empty(), "{name} imageID");
        assert!(s.container_id.as_deref().unwrap().contains("://"));
    }
    let app = app_status(&status, "app");
    assert_eq!(state_of(app), "running");
    assert!(app.ready);
    assert_eq!(app.started, Some(true));
    // The app started after the last init container finished.
    let init2_end = init_status(&status, "init-2")
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap()
        .finished_at
        .clone()
        .unwrap();
    let app_start = app
        .state
        .as_ref()
        .unwrap()
        .running
        .as_ref()
        .unwrap()
        .started_at
        .clone();
    assert!(app_start.unwrap().0 >= init2_end.0);

    // Conditions in upstream's order, all True.
    let conds: Vec<(String, String)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    let expected = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    assert_eq!(
        conds,
        expected
            .map(|t| (t.to_string(), "True".to_string()))
            .to_vec()
    );

    // While init-2 ran: Init:1/2 material — init-1 done, app waiting PodInitializing, and
    // Initialized False naming the incomplete one.
    let during = lab
        .history(&uid)
        .into_iter()
        .find(|s| shows(s, "init-2", "running"))
        .expect("a status with init-2 running");
    assert_eq!(during.phase.as_deref(), Some("Pending"));
    assert_eq!(
        state_of(init_status(&during, "init-1")),
        "terminated:Completed:0"
    );
    assert_eq!(
        state_of(app_status(&during, "app")),
        "waiting:PodInitializing"
    );
    assert_eq!(init_status(&during, "init-2").started, Some(true));
    assert!(!init_status(&during, "init-2").ready);
    let init = condition(&during, "Initialized");
    assert_eq!(init.status, "False");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init-2]")
    );
    let ready = condition(&during, "ContainersReady");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app]")
    );

    // Events: Scheduled, then Pulled/Created/Started per container in order.
    let mut expected =
        vec!["Scheduled||Successfully assigned default/ordered to testnode".to_string()];
    for (path, name) in [
        ("spec.initContainers", "init-1"),
        ("spec.initContainers", "init-2"),
        ("spec.containers", "app"),
    ] {
        let fp = format!("{path}{{{name}}}");
        expected.push(format!(
            "Pulled|{fp}|Container image \"busybox\" already present on machine"
        ));
        expected.push(format!("Created|{fp}|Created container: {name}"));
        expected.push(format!("Started|{fp}|Started container {name}"));
    }
    assert_eq!(lab.event_lines(&uid), expected);
    let scheduled = &lab.events(&uid)[0];
    assert_eq!(scheduled.source, "default-scheduler");
    assert_eq!(lab.events(&uid)[1].source, "kubelet");

    lab.shutdown().await;
}

fn failing_second_init(policy: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: retry-{lower}}}
spec:
  restartPolicy: {policy}
  initContainers:
  - name: init-1
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/init-1"]
    volumeMounts: [{{name: h, mountPath: /h}}]
  - name: init-2
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/init-2; [ $(wc -l < /h/init-2) -ge 3 ]"]
    volumeMounts: [{{name: h, mountPath: /h}}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/app; exec sleep 1000"]
    volumeMounts: [{{name: h, mountPath: /h}}]
  volumes: [{{name: h, hostPath: {{path: HOST}}}}]
"#,
        lower = policy.to_lowercase()
    )
}

async fn failed_init_container_is_retried_alone(policy: &str) {
    let lab = Lab::new();
    let uid = lab.admit(&failing_second_init(policy));
    let status = lab.wait_phase(&uid, "Running", secs(40)).await;

    assert_eq!(lab.env.host_lines("init-1").len(), 1, "init-1 ran once");
    assert_eq!(
        lab.env.host_lines("init-2").len(),
        3,
        "init-2 ran three times"
    );
    assert_eq!(lab.env.host_lines("app").len(), 1);

    let i1 = init_status(&status, "init-1");
    assert_eq!(i1.restart_count, 0);
    let i2 = init_status(&status, "init-2");
    assert_eq!(i2.restart_count, 2);
    assert_eq!(state_of(i2), "terminated:Completed:0");
    let last = i2.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

    // On the way: Init:Error material (terminated exit 1, pod Pending), then
    // CrashLoopBackOff with upstream's message.
    let history = lab.history(&uid);
    assert!(history.iter().all(|s| s.phase.as_deref() != Some("Failed")));
    let pod = format!("retry-{}_default({uid})", policy.to_lowercase());
    let crash = history
        .iter()
        .filter_map(|s| {
            let w = init_status(s, "init-2").state.clone()?.waiting?;
            (w.reason.as_deref() == Some("CrashLoopBackOff")).then_some((s.clone(), w))
        })
        .next()
        .expect("init-2 seen in CrashLoopBackOff");
    assert_eq!(
        crash.1.message.as_deref(),
        Some(format!("back-off 1s restarting failed container=init-2 pod={pod}").as_str())
    );
    assert_eq!(crash.0.phase.as_deref(), Some("Pending"));
    assert_eq!(
        state_of(app_status(&crash.0, "app")),
        "waiting:PodInitializing"
    );
    let crash_last = init_status(&crash.0, "init-2").last_state.clone().unwrap();
    assert_eq!(crash_last.terminated.unwrap().exit_code, 1);

    let events = lab.event_lines(&uid);
    let backoff = format!(
        "BackOff|spec.initContainers{{init-2}}|Back-off restarting failed container init-2 in pod {pod}"
    );
    assert!(events.contains(&backoff), "{events:#?}");
    let started_1 = events
        .iter()
        .filter(|e| e.starts_with("Started|spec.initContainers{init-1}"))
        .count();
    let started_2 = events
        .iter()
        .filter(|e| e.starts_with("Started|spec.initContainers{init-2}"))
        .count();
    assert_eq!((started_1, started_2), (1, 3));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_init_container_is_retried_alone_under_on_failure() {
    failed_init_container_is_retried_alone("OnFailure").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_init_container_is_retried_alone_under_always() {
    failed_init_container_is_retried_alone("Always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_init_container_fails_a_never_pod_and_the_app_never_starts() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: never-fails}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
  - {name: init-2, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "exit 3"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
"#,
    );
    let status = lab.wait_phase(&uid, "Failed", secs(30)).await;
    tokio::time::sleep(secs(1)).await;
    let status_later = lab.status(&uid);
    assert_eq!(
        status_later.phase.as_deref(),
        Some("Failed"),
        "Failed is sticky"
    );

    let i2 = init_status(&status, "init-2");
    assert_eq!(state_of(i2), "terminated:Error:3");
    assert_eq!(i2.restart_count, 0);
    assert!(!i2.ready);
    assert_eq!(
        state_of(app_status(&status, "app")),
        "waiting:PodInitializing"
    );
    let init = condition(&status, "Initialized");
    assert_eq!(init.status, "False");
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init-2]")
    );
    let ready = condition(&status, "ContainersReady");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("PodFailed"))
    );
    assert_eq!(
        condition(&status, "Ready").reason.as_deref(),
        Some("PodFailed")
    );

    let events = lab.event_lines(&uid);
    assert!(
        !events.iter().any(|e| e.contains("spec.containers{app}")),
        "the app is never touched: {events:#?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("Started|spec.initContainers{init-2}"))
            .count(),
        1
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_container_restarts_never_rerun_init_containers() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: app-restarts}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: init-1
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/init-1"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/app; [ $(wc -l < /h/app) -ge 3 ]"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    let status = lab.wait_phase(&uid, "Succeeded", secs(40)).await;
    assert_eq!(lab.env.host_lines("init-1").len(), 1, "init-1 ran once");
    assert_eq!(lab.env.host_lines("app").len(), 3);
    let i1 = init_status(&status, "init-1");
    assert_eq!(i1.restart_count, 0);
    assert_eq!(state_of(i1), "terminated:Completed:0");
    let app = app_status(&status, "app");
    assert_eq!(app.restart_count, 2);
    assert_eq!(state_of(app), "terminated:Completed:0");
    // While the app crash-looped the pod stayed initialized and Running.
    for s in lab.history(&uid) {
        if shows(&s, "app", "waiting:CrashLoopBackOff") {
            assert_eq!(s.phase.as_deref(), Some("Running"));
            assert_eq!(condition(&s, "Initialized").status, "True");
        }
    }
    let init = condition(&status, "Initialized");
    assert_eq!(
        (init.status.as_str(), init.reason.as_deref()),
        ("True", Some("PodCompleted"))
    );
    let cr = condition(&status, "ContainersReady");
    assert_eq!(cr.reason.as_deref(), Some("PodCompleted"));
    lab.shutdown().await;
}
