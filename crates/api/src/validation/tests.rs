//! Pod validation against upstream's field paths and messages (reference §4).

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::defaults::default_pod;

/// A defaulted pod from YAML (metadata name `p` unless the YAML sets metadata).
fn pod(yaml: &str) -> Pod {
    let mut pod: Pod = serde_norway::from_str(yaml).unwrap();
    if pod.metadata.name.is_none() {
        pod.metadata.name = Some("p".into());
    }
    default_pod(&mut pod);
    pod
}

/// The rendered field errors of `yaml` ("" when valid).
fn errors(yaml: &str) -> Vec<String> {
    match validate_pod(&pod(yaml)) {
        Ok(()) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
    characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
    or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn minimal_pod_is_valid() {
    assert_eq!(
        errors("spec: {containers: [{name: c, image: busybox}]}"),
        Vec::<String>::new()
    );
}

#[test]
fn all_errors_are_collected_in_one_aggregate() {
    let p = pod(
        "spec:\n  initContainers: [{image: busybox}]\n  containers: [{name: web, image: ''}]\n",
    );
    let err = validate_pod(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"p\" is invalid: [spec.containers[0].image: Required value, \
         spec.initContainers[0].name: Required value]"
    );
    assert_eq!(err.causes().len(), 2);
}

#[test]
fn missing_containers_is_required() {
    assert_eq!(
        errors("spec: {containers: []}"),
        ["spec.containers: Required value"]
    );
}

#[test]
fn bad_pod_name_and_namespace_use_subdomain_and_label_rules() {
    let errs = errors(
        "metadata: {name: Web_1, namespace: Bad.NS}\nspec: {containers: [{name: c, image: b}]}",
    );
    assert!(
        errs[0]
            .starts_with("metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        format!("metadata.namespace: Invalid value: \"Bad.NS\": {LABEL_MSG}")
    );
}

#[test]
fn invalid_label_key_and_value_are_reported_on_labels() {
    let errs = errors("metadata: {name: p, labels: {'a b': ok, good: 'bad value'}}\nspec: {containers: [{name: c, image: b}]}");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("metadata.labels: Invalid value: \"a b\": name part must consist"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be"),
        "{errs:?}"
    );
}

#[test]
fn invalid_annotation_key_is_reported() {
    let errs = errors(
        "metadata: {name: p, annotations: {'/x': y}}\nspec: {containers: [{name: c, image: b}]}",
    );
    assert_eq!(
        errs,
        ["metadata.annotations: Invalid value: \"/x\": prefix part must be non-empty"]
    );
}

#[test]
fn container_name_must_be_a_dns_label() {
    let errs = errors("spec: {containers: [{name: Web, image: b}]}");
    assert_eq!(
        errs,
        [format!(
            "spec.containers[0].name: Invalid value: \"Web\": {LABEL_MSG}"
        )]
    );
}

#[test]
fn duplicate_app_container_names_are_reported_on_the_second() {
    let errs = errors("spec: {containers: [{name: web, image: b}, {name: web, image: b}]}");
    assert_eq!(errs, ["spec.containers[1].name: Duplicate value: \"web\""]);
}

#[test]
fn init_container_clashing_with_app_name_is_reported_on_the_init_container() {
    let errs = errors(
        "spec: {initContainers: [{name: web, image: b}], containers: [{name: web, image: b}]}",
    );
    assert_eq!(
        errs,
        ["spec.initContainers[0].name: Duplicate value: \"web\""]
    );
}

#[test]
fn image_with_whitespace_is_invalid_for_pods() {
    let errs = errors("spec: {containers: [{name: c, image: ' busybox'}]}");
    assert_eq!(errs, ["spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"]);
}

#[test]
fn regular_init_container_may_not_have_probes_or_lifecycle() {
    let errs = errors(
        "spec:\n  initContainers:\n  - name: i\n    image: b\n    lifecycle: {postStart: {exec: {command: [true]}}}\n    readinessProbe: {exec: {command: [true]}}\n  containers: [{name: c, image: b}]\n",
    );
    let msg = "Forbidden: may not be set for init containers without restartPolicy=Always";
    assert_eq!(
        errs,
        [
            format!("spec.initContainers[0].lifecycle: {msg}"),
            format!("spec.initContainers[0].readinessProbe: {msg}")
        ]
    );
}

#[test]
fn sidecar_probes_are_validated_like_app_probes() {
    let errs = errors(
        "spec:\n  initContainers:\n  - name: s\n    image: b\n    restartPolicy: Always\n    livenessProbe: {exec: {command: [true]}, successThreshold: 2}\n  containers: [{name: c, image: b}]\n",
    );
    assert_eq!(
        errs,
        ["spec.initContainers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]
    );
}

#[test]
fn init_container_restart_policy_only_accepts_always() {
    let errs = errors("spec: {initContainers: [{name: i, image: b, restartPolicy: Never}], containers: [{name: c, image: b}]}");
    assert_eq!(errs, ["spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]);
}

#[test]
fn app_container_may_not_set_restart_policy() {
    let errs = errors("spec: {containers: [{name: c, image: b, restartPolicy: Always}]}");
    assert_eq!(
        errs,
        ["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
    );
}

#[test]
fn ports_are_range_checked_named_and_unique() {
    let errs = errors(
        "spec:\n  containers:\n  - name: c\n    image: b\n    ports:\n    - {containerPort: 0}\n    - {containerPort: 70000, name: http}\n    - {containerPort: 80, name: http}\n    - {containerPort: 81, name: a-very-long-port-name, protocol: ICMP}\n",
    );
    assert_eq!(
        errs,
        [
            "spec.containers[0].ports[0].containerPort: Required value",
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[2].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[3].name: Invalid value: \"a-very-long-port-name\": must be no more than 15 characters",
            "spec.containers[0].ports[3].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ]
    );
}

#[test]
fn env_names_and_value_sources_are_checked() {
    let errs = errors(
        "spec:\n  containers:\n  - name: c\n    image: b\n    env:\n    - {name: 1BAD, value: x}\n    - {name: A, valueFrom: {}}\n    - {name: B, valueFrom: {configMapKeyRef: {name: m, key: k}, secretKeyRef: {name: s, key: k}}}\n    - {name: C, value: v, valueFrom: {secretKeyRef: {name: s, key: k}}}\n",
    );
    assert!(errs[0].starts_with("spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"), "{errs:?}");
    assert_eq!(errs[1], "spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
    assert_eq!(errs[2], "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not have more than one field specified at a time");
    assert_eq!(errs[3], "spec.containers[0].env[3].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty");
}

#[test]
fn volumes_need_unique_names_and_exactly_one_source() {
    let errs = errors(
        "spec:\n  containers: [{name: c, image: b}]\n  volumes:\n  - {name: a, emptyDir: {}}\n  - {name: a, emptyDir: {}}\n  - {name: b, emptyDir: {}, hostPath: {path: /tmp}}\n  - {name: h, hostPath: {path: ''}}\n",
    );
    assert_eq!(
        errs,
        [
            "spec.volumes[1].name: Duplicate value: \"a\"",
            "spec.volumes[2].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[3].hostPath.path: Required value",
        ]
    );
}

#[test]
fn negative_empty_dir_size_limit_is_forbidden() {
    let errs = errors("spec:\n  containers: [{name: c, image: b}]\n  volumes: [{name: a, emptyDir: {sizeLimit: -1Gi}}]\n");
    assert_eq!(errs, ["spec.volumes[0].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity"]);
}

#[test]
fn volume_mounts_reference_volumes_with_unique_paths_and_safe_sub_paths() {
    let errs = errors(
        "spec:\n  volumes: [{name: data, emptyDir: {}}]\n  containers:\n  - name: c\n    image: b\n    volumeMounts:\n    - {name: missing, mountPath: /a}\n    - {name: data, mountPath: /a}\n    - {name: data, mountPath: /b, subPath: ../etc}\n    - {name: data, mountPath: /c, subPath: x, subPathExpr: $(POD)}\n    - {name: data, mountPath: /d, subPath: /abs}\n",
    );
    assert_eq!(
        errs,
        [
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
            "spec.containers[0].volumeMounts.subPath: Invalid value: \"../etc\": must not contain '..'",
            "spec.containers[0].volumeMounts[3].subPathExpr: Invalid value: \"$(POD)\": subPathExpr and subPath are mutually exclusive",
            "spec.containers[0].volumeMounts.subPath: Invalid value: \"/abs\": must be a relative path",
        ]
    );
}

#[test]
fn resources_must_parse_and_requests_may_not_exceed_limits() {
    let errs = errors(
        "spec:\n  containers:\n  - name: c\n    image: b\n    resources:\n      limits: {cpu: 500m, memory: lots}\n      requests: {cpu: '1', gpu: '1'}\n",
    );
    assert_eq!(
        errs,
        [
            "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            // Defaulting copied the bad memory limit into requests.
            "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ]
    );
}

#[test]
fn restart_and_dns_policies_must_be_supported() {
    let errs = errors(
        "spec: {restartPolicy: Sometimes, dnsPolicy: Magic, containers: [{name: c, image: b}]}",
    );
    assert_eq!(
        errs,
        [
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Magic\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
        ]
    );
}

#[test]
fn active_deadline_and_grace_period_ranges() {
    let errs = errors("spec: {activeDeadlineSeconds: 0, terminationGracePeriodSeconds: -1, containers: [{name: c, image: b}]}");
    assert_eq!(
        errs,
        [
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
}

#[test]
fn host_network_requires_host_port_to_match_container_port() {
    let errs = errors("spec: {hostNetwork: true, containers: [{name: c, image: b, ports: [{containerPort: 80, hostPort: 8080}]}]}");
    assert_eq!(errs, ["spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true"]);
}

#[test]
fn probe_needs_exactly_one_handler() {
    let errs = errors(
        "spec:\n  containers:\n  - name: c\n    image: b\n    readinessProbe: {periodSeconds: 5}\n    livenessProbe: {exec: {command: [true]}, tcpSocket: {port: 80}}\n",
    );
    assert_eq!(
        errs,
        [
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        ]
    );
}

#[test]
fn negative_run_as_user_is_out_of_range() {
    let errs = errors("spec: {securityContext: {runAsUser: -1}, containers: [{name: c, image: b, securityContext: {runAsUser: -5}}]}");
    assert_eq!(
        errs,
        [
            "spec.containers[0].securityContext.runAsUser: Invalid value: -5: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ]
    );
}

#[test]
fn template_errors_carry_the_template_path_and_owner() {
    let template = serde_norway::from_str("spec: {containers: [{name: c}]}").unwrap();
    let path = Path::new("spec").child("template");
    let err = validate_pod_template(&template, "Deployment", "d", &path).unwrap_err();
    let msgs: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(err.kind, "Deployment");
    assert!(
        msgs.contains(&"spec.template.spec.containers[0].image: Required value".to_string()),
        "{msgs:?}"
    );
}

fn update(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (pod(old), pod(new));
    match validate_pod_update(&new, &old) {
        Ok(()) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

const BASE: &str = "spec: {activeDeadlineSeconds: 100, containers: [{name: c, image: 'b:1'}], initContainers: [{name: i, image: 'b:1'}]}";

#[test]
fn update_may_change_images_and_shorten_the_deadline() {
    let new = "spec: {activeDeadlineSeconds: 50, containers: [{name: c, image: 'b:2'}], initContainers: [{name: i, image: 'b:2'}], tolerations: [{key: k, operator: Exists}]}";
    assert_eq!(update(BASE, new), Vec::<String>::new());
}

#[test]
fn update_may_not_extend_the_deadline() {
    let new = "spec: {activeDeadlineSeconds: 200, containers: [{name: c, image: 'b:1'}], initContainers: [{name: i, image: 'b:1'}]}";
    assert_eq!(update(BASE, new), ["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]);
}

#[test]
fn update_of_other_fields_is_forbidden_with_upstream_text() {
    let new = "spec: {activeDeadlineSeconds: 100, containers: [{name: c, image: 'b:1', command: [sh]}], initContainers: [{name: i, image: 'b:1'}]}";
    let errs = update(BASE, new);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,\
         `spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only \
         additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be \
         set to 1 if it was previously negative)\n"
    ), "{}", errs[0]);
}

#[test]
fn update_may_not_add_containers() {
    let new = "spec: {activeDeadlineSeconds: 100, containers: [{name: c, image: 'b:1'}, {name: d, image: 'b:1'}], initContainers: [{name: i, image: 'b:1'}]}";
    assert_eq!(
        update(BASE, new),
        ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
}

#[test]
fn defaulted_workload_objects_validate_their_templates() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: b}, {name: c, image: b}]}\n";
    let mut obj = crate::manifest::load_documents(text, "d.yaml")
        .unwrap()
        .remove(0);
    crate::defaults::default_object(&mut obj);
    let err = validate_object(&mut obj).unwrap_err();
    assert_eq!(err.to_string(), "Deployment \"d\" is invalid: spec.template.spec.containers[1].name: Duplicate value: \"c\"");
}

#[test]
fn metadata_of_other_kinds_names_subdomains_and_namespaces_labels() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let named = |name: &str, ns: Option<&str>| ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..Default::default()
    };
    assert!(
        super::validate_metadata("ConfigMap", &named("a.b-c", Some("default")), true, false)
            .is_ok()
    );
    let err = super::validate_metadata(
        "ConfigMap",
        &named("Bad_Name", Some("default")),
        true,
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ),
        "{err}"
    );
    let err = super::validate_metadata("Namespace", &named("a.b", None), false, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("a lowercase RFC 1123 label must consist of"),
        "{err}"
    );
    let err = super::validate_metadata("Secret", &named("s", None), true, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Secret \"s\" is invalid: metadata.namespace: Required value"
    );
}
