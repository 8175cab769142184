//! Probes (liveness, readiness, startup) and lifecycle hooks: exactly one handler each,
//! non-negative timings, and `successThreshold: 1` where upstream requires it.

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::PORT_RANGE;
use super::meta::port_name;
use super::{FieldError, Path};

const NONNEGATIVE: &str = "must be greater than or equal to 0";

/// Lifecycle hooks and the three probes of an app container or sidecar.
pub(crate) fn validate_probes_and_lifecycle(ctr: &Container, p: &Path, errs: &mut Vec<FieldError>) {
    if let Some(lc) = &ctr.lifecycle {
        validate_lifecycle(lc, &p.child("lifecycle"), errs);
    }
    let probes = [
        ("livenessProbe", &ctr.liveness_probe, true),
        ("readinessProbe", &ctr.readiness_probe, false),
        ("startupProbe", &ctr.startup_probe, true),
    ];
    for (field, probe, success_must_be_one) in probes {
        let Some(probe) = probe else { continue };
        let pp = p.child(field);
        validate_probe(probe, &pp, errs);
        let success = probe.success_threshold.unwrap_or(1);
        if success_must_be_one && success != 1 {
            errs.push(FieldError::invalid_int(
                pp.child("successThreshold"),
                success.into(),
                "must be 1",
            ));
        }
    }
}

fn validate_lifecycle(lc: &Lifecycle, path: &Path, errs: &mut Vec<FieldError>) {
    let hooks = [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)];
    for (field, hook) in hooks {
        let Some(h) = hook else { continue };
        let sleep = h.sleep.as_ref().map(|_| ());
        handler(
            &h.exec,
            &h.http_get,
            &h.tcp_socket,
            sleep,
            false,
            &path.child(field),
            errs,
        );
        lifecycle_sleep(h, &path.child(field), errs);
    }
}

fn lifecycle_sleep(h: &LifecycleHandler, path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(s) = &h.sleep {
        if s.seconds < 0 {
            errs.push(FieldError::invalid_int(
                path.child("sleep").child("seconds"),
                s.seconds,
                NONNEGATIVE,
            ));
        }
    }
}

fn validate_probe(probe: &Probe, path: &Path, errs: &mut Vec<FieldError>) {
    handler(
        &probe.exec,
        &probe.http_get,
        &probe.tcp_socket,
        None,
        probe.grpc.is_some(),
        path,
        errs,
    );
    let numbers = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in numbers {
        if let Some(v) = value.filter(|v| *v < 0) {
            errs.push(FieldError::invalid_int(
                path.child(field),
                v.into(),
                NONNEGATIVE,
            ));
        }
    }
    if let Some(g) = probe.termination_grace_period_seconds.filter(|g| *g <= 0) {
        errs.push(FieldError::invalid_int(
            path.child("terminationGracePeriodSeconds"),
            g,
            "must be greater than 0",
        ));
    }
}

/// Exactly one handler of a probe or lifecycle hook.
fn handler(
    exec: &Option<ExecAction>,
    http_get: &Option<HTTPGetAction>,
    tcp: &Option<TCPSocketAction>,
    sleep: Option<()>,
    grpc: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let mut count = 0;
    let mut one = |field: &str, present: bool, errs: &mut Vec<FieldError>| -> bool {
        if !present {
            return false;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(
                path.child(field),
                "may not specify more than 1 handler type",
            ));
            return false;
        }
        count += 1;
        true
    };
    if one("exec", exec.is_some(), errs) {
        let cmd = exec.as_ref().and_then(|e| e.command.as_ref());
        if cmd.is_none_or(|c| c.is_empty()) {
            errs.push(FieldError::required(
                path.child("exec").child("command"),
                "",
            ));
        }
    }
    if one("httpGet", http_get.is_some(), errs) {
        if let Some(h) = http_get {
            let hp = path.child("httpGet");
            if h.path.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(hp.child("path"), ""));
            }
            port_num_or_name(&h.port, &hp.child("port"), errs);
            if let Some(scheme) = h.scheme.as_deref() {
                if !matches!(scheme, "HTTP" | "HTTPS") {
                    errs.push(FieldError::not_supported(
                        hp.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
        }
    }
    if one("tcpSocket", tcp.is_some(), errs) {
        if let Some(t) = tcp {
            port_num_or_name(&t.port, &path.child("tcpSocket").child("port"), errs);
        }
    }
    one("grpc", grpc, errs);
    one("sleep", sleep.is_some(), errs);
    if count == 0 {
        errs.push(FieldError::required(
            path.clone(),
            "must specify a handler type",
        ));
    }
}

fn port_num_or_name(port: &IntOrString, path: &Path, errs: &mut Vec<FieldError>) {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            errs.push(FieldError::invalid_int(
                path.clone(),
                (*n).into(),
                PORT_RANGE,
            ));
        }
        IntOrString::Int(_) => {}
        IntOrString::String(s) if s.is_empty() => errs.push(FieldError::required(path.clone(), "")),
        IntOrString::String(s) => {
            for msg in port_name(s) {
                errs.push(FieldError::invalid(path.clone(), s, &msg));
            }
        }
    }
}
