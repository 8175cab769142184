//! The conversion of a YAML manifest as an edit of its text, so that a migration changes only
//! what it migrates.
//!
//! Each document is read twice from the same text: as values by kubectl's YAML 1.1 rules
//! ([`crate::yaml::documents`]), which [`convert_document`] converts into the expected result,
//! and as a layout of positions ([`crate::yaml::layout`]). The legacy annotation entries are
//! cut out of the text and an `initContainers:` block is written into the `spec` mapping at
//! its indentation; everything else — comments, quoting, key order, other documents — stays
//! byte for byte. The edited text is then read again and must give exactly the expected
//! values.
//!
//! # Caveats
//! A document the edit cannot handle (an annotations or metadata mapping written `{…}` that
//! keeps other entries, an `initContainers` key inside a `{…}` spec, a pod without `spec`,
//! aliases or merge keys on the way) is written out whole from its values instead: the values
//! are kept, its comments, formatting and key order are not, and the caller is told why.

use std::ops::Range;

use serde_norway::Value;

use super::{
    convert_document, template_path, ALPHA_INIT_CONTAINERS, BETA_INIT_CONTAINERS,
    STATUS_ANNOTATIONS,
};
use crate::validation::ValidationErrors;
use crate::yaml::layout::{self, Kind, Lines, Node};
use crate::yaml::{self, emit, YamlError};

/// Why a YAML manifest could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A document is not well-formed YAML, or not what kubectl could read.
    #[error("document {document}: cannot parse YAML")]
    Yaml {
        /// 1-based index of the document.
        document: usize,
        /// What the reader found.
        #[source]
        source: YamlError,
    },
    /// A legacy annotation does not hold a JSON array of containers.
    #[error("document {document}")]
    Invalid {
        /// 1-based index of the document.
        document: usize,
        /// The validation error on the annotation.
        #[source]
        source: ValidationErrors,
    },
    /// The edited text does not read back as the converted values; a bug, never the user's.
    #[error("document {document}: the converted document does not read back as converted")]
    ReadBack {
        /// 1-based index of the document.
        document: usize,
    },
}

/// A converted YAML manifest.
#[derive(Debug)]
pub struct ConvertedYaml {
    /// The new text; the input itself when nothing was converted.
    pub text: String,
    /// How many documents hold an object (are not empty).
    pub objects: usize,
    /// What happened to each document that was converted.
    pub documents: Vec<ConvertedDocument>,
}

/// What happened to one converted document.
#[derive(Debug)]
pub struct ConvertedDocument {
    /// 1-based index of the document.
    pub document: usize,
    /// One warning per converted pod or pod template.
    pub warnings: Vec<String>,
    /// Set when the document had to be written out whole: why the text could not be edited.
    pub rewritten: Option<String>,
}

/// One replacement in the text.
#[derive(Debug, Clone)]
struct Edit {
    range: Range<usize>,
    text: String,
}

/// A document to convert: what it must read as afterwards, and how its text changes.
struct Plan {
    index: usize,
    expected: serde_json::Value,
    converted: Value,
    warnings: Vec<String>,
    edits: Result<Vec<Edit>, String>,
}

/// Converts every document of a YAML manifest (see the module docs).
pub fn convert_yaml(text: &str) -> Result<ConvertedYaml, ConvertError> {
    let mut values = Vec::new();
    for (i, value) in yaml::documents(text).enumerate() {
        let source = |source| ConvertError::Yaml {
            document: i + 1,
            source,
        };
        values.push(value.map_err(source)?);
    }
    let layouts = layout::documents(text).map_err(|source| ConvertError::Yaml {
        document: values.len() + 1,
        source,
    })?;
    let objects = values.iter().filter(|v| !v.is_null()).count();

    let lines = Lines::new(text);
    let mut plans = Vec::new();
    for (index, (value, root)) in values.iter().zip(&layouts).enumerate() {
        let invalid = |source| ConvertError::Invalid {
            document: index + 1,
            source,
        };
        let mut converted = serde_norway::to_value(value).unwrap_or(Value::Null);
        let warnings = convert_document(&mut converted).map_err(invalid)?;
        if warnings.is_empty() {
            continue;
        }
        let expected = serde_json::to_value(&converted).unwrap_or_default();
        let edits = match root {
            Some(root) => document_edits(text, &lines, root),
            None => Err("the document is empty".to_string()),
        };
        plans.push(Plan {
            index,
            expected,
            converted,
            warnings,
            edits,
        });
    }

    // An edit that does not read back as expected is dropped for a whole-document rewrite.
    let mut out = apply(text, &layouts, &plans);
    let failed = read_back_failures(&out, &values, &plans);
    if !failed.is_empty() {
        for i in failed {
            if plans[i].edits.is_ok() {
                let reason = "the edited text did not read back as converted";
                plans[i].edits = Err(reason.to_string());
            }
        }
        out = apply(text, &layouts, &plans);
    }
    if let Some(&failed) = read_back_failures(&out, &values, &plans).first() {
        let document = plans[failed].index + 1;
        return Err(ConvertError::ReadBack { document });
    }

    let documents = plans
        .into_iter()
        .map(|plan| ConvertedDocument {
            document: plan.index + 1,
            warnings: plan.warnings,
            rewritten: plan.edits.err(),
        })
        .collect();
    Ok(ConvertedYaml {
        text: out,
        objects,
        documents,
    })
}

/// The text with every plan carried out: its edits, or its whole document rewritten.
fn apply(text: &str, layouts: &[Option<Node>], plans: &[Plan]) -> String {
    let mut edits = Vec::new();
    for plan in plans {
        match &plan.edits {
            Ok(e) => edits.extend(e.iter().cloned()),
            Err(_) => edits.extend(rewrite(text, layouts[plan.index].as_ref(), plan)),
        }
    }
    edits.sort_by_key(|e| e.range.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in edits {
        out.push_str(&text[at..edit.range.start]);
        out.push_str(&edit.text);
        at = edit.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Replaces a document's root mapping with its converted values.
fn rewrite(text: &str, root: Option<&Node>, plan: &Plan) -> Option<Edit> {
    let root = root?;
    let Kind::Mapping {
        flow, entries, end, ..
    } = &root.kind
    else {
        return None;
    };
    let end = if *flow {
        end.offset + 1
    } else {
        let lines = Lines::new(text);
        entry_range(text, &lines, root, entries.len().checked_sub(1)?, false)
            .ok()?
            .end
    };
    let mut body = emit::document(&plan.converted);
    if root.start.column > 0 {
        body.insert(0, '\n');
    }
    if !text[..end].ends_with('\n') {
        body.pop();
    }
    Some(Edit {
        range: root.start.offset..end,
        text: body,
    })
}

/// The plans whose documents do not read back from `out` as expected.
fn read_back_failures(out: &str, values: &[serde_json::Value], plans: &[Plan]) -> Vec<usize> {
    let read: Vec<_> = yaml::documents(out).collect();
    let unchanged = values.iter().enumerate().all(|(i, v)| {
        plans.iter().any(|p| p.index == i) || matches!(read.get(i), Some(Ok(r)) if same(r, v))
    });
    let count_ok = read.len() == values.len() && unchanged;
    let failed = plans.iter().enumerate().filter(|(_, plan)| {
        !count_ok || !matches!(read.get(plan.index), Some(Ok(r)) if same(r, &plan.expected))
    });
    failed.map(|(i, _)| i).collect()
}

/// JSON equality where `1` and `1.0` are the same number, as they are to the API server.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The edits that convert every pod and pod template of one document.
fn document_edits(text: &str, lines: &Lines, root: &Node) -> Result<Vec<Edit>, String> {
    let mut edits = Vec::new();
    for pod in pod_likes(root) {
        edits.extend(pod_edits(text, lines, pod)?);
    }
    Ok(edits)
}

/// The pods and pod templates of a document, found as [`convert_document`] finds them.
fn pod_likes(root: &Node) -> Vec<&Node> {
    let kind = root.get("kind").and_then(Node::scalar).unwrap_or("");
    if kind.ends_with("List") {
        let items = match root.get("items").map(|n| &n.kind) {
            Some(Kind::Sequence { items, .. }) => items.iter().collect(),
            _ => Vec::new(),
        };
        return items.into_iter().flat_map(pod_likes).collect();
    }
    let Some(path) = template_path(kind) else {
        return Vec::new();
    };
    let found = path.iter().try_fold(root, |node, key| node.get(key));
    found.into_iter().collect()
}

/// The edits for one pod or pod template: cut the legacy annotations, write `initContainers`.
fn pod_edits(text: &str, lines: &Lines, pod: &Node) -> Result<Vec<Edit>, String> {
    let Some(metadata) = pod.get("metadata") else {
        return Ok(Vec::new());
    };
    let Some(annotations) = metadata.get("annotations") else {
        return Ok(Vec::new());
    };
    let Some(entries) = annotations.entries() else {
        return Ok(Vec::new());
    };
    let legacy: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].0.scalar().is_some_and(is_legacy_key))
        .collect();
    if legacy.is_empty() {
        return Ok(Vec::new());
    }

    let mut edits = cut_annotations(text, lines, pod, metadata, annotations, &legacy)?;
    let winner = annotations
        .get(BETA_INIT_CONTAINERS)
        .or(annotations.get(ALPHA_INIT_CONTAINERS));
    if let Some(winner) = winner {
        let json = winner
            .scalar()
            .ok_or("a legacy annotation is not a plain value")?;
        let containers: Value =
            serde_json::from_str(json).map_err(|e| format!("annotation is not JSON: {e}"))?;
        let spec = pod.get("spec").ok_or("the pod has no spec mapping")?;
        edits.push(write_init_containers(text, lines, spec, &containers)?);
    }
    Ok(edits)
}

fn is_legacy_key(key: &str) -> bool {
    key == BETA_INIT_CONTAINERS || key == ALPHA_INIT_CONTAINERS || STATUS_ANNOTATIONS.contains(&key)
}

/// Removes the legacy entries; the `annotations` key too when nothing else is left in it,
/// and writes `metadata: {}` when that leaves the metadata empty.
fn cut_annotations(
    text: &str,
    lines: &Lines,
    pod: &Node,
    metadata: &Node,
    annotations: &Node,
    legacy: &[usize],
) -> Result<Vec<Edit>, String> {
    let all = annotations.entries().map_or(0, <[_]>::len);
    if legacy.len() < all {
        return legacy
            .iter()
            .map(|&i| remove_entry(text, lines, annotations, i))
            .collect();
    }
    let meta_entries = metadata.entries().map_or(0, <[_]>::len);
    let index = metadata.find("annotations").ok_or("no annotations key")?;
    if meta_entries > 1 {
        return Ok(vec![remove_entry(text, lines, metadata, index)?]);
    }
    let index = pod.find("metadata").ok_or("no metadata key")?;
    let range = entry_range(text, lines, pod, index, false)?;
    Ok(vec![Edit {
        range,
        text: "metadata: {}\n".to_string(),
    }])
}

/// Cuts the whole lines of entry `index` of a block mapping.
fn remove_entry(text: &str, lines: &Lines, map: &Node, index: usize) -> Result<Edit, String> {
    let range = entry_range(text, lines, map, index, true)?;
    Ok(Edit {
        range,
        text: String::new(),
    })
}

/// The text of entry `index` of a block mapping: from its key (or the start of the key's line
/// when `whole_lines`) to the line break of its last line. Comment lines after the entry that
/// are not indented past its key belong to what follows and are left out.
fn entry_range(
    text: &str,
    lines: &Lines,
    map: &Node,
    index: usize,
    whole_lines: bool,
) -> Result<Range<usize>, String> {
    let Kind::Mapping {
        flow: false,
        entries,
        end,
    } = &map.kind
    else {
        return Err("a mapping to edit is written in flow style ({...})".to_string());
    };
    let key = entries[index].0.start;
    let line_start = lines.start(key.line);
    if whole_lines && !text[line_start..key.offset].trim().is_empty() {
        return Err("a key to remove shares its line with other text".to_string());
    }
    let next = entries.get(index + 1).map_or(*end, |(k, _)| k.start);
    let next_alone = text[lines.start(next.line)..next.offset].trim().is_empty();
    let stop = if next_alone { next.line } else { next.line + 1 };
    let last = last_line_of(lines, &entries[index].0, stop, key.column);
    let start = if whole_lines { line_start } else { key.offset };
    let end = lines.start(last + 1).min(text.len());
    Ok(start..end)
}

/// The last line, before `stop`, that belongs to the node starting at `node`: lines indented
/// past `column`, or at it when they are items of an indentless block sequence (`- `).
fn last_line_of(lines: &Lines, node: &Node, stop: usize, column: usize) -> usize {
    let mut last = node.start.line;
    for line in node.start.line + 1..stop.min(lines.count()) {
        let text = lines.text(line);
        let content = text.trim_start_matches(' ');
        let indent = text.len() - content.len();
        if content.is_empty() {
            continue;
        }
        let item = content == "-" || content.starts_with("- ");
        if indent > column || indent == column && item {
            last = line;
        }
    }
    last
}

/// Writes `initContainers` into `spec`: in place of an existing one, else before `containers`,
/// else at the end.
fn write_init_containers(
    text: &str,
    lines: &Lines,
    spec: &Node,
    containers: &Value,
) -> Result<Edit, String> {
    let entries = spec.entries().ok_or("spec is not a mapping")?;
    if spec.is_flow() {
        if spec.find("initContainers").is_some() {
            return Err("spec is written in flow style ({...}) with initContainers".into());
        }
        let json = serde_json::to_string(containers).map_err(|e| e.to_string())?;
        let comma = if entries.is_empty() { "" } else { ", " };
        let at = spec.start.offset + 1;
        return Ok(Edit {
            range: at..at,
            text: format!("initContainers: {json}{comma}"),
        });
    }

    let column = entries.first().map_or(0, |(k, _)| k.start.column);
    let block = emit::block_entry(
        "initContainers",
        containers,
        column,
        dash_offset(lines, spec),
    );
    if let Some(index) = spec.find("initContainers") {
        let range = entry_range(text, lines, spec, index, true)?;
        return Ok(Edit { range, text: block });
    }
    let at = match spec.find("containers") {
        Some(index) => entry_range(text, lines, spec, index, true)?.start,
        None => entry_range(text, lines, spec, entries.len() - 1, true)?.end,
    };
    let text = if at == text.len() && !text.ends_with('\n') {
        format!("\n{block}")
    } else {
        block
    };
    Ok(Edit {
        range: at..at,
        text,
    })
}

/// How far right of its key the file puts a block sequence's dashes, judged by `containers`.
fn dash_offset(lines: &Lines, spec: &Node) -> usize {
    let Some(index) = spec.find("containers") else {
        return 0;
    };
    let (key, value) = &spec.entries().unwrap_or_default()[index];
    let Kind::Sequence { flow: false, items } = &value.kind else {
        return 0;
    };
    let Some(first) = items.first() else {
        return 0;
    };
    let line = lines.text(first.start.line);
    let dash = line.len() - line.trim_start_matches(' ').len();
    dash.saturating_sub(key.start.column)
}

#[cfg(test)]
mod tests;
