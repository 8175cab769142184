//! The process a container runs: its argv and environment, as Kubernetes defines them.
//!
//! Kubernetes resolves `command`/`args` over the image's `ENTRYPOINT`/`CMD` like this:
//! `command` given → `command + args` (the image's entrypoint *and* cmd are ignored); only `args`
//! given → `entrypoint + args`; neither → `entrypoint + cmd`. Env values, command and args are
//! expanded with `$(VAR)` references to the container's own env list (each env value sees only
//! the entries before it), `$$` escapes a `$`, and references that cannot be resolved stay as
//! written. The rules follow upstream's `third_party/forked/golang/expansion`.

use std::collections::HashMap;

/// Expands `$(NAME)` references in `input` with `lookup`; `$$` becomes `$`.
///
/// A reference `lookup` does not know stays as written, and so does an unclosed `$(`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        match bytes[i + 1] {
            // `$$` is an escaped `$`.
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match rest.find(')') {
                Some(close) => {
                    let name = &rest[1..close];
                    match lookup(name) {
                        Some(value) => out.extend_from_slice(value.as_bytes()),
                        None => out.extend_from_slice(format!("$({name})").as_bytes()),
                    }
                    i += close + 2;
                }
                // An unclosed reference is kept verbatim.
                None => {
                    out.extend_from_slice(&bytes[i..]);
                    i = bytes.len();
                }
            },
            // A `$` that starts no reference is kept with the byte after it.
            other => {
                out.push(b'$');
                out.push(other);
                i += 2;
            }
        }
    }
    String::from_utf8(out).expect("expansion copies whole UTF-8 sequences")
}

/// Expands each env value against the entries before it, in order, as the kubelet does.
pub fn expand_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(env.len());
    for (name, value) in env {
        let expanded = expand(value, |var| seen.get(var).cloned());
        seen.insert(name.clone(), expanded.clone());
        out.push((name.clone(), expanded));
    }
    out
}

/// The argv of the container's process: Kubernetes `command`/`args` over the image's
/// `ENTRYPOINT`/`CMD`, with `$(VAR)` expanded from `env` (the already expanded container env).
pub fn argv(
    command: Option<&[String]>,
    args: Option<&[String]>,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &[(String, String)],
) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|s| expand(s, |name| vars.get(name).map(|v| v.to_string())))
            .collect()
    };

    // An empty list counts as absent, as in Kubernetes.
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    match (command, args) {
        (Some(command), args) => {
            let mut argv = expand_all(command);
            argv.extend(expand_all(args.unwrap_or_default()));
            argv
        }
        (None, Some(args)) => {
            let mut argv = image_entrypoint.to_vec();
            argv.extend(expand_all(args));
            argv
        }
        (None, None) => image_entrypoint.iter().chain(image_cmd).cloned().collect(),
    }
}

/// The process environment: the image's `KEY=VALUE` list, then the container's entries, a
/// container entry replacing an image entry of the same name in place.
pub fn merge_env(
    image_env: &[String],
    container_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = image_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (name, value) in container_env {
        match merged.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.clone(),
            None => merged.push((name.clone(), value.clone())),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_upstream_rules() {
        assert_eq!(expand("$(A)", lookup), "alpha");
        assert_eq!(expand("x-$(A)-y", lookup), "x-alpha-y");
        assert_eq!(expand("$(A)$(A)", lookup), "alphaalpha");
        assert_eq!(expand("[$(EMPTY)]", lookup), "[]");
        assert_eq!(expand("$(NOPE)", lookup), "$(NOPE)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$alpha");
        assert_eq!(expand("$$$$", lookup), "$$");
        assert_eq!(expand("$A", lookup), "$A");
        assert_eq!(expand("cost: 5$", lookup), "cost: 5$");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("é$(A)ü", lookup), "éalphaü");
        assert_eq!(expand("$é", lookup), "$é");
        assert_eq!(expand("$()", lookup), "$()");
    }

    #[test]
    fn env_values_see_only_earlier_entries() {
        let out = expand_env(&env(&[
            ("LATER_REF", "$(B)"),
            ("B", "bee"),
            ("C", "$(B)-see"),
            ("D", "$$(B)"),
        ]));
        assert_eq!(
            out,
            env(&[
                ("LATER_REF", "$(B)"),
                ("B", "bee"),
                ("C", "bee-see"),
                ("D", "$(B)")
            ])
        );
    }

    #[test]
    fn command_replaces_entrypoint_and_cmd() {
        let argv = argv(
            Some(&s(&["sh"])),
            None,
            &s(&["echo", "ep"]),
            &s(&["cmd"]),
            &[],
        );
        assert_eq!(argv, s(&["sh"]));
    }

    #[test]
    fn command_and_args_ignore_the_image() {
        let argv = argv(
            Some(&s(&["sh"])),
            Some(&s(&["-c", "x"])),
            &s(&["ep"]),
            &s(&["c"]),
            &[],
        );
        assert_eq!(argv, s(&["sh", "-c", "x"]));
    }

    #[test]
    fn args_alone_follow_the_image_entrypoint() {
        let argv = argv(
            None,
            Some(&s(&["a1"])),
            &s(&["echo", "ep"]),
            &s(&["cmd"]),
            &[],
        );
        assert_eq!(argv, s(&["echo", "ep", "a1"]));
    }

    #[test]
    fn neither_runs_entrypoint_then_cmd() {
        let got = argv(None, None, &s(&["echo", "ep"]), &s(&["cmd"]), &[]);
        assert_eq!(got, s(&["echo", "ep", "cmd"]));
        let got = argv(Some(&[]), Some(&[]), &[], &s(&["sh"]), &[]);
        assert_eq!(got, s(&["sh"]));
    }

    #[test]
    fn command_and_args_are_expanded_but_image_parts_are_not() {
        let vars = env(&[("WHO", "world")]);
        let argv = argv(
            None,
            Some(&s(&["$(WHO)", "$$(WHO)", "$(NONE)"])),
            &s(&["$(WHO)"]),
            &[],
            &vars,
        );
        assert_eq!(argv, s(&["$(WHO)", "world", "$(WHO)", "$(NONE)"]));
    }

    #[test]
    fn container_env_overrides_image_env_in_place() {
        let merged = merge_env(
            &s(&["PATH=/bin", "A=1", "B=2"]),
            &env(&[("A", "x"), ("C", "3")]),
        );
        assert_eq!(
            merged,
            env(&[("PATH", "/bin"), ("A", "x"), ("B", "2"), ("C", "3")])
        );
    }
}
