//! Opening a spool directory after a clean stop or a crash: scan every
//! segment, cut a torn tail, finish an interrupted drop or trim, and turn
//! damage in older segments into gaps.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use obs_proto::v1::{Gap, GapReason};

use super::RecoveryReport;
use super::error::{FileKind, Result, SpoolError};
use super::gap::{corrupt_gap, lost_durable_gap};
use super::index::{RecordMeta, SegmentIndex};
use super::meta::{META_FILE, Meta, fsync_dir, read_meta};
use super::quarantine::count_quarantined;
use super::segment::{
    Damage, FRAME_HEADER_LEN, HeaderCheck, SegmentScan, decode_gaps, parse_segment_file_name,
    scan_segment,
};
use super::writer::ActiveWriter;

/// The state rebuilt from the directory.
pub struct Recovered {
    pub segments: VecDeque<SegmentIndex>,
    /// Open on the last segment when it is healthy enough to append to.
    pub writer: Option<ActiveWriter>,
    pub next_seq: u64,
    pub meta: Meta,
    /// `GAP_REASON_SPOOL_CORRUPT` gaps not yet reported by any gap record.
    pub corrupt_gaps: Vec<Gap>,
    pub quarantined: u64,
    pub report: RecoveryReport,
}

struct Scanned {
    base: u64,
    path: PathBuf,
    upper: u64,
    file_len: u64,
    scan: SegmentScan,
}

impl Scanned {
    /// Highest seq this segment accounts for, records or damaged bytes.
    fn covers_through(&self) -> u64 {
        let by_records = self.scan.records.last().map(|r| r.header.seq);
        match (self.scan.tail_damage(), by_records) {
            (None, Some(seq)) => seq,
            _ => self.upper.saturating_sub(1),
        }
    }
}

/// Rebuilds the spool state from `dir` (which must exist).
pub fn recover(dir: &Path) -> Result<Recovered> {
    remove_stale_tmp(&dir.join(format!("{META_FILE}.tmp")));
    let meta = read_meta(dir)?.unwrap_or_default();
    let mut report = RecoveryReport {
        acked_seq: meta.acked_seq,
        ..RecoveryReport::default()
    };

    let files = list_segments(dir)?;
    let last_base = files.last().map(|(base, _)| *base);
    let mut scanned = Vec::with_capacity(files.len());
    let mut known_gaps: Vec<Gap> = Vec::new();
    for (i, (base, path)) in files.iter().enumerate() {
        let upper = files.get(i + 1).map_or(u64::MAX, |(next, _)| *next);
        let bytes =
            fs::read(path).map_err(|e| SpoolError::io(FileKind::Segment, path, "read", e))?;
        let scan = scan_segment(&bytes, *base, upper);
        if let HeaderCheck::Unsupported(version) = scan.header {
            return Err(SpoolError::UnsupportedVersion {
                path: path.clone(),
                version,
            });
        }
        for record in scan.records.iter().filter(|r| r.header.is_gap()) {
            let start = record.offset as usize + FRAME_HEADER_LEN;
            let end = record.offset as usize + record.header.frame_len() as usize;
            match decode_gaps(&bytes[start..end]) {
                Ok(gaps) => known_gaps.extend(gaps),
                Err(error) => {
                    tracing::warn!(path = %path.display(), seq = record.header.seq, %error, "gap record does not decode")
                }
            }
        }
        scanned.push(Scanned {
            base: *base,
            path: path.clone(),
            upper,
            file_len: bytes.len() as u64,
            scan,
        });
    }

    let torn = cut_torn_tail(&mut scanned, &mut report)?;

    // Finish a drop or an ack trim that a crash interrupted.
    let full = GapReason::SpoolFull as i32;
    let drop_through = known_gaps
        .iter()
        .filter(|g| g.reason == full)
        .map(|g| g.last_seq)
        .max()
        .unwrap_or(0);
    let mut kept = Vec::with_capacity(scanned.len());
    for segment in scanned {
        let last_record = segment.scan.records.last().map(|r| r.header.seq);
        let dropped = last_record.unwrap_or(segment.upper.saturating_sub(1)) <= drop_through;
        let trimmed = segment.covers_through() <= meta.acked_seq;
        if dropped || trimmed {
            remove_segment(&segment.path)?;
            if dropped {
                report.completed_drops += 1;
            } else {
                report.trimmed_segments += 1;
            }
            continue;
        }
        kept.push(segment);
    }

    let mut corrupt_gaps = damage_gaps(&mut kept, &known_gaps, meta.acked_seq, &mut report)?;

    // Seqs below the persisted floor were durable; if the segments no longer
    // hold them (a durable record at the very end failed its check and was
    // cut), say so instead of letting them vanish.
    let accounted = kept
        .iter()
        .map(Scanned::covers_through)
        .chain([meta.acked_seq, drop_through])
        .max()
        .unwrap_or(0);
    let (first, last) = (accounted + 1, meta.next_seq - 1);
    let corrupt = GapReason::SpoolCorrupt as i32;
    if first <= last
        && !known_gaps
            .iter()
            .any(|g| g.reason == corrupt && g.first_seq <= first && last <= g.last_seq)
    {
        let torn = torn.as_ref().map(|(path, damage)| (path.as_path(), damage));
        corrupt_gaps.push(lost_durable_gap(torn, first, last));
    }

    if let Some(last) = kept.last() {
        sync_file(&last.path)?;
    }
    fsync_dir(dir)?;

    let mut next_seq = meta.next_seq.max(meta.acked_seq + 1);
    if let Some(base) = last_base {
        next_seq = next_seq.max(base);
    }
    let mut segments = VecDeque::with_capacity(kept.len());
    let mut writer = None;
    let kept_len = kept.len();
    for (i, segment) in kept.into_iter().enumerate() {
        let mut index = SegmentIndex::new(segment.base, segment.path, segment.file_len);
        for record in &segment.scan.records {
            index.push(RecordMeta::new(record.offset, &record.header));
        }
        if let Some(last) = index.last_seq() {
            next_seq = next_seq.max(last + 1);
        }
        report.records += index.records.len() as u64;
        let healthy = segment.scan.header == HeaderCheck::Valid && segment.scan.damages.is_empty();
        if i + 1 == kept_len && healthy {
            writer = Some(ActiveWriter::reopen(
                index.path.clone(),
                segment.scan.valid_len,
            )?);
        }
        segments.push_back(index);
    }
    report.segments = segments.len();
    report.next_seq = next_seq;
    Ok(Recovered {
        segments,
        writer,
        next_seq,
        meta,
        corrupt_gaps,
        quarantined: count_quarantined(dir)?,
        report,
    })
}

/// The `{first_seq:020}.seg` files of `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let list_error = |e| SpoolError::io(FileKind::Directory, dir, "list", e);
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_segment_file_name(name) {
            Some(base) if base > 0 => files.push((base, entry.path())),
            _ if name.ends_with(".seg") => {
                tracing::warn!(path = %entry.path().display(), "ignoring a file that is not named like a segment");
            }
            _ => {}
        }
    }
    files.sort_unstable_by_key(|(base, _)| *base);
    Ok(files)
}

/// Cuts a torn or corrupt tail off the last segment (normally a write the
/// crash interrupted: never durable, never delivered), and removes the
/// segment if nothing is left in it. Returns the damage that was cut.
fn cut_torn_tail(
    scanned: &mut Vec<Scanned>,
    report: &mut RecoveryReport,
) -> Result<Option<(PathBuf, Damage)>> {
    let Some(last) = scanned.last_mut() else {
        return Ok(None);
    };
    if last.scan.records.is_empty() {
        // An empty segment (valid header only) is no damage; anything else
        // is a creation or first write the crash interrupted.
        let intact = if last.scan.header == HeaderCheck::Valid {
            last.scan.valid_len
        } else {
            0
        };
        let cut = last.file_len - intact;
        if cut > 0 {
            tracing::warn!(path = %last.path.display(), bytes = cut, "removing a last segment without a whole record");
        }
        report.truncated_bytes += cut;
        remove_segment(&last.path)?;
        let torn = last.scan.damages.pop().map(|d| (last.path.clone(), d));
        scanned.pop();
        return Ok(torn);
    }
    if last.scan.tail_damage().is_none() {
        return Ok(None);
    }
    let cut = last.file_len - last.scan.valid_len;
    tracing::warn!(
        path = %last.path.display(),
        offset = last.scan.valid_len,
        bytes = cut,
        "truncating a torn record at the end of the last segment"
    );
    truncate_file(&last.path, last.scan.valid_len)?;
    report.truncated_bytes += cut;
    last.file_len = last.scan.valid_len;
    Ok(last.scan.damages.pop().map(|d| (last.path.clone(), d)))
}

/// Gaps for the seqs lost in damaged ranges of the kept segments, skipping
/// ranges an existing `GAP_REASON_SPOOL_CORRUPT` gap already reports (from
/// an earlier open) and trimming harmless garbage at a segment's end.
fn damage_gaps(
    kept: &mut [Scanned],
    known_gaps: &[Gap],
    acked: u64,
    report: &mut RecoveryReport,
) -> Result<Vec<Gap>> {
    let corrupt = GapReason::SpoolCorrupt as i32;
    let mut gaps = Vec::new();
    for segment in kept.iter_mut() {
        if segment.scan.damages.is_empty() && segment.scan.header == HeaderCheck::Valid {
            continue;
        }
        report.corrupt_segments += 1;
        tracing::warn!(path = %segment.path.display(), ranges = segment.scan.damages.len(), "segment is damaged");
        let mut trim_tail = false;
        for damage in &segment.scan.damages {
            let first = damage
                .prev
                .map_or(segment.base, |(seq, _)| seq + 1)
                .max(acked + 1);
            let last = damage
                .next
                .map_or(segment.upper.saturating_sub(1), |(seq, _)| seq - 1);
            if first > last {
                trim_tail |= damage.next.is_none();
                continue;
            }
            let reported = known_gaps
                .iter()
                .any(|g| g.reason == corrupt && g.first_seq <= first && last <= g.last_seq);
            if !reported {
                gaps.push(corrupt_gap(&segment.path, damage, first, last));
            }
        }
        if trim_tail {
            // Garbage after the last record that stood for no seq at all
            // (e.g. a failed write that could not be cut at the time).
            let cut = segment.file_len - segment.scan.valid_len;
            truncate_file(&segment.path, segment.scan.valid_len)?;
            report.truncated_bytes += cut;
            segment.file_len = segment.scan.valid_len;
            segment.scan.damages.pop();
        }
    }
    Ok(gaps)
}

fn truncate_file(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| SpoolError::io(FileKind::Segment, path, "open", e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| SpoolError::io(FileKind::Segment, path, "truncate", e))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| SpoolError::io(FileKind::Segment, path, "fsync", e))
}

/// Deletes a segment file; one already gone is fine.
pub fn remove_segment(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SpoolError::io(FileKind::Segment, path, "remove", error)),
    }
}

fn remove_stale_tmp(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove a stale temporary file");
    }
}
