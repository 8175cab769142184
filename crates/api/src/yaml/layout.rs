//! Where each node of a YAML stream starts in the text, for editing a manifest in place.
//!
//! [`documents`](super::documents) reads values; this module keeps what that loses: the byte
//! offset, line and column of every node, which collections are written in flow style (`{…}`,
//! `[…]`), and where each mapping ends. Only start positions are kept, since a block
//! collection's end position (libyaml's) lies at the next token, past trailing comments; callers
//! find where an entry ends from the lines of the text (see [`Lines`]).

use libyaml_safer::{Event, EventData, MappingStyle, Parser, ScalarStyle, SequenceStyle};

use super::YamlError;

/// A place in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Byte offset into the text.
    pub offset: usize,
    /// 0-based line.
    pub line: usize,
    /// 0-based column, in characters.
    pub column: usize,
}

/// A node of a document and where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    /// The first character of the node (the key's first character for a block mapping, the
    /// bracket for a flow collection, the content for a block scalar).
    pub start: Mark,
    /// What the node is.
    pub kind: Kind,
}

/// The kinds of [`Node`].
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar with its text as the parser reads it (quotes and escapes undone).
    Scalar {
        /// The scalar's value before any type is resolved.
        text: String,
        /// Plain, quoted or block.
        style: ScalarStyle,
    },
    /// A sequence.
    Sequence {
        /// Written as `[…]`.
        flow: bool,
        /// The items, in order.
        items: Vec<Node>,
    },
    /// A mapping.
    Mapping {
        /// Written as `{…}`.
        flow: bool,
        /// Key and value of each entry, in order.
        entries: Vec<(Node, Node)>,
        /// Where the parser saw the mapping end: the next token after its last entry.
        end: Mark,
    },
    /// An alias (`*name`); what it names is not followed.
    Alias,
}

impl Node {
    /// The text of a scalar node.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping node.
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Mapping { entries, .. } => Some(entries),
            _ => None,
        }
    }

    /// The index of the entry whose key is the scalar `key`; the last one wins, as when loading.
    pub fn find(&self, key: &str) -> Option<usize> {
        let entries = self.entries()?;
        entries.iter().rposition(|(k, _)| k.scalar() == Some(key))
    }

    /// The value of the entry `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.find(key)
            .map(|i| &self.entries().unwrap_or_default()[i].1)
    }

    /// Whether this is a collection written in flow style.
    pub fn is_flow(&self) -> bool {
        match &self.kind {
            Kind::Mapping { flow, .. } | Kind::Sequence { flow, .. } => *flow,
            _ => false,
        }
    }
}

/// The byte offsets at which the lines of a text start.
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    /// Indexes the lines of `text`.
    pub fn new(text: &'a str) -> Self {
        let breaks = text.match_indices('\n').map(|(i, _)| i + 1);
        let starts = std::iter::once(0).chain(breaks).collect();
        Lines { text, starts }
    }

    /// How many lines there are (a last line without a line break counts).
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The byte offset where line `line` starts; the text's length past the last line.
    pub fn start(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.text.len())
    }

    /// Line `line` without its line break.
    pub fn text(&self, line: usize) -> &'a str {
        let end = self.start(line + 1).min(self.text.len());
        let line = &self.text[self.start(line).min(end)..end];
        line.trim_end_matches(['\n', '\r'])
    }
}

impl Mark {
    /// A libyaml mark in `text`. Its index counts bytes (as the edits need) but starts after a
    /// byte order mark, which the reader drops; its line and column count from 0.
    fn of(mark: libyaml_safer::Mark, text: &str) -> Self {
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Mark {
            offset: bom + mark.index as usize,
            line: mark.line as usize,
            column: mark.column as usize,
        }
    }
}

/// A collection whose end event has not come yet.
enum Open {
    Sequence(Mark, bool, Vec<Node>),
    Mapping(Mark, bool, Vec<(Node, Node)>, Option<Node>),
}

/// The root node of each document of `text`, in the order [`super::documents`] reads them;
/// `None` for an empty document.
pub fn documents(text: &str) -> Result<Vec<Option<Node>>, YamlError> {
    let mut parser = Parser::new();
    parser.set_input(text.as_bytes());
    let mut docs = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut root = None;

    loop {
        let Event {
            data, start_mark, ..
        } = parser.parse().map_err(|e| YamlError::syntax(&e, text))?;
        let at = Mark::of(start_mark, text);
        let node = match data {
            EventData::DocumentEnd { .. } => {
                docs.push(root.take());
                continue;
            }
            EventData::StreamEnd => break,
            EventData::SequenceStart { style, .. } => {
                let flow = style == SequenceStyle::Flow;
                open.push(Open::Sequence(at, flow, Vec::new()));
                continue;
            }
            EventData::MappingStart { style, .. } => {
                let flow = style == MappingStyle::Flow;
                open.push(Open::Mapping(at, flow, Vec::new(), None));
                continue;
            }
            EventData::SequenceEnd | EventData::MappingEnd => match open.pop() {
                Some(Open::Sequence(start, flow, items)) => Node {
                    start,
                    kind: Kind::Sequence { flow, items },
                },
                Some(Open::Mapping(start, flow, entries, _)) => Node {
                    start,
                    kind: Kind::Mapping {
                        flow,
                        entries,
                        end: at,
                    },
                },
                None => continue,
            },
            EventData::Scalar { value, style, .. } => Node {
                start: at,
                kind: Kind::Scalar { text: value, style },
            },
            EventData::Alias { .. } => Node {
                start: at,
                kind: Kind::Alias,
            },
            EventData::StreamStart { .. } | EventData::DocumentStart { .. } => continue,
        };

        match open.last_mut() {
            Some(Open::Sequence(_, _, items)) => items.push(node),
            Some(Open::Mapping(_, _, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => root = Some(node),
        }
    }
    Ok(docs)
}
