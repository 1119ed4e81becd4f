//! A telemetry batch read for checking, without building its samples.
//!
//! The Kafka bridge forwards the payload as it came and only needs the
//! batch's identity and a verdict on every sample. Decoding a full
//! [`TelemetryBatch`] allocates three strings per sample, the larger part of
//! the bridge's time; [`BatchView::read`] reads the same wire format with
//! prost's field primitives in one pass, checking each sample as it goes and
//! keeping only the first that breaks a rule. It accepts and refuses
//! exactly what `TelemetryBatch::decode` does (UTF-8 included) and its
//! verdict is that of [`check_batch`]; `tests` below compare both readings
//! on mangled payloads.
//!
//! [`check_batch`]: super::check_batch

use obs_proto::v1::TelemetryBatch;
use prost::encoding::{DecodeContext, WireType, check_wire_type, decode_key, decode_varint};

use super::validate::{BadSample, BatchLimits, Rejection, SampleRef, ValueRef, check_parts};

/// A decoded batch header, how many samples it holds and the first of them
/// that breaks a rule (borrowed from the payload).
#[derive(Debug)]
pub struct BatchView<'a> {
    /// Every field but `samples`, which is empty.
    pub header: TelemetryBatch,
    samples: usize,
    bad: Option<BadSample<'a>>,
    limits: BatchLimits,
}

impl<'a> BatchView<'a> {
    /// Decodes `payload`, checking its samples against `limits`; fails
    /// exactly where decoding a [`TelemetryBatch`] fails.
    pub fn read(payload: &'a [u8], limits: &BatchLimits) -> Result<BatchView<'a>, String> {
        read_batch(payload, limits).map_err(|e| format!("failed to decode TelemetryBatch: {e}"))
    }

    /// How many samples the batch holds.
    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// The checks of [`super::check_batch`], with the same verdict.
    pub fn check(&self, topic_site: &str) -> Result<(), Rejection> {
        check_parts(
            topic_site,
            &self.header,
            self.samples,
            self.bad.as_ref(),
            &self.limits,
        )
    }
}

type Read<T> = Result<T, String>;

fn err(error: prost::DecodeError) -> String {
    error.to_string()
}

/// The part of a payload not read yet. Keys, lengths and varints of one
/// byte (nearly all of a sample's) are read inline; longer ones by prost.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Steps over the one-byte key `key` if it comes next.
    #[inline(always)]
    fn next_key(&mut self, key: u8) -> bool {
        match self.buf.split_first() {
            Some((&byte, rest)) if byte == key => {
                self.buf = rest;
                true
            }
            _ => false,
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Read<u64> {
        match self.buf.split_first() {
            Some((&byte, rest)) if byte < 0x80 => {
                self.buf = rest;
                Ok(u64::from(byte))
            }
            _ => decode_varint(&mut self.buf).map_err(err),
        }
    }

    /// A field key, refused where prost's `decode_key` refuses it.
    #[inline(always)]
    fn key(&mut self) -> Read<(u32, WireType)> {
        match self.buf.split_first() {
            Some((&byte, rest)) if byte < 0x80 && byte >> 3 != 0 && byte & 7 <= 5 => {
                self.buf = rest;
                let wire_type = WireType::try_from(u64::from(byte & 7)).map_err(err)?;
                Ok((u32::from(byte >> 3), wire_type))
            }
            _ => decode_key(&mut self.buf).map_err(err),
        }
    }

    /// The bytes of a length-delimited field.
    #[inline(always)]
    fn delimited(&mut self, wire_type: WireType) -> Read<&'a [u8]> {
        check_wire_type(WireType::LengthDelimited, wire_type).map_err(err)?;
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err("buffer underflow".into());
        }
        let (field, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(field)
    }

    /// A string field's bytes, refused unless UTF-8 as prost refuses them.
    #[inline(always)]
    fn text(&mut self, wire_type: WireType) -> Read<&'a [u8]> {
        let bytes = self.delimited(wire_type)?;
        if std::str::from_utf8(bytes).is_ok() {
            Ok(bytes)
        } else {
            Err("invalid string value: data is not UTF-8 encoded".into())
        }
    }

    fn string(&mut self, wire_type: WireType) -> Read<String> {
        let bytes = self.delimited(wire_type)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| "invalid string value: data is not UTF-8 encoded".into())
    }

    #[inline(always)]
    fn number(&mut self, wire_type: WireType) -> Read<u64> {
        check_wire_type(WireType::Varint, wire_type).map_err(err)?;
        self.varint()
    }

    fn skip(&mut self, wire_type: WireType, tag: u32) -> Read<()> {
        prost::encoding::skip_field(wire_type, tag, &mut self.buf, DecodeContext::default())
            .map_err(err)
    }
}

fn read_batch<'a>(payload: &'a [u8], limits: &BatchLimits) -> Read<BatchView<'a>> {
    let mut cursor = Cursor { buf: payload };
    let mut header = TelemetryBatch::default();
    let (mut samples, mut bad) = (0, None);
    while !cursor.is_empty() {
        let (tag, wire_type) = cursor.key()?;
        match tag {
            1 => header.site = cursor.string(wire_type)?,
            2 => header.node_id = cursor.string(wire_type)?,
            3 => header.seq = cursor.number(wire_type)?,
            4 => {
                let sample = read_sample(cursor.delimited(wire_type)?)
                    .map_err(|e| format!("TelemetryBatch.samples: Sample: {e}"))?;
                if bad.is_none() {
                    bad = BadSample::of(samples, sample, limits);
                }
                samples += 1;
            }
            5 => prost::encoding::message::merge_repeated(
                wire_type,
                &mut header.gaps,
                &mut cursor.buf,
                DecodeContext::default(),
            )
            .map_err(err)?,
            6 => header.created_unix_ns = cursor.number(wire_type)? as i64,
            7 => header.acked_seq = cursor.number(wire_type)?,
            _ => cursor.skip(wire_type, tag)?,
        }
    }
    Ok(BatchView {
        header,
        samples,
        bad,
        limits: *limits,
    })
}

#[inline(always)]
fn read_sample(buf: &[u8]) -> Read<SampleRef<'_>> {
    match read_in_order(buf) {
        Some(sample) => Ok(sample),
        None => read_any_order(buf),
    }
}

/// A sample whose fields come in the order of their numbers, as prost and
/// every other encoder write them: one straight pass. `None` for anything
/// else (other order, repeated or unknown fields, errors), which
/// [`read_any_order`] then reads as prost would.
#[inline(always)]
fn read_in_order(buf: &[u8]) -> Option<SampleRef<'_>> {
    let mut cursor = Cursor { buf };
    let mut sample = SampleRef::EMPTY;
    // Key bytes: field number << 3 | wire type.
    if cursor.next_key(0x0a) {
        sample.device = cursor.text(WireType::LengthDelimited).ok()?;
    }
    if cursor.next_key(0x12) {
        sample.attribute = cursor.text(WireType::LengthDelimited).ok()?;
    }
    if cursor.next_key(0x18) {
        sample.ts_unix_ns = cursor.varint().ok()? as i64;
    }
    if cursor.next_key(0x21) {
        cursor.buf = cursor.buf.get(8..)?;
        sample.value = ValueRef::Number;
    } else if cursor.next_key(0x28) || cursor.next_key(0x30) {
        cursor.varint().ok()?;
        sample.value = ValueRef::Number;
    } else if cursor.next_key(0x3a) {
        sample.value = ValueRef::Text(cursor.text(WireType::LengthDelimited).ok()?.len());
    }
    if cursor.next_key(0x42) {
        sample.unit = cursor.text(WireType::LengthDelimited).ok()?;
    }
    if cursor.next_key(0x48) {
        cursor.varint().ok()?;
    }
    cursor.is_empty().then_some(sample)
}

fn read_any_order(buf: &[u8]) -> Read<SampleRef<'_>> {
    let mut cursor = Cursor { buf };
    let mut sample = SampleRef::EMPTY;
    while !cursor.is_empty() {
        let (tag, wire_type) = cursor.key()?;
        match tag {
            1 => sample.device = cursor.text(wire_type)?,
            2 => sample.attribute = cursor.text(wire_type)?,
            3 => sample.ts_unix_ns = cursor.number(wire_type)? as i64,
            4 => {
                check_wire_type(WireType::SixtyFourBit, wire_type).map_err(err)?;
                cursor.skip(wire_type, tag)?;
                sample.value = ValueRef::Number;
            }
            5 | 6 => {
                cursor.number(wire_type)?;
                sample.value = ValueRef::Number;
            }
            7 => sample.value = ValueRef::Text(cursor.text(wire_type)?.len()),
            8 => sample.unit = cursor.text(wire_type)?,
            9 => {
                cursor.number(wire_type)?;
            }
            _ => cursor.skip(wire_type, tag)?,
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
        let view = BatchView::read(payload, limits).map_err(|_| ())?;
        let verdict = view.check("nrt");
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
        let error = BatchView::read(&payload, &BatchLimits::default()).unwrap_err();
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
