//! The entries after the snapshot as a member holds them in memory: the term of
//! every one (in runs of equal terms: raft-rs asks for terms often, and a term
//! changes only with an election), and the newest entries themselves up to a number
//! of bytes. Older entries stay only in the log's files, from where [`super::RaftLog`]
//! reads them when raft-rs asks (a lagging follower, or entries applied late).

use std::collections::VecDeque;

use raft::eraftpb::Entry;

/// Bytes of an entry counted against the bounds: its data and context.
pub(super) fn entry_size(e: &Entry) -> u64 {
    (e.data.len() + e.context.len()) as u64
}

/// See the module documentation.
pub(super) struct Tail {
    /// The snapshot's index: the entries start after it.
    snapshot: u64,
    /// The last entry's index (`snapshot` when there is none).
    last: u64,
    /// The terms of (`snapshot`, `last`]: the first index and the term of each run of
    /// entries with the same term, in index order.
    terms: Vec<(u64, u64)>,
    /// The newest entries, in index order, ending at `last`.
    cached: VecDeque<Entry>,
    /// Bytes of `cached`.
    cached_bytes: u64,
    /// Bytes of the entries after the snapshot. Entries that left memory before they
    /// were truncated or compacted stay counted until the next snapshot restarts the
    /// count (see [`Tail::compact`]).
    bytes: u64,
    /// Bytes of entries kept in `cached` at most.
    limit: u64,
}

impl Tail {
    /// No entries after the snapshot at `snapshot`; at most `limit` bytes of entries
    /// kept in memory.
    pub(super) fn new(snapshot: u64, limit: u64) -> Self {
        Tail {
            snapshot,
            last: snapshot,
            terms: Vec::new(),
            cached: VecDeque::new(),
            cached_bytes: 0,
            bytes: 0,
            limit,
        }
    }

    /// The last entry's index (the snapshot's without entries).
    pub(super) fn last(&self) -> u64 {
        self.last
    }

    /// Entries after the snapshot.
    pub(super) fn len(&self) -> u64 {
        self.last - self.snapshot
    }

    /// Bytes of the entries after the snapshot.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The first index held in memory (`last + 1` when none is).
    pub(super) fn first_cached(&self) -> u64 {
        self.cached.front().map_or(self.last + 1, |e| e.index)
    }

    /// The term of entry `idx`, in (snapshot, last].
    pub(super) fn term(&self, idx: u64) -> Option<u64> {
        if idx <= self.snapshot || idx > self.last {
            return None;
        }
        let run = self.terms.partition_point(|&(first, _)| first <= idx);
        run.checked_sub(1).map(|r| self.terms[r].1)
    }

    /// The entries of [low, high) held in memory, in order (`low >= first_cached`).
    pub(super) fn cached(&self, low: u64, high: u64) -> impl Iterator<Item = &Entry> {
        let first = self.first_cached();
        let from = low.saturating_sub(first) as usize;
        let to = high.saturating_sub(first) as usize;
        self.cached.range(from.min(to)..to.min(self.cached.len()))
    }

    /// Appends `entries` (consecutive, the first after the snapshot and at most
    /// `last + 1`), replacing the entries from the first one's index on; then lets
    /// the oldest entries go from memory while more than the limit is held.
    pub(super) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        if first.index <= self.last {
            self.truncate_from(first.index);
        }
        for e in entries {
            if self.terms.last().is_none_or(|&(_, term)| term != e.term) {
                self.terms.push((e.index, e.term));
            }
            let size = entry_size(e);
            self.bytes += size;
            self.cached_bytes += size;
            self.cached.push_back(e.clone());
            self.last = e.index;
        }
        while self.cached_bytes > self.limit {
            let Some(old) = self.cached.pop_front() else {
                break;
            };
            self.cached_bytes -= entry_size(&old);
        }
    }

    /// Drops the entries from `index` on.
    fn truncate_from(&mut self, index: u64) {
        while self.cached.back().is_some_and(|e| e.index >= index) {
            if let Some(e) = self.cached.pop_back() {
                let size = entry_size(&e);
                self.cached_bytes -= size;
                self.bytes = self.bytes.saturating_sub(size);
            }
        }
        let keep = self.terms.partition_point(|&(first, _)| first < index);
        self.terms.truncate(keep);
        self.last = index.saturating_sub(1).max(self.snapshot);
    }

    /// A snapshot at `index` with `term` replaces the entries it covers. Entries after
    /// it stay if the log agrees with it there (its entry at `index` has `term`);
    /// otherwise all go. Returns whether they stayed. The byte count restarts from
    /// the entries that stay and are in memory: one not in memory stays only when
    /// more than the memory limit of entries was not yet applied.
    pub(super) fn compact(&mut self, index: u64, term: u64) -> bool {
        let consistent = self.term(index) == Some(term);
        if !consistent {
            *self = Tail::new(index, self.limit);
            return false;
        }
        while self.cached.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.cached.pop_front() {
                self.cached_bytes -= entry_size(&e);
            }
        }
        let run = self.terms.partition_point(|&(first, _)| first <= index);
        // The run holding `index` goes on from `index + 1`, if it has more entries.
        self.terms.drain(..run.saturating_sub(1));
        if let Some(first) = self.terms.first_mut() {
            first.0 = first.0.max(index + 1);
        }
        if index == self.last {
            self.terms.clear();
        }
        self.snapshot = index;
        self.bytes = self.cached_bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![0; len].into(),
            ..Default::default()
        }
    }

    fn indexes<'a>(it: impl Iterator<Item = &'a Entry>) -> Vec<u64> {
        it.map(|e| e.index).collect()
    }

    #[test]
    fn terms_are_kept_for_every_entry_and_entries_up_to_the_limit() {
        let mut tail = Tail::new(10, 300);
        let entries: Vec<Entry> = (11..=20)
            .map(|i| entry(i, if i < 15 { 2 } else { 3 }, 100))
            .collect();
        tail.append(&entries);
        assert_eq!((tail.last(), tail.len(), tail.bytes()), (20, 10, 1000));
        assert_eq!(tail.terms, [(11, 2), (15, 3)]);
        // Only the newest 300 bytes stay in memory; every term is known.
        assert_eq!(tail.first_cached(), 18);
        assert_eq!(indexes(tail.cached(18, 21)), [18, 19, 20]);
        assert_eq!(indexes(tail.cached(19, 20)), [19]);
        let terms: Vec<Option<u64>> = (10..=21).map(|i| tail.term(i)).collect();
        let mut want = vec![None];
        want.extend([Some(2); 4]);
        want.extend([Some(3); 6]);
        want.push(None);
        assert_eq!(terms, want);
    }

    #[test]
    fn a_conflicting_append_replaces_the_suffix_and_its_terms() {
        let mut tail = Tail::new(0, 1 << 20);
        tail.append(&(1..=6).map(|i| entry(i, 1, 10)).collect::<Vec<_>>());
        tail.append(&[entry(4, 2, 5), entry(5, 2, 5)]);
        assert_eq!((tail.last(), tail.bytes()), (5, 40));
        assert_eq!(tail.terms, [(1, 1), (4, 2)]);
        assert_eq!(tail.term(3), Some(1));
        assert_eq!(tail.term(4), Some(2));
        assert_eq!(tail.term(6), None);
        // Everything replaced, from the first entry on.
        tail.append(&[entry(1, 3, 1)]);
        assert_eq!(
            (tail.last(), tail.bytes(), tail.terms.clone()),
            (1, 1, vec![(1, 3)])
        );
    }

    #[test]
    fn a_snapshot_keeps_the_entries_after_it_when_the_log_agrees() {
        let mut tail = Tail::new(0, 1 << 20);
        tail.append(
            &(1..=9)
                .map(|i| entry(i, i.div_ceil(3), 10))
                .collect::<Vec<_>>(),
        );
        assert!(tail.compact(4, 2));
        assert_eq!((tail.first_cached(), tail.last(), tail.len()), (5, 9, 5));
        assert_eq!(tail.bytes(), 50);
        assert_eq!(tail.terms, [(5, 2), (7, 3)]);
        assert_eq!(
            (tail.term(4), tail.term(5), tail.term(9)),
            (None, Some(2), Some(3))
        );
        // At the last entry: nothing is left.
        assert!(tail.compact(9, 3));
        assert_eq!((tail.len(), tail.bytes(), tail.first_cached()), (0, 0, 10));
        assert!(tail.terms.is_empty());
        tail.append(&[entry(10, 4, 1)]);
        assert_eq!(tail.term(10), Some(4));
        // A snapshot the log disagrees with drops every entry.
        assert!(!tail.compact(12, 5));
        assert_eq!((tail.last(), tail.len(), tail.term(10)), (12, 0, None));
    }
}
