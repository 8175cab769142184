//! Defaulting, as the API server fills in a Pod (and a workload's pod template) on create.
//!
//! `metadata.uid`, `creationTimestamp` and status are the store's business and are not set
//! here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe, Volume};

use crate::manifest::Object;

/// `terminationGracePeriodSeconds` when the manifest gives none.
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;
/// Mode of files projected from ConfigMaps and Secrets (0644).
pub const DEFAULT_FILE_MODE: i32 = 0o644;

/// Defaults a Pod: namespace `default`, the whole spec, and requests copied from limits.
pub fn default_pod(pod: &mut Pod) {
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some("default".to_string());
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_pod_spec(spec);
    // Upstream does this in SetDefaults_Pod only, not for templates.
    let init = spec.init_containers.iter_mut().flatten();
    for ctr in spec.containers.iter_mut().chain(init) {
        default_requests_from_limits(ctr);
    }
}

/// Defaults any manifest object: namespace `default`, and the Pod or the workload's pod
/// template.
pub fn default_object(object: &mut Object) {
    if let Object::Pod(pod) = object {
        return default_pod(pod);
    }
    let meta = object.metadata_mut();
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".to_string());
    }
    if let Some(spec) = object.pod_template_mut().and_then(|t| t.spec.as_mut()) {
        default_pod_spec(spec);
    }
}

/// Defaults a pod spec (a Pod's or a template's).
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_GRACE_PERIOD_SECONDS);
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    spec.priority.get_or_insert(0);
    set_if_empty(&mut spec.preemption_policy, "PreemptLowerPriority");

    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.iter_mut().flatten();
    for ctr in spec.containers.iter_mut().chain(init) {
        default_container(ctr, host_network);
    }
    for vol in spec.volumes.iter_mut().flatten() {
        default_volume(vol);
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or("").is_empty() {
        *field = Some(value.to_string());
    }
}

/// The pull policy the API server picks: `Always` for `:latest` (or no tag and no digest),
/// `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest.is_some() => None,
        None => Some("latest"),
    };
    if tag == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn default_container(ctr: &mut Container, host_network: bool) {
    set_if_empty(&mut ctr.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut ctr.termination_message_policy, "File");
    if ctr.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let policy = default_pull_policy(ctr.image.as_deref().unwrap_or(""));
        ctr.image_pull_policy = Some(policy.to_string());
    }
    for port in ctr.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, "TCP");
        if host_network && port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
    for env in ctr.env.iter_mut().flatten() {
        let field_ref = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut());
        if let Some(fr) = field_ref {
            set_if_empty(&mut fr.api_version, "v1");
        }
    }
    for probe in [
        &mut ctr.liveness_probe,
        &mut ctr.readiness_probe,
        &mut ctr.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    let hooks = ctr
        .lifecycle
        .iter_mut()
        .flat_map(|l| [&mut l.post_start, &mut l.pre_stop]);
    for hook in hooks.flatten() {
        if let Some(h) = &mut hook.http_get {
            set_if_empty(&mut h.path, "/");
            set_if_empty(&mut h.scheme, "HTTP");
        }
    }
}

fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = &mut p.http_get {
        set_if_empty(&mut h.path, "/");
        set_if_empty(&mut h.scheme, "HTTP");
    }
}

/// Requests default to limits, resource by resource, where only a limit is given.
fn default_requests_from_limits(ctr: &mut Container) {
    let Some(res) = ctr.resources.as_mut() else {
        return;
    };
    let Some(limits) = res.limits.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    let requests = res.requests.get_or_insert_with(BTreeMap::new);
    for (name, q) in limits {
        requests.entry(name.clone()).or_insert_with(|| q.clone());
    }
}

fn default_volume(vol: &mut Volume) {
    let name = std::mem::take(&mut vol.name);
    if *vol == (Volume::default()) {
        vol.empty_dir = Some(Default::default());
    }
    vol.name = name;
    if let Some(cm) = &mut vol.config_map {
        cm.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut vol.secret {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(p) = &mut vol.projected {
        p.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(d) = &mut vol.downward_api {
        d.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(hp) = &mut vol.host_path {
        hp.type_.get_or_insert_with(String::new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        let mut pod: Pod = serde_norway::from_str(yaml).unwrap();
        default_pod(&mut pod);
        pod
    }

    #[test]
    fn pull_policy_is_always_only_for_latest_or_untagged() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
        assert_eq!(default_pull_policy("busybox:latest@sha256:abc"), "Always");
    }

    #[test]
    fn pod_gets_the_api_server_defaults() {
        let p = pod("metadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox:1\n    ports: [{containerPort: 80}]\n");
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert!(p.metadata.uid.is_none());
        let s = p.spec.unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        assert_eq!(s.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(s.enable_service_links, Some(true));
        assert_eq!(s.priority, Some(0));
        assert!(s.security_context.is_some());
        let c = &s.containers[0];
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
    }

    #[test]
    fn requests_default_to_limits_per_resource() {
        let p = pod("metadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: b\n    resources:\n      limits: {cpu: 500m, memory: 1Gi}\n      requests: {cpu: 100m}\n");
        let req = p.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(req["cpu"].0, "100m");
        assert_eq!(req["memory"].0, "1Gi");
    }

    #[test]
    fn volumes_get_source_and_mode_defaults() {
        let p = pod("metadata: {name: p}\nspec:\n  containers: [{name: c, image: b}]\n  volumes:\n  - name: scratch\n  - {name: cm, configMap: {name: x}}\n  - {name: s, secret: {secretName: y}}\n  - {name: h, hostPath: {path: /tmp}}\n");
        let v = p.spec.unwrap().volumes.unwrap();
        assert!(v[0].empty_dir.is_some());
        assert_eq!(v[1].config_map.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(v[2].secret.as_ref().unwrap().default_mode, Some(420));
        assert_eq!(v[3].host_path.as_ref().unwrap().type_.as_deref(), Some(""));
    }

    #[test]
    fn host_network_copies_container_port_to_host_port() {
        let p = pod("metadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: c, image: b, ports: [{containerPort: 8080}]}]\n");
        let port = &p.spec.unwrap().containers[0].ports.clone().unwrap()[0];
        assert_eq!(port.host_port, Some(8080));
    }
}
