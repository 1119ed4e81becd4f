//! [`EnrollError`]: why an enrolment operation was refused or failed.

use crate::store::StoreError;

/// Why an enrolment operation was refused; `api::status` maps each to a
/// gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// `INVALID_ARGUMENT`.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// `FAILED_PRECONDITION`.
    #[error(
        "site {site} is {state}; pass reenroll (obsctl sites join-token --reenroll) to enrol it again"
    )]
    AlreadyEnrolled { site: String, state: &'static str },
    /// `UNAUTHENTICATED`: deliberately silent about which check failed.
    #[error(
        "join token {token_id:?} is not valid (unknown, expired, already used or superseded); ask the operator for a new one"
    )]
    TokenRefused { token_id: String },
    /// `UNAUTHENTICATED`.
    #[error("{0}")]
    NoClientCertificate(String),
    /// `PERMISSION_DENIED`.
    #[error("site {site}: {reason}")]
    SiteRefused { site: String, reason: String },
    /// `NOT_FOUND`.
    #[error("site {site} is not known to this hub")]
    UnknownSite { site: String },
    /// `UNAVAILABLE`.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `UNAVAILABLE`: a dependency (Kafka) did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// `INTERNAL`.
    #[error("{0}")]
    Internal(String),
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> EnrollError {
    EnrollError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}
