//! `coracle run` as a user runs it: exit status and the failing container's reason, Ctrl-C
//! stopping pods gracefully and cleaning up, the legacy init-container annotations.

mod pod_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use pod_support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_failed_init_container_makes_coracle_run_exit_1_naming_it_and_its_exit_code() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: broken}
spec:
  restartPolicy: Never
  initContainers:
  - {name: setup, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo cannot set up; exit 7"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"]}
"#,
    );
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(30),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(
            r#"coracle: pod "broken" failed: init container "setup" Error (exit code 7)"#
        ),
        "{stderr}"
    );
    assert!(stdout.contains("broken: Init:Error"), "{stdout}");
    assert!(stdout.contains("[broken/setup] cannot set up"), "{stdout}");
    assert!(!stdout.contains("broken/app: Running"), "{stdout}");
    assert!(env.pod_dirs().is_empty(), "pod removed at exit");
    assert!(env.containers().is_empty());
}

#[test]
fn a_succeeding_pod_exits_0_and_back_off_knob_is_announced() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: fine}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: init-1, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo init says hi"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo app says hi"]}
"#,
    );
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(30),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("restart back-off is 1s..4s"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let pos = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no line {l:?} in\n{stdout}"))
    };
    assert!(pos("[fine/init-1] init says hi") < pos("[fine/app] app says hi"));
    assert!(pos("fine: Init:0/1") < pos("fine: Completed"));
}

#[test]
fn ctrl_c_stops_running_pods_gracefully_and_cleans_up() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: forever}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: init-1
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["true"]
  containers:
  - name: polite
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "trap 'echo got TERM > /h/polite; exit 0' TERM; touch /h/polite-up; while true; do sleep 0.1; done"]
    volumeMounts: [{name: h, mountPath: /h}]
  - name: stubborn
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "trap '' TERM; touch /h/stubborn-up; while true; do sleep 0.1; done"]
    volumeMounts: [{name: h, mountPath: /h}]
  - name: memory
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "exec sleep 1000"]
    volumeMounts: [{name: m, mountPath: /m}]
  volumes:
  - {name: h, hostPath: {path: HOST}}
  - {name: m, emptyDir: {medium: Memory}}
"#,
    );
    let child = env
        .run_command(&["--no-network", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + secs(30);
    while !(env.host.join("polite-up").exists() && env.host.join("stubborn-up").exists()) {
        assert!(Instant::now() < deadline, "containers did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!env.mounts().is_empty(), "the pod has mounts while it runs");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stopping = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = wait_output(child, secs(20));
    let took = stopping.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "stderr:\n{}",
        text(&out.stderr)
    );
    assert_eq!(env.host_lines("polite"), ["got TERM"]);
    // The stubborn container was killed after the 2 s grace period, not before.
    assert!(took >= secs(2), "{took:?}");
    assert!(took < secs(8), "{took:?}");
    assert!(env.containers().is_empty(), "no containers left");
    assert!(env.pod_dirs().is_empty(), "pod directory removed");
    assert_eq!(env.mounts(), Vec::<String>::new(), "no mounts left");
}

#[test]
fn legacy_annotation_init_containers_run_with_a_warning() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: legacy
  annotations:
    pod.beta.kubernetes.io/init-containers: '[{"name": "old-init", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "echo from the annotation"]}]'
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo app"]}
"#,
    );
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(30),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("Warning"), "{stderr}");
    assert!(
        stderr.contains("pod.beta.kubernetes.io/init-containers"),
        "{stderr}"
    );
    assert!(
        stdout.contains("[legacy/old-init] from the annotation"),
        "{stdout}"
    );
    assert!(stdout.contains("legacy: Init:0/1"), "{stdout}");
}

#[test]
fn legacy_annotation_closing_at_its_keys_indentation_runs() {
    // Kubernetes 1.6's docs wrote the annotation's JSON over several lines and closed the
    // quote at the key's indentation; kubectl reads that, so coracle must too.
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: init-demo
  annotations:
    pod.beta.kubernetes.io/init-containers: '[
        {
            "name": "install",
            "image": "busybox",
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo installed"]
        }
    ]'
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "echo app"]}
"#,
    );
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(30),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("[init-demo/install] installed"), "{stdout}");
    assert!(stdout.contains("[init-demo/app] app"), "{stdout}");
}
