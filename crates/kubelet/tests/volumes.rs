//! Pod volumes on the real file system (run as root: tmpfs mounts): emptyDir, hostPath type
//! checks, configMap/secret/downwardAPI/projected files with the atomic-writer layout,
//! refreshes, container mounts with subPath, and teardown.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coracle_kubelet::env::NodeInfo;
use coracle_kubelet::objects::StaticObjects;
use coracle_kubelet::volumes::{
    container_mounts, setup_volumes, teardown_volumes, PodVolumes, Propagation, VolumeKind,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIVolumeFile,
    DownwardAPIVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath,
    ObjectFieldSelector, Pod, PodSpec, ProjectedVolumeSource, Secret, SecretProjection,
    SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

/// A pod directory that is torn down even when the test fails.
struct PodDir {
    dir: tempfile::TempDir,
}

impl PodDir {
    fn new() -> PodDir {
        PodDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PodDir {
    fn drop(&mut self) {
        let _ = teardown_volumes(self.dir.path());
    }
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        node_name: "box".into(),
        host_ip: "127.0.0.1".into(),
        cpus: 2,
        memory_bytes: 1 << 30,
    }
}

fn config_map(data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("cfg".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn secret(data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn no_objects() -> StaticObjects {
    StaticObjects::new(vec![], vec![])
}

fn setup(pod: &Pod, dir: &PodDir, objects: &StaticObjects) -> PodVolumes {
    setup_volumes(pod, dir.path(), objects, &node()).expect("volumes set up")
}

fn setup_error(pod: &Pod, dir: &PodDir, objects: &StaticObjects) -> String {
    setup_volumes(pod, dir.path(), objects, &node())
        .unwrap_err()
        .event_message()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn mount_points() -> Vec<(PathBuf, String)> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-").unwrap();
            (PathBuf::from(fields[4]), fields[dash + 1].to_owned())
        })
        .collect()
}

fn tmpfs_mounts_at(path: &Path) -> usize {
    let path = path.canonicalize().unwrap();
    mount_points()
        .iter()
        .filter(|(p, t)| *p == path && t == "tmpfs")
        .count()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

// ---------------------------------------------------------------- emptyDir

#[test]
fn empty_dir_is_a_0777_directory_whose_content_survives_a_second_setup() {
    let dir = PodDir::new();
    let pod = pod(vec![Volume {
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..volume("scratch")
    }]);

    let volumes = setup(&pod, &dir, &no_objects());
    let scratch = volumes.get("scratch").unwrap();
    assert_eq!(
        scratch.host_path,
        dir.path().join("volumes/kubernetes.io~empty-dir/scratch")
    );
    assert_eq!(
        (scratch.kind, scratch.tmpfs, scratch.read_only),
        (VolumeKind::EmptyDir, false, false)
    );
    assert_eq!(mode(&scratch.host_path), 0o777);

    std::fs::write(scratch.host_path.join("kept"), "data").unwrap();
    setup(&pod, &dir, &no_objects());
    assert_eq!(read(scratch.host_path.join("kept")), "data");
}

#[test]
fn memory_empty_dir_is_a_tmpfs_that_enforces_size_limit_and_is_mounted_once() {
    let dir = PodDir::new();
    let source = EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: Some(Quantity("1Mi".into())),
    };
    let pod = pod(vec![Volume {
        empty_dir: Some(source),
        ..volume("cache")
    }]);

    let volumes = setup(&pod, &dir, &no_objects());
    let cache = volumes.get("cache").unwrap();
    assert!(cache.tmpfs);
    assert_eq!(tmpfs_mounts_at(&cache.host_path), 1);
    assert_eq!(
        mode(&cache.host_path),
        0o1777,
        "a tmpfs root is world-writable and sticky"
    );

    // 1 MiB fits up to the page; 2 MiB does not.
    let mut file = std::fs::File::create(cache.host_path.join("big")).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let result = (0..32).try_for_each(|_| file.write_all(&chunk));
    let err = result.expect_err("writing past sizeLimit must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));

    setup(&pod, &dir, &no_objects());
    assert_eq!(
        tmpfs_mounts_at(&cache.host_path),
        1,
        "setup must not mount a second tmpfs"
    );
}

// ---------------------------------------------------------------- hostPath

fn host_path_pod(path: &Path, type_: Option<&str>) -> Pod {
    let source = HostPathVolumeSource {
        path: path.display().to_string(),
        type_: type_.map(Into::into),
    };
    pod(vec![Volume {
        host_path: Some(source),
        ..volume("host")
    }])
}

fn host_path_result(path: &Path, type_: Option<&str>) -> Result<PodVolumes, String> {
    let dir = PodDir::new();
    setup_volumes(
        &host_path_pod(path, type_),
        dir.path(),
        &no_objects(),
        &node(),
    )
    .map_err(|e| e.event_message())
}

fn type_error(path: &Path, what: &str) -> String {
    format!("MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a {what}", path.display())
}

#[test]
fn host_path_without_type_is_used_as_is_without_checks() {
    let host = tempfile::tempdir().unwrap();
    let missing = host.path().join("missing");
    let volumes = host_path_result(&missing, None).unwrap();
    assert_eq!(volumes.get("host").unwrap().host_path, missing);
    assert!(!missing.exists());
    assert!(host_path_result(&missing, Some("")).is_ok());
}

#[test]
fn host_path_directory_types_check_or_create_directories() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let missing = host.path().join("missing");

    assert!(host_path_result(host.path(), Some("Directory")).is_ok());
    assert_eq!(
        host_path_result(&missing, Some("Directory")).unwrap_err(),
        type_error(&missing, "directory")
    );
    assert_eq!(
        host_path_result(&file, Some("Directory")).unwrap_err(),
        type_error(&file, "directory")
    );

    let created = host.path().join("a/b/c");
    assert!(host_path_result(&created, Some("DirectoryOrCreate")).is_ok());
    assert!(created.is_dir());
    assert_eq!(mode(&created), 0o755);
    assert_eq!(
        host_path_result(&file, Some("DirectoryOrCreate")).unwrap_err(),
        type_error(&file, "directory")
    );
}

#[test]
fn host_path_file_types_check_or_create_files() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("file");
    std::fs::write(&file, "keep").unwrap();

    assert!(host_path_result(&file, Some("File")).is_ok());
    assert_eq!(
        host_path_result(host.path(), Some("File")).unwrap_err(),
        type_error(host.path(), "file")
    );

    let created = host.path().join("new.log");
    assert!(host_path_result(&created, Some("FileOrCreate")).is_ok());
    assert!(created.is_file());
    assert_eq!(mode(&created), 0o644);
    assert!(host_path_result(&file, Some("FileOrCreate")).is_ok());
    assert_eq!(read(&file), "keep", "an existing file is not truncated");

    let orphan = host.path().join("no-parent/new.log");
    let err = host_path_result(&orphan, Some("FileOrCreate")).unwrap_err();
    assert!(err.contains("failed to create hostPath"), "{err}");
    assert!(
        !orphan.parent().unwrap().exists(),
        "FileOrCreate does not create parents"
    );
}

#[test]
fn host_path_special_file_types_are_checked() {
    let host = tempfile::tempdir().unwrap();
    let socket = host.path().join("app.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let null = Path::new("/dev/null");

    assert!(host_path_result(&socket, Some("Socket")).is_ok());
    assert_eq!(
        host_path_result(null, Some("Socket")).unwrap_err(),
        type_error(null, "socket file")
    );
    assert!(host_path_result(null, Some("CharDevice")).is_ok());
    assert_eq!(
        host_path_result(&socket, Some("CharDevice")).unwrap_err(),
        type_error(&socket, "character device")
    );
    assert_eq!(
        host_path_result(null, Some("BlockDevice")).unwrap_err(),
        type_error(null, "block device")
    );

    let block = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()));
    if let Some(block) = block {
        assert!(host_path_result(&block, Some("BlockDevice")).is_ok());
    }

    let err = host_path_result(host.path(), Some("Fifo")).unwrap_err();
    assert_eq!(
        err,
        "MountVolume.SetUp failed for volume \"host\" : Fifo is an invalid volume type"
    );
}

// ---------------------------------------------------------------- configMap and secret

fn config_map_volume(
    items: Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: Option<bool>,
) -> Volume {
    let source = ConfigMapVolumeSource {
        name: "cfg".into(),
        items,
        default_mode,
        optional,
    };
    Volume {
        config_map: Some(source),
        ..volume("config")
    }
}

fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

#[test]
fn config_map_files_use_the_atomic_writer_layout_and_default_mode() {
    let dir = PodDir::new();
    let mut cm = config_map(&[("app.conf", "port=80"), ("level", "debug")]);
    cm.binary_data = Some(BTreeMap::from([(
        "logo.bin".to_owned(),
        ByteString(vec![0, 159, 146, 150]),
    )]));
    let objects = StaticObjects::new(vec![cm], vec![]);
    let volumes = setup(
        &pod(vec![config_map_volume(None, None, None)]),
        &dir,
        &objects,
    );

    let config = volumes.get("config").unwrap();
    let root = &config.host_path;
    assert_eq!(
        root,
        &dir.path().join("volumes/kubernetes.io~configmap/config")
    );
    assert!(config.read_only);
    assert_eq!(read(root.join("app.conf")), "port=80");
    assert_eq!(
        std::fs::read(root.join("logo.bin")).unwrap(),
        [0, 159, 146, 150]
    );

    // key -> ..data/key -> ..<timestamp>/key
    assert_eq!(
        std::fs::read_link(root.join("level")).unwrap(),
        Path::new("..data/level")
    );
    let data = std::fs::read_link(root.join("..data")).unwrap();
    let data = data.to_str().unwrap();
    assert!(
        data.starts_with("..20") && data.len() > "..2024_01_01_00_00_00.".len(),
        "{data}"
    );
    assert_eq!(mode(&root.join(data)), 0o755);
    assert_eq!(mode(&root.join(data).join("level")), 0o644);
}

#[test]
fn config_map_items_choose_keys_paths_and_modes() {
    let dir = PodDir::new();
    let objects = StaticObjects::new(
        vec![config_map(&[("a", "1"), ("b", "2"), ("c", "3")])],
        vec![],
    );
    let items = vec![
        item("a", "conf/a.txt", Some(0o600)),
        item("b", "b.txt", None),
    ];
    let volumes = setup(
        &pod(vec![config_map_volume(Some(items), Some(0o440), None)]),
        &dir,
        &objects,
    );

    let root = &volumes.get("config").unwrap().host_path;
    assert_eq!(read(root.join("conf/a.txt")), "1");
    assert_eq!(mode(&root.join("..data/conf/a.txt")), 0o600);
    assert_eq!(mode(&root.join("..data/b.txt")), 0o440);
    assert_eq!(
        std::fs::read_link(root.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
    assert!(!root.join("c").exists());
}

#[test]
fn missing_config_maps_and_keys_fail_unless_optional() {
    let objects = StaticObjects::new(vec![config_map(&[("a", "1")])], vec![]);
    let missing = StaticObjects::new(vec![], vec![]);
    let prefix = "MountVolume.SetUp failed for volume \"config\" : ";

    let err = setup_error(
        &pod(vec![config_map_volume(None, None, None)]),
        &PodDir::new(),
        &missing,
    );
    assert_eq!(err, format!("{prefix}configmap \"cfg\" not found"));

    let dir = PodDir::new();
    let volumes = setup(
        &pod(vec![config_map_volume(None, None, Some(true))]),
        &dir,
        &missing,
    );
    let root = &volumes.get("config").unwrap().host_path;
    assert!(
        root.join("..data").is_dir(),
        "an optional missing configMap gives an empty volume"
    );

    let items = Some(vec![item("zzz", "zzz", None)]);
    let err = setup_error(
        &pod(vec![config_map_volume(items.clone(), None, None)]),
        &PodDir::new(),
        &objects,
    );
    assert_eq!(
        err,
        format!("{prefix}configmap references non-existent config key: zzz")
    );
    assert!(setup_volumes(
        &pod(vec![config_map_volume(items, None, Some(true))]),
        PodDir::new().path(),
        &objects,
        &node()
    )
    .is_ok());
}

fn secret_volume(default_mode: Option<i32>, optional: Option<bool>) -> Volume {
    let source = SecretVolumeSource {
        secret_name: Some("creds".into()),
        default_mode,
        optional,
        items: None,
    };
    Volume {
        secret: Some(source),
        ..volume("secret")
    }
}

#[test]
fn secret_files_live_on_a_tmpfs_with_their_mode() {
    let dir = PodDir::new();
    let objects = StaticObjects::new(vec![], vec![secret(&[("password", "hunter2")])]);
    let volumes = setup(&pod(vec![secret_volume(Some(0o400), None)]), &dir, &objects);

    let volume = volumes.get("secret").unwrap();
    assert!(volume.tmpfs && volume.read_only);
    assert_eq!(tmpfs_mounts_at(&volume.host_path), 1);
    assert_eq!(read(volume.host_path.join("password")), "hunter2");
    assert_eq!(mode(&volume.host_path.join("..data/password")), 0o400);

    let err = setup_error(
        &pod(vec![secret_volume(None, None)]),
        &PodDir::new(),
        &no_objects(),
    );
    assert_eq!(
        err,
        "MountVolume.SetUp failed for volume \"secret\" : secret \"creds\" not found"
    );
    assert!(setup_volumes(
        &pod(vec![secret_volume(None, Some(true))]),
        PodDir::new().path(),
        &no_objects(),
        &node()
    )
    .is_ok());
}

#[test]
fn a_second_setup_swaps_updated_contents_in_atomically() {
    let dir = PodDir::new();
    let pod = pod(vec![config_map_volume(None, None, None)]);
    let first = StaticObjects::new(vec![config_map(&[("a", "1"), ("gone", "x")])], vec![]);
    let root = setup(&pod, &dir, &first)
        .get("config")
        .unwrap()
        .host_path
        .clone();
    let old_data = std::fs::read_link(root.join("..data")).unwrap();

    // Unchanged objects: nothing is rewritten.
    setup(&pod, &dir, &first);
    assert_eq!(std::fs::read_link(root.join("..data")).unwrap(), old_data);

    let second = StaticObjects::new(vec![config_map(&[("a", "2"), ("new", "y")])], vec![]);
    setup(&pod, &dir, &second);
    let new_data = std::fs::read_link(root.join("..data")).unwrap();
    assert_ne!(new_data, old_data);
    assert_eq!(read(root.join("a")), "2");
    assert_eq!(read(root.join("new")), "y");
    assert!(
        root.join("gone").symlink_metadata().is_err(),
        "a removed key's symlink is removed"
    );
    assert!(
        !root.join(&old_data).exists(),
        "the previous version is removed"
    );

    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected = vec!["..data", new_data.to_str().unwrap(), "a", "new"];
    expected.sort();
    assert_eq!(names, expected);
}

// ---------------------------------------------------------------- downwardAPI and projected

fn field_item(path: &str, field_path: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: field_path.into(),
            api_version: None,
        }),
        ..Default::default()
    }
}

#[test]
fn downward_api_volume_renders_pod_fields_on_a_tmpfs() {
    let dir = PodDir::new();
    let source = DownwardAPIVolumeSource {
        items: Some(vec![
            field_item("labels", "metadata.labels"),
            field_item("name", "metadata.name"),
        ]),
        default_mode: None,
    };
    let volumes = setup(
        &pod(vec![Volume {
            downward_api: Some(source),
            ..volume("info")
        }]),
        &dir,
        &no_objects(),
    );

    let info = volumes.get("info").unwrap();
    assert_eq!(tmpfs_mounts_at(&info.host_path), 1);
    assert_eq!(read(info.host_path.join("labels")), "app=\"web\"");
    assert_eq!(read(info.host_path.join("name")), "web");
    assert_eq!(mode(&info.host_path.join("..data/name")), 0o644);
}

#[test]
fn projected_volume_merges_sources_and_skips_service_account_tokens_with_a_warning() {
    let dir = PodDir::new();
    let objects = StaticObjects::new(vec![config_map(&[("a", "1")])], vec![secret(&[("s", "2")])]);
    let sources = vec![
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: "cfg".into(),
                items: None,
                optional: None,
            }),
            ..Default::default()
        },
        VolumeProjection {
            secret: Some(SecretProjection {
                name: "creds".into(),
                items: Some(vec![item("s", "sec/s", None)]),
                optional: None,
            }),
            ..Default::default()
        },
        VolumeProjection {
            downward_api: Some(k8s_openapi::api::core::v1::DownwardAPIProjection {
                items: Some(vec![field_item("ns", "metadata.namespace")]),
            }),
            ..Default::default()
        },
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: "token".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let source = ProjectedVolumeSource {
        sources: Some(sources),
        default_mode: Some(0o444),
    };
    let volumes = setup(
        &pod(vec![Volume {
            projected: Some(source),
            ..volume("all")
        }]),
        &dir,
        &objects,
    );

    let all = volumes.get("all").unwrap();
    assert!(all.tmpfs && all.read_only);
    assert_eq!(read(all.host_path.join("a")), "1");
    assert_eq!(read(all.host_path.join("sec/s")), "2");
    assert_eq!(read(all.host_path.join("ns")), "default");
    assert_eq!(mode(&all.host_path.join("..data/a")), 0o444);
    assert!(!all.host_path.join("token").exists());
    assert_eq!(volumes.warnings.len(), 1);
    assert!(
        volumes.warnings[0].contains("serviceAccountToken \"token\" skipped"),
        "{:?}",
        volumes.warnings
    );
}

#[test]
fn unsupported_volume_types_are_named_in_the_error() {
    let claim = k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
        claim_name: "data".into(),
        read_only: None,
    };
    let pod = pod(vec![Volume {
        persistent_volume_claim: Some(claim),
        ..volume("data")
    }]);
    let err = setup_error(&pod, &PodDir::new(), &no_objects());
    assert_eq!(err, "MountVolume.SetUp failed for volume \"data\" : unsupported volume type persistentVolumeClaim");
}

// ---------------------------------------------------------------- container mounts

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn container(mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: "app".into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn mounts_pod() -> Pod {
    pod(vec![
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("scratch")
        },
        config_map_volume(None, None, None),
    ])
}

#[test]
fn container_mounts_follow_volume_mounts_order_with_read_only_and_propagation() {
    let dir = PodDir::new();
    let pod = mounts_pod();
    let objects = StaticObjects::new(vec![config_map(&[("app.conf", "x")])], vec![]);
    let volumes = setup(&pod, &dir, &objects);

    let mounts = vec![
        VolumeMount {
            mount_propagation: Some("HostToContainer".into()),
            ..mount("config", "/etc/app")
        },
        VolumeMount {
            read_only: Some(true),
            ..mount("scratch", "data")
        },
        mount("scratch", "/rw"),
    ];
    let result = container_mounts(&pod, &container(mounts), &volumes, &[]).unwrap();
    let summary: Vec<(&str, bool, Propagation)> = result
        .iter()
        .map(|m| (m.container_path.as_str(), m.read_only, m.propagation))
        .collect();
    assert_eq!(
        summary,
        [
            ("/etc/app", true, Propagation::HostToContainer),
            ("/data", true, Propagation::Private),
            ("/rw", false, Propagation::Private),
        ]
    );
    assert_eq!(
        result[0].host_path,
        volumes.get("config").unwrap().host_path
    );

    let err =
        container_mounts(&pod, &container(vec![mount("nope", "/x")]), &volumes, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot find volume \"nope\" to mount into container \"app\""
    );
}

#[test]
fn sub_paths_are_created_inside_the_volume_and_config_map_keys_resolve_to_their_file() {
    let dir = PodDir::new();
    let pod = mounts_pod();
    let objects = StaticObjects::new(vec![config_map(&[("app.conf", "x")])], vec![]);
    let volumes = setup(&pod, &dir, &objects);
    let scratch = volumes
        .get("scratch")
        .unwrap()
        .host_path
        .canonicalize()
        .unwrap();

    let mounts = vec![
        VolumeMount {
            sub_path: Some("logs/app".into()),
            ..mount("scratch", "/logs")
        },
        VolumeMount {
            sub_path: Some("app.conf".into()),
            ..mount("config", "/etc/app.conf")
        },
        VolumeMount {
            sub_path_expr: Some("pods/$(POD_NAME)".into()),
            ..mount("scratch", "/mine")
        },
    ];
    let env = [("POD_NAME".to_owned(), "web-0".to_owned())];
    let result = container_mounts(&pod, &container(mounts), &volumes, &env).unwrap();

    assert_eq!(result[0].host_path, scratch.join("logs/app"));
    assert!(result[0].host_path.is_dir());
    assert_eq!(
        mode(&scratch.join("logs")),
        0o777,
        "created with the volume root's mode"
    );
    let data = std::fs::read_link(volumes.get("config").unwrap().host_path.join("..data")).unwrap();
    let config_root = volumes
        .get("config")
        .unwrap()
        .host_path
        .canonicalize()
        .unwrap();
    assert_eq!(result[1].host_path, config_root.join(data).join("app.conf"));
    assert_eq!(result[2].host_path, scratch.join("pods/web-0"));
}

#[test]
fn sub_paths_that_leave_the_volume_are_rejected() {
    let dir = PodDir::new();
    let pod = mounts_pod();
    let objects = StaticObjects::new(vec![config_map(&[("a", "x")])], vec![]);
    let volumes = setup(&pod, &dir, &objects);
    let scratch = &volumes.get("scratch").unwrap().host_path;
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), scratch.join("escape")).unwrap();
    symlink("../../..", scratch.join("up")).unwrap();
    symlink("logs", scratch.join("inside")).unwrap();
    std::fs::create_dir(scratch.join("logs")).unwrap();

    let attempt = |sub_path: &str| {
        let mounts = vec![VolumeMount {
            sub_path: Some(sub_path.into()),
            ..mount("scratch", "/x")
        }];
        container_mounts(&pod, &container(mounts), &volumes, &[]).map_err(|e| e.to_string())
    };
    let refused = "failed to prepare subPath for volumeMount \"scratch\" of container \"app\"";
    assert_eq!(attempt("escape").unwrap_err(), refused);
    assert_eq!(attempt("escape/new").unwrap_err(), refused);
    assert_eq!(attempt("up/etc").unwrap_err(), refused);
    assert!(
        !outside.path().join("new").exists(),
        "nothing is created outside the volume"
    );
    assert_eq!(
        attempt("../x").unwrap_err(),
        "unable to provision SubPath `../x`: must not contain '..'"
    );
    assert_eq!(
        attempt("/etc").unwrap_err(),
        "error SubPath `/etc` must not be an absolute path"
    );
    let inside = attempt("inside").unwrap();
    assert_eq!(
        inside[0].host_path,
        scratch.canonicalize().unwrap().join("logs")
    );

    let expr = vec![VolumeMount {
        sub_path_expr: Some("$(A)/$(B)".into()),
        ..mount("scratch", "/x")
    }];
    let err = container_mounts(
        &pod,
        &container(expr),
        &volumes,
        &[("A".into(), "a".into())],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "missing value for B");
}

// ---------------------------------------------------------------- teardown

#[test]
fn teardown_unmounts_tmpfs_removes_volumes_and_leaves_host_paths_alone() {
    let dir = PodDir::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("precious"), "keep me").unwrap();
    let pod = pod(vec![
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("scratch")
        },
        Volume {
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: None,
            }),
            ..volume("mem")
        },
        Volume {
            host_path: Some(HostPathVolumeSource {
                path: host.path().display().to_string(),
                type_: None,
            }),
            ..volume("host")
        },
        secret_volume(None, None),
    ]);
    let objects = StaticObjects::new(vec![], vec![secret(&[("k", "v")])]);
    let volumes = setup(&pod, &dir, &objects);
    let mem = volumes
        .get("mem")
        .unwrap()
        .host_path
        .canonicalize()
        .unwrap();
    let secret_dir = volumes
        .get("secret")
        .unwrap()
        .host_path
        .canonicalize()
        .unwrap();
    // A container could leave a symlink to host content in its emptyDir.
    symlink(
        host.path(),
        volumes.get("scratch").unwrap().host_path.join("link"),
    )
    .unwrap();

    teardown_volumes(dir.path()).unwrap();

    let mounted: Vec<PathBuf> = mount_points().into_iter().map(|(p, _)| p).collect();
    assert!(
        !mounted.contains(&mem) && !mounted.contains(&secret_dir),
        "tmpfs mounts are gone"
    );
    assert!(!dir.path().join("volumes").exists());
    assert!(dir.path().exists(), "the pod directory itself stays");
    assert_eq!(read(host.path().join("precious")), "keep me");
    teardown_volumes(dir.path()).expect("teardown is idempotent");
}
