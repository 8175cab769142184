//! Container checks shared by app containers, regular init containers and sidecars:
//! names, image, ports, env, mounts, probes, lifecycle hooks, resources, security context.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, SecurityContext, VolumeMount,
};

use super::meta::{dns1123_label, env_var_name, port_name};
use super::probe::validate_probes_and_lifecycle;
use super::resources::validate_resource_requirements;
use super::{FieldError, Path};

const INIT_PROBE_FORBIDDEN: &str =
    "may not be set for init containers without restartPolicy=Always";
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const ID_RANGE: &str = "must be between 0 and 2147483647, inclusive";

/// What validating containers needs from the rest of the spec.
pub(crate) struct ContainerContext<'a> {
    /// Names of the pod's volumes.
    pub volumes: &'a BTreeSet<String>,
    /// Pods (not templates) also reject images with surrounding whitespace.
    pub is_template: bool,
}

/// `spec.containers`: non-empty, common checks, unique names, probes, no restartPolicy.
pub(crate) fn validate_app_containers(
    containers: &[Container],
    ctx: &ContainerContext<'_>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    if containers.is_empty() {
        errs.push(FieldError::required(path.clone(), ""));
    }
    let mut names = BTreeSet::new();
    for (i, ctr) in containers.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(ctr, ctx, &p, errs);
        if ctr.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
        if !names.insert(ctr.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), &ctr.name));
        }
        validate_probes_and_lifecycle(ctr, &p, errs);
    }
    check_host_port_conflicts(containers, path, errs);
}

/// `spec.initContainers`: common checks, restartPolicy only `Always`, names unique across
/// app and init containers (reported here), probes and hooks only on sidecars.
pub(crate) fn validate_init_containers(
    init: &[Container],
    app: &[Container],
    ctx: &ContainerContext<'_>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let mut names: BTreeSet<&str> = app.iter().map(|c| c.name.as_str()).collect();
    for (i, ctr) in init.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(ctr, ctx, &p, errs);
        let sidecar = match ctr.restart_policy.as_deref() {
            None => false,
            Some("Always") => true,
            Some(other) => {
                errs.push(FieldError::not_supported(
                    p.child("restartPolicy"),
                    other,
                    &["Always"],
                ));
                false
            }
        };
        if names.contains(ctr.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), &ctr.name));
        } else if !ctr.name.is_empty() {
            names.insert(&ctr.name);
        }
        // Init containers run one by one, so their host ports only conflict within themselves.
        check_host_port_conflicts(std::slice::from_ref(ctr), path, errs);

        if sidecar {
            validate_probes_and_lifecycle(ctr, &p, errs);
        } else {
            let set = [
                ("lifecycle", ctr.lifecycle.is_some()),
                ("livenessProbe", ctr.liveness_probe.is_some()),
                ("readinessProbe", ctr.readiness_probe.is_some()),
                ("startupProbe", ctr.startup_probe.is_some()),
            ];
            for (field, present) in set {
                if present {
                    errs.push(FieldError::forbidden(p.child(field), INIT_PROBE_FORBIDDEN));
                }
            }
        }
        if ctr.resize_policy.as_ref().is_some_and(|r| !r.is_empty()) {
            let value = serde_json::to_string(&ctr.resize_policy).unwrap_or_default();
            errs.push(FieldError::invalid_raw(
                p.child("resizePolicy"),
                &value,
                "must not be set for init containers",
            ));
        }
    }
}

fn validate_container_common(
    ctr: &Container,
    ctx: &ContainerContext<'_>,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    if ctr.name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    } else {
        for msg in dns1123_label(&ctr.name) {
            errs.push(FieldError::invalid(p.child("name"), &ctr.name, &msg));
        }
    }

    let image = ctr.image.as_deref().unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(p.child("image"), ""));
    } else if !ctx.is_template && image.trim() != image {
        errs.push(FieldError::invalid(
            p.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }

    let policy_msg = "must be 'File' or 'FallbackToLogsOnError'";
    match ctr.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            p.child("terminationMessagePolicy"),
            policy_msg,
        )),
        other => errs.push(FieldError::invalid(
            p.child("terminationMessagePolicy"),
            other,
            policy_msg,
        )),
    }

    validate_ports(
        ctr.ports.as_deref().unwrap_or_default(),
        &p.child("ports"),
        errs,
    );
    validate_env(
        ctr.env.as_deref().unwrap_or_default(),
        &p.child("env"),
        errs,
    );
    validate_env_from(
        ctr.env_from.as_deref().unwrap_or_default(),
        &p.child("envFrom"),
        errs,
    );
    validate_volume_mounts(
        ctr.volume_mounts.as_deref().unwrap_or_default(),
        ctx.volumes,
        &p.child("volumeMounts"),
        errs,
    );

    match ctr.image_pull_policy.as_deref().unwrap_or("") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(p.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            p.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(resources) = &ctr.resources {
        validate_resource_requirements(resources, &p.child("resources"), errs);
    }
    if let Some(sc) = &ctr.security_context {
        validate_security_context(sc, &p.child("securityContext"), errs);
    }
}

fn validate_ports(ports: &[ContainerPort], path: &Path, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(p.child("name"), name, &msg));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(p.child("containerPort"), ""));
        } else if !(1..=65535).contains(&port.container_port) {
            errs.push(FieldError::invalid_int(
                p.child("containerPort"),
                port.container_port.into(),
                PORT_RANGE,
            ));
        }
        if let Some(host_port) = port.host_port.filter(|hp| *hp != 0) {
            if !(1..=65535).contains(&host_port) {
                errs.push(FieldError::invalid_int(
                    p.child("hostPort"),
                    host_port.into(),
                    PORT_RANGE,
                ));
            }
        }
        match port.protocol.as_deref().unwrap_or("") {
            "TCP" | "UDP" | "SCTP" => {}
            "" => errs.push(FieldError::required(p.child("protocol"), "")),
            other => errs.push(FieldError::not_supported(
                p.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

/// The same host port, protocol and address may be bound only once among `containers`.
fn check_host_port_conflicts(containers: &[Container], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, ctr) in containers.iter().enumerate() {
        for (j, port) in ctr.ports.iter().flatten().enumerate() {
            let Some(host_port) = port.host_port.filter(|hp| *hp != 0) else {
                continue;
            };
            let protocol = port.protocol.as_deref().unwrap_or("");
            let key = format!(
                "{protocol}/{}/{host_port}",
                port.host_ip.as_deref().unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    path.index(i).child("ports").index(j).child("hostPort"),
                    &key,
                ));
            }
        }
    }
}

const FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn validate_env(vars: &[EnvVar], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else {
            for msg in env_var_name(&ev.name) {
                errs.push(FieldError::invalid(p.child("name"), &ev.name, &msg));
            }
        }
        let Some(from) = &ev.value_from else { continue };
        let vp = p.child("valueFrom");
        let mut sources = 0;
        if let Some(fr) = &from.field_ref {
            sources += 1;
            let fp = vp.child("fieldRef");
            if fr.api_version.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(fp.child("apiVersion"), ""));
            }
            let field = fr.field_path.as_str();
            let indexed = ["metadata.labels['", "metadata.annotations['"]
                .iter()
                .any(|s| field.starts_with(s));
            if field.is_empty() {
                errs.push(FieldError::required(fp.child("fieldPath"), ""));
            } else if !indexed && !FIELD_PATHS.contains(&field) {
                errs.push(FieldError::not_supported(
                    fp.child("fieldPath"),
                    field,
                    FIELD_PATHS,
                ));
            }
        }
        if let Some(rf) = &from.resource_field_ref {
            sources += 1;
            if rf.resource.is_empty() {
                errs.push(FieldError::required(
                    vp.child("resourceFieldRef").child("resource"),
                    "",
                ));
            }
        }
        if let Some(cm) = &from.config_map_key_ref {
            sources += 1;
            key_selector(&cm.name, &cm.key, &vp.child("configMapKeyRef"), errs);
        }
        if let Some(sk) = &from.secret_key_ref {
            sources += 1;
            key_selector(&sk.name, &sk.key, &vp.child("secretKeyRef"), errs);
        }
        let has_value = ev.value.as_deref().is_some_and(|v| !v.is_empty());
        if sources == 0 {
            let msg = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
            errs.push(FieldError::invalid(vp, "", msg));
        } else if has_value {
            errs.push(FieldError::invalid(
                vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn key_selector(name: &str, key: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    }
    if key.is_empty() {
        errs.push(FieldError::required(path.child("key"), ""));
    }
}

fn validate_env_from(sources: &[EnvFromSource], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, src) in sources.iter().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = src.prefix.as_deref().filter(|s| !s.is_empty()) {
            for msg in env_var_name(prefix) {
                errs.push(FieldError::invalid(p.child("prefix"), prefix, &msg));
            }
        }
        let mut count = 0;
        if let Some(cm) = &src.config_map_ref {
            count += 1;
            if cm.name.is_empty() {
                errs.push(FieldError::required(
                    p.child("configMapRef").child("name"),
                    "",
                ));
            }
        }
        if let Some(s) = &src.secret_ref {
            count += 1;
            if s.name.is_empty() {
                errs.push(FieldError::required(p.child("secretRef").child("name"), ""));
            }
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(p.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                p.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        // Upstream reports sub-path problems on `volumeMounts.subPath`, without the index.
        let sub_path = m.sub_path.as_deref().unwrap_or("");
        if !sub_path.is_empty() {
            local_descending_path(sub_path, &path.child("subPath"), errs);
        }
        let expr = m.sub_path_expr.as_deref().unwrap_or("");
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    p.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(expr, &path.child("subPathExpr"), errs);
        }
        if let Some(prop) = m.mount_propagation.as_deref() {
            let supported = ["Bidirectional", "HostToContainer", "None"];
            if !supported.contains(&prop) {
                errs.push(FieldError::not_supported(
                    p.child("mountPropagation"),
                    prop,
                    &supported,
                ));
            }
        }
    }
}

/// A relative path that never climbs out with `..`.
pub(crate) fn local_descending_path(target: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if target.starts_with('/') {
        errs.push(FieldError::invalid(
            path.clone(),
            target,
            "must be a relative path",
        ));
    }
    if target.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(
            path.clone(),
            target,
            "must not contain '..'",
        ));
    }
}

/// Container security context: user and group IDs in range.
fn validate_security_context(sc: &SecurityContext, path: &Path, errs: &mut Vec<FieldError>) {
    id_in_range(sc.run_as_user, &path.child("runAsUser"), errs);
    id_in_range(sc.run_as_group, &path.child("runAsGroup"), errs);
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        errs.push(FieldError::invalid_raw(
            path.clone(),
            "privileged: true, allowPrivilegeEscalation: false",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
}

/// A Linux user or group ID: 0 ≤ id ≤ 2147483647.
pub(crate) fn id_in_range(id: Option<i64>, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
        errs.push(FieldError::invalid_int(path.clone(), id, ID_RANGE));
    }
}
