//! Block-style YAML that reads back, by kubectl's YAML 1.1 rules, as exactly the value written.
//!
//! A string is written plain only when it is plainly a string to every reader: printable ASCII
//! that starts with a letter or `/`, holds no `: ` or ` #`, does not end in `:` or a space, and
//! that [`super`]'s YAML 1.1 resolution reads as a string (so `yes`, `on`, `null` are quoted,
//! as is `0440` because it starts with a digit). Every other string is double-quoted with
//! escapes, which no YAML reader resolves to another type.

use std::fmt::Write;

use serde_norway::Value;

/// `key: value` as the entry of a block mapping whose keys are at column `indent`; the dashes
/// of block sequences sit `dash` columns right of their key (0 or 2, as the file has them).
pub fn block_entry(key: &str, value: &Value, indent: usize, dash: usize) -> String {
    let mut out = Emitter {
        out: String::new(),
        dash,
    };
    out.entry(key, value, indent, false);
    out.out
}

/// A whole document in block style, ending with a line break.
pub fn document(value: &Value) -> String {
    let mut out = Emitter {
        out: String::new(),
        dash: 0,
    };
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                out.entry(&key_text(k), v, 0, false);
            }
        }
        Value::Sequence(s) if !s.is_empty() => out.items(s, 0),
        other => {
            out.out.push_str(&inline(other));
            out.out.push('\n');
        }
    }
    out.out
}

/// A scalar or empty collection on one line: `"yes"`, `12`, `[]`.
pub fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => string(s),
        Value::Sequence(s) if s.is_empty() => "[]".to_string(),
        Value::Mapping(m) if m.is_empty() => "{}".to_string(),
        // Not reached for JSON values; a flow form the loader reads back the same way.
        other => serde_json::to_string(other).unwrap_or_else(|_| "null".to_string()),
    }
}

/// A string, plain when that is safe and double-quoted otherwise.
pub fn string(s: &str) -> String {
    if plain_is_safe(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Controls, and what YAML 1.1 counts as line breaks or a byte order mark.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with([':', ' '])
        && matches!(super::resolve_plain(s), super::Scalar::Str(_))
}

/// A number as JSON writes it, which YAML 1.1 reads as the same number.
fn number(n: &serde_norway::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    serde_json::Number::from_f64(f).map_or_else(|| "null".to_string(), |n| n.to_string())
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => inline(other),
    }
}

struct Emitter {
    out: String,
    dash: usize,
}

impl Emitter {
    /// One mapping entry with its key at `indent`; `after_dash` when the line is already
    /// written up to the key (the first entry of a mapping in a sequence).
    fn entry(&mut self, key: &str, value: &Value, indent: usize, after_dash: bool) {
        if !after_dash {
            self.pad(indent);
        }
        self.out.push_str(&string(key));
        self.out.push(':');
        match value {
            Value::Mapping(m) if !m.is_empty() => {
                self.out.push('\n');
                for (k, v) in m {
                    self.entry(&key_text(k), v, indent + 2, false);
                }
            }
            Value::Sequence(s) if !s.is_empty() => {
                self.out.push('\n');
                self.items(s, indent + self.dash);
            }
            other => {
                self.out.push(' ');
                self.out.push_str(&inline(other));
                self.out.push('\n');
            }
        }
    }

    /// The items of a block sequence whose dashes are at `indent`.
    fn items(&mut self, items: &[Value], indent: usize) {
        for item in items {
            self.pad(indent);
            self.out.push('-');
            match item {
                Value::Mapping(m) if !m.is_empty() => {
                    self.out.push(' ');
                    for (i, (k, v)) in m.iter().enumerate() {
                        self.entry(&key_text(k), v, indent + 2, i == 0);
                    }
                }
                Value::Sequence(s) if !s.is_empty() => {
                    self.out.push('\n');
                    self.items(s, indent + 2);
                }
                other => {
                    self.out.push(' ');
                    self.out.push_str(&inline(other));
                    self.out.push('\n');
                }
            }
        }
    }

    fn pad(&mut self, columns: usize) {
        self.out.extend(std::iter::repeat_n(' ', columns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_back(value: serde_json::Value) {
        let yaml = document(&serde_norway::to_value(&value).unwrap());
        let read: Vec<_> = super::super::documents(&yaml).collect();
        assert_eq!(read, [Ok(value)], "{yaml}");
    }

    #[test]
    fn strings_yaml_1_1_would_misread_are_quoted() {
        for s in [
            "yes",
            "on",
            "No",
            "~",
            "",
            " x",
            "x ",
            "0440",
            "1e3",
            "0x1F",
            "a: b",
            "a #b",
            "#x",
            "-c",
            "null",
            "1_000",
            ".5",
            "<<",
            "@x",
            "x:",
            "é",
            "tab\there",
            "line\nbreak",
            "\u{2028}",
            "'q'",
            "\"q\"",
            "*a",
            "&a",
            "!x",
            "|",
            ">",
            "%x",
            "[a]",
            "{a}",
        ] {
            reads_back(serde_json::json!({ "k": s }));
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        let yaml = document(
            &serde_norway::to_value(serde_json::json!({
                "image": "docker.io/library/busybox:latest", "name": "web", "path": "/data"
            }))
            .unwrap(),
        );
        assert_eq!(
            yaml,
            "image: docker.io/library/busybox:latest\nname: web\npath: /data\n"
        );
    }

    #[test]
    fn nested_collections_read_back() {
        reads_back(serde_json::json!({
            "a": [{"b": [1, 2.5, true, null], "c": {}}, [], [["x"]], {"d": {"e": -3}}],
            "f": 18446744073709551615u64,
        }));
    }
}
