//! Errors of the fog-node library outside the spool (which has its own
//! [`SpoolError`](crate::spool::SpoolError)); each names the file, field or
//! endpoint it is about.

use std::path::PathBuf;

/// Result of the fog-node library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the node (identity, config, enrolment, start-up).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node has no identity yet.
    #[error(
        "not enrolled: {path} does not exist; run `fog-node enroll --hub HOST:PORT --token ID.SECRET --ca-hash sha256:HEX --state-dir {state_dir}` first"
    )]
    NotEnrolled { state_dir: PathBuf, path: PathBuf },
    /// A file of the node's state could not be read or written.
    #[error("{path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A file of the node's state has bad content.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A configuration value makes no sense; `field` is its dotted path.
    #[error("invalid configuration: {field}: {reason}")]
    Config { field: String, reason: String },
    /// Loading the layered configuration failed.
    #[error(transparent)]
    Common(#[from] obs_common::Error),
    /// Certificates or keys could not be built or parsed.
    #[error(transparent)]
    Pki(#[from] obs_common::pki::PkiError),
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] obs_common::tls::TlsError),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// Enrolment or renewal with the hub failed.
    #[error("enrolment with {hub}: {reason}")]
    Enroll { hub: String, reason: String },
    /// A task of the node failed.
    #[error("{task}: {reason}")]
    Task { task: &'static str, reason: String },
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// An [`Error::Config`] naming `field`.
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
