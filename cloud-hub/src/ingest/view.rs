//! A telemetry batch read for checking, without building its samples.
//!
//! The Kafka bridge forwards the payload as it came and only needs the
//! batch's identity and a verdict on every sample. Decoding a full
//! [`TelemetryBatch`] allocates three strings per sample, the larger part of
//! the bridge's time; [`BatchView::decode`] reads the same wire format with
//! prost's field primitives and keeps each sample as slices of the payload.
//! It accepts and refuses exactly what `TelemetryBatch::decode` does (UTF-8
//! included) and its verdict is that of [`check_batch`]; `tests` below
//! compare both readings on mangled payloads.
//!
//! [`check_batch`]: super::check_batch

use obs_proto::v1::TelemetryBatch;
use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, decode_varint};

use super::validate::{BatchLimits, Rejection, SampleRef, ValueRef, check_parts};

/// A decoded batch header and its samples, borrowed from the payload.
#[derive(Debug)]
pub struct BatchView<'a> {
    /// Every field but `samples`, which is empty.
    pub header: TelemetryBatch,
    samples: Vec<SampleRef<'a>>,
}

impl<'a> BatchView<'a> {
    /// Decodes `payload`; fails exactly where decoding a [`TelemetryBatch`]
    /// fails.
    pub fn decode(payload: &'a [u8]) -> Result<BatchView<'a>, String> {
        read_batch(payload).map_err(|e| format!("failed to decode TelemetryBatch: {e}"))
    }

    /// How many samples the batch holds.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The checks of [`super::check_batch`], with the same verdict.
    pub fn check(&self, topic_site: &str, limits: &BatchLimits) -> Result<(), Rejection> {
        check_parts(topic_site, &self.header, &self.samples, limits)
    }
}

type Read<T> = Result<T, String>;

fn err(error: prost::DecodeError) -> String {
    error.to_string()
}

/// The bytes of a length-delimited field, advancing `buf` past them.
fn delimited<'a>(buf: &mut &'a [u8]) -> Read<&'a [u8]> {
    let len = decode_varint(buf).map_err(err)?;
    if len > buf.len() as u64 {
        return Err("buffer underflow".into());
    }
    let (field, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(field)
}

fn text<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Read<&'a str> {
    check_wire_type(WireType::LengthDelimited, wire_type).map_err(err)?;
    std::str::from_utf8(delimited(buf)?)
        .map_err(|_| "invalid string value: data is not UTF-8 encoded".into())
}

fn varint(wire_type: WireType, buf: &mut &[u8]) -> Read<u64> {
    check_wire_type(WireType::Varint, wire_type).map_err(err)?;
    decode_varint(buf).map_err(err)
}

fn skip(wire_type: WireType, tag: u32, buf: &mut &[u8]) -> Read<()> {
    prost::encoding::skip_field(wire_type, tag, buf, DecodeContext::default()).map_err(err)
}

fn read_batch(payload: &[u8]) -> Read<BatchView<'_>> {
    let mut buf = payload;
    let mut header = TelemetryBatch::default();
    let mut samples = Vec::new();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        match tag {
            1 => header.site = text(wire_type, &mut buf)?.to_owned(),
            2 => header.node_id = text(wire_type, &mut buf)?.to_owned(),
            3 => header.seq = varint(wire_type, &mut buf)?,
            4 => {
                check_wire_type(WireType::LengthDelimited, wire_type).map_err(err)?;
                let sample = read_sample(delimited(&mut buf)?)
                    .map_err(|e| format!("TelemetryBatch.samples: Sample: {e}"))?;
                samples.push(sample);
            }
            5 => prost::encoding::message::merge_repeated(
                wire_type,
                &mut header.gaps,
                &mut buf,
                DecodeContext::default(),
            )
            .map_err(err)?,
            6 => header.created_unix_ns = varint(wire_type, &mut buf)? as i64,
            7 => header.acked_seq = varint(wire_type, &mut buf)?,
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(BatchView { header, samples })
}

fn read_sample(mut buf: &[u8]) -> Read<SampleRef<'_>> {
    let mut sample = SampleRef {
        device: "",
        attribute: "",
        ts_unix_ns: 0,
        value: ValueRef::Missing,
        unit: "",
    };
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        match tag {
            1 => sample.device = text(wire_type, &mut buf)?,
            2 => sample.attribute = text(wire_type, &mut buf)?,
            3 => sample.ts_unix_ns = varint(wire_type, &mut buf)? as i64,
            4 => {
                check_wire_type(WireType::SixtyFourBit, wire_type).map_err(err)?;
                skip(wire_type, tag, &mut buf)?;
                sample.value = ValueRef::Number;
            }
            5 | 6 => {
                varint(wire_type, &mut buf)?;
                sample.value = ValueRef::Number;
            }
            7 => sample.value = ValueRef::Text(text(wire_type, &mut buf)?.len()),
            8 => sample.unit = text(wire_type, &mut buf)?,
            9 => {
                varint(wire_type, &mut buf)?;
            }
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use obs_proto::v1::{Gap, Sample, sample};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::ingest::check_batch;

    fn batch(samples: usize) -> TelemetryBatch {
        TelemetryBatch {
            site: "nrt".into(),
            node_id: "node-1".into(),
            seq: 9,
            samples: (0..samples)
                .map(|i| Sample {
                    device: format!("m1/segment/{:02}", i % 18 + 1),
                    attribute: "piston".into(),
                    ts_unix_ns: 1_750_000_000_000_000_000 + i as i64,
                    value: Some(if i % 5 == 0 {
                        sample::Value::StringValue("OPEN".into())
                    } else {
                        sample::Value::DoubleValue(i as f64)
                    }),
                    unit: "nm".into(),
                    quality: 1,
                })
                .collect(),
            gaps: vec![Gap {
                first_seq: 2,
                last_seq: 3,
                samples: 40,
                detail: "spool full".into(),
                ..Default::default()
            }],
            created_unix_ns: 1_750_000_000_000_000_000,
            acked_seq: 1,
        }
    }

    /// Full decode + check_batch, as the embedded mode does it.
    fn full(
        payload: &[u8],
        limits: &BatchLimits,
    ) -> Result<(TelemetryBatch, usize, Result<(), Rejection>), ()> {
        let decoded = TelemetryBatch::decode(payload).map_err(|_| ())?;
        let verdict = check_batch("nrt", &decoded, limits);
        let count = decoded.samples.len();
        let header = TelemetryBatch {
            samples: Vec::new(),
            ..decoded
        };
        Ok((header, count, verdict))
    }

    fn viewed(
        payload: &[u8],
        limits: &BatchLimits,
    ) -> Result<(TelemetryBatch, usize, Result<(), Rejection>), ()> {
        let view = BatchView::decode(payload).map_err(|_| ())?;
        let verdict = view.check("nrt", limits);
        Ok((view.header.clone(), view.sample_count(), verdict))
    }

    #[test]
    fn a_good_batch_reads_the_same_both_ways() {
        let payload = batch(40).encode_to_vec();
        let limits = BatchLimits::default();
        let (header, count, verdict) = viewed(&payload, &limits).expect("decodes");
        assert_eq!(count, 40);
        assert_eq!(verdict, Ok(()));
        assert_eq!(Ok((header, count, verdict)), full(&payload, &limits));
    }

    #[test]
    fn bad_utf8_in_a_sample_is_a_decode_error_as_with_prost() {
        let mut payload = batch(3).encode_to_vec();
        let at = payload
            .windows(6)
            .position(|w| w == b"piston")
            .expect("attribute bytes");
        payload[at] = 0xff;
        assert!(TelemetryBatch::decode(payload.as_slice()).is_err());
        let error = BatchView::decode(&payload).unwrap_err();
        assert!(error.contains("UTF-8"), "{error}");
    }

    #[test]
    fn a_rule_broken_on_the_wire_gives_check_batchs_reason() {
        let mut bad = batch(5);
        bad.samples[3].device = "m1/segment".into();
        let payload = bad.encode_to_vec();
        let limits = BatchLimits::default();
        let (_, _, verdict) = viewed(&payload, &limits).expect("decodes");
        assert_eq!(verdict, check_batch("nrt", &bad, &limits));
        assert!(
            verdict
                .unwrap_err()
                .reason
                .starts_with("batch seq 9: sample 3 (m1/segment/piston)")
        );
    }

    /// One encoded field: `tag`, a wire type (right or wrong for the tag)
    /// and content that is sometimes a plausible value, sometimes not.
    fn field(tags: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = Vec<u8>> {
        let texts = prop_oneof![
            Just(b"nrt".to_vec()),
            Just(b"node-1".to_vec()),
            Just(b"m1/segment/07".to_vec()),
            Just(b"piston".to_vec()),
            Just(b"m1/seg".to_vec()),
            Just(b"OPEN".to_vec()),
            Just(vec![0xc3, 0x28]),
            prop::collection::vec(any::<u8>(), 0..5),
        ];
        (
            tags,
            prop_oneof![Just(0u8), Just(1), Just(2), Just(5)],
            any::<u64>(),
            texts,
        )
            .prop_map(|(tag, wire_type, number, text)| {
                let mut out = Vec::new();
                prost::encoding::encode_varint(
                    u64::from(tag << 3 | u32::from(wire_type)),
                    &mut out,
                );
                match wire_type {
                    0 => {
                        prost::encoding::encode_varint(number % 3_000_000_000_000_000_000, &mut out)
                    }
                    1 => out.extend_from_slice(&number.to_le_bytes()),
                    5 => out.extend_from_slice(&number.to_le_bytes()[..4]),
                    _ => {
                        prost::encoding::encode_varint(text.len() as u64, &mut out);
                        out.extend_from_slice(&text);
                    }
                }
                out
            })
    }

    /// A batch built field by field: a sound header, then samples made of
    /// any fields (repeated, unknown, of the wrong wire type, bad UTF-8)
    /// and other batch fields.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let sample = prop::collection::vec(field(1..=10), 0..8).prop_map(|fields| {
            let body = fields.concat();
            let mut out = vec![4 << 3 | 2];
            prost::encoding::encode_varint(body.len() as u64, &mut out);
            out.extend_from_slice(&body);
            out
        });
        let batch_field = prop_oneof![4 => sample, 1 => field(1..=8)];
        prop::collection::vec(batch_field, 0..6).prop_map(|fields| {
            let mut header = TelemetryBatch {
                site: "nrt".into(),
                node_id: "node-1".into(),
                seq: 9,
                ..Default::default()
            }
            .encode_to_vec();
            header.extend(fields.concat());
            header
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Flipped, dropped and inserted bytes: both readings agree on
        /// whether the payload decodes, on the header, the sample count and
        /// the verdict.
        #[test]
        fn mangled_payloads_read_the_same_both_ways(
            samples in 0usize..6,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
            max_samples in 1usize..8,
        ) {
            let mut payload = batch(samples).encode_to_vec();
            for (index, byte, kind) in edits {
                if payload.is_empty() {
                    break;
                }
                let at = index.index(payload.len());
                match kind {
                    0 => payload[at] = byte,
                    1 => { payload.remove(at); }
                    _ => payload.insert(at, byte),
                }
            }
            let limits = BatchLimits { max_samples, max_string_bytes: 3, ..Default::default() };
            prop_assert_eq!(viewed(&payload, &limits), full(&payload, &limits));
        }

        /// Batches assembled from arbitrary fields read the same both ways.
        #[test]
        fn field_soups_read_the_same_both_ways(payload in soup(), max_samples in 1usize..8) {
            let limits = BatchLimits { max_samples, max_string_bytes: 3, ..Default::default() };
            prop_assert_eq!(viewed(&payload, &limits), full(&payload, &limits));
        }
    }
}
