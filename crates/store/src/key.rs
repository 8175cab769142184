//! Store keys and key prefixes.
//!
//! # Layout
//!
//! A namespaced object lives at `/<group>/<resource>/<namespace>/<name>` and a cluster-scoped
//! one at `/<group>/<resource>/<name>`, where `<group>` is the API group as written in
//! `apiVersion` before the slash, or `core` for the core group (`apiVersion: v1`). Examples:
//! `/core/pods/default/web`, `/apps/deployments/kube-system/dns`, `/core/namespaces/default`.
//! The version is not part of the key: all versions of a resource share one storage object, as
//! in Kubernetes.
//!
//! Whether a resource is namespaced is a property of the resource (from discovery), never of a
//! single object, so within one `/<group>/<resource>/` subtree every key has the same number of
//! segments and the two layouts cannot collide. The API layer must pick the right constructor;
//! the store does not know which resources are namespaced.
//!
//! Segments are non-empty and contain no `/` (Kubernetes names, namespaces and resources never
//! do), so a key is unambiguous and byte order groups a resource, then a namespace, together.
//! Every [`Prefix`] ends with `/`: `/core/pods/default/` cannot match `/core/pods/default2/x`.

use crate::error::StoreError;

/// The group segment used for the core (legacy, `apiVersion: v1`) API group.
pub const CORE_GROUP: &str = "core";

/// The full storage key of one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The key of a namespaced object. `group` is `""` (or `"core"`) for the core group.
    pub fn namespaced(
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Key, StoreError> {
        let mut key = resource_path(group, resource)?;
        push_segment(&mut key, "namespace", namespace)?;
        key.push('/');
        push_segment(&mut key, "name", name)?;
        Ok(Key(key))
    }

    /// The key of a cluster-scoped object. `group` is `""` (or `"core"`) for the core group.
    pub fn cluster(group: &str, resource: &str, name: &str) -> Result<Key, StoreError> {
        let mut key = resource_path(group, resource)?;
        push_segment(&mut key, "name", name)?;
        Ok(Key(key))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key prefix selecting a subtree for `list` and `watch`. Always ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Every object in the store.
    pub fn all() -> Prefix {
        Prefix("/".to_string())
    }

    /// Every object of a resource: all namespaces of a namespaced resource, or all objects of
    /// a cluster-scoped one.
    pub fn resource(group: &str, resource: &str) -> Result<Prefix, StoreError> {
        resource_path(group, resource).map(Prefix)
    }

    /// The objects of a namespaced resource in one namespace.
    pub fn namespace(group: &str, resource: &str, namespace: &str) -> Result<Prefix, StoreError> {
        let mut prefix = resource_path(group, resource)?;
        push_segment(&mut prefix, "namespace", namespace)?;
        prefix.push('/');
        Ok(Prefix(prefix))
    }

    /// The prefix as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` lies in this subtree.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.0)
    }

    /// The smallest string greater than every key in the subtree: the trailing `/` bumped to
    /// the next byte, `0`.
    pub(crate) fn end(&self) -> String {
        let mut end = self.0.clone();
        end.pop();
        end.push('0');
        end
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `/<group>/<resource>/`.
fn resource_path(group: &str, resource: &str) -> Result<String, StoreError> {
    let group = if group.is_empty() { CORE_GROUP } else { group };
    let mut path = String::from("/");
    push_segment(&mut path, "group", group)?;
    path.push('/');
    push_segment(&mut path, "resource", resource)?;
    path.push('/');
    Ok(path)
}

fn push_segment(out: &mut String, part: &'static str, segment: &str) -> Result<(), StoreError> {
    let reason = if segment.is_empty() {
        "it is empty"
    } else if segment.contains('/') {
        "it contains '/'"
    } else if segment.contains('\0') {
        "it contains a NUL byte"
    } else {
        out.push_str(segment);
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        part,
        segment: segment.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_group_is_spelled_core_and_cluster_keys_have_no_namespace() {
        let pod = Key::namespaced("", "pods", "default", "web").unwrap();
        assert_eq!(pod.as_str(), "/core/pods/default/web");
        let ns = Key::cluster("", "namespaces", "default").unwrap();
        assert_eq!(ns.as_str(), "/core/namespaces/default");
        let deploy = Key::namespaced("apps", "deployments", "kube-system", "dns").unwrap();
        assert_eq!(deploy.as_str(), "/apps/deployments/kube-system/dns");
    }

    #[test]
    fn namespace_prefix_does_not_match_a_namespace_sharing_its_start() {
        let prefix = Prefix::namespace("", "pods", "default").unwrap();
        assert!(prefix.contains("/core/pods/default/web"));
        assert!(!prefix.contains("/core/pods/default2/web"));
        assert!(Prefix::resource("", "pods")
            .unwrap()
            .contains("/core/pods/default2/web"));
        assert!(prefix.end().as_str() > "/core/pods/default/zzzz");
        assert!(prefix.end().as_str() < "/core/pods/default2/a");
    }

    #[test]
    fn segments_with_slashes_or_empty_are_rejected() {
        assert!(matches!(
            Key::namespaced("", "pods", "a/b", "x"),
            Err(StoreError::InvalidKey {
                part: "namespace",
                ..
            })
        ));
        assert!(matches!(
            Key::cluster("", "nodes", ""),
            Err(StoreError::InvalidKey { part: "name", .. })
        ));
    }
}
