//! Errors of the manufacturing service; `api::status` turns them into
//! gRPC statuses.

use crate::store::StoreError;

/// Why a manufacturing call failed. Messages name the serial, site, row or
/// field concerned.
#[derive(Debug, thiserror::Error)]
pub enum ManufacturingError {
    /// A request field is wrong.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The serial (or another named thing) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A different item with the same key is stored.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is larger than the service holds.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The client's stream failed; nothing more was read.
    #[error("upload stream: {0}")]
    Stream(tonic::Status),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ManufacturingError {
    /// An invalid `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ManufacturingError::InvalidArgument {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
