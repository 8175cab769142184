use serde_json::json;

use super::*;

/// The single document of `text`.
fn read(text: &str) -> Result<Value, YamlError> {
    let mut docs = documents(text).collect::<Result<Vec<_>, _>>()?;
    assert_eq!(docs.len(), 1, "{text:?} has one document");
    Ok(docs.remove(0))
}

/// The value of key `v` in the one-line document `v: <scalar>`.
fn scalar(scalar: &str) -> Value {
    read(&format!("v: {scalar}\n")).unwrap()["v"].clone()
}

#[test]
fn leading_zero_integers_are_octal() {
    assert_eq!(scalar("0440"), json!(288));
    assert_eq!(scalar("0644"), json!(420));
    assert_eq!(scalar("0o17"), json!(15));
    assert_eq!(scalar("-010"), json!(-8));
    assert_eq!(scalar("0"), json!(0));
}

#[test]
fn hex_binary_and_underscored_integers_are_read_as_go_reads_them() {
    assert_eq!(scalar("0x1F"), json!(31));
    assert_eq!(scalar("0X1f"), json!(31));
    assert_eq!(scalar("-0x10"), json!(-16));
    assert_eq!(scalar("0b101"), json!(5));
    assert_eq!(scalar("1_000"), json!(1000));
    assert_eq!(scalar("+42"), json!(42));
}

#[test]
fn integers_past_i64_are_unsigned_then_floats_then_strings() {
    assert_eq!(scalar("9223372036854775807"), json!(i64::MAX));
    assert_eq!(scalar("-9223372036854775808"), json!(i64::MIN));
    assert_eq!(scalar("18446744073709551615"), json!(u64::MAX));
    assert_eq!(
        scalar("18446744073709551616"),
        json!(18446744073709551616.0)
    );
    // Not decimal, so no float either: Go leaves it a string.
    assert_eq!(scalar("0x1FFFFFFFFFFFFFFFF"), json!("0x1FFFFFFFFFFFFFFFF"));
}

#[test]
fn invalid_octal_digits_fall_back_to_a_decimal_float() {
    // ParseInt("09", 0, 64) fails, the float syntax matches: go-yaml gives 9.0, JSON `9`.
    assert_eq!(scalar("09"), json!(9));
    assert_eq!(scalar("0x"), json!("0x"));
    assert_eq!(scalar("0b2"), json!("0b2"));
}

#[test]
fn floats_follow_go_yamls_syntax() {
    assert_eq!(scalar("1.5"), json!(1.5));
    assert_eq!(scalar(".5"), json!(0.5));
    assert_eq!(scalar("-2.5e3"), json!(-2500));
    assert_eq!(scalar("1e3"), json!(1000));
    assert_eq!(scalar("1."), json!(1));
    assert_eq!(scalar("1e400"), json!("1e400"));
    assert_eq!(scalar("1.2.3"), json!("1.2.3"));
    assert_eq!(scalar("."), json!("."));
}

#[test]
fn quoted_block_and_str_tagged_scalars_stay_strings() {
    assert_eq!(scalar("\"0440\""), json!("0440"));
    assert_eq!(scalar("'yes'"), json!("yes"));
    assert_eq!(scalar("!!str 0440"), json!("0440"));
    assert_eq!(scalar("!!str true"), json!("true"));
    assert_eq!(read("v: |\n  0440\n").unwrap(), json!({"v": "0440\n"}));
    assert_eq!(read("v: >-\n  on\n").unwrap(), json!({"v": "on"}));
}

#[test]
fn yaml_1_1_booleans_are_booleans() {
    for word in [
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
    ] {
        assert_eq!(scalar(word), json!(true), "{word}");
    }
    for word in [
        "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
    ] {
        assert_eq!(scalar(word), json!(false), "{word}");
    }
    assert_eq!(scalar("yEs"), json!("yEs"));
    assert_eq!(scalar("onion"), json!("onion"));
}

#[test]
fn null_forms_are_null() {
    for word in ["", "~", "null", "Null", "NULL"] {
        assert_eq!(scalar(word), Value::Null, "{word:?}");
    }
    assert_eq!(scalar("nULL"), json!("nULL"));
    assert_eq!(scalar("''"), json!(""));
}

#[test]
fn timestamps_stay_the_text_written() {
    assert_eq!(scalar("2001-12-14"), json!("2001-12-14"));
    assert_eq!(
        scalar("2001-12-14T21:59:43.10-05:00"),
        json!("2001-12-14T21:59:43.10-05:00")
    );
    assert_eq!(scalar("!!timestamp 2001-12-14"), json!("2001-12-14"));
}

#[test]
fn explicit_core_tags_resolve_even_when_quoted() {
    assert_eq!(scalar("!!int \"0440\""), json!(288));
    assert_eq!(scalar("!!bool 'on'"), json!(true));
    assert_eq!(scalar("!!null ''"), Value::Null);
    assert_eq!(scalar("!!float 2"), json!(2));
    assert_eq!(scalar("!custom 0440"), json!("0440"));
}

#[test]
fn a_value_that_does_not_fit_its_tag_is_an_error_with_its_line() {
    let err = read("a: 1\nv: !!int abc\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read \"abc\" as !!int at line 2 column 4"
    );
    assert!(matches!(
        read("v: !!binary aGk=\n"),
        Err(YamlError::Binary { .. })
    ));
}

#[test]
fn infinity_and_nan_have_no_json_form() {
    for word in [".inf", "-.Inf", "+.INF", ".nan", ".NaN"] {
        let err = read(&format!("v: {word}\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{word} at line 1 column 4 has no JSON form (JSON numbers are finite)")
        );
    }
}

#[test]
fn non_string_keys_become_strings_as_sigs_yaml_writes_them() {
    let text = "1: a\n0x10: b\ntrue: c\non: d\nno: e\n1.5: f\n1e6: g\n1e-5: h\n~x: i\n";
    assert_eq!(
        read(text).unwrap(),
        json!({"1": "a", "16": "b", "true": "d", "false": "e", "1.5": "f", "1e+06": "g",
               "1e-05": "h", "~x": "i"})
    );
}

#[test]
fn keys_json_cannot_carry_are_errors_with_their_line() {
    let cases = [
        ("a: 1\n~: x\n", "mapping key at line 2 column 1 is null"),
        (
            "? [a]\n: x\n",
            "mapping key at line 1 column 3 is a sequence",
        ),
        ("{a: 1}: x\n", "mapping key at line 1 column 1 is a mapping"),
    ];
    for (text, message) in cases {
        let err = read(text).unwrap_err().to_string();
        assert!(err.starts_with(message), "{text:?}: {err}");
    }
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    assert_eq!(read("a: 1\na: 2\n").unwrap(), json!({"a": 2}));
}

#[test]
fn aliases_repeat_their_anchored_node() {
    let text = "base: &b {x: 1, z: [0440]}\ncopy: *b\nscalar: &s on\nagain: *s\n*s : key\n";
    assert_eq!(
        read(text).unwrap(),
        json!({"base": {"x": 1, "z": [288]}, "copy": {"x": 1, "z": [288]},
               "scalar": true, "again": true, "true": "key"})
    );
}

#[test]
fn merge_keys_merge_mappings_in_go_yaml_v2s_order() {
    let text = "\
base: &base {a: 1, b: 1}
other: &other {b: 2, c: 2}
one:
  <<: *base
  b: 9
list:
  <<: [*base, *other]
inline:
  <<: {a: 5}
late:
  a: 0
  <<: *base
quoted:
  '<<': *base
";
    assert_eq!(
        read(text).unwrap(),
        json!({
            "base": {"a": 1, "b": 1},
            "other": {"b": 2, "c": 2},
            "one": {"a": 1, "b": 9},
            // The first mapping of the list wins.
            "list": {"a": 1, "b": 1, "c": 2},
            "inline": {"a": 5},
            // go-yaml v2 merges at the `<<` entry's place, so a later merge replaces `a`.
            "late": {"a": 1, "b": 1},
            "quoted": {"<<": {"a": 1, "b": 1}},
        })
    );
}

#[test]
fn merging_a_scalar_is_an_error_with_its_line() {
    let err = read("a:\n  <<: 1\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "merge key `<<` at line 2 column 7 needs a mapping or a sequence of mappings as its value"
    );
    assert!(matches!(
        read("a: &s x\nb:\n  <<: [*s]\n"),
        Err(YamlError::Merge { .. })
    ));
}

#[test]
fn an_alias_inside_its_own_anchor_is_an_error() {
    let err = read("a: &a [1, *a]\n").unwrap_err();
    assert!(
        matches!(
            err,
            YamlError::RecursiveAlias { .. } | YamlError::Syntax { .. }
        ),
        "{err}"
    );
}

#[test]
fn alias_expansion_is_bounded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    assert!(matches!(read(&text), Err(YamlError::AliasExpansion { .. })));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("{}x\n", "- ".repeat(MAX_DEPTH + 1));
    let err = read(&text).unwrap_err();
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err}");
    // libyaml has no limit of its own on flow collections; ours stops them at the same depth.
    let depth = MAX_DEPTH + 1;
    let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let err = read(&flow).unwrap_err();
    assert!(matches!(err, YamlError::TooDeep { .. }), "{err}");
    // Just inside the limit reads, on a thread with the 2 MiB stack tokio's workers have.
    let nested = format!("{}x\n", "- ".repeat(MAX_DEPTH - 1));
    let read_on_small_stack = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || read(&nested).is_ok())
        .unwrap();
    assert!(read_on_small_stack.join().unwrap());
}

#[test]
fn documents_are_split_and_empty_ones_are_null() {
    let text = "---\na: 1\n---\n---\nb: 0x2\n...\n";
    let docs = documents(text).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(docs, [json!({"a": 1}), Value::Null, json!({"b": 2})]);
    assert_eq!(documents("").count(), 0);
    assert_eq!(documents("# only a comment\n").count(), 0);
}

#[test]
fn anchors_do_not_reach_into_the_next_document() {
    let mut docs = documents("a: &x 1\n---\nb: *x\n");
    assert_eq!(docs.next().unwrap().unwrap(), json!({"a": 1}));
    assert!(docs.next().unwrap().is_err());
    assert!(docs.next().is_none());
}

#[test]
fn syntax_errors_carry_the_parsers_message_and_line() {
    let mut docs = documents("a: 1\n---\nb: [1, 2\nc: 3\n");
    assert!(docs.next().unwrap().is_ok());
    let err = docs.next().unwrap().unwrap_err();
    let YamlError::Syntax { message, at } = &err else {
        panic!("{err:?}")
    };
    assert!(!message.is_empty());
    assert!(at.line >= 3, "{err}");
    assert!(
        err.to_string().contains(&format!("at line {}", at.line)),
        "{err}"
    );
    assert!(docs.next().is_none());
}

#[test]
fn a_yaml_1_1_directive_is_accepted() {
    assert_eq!(
        read("%YAML 1.1\n---\nv: 0440\n").unwrap(),
        json!({"v": 288})
    );
}

/// Kubernetes 1.6's example of init containers in an annotation, as its docs wrote it: the
/// quoted JSON closes at the key's indentation, which YAML 1.2 forbids and libyaml accepts.
pub(crate) const INIT_ANNOTATION_POD: &str = r#"apiVersion: v1
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
fn a_quoted_scalar_may_close_at_its_keys_indentation() {
    let pod = read(INIT_ANNOTATION_POD).unwrap();
    let annotation = &pod["metadata"]["annotations"]["pod.beta.kubernetes.io/init-containers"];
    let containers: Value = serde_json::from_str(annotation.as_str().unwrap()).unwrap();
    assert_eq!(containers[0]["name"], "install");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox");
}

#[test]
fn syntax_errors_name_what_was_being_parsed() {
    let err = read("a: [1, 2\nb: 3\n").unwrap_err().to_string();
    assert!(
        err.starts_with("while parsing a flow sequence at line 1 column 4, "),
        "{err}"
    );
    assert!(err.ends_with("at line 2 column 2"), "{err}");
}

#[test]
fn an_unknown_anchor_is_an_error() {
    let err = read("a: *nowhere\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown anchor \"nowhere\" referenced at line 1 column 4"
    );
}

#[test]
fn a_control_character_is_refused_where_it_is() {
    let err = read("a: 1\nb: x\u{7}y\n").unwrap_err();
    let YamlError::Syntax { at, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(at, Position { line: 2, column: 5 });
}

#[test]
fn layout_offsets_count_bytes() {
    let text = "\u{feff}é: ü\nkey: [1]\n";
    let docs = layout::documents(text).unwrap();
    let root = docs[0].as_ref().unwrap();
    let value = root.get("key").unwrap();
    assert!(text[value.start.offset..].starts_with("[1]"));
    assert!(value.is_flow());
    assert_eq!((value.start.line, value.start.column), (1, 5));
    let (_, u) = &root.entries().unwrap()[0];
    assert!(text[u.start.offset..].starts_with('ü'));
}
