//! The multi-version key space with etcd v3's semantics: one global revision that every
//! write transaction advances by one; per key `create_revision`, `mod_revision` and
//! `version`; reads at past revisions; history kept until compacted.
//!
//! Pure and deterministic: every replica that applies the same commands in the same
//! order holds the same state. It knows nothing of Raft, time or I/O.
//!
//! Values are held compressed ([`crate::packed`]); each revision holds only what the
//! key's map entry and its place in the history do not already say.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::error::{Error, Result, key_text};
use crate::lease::Lessor;
use crate::packed::{Packed, Packer};
use crate::proto::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, SnapshotKey,
    SnapshotRevision, TxnRequest, TxnResponse, request_op, response_op,
};

/// Whether an [`Event`] wrote or deleted its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change to one key, as watchers receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete only `key` and `mod_revision` (the
    /// revision of the deletion) are set.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision the change happened at.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// One retained revision of a key: its value as of then, or `None` for a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rev {
    revision: i64,
    kv: Option<Held>,
}

/// A key's value at one revision, as held: its key is the map entry's, its
/// `mod_revision` the [`Rev`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Held {
    create_revision: i64,
    version: i64,
    lease: i64,
    value: Packed,
}

impl Held {
    /// The key-value as written at `mod_revision` (its value left empty if `!value`).
    fn kv(&self, key: &[u8], mod_revision: i64, value: bool) -> Result<KeyValue> {
        Ok(KeyValue {
            key: key.to_vec(),
            value: if value {
                self.value.value()?
            } else {
                bytes::Bytes::new()
            },
            create_revision: self.create_revision,
            mod_revision,
            version: self.version,
            lease: self.lease,
        })
    }
}

impl Rev {
    /// The key-value this revision wrote, if it was not a deletion.
    fn kv(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        self.kv
            .as_ref()
            .map(|h| h.kv(key, self.revision, true))
            .transpose()
    }
}

/// The size of the key space ([`Mvcc::footprint`]), kept up to date by every write
/// (and counted afresh by compaction and restore, which visit every key anyway).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Keys that exist now.
    pub keys: u64,
    /// Revisions retained, of every key (until compaction).
    pub revisions: u64,
    /// Bytes of the retained keys and values as written (each revision's with its
    /// key).
    pub bytes: u64,
    /// Of `bytes`, those of values that are no longer current: what compaction frees.
    pub history_bytes: u64,
    /// Bytes the retained keys and values take as held: each key once, the values
    /// compressed (the dictionaries not counted).
    pub held_bytes: u64,
}

impl Footprint {
    /// Counted by visiting every key.
    fn of(keys: &BTreeMap<Vec<u8>, Vec<Rev>>) -> Self {
        let mut f = Footprint::default();
        for (key, history) in keys {
            let current = history.last().and_then(|r| r.kv.as_ref());
            if current.is_some() {
                f.keys += 1;
            }
            f.revisions += history.len() as u64;
            f.bytes += key.len() as u64;
            f.held_bytes += key.len() as u64;
            let values = history.iter().filter_map(|r| r.kv.as_ref());
            let all: u64 = values.clone().map(|h| kv_bytes(key, h)).sum();
            f.bytes += all;
            f.history_bytes += all - current.map_or(0, |h| kv_bytes(key, h));
            f.held_bytes += values.map(|h| h.value.held() as u64).sum::<u64>();
        }
        f
    }
}

/// The bytes of `key` and `held`'s value as written.
fn kv_bytes(key: &[u8], held: &Held) -> u64 {
    (key.len() + held.value.len()) as u64
}

/// The bytes of a key-value as written.
fn written_bytes(kv: &KeyValue) -> u64 {
    (kv.key.len() + kv.value.len()) as u64
}

/// The key-value history.
#[derive(Clone, Debug, Default)]
pub struct Mvcc {
    revision: i64,
    compact_revision: i64,
    keys: BTreeMap<Vec<u8>, Vec<Rev>>,
    footprint: Footprint,
    packer: Packer,
}

/// Equal when they hold the same history: how it is compressed does not count.
impl PartialEq for Mvcc {
    fn eq(&self, other: &Self) -> bool {
        let written = |f: &Footprint| (f.keys, f.revisions, f.bytes, f.history_bytes);
        self.revision == other.revision
            && self.compact_revision == other.compact_revision
            && self.keys == other.keys
            && written(&self.footprint) == written(&other.footprint)
    }
}

impl Eq for Mvcc {}

/// The smallest key after every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`); `[0]` ("to the end") when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The bounds of `[key, range_end)` in etcd's encoding: empty `range_end` is the key
/// alone, `[0]` is everything from `key` on.
fn bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    match range_end {
        [] => (Bound::Included(key), Bound::Included(key)),
        [0] => (Bound::Included(key), Bound::Unbounded),
        end => (Bound::Included(key), Bound::Excluded(end)),
    }
}

fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

impl Mvcc {
    /// The revision of the last write (0 for an empty store).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compaction point: revisions below it can no longer be read or watched.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The key's current value (an error only if the value held in memory does not
    /// decompress).
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.keys.get(key).and_then(|h| h.last()) {
            Some(r) => r.kv(key),
            None => Ok(None),
        }
    }

    /// The key's current value as held.
    fn current(&self, key: &[u8]) -> Option<(&Held, i64)> {
        let r = self.keys.get(key)?.last()?;
        Some((r.kv.as_ref()?, r.revision))
    }

    /// The revision of `history` that is current at `revision`, if the key existed.
    fn at(history: &[Rev], revision: i64) -> Option<(&Held, i64)> {
        let i = history.partition_point(|r| r.revision <= revision);
        let r = history.get(i.checked_sub(1)?)?;
        Some((r.kv.as_ref()?, r.revision))
    }

    fn check_read_revision(&self, revision: i64) -> Result<i64> {
        if revision == 0 {
            return Ok(self.revision);
        }
        if revision > self.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision < self.compact_revision {
            return Err(Error::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        Ok(revision)
    }

    /// Reads a key or a range, now or at a past revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let revision = self.check_read_revision(req.revision)?;
        self.range_at(req, revision)
    }

    fn range_at(&self, req: &RangeRequest, revision: i64) -> Result<RangeResponse> {
        let mut resp = RangeResponse {
            revision,
            compact_revision: self.compact_revision,
            ..RangeResponse::default()
        };
        let limit = usize::try_from(req.limit).ok().filter(|l| *l > 0);
        for (key, history) in self.keys.range::<[u8], _>(bounds(&req.key, &req.range_end)) {
            let Some((held, mod_revision)) = Self::at(history, revision) else {
                continue;
            };
            let full = limit.is_some_and(|l| resp.kvs.len() >= l);
            if full && req.uncounted && !req.count_only {
                resp.more = true;
                break;
            }
            resp.count += 1;
            if req.count_only {
                continue;
            }
            if full {
                resp.more = true;
                continue;
            }
            resp.kvs.push(held.kv(key, mod_revision, !req.keys_only)?);
        }
        Ok(resp)
    }

    fn compare_holds(&self, c: &Compare) -> bool {
        let kv = self.current(&c.key);
        let ordering = match CompareTarget::try_from(c.target) {
            Ok(CompareTarget::Value) => match kv.map(|(held, _)| held.value.value()) {
                // etcd: a value compare against a missing key is false.
                None => return false,
                Some(Ok(value)) => value[..].cmp(c.value.as_slice()),
                // Held values decompress unless memory is damaged: nothing compares.
                Some(Err(_)) => return false,
            },
            Ok(target) => {
                let n = kv.map_or(0, |(held, mod_revision)| match target {
                    CompareTarget::Version => held.version,
                    CompareTarget::Create => held.create_revision,
                    CompareTarget::Mod => mod_revision,
                    CompareTarget::Lease => held.lease,
                    CompareTarget::Value => 0,
                });
                n.cmp(&c.number)
            }
            Err(_) => return false,
        };
        match CompareResult::try_from(c.result) {
            Ok(CompareResult::Equal) => ordering.is_eq(),
            Ok(CompareResult::NotEqual) => ordering.is_ne(),
            Ok(CompareResult::Greater) => ordering.is_gt(),
            Ok(CompareResult::Less) => ordering.is_lt(),
            Err(_) => false,
        }
    }

    /// Checks what would make a transaction fail half-way, so that it either applies
    /// whole or not at all: the same key put twice, or a put to a missing lease.
    fn check_ops(ops: &[RequestOp], lessor: &Lessor) -> Result<()> {
        let mut keys = HashSet::new();
        for op in ops {
            if let Some(request_op::Request::Put(p)) = &op.request {
                if !keys.insert(p.key.as_slice()) {
                    return Err(Error::DuplicateKey(key_text(&p.key)));
                }
                if p.lease != 0 && !lessor.contains(p.lease) {
                    return Err(Error::LeaseNotFound(p.lease));
                }
            }
        }
        Ok(())
    }

    /// Runs a transaction: compares, then the success or failure operations, all at
    /// one new revision (the revision advances only if something changed).
    pub fn txn(
        &mut self,
        req: &TxnRequest,
        lessor: &mut Lessor,
    ) -> Result<(TxnResponse, Vec<Event>)> {
        let succeeded = req.compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        Self::check_ops(ops, lessor)?;
        let revision = self.revision + 1;
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                None => None,
                // Reads inside a transaction see its earlier writes (made at
                // `revision`), whatever revision they name.
                Some(request_op::Request::Range(r)) => {
                    Some(response_op::Response::Range(self.range_at(r, revision)?))
                }
                Some(request_op::Request::Put(p)) => {
                    let (resp, event) = self.put(p, revision, lessor)?;
                    events.push(event);
                    Some(response_op::Response::Put(resp))
                }
                Some(request_op::Request::DeleteRange(d)) => {
                    let (resp, mut evs) = self.delete_range(d, revision, lessor)?;
                    events.append(&mut evs);
                    Some(response_op::Response::DeleteRange(resp))
                }
            };
            responses.push(ResponseOp { response });
        }
        if !events.is_empty() {
            self.revision = revision;
        }
        Ok((
            TxnResponse {
                succeeded,
                responses,
                revision: self.revision,
            },
            events,
        ))
    }

    fn put(
        &mut self,
        p: &PutRequest,
        revision: i64,
        lessor: &mut Lessor,
    ) -> Result<(PutResponse, Event)> {
        let prev = match self.keys.get(p.key.as_slice()) {
            Some(history) => match history.last() {
                Some(r) => r.kv(&p.key)?,
                None => None,
            },
            None => {
                let f = &mut self.footprint;
                f.bytes += p.key.len() as u64;
                f.held_bytes += p.key.len() as u64;
                None
            }
        };
        let held = Held {
            create_revision: prev.as_ref().map_or(revision, |k| k.create_revision),
            version: prev.as_ref().map_or(1, |k| k.version + 1),
            lease: p.lease,
            value: self.packer.pack(&p.key, &p.value),
        };
        let f = &mut self.footprint;
        match &prev {
            Some(prev) => f.history_bytes += written_bytes(prev),
            None => f.keys += 1,
        }
        f.revisions += 1;
        f.bytes += kv_bytes(&p.key, &held);
        f.held_bytes += held.value.held() as u64;
        let kv = KeyValue {
            key: p.key.clone(),
            value: p.value.clone(),
            create_revision: held.create_revision,
            mod_revision: revision,
            version: held.version,
            lease: p.lease,
        };
        push(
            self.keys.entry(p.key.clone()).or_default(),
            Rev {
                revision,
                kv: Some(held),
            },
        );
        if let Some(prev) = &prev
            && prev.lease != 0
            && prev.lease != p.lease
        {
            lessor.detach(prev.lease, &p.key);
        }
        if p.lease != 0 {
            lessor.attach(p.lease, &p.key);
        }
        let event = Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev_kv: prev.clone(),
        };
        Ok((
            PutResponse {
                prev_kv: prev,
                kv: Some(kv),
            },
            event,
        ))
    }

    fn delete_range(
        &mut self,
        d: &DeleteRangeRequest,
        revision: i64,
        lessor: &mut Lessor,
    ) -> Result<(DeleteRangeResponse, Vec<Event>)> {
        let mut resp = DeleteRangeResponse::default();
        let mut events = Vec::new();
        for (key, history) in self.keys.range_mut::<[u8], _>(bounds(&d.key, &d.range_end)) {
            let Some(prev) = history.last().map(|r| r.kv(key)).transpose()?.flatten() else {
                continue;
            };
            push(history, Rev { revision, kv: None });
            let f = &mut self.footprint;
            f.keys -= 1;
            f.revisions += 1;
            f.history_bytes += written_bytes(&prev);
            if prev.lease != 0 {
                lessor.detach(prev.lease, key);
            }
            resp.deleted += 1;
            resp.prev_kvs.push(prev.clone());
            events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: key.clone(),
                    mod_revision: revision,
                    ..Default::default()
                },
                prev_kv: Some(prev),
            });
        }
        Ok((resp, events))
    }

    /// Deletes the given keys at one new revision (a revoked or expired lease's keys).
    pub fn delete_keys(&mut self, keys: &[Vec<u8>], lessor: &mut Lessor) -> Result<Vec<Event>> {
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for key in keys {
            let req = DeleteRangeRequest {
                key: key.clone(),
                range_end: Vec::new(),
            };
            events.append(&mut self.delete_range(&req, revision, lessor)?.1);
        }
        if !events.is_empty() {
            self.revision = revision;
        }
        Ok(events)
    }

    /// Drops history before `revision`; each key keeps its latest value as of then.
    pub fn compact(&mut self, revision: i64) -> Result<()> {
        if revision > self.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision <= self.compact_revision {
            return Err(Error::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        self.keys.retain(|_, history| {
            let keep_from = history
                .partition_point(|r| r.revision <= revision)
                .saturating_sub(1);
            history.drain(..keep_from);
            if history
                .first()
                .is_some_and(|r| r.revision <= revision && r.kv.is_none())
            {
                history.remove(0);
            }
            history.shrink_to_fit();
            !history.is_empty()
        });
        self.packer
            .retain_directories(self.keys.keys().map(Vec::as_slice));
        self.compact_revision = revision;
        self.footprint = Footprint::of(&self.keys);
        Ok(())
    }

    /// Every change to keys in `[key, range_end)` at `from_revision` or later, in
    /// revision order — or `Compacted` if that history is gone. Never a silent gap.
    pub fn events_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        from_revision: i64,
    ) -> Result<Vec<Event>> {
        if from_revision <= self.compact_revision {
            return Err(Error::Compacted {
                requested: from_revision,
                compact_revision: self.compact_revision,
            });
        }
        let mut events = Vec::new();
        for (k, history) in self.keys.range::<[u8], _>(bounds(key, range_end)) {
            let start = history.partition_point(|r| r.revision < from_revision);
            for (i, r) in history.iter().enumerate().skip(start) {
                let prev_kv = match i.checked_sub(1).and_then(|p| history.get(p)) {
                    Some(prev) => prev.kv(k)?,
                    None => None,
                };
                events.push(match r.kv(k)? {
                    Some(kv) => Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv,
                    },
                    None => Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: k.clone(),
                            mod_revision: r.revision,
                            ..Default::default()
                        },
                        prev_kv,
                    },
                });
            }
        }
        events.sort_by_key(Event::revision);
        Ok(events)
    }

    /// Whether `key` is in `[start, range_end)` (etcd's range encoding).
    pub fn key_in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
        in_range(key, start, range_end)
    }

    /// What the key space holds: live keys, retained revisions (history included),
    /// and the bytes of their keys and values.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// The retained history, key by key, for a snapshot (each built when reached, so
    /// a snapshot is written without a second copy of the key space), the values as
    /// written.
    pub fn snapshot_keys(&self) -> impl Iterator<Item = Result<SnapshotKey>> + '_ {
        self.keys.iter().map(|(k, h)| {
            Ok(SnapshotKey {
                key: k.clone(),
                revisions: h
                    .iter()
                    .map(|r| {
                        Ok(SnapshotRevision {
                            revision: r.revision,
                            kv: r.kv(k)?,
                        })
                    })
                    .collect::<Result<_>>()?,
            })
        })
    }

    /// Rebuilds from a snapshot's parts.
    pub fn restore(revision: i64, compact_revision: i64, keys: Vec<SnapshotKey>) -> Self {
        let mut packer = Packer::default();
        let keys = keys
            .into_iter()
            .map(|k| {
                let revs = k
                    .revisions
                    .into_iter()
                    .map(|r| Rev {
                        revision: r.revision,
                        kv: r.kv.map(|kv| Held {
                            create_revision: kv.create_revision,
                            version: kv.version,
                            lease: kv.lease,
                            value: packer.pack(&k.key, &kv.value),
                        }),
                    })
                    .collect();
                (k.key, revs)
            })
            .collect();
        Mvcc {
            revision,
            compact_revision,
            footprint: Footprint::of(&keys),
            keys,
            packer,
        }
    }
}

/// Appends `rev` to a key's history with room for it alone: most keys keep one to
/// three revisions, and a `Vec` left to grow makes room for four.
fn push(history: &mut Vec<Rev>, rev: Rev) {
    history.reserve_exact(1);
    history.push(rev);
}
