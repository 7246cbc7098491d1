//! Why a store cannot be opened, worded for the person starting the hub:
//! each error names the file and what to do.

use std::path::PathBuf;

use tidings_core::{StoreError, StoreErrorKind};

/// A store could not be opened. Nothing on disk was changed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file system refused something: permissions, space, a missing
    /// parent directory.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Another process has the data directory open.
    #[error(
        "the data directory {} is in use by another tidings process{}: stop it, or give this hub another --data-dir",
        dir.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The process id its lock file names, when readable.
        holder: Option<u32>,
    },
    /// The history file is damaged: not a crash (those are repaired on
    /// opening) but a file cut short, overwritten or changed by something
    /// else.
    #[error(
        "the history file {file} is damaged ({detail}). Nothing was changed. To recover: stop every hub that uses it, move the file aside (`mv {file} {file}.damaged`) and start the hub again. It then starts an empty history whose new ids still sort after the old ones. See docs/storage.md",
        file = file.display()
    )]
    Damaged {
        /// The file.
        file: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The history file is in a format this build does not read.
    #[error(
        "the history file {file} has a format this build of tidings does not read ({detail}): run the version of tidings that wrote it, or move the file aside to start an empty history (see docs/storage.md)",
        file = file.display()
    )]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// Which format it has.
        detail: String,
    },
}

impl OpenError {
    /// Sorts a redb error met while opening or checking `file`.
    pub(crate) fn from_redb(file: &std::path::Path, err: redb::DatabaseError) -> Self {
        use redb::{DatabaseError as D, StorageError as S};
        let damaged = |detail: String| Self::Damaged {
            file: file.to_path_buf(),
            detail,
        };
        match err {
            D::UpgradeRequired(version) => Self::Unsupported {
                file: file.to_path_buf(),
                detail: format!("redb file format {version}"),
            },
            D::Storage(S::Io(source))
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ) =>
            {
                damaged(source.to_string())
            }
            D::Storage(S::Io(source)) => Self::Io {
                path: file.to_path_buf(),
                source,
            },
            other => damaged(other.to_string()),
        }
    }
}

impl OpenError {
    /// This error met while reopening the history of a running hub, as the
    /// hub's kind of error.
    pub(crate) fn into_store_error(self) -> StoreError {
        let kind = match &self {
            Self::Io { source, .. } => io_kind(source),
            Self::Locked { .. } => StoreErrorKind::Unavailable,
            Self::Damaged { .. } | Self::Unsupported { .. } => StoreErrorKind::Damaged,
        };
        StoreError::new(kind, format!("reopening the history: {self}"))
    }
}

/// What an I/O error means for the hub: no space (or quota) left, or
/// some other failure of the disk.
pub(crate) fn io_kind(err: &std::io::Error) -> StoreErrorKind {
    /// `ENOSPC` and `EDQUOT` on Linux, for errors std does not sort.
    const NO_SPACE: [i32; 2] = [28, 122];
    let full = matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || err
        .raw_os_error()
        .is_some_and(|code| NO_SPACE.contains(&code));
    if full {
        StoreErrorKind::Full
    } else {
        StoreErrorKind::Unavailable
    }
}

/// What a redb error means for the hub. Only an I/O error (and redb's
/// refusal after one) is an outage: those latch redb until the database is
/// reopened.
pub(crate) fn redb_kind(err: &redb::Error) -> StoreErrorKind {
    use redb::Error as E;
    match err {
        E::Io(source) => io_kind(source),
        // A write failed earlier and redb refuses everything until the
        // database is reopened (the store does that at once).
        E::PreviousIo => StoreErrorKind::Unavailable,
        E::DatabaseClosed => StoreErrorKind::Closed,
        E::Corrupted(_)
        | E::UpgradeRequired(_)
        | E::TableTypeMismatch { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_)
        | E::TypeDefinitionChanged { .. }
        | E::TableDoesNotExist(_) => StoreErrorKind::Damaged,
        // The rest is a misuse of redb (a transaction left open, a value
        // too large, ...), not a fault of the disk: no reopening helps.
        _ => StoreErrorKind::Invalid,
    }
}

/// A redb failure during normal operation, for the hub, sorted by what it
/// means (a full disk, an I/O error, damage, ...).
pub(crate) fn store_error(what: &str, err: impl Into<redb::Error>) -> StoreError {
    let err = err.into();
    StoreError::new(redb_kind(&err), format!("{what}: {err}"))
}

/// A record that does not read back.
pub(crate) fn damaged(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Damaged, format!("{what}: {err}"))
}

/// Runs `call`, turning a panic into an error. redb trusts the pages it
/// reads (it verifies checksums only when repairing or checking), so a page
/// damaged behind its back can make it panic; that must end one call with
/// an error, not the hub's sequencer thread.
pub(crate) fn guarded<T>(
    what: &str,
    call: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    catch_panic(call, |detail| {
        StoreError::new(
            StoreErrorKind::Damaged,
            format!(
                "{what} failed, the history file looks damaged ({detail}); see docs/storage.md"
            ),
        )
    })
}

/// Runs `call`; a panic becomes `on_panic` of its message.
pub(crate) fn catch_panic<T, E>(
    call: impl FnOnce() -> Result<T, E>,
    on_panic: impl FnOnce(String) -> E,
) -> Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        Err(on_panic(detail))
    })
}
