//! raft-rs logs through `slog`; rk8s logs through `tracing`. This drain forwards one to
//! the other, so `RUST_LOG` controls both.

use slog::{Drain, KV, Level, OwnedKVList, Record, Serializer};

/// An `slog` drain that emits `tracing` events.
pub struct TracingDrain;

struct Fields(String);

impl Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let msg = record.msg();
        let f = fields.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{msg}{f}"),
            Level::Warning => tracing::warn!(target: "raft", "{msg}{f}"),
            Level::Info => tracing::info!(target: "raft", "{msg}{f}"),
            Level::Debug => tracing::debug!(target: "raft", "{msg}{f}"),
            Level::Trace => tracing::trace!(target: "raft", "{msg}{f}"),
        }
        Ok(())
    }
}

/// A logger for raft-rs that writes through `tracing`, tagged with the member id.
pub fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("member" => id))
}
