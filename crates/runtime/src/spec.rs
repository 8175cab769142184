//! The OCI runtime spec (`config.json`) for a Kubernetes container, built without touching the
//! system so that it can be unit-tested.
//!
//! The defaults follow runc's and containerd's: the standard mounts (`/proc`, a tmpfs `/dev`
//! with the standard device nodes, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, read-only `/sys` and
//! cgroup), containerd's default capability set, masked and read-only `/proc` paths,
//! `noNewPrivileges` unless `allowPrivilegeEscalation: true`, and a default seccomp profile
//! (see [`default_seccomp`]). `privileged: true` lifts all of that: every capability, no
//! seccomp, no masks, `/sys` and the cgroup file system writable, and every host device.

use std::path::Path;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
use oci_spec::runtime::{Capability, Spec};
use serde_json::{json, Value};

use crate::command;
use crate::config::{ContainerConfig, Propagation, SandboxNamespaces};
use crate::user::{self, UserDb};

/// containerd's default capability set for containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability of current kernels, in kernel order (bit `i` is `ALL_CAPABILITIES[i]`).
/// `privileged` and `add: [ALL]` grant those of them the runtime itself holds.
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's masked paths: bind-mounted over with nothing.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only `/proc` paths.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Used to look up the executable when neither the image nor the container sets `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What [`build`] needs besides the caller's config.
#[derive(Debug)]
pub struct SpecInputs<'a> {
    /// The caller's config.
    pub config: &'a ContainerConfig,
    /// The mounted rootfs (absolute).
    pub rootfs: &'a Path,
    /// The rootfs's user and group databases.
    pub users: &'a UserDb,
    /// The container's cgroup, `<cgroup_parent>/<id>`.
    pub cgroups_path: &'a str,
    /// The host uses the pure cgroup v2 hierarchy (the container then gets a cgroup namespace).
    pub unified_cgroups: bool,
    /// Host device nodes for privileged containers, as `(path, 'c' or 'b', major, minor)`.
    pub host_devices: &'a [(String, char, i64, i64)],
    /// The runtime's own capability bounding set (`CapBnd` of `/proc/self/status`): "all
    /// capabilities" means these, as in containerd, since no process can grant more.
    pub bounding_caps: u64,
}

/// The capabilities of `bounding` (a bit mask in kernel numbering), by name without `CAP_`.
pub fn all_capabilities(bounding: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The calling process's capability bounding set; all bits if it cannot be read.
pub fn own_bounding_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
            u64::from_str_radix(line["CapBnd:".len()..].trim(), 16).ok()
        })
        .unwrap_or(u64::MAX)
}

/// Builds the OCI spec; an error is a reason for the user ("invalid capability \"FOO\"").
pub fn build(inputs: &SpecInputs<'_>) -> Result<Spec, String> {
    let config = inputs.config;
    let ctr = &config.container;
    let sc = ctr.security_context.as_ref();
    let pod = config.pod_security.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let image = config.image_config.config().clone().unwrap_or_default();

    // The process: argv, env, cwd, user.
    let env = command::merge_env(
        image.env().as_deref().unwrap_or_default(),
        &command::expand_env(&config.env),
    );
    let argv = command::argv(
        ctr.command.as_deref(),
        ctr.args.as_deref(),
        image.entrypoint().as_deref().unwrap_or_default(),
        image.cmd().as_deref().unwrap_or_default(),
        &env,
    );
    if argv.is_empty() {
        return Err("no command specified".to_string());
    }
    let process_user = user::resolve(image.user().as_deref().unwrap_or(""), inputs.users, sc, pod)?;
    let mut env = env;
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push((
            "HOME".into(),
            process_user.home.clone().unwrap_or_else(|| "/".into()),
        ));
    }
    let cwd = ctr
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(format!("working directory \"{cwd}\" is not absolute"));
    }

    // Privileges.
    let caps = if privileged {
        all_capabilities(inputs.bounding_caps)
    } else {
        capabilities(sc, inputs.bounding_caps)?
    };
    let caps: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    let no_new_privs = !privileged && sc.and_then(|s| s.allow_privilege_escalation) != Some(true);
    let seccomp = if privileged {
        None
    } else {
        seccomp_profile(sc, pod, &caps)?
    };

    let resources = crate::cgroups::resources(ctr.resources.as_ref(), config.pids_limit);
    let mut resources = serde_json::to_value(resources).expect("resources serialize");
    resources["devices"] = json!([{ "allow": privileged, "access": "rwm" }]);

    let mut linux = json!({
        "cgroupsPath": inputs.cgroups_path,
        "resources": resources,
        "namespaces": namespaces(config.sandbox.as_ref(), inputs.unified_cgroups),
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    } else {
        linux["devices"] = inputs
            .host_devices
            .iter()
            .map(|(path, kind, major, minor)| {
                json!({ "path": path, "type": kind.to_string(), "major": major, "minor": minor, "fileMode": 0o660, "uid": 0, "gid": 0 })
            })
            .collect();
    }
    if let Some(seccomp) = seccomp {
        linux["seccomp"] = seccomp;
    }
    if config
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        linux["rootfsPropagation"] = json!("rshared");
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": process_user.uid,
                "gid": process_user.gid,
                "additionalGids": process_user.additional_gids,
            },
            "args": argv,
            "env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": no_new_privs,
        },
        "root": {
            "path": inputs.rootfs,
            "readonly": sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        },
        "mounts": mounts(config, privileged, inputs.unified_cgroups),
        "linux": linux,
    });
    if config.sandbox.is_none() {
        spec["hostname"] = json!(config.hostname.clone().unwrap_or_else(|| config.id.clone()));
    }
    serde_json::from_value(spec).map_err(|err| format!("invalid OCI spec: {err}"))
}

/// The capability names (without `CAP_`) after `capabilities.add`/`drop` over the defaults.
///
/// As containerd: `drop: [ALL]` starts from nothing, `add: [ALL]` from everything; then the
/// named capabilities are added and dropped. Names may carry the `CAP_` prefix or not.
fn capabilities(sc: Option<&SecurityContext>, bounding: u64) -> Result<Vec<String>, String> {
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let normalize = |name: &String| -> Result<String, String> {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper).to_string();
        if bare != "ALL" && Capability::from_str(&bare).is_err() {
            return Err(format!("unknown capability \"{name}\""));
        }
        Ok(bare)
    };
    let add: Vec<String> = caps
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .map(normalize)
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = caps
        .and_then(|c| c.drop.as_ref())
        .into_iter()
        .flatten()
        .map(normalize)
        .collect::<Result<_, _>>()?;

    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_capabilities(bounding)
    } else if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    for cap in add.iter().filter(|c| *c != "ALL") {
        if !set.contains(cap) {
            set.push(cap.clone());
        }
    }
    set.retain(|c| !drop.contains(c));
    Ok(set)
}

/// The seccomp profile chosen by `seccompProfile` (container over pod).
///
/// Kubernetes' default is `Unconfined`; coracle applies its runtime default unless the
/// profile says `Unconfined`, as containerd does with `RuntimeDefault`. `Localhost` profiles are
/// not supported and are refused.
fn seccomp_profile(
    sc: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
    caps: &[String],
) -> Result<Option<Value>, String> {
    let profile = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(pod.and_then(|p| p.seccomp_profile.as_ref()));
    match profile.map(|p| p.type_.as_str()) {
        Some("Unconfined") => Ok(None),
        None | Some("RuntimeDefault") => Ok(Some(default_seccomp(caps))),
        Some(other) => Err(format!("seccompProfile type \"{other}\" is not supported")),
    }
}

/// The runtime-default seccomp profile: a denylist returning `EPERM`.
///
/// It allows everything except syscalls that reach outside the container or the kernel's
/// protections: loading kernels and modules (`kexec_*`, `*init_module`, `delete_module`), the
/// kernel keyring (`add_key`, `keyctl`, `request_key`), `userfaultfd`, `bpf`, `perf_event_open`,
/// clocks (`settimeofday`, `clock_settime`, `clock_adjtime`), `reboot`, swap, `acct`,
/// `quotactl`, I/O ports (`iopl`, `ioperm`), NUMA policy, cross-process memory access
/// (`process_vm_*`, `kcmp`), file handles (`open_by_handle_at`), obsolete syscalls, and the
/// mount and namespace family (`mount`, `umount2`, `pivot_root`, `unshare`, `setns`, the new
/// mount API). As in moby's profile, a group is allowed again when the container holds the
/// capability that guards it (for example `CAP_SYS_ADMIN` for mounts), so that granting a
/// capability keeps its meaning.
pub fn default_seccomp(caps: &[String]) -> Value {
    let groups: &[(Option<&str>, &[&str])] = &[
        (
            None,
            &[
                "kexec_load",
                "kexec_file_load",
                "add_key",
                "keyctl",
                "request_key",
                "userfaultfd",
                "uselib",
                "ustat",
                "sysfs",
                "_sysctl",
                "nfsservctl",
                "create_module",
                "get_kernel_syms",
                "query_module",
                "lookup_dcookie",
            ],
        ),
        (
            Some("CAP_SYS_ADMIN"),
            &[
                "mount",
                "umount2",
                "pivot_root",
                "unshare",
                "setns",
                "fsopen",
                "fsconfig",
                "fsmount",
                "fspick",
                "open_tree",
                "move_mount",
                "mount_setattr",
                "quotactl",
                "swapon",
                "swapoff",
                "name_to_handle_at",
                "bpf",
                "perf_event_open",
            ],
        ),
        (
            Some("CAP_SYS_MODULE"),
            &["init_module", "finit_module", "delete_module"],
        ),
        (Some("CAP_SYS_BOOT"), &["reboot"]),
        (
            Some("CAP_SYS_TIME"),
            &["settimeofday", "clock_settime", "clock_adjtime"],
        ),
        (Some("CAP_SYS_PACCT"), &["acct"]),
        (Some("CAP_SYS_RAWIO"), &["iopl", "ioperm"]),
        (
            Some("CAP_SYS_NICE"),
            &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
        ),
        (
            Some("CAP_SYS_PTRACE"),
            &["process_vm_readv", "process_vm_writev", "kcmp"],
        ),
        (Some("CAP_DAC_READ_SEARCH"), &["open_by_handle_at"]),
    ];
    let denied: Vec<&str> = groups
        .iter()
        .filter(|(cap, _)| cap.is_none_or(|cap| !caps.iter().any(|c| c == cap)))
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM }],
    })
}

/// A mount namespace of its own; network, IPC and UTS from the sandbox if there is one; the
/// sandbox's PID namespace if it shares one, else a PID namespace of its own.
fn namespaces(sandbox: Option<&SandboxNamespaces>, unified_cgroups: bool) -> Value {
    let pid = match sandbox.and_then(|sb| sb.pid.as_ref()) {
        Some(path) => json!({ "type": "pid", "path": path }),
        None => json!({ "type": "pid" }),
    };
    let mut list = vec![pid, json!({ "type": "mount" })];
    match sandbox {
        Some(sb) => {
            list.push(json!({ "type": "network", "path": sb.net }));
            list.push(json!({ "type": "ipc", "path": sb.ipc }));
            list.push(json!({ "type": "uts", "path": sb.uts }));
        }
        None => {
            list.extend([
                json!({ "type": "network" }),
                json!({ "type": "ipc" }),
                json!({ "type": "uts" }),
            ]);
        }
    }
    if unified_cgroups {
        list.push(json!({ "type": "cgroup" }));
    }
    Value::Array(list)
}

/// The standard mounts, then the caller's bind mounts in order.
fn mounts(config: &ContainerConfig, privileged: bool, unified_cgroups: bool) -> Value {
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut list = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_mode] }),
    ];
    let cgroup_type = if unified_cgroups { "cgroup2" } else { "cgroup" };
    list.push(json!({ "destination": "/sys/fs/cgroup", "type": cgroup_type, "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode] }));

    for m in &config.mounts {
        let propagation = match m.propagation {
            Propagation::None => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        };
        let mut options = vec!["rbind", propagation];
        options.push(if m.read_only { "ro" } else { "rw" });
        list.push(json!({
            "destination": m.container_path, "type": "bind", "source": m.host_path, "options": options,
        }));
    }
    Value::Array(list)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
