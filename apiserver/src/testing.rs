//! What the unit tests of this crate share: a real one-member store to read and
//! write through.

use std::time::Duration;

use rk8s_raftstore::server::{MemberConfig, Store};

/// A one-member store in `dir` that leads (no fsync, a fast tick).
pub(crate) async fn leading_store(dir: &std::path::Path) -> Store {
    let mut cfg = MemberConfig::new(dir, "127.0.0.1:0".parse().unwrap());
    cfg.sync = false;
    cfg.tick = Duration::from_millis(20);
    let store = rk8s_raftstore::server::start(cfg).await.unwrap();
    let mut leadership = store.leadership();
    tokio::time::timeout(Duration::from_secs(10), leadership.wait_for(|l| l.is_self))
        .await
        .unwrap()
        .unwrap();
    store
}
