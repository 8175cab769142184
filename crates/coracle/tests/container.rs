//! End-to-end tests of the container runtime: real containers from the test images, run as
//! root through `coracle_runtime` (one runtime per test in a temp data dir) and through the
//! `coracle ctr` command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use coracle_image::ImageStore;
use coracle_runtime::k8s_openapi::api::core::v1::ResourceRequirements;
use coracle_runtime::k8s_openapi::api::core::v1::{Capabilities, Container, SecurityContext};
use coracle_runtime::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use coracle_runtime::{
    cgroups, logs, ContainerConfig, ContainerRuntime, ContainerStatus, ExitReason, ExitStatus,
    Mount, Propagation, RuntimeError, SandboxNamespaces, Stream,
};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_coracle");

/// The test image archives, built by the repo's script when missing.
fn test_images() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("CORACLE_TEST_IMAGES")
        .map_or_else(|| repo.join("target/test-images"), PathBuf::from);
    if !dir.join("entrypoint.docker.tar").exists() {
        let status = Command::new("python3")
            .arg(repo.join("scripts/make-test-images.py"))
            .arg(&dir)
            .status()
            .expect("run make-test-images.py");
        assert!(status.success(), "make-test-images.py failed");
    }
    dir
}

/// A runtime in a fresh temp dir with the busybox and entrypoint images imported.
struct Harness {
    tmp: tempfile::TempDir,
    rt: ContainerRuntime,
    store: ImageStore,
    cgroup_parent: String,
}

impl Harness {
    fn new() -> Harness {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = ImageStore::open(&tmp.path().join("data")).expect("image store");
        for name in ["busybox", "entrypoint"] {
            store
                .import(&test_images().join(format!("{name}.docker.tar")))
                .expect("import");
        }
        let rt = ContainerRuntime::new(
            &tmp.path().join("data"),
            &tmp.path().join("run"),
            PathBuf::from(BIN),
        );
        let unique = tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_lowercase()
            .replace('.', "");
        Harness {
            cgroup_parent: format!("/coracle-test/{unique}"),
            tmp,
            rt,
            store,
        }
    }

    fn config(&self, id: &str, image: &str, container: Container) -> ContainerConfig {
        let image = self
            .store
            .get(image)
            .expect("store")
            .expect("image imported");
        ContainerConfig {
            id: id.to_string(),
            container,
            env: Vec::new(),
            image_config: image.config,
            layers: image.layers,
            mounts: Vec::new(),
            sandbox: None,
            pod_security: None,
            hostname: Some(id.to_string()),
            cgroup_parent: self.cgroup_parent.clone(),
            pids_limit: None,
            log_path: self.tmp.path().join("logs").join(format!("{id}.log")),
        }
    }

    /// Starts the container, waits for it, returns its exit and its stdout lines.
    async fn run(&self, config: ContainerConfig) -> (ExitStatus, Vec<String>) {
        let log = config.log_path.clone();
        let id = config.id.clone();
        self.rt
            .start(config)
            .await
            .unwrap_or_else(|e| panic!("start {id}: {e}"));
        let status = tokio::time::timeout(Duration::from_secs(30), self.rt.wait(&id))
            .await
            .expect("exits in time");
        let exit = status.unwrap().exit().cloned().expect("exited");
        self.rt.remove(&id).expect("remove");
        (exit, read_stream(&log, Stream::Stdout))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for (id, _) in self.rt.list().unwrap_or_default() {
            let _ = self.rt.kill(&id, Signal::SIGKILL);
            for _ in 0..100 {
                if self.rt.remove(&id).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = cgroups::remove_cgroup(&self.cgroup_parent);
        // Shared parents: removed by whichever test finishes last (busy ones stay).
        let _ = cgroups::remove_cgroup("/coracle-test");
        let _ = cgroups::remove_cgroup("/coracle/ctr");
        let _ = cgroups::remove_cgroup("/coracle");
    }
}

/// The text of one stream's records, partial records joined.
fn read_stream(log: &Path, stream: Stream) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = Vec::new();
    for rec in logs::read_log(log)
        .expect("log exists")
        .filter(|r| r.stream == stream)
    {
        current.extend_from_slice(&rec.text);
        if !rec.partial {
            lines.push(String::from_utf8_lossy(&current).to_string());
            current.clear();
        }
    }
    lines
}

fn sh(script: &str) -> Container {
    Container {
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

fn strings(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn command_and_args_follow_kubernetes_semantics_over_entrypoint_and_cmd() {
    let h = Harness::new();
    let image = "coracle.test/entrypoint:v1";
    let cases = [
        (None, None, "entrypoint default-arg"),
        (None, strings(&["a", "b"]), "entrypoint a b"),
        (strings(&["echo", "cmd"]), None, "cmd"),
        (strings(&["echo", "cmd"]), strings(&["x"]), "cmd x"),
    ];
    for (i, (command, args, expected)) in cases.into_iter().enumerate() {
        let container = Container {
            command,
            args,
            ..Default::default()
        };
        let (exit, out) = h.run(h.config(&format!("c{i}"), image, container)).await;
        assert_eq!(exit.exit_code, 0);
        assert_eq!(out, vec![expected.to_string()], "case {i}");
    }
}

#[tokio::test]
async fn env_and_arguments_expand_var_references() {
    let h = Harness::new();
    let mut config = h.config(
        "expand",
        "busybox",
        Container {
            command: strings(&["sh", "-c", "echo \"$GREETING|$1|$2|$IMAGE_PATH_SET\"", "--"]),
            args: strings(&["$(NAME)", "$$(NAME)"]),
            ..Default::default()
        },
    );
    config.env = vec![
        ("NAME".into(), "world".into()),
        ("GREETING".into(), "hello $(NAME) $(MISSING)".into()),
        ("IMAGE_PATH_SET".into(), "$(PATH)".into()),
    ];
    let (exit, out) = h.run(config).await;
    assert_eq!(exit.exit_code, 0);
    // PATH comes from the image, which $(VAR) expansion does not see.
    assert_eq!(
        out,
        vec!["hello world $(MISSING)|world|$(NAME)|$(PATH)".to_string()]
    );
}

#[tokio::test]
async fn image_user_and_workdir_apply_and_run_as_user_overrides() {
    let h = Harness::new();
    let image = "coracle.test/entrypoint:v1";
    let script = strings(&["sh", "-c", "id -u; id -g; pwd; echo $HOME"]);
    let container = Container {
        command: script.clone(),
        ..Default::default()
    };
    let (_, out) = h.run(h.config("user", image, container)).await;
    assert_eq!(out, vec!["1000", "1000", "/home/user", "/home/user"]);

    let container = Container {
        command: script,
        working_dir: Some("/tmp".into()),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(2000),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (_, out) = h.run(h.config("override", image, container)).await;
    assert_eq!(out, vec!["0", "2000", "/tmp", "/root"]);
}

#[tokio::test]
async fn containers_in_one_sandbox_share_localhost_and_hostname() {
    let h = Harness::new();
    let sandbox_dir = h.tmp.path().join("sandbox");
    let ns: SandboxNamespaces =
        coracle_runtime::create_sandbox(&sandbox_dir, "pod-host", false).expect("sandbox");
    let www = h.tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "from the server\n").unwrap();

    let mut server = h.config(
        "server",
        "busybox",
        sh("exec httpd -f -p 127.0.0.1:8080 -h /www"),
    );
    server.sandbox = Some(ns.clone());
    server.mounts = vec![bind(&www, "/www", true)];
    h.rt.start(server).await.expect("server starts");

    let script = "hostname; cat /sys/class/net/lo/operstate; \
                  for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/index.html && exit 0; sleep 0.1; done; exit 1";
    let mut client = h.config("client", "busybox", sh(script));
    client.sandbox = Some(ns);
    let (exit, out) = h.run(client).await;
    assert_eq!(exit.exit_code, 0, "{out:?}");
    assert_eq!(out, vec!["pod-host", "unknown", "from the server"]);

    let stopped = h.rt.stop("server", Duration::from_secs(5)).await.unwrap();
    assert!(stopped.exit().is_some());
    h.rt.remove("server").unwrap();
    coracle_runtime::remove_sandbox(&sandbox_dir).unwrap();
    coracle_runtime::remove_sandbox(&sandbox_dir).expect("removing twice is fine");
    assert!(!sandbox_dir.exists());
}

fn bind(host: &Path, container: &str, read_only: bool) -> Mount {
    Mount {
        host_path: host.to_path_buf(),
        container_path: container.into(),
        read_only,
        propagation: Propagation::None,
    }
}

#[tokio::test]
async fn a_bind_mounted_directory_is_shared_between_containers() {
    let h = Harness::new();
    let shared = h.tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();

    let mut writer = h.config("writer", "busybox", sh("echo written-by-one > /data/file"));
    writer.mounts = vec![bind(&shared, "/data", false)];
    assert_eq!(h.run(writer).await.0.exit_code, 0);

    let mut reader = h.config("reader", "busybox", sh("cat /data/file; touch /data/nope"));
    reader.mounts = vec![bind(&shared, "/data", true)];
    let (exit, out) = h.run(reader).await;
    assert_eq!(out, vec!["written-by-one"]);
    assert_ne!(exit.exit_code, 0, "a read-only mount refuses writes");
    assert_eq!(
        std::fs::read_to_string(shared.join("file")).unwrap(),
        "written-by-one\n"
    );
}

#[tokio::test]
async fn an_empty_termination_log_file_can_be_mounted_and_written() {
    let h = Harness::new();
    let file = h.tmp.path().join("termination-log");
    std::fs::write(&file, "").unwrap();
    let mut config = h.config(
        "term",
        "busybox",
        sh("echo last words > /dev/termination-log"),
    );
    config.mounts = vec![bind(&file, "/dev/termination-log", false)];
    assert_eq!(h.run(config).await.0.exit_code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "last words\n");
}

#[tokio::test]
async fn exceeding_the_memory_limit_is_reported_as_oom_killed() {
    let h = Harness::new();
    let container = Container {
        // dd touches its whole 64 MiB buffer; the limit is 16 MiB.
        command: strings(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]),
        resources: Some(limits(&[("memory", "16Mi")])),
        ..Default::default()
    };
    let (exit, _) = h.run(h.config("oom", "busybox", container)).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.reason, ExitReason::OomKilled);
    assert_eq!(exit.exit_code, 137);
}

fn limits(list: &[(&str, &str)]) -> ResourceRequirements {
    ResourceRequirements {
        limits: Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn logs_are_cri_records_for_both_streams_with_long_lines_split() {
    let h = Harness::new();
    let script = "echo out-1; echo err-1 >&2; printf 'no-newline'; echo; \
                  head -c 40000 /dev/zero | tr '\\0' x; echo; echo err-2 >&2";
    let config = h.config("logs", "busybox", sh(script));
    let log = config.log_path.clone();
    let (exit, out) = h.run(config).await;
    assert_eq!(exit.exit_code, 0);

    // Every line of the file is a well-formed record.
    let raw = std::fs::read(&log).unwrap();
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for line in &lines {
        assert!(
            logs::parse_line(line).is_some(),
            "not a CRI record: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let records: Vec<_> = logs::read_log(&log).unwrap().collect();
    assert_eq!(records.len(), lines.len());
    assert!(
        records.iter().any(|r| r.partial),
        "a 40000-byte line is split"
    );
    assert_eq!(out[..2], ["out-1".to_string(), "no-newline".to_string()]);
    assert_eq!(out[2], "x".repeat(40000));
    assert_eq!(read_stream(&log, Stream::Stderr), vec!["err-1", "err-2"]);
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let h = Harness::new();
    for code in [0, 3, 42] {
        let (exit, _) = h
            .run(h.config(
                &format!("exit-{code}"),
                "busybox",
                sh(&format!("exit {code}")),
            ))
            .await;
        assert_eq!(exit.exit_code, code);
        assert_eq!(exit.signal, None);
        assert_eq!(
            exit.reason,
            if code == 0 {
                ExitReason::Completed
            } else {
                ExitReason::Error
            }
        );
        assert!(exit.finished_at >= exit.started_at);
    }
}

#[tokio::test]
async fn stop_falls_back_to_sigkill_when_pid_one_ignores_sigterm() {
    let h = Harness::new();
    let container = Container {
        command: strings(&["sleep", "1000"]),
        resources: Some(limits(&[("cpu", "500m")])),
        ..Default::default()
    };
    let status =
        h.rt.start(h.config("sleeper", "busybox", container))
            .await
            .unwrap();
    assert!(matches!(status, ContainerStatus::Running { .. }));
    assert!(matches!(
        h.rt.status("sleeper").unwrap(),
        ContainerStatus::Running { .. }
    ));
    assert!(matches!(
        h.rt.remove("sleeper"),
        Err(RuntimeError::StillRunning { .. })
    ));

    // The CPU limit reached the container's cgroup.
    let cgroup = format!("{}/sleeper", h.cgroup_parent);
    let quota = if cgroups::is_unified() {
        std::fs::read_to_string(format!("/sys/fs/cgroup{cgroup}/cpu.max")).unwrap()
    } else {
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cgroup}/cpu.cfs_quota_us")).unwrap()
    };
    assert!(quota.starts_with("50000"), "{quota}");

    let begin = Instant::now();
    let status =
        h.rt.stop("sleeper", Duration::from_millis(500))
            .await
            .unwrap();
    let exit = status.exit().unwrap();
    assert!(
        begin.elapsed() >= Duration::from_millis(500),
        "SIGTERM alone did not stop it"
    );
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    h.rt.remove("sleeper").unwrap();
    assert!(matches!(
        h.rt.status("sleeper"),
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory{cgroup}")).exists(),
        "the cgroup is gone"
    );
}

#[tokio::test]
async fn a_missing_executable_fails_start_with_the_runtime_message() {
    let h = Harness::new();
    let container = Container {
        command: strings(&["nosuch"]),
        ..Default::default()
    };
    let err =
        h.rt.start(h.config("missing", "busybox", container))
            .await
            .unwrap_err();
    match &err {
        RuntimeError::StartFailed { message, .. } => {
            assert_eq!(
                message,
                "exec: \"nosuch\": executable file not found in $PATH"
            )
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        matches!(h.rt.status("missing"), Err(RuntimeError::NotFound { .. })),
        "nothing is left behind"
    );
}

#[tokio::test]
async fn read_only_root_filesystem_refuses_writes() {
    let h = Harness::new();
    let mut container = sh("touch /tmp/x 2>&1; echo rc=$?");
    container.security_context = Some(SecurityContext {
        read_only_root_filesystem: Some(true),
        ..Default::default()
    });
    let (_, out) = h.run(h.config("ro", "busybox", container)).await;
    assert!(out[0].contains("Read-only file system"), "{out:?}");
    assert_eq!(out[1], "rc=1");
}

#[tokio::test]
async fn a_dropped_capability_is_enforced() {
    let h = Harness::new();
    let script = "touch /f; chown 1000 /f 2>&1; echo rc=$?";
    let (_, out) = h.run(h.config("with-chown", "busybox", sh(script))).await;
    assert_eq!(out, vec!["rc=0"]);

    let mut container = sh(script);
    container.security_context = Some(SecurityContext {
        capabilities: Some(Capabilities {
            drop: strings(&["CHOWN"]),
            add: None,
        }),
        ..Default::default()
    });
    let (_, out) = h.run(h.config("without-chown", "busybox", container)).await;
    assert!(out[0].contains("Operation not permitted"), "{out:?}");
    assert_eq!(out[1], "rc=1");
}

/// Runs `coracle ctr ARGS` with the harness's data and run dirs.
fn ctr(h: &Harness, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(h.tmp.path().join("data"))
        .arg("ctr")
        .args(args)
        .env("CORACLE_RUN_DIR", h.tmp.path().join("run"))
        .output()
        .expect("run coracle ctr")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn a_detached_container_survives_its_coracle_process_and_is_readopted() {
    let h = Harness::new();
    let script = "trap 'echo got-term; exit 7' TERM; echo started; while true; do sleep 0.1; done";
    let out = ctr(
        &h,
        &[
            "run", "-d", "--name", "survivor", "busybox", "--", "sh", "-c", script,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out).trim(), "survivor");

    // The coracle process that started it is gone; new ones find it.
    std::thread::sleep(Duration::from_millis(300));
    let ps = stdout(&ctr(&h, &["ps"]));
    assert!(
        ps.lines()
            .any(|l| l.starts_with("survivor") && l.contains("running")),
        "{ps}"
    );
    assert_eq!(stdout(&ctr(&h, &["logs", "survivor"])), "started\n");

    let follower = Command::new(BIN)
        .arg("--data-dir")
        .arg(h.tmp.path().join("data"))
        .args(["ctr", "logs", "-f", "survivor"])
        .env("CORACLE_RUN_DIR", h.tmp.path().join("run"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(ctr(&h, &["kill", "survivor", "TERM"]).status.success());
    let wait = ctr(&h, &["wait", "survivor"]);
    assert_eq!((wait.status.code(), stdout(&wait).trim()), (Some(7), "7"));
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(stdout(&followed), "started\ngot-term\n");

    assert!(ctr(&h, &["rm", "survivor"]).status.success());
    assert!(matches!(
        h.rt.status("survivor"),
        Err(RuntimeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn killing_a_waiting_coracle_process_leaves_the_container_running() {
    let h = Harness::new();
    let out = ctr(
        &h,
        &[
            "run", "-d", "--name", "steady", "busybox", "--", "sleep", "1000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut waiter = Command::new(BIN)
        .arg("--data-dir")
        .arg(h.tmp.path().join("data"))
        .args(["ctr", "wait", "steady"])
        .env("CORACLE_RUN_DIR", h.tmp.path().join("run"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    waiter.kill().unwrap();
    waiter.wait().unwrap();

    assert!(matches!(
        h.rt.status("steady").unwrap(),
        ContainerStatus::Running { .. }
    ));
    assert!(ctr(&h, &["kill", "steady"]).status.success());
    let wait = ctr(&h, &["wait", "steady"]);
    assert_eq!(wait.status.code(), Some(137));
    assert!(ctr(&h, &["rm", "steady"]).status.success());
}

#[tokio::test]
async fn ctr_run_streams_output_and_exits_with_the_container_code() {
    let h = Harness::new();
    let out = ctr(
        &h,
        &[
            "run",
            "--rm",
            "--env",
            "WHO=there",
            "busybox",
            "--",
            "sh",
            "-c",
            "echo hi $WHO; exit 42",
        ],
    );
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(stdout(&out), "hi there\n");
    assert!(h.rt.list().unwrap().is_empty(), "--rm removed it");

    let out = ctr(&h, &["run", "busybox", "--", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{stderr}"
    );
}

#[tokio::test]
async fn privileged_containers_may_mount_and_others_may_not() {
    let h = Harness::new();
    let script = "mkdir -p /mnt/t; mount -t tmpfs t /mnt/t 2>/dev/null; echo rc=$?";
    let (_, out) = h.run(h.config("plain", "busybox", sh(script))).await;
    assert_eq!(out, vec!["rc=1"]);

    let mut container = sh(script);
    container.security_context = Some(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    });
    let (_, out) = h.run(h.config("privileged", "busybox", container)).await;
    assert_eq!(out, vec!["rc=0"]);
}

#[tokio::test]
async fn stale_runtime_state_left_by_a_crash_does_not_block_a_new_start() {
    let h = Harness::new();
    let stale = h.tmp.path().join("run/containers/phoenix");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("state.json"), "{ not json").unwrap();

    let (exit, out) = h
        .run(h.config("phoenix", "busybox", sh("echo reborn")))
        .await;
    assert_eq!((exit.exit_code, out), (0, vec!["reborn".to_string()]));
    assert!(!stale.exists(), "the shim deleted the state after the exit");
}
