//! Real `rk8s-server` processes on loopback: three store members (the second and third
//! join at runtime, with member bootstrap tokens), continuous writes, SIGKILL of the
//! leader, a new election, no acknowledged write lost, and the killed member catching
//! up — from a snapshot, since the log it missed has been compacted by then; the
//! components' leader Leases follow the leader (`kubectl get componentstatuses`). And
//! the store port open only to certificates of the member CA.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rk8s_apiserver::bootstrap::members::MemberCerts;

mod support;

use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::proto::{RangeRequest, StatusResponse};

/// The test's processes and directories, removed on drop (also when the test fails).
struct Cluster {
    root: PathBuf,
    members: Vec<Member>,
}

struct Member {
    addr: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

type ClientTls = rk8s_raftstore::transport::PeerTls;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn new(test: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("rk8s-store-cluster-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Cluster {
            root,
            members: Vec::new(),
        }
    }

    fn spawn(&mut self, i: usize, join: &[String]) {
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
            .arg(member.port.to_string())
            .arg("--admin-kubeconfig")
            .arg(self.root.join(format!("member{i}.kubeconfig")))
            .env("RUST_LOG", "info,raft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .args(join);
        member.child = Some(cmd.spawn().expect("failed to start rk8s-server"));
    }

    /// Starts a member: the first one makes the cluster, the others join it through
    /// the first one's API with a member bootstrap token.
    fn add(&mut self) -> usize {
        let i = self.members.len();
        let join = match self.members.first() {
            Some(first) => member_join_args(first),
            None => Vec::new(),
        };
        self.members.push(Member {
            addr: format!("127.0.0.1:{}", free_port()),
            port: free_port(),
            dir: self.root.join(format!("member{i}")),
            child: None,
        });
        self.spawn(i, &join);
        i
    }

    /// A client side of the store's mutual TLS: the first member's certificate.
    fn tls(&self) -> ClientTls {
        let certs = MemberCerts::load(&self.members[0].dir)
            .unwrap()
            .expect("the first member has made its certificate");
        certs.tls().unwrap()
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

/// `rk8s-server token create --member` against `first`: the arguments of the command
/// it prints.
fn member_join_args(first: &Member) -> Vec<String> {
    let url = format!("https://127.0.0.1:{}", first.port);
    support::apiserver::token_create(&first.addr, &first.dir, &url, &["--member"])
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Debian's `kubectl ARGS` against member `i`'s API: whether it succeeded, its
/// output and its errors.
fn kubectl(cluster: &Cluster, i: usize, args: &[&str]) -> (bool, String, String) {
    let kubeconfig = cluster.root.join(format!("member{i}.kubeconfig"));
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--request-timeout", "5s"])
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The holder and transitions of the leader Lease `kube-system/NAME`, read through
/// member `i` (empty and 0 while it cannot be read).
fn lease(cluster: &Cluster, i: usize, name: &str) -> (String, i64) {
    let path = "-o=jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}";
    let (_, out, _) = kubectl(
        cluster,
        i,
        &["get", "lease", "-n", "kube-system", name, path],
    );
    let mut words = out.split_whitespace();
    let holder = words.next().unwrap_or_default().to_string();
    (
        holder,
        words.next().and_then(|n| n.parse().ok()).unwrap_or(0),
    )
}

async fn status(tls: &ClientTls, addr: &str) -> Option<StatusResponse> {
    let client = StoreClient::connect_with(addr, Some(&tls.client))
        .await
        .ok()?;
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
async fn write(tls: &ClientTls, addrs: &[String], key: &str) -> bool {
    for addr in addrs {
        let Ok(client) = StoreClient::connect_with(addr, Some(&tls.client)).await else {
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
    let mut cluster = Cluster::new("failover");
    let first = cluster.add();
    let a0 = cluster.members[first].addr.clone();
    let first_kubeconfig = cluster.root.join("member0.kubeconfig");
    wait_for(
        "the first member's API",
        Duration::from_secs(20),
        async || first_kubeconfig.exists().then_some(()),
    )
    .await;
    let tls = cluster.tls();
    let tls = &tls;
    let s = wait_for(
        "the first member to lead",
        Duration::from_secs(20),
        async || status(tls, &a0).await.filter(|s| s.leader == s.id),
    )
    .await;
    assert_eq!(s.voters.len(), 1);
    cluster.add();
    cluster.add();
    let addrs: Vec<String> = cluster.members.iter().map(|m| m.addr.clone()).collect();
    wait_for("three voters", Duration::from_secs(30), async || {
        status(tls, &a0)
            .await
            .filter(|s| s.voters.len() == 3 && s.learners.is_empty())
    })
    .await;

    // The leading member holds the components' leader Leases, which `kubectl get
    // componentstatuses` reads on any member.
    let statuses = wait_for("healthy components", Duration::from_secs(30), async || {
        let (ok, out, err) = kubectl(&cluster, 1, &["get", "componentstatuses"]);
        (ok && out.matches(" Healthy ").count() == 3).then_some(format!("{out}{err}"))
    })
    .await;
    for expected in [
        "Warning: v1 ComponentStatus is deprecated in v1.19+",
        "NAME                 STATUS    MESSAGE   ERROR",
        "scheduler",
        "controller-manager",
        "etcd-0",
    ] {
        assert!(
            statuses.contains(expected),
            "no {expected:?} in\n{statuses}"
        );
    }
    let (holder, transitions) = lease(&cluster, 0, "kube-controller-manager");
    assert!(!holder.is_empty(), "the controller manager's Lease is held");
    assert_eq!(lease(&cluster, 2, "kube-scheduler").0, holder);

    // Continuous writes; remember which were acknowledged.
    let mut acked = Vec::new();
    for i in 0..300 {
        let key = format!("/test/before/{i:04}");
        if write(tls, &addrs, &key).await {
            acked.push(key);
        }
    }
    assert_eq!(
        acked.len(),
        300,
        "a healthy cluster acknowledges every write"
    );

    // SIGKILL the leader.
    let leader_id = status(tls, &a0).await.unwrap().leader;
    let mut leader = None;
    for (i, addr) in addrs.iter().enumerate() {
        if status(tls, addr).await.is_some_and(|s| s.id == leader_id) {
            leader = Some(i);
        }
    }
    let leader = leader.expect("the leader answers");
    let applied_at_kill = status(tls, &addrs[leader]).await.unwrap().applied;
    cluster.kill(leader);
    let survivors: Vec<String> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, a)| a.clone())
        .collect();
    let new_leader = wait_for("a new leader", Duration::from_secs(30), async || {
        let s = status(tls, &survivors[0]).await?;
        (s.leader != 0 && s.leader != leader_id).then_some(s.leader)
    })
    .await;
    assert_ne!(new_leader, leader_id);
    // The new leader takes the Leases over (one more transition) and the components
    // are healthy again, on the new leader's watch.
    let survivor = (0..addrs.len()).find(|i| *i != leader).unwrap();
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let taken = wait_for(
            "the Leases taken over",
            Duration::from_secs(30),
            async || {
                let (now, n) = lease(&cluster, survivor, name);
                (now != holder && !now.is_empty()).then_some(n)
            },
        )
        .await;
        assert_eq!(taken, transitions + 1, "{name}");
    }
    let (ok, out, err) = kubectl(&cluster, survivor, &["get", "cs", "scheduler"]);
    assert!(ok && out.contains("scheduler   Healthy   ok"), "{out}{err}");

    // Enough writes while it is down that the log it missed is compacted away.
    for i in 0..600 {
        let key = format!("/test/after/{i:04}");
        if write(tls, &survivors, &key).await {
            acked.push(key);
        }
    }
    assert!(
        acked.len() >= 850,
        "only {} writes acknowledged",
        acked.len()
    );

    // Restart the killed member: it catches up.
    cluster.spawn(leader, &[]);
    let revision = status(tls, &survivors[0]).await.unwrap().revision;
    let killed = addrs[leader].clone();
    let caught_up = wait_for(
        "the restarted member to catch up",
        Duration::from_secs(30),
        async || {
            status(tls, &killed)
                .await
                .filter(|s| s.revision >= revision)
        },
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
        let client = StoreClient::connect_with(addr, Some(&tls.client))
            .await
            .unwrap();
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
    let client = StoreClient::connect_with(&killed, Some(&tls.client))
        .await
        .unwrap();
    let one = RangeRequest {
        key: acked[0].as_bytes().to_vec(),
        ..Default::default()
    };
    assert_eq!(client.range(one, true).await.unwrap().count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_member_certificates_open_the_store_port() {
    use rk8s_apiserver::bootstrap::pki::{ClusterCa, member_tls};
    use rk8s_apiserver::bootstrap::secrets::{CLUSTER_KEY, ClusterSecrets};
    let mut cluster = Cluster::new("tls");
    cluster.add();
    let addr = cluster.members[0].addr.clone();
    let kubeconfig = cluster.root.join("member0.kubeconfig");
    wait_for("the member's API", Duration::from_secs(20), async || {
        kubeconfig.exists().then_some(())
    })
    .await;
    let tls = cluster.tls();
    let s = status(&tls, &addr)
        .await
        .expect("a member certificate opens it");
    assert_eq!(s.voters, [s.id]);

    // The cluster's secrets, read with the member certificate: the cluster CA (and
    // the member CA, whose key a member's API server signs joining members with).
    let client = StoreClient::connect_with(&addr, Some(&tls.client))
        .await
        .unwrap();
    let read = RangeRequest {
        key: CLUSTER_KEY.as_bytes().to_vec(),
        ..Default::default()
    };
    let kv = client.range(read, true).await.unwrap().kvs.remove(0);
    let secrets: ClusterSecrets = serde_json::from_slice(&kv.value).unwrap();
    let member_ca = secrets.member_ca.expect("the member CA is in the store");
    let certs = MemberCerts::load(&cluster.members[0].dir).unwrap().unwrap();
    assert_eq!(member_ca.cert_pem, certs.member_ca);

    // Refused: no TLS; TLS without a client certificate; the cluster CA's client
    // certificate (the API server's towards nodes); another cluster's member.
    let plain = StoreClient::connect(&addr).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), plain.status()).await;
    assert!(
        matches!(answer, Ok(Err(_))),
        "a plain connection got {answer:?}"
    );
    let (apiserver_cert, apiserver_key) = secrets.ca.issue_apiserver_client().unwrap();
    let foreign_ca = ClusterCa::generate_member_ca().unwrap();
    let (foreign_cert, foreign_key) = foreign_ca.issue_member(&["127.0.0.1".into()]).unwrap();
    let cases = [
        (
            "the cluster CA's client certificate",
            apiserver_cert,
            apiserver_key,
        ),
        (
            "another cluster's member certificate",
            foreign_cert,
            foreign_key,
        ),
    ];
    for (what, cert, key) in cases {
        // Trusting the right CA, presenting the wrong certificate.
        let wrong = member_tls(&certs.member_ca, &cert, &key).unwrap();
        let refused = match StoreClient::connect_with(&addr, Some(&wrong.client)).await {
            Err(_) => true,
            Ok(c) => matches!(
                tokio::time::timeout(Duration::from_secs(5), c.status()).await,
                Ok(Err(_))
            ),
        };
        assert!(refused, "{what} opened the store port");
    }
    // And a member does not trust a server of another member CA.
    let impostor = member_tls(&foreign_ca.cert_pem, &certs.cert, &certs.key).unwrap();
    let trusted = match StoreClient::connect_with(&addr, Some(&impostor.client)).await {
        Err(_) => false,
        Ok(c) => matches!(
            tokio::time::timeout(Duration::from_secs(5), c.status()).await,
            Ok(Ok(_))
        ),
    };
    assert!(!trusted, "a client trusted a member of another CA");
    let log = std::fs::read_to_string(cluster.root.join("member0.log")).unwrap();
    assert!(log.contains("refused a connection from 127.0.0.1"), "{log}");
}
