//! Builders for the commands clients send most — a put or delete with an optional
//! expected revision, a prefix delete, leases, compaction — and helpers to read their
//! results. A compare-and-swap is a transaction, as in Kubernetes' etcd3 storage: compare
//! `mod_revision`, write on success, read the key on failure to report what is there.

use crate::error::{Error, Result, key_text};
use crate::proto::{
    Command, CompactRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    TxnResponse, command, request_op, response_op,
};
use crate::state::Applied;

fn mod_revision_is(key: &[u8], expected: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: CompareTarget::Mod as i32,
        result: CompareResult::Equal as i32,
        number: expected,
        value: Vec::new(),
    }
}

fn read(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::Range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// A transaction command.
pub fn txn(t: TxnRequest) -> Command {
    Command {
        request: Some(command::Request::Txn(t)),
    }
}

/// `op` on `key`, only if its `mod_revision` is `expected` when given; a refused
/// transaction reads the key, so the caller learns its current revision.
fn guarded(key: &[u8], expected: Option<i64>, op: request_op::Request) -> Command {
    txn(TxnRequest {
        compare: expected
            .map(|e| mod_revision_is(key, e))
            .into_iter()
            .collect(),
        success: vec![RequestOp { request: Some(op) }],
        failure: vec![read(key)],
    })
}

/// Writes `key`; with `expected = Some(rev)` only if its `mod_revision` is `rev`
/// (`Some(0)`: only if it does not exist).
pub fn put(key: &[u8], value: &[u8], lease: i64, expected: Option<i64>) -> Command {
    let op = request_op::Request::Put(PutRequest {
        key: key.to_vec(),
        value: bytes::Bytes::copy_from_slice(value),
        lease,
    });
    guarded(key, expected, op)
}

/// Deletes `key`; with `expected = Some(rev)` only if its `mod_revision` is `rev`.
pub fn delete(key: &[u8], expected: Option<i64>) -> Command {
    let op = request_op::Request::DeleteRange(DeleteRangeRequest {
        key: key.to_vec(),
        range_end: Vec::new(),
    });
    guarded(key, expected, op)
}

/// Deletes every key starting with `prefix`.
pub fn delete_prefix(prefix: &[u8]) -> Command {
    txn(TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
                key: prefix.to_vec(),
                range_end: crate::mvcc::prefix_end(prefix),
            })),
        }],
        ..Default::default()
    })
}

/// Forgets history before `revision`.
pub fn compact(revision: i64) -> Command {
    Command {
        request: Some(command::Request::Compact(CompactRequest { revision })),
    }
}

/// Grants a lease of `ttl` seconds.
pub fn lease_grant(ttl: i64) -> Command {
    Command {
        request: Some(command::Request::LeaseGrant(LeaseGrantRequest { ttl })),
    }
}

/// Revokes a lease, deleting its keys.
pub fn lease_revoke(id: i64) -> Command {
    Command {
        request: Some(command::Request::LeaseRevoke(LeaseRevokeRequest { id })),
    }
}

/// Whether a transaction's compares held.
pub fn txn_succeeded(result: &Result<Applied>) -> bool {
    matches!(
        result,
        Ok(Applied::Txn(TxnResponse {
            succeeded: true,
            ..
        }))
    )
}

/// Turns the result of [`put`] or [`delete`] with an expected revision into the
/// transaction's response, or a [`Error::Conflict`] carrying the key's current
/// `mod_revision` when the compare failed.
pub fn expect_cas(key: &[u8], expected: i64, result: Result<Applied>) -> Result<TxnResponse> {
    match result? {
        Applied::Txn(t) if t.succeeded => Ok(t),
        Applied::Txn(t) => {
            let actual = t
                .responses
                .iter()
                .find_map(|r| match &r.response {
                    Some(response_op::Response::Range(r)) => {
                        Some(r.kvs.first().map_or(0, |kv| kv.mod_revision))
                    }
                    _ => None,
                })
                .unwrap_or(0);
            Err(Error::Conflict {
                key: key_text(key),
                expected,
                actual,
                revision: t.revision,
            })
        }
        other => Err(Error::Decode(format!(
            "unexpected result {other:?} for a transaction"
        ))),
    }
}
