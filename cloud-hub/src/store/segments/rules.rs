//! The rules of segment records and installations as pure functions, so
//! both stores decide exactly alike.

use obs_manufacturing::SegmentRecord;

use super::{InstallRequest, Installation, PutOutcome, StoredSegment};

/// Longest value quoted in a [`FieldChange`], in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// One field that differs between the stored and an uploaded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// File-format field name, e.g. `surface_figure_error_nm_rms`.
    pub field: String,
    pub stored: String,
    pub uploaded: String,
}

/// The outcome of putting `new` over `current`.
pub fn decide_put(
    current: Option<&StoredSegment>,
    new: &SegmentRecord,
    replace: bool,
) -> PutOutcome {
    match current {
        None => PutOutcome::Stored { version: 1 },
        Some(c) if c.record == *new => PutOutcome::Unchanged { version: c.version },
        Some(c) if replace => PutOutcome::Stored {
            version: c.version + 1,
        },
        Some(c) => PutOutcome::Conflict {
            version: c.version,
            changes: changed_fields(&c.record, new),
        },
    }
}

fn quoted(value: Option<&serde_json::Value>) -> String {
    let mut text = match value {
        None => "(absent)".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if let Some((cut, _)) = text.char_indices().nth(MAX_QUOTED_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn as_object(record: &SegmentRecord) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = obs_manufacturing::record_to_json(record).ok()?;
    match serde_json::from_str(&text).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The fields (file-format names) in which `new` differs from `old`.
pub fn changed_fields(old: &SegmentRecord, new: &SegmentRecord) -> Vec<FieldChange> {
    let (Some(a), Some(b)) = (as_object(old), as_object(new)) else {
        // Not representable in the file format (never for validated
        // records): name the record as a whole.
        return vec![FieldChange {
            field: "record".into(),
            stored: "(stored record)".into(),
            uploaded: "(a different record)".into(),
        }];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            field: k.clone(),
            stored: quoted(a.get(k)),
            uploaded: quoted(b.get(k)),
        })
        .collect()
}

/// What recording an installation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallPlan {
    /// The segment is already installed there: nothing to write.
    Existing(Installation),
    /// Write `installation` and the closed installations (with their
    /// `removed_at` set to the new installation's time).
    New {
        installation: Installation,
        close: Vec<Installation>,
    },
}

/// Why an installation was refused: installations of a position and of a
/// serial are recorded in time order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallRefusal {
    /// The position has an installation that starts or ends after the
    /// requested time.
    #[error(
        "site {} position {} has a later installation: {} from {}{}; record installations in time order",
        existing.site, existing.position, existing.serial,
        fmt_time(existing.installed_at_unix_ns), until(existing)
    )]
    PositionHasLaterInstallation { existing: Installation },
    /// The serial has an installation that starts or ends after the
    /// requested time.
    #[error(
        "segment {} has a later installation: site {} position {} from {}{}; record installations in time order",
        existing.serial, existing.site, existing.position,
        fmt_time(existing.installed_at_unix_ns), until(existing)
    )]
    SerialHasLaterInstallation { existing: Installation },
}

/// A Unix-ns time as RFC 3339 text, for messages.
pub fn fmt_time(unix_ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix_ns} ns"))
}

fn until(i: &Installation) -> String {
    i.removed_at_unix_ns
        .map(|r| format!(" to {}", fmt_time(r)))
        .unwrap_or_default()
}

/// The plan for `request`, given the latest installation at its position
/// (`occupant`) and the latest installation of its serial.
///
/// - The serial is already installed at that position: nothing changes.
/// - An installation of the position or of the serial that starts at or
///   after the requested time, or ends after it, refuses the request.
/// - Otherwise the open installation of the position (another segment) and
///   the open installation of the serial (elsewhere: the segment was moved)
///   are closed at the requested time, and the new one starts.
pub fn plan_installation(
    request: &InstallRequest,
    occupant: Option<&Installation>,
    serial_latest: Option<&Installation>,
) -> Result<InstallPlan, InstallRefusal> {
    if let Some(current) = serial_latest.filter(|i| {
        i.removed_at_unix_ns.is_none() && i.site == request.site && i.position == request.position
    }) {
        return Ok(InstallPlan::Existing(current.clone()));
    }
    let at = request.at_unix_ns;
    let later = |i: &Installation| {
        i.installed_at_unix_ns >= at || i.removed_at_unix_ns.is_some_and(|removed| removed > at)
    };
    let mut close = Vec::new();
    if let Some(o) = occupant {
        if later(o) {
            return Err(InstallRefusal::PositionHasLaterInstallation {
                existing: o.clone(),
            });
        }
        if o.removed_at_unix_ns.is_none() {
            close.push(Installation {
                removed_at_unix_ns: Some(at),
                ..o.clone()
            });
        }
    }
    if let Some(s) = serial_latest {
        if later(s) {
            return Err(InstallRefusal::SerialHasLaterInstallation {
                existing: s.clone(),
            });
        }
        if s.removed_at_unix_ns.is_none() {
            close.push(Installation {
                removed_at_unix_ns: Some(at),
                ..s.clone()
            });
        }
    }
    Ok(InstallPlan::New {
        installation: Installation {
            serial: request.serial.clone(),
            site: request.site.clone(),
            position: request.position,
            installed_at_unix_ns: at,
            removed_at_unix_ns: None,
        },
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(record: SegmentRecord, version: u32) -> StoredSegment {
        StoredSegment {
            record,
            version,
            uploaded_at_unix_ns: 1,
            uploaded_by: "optics".into(),
            source: "a.csv".into(),
        }
    }

    #[test]
    fn identical_records_are_unchanged_and_changed_ones_need_replace() {
        let record = obs_manufacturing::example_record();
        assert_eq!(
            decide_put(None, &record, false),
            PutOutcome::Stored { version: 1 }
        );
        let v2 = stored(record.clone(), 2);
        assert_eq!(
            decide_put(Some(&v2), &record, false),
            PutOutcome::Unchanged { version: 2 }
        );
        let mut changed = record.clone();
        changed.mass_kg += 1.0;
        changed.coating_batch = "AL-2099-01".into();
        assert_eq!(
            decide_put(Some(&v2), &changed, true),
            PutOutcome::Stored { version: 3 }
        );
        let PutOutcome::Conflict { version, changes } = decide_put(Some(&v2), &changed, false)
        else {
            panic!("a conflict")
        };
        assert_eq!(version, 2);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["coating_batch", "mass_kg"]);
        assert_eq!(changes[0].stored, record.coating_batch);
        assert_eq!(changes[0].uploaded, "AL-2099-01");
    }

    fn at(serial: &str, site: &str, position: u32, from: i64, to: Option<i64>) -> Installation {
        Installation {
            serial: serial.into(),
            site: site.into(),
            position,
            installed_at_unix_ns: from,
            removed_at_unix_ns: to,
        }
    }

    fn request(serial: &str, site: &str, position: u32, at_ns: i64) -> InstallRequest {
        InstallRequest {
            serial: serial.into(),
            site: site.into(),
            position,
            at_unix_ns: at_ns,
        }
    }

    #[test]
    fn installing_closes_the_occupant_and_the_serials_old_place() {
        let occupant = at("B", "nrt", 3, 10, None);
        let elsewhere = at("A", "lpa", 7, 5, None);
        let plan = plan_installation(
            &request("A", "nrt", 3, 20),
            Some(&occupant),
            Some(&elsewhere),
        )
        .unwrap();
        assert_eq!(
            plan,
            InstallPlan::New {
                installation: at("A", "nrt", 3, 20, None),
                close: vec![
                    at("B", "nrt", 3, 10, Some(20)),
                    at("A", "lpa", 7, 5, Some(20))
                ],
            }
        );
        // A free position and a new serial close nothing.
        let plan = plan_installation(&request("A", "nrt", 3, 20), None, None).unwrap();
        assert!(matches!(plan, InstallPlan::New { close, .. } if close.is_empty()));
    }

    #[test]
    fn repeats_are_idempotent_and_history_is_recorded_in_order() {
        let current = at("A", "nrt", 3, 10, None);
        assert_eq!(
            plan_installation(&request("A", "nrt", 3, 99), Some(&current), Some(&current)),
            Ok(InstallPlan::Existing(current.clone()))
        );
        let later = at("B", "nrt", 3, 30, None);
        let error = plan_installation(&request("A", "nrt", 3, 20), Some(&later), None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("site nrt position 3 has a later installation: B"),
            "{error}"
        );
        let closed_after = at("A", "lpa", 1, 5, Some(25));
        let error =
            plan_installation(&request("A", "nrt", 3, 20), None, Some(&closed_after)).unwrap_err();
        assert!(matches!(
            error,
            InstallRefusal::SerialHasLaterInstallation { .. }
        ));
        assert!(
            error
                .to_string()
                .contains("segment A has a later installation"),
            "{error}"
        );
    }
}
