//! `kubectl exec` end to end: the real kubectl against `coracle server`, over WebSocket.
//!
//! Needs root (real containers), `/usr/bin/kubectl`, `script` (util-linux, for the tty case)
//! and the busybox test image.

use std::process::{Command, Output, Stdio};

mod server_support;

use server_support::*;

/// Two containers, so `-c` matters; `main` writes into the emptyDir both share.
const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    workingDir: /data
    env:
    - {name: GREETING, value: hello-from-env}
    command: [sh, -c, 'echo written-by-main > /data/note; sleep 3600']
    volumeMounts:
    - {name: shared, mountPath: /data}
  - name: side
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, '3600']
    volumeMounts:
    - {name: shared, mountPath: /shared}
";

/// kubectl speaking SPDY (its fallback) instead of WebSocket, with `input` on its stdin.
fn kubectl_spdy(server: &Server, args: &[&str], input: &[u8]) -> Output {
    let mut command = server.command(args);
    command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    run_with_input(command, input)
}

#[test]
fn kubectl_exec_runs_commands_in_the_pods_containers_as_upstream() {
    let server = Server::start(data_dir_with_busybox());
    let manifest = server.data.path().join("pod.yaml");
    std::fs::write(&manifest, POD).unwrap();
    server.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.wait_for(&["get", "pods"], "Running", 60);

    // The pod's hostname (its UTS namespace) and the named container.
    assert_eq!(
        server.ok(&["exec", "web", "-c", "main", "--", "cat", "/etc/hostname"]),
        "web\n"
    );

    // stdin reaches the process, and its end closes the process's stdin.
    let out = server.kubectl_with_input(
        &["exec", "-i", "web", "-c", "main", "--", "cat"],
        b"line-a\nline-b\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "line-a\nline-b\n");

    // A megabyte through stdin and back arrives whole, in order.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = server.kubectl_with_input(&["exec", "-i", "web", "-c", "main", "--", "cat"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());

    // Execs at the same time each get their own process and streams.
    let runs: Vec<_> = (0..4)
        .map(|i| {
            server
                .command(&[
                    "exec",
                    "web",
                    "-c",
                    "main",
                    "--",
                    "sh",
                    "-c",
                    &format!("echo run-{i}"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(
            stdout(&run.wait_with_output().unwrap()),
            format!("run-{i}\n")
        );
    }

    // The container's env, working directory and volumes; the sidecar sees the same volume.
    assert_eq!(
        server.ok(&[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd"
        ]),
        "hello-from-env\n/data\n"
    );
    assert_eq!(
        server.ok(&["exec", "web", "-c", "side", "--", "cat", "/shared/note"]),
        "written-by-main\n"
    );

    // The same privileges as the container's own process: capabilities, no_new_privs and the
    // seccomp filter (pid 1 of the container's pid namespace is its init).
    let fields = "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):";
    let init = server.ok(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "grep",
        "-E",
        fields,
        "/proc/1/status",
    ]);
    let exec = server.ok(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "grep",
        "-E",
        fields,
        "/proc/self/status",
    ]);
    assert_eq!(exec, init);
    assert!(exec.contains("Seccomp:\t2"), "{exec}");

    // stdout and stderr stay apart.
    let out = server.kubectl(&[
        "exec",
        "web",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    // A non-zero exit code is kubectl's exit code, with upstream's message.
    let out = server.kubectl(&["exec", "web", "-c", "main", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out), "command terminated with exit code 3\n");

    // A missing program fails with the runtime's own words.
    let out = server.kubectl(&["exec", "web", "-c", "main", "--", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{}",
        stderr(&out)
    );

    // Refusals before the upgrade: upstream's messages.
    let out = server.kubectl(&["exec", "web", "-c", "nosuch", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container nosuch is not valid for pod web"),
        "{}",
        stderr(&out)
    );
    let out = server.kubectl(&["exec", "missing", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"pods "missing" not found"#),
        "{}",
        stderr(&out)
    );

    // A terminal: kubectl under `script` has one, so `-t` gives the process a pty of the
    // same size, from its first command on.
    let shell = "stty rows 30 cols 100; \
                 kubectl exec -it web -c main -- sh -c 'test -t 0 && echo is-a-tty; stty size; exit 4'";
    // script's stdin stays open: at its end-of-file script would type into the terminal.
    let mut script = Command::new("script")
        .args(["-qec", shell, "/dev/null"])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run script");
    let keep_open = script.stdin.take();
    let mut terminal = Vec::new();
    std::io::Read::read_to_end(&mut script.stdout.take().unwrap(), &mut terminal).unwrap();
    let status = script.wait().unwrap();
    drop(keep_open);
    let terminal = String::from_utf8_lossy(&terminal);
    assert!(terminal.contains("is-a-tty\r\n30 100\r\n"), "{terminal:?}");
    assert_eq!(status.code(), Some(4), "{terminal:?}");
    assert!(
        terminal.contains("command terminated with exit code 4"),
        "{terminal:?}"
    );

    // The same over SPDY, kubectl's fallback and older clients' protocol.
    let out = kubectl_spdy(
        &server,
        &["exec", "-i", "web", "-c", "main", "--", "cat"],
        &data,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "{} bytes came back", out.stdout.len());
    let out = kubectl_spdy(
        &server,
        &[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\ncommand terminated with exit code 3\n");
    let out = kubectl_spdy(&server, &["exec", "web", "-c", "main", "--", "nosuch"], b"");
    assert!(
        stderr(&out).contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{}",
        stderr(&out)
    );

    server.ok(&["delete", "pod", "web"]);
    server.stop();
}
