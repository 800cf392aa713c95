//! Kubernetes' event correlator (client-go `tools/record/events_cache.go`) as a state
//! machine without I/O: which Event a report becomes (a new one, one more on the Event
//! already written for it, or a write already in flight), and what the write that
//! follows left behind. [`super::record_from`] carries its decisions out.
//!
//! - Aggregation (client-go's `EventAggregator`): the 10th different message of
//!   *similar* events (same source, object, type and reason) within 10 minutes, and
//!   each one after it, goes to one Event whose message is the latest, prefixed
//!   `(combined from similar events): `.
//! - Counting (client-go's `eventLogger`): an identical event (same source, object,
//!   type, reason and message, or the same combined Event) is one more on the Event
//!   already written: its `count` and `lastTimestamp` move, nothing is created.
//! - Spam filter (client-go's `EventSourceObjectSpamFilter`): a source writes at most
//!   25 times about one object at once, then once every 5 minutes (a token bucket per
//!   source and object). A repeat held back is still counted: the next write of its
//!   Event carries it in `count`. Unlike client-go, a report without an Event yet is
//!   never held back (created all the same): a pod's `Scheduled` after 25 attempts'
//!   `FailedScheduling`, an HPA's `SuccessfulRescale` after its failing syncs, are
//!   not lost; only the counting of repeats is slowed down.
//!
//! All three remember at most 4096 keys (client-go's LRU size), the least recently seen
//! forgotten first. A series not seen for 10 minutes (the aggregation window) starts
//! a new Event; client-go's logger counts on the old one until its LRU drops it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys the correlator remembers at most, per table (client-go `maxLruCacheEntries`).
pub const MAX_ENTRIES: usize = 4096;
/// Different messages of similar events before they are combined (client-go
/// `defaultAggregateMaxEvents`).
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long similar events and a series are remembered since last seen (client-go
/// `defaultAggregateIntervalInSeconds`).
pub const WINDOW: Duration = Duration::from_secs(600);
/// The message prefix of a combined Event (client-go
/// `EventAggregatorByReasonMessageFunc`).
pub const COMBINED: &str = "(combined from similar events): ";
/// Writes a source may make about one object at once (client-go `defaultSpamBurst`).
pub const SPAM_BURST: f64 = 25.0;
/// Then one more each this long (client-go `defaultSpamQPS`, 1/300 per second).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);
/// A write in flight for longer is taken as lost (its task cancelled mid-write): the
/// next report writes again instead of waiting on it for ever.
const ABANDONED: Duration = Duration::from_secs(300);

/// One report of an event, as its fields are keyed.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// The source component (also the reporting controller).
    pub component: &'a str,
    /// The source host (also the reporting instance).
    pub host: &'a str,
    /// The involved object's `apiVersion`.
    pub api_version: &'a str,
    /// The involved object's kind.
    pub kind: &'a str,
    /// The involved object's namespace.
    pub namespace: &'a str,
    /// The involved object's name.
    pub name: &'a str,
    /// The involved object's uid.
    pub uid: &'a str,
    /// `Normal` or `Warning`.
    pub type_: &'a str,
    /// The reason.
    pub reason: &'a str,
    /// The message.
    pub message: &'a str,
}

impl Report<'_> {
    /// The source and the object (client-go `getSpamKey`).
    fn spam_key(&self) -> String {
        [
            self.component,
            self.host,
            self.kind,
            self.namespace,
            self.name,
            self.uid,
            self.api_version,
        ]
        .join("\0")
    }

    /// Everything but the message (client-go `EventAggregatorByReasonFunc`): the
    /// source and the object, the type and the reason.
    fn similar_key(&self) -> String {
        [self.spam_key().as_str(), self.type_, self.reason].join("\0")
    }
}

/// A write to carry out, then to [`Correlator::settle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Create an Event with this message and count (more than 1 when it replaces a
    /// counted Event that was deleted), first seen at `first` (RFC 3339) if known.
    Create {
        /// The message.
        message: String,
        /// Its `count`.
        count: i32,
        /// Its `firstTimestamp`, `None` for now.
        first: Option<String>,
    },
    /// Set the Event `name`'s `count`, `message` and `lastTimestamp` (now).
    Patch {
        /// The Event's name.
        name: String,
        /// Its new `count`.
        count: i32,
        /// Its message (a combined Event shows the latest).
        message: String,
    },
}

/// What became of a [`Write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written: the Event's name and `firstTimestamp`.
    Written {
        /// The Event's name.
        name: String,
        /// Its `firstTimestamp` (RFC 3339).
        first: String,
    },
    /// The patched Event is gone (404): it is created anew.
    Gone,
    /// Any other failure (logged by the caller).
    Failed,
}

/// A decision: the series' key (to settle) and its write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The series the write is for.
    pub key: String,
    /// The write.
    pub write: Write,
}

/// The Event written for a series.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    name: String,
    count: i32,
    first: String,
}

/// A series: the Event written for it, and the write in flight, if any.
#[derive(Clone, Debug)]
struct Series {
    written: Option<Event>,
    writing: Option<Writing>,
    /// Reports held back by the spam filter since the Event was last written.
    held: i32,
    last: Instant,
}

/// A token bucket: the writes a source may still make about an object.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token if there is one, refilled since last time (client-go's
    /// `TokenBucketRateLimiter.TryAccept`).
    fn try_accept(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(SPAM_BURST);
        self.at = self.at.max(now);
        let accepted = self.tokens >= 1.0;
        if accepted {
            self.tokens -= 1.0;
        }
        accepted
    }
}

#[derive(Clone, Debug)]
struct Writing {
    since: Instant,
    /// The count being written.
    count: i32,
    /// Reports that came while it was in flight, to write after it.
    more: i32,
    /// The latest message.
    message: String,
}

/// Similar events seen lately: their different messages, oldest first.
#[derive(Clone, Debug)]
struct Similar {
    messages: VecDeque<String>,
    last: Instant,
}

/// The correlator's state: one per process ([`super::record_from`] shares it).
#[derive(Debug)]
pub struct Correlator {
    similar: Lru<Similar>,
    series: Lru<Series>,
    spam: Lru<Bucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(MAX_ENTRIES)
    }
}

impl Correlator {
    /// A correlator that remembers at most `capacity` keys per table.
    pub fn new(capacity: usize) -> Self {
        Correlator {
            similar: Lru::new(capacity),
            series: Lru::new(capacity),
            spam: Lru::new(capacity),
        }
    }

    /// What `report`, seen at `now`, becomes: a write, or `None` when it was counted
    /// on a write already in flight for the same series (that write's task writes it
    /// after), or held back by the spam filter (counted on the next write of its
    /// Event).
    pub fn decide(&mut self, report: &Report<'_>, now: Instant) -> Option<Step> {
        let (key, message) = self.aggregate(report, now);
        let fresh = Series {
            written: None,
            writing: None,
            held: 0,
            last: now,
        };
        let series = self.series.entry(key.clone(), fresh);
        if now.saturating_duration_since(series.last) > WINDOW {
            series.written = None;
            series.held = 0;
        }
        series.last = now;
        if let Some(w) = &mut series.writing
            && now.saturating_duration_since(w.since) <= ABANDONED
        {
            w.more = w.more.saturating_add(1);
            w.message = message;
            return None;
        }
        let bucket = Bucket {
            tokens: SPAM_BURST,
            at: now,
        };
        if !self.spam.entry(report.spam_key(), bucket).try_accept(now) && series.written.is_some() {
            series.held = series.held.saturating_add(1);
            return None;
        }
        let held = std::mem::take(&mut series.held);
        let write = match &series.written {
            Some(e) => Write::Patch {
                name: e.name.clone(),
                count: e.count.saturating_add(held).saturating_add(1),
                message: message.clone(),
            },
            None => Write::Create {
                message: message.clone(),
                count: 1,
                first: None,
            },
        };
        series.writing = Some(Writing {
            since: now,
            count: write.count(),
            more: 0,
            message,
        });
        Some(Step { key, write })
    }

    /// Records what became of the write for `key`; returns the next write for it
    /// (the reports counted while it was in flight, or the Event created anew after
    /// a 404), `None` when the series rests.
    pub fn settle(&mut self, key: &str, outcome: Outcome, now: Instant) -> Option<Write> {
        let series = self.series.get_mut(key)?;
        let writing = series.writing.take()?;
        let next = match outcome {
            Outcome::Written { name, first } => {
                series.written = Some(Event {
                    name: name.clone(),
                    count: writing.count,
                    first,
                });
                (writing.more > 0).then(|| Write::Patch {
                    name,
                    count: writing.count.saturating_add(writing.more),
                    message: writing.message.clone(),
                })
            }
            Outcome::Gone => {
                let first = series.written.take().map(|e| e.first);
                Some(Write::Create {
                    message: writing.message.clone(),
                    count: writing.count.saturating_add(writing.more),
                    first,
                })
            }
            // Best effort, as client-go: the reports are lost, the Event written
            // before (if any) is counted on next time.
            Outcome::Failed => None,
        };
        if let Some(w) = &next {
            series.writing = Some(Writing {
                since: now,
                count: w.count(),
                more: 0,
                message: writing.message,
            });
        }
        next
    }

    /// Gives up the write in flight for `key` (its task ended before it settled).
    pub fn abandon(&mut self, key: &str) {
        if let Some(series) = self.series.get_mut(key) {
            series.writing = None;
        }
    }

    /// The series key and message of `report`: its own, or its combined Event's
    /// when it is the 10th different message of similar events or later
    /// (client-go `EventAggregate`).
    fn aggregate(&mut self, report: &Report<'_>, now: Instant) -> (String, String) {
        let similar_key = report.similar_key();
        let fresh = Similar {
            messages: VecDeque::new(),
            last: now,
        };
        let similar = self.similar.entry(similar_key.clone(), fresh);
        if now.saturating_duration_since(similar.last) > WINDOW {
            similar.messages.clear();
        }
        similar.last = now;
        if !similar.messages.iter().any(|m| m == report.message) {
            similar.messages.push_back(report.message.to_string());
        }
        if similar.messages.len() < AGGREGATE_MAX_EVENTS {
            let key = format!("event\0{similar_key}\0{}", report.message);
            return (key, report.message.to_string());
        }
        // Do not grow beyond the threshold (client-go drops one of the set).
        similar.messages.pop_front();
        let key = format!("combined\0{similar_key}");
        (key, format!("{COMBINED}{}", report.message))
    }
}

impl Write {
    /// The `count` this write sets.
    pub fn count(&self) -> i32 {
        match self {
            Write::Create { count, .. } | Write::Patch { count, .. } => *count,
        }
    }
}

/// A map of at most `capacity` entries that forgets the least recently used first;
/// each use is O(log n).
#[derive(Debug)]
struct Lru<V> {
    entries: HashMap<String, (V, u64)>,
    /// Entries by their last use.
    order: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    fn touch(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.to_string());
        Some(value)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.touch(key)
    }

    /// The entry of `key`, `fresh` when it had none (the oldest entry forgotten if
    /// that makes one too many).
    fn entry(&mut self, key: String, fresh: V) -> &mut V {
        if !self.entries.contains_key(&key)
            && self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.entries.entry(key.clone()).or_insert((fresh, 0));
        // Ticks start at 1: 0 is an entry just made.
        if *used != 0 {
            self.order.remove(used);
        }
        *used = tick;
        self.order.insert(tick, key);
        value
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(message: &str) -> Report<'_> {
        Report {
            component: "default-scheduler",
            host: "",
            api_version: "v1",
            kind: "Pod",
            namespace: "default",
            name: "picky",
            uid: "u1",
            type_: "Warning",
            reason: "FailedScheduling",
            message,
        }
    }

    fn written(name: &str) -> Outcome {
        Outcome::Written {
            name: name.to_string(),
            first: "2026-12-06T10:00:00Z".to_string(),
        }
    }

    /// Decides `report` at `now` and settles it as written to `name`.
    fn write(c: &mut Correlator, r: &Report<'_>, now: Instant, name: &str) -> Write {
        let step = c.decide(r, now).unwrap();
        assert_eq!(c.settle(&step.key, written(name), now), None);
        step.write
    }

    #[test]
    fn an_identical_event_is_counted_on_the_event_already_written() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        let first = write(&mut c, &report("0/3 nodes are available"), t0, "picky.1");
        assert_eq!(
            first,
            Write::Create {
                message: "0/3 nodes are available".into(),
                count: 1,
                first: None
            }
        );
        for (i, count) in [(1, 2), (2, 3), (3, 4)] {
            let now = t0 + Duration::from_secs(i * 30);
            let again = write(&mut c, &report("0/3 nodes are available"), now, "picky.1");
            assert_eq!(
                again,
                Write::Patch {
                    name: "picky.1".into(),
                    count,
                    message: "0/3 nodes are available".into()
                }
            );
        }
        // Another message is another series; another object too.
        let other = write(&mut c, &report("0/4 nodes are available"), t0, "picky.2");
        assert_eq!(other.count(), 1);
        let mut elsewhere = report("0/3 nodes are available");
        elsewhere.name = "other";
        assert!(matches!(
            c.decide(&elsewhere, t0).unwrap().write,
            Write::Create { .. }
        ));
    }

    #[test]
    fn the_tenth_different_message_of_similar_events_is_combined() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        for i in 0..9 {
            let w = write(&mut c, &report(&format!("Created pod: web-{i}")), t0, "x");
            assert_eq!(w.count(), 1, "{w:?}");
            assert!(matches!(w, Write::Create { .. }));
        }
        let tenth = write(&mut c, &report("Created pod: web-9"), t0, "web.c");
        assert_eq!(
            tenth,
            Write::Create {
                message: "(combined from similar events): Created pod: web-9".into(),
                count: 1,
                first: None
            }
        );
        // Each one after is counted on the combined Event, its message the latest.
        let eleventh = write(&mut c, &report("Created pod: web-10"), t0, "web.c");
        assert_eq!(
            eleventh,
            Write::Patch {
                name: "web.c".into(),
                count: 2,
                message: "(combined from similar events): Created pod: web-10".into()
            }
        );
        // Another reason is not similar.
        let mut other = report("Deleted pod: web-0");
        other.reason = "SuccessfulDelete";
        assert!(matches!(
            c.decide(&other, t0).unwrap().write,
            Write::Create { message, .. } if message == "Deleted pod: web-0"
        ));
        // Ten minutes later, the similar events start over.
        let later = t0 + WINDOW + Duration::from_secs(1);
        let w = write(&mut c, &report("Created pod: web-11"), later, "y");
        assert_eq!(
            w,
            Write::Create {
                message: "Created pod: web-11".into(),
                count: 1,
                first: None
            }
        );
    }

    #[test]
    fn a_series_not_seen_for_the_window_starts_a_new_event() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        write(&mut c, &report("m"), t0, "a");
        let within = t0 + WINDOW;
        assert_eq!(write(&mut c, &report("m"), within, "a").count(), 2);
        let after = within + WINDOW + Duration::from_secs(1);
        assert!(matches!(
            write(&mut c, &report("m"), after, "b"),
            Write::Create { count: 1, .. }
        ));
        assert_eq!(write(&mut c, &report("m"), after, "b").count(), 2);
    }

    #[test]
    fn the_least_recently_seen_of_4096_keys_is_forgotten() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("pod-{i}")).collect();
        fn of(name: &str) -> Report<'_> {
            Report {
                name,
                ..report("m")
            }
        }
        // Each pod once, but pod-0 seen again before the 4097th comes.
        for name in &names[..MAX_ENTRIES] {
            write(&mut c, &of(name), t0, name);
        }
        assert_eq!(write(&mut c, &of(&names[0]), t0, &names[0]).count(), 2);
        write(&mut c, &of(&names[MAX_ENTRIES]), t0, &names[MAX_ENTRIES]);
        assert_eq!(c.series.len(), MAX_ENTRIES);
        assert_eq!(c.similar.len(), MAX_ENTRIES);
        // pod-1 was the least recently seen: forgotten, a new Event; pod-0 counts on.
        assert!(matches!(
            c.decide(&of(&names[1]), t0).unwrap().write,
            Write::Create { .. }
        ));
        assert_eq!(c.decide(&of(&names[0]), t0).unwrap().write.count(), 3);
    }

    #[test]
    fn reports_during_a_write_are_counted_after_it_never_created_twice() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        let step = c.decide(&report("m"), t0).unwrap();
        assert!(matches!(step.write, Write::Create { count: 1, .. }));
        // Two more while the create is in flight: no second create.
        assert_eq!(c.decide(&report("m"), t0), None);
        assert_eq!(c.decide(&report("m"), t0), None);
        let next = c.settle(&step.key, written("e.1"), t0);
        assert_eq!(
            next,
            Some(Write::Patch {
                name: "e.1".into(),
                count: 3,
                message: "m".into()
            })
        );
        assert_eq!(c.settle(&step.key, written("e.1"), t0), None);
        assert_eq!(write(&mut c, &report("m"), t0, "e.1").count(), 4);
        // A write whose task never settled is given up after a while.
        let stuck = c.decide(&report("m"), t0).unwrap();
        assert_eq!(c.decide(&report("m"), t0 + ABANDONED), None);
        let retried = c.decide(&report("m"), t0 + ABANDONED + Duration::from_secs(1));
        assert_eq!(retried.map(|s| s.key), Some(stuck.key.clone()));
        c.abandon(&stuck.key);
        assert!(c.decide(&report("m"), t0 + ABANDONED).is_some());
    }

    #[test]
    fn a_counted_event_that_is_gone_is_created_anew_with_its_count() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        write(&mut c, &report("m"), t0, "old");
        let step = c.decide(&report("m"), t0).unwrap();
        assert!(matches!(step.write, Write::Patch { count: 2, .. }));
        let again = c.settle(&step.key, Outcome::Gone, t0);
        assert_eq!(
            again,
            Some(Write::Create {
                message: "m".into(),
                count: 2,
                first: Some("2026-12-06T10:00:00Z".into())
            })
        );
        assert_eq!(c.settle(&step.key, written("new"), t0), None);
        assert_eq!(
            c.decide(&report("m"), t0).unwrap().write,
            Write::Patch {
                name: "new".into(),
                count: 3,
                message: "m".into()
            }
        );
    }

    #[test]
    fn a_failed_patch_leaves_the_event_to_count_on_next_time() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        write(&mut c, &report("m"), t0, "e");
        let step = c.decide(&report("m"), t0).unwrap();
        assert_eq!(c.settle(&step.key, Outcome::Failed, t0), None);
        assert_eq!(
            c.decide(&report("m"), t0).unwrap().write,
            Write::Patch {
                name: "e".into(),
                count: 2,
                message: "m".into()
            }
        );
        // A failed create leaves nothing: the next report creates.
        let mut fresh = Correlator::default();
        let step = fresh.decide(&report("m"), t0).unwrap();
        assert_eq!(fresh.settle(&step.key, Outcome::Failed, t0), None);
        assert!(matches!(
            fresh.decide(&report("m"), t0).unwrap().write,
            Write::Create { .. }
        ));
    }

    #[test]
    fn a_source_writes_25_times_about_an_object_then_once_per_five_minutes() {
        let mut c = Correlator::default();
        let t0 = Instant::now();
        for count in 1..=25 {
            assert_eq!(write(&mut c, &report("m"), t0, "e").count(), count);
        }
        // Held back, but counted on the next write of the Event.
        assert_eq!(c.decide(&report("m"), t0), None);
        assert_eq!(c.decide(&report("m"), t0 + Duration::from_secs(60)), None);
        // A new message has no Event yet: created all the same, then held back too.
        assert!(matches!(
            write(&mut c, &report("n"), t0, "n"),
            Write::Create { count: 1, .. }
        ));
        assert_eq!(c.decide(&report("n"), t0), None);
        // Another object has its own budget.
        let other = Report {
            name: "other",
            ..report("m")
        };
        assert!(c.decide(&other, t0).is_some());
        let refilled = t0 + SPAM_REFILL;
        assert_eq!(
            write(&mut c, &report("m"), refilled, "e"),
            Write::Patch {
                name: "e".into(),
                count: 28,
                message: "m".into()
            }
        );
        assert_eq!(c.decide(&report("n"), refilled), None);
        // Both of its held reports counted: 1 + 2 + 1.
        let step = c.decide(&report("n"), refilled + SPAM_REFILL).unwrap();
        assert!(matches!(step.write, Write::Patch { count: 4, .. }));
    }
}
