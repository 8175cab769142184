//! One masquerade rule set per pod network, set up once per node.
//!
//! Traffic from pods that leaves the pod network is masqueraded behind the node's address, as
//! podman's netavark and single-node distributions do: a chain `CORACLE-MASQ-<bridge>` in the
//! nat table that lets traffic to the pod CIDR (and to multicast) through unchanged and
//! masquerades the rest, jumped to from `POSTROUTING` for sources in the pod CIDR.
//!
//! The `bridge` plugin can do this itself (`ipMasq`), but it does it per pod: a chain of its own
//! for every pod, made on ADD and removed on DEL with about a dozen `iptables` processes, which
//! cost a pod about 100 ms of its start and stop. The node's rules are checked once per coracle
//! process and changed only when they differ (a new pod CIDR), so a pod costs none.

use crate::error::NetworkError;
use crate::iptables::{output, run};
use ipnet::IpNet;

/// The chain of the network on `bridge` (iptables allows 28 characters; bridge names have 15).
pub(crate) fn chain_name(bridge: &str) -> String {
    format!("CORACLE-MASQ-{bridge}")
}

/// The chain's rules as `iptables -S <chain>` prints them.
fn chain_rules(chain: &str, cidr: &IpNet) -> Vec<String> {
    let mut rules = vec![
        format!("-N {chain}"),
        format!("-A {chain} -d {cidr} -j RETURN"),
    ];
    if let IpNet::V4(_) = cidr {
        rules.push(format!("-A {chain} -d 224.0.0.0/4 -j RETURN"));
    }
    rules.push(format!("-A {chain} -j MASQUERADE"));
    rules
}

/// The `POSTROUTING` rule that sends the pod CIDR's traffic through the chain.
fn jump_rule(chain: &str, bridge: &str, cidr: &IpNet) -> Vec<String> {
    [
        "-s",
        &cidr.to_string(),
        "-m",
        "comment",
        "--comment",
        &format!("coracle pod network {bridge}"),
        "-j",
        chain,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn tool(cidr: &IpNet) -> &'static str {
    match cidr {
        IpNet::V4(_) => "iptables",
        IpNet::V6(_) => "ip6tables",
    }
}

/// Makes the masquerade rules of the network on `bridge` with pod CIDR `cidr` what they should
/// be: nothing changes when they already are.
pub(crate) async fn ensure(bridge: &str, cidr: &IpNet) -> Result<(), NetworkError> {
    let tool = tool(cidr);
    let chain = chain_name(bridge);
    let cidr = cidr.trunc();

    let wanted = chain_rules(&chain, &cidr);
    let current = list(tool, &chain).await;
    if current.as_deref() != Some(&wanted[..]) {
        // Missing, or made for another pod CIDR: (re)write the chain and its jumps.
        if current.is_none() {
            run(tool, &["-t", "nat", "-N", &chain]).await?;
        } else {
            run(tool, &["-t", "nat", "-F", &chain]).await?;
            remove_jumps(tool, &chain).await?;
        }
        for rule in &wanted[1..] {
            let args: Vec<&str> = rule.split(' ').skip(1).collect();
            let mut full = vec!["-t", "nat", "-A"];
            full.extend(args);
            run(tool, &full).await?;
        }
        tracing::info!(chain, %cidr, "pod network masquerade rules set up");
    }

    let jump = jump_rule(&chain, bridge, &cidr);
    let jump: Vec<&str> = jump.iter().map(String::as_str).collect();
    let check = [&["-t", "nat", "-C", "POSTROUTING"][..], &jump[..]].concat();
    if run(tool, &check).await.is_err() {
        let add = [&["-t", "nat", "-A", "POSTROUTING"][..], &jump[..]].concat();
        run(tool, &add).await?;
    }
    Ok(())
}

/// Removes the masquerade rules of the network on `bridge`, if any (for tests and tools that
/// take a network down).
pub async fn remove(bridge: &str, cidr: &IpNet) -> Result<(), NetworkError> {
    let tool = tool(cidr);
    let chain = chain_name(bridge);
    if list(tool, &chain).await.is_none() {
        return Ok(());
    }
    remove_jumps(tool, &chain).await?;
    run(tool, &["-t", "nat", "-F", &chain]).await?;
    Ok(run(tool, &["-t", "nat", "-X", &chain]).await?)
}

/// Deletes every `POSTROUTING` rule that jumps to `chain`.
async fn remove_jumps(tool: &str, chain: &str) -> Result<(), NetworkError> {
    let listing = output(tool, &["-t", "nat", "-S", "POSTROUTING"]).await?;
    for line in listing.lines() {
        let Some(rule) = line.strip_prefix("-A POSTROUTING ") else {
            continue;
        };
        if !rule.ends_with(&format!("-j {chain}")) {
            continue;
        }
        let args = split_rule(rule);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(
            tool,
            &[&["-t", "nat", "-D", "POSTROUTING"][..], &args[..]].concat(),
        )
        .await?;
    }
    Ok(())
}

/// Splits a rule as `iptables -S` prints it into arguments, honouring its double quotes.
fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rule.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// `iptables -S <chain>` as lines, or `None` when the chain does not exist.
async fn list(tool: &str, chain: &str) -> Option<Vec<String>> {
    let text = output(tool, &["-t", "nat", "-S", chain]).await.ok()?;
    Some(text.lines().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_lets_the_pod_cidr_and_multicast_through_and_masquerades_the_rest() {
        let cidr: IpNet = "10.88.0.0/16".parse().unwrap();
        assert_eq!(
            chain_rules("CORACLE-MASQ-coracle0", &cidr),
            [
                "-N CORACLE-MASQ-coracle0",
                "-A CORACLE-MASQ-coracle0 -d 10.88.0.0/16 -j RETURN",
                "-A CORACLE-MASQ-coracle0 -d 224.0.0.0/4 -j RETURN",
                "-A CORACLE-MASQ-coracle0 -j MASQUERADE",
            ]
        );
        assert!(chain_name("coracle0").len() <= 28);
        assert!(chain_name("abcdefghijklmno").len() <= 28);
    }

    #[test]
    fn a_printed_rule_splits_into_its_arguments_with_quoted_comments_whole() {
        let rule = r#"-s 10.88.0.0/16 -m comment --comment "coracle pod network coracle0" -j CORACLE-MASQ-coracle0"#;
        assert_eq!(
            split_rule(rule),
            [
                "-s",
                "10.88.0.0/16",
                "-m",
                "comment",
                "--comment",
                "coracle pod network coracle0",
                "-j",
                "CORACLE-MASQ-coracle0"
            ]
        );
    }
}
