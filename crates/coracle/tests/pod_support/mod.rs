//! Shared harness of the pod end-to-end tests (`pod_*.rs`).
//!
//! Two ways to run a pod, both on real containers as root:
//! - [`Lab`] drives the kubelet library directly with a recording [`PodObserver`], so a test can
//!   assert exact statuses, every status it went through, and events in order;
//! - [`Env::run`] runs the `coracle run` binary, for exit codes, messages, signals and
//!   re-adoption after a kill.
//!
//! Every test gets its own temp dir holding the data dir (with busybox imported), the run dir
//! (`CORACLE_RUN_DIR`) and any hostPath directories, so tests run in parallel without sharing
//! state. Dropping an [`Env`] kills whatever containers a failed test left and unmounts
//! everything under its temp dir.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coracle_kubelet::objects::ObjectSource;
use coracle_kubelet::{BackoffPolicy, Kubelet, KubeletConfig, PodEvent, PodObserver};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerStatus, Pod, PodCondition, PodStatus, Secret,
};

/// The coracle binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_coracle");

/// The test image archives, built by the repo's script when missing.
pub fn test_images() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("CORACLE_TEST_IMAGES")
        .map_or_else(|| repo.join("target/test-images"), PathBuf::from);
    if !dir.join("busybox.docker.tar").exists() {
        let status = Command::new("python3")
            .arg(repo.join("scripts/make-test-images.py"))
            .arg(&dir)
            .status()
            .expect("run make-test-images.py");
        assert!(status.success(), "make-test-images.py failed");
    }
    dir
}

/// A test's private directories.
pub struct Env {
    /// The temp dir everything lives in.
    pub tmp: tempfile::TempDir,
    /// `--data-dir`.
    pub data: PathBuf,
    /// `CORACLE_RUN_DIR`.
    pub run: PathBuf,
    /// A directory for hostPath volumes.
    pub host: PathBuf,
}

impl Env {
    /// Fresh directories with the busybox image imported.
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let run = tmp.path().join("run");
        let host = tmp.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        let store = coracle_image::ImageStore::open(&data).expect("image store");
        store
            .import(&test_images().join("busybox.docker.tar"))
            .expect("import busybox");
        Env {
            tmp,
            data,
            run,
            host,
        }
    }

    /// Writes a manifest file and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(
            &path,
            yaml.replace("HOST", &self.host.display().to_string()),
        )
        .unwrap();
        path
    }

    /// A `coracle run` command for `files` with back-off shortened to 1s..4s.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(&self.data)
            .arg("run")
            .args(["--backoff-initial", "1s", "--backoff-max", "4s"])
            .args(args)
            .env("CORACLE_RUN_DIR", &self.run)
            .env_remove("CORACLE_BACKOFF_INITIAL")
            .env_remove("CORACLE_BACKOFF_MAX")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `coracle run ARGS` to the end, failing the test after `timeout`.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self
            .run_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coracle run");
        wait_output(child, timeout)
    }

    /// Lines of a file under the hostPath directory (empty when missing).
    pub fn host_lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.host.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The pod directories left in the data dir.
    pub fn pod_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.data.join("pods"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Containers the runtime still knows.
    pub fn containers(&self) -> Vec<(String, coracle_runtime::ContainerStatus)> {
        let rt = coracle_runtime::ContainerRuntime::new(&self.data, &self.run, PathBuf::from(BIN));
        rt.list().unwrap_or_default()
    }

    /// Mount points under this test's temp dir.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(self.tmp.path())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Kill whatever a failed test left running, then unmount everything it mounted.
        let rt = coracle_runtime::ContainerRuntime::new(&self.data, &self.run, PathBuf::from(BIN));
        for (id, _) in rt.list().unwrap_or_default() {
            let _ = rt.kill(&id, nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(200));
        for (id, _) in rt.list().unwrap_or_default() {
            let _ = rt.remove(&id);
        }
        if let Ok(entries) = std::fs::read_dir(self.run.join("sandboxes")) {
            for e in entries.flatten() {
                let _ = coracle_runtime::remove_sandbox(&e.path());
            }
        }
        for m in mounts_under(self.tmp.path()).iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// Mount points at or below `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

/// Waits for `child` to exit with its output; kills it and fails after `timeout`.
pub fn wait_output(mut child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "coracle run did not finish in {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ConfigMaps and Secrets a test can add while pods run.
#[derive(Default)]
pub struct Objects {
    config_maps: Mutex<Vec<ConfigMap>>,
    secrets: Mutex<Vec<Secret>>,
}

impl Objects {
    /// Adds a ConfigMap (in `default` unless it names a namespace).
    pub fn add_config_map(&self, cm: ConfigMap) {
        self.config_maps.lock().unwrap().push(cm);
    }
}

fn same(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    meta.namespace.as_deref().unwrap_or("default") == ns && meta.name.as_deref() == Some(name)
}

impl ObjectSource for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        let all = self.config_maps.lock().unwrap();
        all.iter()
            .rev()
            .find(|c| same(&c.metadata, namespace, name))
            .cloned()
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        let all = self.secrets.lock().unwrap();
        all.iter()
            .rev()
            .find(|c| same(&c.metadata, namespace, name))
            .cloned()
    }
}

/// Records every status and event the kubelet publishes.
#[derive(Default)]
pub struct Recorder {
    statuses: Mutex<BTreeMap<String, Vec<PodStatus>>>,
    events: Mutex<BTreeMap<String, Vec<PodEvent>>>,
    removed: Mutex<Vec<String>>,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl PodObserver for Recorder {
    fn status(&self, pod: &Pod) {
        let status = pod.status.clone().unwrap_or_default();
        self.statuses
            .lock()
            .unwrap()
            .entry(uid_of(pod))
            .or_default()
            .push(status);
    }

    fn event(&self, pod: &Pod, event: &PodEvent) {
        self.events
            .lock()
            .unwrap()
            .entry(uid_of(pod))
            .or_default()
            .push(event.clone());
    }

    fn removed(&self, pod: &Pod) {
        self.removed.lock().unwrap().push(uid_of(pod));
    }
}

/// The kubelet library on real containers, with a recorder.
pub struct Lab {
    /// The kubelet.
    pub kubelet: Kubelet,
    /// What it reported.
    pub rec: Arc<Recorder>,
    /// Objects pods may refer to.
    pub objects: Arc<Objects>,
    /// The directories (dropped last).
    pub env: Env,
}

impl Lab {
    /// A kubelet without pod network (loopback only) and back-off shortened to 1s..4s.
    pub fn new() -> Lab {
        let env = Env::new();
        let config = KubeletConfig {
            data_dir: env.data.clone(),
            run_dir: env.run.clone(),
            node_name: "testnode".into(),
            backoff: BackoffPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(4),
            },
            registries: Default::default(),
        };
        let rec = Arc::new(Recorder::default());
        let objects = Arc::new(Objects::default());
        let kubelet = Kubelet::with_shim(
            config,
            None,
            objects.clone(),
            rec.clone(),
            PathBuf::from(BIN),
        )
        .expect("kubelet");
        Lab {
            kubelet,
            rec,
            objects,
            env,
        }
    }

    /// Admits the pod of `yaml` (defaulted and validated as `coracle run` does); `HOST` in
    /// the text stands for the hostPath directory.
    pub fn admit(&self, yaml: &str) -> String {
        let yaml = yaml.replace("HOST", &self.env.host.display().to_string());
        let loaded = coracle_api::manifest::load(&yaml, "test.yaml").expect("manifest");
        let mut pods = Vec::new();
        for object in loaded.objects {
            match object {
                coracle_api::manifest::Object::Pod(pod) => pods.push(pod),
                coracle_api::manifest::Object::ConfigMap(cm) => self.objects.add_config_map(cm),
                coracle_api::manifest::Object::Secret(s) => {
                    self.objects.secrets.lock().unwrap().push(s)
                }
                _ => panic!("unexpected object"),
            }
        }
        let mut pod = pods.pop().expect("a pod");
        let spec = pod.spec.get_or_insert_with(Default::default);
        coracle_api::legacy::convert_legacy_init_containers(&mut pod.metadata, spec)
            .expect("legacy conversion");
        coracle_api::defaults::default_pod(&mut pod);
        coracle_api::validation::validate_pod(&pod).expect("valid pod");
        self.kubelet.admit(pod).expect("admit")
    }

    /// Every status published for the pod, oldest first.
    pub fn history(&self, uid: &str) -> Vec<PodStatus> {
        self.rec
            .statuses
            .lock()
            .unwrap()
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    /// The latest status.
    pub fn status(&self, uid: &str) -> PodStatus {
        self.history(uid).pop().unwrap_or_default()
    }

    /// Every event about the pod, in order.
    pub fn events(&self, uid: &str) -> Vec<PodEvent> {
        self.rec
            .events
            .lock()
            .unwrap()
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Events as `reason|fieldPath|message` lines, for readable assertions.
    pub fn event_lines(&self, uid: &str) -> Vec<String> {
        self.events(uid)
            .iter()
            .map(|e| {
                format!(
                    "{}|{}|{}",
                    e.reason.as_str(),
                    e.field_path.as_deref().unwrap_or(""),
                    e.message
                )
            })
            .collect()
    }

    /// Waits until the latest status satisfies `pred`; fails with the history after `timeout`.
    pub async fn wait_for(
        &self,
        uid: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PodStatus) -> bool,
    ) -> PodStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(uid);
            if pred(&status) {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\nlast status: {}\nevents:\n{}",
                    serde_json::to_string_pretty(&status).unwrap(),
                    self.event_lines(uid).join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the pod's phase.
    pub async fn wait_phase(&self, uid: &str, phase: &str, timeout: Duration) -> PodStatus {
        self.wait_for(uid, &format!("phase {phase}"), timeout, |s| {
            s.phase.as_deref() == Some(phase)
        })
        .await
    }

    /// Deletes the pod and waits until it is gone.
    pub async fn delete(&self, uid: &str, grace: Option<i64>) {
        self.kubelet.delete(uid, grace).await;
        self.kubelet.wait_removed(uid).await;
    }

    /// Deletes every pod, immediately.
    pub async fn shutdown(&self) {
        for uid in self.kubelet.pod_uids() {
            self.delete(&uid, Some(0)).await;
        }
    }

    /// The pod's state.json as JSON.
    pub fn state_json(&self, uid: &str) -> serde_json::Value {
        let path = self.env.data.join("pods").join(uid).join("state.json");
        serde_json::from_slice(&std::fs::read(path).expect("state.json")).unwrap()
    }
}

/// The status of init container `name`.
pub fn init_status<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no init status {name}"))
}

/// The status of app container `name`.
pub fn app_status<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no container status {name}"))
}

/// `running`, `waiting:<reason>` or `terminated:<reason>:<exit code>`.
pub fn state_of(s: &ContainerStatus) -> String {
    let st = s.state.clone().unwrap_or_default();
    if st.running.is_some() {
        "running".into()
    } else if let Some(w) = st.waiting {
        format!("waiting:{}", w.reason.unwrap_or_default())
    } else if let Some(t) = st.terminated {
        format!(
            "terminated:{}:{}",
            t.reason.unwrap_or_default(),
            t.exit_code
        )
    } else {
        "none".into()
    }
}

/// The condition `type_`.
pub fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no condition {type_}"))
}

/// Whether a status shows container `name` (init or app) in state `state` (see [`state_of`]).
pub fn shows(status: &PodStatus, name: &str, state: &str) -> bool {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .any(|s| s.name == name && state_of(s).starts_with(state))
}

/// Seconds, for timeouts.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
