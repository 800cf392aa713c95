//! Where events go: a bounded queue that requests never wait on, drained by one
//! writer thread that renders each event and writes it to the log (a rotating file,
//! or standard output). An event that finds the queue full is dropped and counted
//! (`apiserver_audit_error_total{plugin="buffered"}`, as kube-apiserver's buffered
//! backend counts its drops); one whose bodies would take the queue past its byte
//! budget keeps its metadata and loses its bodies (`audit.k8s.io/truncated`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock};

use prometheus::{IntCounter, IntCounterVec, Opts};
use rk8s_http::metrics::registered;

use super::event::Event;
use super::policy::Level;

/// Events waiting to be written, at most (kube-apiserver's default
/// `--audit-log-batch-buffer-size`).
pub const QUEUE_EVENTS: usize = 10_000;

/// Bytes of bodies waiting to be written, at most.
pub const QUEUE_BODY_BYTES: usize = 64 << 20;

/// `apiserver_audit_event_total`.
pub static EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(IntCounter::with_opts(Opts::new(
        "apiserver_audit_event_total",
        "Counter of audit events generated and sent to the audit backend.",
    )))
});

/// `apiserver_audit_error_total{plugin}`.
pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "apiserver_audit_error_total",
            "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
        ),
        &["plugin"],
    ))
});

/// `apiserver_audit_level_total{level}`.
pub static LEVELS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "apiserver_audit_level_total",
            "Counter of policy levels for audit events (1 per request).",
        ),
        &["level"],
    ))
});

/// Counts the level the policy gave one request.
pub fn observe_level(level: Level) {
    LEVELS.with_label_values(&[level.as_str()]).inc();
}

/// Where rendered events are written, one line each.
pub trait LineWriter: Send {
    /// Writes one line (it ends with its newline).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    /// Writes out what is buffered.
    fn flush(&mut self) -> io::Result<()>;
}

/// Standard output (`--audit-log-path -`).
#[derive(Debug)]
pub struct Stdout(io::BufWriter<io::Stdout>);

impl Stdout {
    /// Standard output, buffered between flushes.
    pub fn new() -> Self {
        Stdout(io::BufWriter::new(io::stdout()))
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl LineWriter for Stdout {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.0.write_all(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Every `WARN_EVERY`th failure is logged (the first always is).
const WARN_EVERY: u64 = 1000;

/// Logs a failure of `what` the first time and then every [`WARN_EVERY`] times.
fn warn_sometimes(count: &AtomicU64, what: &str, detail: &dyn std::fmt::Display) {
    let n = count.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(WARN_EVERY) {
        tracing::warn!("audit log: {what} ({} so far): {detail}", n + 1);
    }
}

/// The sending end of the queue: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Sink {
    tx: SyncSender<Event>,
    queued_bytes: Arc<AtomicUsize>,
    drops: Arc<AtomicU64>,
}

impl Sink {
    /// Queues `event`, counting it; drops it (counted) when the queue is full.
    pub fn send(&self, mut event: Event) {
        EVENTS.inc();
        let bytes = event.body_bytes();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued.saturating_add(bytes) > QUEUE_BODY_BYTES {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            event.drop_bodies();
        }
        let kept = event.body_bytes();
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(kept, Ordering::Relaxed);
                ERRORS.with_label_values(&["buffered"]).inc();
                warn_sometimes(&self.drops, "queue full, event dropped", &QUEUE_EVENTS);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(kept, Ordering::Relaxed);
                ERRORS.with_label_values(&["log"]).inc();
                warn_sometimes(&self.drops, "the writer stopped, event dropped", &"");
            }
        }
    }
}

/// Starts the writer thread over `out`; it ends once every [`Sink`] is dropped and
/// the queue is drained.
pub fn spawn(out: Box<dyn LineWriter>) -> io::Result<(Sink, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_EVENTS);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let counted = queued_bytes.clone();
    let handle = std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || write_all(rx, out, &counted))?;
    Ok((
        Sink {
            tx,
            queued_bytes,
            drops: Arc::new(AtomicU64::new(0)),
        },
        handle,
    ))
}

/// The writer: renders and writes events as they come, flushing whenever the queue
/// is empty (so a burst is one write and a quiet log is always on disk).
fn write_all(rx: Receiver<Event>, mut out: Box<dyn LineWriter>, queued_bytes: &AtomicUsize) {
    let failures = AtomicU64::new(0);
    let fail = |e: io::Error| {
        ERRORS.with_label_values(&["log"]).inc();
        warn_sometimes(&failures, "write failed", &e);
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(event) = next {
            queued_bytes.fetch_sub(event.body_bytes(), Ordering::Relaxed);
            if let Err(e) = out.write_line(&event.render()) {
                fail(e);
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            fail(e);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A writer that keeps the lines in memory.
    #[derive(Clone, Default)]
    pub(crate) struct Memory(pub(crate) Arc<Mutex<Vec<String>>>);

    impl LineWriter for Memory {
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(line).into_owned());
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn metrics_are_registered_under_kubernetes_names() {
        EVENTS.inc_by(0);
        ERRORS.with_label_values(&["log"]).inc_by(0);
        observe_level(Level::Metadata);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&prometheus::gather())
            .unwrap();
        for name in [
            "apiserver_audit_event_total",
            "apiserver_audit_error_total{plugin=\"log\"}",
            "apiserver_audit_level_total{level=\"Metadata\"}",
        ] {
            assert!(text.contains(name), "{name}");
        }
    }

    #[test]
    fn an_empty_queue_ends_the_writer_when_the_sinks_are_gone() {
        let memory = Memory::default();
        let (sink, handle) = spawn(Box::new(memory.clone())).unwrap();
        drop(sink);
        handle.join().unwrap();
        assert!(memory.0.lock().unwrap().is_empty());
    }
}
