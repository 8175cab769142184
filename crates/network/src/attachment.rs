//! Executing a whole network configuration list for one attachment (SPEC.md, section 3): `ADD`
//! in order, each plugin getting the previous plugin's result; `DEL` in reverse order and `CHECK`
//! in order, every plugin getting the cached final result of `ADD`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::conflist::NetworkList;
use crate::error::NetworkError;
use crate::exec::{CniCommand, Executor, Invocation};
use crate::result::PluginError;

/// One attachment of a pod to a network: the `(container id, ifname)` pair and the parameters
/// that must stay the same for `ADD`, `CHECK` and `DEL`.
#[derive(Debug, Clone)]
pub(crate) struct Attachment<'a> {
    /// The network.
    pub list: &'a NetworkList,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`, absent when the namespace is gone.
    pub netns: Option<&'a Path>,
    /// `CNI_ARGS`.
    pub args: &'a [(String, String)],
    /// Capability arguments offered to plugins that declare them.
    pub capability_args: &'a Map<String, Value>,
    /// The pod as `namespace/name`, for messages.
    pub pod: &'a str,
}

impl Attachment<'_> {
    fn invocation(&self, command: CniCommand) -> Invocation<'_> {
        Invocation {
            command,
            container_id: self.container_id,
            netns: self.netns,
            ifname: self.ifname,
            args: self.args,
            network: &self.list.name,
            pod: self.pod,
        }
    }

    fn plugin_type(&self, index: usize) -> &str {
        self.list.plugins[index]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Runs `ADD` through the chain and returns the final result.
    pub async fn add(&self, executor: &Executor) -> Result<Value, NetworkError> {
        let invocation = self.invocation(CniCommand::Add);
        let mut prev: Option<Value> = None;
        for index in 0..self.list.plugins.len() {
            let plugin = self.plugin_type(index);
            let request = self
                .list
                .plugin_request(index, self.capability_args, prev.as_ref());
            let result = executor.run(plugin, &invocation, &request).await?;
            let result = result.ok_or_else(|| NetworkError::InvalidResult {
                plugin: plugin.to_owned(),
                network: self.list.name.clone(),
                reason: "ADD printed no result".to_owned(),
            })?;
            prev = Some(result);
        }
        Ok(prev.expect("a network list has at least one plugin"))
    }

    /// Runs `DEL` through the chain in reverse order. `cached` is the final result of `ADD`, when
    /// known. A plugin saying the container is unknown (error code 3) has nothing to undo, so
    /// that counts as success.
    pub async fn del(
        &self,
        executor: &Executor,
        cached: Option<&Value>,
    ) -> Result<(), NetworkError> {
        let invocation = self.invocation(CniCommand::Del);
        // Before 0.4.0 there was no prevResult on DEL.
        let prev = cached.filter(|_| self.list.supports_check());
        for index in (0..self.list.plugins.len()).rev() {
            let plugin = self.plugin_type(index);
            let request = self.list.plugin_request(index, self.capability_args, prev);
            match executor.run(plugin, &invocation, &request).await {
                Ok(_) => {}
                Err(NetworkError::Plugin { error, .. })
                    if error.code == PluginError::CONTAINER_UNKNOWN =>
                {
                    tracing::debug!(
                        plugin,
                        pod = self.pod,
                        "cni plugin does not know the container"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Runs `CHECK` through the chain with the cached result of `ADD`. Networks that disable
    /// checks, or whose version predates `CHECK` (before 0.4.0), always pass.
    pub async fn check(&self, executor: &Executor, cached: &Value) -> Result<(), NetworkError> {
        if self.list.disable_check || !self.list.supports_check() {
            return Ok(());
        }
        let invocation = self.invocation(CniCommand::Check);
        for index in 0..self.list.plugins.len() {
            let plugin = self.plugin_type(index);
            let request = self
                .list
                .plugin_request(index, self.capability_args, Some(cached));
            executor.run(plugin, &invocation, &request).await?;
        }
        Ok(())
    }
}
