//! What the hub refuses to store, and why.

use obs_proto::v1::{RejectCode, Sample, TelemetryBatch, sample};
use serde::{Deserialize, Serialize};

/// Bounds on a batch; anything beyond them is rejected, never truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchLimits {
    /// Largest encoded batch, bytes.
    pub max_batch_bytes: usize,
    /// Most samples in one batch.
    pub max_samples: usize,
    /// Longest string value, bytes.
    pub max_string_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_batch_bytes: 4 * 1024 * 1024,
            max_samples: 100_000,
            max_string_bytes: 4096,
        }
    }
}

/// Why a batch will never be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    fn new(code: RejectCode, reason: String) -> Self {
        Rejection { code, reason }
    }
}

/// Earliest and latest sample times accepted (2000-01-01 .. 2100-01-01).
const MIN_TS_NS: i64 = 946_684_800_000_000_000;
const MAX_TS_NS: i64 = 4_102_444_800_000_000_000;

/// A sample as the rules see it: borrowed from a decoded [`Sample`] or from
/// the wire ([`super::view`]). The rules are on bytes (names are ASCII);
/// the texts are valid UTF-8 in both cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRef<'a> {
    pub device: &'a [u8],
    pub attribute: &'a [u8],
    pub ts_unix_ns: i64,
    pub value: ValueRef,
    pub unit: &'a [u8],
}

/// What the rules need of a sample's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef {
    Missing,
    /// A string value of this many bytes.
    Text(usize),
    Number,
}

impl SampleRef<'_> {
    /// A sample with no field set (what an empty encoding decodes to).
    pub const EMPTY: SampleRef<'static> = SampleRef {
        device: b"",
        attribute: b"",
        ts_unix_ns: 0,
        value: ValueRef::Missing,
        unit: b"",
    };
}

impl<'a> From<&'a Sample> for SampleRef<'a> {
    fn from(sample: &'a Sample) -> Self {
        SampleRef {
            device: sample.device.as_bytes(),
            attribute: sample.attribute.as_bytes(),
            ts_unix_ns: sample.ts_unix_ns,
            value: match &sample.value {
                None => ValueRef::Missing,
                Some(sample::Value::StringValue(text)) => ValueRef::Text(text.len()),
                Some(_) => ValueRef::Number,
            },
            unit: sample.unit.as_bytes(),
        }
    }
}

/// Checks a decoded batch that arrived on `topic_site`'s topic.
pub fn check_batch(
    topic_site: &str,
    batch: &TelemetryBatch,
    limits: &BatchLimits,
) -> Result<(), Rejection> {
    let bad = first_bad_sample(batch.samples.iter().map(SampleRef::from), limits);
    check_parts(topic_site, batch, batch.samples.len(), bad.as_ref(), limits)
}

/// The first sample of a batch that breaks a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct BadSample<'a> {
    /// Its place in the batch, from 0.
    pub index: usize,
    pub sample: SampleRef<'a>,
    pub reason: String,
}

impl<'a> BadSample<'a> {
    /// `sample`, the `index`th of its batch, if it breaks a rule.
    #[inline]
    pub fn of(index: usize, sample: SampleRef<'a>, limits: &BatchLimits) -> Option<Self> {
        check_sample(&sample, limits).err().map(|reason| BadSample {
            index,
            sample,
            reason,
        })
    }
}

/// The first of `samples` that breaks a rule.
pub fn first_bad_sample<'a>(
    samples: impl IntoIterator<Item = SampleRef<'a>>,
    limits: &BatchLimits,
) -> Option<BadSample<'a>> {
    (0..)
        .zip(samples)
        .find_map(|(index, sample)| BadSample::of(index, sample, limits))
}

/// [`check_batch`] for a batch whose samples were read apart from it
/// (`header.samples` is not looked at): `sample_count` of them, `bad` the
/// first that breaks a rule.
pub fn check_parts(
    topic_site: &str,
    header: &TelemetryBatch,
    sample_count: usize,
    bad: Option<&BadSample<'_>>,
    limits: &BatchLimits,
) -> Result<(), Rejection> {
    let batch = header;
    if batch.site != topic_site {
        return Err(Rejection::new(
            RejectCode::WrongSite,
            format!(
                "batch seq {} names site {:?} but came on the topic of site {topic_site:?}",
                batch.seq, batch.site
            ),
        ));
    }
    if batch.seq == 0 {
        return Err(invalid(batch, "seq must be at least 1".into()));
    }
    if !is_name(batch.node_id.as_bytes(), 64, is_id_byte) {
        return Err(invalid(
            batch,
            format!(
                "node_id {:?} must be 1-64 characters of A-Z a-z 0-9 - _ .",
                batch.node_id
            ),
        ));
    }
    if sample_count > limits.max_samples {
        return Err(Rejection::new(
            RejectCode::Oversized,
            format!(
                "batch seq {} holds {sample_count} samples, more than the limit {}",
                batch.seq, limits.max_samples
            ),
        ));
    }
    if let Some(bad) = bad {
        return Err(invalid(
            batch,
            format!(
                "sample {} ({}/{}): {}",
                bad.index,
                String::from_utf8_lossy(bad.sample.device),
                String::from_utf8_lossy(bad.sample.attribute),
                bad.reason
            ),
        ));
    }
    for gap in &batch.gaps {
        if gap.first_seq == 0 || gap.first_seq > gap.last_seq || gap.last_seq >= batch.seq {
            return Err(invalid(
                batch,
                format!(
                    "gap {}..={} is not a range below the batch's seq",
                    gap.first_seq, gap.last_seq
                ),
            ));
        }
    }
    Ok(())
}

fn invalid(batch: &TelemetryBatch, reason: String) -> Rejection {
    Rejection::new(
        RejectCode::InvalidSample,
        format!("batch seq {}: {reason}", batch.seq),
    )
}

/// 1..=`max` bytes, each `allowed` (ASCII only: a byte of a multi-byte
/// character never is).
fn is_name(text: &[u8], max: usize, allowed: fn(u8) -> bool) -> bool {
    !text.is_empty() && text.len() <= max && text.iter().all(|&b| allowed(b))
}

/// A-Z a-z 0-9 - _ .
fn is_id_byte(b: u8) -> bool {
    ID_BYTES[usize::from(b)]
}

/// A-Z a-z 0-9 _
fn is_attribute_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// [`is_id_byte`] as a table: the bridge asks it for every byte of every
/// device name.
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
        b += 1;
    }
    table
};

/// domain/family/member, each 1-64 bytes of A-Z a-z 0-9 - _ . (one pass:
/// the bridge runs it on every sample).
fn is_device(device: &[u8]) -> bool {
    let (mut slashes, mut part) = (0, 0);
    for &b in device {
        if b == b'/' {
            if part == 0 || slashes == 2 {
                return false;
            }
            slashes += 1;
            part = 0;
        } else if is_id_byte(b) && part < 64 {
            part += 1;
        } else {
            return false;
        }
    }
    slashes == 2 && part > 0
}

#[inline]
fn check_sample(sample: &SampleRef<'_>, limits: &BatchLimits) -> Result<(), String> {
    if !is_device(sample.device) {
        return Err("device must be domain/family/member (A-Z a-z 0-9 - _ .)".into());
    }
    if !is_name(sample.attribute, 64, is_attribute_byte) {
        return Err("attribute must be 1-64 characters of A-Z a-z 0-9 _".into());
    }
    if !(MIN_TS_NS..MAX_TS_NS).contains(&sample.ts_unix_ns) {
        return Err(format!(
            "time {} ns is outside 2000..2100",
            sample.ts_unix_ns
        ));
    }
    match sample.value {
        ValueRef::Missing => return Err("no value".into()),
        ValueRef::Text(len) if len > limits.max_string_bytes => {
            return Err(format!(
                "string value of {len} bytes exceeds {}",
                limits.max_string_bytes
            ));
        }
        ValueRef::Text(_) | ValueRef::Number => {}
    }
    if sample.unit.len() > 32 {
        return Err("unit longer than 32 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> TelemetryBatch {
        TelemetryBatch {
            site: "nrt".into(),
            node_id: "node-1".into(),
            seq: 5,
            samples: vec![Sample {
                device: "m1/segment/07".into(),
                attribute: "piston".into(),
                ts_unix_ns: 1_750_000_000_000_000_000,
                value: Some(sample::Value::DoubleValue(1.0)),
                unit: "nm".into(),
                quality: 1,
            }],
            ..Default::default()
        }
    }

    fn rejection(batch: &TelemetryBatch) -> Rejection {
        check_batch("nrt", batch, &BatchLimits::default()).unwrap_err()
    }

    #[test]
    fn a_good_batch_passes() {
        assert_eq!(check_batch("nrt", &good(), &BatchLimits::default()), Ok(()));
    }

    #[test]
    fn a_device_is_exactly_three_named_parts() {
        for good in ["m1/segment/07", "dome/shutter/1", "a.b/c-d/e_f"] {
            assert!(is_device(good.as_bytes()), "{good}");
        }
        for bad in [
            "m1/segment",
            "m1/segment/07/x",
            "m1//07",
            "/segment/07",
            "m1/segment/",
            "m1/seg ment/07",
            "m1/segmént/07",
            "",
        ] {
            assert!(!is_device(bad.as_bytes()), "{bad}");
        }
    }

    proptest::proptest! {
        /// The one-pass `is_device` says what splitting on '/' says.
        #[test]
        fn is_device_agrees_with_the_split_definition(
            device in "[a-c/.é -]{0,8}|[a-z0-9/]{60,140}"
        ) {
            let mut parts = device.split('/');
            let three = [parts.next(), parts.next(), parts.next()];
            let split = parts.next().is_none()
                && three
                    .iter()
                    .all(|p| p.is_some_and(|p| is_name(p.as_bytes(), 64, is_id_byte)));
            proptest::prop_assert_eq!(is_device(device.as_bytes()), split);
        }
    }

    #[test]
    fn each_rule_names_the_problem() {
        let mut wrong_site = good();
        wrong_site.site = "lsst".into();
        let r = rejection(&wrong_site);
        assert_eq!(r.code, RejectCode::WrongSite);
        assert!(
            r.reason.contains("\"lsst\"") && r.reason.contains("\"nrt\""),
            "{}",
            r.reason
        );

        let mut bad_device = good();
        bad_device.samples[0].device = "m1/segment".into();
        let r = rejection(&bad_device);
        assert_eq!(r.code, RejectCode::InvalidSample);
        assert!(
            r.reason
                .starts_with("batch seq 5: sample 0 (m1/segment/piston): device"),
            "{}",
            r.reason
        );

        let mut old = good();
        old.samples[0].ts_unix_ns = 0;
        assert!(rejection(&old).reason.contains("outside 2000..2100"));

        let mut empty = good();
        empty.samples[0].value = None;
        assert!(rejection(&empty).reason.contains("no value"));

        let mut node = good();
        node.node_id = String::new();
        assert!(rejection(&node).reason.contains("node_id"));

        let mut too_many = good();
        too_many.samples = vec![good().samples[0].clone(); 3];
        let limits = BatchLimits {
            max_samples: 2,
            ..Default::default()
        };
        let r = check_batch("nrt", &too_many, &limits).unwrap_err();
        assert_eq!(r.code, RejectCode::Oversized);

        let mut gap = good();
        gap.gaps = vec![obs_proto::v1::Gap {
            first_seq: 3,
            last_seq: 9,
            ..Default::default()
        }];
        assert!(rejection(&gap).reason.contains("gap 3..=9"));
    }
}
