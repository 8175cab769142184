//! The pod spec as a whole: volumes, containers, policies, deadlines, host networking and the
//! pod-level security context, in the order `ValidatePodSpec` checks them.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::container::{
    id_in_range, validate_app_containers, validate_init_containers, ContainerContext,
};
use super::meta::{dns1123_label, dns1123_subdomain, validate_labels};
use super::volume::validate_volumes;
use super::{FieldError, Path};

/// Checks one pod spec at `path` (`spec` or `spec.template.spec`).
pub(crate) fn validate_pod_spec(
    spec: &PodSpec,
    path: &Path,
    is_template: bool,
    errs: &mut Vec<FieldError>,
) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
        errs,
    );
    let ctx = ContainerContext {
        volumes: &volumes,
        is_template,
    };
    validate_app_containers(&spec.containers, &ctx, &path.child("containers"), errs);
    let init = spec.init_containers.as_deref().unwrap_or_default();
    validate_init_containers(
        init,
        &spec.containers,
        &ctx,
        &path.child("initContainers"),
        errs,
    );

    match spec.restart_policy.as_deref().unwrap_or("") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match spec.dns_policy.as_deref().unwrap_or("") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
        errs,
    );
    validate_security(spec, path, errs);

    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        for msg in dns1123_subdomain(v) {
            errs.push(FieldError::invalid(path.child(field), v, &msg));
        }
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&deadline) {
            let detail = "must be between 1 and 2147483647, inclusive";
            errs.push(FieldError::invalid_int(
                path.child("activeDeadlineSeconds"),
                deadline,
                detail,
            ));
        }
    }
    // Upstream tolerates a negative grace period on create and clamps it later; coracle rejects
    // it outright, because a negative wait has no meaning for a local engine.
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        let detail = "must be greater than or equal to 0";
        errs.push(FieldError::invalid_int(
            path.child("terminationGracePeriodSeconds"),
            grace,
            detail,
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        for msg in dns1123_label(v) {
            errs.push(FieldError::invalid(path.child(field), v, &msg));
        }
    }
}

/// Pod security context IDs, and host networking requiring `hostPort == containerPort`.
fn validate_security(spec: &PodSpec, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(sc) = &spec.security_context {
        let sp = path.child("securityContext");
        id_in_range(sc.run_as_user, &sp.child("runAsUser"), errs);
        id_in_range(sc.run_as_group, &sp.child("runAsGroup"), errs);
        id_in_range(sc.fs_group, &sp.child("fsGroup"), errs);
        for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
            id_in_range(Some(*g), &sp.child("supplementalGroups").index(i), errs);
        }
    }
    if spec.host_network == Some(true) {
        let init = spec.init_containers.as_deref().unwrap_or_default();
        host_network_ports(&spec.containers, &path.child("containers"), errs);
        host_network_ports(init, &path.child("initContainers"), errs);
    }
}

fn host_network_ports(containers: &[Container], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, ctr) in containers.iter().enumerate() {
        for (j, port) in ctr.ports.iter().flatten().enumerate() {
            if port.host_port.unwrap_or(0) != port.container_port {
                let p = path.index(i).child("ports").index(j).child("containerPort");
                let detail = "must match `hostPort` when `hostNetwork` is true";
                errs.push(FieldError::invalid_int(
                    p,
                    port.container_port.into(),
                    detail,
                ));
            }
        }
    }
}
