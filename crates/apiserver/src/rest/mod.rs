//! REST verbs on the store: get, list, watch, create, update, patch, delete,
//! deletecollection, and the pod subresources. Per-resource rules live in [`admission`].

pub mod admission;
pub mod namespaces;
pub mod pod_admission;
pub mod pods;

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coracle_store::{ListOptions, StoreError};
use serde_json::{json, Value};

use crate::codec;
use crate::events;
use crate::fieldmanager::{self, Scope};
use crate::meta;
use crate::patch;
use crate::query::Query;
use crate::resources::{self, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::ApiState;
use crate::status_error::ApiError;
use crate::table::{self, IncludeObject};

/// What a request path names.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub res: &'static Resource,
    /// The namespace from the path.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// The subresource.
    pub sub: Option<String>,
}

/// One API request on a resource.
pub struct Request {
    /// Shared state.
    pub state: Arc<ApiState>,
    /// HTTP method.
    pub method: Method,
    /// What the path names.
    pub target: Target,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Resolves the path segments after `/api/v1` or `/apis/<g>/<v>`.
pub fn parse_target(group: &str, version: &str, segs: &[&str]) -> Result<Target, ApiError> {
    let namespaced = segs.len() >= 3
        && segs[0] == "namespaces"
        && resources::find(group, version, segs[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced {
        (Some(segs[1].to_owned()), &segs[2..])
    } else {
        (None, segs)
    };
    let Some((plural, rest)) = rest.split_first() else {
        return Err(ApiError::NoSuchPath);
    };
    let res = resources::find(group, version, plural).ok_or(ApiError::NoSuchPath)?;
    if rest.len() > 2 {
        return Err(ApiError::NoSuchPath);
    }
    let name = rest.first().map(|s| (*s).to_owned());
    let sub = rest.get(1).map(|s| (*s).to_owned());
    if let Some(sub) = &sub {
        if res.subresource(sub).is_none() {
            return Err(ApiError::NoSuchPath);
        }
    }
    if res.namespaced && name.is_some() && namespace.is_none() {
        return Err(ApiError::NoSuchPath);
    }
    Ok(Target {
        res,
        namespace,
        name,
        sub,
    })
}

impl Request {
    /// Runs the request.
    pub async fn handle(self) -> Result<Response, ApiError> {
        let t = &self.target;
        match (&self.method, t.name.as_deref(), t.sub.as_deref()) {
            (&Method::GET, None, None) if self.query.flag("watch") => {
                crate::watch::serve(&self).await
            }
            (&Method::GET, None, None) => self.list(),
            (&Method::GET, Some(name), None | Some("status")) => self.get(name),
            (&Method::GET, Some(name), Some("log")) => crate::logs::serve(&self, name).await,
            (&Method::POST, None, None) => self.create(),
            (&Method::POST, Some(name), Some("binding")) => pods::bind(&self, name),
            (&Method::POST, Some(name), Some("eviction")) => self.delete(name),
            (&Method::PUT, Some(name), None | Some("status")) => self.update(name),
            (&Method::PATCH, Some(name), None | Some("status")) => self.patch(name),
            (&Method::DELETE, Some(name), None) => self.delete(name),
            (&Method::DELETE, None, None) => self.delete_collection(),
            // exec and portforward upgrade before this point (router); other verbs get 405.
            (_, Some(_), Some("attach")) => Err(ApiError::BadRequest(
                "attach is not supported by coracle yet".into(),
            )),
            _ => Err(ApiError::MethodNotAllowed),
        }
    }

    fn res(&self) -> &'static Resource {
        self.target.res
    }

    fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: self.res().qualified(),
            name: name.to_owned(),
        }
    }

    fn store_err(&self, name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
        let name = name.to_owned();
        move |e| ApiError::from_store(e, &self.res().qualified(), &name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the live object `name` and its revision.
    pub fn read(&self, name: &str) -> Result<(u64, Value), ApiError> {
        let key = self.state.key(self.res(), self.ns(), name)?;
        self.state
            .store
            .get(&key)
            .map_err(self.store_err(name))?
            .map(|(rev, object)| (rev, events::served(self.res(), object)))
            .ok_or_else(|| self.not_found(name))
    }

    /// An object (or Table) response.
    pub fn respond(&self, code: StatusCode, object: &Value, warnings: &[String]) -> Response {
        let accept = self.header("accept").unwrap_or("");
        let body = if self.method == Method::GET && table::wants_table(accept) {
            let rv = meta::meta_str(object, "resourceVersion").map(str::to_owned);
            table::table(
                self.res(),
                std::slice::from_ref(object),
                rv,
                None,
                IncludeObject::parse(self.query.get("includeObject")),
                true,
            )
        } else {
            object.clone()
        };
        json_response(code, &body, warnings)
    }

    fn get(&self, name: &str) -> Result<Response, ApiError> {
        let (_, object) = self.read(name)?;
        Ok(self.respond(StatusCode::OK, &object, &[]))
    }

    /// The selectors of a list, watch or deletecollection.
    pub fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))?;
        let text = self.query.get("fieldSelector").unwrap_or("");
        let fields = FieldSelector::for_resource(text, self.res())?;
        Ok((labels, fields))
    }

    fn list(&self) -> Result<Response, ApiError> {
        let (labels, fields) = self.selectors()?;
        let prefix = self.state.prefix(self.res(), self.ns())?;
        let exact = self.query.get("resourceVersionMatch") == Some("Exact");
        let revision = match (exact, self.query.int("resourceVersion")?) {
            (true, Some(rv)) => Some(rv as u64),
            _ => None,
        };
        let options = ListOptions {
            limit: self.query.int("limit")?.unwrap_or(0).max(0) as usize,
            continue_token: self
                .query
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            revision,
        };
        let page = self
            .state
            .store
            .list(&prefix, &options)
            .map_err(self.store_err(""))?;
        let items: Vec<Value> = page
            .items
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .map(|o| events::served(self.res(), o))
            .collect();
        let accept = self.header("accept").unwrap_or("");
        let body = if table::wants_table(accept) {
            table::table(
                self.res(),
                &items,
                Some(page.revision.to_string()),
                page.continue_token,
                IncludeObject::parse(self.query.get("includeObject")),
                true,
            )
        } else {
            let mut metadata = json!({"resourceVersion": page.revision.to_string()});
            if let Some(c) = page.continue_token {
                metadata["continue"] = json!(c);
                if let Some(n) = page.remaining_item_count {
                    metadata["remainingItemCount"] = json!(n);
                }
            }
            json!({
                "kind": format!("{}List", self.res().kind),
                "apiVersion": self.res().api_version(),
                "metadata": metadata,
                "items": items,
            })
        };
        Ok(json_response(StatusCode::OK, &body, &[]))
    }

    /// The body as an object of this resource, typed round trip included.
    fn body_object(&self, warnings: &mut Vec<String>) -> Result<Value, ApiError> {
        let raw = codec::decode_object(self.header("content-type"), &self.body)?;
        if !raw.is_object() {
            return Err(ApiError::BadRequest(
                "the request body is not a JSON object".into(),
            ));
        }
        self.check_kind(&raw)?;
        let mut object = raw;
        object["apiVersion"] = json!(self.res().api_version());
        object["kind"] = json!(self.res().kind);
        codec::normalize(self.res(), object, self.query.field_validation()?, warnings)
    }

    fn check_kind(&self, raw: &Value) -> Result<(), ApiError> {
        let res = self.res();
        if let Some(kind) = raw.get("kind").and_then(Value::as_str) {
            if kind != res.kind {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({}) does not match the expected API version ({})",
                    raw.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                    res.api_version()
                ))
                .or_kind(kind, res));
            }
        }
        if let Some(av) = raw.get("apiVersion").and_then(Value::as_str) {
            if av != res.api_version() {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    res.api_version()
                )));
            }
        }
        if let (Some(ns), Some(body_ns)) = (self.ns(), meta::meta_str(raw, "namespace")) {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn field_manager(&self, default: &str) -> String {
        self.query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let agent = self.header("user-agent").unwrap_or(default);
                agent.split('/').next().unwrap_or(default).to_owned()
            })
    }

    fn create(&self) -> Result<Response, ApiError> {
        let mut warnings = Vec::new();
        let mut object = self.body_object(&mut warnings)?;
        let res = self.res();
        if let Some(ns) = self.ns() {
            meta::metadata(&mut object).insert("namespace".into(), json!(ns));
        } else if res.namespaced {
            return Err(ApiError::MethodNotAllowed);
        } else {
            meta::metadata(&mut object).remove("namespace");
        }
        let name = object_name(&mut object, res)?;
        if let Some(ns) = self.ns() {
            namespaces::check_writable(&self.state, ns, res, &name)?;
        }
        meta::stamp_create(&mut object);
        // A pod's scheduling decision holds until it is stored (see `scheduler::decisions`).
        let _scheduling = (res.plural == "pods").then(crate::scheduler::decisions);
        admission::on_create(self, &mut object, &mut warnings)?;
        let manager = self.field_manager("unknown");
        fieldmanager::record_create(&mut object, &manager, &self.scope());
        if self.query.dry_run()? {
            return Ok(self.respond(StatusCode::CREATED, &object, &warnings));
        }
        let key = self.state.key(res, self.ns(), &name)?;
        let (_, stored) = self
            .state
            .store
            .create(&key, events::stored(res, object)?)
            .map_err(self.store_err(&name))?;
        let stored = events::served(res, stored);
        admission::after_create(self, &stored);
        Ok(self.respond(StatusCode::CREATED, &stored, &warnings))
    }

    fn update(&self, name: &str) -> Result<Response, ApiError> {
        let mut warnings = Vec::new();
        let mut object = self.body_object(&mut warnings)?;
        if meta::meta_str(&object, "name").is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        if let Some(ns) = self.ns() {
            meta::metadata(&mut object).insert("namespace".into(), json!(ns));
        }
        meta::metadata(&mut object).insert("name".into(), json!(name));
        let expected = requested_revision(&object)?;
        if expected.is_none() && self.res().plural != "events" && self.res().plural != "leases" {
            // Upstream refuses unconditional updates of most kinds.
            return Err(ApiError::Invalid {
                kind: self.res().kind.to_owned(),
                name: name.to_owned(),
                message: format!(
                    "{} {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    self.res().kind
                ),
                causes: vec![crate::status_error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            });
        }
        let (rev, old) = self.read(name)?;
        let manager = self.field_manager("unknown");
        let new = self.prepare_update(old, object, &Write::Update(&manager), &mut warnings)?;
        let stored = self.write_update(name, new, expected.or(Some(rev)))?;
        Ok(self.respond(StatusCode::OK, &stored, &warnings))
    }

    /// Where a write's managers are recorded: this version, this subresource.
    fn scope(&self) -> Scope {
        Scope {
            api_version: self.res().api_version(),
            subresource: self.target.sub.clone(),
            has_status: matches!(self.res().plural, "pods" | "nodes" | "namespaces"),
        }
    }

    /// The object an update stores: status or spec kept per subresource, metadata carried
    /// over, admission rules applied, field ownership recorded.
    fn prepare_update(
        &self,
        old: Value,
        mut new: Value,
        write: &Write,
        warnings: &mut Vec<String>,
    ) -> Result<Value, ApiError> {
        let sub = self.target.sub.as_deref();
        let has_status = self.scope().has_status;
        if sub == Some("status") {
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            new = old.clone();
            new["status"] = status;
        } else if has_status {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        meta::carry_over(&mut new, &old);
        admission::on_update(self, &mut new, &old, warnings)?;
        self.record_ownership(&old, &mut new, write);
        Ok(new)
    }

    /// Records who owns what after `write` turned `old` into `new`.
    fn record_ownership(&self, old: &Value, new: &mut Value, write: &Write) {
        let entries = match write {
            Write::Update(manager) => {
                let scope = self.scope();
                // An update may set managedFields itself (kubectl does, migrating client-side
                // apply to server-side apply); an empty or undecodable list keeps the live
                // ones, as upstream.
                let requested = match scope.subresource {
                    None => fieldmanager::decode(new).ok().filter(|e| !e.is_empty()),
                    Some(_) => None,
                };
                let mut entries =
                    requested.unwrap_or_else(|| fieldmanager::decode(old).unwrap_or_default());
                fieldmanager::update(&mut entries, old, new, manager, &scope, &meta::now());
                entries
            }
            Write::Apply {
                manager,
                config,
                entries,
            } => {
                if *manager == "kubectl" {
                    fieldmanager::sync_last_applied(new, config);
                }
                entries.clone()
            }
        };
        fieldmanager::encode(new, entries);
    }

    /// The ownership of an apply that merged into `patched`: the fields `manager` applied
    /// before and applies no more are removed (unless owned elsewhere), then conflicts are
    /// checked on the merged object, before defaulting and validation, as upstream does.
    fn apply_ownership<'a>(
        &self,
        old: &Value,
        patched: &mut Value,
        config: &'a Value,
        manager: &'a str,
    ) -> Result<Write<'a>, ApiError> {
        let scope = self.scope();
        let mut entries = fieldmanager::decode(old).unwrap_or_default();
        let applied = fieldmanager::applied_fields(config, &scope);
        fieldmanager::prune(&entries, patched, &applied, manager, &scope);
        // kubectl's own apply may take over what its client-side apply set.
        let allowed = match manager {
            "kubectl" => fieldmanager::allowed_from_last_applied(old, &scope),
            _ => None,
        };
        fieldmanager::apply(
            &mut entries,
            old,
            patched,
            applied,
            manager,
            &scope,
            self.query.flag("force"),
            allowed.as_ref(),
            &meta::now(),
        )
        .map_err(ApiError::from_conflicts)?;
        Ok(Write::Apply {
            manager,
            config,
            entries,
        })
    }

    /// Writes an update; an object whose deletion waited only for finalizers goes away.
    fn write_update(
        &self,
        name: &str,
        new: Value,
        expected: Option<u64>,
    ) -> Result<Value, ApiError> {
        if self.query.dry_run()? {
            return Ok(new);
        }
        let key = self.state.key(self.res(), self.ns(), name)?;
        let finished = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && admission::deletes_when_finalized(self.res());
        let (_, stored) = self
            .state
            .store
            .update(&key, events::stored(self.res(), new)?, expected)
            .map_err(self.store_err(name))?;
        let stored = events::served(self.res(), stored);
        if finished {
            let _ = self.state.store.delete(&key, None);
        }
        Ok(stored)
    }

    fn patch(&self, name: &str) -> Result<Response, ApiError> {
        let content_type = codec::media_type(self.header("content-type"));
        let kind = patch::PatchKind::from_media_type(&content_type)?;
        let manager = self.field_manager("unknown");
        if kind == patch::PatchKind::Apply
            && self.query.get("fieldManager").is_none_or(str::is_empty)
        {
            return Err(ApiError::BadRequest(
                "PATCH requests of type application/apply-patch+yaml must include a fieldManager"
                    .into(),
            ));
        }
        let document = match kind {
            patch::PatchKind::Apply => apply_config(codec::parse_yaml(&self.body)?)?,
            _ => codec::parse_json(&self.body)?,
        };
        for _ in 0..8 {
            let mut warnings = Vec::new();
            let (rev, old) = match self.read(name) {
                Ok(found) => found,
                Err(ApiError::NotFound { .. }) if kind == patch::PatchKind::Apply => {
                    return self.apply_create(name, document.clone(), &manager);
                }
                Err(e) => return Err(e),
            };
            let mut patched = patch::apply(kind, self.res(), &old, &document)?;
            let write = match kind {
                patch::PatchKind::Apply => {
                    self.apply_ownership(&old, &mut patched, &document, &manager)?
                }
                _ => Write::Update(&manager),
            };
            self.check_kind(&patched)?;
            let patched = codec::normalize(
                self.res(),
                patched,
                self.query.field_validation()?,
                &mut warnings,
            )?;
            if meta::meta_str(&patched, "name").is_some_and(|n| n != name) {
                return Err(ApiError::BadRequest(
                    "metadata.name cannot be changed by a patch".into(),
                ));
            }
            let pinned = requested_revision(&document)?;
            let new = self.prepare_update(old, patched, &write, &mut warnings)?;
            match self.write_update(name, new, Some(pinned.unwrap_or(rev))) {
                Ok(stored) => return Ok(self.respond(StatusCode::OK, &stored, &warnings)),
                Err(ApiError::Conflict { .. }) if pinned.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::Conflict {
            resource: self.res().qualified(),
            name: name.to_owned(),
            reason: "the object kept changing while the patch was applied".into(),
        })
    }

    /// Server-side apply of an absent object: a create whose fields the applier owns.
    fn apply_create(
        &self,
        name: &str,
        document: Value,
        manager: &str,
    ) -> Result<Response, ApiError> {
        let mut warnings = Vec::new();
        self.check_kind(&document)?;
        let config = document.clone();
        let mut object = document;
        object["apiVersion"] = json!(self.res().api_version());
        object["kind"] = json!(self.res().kind);
        let mut object = codec::normalize(
            self.res(),
            object,
            self.query.field_validation()?,
            &mut warnings,
        )?;
        let meta = meta::metadata(&mut object);
        meta.insert("name".into(), json!(name));
        if let Some(ns) = self.ns() {
            meta.insert("namespace".into(), json!(ns));
            namespaces::check_writable(&self.state, ns, self.res(), name)?;
        }
        meta::stamp_create(&mut object);
        let _scheduling = (self.res().plural == "pods").then(crate::scheduler::decisions);
        admission::on_create(self, &mut object, &mut warnings)?;
        let scope = self.scope();
        let applied = fieldmanager::applied_fields(&config, &scope);
        let mut entries = Vec::new();
        let empty = fieldmanager::empty_object(self.res().kind);
        fieldmanager::apply(
            &mut entries,
            &empty,
            &object,
            applied,
            manager,
            &scope,
            true,
            None,
            &meta::now(),
        )
        .map_err(ApiError::from_conflicts)?;
        fieldmanager::encode(&mut object, entries);
        if self.query.dry_run()? {
            return Ok(self.respond(StatusCode::CREATED, &object, &warnings));
        }
        let key = self.state.key(self.res(), self.ns(), name)?;
        let (_, stored) = self
            .state
            .store
            .create(&key, events::stored(self.res(), object)?)
            .map_err(self.store_err(name))?;
        let stored = events::served(self.res(), stored);
        admission::after_create(self, &stored);
        Ok(self.respond(StatusCode::CREATED, &stored, &warnings))
    }

    fn delete(&self, name: &str) -> Result<Response, ApiError> {
        let options = DeleteOptions::from_request(self)?;
        let (rev, object) = self.read(name)?;
        options.check_preconditions(self, name, &object)?;
        if self.query.dry_run()? || options.dry_run {
            return Ok(self.respond(StatusCode::OK, &object, &[]));
        }
        let object = crate::garbage_collector::with_propagation_finalizer(
            self.res(),
            object,
            options.propagation.as_deref(),
        );
        match admission::on_delete(self, &object, &options)? {
            admission::Deletion::Pending(updated) => {
                let stored = self.write_update(name, updated, Some(rev))?;
                Ok(self.respond(StatusCode::OK, &stored, &[]))
            }
            admission::Deletion::Now => {
                let key = self.state.key(self.res(), self.ns(), name)?;
                let (_, last) = self
                    .state
                    .store
                    .delete(&key, Some(rev))
                    .map_err(self.store_err(name))?;
                if self.res().plural == "pods" {
                    return Ok(self.respond(StatusCode::OK, &last, &[]));
                }
                let mut details = json!({"name": name, "kind": self.res().plural});
                if !self.res().group.is_empty() {
                    details["group"] = json!(self.res().group);
                }
                if let Some(uid) = meta::meta_str(&last, "uid") {
                    details["uid"] = json!(uid);
                }
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "details": details});
                Ok(json_response(StatusCode::OK, &status, &[]))
            }
        }
    }

    fn delete_collection(&self) -> Result<Response, ApiError> {
        let (labels, fields) = self.selectors()?;
        let prefix = self.state.prefix(self.res(), self.ns())?;
        let page = self
            .state
            .store
            .list(&prefix, &ListOptions::default())
            .map_err(self.store_err(""))?;
        let mut deleted = Vec::new();
        for object in page
            .items
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
        {
            let name = meta::meta_str(&object, "name").unwrap_or("").to_owned();
            let ns = meta::meta_str(&object, "namespace").map(str::to_owned);
            let sub = Request {
                state: self.state.clone(),
                method: Method::DELETE,
                target: Target {
                    namespace: ns,
                    name: Some(name.clone()),
                    ..self.target.clone()
                },
                query: self.query.clone(),
                headers: self.headers.clone(),
                body: self.body.clone(),
            };
            match sub.delete(&name) {
                Ok(_) | Err(ApiError::NotFound { .. }) => {
                    deleted.push(events::served(self.res(), object))
                }
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "kind": format!("{}List", self.res().kind),
            "apiVersion": self.res().api_version(),
            "metadata": {"resourceVersion": self.state.store.current_revision().to_string()},
            "items": deleted,
        });
        Ok(json_response(StatusCode::OK, &list, &[]))
    }
}

trait OrKind {
    fn or_kind(self, kind: &str, res: &Resource) -> ApiError;
}

impl OrKind for ApiError {
    /// A body of another kind: upstream names the kinds.
    fn or_kind(self, kind: &str, res: &Resource) -> ApiError {
        ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.kind
        ))
    }
}

/// Who a write's fields go to.
enum Write<'a> {
    /// An update (create, PUT, a patch other than apply) by this manager.
    Update(&'a str),
    /// A server-side apply of `config` by `manager`, its conflicts already checked.
    Apply {
        /// The applier.
        manager: &'a str,
        /// The applied configuration.
        config: &'a Value,
        /// Every manager's fields after the apply.
        entries: Vec<fieldmanager::Entry>,
    },
}

/// An apply body; upstream refuses one that sets managedFields.
fn apply_config(document: Value) -> Result<Value, ApiError> {
    match document.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(document),
        Some(_) => Err(ApiError::BadRequest(
            "metadata.managedFields must be nil".into(),
        )),
    }
}

/// `metadata.resourceVersion` of a request body, if it pins one.
fn requested_revision(object: &Value) -> Result<Option<u64>, ApiError> {
    match object.pointer("/metadata/resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}"))),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid resourceVersion {other}"
        ))),
    }
}

/// The object's name, generated from `generateName` when absent.
fn object_name(object: &mut Value, res: &Resource) -> Result<String, ApiError> {
    if let Some(name) = meta::meta_str(object, "name").filter(|n| !n.is_empty()) {
        return Ok(name.to_owned());
    }
    if let Some(base) = meta::meta_str(object, "generateName").filter(|n| !n.is_empty()) {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        let name = format!("{base}{suffix}");
        meta::metadata(object).insert("name".into(), json!(name));
        return Ok(name);
    }
    let detail = "name or generateName is required";
    Err(ApiError::Invalid {
        kind: res.kind.to_owned(),
        name: String::new(),
        message: format!(
            "{} \"\" is invalid: metadata.name: Required value: {detail}",
            res.kind
        ),
        causes: vec![crate::status_error::Cause {
            reason: "FieldValueRequired".into(),
            message: format!("Required value: {detail}"),
            field: "metadata.name".into(),
        }],
    })
}

/// `DeleteOptions` from the body and the query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy` (`Orphan`, `Background`, `Foreground`).
    pub propagation: Option<String>,
    /// `dryRun: [All]` in the body.
    pub dry_run: bool,
    preconditions: Value,
}

impl DeleteOptions {
    fn from_request(req: &Request) -> Result<DeleteOptions, ApiError> {
        let body = if req.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            codec::parse_json(&req.body)?
        };
        let grace = match req.query.int("gracePeriodSeconds")? {
            Some(g) => Some(g),
            None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
        };
        let propagation = req
            .query
            .get("propagationPolicy")
            .map(str::to_owned)
            .or_else(|| {
                body.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        if let Some(p) = &propagation {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::BadRequest(format!(
                    "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        let dry_run = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
        Ok(DeleteOptions {
            grace,
            propagation,
            dry_run,
            preconditions: body.get("preconditions").cloned().unwrap_or(Value::Null),
        })
    }

    fn check_preconditions(
        &self,
        req: &Request,
        name: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = self.preconditions.get(field).and_then(Value::as_str) {
                let have = meta::meta_str(object, field).unwrap_or("");
                if want != have {
                    return Err(ApiError::Conflict {
                        resource: req.res().qualified(),
                        name: name.to_owned(),
                        reason: format!(
                            "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A JSON response with `Warning` headers.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response();
    let mut seen = std::collections::HashSet::new();
    for warning in warnings {
        if !seen.insert(warning) {
            continue;
        }
        let text = format!("299 - {}", go_quote(warning));
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// A string quoted as Go's `%q` does, for `Warning` headers.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
