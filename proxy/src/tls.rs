//! Checks a PEM certificate and key before Pingora sees them: Pingora's
//! `TlsSettings` panics on a bad file, ipgate says which file is wrong.

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
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(())
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
