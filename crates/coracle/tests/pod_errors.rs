//! Failures that are not container exits keep the pod `Pending` even under `Never` (image and
//! configuration errors, reference §1.3); failures of the runtime to start a process are
//! `StartError` exits; `activeDeadlineSeconds` and deletion stop a pod that initialises;
//! termination messages (reference §3.5).

mod pod_support;

use pod_support::*;

fn single_init(name: &str, init: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  initContainers:
  - {init}
  containers:
  - {{name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_image_with_pull_policy_never_keeps_the_pod_pending() {
    let lab = Lab::new();
    let uid = lab.admit(&single_init(
        "never-pull",
        r#"{name: init-1, image: "coracle.test/absent:v1", imagePullPolicy: Never, command: ["true"]}"#,
    ));
    let status = lab
        .wait_for(&uid, "ErrImageNeverPull", secs(20), |s| {
            s.init_container_statuses.is_some() && shows(s, "init-1", "waiting:ErrImageNeverPull")
        })
        .await;
    let w = init_status(&status, "init-1")
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some(
            r#"Container image "coracle.test/absent:v1" is not present with pull policy of Never"#
        )
    );
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    tokio::time::sleep(secs(2)).await;
    let later = lab.status(&uid);
    assert_eq!(
        later.phase.as_deref(),
        Some("Pending"),
        "still Pending under Never"
    );
    assert_eq!(init_status(&later, "init-1").restart_count, 0);
    let events = lab.event_lines(&uid);
    let fp = "spec.initContainers{init-1}";
    assert!(events.contains(&format!(
        r#"ErrImageNeverPull|{fp}|Container image "coracle.test/absent:v1" is not present with pull policy of Never"#
    )), "{events:#?}");
    assert!(events.contains(&format!("Failed|{fp}|Error: ErrImageNeverPull")));
    assert!(!events.iter().any(|e| e.starts_with("Created")));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pull_shows_err_image_pull_then_image_pull_back_off_and_stays_pending() {
    let lab = Lab::new();
    let image = "127.0.0.1:1/nosuch:v1";
    let uid = lab.admit(&single_init(
        "bad-pull",
        &format!(r#"{{name: init-1, image: "{image}", imagePullPolicy: IfNotPresent, command: ["true"]}}"#),
    ));
    lab.wait_for(&uid, "ErrImagePull", secs(30), |s| {
        s.init_container_statuses.is_some() && shows(s, "init-1", "waiting:ErrImagePull")
    })
    .await;
    let status = lab
        .wait_for(&uid, "ImagePullBackOff", secs(30), |s| {
            s.init_container_statuses.is_some() && shows(s, "init-1", "waiting:ImagePullBackOff")
        })
        .await;
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let w = init_status(&status, "init-1")
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert!(
        w.message
            .unwrap()
            .starts_with(&format!("Back-off pulling image \"{image}\"")),
        "upstream's ImagePullBackOff message"
    );
    let events = lab.event_lines(&uid);
    let fp = "spec.initContainers{init-1}";
    let has = |prefix: String| events.iter().any(|e| e.starts_with(&prefix));
    assert!(
        has(format!("Pulling|{fp}|Pulling image \"{image}\"")),
        "{events:#?}"
    );
    assert!(
        has(format!("Failed|{fp}|Failed to pull image \"{image}\": ")),
        "{events:#?}"
    );
    assert!(has(format!("Failed|{fp}|Error: ErrImagePull")));
    assert!(has(format!(
        "BackOff|{fp}|Back-off pulling image \"{image}\""
    )));
    assert!(has(format!("Failed|{fp}|Error: ImagePullBackOff")));
    assert!(lab
        .history(&uid)
        .iter()
        .all(|s| s.phase.as_deref() == Some("Pending")));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_holds_the_container_until_it_appears() {
    let lab = Lab::new();
    let uid = lab.admit(&single_init(
        "config-wait",
        r#"{name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo $GREETING > /h/greeting"], env: [{name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}], volumeMounts: [{name: h, mountPath: /h}]}
  volumes: [{name: h, hostPath: {path: HOST}}]"#,
    ));
    let status = lab
        .wait_for(&uid, "CreateContainerConfigError", secs(20), |s| {
            s.init_container_statuses.is_some()
                && shows(s, "init-1", "waiting:CreateContainerConfigError")
        })
        .await;
    let w = init_status(&status, "init-1")
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(
        w.message.as_deref(),
        Some(r#"configmap "settings" not found"#)
    );
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let events = lab.event_lines(&uid);
    assert!(
        events.contains(
            &r#"Failed|spec.initContainers{init-1}|Error: configmap "settings" not found"#
                .to_string()
        ),
        "{events:#?}"
    );

    // The ConfigMap appears: the pod carries on by itself.
    lab.objects.add_config_map(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"greeting": "hello"}
        }))
        .unwrap(),
    );
    let status = lab.wait_phase(&uid, "Succeeded", secs(20)).await;
    assert_eq!(lab.env.host_lines("greeting"), ["hello"]);
    assert_eq!(init_status(&status, "init-1").restart_count, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_executable_is_a_start_error_that_fails_a_never_pod() {
    let lab = Lab::new();
    let uid = lab.admit(&single_init(
        "start-error",
        r#"{name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: ["/no/such/binary"]}"#,
    ));
    let status = lab.wait_phase(&uid, "Failed", secs(20)).await;
    let t = init_status(&status, "init-1")
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(t.reason.as_deref(), Some("StartError"));
    assert_eq!(t.exit_code, 128);
    let message = t.message.expect("the runtime's message");
    assert!(message.contains("/no/such/binary"), "{message}");
    assert_eq!(
        state_of(app_status(&status, "app")),
        "waiting:PodInitializing"
    );
    let events = lab.event_lines(&uid);
    assert!(
        events.contains(&format!(
            "Failed|spec.initContainers{{init-1}}|Error: {message}"
        )),
        "{events:#?}"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_counts_the_time_spent_initialising() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "trap 'exit 0' TERM; sleep 30 & wait"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
"#,
    );
    let started = std::time::Instant::now();
    let status = lab.wait_phase(&uid, "Failed", secs(15)).await;
    assert!(started.elapsed() < secs(8), "{:?}", started.elapsed());
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        status.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    assert!(
        !shows(&status, "init-1", "running"),
        "init container stopped"
    );
    assert_eq!(
        state_of(app_status(&status, "app")),
        "waiting:PodInitializing"
    );
    assert!(
        lab.env.containers().iter().all(|(_, s)| s.exit().is_some()),
        "nothing runs"
    );
    let events = lab.event_lines(&uid);
    assert!(
        events.contains(
            &"DeadlineExceeded||Pod was active on the node longer than the specified deadline"
                .to_string()
        ),
        "{events:#?}"
    );
    assert!(events
        .contains(&"Killing|spec.initContainers{init-1}|Stopping container init-1".to_string()));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_while_it_initialises_stops_it_promptly() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: delete-init}
spec:
  initContainers:
  - {name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "trap 'exit 0' TERM; sleep 100 & wait"]}
  - {name: init-2, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
"#,
    );
    lab.wait_for(&uid, "init-1 running", secs(20), |s| {
        s.init_container_statuses.is_some() && shows(s, "init-1", "running")
    })
    .await;
    let started = std::time::Instant::now();
    tokio::time::timeout(secs(10), lab.delete(&uid, None))
        .await
        .expect("deletion within 10s");
    assert!(started.elapsed() < secs(5), "{:?}", started.elapsed());
    let events = lab.event_lines(&uid);
    assert!(
        events
            .contains(&"Killing|spec.initContainers{init-1}|Stopping container init-1".to_string()),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.contains("{init-2}") || e.contains("{app}")),
        "nothing else starts: {events:#?}"
    );
    assert!(lab.env.containers().is_empty());
    assert!(lab.env.pod_dirs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_messages_come_from_the_file_or_the_log_tail_on_error() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: messages}
spec:
  restartPolicy: Never
  initContainers:
  - {name: default-path, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo -n all done > /dev/termination-log"]}
  - {name: own-path, image: busybox, imagePullPolicy: IfNotPresent, terminationMessagePath: /tmp/why, command: [sh, -c, "echo -n custom > /tmp/why"]}
  containers:
  - name: logs
    image: busybox
    imagePullPolicy: IfNotPresent
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, "echo first; echo something broke; exit 2"]
"#,
    );
    let status = lab.wait_phase(&uid, "Failed", secs(20)).await;
    let msg = |s: &k8s_openapi::api::core::v1::ContainerStatus| {
        s.state.clone().unwrap().terminated.unwrap().message
    };
    assert_eq!(
        msg(init_status(&status, "default-path")).as_deref(),
        Some("all done")
    );
    assert_eq!(
        msg(init_status(&status, "own-path")).as_deref(),
        Some("custom")
    );
    let logs = app_status(&status, "logs");
    assert_eq!(state_of(logs), "terminated:Error:2");
    assert_eq!(
        msg(logs).as_deref().map(str::trim_end),
        Some("first\nsomething broke")
    );
    lab.shutdown().await;
}
