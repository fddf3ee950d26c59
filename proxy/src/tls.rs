//! Checks a PEM certificate and key before Pingora sees them: Pingora's
//! `TlsSettings` panics on a bad file, ipgate says which file is wrong.

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
/// certificate's), as Pingora will when it builds its TLS settings.
pub fn check_pair(cert: &Path, key: &Path) -> Result<(), TlsFileError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsFileError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut cert_pem.as_slice()).collect();
    let certs = certs.map_err(|e| TlsFileError::BadPem {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate(cert.to_path_buf()));
    }
    let key_pem = read(key)?;
    let private = match rustls_pemfile::private_key(&mut key_pem.as_slice()) {
        Ok(Some(k)) => k,
        Ok(None) => return Err(TlsFileError::NoKey(key.to_path_buf())),
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
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(())
}
