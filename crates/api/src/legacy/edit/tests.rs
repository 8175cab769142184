use serde_json::json;

use super::*;

fn convert(text: &str) -> ConvertedYaml {
    convert_yaml(text).unwrap()
}

fn read(text: &str) -> Vec<serde_json::Value> {
    yaml::documents(text).map(Result::unwrap).collect()
}

const POD: &str = "\
# the web pod
apiVersion: v1
kind: Pod
metadata:
  name: web   # keep
  annotations:
    team: \"yes\"
    pod.beta.kubernetes.io/init-containers: '[{\"name\": \"init\", \"image\": \"busybox\",
      \"command\": [\"sh\", \"-c\", \"true\"], \"env\": [{\"name\": \"A\", \"value\": \"on\"}]}]'
    pod.beta.kubernetes.io/init-container-statuses: '[]'
  # spec follows
spec:
  containers:
  - name: app
    image: busybox
    env:
    - name: FLAG
      value: \"yes\"
    - name: ID
      value: \"0123\"
  volumes:
  - name: secret
    secret:
      secretName: s
      defaultMode: 0440
";

#[test]
fn only_the_migrated_lines_change() {
    let out = convert(POD);
    assert!(out.documents[0].rewritten.is_none(), "{out:?}");
    assert_eq!(
        out.text,
        "\
# the web pod
apiVersion: v1
kind: Pod
metadata:
  name: web   # keep
  annotations:
    team: \"yes\"
  # spec follows
spec:
  initContainers:
  - name: init
    image: busybox
    command:
    - sh
    - \"-c\"
    - \"true\"
    env:
    - name: A
      value: \"on\"
  containers:
  - name: app
    image: busybox
    env:
    - name: FLAG
      value: \"yes\"
    - name: ID
      value: \"0123\"
  volumes:
  - name: secret
    secret:
      secretName: s
      defaultMode: 0440
"
    );
    let pod = &read(&out.text)[0];
    assert_eq!(pod["spec"]["volumes"][0]["secret"]["defaultMode"], 288);
    assert_eq!(pod["spec"]["initContainers"][0]["env"][0]["value"], "on");
}

#[test]
fn block_literal_annotation_is_cut_whole() {
    let text = "\
kind: Pod
metadata:
  annotations:
    pod.alpha.kubernetes.io/init-containers: |
      [{\"name\": \"a\",
        \"image\": \"b\"}]
    other: x
spec:
    containers: [{name: c, image: b}]
";
    let out = convert(text);
    assert_eq!(
        out.text,
        "\
kind: Pod
metadata:
  annotations:
    other: x
spec:
    initContainers:
    - name: a
      image: b
    containers: [{name: c, image: b}]
"
    );
}

#[test]
fn annotations_left_empty_are_removed_and_empty_metadata_stays_a_mapping() {
    let text = "\
kind: Deployment
spec:
  template:
    metadata:
      annotations:
        pod.beta.kubernetes.io/init-containers: '[{\"name\":\"a\",\"image\":\"b\"}]'
    spec:
      containers:
        - name: c
          image: b
";
    let out = convert(text);
    assert_eq!(
        out.text,
        "\
kind: Deployment
spec:
  template:
    metadata: {}
    spec:
      initContainers:
        - name: a
          image: b
      containers:
        - name: c
          image: b
"
    );
}

#[test]
fn beta_replaces_an_existing_field_in_place() {
    let text = "\
kind: Pod
metadata:
  name: p
  annotations:
    pod.alpha.kubernetes.io/init-containers: '[{\"name\":\"alpha\",\"image\":\"b\"}]'
    pod.beta.kubernetes.io/init-containers: '[{\"name\":\"beta\",\"image\":\"b\"}]'
spec:
  initContainers:
  - name: field
    image: b
  # the app
  containers:
  - name: c
    image: b
";
    let out = convert(text);
    assert!(out
        .text
        .contains("  initContainers:\n  - name: beta\n    image: b\n  # the app\n"));
    assert!(!out.text.contains("alpha"), "{}", out.text);
    assert!(!out.text.contains("field"), "{}", out.text);
}

#[test]
fn flow_spec_gets_the_containers_as_json() {
    let text = "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    \
                pod.alpha.kubernetes.io/init-containers: '[{\"name\":\"a\",\"image\":\"b\"}]'\n\
                spec: {containers: [{name: c, image: b}]}\n";
    let out = convert(text);
    assert!(out.documents[0].rewritten.is_none());
    assert_eq!(
        read(&out.text)[0]["spec"]["initContainers"],
        json!([{"name": "a", "image": "b"}])
    );
    assert!(out.text.ends_with("spec: {initContainers: [{\"name\":\"a\",\"image\":\"b\"}], containers: [{name: c, image: b}]}\n"));
}

#[test]
fn flow_annotations_fall_back_to_a_rewrite_that_keeps_values() {
    let text = "\
# gone in the rewrite
kind: Pod
metadata: {name: p, annotations: {keep: \"on\", pod.beta.kubernetes.io/init-containers: '[{\"name\":\"a\",\"image\":\"0440\"}]'}}
spec:
  containers:
  - {name: c, image: b, ports: [{containerPort: 0x50}]}
---
untouched: 'yes'   # still here
";
    let out = convert(text);
    assert!(out.documents[0].rewritten.is_some());
    let docs = read(&out.text);
    assert_eq!(
        docs[0]["metadata"],
        json!({"name": "p", "annotations": {"keep": "on"}})
    );
    assert_eq!(docs[0]["spec"]["initContainers"][0]["image"], "0440");
    assert_eq!(
        docs[0]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert!(
        out.text.starts_with("# gone in the rewrite\n"),
        "{}",
        out.text
    );
    assert!(out.text.ends_with("---\nuntouched: 'yes'   # still here\n"));
}

#[test]
fn list_items_and_other_documents_are_edited_independently() {
    let text = "\
a: 0440
---
kind: List
items:
- kind: Pod
  metadata:
    annotations:
      pod.beta.kubernetes.io/init-containers: '[{\"name\":\"x\",\"image\":\"b\"}]'
      keep: k
  spec:
    containers: []
- kind: ConfigMap
  data: {k: \"1e3\"}
";
    let out = convert(text);
    assert_eq!(out.documents.len(), 1);
    assert_eq!(out.documents[0].document, 2);
    assert!(out.documents[0].rewritten.is_none());
    assert!(out.text.starts_with("a: 0440\n---\n"));
    assert!(out
        .text
        .ends_with("- kind: ConfigMap\n  data: {k: \"1e3\"}\n"));
    let docs = read(&out.text);
    assert_eq!(
        docs[1]["items"][0]["spec"]["initContainers"][0]["name"],
        "x"
    );
    assert_eq!(
        docs[1]["items"][0]["metadata"]["annotations"],
        json!({"keep": "k"})
    );
}

#[test]
fn a_manifest_without_legacy_annotations_is_returned_as_is() {
    let text = "# c\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n";
    let out = convert(text);
    assert_eq!(out.text, text);
    assert!(out.documents.is_empty());
    assert_eq!(out.objects, 1);
}

#[test]
fn bad_annotation_json_names_the_document() {
    let text = "a: b\n---\nkind: Pod\nmetadata:\n  annotations:\n    \
                pod.beta.kubernetes.io/init-containers: '{oops'\nspec: {}\n";
    let err = convert_yaml(text).unwrap_err();
    assert!(
        matches!(err, ConvertError::Invalid { document: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn a_quoted_annotation_closing_at_its_keys_indentation_is_cut_whole() {
    let text = "\
kind: Pod
metadata:
  name: init-demo
  annotations:
    pod.beta.kubernetes.io/init-containers: '[
        {\"name\": \"install\", \"image\": \"busybox\"}
    ]'
spec:
  containers:
  - {name: app, image: busybox}
";
    let converted = convert(text);
    let out = &converted.text;
    assert!(!out.contains("annotations") && !out.contains("]'"), "{out}");
    assert!(
        out.starts_with("kind: Pod\nmetadata:\n  name: init-demo\nspec:\n"),
        "{out}"
    );
    let pod = &read(out)[0];
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "install");
}
