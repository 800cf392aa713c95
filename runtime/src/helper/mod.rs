//! The container helper process and how clients reach it.
//!
//! A binary that hosts the runtime calls [`run_if_requested`] first thing in `main`,
//! before any async runtime starts: when it was started as the helper
//! (`<exe> __runtime-helper --root DIR`) it runs the helper there and exits.

pub mod client;
pub mod engine;
pub mod protocol;
pub mod server;
mod stdio;

pub use client::HelperClient;
pub use protocol::PROTOCOL_VERSION;
pub use server::{HelperConfig, socket_path};
pub use stdio::{MAX_HELPER_SESSIONS, MAX_SESSIONS};

/// The hidden first argument that makes a binary the helper.
pub const HELPER_ARG: &str = "__runtime-helper";

/// If this process was started as the helper, runs it and exits; otherwise returns.
pub fn run_if_requested() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(HELPER_ARG) {
        return;
    }
    let mut root = None;
    let mut idle_exit = None;
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--root" => root = rest.next().cloned(),
            "--idle-exit-seconds" => {
                idle_exit = rest
                    .next()
                    .and_then(|s| s.parse().ok())
                    .map(std::time::Duration::from_secs)
            }
            _ => {}
        }
    }
    let _ = tracing_subscriber_init();
    let Some(root) = root else {
        eprintln!("{HELPER_ARG}: --root DIR is required");
        std::process::exit(2);
    };
    let config = HelperConfig {
        root: root.into(),
        idle_exit,
    };
    match server::run(config) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("container helper: {e}");
            std::process::exit(1);
        }
    }
}

fn tracing_subscriber_init() -> Option<()> {
    // The hosting binary's subscriber is not set up yet: log plainly to stderr (the
    // helper's log file) at the level RUST_LOG asks, info by default.
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .finish(),
    )
    .ok()
}
