//! Real `rk8s-server` processes on loopback: three store members (the second and third
//! join at runtime), continuous writes, SIGKILL of the leader, a new election, no
//! acknowledged write lost, and the killed member catching up — from a snapshot, since
//! the log it missed has been compacted by then.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::proto::{RangeRequest, StatusResponse};

/// The test's processes and directories, removed on drop (also when the test fails).
struct Cluster {
    root: PathBuf,
    members: Vec<Member>,
}

struct Member {
    addr: String,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("rk8s-store-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Cluster {
            root,
            members: Vec::new(),
        }
    }

    fn spawn(&mut self, i: usize, join: Option<&str>) {
        let member = &mut self.members[i];
        let log = std::fs::File::create(self.root.join(format!("member{i}.log"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rk8s-server"));
        cmd.arg("--data-dir")
            .arg(&member.dir)
            .arg("--peer-listen")
            .arg(&member.addr)
            .arg("--snapshot-entries")
            .arg("200")
            .arg("--port")
            .arg(free_port().to_string())
            .arg("--admin-kubeconfig")
            .arg(self.root.join(format!("member{i}.kubeconfig")))
            .env("RUST_LOG", "info,raft=warn")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(peer) = join {
            cmd.arg("--join").arg(peer);
        }
        member.child = Some(cmd.spawn().expect("failed to start rk8s-server"));
    }

    fn add(&mut self, join: Option<&str>) -> usize {
        let i = self.members.len();
        self.members.push(Member {
            addr: format!("127.0.0.1:{}", free_port()),
            dir: self.root.join(format!("member{i}")),
            child: None,
        });
        self.spawn(i, join);
        i
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("member logs are in {}", self.root.display());
            // Keep the logs for a look, but remove the data.
            for m in &self.members {
                let _ = std::fs::remove_dir_all(&m.dir);
            }
        }
    }
}

async fn status(addr: &str) -> Option<StatusResponse> {
    let client = StoreClient::connect(addr).await.ok()?;
    tokio::time::timeout(Duration::from_secs(2), client.status())
        .await
        .ok()?
        .ok()
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `key` through whichever member answers; `true` once acknowledged.
async fn write(addrs: &[String], key: &str) -> bool {
    for addr in addrs {
        let Ok(client) = StoreClient::connect(addr).await else {
            continue;
        };
        let put = client.put(key.as_bytes(), b"v");
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), put).await {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_the_leader_being_killed() {
    let mut cluster = Cluster::new();
    let first = cluster.add(None);
    let a0 = cluster.members[first].addr.clone();
    let s = wait_for(
        "the first member to lead",
        Duration::from_secs(20),
        async || status(&a0).await.filter(|s| s.leader == s.id),
    )
    .await;
    assert_eq!(s.voters.len(), 1);
    cluster.add(Some(&a0));
    cluster.add(Some(&a0));
    let addrs: Vec<String> = cluster.members.iter().map(|m| m.addr.clone()).collect();
    wait_for("three voters", Duration::from_secs(30), async || {
        status(&a0)
            .await
            .filter(|s| s.voters.len() == 3 && s.learners.is_empty())
    })
    .await;

    // Continuous writes; remember which were acknowledged.
    let mut acked = Vec::new();
    for i in 0..300 {
        let key = format!("/test/before/{i:04}");
        if write(&addrs, &key).await {
            acked.push(key);
        }
    }
    assert_eq!(
        acked.len(),
        300,
        "a healthy cluster acknowledges every write"
    );

    // SIGKILL the leader.
    let leader_id = status(&a0).await.unwrap().leader;
    let mut leader = None;
    for (i, addr) in addrs.iter().enumerate() {
        if status(addr).await.is_some_and(|s| s.id == leader_id) {
            leader = Some(i);
        }
    }
    let leader = leader.expect("the leader answers");
    let applied_at_kill = status(&addrs[leader]).await.unwrap().applied;
    cluster.kill(leader);
    let survivors: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, a)| a.clone())
        .collect();
    let new_leader = wait_for("a new leader", Duration::from_secs(30), async || {
        let s = status(&survivors[0]).await?;
        (s.leader != 0 && s.leader != leader_id).then_some(s.leader)
    })
    .await;
    assert_ne!(new_leader, leader_id);

    // Enough writes while it is down that the log it missed is compacted away.
    for i in 0..600 {
        let key = format!("/test/after/{i:04}");
        if write(&survivors, &key).await {
            acked.push(key);
        }
    }
    assert!(
        acked.len() >= 850,
        "only {} writes acknowledged",
        acked.len()
    );

    // Restart the killed member: it catches up.
    cluster.spawn(leader, None);
    let revision = status(&survivors[0]).await.unwrap().revision;
    let killed = addrs[leader].clone();
    let caught_up = wait_for(
        "the restarted member to catch up",
        Duration::from_secs(30),
        async || status(&killed).await.filter(|s| s.revision >= revision),
    )
    .await;
    // It holds a snapshot newer than what it had when killed: the others compacted the
    // log it missed (200-entry snapshots during 600 writes), so it came from the leader.
    assert!(
        caught_up.snapshot_index > applied_at_kill,
        "expected a snapshot past index {applied_at_kill}, got {}",
        caught_up.snapshot_index
    );

    // No acknowledged write is lost, on any member (read locally on each).
    for addr in &addrs {
        let client = StoreClient::connect(addr).await.unwrap();
        let prefix = b"/test/".to_vec();
        let range = RangeRequest {
            key: prefix.clone(),
            range_end: rk8s_raftstore::prefix_end(&prefix),
            keys_only: true,
            ..Default::default()
        };
        let resp = client.range(range, false).await.unwrap();
        let keys: std::collections::HashSet<String> = resp
            .kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect();
        let lost: Vec<&String> = acked.iter().filter(|k| !keys.contains(*k)).collect();
        assert!(
            lost.is_empty(),
            "member {addr} lost {} acknowledged writes, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }
    // A linearizable read through the restarted member works too.
    let client = StoreClient::connect(&killed).await.unwrap();
    let one = RangeRequest {
        key: acked[0].as_bytes().to_vec(),
        ..Default::default()
    };
    assert_eq!(client.range(one, true).await.unwrap().count, 1);
}
