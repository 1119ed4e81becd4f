//! The hub's own PKI on disk: its CA (created on first start; the key is a
//! 0600 file that never leaves this machine) and the TLS server certificate
//! it issues itself for the MQTT and gRPC listeners.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use obs_common::pki::{CertificateAuthority, IssuedCertificate, PkiError};

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// Errors of the hub PKI; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum HubPkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: the CA key is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("{path}: {source}")]
    Pki {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
}

type Result<T> = std::result::Result<T, HubPkiError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubPkiError + '_ {
    move |source| HubPkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Paths of the hub's PKI files.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl PkiPaths {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("pki");
        PkiPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            dir,
        }
    }
}

/// The hub CA plus the current server certificate files.
#[derive(Debug)]
pub struct HubPki {
    pub paths: PkiPaths,
    pub ca: CertificateAuthority,
}

/// Writes `contents` to `path` with mode `mode`, replacing it atomically.
pub fn write_private(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Refuses a private key file that group or others can read.
pub fn check_key_permissions(path: &Path) -> Result<()> {
    let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(HubPkiError::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

impl HubPki {
    /// Loads the CA — from `supplied` (certificate, key) files when given,
    /// else from the data directory, creating it there on first start — and
    /// issues a fresh server certificate for `server_names`.
    pub fn load_or_create(
        data_dir: &Path,
        supplied: Option<(&Path, &Path)>,
        server_names: &[String],
    ) -> Result<Self> {
        let mut paths = PkiPaths::in_data_dir(data_dir);
        fs::create_dir_all(&paths.dir).map_err(io(&paths.dir))?;
        if let Some((cert, key)) = supplied {
            paths.ca_cert = cert.to_owned();
            paths.ca_key = key.to_owned();
        }
        let ca = if paths.ca_key.exists() || supplied.is_some() {
            check_key_permissions(&paths.ca_key)?;
            let key = fs::read_to_string(&paths.ca_key).map_err(io(&paths.ca_key))?;
            let cert = fs::read_to_string(&paths.ca_cert).map_err(io(&paths.ca_cert))?;
            CertificateAuthority::from_pem(&cert, &key).map_err(|source| HubPkiError::Pki {
                path: paths.ca_key.clone(),
                source,
            })?
        } else {
            let ca = CertificateAuthority::generate("observatory hub CA", CA_VALIDITY).map_err(
                |source| HubPkiError::Pki {
                    path: paths.ca_key.clone(),
                    source,
                },
            )?;
            write_private(&paths.ca_key, &ca.key_pem(), 0o600)?;
            write_private(&paths.ca_cert, ca.cert_pem(), 0o644)?;
            tracing::info!(path = %paths.ca_cert.display(), "created the hub CA");
            ca
        };
        let server = ca
            .issue_server(server_names, SERVER_VALIDITY)
            .map_err(|source| HubPkiError::Pki {
                path: paths.server_cert.clone(),
                source,
            })?;
        write_server(&paths, &server, ca.cert_pem())?;
        Ok(HubPki { paths, ca })
    }

    /// `sha256:<hex>` of the CA certificate.
    pub fn ca_hash(&self) -> String {
        self.ca.ca_hash().unwrap_or_default()
    }
}

/// The server certificate file holds the chain [server, CA] so that a
/// fog-node pinning the CA by its hash finds the CA in the handshake.
fn write_server(paths: &PkiPaths, server: &IssuedCertificate, ca_pem: &str) -> Result<()> {
    write_private(&paths.server_key, &server.key_pem, 0o600)?;
    write_private(
        &paths.server_cert,
        &format!("{}{ca_pem}", server.cert_pem),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_and_its_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let first = HubPki::load_or_create(dir.path(), None, &names).unwrap();
        let mode = fs::metadata(&first.paths.ca_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let second = HubPki::load_or_create(dir.path(), None, &names).unwrap();
        assert_eq!(
            first.ca_hash(),
            second.ca_hash(),
            "the CA is kept across starts"
        );
    }

    #[test]
    fn a_ca_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let pki = HubPki::load_or_create(dir.path(), None, &names).unwrap();
        fs::set_permissions(&pki.paths.ca_key, fs::Permissions::from_mode(0o644)).unwrap();
        let error = HubPki::load_or_create(dir.path(), None, &names)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ca.key") && error.contains("mode 644"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod supplied_tests {
    use super::*;

    #[test]
    fn a_supplied_ca_is_used_and_its_key_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("supplied", CA_VALIDITY).unwrap();
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        write_private(&cert, ca.cert_pem(), 0o644).unwrap();
        write_private(&key, &ca.key_pem(), 0o600).unwrap();
        let names = vec!["localhost".to_string()];
        let pki =
            HubPki::load_or_create(&dir.path().join("data"), Some((&cert, &key)), &names).unwrap();
        assert_eq!(pki.ca_hash(), ca.ca_hash().unwrap());
        assert_eq!(pki.paths.ca_cert, cert);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let error = HubPki::load_or_create(&dir.path().join("data"), Some((&cert, &key)), &names)
            .unwrap_err()
            .to_string();
        assert!(error.contains("mode 640"), "{error}");
    }
}
