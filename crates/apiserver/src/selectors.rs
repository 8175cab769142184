//! Label and field selectors, as upstream parses and matches them.

use serde_json::Value;

use crate::resources::Resource;
use crate::status_error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let bad = || ApiError::BadRequest(format!("unable to parse requirement: {text:?}"));
        let mut reqs = Vec::new();
        for part in split_top(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelRequirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelRequirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = split_word(part, " notin ") {
                LabelRequirement::NotIn(k, set_values(rest).ok_or_else(bad)?)
            } else if let Some((k, rest)) = split_word(part, " in ") {
                LabelRequirement::In(k, set_values(rest).ok_or_else(bad)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                LabelRequirement::Exists(part.to_owned())
            } else {
                return Err(bad());
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether `object`'s labels match.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

fn split_word(part: &str, word: &str) -> Option<(String, String)> {
    let (k, rest) = part.split_once(word)?;
    Some((k.trim().to_owned(), rest.trim().to_owned()))
}

fn set_values(rest: String) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

/// Splits at commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A parsed `fieldSelector` for one resource.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector of `res`: `events.k8s.io/v1` labels (`regarding.name`) become the
    /// core labels of the stored `v1` Events they are matched on, as upstream converts them.
    pub fn for_resource(text: &str, res: &Resource) -> Result<FieldSelector, ApiError> {
        if !crate::events::converts(res) {
            return FieldSelector::parse(text, res.plural);
        }
        let mut reqs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, rest) = match part.find(['=', '!']) {
                Some(at) => part.split_at(at),
                None => (part, ""),
            };
            let label = label.trim();
            let core = crate::events::core_field_label(label).ok_or_else(|| {
                ApiError::BadRequest(format!("field label not supported: {label}"))
            })?;
            reqs.push(format!("{core}{rest}"));
        }
        FieldSelector::parse(&reqs.join(","), res.plural)
    }

    /// Parses `a=b,c!=d` and checks each field is supported for `resource`.
    pub fn parse(text: &str, resource: &str) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: {text:?}; can't understand {part:?}"
                )));
            };
            let field = field.trim();
            if !supported(resource, field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether `object` matches.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual == *value) == *equal
        })
    }
}

fn supported(resource: &str, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match resource {
        "pods" => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        ),
        "events" => {
            field.starts_with("involvedObject.")
                || matches!(field, "reason" | "reportingComponent" | "source" | "type")
                || field.starts_with("metadata.")
        }
        "secrets" => field == "type",
        "namespaces" => field == "status.phase",
        "nodes" => field == "spec.unschedulable",
        _ => false,
    }
}

/// The selector value of `field` in `object` (`""` when absent, as upstream).
fn field_value(object: &Value, field: &str) -> String {
    if field == "source" {
        // Upstream falls back to the reporting controller of events without a source.
        return [
            object.pointer("/source/component"),
            object.get("reportingComponent"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_owned();
    }
    let pointer = format!("/{}", field.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if field == "spec.hostNetwork" || field == "spec.unschedulable" => "false".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_support_set_and_existence_operators() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(&pod);
        assert!(ok("app=web"));
        assert!(ok("app==web,tier"));
        assert!(!ok("app!=web"));
        assert!(ok("tier in (front, back)"));
        assert!(!ok("tier notin (front)"));
        assert!(ok("!missing"));
        assert!(!ok("missing"));
    }

    #[test]
    fn events_k8s_io_selectors_use_its_own_labels_on_the_stored_v1_events() {
        let res = crate::resources::find("events.k8s.io", "v1", "events").unwrap();
        let stored = json!({"metadata": {"name": "e"}, "reason": "Started",
            "involvedObject": {"kind": "Pod", "name": "web"}, "reportingComponent": "kubelet"});
        let ok = |s: &str| {
            FieldSelector::for_resource(s, res)
                .unwrap()
                .matches(&stored)
        };
        assert!(ok("regarding.name=web,regarding.kind==Pod"));
        assert!(ok("reportingController=kubelet,reason!=Pulled"));
        assert!(ok("source=kubelet"));
        assert!(!ok("regarding.name=db"));
        assert!(FieldSelector::for_resource("involvedObject.name=web", res).is_err());
        assert!(FieldSelector::for_resource("note=x", res).is_err());
    }

    #[test]
    fn unsupported_field_labels_are_refused() {
        assert!(FieldSelector::parse("spec.bogus=1", "pods").is_err());
        let sel = FieldSelector::parse("metadata.name=web,status.phase!=Running", "pods").unwrap();
        assert!(sel.matches(&json!({"metadata": {"name": "web"}, "status": {"phase": "Pending"}})));
    }
}
