//! The `coracle` binary: runs Kubernetes pods on one Linux machine.
//!
//! Every verb lives in its own module under `cli/`. The container helper process (`shim`) is
//! dispatched before any async runtime starts, because the OCI runtime library it drives forks
//! with a raw `clone3` and must run in a single-threaded process; so are the exec helper and
//! the pause helper of shared PID namespaces, which fork too.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Options every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Where coracle keeps images, containers and pod state.
    #[arg(
        long,
        global = true,
        env = "CORACLE_DATA_DIR",
        default_value = "/var/lib/coracle"
    )]
    pub data_dir: PathBuf,

    /// Registry mirrors, TLS settings and credentials, in the k3s `registries.yaml` format.
    #[arg(
        long,
        global = true,
        env = "CORACLE_REGISTRY_CONFIG",
        default_value = "/etc/coracle/registries.yaml"
    )]
    pub registry_config: PathBuf,
}

#[derive(Debug, Parser)]
#[command(
    name = "coracle",
    version,
    about = "Run Kubernetes pods on one Linux machine"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull, import, list, inspect and remove OCI images.
    #[command(subcommand)]
    Image(cli::image::ImageCommand),

    /// Low-level container commands, for debugging the runtime.
    #[command(subcommand)]
    Ctr(cli::ctr::CtrCommand),

    /// Rewrite manifests using the legacy init-container annotations into spec.initContainers.
    Convert(cli::convert::ConvertArgs),

    /// Run the Pods of manifests in the foreground (no server), until they finish or Ctrl-C.
    Run(cli::run::RunArgs),

    /// Serve the Kubernetes API (for kubectl) and run the pods it holds.
    Server(cli::server::ServerArgs),

    /// Internal: the per-container helper process. Not for direct use.
    #[command(hide = true)]
    Shim(cli::shim::ShimArgs),

    /// Internal: the helper that runs one exec'd process in a container. Not for direct use.
    #[command(hide = true)]
    ExecShim(cli::exec_shim::ExecShimArgs),

    /// Internal: PID 1 of a pod's shared PID namespace. Not for direct use.
    #[command(hide = true)]
    Pause(cli::pause::PauseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    // The exec helper's stderr belongs to the exec'd process: it logs to a file, and stays
    // single-threaded like the shim.
    if let Command::ExecShim(args) = cli.command {
        return cli::exit_code(cli::exec_shim::run(args));
    }
    cli::init_tracing();

    // The shim must stay single-threaded: dispatch it before tokio exists.
    if let Command::Shim(args) = cli.command {
        return cli::exit_code(cli::shim::run(&cli.global, args));
    }
    // So must the pause helper, which forks and keeps running Rust code in the child.
    if let Command::Pause(args) = cli.command {
        return cli::exit_code(cli::pause::run(args));
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("coracle: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Image(cmd) => cli::image::run(&cli.global, cmd).await,
            Command::Ctr(cmd) => cli::ctr::run(&cli.global, cmd).await,
            Command::Convert(args) => cli::convert::run(args),
            Command::Run(args) => cli::run::run(&cli.global, args).await,
            Command::Server(args) => cli::server::run(&cli.global, args).await,
            Command::Shim(_) | Command::ExecShim(_) | Command::Pause(_) => {
                unreachable!("dispatched above")
            }
        }
    });
    cli::exit_code(result)
}
