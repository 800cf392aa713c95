//! A linearizability checker for histories of operations on keys, each key a register
//! (Wing & Gong's search with memoisation, one key at a time, as Knossos and Porcupine
//! do).
//!
//! Every write stores a value never written before, so "compare-and-swap on the
//! `mod_revision` a client read" is the same as "compare-and-swap on the value it read".
//! Operations whose outcome is unknown (timed out, or their member crashed) may take
//! effect at any point after they began, or never.

use std::collections::{HashMap, HashSet};

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Write `value`.
    Put(u64),
    /// Write `value` if the key holds `expected` (`None`: does not exist).
    Cas { expected: Option<u64>, value: u64 },
    /// Delete.
    Delete,
    /// Read.
    Get,
}

/// What the store answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The write happened.
    Written,
    /// The compare-and-swap found another value.
    Refused,
    /// The read saw this.
    Read(Option<u64>),
    /// No answer: it may or may not have happened.
    Unknown,
    /// Refused before it was attempted (no leader to propose to): it did not happen.
    Failed,
}

/// One operation: call, outcome and when it began and ended (event counter values;
/// `end = u64::MAX` when unknown).
#[derive(Clone, Debug)]
pub struct Operation {
    pub key: u64,
    pub call: Call,
    pub outcome: Outcome,
    pub start: u64,
    pub end: u64,
}

/// Applies `op` to register state `state`; `None` if the outcome is impossible there.
fn step(state: Option<u64>, op: &Operation) -> Option<Option<u64>> {
    match (&op.call, &op.outcome) {
        (Call::Put(v), Outcome::Written | Outcome::Unknown) => Some(Some(*v)),
        (Call::Delete, Outcome::Written | Outcome::Unknown) => Some(None),
        (Call::Cas { expected, value }, Outcome::Written) => {
            (state == *expected).then_some(Some(*value))
        }
        (Call::Cas { expected, value }, Outcome::Unknown) => {
            // Only a CAS that found its value could have written.
            Some(if state == *expected {
                Some(*value)
            } else {
                state
            })
        }
        (Call::Cas { expected, .. }, Outcome::Refused) => (state != *expected).then_some(state),
        (Call::Get, Outcome::Read(v)) => (state == *v).then_some(state),
        (Call::Get, Outcome::Unknown) => Some(state),
        _ => None,
    }
}

/// Checks one key's history; on failure returns a description of the operations that
/// could not be ordered.
fn check_key(ops: &[Operation]) -> Result<(), String> {
    // Reads with no answer and requests that were never attempted constrain nothing.
    let ops: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Failed)
        .filter(|o| !(o.call == Call::Get && o.outcome == Outcome::Unknown))
        .collect();
    let n = ops.len();
    let required: Vec<bool> = ops.iter().map(|o| o.outcome != Outcome::Unknown).collect();
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // Depth-first search with an explicit stack: (ops linearized, state, next candidate).
    let mut stack: Vec<(usize, Option<u64>, usize)> = vec![(usize::MAX, None, 0)];
    let mut state = None;
    let mut deepest = 0;
    let is_done = |d: &[u64], i: usize| d[i / 64] & (1 << (i % 64)) != 0;
    loop {
        if (0..n).all(|i| !required[i] || is_done(&done, i)) {
            return Ok(());
        }
        let Some(frame) = stack.last_mut() else {
            return Err(format!(
                "no linearization: the longest consistent prefix orders {deepest} of {n} operations"
            ));
        };
        // The earliest end among operations not yet linearized: a candidate must begin
        // before it.
        let min_end = (0..n)
            .filter(|i| !is_done(&done, *i))
            .map(|i| ops[i].end)
            .min()
            .unwrap_or(u64::MAX);
        let mut advanced = false;
        while frame.2 < n {
            let i = frame.2;
            frame.2 += 1;
            if is_done(&done, i) || ops[i].start > min_end {
                continue;
            }
            let Some(next) = step(state, ops[i]) else {
                continue;
            };
            done[i / 64] |= 1 << (i % 64);
            if seen.insert((done.clone(), next)) {
                let prev_state = state;
                state = next;
                stack.push((i, prev_state, 0));
                deepest = deepest.max(stack.len() - 1);
                advanced = true;
                break;
            }
            done[i / 64] &= !(1 << (i % 64));
        }
        if !advanced {
            let (i, prev_state, _) = stack.pop().unwrap_or((usize::MAX, None, 0));
            if i == usize::MAX {
                return Err(format!(
                    "no linearization: the longest consistent prefix orders {deepest} of {n} operations"
                ));
            }
            done[i / 64] &= !(1 << (i % 64));
            state = prev_state;
        }
    }
}

/// Checks a whole history, key by key (linearizability is compositional).
pub fn check(history: &[Operation]) -> Result<(), String> {
    let mut by_key: HashMap<u64, Vec<Operation>> = HashMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.start);
        check_key(&ops).map_err(|e| format!("key {key}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, start: u64, end: u64) -> Operation {
        Operation {
            key: 1,
            call,
            outcome,
            start,
            end,
        }
    }

    #[test]
    fn accepts_a_linearizable_history_and_refuses_a_stale_read() {
        let ok = [
            op(Call::Put(1), Outcome::Written, 0, 2),
            op(Call::Get, Outcome::Read(Some(1)), 3, 4),
            op(Call::Put(2), Outcome::Written, 5, 9),
            // Concurrent with the put of 2: may see either.
            op(Call::Get, Outcome::Read(Some(1)), 6, 7),
            op(
                Call::Cas {
                    expected: Some(2),
                    value: 3,
                },
                Outcome::Written,
                10,
                11,
            ),
        ];
        assert!(check(&ok).is_ok());
        let stale = [
            op(Call::Put(1), Outcome::Written, 0, 2),
            op(Call::Put(2), Outcome::Written, 3, 4),
            op(Call::Get, Outcome::Read(Some(1)), 5, 6),
        ];
        assert!(check(&stale).is_err());
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        let maybe = [
            op(Call::Put(1), Outcome::Written, 0, 1),
            op(Call::Put(2), Outcome::Unknown, 2, u64::MAX),
            op(Call::Get, Outcome::Read(Some(1)), 3, 4),
            op(Call::Get, Outcome::Read(Some(2)), 5, 6),
        ];
        assert!(check(&maybe).is_ok());
        let lost = [
            op(Call::Put(1), Outcome::Written, 0, 1),
            op(Call::Put(2), Outcome::Written, 2, 3),
            op(Call::Get, Outcome::Read(Some(1)), 4, 5),
        ];
        assert!(check(&lost).is_err());
    }
}
