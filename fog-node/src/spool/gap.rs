//! Gap entries: how the spool accounts for data it drops (size bound) or
//! cannot read (damage), so that loss is never silent.

use std::path::Path;

use obs_proto::v1::{Gap, GapReason};
use prost::Message;

use super::index::{SegmentIndex, SegmentReader};
use super::segment::{Damage, FrameHeader, decode_gaps};

/// Longest `detail` kept in a gap entry.
const MAX_DETAIL_LEN: usize = 240;

/// What dropping the oldest segments loses, and the gaps that report it.
#[derive(Debug, Default)]
pub struct DropPlan {
    /// Gaps for the new gap record(s): the dropped range plus every gap
    /// carried by dropped, unacked gap records, merged where contiguous.
    pub gaps: Vec<Gap>,
    /// Samples in the dropped unacked batches (not counting carried gaps).
    pub samples: u64,
    /// Unacked records dropped (sample batches and gap records).
    pub batches: u64,
}

/// Works out the gaps for dropping `segments` (oldest first) when the hub
/// has acknowledged everything up to `acked`.
///
/// Sample counts come from the index; time ranges from the frame headers on
/// disk; carried gaps from the payloads of dropped gap records. A gap record
/// that can no longer be read becomes a `GAP_REASON_SPOOL_CORRUPT` entry for
/// its own seq rather than blocking the drop.
pub fn plan_drop<'a>(
    segments: impl IntoIterator<Item = &'a SegmentIndex>,
    acked: u64,
    max_bytes: u64,
) -> DropPlan {
    let mut plan = DropPlan::default();
    let mut range: Option<(u64, u64)> = None;
    let mut ts = (0i64, 0i64);
    let mut segment_count = 0u64;
    for segment in segments {
        segment_count += 1;
        let unacked = &segment.records[segment.position_of(acked.saturating_add(1))..];
        if unacked.is_empty() {
            continue;
        }
        // An unreadable file must not block the drop (the spool would stop
        // taking data): its records are still counted from the index.
        let mut reader = SegmentReader::open(&segment.path);
        for record in unacked {
            plan.batches += 1;
            range = Some(range.map_or((record.seq, record.seq), |(first, _)| (first, record.seq)));
            let reader = match reader.as_mut() {
                Ok(reader) => Ok(reader),
                Err(error) => Err(error.to_string()),
            };
            if record.gap {
                let carried = reader.and_then(|r| {
                    let payload = r.read_payload(record).map_err(|e| e.to_string())?;
                    decode_gaps(&payload).map_err(|e| format!("its payload does not decode: {e}"))
                });
                match carried {
                    Ok(gaps) => plan.gaps.extend(gaps),
                    Err(error) => {
                        tracing::warn!(%error, seq = record.seq, "dropping an unreadable gap record");
                        plan.gaps.push(Gap {
                            first_seq: record.seq,
                            last_seq: record.seq,
                            reason: GapReason::SpoolCorrupt as i32,
                            detail: format!(
                                "gap record seq {} in {} was unreadable when the spool dropped it ({error}); the gaps it carried are lost",
                                record.seq,
                                segment.path.display()
                            ),
                            ..Gap::default()
                        });
                    }
                }
                continue;
            }
            plan.samples += u64::from(record.samples);
            let header = reader.and_then(|r| r.read_header(record).map_err(|e| e.to_string()));
            match header {
                Ok(Some(header)) => ts = merge_ts(ts, (header.first_ts, header.last_ts)),
                Ok(None) => tracing::warn!(
                    seq = record.seq,
                    "frame header does not match the index, time range incomplete"
                ),
                Err(error) => {
                    tracing::warn!(%error, seq = record.seq, "cannot read a frame header, time range incomplete")
                }
            }
        }
    }
    if let Some((first_seq, last_seq)) = range {
        plan.gaps.push(Gap {
            first_seq,
            last_seq,
            samples: plan.samples,
            from_ts_unix_ns: ts.0,
            to_ts_unix_ns: ts.1,
            reason: GapReason::SpoolFull as i32,
            detail: format!(
                "spool full: dropped {} unacked batches ({} samples) from the {segment_count} oldest segments to stay under max_bytes {max_bytes}",
                plan.batches, plan.samples
            ),
        });
    }
    plan.gaps = merge_gaps(plan.gaps);
    plan
}

/// Sorts gaps by seq and merges `GAP_REASON_SPOOL_FULL` gaps whose seq
/// ranges touch, so that repeated drops while the uplink is down keep the
/// gap record small.
pub fn merge_gaps(mut gaps: Vec<Gap>) -> Vec<Gap> {
    gaps.sort_by_key(|g| (g.first_seq, g.last_seq));
    let full = GapReason::SpoolFull as i32;
    let mut merged: Vec<Gap> = Vec::with_capacity(gaps.len());
    for gap in gaps {
        match merged.last_mut() {
            Some(prev)
                if prev.reason == full
                    && gap.reason == full
                    && prev.last_seq.checked_add(1) == Some(gap.first_seq) =>
            {
                prev.last_seq = gap.last_seq;
                prev.samples += gap.samples;
                (prev.from_ts_unix_ns, prev.to_ts_unix_ns) = merge_ts(
                    (prev.from_ts_unix_ns, prev.to_ts_unix_ns),
                    (gap.from_ts_unix_ns, gap.to_ts_unix_ns),
                );
                prev.detail = format!(
                    "spool full: seqs {}..={} ({} samples) dropped to stay under the size bound",
                    prev.first_seq, prev.last_seq, prev.samples
                );
            }
            _ => merged.push(gap),
        }
    }
    merged
}

/// Union of two time ranges, `(0, 0)` meaning unknown.
fn merge_ts(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    match (a == (0, 0), b == (0, 0)) {
        (true, _) => b,
        (_, true) => a,
        _ => (a.0.min(b.0), a.1.max(b.1)),
    }
}

/// Splits `gaps` into groups whose encoded size fits `budget` bytes of
/// payload each (one gap record per group); details are shortened first.
pub fn chunk_gaps(gaps: Vec<Gap>, budget: usize) -> Vec<Vec<Gap>> {
    let mut chunks: Vec<Vec<Gap>> = Vec::new();
    let mut used = 0usize;
    for mut gap in gaps {
        if gap.detail.len() > MAX_DETAIL_LEN {
            let mut end = MAX_DETAIL_LEN;
            while !gap.detail.is_char_boundary(end) {
                end -= 1;
            }
            gap.detail.truncate(end);
        }
        // key byte + length varint (< 16 KiB) + message
        let size = gap.encoded_len() + 3;
        match chunks.last_mut() {
            Some(chunk) if used + size <= budget => {
                chunk.push(gap);
                used += size;
            }
            _ => {
                chunks.push(vec![gap]);
                used = size;
            }
        }
    }
    chunks
}

/// The `GAP_REASON_SPOOL_CORRUPT` gap for seqs `first..=last` lost in
/// `damage` of segment `path`.
///
/// The sample count and time range come from the frame headers inside the
/// damaged bytes when they chain together consistently over all of these
/// seqs (unverified, and the detail says so); otherwise the count is 0 and
/// the time range is that of the good records around the damage.
pub fn corrupt_gap(path: &Path, damage: &Damage, first: u64, last: u64) -> Gap {
    let mut gap = Gap {
        first_seq: first,
        last_seq: last,
        reason: GapReason::SpoolCorrupt as i32,
        ..Gap::default()
    };
    let mut detail = format!(
        "segment {}: {} bytes at offset {} failed their crc check; ",
        path.display(),
        damage.end - damage.offset,
        damage.offset
    );
    let in_range: Vec<&FrameHeader> = damage
        .headers
        .iter()
        .flatten()
        .filter(|h| (first..=last).contains(&h.seq))
        .collect();
    if in_range.len() as u64 == last - first + 1 {
        let mut gap_records = 0;
        let mut ts = (0, 0);
        for header in &in_range {
            if header.is_gap() {
                gap_records += 1;
            } else {
                gap.samples += u64::from(header.samples);
                ts = merge_ts(ts, (header.first_ts, header.last_ts));
            }
        }
        (gap.from_ts_unix_ns, gap.to_ts_unix_ns) = ts;
        detail.push_str(&format!(
            "samples and time range taken from the unverified frame headers of the {} records there",
            in_range.len()
        ));
        if gap_records > 0 {
            detail.push_str(&format!(
                "; {gap_records} gap records among them are lost with the gaps they carried"
            ));
        }
    } else {
        let before = damage.prev.map(|(_, ts)| ts);
        let after = damage.next.map(|(_, ts)| ts);
        gap.from_ts_unix_ns = before.or(after).unwrap_or(0);
        gap.to_ts_unix_ns = after.or(before).unwrap_or(0);
        detail.push_str(
            "sample count unknown (no trustworthy frame headers), reported as 0; time range is that of the good records around the damage",
        );
    }
    gap.detail = detail;
    gap
}

/// The `GAP_REASON_SPOOL_CORRUPT` gap for seqs `first..=last` that were
/// durable (`spool.meta` says so) but are in no segment any more: records
/// cut off the end of the last segment as damaged. `torn` is that damage,
/// if recovery saw it.
pub fn lost_durable_gap(torn: Option<(&Path, &Damage)>, first: u64, last: u64) -> Gap {
    match torn {
        Some((path, damage)) => {
            let mut gap = corrupt_gap(path, damage, first, last);
            gap.detail = format!(
                "seqs {first}..={last} were durable but failed their check at the end of the last segment: {}",
                gap.detail
            );
            gap
        }
        None => Gap {
            first_seq: first,
            last_seq: last,
            reason: GapReason::SpoolCorrupt as i32,
            detail: format!(
                "seqs {first}..={last} were durable but are missing from the segment files; sample count unknown, reported as 0"
            ),
            ..Gap::default()
        },
    }
}
