//! Test fixtures: network namespaces, a private bridge and pod CIDR per test, and cleanup that
//! runs even when a test fails (DEL of every pod, then the bridge and namespaces are deleted).

#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coracle_network::{IpNet, NetworkConfig, PodNetwork, PodRef};

/// A random number, different per call.
pub fn random() -> u64 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

/// Runs a command and returns its output; panics if it cannot be started.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    /// The name under /run/netns.
    pub name: String,
}

impl Netns {
    /// A fresh namespace `coracle-test-<random>`.
    pub fn new() -> Self {
        let name = format!("coracle-test-{:012x}", random() & 0xffff_ffff_ffff);
        run_ok("ip", &["netns", "add", &name]);
        Netns { name }
    }

    /// The path plugins get as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Starts `busybox nc -l -p <port>` inside the namespace; its stdout is what it received.
    pub fn listen(&self, port: u16) -> Child {
        let port = port.to_string();
        Command::new("ip")
            .args([
                "netns", "exec", &self.name, "busybox", "nc", "-l", "-p", &port,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busybox nc listener")
    }

    /// Sends `text` to `ip:port` from inside the namespace, retrying while the listener starts.
    pub fn send(&self, ip: IpAddr, port: u16, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let script = format!("echo {text} | busybox nc -w 2 {ip} {port}");
            if self.exec(&["sh", "-c", &script]).status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Waits up to five seconds for a listener to exit and returns what it received.
pub fn received(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            return String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    String::new()
}

/// A private pod network: its own state dir, bridge and /24, torn down on drop.
pub struct TestNetwork {
    /// The state directory (a temp dir).
    pub state: tempfile::TempDir,
    /// The bridge name.
    pub bridge: String,
    /// The pod CIDR.
    pub cidr: IpNet,
    /// The network under test.
    pub network: PodNetwork,
    pods: Mutex<Vec<PodRef>>,
}

impl TestNetwork {
    /// A default-style network on a bridge and a 10.250.<n>.0/24 nobody else routes.
    pub fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let bridge = format!("crt{:08x}", random() as u32);
        let cidr = free_cidr();
        let mut config = NetworkConfig::new(state.path());
        config.pod_cidr = cidr;
        config.bridge_name = bridge.clone();
        let network = PodNetwork::new(config).expect("plugins are installed");
        TestNetwork {
            state,
            bridge,
            cidr,
            network,
            pods: Mutex::default(),
        }
    }

    /// The config this network was made from (for "restarts").
    pub fn config(&self) -> NetworkConfig {
        let mut config = NetworkConfig::new(self.state.path());
        config.pod_cidr = self.cidr;
        config.bridge_name = self.bridge.clone();
        config
    }

    /// A pod with a fresh sandbox id, remembered for cleanup.
    pub fn pod(&self, name: &str) -> PodRef {
        let pod = PodRef {
            namespace: "test".into(),
            name: name.into(),
            uid: format!("uid-{:x}", random()),
            sandbox_id: format!("sb{:016x}", random()),
        };
        self.pods.lock().unwrap().push(pod.clone());
        pod
    }

    /// The gateway host-local gives the bridge: the first address of the CIDR.
    pub fn gateway(&self) -> IpAddr {
        match self.cidr {
            IpNet::V4(net) => IpAddr::V4((u32::from(net.network()) + 1).into()),
            IpNet::V6(_) => unreachable!("tests use ipv4"),
        }
    }

    /// host-local's allocation file for an address.
    pub fn allocation(&self, ip: IpAddr) -> PathBuf {
        self.state
            .path()
            .join("ipam")
            .join("coracle")
            .join(ip.to_string())
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        // DEL every pod from a thread with its own runtime: Drop may run inside a tokio test.
        let network = self.network.clone();
        let (bridge, cidr) = (self.bridge.clone(), self.cidr);
        let pods = std::mem::take(&mut *self.pods.lock().unwrap());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = runtime.expect("cleanup runtime");
            for pod in pods {
                if let Err(e) = runtime.block_on(network.teardown(&pod, None)) {
                    eprintln!("cleanup of pod {pod}: {e}");
                }
            }
            if let Err(e) = runtime.block_on(coracle_network::masquerade::remove(&bridge, &cidr)) {
                eprintln!("cleanup of the masquerade rules of {bridge}: {e}");
            }
        });
        let _ = cleanup.join();
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// A 10.250.<n>.0/24 with no route on the node yet.
pub fn free_cidr() -> IpNet {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (random() % 254) as u32;
    for _ in 0..254 {
        let n = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 254 + 1;
        let cidr = format!("10.250.{n}.0/24");
        if run_ok("ip", &["-4", "route", "show"]).contains(&format!("{cidr} ")) {
            continue;
        }
        return cidr.parse().unwrap();
    }
    panic!("no free 10.250.x.0/24");
}

/// The nat table as `iptables -S` prints it.
pub fn nat_rules() -> String {
    run_ok("iptables", &["-t", "nat", "-S"])
}
