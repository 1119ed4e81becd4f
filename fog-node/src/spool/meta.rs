//! `spool.meta`: the state that the segment files alone cannot give back
//! after a restart (the ack watermark, a floor for the next seq once every
//! segment is trimmed, the loss counters), written atomically.
//!
//! ```text
//! spool.meta (52 bytes, little-endian)
//!   0   8  magic "OBSMETA1"
//!   8   4  format version (1)
//!  12   4  reserved (0)
//!  16   8  next_seq floor: no seq below it is ever assigned again
//!  24   8  acked_seq: the hub's ack watermark
//!  32   8  gap_samples: samples dropped by the size bound, ever
//!  40   8  dropped_batches: unacked records dropped by the size bound, ever
//!  48   4  CRC32 of bytes 0..48
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::error::{FileKind, Result, SpoolError};

/// Name of the meta file in the spool directory.
pub const META_FILE: &str = "spool.meta";
const META_MAGIC: [u8; 8] = *b"OBSMETA1";
const META_VERSION: u32 = 1;
const META_LEN: usize = 52;

/// The persisted spool state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub next_seq: u64,
    pub acked_seq: u64,
    pub gap_samples: u64,
    pub dropped_batches: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            next_seq: 1,
            acked_seq: 0,
            gap_samples: 0,
            dropped_batches: 0,
        }
    }
}

impl Meta {
    fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        out[..8].copy_from_slice(&META_MAGIC);
        out[8..12].copy_from_slice(&META_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.next_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.acked_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.gap_samples.to_le_bytes());
        out[40..48].copy_from_slice(&self.dropped_batches.to_le_bytes());
        let crc = crc32fast::hash(&out[..48]);
        out[48..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Meta, String> {
        if bytes.len() != META_LEN {
            return Err(format!("expected {META_LEN} bytes, found {}", bytes.len()));
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if bytes[..8] != META_MAGIC {
            return Err("bad magic".into());
        }
        if crc32fast::hash(&bytes[..48]) != u32_at(48) {
            return Err("crc mismatch".into());
        }
        let version = u32_at(8);
        if version != META_VERSION {
            return Err(format!("unsupported format version {version}"));
        }
        let meta = Meta {
            next_seq: u64_at(16),
            acked_seq: u64_at(24),
            gap_samples: u64_at(32),
            dropped_batches: u64_at(40),
        };
        if meta.next_seq == 0 || meta.acked_seq >= meta.next_seq {
            return Err(format!(
                "inconsistent: acked_seq {} is not below next_seq {}",
                meta.acked_seq, meta.next_seq
            ));
        }
        Ok(meta)
    }
}

/// Reads `{dir}/spool.meta`; `None` when the spool is new.
///
/// A damaged file is an error, not a fresh start: guessing could reuse
/// sequence numbers the hub has already stored.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(SpoolError::io(FileKind::Meta, path, "read", error)),
    };
    Meta::decode(&bytes)
        .map(Some)
        .map_err(|reason| SpoolError::CorruptMeta { path, reason })
}

/// Replaces `{dir}/spool.meta` atomically and durably.
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<()> {
    write_atomically(dir, &dir.join(META_FILE), &meta.encode(), FileKind::Meta)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the
/// new content: write a `.tmp` sibling, fsync it, rename it over `path`,
/// fsync the directory `dir` that holds both.
pub fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], kind: FileKind) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut file = File::create(tmp).map_err(|e| SpoolError::io(kind, tmp, "create", e))?;
    file.write_all(bytes)
        .map_err(|e| SpoolError::io(kind, tmp, "write", e))?;
    file.sync_all()
        .map_err(|e| SpoolError::io(kind, tmp, "fsync", e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| SpoolError::io(kind, path, "rename", e))?;
    fsync_dir(dir)
}

/// Makes the creation, renaming and removal of files in `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| SpoolError::io(FileKind::Directory, dir, "fsync", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_meta_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), None);
        let meta = Meta {
            next_seq: 42,
            acked_seq: 17,
            gap_samples: 5,
            dropped_batches: 2,
        };
        write_meta(dir.path(), &meta).unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), Some(meta));

        let path = dir.path().join(META_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let error = read_meta(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("spool.meta") && error.contains("crc mismatch"),
            "{error}"
        );
    }
}
