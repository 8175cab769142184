//! Volumes and environment as a container sees them (issue 3 §2), end to end through
//! `coracle run`: each check prints `name=value` lines the test compares.

mod pod_support;

use pod_support::*;

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, color: blue, "app.conf": "key=value"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret, user: admin}
---
apiVersion: v1
kind: Pod
metadata:
  name: volenv
  labels: {tier: web}
spec:
  restartPolicy: Never
  initContainers:
  - name: fill
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo from-init > /shared/note; mkdir -p /shared/sub && echo in-sub > /shared/sub/file"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  containers:
  - name: check
    image: busybox
    imagePullPolicy: IfNotPresent
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    env:
    - {name: PLAIN, value: plain-value}
    - {name: COMPOSED, value: "$(PLAIN)-and-more"}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: MEM_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    envFrom:
    - {prefix: CM_, configMapRef: {name: settings}}
    command:
    - sh
    - -c
    - |
      echo plain=$PLAIN
      echo composed=$COMPOSED
      echo pod_name=$POD_NAME
      echo pod_ns=$POD_NS
      echo mem_limit=$MEM_LIMIT
      echo greeting=$GREETING
      echo password=$PASSWORD
      echo cm_color=$CM_color
      echo note=$(cat /shared/note)
      echo subpath=$(cat /sub-only/file)
      echo mem_fs=$(awk '$2=="/mem"{print $3}' /proc/mounts)
      echo mem_size=$(df -k /mem | awk 'NR==2{print $2}')
      echo cm_item=$(cat /cm/renamed.txt)
      echo cm_item_mode=$(stat -L -c %a /cm/renamed.txt)
      echo cm_files=$(ls /cm | tr '\n' ' ')
      echo secret=$(cat /secret/user)
      echo secret_mode=$(stat -L -c %a /secret/user)
      echo secret_fs=$(awk '$2=="/secret"{print $3}' /proc/mounts)
      echo labels=$(cat /info/labels)
      echo info_name=$(cat /info/name)
      echo projected=$(cat /proj/greeting)+$(cat /proj/password)+$(cat /proj/podname)
      echo host_file=$(cat /host/input)
      touch /ro/x 2>/dev/null && echo ro=writable || echo ro=readonly
      echo dir_type=$(ls -d /hostdir-made && echo ok)
      true
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: shared, mountPath: /sub-only, subPath: sub}
    - {name: mem, mountPath: /mem}
    - {name: cm, mountPath: /cm}
    - {name: secret, mountPath: /secret}
    - {name: info, mountPath: /info}
    - {name: proj, mountPath: /proj}
    - {name: host, mountPath: /host}
    - {name: host, mountPath: /ro, readOnly: true}
    - {name: made, mountPath: /hostdir-made}
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - name: cm
    configMap:
      name: settings
      defaultMode: 384 # 0600; YAML 1.1 octal literals are not read yet, see below
      items: [{key: color, path: renamed.txt}]
  - {name: secret, secret: {secretName: creds, defaultMode: 288}} # 0440
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
  - name: proj
    projected:
      sources:
      - configMap: {name: settings, items: [{key: greeting, path: greeting}]}
      - secret: {name: creds, items: [{key: password, path: password}]}
      - downwardAPI: {items: [{path: podname, fieldRef: {fieldPath: metadata.name}}]}
  - {name: host, hostPath: {path: HOST, type: Directory}}
  - {name: made, hostPath: {path: HOST/made, type: DirectoryOrCreate}}
"#;

#[test]
fn containers_see_volumes_and_environment_as_kubernetes_defines_them() {
    let env = Env::new();
    std::fs::write(env.host.join("input"), "from-host\n").unwrap();
    let file = env.manifest("pod.yaml", MANIFEST);
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(40),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let got: std::collections::BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[volenv/check] "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect();
    let expected = [
        ("plain", "plain-value"),
        ("composed", "plain-value-and-more"),
        ("pod_name", "volenv"),
        ("pod_ns", "default"),
        ("mem_limit", "67108864"),
        ("greeting", "hello"),
        ("password", "s3cret"),
        ("cm_color", "blue"),
        ("note", "from-init"),
        ("subpath", "in-sub"),
        ("mem_fs", "tmpfs"),
        ("mem_size", "8192"),
        ("cm_item", "blue"),
        ("cm_item_mode", "600"),
        ("cm_files", "renamed.txt"),
        ("secret", "admin"),
        ("secret_mode", "440"),
        ("secret_fs", "tmpfs"),
        ("labels", "tier=\"web\""),
        ("info_name", "volenv"),
        ("projected", "hello+s3cret+volenv"),
        ("host_file", "from-host"),
        ("ro", "readonly"),
        ("dir_type", "/hostdir-made ok"),
    ];
    let mut wrong = Vec::new();
    for (k, v) in expected {
        if got.get(k).map(String::as_str) != Some(v) {
            wrong.push(format!("{k}: expected {v:?}, got {:?}", got.get(k)));
        }
    }
    assert!(wrong.is_empty(), "{}\nstdout:\n{stdout}", wrong.join("\n"));
    assert!(env.host.join("made").is_dir(), "DirectoryOrCreate made it");
    assert!(!env.host.join("x").exists(), "read-only mount not written");
}

#[test]
fn a_host_path_of_the_wrong_type_keeps_the_pod_from_starting() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: wrong-type}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: ["true"], volumeMounts: [{name: h, mountPath: /h}]}
  volumes: [{name: h, hostPath: {path: HOST/absent, type: Directory}}]
"#,
    );
    let child = env
        .run_command(&["--no-network", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(secs(3));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = wait_output(child, secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The app never ran: the volume set-up failure leaves it waiting.
    assert!(!stdout.contains("wrong-type/app: Running"), "{stdout}");
    assert!(!stdout.contains("wrong-type: Completed"), "{stdout}");
    assert!(
        stderr.contains("absent"),
        "the failure names the path: {stderr}"
    );
}

#[test]
fn yaml_1_1_octal_modes_are_read_as_kubectl_reads_them() {
    let env = Env::new();
    let file = env.manifest(
        "pod.yaml",
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {user: admin}
---
apiVersion: v1
kind: Pod
metadata: {name: octal}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "stat -L -c mode=%a /s/user"], volumeMounts: [{name: s, mountPath: /s}]}
  volumes: [{name: s, secret: {secretName: creds, defaultMode: 0440}}]
"#,
    );
    let out = env.run(
        &["--logs", "--no-network", file.to_str().unwrap()],
        secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[octal/app] mode=440"), "{stdout}");
}
