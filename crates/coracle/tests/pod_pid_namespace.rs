//! `shareProcessNamespace`: with it, every container of the pod is in one PID namespace whose
//! PID 1 is the sandbox's pause process, so containers see and signal each other's processes;
//! without it each container has a PID namespace of its own. The pause process goes with the
//! sandbox, and a pod whose pause process died gets a new sandbox, as upstream.

mod pod_support;

use std::path::PathBuf;
use std::time::Instant;

use coracle_runtime::state::ProcessId;
use pod_support::*;

/// A pod with an app container running `sleep 3600` and a second container that looks for
/// that process, shows what it found in `/h/found`, then signals it.
fn pod(name: &str, share: bool) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: {share}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
  - name: check
    image: busybox
    imagePullPolicy: IfNotPresent
    command:
    - sh
    - -c
    - |
      for i in $(seq 30); do
        p=$(ps -o pid,args | awk '$2 == "sleep" && $3 == "3600" {{ print $1 }}')
        [ -n "$p" ] && break; sleep 0.1
      done
      [ -n "$p" ] || {{ echo "no sleep process" > /h/found; exit 1; }}
      echo "sleep=$p self=$$ pid1=$(cat /proc/1/comm)" > /h/found
      [ "$p" != 1 ] && kill -TERM "$p"
    volumeMounts: [{{name: h, mountPath: /h}}]
  volumes: [{{name: h, hostPath: {{path: HOST}}}}]
"#
    )
}

/// The pause process recorded in the pod's sandbox directory, if it has one.
fn pause_of(lab: &Lab, uid: &str) -> Option<ProcessId> {
    let state = lab.state_json(uid);
    let dir = PathBuf::from(state["sandbox"]["dir"].as_str()?);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("pause.json")).ok()?).ok()?;
    serde_json::from_value(record["pause"].clone()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_sharing_its_process_namespace_see_and_signal_each_other() {
    let lab = Lab::new();
    let uid = lab.admit(&pod("shared", true));
    lab.wait_for(&uid, "check terminated", secs(30), |s| {
        shows(s, "check", "terminated")
    })
    .await;

    // The checker found the app's sleep, which is not PID 1: the pause process is.
    let found = lab.env.host_lines("found");
    assert_eq!(found.len(), 1, "{found:?}");
    let words: Vec<&str> = found[0].split(' ').collect();
    assert!(words[0].starts_with("sleep="), "{found:?}");
    assert_ne!(words[0], "sleep=1", "{found:?}");
    assert_ne!(words[1], "self=1", "{found:?}");
    assert_eq!(words[2], "pid1=pause", "{found:?}");

    // Its SIGTERM ended the app: a process that is not PID 1 dies of an unhandled TERM.
    let status = lab.wait_phase(&uid, "Failed", secs(10)).await;
    assert_eq!(
        state_of(app_status(&status, "check")),
        "terminated:Completed:0"
    );
    assert_eq!(state_of(app_status(&status, "app")), "terminated:Error:143");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_without_a_shared_process_namespace_do_not_see_each_other() {
    let lab = Lab::new();
    let uid = lab.admit(&pod("private", false));
    lab.wait_for(&uid, "check terminated", secs(30), |s| {
        shows(s, "check", "terminated")
    })
    .await;

    assert_eq!(lab.env.host_lines("found"), ["no sleep process"]);
    let status = lab.status(&uid);
    assert_eq!(state_of(app_status(&status, "check")), "terminated:Error:1");
    assert!(shows(&status, "app", "running"));
    assert!(
        pause_of(&lab, &uid).is_none(),
        "no pause process without sharing"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_container_of_a_shared_process_namespace_sees_the_pod_processes() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: exec}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
  - {name: other, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3601"]}
"#,
    );
    lab.wait_phase(&uid, "Running", secs(30)).await;

    let state = lab.state_json(&uid);
    let id = state["containers"]["app"]["current"]["id"]
        .as_str()
        .unwrap();
    let runtime = coracle_runtime::ContainerRuntime::new(&lab.env.data, &lab.env.run, BIN.into());
    let request = coracle_runtime::ExecRequest {
        command: vec![
            "sh".into(),
            "-c".into(),
            "cat /proc/1/comm; ps -o args | grep -c '^sleep 360[01]$'".into(),
        ],
        tty: false,
        stdin: false,
        size: None,
    };
    let session = runtime.exec(id, &request).await.expect("exec");
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut { session.stdout }, &mut stdout)
        .await
        .unwrap();
    assert_eq!(session.exit.wait().await.unwrap(), 0);
    assert_eq!(stdout, "pause\n2\n", "PID 1 and both containers' processes");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_kills_its_pause_process() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gone}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
"#,
    );
    lab.wait_phase(&uid, "Running", secs(30)).await;
    let pause = pause_of(&lab, &uid).expect("a pause process");
    assert!(pause.is_alive());
    // Detached, like a shim: not our child, in a session of its own, so it outlives coracle.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pause.pid)).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_ne!(fields[1], std::process::id().to_string(), "parent");
    assert_eq!(fields[3], pause.pid.to_string(), "session");
    let sandbox_dir = PathBuf::from(lab.state_json(&uid)["sandbox"]["dir"].as_str().unwrap());

    lab.delete(&uid, Some(0)).await;
    // It has exited; its parent, init, reaps it soon after.
    let deadline = Instant::now() + secs(5);
    while pause.is_alive() {
        assert!(
            Instant::now() < deadline,
            "the pause process is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!sandbox_dir.exists(), "the sandbox is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_pause_process_died_gets_a_new_sandbox_and_runs_its_init_containers_again() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: lost}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: init, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo init >> /h/log"], volumeMounts: [{name: h, mountPath: /h}]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
  volumes: [{name: h, hostPath: {path: HOST}}]
"#,
    );
    lab.wait_phase(&uid, "Running", secs(30)).await;
    let first = pause_of(&lab, &uid).expect("a pause process");

    // SIGKILL from outside, as if the OOM killer took it: the namespace dies with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + secs(30);
    loop {
        let again = lab.env.host_lines("log").len() == 2;
        let running = shows(&lab.status(&uid), "app", "running");
        let second = pause_of(&lab, &uid).filter(|p| *p != first && p.is_alive());
        if again && running && second.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new sandbox: {:?}",
            lab.event_lines(&uid)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(lab
        .event_lines(&uid)
        .iter()
        .any(|e| e.starts_with("SandboxChanged|")));
    assert_eq!(lab.env.host_lines("log"), ["init", "init"]);
    lab.wait_for(&uid, "app running again", secs(10), |s| {
        shows(s, "app", "running") && app_status(s, "app").restart_count == 1
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_a_container_leaves_behind_in_a_shared_process_namespace_are_killed() {
    let lab = Lab::new();
    let uid = lab.admit(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: leaver}
spec:
  shareProcessNamespace: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: leave, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "sleep 3602 & exit 0"]}
  containers:
  - name: look
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "ps -o args | grep -q '^sleep 360[2]$' && exit 1; exit 0"]
"#,
    );
    let status = lab.wait_phase(&uid, "Succeeded", secs(30)).await;
    assert_eq!(
        state_of(app_status(&status, "look")),
        "terminated:Completed:0",
        "the init container's background sleep was killed with it"
    );
    lab.shutdown().await;
}
