//! Resource limits and OOM detection for a container's cgroup.
//!
//! Limits come from the Kubernetes `resources` and are converted the way the kubelet converts
//! them: `requests.cpu` → CPU shares (`milliCPU * 1024 / 1000`, at least 2; libcgroups turns
//! shares into `cpu.weight` on cgroup v2), `limits.cpu` → a CFS quota of
//! `milliCPU * 100000 / 1000` µs per 100 ms period (at least 1 ms), `limits.memory` → the
//! memory limit. The cgroup is created by libcontainer at an explicit path (never systemd's).
//! Whether the kernel OOM-killed a process is read from the cgroup before it is deleted.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The CFS period the kubelet uses, in microseconds.
const CPU_PERIOD: u64 = 100_000;

/// Parses a Kubernetes quantity (`64Mi`, `1.5G`, `500m`, `2`, `1e3`) as a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// A quantity in thousandths, rounded up as Kubernetes' `MilliValue` does.
fn milli(q: &Quantity) -> Option<u64> {
    parse_quantity(&q.0).map(|v| (v * 1000.0).ceil().max(0.0) as u64)
}

/// A quantity as a whole number, rounded up as Kubernetes' `Value` does.
fn whole(q: &Quantity) -> Option<i64> {
    parse_quantity(&q.0).map(|v| v.ceil() as i64)
}

/// The OCI resources for a container's `resources` and the pod's pids limit.
pub fn resources(res: Option<&ResourceRequirements>, pids_limit: Option<i64>) -> LinuxResources {
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = res.and_then(|r| r.requests.as_ref());
    let get = |map: Option<&std::collections::BTreeMap<String, Quantity>>, key: &str| {
        map.and_then(|m| m.get(key)).cloned()
    };

    // Shares from the CPU request (the limit when no request is given, as API defaulting does).
    let cpu_request = get(requests, "cpu").or_else(|| get(limits, "cpu"));
    let shares = cpu_request
        .as_ref()
        .and_then(milli)
        .map_or(2, |m| (m * 1024 / 1000).max(2));
    let mut cpu = LinuxCpuBuilder::default().shares(shares);
    if let Some(m) = get(limits, "cpu").as_ref().and_then(milli) {
        let quota = (m * CPU_PERIOD / 1000).max(1000);
        cpu = cpu.quota(quota as i64).period(CPU_PERIOD);
    }

    let mut builder =
        LinuxResourcesBuilder::default().cpu(cpu.build().expect("all cpu fields are optional"));
    if let Some(bytes) = get(limits, "memory").as_ref().and_then(whole) {
        let memory = LinuxMemoryBuilder::default().limit(bytes).build();
        builder = builder.memory(memory.expect("all memory fields are optional"));
    }
    if let Some(limit) = pids_limit {
        let pids = LinuxPidsBuilder::default().limit(limit).build();
        builder = builder.pids(pids.expect("the pids limit is set"));
    }
    builder.build().expect("all resource fields are optional")
}

/// True on a pure cgroup v2 host (`/sys/fs/cgroup` is the unified hierarchy).
pub fn is_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// How many processes the kernel OOM-killed in the cgroup at `path` (e.g. `/coracle/pod/ctr`).
pub fn oom_kills(path: &str) -> u64 {
    let relative = path.trim_start_matches('/');
    let (file, key) = if is_unified() {
        (
            Path::new(CGROUP_ROOT).join(relative).join("memory.events"),
            "oom_kill",
        )
    } else {
        (
            Path::new(CGROUP_ROOT)
                .join("memory")
                .join(relative)
                .join("memory.oom_control"),
            "oom_kill",
        )
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The directories of the cgroup at `path` in every mounted hierarchy.
fn hierarchy_dirs(path: &str) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    if is_unified() {
        return vec![Path::new(CGROUP_ROOT).join(relative)];
    }
    let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join(relative))
        .collect()
}

/// Sends SIGKILL to every process in the cgroup at `path`: through `cgroup.kill` where the
/// kernel has it (cgroup v2, Linux 5.14), else to each pid of `cgroup.procs`, which races with
/// forks (as runc's fallback without a freezer does). A missing cgroup is fine.
pub fn kill_all(path: &str) {
    for dir in hierarchy_dirs(path) {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Removes the (empty) cgroup at `path` from every hierarchy, e.g. a pod's parent cgroup once
/// its containers are gone; a missing cgroup is fine.
pub fn remove_cgroup(path: &str) -> std::io::Result<()> {
    for dir in hierarchy_dirs(path) {
        match std::fs::remove_dir(&dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn req(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> ResourceRequirements {
        let map = |l: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
            l.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        };
        ResourceRequirements {
            limits: Some(map(limits)),
            requests: Some(map(requests)),
            ..Default::default()
        }
    }

    #[test]
    fn quantities_parse_with_binary_decimal_and_exponent_suffixes() {
        assert_eq!(parse_quantity("64Mi"), Some(67108864.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1.5Gi"), Some(1610612736.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12"), Some(12.0));
        assert_eq!(parse_quantity("12x"), None);
    }

    #[test]
    fn cpu_and_memory_convert_like_the_kubelet() {
        let r = resources(
            Some(&req(
                &[("cpu", "500m"), ("memory", "64Mi")],
                &[("cpu", "250m")],
            )),
            Some(50),
        );
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(cpu.shares(), Some(256));
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(67108864));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 50);
    }

    #[test]
    fn no_resources_means_minimum_shares_and_no_limits() {
        let r = resources(None, None);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(2));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), None);
        assert!(r.memory().is_none());
        let tiny = resources(Some(&req(&[("cpu", "1m")], &[])), None);
        assert_eq!(tiny.cpu().as_ref().unwrap().shares(), Some(2));
        assert_eq!(tiny.cpu().as_ref().unwrap().quota(), Some(1000));
    }
}
