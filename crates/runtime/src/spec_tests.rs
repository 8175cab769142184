//! Unit tests of the OCI spec generation (no root needed).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, SeccompProfile, SecurityContext,
};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use super::*;
use crate::config::{ContainerConfig, Mount, Propagation, SandboxNamespaces};
use crate::user::UserDb;

fn image(user: &str, workdir: &str) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "config": {
            "Env": ["PATH=/bin", "IMAGE_VAR=from-image"],
            "Entrypoint": ["echo", "entrypoint"], "Cmd": ["default-arg"],
            "User": user, "WorkingDir": workdir,
        },
    }))
    .unwrap()
}

fn config(container: Container) -> ContainerConfig {
    ContainerConfig {
        id: "c1".into(),
        container,
        env: vec![("A".into(), "a".into()), ("B".into(), "$(A)-b".into())],
        image_config: image("1000:1000", "/home/user"),
        layers: vec![PathBuf::from("/layers/0")],
        mounts: vec![],
        sandbox: None,
        pod_security: None,
        hostname: Some("pod-host".into()),
        cgroup_parent: "/coracle/pod".into(),
        pids_limit: None,
        log_path: PathBuf::from("/tmp/log"),
    }
}

fn build_spec(config: &ContainerConfig) -> Result<Spec, String> {
    let users = UserDb::parse(
        "user:x:1000:1000::/home/user:/bin/sh\n",
        "extra:x:2000:user\n",
    );
    build(&SpecInputs {
        config,
        rootfs: Path::new("/rootfs"),
        users: &users,
        cgroups_path: "/coracle/pod/c1",
        unified_cgroups: false,
        host_devices: &[("/dev/sda".into(), 'b', 8, 0)],
        bounding_caps: u64::MAX,
    })
}

fn with_security(sc: SecurityContext) -> ContainerConfig {
    config(Container {
        security_context: Some(sc),
        ..Default::default()
    })
}

fn caps(spec: &Spec) -> Vec<String> {
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    let mut names: Vec<String> = caps
        .bounding()
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    names.sort();
    names
}

fn value(spec: &Spec) -> serde_json::Value {
    serde_json::to_value(spec).unwrap()
}

#[test]
fn process_comes_from_image_and_expanded_env() {
    let spec = build_spec(&config(Container {
        args: Some(vec!["$(B)".into()]),
        ..Default::default()
    }))
    .unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(
        process.args().as_ref().unwrap(),
        &vec!["echo", "entrypoint", "a-b"]
    );
    let env = process.env().as_ref().unwrap();
    assert_eq!(
        env,
        &vec![
            "PATH=/bin",
            "IMAGE_VAR=from-image",
            "A=a",
            "B=a-b",
            "HOME=/home/user"
        ]
    );
    assert_eq!(process.cwd(), Path::new("/home/user"));
    assert_eq!((process.user().uid(), process.user().gid()), (1000, 1000));
    assert_eq!(
        process.user().additional_gids().as_ref().unwrap(),
        &vec![2000]
    );
    assert_eq!(spec.hostname().as_deref(), Some("pod-host"));
}

#[test]
fn container_working_dir_wins_over_the_image() {
    let spec = build_spec(&config(Container {
        working_dir: Some("/tmp".into()),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(spec.process().as_ref().unwrap().cwd(), Path::new("/tmp"));
    let err = build_spec(&config(Container {
        working_dir: Some("rel".into()),
        ..Default::default()
    }));
    assert!(err.unwrap_err().contains("not absolute"));
}

#[test]
fn defaults_are_hardened_like_containerd() {
    let spec = build_spec(&config(Container::default())).unwrap();
    let mut expected: Vec<String> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    expected.sort();
    assert_eq!(caps(&spec), expected);
    let v = value(&spec);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(
        v["linux"]["maskedPaths"].as_array().unwrap().len(),
        MASKED_PATHS.len()
    );
    assert_eq!(v["linux"]["readonlyPaths"][3], "/proc/sys");
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    let denied = v["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array()
        .unwrap();
    assert!(denied.iter().any(|n| n == "kexec_load"));
    assert!(denied.iter().any(|n| n == "mount"));
    assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], false);
    assert_eq!(v["linux"]["cgroupsPath"], "/coracle/pod/c1");
    assert_eq!(v["root"]["readonly"], false);
    let sys = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "ro"));
}

#[test]
fn capabilities_add_and_drop_accept_both_spellings_and_all() {
    let sc = |add: &[&str], drop: &[&str]| SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(add.iter().map(|s| s.to_string()).collect()),
            drop: Some(drop.iter().map(|s| s.to_string()).collect()),
        }),
        ..Default::default()
    };
    let spec = build_spec(&with_security(sc(
        &["NET_ADMIN", "CAP_SYS_TIME"],
        &["chown", "CAP_KILL"],
    )))
    .unwrap();
    let names = caps(&spec);
    assert!(
        names.contains(&"CAP_NET_ADMIN".to_string()) && names.contains(&"CAP_SYS_TIME".to_string())
    );
    assert!(!names.contains(&"CAP_CHOWN".to_string()) && !names.contains(&"CAP_KILL".to_string()));

    let spec = build_spec(&with_security(sc(&["NET_BIND_SERVICE"], &["ALL"]))).unwrap();
    assert_eq!(caps(&spec), vec!["CAP_NET_BIND_SERVICE"]);
    let spec = build_spec(&with_security(sc(&["ALL"], &[]))).unwrap();
    assert_eq!(caps(&spec).len(), ALL_CAPABILITIES.len());

    let err = build_spec(&with_security(sc(&["NOT_A_CAP"], &[]))).unwrap_err();
    assert!(err.contains("NOT_A_CAP"), "{err}");
}

#[test]
fn granting_sys_admin_allows_the_mount_syscalls_again() {
    let sc = SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(vec!["SYS_ADMIN".into()]),
            drop: None,
        }),
        ..Default::default()
    };
    let v = value(&build_spec(&with_security(sc)).unwrap());
    let denied = v["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array()
        .unwrap();
    assert!(!denied.iter().any(|n| n == "mount"));
    assert!(denied.iter().any(|n| n == "kexec_load"));
}

#[test]
fn privileged_lifts_the_restrictions() {
    let spec = build_spec(&with_security(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    }))
    .unwrap();
    let v = value(&spec);
    assert_eq!(caps(&spec).len(), ALL_CAPABILITIES.len());
    assert!(v["linux"]["seccomp"].is_null());
    assert!(v["linux"]["maskedPaths"].is_null());
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
    assert_eq!(v["linux"]["devices"][0]["path"], "/dev/sda");
    let sys = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(sys["options"].as_array().unwrap().iter().any(|o| o == "rw"));
}

#[test]
fn escalation_read_only_root_and_seccomp_settings_apply() {
    let sc = SecurityContext {
        allow_privilege_escalation: Some(true),
        read_only_root_filesystem: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    };
    let v = value(&build_spec(&with_security(sc)).unwrap());
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert_eq!(v["root"]["readonly"], true);
    assert!(v["linux"]["seccomp"].is_null());

    let mut cfg = config(Container::default());
    cfg.pod_security = Some(PodSecurityContext {
        seccomp_profile: Some(SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some("x".into()),
        }),
        ..Default::default()
    });
    assert!(build_spec(&cfg).unwrap_err().contains("Localhost"));
}

#[test]
fn sandbox_namespaces_are_joined_and_mounts_bound() {
    let mut cfg = config(Container::default());
    cfg.sandbox = Some(SandboxNamespaces {
        net: "/sb/net".into(),
        ipc: "/sb/ipc".into(),
        uts: "/sb/uts".into(),
        pid: None,
    });
    cfg.mounts = vec![
        Mount {
            host_path: "/data".into(),
            container_path: "/data".into(),
            read_only: true,
            propagation: Propagation::None,
        },
        Mount {
            host_path: "/shared".into(),
            container_path: "/shared".into(),
            read_only: false,
            propagation: Propagation::Bidirectional,
        },
    ];
    let v = value(&build_spec(&cfg).unwrap());
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns
        .iter()
        .any(|n| n["type"] == "network" && n["path"] == "/sb/net"));
    assert!(ns
        .iter()
        .any(|n| n["type"] == "uts" && n["path"] == "/sb/uts"));
    assert!(ns.iter().any(|n| n["type"] == "pid" && n["path"].is_null()));
    assert!(v["hostname"].is_null(), "the sandbox owns the hostname");
    let mounts = v["mounts"].as_array().unwrap();
    let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
    assert_eq!(
        data["options"],
        serde_json::json!(["rbind", "rprivate", "ro"])
    );
    assert_eq!(v["linux"]["rootfsPropagation"], "rshared");
}

#[test]
fn a_shared_pid_namespace_is_joined_by_its_file() {
    let mut cfg = config(Container::default());
    cfg.sandbox = Some(SandboxNamespaces {
        net: "/sb/net".into(),
        ipc: "/sb/ipc".into(),
        uts: "/sb/uts".into(),
        pid: Some("/sb/pid".into()),
    });
    let v = value(&build_spec(&cfg).unwrap());
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    let pid: Vec<_> = ns.iter().filter(|n| n["type"] == "pid").collect();
    assert_eq!(
        pid,
        [&serde_json::json!({ "type": "pid", "path": "/sb/pid" })]
    );
}

#[test]
fn empty_command_is_refused() {
    let mut cfg = config(Container::default());
    cfg.image_config = serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] },
    }))
    .unwrap();
    assert_eq!(build_spec(&cfg).unwrap_err(), "no command specified");
}

#[test]
fn all_capabilities_are_those_the_runtime_holds() {
    let without_sys_resource = !(1u64 << 24);
    let all = all_capabilities(without_sys_resource);
    assert_eq!(all.len(), ALL_CAPABILITIES.len() - 1);
    assert!(!all.contains(&"SYS_RESOURCE".to_string()));
    assert_eq!(all_capabilities(0b101), vec!["CHOWN", "DAC_READ_SEARCH"]);
}
