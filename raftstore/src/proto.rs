//! The store's messages, encoded with prost: what is replicated through Raft (a
//! [`Command`] per log entry), what requests and responses carry, and the snapshot.
//!
//! Field numbers are part of the on-disk format: never reuse or renumber them.

use prost::{Message, Oneof};

/// A key and its value with etcd's metadata.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct KeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value (shared: every copy of a key-value, in history, events and
    /// responses, is a reference to one buffer).
    #[prost(bytes = "bytes", tag = "2")]
    pub value: bytes::Bytes,
    /// Revision of the write that created the key (since its last deletion).
    #[prost(int64, tag = "3")]
    pub create_revision: i64,
    /// Revision of the last write to the key (Kubernetes' `resourceVersion`).
    #[prost(int64, tag = "4")]
    pub mod_revision: i64,
    /// Number of writes since creation, from 1.
    #[prost(int64, tag = "5")]
    pub version: i64,
    /// Lease the key is attached to (0: none).
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// Which field of a key a [`Compare`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareTarget {
    /// `version` (0 when the key does not exist).
    Version = 0,
    /// `create_revision` (0 when the key does not exist).
    Create = 1,
    /// `mod_revision` (0 when the key does not exist).
    Mod = 2,
    /// The value (compared as bytes).
    Value = 3,
    /// The lease id.
    Lease = 4,
}

/// How a [`Compare`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompareResult {
    /// Equal.
    Equal = 0,
    /// Greater than.
    Greater = 1,
    /// Less than.
    Less = 2,
    /// Not equal.
    NotEqual = 3,
}

/// One condition of a transaction.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Compare {
    /// The key compared.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The field compared.
    #[prost(enumeration = "CompareTarget", tag = "2")]
    pub target: i32,
    /// The comparison.
    #[prost(enumeration = "CompareResult", tag = "3")]
    pub result: i32,
    /// The number compared with (every target but `Value`).
    #[prost(int64, tag = "4")]
    pub number: i64,
    /// The bytes compared with (target `Value`).
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

/// Reads keys: one key, a range `[key, range_end)`, or everything from `key` when
/// `range_end` is `[0]`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RangeRequest {
    /// First key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// End of the range, exclusive; empty for the single key `key`.
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// Most keys returned (0: no limit).
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// Read as of this revision (0: the current one).
    #[prost(int64, tag = "4")]
    pub revision: i64,
    /// Only count the keys.
    #[prost(bool, tag = "5")]
    pub count_only: bool,
    /// Leave values out.
    #[prost(bool, tag = "6")]
    pub keys_only: bool,
    /// Stop at the first key past `limit` instead of counting the range: `count` is
    /// then the keys returned. A page of a long range costs its own length, not the
    /// range's.
    #[prost(bool, tag = "7")]
    pub uncounted: bool,
}

/// The keys read.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RangeResponse {
    /// The keys, in key order.
    #[prost(message, repeated, tag = "1")]
    pub kvs: Vec<KeyValue>,
    /// How many keys are in the range (regardless of `limit`, unless `uncounted`).
    #[prost(int64, tag = "2")]
    pub count: i64,
    /// Whether `limit` left keys out.
    #[prost(bool, tag = "3")]
    pub more: bool,
    /// The revision the range was read at (etcd's header revision): a watch from the
    /// next revision continues it without a gap.
    #[prost(int64, tag = "4")]
    pub revision: i64,
    /// The oldest revision still readable and watchable (the compaction point).
    #[prost(int64, tag = "5")]
    pub compact_revision: i64,
}

/// Writes a key.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct PutRequest {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value (shared: every copy of a key-value, in history, events and
    /// responses, is a reference to one buffer).
    #[prost(bytes = "bytes", tag = "2")]
    pub value: bytes::Bytes,
    /// Lease to attach the key to (0: none).
    #[prost(int64, tag = "3")]
    pub lease: i64,
}

/// The result of a put.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct PutResponse {
    /// The key before the write, if it existed.
    #[prost(message, optional, tag = "1")]
    pub prev_kv: Option<KeyValue>,
    /// The key after the write.
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// Deletes one key or a range, as [`RangeRequest`] names them.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DeleteRangeRequest {
    /// First key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// End of the range (see [`RangeRequest::range_end`]).
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
}

/// The result of a delete.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DeleteRangeResponse {
    /// How many keys were deleted.
    #[prost(int64, tag = "1")]
    pub deleted: i64,
    /// The deleted keys' last values.
    #[prost(message, repeated, tag = "2")]
    pub prev_kvs: Vec<KeyValue>,
}

/// One operation of a transaction.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RequestOp {
    /// The operation.
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3")]
    pub request: Option<request_op::Request>,
}

/// [`RequestOp`]'s choices.
pub mod request_op {
    use super::*;

    /// A read, a put or a delete.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Request {
        /// Read.
        #[prost(message, tag = "1")]
        Range(RangeRequest),
        /// Write.
        #[prost(message, tag = "2")]
        Put(PutRequest),
        /// Delete.
        #[prost(message, tag = "3")]
        DeleteRange(DeleteRangeRequest),
    }
}

/// The result of one operation of a transaction.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ResponseOp {
    /// The result.
    #[prost(oneof = "response_op::Response", tags = "1, 2, 3")]
    pub response: Option<response_op::Response>,
}

/// [`ResponseOp`]'s choices.
pub mod response_op {
    use super::*;

    /// The result of a read, a put or a delete.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Response {
        /// Read.
        #[prost(message, tag = "1")]
        Range(RangeResponse),
        /// Write.
        #[prost(message, tag = "2")]
        Put(PutResponse),
        /// Delete.
        #[prost(message, tag = "3")]
        DeleteRange(DeleteRangeResponse),
    }
}

/// If every compare holds, run `success`, otherwise `failure` — atomically, at one
/// revision.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct TxnRequest {
    /// Conditions.
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    /// Operations when all conditions hold.
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    /// Operations otherwise.
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

/// The result of a transaction.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct TxnResponse {
    /// Whether the conditions held.
    #[prost(bool, tag = "1")]
    pub succeeded: bool,
    /// One result per operation run.
    #[prost(message, repeated, tag = "2")]
    pub responses: Vec<ResponseOp>,
    /// The store's revision after the transaction.
    #[prost(int64, tag = "3")]
    pub revision: i64,
}

/// Forgets history before a revision.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct CompactRequest {
    /// Revisions below this one are dropped (the latest value of each key stays).
    #[prost(int64, tag = "1")]
    pub revision: i64,
}

/// Creates a lease.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseGrantRequest {
    /// Time to live, in seconds.
    #[prost(int64, tag = "1")]
    pub ttl: i64,
}

/// Ends a lease, deleting its keys.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseRevokeRequest {
    /// The lease.
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// What one Raft log entry asks the state machine to do.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Command {
    /// The request.
    #[prost(oneof = "command::Request", tags = "1, 2, 3, 4")]
    pub request: Option<command::Request>,
}

/// [`Command`]'s choices.
pub mod command {
    use super::*;

    /// A replicated request.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Request {
        /// A transaction (every put and delete is one).
        #[prost(message, tag = "1")]
        Txn(TxnRequest),
        /// A compaction.
        #[prost(message, tag = "2")]
        Compact(CompactRequest),
        /// A new lease.
        #[prost(message, tag = "3")]
        LeaseGrant(LeaseGrantRequest),
        /// A lease ended by its holder or by expiry.
        #[prost(message, tag = "4")]
        LeaseRevoke(LeaseRevokeRequest),
    }
}

/// One revision of one key in a snapshot: its value then, or a deletion.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotRevision {
    /// The revision.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// The key's value as of that revision; unset for a deletion.
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

/// The retained history of one key.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotKey {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Its revisions, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub revisions: Vec<SnapshotRevision>,
}

/// A lease in a snapshot.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotLease {
    /// Lease id.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Time to live, in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

/// The whole state machine, as Raft snapshots carry it.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StateSnapshot {
    /// The current revision.
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// The compaction point.
    #[prost(int64, tag = "2")]
    pub compact_revision: i64,
    /// Every key's retained history.
    #[prost(message, repeated, tag = "3")]
    pub keys: Vec<SnapshotKey>,
    /// Live leases.
    #[prost(message, repeated, tag = "4")]
    pub leases: Vec<SnapshotLease>,
    /// The last lease id handed out.
    #[prost(int64, tag = "5")]
    pub last_lease_id: i64,
}

/// A linearizable or serializable read.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ReadRequest {
    /// What to read.
    #[prost(message, optional, tag = "1")]
    pub range: Option<RangeRequest>,
    /// Confirm with a quorum first (the default for clients).
    #[prost(bool, tag = "2")]
    pub linearizable: bool,
}

/// Asks the cluster to add a member (as a learner first).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct JoinRequest {
    /// The new member's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Where its peers reach it (`host:port`).
    #[prost(string, tag = "2")]
    pub address: String,
}

/// Member ids.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct MemberId {
    /// The id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
}

/// A member's view of the cluster.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StatusResponse {
    /// This member's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The leader it knows (0: none).
    #[prost(uint64, tag = "2")]
    pub leader: u64,
    /// The current term.
    #[prost(uint64, tag = "3")]
    pub term: u64,
    /// Last applied log index.
    #[prost(uint64, tag = "4")]
    pub applied: u64,
    /// The store revision.
    #[prost(int64, tag = "5")]
    pub revision: i64,
    /// Voting members.
    #[prost(uint64, repeated, tag = "6")]
    pub voters: Vec<u64>,
    /// Learners.
    #[prost(uint64, repeated, tag = "7")]
    pub learners: Vec<u64>,
    /// Every member's address, as recorded in the store.
    #[prost(message, repeated, tag = "8")]
    pub addresses: Vec<JoinRequest>,
    /// The log index of this member's latest snapshot.
    #[prost(uint64, tag = "9")]
    pub snapshot_index: u64,
    /// Bytes of values this member retains that are no longer current (compaction
    /// frees them).
    #[prost(uint64, tag = "10")]
    pub history_bytes: u64,
}

/// A request from a client (or a joining member) to a member.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ClientRequest {
    /// Matches the response to the request.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The request.
    #[prost(
        oneof = "client_request::Request",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
    )]
    pub request: Option<client_request::Request>,
}

/// [`ClientRequest`]'s choices.
pub mod client_request {
    use super::*;

    /// A client request.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Request {
        /// A transaction.
        #[prost(message, tag = "2")]
        Txn(TxnRequest),
        /// A read.
        #[prost(message, tag = "3")]
        Read(ReadRequest),
        /// A compaction.
        #[prost(message, tag = "4")]
        Compact(CompactRequest),
        /// A new lease.
        #[prost(message, tag = "5")]
        LeaseGrant(LeaseGrantRequest),
        /// Revoke a lease.
        #[prost(message, tag = "6")]
        LeaseRevoke(LeaseRevokeRequest),
        /// Keep a lease alive.
        #[prost(message, tag = "7")]
        LeaseKeepAlive(LeaseRevokeRequest),
        /// Add a member.
        #[prost(message, tag = "8")]
        Join(JoinRequest),
        /// This member's status.
        #[prost(message, tag = "9")]
        Status(MemberId),
        /// Remove a member.
        #[prost(message, tag = "10")]
        RemoveMember(MemberId),
        /// Promote a learner to voter.
        #[prost(message, tag = "11")]
        PromoteMember(MemberId),
    }
}

/// A member's answer.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ClientResponse {
    /// The request's id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Empty on success, otherwise what went wrong.
    #[prost(string, tag = "2")]
    pub error: String,
    /// With a "not the leader" error: the leader, if known.
    #[prost(uint64, tag = "3")]
    pub leader: u64,
    /// The result.
    #[prost(oneof = "client_response::Response", tags = "4, 5, 6, 7, 8")]
    pub response: Option<client_response::Response>,
}

/// [`ClientResponse`]'s choices.
pub mod client_response {
    use super::*;

    /// A result.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Response {
        /// A transaction's result.
        #[prost(message, tag = "4")]
        Txn(TxnResponse),
        /// A read's result.
        #[prost(message, tag = "5")]
        Range(RangeResponse),
        /// A lease id and ttl (grant, keep-alive).
        #[prost(message, tag = "6")]
        Lease(SnapshotLease),
        /// A revision (compaction, revocation).
        #[prost(message, tag = "7")]
        Revision(CompactRequest),
        /// A status or membership.
        #[prost(message, tag = "8")]
        Status(StatusResponse),
    }
}

/// What travels between members and clients: length-prefixed frames.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Frame {
    /// The payload.
    #[prost(oneof = "frame::Body", tags = "1, 2, 3")]
    pub body: Option<frame::Body>,
}

/// [`Frame`]'s choices.
pub mod frame {
    use super::*;

    /// A raft message (raft-rs' protobuf encoding), a request or a response.
    #[derive(Clone, PartialEq, Eq, Oneof)]
    pub enum Body {
        /// A raft message between members.
        #[prost(bytes = "vec", tag = "1")]
        Raft(Vec<u8>),
        /// A client request.
        #[prost(message, tag = "2")]
        Request(ClientRequest),
        /// A response.
        #[prost(message, tag = "3")]
        Response(ClientResponse),
    }
}
