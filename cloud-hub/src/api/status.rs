//! The one place where domain errors become gRPC statuses, and time
//! conversions of the API.

use prost_types::Timestamp;
use tonic::Status;

use super::manufacturing::ManufacturingError;
use crate::enroll::EnrollError;
use crate::store::StoreError;

/// A store failure: `UNAVAILABLE` (the client may retry), details logged.
pub fn store_status(error: StoreError) -> Status {
    tracing::error!(%error, "store call failed");
    Status::unavailable(format!("store unavailable: {error}"))
}

/// An enrolment refusal or failure. The message never says more than the
/// error's text (a refused join token does not say which check failed).
pub fn enroll_status(error: EnrollError) -> Status {
    let message = error.to_string();
    match error {
        EnrollError::InvalidArgument { .. } => Status::invalid_argument(message),
        EnrollError::AlreadyEnrolled { .. } => Status::failed_precondition(message),
        EnrollError::TokenRefused { .. } | EnrollError::NoClientCertificate(_) => {
            Status::unauthenticated(message)
        }
        EnrollError::SiteRefused { .. } => Status::permission_denied(message),
        EnrollError::UnknownSite { .. } => Status::not_found(message),
        EnrollError::Store(error) => store_status(error),
        EnrollError::Unavailable(_) => {
            tracing::error!(error = message, "enrolment dependency failed");
            Status::unavailable(message)
        }
        EnrollError::Internal(_) => {
            tracing::error!(error = message, "enrolment failed");
            Status::internal(message)
        }
    }
}

/// A manufacturing-service error; messages name the serial, site or field.
pub fn manufacturing_status(error: ManufacturingError) -> Status {
    let message = error.to_string();
    match error {
        ManufacturingError::InvalidArgument { .. } => Status::invalid_argument(message),
        ManufacturingError::NotFound(_) => Status::not_found(message),
        ManufacturingError::FailedPrecondition(_) => Status::failed_precondition(message),
        ManufacturingError::AlreadyExists(_) => Status::already_exists(message),
        ManufacturingError::ResourceExhausted(_) => Status::resource_exhausted(message),
        ManufacturingError::Stream(status) => {
            tracing::warn!(%status, "segment upload stream failed; nothing more stored");
            Status::new(status.code(), message)
        }
        ManufacturingError::Store(error) => store_status(error),
    }
}

/// The HTTP status of a gRPC status code, for the dashboard's HTTP
/// endpoints, which share the services' errors.
pub fn http_status(code: tonic::Code) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Unix ns of a timestamp (saturating).
pub fn time_to_ns(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}

/// A timestamp from Unix ns.
pub fn time_from_ns(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}
