//! [`QueueStore::probe_write`](crate::QueueStore::probe_write) on SQLite: one committed write of
//! a one-row table, through the writer connection an append uses, so it fails exactly when an
//! append would fail to commit (disk full, read-only file or file system, write lock held
//! elsewhere, I/O error).

use rusqlite::{Connection, TransactionBehavior};

use crate::Result;

/// The probe's table. Created on the first probe rather than by a schema version: it holds
/// nothing anyone reads (`writes` counts probes, `written_at` is the last one's time), and a
/// database written by an older build gains it without a migration.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    writes     INTEGER NOT NULL,
    written_at INTEGER NOT NULL
)";

/// Bumps the probe row in one `IMMEDIATE` transaction and commits it (fsynced, as every commit
/// of this store is with `synchronous = FULL`).
pub(super) fn probe_write(conn: &mut Connection) -> Result<()> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(TABLE)?;
    tx.execute(
        "INSERT INTO write_probe (id, writes, written_at) VALUES (1, 1, ?1)
         ON CONFLICT (id) DO UPDATE SET writes = writes + 1, written_at = excluded.written_at",
        [now],
    )?;
    tx.commit()?;
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use crate::{QueueStore, SqliteStore};

    fn writes(path: &std::path::Path) -> i64 {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.query_row("SELECT writes FROM write_probe", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn each_probe_is_a_committed_write_another_connection_sees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.db");
        let store = SqliteStore::open(&path, 1).unwrap();
        store.probe_write().await.unwrap();
        store.probe_write().await.unwrap();
        assert_eq!(writes(&path), 2, "committed, not rolled back");
        drop(store);
        let store = SqliteStore::open(&path, 1).unwrap();
        store.probe_write().await.unwrap();
        assert_eq!(writes(&path), 3, "kept across a reopen");
    }

    #[tokio::test]
    async fn a_probe_fails_while_the_write_lock_is_held_elsewhere_and_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.db");
        let store = SqliteStore::open(&path, 1).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Fails once the writer's busy timeout (5 s) has passed.
        let err = store.probe_write().await.unwrap_err();
        assert!(err.to_string().contains("locked") && err.to_string().contains("writable"), "{err}");
        assert!(store.queue_info().await.is_ok(), "reads still answer: a read check alone says ready");
        other.execute_batch("ROLLBACK").unwrap();
        store.probe_write().await.unwrap();
    }
}
