//! Configuration of the spool: where it lives, whose batches it holds, its
//! size bounds and the group-commit cadence the caller's loop should follow.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{Result, SpoolError};
use super::segment::{MAX_RECORD_BYTES, SEGMENT_HEADER_LEN};

/// Longest accepted `node_id`, in bytes.
pub const MAX_NODE_ID_LEN: usize = 128;
/// Smallest accepted `segment_bytes`: room for the header and a few batches.
pub const MIN_SEGMENT_BYTES: u64 = 4 * 1024;
/// Largest accepted `segment_bytes`; recovery reads one segment at a time
/// into memory, so this bounds its peak allocation.
pub const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Settings of a [`Spool`](super::Spool).
///
/// `fsync_interval` and `fsync_bytes` are not acted on by the spool itself:
/// the caller's group-commit loop calls [`Spool::sync`](super::Spool::sync)
/// when `fsync_interval` has passed since the last sync or when
/// [`Spool::needs_sync`](super::Spool::needs_sync) says `fsync_bytes` are
/// waiting, whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory holding the segments, `spool.meta` and `quarantine/`.
    pub dir: PathBuf,
    /// Site id written into every batch (`[a-z][a-z0-9]{1,31}`).
    pub site: String,
    /// Node id written into every batch.
    pub node_id: String,
    /// A segment is sealed and a new one started before it would grow past
    /// this size; one batch must fit in one segment.
    pub segment_bytes: u64,
    /// Bound on the total size of the segment files; past it the oldest
    /// segments are dropped and replaced by a gap record. At least
    /// `2 * segment_bytes`.
    pub max_bytes: u64,
    /// Longest time the group-commit loop lets appended batches wait for
    /// an fsync (TOML key `fsync_interval_ms`).
    #[serde(rename = "fsync_interval_ms", with = "millis")]
    pub fsync_interval: Duration,
    /// Unsynced bytes after which the group-commit loop syncs at once.
    pub fsync_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("spool"),
            site: String::new(),
            node_id: String::new(),
            segment_bytes: 64 * 1024 * 1024,
            max_bytes: 4 * 1024 * 1024 * 1024,
            fsync_interval: Duration::from_millis(100),
            fsync_bytes: 1024 * 1024,
        }
    }
}

impl SpoolConfig {
    /// The defaults, for a spool in `dir` holding batches of `site`/`node_id`.
    pub fn new(
        dir: impl Into<PathBuf>,
        site: impl Into<String>,
        node_id: impl Into<String>,
    ) -> Self {
        SpoolConfig {
            dir: dir.into(),
            site: site.into(),
            node_id: node_id.into(),
            ..SpoolConfig::default()
        }
    }

    /// Rejects values that parse but cannot work, naming the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, reason: String| {
            Err(SpoolError::Config {
                dir: self.dir.clone(),
                field,
                reason,
            })
        };
        if self.dir.as_os_str().is_empty() {
            return invalid("dir", "must not be empty".into());
        }
        if let Err(error) = obs_common::site::validate_site_id(&self.site) {
            return invalid("site", error.to_string());
        }
        if self.node_id.is_empty() || self.node_id.len() > MAX_NODE_ID_LEN {
            return invalid(
                "node_id",
                format!(
                    "must be 1 to {MAX_NODE_ID_LEN} bytes, got {}",
                    self.node_id.len()
                ),
            );
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return invalid(
                "segment_bytes",
                format!(
                    "must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                    self.segment_bytes
                ),
            );
        }
        if self.max_bytes < 2 * self.segment_bytes {
            return invalid(
                "max_bytes",
                format!(
                    "must be at least 2 * segment_bytes ({}), got {}",
                    2 * self.segment_bytes,
                    self.max_bytes
                ),
            );
        }
        if self.fsync_interval.is_zero() {
            return invalid("fsync_interval_ms", "must be at least 1 ms".into());
        }
        if self.fsync_bytes == 0 {
            return invalid("fsync_bytes", "must be at least 1".into());
        }
        Ok(())
    }

    /// Largest encoded record (frame header included) a segment can take.
    pub(crate) fn max_frame_bytes(&self) -> u64 {
        (self.segment_bytes - SEGMENT_HEADER_LEN as u64).min(MAX_RECORD_BYTES as u64)
    }
}

/// `Duration` as whole milliseconds, so the TOML value is a plain integer.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
