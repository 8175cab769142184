//! `coracle run FILE…`: runs the Pods of manifests in the foreground, with no server, the way
//! `podman kube play` or `docker compose up` do, but with the kubelet's own semantics.
//!
//! - Pods, ConfigMaps and Secrets are read from multi-document YAML; legacy init-container
//!   annotations are converted with a loud warning; every pod is defaulted and validated as
//!   kube-apiserver does, and any error stops everything before anything runs.
//! - A pod left by an earlier, interrupted `coracle run` with the same spec is re-adopted: its
//!   running containers carry on and init containers that succeeded are not run again.
//! - It exits 0 once every pod has succeeded, and 1 with the failing container's reason when
//!   one fails. Pods that run forever run until Ctrl-C, which stops them gracefully and cleans
//!   up.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use coracle_api::manifest::{self, Object};
use coracle_kubelet::objects::StaticObjects;
use coracle_kubelet::{BackoffPolicy, Kubelet, KubeletConfig};
use k8s_openapi::api::core::v1::Pod;

use super::view::{RunView, ViewOptions};
use crate::GlobalArgs;

/// Arguments of `coracle run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (YAML or JSON, several documents each); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Stream container logs, each line prefixed with its pod and container.
    #[arg(long)]
    pub logs: bool,

    /// Restart back-off's first delay (Kubernetes: 10s). Shorter values are for development.
    #[arg(long, value_parser = parse_duration, env = "CORACLE_BACKOFF_INITIAL")]
    pub backoff_initial: Option<Duration>,

    /// Restart back-off's cap (Kubernetes: 5m).
    #[arg(long, value_parser = parse_duration, env = "CORACLE_BACKOFF_MAX")]
    pub backoff_max: Option<Duration>,

    /// The pod network's address range.
    #[arg(long, default_value = coracle_network::DEFAULT_POD_CIDR)]
    pub pod_cidr: String,

    /// The Linux bridge of the pod network. A bridge keeps the gateway address of the range it
    /// was first set up with, so a different `--pod-cidr` needs a bridge of its own.
    #[arg(long, default_value = coracle_network::DEFAULT_BRIDGE)]
    pub bridge: String,

    /// Give pods a network namespace with loopback only, without CNI.
    #[arg(long)]
    pub no_network: bool,

    /// Leave the pods' containers and state in place when coracle exits.
    #[arg(long)]
    pub keep: bool,
}

/// Parses `10s`, `1m`, `500ms`, `2m30s` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: use e.g. 1s, 500ms, 2m");
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(Duration::from_secs_f64(secs));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                'h' => "h",
                'm' => "m",
                's' => "s",
                _ => return Err(bad()),
            }
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += Duration::from_secs_f64(match unit {
            "h" => n * 3600.0,
            "m" => n * 60.0,
            "s" => n,
            _ => n / 1000.0,
        });
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// What the manifests hold, admitted.
struct Manifests {
    pods: Vec<Pod>,
    objects: StaticObjects,
}

/// Reads, converts, defaults and validates every document; all errors at once.
fn load(files: &[PathBuf]) -> anyhow::Result<Manifests> {
    let mut pods = Vec::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let mut errors = Vec::new();

    for file in files {
        let (name, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            (file.display().to_string(), text)
        };
        let loaded = manifest::load(&text, &name)?;
        for warning in &loaded.warnings {
            eprintln!("Warning: {warning}");
        }
        for object in loaded.objects {
            match object {
                Object::Pod(mut pod) => match admit(&mut pod) {
                    Ok(()) => pods.push(pod),
                    Err(err) => errors.push(format!("{name}: {err}")),
                },
                Object::ConfigMap(cm) => config_maps.push(cm),
                Object::Secret(secret) => secrets.push(secret),
                other => errors.push(format!(
                    "{name}: {} {:?}: coracle run runs Pods, ConfigMaps and Secrets; \
                     controllers such as {} need `coracle server`",
                    other.kind(),
                    other.name(),
                    other.kind()
                )),
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    if pods.is_empty() {
        bail!(
            "no Pod in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut names = BTreeMap::new();
    for pod in &pods {
        let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
        if names.insert(key, ()).is_some() {
            bail!(
                "pods {:?} already exists: two Pods of the manifests have the same name",
                pod.metadata.name.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(Manifests {
        pods,
        objects: StaticObjects::new(config_maps, secrets),
    })
}

/// Legacy annotations, defaults and validation, as the API server admits a pod.
fn admit(pod: &mut Pod) -> anyhow::Result<()> {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let warnings = coracle_api::legacy::convert_legacy_init_containers(&mut pod.metadata, spec)?;
    for warning in warnings {
        eprintln!("\x1b[1;33mWarning:\x1b[0m {warning}");
    }
    coracle_api::defaults::default_pod(pod);
    coracle_api::validation::validate_pod(pod)?;
    Ok(())
}

/// Runs `coracle run`.
pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<i32> {
    let manifests = load(&args.files)?;

    let mut backoff = BackoffPolicy::KUBERNETES;
    if let Some(d) = args.backoff_initial {
        backoff.initial = d;
    }
    if let Some(d) = args.backoff_max {
        backoff.max = d;
    }
    if backoff.initial > backoff.max {
        backoff.max = backoff.initial;
    }
    if backoff.is_shortened() {
        eprintln!(
            "note: restart back-off is {}..{} (Kubernetes uses 10s..5m): set by --backoff-initial/--backoff-max",
            coracle_kubelet::backoff::go_duration(backoff.initial),
            coracle_kubelet::backoff::go_duration(backoff.max)
        );
    }

    let config = KubeletConfig {
        data_dir: global.data_dir.clone(),
        run_dir: super::run_dir(),
        node_name: super::node_name(),
        backoff,
        registries: coracle_image::RegistryConfig::load(&global.registry_config)?,
    };
    let network = (!args.no_network).then(|| {
        let mut net = coracle_network::NetworkConfig::new(global.data_dir.join("network"));
        if let Ok(cidr) = args.pod_cidr.parse() {
            net.pod_cidr = cidr;
        }
        net.bridge_name = args.bridge.clone();
        net
    });
    if !args.no_network && args.pod_cidr.parse::<coracle_network::IpNet>().is_err() {
        bail!(
            "invalid --pod-cidr {:?}: use a CIDR such as 10.88.0.0/16",
            args.pod_cidr
        );
    }

    let view = Arc::new(RunView::new(ViewOptions {
        logs: args.logs,
        data_dir: global.data_dir.clone(),
    }));
    let kubelet = Kubelet::new(config, network, Arc::new(manifests.objects), view.clone())?;

    // Re-adopt pods of an interrupted run; replace those whose spec changed.
    let mut uids = Vec::new();
    let stored = kubelet.stored_pods();
    for mut pod in manifests.pods {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let previous = stored.iter().find(|s| {
            s.pod.metadata.namespace.as_deref() == Some(ns.as_str())
                && s.pod.metadata.name.as_deref() == Some(name.as_str())
        });
        if let Some(previous) = previous {
            let mut wanted = pod.spec.clone().unwrap_or_default();
            wanted.node_name = previous.pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let uid = previous.uid().to_string();
            if previous.pod.spec.as_ref() == Some(&wanted) && previous.terminal.is_none() {
                eprintln!("pod {name:?}: re-adopting the pod of an earlier run");
                kubelet.resume(previous.clone());
                view.track(&uid, &previous.pod);
                uids.push(uid);
                continue;
            }
            eprintln!("pod {name:?}: replacing the pod of an earlier run");
            kubelet.resume(previous.clone());
            kubelet.delete(&uid, Some(0)).await;
            kubelet.wait_removed(&uid).await;
        }
        pod.metadata.uid = None;
        let uid = kubelet.admit(pod.clone())?;
        pod.metadata.uid = Some(uid.clone());
        view.track(&uid, &pod);
        uids.push(uid);
    }

    // Wait for every pod to end, or for Ctrl-C.
    let outcome = tokio::select! {
        outcome = view.wait_all_terminal() => Some(outcome),
        _ = shutdown_signal() => None,
    };
    view.stop_live();
    let code = match &outcome {
        Some(failures) if failures.is_empty() => {
            eprintln!("all pods succeeded");
            0
        }
        Some(failures) => {
            for f in failures {
                eprintln!("coracle: {f}");
            }
            1
        }
        None => {
            eprintln!("stopping pods…");
            130
        }
    };

    if args.keep && outcome.is_some() {
        return Ok(code);
    }
    for uid in &uids {
        kubelet.delete(uid, None).await;
    }
    for uid in &uids {
        kubelet.wait_removed(uid).await;
    }
    view.flush_logs();
    Ok(code)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
