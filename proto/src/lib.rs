//! The `observatory.v1` wire contract, generated from `protos/` at build time.
//!
//! MQTT payloads ([`v1::TelemetryBatch`], [`v1::Ack`], [`v1::NodeStatus`]) and the
//! four gRPC services (enrolment, manufacturing, fleet health, telemetry).

/// Generated code for package `observatory.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("observatory.v1");
}

/// Encoded `FileDescriptorSet` of every observatory.v1 proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("observatory_v1_descriptor");

/// Value of the Kafka `schema` header on telemetry records.
pub const TELEMETRY_BATCH_SCHEMA: &str = "observatory.v1.TelemetryBatch";
