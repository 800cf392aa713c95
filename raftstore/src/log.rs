//! The Raft log of one member: entries, hard state, membership and the latest snapshot.
//!
//! Entries and hard state are kept in `raft-engine` (built for Raft logs); the newest
//! entries, up to [`LogFiles::memory_bytes`], and the terms of all are also held in
//! memory (the `tail` module). raft-rs reads them through [`raft::Storage`], older
//! entries from the engine's files. The snapshot is two files beside it: the state
//! machine's bytes in `snapshot-INDEX.data`, written first, and the metadata in
//! `snapshot.bin`, replaced atomically, which names the data file by its index. The
//! data stays on disk (it is as large as the key space): it is read back only to
//! restart or to send it to a lagging member. Without a directory the log lives in
//! memory only (unit tests).
//!
//! MUST: call [`RaftLog::persist`] for what a `Ready` asks to persist before sending the
//! Ready's persisted messages (raft-rs' rule), and before `advance`.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Config as EngineConfig, Engine, LogBatch, MessageExt};

use crate::metrics;
use tail::Tail;

mod tail;

/// The one Raft group rk8s keeps in the engine.
const GROUP: u64 = 1;
const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
/// The latest snapshot's metadata (a raft `Snapshot` without data).
const SNAPSHOT_FILE: &str = "snapshot.bin";

/// The state machine's bytes of the snapshot at `index`.
fn data_file(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("snapshot-{index:020}.data"))
}

/// Writes `path` in `dir` through `write` into a temporary file, then renames it into
/// place (both synced with `sync`).
fn write_atomically(
    dir: &Path,
    path: &Path,
    sync: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), LogError> {
    let io = |source| LogError::Snapshot {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&tmp).map_err(io)?);
    write(&mut out).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    if sync {
        file.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if sync {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Writes a snapshot's files in `dir`: its data through `write` into its own file,
/// then the metadata that names it, atomically (a crash in between leaves the
/// previous snapshot in force); then the older data files go.
fn write_snapshot_files(
    dir: &Path,
    sync: bool,
    meta: &SnapshotMetadata,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), LogError> {
    let data = data_file(dir, meta.index);
    write_atomically(dir, &data, sync, write)?;
    let mut only_meta = Snapshot::default();
    only_meta.set_metadata(meta.clone());
    let bytes = only_meta
        .write_to_bytes()
        .map_err(|e| LogError::Corrupt(e.to_string()))?;
    write_atomically(dir, &dir.join(SNAPSHOT_FILE), sync, |w| w.write_all(&bytes))?;
    let current = data.file_name();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let stale = name.to_str().is_some_and(|n| {
            n.starts_with("snapshot-") && (n.ends_with(".data") || n.ends_with(".tmp"))
        });
        if stale && Some(name.as_os_str()) != current {
            // Best effort: a leftover is removed at the next snapshot.
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Tells raft-engine how to index raft-rs entries.
#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Errors of the log's persistence.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// raft-engine failed.
    #[error("raft log engine at {dir}: {source}")]
    Engine {
        /// The log directory.
        dir: String,
        /// The engine's error.
        #[source]
        source: raft_engine::Error,
    },
    /// Reading or writing the snapshot file failed.
    #[error("snapshot file {path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data did not decode.
    #[error("corrupt raft log data: {0}")]
    Corrupt(String),
}

/// How the log's files are sized, when old ones go, and how much of the log is also
/// held in memory.
#[derive(Clone, Copy, Debug)]
pub struct LogFiles {
    /// Size at which a log file is closed and the next one started.
    pub file_bytes: u64,
    /// Once the files hold more than this, those whose entries all precede the
    /// latest snapshot are removed (at the next snapshot). Above the log a snapshot
    /// leaves behind (see `node::DEFAULT_SNAPSHOT_BYTES`).
    pub purge_bytes: u64,
    /// Bytes of the newest entries held in memory besides the files (their data and
    /// context). What a member applies and sends to followers in step is among them;
    /// older entries are read from the files.
    pub memory_bytes: u64,
}

impl Default for LogFiles {
    fn default() -> Self {
        LogFiles {
            file_bytes: 16 << 20,
            purge_bytes: 128 << 20,
            memory_bytes: 16 << 20,
        }
    }
}

/// Entries read from the files at a time when the log is opened.
const OPEN_CHUNK: u64 = 4096;

struct Disk {
    engine: Arc<Engine>,
    dir: PathBuf,
    sync: bool,
}

/// A member's Raft log.
pub struct RaftLog {
    hard_state: HardState,
    /// The newest applied membership.
    conf_state: ConfState,
    /// The latest snapshot: its metadata; its data too when the log has no directory
    /// (with one, the data is in its file).
    snapshot: Snapshot,
    /// The entries after the snapshot: all their terms, the newest in memory.
    tail: Tail,
    disk: Option<Disk>,
    /// The commit index moved since the hard state was last written.
    commit_unwritten: bool,
}

impl RaftLog {
    /// A log in memory only, starting with the given voters (a new cluster's first
    /// members) or empty (a member waiting to be added).
    pub fn in_memory(voters: &[u64]) -> Self {
        let mut snapshot = Snapshot::default();
        let meta = snapshot.mut_metadata();
        meta.mut_conf_state().voters = voters.to_vec();
        // A fresh cluster's log starts after a conventional empty snapshot at index
        // 0, term 0 (as raft-rs' MemStorage does with `new_with_conf_state`).
        RaftLog {
            hard_state: HardState::default(),
            conf_state: snapshot.get_metadata().get_conf_state().clone(),
            snapshot,
            // Without files, every entry stays in memory.
            tail: Tail::new(0, u64::MAX),
            disk: None,
            commit_unwritten: false,
        }
    }

    /// Opens (or creates) the log in `dir`. `voters` is used only when the directory
    /// is new. With `sync`, every persisted batch is fsynced (tests that model process
    /// crashes, not power loss, may turn it off).
    pub fn open(dir: &Path, voters: &[u64], sync: bool) -> Result<Self, LogError> {
        Self::open_with(dir, voters, sync, LogFiles::default())
    }

    /// [`RaftLog::open`] with log files sized by `files`.
    pub fn open_with(
        dir: &Path,
        voters: &[u64],
        sync: bool,
        files: LogFiles,
    ) -> Result<Self, LogError> {
        let engine_err = |source| LogError::Engine {
            dir: dir.display().to_string(),
            source,
        };
        fs::create_dir_all(dir).map_err(|source| LogError::Snapshot {
            path: dir.to_path_buf(),
            source,
        })?;
        let engine = Engine::open(EngineConfig {
            dir: dir.join("log").display().to_string(),
            // Batches are a few kilobytes of small entries: compressing them costs
            // the raft thread more than the bytes saved (etcd's WAL does not either).
            batch_compression_threshold: raft_engine::ReadableSize(0),
            target_file_size: raft_engine::ReadableSize(files.file_bytes),
            purge_threshold: raft_engine::ReadableSize(files.purge_bytes.max(files.file_bytes)),
            // Removed files are kept to be written over again (the default): an
            // overwrite needs no new blocks, so its fsync costs less.
            enable_log_recycle: true,
            ..Default::default()
        })
        .map_err(engine_err)?;
        let mut log = RaftLog::in_memory(voters);
        let snap_path = dir.join(SNAPSHOT_FILE);
        match fs::read(&snap_path) {
            Ok(bytes) => {
                let mut snapshot = Snapshot::parse_from_bytes(&bytes)
                    .map_err(|e| LogError::Corrupt(format!("{}: {e}", snap_path.display())))?;
                if !snapshot.get_data().is_empty() {
                    // Written by an older rk8s, with the data inside: moved to its own
                    // file once.
                    let data = snapshot.take_data();
                    write_snapshot_files(dir, sync, snapshot.get_metadata(), |w| {
                        w.write_all(&data)
                    })?;
                }
                log.snapshot = snapshot;
                log.conf_state = log.snapshot.get_metadata().get_conf_state().clone();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LogError::Snapshot {
                    path: snap_path,
                    source,
                });
            }
        }
        if let Some(hs) = engine
            .get_message::<HardState>(GROUP, HARD_STATE_KEY)
            .map_err(engine_err)?
        {
            log.hard_state = hs;
        }
        let stored_conf_state = engine
            .get_message::<ConfState>(GROUP, CONF_STATE_KEY)
            .map_err(engine_err)?;
        let fresh = stored_conf_state.is_none() && log.snapshot.get_metadata().index == 0;
        if let Some(cs) = stored_conf_state {
            // Written at every membership change and snapshot: the newest.
            log.conf_state = cs;
        }
        let snap_index = log.snapshot.get_metadata().index;
        log.tail = Tail::new(snap_index, files.memory_bytes);
        if let (Some(first), Some(last)) = (engine.first_index(GROUP), engine.last_index(GROUP)) {
            // Read in chunks: the tail keeps every term but only the newest entries.
            let mut next = first.max(snap_index + 1);
            let mut chunk = Vec::new();
            while next <= last {
                let end = (next + OPEN_CHUNK).min(last + 1);
                chunk.clear();
                engine
                    .fetch_entries_to::<EntryExt>(GROUP, next, end, None, &mut chunk)
                    .map_err(engine_err)?;
                log.tail.append(&chunk);
                next = end;
            }
        }
        log.disk = Some(Disk {
            engine: Arc::new(engine),
            dir: dir.to_path_buf(),
            sync,
        });
        // A new cluster's first membership is written at once: a single member that
        // never changes membership nor snapshots must still know it is a voter after a
        // restart.
        if fresh && !voters.is_empty() {
            let cs = log.conf_state.clone();
            log.set_conf_state(cs)?;
        }
        Ok(log)
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last(&self) -> u64 {
        self.tail.last()
    }

    /// The membership as of the newest applied configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The hard state (term, vote, commit).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot's metadata (index, term, membership).
    pub fn latest_snapshot(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }

    /// The latest snapshot with its data (the state machine's bytes; none for a new
    /// cluster's log), read from its file when the log has a directory.
    pub fn read_snapshot(&self) -> Result<Snapshot, LogError> {
        let mut snapshot = self.snapshot.clone();
        let Some(disk) = &self.disk else {
            return Ok(snapshot);
        };
        let index = self.snapshot_index();
        if index == 0 {
            return Ok(snapshot);
        }
        let path = data_file(&disk.dir, index);
        let data = fs::read(&path).map_err(|source| LogError::Snapshot { path, source })?;
        snapshot.set_data(data.into());
        Ok(snapshot)
    }

    /// Appends entries, replacing any conflicting suffix, and updates the hard state;
    /// then writes both in one batch (one fsync).
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), LogError> {
        self.tail.append(entries);
        // A new term or vote must be on disk before any message says so; a commit
        // index alone need not, so it waits for the next entries (`set_commit`).
        let vote_or_term = match hard_state {
            Some(hs) if hs.term != self.hard_state.term || hs.vote != self.hard_state.vote => {
                self.hard_state = hs.clone();
                true
            }
            Some(hs) => {
                self.set_commit(hs.commit)?;
                false
            }
            None => false,
        };
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let mut batch = LogBatch::default();
        let corrupt = |e: raft_engine::Error| LogError::Engine {
            dir: disk.dir.display().to_string(),
            source: e,
        };
        batch
            .add_entries::<EntryExt>(GROUP, entries)
            .map_err(corrupt)?;
        // A commit index that moved since the last write rides along with entries.
        if vote_or_term || (self.commit_unwritten && !entries.is_empty()) {
            batch
                .put_message(GROUP, HARD_STATE_KEY.to_vec(), &self.hard_state)
                .map_err(corrupt)?;
            self.commit_unwritten = false;
        }
        if !batch.is_empty() {
            disk.engine.write(&mut batch, disk.sync).map_err(corrupt)?;
        }
        Ok(())
    }

    /// Records the commit index (raft-rs reports it after `advance`). Kept in memory
    /// and written with the next entries: a commit index lost in a crash is learned
    /// again from the leader (a single member commits its log again once it leads),
    /// and it never falls below the snapshot the member restarts from, which is
    /// written with its hard state. Writing it at once would cost a second write per
    /// ready.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), LogError> {
        if commit != self.hard_state.commit {
            self.hard_state.commit = commit;
            self.commit_unwritten = true;
        }
        Ok(())
    }

    /// Records a membership change applied at `index`.
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), LogError> {
        self.conf_state = cs.clone();
        if let Some(disk) = &self.disk {
            let mut batch = LogBatch::default();
            let err = |e| LogError::Engine {
                dir: disk.dir.display().to_string(),
                source: e,
            };
            batch
                .put_message(GROUP, CONF_STATE_KEY.to_vec(), &cs)
                .map_err(err)?;
            disk.engine.write(&mut batch, disk.sync).map_err(err)?;
        }
        Ok(())
    }

    /// Installs a snapshot received from the leader: it replaces the entries it
    /// covers and becomes what lagging members are sent.
    pub fn install_snapshot(&mut self, mut snapshot: Snapshot) -> Result<(), LogError> {
        let data = snapshot.take_data();
        self.install_snapshot_with(snapshot.take_metadata(), |w| w.write_all(&data))
    }

    /// Installs a snapshot taken locally, whose data `write` writes (straight to its
    /// file: the state machine's bytes are never all in memory).
    pub fn install_snapshot_with(
        &mut self,
        meta: SnapshotMetadata,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), LogError> {
        let index = meta.index;
        if index <= self.snapshot_index() {
            return Ok(());
        }
        let consistent = self.tail.compact(index, meta.term);
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        let mut snapshot = Snapshot::default();
        match &self.disk {
            None => {
                let mut data = Vec::new();
                write(&mut data).map_err(|e| LogError::Corrupt(e.to_string()))?;
                snapshot.set_data(data.into());
            }
            Some(disk) => {
                write_snapshot_files(&disk.dir, disk.sync, &meta, write)?;
                let err = |e| LogError::Engine {
                    dir: disk.dir.display().to_string(),
                    source: e,
                };
                if consistent {
                    disk.engine.compact_to(GROUP, index + 1);
                } else {
                    // Every entry the engine holds conflicts with the snapshot.
                    let mut batch = LogBatch::default();
                    batch.add_command(GROUP, raft_engine::Command::Clean);
                    disk.engine.write(&mut batch, disk.sync).map_err(err)?;
                }
                let mut batch = LogBatch::default();
                batch
                    .put_message(GROUP, HARD_STATE_KEY.to_vec(), &self.hard_state)
                    .map_err(err)?;
                batch
                    .put_message(GROUP, CONF_STATE_KEY.to_vec(), meta.get_conf_state())
                    .map_err(err)?;
                disk.engine.write(&mut batch, disk.sync).map_err(err)?;
                // Files that now hold only compacted entries and overwritten state go
                // (raft-engine keeps some to reuse).
                disk.engine.purge_expired_files().map_err(err)?;
            }
        }
        self.conf_state = meta.get_conf_state().clone();
        snapshot.set_metadata(meta);
        self.snapshot = snapshot;
        Ok(())
    }

    /// Number of entries kept after the snapshot.
    pub fn entries_since_snapshot(&self) -> u64 {
        self.tail.len()
    }

    /// Bytes of the entries kept after the snapshot (their data and context).
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.tail.bytes()
    }

    /// Appends to `out` the entries of [low, high) no longer in memory, up to
    /// `max` bytes (at least one entry), from the files. Returns whether all were
    /// read (the size limit was not reached).
    fn read_from_files(
        &self,
        low: u64,
        high: u64,
        max: u64,
        out: &mut Vec<Entry>,
    ) -> raft::Result<bool> {
        let Some(disk) = &self.disk else {
            // Without files, every entry is in memory.
            return Err(unavailable());
        };
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let read = disk
            .engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, Some(max), out)
            .map_err(|e| {
                tracing::warn!("reading raft log entries {low}..{high}: {e}");
                unavailable()
            })?;
        metrics::LOG_ENTRIES_READ.inc_by(read as u64);
        Ok(read as u64 == high - low)
    }
}

fn unavailable() -> raft::Error {
    raft::Error::Store(StorageError::Unavailable)
}

impl raft::Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(unavailable());
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let cached = self.tail.first_cached();
        if low < cached && !self.read_from_files(low, high.min(cached), max, &mut out)? {
            return Ok(out);
        }
        let mut size: u64 = out.iter().map(|e| u64::from(e.compute_size())).sum();
        for e in self.tail.cached(low.max(cached), high) {
            size += u64::from(e.compute_size());
            // Always return at least one entry (raft-rs' rule).
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.tail.term(idx).ok_or_else(unavailable)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        self.read_snapshot().map_err(|e| {
            tracing::warn!(to, "reading the snapshot to send: {e}");
            unavailable()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                match e.file_type().unwrap().is_dir() {
                    true => dir_bytes(&e.path()),
                    false => e.metadata().unwrap().len(),
                }
            })
            .sum()
    }

    #[test]
    fn files_of_compacted_entries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles {
            file_bytes: 64 << 10,
            purge_bytes: 256 << 10,
            memory_bytes: 16 << 10,
        };
        let mut log = RaftLog::open_with(dir.path(), &[1], false, files).unwrap();
        let mut hs = HardState {
            term: 1,
            ..Default::default()
        };
        // 2.5 MiB of entries, a snapshot after every 64 KiB.
        let mut index = 0;
        for _ in 0..40 {
            let entries: Vec<Entry> = (0..64)
                .map(|_| {
                    index += 1;
                    Entry {
                        index,
                        term: 1,
                        data: vec![7; 1024].into(),
                        ..Default::default()
                    }
                })
                .collect();
            hs.commit = index;
            log.persist(&entries, Some(&hs)).unwrap();
            let mut snapshot = Snapshot::default();
            snapshot.set_data(vec![1, 2, 3].into());
            let meta = snapshot.mut_metadata();
            meta.index = index;
            meta.term = 1;
            meta.mut_conf_state().voters = vec![1];
            log.install_snapshot(snapshot).unwrap();
        }
        let bytes = dir_bytes(dir.path());
        assert!(bytes < 1 << 20, "the log directory holds {bytes} bytes");
        drop(log);
        let log = RaftLog::open_with(dir.path(), &[], false, files).unwrap();
        assert_eq!((log.snapshot_index(), log.last()), (index, index));
        assert_eq!(log.hard_state().commit, index);
        // The data is in its own file, the latest one only, and read back from it.
        let data_files: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snapshot-"))
            .collect();
        assert_eq!(data_files, [format!("snapshot-{index:020}.data")]);
        assert!(log.snapshot.get_data().is_empty(), "the data stays on disk");
        assert_eq!(log.read_snapshot().unwrap().get_data(), [1, 2, 3]);
    }

    /// The entries of [low, high) through raft-rs' interface, at most `max` bytes.
    fn read(log: &RaftLog, low: u64, high: u64, max: Option<u64>) -> Vec<(u64, u64, usize)> {
        raft::Storage::entries(log, low, high, max, GetEntriesContext::empty(false))
            .unwrap()
            .iter()
            .map(|e| (e.index, e.term, e.data.len()))
            .collect()
    }

    #[test]
    fn entries_beyond_the_memory_bound_are_read_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles {
            memory_bytes: 8 << 10,
            ..LogFiles::default()
        };
        let mut log = RaftLog::open_with(dir.path(), &[1], false, files).unwrap();
        // 100 entries of 1 KiB (plus their index), the term changing every 30.
        let want: Vec<(u64, u64, usize)> = (1..=100)
            .map(|i| (i, 1 + i / 30, 1024 + i as usize))
            .collect();
        for chunk in want.chunks(7) {
            let entries: Vec<Entry> = chunk
                .iter()
                .map(|&(index, term, len)| Entry {
                    index,
                    term,
                    data: vec![index as u8; len].into(),
                    ..Default::default()
                })
                .collect();
            log.persist(&entries, None).unwrap();
        }
        let mut log = Some(log);
        for _reopened in [false, true] {
            let log = match log.take() {
                Some(log) => log,
                None => RaftLog::open_with(dir.path(), &[], false, files).unwrap(),
            };
            assert!(
                log.tail.first_cached() > 90,
                "only about 8 KiB stay in memory"
            );
            assert_eq!(log.entries_since_snapshot(), 100);
            assert!(log.bytes_since_snapshot() > 100 << 10);
            let before = metrics::LOG_ENTRIES_READ.get();
            assert_eq!(read(&log, 1, 101, None), want);
            assert!(metrics::LOG_ENTRIES_READ.get() >= before + 90);
            // Across the boundary between the files and memory, and within each.
            assert_eq!(read(&log, 85, 97, None), want[84..96]);
            assert_eq!(read(&log, 98, 100, None), want[97..99]);
            // A byte limit stops the read in the files, and returns one entry at least.
            let limited = read(&log, 1, 101, Some(5000));
            assert!((3..=5).contains(&limited.len()), "{}", limited.len());
            assert_eq!(limited, want[..limited.len()]);
            assert_eq!(read(&log, 1, 101, Some(1)), want[..1]);
            for &(index, term, _) in &want {
                assert_eq!(raft::Storage::term(&log, index).unwrap(), term);
            }
        }
    }

    #[test]
    fn a_snapshot_file_with_its_data_inside_is_split_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        drop(RaftLog::open(dir.path(), &[1], false).unwrap());
        // The layout of earlier rk8s: the data inside `snapshot.bin`.
        let mut old = Snapshot::default();
        old.set_data(vec![4, 5, 6].into());
        old.mut_metadata().index = 9;
        old.mut_metadata().term = 2;
        old.mut_metadata().mut_conf_state().voters = vec![1];
        fs::write(
            dir.path().join(SNAPSHOT_FILE),
            old.write_to_bytes().unwrap(),
        )
        .unwrap();
        let log = RaftLog::open(dir.path(), &[], false).unwrap();
        assert_eq!((log.snapshot_index(), log.latest_snapshot().term), (9, 2));
        assert_eq!(log.read_snapshot().unwrap().get_data(), [4, 5, 6]);
        let meta = Snapshot::parse_from_bytes(&fs::read(dir.path().join(SNAPSHOT_FILE)).unwrap());
        assert!(meta.unwrap().get_data().is_empty());
        drop(log);
        let log = RaftLog::open(dir.path(), &[], false).unwrap();
        assert_eq!(log.read_snapshot().unwrap().get_data(), [4, 5, 6]);
    }

    #[test]
    fn a_new_clusters_membership_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLog::open(dir.path(), &[7], true).unwrap();
        assert_eq!(log.conf_state().voters, vec![7]);
        drop(log);
        // Restarted members pass no voters: the membership comes from disk.
        let log = RaftLog::open(dir.path(), &[], true).unwrap();
        assert_eq!(log.conf_state().voters, vec![7]);
        // A member waiting to be added stays without membership.
        let empty = tempfile::tempdir().unwrap();
        drop(RaftLog::open(empty.path(), &[], true).unwrap());
        assert!(
            RaftLog::open(empty.path(), &[], true)
                .unwrap()
                .conf_state()
                .voters
                .is_empty()
        );
    }
}
