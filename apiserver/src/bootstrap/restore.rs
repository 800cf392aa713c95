//! A new cluster's first member made from a backup (`rk8s-server snapshot restore`),
//! as `etcdctl snapshot restore` makes an etcd data directory: every object, token
//! and CA of the backed-up cluster, in a data directory of one member. Members are
//! added afterwards as to any cluster (`token create --member`, `--join`).
//!
//! What the backup holds is kept: the cluster, node and member CAs (so nodes, clients
//! and kubeconfigs of the old cluster trust and are trusted by the new one) and every
//! token. What belongs to a member is new: its id, its certificate for the peer
//! address it will advertise, and an admin token written to
//! [`super::ADMIN_TOKEN_FILE`] (the
//! old admin token keeps working too), from which the API server writes the admin
//! kubeconfig at start.

use std::path::Path;

use rk8s_raftstore::backup::{BackupInfo, read_backup};
use rk8s_raftstore::ops;
use rk8s_raftstore::proto::RangeRequest;

use super::members::{first_member_certs, save_first_member};
use super::secrets::{CLUSTER_KEY, ClusterSecrets};
use super::{StartError, write_file};
use crate::auth::{TokenRecord, new_secret, token_key};

/// What a restore made.
#[derive(Clone, Copy, Debug)]
pub struct Restored {
    /// The backup's own account of itself.
    pub backup: BackupInfo,
    /// The new member's id.
    pub member: u64,
    /// The keys the store holds.
    pub keys: u64,
}

fn refused(why: String) -> StartError {
    StartError::Restore(why)
}

/// Restores the backup file `bytes` into `data_dir` (new, or empty) for a member
/// that will advertise the peer address `advertise`.
pub fn restore(bytes: &[u8], data_dir: &Path, advertise: &str) -> Result<Restored, StartError> {
    let (backup, mut state) = read_backup(bytes).map_err(|e| refused(e.to_string()))?;
    let read = RangeRequest {
        key: CLUSTER_KEY.as_bytes().to_vec(),
        ..RangeRequest::default()
    };
    let found = state
        .mvcc
        .range(&read)
        .map_err(|e| refused(e.to_string()))?;
    let kv = found.kvs.first().ok_or_else(|| {
        refused(format!(
            "the snapshot holds no cluster ({CLUSTER_KEY} is missing): it is not of an rk8s-server's store"
        ))
    })?;
    let secrets: ClusterSecrets = serde_json::from_slice(&kv.value)
        .map_err(|e| refused(format!("{CLUSTER_KEY} does not decode: {e}")))?;
    let member_ca = secrets.member_ca.ok_or_else(|| {
        refused("the snapshot's cluster has no member CA (it was made before members used mutual TLS): restart its members with a current rk8s-server and take the snapshot again".into())
    })?;
    // What can fail before any file is written is done first; the files are then
    // written in a directory beside `data_dir`, renamed to it once complete, so that
    // a failure leaves no half-made member behind.
    let certs = first_member_certs(&member_ca, advertise)?;
    let token = new_secret().map_err(|e| refused(e.message))?;
    let record = TokenRecord::admin();
    let value = serde_json::to_vec(&record).map_err(|e| refused(e.to_string()))?;
    let (put, _) = state.apply(&ops::put(token_key(&token).as_bytes(), &value, 0, None));
    put.map_err(|e| refused(e.to_string()))?;
    let keys = state.mvcc.footprint().keys;
    if rk8s_raftstore::data_dir::has_member(data_dir) {
        return Err(refused(format!(
            "{} holds a store member already: restore into a new or empty directory",
            data_dir.display()
        )));
    }
    let name = data_dir.file_name().unwrap_or_default().to_string_lossy();
    let staging = data_dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let made = (|| -> Result<u64, StartError> {
        let member = rk8s_raftstore::data_dir::restore_member(&staging, state)
            .map_err(|e| refused(e.to_string()))?;
        save_first_member(&staging, &member_ca, &certs)?;
        write_file(
            &staging.join(super::ADMIN_TOKEN_FILE),
            &format!("{token}\n"),
            true,
        )?;
        // An empty directory given for it makes way; one with files is refused.
        if data_dir.exists() {
            std::fs::remove_dir(data_dir).map_err(|e| {
                refused(format!(
                    "{}: {e} (it must be new or empty)",
                    data_dir.display()
                ))
            })?;
        }
        std::fs::rename(&staging, data_dir)
            .map_err(|e| refused(format!("{}: {e}", data_dir.display())))?;
        Ok(member)
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(Restored {
        backup,
        member: made?,
        keys,
    })
}
