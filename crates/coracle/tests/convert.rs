//! End-to-end tests of `coracle convert`: the real binary on manifests in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coracle_api::manifest::{load_documents, Object};

fn coracle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coracle"))
        .args(args)
        .output()
        .expect("run coracle")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/legacy")
        .join(name)
}

fn init_names(obj: &mut Object) -> Vec<String> {
    let spec = match obj {
        Object::Pod(p) => p.spec.as_ref(),
        other => other.pod_template_mut().and_then(|t| t.spec.as_ref()),
    };
    let init = spec.and_then(|s| s.init_containers.as_ref());
    init.into_iter().flatten().map(|c| c.name.clone()).collect()
}

fn annotations(obj: &mut Object) -> Vec<String> {
    let meta = match obj {
        Object::Pod(p) => Some(&p.metadata),
        other => other.pod_template_mut().and_then(|t| t.metadata.as_ref()),
    };
    let ann = meta.and_then(|m| m.annotations.as_ref());
    ann.into_iter().flatten().map(|(k, _)| k.clone()).collect()
}

#[test]
fn convert_prints_pod_with_init_containers_and_warns() {
    let out = coracle(&[
        "convert",
        example("init-annotation-pod.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut objs = load_documents(&stdout, "stdout").unwrap();
    assert_eq!(init_names(&mut objs[0]), ["write-index", "wait-a-moment"]);
    assert!(annotations(&mut objs[0]).is_empty());
    assert!(
        stderr.contains("Kubernetes 1.8+ cluster drops this annotation"),
        "{stderr}"
    );
    assert!(stderr.contains("coracle convert -i"), "{stderr}");
    // The user's key order survives: metadata before spec, init containers before containers.
    assert!(stdout.find("metadata:").unwrap() < stdout.find("spec:").unwrap());
    assert!(stdout.find("initContainers:").unwrap() < stdout.find("\n  containers:").unwrap());
}

#[test]
fn convert_handles_deployment_templates_and_leaves_other_documents_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    let deployment = std::fs::read_to_string(example("init-annotation-deployment.yaml")).unwrap();
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  z: '1'\n  a: '2'\n";
    std::fs::write(&file, format!("{cm}---\n{deployment}")).unwrap();

    let out = coracle(&["convert", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut objs = load_documents(&stdout, "stdout").unwrap();
    assert_eq!(
        objs.iter().map(Object::kind).collect::<Vec<_>>(),
        ["ConfigMap", "Deployment"]
    );
    assert!(stdout.starts_with(cm), "{stdout}");
    assert_eq!(init_names(&mut objs[1]), ["prepare"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("Warning: ").count(), 1, "{stderr}");
    assert!(
        stderr.contains("Deployment \"legacy-web\" (spec.template)"),
        "{stderr}"
    );
}

#[test]
fn convert_in_place_rewrites_only_files_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("pod.yaml");
    std::fs::copy(example("init-annotation-pod.yaml"), &legacy).unwrap();
    let modern = dir.path().join("modern.yaml");
    let modern_text = "# keep this comment\napiVersion: v1\nkind: Pod\nmetadata: {name: m}\n\
                       spec: {containers: [{name: c, image: b}]}\n";
    std::fs::write(&modern, modern_text).unwrap();

    let out = coracle(&[
        "convert",
        "-i",
        legacy.to_str().unwrap(),
        modern.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let rewritten = std::fs::read_to_string(&legacy).unwrap();
    assert!(!rewritten.contains("pod.beta.kubernetes.io"), "{rewritten}");
    let mut objs = load_documents(&rewritten, "pod.yaml").unwrap();
    assert_eq!(init_names(&mut objs[0]), ["write-index", "wait-a-moment"]);
    assert_eq!(std::fs::read_to_string(&modern).unwrap(), modern_text);
    let entries = std::fs::read_dir(dir.path()).unwrap();
    let leftovers: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no temporary file is left behind: {leftovers:?}"
    );

    // A second run has nothing left to convert and says nothing.
    let again = coracle(&["convert", "-i", legacy.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(
        again.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Kubernetes 1.6's init-container example as its docs wrote it: the quoted JSON closes at the
/// key's indentation, which kubectl's go-yaml accepts and YAML 1.2 parsers refuse.
const INIT_DEMO: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: init-demo
  annotations:
    pod.beta.kubernetes.io/init-containers: '[
        {
            "name": "install",
            "image": "busybox",
            "command": ["sh", "-c", "echo installed"]
        }
    ]'
spec:
  containers:
  - {name: app, image: busybox}
"#;

#[test]
fn convert_reads_a_quoted_annotation_closing_at_its_keys_indentation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("init-demo.yaml");
    std::fs::write(&file, INIT_DEMO).unwrap();

    let out = coracle(&["convert", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("annotations:"), "{stdout}");
    let head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: init-demo\nspec:\n";
    assert!(stdout.starts_with(head), "{stdout}");
    assert!(
        stdout.ends_with("  - {name: app, image: busybox}\n"),
        "{stdout}"
    );
    let mut objs = load_documents(&stdout, "stdout").unwrap();
    assert_eq!(init_names(&mut objs[0]), ["install"]);
}

#[test]
fn convert_rejects_unparsable_yaml_naming_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Pod\n---\nmetadata: [unclosed\n",
    )
    .unwrap();
    let out = coracle(&["convert", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("broken.yaml: document 2: cannot parse YAML"),
        "{stderr}"
    );
}

#[test]
fn convert_rejects_annotation_that_is_not_a_container_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  annotations:\n    \
                pod.beta.kubernetes.io/init-containers: '{oops'\n\
                spec: {containers: [{name: c, image: b}]}\n";
    std::fs::write(&file, text).unwrap();
    let out = coracle(&["convert", "-i", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = "metadata.annotations[pod.beta.kubernetes.io/init-containers]: Invalid value";
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "a failed run leaves the file alone"
    );
}

#[test]
fn convert_keeps_json_files_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    let text = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","annotations":{"pod.alpha.kubernetes.io/init-containers":"[{\"name\":\"a\",\"image\":\"b\"}]"}},"spec":{"containers":[{"name":"c","image":"b"}]}}"#;
    std::fs::write(&file, text).unwrap();
    let out = coracle(&["convert", "-i", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&file).unwrap();
    let value: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(value["spec"]["initContainers"][0]["name"], "a");
    assert!(value["metadata"].get("annotations").is_none());
}

/// A manifest with the values YAML 1.2 tools get wrong, comments, and a second document.
const PICKY: &str = r#"# Deployment kept by hand; do not reformat.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: picky # inline comment
spec:
  template:
    metadata:
      labels: {app: picky}
      annotations:
        pod.alpha.kubernetes.io/init-containers: '[{"name": "alpha", "image": "busybox"}]'
        pod.beta.kubernetes.io/init-containers: |
          [{"name": "beta", "image": "busybox",
            "env": [{"name": "ANSWER", "value": "yes"}, {"name": "MODE", "value": "0440"}]}]
        owner: "0123"
    spec:
      initContainers:
      - name: field
        image: busybox
      containers:
      - name: app
        image: busybox
        env:
        - name: ENABLED
          value: "yes"     # a string, not a bool
      volumes:
      - name: secret
        secret:
          secretName: s
          defaultMode: 0440
---
# another document, left alone
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data:
  on: 'off'
"#;

fn yaml_1_1(text: &str) -> Vec<serde_json::Value> {
    coracle_api::yaml::documents(text)
        .map(Result::unwrap)
        .collect()
}

fn converted_picky_expectation() -> Vec<serde_json::Value> {
    let mut expected = yaml_1_1(PICKY);
    let template = &mut expected[0]["spec"]["template"];
    template["metadata"]["annotations"] = serde_json::json!({"owner": "0123"});
    template["spec"]["initContainers"] = serde_json::json!([{
        "name": "beta", "image": "busybox",
        "env": [{"name": "ANSWER", "value": "yes"}, {"name": "MODE", "value": "0440"}],
    }]);
    expected
}

#[test]
fn convert_changes_only_the_migrated_lines_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picky.yaml");
    std::fs::write(&file, PICKY).unwrap();

    let out = coracle(&["convert", file.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("not preserved"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();

    assert_eq!(yaml_1_1(&stdout), converted_picky_expectation(), "{stdout}");
    let read = yaml_1_1(&stdout);
    let spec = &read[0]["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 288);
    assert_eq!(spec["containers"][0]["env"][0]["value"], "yes");
    // Every line but the annotation and init-container blocks is the original, in order.
    let kept: Vec<&str> = PICKY
        .lines()
        .filter(|l| !l.contains("init-containers") && !l.contains("\"name\": "))
        .filter(|l| !l.contains("name: field") && !l.contains("  initContainers:"))
        .collect();
    let mut rest = stdout.lines();
    for line in kept {
        assert!(
            rest.any(|l| l == line),
            "{line:?} is missing or moved:\n{stdout}"
        );
    }
    assert!(stdout.ends_with("---\n# another document, left alone\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  on: 'off'\n"));
    assert!(
        stderr.contains("pod.beta.kubernetes.io/init-containers annotation"),
        "{stderr}"
    );
    assert!(
        stderr.contains("replacing the init containers given in the field"),
        "{stderr}"
    );
}

#[test]
fn convert_in_place_keeps_comments_and_reads_back_as_converted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picky.yaml");
    std::fs::write(&file, PICKY).unwrap();

    let out = coracle(&["convert", "-i", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        yaml_1_1(&written),
        converted_picky_expectation(),
        "{written}"
    );
    for comment in [
        "# Deployment kept by hand",
        "# inline comment",
        "# a string, not a bool",
    ] {
        assert!(written.contains(comment), "{comment:?} lost:\n{written}");
    }
    assert!(
        written.contains("      initContainers:\n      - name: beta\n"),
        "{written}"
    );
}

#[test]
fn convert_warns_when_a_document_cannot_keep_its_formatting_but_keeps_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    let text = "kind: Pod\nmetadata: {name: f, annotations: {keep: \"yes\", \
                pod.beta.kubernetes.io/init-containers: '[{\"name\":\"i\",\"image\":\"b\"}]'}}\n\
                spec:\n  containers: [{name: c, image: b, env: [{name: X, value: \"0440\"}]}]\n";
    std::fs::write(&file, text).unwrap();

    let out = coracle(&["convert", file.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("document 1: could not edit the text in place"),
        "{stderr}"
    );
    assert!(
        stderr.contains("were not preserved (its values were)"),
        "{stderr}"
    );
    let pod = &yaml_1_1(&String::from_utf8(out.stdout).unwrap())[0];
    assert_eq!(
        pod["metadata"]["annotations"],
        serde_json::json!({"keep": "yes"})
    );
    assert_eq!(pod["spec"]["containers"][0]["env"][0]["value"], "0440");
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "i");
}
