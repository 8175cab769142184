//! Removing the masquerade rules the `bridge` plugin leaves behind.
//!
//! On `DEL`, `bridge` (1.1.1) learns which masquerade rules to delete from the addresses still on
//! the pod's interface. When the namespace or the interface is already gone (the sandbox died,
//! someone deleted `eth0`), it releases the address but leaves its `POSTROUTING` rule and its
//! `CNI-…` chain in the nat table, and one more pair piles up per such pod. Plugins tag their
//! rules with the comment `name: "<network>" id: "<container id>"`, so after a successful `DEL`
//! coracle deletes any rule of exactly the bridge plugin's shape that still carries the pod's tag.
//! This is best effort: failures are logged, never returned.

use crate::iptables::{output, run, IptablesError};

/// Deletes leftover masquerade rules of one attachment, for IPv4 and IPv6.
pub(crate) async fn remove_masquerade_rules(network: &str, container_id: &str) {
    for tool in ["iptables", "ip6tables"] {
        if let Err(error) = sweep(tool, network, container_id).await {
            tracing::warn!(tool, network, container_id, %error, "cannot remove leftover nat rules");
        }
    }
}

async fn sweep(tool: &str, network: &str, container_id: &str) -> Result<(), IptablesError> {
    let Ok(text) = output(tool, &["-t", "nat", "-S", "POSTROUTING"]).await else {
        // No such tool, or no nat table for this family: nothing can be left over.
        return Ok(());
    };
    let comment = format!("name: \"{network}\" id: \"{container_id}\"");

    for (source, chain) in text
        .lines()
        .filter_map(|line| masquerade_rule(line, &comment))
    {
        let rule = [
            "-s",
            source,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            chain,
        ];
        run(
            tool,
            &[&["-t", "nat", "-D", "POSTROUTING"][..], &rule[..]].concat(),
        )
        .await?;
        run(tool, &["-t", "nat", "-F", chain]).await?;
        run(tool, &["-t", "nat", "-X", chain]).await?;
        tracing::info!(
            network,
            container_id,
            chain,
            "removed leftover masquerade rules"
        );
    }
    Ok(())
}

/// The source and chain of a line of `iptables -S POSTROUTING` when it is exactly a bridge
/// masquerade rule (`-A POSTROUTING -s <ip> -m comment --comment <comment> -j CNI-…`) carrying
/// `comment`.
fn masquerade_rule<'a>(line: &'a str, comment: &str) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix("-A POSTROUTING -s ")?;
    let (source, rest) = rest.split_once(' ')?;
    let quoted = format!("\"{}\"", comment.replace('"', "\\\""));
    let rest = rest
        .strip_prefix("-m comment --comment ")?
        .strip_prefix(quoted.as_str())?;
    let chain = rest.strip_prefix(" -j ")?;
    let plain = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    (plain(source) && plain(chain) && chain.starts_with("CNI-")).then_some((source, chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENT: &str = "name: \"coracle\" id: \"sb1\"";

    #[test]
    fn a_bridge_masquerade_rule_of_the_pod_is_recognised() {
        let line = r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"coracle\" id: \"sb1\"" -j CNI-83684edd721106580209efd9"#;

        assert_eq!(
            masquerade_rule(line, COMMENT),
            Some(("10.88.0.2/32", "CNI-83684edd721106580209efd9"))
        );
    }

    #[test]
    fn rules_of_other_pods_or_other_shapes_are_left_alone() {
        let other_pod = r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"coracle\" id: \"sb10\"" -j CNI-1"#;
        let other_shape = r#"-A POSTROUTING -s 10.88.0.2/32 -d 1.2.3.4/32 -m comment --comment "name: \"coracle\" id: \"sb1\"" -j CNI-1"#;
        let not_cni = r#"-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"coracle\" id: \"sb1\"" -j MASQUERADE"#;

        assert_eq!(masquerade_rule(other_pod, COMMENT), None);
        assert_eq!(masquerade_rule(other_shape, COMMENT), None);
        assert_eq!(masquerade_rule(not_cni, COMMENT), None);
    }
}
