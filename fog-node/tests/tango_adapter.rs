//! The Tango JSON adapter as a Tango device companion sees it: an MQTT
//! broker on loopback, fed by a rumqttc client.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fog_node::config::TangoConfig;
use fog_node::tango::{Malformed, TangoCounters, start};
use obs_proto::v1::{Quality, Sample, sample::Value};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(20);

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_messages_become_samples_and_bad_ones_are_counted_by_reason() {
    let config = TangoConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..TangoConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let counters = Arc::new(TangoCounters::default());
    let stop = CancellationToken::new();
    let listener = start(&config, tx, counters.clone(), stop.clone())
        .await
        .unwrap();
    let addr = listener.local_addr();

    // A connection that does not speak MQTT is closed and counted.
    let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(LIMIT, junk.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed without an answer");
    wait_until("the protocol error counter", || {
        counters.snapshot().protocol_errors == 1
    })
    .await;

    let mut options = MqttOptions::new("ws-companion", addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 32);
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(packet) = event {
                let _ = seen_tx.send(packet);
            }
        }
    });

    let good: [(&str, &[u8], QoS); 4] = [
        (
            "ws/station/1/telemetry/wind_speed",
            br#"{"timestamp": "2024-08-15 10:57:57.192446", "value": 94.7, "units": "m/seg"}"#,
            QoS::AtLeastOnce,
        ),
        (
            "dome/shutter/1/telemetry/state",
            br#"{"timestamp": "2024-08-15T10:58:00+00:00", "value": "OPEN"}"#,
            QoS::AtMostOnce,
        ),
        (
            "ws/station/1/telemetry/rain",
            br#"{"timestamp": 1723719481.25, "value": false, "quality": "ATTR_WARNING"}"#,
            QoS::ExactlyOnce,
        ),
        (
            "m1/segment/07/telemetry/piston",
            br#"{"timestamp": "2024-08-15 10:58:02", "value": -12, "units": "nm"}"#,
            QoS::AtLeastOnce,
        ),
    ];
    let bad: [(&str, &[u8], Malformed); 5] = [
        (
            "ws/station/1/wind_speed",
            br#"{"timestamp": 1723719481, "value": 1}"#,
            Malformed::BadTopic,
        ),
        (
            "ws/station/1/telemetry/wind_speed",
            b"{\"value\": 1,",
            Malformed::BadJson,
        ),
        (
            "ws/station/1/telemetry/wind_speed",
            br#"{"timestamp": 1723719481}"#,
            Malformed::MissingValue,
        ),
        (
            "ws/station/1/telemetry/wind_speed",
            br#"{"timestamp": "15/08/2024", "value": 1}"#,
            Malformed::BadTimestamp,
        ),
        (
            "ws/station/1/telemetry/wind_speed",
            br#"{"timestamp": 1723719481, "value": {"x": 1}}"#,
            Malformed::BadValue,
        ),
    ];
    // interleave bad and good: a bad message must not break the connection
    for i in 0..good.len().max(bad.len()) {
        if let Some((topic, payload, _)) = bad.get(i) {
            client
                .publish(*topic, QoS::AtLeastOnce, false, payload.to_vec())
                .await
                .unwrap();
        }
        if let Some((topic, payload, qos)) = good.get(i) {
            client
                .publish(*topic, *qos, false, payload.to_vec())
                .await
                .unwrap();
        }
    }
    client.subscribe("#", QoS::AtLeastOnce).await.unwrap();

    let mut samples: Vec<Sample> = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while samples.len() < good.len() {
        let batch = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("samples in time")
            .expect("channel open");
        samples.extend(batch);
    }
    wait_until("every bad message counted", || {
        Malformed::ALL
            .iter()
            .map(|m| counters.malformed(*m))
            .sum::<u64>()
            == bad.len() as u64
    })
    .await;
    for (_, _, reason) in &bad {
        assert_eq!(counters.malformed(*reason), 1, "{reason:?}");
    }
    assert_eq!(counters.accepted(), good.len() as u64);

    // broker-side acknowledgements: PUBACKs for every QoS 1 publish, the QoS 2
    // exchange completed, and the subscription refused
    let (mut pubacks, mut pubcomps, mut suback) = (0, 0, None);
    let deadline = Instant::now() + LIMIT;
    while pubacks < 7 || pubcomps < 1 || suback.is_none() {
        match tokio::time::timeout_at(deadline.into(), seen.recv()).await {
            Ok(Some(Packet::PubAck(_))) => pubacks += 1,
            Ok(Some(Packet::PubComp(_))) => pubcomps += 1,
            Ok(Some(Packet::SubAck(ack))) => suback = Some(ack),
            Ok(Some(_)) => {}
            other => panic!("saw {pubacks} pubacks, {pubcomps} pubcomps, {suback:?}: {other:?}"),
        }
    }
    assert_eq!(
        suback.unwrap().return_codes,
        vec![SubscribeReasonCode::Failure]
    );

    samples.sort_by_key(|s| s.ts_unix_ns);
    let wind = &samples[0];
    assert_eq!(
        (wind.device.as_str(), wind.attribute.as_str()),
        ("ws/station/1", "wind_speed")
    );
    assert_eq!(wind.ts_unix_ns, 1_723_719_477_192_446_000);
    assert_eq!(wind.value, Some(Value::DoubleValue(94.7)));
    assert_eq!(wind.unit, "m/seg");
    assert_eq!(samples[1].value, Some(Value::StringValue("OPEN".into())));
    assert_eq!(samples[2].value, Some(Value::BoolValue(false)));
    assert_eq!(samples[2].quality, Quality::Warning as i32);
    assert_eq!(samples[3].device, "m1/segment/07");
    assert_eq!(samples[3].value, Some(Value::DoubleValue(-12.0)));
    assert_eq!(counters.snapshot().protocol_errors, 1);

    // Shutdown: the listener and its connections end and drop their senders.
    stop.cancel();
    tokio::time::timeout(LIMIT, listener.join()).await.unwrap();
    assert!(
        rx.recv().await.is_none(),
        "no sender is left after shutdown"
    );
    driver.abort();
}
