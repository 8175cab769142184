//! One set of Event objects served in two versions, as kube-apiserver does it.
//!
//! Events are stored once, as `v1` Events under the core group's key (`/events/<ns>/<name>`),
//! whichever API wrote them. `events.k8s.io/v1` converts on the way in and out, field for
//! field as upstream's `pkg/apis/events/v1` conversion does: `regarding` is `involvedObject`,
//! `note` is `message`, `reportingController` is `reportingComponent`, `deprecatedSource`,
//! `deprecatedFirstTimestamp`, `deprecatedLastTimestamp` and `deprecatedCount` are `source`,
//! `firstTimestamp`, `lastTimestamp` and `count`; the other fields keep their names.
//! Field selectors of `events.k8s.io/v1` use its own labels (`regarding.name`,
//! `reportingController`) and are translated to the core labels, then matched on the stored
//! object, as upstream's field label conversion does.
//!
//! # Caveats
//!
//! A `series` without `lastObservedTime` (possible only through `v1`) reads through
//! `events.k8s.io/v1` as `0001-01-01T00:00:00Z`, where upstream shows `null`. Updates through
//! `events.k8s.io/v1` are not checked for upstream's immutable fields (`ValidateEventUpdate`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::{json, Value};

use coracle_api::validation::{FieldError, Path};

use crate::codec;
use crate::resources::Resource;
use crate::status_error::{ApiError, Cause};

/// The group whose Events are converted from the stored `v1` ones.
pub const GROUP: &str = "events.k8s.io";

/// Whether `res` is served by converting stored `v1` Events.
pub fn converts(res: &Resource) -> bool {
    res.group == GROUP && res.plural == "events"
}

/// An `events.k8s.io/v1` Event as the `v1` Event upstream stores for it.
pub fn to_core(event: events::Event) -> core::Event {
    core::Event {
        metadata: event.metadata,
        involved_object: event.regarding.unwrap_or_default(),
        related: event.related,
        message: event.note,
        reason: event.reason,
        type_: event.type_,
        action: event.action,
        event_time: event.event_time,
        series: event.series.map(|s| core::EventSeries {
            count: Some(s.count),
            last_observed_time: Some(s.last_observed_time),
        }),
        reporting_component: event.reporting_controller,
        reporting_instance: event.reporting_instance,
        // Upstream's EventSource is a struct, so `source: {}` is always there.
        source: Some(event.deprecated_source.unwrap_or_default()),
        first_timestamp: event.deprecated_first_timestamp,
        last_timestamp: event.deprecated_last_timestamp,
        count: event.deprecated_count,
    }
}

/// A stored `v1` Event as `events.k8s.io/v1` shows it.
pub fn from_core(event: core::Event) -> events::Event {
    events::Event {
        metadata: event.metadata,
        regarding: Some(event.involved_object),
        related: event.related,
        note: event.message,
        reason: event.reason,
        type_: event.type_,
        action: event.action,
        event_time: event.event_time,
        series: event.series.map(|s| events::EventSeries {
            count: s.count.unwrap_or(0),
            last_observed_time: s.last_observed_time.unwrap_or_else(zero_time),
        }),
        reporting_controller: event.reporting_component,
        reporting_instance: event.reporting_instance,
        deprecated_source: Some(event.source.unwrap_or_default()),
        deprecated_first_timestamp: event.first_timestamp,
        deprecated_last_timestamp: event.last_timestamp,
        deprecated_count: event.count,
    }
}

/// Go's zero time, which a missing `lastObservedTime` converts to.
fn zero_time() -> MicroTime {
    MicroTime(Timestamp::from_second(-62_135_596_800).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A stored object as `res` serves it: `v1` Events converted for `events.k8s.io/v1`, every
/// other object unchanged.
pub fn served(res: &Resource, stored: Value) -> Value {
    if !converts(res) || stored.get("kind").and_then(Value::as_str) != Some("Event") {
        return stored;
    }
    let Ok(event) = serde_json::from_value::<core::Event>(stored.clone()) else {
        return stored;
    };
    let mut out = codec::untyped(&from_core(event));
    out["apiVersion"] = json!(res.api_version());
    out["kind"] = json!("Event");
    out
}

/// An object of `res` as it is stored: `events.k8s.io/v1` Events as `v1` Events.
pub fn stored(res: &Resource, served: Value) -> Result<Value, ApiError> {
    if !converts(res) {
        return Ok(served);
    }
    let event: events::Event = serde_json::from_value(served)
        .map_err(|e| ApiError::BadRequest(format!("the Event does not decode: {e}")))?;
    let mut out = codec::untyped(&to_core(event));
    out["apiVersion"] = json!("v1");
    out["kind"] = json!("Event");
    Ok(out)
}

/// The core label an `events.k8s.io/v1` field selector label stands for, if it is one
/// upstream accepts (`AddFieldLabelConversionsForEvent`).
pub fn core_field_label(label: &str) -> Option<&'static str> {
    Some(match label {
        "regarding.kind" => "involvedObject.kind",
        "regarding.namespace" => "involvedObject.namespace",
        "regarding.name" => "involvedObject.name",
        "regarding.uid" => "involvedObject.uid",
        "regarding.apiVersion" => "involvedObject.apiVersion",
        "regarding.resourceVersion" => "involvedObject.resourceVersion",
        "regarding.fieldPath" => "involvedObject.fieldPath",
        "reportingController" => "reportingComponent",
        "reason" => "reason",
        "source" => "source",
        "type" => "type",
        "metadata.namespace" => "metadata.namespace",
        "metadata.name" => "metadata.name",
        _ => return None,
    })
}

const INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// Upstream's `ValidateEventCreate` for a create through `events.k8s.io/v1`: the legacy rules
/// every event passes, then the strict ones of the new API. `object` is in the served shape;
/// the paths name the stored (core) fields, as upstream's do.
pub fn validate_create(object: &Value) -> Result<(), ApiError> {
    let event: events::Event = codec::typed(object)?;
    let event = to_core(event);
    let mut errs = legacy_errors(&event);
    errs.extend(series_errors(&event));
    if event.event_time.is_none() {
        errs.push(FieldError::required(Path::new("eventTime"), ""));
    }
    let type_ = event.type_.as_deref().unwrap_or("");
    if type_ != "Normal" && type_ != "Warning" {
        let detail = format!("has invalid value: {type_}");
        errs.push(FieldError::invalid(Path::new("type"), "", &detail));
    }
    let needs_unset = |path: &str| FieldError::invalid(Path::new(path), "", "needs to be unset");
    if event.first_timestamp.is_some() {
        errs.push(needs_unset("firstTimestamp"));
    }
    if event.last_timestamp.is_some() {
        errs.push(needs_unset("lastTimestamp"));
    }
    if event.count.unwrap_or(0) != 0 {
        errs.push(needs_unset("count"));
    }
    let source = event.source.clone().unwrap_or_default();
    let set = |s: Option<String>| s.is_some_and(|s| !s.is_empty());
    if set(source.component) || set(source.host) {
        errs.push(needs_unset("source"));
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(invalid(event.metadata.name.as_deref().unwrap_or(""), &errs))
}

/// `legacyValidateEvent` for an event with `eventTime` set or not.
fn legacy_errors(event: &core::Event) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = event.metadata.namespace.as_deref().unwrap_or("");
    let regarding_ns = event.involved_object.namespace.as_deref().unwrap_or("");
    let mismatch = || {
        let path = Path::new("involvedObject").child("namespace");
        FieldError::invalid(path, regarding_ns, "does not match event.namespace")
    };
    if event.event_time.is_none() {
        let matches = if regarding_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == regarding_ns
        };
        if !matches {
            errs.push(mismatch());
        }
        return errs;
    }

    if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(mismatch());
    }
    let controller = event.reporting_component.as_deref().unwrap_or("");
    if controller.is_empty() {
        errs.push(FieldError::required(Path::new("reportingController"), ""));
    }
    for msg in coracle_api::validation::qualified_name(controller) {
        errs.push(FieldError::invalid(
            Path::new("reportingController"),
            controller,
            &msg,
        ));
    }
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let instance = text(&event.reporting_instance);
    required_within(&mut errs, "reportingInstance", &instance, INSTANCE_LIMIT);
    required_within(&mut errs, "action", &text(&event.action), ACTION_LIMIT);
    required_within(&mut errs, "reason", &text(&event.reason), REASON_LIMIT);
    if event.message.as_deref().unwrap_or("").len() > NOTE_LIMIT {
        let detail = format!("can have at most {NOTE_LIMIT} characters");
        errs.push(FieldError::invalid(Path::new("message"), "", &detail));
    }
    errs
}

/// `field` must be set and at most `limit` bytes long.
fn required_within(errs: &mut Vec<FieldError>, field: &str, value: &str, limit: usize) {
    if value.is_empty() {
        errs.push(FieldError::required(Path::new(field), ""));
    }
    if value.len() > limit {
        let detail = format!("can have at most {limit} characters");
        errs.push(FieldError::invalid(Path::new(field), "", &detail));
    }
}

/// `validateV1EventSeries`.
fn series_errors(event: &core::Event) -> Vec<FieldError> {
    let Some(series) = &event.series else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    if series.count.unwrap_or(0) < 2 {
        let path = Path::new("series.count");
        errs.push(FieldError::invalid(path, "", "should be at least 2"));
    }
    let last = series.last_observed_time.clone();
    if last.is_none_or(|t| t == zero_time()) {
        let path = Path::new("series.lastObservedTime");
        errs.push(FieldError::required(path, ""));
    }
    errs
}

/// The 422 of an invalid `events.k8s.io/v1` Event, named as upstream names the kind.
fn invalid(name: &str, errs: &[FieldError]) -> ApiError {
    let parts: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let aggregate = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    ApiError::Invalid {
        kind: "Event".into(),
        name: name.to_owned(),
        message: format!("Event.{GROUP} {name:?} is invalid: {aggregate}"),
        causes: errs
            .iter()
            .map(|e| Cause {
                reason: e.kind.cause_reason().to_owned(),
                message: e.body(),
                field: e.path.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubelet_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default", "resourceVersion": "7"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                               "uid": "u1", "apiVersion": "v1",
                               "fieldPath": "spec.containers{main}"},
            "reason": "Started", "message": "Started container main", "type": "Normal",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:06Z",
            "count": 2,
            "reportingComponent": "kubelet", "reportingInstance": "node1",
        })
    }

    fn new_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "hello", "namespace": "default"},
            "eventTime": "2026-01-02T03:04:05.123456Z",
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
            "action": "Greet", "reason": "Hello", "type": "Normal", "note": "hi there",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
            "related": {"kind": "Node", "name": "node1"},
            "series": {"count": 3, "lastObservedTime": "2026-01-02T03:05:00.000000Z"},
        })
    }

    fn res() -> &'static Resource {
        crate::resources::find(GROUP, "v1", "events").unwrap()
    }

    #[test]
    fn a_v1_event_reads_through_events_k8s_io_with_the_renamed_fields() {
        let out = served(res(), kubelet_event());
        assert_eq!(out["apiVersion"], "events.k8s.io/v1");
        assert_eq!(out["regarding"]["name"], "web");
        assert_eq!(out["regarding"]["fieldPath"], "spec.containers{main}");
        assert_eq!(out["note"], "Started container main");
        assert_eq!(out["reportingController"], "kubelet");
        assert_eq!(out["reportingInstance"], "node1");
        assert_eq!(out["deprecatedSource"]["component"], "kubelet");
        assert_eq!(out["deprecatedSource"]["host"], "node1");
        assert_eq!(out["deprecatedFirstTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(out["deprecatedLastTimestamp"], "2026-01-02T03:04:06Z");
        assert_eq!(out["deprecatedCount"], 2);
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        for gone in [
            "involvedObject",
            "message",
            "source",
            "count",
            "reportingComponent",
        ] {
            assert!(out.get(gone).is_none(), "{gone} in {out}");
        }
    }

    #[test]
    fn an_events_k8s_io_event_is_stored_as_the_v1_event_upstream_stores() {
        let core = stored(res(), new_event()).unwrap();
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["related"]["kind"], "Node");
        assert_eq!(core["message"], "hi there");
        assert_eq!(core["reportingComponent"], "example.com/ctl");
        assert_eq!(core["reportingInstance"], "ctl-1");
        assert_eq!(core["action"], "Greet");
        assert_eq!(core["eventTime"], "2026-01-02T03:04:05.123456Z");
        assert_eq!(core["series"]["count"], 3);
        assert_eq!(
            core["series"]["lastObservedTime"],
            "2026-01-02T03:05:00.000000Z"
        );
        assert_eq!(core["source"], json!({}));
        assert!(core.get("count").is_none() && core.get("firstTimestamp").is_none());
    }

    #[test]
    fn both_conversions_round_trip() {
        let there_and_back = stored(res(), served(res(), kubelet_event())).unwrap();
        let mut want = kubelet_event();
        want["apiVersion"] = json!("v1");
        assert_eq!(there_and_back, want);
        let back_and_there = served(res(), stored(res(), new_event()).unwrap());
        let mut want = new_event();
        want["deprecatedSource"] = json!({});
        assert_eq!(back_and_there, want);
    }

    #[test]
    fn other_resources_pass_through() {
        let core = crate::resources::find("", "v1", "events").unwrap();
        assert_eq!(served(core, kubelet_event()), kubelet_event());
        assert_eq!(stored(core, new_event()).unwrap(), new_event());
    }

    #[test]
    fn field_labels_translate_to_the_core_ones() {
        assert_eq!(
            core_field_label("regarding.name"),
            Some("involvedObject.name")
        );
        assert_eq!(
            core_field_label("reportingController"),
            Some("reportingComponent")
        );
        assert_eq!(core_field_label("involvedObject.name"), None);
        assert_eq!(core_field_label("note"), None);
    }

    #[test]
    fn a_complete_new_event_is_valid() {
        validate_create(&new_event()).unwrap();
    }

    #[test]
    fn a_new_event_without_time_or_reporter_gets_upstreams_errors() {
        let mut event = new_event();
        let map = event.as_object_mut().unwrap();
        for field in [
            "eventTime",
            "reportingController",
            "reportingInstance",
            "series",
        ] {
            map.remove(field);
        }
        event["deprecatedCount"] = json!(4);
        let Err(ApiError::Invalid {
            message, causes, ..
        }) = validate_create(&event)
        else {
            panic!("accepted");
        };
        assert_eq!(
            message,
            "Event.events.k8s.io \"hello\" is invalid: [eventTime: Required value, \
             count: Invalid value: \"\": needs to be unset]"
        );
        assert_eq!(causes[0].field, "eventTime");

        let mut event = new_event();
        event["reportingInstance"] = json!("");
        event["type"] = json!("Info");
        event["series"]["count"] = json!(1);
        let Err(ApiError::Invalid { message, .. }) = validate_create(&event) else {
            panic!("accepted");
        };
        assert_eq!(
            message,
            "Event.events.k8s.io \"hello\" is invalid: [reportingInstance: Required value, \
             series.count: Invalid value: \"\": should be at least 2, \
             type: Invalid value: \"\": has invalid value: Info]"
        );
    }
}
