//! Values transformed on their way into and out of the store: encryption at rest, as
//! kube-apiserver's storage transformers (`k8s.io/apiserver/pkg/storage/value`) do it
//! for etcd.
//!
//! The [`Store`](crate::server::Store) handle applies a [`ValueTransformer`] once, at
//! its edge: the values of puts (in [`Store::put`](crate::server::Store::put),
//! [`Store::txn`](crate::server::Store::txn) and transactions arriving on the store
//! port) are turned into their stored form before they are proposed, and every value a
//! reader gets back (ranges, transaction responses, watch events) is turned back before
//! it leaves the handle. So everything above the handle sees plain values, and
//! everything below it — raft log entries, raft-engine files, the state machine,
//! snapshots and backups — holds the stored form.
//!
//! The raft thread never transforms: the proposal is transformed before it is queued,
//! reads after they are answered (the one exception, answers to transactions that
//! arrive on the store port, is a few microseconds of decryption per value).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::error::{Error, Result, key_text};
use crate::mvcc::Event;
use crate::proto::{
    Command, CompareTarget, KeyValue, RangeResponse, TxnRequest, TxnResponse, command, request_op,
    response_op,
};

/// A stored value turned back into what it was written as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readable<'a> {
    /// The value as written (borrowed when the stored form is the value itself).
    pub value: Cow<'a, [u8]>,
    /// Whether the value should be written again: it was not stored in the form a
    /// write makes now (kube's "stale" transform: read with another key or provider
    /// than the first).
    pub stale: bool,
}

impl<'a> Readable<'a> {
    /// A value stored as it is, not stale.
    pub fn plain(value: &'a [u8]) -> Self {
        Readable {
            value: Cow::Borrowed(value),
            stale: false,
        }
    }
}

/// Turns values into their stored form and back (an implementation:
/// `rk8s_apiserver::encryption`). Both directions get the key, which an
/// implementation may bind the stored value to (AES-GCM's additional data).
///
/// Implementations MUST be cheap for keys they do not transform (return the value
/// borrowed): every value read through the handle passes through [`transform_from_storage`].
///
/// [`transform_from_storage`]: ValueTransformer::transform_from_storage
pub trait ValueTransformer: Send + Sync + fmt::Debug {
    /// The stored form of `value` written at `key` (`Cow::Borrowed`: stored as given).
    fn transform_to_storage<'a>(
        &self,
        key: &[u8],
        value: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String>;

    /// The value stored as `stored` at `key`, and whether it is stale.
    fn transform_from_storage<'a>(
        &self,
        key: &[u8],
        stored: &'a [u8],
    ) -> Result<Readable<'a>, String>;

    /// Whether values under `key` may be transformed: a transaction comparing such a
    /// key's value is refused (the stored form differs from what the caller holds).
    fn transforms(&self, key: &[u8]) -> bool;
}

/// The error a failed transformation of the value at `key` is reported as
/// (kube-apiserver: `unable to transform key "…": …`, an internal error).
pub fn transform_error(key: &[u8], reason: &str) -> Error {
    Error::Transform {
        key: key_text(key),
        reason: reason.to_string(),
    }
}

/// `value` turned into its stored form for `key`, as `Bytes` (no copy when unchanged).
fn stored(t: &dyn ValueTransformer, key: &[u8], value: &Bytes) -> Result<Option<Bytes>> {
    match t
        .transform_to_storage(key, value)
        .map_err(|e| transform_error(key, &e))?
    {
        Cow::Borrowed(_) => Ok(None),
        Cow::Owned(v) => Ok(Some(Bytes::from(v))),
    }
}

/// Turns the values `cmd` writes into their stored form. Only transactions carry
/// values; a compare of a transformed key's value is refused.
pub fn command_to_storage(t: &dyn ValueTransformer, cmd: &mut Command) -> Result<()> {
    if let Some(command::Request::Txn(txn)) = &mut cmd.request {
        txn_to_storage(t, txn)?;
    }
    Ok(())
}

/// Turns the values `txn` writes into their stored form.
pub fn txn_to_storage(t: &dyn ValueTransformer, txn: &mut TxnRequest) -> Result<()> {
    if let Some(c) = txn
        .compare
        .iter()
        .find(|c| c.target == CompareTarget::Value as i32 && t.transforms(&c.key))
    {
        return Err(transform_error(
            &c.key,
            "a transaction may not compare the value of a key whose values are encrypted",
        ));
    }
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        if let Some(request_op::Request::Put(put)) = &mut op.request
            && let Some(v) = stored(t, &put.key, &put.value)?
        {
            put.value = v;
        }
    }
    Ok(())
}

/// Turns one key-value back into what was written (an empty value, as a `keys_only`
/// read or a deletion returns, stays empty).
pub fn kv_from_storage(t: &dyn ValueTransformer, kv: &mut KeyValue) -> Result<bool> {
    if kv.value.is_empty() {
        return Ok(false);
    }
    let readable = t
        .transform_from_storage(&kv.key, &kv.value)
        .map_err(|e| transform_error(&kv.key, &e))?;
    let stale = readable.stale;
    if let Cow::Owned(v) = readable.value {
        kv.value = Bytes::from(v);
    }
    Ok(stale)
}

/// Turns a range's values back into what was written.
pub fn range_from_storage(t: &dyn ValueTransformer, r: &mut RangeResponse) -> Result<()> {
    for kv in &mut r.kvs {
        kv_from_storage(t, kv)?;
    }
    Ok(())
}

/// Turns the values in a transaction's responses back into what was written.
pub fn txn_from_storage(t: &dyn ValueTransformer, r: &mut TxnResponse) -> Result<()> {
    for op in &mut r.responses {
        match &mut op.response {
            Some(response_op::Response::Range(range)) => range_from_storage(t, range)?,
            Some(response_op::Response::Put(put)) => {
                for kv in put.prev_kv.iter_mut().chain(put.kv.iter_mut()) {
                    kv_from_storage(t, kv)?;
                }
            }
            Some(response_op::Response::DeleteRange(d)) => {
                for kv in &mut d.prev_kvs {
                    kv_from_storage(t, kv)?;
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// Turns the values of watch events back into what was written.
pub fn events_from_storage(t: &dyn ValueTransformer, events: &mut [Event]) -> Result<()> {
    for e in events {
        kv_from_storage(t, &mut e.kv)?;
        if let Some(prev) = &mut e.prev_kv {
            kv_from_storage(t, prev)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ops;
    use crate::proto::{Compare, CompareResult, PutRequest, RequestOp, ResponseOp};

    /// Reverses values under `/secret/`, prefixed with `rev:`; a value without the
    /// prefix there is stale plain text.
    #[derive(Debug)]
    struct Reverse;

    impl ValueTransformer for Reverse {
        fn transform_to_storage<'a>(
            &self,
            key: &[u8],
            value: &'a [u8],
        ) -> Result<Cow<'a, [u8]>, String> {
            if !self.transforms(key) {
                return Ok(Cow::Borrowed(value));
            }
            let mut out = b"rev:".to_vec();
            out.extend(value.iter().rev());
            Ok(Cow::Owned(out))
        }

        fn transform_from_storage<'a>(
            &self,
            key: &[u8],
            stored: &'a [u8],
        ) -> Result<Readable<'a>, String> {
            if !self.transforms(key) {
                return Ok(Readable::plain(stored));
            }
            match stored.strip_prefix(b"rev:") {
                Some(rest) => Ok(Readable {
                    value: Cow::Owned(rest.iter().rev().copied().collect()),
                    stale: false,
                }),
                None if stored == b"bad" => Err("cannot read it".into()),
                None => Ok(Readable {
                    value: Cow::Borrowed(stored),
                    stale: true,
                }),
            }
        }

        fn transforms(&self, key: &[u8]) -> bool {
            key.starts_with(b"/secret/")
        }
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: Bytes::copy_from_slice(value.as_bytes()),
            ..Default::default()
        }
    }

    #[test]
    fn puts_of_transformed_keys_are_stored_transformed_and_others_untouched() {
        let mut cmd = ops::put(b"/secret/a", b"abc", 0, Some(0));
        command_to_storage(&Reverse, &mut cmd).unwrap();
        let Some(command::Request::Txn(t)) = &cmd.request else {
            panic!("{cmd:?}")
        };
        let Some(request_op::Request::Put(p)) = &t.success[0].request else {
            panic!("{t:?}")
        };
        assert_eq!(&p.value[..], b"rev:cba");
        let mut other = ops::put(b"/plain/a", b"abc", 0, None);
        let before = other.clone();
        command_to_storage(&Reverse, &mut other).unwrap();
        assert_eq!(other, before);
    }

    #[test]
    fn a_value_compare_on_a_transformed_key_is_refused() {
        let mut t = TxnRequest {
            compare: vec![Compare {
                key: b"/secret/a".to_vec(),
                target: CompareTarget::Value as i32,
                result: CompareResult::Equal as i32,
                number: 0,
                value: b"abc".to_vec(),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::Put(PutRequest {
                    key: b"/secret/a".to_vec(),
                    value: Bytes::from_static(b"x"),
                    lease: 0,
                })),
            }],
            failure: vec![],
        };
        let err = txn_to_storage(&Reverse, &mut t).unwrap_err();
        assert!(err.to_string().contains("/secret/a"), "{err}");
        t.compare[0].key = b"/plain/a".to_vec();
        txn_to_storage(&Reverse, &mut t).unwrap();
    }

    #[test]
    fn responses_and_events_come_back_plain_and_errors_name_the_key() {
        let mut r = TxnResponse {
            succeeded: false,
            responses: vec![
                ResponseOp {
                    response: Some(response_op::Response::Range(RangeResponse {
                        kvs: vec![kv("/secret/a", "rev:cba"), kv("/secret/keys-only", "")],
                        ..Default::default()
                    })),
                },
                ResponseOp {
                    response: Some(response_op::Response::Put(crate::proto::PutResponse {
                        prev_kv: Some(kv("/secret/b", "rev:fed")),
                        kv: Some(kv("/plain/c", "rev:unchanged")),
                    })),
                },
            ],
            revision: 3,
        };
        txn_from_storage(&Reverse, &mut r).unwrap();
        let Some(response_op::Response::Range(range)) = &r.responses[0].response else {
            panic!()
        };
        assert_eq!(&range.kvs[0].value[..], b"abc");
        assert!(range.kvs[1].value.is_empty());
        let Some(response_op::Response::Put(put)) = &r.responses[1].response else {
            panic!()
        };
        assert_eq!(&put.prev_kv.as_ref().unwrap().value[..], b"def");
        assert_eq!(&put.kv.as_ref().unwrap().value[..], b"rev:unchanged");

        let mut stale = kv("/secret/old", "plain");
        assert!(kv_from_storage(&Reverse, &mut stale).unwrap());
        let mut events = vec![Event {
            kind: crate::mvcc::EventKind::Put,
            kv: kv("/secret/a", "bad"),
            prev_kv: None,
        }];
        let err = events_from_storage(&Reverse, &mut events).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to transform key \"/secret/a\": cannot read it"
        );
    }
}
