//! Tango companion messages: topic `{domain}/{family}/{member}/telemetry/{attribute}`,
//! payload `{"timestamp": "2024-08-15 10:57:57.192446", "value": 94.7, "units": "m/seg"}`.
//!
//! The timestamp may be naive (taken as UTC), RFC 3339, or a number of Unix
//! seconds. A number becomes `double_value`, a boolean `bool_value`, a
//! string `string_value`. An optional `quality` (`VALID`, `ATTR_ALARM`, ...)
//! sets the sample quality; it is VALID otherwise.

use obs_proto::v1::{Quality, Sample, sample::Value};
use serde_json::Value as Json;

use crate::timefmt::{parse_naive_utc_ns, parse_rfc3339_ns};

/// Why a message was refused; each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Malformed {
    /// The topic is not `{domain}/{family}/{member}/telemetry/{attribute}`.
    BadTopic,
    /// The payload is not a JSON object.
    BadJson,
    /// No `value`, or `value` is null.
    MissingValue,
    /// `value` is an array or an object.
    BadValue,
    /// `timestamp` missing or not a date-time.
    BadTimestamp,
}

impl Malformed {
    /// Every reason, for counters.
    pub const ALL: [Malformed; 5] = [
        Malformed::BadTopic,
        Malformed::BadJson,
        Malformed::MissingValue,
        Malformed::BadValue,
        Malformed::BadTimestamp,
    ];

    /// Short name, used as a counter key.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::BadTopic => "bad_topic",
            Malformed::BadJson => "bad_json",
            Malformed::MissingValue => "missing_value",
            Malformed::BadValue => "bad_value",
            Malformed::BadTimestamp => "bad_timestamp",
        }
    }
}

/// A refused message and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Malformed,
    pub detail: String,
}

fn refuse(reason: Malformed, detail: impl Into<String>) -> Refused {
    Refused {
        reason,
        detail: detail.into(),
    }
}

/// Accepted sample times, as the hub's: 2000-01-01 to 2100-01-01.
const TS_RANGE_NS: std::ops::RangeInclusive<i64> =
    946_684_800_000_000_000..=4_102_444_799_999_999_999;
/// Longest string value and unit the hub takes.
const MAX_STRING_BYTES: usize = 4096;
const MAX_UNIT_BYTES: usize = 32;

/// `(device, attribute)` of a telemetry topic.
pub fn parse_topic(topic: &str) -> Result<(String, String), Refused> {
    let parts: Vec<&str> = topic.split('/').collect();
    let shape = parts.len() == 5 && parts[3] == "telemetry";
    if !shape {
        return Err(refuse(
            Malformed::BadTopic,
            "expected {domain}/{family}/{member}/telemetry/{attribute}",
        ));
    }
    // The hub's rules (cloud-hub ingest/validate.rs): one sample it refuses
    // would get the whole batch rejected, so refuse it here.
    let name = |p: &str, extra: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if !parts[..3].iter().all(|p| name(p, "-_.")) {
        return Err(refuse(
            Malformed::BadTopic,
            "device parts must be 1-64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    if !name(parts[4], "_") {
        return Err(refuse(
            Malformed::BadTopic,
            "attribute must be 1-64 characters of A-Z a-z 0-9 _",
        ));
    }
    Ok((
        format!("{}/{}/{}", parts[0], parts[1], parts[2]).to_ascii_lowercase(),
        parts[4].to_owned(),
    ))
}

/// The sample of one message.
pub fn parse_message(topic: &str, payload: &[u8]) -> Result<Sample, Refused> {
    let (device, attribute) = parse_topic(topic)?;
    let json: Json = serde_json::from_slice(payload)
        .map_err(|e| refuse(Malformed::BadJson, format!("not JSON: {e}")))?;
    let Json::Object(object) = json else {
        return Err(refuse(Malformed::BadJson, "not a JSON object"));
    };
    let value = match object.get("value") {
        None | Some(Json::Null) => return Err(refuse(Malformed::MissingValue, "no value")),
        Some(Json::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Value::DoubleValue(v),
            _ => {
                return Err(refuse(
                    Malformed::BadValue,
                    format!("number {n} out of range"),
                ));
            }
        },
        Some(Json::Bool(b)) => Value::BoolValue(*b),
        Some(Json::String(s)) if s.len() > MAX_STRING_BYTES => {
            return Err(refuse(
                Malformed::BadValue,
                format!("string of {} bytes exceeds {MAX_STRING_BYTES}", s.len()),
            ));
        }
        Some(Json::String(s)) => Value::StringValue(s.clone()),
        Some(other) => {
            return Err(refuse(
                Malformed::BadValue,
                format!("value must be a number, boolean or string, got {other}"),
            ));
        }
    };
    let ts_unix_ns = parse_timestamp(object.get("timestamp"))?;
    let unit = match object.get("units").or_else(|| object.get("unit")) {
        Some(Json::String(u)) if u.len() > MAX_UNIT_BYTES => {
            return Err(refuse(
                Malformed::BadValue,
                format!("units longer than {MAX_UNIT_BYTES} bytes"),
            ));
        }
        Some(Json::String(u)) => u.clone(),
        _ => String::new(),
    };
    let quality = match object.get("quality") {
        Some(Json::String(q)) => parse_quality(q),
        _ => Quality::Valid,
    };
    Ok(Sample {
        device,
        attribute,
        ts_unix_ns,
        value: Some(value),
        unit,
        quality: quality as i32,
    })
}

fn parse_timestamp(value: Option<&Json>) -> Result<i64, Refused> {
    let bad = |detail: String| refuse(Malformed::BadTimestamp, detail);
    let ns = match value {
        None | Some(Json::Null) => return Err(bad("no timestamp".into())),
        Some(Json::Number(n)) => {
            let seconds = n
                .as_f64()
                .filter(|s| s.is_finite())
                .ok_or_else(|| bad(format!("{n} is not a number of seconds")))?;
            let ns = seconds * 1e9;
            if !(ns >= *TS_RANGE_NS.start() as f64 && ns <= *TS_RANGE_NS.end() as f64) {
                return Err(bad(format!("{n} s is out of range")));
            }
            ns.round() as i64
        }
        Some(Json::String(text)) => parse_naive_utc_ns(text)
            .or_else(|_| parse_rfc3339_ns(text))
            .map_err(|_| {
                bad(format!(
                    "{text:?} is neither \"YYYY-MM-DD HH:MM:SS[.ffffff]\" nor RFC 3339"
                ))
            })?,
        Some(other) => return Err(bad(format!("{other} is not a date-time"))),
    };
    if !TS_RANGE_NS.contains(&ns) {
        return Err(bad("outside 2000..2100".into()));
    }
    Ok(ns)
}

fn parse_quality(text: &str) -> Quality {
    let upper = text.trim().to_ascii_uppercase();
    match upper.strip_prefix("ATTR_").unwrap_or(&upper) {
        "INVALID" => Quality::Invalid,
        "ALARM" => Quality::Alarm,
        "CHANGING" => Quality::Changing,
        "WARNING" => Quality::Warning,
        _ => Quality::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "WS/Station/1/telemetry/wind_speed";

    #[test]
    fn the_companion_format_becomes_a_sample() {
        let sample = parse_message(
            TOPIC,
            br#"{"timestamp": "2024-08-15 10:57:57.192446", "value": 94.7, "units": "m/seg"}"#,
        )
        .unwrap();
        assert_eq!(sample.device, "ws/station/1");
        assert_eq!(sample.attribute, "wind_speed");
        assert_eq!(sample.ts_unix_ns, 1_723_719_477_192_446_000);
        assert_eq!(sample.value, Some(Value::DoubleValue(94.7)));
        assert_eq!(sample.unit, "m/seg");
        assert_eq!(sample.quality, Quality::Valid as i32);

        let rfc = parse_message(
            TOPIC,
            br#"{"timestamp": "2024-08-15T10:57:57Z", "value": true}"#,
        )
        .unwrap();
        assert_eq!(rfc.ts_unix_ns, 1_723_719_477_000_000_000);
        assert_eq!(rfc.value, Some(Value::BoolValue(true)));
        let num = parse_message(
            TOPIC,
            br#"{"timestamp": 1723719477.5, "value": "OPEN", "quality": "ATTR_ALARM"}"#,
        )
        .unwrap();
        assert_eq!(num.ts_unix_ns, 1_723_719_477_500_000_000);
        assert_eq!(num.value, Some(Value::StringValue("OPEN".into())));
        assert_eq!(num.quality, Quality::Alarm as i32);
    }

    #[test]
    fn malformed_messages_name_their_reason() {
        let cases: [(&str, &[u8], Malformed); 11] = [
            (
                "ws/station/1/telemetry/wind speed",
                br#"{"timestamp": 1e9, "value": 1}"#,
                Malformed::BadTopic,
            ),
            (
                TOPIC,
                br#"{"timestamp": 12, "value": 1}"#,
                Malformed::BadTimestamp,
            ),
            (
                "ws/station/1/wind_speed",
                br#"{"timestamp": 1e9, "value": 1}"#,
                Malformed::BadTopic,
            ),
            (
                "ws/station/1/status/wind",
                br#"{"timestamp": 1e9, "value": 1}"#,
                Malformed::BadTopic,
            ),
            (
                "ws//1/telemetry/wind",
                br#"{"timestamp": 1e9, "value": 1}"#,
                Malformed::BadTopic,
            ),
            (TOPIC, b"not json", Malformed::BadJson),
            (TOPIC, b"[1, 2]", Malformed::BadJson),
            (TOPIC, br#"{"timestamp": 1e9}"#, Malformed::MissingValue),
            (
                TOPIC,
                br#"{"timestamp": 1e9, "value": [1]}"#,
                Malformed::BadValue,
            ),
            (
                TOPIC,
                br#"{"timestamp": "yesterday", "value": 1}"#,
                Malformed::BadTimestamp,
            ),
            (TOPIC, br#"{"value": 1}"#, Malformed::BadTimestamp),
        ];
        for (topic, payload, reason) in cases {
            let refused = parse_message(topic, payload).unwrap_err();
            assert_eq!(
                refused.reason,
                reason,
                "{topic} {:?}",
                String::from_utf8_lossy(payload)
            );
            assert!(!refused.detail.is_empty());
        }
    }
}
