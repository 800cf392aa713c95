//! rk8s's store: etcd v3's key-value semantics, replicated with Raft, so that rk8s
//! needs no etcd.
//!
//! - [`mvcc`]: the multi-version key space (revisions, ranges at past revisions,
//!   transactions with compare-and-swap, compaction, the event history);
//! - [`lease`]: leases and the leader's lease clock;
//! - [`state`]: the replicated state machine and its snapshots;
//! - [`proto`]: the prost messages replicated and stored;
//! - [`transform`]: values transformed on the way in and out (encryption at rest);
//! - [`transport`]: connections between members (mutual TLS) and from clients;
//! - [`metrics`]: Prometheus metrics (leadership, indexes, proposals, fsync, apply).
//!
//! ```
//! use rk8s_raftstore::{StateMachine, ops};
//!
//! let mut sm = StateMachine::default();
//! let (result, events) = sm.apply(&ops::put(b"/registry/pods/default/web", b"{}", 0, Some(0)));
//! assert_eq!(events[0].kv.mod_revision, 1);
//! // The same create again fails: the key now exists at revision 1.
//! let (result, _) = sm.apply(&ops::put(b"/registry/pods/default/web", b"{}", 0, Some(0)));
//! assert!(!ops::txn_succeeded(&result));
//! ```

pub mod backup;
pub mod client;
pub mod data_dir;
pub mod error;
pub mod lease;
pub mod log;
pub mod logger;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod ops;
mod packed;
pub mod peers;
pub mod proto;
pub mod server;
pub mod start;
pub mod state;
pub mod transform;
pub mod transport;
pub mod watch;
pub mod wire;

pub use error::{Error, Result};
pub use mvcc::{Event, EventKind, Mvcc, prefix_end};
pub use state::{Applied, StateMachine};
