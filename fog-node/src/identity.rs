//! The node's identity, made at enrolment and kept in `{state_dir}/identity/`:
//!
//! ```text
//! node.key          the node's private key (PKCS#8 PEM, mode 0600); made here, never sent anywhere
//! node.pem          its certificate chain from the hub (leaf first)
//! ca.pem            the hub CA (pinned by hash at enrolment)
//! enrollment.json   site, node id, hub and broker endpoints, certificate expiry
//! ```
//!
//! Every file is written atomically (temporary file, fsync, rename, fsync of
//! the directory); `enrollment.json` is written last, so its presence means
//! the rest is complete.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use obs_common::site::{SiteTopics, validate_site_id};
use obs_common::tls::{parse_certificates, parse_private_key};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Folder of the identity inside the state dir.
pub const IDENTITY_DIR: &str = "identity";
/// The private key.
pub const KEY_FILE: &str = "node.key";
/// The certificate chain.
pub const CERT_FILE: &str = "node.pem";
/// The hub CA.
pub const CA_FILE: &str = "ca.pem";
/// The enrolment settings.
pub const ENROLLMENT_FILE: &str = "enrollment.json";

/// Where the node reaches the broker, as the hub handed it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Topic prefix of the site, e.g. `/tenants/nrt/obs/v1`.
    pub topic_prefix: String,
    /// MQTT client id (the site id).
    pub client_id: String,
}

/// Contents of `enrollment.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub site: String,
    pub node_id: String,
    /// The hub's gRPC endpoint, `host:port` (for certificate renewal).
    pub hub_grpc: String,
    pub mqtt: MqttSettings,
    pub mirror_segments: u32,
    /// Expiry of `node.pem`, RFC 3339.
    pub certificate_not_after: String,
}

/// An enrolled node's identity. See the [module docs](self).
#[derive(Clone)]
pub struct Identity {
    /// The state dir it was loaded from.
    pub state_dir: PathBuf,
    pub enrollment: Enrollment,
    /// `node.pem`.
    pub cert_chain_pem: String,
    /// `ca.pem`.
    pub ca_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("state_dir", &self.state_dir)
            .field("enrollment", &self.enrollment)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// `{state_dir}/identity`.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join(IDENTITY_DIR)
    }

    /// Whether `state_dir` holds a complete identity.
    pub fn exists(state_dir: &Path) -> bool {
        Self::dir(state_dir).join(ENROLLMENT_FILE).exists()
    }

    /// Loads and checks the identity in `state_dir`: every error names the
    /// file; a missing `enrollment.json` is [`Error::NotEnrolled`].
    pub fn load(state_dir: &Path) -> Result<Identity> {
        let dir = Self::dir(state_dir);
        let enrollment_path = dir.join(ENROLLMENT_FILE);
        if !enrollment_path.exists() {
            return Err(Error::NotEnrolled {
                state_dir: state_dir.to_owned(),
                path: enrollment_path,
            });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|e| Error::io(&path, "read", e))
        };
        let enrollment: Enrollment =
            serde_json::from_str(&read(ENROLLMENT_FILE)?).map_err(|e| Error::BadFile {
                path: enrollment_path.clone(),
                reason: e.to_string(),
            })?;
        let identity = Identity {
            state_dir: state_dir.to_owned(),
            enrollment,
            cert_chain_pem: read(CERT_FILE)?,
            ca_pem: read(CA_FILE)?,
            key_pem: read(KEY_FILE)?,
        };
        identity.check()?;
        let key_path = dir.join(KEY_FILE);
        if let Ok(meta) = fs::metadata(&key_path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %key_path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "private key is readable by others, chmod 600 it"
            );
        }
        Ok(identity)
    }

    /// Writes a complete identity to `state_dir` (tests and enrolment use
    /// it); the key file gets mode 0600.
    pub fn install(
        state_dir: &Path,
        enrollment: Enrollment,
        cert_chain_pem: &str,
        ca_pem: &str,
        key_pem: &str,
    ) -> Result<Identity> {
        let identity = Identity {
            state_dir: state_dir.to_owned(),
            enrollment,
            cert_chain_pem: cert_chain_pem.to_owned(),
            ca_pem: ca_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        };
        identity.check()?;
        identity.save()?;
        Ok(identity)
    }

    /// Writes every file atomically, `enrollment.json` last.
    pub fn save(&self) -> Result<()> {
        let dir = Self::dir(&self.state_dir);
        create_private_dir(&dir)?;
        write_atomically(&dir.join(KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_atomically(&dir.join(CA_FILE), self.ca_pem.as_bytes(), 0o644)?;
        write_atomically(&dir.join(CERT_FILE), self.cert_chain_pem.as_bytes(), 0o644)?;
        self.save_enrollment()
    }

    /// Replaces the certificate chain after a renewal: `node.pem`, then
    /// `enrollment.json` with the new expiry.
    pub fn replace_certificate(&mut self, cert_chain_pem: &str, not_after: &str) -> Result<()> {
        let mut next = self.clone();
        next.cert_chain_pem = cert_chain_pem.to_owned();
        next.enrollment.certificate_not_after = not_after.to_owned();
        next.check()?;
        let dir = Self::dir(&self.state_dir);
        write_atomically(&dir.join(CERT_FILE), cert_chain_pem.as_bytes(), 0o644)?;
        next.save_enrollment()?;
        *self = next;
        Ok(())
    }

    fn save_enrollment(&self) -> Result<()> {
        let path = Self::dir(&self.state_dir).join(ENROLLMENT_FILE);
        let mut json = serde_json::to_vec_pretty(&self.enrollment).map_err(|e| Error::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        write_atomically(&path, &json, 0o644)
    }

    /// The private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The MQTT topics of the site.
    pub fn topics(&self) -> SiteTopics {
        SiteTopics::new(&self.enrollment.mqtt.topic_prefix)
    }

    /// Validity of the leaf certificate, `(not_before, not_after)`.
    pub fn certificate_validity(&self) -> Result<(OffsetDateTime, OffsetDateTime)> {
        let path = || Self::dir(&self.state_dir).join(CERT_FILE);
        let certs = parse_certificates(&self.cert_chain_pem, &path().display().to_string())?;
        let (_, leaf) =
            x509_parser::parse_x509_certificate(certs[0].as_ref()).map_err(|e| Error::BadFile {
                path: path(),
                reason: format!("leaf certificate does not parse: {e}"),
            })?;
        let validity = leaf.validity();
        Ok((
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        ))
    }

    /// Checks that the pieces fit together: a valid site id, parseable
    /// certificates and key, and a leaf certificate for this key.
    fn check(&self) -> Result<()> {
        let dir = Self::dir(&self.state_dir);
        let enrollment_path = dir.join(ENROLLMENT_FILE);
        let bad = |path: PathBuf, reason: String| Error::BadFile { path, reason };
        validate_site_id(&self.enrollment.site)
            .map_err(|e| bad(enrollment_path.clone(), e.to_string()))?;
        validate_node_id(&self.enrollment.node_id)
            .map_err(|reason| bad(enrollment_path.clone(), format!("node_id: {reason}")))?;
        if self.enrollment.mqtt.topic_prefix.is_empty() || self.enrollment.mqtt.host.is_empty() {
            return Err(bad(
                enrollment_path,
                "mqtt.host and mqtt.topic_prefix must be set".into(),
            ));
        }
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        parse_certificates(&self.ca_pem, &dir.join(CA_FILE).display().to_string())?;
        let chain = parse_certificates(&self.cert_chain_pem, &cert_path.display().to_string())?;
        parse_private_key(&self.key_pem, &key_path.display().to_string())?;
        let key = obs_common::pki::NodeKey::from_pem(&self.key_pem)
            .map_err(|e| bad(key_path.clone(), e.to_string()))?;
        let public = SubjectPublicKeyInfoDer::from_pem_slice(key.public_key_pem().as_bytes())
            .map_err(|e| bad(key_path.clone(), format!("public key: {e}")))?;
        let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref())
            .map_err(|e| bad(cert_path.clone(), format!("leaf certificate: {e}")))?;
        if leaf.public_key().raw != public.as_ref() {
            return Err(bad(
                cert_path,
                format!(
                    "the leaf certificate is not for the key in {}",
                    key_path.display()
                ),
            ));
        }
        Ok(())
    }
}

/// Checks a node id against the hub's rule: 1-64 characters of
/// `A-Z a-z 0-9 - _ .`.
pub fn validate_node_id(node_id: &str) -> std::result::Result<(), String> {
    let ok = !node_id.is_empty()
        && node_id.len() <= 64
        && node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{node_id:?} must be 1-64 characters of A-Z a-z 0-9 - _ ."
        ))
    }
}

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir, "chmod", e))
}

/// Writes `bytes` to `path` atomically with `mode`: a temporary file in the
/// same folder, fsync, rename over `path`, fsync of the folder.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create", e))?;
        // `mode` applies only to a new file; a leftover temp keeps its own.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&tmp, "chmod", e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io(&tmp, "write", e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, "fsync", e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename", e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, "fsync", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use obs_common::pki::{CertificateAuthority, NodeKey};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    pub(crate) fn enrollment(site: &str) -> Enrollment {
        Enrollment {
            site: site.into(),
            node_id: "node-1".into(),
            hub_grpc: "127.0.0.1:50051".into(),
            mqtt: MqttSettings {
                host: "127.0.0.1".into(),
                port: 8884,
                topic_prefix: obs_common::site::topic_prefix(site),
                client_id: site.into(),
            },
            mirror_segments: 18,
            certificate_not_after: "2030-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn install_then_load_round_trips_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("ca", DAY).unwrap();
        let key = NodeKey::generate().unwrap();
        let cert = ca
            .sign_site_csr(&key.csr_pem("node-1").unwrap(), "nrt", DAY)
            .unwrap();
        Identity::install(
            dir.path(),
            enrollment("nrt"),
            &cert.cert_pem,
            ca.cert_pem(),
            &key.key_pem(),
        )
        .unwrap();
        let loaded = Identity::load(dir.path()).unwrap();
        assert_eq!(loaded.enrollment, enrollment("nrt"));
        assert_eq!(loaded.key_pem(), key.key_pem());
        let mode = fs::metadata(dir.path().join("identity/node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (before, after) = loaded.certificate_validity().unwrap();
        assert!(after - before > time::Duration::hours(23));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = Identity::load(dir.path()).unwrap_err().to_string();
        assert!(error.starts_with("not enrolled"), "{error}");
        assert!(error.contains("enrollment.json"), "{error}");

        let ca = CertificateAuthority::generate("ca", DAY).unwrap();
        let key = NodeKey::generate().unwrap();
        let other = NodeKey::generate().unwrap();
        let cert = ca
            .sign_site_csr(&other.csr_pem("n").unwrap(), "nrt", DAY)
            .unwrap();
        let error = Identity::install(
            dir.path(),
            enrollment("nrt"),
            &cert.cert_pem,
            ca.cert_pem(),
            &key.key_pem(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("node.pem"), "{error}");
        assert!(error.contains("not for the key"), "{error}");

        let good = ca
            .sign_site_csr(&key.csr_pem("n").unwrap(), "nrt", DAY)
            .unwrap();
        Identity::install(
            dir.path(),
            enrollment("nrt"),
            &good.cert_pem,
            ca.cert_pem(),
            &key.key_pem(),
        )
        .unwrap();
        fs::write(dir.path().join("identity/enrollment.json"), "{").unwrap();
        let error = Identity::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("enrollment.json"), "{error}");
        fs::remove_file(dir.path().join("identity/ca.pem")).unwrap();
        Identity::install(
            dir.path(),
            enrollment("nrt"),
            &good.cert_pem,
            ca.cert_pem(),
            &key.key_pem(),
        )
        .unwrap();
        fs::write(dir.path().join("identity/ca.pem"), "garbage").unwrap();
        let error = Identity::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("ca.pem"), "{error}");
    }
}
