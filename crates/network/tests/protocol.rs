//! The exec protocol as the plugins see it, observed through small recording plugins (shell
//! scripts that log their environment and stdin) chained after nothing but each other; `lo` is
//! still brought up by the real `loopback` plugin in a real namespace.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use coracle_network::{NetworkConfig, NetworkError, PodNetwork, PodRef, PortMapping};
use serde_json::{json, Value};
use support::Netns;

const RECORDER: &str = r#"#!/bin/sh
name=$(basename "$0")
dir=$(dirname "$0")
cat > "$dir/log/$CNI_COMMAND-$name.json"
echo "$CNI_COMMAND $name" >> "$dir/log/order"
printf '%s\n' "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" \
    > "$dir/log/$CNI_COMMAND-$name.env"
if [ "$CNI_COMMAND" = ADD ]; then cat "$dir/result-$name.json"; fi
"#;

fn script(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn result(ip: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": ip, "gateway": "10.9.0.1", "interface": 0}]
    })
}

struct Recorder {
    dir: tempfile::TempDir,
    network: PodNetwork,
}

impl Recorder {
    /// A network `rec` of plugins `rec-a` (declares portMappings) then `rec-b`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("log")).unwrap();
        for name in ["rec-a", "rec-b"] {
            script(dir.path(), name, RECORDER);
        }
        fs::write(
            dir.path().join("result-rec-a.json"),
            result("10.9.0.5/24").to_string(),
        )
        .unwrap();
        fs::write(
            dir.path().join("result-rec-b.json"),
            result("10.9.0.6/24").to_string(),
        )
        .unwrap();
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": "rec",
            "plugins": [
                {"type": "rec-a", "capabilities": {"portMappings": true}, "custom": 1},
                {"type": "rec-b", "capabilities": {"bandwidth": true}}
            ]
        });
        let file = dir.path().join("rec.conflist");
        fs::write(&file, conflist.to_string()).unwrap();

        let mut config = NetworkConfig::new(dir.path().join("state"));
        config.plugin_dirs = vec![dir.path().to_owned(), "/usr/lib/cni".into()];
        config.conflist = Some(file);
        let network = PodNetwork::new(config).unwrap();
        Recorder { dir, network }
    }

    fn order(&self) -> Vec<String> {
        let text = fs::read_to_string(self.dir.path().join("log/order")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    fn stdin(&self, command: &str, plugin: &str) -> Value {
        let path = self.dir.path().join(format!("log/{command}-{plugin}.json"));
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn env(&self, command: &str, plugin: &str) -> Vec<String> {
        let path = self.dir.path().join(format!("log/{command}-{plugin}.env"));
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn clear_order(&self) {
        let _ = fs::remove_file(self.dir.path().join("log/order"));
    }
}

fn pod() -> PodRef {
    PodRef {
        namespace: "shop".into(),
        name: "cart".into(),
        uid: "uid-1".into(),
        sandbox_id: format!("sb{:016x}", support::random()),
    }
}

#[tokio::test]
async fn add_chains_prev_results_and_passes_the_kubelet_parameters() {
    let rec = Recorder::new();
    let ns = Netns::new();
    let pod = pod();
    let port = PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: "TCP".into(),
        host_ip: None,
    };

    let status = rec.network.setup(&pod, &ns.path(), &[port]).await.unwrap();

    assert_eq!(rec.order(), ["ADD rec-a", "ADD rec-b"]);
    let a = rec.stdin("ADD", "rec-a");
    let b = rec.stdin("ADD", "rec-b");
    assert_eq!(
        (a["name"].as_str(), a["cniVersion"].as_str()),
        (Some("rec"), Some("1.0.0"))
    );
    assert_eq!(a["custom"], 1, "other fields pass through");
    assert!(a.get("capabilities").is_none() && a.get("prevResult").is_none());
    assert_eq!(
        a["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert!(
        b.get("runtimeConfig").is_none(),
        "bandwidth was not offered"
    );
    assert_eq!(b["prevResult"], result("10.9.0.5/24"));

    let env = rec.env("ADD", "rec-a");
    assert_eq!(env[0], pod.sandbox_id);
    assert_eq!(env[1], ns.path().display().to_string());
    assert_eq!(env[2], "eth0");
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart;\
         K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID=uid-1",
        pod.sandbox_id
    );
    assert_eq!(env[3], args);
    assert_eq!(env[4], format!("{}:/usr/lib/cni", rec.dir.path().display()));

    assert_eq!(
        status.ips,
        ["10.9.0.6".parse::<std::net::IpAddr>().unwrap()]
    );
    rec.network.teardown(&pod, Some(&ns.path())).await.unwrap();
}

#[tokio::test]
async fn check_runs_in_order_and_del_in_reverse_both_with_the_cached_result() {
    let rec = Recorder::new();
    let ns = Netns::new();
    let pod = pod();
    let port = PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: None,
    };
    rec.network.setup(&pod, &ns.path(), &[port]).await.unwrap();
    rec.clear_order();

    rec.network.check(&pod, &ns.path()).await.unwrap();
    // A fresh PodNetwork, as after a restart, and no netns given.
    let restarted = PodNetwork::new(rec.network_config()).unwrap();
    restarted.teardown(&pod, None).await.unwrap();

    assert_eq!(
        rec.order(),
        ["CHECK rec-a", "CHECK rec-b", "DEL rec-b", "DEL rec-a"]
    );
    for (command, plugin) in [
        ("CHECK", "rec-a"),
        ("CHECK", "rec-b"),
        ("DEL", "rec-a"),
        ("DEL", "rec-b"),
    ] {
        let stdin = rec.stdin(command, plugin);
        assert_eq!(
            stdin["prevResult"],
            result("10.9.0.6/24"),
            "{command} {plugin}"
        );
    }
    let del_a = rec.stdin("DEL", "rec-a");
    assert_eq!(
        del_a["runtimeConfig"]["portMappings"][0]["hostPort"], 8080,
        "ports come from the cache"
    );
    assert_eq!(
        rec.env("DEL", "rec-a")[1],
        ns.path().display().to_string(),
        "netns from the cache"
    );
}

#[tokio::test]
async fn del_without_cache_or_namespace_runs_with_an_empty_netns_and_no_prev_result() {
    let rec = Recorder::new();
    let pod = pod();

    rec.network
        .teardown(&pod, Some(Path::new("/run/netns/coracle-test-gone")))
        .await
        .unwrap();

    assert_eq!(rec.order(), ["DEL rec-b", "DEL rec-a"]);
    assert!(rec.stdin("DEL", "rec-a").get("prevResult").is_none());
    assert_eq!(
        rec.env("DEL", "rec-a")[1],
        "",
        "a missing namespace is passed as empty"
    );
}

#[tokio::test]
async fn a_plugin_that_crashes_is_reported_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "boom",
        "#!/bin/sh\necho 'panic: boom' >&2\nexit 2\n",
    );
    let network = single_plugin_network(dir.path(), "boom", Duration::from_secs(10));
    let ns = Netns::new();

    let error = network.setup(&pod(), &ns.path(), &[]).await.unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, NetworkError::PluginCrashed { .. }),
        "{message}"
    );
    assert!(
        message.contains("\"boom\"") && message.contains("panic: boom"),
        "{message}"
    );
}

#[tokio::test]
async fn a_plugin_that_hangs_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "hang", "#!/bin/sh\nexec sleep 30\n");
    let network = single_plugin_network(dir.path(), "hang", Duration::from_millis(300));
    let ns = Netns::new();
    let started = Instant::now();

    let error = network.setup(&pod(), &ns.path(), &[]).await.unwrap_err();

    assert!(matches!(error, NetworkError::Timeout { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

fn single_plugin_network(dir: &Path, plugin: &str, timeout: Duration) -> PodNetwork {
    let conf = json!({"cniVersion": "1.0.0", "name": "single", "type": plugin});
    let file = dir.join("single.conf");
    fs::write(&file, conf.to_string()).unwrap();
    let mut config = NetworkConfig::new(dir.join("state"));
    config.plugin_dirs = vec![dir.to_owned(), "/usr/lib/cni".into()];
    config.conflist = Some(file);
    config.exec_timeout = timeout;
    PodNetwork::new(config).unwrap()
}

impl Recorder {
    fn network_config(&self) -> NetworkConfig {
        let mut config = NetworkConfig::new(self.dir.path().join("state"));
        config.plugin_dirs = vec![self.dir.path().to_owned(), "/usr/lib/cni".into()];
        config.conflist = Some(self.dir.path().join("rec.conflist"));
        config
    }
}
