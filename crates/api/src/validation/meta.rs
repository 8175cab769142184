//! Name syntax (RFC 1123 labels and subdomains, qualified names, label values, environment
//! variable and port names) and ObjectMeta checks, with apimachinery's messages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{FieldError, Path};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
    alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
    and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
    characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const ENV_VAR_MSG: &str = "a valid environment variable name must consist of alphabetic \
    characters, digits, '_', '-', or '.', and must not start with a digit";
const ENV_VAR_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// apimachinery's `RegexError`: the message, examples and the regex in one sentence.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{ex}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// apimachinery's `MaxLenError`.
pub(crate) fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn matches_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// Problems with `s` as an RFC 1123 label (empty when it is one).
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(s) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Problems with `s` as an RFC 1123 subdomain (empty when it is one).
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty() || !s.split('.').all(matches_dns1123_label) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn matches_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Problems with `s` as a qualified name (`[prefix/]name`), used for label and annotation keys.
pub fn qualified_name(s: &str) -> Vec<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return vec!["prefix part must be non-empty".to_string()];
            }
            let mut errs: Vec<String> = dns1123_subdomain(prefix)
                .into_iter()
                .map(|m| format!("prefix part {m}"))
                .collect();
            errs.extend(qualified_name_part(name));
            return errs;
        }
        _ => {
            let shape = regex_error(
                &format!("a qualified name {QUALIFIED_NAME_MSG}"),
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"],
            );
            return vec![format!(
                "{shape} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    qualified_name_part(name)
}

fn qualified_name_part(name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec!["name part must be non-empty".to_string()];
    }
    let mut errs = Vec::new();
    if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_part(name) {
        let shape = regex_error(
            QUALIFIED_NAME_MSG,
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        );
        errs.push(format!("name part {shape}"));
    }
    errs
}

/// Problems with `s` as a label value.
pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !matches_qualified_part(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Problems with `s` as an environment variable name.
pub(crate) fn env_var_name(s: &str) -> Vec<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let mut errs = Vec::new();
    if !s.chars().all(ok_char) || s.starts_with(|c: char| c.is_ascii_digit()) {
        errs.push(regex_error(
            ENV_VAR_MSG,
            ENV_VAR_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// Problems with `s` as a port name (IANA_SVC_NAME).
pub(crate) fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens (-)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen (-)".into());
    }
    errs
}

/// `name`/`generateName`, `namespace` (when `namespaced`), labels and annotations.
pub(crate) fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        if meta.generate_name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(
                path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in dns1123_subdomain(name) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
    }
    if namespaced {
        let ns = meta.namespace.as_deref().unwrap_or("");
        if ns.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        }
        for msg in if ns.is_empty() {
            vec![]
        } else {
            dns1123_label(ns)
        } {
            errs.push(FieldError::invalid(path.child("namespace"), ns, &msg));
        }
    }
    validate_labels(meta.labels.as_ref(), &path.child("labels"), errs);
    validate_annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
}

/// Label keys are qualified names, values label values; both reported on the map's path.
pub(crate) fn validate_labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    for (key, value) in labels.into_iter().flatten() {
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(path.clone(), key, &msg));
        }
        for msg in label_value(value) {
            errs.push(FieldError::invalid(path.clone(), value, &msg));
        }
    }
}

/// Annotation keys are qualified names (checked lower-cased); all of them fit in 256 KiB.
pub(crate) fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let mut total = 0;
    for (key, value) in annotations.into_iter().flatten() {
        for msg in qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path.clone(), key, &msg));
        }
        total += key.len() + value.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        let detail = format!("must have at most {ANNOTATIONS_MAX_BYTES} bytes");
        errs.push(FieldError::too_long(path.clone(), &detail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_error_has_upstream_wording_with_two_spaces() {
        let errs = dns1123_label("Web");
        assert_eq!(
            errs,
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
                 '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
                 '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
    }

    #[test]
    fn long_label_reports_length_and_nothing_else() {
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn subdomain_accepts_dots_and_rejects_uppercase() {
        assert!(dns1123_subdomain("web.example-1").is_empty());
        assert_eq!(dns1123_subdomain("Web").len(), 1);
        assert_eq!(dns1123_subdomain("a..b").len(), 1);
    }

    #[test]
    fn qualified_names_take_an_optional_prefix() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("MyName").is_empty());
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(qualified_name("x/-bad")[0].starts_with("name part must consist"));
    }

    #[test]
    fn env_names_may_not_start_with_a_digit() {
        assert!(env_var_name("MY_VAR.x-1").is_empty());
        assert!(env_var_name("1VAR")[0].starts_with("a valid environment variable name"));
        assert!(env_var_name("A=B")[0].contains("'[-._a-zA-Z][-._a-zA-Z0-9]*'"));
    }

    #[test]
    fn port_names_follow_iana_svc_name() {
        assert!(port_name("http").is_empty());
        assert_eq!(
            port_name("a-very-long-port-name"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(
            port_name("8080"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name("a--b"),
            vec!["must not contain consecutive hyphens (-)"]
        );
    }
}
