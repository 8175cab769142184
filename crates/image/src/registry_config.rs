//! Registry mirrors, TLS settings and credentials.
//!
//! The file has the format of k3s' `registries.yaml`:
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}      # or `auth: <base64 u:p>`, or `identity_token`
//!     tls: {insecure_skip_verify: false, ca_file: /etc/ssl/my-ca.pem}
//! ```
//!
//! A pull tries the mirror endpoints of the image's registry in order (or those of the `"*"`
//! mirror when the registry has none), then the registry itself, as k3s and containerd do. An
//! endpoint written `http://…` is spoken to in plain HTTP. A registry on a loopback address
//! (`localhost`, `127.x.x.x`, `[::1]`) with no `tls` section is spoken to in plain HTTP too, as
//! Docker treats such registries as insecure by default.
//!
//! Credentials come first from `configs.<host>.auth`, then from the Docker client's
//! `config.json` (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths.<host>.auth`
//! and `identitytoken`).
//!
//! Not supported (an error names them when a pull would need them): mirror `rewrite` rules,
//! endpoint URLs with a path, and TLS client certificates (`cert_file`, `key_file`), which the
//! registry client library cannot present. An `identity_token` is sent as a bearer token as is;
//! it is not exchanged for an access token first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::error::ImageError;

/// Mirrors, TLS and credentials for registries; see the module docs for the format.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    mirrors: BTreeMap<String, Vec<String>>,
    hosts: BTreeMap<String, HostConfig>,
    docker_auths: BTreeMap<String, Credentials>,
}

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// HTTP basic authentication.
    Basic(String, String),
    /// A bearer (identity) token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic(user, _) => write!(f, "Basic({user:?}, <redacted>)"),
            Credentials::Token(_) => write!(f, "Token(<redacted>)"),
        }
    }
}

/// TLS settings for one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tls {
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// An extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Set when the config asks for something we cannot do (client certificates).
    pub unsupported: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct HostConfig {
    auth: Option<Credentials>,
    tls: Option<Tls>,
}

/// One place to try a pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]` as oci-client wants it in a reference.
    pub host: String,
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// TLS settings, when HTTPS.
    pub tls: Tls,
    /// Credentials for this host, if any are configured.
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    #[serde(default)]
    mirrors: BTreeMap<String, MirrorYaml>,
    #[serde(default)]
    configs: BTreeMap<String, HostYaml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorYaml {
    #[serde(default)]
    endpoint: Vec<String>,
    #[serde(default)]
    rewrite: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostYaml {
    auth: Option<AuthYaml>,
    tls: Option<TlsYaml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthYaml {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    identity_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsYaml {
    #[serde(default)]
    insecure_skip_verify: bool,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuthJson>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuthJson {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl RegistryConfig {
    /// Loads `path` (a missing file is an empty config) and the Docker client's `config.json`.
    pub fn load(path: &Path) -> Result<RegistryConfig, ImageError> {
        let docker = docker_config_path();
        RegistryConfig::load_with_docker_config(path, docker.as_deref())
    }

    /// Like [`RegistryConfig::load`], with the Docker `config.json` at `docker_config` (if any).
    pub fn load_with_docker_config(
        path: &Path,
        docker_config: Option<&Path>,
    ) -> Result<RegistryConfig, ImageError> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => {
                RegistryConfig::parse(&text).map_err(|reason| ImageError::RegistryConfig {
                    path: path.to_path_buf(),
                    reason,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryConfig::default(),
            Err(source) => return Err(ImageError::io(path, source)),
        };
        if let Some(docker_path) = docker_config {
            match std::fs::read_to_string(docker_path) {
                Ok(text) => {
                    config.docker_auths =
                        parse_docker_config(&text).map_err(|reason| ImageError::RegistryConfig {
                            path: docker_path.to_path_buf(),
                            reason,
                        })?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ImageError::io(docker_path, source)),
            }
        }
        Ok(config)
    }

    /// Parses the text of a `registries.yaml`.
    pub fn parse(text: &str) -> Result<RegistryConfig, String> {
        if text.trim().is_empty() {
            return Ok(RegistryConfig::default());
        }
        let file: FileYaml = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let mut config = RegistryConfig::default();
        for (registry, mirror) in file.mirrors {
            if !mirror.rewrite.is_empty() {
                return Err(format!(
                    "mirrors.{registry}: rewrite rules are not supported"
                ));
            }
            for endpoint in &mirror.endpoint {
                parse_endpoint_url(endpoint)
                    .map_err(|reason| format!("mirrors.{registry}: {reason}"))?;
            }
            config.mirrors.insert(registry, mirror.endpoint);
        }
        for (key, host) in file.configs {
            let auth = match host.auth {
                Some(auth) => Some(
                    credentials(auth.username, auth.password, auth.auth, auth.identity_token)
                        .map_err(|reason| format!("configs.{key}.auth: {reason}"))?,
                ),
                None => None,
            };
            let tls = host.tls.map(|tls| Tls {
                insecure_skip_verify: tls.insecure_skip_verify,
                ca_file: tls.ca_file,
                unsupported: (tls.cert_file.is_some() || tls.key_file.is_some())
                    .then(|| format!("configs.{key}.tls: client certificates are not supported")),
            });
            config
                .hosts
                .insert(host_key(&key), HostConfig { auth, tls });
        }
        Ok(config)
    }

    /// The endpoints to try for `registry`, in order: its mirrors, then the registry itself.
    pub(crate) fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirrors = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<Endpoint> = Vec::new();
        for url in mirrors {
            let Ok((host, plain_http)) = parse_endpoint_url(&url) else {
                continue; // refused at load time
            };
            out.push(self.endpoint(&host, Some(plain_http)));
        }
        let upstream = self.endpoint(registry, None);
        if !out.iter().any(|e| e.host == upstream.host) {
            out.push(upstream);
        }
        out
    }

    fn endpoint(&self, host: &str, plain_http: Option<bool>) -> Endpoint {
        let host_config = self.hosts.get(host);
        let tls = host_config.and_then(|h| h.tls.clone());
        let plain_http = plain_http.unwrap_or(tls.is_none() && is_loopback_host(host));
        let credentials = host_config
            .and_then(|h| h.auth.clone())
            .or_else(|| self.docker_credentials(host));
        Endpoint {
            host: host.to_string(),
            plain_http,
            tls: tls.unwrap_or_default(),
            credentials,
        }
    }

    fn docker_credentials(&self, host: &str) -> Option<Credentials> {
        let aliases: &[&str] = if host == "docker.io" {
            &["docker.io", "index.docker.io", "registry-1.docker.io"]
        } else {
            &[host]
        };
        aliases
            .iter()
            .find_map(|alias| self.docker_auths.get(*alias).cloned())
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

fn parse_docker_config(text: &str) -> Result<BTreeMap<String, Credentials>, String> {
    let file: DockerConfigJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (key, auth) in file.auths {
        let has_any =
            auth.auth.is_some() || auth.username.is_some() || auth.identitytoken.is_some();
        if !has_any {
            continue; // e.g. an entry served by a credential helper
        }
        let creds = credentials(auth.username, auth.password, auth.auth, auth.identitytoken)
            .map_err(|reason| format!("auths.{key}: {reason}"))?;
        out.insert(host_key(&key), creds);
    }
    Ok(out)
}

/// Credentials from the fields both file formats share; the token wins, then `auth`.
fn credentials(
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
    token: Option<String>,
) -> Result<Credentials, String> {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        return Ok(Credentials::Token(token));
    }
    if let Some(auth) = auth.filter(|a| !a.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auth is not base64: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| "auth is not UTF-8".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "auth is not base64 of user:password".to_string())?;
        return Ok(Credentials::Basic(user.to_string(), pass.to_string()));
    }
    match username {
        Some(user) => Ok(Credentials::Basic(user, password.unwrap_or_default())),
        None => Err("no username, auth or identity token".to_string()),
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`: the host part of a config key.
fn host_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// `http://127.0.0.1:5000` → (`127.0.0.1:5000`, plain HTTP). No scheme means HTTPS.
fn parse_endpoint_url(url: &str) -> Result<(String, bool), String> {
    let (rest, plain_http) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, false)
    } else if url.contains("://") {
        return Err(format!(
            "endpoint {url:?}: only http and https are supported"
        ));
    } else {
        (url, false)
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() {
        return Err(format!("endpoint {url:?}: no host"));
    }
    if !matches!(path.trim_end_matches('/'), "" | "v2") {
        return Err(format!(
            "endpoint {url:?}: a path in the endpoint URL is not supported"
        ));
    }
    Ok((host.to_string(), plain_http))
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example.com/v2"
  "*":
    endpoint: ["https://catch-all.example.com"]
configs:
  "127.0.0.1:5000":
    auth:
      username: alice
      password: secret
  "mirror.example.com":
    auth:
      auth: Ym9iOmh1bnRlcjI=
    tls:
      insecure_skip_verify: true
      ca_file: /etc/ssl/ca.pem
  "tokens.example.com":
    auth:
      identity_token: tok
  "https://certs.example.com":
    tls:
      cert_file: /c.pem
      key_file: /k.pem
"#;

    #[test]
    fn k3s_mirrors_come_before_the_upstream_registry() {
        let config = RegistryConfig::parse(K3S).unwrap();
        let endpoints = config.endpoints("docker.io");
        let hosts: Vec<_> = endpoints.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, ["127.0.0.1:5000", "mirror.example.com", "docker.io"]);
        assert!(endpoints[0].plain_http);
        assert!(!endpoints[1].plain_http);
        assert!(!endpoints[2].plain_http);
        assert_eq!(
            endpoints[0].credentials,
            Some(Credentials::Basic("alice".into(), "secret".into()))
        );
        assert_eq!(
            endpoints[1].credentials,
            Some(Credentials::Basic("bob".into(), "hunter2".into()))
        );
        assert!(endpoints[1].tls.insecure_skip_verify);
        assert_eq!(
            endpoints[1].tls.ca_file.as_deref(),
            Some(Path::new("/etc/ssl/ca.pem"))
        );
    }

    #[test]
    fn wildcard_mirror_applies_to_registries_without_their_own() {
        let config = RegistryConfig::parse(K3S).unwrap();
        let hosts: Vec<_> = config
            .endpoints("quay.io")
            .into_iter()
            .map(|e| e.host)
            .collect();
        assert_eq!(hosts, ["catch-all.example.com", "quay.io"]);
    }

    #[test]
    fn identity_tokens_and_client_certificates_are_recognised() {
        let config = RegistryConfig::parse(K3S).unwrap();
        let tokens = config.endpoints("tokens.example.com").pop().unwrap();
        assert_eq!(tokens.credentials, Some(Credentials::Token("tok".into())));
        let certs = config.endpoints("certs.example.com").pop().unwrap();
        assert!(certs
            .tls
            .unsupported
            .as_deref()
            .unwrap()
            .contains("client certificates"));
    }

    #[test]
    fn loopback_registries_default_to_plain_http() {
        let config = RegistryConfig::default();
        assert!(config.endpoints("127.0.0.1:5000")[0].plain_http);
        assert!(config.endpoints("localhost:5000")[0].plain_http);
        assert!(config.endpoints("[::1]:5000")[0].plain_http);
        assert!(!config.endpoints("registry.example.com:5000")[0].plain_http);
        assert!(!config.endpoints("docker.io")[0].plain_http);
    }

    #[test]
    fn empty_and_missing_files_are_empty_configs() {
        assert!(RegistryConfig::parse("").unwrap().mirrors.is_empty());
        let missing = RegistryConfig::load_with_docker_config(
            Path::new("/nonexistent/registries.yaml"),
            Some(Path::new("/nonexistent/config.json")),
        )
        .unwrap();
        assert_eq!(missing.endpoints("docker.io").len(), 1);
    }

    #[test]
    fn unknown_fields_rewrites_and_bad_endpoints_are_errors() {
        assert!(RegistryConfig::parse("mirror: {}")
            .unwrap_err()
            .contains("unknown field"));
        let rewrite = "mirrors: {docker.io: {endpoint: [x], rewrite: {a: b}}}";
        assert!(RegistryConfig::parse(rewrite)
            .unwrap_err()
            .contains("rewrite"));
        let path = "mirrors: {docker.io: {endpoint: [\"http://h:1/prefix\"]}}";
        assert!(RegistryConfig::parse(path).unwrap_err().contains("path"));
        let scheme = "mirrors: {docker.io: {endpoint: [\"ftp://h\"]}}";
        assert!(RegistryConfig::parse(scheme).unwrap_err().contains("http"));
        let auth = "configs: {h: {auth: {auth: \"!!!\"}}}";
        assert!(RegistryConfig::parse(auth).unwrap_err().contains("base64"));
    }

    #[test]
    fn docker_config_json_supplies_credentials_for_docker_hub() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
                "ghcr.io": {"identitytoken": "idt"},
                "helper.example.com": {}
            }}"#,
        )
        .unwrap();
        let config =
            RegistryConfig::load_with_docker_config(Path::new("/nonexistent"), Some(&path))
                .unwrap();
        assert_eq!(
            config.endpoints("docker.io")[0].credentials,
            Some(Credentials::Basic("user".into(), "pass".into()))
        );
        assert_eq!(
            config.endpoints("ghcr.io")[0].credentials,
            Some(Credentials::Token("idt".into()))
        );
        assert_eq!(config.endpoints("helper.example.com")[0].credentials, None);
    }
}
