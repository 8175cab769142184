//! Whether a pod fits the node, and upstream's words when it does not: the Filter plugins of
//! kube-scheduler 1.33's default profile that apply to one node, in its order, and the text
//! of `FitError.Error()` with the default preemption plugin's postfix.
//!
//! Pure functions on typed objects; the scheduler task ([`super`]) and admission call them.
//!
//! | plugin (pkg/scheduler/framework/plugins/…) | checks |
//! |---|---|
//! | nodeunschedulable | `spec.unschedulable` (`kubectl cordon`) |
//! | tainttoleration | NoSchedule and NoExecute taints against the pod's tolerations |
//! | nodeaffinity | `nodeSelector` and required node affinity (its PreFilter for `metadata.name`) |
//! | nodeports | host ports taken by pods on the node |
//! | noderesources (Fit) | requests against allocatable, and the pod count |
//!
//! As upstream, the first plugin that rejects the node decides its reasons (the scheduler does
//! not run the later ones for that node).
//!
//! # Caveats
//!
//! Preemption is not attempted. The postfix says `Preemption is not helpful for scheduling` for
//! the rejections preemption cannot resolve, as upstream, and otherwise names what removing
//! lower-priority pods would leave (`No preemption victims found for incoming pod` when there
//! are none); when removing them would make room, upstream evicts them and coracle does not,
//! so the pod stays Pending with that same text. Volume, inter-pod affinity and topology
//! spread plugins do not exist here.

use std::collections::{BTreeMap, BTreeSet};

use coracle_api::validation::parse_quantity;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// nodeunschedulable's reason.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// nodeaffinity's reason.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// nodeaffinity's PreFilter reason when every term names no node in common.
pub const REASON_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
/// The reason of a node left out by a PreFilter's node names (nodeaffinity's `metadata.name`).
pub const REASON_NOT_IN_PREFILTER: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
/// nodeports' reason.
pub const REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// noderesources' reason for the pod count.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// The preemption plugin's words for a node no eviction can help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// The preemption plugin's words for a node without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// The taint `kubectl cordon` stands for, which a pod may tolerate.
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Why the node does not fit, as one plugin's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reasons, each counted once in the message's histogram.
    pub reasons: Vec<String>,
    /// `UnschedulableAndUnresolvable` upstream: evicting pods cannot help.
    pub unresolvable: bool,
    /// Rejected by a PreFilter: the message carries the reason without a node count.
    pub prefilter: bool,
}

impl Rejection {
    fn unresolvable(reason: &str) -> Rejection {
        Rejection {
            reasons: vec![reason.to_owned()],
            unresolvable: true,
            prefilter: false,
        }
    }
}

/// Runs the filters for `pod` on `node`, whose non-terminal pods are `on_node`.
pub fn filter(pod: &Pod, node: &Node, on_node: &[Pod]) -> Result<(), Rejection> {
    let spec = pod.spec.as_ref().cloned().unwrap_or_default();
    node_affinity_prefilter(&spec, node)?;
    node_unschedulable(&spec, node)?;
    taint_toleration(&spec, node)?;
    node_affinity(&spec, node)?;
    node_ports(&spec, on_node)?;
    resources_fit(&spec, node, on_node)
}

/// The `PodScheduled=False` message for a pod that does not fit, as `FitError.Error()` with
/// the preemption postfix words it for one node.
pub fn unschedulable_message(pod: &Pod, node: &Node, on_node: &[Pod]) -> Option<String> {
    let rejection = filter(pod, node, on_node).err()?;
    Some(fit_error(
        1,
        &rejection,
        &preemption(pod, node, on_node, &rejection),
    ))
}

/// What the preemption plugin reports for the one node.
fn preemption(pod: &Pod, node: &Node, on_node: &[Pod], rejection: &Rejection) -> Vec<String> {
    if rejection.unresolvable {
        return vec![PREEMPTION_NOT_HELPFUL.to_owned()];
    }
    // Only pods of lower priority may be evicted; with none left to evict, or if the pod
    // still does not fit without them, the node is no candidate.
    let own = priority(pod);
    let kept: Vec<Pod> = on_node
        .iter()
        .filter(|p| priority(p) >= own)
        .cloned()
        .collect();
    if kept.len() == on_node.len() {
        return vec![NO_VICTIMS.to_owned()];
    }
    match filter(pod, node, &kept) {
        Err(still) => still.reasons,
        Ok(()) => vec![NO_VICTIMS.to_owned()],
    }
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// `0/N nodes are available: …. preemption: 0/N nodes are available: ….` with each list a
/// histogram of reasons (`<count> <reason>`), sorted by reason as upstream sorts them.
pub fn fit_error(nodes: usize, rejection: &Rejection, preemption: &[String]) -> String {
    let mut text = format!("0/{nodes} nodes are available:");
    if rejection.prefilter {
        text += &format!(" {}.", rejection.reasons.join(", "));
    } else {
        text += &format!(" {}.", histogram(&rejection.reasons));
    }
    text += &format!(
        " preemption: 0/{nodes} nodes are available: {}.",
        histogram(preemption)
    );
    text
}

fn histogram(reasons: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    counts
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// nodeunschedulable: a cordoned node takes only pods tolerating its taint.
fn node_unschedulable(spec: &PodSpec, node: &Node) -> Result<(), Rejection> {
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    let tolerated = tolerations(spec).iter().any(|t| tolerates(t, &taint));
    if cordoned && !tolerated {
        return Err(Rejection::unresolvable(REASON_UNSCHEDULABLE));
    }
    Ok(())
}

fn tolerations(spec: &PodSpec) -> &[Toleration] {
    spec.tolerations.as_deref().unwrap_or_default()
}

/// tainttoleration: the first NoSchedule or NoExecute taint no toleration matches.
fn taint_toleration(spec: &PodSpec, node: &Node) -> Result<(), Rejection> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    let untolerated = taints.unwrap_or_default().iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations(spec).iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        Some(taint) => Err(Rejection::unresolvable(&format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ))),
        None => Ok(()),
    }
}

/// Whether `toleration` tolerates `taint`, as `Toleration.ToleratesTaint` decides: an empty
/// effect matches every effect, an empty key with `Exists` every key.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn required_terms(spec: &PodSpec) -> Option<&[NodeSelectorTerm]> {
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    Some(&required.node_selector_terms)
}

/// nodeaffinity's PreFilter: terms that all name nodes by `metadata.name In` restrict the
/// scheduler to those nodes; a node outside them is reported by the framework, and terms whose
/// names have nothing in common reject the pod outright.
fn node_affinity_prefilter(spec: &PodSpec, node: &Node) -> Result<(), Rejection> {
    let Some(terms) = required_terms(spec).filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for term in terms {
        let mut term_names: Option<BTreeSet<&str>> = None;
        let by_name = term
            .match_fields
            .iter()
            .flatten()
            .filter(|r| r.key == "metadata.name" && r.operator == "In");
        for requirement in by_name {
            let values: BTreeSet<&str> = requirement
                .values
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            term_names = Some(match term_names {
                None => values,
                Some(before) => before.intersection(&values).copied().collect(),
            });
        }
        // A term without a name requirement lets every node through.
        let Some(term_names) = term_names else {
            return Ok(());
        };
        names.extend(term_names);
    }
    if names.is_empty() {
        return Err(Rejection {
            reasons: vec![REASON_AFFINITY_CONFLICT.to_owned()],
            unresolvable: true,
            prefilter: true,
        });
    }
    let name = node.metadata.name.as_deref().unwrap_or("");
    if !names.contains(name) {
        return Err(Rejection::unresolvable(REASON_NOT_IN_PREFILTER));
    }
    Ok(())
}

/// nodeaffinity's Filter: every `nodeSelector` pair, and one of the required terms.
fn node_affinity(spec: &PodSpec, node: &Node) -> Result<(), Rejection> {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_matches = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let name = node.metadata.name.as_deref().unwrap_or("");
    let affinity_matches = required_terms(spec)
        .is_none_or(|terms| terms.iter().any(|t| term_matches(t, &labels, name)));
    if selector_matches && affinity_matches {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON_NODE_AFFINITY))
    }
}

/// A term matches when it has requirements and all of them hold; an empty term matches no
/// node, as upstream's `NodeSelectorTerm` semantics say.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let fields_hold = fields.iter().all(|r| {
        let value = (r.key == "metadata.name").then_some(name);
        requirement_holds(r, value)
    });
    fields_hold
        && expressions
            .iter()
            .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
}

/// One requirement against the value of its key (`None`: the node has no such label).
pub fn requirement_holds(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    let compare = |ordering: std::cmp::Ordering| {
        // Gt and Lt take one integer and compare the label's value as an integer.
        let (Some(value), [bound]) = (value, values) else {
            return false;
        };
        match (value.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(value), Ok(bound)) => value.cmp(&bound) == ordering,
            _ => false,
        }
    };
    match requirement.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// A host port as nodeports compares them: protocol, address (`0.0.0.0` for all), port.
type HostPort = (String, String, i32);

fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    // Upstream's nodeports reads the app containers' ports only.
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&h| h > 0)?;
            let ip = p.host_ip.clone().filter(|ip| !ip.is_empty());
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            Some((protocol, ip.unwrap_or_else(|| "0.0.0.0".into()), port))
        })
        .collect()
}

/// nodeports: a wanted host port conflicts with one in use on the same protocol and port
/// when either side listens on every address or both on the same one.
fn node_ports(spec: &PodSpec, on_node: &[Pod]) -> Result<(), Rejection> {
    let wanted = host_ports(spec);
    if wanted.is_empty() {
        return Ok(());
    }
    let used: Vec<HostPort> = on_node
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .flat_map(host_ports)
        .collect();
    let conflict = wanted.iter().any(|(proto, ip, port)| {
        used.iter().any(|(u_proto, u_ip, u_port)| {
            u_proto == proto
                && u_port == port
                && (ip == "0.0.0.0" || u_ip == "0.0.0.0" || ip == u_ip)
        })
    });
    if conflict {
        return Err(Rejection {
            reasons: vec![REASON_NODE_PORTS.to_owned()],
            unresolvable: false,
            prefilter: false,
        });
    }
    Ok(())
}

/// Requests per resource name, in the unit the scheduler compares: millicores for `cpu`,
/// whole units (bytes, devices) for every other resource.
pub type Requests = BTreeMap<String, i128>;

fn scaled(resource: &str, quantity: &Quantity) -> i128 {
    let nanos = parse_quantity(&quantity.0).unwrap_or(0).max(0);
    // Rounded up, as `MilliValue` and `Value` round.
    let per = if resource == "cpu" {
        1_000_000
    } else {
        1_000_000_000
    };
    (nanos + per - 1) / per
}

fn container_requests(container: &Container) -> Requests {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    requests
        .into_iter()
        .flatten()
        .map(|(name, q)| (name.clone(), scaled(name, q)))
        .collect()
}

fn add(into: &mut Requests, from: &Requests) {
    for (name, value) in from {
        *into.entry(name.clone()).or_default() += value;
    }
}

fn max_into(into: &mut Requests, from: &Requests) {
    for (name, value) in from {
        let entry = into.entry(name.clone()).or_default();
        *entry = (*entry).max(*value);
    }
}

/// A pod's effective requests as upstream's `PodRequests`: the app containers and the
/// sidecars (restartable init containers) add up; each other init container runs beside the
/// sidecars started before it, and the pod needs the most of either; then the overhead.
pub fn pod_requests(spec: &PodSpec) -> Requests {
    let mut requests = Requests::new();
    for container in &spec.containers {
        add(&mut requests, &container_requests(container));
    }
    let mut sidecars = Requests::new();
    let mut init_peak = Requests::new();
    for container in spec.init_containers.iter().flatten() {
        let own = container_requests(container);
        let during = if container.restart_policy.as_deref() == Some("Always") {
            add(&mut requests, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut during = own;
            add(&mut during, &sidecars);
            during
        };
        max_into(&mut init_peak, &during);
    }
    max_into(&mut requests, &init_peak);
    let overhead = spec.overhead.iter().flatten();
    add(
        &mut requests,
        &overhead.map(|(n, q)| (n.clone(), scaled(n, q))).collect(),
    );
    requests
}

/// noderesources' Fit: the pod count, then each requested resource against what the node's
/// pods leave of its allocatable.
fn resources_fit(spec: &PodSpec, node: &Node, on_node: &[Pod]) -> Result<(), Rejection> {
    let allocatable: Requests = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .into_iter()
        .flatten()
        .map(|(n, q)| (n.clone(), scaled(n, q)))
        .collect();
    let mut used = Requests::new();
    for pod in on_node {
        add(
            &mut used,
            &pod_requests(pod.spec.as_ref().unwrap_or(&PodSpec::default())),
        );
    }
    let available = |name: &str| {
        allocatable.get(name).copied().unwrap_or(0) - used.get(name).copied().unwrap_or(0)
    };

    let mut reasons = Vec::new();
    if on_node.len() as i128 + 1 > allocatable.get("pods").copied().unwrap_or(0) {
        reasons.push(REASON_TOO_MANY_PODS.to_owned());
    }
    for (name, &wanted) in &pod_requests(spec) {
        // `pods` is not a request; hugepages and extended resources are compared like the rest.
        if name == "pods" || wanted <= 0 {
            continue;
        }
        if wanted > available(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Rejection {
        reasons,
        unresolvable: false,
        prefilter: false,
    })
}

#[cfg(test)]
mod tests;
