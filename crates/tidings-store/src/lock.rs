//! The data directory's lock: one hub per directory.
//!
//! An advisory lock (`flock` on Unix, through std) on `DIR/LOCK`, held for
//! as long as the store is open and released by the kernel when the
//! process ends, however it ends: a killed hub never leaves a stale lock.
//! The file holds the owner's process id, for the error message only.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use crate::error::OpenError;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A held lock on a data directory; released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The locked file: the lock lives as long as this handle.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// The process id written by the lock's holder, if readable.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
