//! Backups of the store through the API server, as `etcdctl snapshot save` takes
//! them from etcd: `GET /rk8s/v1/snapshot` (admin only) streams a backup file
//! ([`rk8s_raftstore::backup`]) of this member's state, consistent at one revision
//! (a quorum confirms the member is up to date first, so any member serves one), which
//! `rk8s-server snapshot save FILE` writes. Each member also saves its own on a
//! schedule ([`save_periodically`]: every 12 hours by default, the newest 5 kept, as
//! k3s' etcd snapshots), into `<data-dir>/snapshots`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use rk8s_http::body::{Body, channel_body};
use rk8s_raftstore::backup::{BackupInfo, write_backup};
use rk8s_raftstore::server::Store;
use tokio::sync::mpsc;

use crate::auth::Identity;
use crate::server::{ApiServer, admin_only};
use crate::status::{ApiError, ApiResult};

/// The response's chunks.
const CHUNK: usize = 256 * 1024;
/// The response header naming the revision the backup holds.
pub const REVISION_HEADER: &str = "x-rk8s-snapshot-revision";
/// The prefix of scheduled snapshots' file names.
const SCHEDULED_PREFIX: &str = "rk8s-snapshot-";

/// Scheduled snapshots of a member.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Where they go.
    pub dir: PathBuf,
    /// How often.
    pub interval: Duration,
    /// How many of this member's are kept (the oldest removed first).
    pub retention: usize,
}

/// A writer into a response body: bytes go out in chunks, and it fails once the
/// client has gone.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl ApiServer {
    /// `GET /rk8s/v1/snapshot`: a backup of the store, streamed (admin only).
    pub(crate) async fn snapshot(&self, identity: &Identity) -> ApiResult<Response<Body>> {
        admin_only(identity, "take snapshots of the store")?;
        let state = self
            .store
            .state_snapshot()
            .await
            .map_err(|e| ApiError::unavailable(format!("the store: {e}")))?;
        let revision = state.mvcc.revision();
        let member = self.store.id();
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            // A client that goes away ends it; a partial file fails its checksum.
            if let Err(e) = write_backup(&state, member, &mut out) {
                tracing::debug!("a snapshot stream ended early: {e}");
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(REVISION_HEADER, revision)
            .body(channel_body(rx))
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// A new file at `path` (replacing one), readable and writable by its owner alone.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Saves a backup of `store` (from this member, consistent) as `path`: written
/// beside it and renamed once complete and on disk.
pub async fn save(store: &Store, path: &Path) -> std::io::Result<BackupInfo> {
    let state = store
        .state_snapshot()
        .await
        .map_err(std::io::Error::other)?;
    let member = store.id();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let tmp = path.with_extension("part");
        let written = (|| {
            // The CAs' keys, every token and Secret: readable by root only.
            let mut file = std::io::BufWriter::new(private_file(&tmp)?);
            let info = write_backup(&state, member, &mut file)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(info)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Saves a snapshot of `store` every `schedule.interval` into `schedule.dir`, as
/// `rk8s-snapshot-<member>-<UTC time>.db`, keeping this member's newest
/// `schedule.retention`.
pub async fn save_periodically(store: Store, schedule: Schedule) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + schedule.interval,
        schedule.interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prefix = format!("{SCHEDULED_PREFIX}{}-", store.id());
    loop {
        ticks.tick().await;
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&schedule.dir);
        if let Err(e) = made {
            tracing::warn!("scheduled snapshot: {}: {e}", schedule.dir.display());
            continue;
        }
        let when = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        let path = schedule.dir.join(format!("{prefix}{when}.db"));
        match save(&store, &path).await {
            Ok(info) => tracing::info!(
                "scheduled snapshot saved at {} (revision {}, {} bytes)",
                path.display(),
                info.revision,
                info.bytes
            ),
            Err(e) => tracing::warn!("scheduled snapshot {}: {e}", path.display()),
        }
        for old in expired(&schedule.dir, &prefix, schedule.retention) {
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!("removing the old snapshot {}: {e}", old.display());
            }
        }
    }
}

/// The snapshots named `<prefix>….db` in `dir` beyond the newest `keep` (their names
/// sort by time).
fn expired(dir: &Path, prefix: &str, keep: usize) -> Vec<PathBuf> {
    let mut ours: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".db"))
        })
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(keep);
    ours.truncate(excess);
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_members_oldest_snapshots_beyond_the_retention_expire() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "rk8s-snapshot-7-20261201T000000Z.db",
            "rk8s-snapshot-7-20261203T000000Z.db",
            "rk8s-snapshot-7-20261202T000000Z.db",
            "rk8s-snapshot-7-20261204T000000Z.db.part",
            "rk8s-snapshot-9-20261130T000000Z.db",
            "by-hand.db",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(expired(dir.path(), "rk8s-snapshot-7-", 1)),
            [
                "rk8s-snapshot-7-20261201T000000Z.db",
                "rk8s-snapshot-7-20261202T000000Z.db"
            ]
        );
        assert!(expired(dir.path(), "rk8s-snapshot-7-", 3).is_empty());
    }
}
