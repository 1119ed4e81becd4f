//! The hub's durable log between ingress and store: none in the embedded
//! mode (the ingest writes straight to the store), Apache Kafka in the
//! distributed mode.

pub mod kafka;

use serde::{Deserialize, Serialize};

/// Which log to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StreamConfig {
    /// No log: each batch is written to the store before it is acknowledged.
    #[default]
    None,
    /// Apache Kafka: one topic per site, idempotent producer, `acks=all`.
    Kafka(kafka::KafkaConfig),
}
