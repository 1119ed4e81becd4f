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

/// Checks a decoded batch that arrived on `topic_site`'s topic.
pub fn check_batch(
    topic_site: &str,
    batch: &TelemetryBatch,
    limits: &BatchLimits,
) -> Result<(), Rejection> {
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
    if !is_name(&batch.node_id, 64, |c| {
        c.is_ascii_alphanumeric() || "-_.".contains(c)
    }) {
        return Err(invalid(
            batch,
            format!(
                "node_id {:?} must be 1-64 characters of A-Z a-z 0-9 - _ .",
                batch.node_id
            ),
        ));
    }
    if batch.samples.len() > limits.max_samples {
        return Err(Rejection::new(
            RejectCode::Oversized,
            format!(
                "batch seq {} holds {} samples, more than the limit {}",
                batch.seq,
                batch.samples.len(),
                limits.max_samples
            ),
        ));
    }
    for (index, sample) in batch.samples.iter().enumerate() {
        check_sample(sample, limits).map_err(|reason| {
            invalid(
                batch,
                format!(
                    "sample {index} ({}/{}): {reason}",
                    sample.device, sample.attribute
                ),
            )
        })?;
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

fn is_name(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    !text.is_empty() && text.len() <= max && text.chars().all(allowed)
}

fn is_device_part(part: &str) -> bool {
    is_name(part, 64, |c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn check_sample(sample: &Sample, limits: &BatchLimits) -> Result<(), String> {
    let parts: Vec<&str> = sample.device.split('/').collect();
    if parts.len() != 3 || !parts.iter().all(|p| is_device_part(p)) {
        return Err("device must be domain/family/member (A-Z a-z 0-9 - _ .)".into());
    }
    if !is_name(&sample.attribute, 64, |c| {
        c.is_ascii_alphanumeric() || c == '_'
    }) {
        return Err("attribute must be 1-64 characters of A-Z a-z 0-9 _".into());
    }
    if !(MIN_TS_NS..MAX_TS_NS).contains(&sample.ts_unix_ns) {
        return Err(format!(
            "time {} ns is outside 2000..2100",
            sample.ts_unix_ns
        ));
    }
    match &sample.value {
        None => return Err("no value".into()),
        Some(sample::Value::StringValue(text)) if text.len() > limits.max_string_bytes => {
            return Err(format!(
                "string value of {} bytes exceeds {}",
                text.len(),
                limits.max_string_bytes
            ));
        }
        Some(_) => {}
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
