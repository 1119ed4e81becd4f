//! The real Kafka started by `scripts/services.sh` takes a produce with
//! `acks=all` and idempotence on, and gives the same records back.

use std::time::Duration;

use obs_proto::v1::{Sample, TelemetryBatch, sample};
use obs_tests::{kafka_bootstrap, unique};
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const RECORDS: u64 = 200;

fn batch(seq: u64) -> TelemetryBatch {
    TelemetryBatch {
        site: "nrt".into(),
        node_id: "node-1".into(),
        seq,
        samples: vec![Sample {
            device: "m1/segment/07".into(),
            attribute: "piston".into(),
            ts_unix_ns: 1_700_000_000_000_000_000 + seq as i64,
            value: Some(sample::Value::DoubleValue(seq as f64 * 0.5)),
            unit: "nm".into(),
            quality: 1,
        }],
        gaps: vec![],
        created_unix_ns: 0,
        acked_seq: seq - 1,
    }
}

#[tokio::test]
async fn produce_with_acks_all_and_idempotence_then_consume_everything_in_order() {
    let bootstrap = kafka_bootstrap();
    let topic = unique("obs.test.roundtrip.");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("kafka at {bootstrap} did not answer (scripts/services.sh up): {e}")
        });
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for seq in 1..=RECORDS {
        let payload = batch(seq).encode_to_vec();
        let seq_text = seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "seq",
                value: Some(&seq_text),
            })
            .insert(Header {
                key: "schema",
                value: Some(obs_proto::TELEMETRY_BATCH_SCHEMA),
            });
        let record = FutureRecord::to(&topic)
            .key("node-1")
            .payload(&payload)
            .headers(headers);
        let delivered = producer.send(record, Duration::from_secs(20)).await;
        assert!(delivered.is_ok(), "seq {seq}: {delivered:?}");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique("obs-test-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    while (seen.len() as u64) < RECORDS {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records came back", seen.len()))
            .unwrap();
        assert_eq!(message.key(), Some(&b"node-1"[..]));
        let header_seq = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "seq"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let decoded = TelemetryBatch::decode(message.payload().unwrap()).unwrap();
        assert_eq!(header_seq, Some(decoded.seq.to_string()));
        assert_eq!(decoded, batch(decoded.seq));
        seen.push(decoded.seq);
    }
    assert_eq!(
        seen,
        (1..=RECORDS).collect::<Vec<_>>(),
        "exactly once, in order"
    );

    admin.delete_topics(&[&topic], &options).await.unwrap();
}

/// Site topics the hub creates keep batches as long as configured, so a
/// sink outage shorter than that loses nothing Kafka acknowledged.
#[tokio::test]
async fn the_hub_creates_site_topics_with_the_configured_retention() {
    use cloud_hub::stream::kafka::{KafkaConfig, KafkaLog};
    use rdkafka::admin::ResourceSpecifier;

    let config = KafkaConfig {
        bootstrap: kafka_bootstrap(),
        topic_namespace: format!("{}.", unique("retention")),
        retention_hours: 72,
        ..Default::default()
    };
    let log = KafkaLog::connect(&config).await.expect("kafka");
    log.ensure_site("nrt").await.expect("site topic");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("admin");
    let topic = config.telemetry_topic("nrt");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .expect("describe");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("topic config");
    let retention = resource
        .get("retention.ms")
        .and_then(|entry| entry.value.clone());
    assert_eq!(retention.as_deref(), Some("259200000"), "{topic}");
}
