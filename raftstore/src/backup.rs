//! Backup files of the store (`rk8s-server snapshot save`, `snapshot restore`): the
//! whole state at one revision, every key's retained history and the leases, as
//! etcd's snapshot files are. A file is
//!
//! ```text
//! "RK8SSNAP" | format (u32 LE) | revision (i64 LE) | member id (u64 LE)
//!            | the state (a StateSnapshot, as the raft log's snapshots hold it)
//!            | SHA-256 of everything before (32 bytes)
//! ```
//!
//! so that a truncated or damaged file is refused before anything is restored from it.

use std::io::Write;

use crate::state::StateMachine;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"RK8SSNAP";
/// The backup format this binary writes (and the newest it reads).
pub const FORMAT: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 8;
const DIGEST_LEN: usize = 32;

/// What a backup file says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The store's revision it holds.
    pub revision: i64,
    /// The member it was taken from.
    pub member: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Why a backup file cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    /// Not a backup file at all.
    #[error(
        "not an rk8s snapshot file (it does not start with {:?})",
        String::from_utf8_lossy(MAGIC)
    )]
    NotABackup,
    /// Written by a newer rk8s.
    #[error("snapshot format {0}, written by a newer rk8s; this one reads up to {FORMAT}")]
    NewerFormat(u32),
    /// Truncated or damaged.
    #[error("the file is damaged or incomplete ({0})")]
    Damaged(String),
}

/// A writer that hashes and counts what goes through it.
struct Hashing<'a, W: Write + ?Sized> {
    out: &'a mut W,
    digest: ring::digest::Context,
    bytes: u64,
}

impl<W: Write + ?Sized> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Writes `state`, taken from member `member`, to `out` as a backup file.
pub fn write_backup(
    state: &StateMachine,
    member: u64,
    out: &mut (impl Write + ?Sized),
) -> std::io::Result<BackupInfo> {
    let revision = state.mvcc.revision();
    let mut hashing = Hashing {
        out,
        digest: ring::digest::Context::new(&ring::digest::SHA256),
        bytes: 0,
    };
    hashing.write_all(MAGIC)?;
    hashing.write_all(&FORMAT.to_le_bytes())?;
    hashing.write_all(&revision.to_le_bytes())?;
    hashing.write_all(&member.to_le_bytes())?;
    state.write_snapshot(&mut hashing)?;
    let digest = hashing.digest.finish();
    hashing.out.write_all(digest.as_ref())?;
    hashing.out.flush()?;
    Ok(BackupInfo {
        revision,
        member,
        bytes: hashing.bytes + DIGEST_LEN as u64,
    })
}

/// Checks the backup file `bytes` (its header and checksum) and returns what it says
/// about itself and the state it holds (still encoded).
pub fn check_backup(bytes: &[u8]) -> Result<(BackupInfo, &[u8]), BackupError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let Some(body_end) = bytes
        .len()
        .checked_sub(DIGEST_LEN)
        .filter(|e| *e >= HEADER_LEN)
    else {
        return Err(BackupError::Damaged(format!(
            "{} bytes, shorter than a header and a checksum",
            bytes.len()
        )));
    };
    let field = |at: usize| -> [u8; 8] {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        b
    };
    let mut format = [0u8; 4];
    format.copy_from_slice(&bytes[8..12]);
    let format = u32::from_le_bytes(format);
    if format > FORMAT {
        return Err(BackupError::NewerFormat(format));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..body_end]);
    if digest.as_ref() != &bytes[body_end..] {
        return Err(BackupError::Damaged(
            "its SHA-256 checksum does not match".into(),
        ));
    }
    let info = BackupInfo {
        revision: i64::from_le_bytes(field(12)),
        member: u64::from_le_bytes(field(20)),
        bytes: bytes.len() as u64,
    };
    Ok((info, &bytes[HEADER_LEN..body_end]))
}

/// Reads the backup file `bytes`: what it says about itself and the state.
pub fn read_backup(bytes: &[u8]) -> Result<(BackupInfo, StateMachine), BackupError> {
    let (info, body) = check_backup(bytes)?;
    let state = StateMachine::restore(body).map_err(|e| BackupError::Damaged(e.to_string()))?;
    if state.mvcc.revision() != info.revision {
        return Err(BackupError::Damaged(format!(
            "its header says revision {}, its state is at {}",
            info.revision,
            state.mvcc.revision()
        )));
    }
    Ok((info, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops;

    fn state() -> StateMachine {
        let mut sm = StateMachine::default();
        for i in 0..50 {
            let key = format!("/registry/pods/default/p{}", i % 20);
            let _ = sm.apply(&ops::put(
                key.as_bytes(),
                format!("v{i}").as_bytes(),
                0,
                None,
            ));
        }
        let _ = sm.apply(&ops::delete(b"/registry/pods/default/p3", None));
        sm
    }

    #[test]
    fn a_backup_reads_back_as_the_same_state() {
        let sm = state();
        let mut file = Vec::new();
        let info = write_backup(&sm, 42, &mut file).unwrap();
        assert_eq!(info.bytes, file.len() as u64);
        assert_eq!((info.revision, info.member), (sm.mvcc.revision(), 42));
        let (read, restored) = read_backup(&file).unwrap();
        assert_eq!(read, info);
        assert_eq!(restored.snapshot(), sm.snapshot());
    }

    #[test]
    fn damaged_truncated_foreign_and_newer_files_are_refused() {
        let mut file = Vec::new();
        write_backup(&state(), 1, &mut file).unwrap();
        assert_eq!(
            read_backup(b"{\"kind\": \"Pod\"}").unwrap_err(),
            BackupError::NotABackup
        );
        for cut in [12, 40, file.len() - 1] {
            assert!(
                matches!(read_backup(&file[..cut]), Err(BackupError::Damaged(_))),
                "cut at {cut}"
            );
        }
        let mut flipped = file.clone();
        flipped[HEADER_LEN + 10] ^= 1;
        assert!(
            matches!(read_backup(&flipped), Err(BackupError::Damaged(m)) if m.contains("checksum"))
        );
        let mut newer = file.clone();
        newer[8..12].copy_from_slice(&(FORMAT + 1).to_le_bytes());
        assert_eq!(
            read_backup(&newer).unwrap_err(),
            BackupError::NewerFormat(FORMAT + 1)
        );
    }
}
