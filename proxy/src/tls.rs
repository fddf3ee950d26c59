//! The TLS listener's rustls configuration, built from a PEM certificate
//! and key that are checked first: a bad file gets an error naming it (the
//! `TlsSettings` of Pingora panics on one).
//!
//! What a handshake costs is set here: the ring provider, TLS 1.2 and 1.3,
//! no ALPN (the listener speaks HTTP/1.1), and sessions resumed from
//! stateless tickets (keys random per process, rotated every 6 hours), so
//! any number of clients can resume without the server holding their
//! sessions, beside rustls's 256-entry session-ID cache for TLS 1.2 clients
//! without ticket support.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("{path} is not valid PEM: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("cannot make TLS session ticket keys: {0}")]
    Tickets(rustls::Error),
    #[error(
        "proxy.tls_cert ({cert}) and proxy.tls_key ({key}) do not make a usable pair: {reason}"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Checks that `cert` holds at least one certificate and `key` a private
/// key, and that rustls accepts them as a pair (the key is the leaf
/// certificate's).
pub fn check_pair(cert: &Path, key: &Path) -> Result<(), TlsFileError> {
    server_config(cert, key).map(drop)
}

/// The TLS listener's configuration from these files, checked as
/// [`check_pair`] says.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsFileError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsFileError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert_pem).collect();
    let certs = certs.map_err(|e| TlsFileError::BadPem {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate(cert.to_path_buf()));
    }
    let key_pem = read(key)?;
    let private = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => return Err(TlsFileError::NoKey(key.to_path_buf())),
        Err(e) => {
            return Err(TlsFileError::BadPem {
                path: key.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let mismatch = |reason: String| TlsFileError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| mismatch(e.to_string()))?;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsFileError::Tickets)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    fn pair() -> (String, String) {
        let k = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (k.cert.pem(), k.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_passes_and_each_bad_file_is_named() {
        let f = Files::new();
        let (cert, key) = pair();
        let (other_cert, _) = pair();
        let c = f.write("c.pem", &cert);
        let k = f.write("k.pem", &key);
        assert!(check_pair(&c, &k).is_ok());

        let empty = f.write("empty.pem", "");
        assert!(
            matches!(check_pair(&empty, &k), Err(TlsFileError::NoCertificate(p)) if p == empty)
        );
        // A certificate where the key should be: no key in it.
        assert!(matches!(check_pair(&c, &c), Err(TlsFileError::NoKey(p)) if p == c));
        let torn = f.write(
            "torn.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        assert!(
            matches!(check_pair(&torn, &k), Err(TlsFileError::BadPem { path, .. }) if path == torn)
        );
        let unended = f.write("unended.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n");
        assert!(
            matches!(check_pair(&c, &unended), Err(TlsFileError::BadPem { path, .. }) if path == unended)
        );
        let other = f.write("other.pem", &other_cert);
        let e = check_pair(&other, &k)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("proxy.tls_cert") && e.contains("proxy.tls_key"),
            "{e}"
        );
        let missing = f.dir.path().join("missing.pem");
        assert!(
            matches!(check_pair(&missing, &k), Err(TlsFileError::Read { path, .. }) if path == missing)
        );
    }
}
