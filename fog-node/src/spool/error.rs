//! Errors of the spool: every message names the file (or directory) and the
//! operation that failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result of spool operations.
pub type Result<T, E = SpoolError> = std::result::Result<T, E>;

/// Which kind of spool file an I/O error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The spool directory itself (listing, creating, fsync).
    Directory,
    /// A `{first_seq:020}.seg` segment file.
    Segment,
    /// The `spool.meta` file (next seq, ack watermark, counters).
    Meta,
    /// The `spool.lock` file that keeps a second process out.
    Lock,
    /// A file under `quarantine/`.
    Quarantine,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "directory",
            FileKind::Segment => "segment",
            FileKind::Meta => "meta",
            FileKind::Lock => "lock",
            FileKind::Quarantine => "quarantine",
        })
    }
}

/// What can go wrong in the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed, e.g.
    /// `spool segment /x/00000000000000000001.seg: write failed: No space left on device`.
    #[error("spool {kind} {path}: {op} failed: {source}")]
    Io {
        kind: FileKind,
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The configuration is inconsistent; `field` names the offending value.
    #[error("spool {dir}: invalid config field `{field}`: {reason}")]
    Config {
        dir: PathBuf,
        field: &'static str,
        reason: String,
    },
    /// Another process (or another `Spool` in this one) holds the directory.
    #[error("spool lock {path}: lock failed: the spool is in use by another process")]
    Locked { path: PathBuf },
    /// `spool.meta` exists but cannot be trusted; the spool refuses to guess
    /// the next sequence number, since reusing one would lose data at the hub.
    #[error("spool meta {path}: read failed: {reason}")]
    CorruptMeta { path: PathBuf, reason: String },
    /// A segment was written by a newer (unknown) format version.
    #[error("spool segment {path}: open failed: unsupported format version {version}")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// `append` was called without samples.
    #[error("spool {dir}: append failed: the batch has no samples")]
    EmptyBatch { dir: PathBuf },
    /// The encoded batch does not fit in one segment.
    #[error(
        "spool {dir}: append failed: the encoded batch of {bytes} bytes exceeds the {limit} bytes a segment can hold"
    )]
    RecordTooLarge {
        dir: PathBuf,
        bytes: u64,
        limit: u64,
    },
    /// The hub acknowledged a sequence the spool has not made durable: the
    /// ack is refused, since trusting it could delete data never sent.
    #[error("spool {path}: ack failed: up_to_seq {requested} is above the durable seq {durable}")]
    AckBeyondDurable {
        path: PathBuf,
        requested: u64,
        durable: u64,
    },
    /// The record is not in the spool (acked and trimmed, dropped, or never
    /// appended).
    #[error("spool {dir}: {op} failed: seq {seq} is not in the spool")]
    NotFound {
        dir: PathBuf,
        op: &'static str,
        seq: u64,
    },
    /// A record that passed recovery no longer passes its CRC check (the
    /// medium changed under the spool); reopening turns it into a gap.
    #[error("spool segment {path}: read failed: record seq {seq} at offset {offset} {reason}")]
    CorruptRecord {
        path: PathBuf,
        seq: u64,
        offset: u64,
        reason: &'static str,
    },
    /// An fsync failed earlier; the kernel may have dropped the unsynced
    /// pages, so nothing written since the last good fsync can be trusted
    /// until the spool is reopened (which rescans the files).
    #[error(
        "spool {dir}: {op} refused: the spool is unusable after an fsync failure, reopen it ({reason})"
    )]
    Poisoned {
        dir: PathBuf,
        op: &'static str,
        reason: String,
    },
}

impl SpoolError {
    /// Builds an [`SpoolError::Io`] for `op` on `path`.
    pub(crate) fn io(
        kind: FileKind,
        path: impl Into<PathBuf>,
        op: &'static str,
        source: io::Error,
    ) -> Self {
        SpoolError::Io {
            kind,
            path: path.into(),
            op,
            source,
        }
    }
}
