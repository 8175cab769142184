//! Durability (issue 3 §10, reference §1.6): a `coracle run` killed between two init
//! containers comes back without re-running the one that succeeded and keeps the running
//! one's instance; a lost sandbox re-runs every init container, in order.

mod pod_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use pod_support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_killed_coracle_run_is_resumed_without_rerunning_finished_init_containers() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: durable}
spec:
  restartPolicy: Never
  initContainers:
  - name: init-a
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/a; echo a ran"]
    volumeMounts: [{name: h, mountPath: /h}]
  - name: init-b
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo run >> /h/b; sleep 3; echo b ran"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo done"]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    let path = file.to_str().unwrap();
    let mut first = env
        .run_command(&["--no-network", path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + secs(30);
    while env.host_lines("b").is_empty() {
        assert!(Instant::now() < deadline, "init-b did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let out = env.run(&["--no-network", "--logs", "--keep", path], secs(30));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("re-adopting"), "{stderr}");
    assert_eq!(env.host_lines("a").len(), 1, "init-a not re-run");
    assert_eq!(env.host_lines("b").len(), 1, "init-b's instance carried on");
    assert!(stdout.contains("[durable/app] done"), "{stdout}");
    assert!(stdout.contains("[durable/init-b] b ran"), "{stdout}");

    // Restart counts and logs survived.
    let pods = env.pod_dirs();
    assert_eq!(pods.len(), 1);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pods[0].join("state.json")).unwrap()).unwrap();
    for name in ["init-a", "init-b", "app"] {
        assert_eq!(state["containers"][name]["attempts"], 1, "{name}");
    }
    let log = std::fs::read_to_string(pods[0].join("logs/init-a/0.log")).unwrap();
    assert!(log.contains("a ran"), "{log}");
}

/// Kills `coracle run` with SIGKILL again and again at moments spread over the pod's start
/// (during sandbox set-up, in the middle of a container's start, between init containers):
/// every init container still runs exactly once, and the app once.
#[test]
fn a_coracle_run_killed_at_any_moment_runs_each_init_container_once() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: killed}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo run >> /h/init-1"], volumeMounts: [{name: h, mountPath: /h}]}
  - {name: init-2, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo run >> /h/init-2"], volumeMounts: [{name: h, mountPath: /h}]}
  - {name: init-3, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo run >> /h/init-3"], volumeMounts: [{name: h, mountPath: /h}]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo run >> /h/app"], volumeMounts: [{name: h, mountPath: /h}]}
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    let path = file.to_str().unwrap();
    for round in 0..20u64 {
        if !env.host_lines("app").is_empty() {
            break;
        }
        let log = std::fs::File::create(env.host.join(format!("round-{round}.log"))).unwrap();
        let mut run = env
            .run_command(&["--no-network", path])
            .env("CORACLE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        // Offsets of 30 to 900 ms in 71 ms strides (a container takes about 250 ms here):
        // the kills fall on every phase of a start.
        std::thread::sleep(Duration::from_millis(30 + (round * 71) % 870));
        run.kill().unwrap(); // SIGKILL
        run.wait().unwrap();
    }

    // Unless a run got to the app before its kill, one more run finishes the pod. (A run
    // killed after the app, before its clean-up, leaves a finished pod that the next run of
    // the manifest would replace and run anew: that is a new run, not a resumed one.)
    let app_ran = !env.host_lines("app").is_empty();
    if !app_ran {
        let out = env.run(&["--no-network", path], secs(30));
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let logs = || {
        (0..20)
            .map(|r| {
                format!(
                    "round {r}:\n{}",
                    env.host_lines(&format!("round-{r}.log")).join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for name in ["init-1", "init-2", "init-3", "app"] {
        assert_eq!(env.host_lines(name), ["run"], "{name} ran once; {}", logs());
    }
    // Nothing is left running (the app of a run killed just after it wrote its line may take
    // a moment to exit).
    let deadline = Instant::now() + secs(10);
    loop {
        let running = env
            .containers()
            .into_iter()
            .filter(|(_, status)| status.exit().is_none())
            .collect::<Vec<_>>();
        if running.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    if !app_ran {
        assert!(env.containers().is_empty(), "{:?}", env.containers());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sandbox_reruns_every_init_container_in_order() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sandbox-lost}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: init-1
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo init-1 >> /h/order"]
    volumeMounts: [{name: h, mountPath: /h}]
  - name: init-2
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo init-2 >> /h/order"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo app >> /h/order; trap 'exit 0' TERM; sleep 1000 & wait"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    lab.wait_phase(&uid, "Running", secs(30)).await;
    let state = lab.state_json(&uid);
    let dir = state["sandbox"]["dir"].as_str().unwrap().to_string();
    let umount = std::process::Command::new("umount")
        .arg(format!("{dir}/net"))
        .status()
        .unwrap();
    assert!(umount.success());

    let deadline = Instant::now() + secs(40);
    while lab.env.host_lines("order").len() < 6 {
        assert!(
            Instant::now() < deadline,
            "init containers not re-run: {:?}\n{}",
            lab.env.host_lines("order"),
            lab.event_lines(&uid).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lab.env.host_lines("order"),
        ["init-1", "init-2", "app", "init-1", "init-2", "app"]
    );
    let status = lab
        .wait_for(&uid, "app running again", secs(10), |s| {
            shows(s, "app", "running") && app_status(s, "app").restart_count == 1
        })
        .await;
    // The new instances continue the counts, as upstream's count from the log directory.
    assert_eq!(init_status(&status, "init-1").restart_count, 1);
    assert_eq!(init_status(&status, "init-2").restart_count, 1);
    let events = lab.event_lines(&uid);
    assert!(
        events.contains(
            &"SandboxChanged||Pod sandbox changed, it will be killed and re-created.".to_string()
        ),
        "{events:#?}"
    );
    let after: Vec<&String> = events
        .iter()
        .skip_while(|e| !e.starts_with("SandboxChanged"))
        .filter(|e| e.starts_with("Started"))
        .collect();
    assert_eq!(
        after,
        [
            "Started|spec.initContainers{init-1}|Started container init-1",
            "Started|spec.initContainers{init-2}|Started container init-2",
            "Started|spec.containers{app}|Started container app"
        ]
    );
    lab.shutdown().await;
}
