//! `quarantine/`: batches the hub rejected, kept for a human to look at.
//!
//! `{seq}.batch` holds the payload exactly as it was published and
//! `{seq}.reason.txt` the hub's reason; both are written atomically.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{FileKind, Result, SpoolError};
use super::meta::write_atomically;

/// Name of the quarantine directory inside the spool directory.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Number of `*.batch` files in `{dir}/quarantine`.
pub fn count_quarantined(dir: &Path) -> Result<u64> {
    let qdir = dir.join(QUARANTINE_DIR);
    let entries = match fs::read_dir(&qdir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(SpoolError::io(FileKind::Directory, qdir, "list", error)),
    };
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(FileKind::Directory, &qdir, "list", e))?;
        if entry.file_name().to_string_lossy().ends_with(".batch") {
            count += 1;
        }
    }
    Ok(count)
}

/// Writes `{dir}/quarantine/{seq}.batch` and `{seq}.reason.txt`; returns
/// the path of the batch file and whether it is new.
pub fn write_quarantine(
    dir: &Path,
    seq: u64,
    payload: &[u8],
    reason: &str,
) -> Result<(PathBuf, bool)> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir)
        .map_err(|e| SpoolError::io(FileKind::Directory, &qdir, "create", e))?;
    let batch = qdir.join(format!("{seq}.batch"));
    let is_new = !batch.exists();
    let reason_path = qdir.join(format!("{seq}.reason.txt"));
    let mut text = reason.trim_end().to_owned();
    text.push('\n');
    write_atomically(&qdir, &reason_path, text.as_bytes(), FileKind::Quarantine)?;
    write_atomically(&qdir, &batch, payload, FileKind::Quarantine)?;
    if is_new {
        crate::spool::meta::fsync_dir(dir)?;
    }
    Ok((batch, is_new))
}
