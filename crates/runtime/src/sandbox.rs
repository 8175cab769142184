//! Pod sandboxes: network, IPC and UTS namespaces that outlive any one container.
//!
//! There is no pause process. A short-lived forked child unshares the namespaces, sets the
//! hostname and brings `lo` up; the parent bind-mounts the child's `/proc/<pid>/ns/*` files into
//! the sandbox directory, which keeps the namespaces alive, and lets the child exit. The child
//! runs only raw system calls (no allocation, no locks), so forking from the multi-threaded
//! daemon is safe; the daemon's own threads never change namespace.
//!
//! With host networking the sandbox holds the host's network and UTS namespaces (the ones the
//! calling process is in) and only a new IPC namespace.
//!
//! A pod with `shareProcessNamespace: true` also needs a PID namespace, which a file cannot
//! hold: [`ContainerRuntime::share_pid_namespace`] adds a pause process to the sandbox (see
//! [`crate::pause`]). Such a sandbox is lost when that process is gone, and
//! [`remove_sandbox`] kills it. Other sandboxes have no process at all.
//!
//! [`ContainerRuntime::share_pid_namespace`]: crate::ContainerRuntime::share_pid_namespace

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult};

use crate::config::SandboxNamespaces;
use crate::pause;
use crate::rootfs::is_mount_point;
use crate::RuntimeError;

const NS_FILES: [&str; 3] = ["net", "ipc", "uts"];

/// The namespace files of the sandbox in `dir` (whether or not they exist); the PID namespace
/// file only if the sandbox was given a pause process.
pub fn sandbox_namespaces(dir: &Path) -> SandboxNamespaces {
    SandboxNamespaces {
        net: dir.join("net"),
        ipc: dir.join("ipc"),
        uts: dir.join("uts"),
        pid: pause::has_pause(dir).then(|| dir.join(pause::PID_NS_FILE)),
    }
}

/// The sandbox in `dir` if its three namespace files are mounted (e.g. after a restart) and,
/// for a sandbox with a shared PID namespace, its pause process still runs.
pub fn load_sandbox(dir: &Path) -> Option<SandboxNamespaces> {
    let files = NS_FILES.iter().all(|f| is_mount_point(&dir.join(f)));
    let pid = !pause::has_pause(dir) || pause::is_alive(dir);
    (files && pid).then(|| sandbox_namespaces(dir))
}

/// Creates new namespaces held by bind-mounted files in `dir`; see the module docs.
pub fn create_sandbox(
    dir: &Path,
    hostname: &str,
    host_network: bool,
) -> Result<SandboxNamespaces, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io("cannot create", dir))?;
    let ns = sandbox_namespaces(dir);
    for file in [&ns.net, &ns.ipc, &ns.uts] {
        std::fs::File::create(file).map_err(RuntimeError::io("cannot create", file))?;
    }

    let result = hold_namespaces(&ns, hostname, host_network);
    if result.is_err() {
        let _ = remove_sandbox(dir);
    }
    result.map(|()| ns)
}

/// Forks the child that unshares, bind-mounts its namespaces, then lets it go.
fn hold_namespaces(
    ns: &SandboxNamespaces,
    hostname: &str,
    host_network: bool,
) -> Result<(), RuntimeError> {
    let pipe =
        || pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(RuntimeError::sys("cannot create a pipe"));
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    let flags = if host_network {
        libc::CLONE_NEWIPC
    } else {
        libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS
    };
    let child_step = ChildStep {
        flags,
        hostname: hostname.as_bytes(),
        set_up_net: !host_network,
    };

    // SAFETY: the child only makes raw system calls through `ChildStep::run` (no allocation,
    // no locks) and ends with `_exit`, which is what POSIX allows after fork in a
    // multi-threaded process.
    let child =
        match unsafe { fork() }.map_err(RuntimeError::sys("cannot fork the sandbox child"))? {
            ForkResult::Child => child_step.run(&ready_r, &ready_w, &done_r, &done_w),
            ForkResult::Parent { child } => child,
        };
    drop(ready_w);
    drop(done_r);

    // Wait for the child's verdict, then mount its namespaces while it waits for us.
    let mut byte = [0u8; 1];
    let ok = matches!(nix::unistd::read(ready_r.as_raw_fd(), &mut byte), Ok(1)) && byte[0] == 1;
    let result = if ok {
        bind_namespaces(ns, child.as_raw(), host_network)
    } else {
        Err(RuntimeError::Sys {
            action: "cannot create the sandbox namespaces".to_string(),
            source: nix::Error::last(),
        })
    };
    // Release the child with a byte rather than by closing our end: a sandbox child forked
    // at the same moment by another thread holds a copy of `done_w` (fork copies every
    // descriptor, and CLOEXEC only acts on exec), so end-of-file might never come.
    let _ = nix::unistd::write(&done_w, &[1]);
    drop(done_w);
    let _ = waitpid(child, None);
    result
}

fn bind_namespaces(
    ns: &SandboxNamespaces,
    pid: i32,
    host_network: bool,
) -> Result<(), RuntimeError> {
    let own = format!("/proc/{}/ns", std::process::id());
    let child = format!("/proc/{pid}/ns");
    let sources = [
        (if host_network { &own } else { &child }, "net", &ns.net),
        (&child, "ipc", &ns.ipc),
        (if host_network { &own } else { &child }, "uts", &ns.uts),
    ];
    for (base, name, target) in sources {
        let source = PathBuf::from(base).join(name);
        mount(
            Some(&source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(RuntimeError::sys(format!(
            "cannot bind-mount {} on {}",
            source.display(),
            target.display()
        )))?;
    }
    Ok(())
}

/// What the forked child does; holds only borrowed data prepared before the fork.
struct ChildStep<'a> {
    flags: libc::c_int,
    hostname: &'a [u8],
    set_up_net: bool,
}

impl ChildStep<'_> {
    fn run(&self, ready_r: &OwnedFd, ready_w: &OwnedFd, done_r: &OwnedFd, done_w: &OwnedFd) -> ! {
        // SAFETY: raw system calls on valid file descriptors and buffers that live until
        // `_exit`; nothing here allocates or takes a lock.
        unsafe {
            libc::close(ready_r.as_raw_fd());
            libc::close(done_w.as_raw_fd());
            let mut ok = libc::unshare(self.flags) == 0;
            if ok && self.set_up_net {
                ok = libc::sethostname(self.hostname.as_ptr().cast(), self.hostname.len()) == 0
                    && loopback_up();
            }
            let verdict: u8 = ok.into();
            libc::write(ready_w.as_raw_fd(), (&verdict as *const u8).cast(), 1);
            // Hold the namespaces until the parent has mounted them and says so.
            let mut byte = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0)
        }
    }
}

/// Sets `IFF_UP` on `lo` with two ioctls; only raw system calls.
///
/// # Safety
/// Must only be called in the sandbox child; it uses no allocation.
unsafe fn loopback_up() -> bool {
    // SAFETY: a zeroed ifreq is valid; the name fits in IFNAMSIZ.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0;
        if ok {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            ok = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0;
        }
        libc::close(sock);
        ok
    }
}

/// Kills the sandbox's pause process if it has one, then unmounts and deletes the sandbox in
/// `dir`; a missing or half-made sandbox is fine.
pub fn remove_sandbox(dir: &Path) -> Result<(), RuntimeError> {
    pause::stop(dir)?;
    for name in NS_FILES.iter().chain(&[pause::PID_NS_FILE]) {
        let file = dir.join(name);
        match umount2(&file, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(err) => {
                return Err(RuntimeError::Sys {
                    action: format!("cannot unmount {}", file.display()),
                    source: err,
                })
            }
        }
        match std::fs::remove_file(&file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::io("cannot remove", file)(err))
            }
            _ => {}
        }
    }
    for name in [pause::PAUSE_RECORD, pause::PAUSE_LOG] {
        let file = dir.join(name);
        match std::fs::remove_file(&file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::io("cannot remove", file)(err))
            }
            _ => {}
        }
    }
    match std::fs::remove_dir(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(RuntimeError::io("cannot remove", dir)(err))
        }
        _ => Ok(()),
    }
}
