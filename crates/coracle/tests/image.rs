//! End-to-end tests of `coracle image`: the real binary, real archives, a real registry
//! (Debian's `docker-registry`, started per test on a free loopback port), real overlayfs.
//! Every test uses a fresh data dir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// bcrypt of `coracle-pass`, for the registry's htpasswd file.
const HTPASSWD: &str = "coracle:$2b$12$P8zbOfJR7ADSYGMw0YBZee/sd7e6UZFM.FjjcSboxgNxVA.d.m/Mi";

/// The test archives, built by scripts/make-test-images.py if missing.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::var_os("CORACLE_TEST_IMAGES")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target/test-images"));
        if !dir.join("armonly.oci.tar").exists() || !dir.join("mixed.oci.tar").exists() {
            let status = Command::new("python3")
                .arg(repo.join("scripts/make-test-images.py"))
                .arg(&dir)
                .stdout(Stdio::null())
                .status()
                .expect("run make-test-images.py");
            assert!(status.success(), "make-test-images.py failed");
        }
        dir
    })
}

fn archive(name: &str) -> String {
    images().join(name).display().to_string()
}

/// A fresh data dir and a way to run `coracle` on it.
struct Coracle {
    dir: TempDir,
}

impl Coracle {
    fn new() -> Coracle {
        Coracle {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coracle"));
        cmd.arg("--data-dir")
            .arg(self.data())
            .arg("--registry-config")
            .arg(self.data().join("registries.yaml"))
            .args(args)
            .env("HOME", self.data())
            .env_remove("DOCKER_CONFIG");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run coracle")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coracle {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts failure with one line on stderr; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "coracle {args:?} succeeded");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("coracle: "))
            .collect();
        assert_eq!(errors.len(), 1, "want one error line, got: {stderr}");
        errors[0].to_string()
    }

    fn inspect(&self, reference: &str) -> Value {
        serde_json::from_str(&self.ok(&["image", "inspect", reference])).unwrap()
    }

    fn layer_dirs(&self) -> Vec<String> {
        entries(&self.data().join("images/l"))
    }

    /// The store holds no image, no layer and no leftover.
    fn assert_empty(&self) {
        assert_eq!(self.ok(&["image", "ls", "-q"]), "");
        assert_eq!(self.layer_dirs(), Vec::<String>::new());
        assert_eq!(
            entries(&self.data().join("images/tmp")),
            Vec::<String>::new()
        );
        assert_eq!(
            entries(&self.data().join("images/blobs/sha256")),
            Vec::<String>::new()
        );
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A docker-registry on a free loopback port, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    auth: bool,
    _dir: TempDir,
}

impl Registry {
    fn start(auth: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if auth {
            std::fs::write(dir.path().join("htpasswd"), format!("{HTPASSWD}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: coracle, path: {}}}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            port,
            auth,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy SOURCE docker://HOST/DEST`.
    fn push(&self, source: &str, dest: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if self.auth {
            cmd.args(["--dest-creds", "coracle:coracle-pass"]);
        }
        if source.starts_with("oci-archive:") {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(source)
            .arg(format!("docker://{}/{dest}", self.host()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo push of {source} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn layer_paths(image: &Value) -> Vec<String> {
    image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect()
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn pull_by_tag_then_by_digest_from_a_local_registry() {
    let registry = Registry::start(false);
    registry.push(
        &format!("docker-archive:{}", archive("busybox.docker.tar")),
        "busybox:latest",
    );
    let c = Coracle::new();

    let by_tag = format!("{}/busybox", registry.host());
    let id = c.ok(&["image", "pull", &by_tag]).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let image = c.inspect(&by_tag);
    assert_eq!(image["id"], id.as_str());
    assert_eq!(image["repoTags"][0], format!("{by_tag}:latest"));
    let repo_digest = image["repoDigests"][0].as_str().unwrap().to_string();
    assert!(repo_digest.starts_with(&format!("{by_tag}@sha256:")));
    assert_eq!(image["config"]["config"]["Cmd"][0], "sh");
    assert!(Path::new(&layer_paths(&image)[0])
        .join("bin/busybox")
        .is_file());

    // By digest, into a fresh store: the same image, named by digest only.
    let c2 = Coracle::new();
    assert_eq!(c2.ok(&["image", "pull", &repo_digest]).trim(), id);
    let image = c2.inspect(&repo_digest);
    assert_eq!(image["repoTags"], serde_json::json!([]));
    assert_eq!(image["repoDigests"][0], repo_digest.as_str());
}

#[test]
fn pull_through_a_registries_yaml_mirror_for_docker_hub() {
    let registry = Registry::start(false);
    registry.push(
        &format!("docker-archive:{}", archive("busybox.docker.tar")),
        "library/busybox:latest",
    );
    let c = Coracle::new();
    std::fs::write(
        c.data().join("registries.yaml"),
        format!(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    let out = c.run(&["image", "pull", "busybox"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains(&format!("on {}", registry.host())),
        "{progress}"
    );
    assert!(
        progress.contains("layer ") && progress.contains("done"),
        "{progress}"
    );
    let image = c.inspect("busybox");
    assert_eq!(image["repoTags"][0], "docker.io/library/busybox:latest");
}

#[test]
fn pull_with_basic_auth_from_registries_yaml_or_docker_config() {
    let registry = Registry::start(true);
    registry.push(
        &format!("docker-archive:{}", archive("busybox.docker.tar")),
        "busybox:latest",
    );
    let reference = format!("{}/busybox:latest", registry.host());

    let anonymous = Coracle::new();
    let line = anonymous.fails(&["image", "pull", &reference]);
    assert!(line.contains("unauthorized"), "{line}");
    anonymous.assert_empty();

    let yaml = Coracle::new();
    std::fs::write(
        yaml.data().join("registries.yaml"),
        format!(
            "configs:\n  \"{}\":\n    auth: {{username: coracle, password: coracle-pass}}\n",
            registry.host()
        ),
    )
    .unwrap();
    yaml.ok(&["image", "pull", &reference]);

    let docker = Coracle::new();
    std::fs::create_dir(docker.data().join(".docker")).unwrap();
    std::fs::write(
        docker.data().join(".docker/config.json"),
        // base64("coracle:coracle-pass")
        format!(
            r#"{{"auths": {{"{}": {{"auth": "Y29yYWNsZTpjb3JhY2xlLXBhc3M="}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    docker.ok(&["image", "pull", &reference]);
}

#[test]
fn pull_of_a_multi_platform_index_takes_the_host_platform() {
    let registry = Registry::start(false);
    registry.push(
        &format!("oci-archive:{}", archive("multiarch.oci.tar")),
        "multiarch:v1",
    );
    let c = Coracle::new();
    c.ok(&[
        "image",
        "pull",
        &format!("{}/multiarch:v1", registry.host()),
    ]);
    let image = c.inspect(&format!("{}/multiarch:v1", registry.host()));
    assert_eq!(image["config"]["architecture"], "amd64");
}

#[test]
fn pull_bad_input_fails_with_one_line_and_leaves_the_store_as_it_was() {
    let registry = Registry::start(false);
    registry.push(
        &format!("oci-archive:{}", archive("armonly.oci.tar")),
        "armonly:v1",
    );
    let c = Coracle::new();

    let line = c.fails(&["image", "pull", "Not//A:ref"]);
    assert!(
        line.contains("invalid image reference \"Not//A:ref\""),
        "{line}"
    );

    let port = closed_port();
    let line = c.fails(&["image", "pull", &format!("127.0.0.1:{port}/busybox")]);
    assert!(
        line.contains(&format!("registry 127.0.0.1:{port} unreachable")),
        "{line}"
    );
    assert!(line.contains("onnection refused"), "{line}");

    let missing = format!("{}/nosuch:latest", registry.host());
    let line = c.fails(&["image", "pull", &missing]);
    assert_eq!(
        line,
        format!("coracle: pull \"{missing}\": manifest unknown")
    );

    let line = c.fails(&["image", "pull", &format!("{}/armonly:v1", registry.host())]);
    assert!(
        line.contains("no image for platform linux/amd64; the image has linux/arm64"),
        "{line}"
    );
    c.assert_empty();
}

#[test]
fn import_docker_save_oci_and_compressed_archives() {
    let c = Coracle::new();
    let out = c.ok(&["image", "import", &archive("busybox.docker.tar")]);
    assert_eq!(out, "Loaded image: docker.io/library/busybox:latest\n");
    let out = c.ok(&["image", "import", &archive("layered.oci.tar")]);
    assert_eq!(out, "Loaded image: coracle.test/layered:v1\n");
    // zstd, gzip and uncompressed layers in one image.
    c.ok(&["image", "import", &archive("mixed.oci.tar")]);
    // A gzip-compressed archive, read from stdin.
    let gz = c.data().join("entrypoint.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c {} > {}",
            archive("entrypoint.docker.tar"),
            gz.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let out = c
        .command(&["image", "import", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let entrypoint = c.inspect("coracle.test/entrypoint:v1");
    assert_eq!(entrypoint["config"]["config"]["User"], "1000:1000");
    let mixed = c.inspect("coracle.test/mixed:v1");
    let layered = c.inspect("coracle.test/layered:v1");
    // Same layer contents, whatever the compression: the same diff ids and directories.
    assert_eq!(layer_paths(&mixed), layer_paths(&layered));
    assert_eq!(c.layer_dirs().len(), 3);
}

#[test]
fn whiteouts_and_opaque_dirs_give_the_right_tree_under_overlayfs() {
    let c = Coracle::new();
    c.ok(&["image", "import", &archive("layered.docker.tar")]);
    let mut layers = layer_paths(&c.inspect("coracle.test/layered:v1"));
    assert_eq!(layers.len(), 3);
    layers.reverse(); // overlay wants the top layer first
    let target = c.data().join("merged");
    std::fs::create_dir(&target).unwrap();
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", layers.join(":")))
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "overlay mount failed");
    let _mount = Mount(target.clone());

    assert!(
        !target.join("data/removed").exists(),
        "whiteout did not hide data/removed"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("data/kept")).unwrap(),
        "kept\n"
    );
    assert!(
        !target.join("opaque/old").exists(),
        "opaque dir did not hide opaque/old"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("opaque/new")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("etc/motd")).unwrap(),
        "layer three\n"
    );
    assert_eq!(
        std::fs::read_link(target.join("data/symlink")).unwrap(),
        PathBuf::from("kept")
    );
    use std::os::unix::fs::MetadataExt;
    let kept = std::fs::metadata(target.join("data/kept")).unwrap();
    let hard = std::fs::metadata(target.join("data/hardlink")).unwrap();
    assert_eq!((kept.ino(), kept.nlink()), (hard.ino(), 2));
    let home = std::fs::metadata(target.join("home/user")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));
    let tmp = std::fs::metadata(target.join("tmp")).unwrap();
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    assert!(target.join("bin/busybox").is_file());
}

#[test]
fn layers_shared_between_images_are_stored_once() {
    let c = Coracle::new();
    c.ok(&["image", "import", &archive("busybox.docker.tar")]);
    c.ok(&["image", "import", &archive("layered.oci.tar")]);
    let busybox = layer_paths(&c.inspect("busybox"));
    let layered = layer_paths(&c.inspect("coracle.test/layered:v1"));
    assert_eq!(busybox[0], layered[0]);
    assert_eq!(c.layer_dirs().len(), 3);

    // Removing one image keeps the layer the other still uses.
    c.ok(&["image", "rm", "coracle.test/layered:v1"]);
    assert_eq!(c.layer_dirs().len(), 1);
    assert!(Path::new(&busybox[0]).join("bin/busybox").is_file());
}

#[test]
fn concurrent_imports_and_pulls_of_one_image_both_succeed_with_one_copy() {
    let c = Coracle::new();
    let a = archive("layered.docker.tar");
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            c.command(&["image", "import", &a])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(c.layer_dirs().len(), 3);
    assert_eq!(c.ok(&["image", "ls", "-q"]).lines().count(), 1);

    let registry = Registry::start(false);
    registry.push(
        &format!("docker-archive:{}", archive("layered.docker.tar")),
        "layered:v1",
    );
    let p = Coracle::new();
    let reference = format!("{}/layered:v1", registry.host());
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            p.command(&["image", "pull", "-q", &reference])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(p.layer_dirs().len(), 3);
    assert_eq!(p.ok(&["image", "ls", "-q"]).lines().count(), 1);
}

#[test]
fn an_interrupted_import_is_never_taken_as_complete() {
    let c = Coracle::new();
    let a = archive("layered.docker.tar");
    // Kill imports at various points; whatever is left must be whole or absent.
    for delay_ms in [0, 2, 5, 10, 20, 40] {
        let mut child = c
            .command(&["image", "import", &a])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for dir in c.layer_dirs() {
            let info = c.data().join(format!("images/layer-info/{dir}.json"));
            assert!(info.is_file(), "layer {dir} in place without its info");
        }
        for id in c.ok(&["image", "ls", "-q"]).lines() {
            for path in layer_paths(&c.inspect(id)) {
                assert!(Path::new(&path).is_dir(), "image {id} lacks {path}");
            }
        }
        assert_eq!(entries(&c.data().join("images/tmp")), Vec::<String>::new());
    }

    // A crash mid-unpack, simulated: a half-written layer and a dead lease.
    // The busybox layer's diff id, learnt from an import elsewhere (the test image is built
    // from the machine's busybox-static, so it differs between machines).
    let probe = Coracle::new();
    probe.ok(&["image", "import", &a]);
    let first = layer_paths(&probe.inspect("coracle.test/layered:v1"))[0].clone();
    let hex = Path::new(&first)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let d = Coracle::new();
    d.ok(&["image", "ls"]);
    let half = d
        .data()
        .join(format!("images/tmp/{hex}.unpack.0123456789abcdef"));
    std::fs::create_dir_all(half.join("bin")).unwrap();
    std::fs::write(half.join("bin/busybox"), b"half").unwrap();
    std::fs::write(d.data().join("images/leases/999999-dead"), b"[]").unwrap();
    assert_eq!(d.ok(&["image", "ls", "-q"]), "");
    assert!(!half.exists(), "the half-unpacked layer was not cleaned");
    assert!(!d.data().join("images/leases/999999-dead").exists());
    d.ok(&["image", "import", &a]);
    let busybox = d.data().join(format!("images/l/{hex}/bin/busybox"));
    assert!(std::fs::metadata(busybox).unwrap().len() > 100_000);
}

#[test]
fn ls_inspect_and_rm_by_name_digest_and_id_prefix() {
    let c = Coracle::new();
    c.ok(&["image", "import", &archive("busybox.docker.tar")]);
    c.ok(&["image", "import", &archive("layered.oci.tar")]);

    let ls = c.ok(&["image", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
    assert!(
        lines[1].starts_with("coracle.test/layered") && lines[1].contains(" v1 "),
        "{ls}"
    );
    assert!(lines[2].starts_with("docker.io/library/busybox") && lines[2].contains(" latest "));
    assert!(lines[2].ends_with("MB"), "{ls}");
    let busybox_id = c.inspect("busybox")["id"].as_str().unwrap().to_string();
    assert!(lines[2].contains(&busybox_id[7..19]));

    let ids = c.ok(&["image", "ls", "-q"]);
    assert_eq!(ids.lines().count(), 2);
    assert!(ids
        .lines()
        .all(|l| l.starts_with("sha256:") && l.len() == 71));
    let digests = c.ok(&["image", "ls", "--digests"]);
    assert!(digests.lines().next().unwrap().contains("DIGEST"));

    let layered = c.inspect("coracle.test/layered:v1");
    assert_eq!(layered["layers"].as_array().unwrap().len(), 3);
    assert!(layered["layers"][2]["diffId"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(layered["size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(layered["created"], "2023-11-14T22:13:20Z");
    let digest = layered["repoDigests"][0].as_str().unwrap().to_string();
    assert_eq!(c.inspect(&digest)["id"], layered["id"]);
    let id = layered["id"].as_str().unwrap().to_string();
    assert_eq!(c.inspect(&id[7..15])["id"], layered["id"]);

    assert_eq!(
        c.ok(&["image", "rm", "busybox"]),
        "Deleted: docker.io/library/busybox:latest\n"
    );
    assert!(c
        .fails(&["image", "inspect", "busybox"])
        .contains("image \"busybox\" not found"));
    assert_eq!(c.layer_dirs().len(), 3); // layered still uses the base layer
    c.ok(&["image", "rm", &id[7..19]]);
    c.assert_empty();
    let line = c.fails(&["image", "rm", "busybox"]);
    assert_eq!(line, "coracle: image \"busybox\" not found");
}

#[test]
fn import_bad_archives_fails_with_one_line_and_leaves_the_store_as_it_was() {
    let c = Coracle::new();
    let dir = c.data().join("bad");
    std::fs::create_dir(&dir).unwrap();

    let garbage = dir.join("garbage.tar");
    std::fs::write(&garbage, vec![0x42u8; 10_000]).unwrap();
    let line = c.fails(&["image", "import", garbage.to_str().unwrap()]);
    assert!(
        line.starts_with(&format!(
            "coracle: import {:?}: archive:",
            garbage.display().to_string()
        )),
        "{line}"
    );

    let not_image = dir.join("plain.tar");
    let status = Command::new("tar")
        .args(["-cf", not_image.to_str().unwrap(), "-C", "/etc", "hostname"])
        .status()
        .unwrap();
    assert!(status.success());
    let line = c.fails(&["image", "import", not_image.to_str().unwrap()]);
    assert!(
        line.ends_with("not a docker-save or OCI layout archive: no manifest.json or index.json"),
        "{line}"
    );

    let full = std::fs::read(archive("layered.docker.tar")).unwrap();
    let truncated = dir.join("truncated.tar");
    std::fs::write(&truncated, &full[..full.len() / 2 + 7]).unwrap();
    let line = c.fails(&["image", "import", truncated.to_str().unwrap()]);
    assert!(line.contains("truncated.tar"), "{line}");

    let line = c.fails(&["image", "import", &archive("badblob.oci.tar")]);
    assert!(line.contains("digest mismatch: expected sha256:"), "{line}");
    let line = c.fails(&["image", "import", &archive("baddiffid.docker.tar")]);
    assert!(
        line.contains("digest mismatch: expected sha256:0000"),
        "{line}"
    );
    let line = c.fails(&["image", "import", &archive("armonly.oci.tar")]);
    assert!(
        line.contains("no image for platform linux/amd64; the image has linux/arm64"),
        "{line}"
    );
    let line = c.fails(&["image", "import", "/nonexistent.tar"]);
    assert!(line.contains("/nonexistent.tar"), "{line}");

    c.assert_empty();
}
