//! On-disk format of a segment file and the scan that recovery runs over it.
//!
//! A segment `{first_seq:020}.seg` is a 16-byte header followed by records:
//!
//! ```text
//! segment header (16 bytes, little-endian)
//!   0   8  magic "OBSSPOOL"
//!   8   4  format version (1)
//!  12   4  CRC32 of bytes 0..12
//! record (40-byte frame header + payload, little-endian)
//!   0   4  CRC32 (IEEE) of bytes 4..40+len: the rest of the header and the payload
//!   4   4  len: payload length in bytes
//!   8   8  seq
//!  16   4  samples in the batch (0 for a gap record)
//!  20   4  flags: bit 0 = gap record, other bits zero
//!  24   8  earliest sample ts, Unix ns (gap record: earliest gap from_ts)
//!  32   8  latest sample ts, Unix ns (gap record: latest gap to_ts)
//!  40 len  payload: the prost-encoded `TelemetryBatch`, `seq` set, ready to publish
//! ```
//!
//! Records in a segment have consecutive sequence numbers starting at the
//! one in the file name, so the spool learns a record's seq, size and sample
//! count from its frame header without decoding the payload.

use obs_proto::v1::{Gap, Sample, TelemetryBatch};
use prost::Message;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"OBSSPOOL";
/// Version of the segment format written by this code.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Size of a record's frame header (before the payload).
pub const FRAME_HEADER_LEN: usize = 40;
/// Largest record (frame header and payload) the format accepts; a longer
/// length field is taken as damage rather than allocated.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Frame flag of a gap record: no samples, only `gaps`.
pub const FLAG_GAP: u32 = 1;

/// Protobuf key of `TelemetryBatch.samples` (field 4, length-delimited).
const SAMPLES_KEY: u8 = (4 << 3) | 2;
/// Protobuf key of `TelemetryBatch.gaps` (field 5, length-delimited).
const GAPS_KEY: u8 = (5 << 3) | 2;

/// File name of the segment whose first record has `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first seq encoded in a segment file name, if `name` is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header written at the start of every new segment.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What the first bytes of a segment file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Magic, version and CRC are right.
    Valid,
    /// The file is shorter than a header (a crash right after creating it).
    Short,
    /// The header fails its CRC or magic; records are still scanned.
    Damaged,
    /// A valid header of a format version this code does not know.
    Unsupported(u32),
}

/// Checks the segment header at the start of `bytes`.
pub fn check_segment_header(bytes: &[u8]) -> HeaderCheck {
    let Some(header) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return HeaderCheck::Short;
    };
    let crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if header[..8] != SEGMENT_MAGIC || crc32fast::hash(&header[..12]) != crc {
        return HeaderCheck::Damaged;
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version == FORMAT_VERSION {
        HeaderCheck::Valid
    } else {
        HeaderCheck::Unsupported(version)
    }
}

/// The fixed fields of a record, as stored in its frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub seq: u64,
    pub samples: u32,
    pub flags: u32,
    pub first_ts: i64,
    pub last_ts: i64,
    pub payload_len: u32,
}

impl FrameHeader {
    /// Whether the record is a gap record.
    pub fn is_gap(&self) -> bool {
        self.flags & FLAG_GAP != 0
    }

    /// Size of the whole record on disk.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    /// Parses the stored CRC and the header at the start of `bytes`, checking
    /// only what needs no payload: known flags and a sane length.
    pub fn parse(bytes: &[u8]) -> Option<(u32, FrameHeader)> {
        let b = bytes.get(..FRAME_HEADER_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let header = FrameHeader {
            payload_len: u32_at(4),
            seq: u64_at(8),
            samples: u32_at(16),
            flags: u32_at(20),
            first_ts: u64_at(24) as i64,
            last_ts: u64_at(32) as i64,
        };
        if header.flags & !FLAG_GAP != 0 || header.frame_len() > MAX_RECORD_BYTES as u64 {
            return None;
        }
        Some((u32_at(0), header))
    }

    /// Writes the header (without the CRC) into `out[4..40]`.
    fn write(&self, out: &mut [u8]) {
        out[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..20].copy_from_slice(&self.samples.to_le_bytes());
        out[20..24].copy_from_slice(&self.flags.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_ts.to_le_bytes());
        out[32..40].copy_from_slice(&self.last_ts.to_le_bytes());
    }
}

/// CRC32 of a record: everything after the CRC field.
pub fn frame_crc(header_after_crc: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_after_crc);
    hasher.update(payload);
    hasher.finalize()
}

/// Pre-encoded `TelemetryBatch` fields 1 and 2 (site, node id), the same
/// in every batch of a spool.
pub fn encode_identity(site: &str, node_id: &str) -> Vec<u8> {
    TelemetryBatch {
        site: site.to_owned(),
        node_id: node_id.to_owned(),
        ..TelemetryBatch::default()
    }
    .encode_to_vec()
}

/// Encodes one record (frame header and payload) into `buf`, replacing its
/// contents, and returns its header.
///
/// The payload is byte for byte `TelemetryBatch { site, node_id, seq,
/// samples, gaps, created_unix_ns }.encode_to_vec()`, built from borrowed
/// samples so that appending does not clone them.
pub fn encode_record(
    buf: &mut Vec<u8>,
    identity: &[u8],
    seq: u64,
    samples: &[Sample],
    gaps: &[Gap],
    created_unix_ns: i64,
) -> FrameHeader {
    buf.clear();
    buf.resize(FRAME_HEADER_LEN, 0);
    buf.extend_from_slice(identity);
    put(
        buf,
        &TelemetryBatch {
            seq,
            ..TelemetryBatch::default()
        },
    );
    let (mut first_ts, mut last_ts) = (i64::MAX, i64::MIN);
    for sample in samples {
        buf.push(SAMPLES_KEY);
        put_length_delimited(buf, sample);
        first_ts = first_ts.min(sample.ts_unix_ns);
        last_ts = last_ts.max(sample.ts_unix_ns);
    }
    for gap in gaps {
        buf.push(GAPS_KEY);
        put_length_delimited(buf, gap);
        if samples.is_empty() {
            first_ts = first_ts.min(gap.from_ts_unix_ns);
            last_ts = last_ts.max(gap.to_ts_unix_ns);
        }
    }
    put(
        buf,
        &TelemetryBatch {
            created_unix_ns,
            ..TelemetryBatch::default()
        },
    );
    if first_ts > last_ts {
        (first_ts, last_ts) = (0, 0);
    }
    let header = FrameHeader {
        seq,
        samples: u32::try_from(samples.len()).unwrap_or(u32::MAX),
        flags: if samples.is_empty() { FLAG_GAP } else { 0 },
        first_ts,
        last_ts,
        payload_len: u32::try_from(buf.len() - FRAME_HEADER_LEN).unwrap_or(u32::MAX),
    };
    header.write(buf);
    let crc = frame_crc(&buf[4..FRAME_HEADER_LEN], &buf[FRAME_HEADER_LEN..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Appends `message` to `buf`; a `Vec` grows as needed, so this cannot fail.
fn put(buf: &mut Vec<u8>, message: &impl Message) {
    let encoded = message.encode(buf);
    debug_assert!(
        encoded.is_ok(),
        "encoding into a vec cannot run out of room"
    );
}

/// Appends the length and then `message` to `buf`.
fn put_length_delimited(buf: &mut Vec<u8>, message: &impl Message) {
    let encoded = message.encode_length_delimited(buf);
    debug_assert!(
        encoded.is_ok(),
        "encoding into a vec cannot run out of room"
    );
}

/// A record that passed its CRC check, and where it starts in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRecord {
    pub offset: u64,
    pub header: FrameHeader,
}

/// A damaged byte range of a segment: from a record that failed its check to
/// the next record that passes (`next`), or to the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the first bad record starts.
    pub offset: u64,
    /// End of the damaged range (the next good record, or the file end).
    pub end: u64,
    /// Seq and latest ts of the last good record before the damage.
    pub prev: Option<(u64, i64)>,
    /// Seq and earliest ts of the first good record after the damage.
    pub next: Option<(u64, i64)>,
    /// Unverified frame headers found in the damaged range: a chain with
    /// consecutive seqs from its start that tiles the range exactly (or,
    /// at the end of the file, as far as it goes); `None` if there is no
    /// such chain, so nothing about the lost records can be trusted.
    pub headers: Option<Vec<FrameHeader>>,
}

/// Result of scanning one segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub header: HeaderCheck,
    pub records: Vec<ScannedRecord>,
    pub damages: Vec<Damage>,
    /// End of the last good record (or of the header when there is none).
    pub valid_len: u64,
}

impl SegmentScan {
    /// The damage that runs to the end of the file, if any.
    pub fn tail_damage(&self) -> Option<&Damage> {
        self.damages.last().filter(|d| d.next.is_none())
    }
}

/// Scans the bytes of the segment named `base_seq`, whose records must have
/// seqs below `upper` (the next segment's first seq).
///
/// Every record is checked against its CRC and must have a seq above the
/// previous one (normally the next one; a jump is a seq that was cut off as
/// damaged and reported by the gap record that follows). After a bad record
/// the scan searches byte by byte for the next record that passes (a seq in
/// `(last good, upper)` and a matching CRC) and resumes there; everything
/// in between is reported as a [`Damage`].
pub fn scan_segment(bytes: &[u8], base_seq: u64, upper: u64) -> SegmentScan {
    let header = check_segment_header(bytes);
    let mut scan = SegmentScan {
        header,
        records: Vec::new(),
        damages: Vec::new(),
        valid_len: SEGMENT_HEADER_LEN.min(bytes.len()) as u64,
    };
    if header == HeaderCheck::Short {
        scan.damages.push(Damage {
            offset: 0,
            end: bytes.len() as u64,
            prev: None,
            next: None,
            headers: None,
        });
        return scan;
    }
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < bytes.len() {
        let prev = scan.records.last().map(|r| r.header.seq);
        let min_seq = prev.map_or(base_seq, |seq| seq + 1);
        let seq_ok = |seq: u64| seq >= min_seq && seq < upper;
        if let Some(header) = check_record(bytes, pos, seq_ok) {
            scan.records.push(ScannedRecord {
                offset: pos as u64,
                header,
            });
            pos += header.frame_len() as usize;
            scan.valid_len = pos as u64;
            continue;
        }
        let resync =
            (pos + 1..bytes.len()).find_map(|at| check_record(bytes, at, seq_ok).map(|h| (at, h)));
        let end = resync.map_or(bytes.len(), |(at, _)| at);
        let prev_info = scan
            .records
            .last()
            .map(|r| (r.header.seq, r.header.last_ts));
        let next_info = resync.map(|(_, h)| (h.seq, h.first_ts));
        scan.damages.push(Damage {
            offset: pos as u64,
            end: end as u64,
            prev: prev_info,
            next: next_info,
            headers: unverified_headers(&bytes[..end], pos, min_seq, resync.is_some()),
        });
        match resync {
            Some((at, header)) => {
                scan.records.push(ScannedRecord {
                    offset: at as u64,
                    header,
                });
                pos = at + header.frame_len() as usize;
                scan.valid_len = pos as u64;
            }
            None => break,
        }
    }
    scan
}

/// The header of the record at `pos` if it is whole, its seq is accepted
/// and its CRC matches.
fn check_record(bytes: &[u8], pos: usize, seq_ok: impl Fn(u64) -> bool) -> Option<FrameHeader> {
    let rest = bytes.get(pos..)?;
    let (crc, header) = FrameHeader::parse(rest)?;
    if !seq_ok(header.seq) || header.frame_len() > rest.len() as u64 {
        return None;
    }
    if header.is_gap() != (header.samples == 0) {
        return None;
    }
    let end = header.frame_len() as usize;
    (frame_crc(&rest[4..FRAME_HEADER_LEN], &rest[FRAME_HEADER_LEN..end]) == crc).then_some(header)
}

/// Follows unverified frame headers from `pos` with seqs `first`,
/// `first + 1`, ...; with `exact` they must end exactly at the end of
/// `bytes`, otherwise the chain stops at the first header that does not fit.
fn unverified_headers(
    bytes: &[u8],
    mut pos: usize,
    first: u64,
    exact: bool,
) -> Option<Vec<FrameHeader>> {
    let mut headers = Vec::new();
    let mut expected = first;
    while pos < bytes.len() {
        let fits = FrameHeader::parse(&bytes[pos..])
            .map(|(_, header)| header)
            .filter(|h| h.seq == expected && h.frame_len() <= (bytes.len() - pos) as u64);
        let Some(header) = fits else {
            if exact {
                return None;
            }
            break;
        };
        headers.push(header);
        expected = expected.saturating_add(1);
        pos += header.frame_len() as usize;
    }
    Some(headers)
}

/// The gaps carried by a gap record's payload.
pub fn decode_gaps(payload: &[u8]) -> Result<Vec<Gap>, prost::DecodeError> {
    TelemetryBatch::decode(payload).map(|batch| batch.gaps)
}
