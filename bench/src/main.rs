//! Store write benchmark: rk8s's store against etcd 3.4 on the same machine, same
//! workload. Puts of 256-byte values with fsync on, 1 and 3 members on loopback,
//! 1, 16 and 256 concurrent clients, all talking to the leader. Prints a table with the
//! rk8s/etcd ratio per row and writes `target/bench/store-writes.json`.
//!
//! rk8s members are processes of this program (`store-writes __member`: a store
//! member alone, its raft thread and TCP listener); etcd members are `etcd` processes
//! (Debian `etcd-server`), driven through the `etcd-client` crate. Per row both
//! clusters run side by side and are loaded in turns (five each); at the end of a row
//! the members' resident memory is read from `/proc` (rk8s keeps the key space in
//! memory, etcd in bbolt's memory-mapped file: its RSS counts the pages it touched). Run with `make bench`; `BENCH_SECONDS` sets each store's time per
//! row (default 5); `BENCH_MEMBERS` and `BENCH_CLIENTS` (comma-separated) pick rows;
//! `BENCH_TLS=1` runs the rk8s members with mutual TLS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::server::{self, MemberConfig};
use rk8s_raftstore::transport::PeerTls;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Processes and directories of one cluster, removed on drop.
struct Guard {
    children: Vec<Child>,
    stores: Vec<server::Store>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for s in &self.stores {
            s.shutdown();
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone)]
enum Client {
    Rk8s(StoreClient),
    Etcd(Box<etcd_client::KvClient>),
}

impl Client {
    async fn put(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        match self {
            Client::Rk8s(c) => c
                .put(key.as_bytes(), &value)
                .await
                .map(|_| ())
                .map_err(Into::into),
            Client::Etcd(c) => c
                .put(key, value, None)
                .await
                .map(|_| ())
                .map_err(Into::into),
        }
    }
}

/// The member certificate's files (one for all members: they share the host).
const TLS_FILES: [&str; 3] = ["ca.pem", "member.pem", "member-key.pem"];

/// With `BENCH_TLS=1`, rk8s members talk mutual TLS as `rk8s-server`'s always do; etcd
/// stays plain. The member CA and certificate are written to `dir` for the members.
fn member_tls(dir: &Path) -> Result<Option<PeerTls>, Error> {
    if std::env::var("BENCH_TLS").is_err() {
        return Ok(None);
    }
    let ca = rk8s_apiserver::bootstrap::pki::ClusterCa::generate_member_ca()?;
    let (cert, key) = ca.issue_member(&["127.0.0.1".to_string()])?;
    std::fs::create_dir_all(dir)?;
    for (name, pem) in TLS_FILES.iter().zip([&ca.cert_pem, &cert, &key]) {
        std::fs::write(dir.join(name), pem)?;
    }
    tls_from(dir).map(Some)
}

fn tls_from(dir: &Path) -> Result<PeerTls, Error> {
    let [ca, cert, key] = TLS_FILES.map(|f| std::fs::read_to_string(dir.join(f)));
    Ok(rk8s_apiserver::bootstrap::pki::member_tls(
        &ca?, &cert?, &key?,
    )?)
}

/// `store-writes __member DIR LISTEN [JOIN] [TLS_DIR]`: one rk8s member, until killed.
async fn member(args: &[String]) -> Result<(), Error> {
    let [dir, listen, rest @ ..] = args else {
        return Err("usage: store-writes __member DIR LISTEN [JOIN|-] [TLS_DIR]".into());
    };
    let mut cfg = MemberConfig::new(dir, listen.parse()?);
    cfg.join = rest.first().filter(|j| *j != "-").cloned();
    cfg.tls = rest.get(1).map(|d| tls_from(Path::new(d))).transpose()?;
    let _store = server::start(cfg).await?;
    std::future::pending::<()>().await;
    Ok(())
}

/// The resident memory of `children` in MiB (`VmRSS`, summed).
fn rss_mib(children: &[Child]) -> f64 {
    children
        .iter()
        .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/status", c.id())).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

async fn rk8s_cluster(
    dir: &Path,
    members: usize,
    tls: Option<&PeerTls>,
    tls_dir: &Path,
) -> Result<(Guard, Vec<Client>), Error> {
    let first = format!("127.0.0.1:{}", free_port()?);
    let mut guard = Guard {
        children: Vec::new(),
        stores: Vec::new(),
        dir: dir.to_path_buf(),
    };
    for i in 0..members {
        let listen = match i {
            0 => first.clone(),
            _ => format!("127.0.0.1:{}", free_port()?),
        };
        std::fs::create_dir_all(dir)?;
        let log = std::fs::File::create(dir.join(format!("m{i}.log")))?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("__member")
            .arg(dir.join(format!("m{i}")))
            .arg(&listen)
            .arg(if i > 0 { first.as_str() } else { "-" });
        if tls.is_some() {
            cmd.arg(tls_dir);
        }
        guard
            .children
            .push(cmd.stdout(Stdio::null()).stderr(log).spawn()?);
        wait_rk8s(&first, i + 1, tls).await?;
    }
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = StoreClient::connect_with(&first, tls.map(|t| &t.client)).await?;
        clients.push(Client::Rk8s(client));
    }
    Ok((guard, clients))
}

async fn wait_rk8s(addr: &str, voters: usize, tls: Option<&PeerTls>) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = StoreClient::connect_with(addr, tls.map(|t| &t.client)).await
            && let Ok(s) = c.status().await
            && s.leader == s.id
            && s.voters.len() == voters
            && s.learners.is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the rk8s cluster did not form".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn etcd_cluster(dir: &Path, members: usize) -> Result<(Guard, Vec<Client>), Error> {
    let ports: Vec<(u16, u16)> = (0..members)
        .map(|_| Ok::<_, Error>((free_port()?, free_port()?)))
        .collect::<Result<_, _>>()?;
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
        .collect();
    let mut guard = Guard {
        children: Vec::new(),
        stores: Vec::new(),
        dir: dir.to_path_buf(),
    };
    std::fs::create_dir_all(dir)?;
    for (i, (client, peer)) in ports.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("etcd{i}.log")))?;
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}")))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "rk8s-bench",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start etcd (Debian package etcd-server): {e}"))?;
        guard.children.push(child);
    }
    // Find the leader, and talk only to it (as rk8s clients do).
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let mut found = None;
        for (client, _) in &ports {
            let endpoint = format!("http://127.0.0.1:{client}");
            if let Ok(mut c) = etcd_client::Client::connect([endpoint.as_str()], None).await
                && let Ok(s) = c.status().await
                && s.header().is_some_and(|h| h.member_id() == s.leader())
            {
                found = Some(endpoint);
            }
        }
        if let Some(l) = found {
            break l;
        }
        if Instant::now() > deadline {
            return Err("the etcd cluster did not elect a leader".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut clients = Vec::new();
    for _ in 0..8 {
        let c = etcd_client::Client::connect([leader.as_str()], None).await?;
        clients.push(Client::Etcd(Box::new(c.kv_client())));
    }
    Ok((guard, clients))
}

struct Row {
    writes: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Latencies (µs) of the writes of some runs, and the time they took.
#[derive(Default)]
struct Sample {
    latencies: Vec<u64>,
    seconds: f64,
}

impl Sample {
    fn row(mut self) -> Row {
        let all = &mut self.latencies;
        all.sort_unstable();
        let pct = |p: f64| {
            let i = ((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1));
            all.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        Row {
            writes: all.len(),
            per_second: all.len() as f64 / self.seconds.max(f64::MIN_POSITIVE),
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
        }
    }
}

/// `concurrency` clients writing for `seconds`, added to `sample`.
async fn load(
    clients: &[Client],
    concurrency: usize,
    seconds: f64,
    sample: &mut Sample,
) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let mut client = clients[c % clients.len()].clone();
        let stop = stop.clone();
        let first = sample.latencies.len();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'x'; 256];
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                client
                    .put(format!("/bench/{c}/{first}-{i}"), value.clone())
                    .await?;
                latencies.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            Ok::<_, Error>(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        sample.latencies.extend(t.await??);
    }
    sample.seconds += start.elapsed().as_secs_f64();
    Ok(())
}

/// One member, one writer calling the store in-process (no client protocol, no
/// network): how much of a write is the log's fsync, and how much the way to it.
async fn in_process(dir: &Path, writes: usize) -> Result<serde_json::Value, Error> {
    let store = server::start(MemberConfig::new(
        dir.join("m0"),
        format!("127.0.0.1:{}", free_port()?).parse()?,
    ))
    .await?;
    let _guard = Guard {
        children: Vec::new(),
        stores: vec![store.clone()],
        dir: dir.to_path_buf(),
    };
    // The first member elects itself: wait until a write goes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.put(b"/bench/ready", b"", 0, None).await.is_err() {
        if Instant::now() > deadline {
            return Err("the member did not elect itself".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fsync = || {
        (
            rk8s_raftstore::metrics::FSYNC.get_sample_sum(),
            rk8s_raftstore::metrics::FSYNC.get_sample_count(),
        )
    };
    let before = fsync();
    let value = vec![b'x'; 256];
    let mut latencies = Vec::with_capacity(writes);
    for i in 0..writes {
        let t = Instant::now();
        store
            .put(format!("/bench/{i}").as_bytes(), &value, 0, None)
            .await?;
        latencies.push(t.elapsed().as_micros() as u64);
    }
    let after = fsync();
    latencies.sort_unstable();
    let ms = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    let persist_ms = (after.0 - before.0) / (after.1 - before.1).max(1) as f64 * 1000.0;
    println!(
        "in-process, 1 member, 1 writer: p50 {:.3} ms, p99 {:.3} ms; log write + fsync {persist_ms:.3} ms on average",
        ms(0.5),
        ms(0.99)
    );
    Ok(
        serde_json::json!({"writes": writes, "p50_ms": ms(0.5), "p99_ms": ms(0.99), "persist_ms": persist_ms}),
    )
}

/// Turns each store takes per row.
const TURNS: usize = 5;

/// The rows to run: `name` as a comma-separated list (e.g. `BENCH_CLIENTS=1,16`), or
/// `all` when unset.
fn rows_from_env(name: &str, all: &[usize]) -> Result<Vec<usize>, Error> {
    let Ok(list) = std::env::var(name) else {
        return Ok(all.to_vec());
    };
    list.split(',')
        .map(|n| {
            n.trim().parse().map_err(|_| {
                format!("{name}: {n:?} is not a number (expected e.g. {name}=1,16)").into()
            })
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "__member") {
        return member(&args[1..]).await;
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let tmp = out.join("tmp");
    let tls_dir = tmp.join("tls");
    let tls = member_tls(&tls_dir)?;
    println!(
        "{:>7} {:>11} | {:>10} {:>8} {:>8} {:>9} | {:>10} {:>8} {:>8} {:>9} | {:>10}",
        "members",
        "concurrency",
        "rk8s w/s",
        "p50 ms",
        "p99 ms",
        "RSS MiB",
        "etcd w/s",
        "p50 ms",
        "p99 ms",
        "RSS MiB",
        "rk8s/etcd"
    );
    let mut rows = Vec::new();
    let members_rows = rows_from_env("BENCH_MEMBERS", &[1, 3])?;
    let client_rows = rows_from_env("BENCH_CLIENTS", &[1, 16, 256])?;
    for &members in &members_rows {
        for &concurrency in &client_rows {
            // Both clusters run side by side and take turns, so that a slower or
            // faster spell of the machine (its disk above all) falls on both.
            let (rk8s_guard, rk8s_clients) = rk8s_cluster(
                &tmp.join(format!("rk8s-{members}-{concurrency}")),
                members,
                tls.as_ref(),
                &tls_dir,
            )
            .await?;
            let (etcd_guard, etcd_clients) =
                etcd_cluster(&tmp.join(format!("etcd-{members}-{concurrency}")), members).await?;
            let (mut rk8s, mut etcd) = (Sample::default(), Sample::default());
            for _ in 0..TURNS {
                let turn = seconds / TURNS as f64;
                load(&rk8s_clients, concurrency, turn, &mut rk8s).await?;
                load(&etcd_clients, concurrency, turn, &mut etcd).await?;
            }
            // Every member's, summed, at the end of the row.
            let (rk8s_rss, etcd_rss) =
                (rss_mib(&rk8s_guard.children), rss_mib(&etcd_guard.children));
            let (rk8s, etcd) = (rk8s.row(), etcd.row());
            let ratio = rk8s.per_second / etcd.per_second.max(f64::MIN_POSITIVE);
            println!(
                "{members:>7} {concurrency:>11} | {:>10.0} {:>8.2} {:>8.2} {:>9.0} | {:>10.0} {:>8.2} {:>8.2} {:>9.0} | {:>9.2}x",
                rk8s.per_second,
                rk8s.p50_ms,
                rk8s.p99_ms,
                rk8s_rss,
                etcd.per_second,
                etcd.p50_ms,
                etcd.p99_ms,
                etcd_rss,
                ratio
            );
            rows.push(serde_json::json!({
                "members": members,
                "concurrency": concurrency,
                "rk8s": {"writes": rk8s.writes, "writes_per_second": rk8s.per_second, "p50_ms": rk8s.p50_ms, "p99_ms": rk8s.p99_ms, "members_rss_mib": rk8s_rss},
                "etcd": {"writes": etcd.writes, "writes_per_second": etcd.per_second, "p50_ms": etcd.p50_ms, "p99_ms": etcd.p99_ms, "members_rss_mib": etcd_rss},
                "ratio": ratio,
            }));
        }
    }
    let direct = in_process(&tmp.join("in-process"), 5000).await?;
    std::fs::create_dir_all(&out)?;
    let path = out.join("store-writes.json");
    let json = serde_json::json!({
        "benchmark": "store-writes",
        "value_bytes": 256,
        "fsync": true,
        "seconds_per_row": seconds,
        "rk8s_tls": tls.is_some(),
        "etcd_version": "3.4 (Debian etcd-server)",
        "rows": rows,
        "in_process": direct,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
