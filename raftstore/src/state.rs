//! The replicated state machine: the key space plus leases, changed only by applying
//! [`Command`]s from committed Raft entries, and saved whole in snapshots.

use std::io::Write;

use prost::Message;

use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::mvcc::{Event, Mvcc};
use crate::proto::{Command, StateSnapshot, TxnResponse, command};

/// What applying a command returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A transaction's result.
    Txn(TxnResponse),
    /// A compaction to this revision.
    Compacted(i64),
    /// A lease granted: its id and time to live.
    LeaseGranted {
        /// The new lease's id.
        id: i64,
        /// Its time to live, in seconds.
        ttl: i64,
    },
    /// A membership change applied: the members now.
    Membership {
        /// Voting members.
        voters: Vec<u64>,
        /// Learners (receive the log, do not vote).
        learners: Vec<u64>,
    },
    /// A lease revoked; its keys deleted at this revision.
    LeaseRevoked {
        /// The revision after the deletions.
        revision: i64,
    },
}

/// The key space and its leases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    /// Keys and their history.
    pub mvcc: Mvcc,
    /// Leases.
    pub lessor: Lessor,
}

impl StateMachine {
    /// Applies one command. An error is a deterministic result (every replica gets the
    /// same), not a failure to apply; either way the events are what changed.
    pub fn apply(&mut self, cmd: &Command) -> (Result<Applied>, Vec<Event>) {
        match &cmd.request {
            None => (Err(Error::EmptyCommand), Vec::new()),
            Some(command::Request::Txn(t)) => match self.mvcc.txn(t, &mut self.lessor) {
                Ok((resp, events)) => (Ok(Applied::Txn(resp)), events),
                Err(e) => (Err(e), Vec::new()),
            },
            Some(command::Request::Compact(c)) => (
                self.mvcc
                    .compact(c.revision)
                    .map(|()| Applied::Compacted(c.revision)),
                Vec::new(),
            ),
            Some(command::Request::LeaseGrant(g)) => (
                self.lessor
                    .grant(g.ttl)
                    .map(|id| Applied::LeaseGranted { id, ttl: g.ttl }),
                Vec::new(),
            ),
            Some(command::Request::LeaseRevoke(r)) => match self.lessor.revoke(r.id) {
                Ok(keys) => match self.mvcc.delete_keys(&keys, &mut self.lessor) {
                    Ok(events) => {
                        let revision = self.mvcc.revision();
                        (Ok(Applied::LeaseRevoked { revision }), events)
                    }
                    Err(e) => (Err(e), Vec::new()),
                },
                Err(e) => (Err(e), Vec::new()),
            },
        }
    }

    /// Applies an encoded command (a Raft entry's data).
    pub fn apply_bytes(&mut self, data: &[u8]) -> (Result<Applied>, Vec<Event>) {
        match Command::decode(data) {
            Ok(cmd) => self.apply(&cmd),
            Err(e) => (Err(Error::Decode(e.to_string())), Vec::new()),
        }
    }

    /// The whole state, encoded ([`StateMachine::write_snapshot`] into memory).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write_snapshot(&mut out);
        out
    }

    /// Writes the whole state to `out` as one [`StateSnapshot`], key by key: at no
    /// time is more than one key's history encoded in memory (the key space can be
    /// gigabytes). The scalar fields and leases come first; protobuf readers take
    /// fields in any order.
    pub fn write_snapshot(&self, out: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
        /// `StateSnapshot.keys`' field number.
        const KEYS: u32 = 3;
        let (leases, last_lease_id) = self.lessor.snapshot();
        let rest = StateSnapshot {
            revision: self.mvcc.revision(),
            compact_revision: self.mvcc.compact_revision(),
            keys: Vec::new(),
            leases,
            last_lease_id,
        };
        out.write_all(&rest.encode_to_vec())?;
        let mut one = Vec::new();
        for key in self.mvcc.snapshot_keys() {
            let key = key.map_err(std::io::Error::other)?;
            one.clear();
            prost::encoding::message::encode(KEYS, &key, &mut one);
            out.write_all(&one)?;
        }
        Ok(())
    }

    /// Rebuilds the state from [`StateMachine::snapshot`]'s bytes.
    pub fn restore(data: &[u8]) -> Result<Self> {
        let s = StateSnapshot::decode(data).map_err(|e| Error::Decode(e.to_string()))?;
        let attached: Vec<(i64, Vec<u8>)> = s
            .keys
            .iter()
            .filter_map(|k| {
                let kv = k.revisions.last()?.kv.as_ref()?;
                (kv.lease != 0).then(|| (kv.lease, k.key.clone()))
            })
            .collect();
        Ok(StateMachine {
            mvcc: Mvcc::restore(s.revision, s.compact_revision, s.keys),
            lessor: Lessor::restore(s.leases, s.last_lease_id, attached.into_iter()),
        })
    }
}
