use super::*;
use crate::host::{InNetns, Recorder, System};
use std::sync::Arc;

fn port(name: &str, ip: &str, endpoints: &[&str], node_port: Option<u16>) -> ServicePort {
    ServicePort {
        service: ("default".into(), name.into()),
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ip: ip.parse().unwrap(),
        node_port,
        endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
    }
}

fn proxy() -> (ServiceProxy, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::new());
    let proxy = ServiceProxy::new(recorder.clone(), "rk8sb0", "10.244.1.0/24".parse().unwrap());
    (proxy, recorder)
}

fn last_script(r: &Recorder) -> String {
    r.commands().last().cloned().unwrap_or_default()
}

#[test]
fn the_first_sync_writes_the_whole_table_in_one_transaction() {
    let (mut p, r) = proxy();
    let web = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.2.3:8080"],
        Some(30080),
    );
    assert_eq!(p.sync(&[web]).unwrap(), 1);
    assert_eq!(r.commands().len(), 1);
    let s = last_script(&r);
    assert!(s.contains("delete table ip rk8s-services"), "{s}");
    assert!(s.contains(
        "add rule ip rk8s-services svc/default/web/tcp/80 meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }"
    ), "{s}");
    assert!(s.contains("add element ip rk8s-services service-ips { 10.96.0.10 . tcp . 80 : goto svc/default/web/tcp/80 }"), "{s}");
    assert!(
        s.contains(
            "add element ip rk8s-services node-ports { tcp . 30080 : goto np/default/web/tcp/80 }"
        ),
        "{s}"
    );
    assert!(
        s.contains("ct status dnat ip saddr 10.244.1.0/24 oifname \"rk8sb0\" masquerade"),
        "{s}"
    );
}

#[test]
fn later_syncs_touch_only_what_changed() {
    let (mut p, r) = proxy();
    let web = port("web", "10.96.0.10", &["10.244.1.2:8080"], None);
    let db = port("db", "10.96.0.11", &["10.244.1.3:5432"], None);
    p.sync(&[web.clone(), db.clone()]).unwrap();
    // Nothing changed: nothing run.
    assert_eq!(p.sync(&[db.clone(), web.clone()]).unwrap(), 0);
    assert_eq!(r.commands().len(), 1);
    // One endpoint more for web: only web's chain and element.
    let web2 = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.1.4:8080"],
        None,
    );
    assert_eq!(p.sync(&[web2.clone(), db.clone()]).unwrap(), 1);
    let s = last_script(&r);
    assert!(!s.contains("db"), "{s}");
    assert!(!s.contains("delete table"), "{s}");
    assert!(s.contains("mod 2 map"), "{s}");
    // No endpoints left: the address is rejected instead.
    let empty = port("web", "10.96.0.10", &[], None);
    p.sync(&[empty.clone(), db.clone()]).unwrap();
    let s = last_script(&r);
    assert!(
        s.contains("delete chain ip rk8s-services svc/default/web/tcp/80"),
        "{s}"
    );
    assert!(s.contains("add element ip rk8s-services no-endpoints { 10.96.0.10 . tcp . 80 : goto reject-no-endpoints }"), "{s}");
    // The Service goes: its element goes.
    assert_eq!(p.sync(&[db]).unwrap(), 1);
    assert!(
        last_script(&r)
            .contains("delete element ip rk8s-services no-endpoints { 10.96.0.10 . tcp . 80 }")
    );
}

/// Removes the namespace (and its table) also when the test fails.
struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = System.run("ip", &["netns", "delete", &self.0], None);
    }
}

#[test]
fn the_scripts_are_what_nft_accepts() {
    // A root test, like the integration tests: it fails rather than passing silently
    // when it cannot check anything.
    assert!(
        is_root(),
        "this test needs root: a network namespace and nftables"
    );
    let name = format!("rk8s-proxytest-{}", std::process::id());
    System.run("ip", &["netns", "add", &name], None).unwrap();
    let _ns = Netns(name.clone());
    let mut p = ServiceProxy::new(
        InNetns(name.clone()),
        "rk8sb0",
        "10.244.1.0/24".parse().unwrap(),
    );
    let web = port("web", "10.96.0.10", &["10.244.1.2:8080"], Some(30080));
    let db = port("db", "10.96.0.11", &[], None);
    p.sync(&[web, db.clone()]).unwrap();
    let web2 = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.2.2:8080"],
        Some(30081),
    );
    p.sync(&[web2, db.clone()]).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(
        listing.contains("mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.2 . 8080 }"),
        "{listing}"
    );
    assert!(
        listing.contains("tcp . 30081 : goto np/default/web/tcp/80"),
        "{listing}"
    );
    assert!(!listing.contains("30080"), "{listing}");
    p.sync(&[db]).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(!listing.contains("svc/default/web"), "{listing}");
    // A restarted agent starts from a clean table again.
    let mut again = ServiceProxy::new(
        InNetns(name.clone()),
        "rk8sb0",
        "10.244.1.0/24".parse().unwrap(),
    );
    again.sync(&[]).unwrap();
    again.remove().unwrap();
    again.remove().unwrap();
}

/// Whether this process runs as root (its effective uid, the second on `Uid:`; the
/// crate links no libc binding to ask `geteuid` directly).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}
