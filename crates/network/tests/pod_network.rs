//! Pod networking against the real Debian CNI plugins, in network namespaces the tests create.
//! Each test has its own bridge and 10.250.<n>.0/24; traffic only goes to those namespaces, to the
//! test's bridge address, or to loopback.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

use coracle_network::{NetworkConfig, NetworkError, PodNetwork, PodRef, PortMapping};
use support::{nat_rules, received, run, run_ok, Netns, TestNetwork};

#[tokio::test]
async fn add_gives_the_pod_an_address_in_the_cidr_and_brings_lo_up() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("web");

    let status = net.network.setup(&pod, &ns.path(), &[]).await.unwrap();

    let ip = status.ips[0];
    assert!(net.cidr.contains(&ip), "{ip} not in {}", net.cidr);
    assert_eq!(status.gateway, Some(net.gateway()));
    assert_eq!(status.interface, "eth0");
    let eth0 = String::from_utf8(
        ns.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            .stdout,
    );
    assert!(eth0.unwrap().contains(&format!("inet {ip}/24")));
    let lo = String::from_utf8(ns.exec(&["ip", "-o", "link", "show", "lo"]).stdout).unwrap();
    assert!(lo.contains(",UP"), "lo is not up: {lo}");
    assert!(
        net.allocation(ip).is_file(),
        "host-local recorded no allocation"
    );

    net.network.teardown(&pod, Some(&ns.path())).await.unwrap();
}

#[tokio::test]
async fn traffic_leaving_the_pod_network_is_masqueraded_by_one_node_rule_not_per_pod_chains() {
    let net = TestNetwork::new();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let (a, b) = (net.pod("masq-a"), net.pod("masq-b"));
    net.network.setup(&a, &ns1.path(), &[]).await.unwrap();
    net.network.setup(&b, &ns2.path(), &[]).await.unwrap();

    let chain = format!("CORACLE-MASQ-{}", net.bridge);
    let rules = nat_rules();
    let lines: Vec<&str> = rules.lines().filter(|l| l.contains(&chain)).collect();
    assert!(
        lines.contains(&format!("-A {chain} -d {} -j RETURN", net.cidr).as_str()),
        "{rules}"
    );
    assert!(
        lines.contains(&format!("-A {chain} -j MASQUERADE").as_str()),
        "{rules}"
    );
    let jumps = lines
        .iter()
        .filter(|l| l.starts_with("-A POSTROUTING") && l.contains(&net.cidr.to_string()))
        .count();
    assert_eq!(
        jumps, 1,
        "one jump for the network, whatever the pods: {rules}"
    );
    for pod in [&a, &b] {
        assert!(!rules.contains(&pod.sandbox_id), "a per-pod rule: {rules}");
    }

    // A second process finds the rules as they should be and leaves them alone.
    let again = coracle_network::PodNetwork::new(net.config()).unwrap();
    let c = net.pod("masq-c");
    let ns3 = Netns::new();
    again.setup(&c, &ns3.path(), &[]).await.unwrap();
    let after = nat_rules();
    assert_eq!(
        after.lines().filter(|l| l.contains(&chain)).count(),
        lines.len(),
        "{after}"
    );
    again.teardown(&c, Some(&ns3.path())).await.unwrap();
}

#[tokio::test]
async fn two_pods_on_the_bridge_reach_each_other_and_the_node() {
    let net = TestNetwork::new();
    let (ns1, ns2) = (Netns::new(), Netns::new());
    let (pod1, pod2) = (net.pod("one"), net.pod("two"));
    // Set both up at once: host-local and bridge must cope with concurrent pods.
    let (ns1_path, ns2_path) = (ns1.path(), ns2.path());
    let (status1, status2) = tokio::join!(
        net.network.setup(&pod1, &ns1_path, &[]),
        net.network.setup(&pod2, &ns2_path, &[]),
    );
    let ip1 = status1.unwrap().ips[0];
    assert_ne!(ip1, status2.unwrap().ips[0]);

    // Pod to pod, across the bridge.
    let listener = ns1.listen(8080);
    assert!(
        ns2.send(ip1, 8080, "from-two"),
        "pod two cannot connect to pod one"
    );
    assert_eq!(received(listener), "from-two");

    // Pod to node, at the bridge address (the pods' gateway).
    let node = TcpListener::bind((net.gateway(), 0)).unwrap();
    let port = node.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let (mut conn, _) = node.accept().unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    });
    assert!(
        ns2.send(net.gateway(), port, "to-node"),
        "pod cannot connect to the node"
    );
    assert_eq!(accept.join().unwrap().trim(), "to-node");

    net.network.teardown(&pod1, None).await.unwrap();
    net.network.teardown(&pod2, None).await.unwrap();
}

// portmap DNATs connections to the host port on the node's own addresses. 127.0.0.1 would only
// work with net.ipv4.conf.*.route_localnet=1, which coracle does not set, so the test connects
// to the bridge address, the one node address it owns. hostIP pins the rule to that address so
// the test never captures traffic on the node's real addresses.
#[tokio::test]
async fn host_port_reaches_the_pod_through_portmap_and_is_removed_by_teardown() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("hostport");
    let host_port = 30000 + (support::random() % 20000) as u16;
    let mapping = PortMapping {
        host_port,
        container_port: 8080,
        protocol: "TCP".into(),
        host_ip: Some(net.gateway().to_string()),
    };
    net.network
        .setup(&pod, &ns.path(), &[mapping])
        .await
        .unwrap();
    assert!(
        nat_rules().contains(&pod.sandbox_id),
        "portmap added no rule for the pod"
    );

    let listener = ns.listen(8080);
    let mut sent = false;
    for _ in 0..50 {
        let timeout = Duration::from_secs(2);
        if let Ok(mut conn) =
            TcpStream::connect_timeout(&(net.gateway(), host_port).into(), timeout)
        {
            conn.write_all(b"via-hostport\n").unwrap();
            sent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent, "cannot connect to {}:{host_port}", net.gateway());
    assert_eq!(received(listener), "via-hostport");

    net.network.teardown(&pod, Some(&ns.path())).await.unwrap();
    assert!(
        !nat_rules().contains(&pod.sandbox_id),
        "teardown left nat rules behind"
    );
}

#[tokio::test]
async fn teardown_after_a_restart_works_from_the_cache_and_releases_the_address() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("restart");
    let mapping = PortMapping {
        host_port: 30000 + (support::random() % 20000) as u16,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: Some(net.gateway().to_string()),
    };
    let ip = net
        .network
        .setup(&pod, &ns.path(), &[mapping])
        .await
        .unwrap()
        .ips[0];
    let cache = net
        .state
        .path()
        .join("results")
        .join(format!("coracle-{}-eth0", pod.sandbox_id));
    assert!(cache.is_file());

    // "Restart": a new PodNetwork from the same state dir, knowing neither the netns nor ports.
    let restarted = PodNetwork::new(net.config()).unwrap();
    restarted.teardown(&pod, None).await.unwrap();

    assert!(!net.allocation(ip).exists(), "host-local still holds {ip}");
    assert!(!cache.exists(), "the cache entry is left behind");
    assert!(
        !ns.exec(&["ip", "link", "show", "eth0"]).status.success(),
        "eth0 still exists"
    );
    assert!(
        !nat_rules().contains(&pod.sandbox_id),
        "ipMasq or portmap rules left behind"
    );
}

#[tokio::test]
async fn teardown_is_idempotent_even_when_the_namespace_is_gone() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("twice");
    let ip = net.network.setup(&pod, &ns.path(), &[]).await.unwrap().ips[0];
    let path = ns.path();
    drop(ns);

    net.network.teardown(&pod, Some(&path)).await.unwrap();
    net.network.teardown(&pod, Some(&path)).await.unwrap();
    net.network.teardown(&pod, None).await.unwrap();

    assert!(!net.allocation(ip).exists(), "host-local still holds {ip}");
    assert!(
        !nat_rules().contains(&pod.sandbox_id),
        "masquerade rules left behind"
    );
    let never_added = net.pod("never-added");
    net.network.teardown(&never_added, None).await.unwrap();
}

#[tokio::test]
async fn check_passes_after_add_and_fails_once_the_interface_is_deleted() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("check");
    net.network.setup(&pod, &ns.path(), &[]).await.unwrap();

    net.network.check(&pod, &ns.path()).await.unwrap();

    run_ok(
        "ip",
        &["netns", "exec", &ns.name, "ip", "link", "del", "eth0"],
    );
    let error = net.network.check(&pod, &ns.path()).await.unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, NetworkError::Plugin { .. }), "{error}");
    assert!(error.to_string().contains("eth0"), "{error}");

    net.network.teardown(&pod, Some(&ns.path())).await.unwrap();
    assert!(
        !nat_rules().contains(&pod.sandbox_id),
        "masquerade rules left behind"
    );
}

#[tokio::test]
async fn check_of_a_pod_never_set_up_says_so() {
    let net = TestNetwork::new();
    let ns = Netns::new();
    let pod = net.pod("unknown");

    let error = net.network.check(&pod, &ns.path()).await.unwrap_err();

    assert!(matches!(error, NetworkError::NotSetUp { .. }), "{error}");
}

#[tokio::test]
async fn a_plugin_error_is_reported_with_the_plugin_name_and_its_message() {
    let state = tempfile::tempdir().unwrap();
    let conf_dir = state.path().join("net.d");
    fs::create_dir(&conf_dir).unwrap();
    let bridge = format!("crt{:08x}", support::random() as u32);
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "broken",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.250.300.0/24"}]],
                "dataDir": state.path().join("ipam"),
            }
        }]
    });
    fs::write(conf_dir.join("10-broken.conflist"), conflist.to_string()).unwrap();
    let mut config = NetworkConfig::new(state.path());
    config.conflist = Some(conf_dir);
    let network = PodNetwork::new(config).unwrap();
    let ns = Netns::new();
    let pod = PodRef {
        namespace: "test".into(),
        name: "broken".into(),
        uid: "uid-broken".into(),
        sandbox_id: format!("sb{:016x}", support::random()),
    };

    let error = network.setup(&pod, &ns.path(), &[]).await.unwrap_err();
    let _ = run("ip", &["link", "del", &bridge]);

    let message = error.to_string();
    eprintln!("{message}");
    assert!(matches!(error, NetworkError::Plugin { .. }), "{message}");
    assert!(message.contains("\"bridge\""), "{message}");
    assert!(message.contains("\"broken\""), "{message}");
    assert!(message.contains("10.250.300.0/24"), "{message}");
    assert!(
        !ns.exec(&["ip", "link", "show", "eth0"]).status.success(),
        "failed add left eth0"
    );
}

#[test]
fn missing_plugins_are_named_with_the_debian_package() {
    let state = tempfile::tempdir().unwrap();
    let mut config = NetworkConfig::new(state.path());
    config.plugin_dirs = vec![state.path().to_owned()];

    let error = PodNetwork::new(config).unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, NetworkError::MissingPlugin { .. }),
        "{message}"
    );
    assert!(message.contains("containernetworking-plugins"), "{message}");
}

#[test]
fn host_ip_is_the_address_of_the_default_route_interface() {
    let state = tempfile::tempdir().unwrap();
    let network = PodNetwork::new(NetworkConfig::new(state.path())).unwrap();

    let host_ip = network.host_ip().unwrap();

    let default = run_ok("ip", &["-4", "route", "show", "default"]);
    match default
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
    {
        Some(dev) => {
            let addrs = run_ok("ip", &["-4", "-o", "addr", "show", "dev", dev]);
            assert!(
                addrs.contains(&format!("inet {host_ip}/")),
                "{host_ip} not on {dev}: {addrs}"
            );
        }
        None => assert_eq!(host_ip, IpAddr::from([127, 0, 0, 1])),
    }
}
