//! Pod networking (issue 3 §1): each pod gets its own address on the node bridge, which its
//! `status.podIP` and its own `eth0` agree on; pods reach each other over TCP; the hostname is
//! the pod's name; a `hostNetwork` pod sees the node's interfaces.
//!
//! The pods use a bridge and a range of their own, so that pods of other data dirs (other tests,
//! a user's pods on `coracle0`) never get the same address.

mod pod_support;

use pod_support::*;

const CIDR: &str = "10.89.213.0/24";
const BRIDGE: &str = "coracle-t213";

const MANIFEST: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: server}
spec:
  restartPolicy: Never
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    command:
    - sh
    - -c
    - |
      mkdir /www && echo hello-from-server > /www/index.html
      httpd -p 8080 -h /www
      hostname > /h/server-hostname
      ip -4 addr show eth0 > /h/server-addr
      echo $POD_IP > /h/ip
      i=0; while [ ! -e /h/done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  initContainers:
  - name: wait-for-server
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "while [ ! -s /h/ip ]; do sleep 0.1; done"]
    volumeMounts: [{name: h, mountPath: /h}]
  containers:
  - name: fetch
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "wget -q -O /h/fetched http://$(cat /h/ip):8080/index.html; touch /h/done"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
---
apiVersion: v1
kind: Pod
metadata: {name: on-host}
spec:
  restartPolicy: Never
  hostNetwork: true
  containers:
  - name: links
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "while [ ! -s /h/ip ]; do sleep 0.1; done; ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 > /h/host-links"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes: [{name: h, hostPath: {path: HOST}}]
"#;

#[test]
fn pods_get_bridge_addresses_reach_each_other_and_host_network_pods_see_the_node() {
    let env = Env::new();
    let file = env.manifest("pods.yaml", MANIFEST);
    let out = env.run(
        &[
            "--pod-cidr",
            CIDR,
            "--bridge",
            BRIDGE,
            file.to_str().unwrap(),
        ],
        secs(60),
    );
    // The bridge plugin leaves the bridge in place after the last pod, and coracle leaves the
    // network's masquerade chain for the next run: remove ours.
    let _ = std::process::Command::new("ip")
        .args(["link", "del", BRIDGE])
        .status();
    let chain = format!("CORACLE-MASQ-{BRIDGE}");
    let comment = format!("coracle pod network {BRIDGE}");
    for args in [
        &[
            "-D",
            "POSTROUTING",
            "-s",
            CIDR,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            &chain,
        ][..],
        &["-F", &chain][..],
        &["-X", &chain][..],
    ] {
        let _ = std::process::Command::new("iptables")
            .args(["-w", "-t", "nat"])
            .args(args)
            .status();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let ip = env.host_lines("ip").concat();
    assert!(ip.starts_with("10.89.213."), "status.podIP {ip:?}");
    let addr = std::fs::read_to_string(env.host.join("server-addr")).unwrap();
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    assert_eq!(env.host_lines("server-hostname"), ["server"]);
    assert_eq!(env.host_lines("fetched"), ["hello-from-server"]);

    let links = env.host_lines("host-links");
    assert!(
        links.iter().any(|l| l == BRIDGE),
        "the hostNetwork pod sees the node's bridge: {links:?}"
    );
    assert!(
        !links.iter().any(|l| l == "eth0") || std::path::Path::new("/sys/class/net/eth0").exists(),
        "only the node's own interfaces: {links:?}"
    );
    assert!(env.pod_dirs().is_empty());
}
