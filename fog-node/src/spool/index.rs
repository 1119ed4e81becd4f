//! The in-memory index of the segments: where each record is, its seq and
//! sample count, so that reads, acks and drops never decode a payload.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::{FileKind, Result, SpoolError};
use super::segment::{FRAME_HEADER_LEN, FrameHeader, frame_crc};

/// One record of a segment (24 bytes in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub seq: u64,
    /// Offset of the frame in the segment (segments are at most 1 GiB).
    pub offset: u32,
    /// Size of the whole frame, header included.
    pub frame_len: u32,
    pub samples: u32,
    pub gap: bool,
}

impl RecordMeta {
    /// The index entry of a record with `header` stored at `offset`.
    pub fn new(offset: u64, header: &FrameHeader) -> RecordMeta {
        RecordMeta {
            seq: header.seq,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            frame_len: u32::try_from(header.frame_len()).unwrap_or(u32::MAX),
            samples: header.samples,
            gap: header.is_gap(),
        }
    }
}

/// One segment file and its records, in seq order.
#[derive(Debug)]
pub struct SegmentIndex {
    /// The seq in the file name; records have seqs at or above it.
    pub base_seq: u64,
    pub path: PathBuf,
    pub records: Vec<RecordMeta>,
    /// Size of the file on disk (header, records and any damaged bytes).
    pub file_len: u64,
    /// Sum of the records' frame sizes.
    pub record_bytes: u64,
}

impl SegmentIndex {
    /// An index without records.
    pub fn new(base_seq: u64, path: PathBuf, file_len: u64) -> SegmentIndex {
        SegmentIndex {
            base_seq,
            path,
            records: Vec::new(),
            file_len,
            record_bytes: 0,
        }
    }

    /// Adds a record at the end.
    pub fn push(&mut self, record: RecordMeta) {
        debug_assert!(self.last_seq().is_none_or(|last| last < record.seq));
        self.record_bytes += u64::from(record.frame_len);
        self.records.push(record);
    }

    /// Seq of the newest record.
    pub fn last_seq(&self) -> Option<u64> {
        self.records.last().map(|r| r.seq)
    }

    /// Position of the first record with a seq at or above `seq`.
    pub fn position_of(&self, seq: u64) -> usize {
        self.records.partition_point(|r| r.seq < seq)
    }

    /// The record with exactly `seq`.
    pub fn get(&self, seq: u64) -> Option<&RecordMeta> {
        self.records
            .get(self.position_of(seq))
            .filter(|r| r.seq == seq)
    }
}

/// Reads records of one segment in increasing offset order.
pub struct SegmentReader {
    reader: BufReader<File>,
    pos: u64,
    path: PathBuf,
}

impl SegmentReader {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> Result<SegmentReader> {
        let file =
            File::open(path).map_err(|e| SpoolError::io(FileKind::Segment, path, "open", e))?;
        Ok(SegmentReader {
            reader: BufReader::with_capacity(128 * 1024, file),
            pos: 0,
            path: path.to_owned(),
        })
    }

    fn seek_to(&mut self, offset: u64) -> Result<()> {
        let moved = if offset >= self.pos {
            i64::try_from(offset - self.pos)
                .map_err(|_| std::io::Error::other("offset out of range"))
                .and_then(|delta| self.reader.seek_relative(delta))
        } else {
            self.reader.seek(SeekFrom::Start(offset)).map(|_| ())
        };
        moved.map_err(|e| SpoolError::io(FileKind::Segment, &self.path, "seek", e))?;
        self.pos = offset;
        Ok(())
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<()> {
        self.reader
            .read_exact(out)
            .map_err(|e| SpoolError::io(FileKind::Segment, &self.path, "read", e))?;
        self.pos += out.len() as u64;
        Ok(())
    }

    /// Reads the frame header of `record`, trusting it as far as it goes
    /// (no payload CRC check); `None` if it does not match the index.
    pub fn read_header(&mut self, record: &RecordMeta) -> Result<Option<FrameHeader>> {
        self.seek_to(u64::from(record.offset))?;
        let mut raw = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut raw)?;
        Ok(FrameHeader::parse(&raw)
            .map(|(_, header)| header)
            .filter(|h| h.seq == record.seq && h.frame_len() == u64::from(record.frame_len)))
    }

    /// Reads and verifies `record`, returning its payload.
    pub fn read_payload(&mut self, record: &RecordMeta) -> Result<Vec<u8>> {
        self.seek_to(u64::from(record.offset))?;
        let mut raw = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut raw)?;
        let corrupt = |path: &Path, reason| SpoolError::CorruptRecord {
            path: path.to_owned(),
            seq: record.seq,
            offset: u64::from(record.offset),
            reason,
        };
        let Some((crc, header)) = FrameHeader::parse(&raw) else {
            return Err(corrupt(&self.path, "has an unreadable frame header"));
        };
        if header.seq != record.seq || header.frame_len() != u64::from(record.frame_len) {
            return Err(corrupt(&self.path, "does not match the index"));
        }
        let mut payload = vec![0u8; header.payload_len as usize];
        self.read_exact(&mut payload)?;
        if frame_crc(&raw[4..], &payload) != crc {
            return Err(corrupt(&self.path, "failed its crc check"));
        }
        Ok(payload)
    }
}
