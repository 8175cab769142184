//! Updates of a live Pod: only images, `activeDeadlineSeconds` (set or shortened), additions
//! to `tolerations` and the negative-grace-period special case may change.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration};

use super::meta::validate_object_meta;
use super::{spec, FieldError, Path, ValidationErrors};

const UPDATABLE: &str = "pod updates may not change fields other than \
    `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
    `spec.tolerations` (only additions to existing tolerations),\
    `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates `new` as a replacement of the stored `old`: the whole new Pod, then the
/// update rules of `ValidatePodUpdate`.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    let meta = Path::new("metadata");
    validate_object_meta(&new.metadata, true, &meta, &mut errs);
    for (field, n, o) in [
        ("name", &new.metadata.name, &old.metadata.name),
        (
            "namespace",
            &new.metadata.namespace,
            &old.metadata.namespace,
        ),
        ("uid", &new.metadata.uid, &old.metadata.uid),
    ] {
        if o.is_some() && n != o {
            let value = n.as_deref().unwrap_or("");
            errs.push(FieldError::invalid(
                meta.child(field),
                value,
                "field is immutable",
            ));
        }
    }

    let empty = PodSpec::default();
    let new_spec = new.spec.as_ref().unwrap_or(&empty);
    let old_spec = old.spec.as_ref().unwrap_or(&empty);
    let sp = Path::new("spec");
    spec::validate_pod_spec(new_spec, &sp, false, &mut errs);
    validate_spec_update(new_spec, old_spec, &sp, &mut errs);
    ValidationErrors::check("Pod", new.metadata.name.as_deref().unwrap_or(""), errs)
}

fn validate_spec_update(new: &PodSpec, old: &PodSpec, sp: &Path, errs: &mut Vec<FieldError>) {
    let empty = Vec::new();
    let new_init = new.init_containers.as_ref().unwrap_or(&empty);
    let old_init = old.init_containers.as_ref().unwrap_or(&empty);
    if !same_count(
        &new.containers,
        &old.containers,
        &sp.child("containers"),
        errs,
    ) || !same_count(new_init, old_init, &sp.child("initContainers"), errs)
        || !deadline_update(
            new.active_deadline_seconds,
            old.active_deadline_seconds,
            sp,
            errs,
        )
    {
        return;
    }
    only_added_tolerations(new, old, &sp.child("tolerations"), errs);

    // Take every updatable field from the old spec; whatever still differs was not allowed.
    let mut munged = new.clone();
    for (n, o) in munged.containers.iter_mut().zip(&old.containers) {
        n.image = o.image.clone();
    }
    for (n, o) in munged.init_containers.iter_mut().flatten().zip(old_init) {
        n.image = o.image.clone();
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations = old.tolerations.clone();
    let was_negative = old.termination_grace_period_seconds.is_some_and(|g| g < 0);
    if was_negative && new.termination_grace_period_seconds == Some(1) {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    if &munged != old {
        errs.push(FieldError::forbidden(
            sp.clone(),
            &format!("{UPDATABLE}\n{}", spec_diff(old, &munged)),
        ));
    }
}

fn same_count(
    new: &[Container],
    old: &[Container],
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> bool {
    if new.len() != old.len() {
        errs.push(FieldError::forbidden(
            path.clone(),
            "pod updates may not add or remove containers",
        ));
        return false;
    }
    true
}

/// The deadline may be set, or lowered, but never raised or removed.
fn deadline_update(
    new: Option<i64>,
    old: Option<i64>,
    sp: &Path,
    errs: &mut Vec<FieldError>,
) -> bool {
    let p = sp.child("activeDeadlineSeconds");
    match (new, old) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid_int(
                p,
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
            false
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid_int(
                p,
                n,
                "must be less than or equal to previous value",
            ));
            false
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid_raw(
                p,
                "null",
                "must not update from a positive integer to nil value",
            ));
            true
        }
        _ => true,
    }
}

fn only_added_tolerations(new: &PodSpec, old: &PodSpec, path: &Path, errs: &mut Vec<FieldError>) {
    let new_tols: &[Toleration] = new.tolerations.as_deref().unwrap_or_default();
    for (i, old_tol) in old.tolerations.iter().flatten().enumerate() {
        let kept = new_tols.iter().any(|t| {
            let mut t = t.clone();
            t.toleration_seconds = old_tol.toleration_seconds;
            &t == old_tol
        });
        if !kept {
            let detail = "existing toleration can not be modified except its tolerationSeconds";
            errs.push(FieldError::forbidden(path.index(i), detail));
        }
    }
}

/// A short `-old/+new` listing of the top-level spec fields that differ.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let to_map = |s: &PodSpec| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (to_map(old), to_map(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    for key in keys {
        let (o, n) = (old.get(key), new.get(key));
        if o == n {
            continue;
        }
        if let Some(o) = o {
            out.push_str(&format!("-   {key}: {o},\n"));
        }
        if let Some(n) = n {
            out.push_str(&format!("+   {key}: {n},\n"));
        }
    }
    out.push_str("  }\n");
    out
}
