//! The MQTT payloads the uplink builds.

use obs_proto::v1::{NodeState, NodeStatus, TelemetryBatch};
use prost::Message;

use crate::spool::SpoolStats;

/// The stored batch with `acked_seq` (field 7) set, without decoding it:
/// the encoding of `TelemetryBatch { acked_seq, .. }` is appended to the
/// stored bytes, and protobuf's merge semantics make the concatenation
/// decode as the stored batch with that field set (the last value of a
/// scalar field wins). An `acked_seq` of 0 appends nothing.
pub fn with_acked_seq(stored: &[u8], acked_seq: u64) -> Vec<u8> {
    let suffix = TelemetryBatch {
        acked_seq,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(stored.len() + suffix.encoded_len());
    out.extend_from_slice(stored);
    suffix.encode_raw(&mut out);
    out
}

/// Who a status is about.
#[derive(Debug, Clone)]
pub struct StatusSource<'a> {
    pub site: &'a str,
    pub node_id: &'a str,
    /// Expiry of the node certificate, Unix seconds.
    pub certificate_not_after_s: i64,
}

/// The retained `NodeStatus` in `state`, with the spool's numbers.
pub fn node_status(
    source: &StatusSource<'_>,
    state: NodeState,
    stats: &SpoolStats,
    now_unix_ns: i64,
) -> Vec<u8> {
    NodeStatus {
        site: source.site.to_owned(),
        node_id: source.node_id.to_owned(),
        state: state as i32,
        spooled_seq: stats.spooled_seq,
        acked_seq: stats.acked_seq,
        backlog_batches: stats.backlog_batches,
        backlog_bytes: stats.backlog_bytes,
        gap_samples: stats.gap_samples,
        quarantined_batches: stats.quarantined,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        certificate_not_after: Some(prost_types::Timestamp {
            seconds: source.certificate_not_after_s,
            nanos: 0,
        }),
        reported_at: Some(prost_types::Timestamp {
            seconds: now_unix_ns.div_euclid(1_000_000_000),
            nanos: i32::try_from(now_unix_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::{Gap, Sample, sample::Value};

    use super::*;

    #[test]
    fn appended_acked_seq_decodes_as_the_batch_with_the_field_set() {
        let batch = TelemetryBatch {
            site: "nrt".into(),
            node_id: "node-1".into(),
            seq: 42,
            samples: vec![Sample {
                device: "m1/segment/07".into(),
                attribute: "piston".into(),
                ts_unix_ns: 1_700_000_000_000_000_000,
                value: Some(Value::DoubleValue(12.5)),
                unit: "nm".into(),
                quality: 1,
            }],
            gaps: vec![Gap {
                first_seq: 3,
                last_seq: 9,
                samples: 70,
                ..Default::default()
            }],
            created_unix_ns: 1_700_000_000_000_000_001,
            acked_seq: 0,
        };
        let stored = batch.encode_to_vec();
        let sent = with_acked_seq(&stored, 41);
        assert!(
            sent.starts_with(&stored),
            "the stored bytes are sent unchanged"
        );
        let decoded = TelemetryBatch::decode(sent.as_slice()).unwrap();
        assert_eq!(
            decoded,
            TelemetryBatch {
                acked_seq: 41,
                ..batch.clone()
            }
        );
        // sent twice with a newer watermark: the last value wins
        let again = with_acked_seq(&sent, 41_000_000_000);
        assert_eq!(
            TelemetryBatch::decode(again.as_slice()).unwrap().acked_seq,
            41_000_000_000
        );
        assert_eq!(with_acked_seq(&stored, 0), stored);
    }
}
