//! The mutating admission plugins every cluster runs on a new pod, as kube-apiserver 1.33's
//! `plugin/pkg/admission` does them:
//!
//! - DefaultTolerationSeconds: a pod that does not already tolerate them gets
//!   `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` NoExecute tolerations
//!   for 300 s.
//! - ServiceAccount: `spec.serviceAccountName` defaults to `default` (and, as the `v1`
//!   conversion does, mirrors into the deprecated `spec.serviceAccount`); a service account
//!   that does not exist refuses the pod with upstream's 403; the service account's
//!   `imagePullSecrets` are copied to a pod that names none.
//!
//! # Caveats
//!
//! The ServiceAccount plugin does not add the `kube-api-access-…` projected token volume and
//! its mounts: coracle has no address inside the cluster at which a pod could reach the API
//! server yet, so a pod sees no `/var/run/secrets/kubernetes.io/serviceaccount`. Its
//! `automountServiceAccountToken` is therefore accepted and has no effect.

use coracle_store::Key;
use k8s_openapi::api::core::v1::{LocalObjectReference, Pod, ServiceAccount, Toleration};

use crate::state::ApiState;
use crate::status_error::ApiError;

/// The service account a pod gets when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// How long DefaultTolerationSeconds lets a pod stay on a failing node.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
/// The taints DefaultTolerationSeconds tolerates, in the order it adds them.
const NODE_FAILURE_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
/// A mirror pod (a static pod's API copy) skips the ServiceAccount plugin.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Runs the plugins on a new, defaulted pod.
pub fn admit(state: &ApiState, pod: &mut Pod) -> Result<(), ApiError> {
    service_account(state, pod)?;
    default_toleration_seconds(pod);
    Ok(())
}

/// DefaultTolerationSeconds: an existing toleration counts when its key is the taint's or
/// empty and its effect NoExecute or empty, as the plugin checks.
pub fn default_toleration_seconds(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for taint in NODE_FAILURE_TAINTS {
        let tolerated = tolerations.iter().any(|t| {
            let key = t.key.as_deref().unwrap_or("");
            let effect = t.effect.as_deref().unwrap_or("");
            (key.is_empty() || key == taint) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(taint.to_owned()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                value: None,
            });
        }
    }
}

/// ServiceAccount's defaulting and existence check.
fn service_account(state: &ApiState, pod: &mut Pod) -> Result<(), ApiError> {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.get_or_insert_with(Default::default);
    default_service_account_name(spec);
    if mirror {
        return Ok(());
    }

    let name = spec.service_account_name.clone().unwrap_or_default();
    let account = Key::namespaced("", "serviceaccounts", &namespace, &name)
        .ok()
        .and_then(|key| state.store.get(&key).ok().flatten())
        .and_then(|(_, object)| serde_json::from_value::<ServiceAccount>(object).ok());
    let Some(account) = account else {
        return Err(ApiError::Forbidden(format!(
            "pods {pod_name:?} is forbidden: error looking up service account \
             {namespace}/{name}: serviceaccount {name:?} not found"
        )));
    };
    let pull_secrets = account.image_pull_secrets.unwrap_or_default();
    if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty) && !pull_secrets.is_empty() {
        spec.image_pull_secrets = Some(
            pull_secrets
                .into_iter()
                .map(|s| LocalObjectReference { name: s.name })
                .collect(),
        );
    }
    Ok(())
}

/// `serviceAccountName` from the deprecated `serviceAccount` when only that is set (the `v1`
/// conversion), else `default`; then mirrored back into `serviceAccount`.
pub fn default_service_account_name(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let named = spec.service_account_name.clone().filter(|n| !n.is_empty());
    let deprecated = spec.service_account.clone().filter(|n| !n.is_empty());
    let name = named
        .or(deprecated)
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_owned());
    spec.service_account_name = Some(name.clone());
    spec.service_account = Some(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn tolerations(pod: &Pod) -> Vec<(String, Option<i64>)> {
        let list = pod
            .spec
            .as_ref()
            .unwrap()
            .tolerations
            .clone()
            .unwrap_or_default();
        list.into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.toleration_seconds))
            .collect()
    }

    #[test]
    fn a_pod_without_tolerations_gets_not_ready_then_unreachable_for_300_seconds() {
        let mut pod = Pod::default();
        default_toleration_seconds(&mut pod);
        assert_eq!(
            tolerations(&pod),
            vec![
                ("node.kubernetes.io/not-ready".into(), Some(300)),
                ("node.kubernetes.io/unreachable".into(), Some(300)),
            ]
        );
        let t = &pod.spec.unwrap().tolerations.unwrap()[0];
        assert_eq!(t.operator.as_deref(), Some("Exists"));
        assert_eq!(t.effect.as_deref(), Some("NoExecute"));
    }

    #[test]
    fn a_toleration_of_the_taint_or_of_every_key_is_kept_and_not_repeated() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                tolerations: Some(vec![Toleration {
                    key: Some("node.kubernetes.io/unreachable".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(10),
                    value: None,
                }]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        default_toleration_seconds(&mut pod);
        assert_eq!(
            tolerations(&pod),
            vec![
                ("node.kubernetes.io/unreachable".into(), Some(10)),
                ("node.kubernetes.io/not-ready".into(), Some(300)),
            ]
        );

        let mut all = Pod {
            spec: Some(PodSpec {
                tolerations: Some(vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Toleration::default()
                }]),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        default_toleration_seconds(&mut all);
        assert_eq!(tolerations(&all).len(), 1);
    }

    #[test]
    fn the_service_account_defaults_to_default_and_the_deprecated_field_mirrors_it() {
        let mut spec = PodSpec::default();
        default_service_account_name(&mut spec);
        assert_eq!(spec.service_account_name.as_deref(), Some("default"));
        assert_eq!(spec.service_account.as_deref(), Some("default"));

        let mut old = PodSpec {
            service_account: Some("builder".into()),
            ..PodSpec::default()
        };
        default_service_account_name(&mut old);
        assert_eq!(old.service_account_name.as_deref(), Some("builder"));
    }
}
