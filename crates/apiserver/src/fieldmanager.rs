//! Field ownership in `metadata.managedFields`, as kube-apiserver's field manager and
//! structured-merge-diff track it for server-side apply.
//!
//! Every write records which manager owns which fields. An entry is one
//! (manager, operation `Apply`|`Update`, apiVersion, subresource) with a `FieldsV1` set:
//! `f:<field>` for a field, `k:{"name":"x"}` for a list item by its merge key, `v:<value>` for
//! a value of a set-like primitive list, and `.` for an item that is owned itself and has
//! owned children.
//!
//! - An update (PUT, or a patch that is not an apply) gives its manager the fields it added or
//!   changed, and takes them from every other manager, without conflicts.
//! - An apply gives its manager exactly the fields of the applied configuration. A field
//!   another manager owns and the apply changes is a conflict, unless forced (then it moves).
//!   Fields the manager applied before and no longer applies are removed from the object,
//!   unless another manager owns them too.
//!
//! # Caveats
//!
//! Lists are keyed by the strategic merge keys of [`crate::patch::strategic`] (container
//! `ports` by `containerPort` alone, where upstream's schema keys them by `containerPort` and
//! `protocol`); lists without a merge key are owned as a whole. There is no schema: a map
//! absent before a write counts as added (its `.` is owned); for a create, the fields
//! upstream's empty typed object has are listed per kind in [`empty_object`]. Field sets are
//! not converted between versions: an event's managers written through `v1` and through
//! `events.k8s.io/v1` name their fields in their own version (upstream converts them).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// One step of a field path, in its FieldsV1 spelling: `f:data`, `k:{"name":"x"}`, `v:"a"`.
pub type Step = String;

/// A field path from the object's root.
pub type Path = Vec<Step>;

/// `kubectl apply`'s annotation, which server-side apply by `kubectl` keeps in step.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// Adds `path`.
    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[Step]) -> bool {
        self.0.contains(path)
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The members, in path order.
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// The members of both.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// The members not in `other` (exact paths, not their children).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// The members in both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether a member is `path` or lies below it.
    pub fn has_at_or_below(&self, path: &[Step]) -> bool {
        self.0
            .range(path.to_vec()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    fn retain(&mut self, keep: impl Fn(&Path) -> bool) {
        self.0.retain(|p| keep(p));
    }

    /// The set in upstream's `FieldsV1` encoding.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for step in path {
                node = node
                    .entry(step.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("field set nodes are objects");
            }
            node.insert(".".into(), json!({}));
        }
        tidy(&mut root);
        Value::Object(root)
    }

    /// The set a `FieldsV1` value encodes.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::default();
        let Some(map) = fields.as_object() else {
            return Err("FieldsV1 must be an object".into());
        };
        read_fields(map, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

/// A member without children is `{}`; one with children keeps `.`.
fn tidy(map: &mut Map<String, Value>) {
    for child in map.values_mut() {
        if let Some(m) = child.as_object_mut() {
            if m.len() == 1 && m.contains_key(".") {
                m.clear();
            } else {
                tidy(m);
            }
        }
    }
}

fn read_fields(
    map: &Map<String, Value>,
    path: &mut Path,
    set: &mut FieldSet,
) -> Result<(), String> {
    for (key, child) in map {
        if key == "." {
            set.insert(path.clone());
            continue;
        }
        if !(key.starts_with("f:") || key.starts_with("k:") || key.starts_with("v:")) {
            return Err(format!("unexpected FieldsV1 key {key:?}"));
        }
        path.push(key.clone());
        match child.as_object() {
            Some(m) if m.is_empty() => set.insert(path.clone()),
            Some(m) => read_fields(m, path, set)?,
            None => return Err(format!("FieldsV1 value of {key:?} must be an object")),
        }
        path.pop();
    }
    Ok(())
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn path_string(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(name) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = step.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = step.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

/// Orders paths as structured-merge-diff iterates a set: at each level the members first,
/// then the children, each in element order.
fn set_order(p: &Path, q: &Path) -> Ordering {
    let common = p.iter().zip(q).take_while(|(a, b)| a == b).count();
    match (p.len() == common, q.len() == common) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => {
            let p_member = p.len() == common + 1;
            let q_member = q.len() == common + 1;
            match (p_member, q_member) {
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => p[common].cmp(&q[common]),
            }
        }
    }
}

/// How a list field is owned.
enum ListKind<'a> {
    /// Items by their merge key.
    Keyed(&'a str),
    /// Primitive values, each owned alone.
    Set,
    /// The whole list.
    Atomic,
}

fn list_kind(field: &str) -> ListKind<'static> {
    match crate::patch::strategic::merge_strategy(field) {
        Some((_, Some(key))) => ListKind::Keyed(key),
        Some((_, None)) => ListKind::Set,
        None => ListKind::Atomic,
    }
}

/// The step of each item of a keyed list, or `None` when an item has no key or two share
/// one (the list is then owned as a whole).
fn item_steps(items: &[Value], key: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::with_capacity(items.len());
    for item in items {
        let id = item.get(key)?;
        let step = format!("k:{}", json!({ key: id }));
        if steps.contains(&step) {
            return None;
        }
        steps.push(step);
    }
    Some(steps)
}

fn value_step(value: &Value) -> Step {
    format!("v:{value}")
}

/// The fields `value` sets, as structured-merge-diff's `ToFieldSet` lists them: leaves, empty
/// maps, list items, and lists owned as a whole.
pub fn fields_of(value: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            walk_fields(&mut vec![format!("f:{k}")], k, v, &mut set);
        }
    }
    set
}

fn walk_fields(path: &mut Path, field: &str, value: &Value, set: &mut FieldSet) {
    match value {
        Value::Object(map) if map.is_empty() => set.insert(path.clone()),
        Value::Object(map) => {
            for (k, v) in map {
                path.push(format!("f:{k}"));
                walk_fields(path, k, v, set);
                path.pop();
            }
        }
        Value::Array(items) => match list_kind(field) {
            ListKind::Keyed(key) => match item_steps(items, key) {
                Some(steps) => {
                    for (step, item) in steps.into_iter().zip(items) {
                        path.push(step);
                        set.insert(path.clone());
                        if let Some(map) = item.as_object() {
                            for (k, v) in map {
                                path.push(format!("f:{k}"));
                                walk_fields(path, k, v, set);
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                }
                None => set.insert(path.clone()),
            },
            ListKind::Set => {
                for item in items {
                    path.push(value_step(item));
                    set.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Atomic => set.insert(path.clone()),
        },
        _ => set.insert(path.clone()),
    }
}

/// What changed between two objects, as structured-merge-diff's `Compare` reports it.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Present only in the new object.
    pub added: FieldSet,
    /// Present in both, with another value.
    pub modified: FieldSet,
    /// Present only in the old object.
    pub removed: FieldSet,
}

impl Comparison {
    /// Added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    fn filter(mut self, scope: &Scope) -> Comparison {
        for set in [&mut self.added, &mut self.modified, &mut self.removed] {
            scope.filter(set);
        }
        self
    }
}

/// What a create compares against: the fields upstream's empty typed object of `kind` has
/// (structs, and slices without `omitempty`, as JSON's `{}` and `null`), so that a create
/// owns the `.` of maps it adds (`f:data`, `f:labels`) but not of those.
pub fn empty_object(kind: &str) -> Value {
    let mut object = json!({"metadata": {}});
    match kind {
        "Pod" => {
            object["spec"] = json!({"containers": null});
            object["status"] = json!({});
        }
        "Node" | "Namespace" => {
            object["spec"] = json!({});
            object["status"] = json!({});
        }
        "Lease" => object["spec"] = json!({}),
        "Event" => {
            object["involvedObject"] = json!({});
            object["source"] = json!({});
        }
        _ => {}
    }
    object
}

/// Compares `old` with `new`.
pub fn compare(old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    let empty = Map::new();
    let old_map = old.as_object().unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
    for k in keys {
        let (o, n) = (old_map.get(k), new_map.get(k));
        walk_compare(&mut vec![format!("f:{k}")], k, o, n, &mut c);
    }
    c
}

fn leaf(path: &Path, old: Option<&Value>, new: Option<&Value>, c: &mut Comparison) {
    match (old, new) {
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        (Some(a), Some(b)) if a != b => c.modified.insert(path.clone()),
        _ => {}
    }
}

fn presence(path: &Path, old: Option<&Value>, new: Option<&Value>, c: &mut Comparison) {
    match (old, new) {
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        _ => {}
    }
}

fn walk_compare(
    path: &mut Path,
    field: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    c: &mut Comparison,
) {
    // A null beside a map or list is an empty one (a nil map or slice in a typed object).
    let (empty_map, empty_list) = (json!({}), json!([]));
    let like = |other: Option<&Value>| match other {
        Some(Value::Object(_)) => Some(&empty_map),
        Some(Value::Array(_)) => Some(&empty_list),
        _ => None,
    };
    let (old, new) = match (old, new) {
        (Some(Value::Null), n) if like(n).is_some() => (like(n), n),
        (o, Some(Value::Null)) if like(o).is_some() => (o, like(o)),
        other => other,
    };
    let is = |v: Option<&Value>, f: fn(&Value) -> bool| v.is_none_or(f);
    if is(old, Value::is_object) && is(new, Value::is_object) {
        let empty = Map::new();
        let o = old.and_then(Value::as_object).unwrap_or(&empty);
        let n = new.and_then(Value::as_object).unwrap_or(&empty);
        if o.is_empty() && n.is_empty() {
            return leaf(path, old, new, c);
        }
        presence(path, old, new, c);
        let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
        for k in keys {
            path.push(format!("f:{k}"));
            walk_compare(path, k, o.get(k), n.get(k), c);
            path.pop();
        }
        return;
    }
    if !(is(old, Value::is_array) && is(new, Value::is_array)) {
        return leaf(path, old, new, c);
    }
    let none = Vec::new();
    let o = old.and_then(Value::as_array).unwrap_or(&none);
    let n = new.and_then(Value::as_array).unwrap_or(&none);
    if o.is_empty() && n.is_empty() {
        return leaf(path, old, new, c);
    }
    match list_kind(field) {
        ListKind::Keyed(key) => {
            let (Some(os), Some(ns)) = (item_steps(o, key), item_steps(n, key)) else {
                return leaf(path, old, new, c);
            };
            presence(path, old, new, c);
            let steps: BTreeSet<&Step> = os.iter().chain(ns.iter()).collect();
            for step in steps {
                let find = |steps: &[Step], items: &'_ [Value]| -> Option<Value> {
                    steps
                        .iter()
                        .position(|s| s == step)
                        .map(|i| items[i].clone())
                };
                let (oi, ni) = (find(&os, o), find(&ns, n));
                path.push(step.clone());
                walk_compare(path, "", oi.as_ref(), ni.as_ref(), c);
                path.pop();
            }
        }
        ListKind::Set => {
            presence(path, old, new, c);
            for v in n.iter().filter(|v| !o.contains(v)) {
                path.push(value_step(v));
                c.added.insert(path.clone());
                path.pop();
            }
            for v in o.iter().filter(|v| !n.contains(v)) {
                path.push(value_step(v));
                c.removed.insert(path.clone());
                path.pop();
            }
        }
        ListKind::Atomic => leaf(path, old, new, c),
    }
}

/// Where a write lands: the resource version and subresource of its manager entry, and which
/// fields that endpoint may not own.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `v1`, `coordination.k8s.io/v1`, …
    pub api_version: String,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// The kind has a status subresource: the main resource does not own `status`.
    pub has_status: bool,
}

/// Metadata the server sets, which no manager owns (upstream's `stripMetaManager`).
const SERVER_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

impl Scope {
    /// Writes to `api_version`'s main resource; `has_status` when the kind has a status
    /// subresource.
    pub fn main(api_version: &str, has_status: bool) -> Scope {
        Scope {
            api_version: api_version.to_owned(),
            subresource: None,
            has_status,
        }
    }

    /// Writes to `api_version`'s status subresource.
    pub fn status(api_version: &str) -> Scope {
        Scope {
            api_version: api_version.to_owned(),
            subresource: Some("status".into()),
            has_status: true,
        }
    }

    /// Drops what no manager of this endpoint owns: apiVersion, kind, server metadata, and
    /// `status` on the main resource (or everything but `status` on the status subresource).
    pub fn filter(&self, set: &mut FieldSet) {
        let status_only = self.subresource.as_deref() == Some("status");
        set.retain(|p| {
            let first = p[0].as_str();
            if first == "f:apiVersion" || first == "f:kind" {
                return false;
            }
            if first == "f:metadata" {
                if p.len() == 1 {
                    return false;
                }
                let field = p[1].strip_prefix("f:").unwrap_or("");
                if SERVER_METADATA.contains(&field) {
                    return false;
                }
            }
            if status_only {
                return first == "f:status";
            }
            !(self.has_status && first == "f:status")
        });
    }
}

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Every other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The manager's name.
    pub manager: String,
    /// How it wrote.
    pub operation: Operation,
    /// The version its fields are in.
    pub api_version: String,
    /// The subresource it wrote through.
    pub subresource: Option<String>,
    /// When its fields last changed.
    pub time: Option<String>,
    /// The fields it owns.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether `self` is the entry of this (manager, operation, subresource, version): an
    /// applier is one entry whatever version it applies.
    fn is(&self, manager: &str, operation: Operation, scope: &Scope) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == scope.subresource
            && (operation == Operation::Apply || self.api_version == scope.api_version)
    }

    /// Upstream's manager identifier (the JSON of the entry without fields and time), by which
    /// it sorts conflicts.
    fn identifier(&self) -> String {
        // In the Go struct's field order, as upstream marshals it.
        let mut id = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            json!(self.manager),
            self.operation.as_str()
        );
        if self.operation == Operation::Update {
            id.push_str(&format!(",\"apiVersion\":{}", json!(self.api_version)));
        }
        if let Some(sub) = &self.subresource {
            id.push_str(&format!(",\"subresource\":{}", json!(sub)));
        }
        id.push('}');
        id
    }

    /// The manager as conflicts name it: `"kubectl"`, `"kubelet" with subresource "status"
    /// using v1`.
    fn describe(&self) -> String {
        let mut out = json!(self.manager).to_string();
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {}", json!(sub)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            entry.insert("subresource".into(), json!(sub));
        }
        Value::Object(entry)
    }

    fn from_json(value: &Value) -> Result<Entry, String> {
        let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        let operation = match text("operation").as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion")
            .filter(|v| !v.is_empty())
            .ok_or("apiVersion must not be empty")?;
        if text("fieldsType").as_deref() != Some("FieldsV1") {
            return Err("fieldsType must be FieldsV1".into());
        }
        let fields = match value.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f)?,
            None => FieldSet::default(),
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version,
            subresource: text("subresource").filter(|s| !s.is_empty()),
            time: text("time"),
            fields,
        })
    }
}

/// The entries of `object`'s `metadata.managedFields`; `Err` when one does not decode.
pub fn decode(object: &Value) -> Result<Vec<Entry>, String> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_json).collect(),
        Some(_) => Err("managedFields must be a list".into()),
    }
}

/// Stores `entries` as `object`'s `managedFields`, sorted as upstream sorts them (operation,
/// time, manager, apiVersion, subresource); none at all removes the field.
pub fn encode(object: &mut Value, mut entries: Vec<Entry>) {
    entries.sort_by(|p, q| {
        (p.operation, p.time.as_deref().unwrap_or(""), &p.manager)
            .cmp(&(q.operation, q.time.as_deref().unwrap_or(""), &q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let meta = crate::meta::metadata(object);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        let list = entries.iter().map(Entry::to_json).collect();
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// An update by `manager` from `old` to `new`: it owns what it added or changed, which every
/// other manager loses, and nobody owns what it removed.
pub fn update(
    entries: &mut Vec<Entry>,
    old: &Value,
    new: &Value,
    manager: &str,
    scope: &Scope,
    now: &str,
) {
    let cmp = compare(old, new).filter(scope);
    let changed = cmp.changed();
    for entry in entries.iter_mut() {
        entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update, scope))
        {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.time = Some(now.to_owned());
            }
            None => entries.push(Entry {
                manager: manager.to_owned(),
                operation: Operation::Update,
                api_version: scope.api_version.clone(),
                subresource: scope.subresource.clone(),
                time: Some(now.to_owned()),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    cap_update_managers(entries);
}

/// How many update entries an object keeps (upstream's `DefaultMaxUpdateManagers`).
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest update entries are merged into beyond the cap.
const OLD_UPDATES_MANAGER: &str = "ancient-changes";

/// Merges the oldest update entries into one `ancient-changes` entry per version until at
/// most [`MAX_UPDATE_MANAGERS`] are left, step for step as upstream's `capManagersManager`.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .map(|e| (e.time.clone().unwrap_or_default(), e.identifier()))
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    // Oldest first; the same second by identifier.
    updaters.sort();
    let mut first_of_version: Vec<(String, String)> = Vec::new();
    let mut length = updaters.len();
    for (_, id) in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = entries.iter().find(|e| e.identifier() == id).cloned() else {
            continue;
        };
        let version = entry.api_version.clone();
        let bucket = Entry {
            manager: OLD_UPDATES_MANAGER.into(),
            operation: Operation::Update,
            api_version: version.clone(),
            subresource: None,
            time: None,
            fields: FieldSet::default(),
        }
        .identifier();
        let Some((_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
            first_of_version.push((version, id));
            continue;
        };
        // The first entry of this version becomes the bucket, unless there is one already.
        if !entries.iter().any(|e| e.identifier() == bucket) {
            if let Some(e) = entries.iter_mut().find(|e| e.identifier() == *first) {
                e.manager = OLD_UPDATES_MANAGER.into();
                e.subresource = None;
            }
        }
        if let Some(b) = entries.iter_mut().find(|e| e.identifier() == bucket) {
            b.fields = entry.fields.union(&b.fields);
            b.time = entry.time.clone();
        }
        // (Upstream drops the bucket itself when it is the entry being merged.)
        if let Some(pos) = entries.iter().position(|e| e.identifier() == id) {
            entries.remove(pos);
        }
        length -= 1;
    }
}

/// Records a create of `object` by `manager` (an update from nothing). managedFields the
/// request carries are kept as the base, as upstream keeps them.
pub fn record_create(object: &mut Value, manager: &str, scope: &Scope) {
    let mut entries = decode(object).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    update(
        &mut entries,
        &empty_object(kind),
        object,
        manager,
        scope,
        &crate::meta::now(),
    );
    encode(object, entries);
}

/// Records a write the server makes itself as the request upstream's component would make:
/// `manager` (the kubelet) updating `old` (`None` for a create) into `new`.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, scope: &Scope) {
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or("");
    let base = old.cloned().unwrap_or_else(|| empty_object(kind));
    let mut entries = decode(&base).unwrap_or_default();
    update(
        &mut entries,
        &base,
        new,
        manager,
        scope,
        &crate::meta::now(),
    );
    encode(new, entries);
}

/// The fields `config` applies, without what the endpoint does not let managers own.
pub fn applied_fields(config: &Value, scope: &Scope) -> FieldSet {
    let mut set = fields_of(config);
    scope.filter(&mut set);
    set
}

/// Removes from `merged` the fields `manager` applied last time and applies no more, unless
/// another manager owns them (or something below them).
pub fn prune(
    entries: &[Entry],
    merged: &mut Value,
    applied: &FieldSet,
    manager: &str,
    scope: &Scope,
) {
    let Some(last) = entries
        .iter()
        .find(|e| e.is(manager, Operation::Apply, scope))
    else {
        return;
    };
    let mut owned = applied.clone();
    for entry in entries
        .iter()
        .filter(|e| !e.is(manager, Operation::Apply, scope))
    {
        owned = owned.union(&entry.fields);
    }
    let mut gone: Vec<&Path> = Vec::new();
    let mut candidates: Vec<&Path> = last.fields.iter().collect();
    candidates.sort_by_key(|p| p.len());
    for path in candidates {
        if owned.has_at_or_below(path) || gone.iter().any(|g| path.starts_with(g)) {
            continue;
        }
        remove_path(merged, path);
        gone.push(path);
    }
}

/// Removes the field at `path`, and the maps and lists that removal leaves empty (but not the
/// top-level `metadata`, `spec` or `status`).
fn remove_path(object: &mut Value, path: &[Step]) -> bool {
    let Some((step, rest)) = path.split_first() else {
        return false;
    };
    let (container_emptied, removed) = {
        let child = match step_target(object, step) {
            Some(c) => c,
            None => return false,
        };
        if rest.is_empty() {
            (false, true)
        } else {
            let removed = remove_path(child, rest);
            let empty = match child {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            (removed && empty, removed)
        }
    };
    if rest.is_empty() || container_emptied {
        let top = path.len() == 1 && matches!(step.as_str(), "f:metadata" | "f:spec" | "f:status");
        if !(container_emptied && top) {
            remove_step(object, step);
        }
    }
    removed
}

fn step_target<'a>(value: &'a mut Value, step: &str) -> Option<&'a mut Value> {
    if let Some(name) = step.strip_prefix("f:") {
        return value.as_object_mut()?.get_mut(name);
    }
    let items = value.as_array_mut()?;
    if let Some(key) = step.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter_mut()
            .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    let value: Value = serde_json::from_str(step.strip_prefix("v:")?).ok()?;
    items.iter_mut().find(|item| **item == value)
}

fn remove_step(value: &mut Value, step: &str) {
    if let Some(name) = step.strip_prefix("f:") {
        if let Some(map) = value.as_object_mut() {
            map.remove(name);
        }
        return;
    }
    let Some(items) = value.as_array_mut() else {
        return;
    };
    if let Some(key) = step.strip_prefix("k:") {
        if let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) {
            items.retain(|item| !key.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    } else if let Some(Ok(value)) = step.strip_prefix("v:").map(serde_json::from_str::<Value>) {
        items.retain(|item| *item != value);
    }
}

/// A field another manager owns that an apply changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner as upstream names it (`"kubectl-client-side-apply" using v1`).
    pub manager: String,
    /// The field (`.data.key`).
    pub field: String,
    identifier: String,
    path: Path,
}

/// An apply's conflicts, in upstream's order, with its message.
#[derive(Debug, Clone)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// `Apply failed with 1 conflict: conflict with "kubectl": .data.key`, or with several,
    /// a `conflicts with <manager>:` line and `- <field>` lines per manager.
    pub fn message(&self) -> String {
        if let [only] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager, only.field
            );
        }
        let mut lines = Vec::new();
        let mut current = None;
        for c in &self.0 {
            if current != Some(&c.identifier) {
                lines.push(format!("conflicts with {}:", c.manager));
                current = Some(&c.identifier);
            }
            lines.push(format!("- {}", c.field));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// An apply by `manager` that turned `live` into `new` (after [`prune`]): it now owns exactly
/// `applied`. Fields it changed that others own are conflicts, unless `force` or `allowed`
/// (kubectl's client-side-apply migration) covers them; then the others lose them.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    entries: &mut Vec<Entry>,
    live: &Value,
    new: &Value,
    applied: FieldSet,
    manager: &str,
    scope: &Scope,
    force: bool,
    allowed: Option<&FieldSet>,
    now: &str,
) -> Result<(), Conflicts> {
    let cmp = compare(live, new).filter(scope);
    let changed = cmp.changed();
    let mut conflicts: Vec<Conflict> = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| !e.is(manager, Operation::Apply, scope))
    {
        for path in entry.fields.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: entry.describe(),
                field: path_string(path),
                identifier: entry.identifier(),
                path: path.clone(),
            });
        }
    }
    if !force {
        if let Some(allowed) = allowed {
            conflicts.retain(|c| !allowed.contains(&c.path));
        }
        if !conflicts.is_empty() {
            conflicts.sort_by(|a, b| {
                a.identifier
                    .cmp(&b.identifier)
                    .then_with(|| set_order(&a.path, &b.path))
            });
            return Err(Conflicts(conflicts));
        }
    }

    for entry in entries.iter_mut() {
        if !entry.is(manager, Operation::Apply, scope) {
            entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
        }
    }
    let time = (!cmp.is_empty()).then(|| now.to_owned());
    match entries
        .iter_mut()
        .find(|e| e.is(manager, Operation::Apply, scope))
    {
        Some(entry) => {
            entry.fields = applied;
            entry.api_version = scope.api_version.clone();
            if time.is_some() {
                entry.time = time;
            }
        }
        None => entries.push(Entry {
            manager: manager.to_owned(),
            operation: Operation::Apply,
            api_version: scope.api_version.clone(),
            subresource: scope.subresource.clone(),
            time,
            fields: applied,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(())
}

/// The fields of `live`'s last-applied annotation that still have the applied values: an
/// apply by `kubectl` may take them from client-side apply without conflicts, as upstream's
/// `lastAppliedManager` allows.
pub fn allowed_from_last_applied(live: &Value, scope: &Scope) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() {
        return None;
    }
    let cmp = compare(&last, live).filter(scope);
    Some(
        applied_fields(&last, scope)
            .difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// Keeps the last-applied annotation of an object `kubectl` applies in step with the applied
/// configuration, as upstream's `lastAppliedUpdater` does (only where the annotation exists).
pub fn sync_last_applied(object: &mut Value, config: &Value) {
    let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED) {
        return;
    }
    let mut config = config.clone();
    if let Some(a) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
    annotations.insert(LAST_APPLIED.into(), json!(config.to_string()));
}

#[cfg(test)]
mod tests;
