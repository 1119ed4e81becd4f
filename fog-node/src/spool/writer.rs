//! The open handle on the active (newest) segment: appends whole frames,
//! undoes a partial write, and fsyncs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{FileKind, Result, SpoolError};
use super::meta::fsync_dir;
use super::segment::{SEGMENT_HEADER_LEN, segment_file_name, segment_header};

/// Writer of the active segment.
///
/// Invariant: the file holds whole records up to `write_pos`; anything after
/// it is the remains of a failed write, cut off (`dirty_tail`) before the
/// next write or seal.
#[derive(Debug)]
pub struct ActiveWriter {
    file: File,
    path: PathBuf,
    write_pos: u64,
    synced_pos: u64,
    /// The file cursor may not be at `write_pos` (after a failed write).
    reposition: bool,
    /// Bytes of a failed write may still follow `write_pos`.
    dirty_tail: bool,
    /// The file's directory entry has not been fsynced yet.
    dir_dirty: bool,
}

impl ActiveWriter {
    /// Creates `{dir}/{first_seq:020}.seg` with its header (not yet synced).
    pub fn create(dir: &Path, first_seq: u64) -> Result<ActiveWriter> {
        let path = dir.join(segment_file_name(first_seq));
        // A leftover file of that name can only be an empty segment from a
        // failed roll: no record with this seq exists anywhere.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| SpoolError::io(FileKind::Segment, &path, "create", e))?;
        if let Err(error) = write_frame(&mut file, &segment_header()) {
            drop(file);
            if let Err(remove) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %remove, "cannot remove a half-created segment, recovery will");
            }
            return Err(SpoolError::io(FileKind::Segment, path, "write", error));
        }
        Ok(ActiveWriter {
            file,
            path,
            write_pos: SEGMENT_HEADER_LEN as u64,
            synced_pos: 0,
            reposition: false,
            dirty_tail: false,
            dir_dirty: true,
        })
    }

    /// Reopens a recovered segment whose whole records end at `valid_len`
    /// (already truncated there and synced by recovery).
    pub fn reopen(path: PathBuf, valid_len: u64) -> Result<ActiveWriter> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| SpoolError::io(FileKind::Segment, &path, "open", e))?;
        file.seek(SeekFrom::Start(valid_len))
            .map_err(|e| SpoolError::io(FileKind::Segment, &path, "seek", e))?;
        Ok(ActiveWriter {
            file,
            path,
            write_pos: valid_len,
            synced_pos: valid_len,
            reposition: false,
            dirty_tail: false,
            dir_dirty: false,
        })
    }

    /// Path of the segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the segment's whole records (and header).
    pub fn len(&self) -> u64 {
        self.write_pos
    }

    /// Length of the file that the last fsync covered.
    #[cfg(test)]
    pub fn synced_len(&self) -> u64 {
        self.synced_pos
    }

    /// Bytes written since the last fsync.
    pub fn unsynced(&self) -> u64 {
        self.write_pos.saturating_sub(self.synced_pos)
    }

    /// Whether a sync would have anything to do.
    pub fn is_dirty(&self) -> bool {
        self.unsynced() > 0 || self.dir_dirty
    }

    /// Appends one whole frame and returns its offset. On error the segment
    /// keeps only the records it had: the partial frame is cut off now, or
    /// before the next write if cutting fails too.
    pub fn append(&mut self, frame: &[u8]) -> Result<u64> {
        self.repair_tail()?;
        if self.reposition {
            self.file
                .seek(SeekFrom::Start(self.write_pos))
                .map_err(|e| SpoolError::io(FileKind::Segment, &self.path, "seek", e))?;
            self.reposition = false;
        }
        match write_frame(&mut self.file, frame) {
            Ok(()) => {
                let offset = self.write_pos;
                self.write_pos += frame.len() as u64;
                Ok(offset)
            }
            Err(error) => {
                self.reposition = true;
                self.dirty_tail = true;
                if let Err(cut) = self.repair_tail() {
                    tracing::warn!(error = %cut, "cannot cut a failed write off the segment yet, will retry");
                }
                Err(SpoolError::io(
                    FileKind::Segment,
                    &self.path,
                    "write",
                    error,
                ))
            }
        }
    }

    /// Cuts the remains of a failed write off the file.
    pub fn repair_tail(&mut self) -> Result<()> {
        if !self.dirty_tail {
            return Ok(());
        }
        set_len(&self.file, self.write_pos)
            .map_err(|e| SpoolError::io(FileKind::Segment, &self.path, "truncate", e))?;
        self.dirty_tail = false;
        self.reposition = true;
        Ok(())
    }

    /// Makes every appended record durable: fdatasync the file, and fsync
    /// the directory if the file is new.
    pub fn sync(&mut self, dir: &Path) -> Result<()> {
        if self.unsynced() > 0 {
            sync_data(&self.file)
                .map_err(|e| SpoolError::io(FileKind::Segment, &self.path, "fsync", e))?;
            self.synced_pos = self.write_pos;
        }
        if self.dir_dirty {
            fsync_dir(dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

fn write_frame(file: &mut File, frame: &[u8]) -> io::Result<()> {
    #[cfg(test)]
    if let Some(written) = faults::SHORT_WRITE.take() {
        file.write_all(&frame[..written.min(frame.len())])?;
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "no space left on device (injected)",
        ));
    }
    file.write_all(frame)
}

fn set_len(file: &File, len: u64) -> io::Result<()> {
    #[cfg(test)]
    if faults::FAILED_TRUNCATES.get() > 0 {
        faults::FAILED_TRUNCATES.set(faults::FAILED_TRUNCATES.get() - 1);
        return Err(io::Error::other("truncate failed (injected)"));
    }
    file.set_len(len)
}

fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(test)]
    if faults::FAIL_SYNC.take() {
        return Err(io::Error::other("fsync failed (injected)"));
    }
    file.sync_data()
}

/// Test-only fault injection: the next segment write, truncate or fsync on
/// this thread fails as a full or broken disk would make it fail.
#[cfg(test)]
pub mod faults {
    use std::cell::Cell;

    thread_local! {
        /// The next frame write stops after this many bytes with `StorageFull`.
        pub static SHORT_WRITE: Cell<Option<usize>> = const { Cell::new(None) };
        /// This many truncates (cutting a failed write) fail.
        pub static FAILED_TRUNCATES: Cell<u32> = const { Cell::new(0) };
        /// The next segment fdatasync fails.
        pub static FAIL_SYNC: Cell<bool> = const { Cell::new(false) };
    }
}
