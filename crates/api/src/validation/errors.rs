//! Field paths, field errors and their aggregate, rendered as apimachinery renders them.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

/// A field path such as `spec.containers[0].resources.limits[cpu]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(String);

impl Path {
    /// A root path (`spec`, `metadata`).
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return Path(name.to_string());
        }
        Path(format!("{}.{name}", self.0))
    }

    /// `self[i]`.
    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{i}]", self.0))
    }

    /// `self[key]`, the form upstream uses for map entries.
    pub fn key(&self, key: &str) -> Self {
        Path(format!("{}[{key}]", self.0))
    }

    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of failure a [`FieldError`] is; mirrors apimachinery's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required field is missing or empty.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value must be unique and is not.
    Duplicate,
    /// A reference points at nothing.
    NotFound,
    /// The field may not be set (in this context).
    Forbidden,
    /// A value is not one of an enumerated set.
    NotSupported,
    /// A value is too long.
    TooLong,
}

impl ErrorKind {
    /// The words apimachinery starts the error body with.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::TooLong => "Too long",
        }
    }

    /// The `reason` of a Status cause (`FieldValueRequired`, …).
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::TooLong => "FieldValueTooLong",
        }
    }
}

/// The offending value of a field error; strings print Go-quoted, numbers bare.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorValue {
    /// No value is shown (Required, Forbidden, TooLong).
    None,
    /// A string, shown quoted.
    Str(String),
    /// An integer, shown bare.
    Int(i64),
    /// A pre-rendered value (structures), shown as is.
    Raw(String),
}

impl fmt::Display for ErrorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorValue::None => Ok(()),
            ErrorValue::Str(s) => f.write_str(&go_quote(s)),
            ErrorValue::Int(i) => write!(f, "{i}"),
            ErrorValue::Raw(s) => f.write_str(s),
        }
    }
}

/// Quotes like Go's `%q` for the printable strings found in manifests.
pub(crate) fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// One validation failure of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Where the failure is, e.g. `spec.containers[1].name`.
    pub path: Path,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The offending value, if the kind shows one.
    pub value: ErrorValue,
    /// Upstream's explanation; empty when there is none.
    pub detail: String,
}

impl FieldError {
    fn new(path: Path, kind: ErrorKind, value: ErrorValue, detail: &str) -> Self {
        FieldError {
            path,
            kind,
            value,
            detail: detail.to_string(),
        }
    }

    /// `Required value[: detail]`.
    pub fn required(path: Path, detail: &str) -> Self {
        Self::new(path, ErrorKind::Required, ErrorValue::None, detail)
    }

    /// `Invalid value: "v": detail`.
    pub fn invalid(path: Path, value: &str, detail: &str) -> Self {
        Self::new(
            path,
            ErrorKind::Invalid,
            ErrorValue::Str(value.to_string()),
            detail,
        )
    }

    /// `Invalid value: 5: detail`.
    pub fn invalid_int(path: Path, value: i64, detail: &str) -> Self {
        Self::new(path, ErrorKind::Invalid, ErrorValue::Int(value), detail)
    }

    /// `Invalid value: <raw>: detail`, for values that are not strings or numbers.
    pub fn invalid_raw(path: Path, value: &str, detail: &str) -> Self {
        Self::new(
            path,
            ErrorKind::Invalid,
            ErrorValue::Raw(value.to_string()),
            detail,
        )
    }

    /// `Duplicate value: "v"`.
    pub fn duplicate(path: Path, value: &str) -> Self {
        Self::new(
            path,
            ErrorKind::Duplicate,
            ErrorValue::Str(value.to_string()),
            "",
        )
    }

    /// `Not found: "v"`.
    pub fn not_found(path: Path, value: &str) -> Self {
        Self::new(
            path,
            ErrorKind::NotFound,
            ErrorValue::Str(value.to_string()),
            "",
        )
    }

    /// `Forbidden: detail`.
    pub fn forbidden(path: Path, detail: &str) -> Self {
        Self::new(path, ErrorKind::Forbidden, ErrorValue::None, detail)
    }

    /// `Unsupported value: "v": supported values: "a", "b"`.
    pub fn not_supported(path: Path, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::new(
            path,
            ErrorKind::NotSupported,
            ErrorValue::Str(value.to_string()),
            &detail,
        )
    }

    /// `Too long: detail`.
    pub fn too_long(path: Path, detail: &str) -> Self {
        Self::new(path, ErrorKind::TooLong, ErrorValue::None, detail)
    }

    /// The error without its path, as a Status cause's `message` carries it.
    pub fn body(&self) -> String {
        let mut out = self.kind.label().to_string();
        if self.value != ErrorValue::None {
            out.push_str(&format!(": {}", self.value));
        }
        if !self.detail.is_empty() {
            out.push_str(&format!(": {}", self.detail));
        }
        out
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

/// All validation failures of one object, rendered as kube-apiserver's 422 message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationErrors {
    /// The object's kind (`Pod`, `Deployment`).
    pub kind: String,
    /// The object's name (may be empty).
    pub name: String,
    /// The failures, in the order they were found; never empty.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// `Ok` when `errors` is empty, else the aggregate.
    pub fn check(kind: &str, name: &str, errors: Vec<FieldError>) -> Result<(), Self> {
        if errors.is_empty() {
            return Ok(());
        }
        Err(ValidationErrors {
            kind: kind.to_string(),
            name: name.to_string(),
            errors,
        })
    }

    /// The `details.causes` list of the 422 `Status` kube-apiserver answers with.
    pub fn causes(&self) -> Vec<StatusCause> {
        self.errors
            .iter()
            .map(|e| StatusCause {
                reason: Some(e.kind.cause_reason().to_string()),
                message: Some(e.body()),
                field: Some(e.path.to_string()),
            })
            .collect()
    }

    /// The errors alone, one aggregate (`e` or `[e1, e2]`) without the `Kind "name"` prefix.
    pub fn aggregate(&self) -> String {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        if parts.len() == 1 {
            return parts[0].clone();
        }
        format!("[{}]", parts.join(", "))
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is invalid: {}",
            self.kind,
            go_quote(&self.name),
            self.aggregate()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_error_renders_without_brackets() {
        let errs = vec![FieldError::required(Path::new("spec").child("x"), "")];
        let err = ValidationErrors::check("Pod", "bad", errs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"bad\" is invalid: spec.x: Required value"
        );
    }

    #[test]
    fn several_errors_render_in_brackets_joined_by_comma() {
        let p = Path::new("spec");
        let errs = vec![
            FieldError::required(p.child("a"), ""),
            FieldError::duplicate(p.child("b").index(1).child("name"), "web"),
        ];
        let err = ValidationErrors::check("Pod", "x", errs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"x\" is invalid: [spec.a: Required value, spec.b[1].name: Duplicate value: \"web\"]"
        );
    }

    #[test]
    fn causes_carry_reason_body_and_field() {
        let errs = vec![FieldError::not_supported(
            Path::new("spec").child("restartPolicy"),
            "X",
            &["Always"],
        )];
        let err = ValidationErrors::check("Pod", "x", errs).unwrap_err();
        let cause = &err.causes()[0];
        assert_eq!(cause.reason.as_deref(), Some("FieldValueNotSupported"));
        assert_eq!(
            cause.message.as_deref(),
            Some("Unsupported value: \"X\": supported values: \"Always\"")
        );
        assert_eq!(cause.field.as_deref(), Some("spec.restartPolicy"));
    }
}
