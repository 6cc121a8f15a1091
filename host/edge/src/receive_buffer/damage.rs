//! What a damaged receive buffer looks like: which SQLite errors mean the file is damaged
//! ([`BufferError::damage`]) and what to check for the others, the file identity that notices a
//! deletion or replacement under the running edge, the check of the small tables at open, the
//! close that leaves a damaged file and its log as they are (a single row that does not decode
//! is not damage of the file: see `chunks`).

use std::path::Path;

use rusqlite::{Connection, ErrorCode};

use super::{BufferError, CHECKED_TABLES};

impl BufferError {
    /// What is wrong with the file, when this error means it is damaged (SQLite reports it
    /// corrupt or not a database, it is shorter than its header says, it was deleted or
    /// replaced); `None` for errors that may pass (disk full, busy, I/O) or are not the file's.
    pub fn damage(&self) -> Option<String> {
        match self {
            BufferError::Damaged { cause, .. } => Some(cause.clone()),
            BufferError::Sqlite(e) => damage_of(e),
            _ => None,
        }
    }
}

/// The damage an SQLite error reports, if it reports any.
pub(super) fn damage_of(e: &rusqlite::Error) -> Option<String> {
    let failure = e.sqlite_error()?;
    match failure.code {
        ErrorCode::DatabaseCorrupt => Some(format!("SQLite finds it corrupt ({e})")),
        ErrorCode::NotADatabase => Some(format!("it is not an SQLite database ({e})")),
        // A read past the end of the file: the header promises pages the file does not have.
        ErrorCode::SystemIoFailure if failure.extended_code == rusqlite::ffi::SQLITE_IOERR_SHORT_READ => {
            Some("it is shorter than its header says (truncated)".into())
        }
        _ => None,
    }
}

/// What to check for an SQLite error, by its code.
pub(super) fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk holding control.state-dir is full: free space there",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds the receive buffer's lock: is a second edge using this control.state-dir?"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "check that control.state-dir is a directory the edge can write"
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => "the file is damaged",
        Some(ErrorCode::SystemIoFailure) => "the disk holding control.state-dir reported an I/O error",
        _ => "check the disk holding control.state-dir",
    }
}

/// The file's identity (device, inode), to notice it being deleted or replaced.
#[cfg(unix)]
pub(super) fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// The file's identity: only its existence where there are no inodes.
#[cfg(not(unix))]
pub(super) fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|_| (0, 0))
}

/// Verifies [`CHECKED_TABLES`]: `Some(problem)` when `quick_check` finds one.
pub(super) fn check_tables(conn: &Connection) -> rusqlite::Result<Option<String>> {
    for table in CHECKED_TABLES {
        let mut stmt = conn.prepare(&format!("PRAGMA quick_check({table})"))?;
        let found: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        if found != ["ok"] {
            return Ok(Some(format!("PRAGMA quick_check({table}) reports: {}", found.join("; "))));
        }
    }
    Ok(None)
}

/// Why `ReceiveBuffer::prepare` failed.
pub(super) enum Check {
    Sqlite(rusqlite::Error),
    Problem(String),
}

impl From<rusqlite::Error> for Check {
    fn from(e: rusqlite::Error) -> Self {
        Check::Sqlite(e)
    }
}

/// Closes `conn` without the checkpoint SQLite makes when the last connection closes, which
/// would copy the log into a damaged file and delete the `-wal`: moved aside, the pair stays as
/// it was found.
pub(super) fn keep_files(conn: Connection) {
    let _ = conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
}
