//! The server's PKI: a CA, a serving certificate and an admin client certificate, generated on
//! first start under `DATA/pki/` (keys mode 0600), and the rustls configuration that serves
//! with them and accepts client certificates signed by the CA.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate could not be generated.
    #[error("cannot generate {what}")]
    Generate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A PKI file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("cannot parse {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration")]
    Rustls(#[source] rustls::Error),
}

/// The files of the server's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// `DATA/pki`.
    pub dir: PathBuf,
}

impl Pki {
    /// The PKI under `data_dir/pki`.
    pub fn new(data_dir: &Path) -> Pki {
        Pki {
            dir: data_dir.join("pki"),
        }
    }

    /// A file of the PKI.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Generates the CA and certificates unless they exist already.
    pub fn ensure(&self) -> Result<(), TlsError> {
        let names = [
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "admin.crt",
            "admin.key",
        ];
        if names.iter().all(|n| self.file(n).exists()) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| TlsError::Io {
            path: self.dir.clone(),
            source,
        })?;
        tracing::info!(dir = %self.dir.display(), "generating the server's certificates");

        let gen = |what| move |source| TlsError::Generate { what, source };
        let ca_key = KeyPair::generate().map_err(gen("ca key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen("ca"))?;
        ca.distinguished_name.push(DnType::CommonName, "coracle-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let ca_cert = ca.self_signed(&ca_key).map_err(gen("ca"))?;
        let issuer = Issuer::new(ca, &ca_key);

        let server_key = KeyPair::generate().map_err(gen("server key"))?;
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned()]).map_err(gen("server"))?;
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "coracle-apiserver");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(gen("server"))?;

        let admin_key = KeyPair::generate().map_err(gen("admin key"))?;
        let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(gen("admin"))?;
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let admin_cert = admin.signed_by(&admin_key, &issuer).map_err(gen("admin"))?;

        self.write("ca.crt", &ca_cert.pem(), 0o644)?;
        self.write("ca.key", &ca_key.serialize_pem(), 0o600)?;
        self.write("server.crt", &server_cert.pem(), 0o644)?;
        self.write("server.key", &server_key.serialize_pem(), 0o600)?;
        self.write("admin.crt", &admin_cert.pem(), 0o644)?;
        self.write("admin.key", &admin_key.serialize_pem(), 0o600)?;
        Ok(())
    }

    /// The bearer token, created (0600) on first start.
    pub fn token(&self) -> Result<String, TlsError> {
        let path = self.file("token");
        if let Ok(token) = std::fs::read_to_string(&path) {
            if !token.trim().is_empty() {
                return Ok(token.trim().to_owned());
            }
        }
        let bytes: [u8; 32] = rand::random();
        let token = hex::encode(bytes);
        self.write("token", &token, 0o600)?;
        Ok(token)
    }

    /// Writes `text` to `name` with `mode`, replacing it atomically.
    pub fn write(&self, name: &str, text: &str, mode: u32) -> Result<(), TlsError> {
        write_private(&self.file(name), text, mode)
    }

    /// The rustls server configuration: our certificate, client certificates optional but
    /// verified against our CA when presented.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = self.certs("server.crt")?;
        let key = self.key("server.key")?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in self.certs("ca.crt")? {
            roots.add(ca).map_err(TlsError::Rustls)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Pem {
            path: self.file("ca.crt"),
            reason: e.to_string(),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(TlsError::Rustls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn certs(&self, name: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let path = self.file(name);
        CertificateDer::pem_file_iter(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Pem {
                path,
                reason: e.to_string(),
            })
    }

    fn key(&self, name: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
        let path = self.file(name);
        PrivateKeyDer::from_pem_file(&path).map_err(|e| TlsError::Pem {
            path,
            reason: e.to_string(),
        })
    }
}

/// Writes a file with `mode` through a temporary file and a rename.
pub fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
