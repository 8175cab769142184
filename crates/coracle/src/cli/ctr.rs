//! `coracle ctr`: low-level container commands for debugging the runtime without a kubelet.
//!
//! Containers started here live under `DATA/containers/<id>` like the kubelet's; `ctr` keeps
//! each one's CRI log and `/etc` files in `DATA/ctr/<id>/`. libcontainer state goes under
//! `$CORACLE_RUN_DIR` (default `/run/coracle`). Containers get the cgroup parent `/coracle/ctr`.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, Context};
use coracle_image::ImageStore;
use coracle_runtime::k8s_openapi::api::core::v1::{
    Container, ResourceRequirements, SecurityContext,
};
use coracle_runtime::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use coracle_runtime::{
    ContainerConfig, ContainerRuntime, ContainerStatus, LogFollower, Mount, Propagation, Stream,
};
use nix::sys::signal::Signal;

use crate::GlobalArgs;

/// The cgroup parent of containers started by `coracle ctr`.
const CGROUP_PARENT: &str = "/coracle/ctr";

/// Subcommands of `coracle ctr`.
#[derive(Debug, clap::Subcommand)]
pub enum CtrCommand {
    /// Run a container from a stored image; without -d, stream its output and exit with its code.
    Run(RunArgs),
    /// List containers.
    Ps,
    /// Print a container's output (from its CRI log).
    Logs {
        /// Container id.
        id: String,
        /// Keep printing until the container exits.
        #[arg(short, long)]
        follow: bool,
    },
    /// Wait for a container to exit, print its exit code and exit with it.
    Wait {
        /// Container id.
        id: String,
    },
    /// Send a signal (default SIGKILL) to a container.
    Kill {
        /// Container id.
        id: String,
        /// Signal name (`TERM`, `SIGTERM`) or number.
        signal: Option<String>,
    },
    /// Stop a container: its stop signal, then SIGKILL after the grace period.
    Stop {
        /// Container id.
        id: String,
        /// Grace period in seconds.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
    },
    /// Remove an exited container and its log.
    Rm {
        /// Container id.
        id: String,
        /// Kill it first if it is running.
        #[arg(short, long)]
        force: bool,
    },
    /// Create or remove pod sandboxes (network, IPC and UTS namespaces).
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

/// `coracle ctr run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Container id (default: generated).
    #[arg(long)]
    name: Option<String>,
    /// Remove the container when it exits (not with -d).
    #[arg(long)]
    rm: bool,
    /// Start it and print its id without waiting.
    #[arg(short, long)]
    detach: bool,
    /// Memory limit, e.g. `64Mi`.
    #[arg(long)]
    memory: Option<String>,
    /// CPU limit, e.g. `500m`.
    #[arg(long)]
    cpus: Option<String>,
    /// Join the namespaces of this sandbox directory (see `ctr sandbox create`).
    #[arg(long)]
    net_sandbox: Option<PathBuf>,
    /// Bind mount `HOST:CONTAINER[:ro]`.
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// Environment variable `K=V` (Kubernetes `$(VAR)` expansion applies).
    #[arg(short, long)]
    env: Vec<String>,
    /// Kubernetes `args` (repeat for each); the trailing words are `command`.
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Working directory.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Run privileged: all capabilities and devices, no seccomp, writable /sys.
    #[arg(long)]
    privileged: bool,
    /// The image reference, as stored by `coracle image import` or `pull`.
    image: String,
    /// Kubernetes `command`: replaces the image's entrypoint and cmd.
    #[arg(last = true)]
    command: Vec<String>,
}

/// `coracle ctr sandbox` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Create namespaces held by files in DIR.
    Create {
        /// The sandbox directory.
        dir: PathBuf,
        /// Hostname of the new UTS namespace.
        #[arg(long, default_value = "sandbox")]
        hostname: String,
        /// Use the host's network and UTS namespaces.
        #[arg(long)]
        host_network: bool,
    },
    /// Unmount and delete the sandbox in DIR.
    Rm {
        /// The sandbox directory.
        dir: PathBuf,
    },
}

/// Runs one `coracle ctr` subcommand.
pub async fn run(global: &GlobalArgs, cmd: CtrCommand) -> anyhow::Result<i32> {
    let run_dir = std::env::var_os("CORACLE_RUN_DIR")
        .map_or_else(|| PathBuf::from("/run/coracle"), PathBuf::from);
    let shim_exe = std::env::current_exe().context("cannot find the coracle binary")?;
    let rt = ContainerRuntime::new(&global.data_dir, &run_dir, shim_exe);
    let ctr_dir = |id: &str| global.data_dir.join("ctr").join(id);

    match cmd {
        CtrCommand::Run(args) => run_container(global, &rt, args).await,
        CtrCommand::Ps => {
            println!("{:<24} {:<10} DETAILS", "ID", "STATUS");
            for (id, status) in rt.list()? {
                let (state, details) = match status {
                    ContainerStatus::Created => ("created".to_string(), String::new()),
                    ContainerStatus::Running { pid, started_at } => (
                        "running".to_string(),
                        format!("pid {pid}, since {}", started_at.to_rfc3339()),
                    ),
                    ContainerStatus::Exited(exit) => (
                        "exited".to_string(),
                        format!("code {} ({})", exit.exit_code, exit.reason.as_str()),
                    ),
                };
                println!("{id:<24} {state:<10} {details}");
            }
            Ok(0)
        }
        CtrCommand::Logs { id, follow } => {
            rt.status(&id)?;
            print_logs(&rt, &id, &ctr_dir(&id).join("log"), follow).await?;
            Ok(0)
        }
        CtrCommand::Wait { id } => {
            let status = rt.wait(&id).await?;
            let code = status.exit().map_or(255, |e| e.exit_code);
            println!("{code}");
            Ok(code)
        }
        CtrCommand::Kill { id, signal } => {
            let signal = match signal {
                Some(s) => parse_signal(&s)?,
                None => Signal::SIGKILL,
            };
            rt.kill(&id, signal)?;
            Ok(0)
        }
        CtrCommand::Stop { id, time } => {
            let status = rt.stop(&id, Duration::from_secs(time)).await?;
            Ok(status.exit().map_or(255, |e| e.exit_code))
        }
        CtrCommand::Rm { id, force } => {
            if force {
                rt.stop(&id, Duration::ZERO).await?;
            }
            rt.remove(&id)?;
            let _ = std::fs::remove_dir_all(ctr_dir(&id));
            Ok(0)
        }
        CtrCommand::Sandbox(SandboxCommand::Create {
            dir,
            hostname,
            host_network,
        }) => {
            let ns = coracle_runtime::create_sandbox(&dir, &hostname, host_network)?;
            println!("{}", ns.net.display());
            Ok(0)
        }
        CtrCommand::Sandbox(SandboxCommand::Rm { dir }) => {
            coracle_runtime::remove_sandbox(&dir)?;
            Ok(0)
        }
    }
}

async fn run_container(
    global: &GlobalArgs,
    rt: &ContainerRuntime,
    args: RunArgs,
) -> anyhow::Result<i32> {
    let store = ImageStore::open(&global.data_dir)?;
    let image = store.get(&args.image)?.with_context(|| {
        format!(
            "image \"{}\" not found: import it with `coracle image import` or pull it",
            args.image
        )
    })?;

    let id = args.name.clone().unwrap_or_else(generated_id);
    let dir = global.data_dir.join("ctr").join(&id);
    if rt.container_dir(&id).exists() {
        bail!("container \"{id}\" already exists");
    }
    let sandbox = match &args.net_sandbox {
        Some(sb) => Some(
            coracle_runtime::load_sandbox(sb)
                .with_context(|| format!("no sandbox in {}", sb.display()))?,
        ),
        None => None,
    };
    let mut mounts = coracle_runtime::default_etc_mounts(&dir.join("etc"), &id)?;
    for volume in &args.volumes {
        mounts.push(parse_volume(volume)?);
    }
    let config = ContainerConfig {
        id: id.clone(),
        container: container_spec(&id, &args),
        env: args
            .env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map_or((kv.clone(), String::new()), |(k, v)| (k.into(), v.into()))
            })
            .collect(),
        image_config: image.config,
        layers: image.layers,
        mounts,
        sandbox,
        pod_security: None,
        hostname: Some(id.clone()),
        cgroup_parent: CGROUP_PARENT.into(),
        pids_limit: None,
        log_path: dir.join("log"),
    };

    if let Err(err) = rt.start(config).await {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(err.into());
    }
    if args.detach {
        println!("{id}");
        return Ok(0);
    }

    print_logs(rt, &id, &dir.join("log"), true).await?;
    let status = rt.wait(&id).await?;
    let code = status.exit().map_or(255, |e| e.exit_code);
    if args.rm {
        rt.remove(&id)?;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(code)
}

/// The Kubernetes container for `ctr run`'s options.
fn container_spec(id: &str, args: &RunArgs) -> Container {
    let mut limits = std::collections::BTreeMap::new();
    if let Some(memory) = &args.memory {
        limits.insert("memory".to_string(), Quantity(memory.clone()));
    }
    if let Some(cpus) = &args.cpus {
        limits.insert("cpu".to_string(), Quantity(cpus.clone()));
    }
    Container {
        name: id.to_string(),
        command: (!args.command.is_empty()).then(|| args.command.clone()),
        args: (!args.args.is_empty()).then(|| args.args.clone()),
        working_dir: args.workdir.clone(),
        security_context: args.privileged.then(|| SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `HOST:CONTAINER[:ro]`.
fn parse_volume(spec: &str) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [h, c] => (h, c, false),
        [h, c, "ro"] => (h, c, true),
        [h, c, "rw"] => (h, c, false),
        _ => bail!("invalid volume \"{spec}\": use HOST:CONTAINER[:ro]"),
    };
    let host_path = std::fs::canonicalize(host).with_context(|| format!("volume source {host}"))?;
    Ok(Mount {
        host_path,
        container_path: PathBuf::from(container),
        read_only,
        propagation: Propagation::None,
    })
}

/// `TERM`, `SIGTERM` or `15`.
fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .with_context(|| format!("invalid signal {text}"))
}

/// How often a followed log is read for new records while the container runs.
const FOLLOW_PERIOD: Duration = Duration::from_millis(50);

/// Prints the log's records to stdout and stderr; with `follow`, until the container exited.
///
/// Following, the exit itself is not polled for: [`ContainerRuntime::wait`] wakes on it, so
/// the last records are printed and this returns as soon as the shim has recorded the exit.
async fn print_logs(
    rt: &ContainerRuntime,
    id: &str,
    log: &Path,
    follow: bool,
) -> anyhow::Result<()> {
    let mut exit = std::pin::pin!(rt.wait(id));
    let mut exited = false;

    let mut follower = loop {
        match LogFollower::open(log) {
            Ok(f) => break f,
            Err(err) if follow && err.kind() == std::io::ErrorKind::NotFound => {
                if !matches!(
                    rt.status(id)?,
                    ContainerStatus::Running { .. } | ContainerStatus::Created
                ) {
                    return Ok(());
                }
                follow_tick(exit.as_mut(), &mut exited).await;
            }
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", log.display())),
        }
    };
    loop {
        // Look at the state first: records written before the exit are then all read below.
        let done = !follow || matches!(rt.status(id)?, ContainerStatus::Exited(_));
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for line in follower.read_new()? {
            let sink: &mut dyn Write = if line.stream == Stream::Stdout {
                &mut out
            } else {
                &mut err
            };
            sink.write_all(&line.text)?;
            if !line.partial {
                sink.write_all(b"\n")?;
            }
        }
        out.flush()?;
        drop((out, err));
        if done {
            return Ok(());
        }
        follow_tick(exit.as_mut(), &mut exited).await;
    }
}

/// Sleeps one follow period, or less if `exit` (the container's wait) resolves meanwhile;
/// once it has, `exited` is set and this returns at once.
async fn follow_tick<F: Future>(exit: Pin<&mut F>, exited: &mut bool) {
    if *exited {
        return;
    }
    tokio::select! {
        _ = exit => *exited = true,
        _ = tokio::time::sleep(FOLLOW_PERIOD) => {}
    }
}

/// `ctr-<hex>` from the clock and pid.
fn generated_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "ctr-{:x}",
        (nanos as u64) ^ ((std::process::id() as u64) << 40)
    )
}
