//! Apache Kafka as the hub's log: topic `obs.telemetry.{site}` per site
//! (key = node id, value = the batch bytes, headers `seq` and `schema`),
//! `obs.deadletter` for what the hub refuses, an idempotent producer with
//! `acks=all`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use obs_common::site::kafka_telemetry_topic;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde::{Deserialize, Serialize};

use crate::store::{DeadLetter, StoreError, StoreResult};

/// Topic of refused messages (after the namespace).
pub const DEAD_LETTER_TOPIC: &str = "obs.deadletter";
/// Header marking a batch the hub rejected (value: the reason); the sink
/// settles its seq without storing anything.
pub const REJECTED_HEADER: &str = "rejected";

impl KafkaConfig {
    /// The telemetry topic of `site`.
    pub fn telemetry_topic(&self, site: &str) -> String {
        format!("{}{}", self.topic_namespace, kafka_telemetry_topic(site))
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}{DEAD_LETTER_TOPIC}", self.topic_namespace)
    }

    /// The site a telemetry topic belongs to.
    pub fn site_of_topic<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.topic_namespace.as_str())?
            .strip_prefix("obs.telemetry.")
    }

    /// The librdkafka pattern subscription matching every telemetry topic.
    pub fn telemetry_pattern(&self) -> String {
        let namespace: String = self
            .topic_namespace
            .chars()
            .map(|c| {
                if c == '.' {
                    "\\.".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        format!("^{namespace}obs\\.telemetry\\..+")
    }

    /// Rejects a namespace Kafka topic names cannot hold.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.topic_namespace.len() <= 100
            && self
                .topic_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(())
        } else {
            Err("topic_namespace may hold only A-Z a-z 0-9 . _ - (at most 100)".into())
        }
    }
}

/// A librdkafka client configuration for `config.bootstrap`.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap);
    if !config.debug.is_empty() {
        client.set("debug", &config.debug);
    }
    client
}

/// Kafka settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap: String,
    /// Partitions of each site topic. A node's batches share one partition
    /// (key = node id), so one is enough unless a site runs many nodes.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Consumer group of the sink.
    pub sink_group: String,
    /// Sites whose batches the sink writes at once.
    pub sink_concurrency: usize,
    /// Static group membership (`group.instance.id`): a restarted hub with the
    /// same id takes its partitions back at once instead of after the
    /// session timeout. Give each hub replica its own stable id (e.g. the
    /// pod name of a StatefulSet); empty disables it.
    pub sink_instance_id: String,
    /// How long the group waits for a silent sink before reassigning its
    /// partitions, ms.
    pub sink_session_timeout_ms: u32,
    /// Prefix of every topic the hub uses, for clusters shared by several
    /// hubs (e.g. `staging.`): topics are `{namespace}obs.telemetry.{site}`
    /// and `{namespace}obs.deadletter`. Empty by default.
    pub topic_namespace: String,
    /// `retention.ms` of the topics the hub creates, in hours: how long a
    /// batch Kafka acknowledged (and the fog-node then dropped) waits for
    /// the sink, e.g. through a Cassandra outage. Topics that already exist
    /// keep their setting.
    pub retention_hours: u32,
    /// librdkafka `debug` contexts (e.g. `cgrp,fetch`) for diagnosis; empty
    /// for none.
    pub debug: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap: "127.0.0.1:9092".into(),
            partitions: 1,
            replication_factor: 1,
            sink_group: "sink".into(),
            sink_concurrency: 16,
            sink_instance_id: String::new(),
            sink_session_timeout_ms: 10_000,
            topic_namespace: String::new(),
            retention_hours: 30 * 24,
            debug: String::new(),
        }
    }
}

fn kafka_error(operation: impl Into<String>, error: KafkaError) -> StoreError {
    StoreError::new("kafka", operation, error)
}

/// The producer side: topics, batches, dead letters.
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    known_topics: Mutex<HashSet<String>>,
}

impl KafkaLog {
    /// Connects the producer and admin clients (they connect lazily; a
    /// metadata request checks the cluster answers).
    pub async fn connect(config: &KafkaConfig) -> StoreResult<Self> {
        let producer: FutureProducer = client_config(config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| kafka_error(format!("creating a producer for {}", config.bootstrap), e))?;
        let admin: AdminClient<DefaultClientContext> = client_config(config)
            .create()
            .map_err(|e| kafka_error("creating an admin client", e))?;
        let log = KafkaLog {
            config: config.clone(),
            producer,
            admin,
            known_topics: Mutex::new(HashSet::new()),
        };
        log.ensure_topic(&config.dead_letter_topic()).await?;
        Ok(log)
    }

    /// Creates `topic` if it does not exist (idempotent).
    pub async fn ensure_topic(&self, topic: &str) -> StoreResult<()> {
        if self
            .known_topics
            .lock()
            .is_ok_and(|known| known.contains(topic))
        {
            return Ok(());
        }
        let retention_ms = (u64::from(self.config.retention_hours) * 3_600_000).to_string();
        let new_topic = NewTopic::new(
            topic,
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication_factor),
        )
        .set("retention.ms", &retention_ms);
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
        let results = self
            .admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(|e| kafka_error(format!("creating topic {topic}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(StoreError::new(
                        "kafka",
                        format!("creating topic {name}"),
                        code.to_string(),
                    ));
                }
            }
        }
        if let Ok(mut known) = self.known_topics.lock() {
            known.insert(topic.to_owned());
        }
        Ok(())
    }

    /// Whether the cluster answers a metadata request for the dead-letter
    /// topic within `timeout` (for `/readyz`); the reason when it does not.
    pub async fn reachable(self: &std::sync::Arc<Self>, timeout: Duration) -> Result<(), String> {
        let log = self.clone();
        let topic = self.config.dead_letter_topic();
        // librdkafka's metadata call blocks: off the async runtime.
        let answer = tokio::task::spawn_blocking(move || {
            log.producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(|_| ())
        })
        .await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("kafka {}: {error}", self.config.bootstrap)),
            Err(error) => Err(format!("kafka metadata task: {error}")),
        }
    }

    /// The bootstrap servers, for messages.
    pub fn bootstrap(&self) -> &str {
        &self.config.bootstrap
    }

    /// Creates the telemetry topic of `site`.
    pub async fn ensure_site(&self, site: &str) -> StoreResult<()> {
        self.ensure_topic(&self.config.telemetry_topic(site)).await
    }

    /// Enqueues a batch for `site` (in order); the future resolves once the
    /// cluster acknowledged it with `acks=all`. Waits while the producer
    /// queue is full.
    pub async fn produce(
        &self,
        site: &str,
        node_id: &str,
        seq: u64,
        payload: &[u8],
        rejected: Option<&str>,
    ) -> StoreResult<DeliveryFuture> {
        let topic = self.config.telemetry_topic(site);
        let seq_text = seq.to_string();
        loop {
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "seq",
                    value: Some(&seq_text),
                })
                .insert(Header {
                    key: "schema",
                    value: Some(obs_proto::TELEMETRY_BATCH_SCHEMA),
                });
            if let Some(reason) = rejected {
                headers = headers.insert(Header {
                    key: REJECTED_HEADER,
                    value: Some(reason),
                });
            }
            let record = FutureRecord::to(&topic)
                .key(node_id)
                .payload(payload)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((error, _)) => {
                    return Err(kafka_error(
                        format!("producing batch seq {seq} of site {site}"),
                        error,
                    ));
                }
            }
        }
    }

    /// Sends a refused message to `obs.deadletter` with its reason.
    pub async fn dead_letter(&self, letter: &DeadLetter) -> StoreResult<()> {
        let site = letter.site.clone().unwrap_or_default();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(&letter.reason),
            })
            .insert(Header {
                key: "topic",
                value: Some(&letter.topic),
            });
        let dead_letter_topic = self.config.dead_letter_topic();
        let record = FutureRecord::to(&dead_letter_topic)
            .key(&site)
            .payload(&letter.payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| kafka_error("producing a dead letter", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_live_under_the_namespace() {
        let config = KafkaConfig {
            topic_namespace: "staging.".into(),
            ..Default::default()
        };
        assert_eq!(config.telemetry_topic("nrt"), "staging.obs.telemetry.nrt");
        assert_eq!(config.dead_letter_topic(), "staging.obs.deadletter");
        assert_eq!(
            config.site_of_topic("staging.obs.telemetry.nrt"),
            Some("nrt")
        );
        assert_eq!(config.site_of_topic("obs.telemetry.nrt"), None);
        assert_eq!(
            config.telemetry_pattern(),
            "^staging\\.obs\\.telemetry\\..+"
        );
        assert_eq!(
            KafkaConfig::default().telemetry_pattern(),
            "^obs\\.telemetry\\..+"
        );
        let bad = KafkaConfig {
            topic_namespace: "a b".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
