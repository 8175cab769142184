//! YAML documents read into JSON values the way kubectl reads them.
//!
//! kubectl turns a YAML manifest into JSON with sigs.k8s.io/yaml: go-yaml v2 decodes each
//! document into untyped Go values, which are then converted to JSON. go-yaml v2 resolves
//! *plain* (unquoted, untagged) scalars by YAML 1.1 rules, so `defaultMode: 0440` is the octal
//! integer 288, `yes` and `on` are `true`, and `<<` merges mappings. A YAML 1.2 reader sees the
//! string `"0440"` there and the API server rejects the Pod; this module reads what kubectl reads.
//!
//! The work is done in go-yaml's two steps on top of libyaml-safer's event stream: the events of
//! one document are composed into a node tree (anchors and aliases tied up), then each node is
//! constructed into a `serde_json::Value` with go-yaml v2's scalar resolution and
//! sigs.k8s.io/yaml's key conversion. go-yaml is a Go port of libyaml and libyaml-safer a Rust
//! one, so both accept the same syntax, including what YAML 1.2 tightened (a multi-line quoted
//! scalar whose last line is not indented past its key, as Kubernetes' own 1.6 examples wrote).
//!
//! # Scalars
//! A quoted or block (`|`, `>`) scalar is a string. A plain scalar is, in this order:
//! * null: empty, `~`, `null`, `Null`, `NULL`;
//! * a boolean: `y yes true on` and `n no false off`, each also capitalised or upper case;
//! * `.inf`, `-.inf`, `.nan` (and their case forms): floats JSON cannot carry, so an error, as in
//!   kubectl;
//! * when it starts with a digit or a sign, with every `_` removed: an integer as Go's
//!   `strconv.ParseInt(s, 0, 64)` reads it (`0x1F`, `0o17`, `0b101`, and a leading `0` for
//!   octal, so `0440` is 288), an unsigned 64-bit integer, or a decimal float (`09` is 9);
//! * otherwise a string.
//!
//! An explicit tag overrides the style: `!!str 0440` is a string, `!!int "0440"` is 288, and a
//! value that does not read as its tag is an error. Tags outside YAML's core types leave the
//! scalar a string.
//!
//! # Keys
//! JSON keys are strings, so a key that resolves to another type is written as sigs.k8s.io/yaml
//! writes it: `1: a` has the key `"1"`, `0x10: a` the key `"16"`, `on: a` the key `"true"`. A key
//! that is null, a mapping or a sequence is an error. A later duplicate key replaces an earlier
//! one, and a merge `<<` sets its keys at its place in the mapping, both as in go-yaml v2.
//!
//! # Caveats
//! * Timestamps (`2001-12-14`) stay the text written, which is what go-yaml v2 gives untyped
//!   values; `!!timestamp` accepts any text that starts with a four-digit year and a dash.
//! * `!!binary` scalars are refused: go-yaml v2 decodes their base64, coracle does not.

pub mod emit;
pub mod layout;

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use libyaml_safer::{Event, EventData, Mark, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// Deepest nesting of collections (aliases included) a document may have.
///
/// Turning a document into a value recurses once per level, so the limit must stay well
/// inside a 2 MiB thread stack in a debug build (about 700 levels overflowed one); no
/// Kubernetes object comes near 100.
pub const MAX_DEPTH: usize = 200;

/// Most nodes that aliases may expand to in one document, against "billion laughs" documents.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// A place in the YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Position {
    /// Where a libyaml mark is; its line and column count from 0.
    fn of(mark: Mark) -> Self {
        Position {
            line: mark.line as usize + 1,
            column: mark.column as usize + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Why a YAML document could not be read into JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlError {
    /// The text is not well-formed YAML.
    #[error("{message} at {at}")]
    Syntax {
        /// The parser's complaint.
        message: String,
        /// Where the parser stopped.
        at: Position,
    },
    /// A scalar does not read as the type its explicit tag names.
    #[error("cannot read {value:?} as {tag} at {at}")]
    Tag {
        /// The scalar's text.
        value: String,
        /// The tag, short form (`!!int`).
        tag: String,
        /// Where the scalar is.
        at: Position,
    },
    /// `.inf` or `.nan`: JSON has no such numbers, and kubectl refuses them too.
    #[error("{value} at {at} has no JSON form (JSON numbers are finite)")]
    NotFinite {
        /// The scalar's text.
        value: String,
        /// Where the scalar is.
        at: Position,
    },
    /// A mapping key that JSON cannot carry as an object key.
    #[error("mapping key at {at} is {what}, which cannot be a JSON object key")]
    Key {
        /// What the key is: `null`, `a mapping`, …
        what: &'static str,
        /// Where the key is.
        at: Position,
    },
    /// The value of a merge key `<<` is not a mapping or a sequence of mappings.
    #[error("merge key `<<` at {at} needs a mapping or a sequence of mappings as its value")]
    Merge {
        /// Where the value is.
        at: Position,
    },
    /// An alias names a node it is part of.
    #[error("alias at {at} refers to a node that contains it")]
    RecursiveAlias {
        /// Where the alias is.
        at: Position,
    },
    /// Aliases expand past [`MAX_ALIAS_NODES`].
    #[error("aliases expand to more than {MAX_ALIAS_NODES} nodes (at {at})")]
    AliasExpansion {
        /// The alias that went over the limit.
        at: Position,
    },
    /// Collections nest deeper than [`MAX_DEPTH`].
    #[error("collections nest deeper than {MAX_DEPTH} levels at {at}")]
    TooDeep {
        /// The collection that went over the limit.
        at: Position,
    },
    /// A `!!binary` scalar, which coracle does not decode.
    #[error("!!binary scalar at {at} is not supported (coracle does not decode base64 scalars)")]
    Binary {
        /// Where the scalar is.
        at: Position,
    },
}

impl YamlError {
    /// libyaml's complaint about `text`, in the order PyYAML prints it: what the parser was
    /// reading and where that began, then the problem, whose place ends the message.
    fn syntax(e: &libyaml_safer::Error, text: &str) -> Self {
        let message = match (e.context(), e.context_mark()) {
            (Some(context), Some(mark)) => {
                format!("{context} at {}, {}", Position::of(mark), e.problem())
            }
            _ => e.problem().to_string(),
        };
        // Only the reader's errors have no mark: it refuses control characters, and reads the
        // whole text before the first event, so the first such character is the one.
        let at = e
            .problem_mark()
            .map_or_else(|| refused_char(text), Position::of);
        YamlError::Syntax { message, at }
    }

    /// An alias whose anchor is not defined earlier in its document.
    fn unknown_anchor(anchor: &str, at: Position) -> Self {
        let message = format!("unknown anchor {anchor:?} referenced");
        YamlError::Syntax { message, at }
    }
}

/// Where the first character that YAML does not allow in a stream is (line 1 if none is).
fn refused_char(text: &str) -> Position {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}')
            || matches!(c, '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    };
    let offset = text.find(|c| !allowed(c)).unwrap_or(0);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The documents of a YAML stream as JSON values, in order; an empty document is `Null`.
///
/// Iteration stops after the first error, so the error of item `n` belongs to document `n + 1`.
pub fn documents(text: &str) -> Documents<'_> {
    let mut parser = Parser::new();
    parser.set_input(text.as_bytes());
    Documents {
        text,
        parser,
        done: false,
    }
}

/// Iterator returned by [`documents`].
pub struct Documents<'a> {
    text: &'a str,
    parser: Parser<&'a [u8]>,
    done: bool,
}

impl Iterator for Documents<'_> {
    type Item = Result<Value, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = compose_next(&mut self.parser, self.text).and_then(|root| match root {
            Some(node) => Constructor::default().value(&node).map(Some),
            None => Ok(None),
        });
        match read {
            Ok(Some(value)) => Some(Ok(value)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A composed YAML node: what the text says, before any type is resolved.
#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    at: Position,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Scalar {
        text: String,
        plain: bool,
        tag: Option<String>,
    },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
    Alias(Rc<Node>),
}

/// A collection whose end event has not come yet.
enum Open {
    Sequence {
        at: Position,
        anchor: Option<String>,
        items: Vec<Node>,
    },
    Mapping {
        at: Position,
        anchor: Option<String>,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

impl Open {
    fn anchor(&self) -> Option<&str> {
        match self {
            Open::Sequence { anchor, .. } | Open::Mapping { anchor, .. } => anchor.as_deref(),
        }
    }
}

/// Reads the events of the next document into its root node; `None` at the end of the stream.
fn compose_next(parser: &mut Parser<&[u8]>, text: &str) -> Result<Option<Node>, YamlError> {
    // Anchors are scoped to their document, as kubectl parses each document on its own.
    let mut anchors: HashMap<String, Rc<Node>> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut root = None;

    loop {
        let Event {
            data, start_mark, ..
        } = parser.parse().map_err(|e| YamlError::syntax(&e, text))?;
        let at = Position::of(start_mark);
        let (node, anchor) = match data {
            EventData::StreamStart { .. } | EventData::DocumentStart { .. } => continue,
            EventData::DocumentEnd { .. } => return Ok(Some(root.unwrap_or_else(|| empty(at)))),
            EventData::StreamEnd => return Ok(None),
            EventData::SequenceStart { .. } | EventData::MappingStart { .. }
                if open.len() >= MAX_DEPTH =>
            {
                return Err(YamlError::TooDeep { at });
            }
            EventData::SequenceStart { anchor, .. } => {
                let items = Vec::new();
                open.push(Open::Sequence { at, anchor, items });
                continue;
            }
            EventData::MappingStart { anchor, .. } => {
                let (entries, key) = (Vec::new(), None);
                open.push(Open::Mapping {
                    at,
                    anchor,
                    entries,
                    key,
                });
                continue;
            }
            EventData::SequenceEnd | EventData::MappingEnd => match open.pop() {
                Some(Open::Sequence { at, anchor, items }) => {
                    let kind = NodeKind::Sequence(items);
                    (Node { kind, at }, anchor)
                }
                Some(Open::Mapping {
                    at,
                    anchor,
                    entries,
                    ..
                }) => {
                    let kind = NodeKind::Mapping(entries);
                    (Node { kind, at }, anchor)
                }
                None => continue,
            },
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let kind = NodeKind::Scalar {
                    text: value,
                    plain: style == ScalarStyle::Plain,
                    tag: tag.map(|t| short_tag(&t)),
                };
                (Node { kind, at }, anchor)
            }
            // libyaml leaves anchors to its caller. An anchor of a collection still open is
            // looked at first: the alias is inside the node it names.
            EventData::Alias { anchor } => {
                if open.iter().any(|o| o.anchor() == Some(&anchor)) {
                    return Err(YamlError::RecursiveAlias { at });
                }
                let target = anchors
                    .get(&anchor)
                    .ok_or_else(|| YamlError::unknown_anchor(&anchor, at))?;
                let kind = NodeKind::Alias(Rc::clone(target));
                (Node { kind, at }, None)
            }
        };

        if let Some(anchor) = anchor {
            anchors.insert(anchor, Rc::new(node.clone()));
        }
        match open.last_mut() {
            Some(Open::Sequence { items, .. }) => items.push(node),
            Some(Open::Mapping { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => root = Some(node),
        }
    }
}

/// The node of an empty document.
fn empty(at: Position) -> Node {
    let (text, plain, tag) = (String::new(), true, None);
    let kind = NodeKind::Scalar { text, plain, tag };
    Node { kind, at }
}

/// `!!int` for YAML's core tags, the tag as libyaml resolved it otherwise.
fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(suffix) => format!("!!{suffix}"),
        None => tag.to_string(),
    }
}

/// A scalar's value once its type is resolved.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

/// Builds JSON from composed nodes, counting what aliases expand to.
#[derive(Default)]
struct Constructor {
    depth: usize,
    alias_depth: usize,
    alias_nodes: usize,
}

impl Constructor {
    fn value(&mut self, node: &Node) -> Result<Value, YamlError> {
        self.enter(node)?;
        let value = match &node.kind {
            NodeKind::Scalar { text, plain, tag } => json_scalar(
                resolve(text, *plain, tag.as_deref(), node.at)?,
                text,
                node.at,
            ),
            NodeKind::Sequence(items) => {
                let items = items.iter().map(|item| self.value(item));
                items.collect::<Result<Vec<_>, _>>().map(Value::Array)
            }
            NodeKind::Mapping(entries) => {
                let mut map = Map::new();
                self.fill(entries, &mut map)?;
                Ok(Value::Object(map))
            }
            NodeKind::Alias(target) => {
                self.alias_depth += 1;
                let value = self.value(target);
                self.alias_depth -= 1;
                value
            }
        };
        self.depth -= 1;
        value
    }

    /// Checks the depth and alias limits on the way into `node`; `value` undoes the depth.
    fn enter(&mut self, node: &Node) -> Result<(), YamlError> {
        if self.alias_depth > 0 {
            self.alias_nodes += 1;
            if self.alias_nodes > MAX_ALIAS_NODES {
                return Err(YamlError::AliasExpansion { at: node.at });
            }
        }
        if self.depth >= MAX_DEPTH {
            return Err(YamlError::TooDeep { at: node.at });
        }
        self.depth += 1;
        Ok(())
    }

    /// Sets the entries of a mapping into `map`, in order, so later keys replace earlier ones.
    fn fill(
        &mut self,
        entries: &[(Node, Node)],
        map: &mut Map<String, Value>,
    ) -> Result<(), YamlError> {
        for (key, value) in entries {
            if is_merge(key) {
                self.merge(value, map)?;
                continue;
            }
            let key = self.key(key)?;
            let value = self.value(value)?;
            map.insert(key, value);
        }
        Ok(())
    }

    /// A `<<` entry: a mapping, an alias of one, or a sequence of them, the first of which wins.
    fn merge(&mut self, value: &Node, map: &mut Map<String, Value>) -> Result<(), YamlError> {
        let merge_error = YamlError::Merge { at: value.at };
        match &value.kind {
            NodeKind::Mapping(_) | NodeKind::Alias(_) => {
                let entries = mapping_entries(value).ok_or(merge_error)?;
                self.merge_mapping(value, entries, map)
            }
            NodeKind::Sequence(items) => {
                // Going backwards lets earlier mappings overwrite later ones.
                for item in items.iter().rev() {
                    let entries = mapping_entries(item).ok_or(merge_error.clone())?;
                    self.merge_mapping(item, entries, map)?;
                }
                Ok(())
            }
            NodeKind::Scalar { .. } => Err(merge_error),
        }
    }

    fn merge_mapping(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        map: &mut Map<String, Value>,
    ) -> Result<(), YamlError> {
        let through_alias = matches!(node.kind, NodeKind::Alias(_));
        self.alias_depth += usize::from(through_alias);
        let filled = self.fill(entries, map);
        self.alias_depth -= usize::from(through_alias);
        filled
    }

    /// A mapping key as the JSON object key sigs.k8s.io/yaml makes of it.
    fn key(&mut self, node: &Node) -> Result<String, YamlError> {
        let at = node.at;
        match &node.kind {
            NodeKind::Scalar { text, plain, tag } => {
                match resolve(text, *plain, tag.as_deref(), at)? {
                    Scalar::Str(s) => Ok(s),
                    Scalar::Int(i) => Ok(i.to_string()),
                    Scalar::Bool(b) => Ok(b.to_string()),
                    Scalar::Float(f) => Ok(go_float_key(f)),
                    Scalar::Null => Err(YamlError::Key { what: "null", at }),
                    // sigs.k8s.io/yaml has no case for Go's uint64 keys and fails on them.
                    Scalar::Uint(_) => Err(YamlError::Key {
                        what: "an integer above 2^63-1",
                        at,
                    }),
                }
            }
            NodeKind::Alias(target) => self.key(target).map_err(|e| match e {
                YamlError::Key { what, .. } => YamlError::Key { what, at },
                other => other,
            }),
            NodeKind::Sequence(_) => Err(YamlError::Key {
                what: "a sequence",
                at,
            }),
            NodeKind::Mapping(_) => Err(YamlError::Key {
                what: "a mapping",
                at,
            }),
        }
    }
}

/// The entries of a mapping node or of the mapping an alias names.
fn mapping_entries(node: &Node) -> Option<&[(Node, Node)]> {
    match &node.kind {
        NodeKind::Mapping(entries) => Some(entries),
        NodeKind::Alias(target) => match &target.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        },
        _ => None,
    }
}

/// A merge key is a plain `<<` (or one tagged `!!merge`), never an alias or a quoted `"<<"`.
fn is_merge(key: &Node) -> bool {
    match &key.kind {
        NodeKind::Scalar { text, plain, tag } => {
            text == "<<" && (*plain && tag.is_none() || tag.as_deref() == Some("!!merge"))
        }
        _ => false,
    }
}

/// Resolves a scalar's type as go-yaml v2 does.
fn resolve(text: &str, plain: bool, tag: Option<&str>, at: Position) -> Result<Scalar, YamlError> {
    let tag = match tag {
        None if plain => return Ok(resolve_plain(text)),
        None | Some("!!str") => return Ok(Scalar::Str(text.to_string())),
        Some("!!binary") => return Err(YamlError::Binary { at }),
        Some(tag) => tag,
    };

    let resolved = resolve_plain(text);
    let fits = match (tag, resolved) {
        ("!!null", Scalar::Null) => Scalar::Null,
        ("!!bool", b @ Scalar::Bool(_)) => b,
        ("!!int", n @ (Scalar::Int(_) | Scalar::Uint(_))) => n,
        ("!!float", f @ Scalar::Float(_)) => f,
        // go-yaml widens a signed integer to a float under `!!float`, but not a uint64.
        ("!!float", Scalar::Int(i)) => Scalar::Float(i as f64),
        ("!!timestamp", Scalar::Str(s)) if looks_like_timestamp(&s) => Scalar::Str(s),
        ("!!null" | "!!bool" | "!!int" | "!!float" | "!!timestamp", _) => {
            return Err(YamlError::Tag {
                value: text.to_string(),
                tag: tag.to_string(),
                at,
            })
        }
        // Any other tag leaves the scalar its text.
        _ => Scalar::Str(text.to_string()),
    };
    Ok(fits)
}

/// go-yaml v2's resolution of a plain scalar (see the module docs for the rules).
fn resolve_plain(text: &str) -> Scalar {
    let Some(&first) = text.as_bytes().first() else {
        return Scalar::Null;
    };
    if let Some(word) = resolve_word(text) {
        return word;
    }
    match first {
        b'.' if is_yaml_float(text) => parse_float(text),
        b'0'..=b'9' | b'+' | b'-' => {
            let digits = text.replace('_', "");
            if let Some(n) = parse_go_int(&digits) {
                n
            } else if is_yaml_float(&digits) {
                parse_float(&digits)
            } else {
                Scalar::Str(text.to_string())
            }
        }
        _ => Scalar::Str(text.to_string()),
    }
}

/// The YAML 1.1 words for null, booleans and the special floats.
fn resolve_word(text: &str) -> Option<Scalar> {
    let scalar = match text {
        "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Scalar::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Scalar::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        _ => return None,
    };
    Some(scalar)
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `strconv.ParseUint(s, 0, 64)`.
fn parse_go_int(s: &str) -> Option<Scalar> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (Some('-'), &s[1..]),
        Some(b'+') => (Some('+'), &s[1..]),
        _ => (None, s),
    };
    let magnitude = parse_go_uint(body)?;
    let i64_limit = 1u64 << 63;
    match sign {
        Some('-') if magnitude <= i64_limit => Some(Scalar::Int((magnitude as i64).wrapping_neg())),
        Some('-') => None,
        _ if magnitude < i64_limit => Some(Scalar::Int(magnitude as i64)),
        // Only ParseUint is left, and it takes no sign.
        Some(_) => None,
        None => Some(Scalar::Uint(magnitude)),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` prefixes and a leading `0` for octal.
fn parse_go_uint(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    let (radix, digits) = match bytes {
        [] => return None,
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &s[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &s[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &s[2..]),
        [b'0', ..] => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let mut rest = s.as_bytes();
    if let [b'+' | b'-', tail @ ..] = rest {
        rest = tail;
    }

    let whole = digits(rest);
    rest = &rest[whole..];
    if let [b'.', tail @ ..] = rest {
        let fraction = digits(tail);
        if whole == 0 && fraction == 0 {
            return false;
        }
        rest = &tail[fraction..];
    } else if whole == 0 {
        return false;
    }

    match rest {
        [] => true,
        [b'e' | b'E', tail @ ..] => {
            let tail = match tail {
                [b'+' | b'-', t @ ..] => t,
                t => t,
            };
            !tail.is_empty() && digits(tail) == tail.len()
        }
        _ => false,
    }
}

/// A float that passed [`is_yaml_float`]; one out of f64's range stays a string, as Go's
/// `ParseFloat` fails on it.
fn parse_float(s: &str) -> Scalar {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Scalar::Float(f),
        _ => Scalar::Str(s.to_string()),
    }
}

/// go-yaml v2 tries a timestamp only on text starting with a four-digit year and a dash.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A resolved scalar as the JSON that Go's `json.Marshal` writes for it.
fn json_scalar(scalar: Scalar, text: &str, at: Position) -> Result<Value, YamlError> {
    let value = match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::from(i),
        Scalar::Uint(u) => Value::from(u),
        Scalar::Str(s) => Value::String(s),
        Scalar::Float(f) if !f.is_finite() => {
            let value = text.to_string();
            return Err(YamlError::NotFinite { value, at });
        }
        // Go writes a whole float without a fraction (`1e3` is `1000`), which the API
        // server then reads as an integer; do the same so integer fields accept it.
        Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::from(f as i64),
        Scalar::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
    };
    Ok(value)
}

/// A float key as sigs.k8s.io/yaml writes it: Go's `FormatFloat(f, 'g', -1, 32)`.
fn go_float_key(f: f64) -> String {
    let f = f as f32;
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        let inf = if f > 0.0 { ".inf" } else { "-.inf" };
        return inf.to_string();
    }

    // Rust's `{:e}` gives the shortest digits, as Go's -1 precision does; Go switches to the
    // exponent form below 1e-4 and from 1e6 and writes the exponent signed, two digits at least.
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return format!("{f}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests;
