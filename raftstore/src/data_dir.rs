//! A member's data directory: its id (`member_id`), the version of its format
//! (`format`), and a new one-member directory made from a backup
//! ([`restore_member`]).
//!
//! The format is stamped when a directory is made and checked at every start: a
//! binary refuses a directory written in a newer format than it reads, and migrates an
//! older one explicitly (stamping the new version once the migration is done), so that
//! an upgrade or a downgrade never reads data it does not understand.

use std::path::{Path, PathBuf};
use std::time::Instant;

use raft::eraftpb::SnapshotMetadata;

use crate::log::RaftLog;
use crate::ops;
use crate::start::{MEMBERS_PREFIX, StartError};
use crate::state::StateMachine;

/// Where a member keeps its id.
const MEMBER_ID_FILE: &str = "member_id";
/// Where a member keeps the version of its directory's format.
const FORMAT_FILE: &str = "format";
/// The format this binary writes: `member_id`, `raft/` (raft-engine's log,
/// `snapshot.bin` and the state in `snapshot-<index>.data`).
pub const DATA_FORMAT: u32 = 1;

/// Whether `data_dir` holds a store member already (it has its member id).
pub fn has_member(data_dir: &Path) -> bool {
    data_dir.join(MEMBER_ID_FILE).exists()
}

fn io_error(dir: &Path) -> impl Fn(std::io::Error) -> StartError + '_ {
    move |source| StartError::DataDir {
        path: dir.to_path_buf(),
        source,
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// A new member id: random (and fitting raft-rs' proposal-id scheme: 16 bits).
fn new_member_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one((std::process::id(), Instant::now())) % 0xfffe) + 1
}

/// The member id kept in `dir`, or a new one saved there (`true`: the directory is
/// new). Either way the directory's format is checked, or stamped.
pub(crate) fn read_or_create_id(dir: &Path) -> Result<(u64, bool), StartError> {
    let io = io_error(dir);
    std::fs::create_dir_all(dir).map_err(&io)?;
    let path = dir.join(MEMBER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s
                .trim()
                .parse()
                .map_err(|_| io(invalid(format!("{} is not a member id", path.display()))))?;
            check_format(dir)?;
            Ok((id, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            stamp_format(dir)?;
            let id = new_member_id();
            std::fs::write(&path, format!("{id}\n")).map_err(io)?;
            Ok((id, true))
        }
        Err(e) => Err(io(e)),
    }
}

fn stamp_format(dir: &Path) -> Result<(), StartError> {
    let path = dir.join(FORMAT_FILE);
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    std::fs::write(&tmp, format!("{DATA_FORMAT}\n")).map_err(io_error(dir))?;
    std::fs::rename(&tmp, &path).map_err(io_error(dir))
}

/// Checks the format of the existing member directory `dir`: the same as this
/// binary's passes; newer is refused; older is migrated. A directory without a stamp
/// was made before stamps existed, in format 1, and is stamped.
fn check_format(dir: &Path) -> Result<(), StartError> {
    let path = dir.join(FORMAT_FILE);
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                io_error(dir)(invalid(format!(
                    "{} does not hold a format version ({:?})",
                    path.display(),
                    text.trim()
                )))
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(
                "{}: a data directory from before format versions; stamped as format {DATA_FORMAT}",
                dir.display()
            );
            return stamp_format(dir);
        }
        Err(e) => return Err(io_error(dir)(e)),
    };
    if found > DATA_FORMAT {
        return Err(StartError::NewerFormat {
            path: dir.to_path_buf(),
            found,
            supported: DATA_FORMAT,
        });
    }
    // Older formats would be migrated here, one version at a time, each step stamped
    // when done. Format 1 is the first: there is nothing older to migrate.
    Ok(())
}

/// Makes `data_dir` (new or empty) the data directory of a new one-member cluster
/// holding `state`, as a restored backup: a new member id, the state as the log's
/// snapshot (index 1, term 1, this member its only voter), the old members' addresses
/// dropped (the first leader records its own). Returns the member id. Members are
/// added after it starts, as to any cluster.
pub fn restore_member(data_dir: &Path, mut state: StateMachine) -> Result<u64, StartError> {
    let occupied =
        |path: PathBuf| std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some());
    if has_member(data_dir) || occupied(data_dir.join("raft")) {
        return Err(StartError::DataDir {
            path: data_dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it holds a store member already: restore into a new directory",
            ),
        });
    }
    let (dropped, _) = state.apply(&ops::delete_prefix(MEMBERS_PREFIX.as_bytes()));
    dropped.map_err(StartError::Store)?;
    let (id, _) = read_or_create_id(data_dir)?;
    let mut log = RaftLog::open(&data_dir.join("raft"), &[id], true)?;
    let mut meta = SnapshotMetadata {
        index: 1,
        term: 1,
        ..Default::default()
    };
    meta.mut_conf_state().voters = vec![id];
    log.install_snapshot_with(meta, |w| state.write_snapshot(w))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_stamped_checked_and_newer_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (id, new) = read_or_create_id(dir.path()).unwrap();
        assert!(new);
        let stamp = || std::fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap();
        assert_eq!(stamp(), format!("{DATA_FORMAT}\n"));
        assert_eq!(read_or_create_id(dir.path()).unwrap(), (id, false));
        // A directory from before the stamps: stamped.
        std::fs::remove_file(dir.path().join(FORMAT_FILE)).unwrap();
        assert_eq!(read_or_create_id(dir.path()).unwrap(), (id, false));
        assert_eq!(stamp(), format!("{DATA_FORMAT}\n"));
        // A newer format: refused, naming the directory and both versions.
        std::fs::write(dir.path().join(FORMAT_FILE), "7\n").unwrap();
        let e = read_or_create_id(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().display().to_string())
                && e.contains("format 7")
                && e.contains(&format!("up to {DATA_FORMAT}")),
            "{e}"
        );
        // Garbage: refused.
        std::fs::write(dir.path().join(FORMAT_FILE), "one\n").unwrap();
        let e = read_or_create_id(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not hold a format version"), "{e}");
    }
}
