//! Root tests of the pod network and the overlay as netlink makes them, looked at with
//! `ip` and `bridge`: the state is what the `ip`/`bridge` commands made before.
//! Everything a test creates is removed by a guard, also when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rk8s_netoverlay::host::{InNetns, Recorder, System};
use rk8s_netoverlay::network::veth_name;
use rk8s_netoverlay::overlay::{DEVICE, Overlay, Peer};
use rk8s_netoverlay::{Network, NetworkConfig, netns};

/// `ip`/`bridge` (or any command) with `args`: its stdout, and whether it succeeded.
fn try_run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `ip args…`, which must succeed.
fn ip(args: &[&str]) -> String {
    let (ok, out) = try_run("ip", args);
    assert!(ok, "ip {args:?} failed");
    out
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn netns_listed(name: &str) -> bool {
    ip(&["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// Polls `check` every 20 ms for up to 5 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes the test network's pods, bridge, rules and namespaces, also when the test
/// failed half-way.
struct NetworkGuard {
    config: NetworkConfig,
    owners: Vec<String>,
    extra_links: Vec<String>,
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        if let Ok(net) = Network::new(self.config.clone(), System) {
            let _ = net.destroy();
        }
        for owner in &self.owners {
            let _ = netns::delete(&format!("rk8s-{owner}"));
            let _ = Command::new("ip")
                .args(["link", "delete", &veth_name(owner)])
                .output();
        }
        for link in self.extra_links.iter().chain([&self.config.bridge]) {
            let _ = Command::new("ip").args(["link", "delete", link]).output();
        }
    }
}

#[test]
fn pods_are_wired_as_ip_wired_them_and_reach_each_other() {
    assert!(
        is_root(),
        "this test needs root: network namespaces and links"
    );
    let pid = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    // 10.177.0.0/24 is used nowhere else (tests/ use 10.88, 10.244, 10.96, 10.99 …).
    let config = NetworkConfig {
        name: format!("rk8snl{pid}"),
        bridge: format!("rk8snl{pid}"),
        subnet: "10.177.0.0/24".parse().unwrap(),
        state_dir: dir.path().to_path_buf(),
        cluster_cidr: None,
    };
    let (a, b, c) = (
        format!("rk8snl{pid}a"),
        format!("rk8snl{pid}b"),
        format!("rk8snl{pid}c"),
    );
    let _guard = NetworkGuard {
        config: config.clone(),
        owners: vec![a.clone(), b.clone(), c.clone()],
        extra_links: vec![veth_name(&c)],
    };
    let bridge = config.bridge.clone();
    let net = Network::new(config.clone(), System).unwrap();
    let at_a = net.attach(&a).unwrap();
    let at_b = net.attach(&b).unwrap();
    assert_eq!(at_a.address.to_string(), "10.177.0.2");
    assert_eq!(at_b.address.to_string(), "10.177.0.3");
    assert_eq!(net.attach(&a).unwrap(), at_a, "attach is idempotent");

    let bridge_addr = ip(&["-4", "addr", "show", "dev", &bridge]);
    assert!(
        bridge_addr.contains(&format!("inet 10.177.0.1/24 scope global {bridge}")),
        "{bridge_addr}"
    );
    assert!(bridge_addr.contains(",UP,"), "{bridge_addr}");
    for at in [&at_a, &at_b] {
        let ns = at.netns.as_str();
        assert!(netns_listed(ns), "ip netns list shows {ns}");
        // Exactly as `ip addr add ADDRESS/24 dev eth0` made it: no broadcast address.
        let addr = ip(&["-n", ns, "-4", "addr", "show", "dev", "eth0"]);
        assert!(
            addr.contains(&format!("inet {}/24 scope global eth0\n", at.address)),
            "{addr}"
        );
        assert!(addr.contains(",UP,"), "{addr}");
        let lo = ip(&["-n", ns, "link", "show", "lo"]);
        assert!(lo.contains("<LOOPBACK,UP,LOWER_UP>"), "{lo}");
        assert_eq!(
            ip(&["-n", ns, "route"]),
            format!(
                "default via 10.177.0.1 dev eth0 \n\
                 10.177.0.0/24 dev eth0 proto kernel scope link src {} \n",
                at.address
            )
        );
        let default = ip(&["-d", "-n", ns, "route", "show", "default"]);
        assert_eq!(
            default,
            "unicast default via 10.177.0.1 dev eth0 proto boot scope global \n"
        );
        let veth = ip(&["link", "show", &at.host_veth]);
        assert!(
            veth.contains(&format!(" master {bridge} state UP ")),
            "{veth}"
        );
        assert!(veth.contains(&format!("link-netns {ns}")), "{veth}");
        let eth0 = ip(&["-n", ns, "-o", "link", "show", "eth0"]);
        assert!(eth0.contains("eth0@if"), "{eth0}");
    }
    // Pod to pod over the bridge, both ways.
    for (from, to) in [(&at_a, &at_b), (&at_b, &at_a)] {
        let target = to.address.to_string();
        eventually(&format!("{} answers {}", target, from.netns), || {
            let ns = from.netns.as_str();
            let args = [
                "netns", "exec", ns, "busybox", "ping", "-c1", "-W1", &target,
            ];
            try_run("ip", &args).0
        });
    }

    // A change the kernel refuses comes back in `ip` words, and leaves nothing.
    let taken = veth_name(&c);
    ip(&["link", "add", &taken, "type", "bridge"]);
    let e = net.attach(&c).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "ip link add {taken} type veth peer name eth0 netns rk8s-{c}: File exists (os error 17)"
        )
    );
    assert!(!netns_listed(&format!("rk8s-{c}")));
    assert_eq!(net.attachment(&c).unwrap(), None);
    // The link that had the name is not this attach's to delete.
    let kept = ip(&["-d", "link", "show", &taken]);
    assert!(kept.contains("bridge "), "{kept}");
    ip(&["link", "delete", &taken]);

    // A bridge lost (as in a reboot) is made again by the next start.
    ip(&["link", "delete", &bridge]);
    let net = Network::new(config.clone(), System).unwrap();
    let again = ip(&["-4", "addr", "show", "dev", &bridge]);
    assert!(again.contains("inet 10.177.0.1/24"), "{again}");

    net.detach(&a).unwrap();
    net.detach(&a).unwrap();
    net.detach(&b).unwrap();
    for at in [&at_a, &at_b] {
        assert!(!netns_listed(&at.netns));
        let veth = at.host_veth.clone();
        eventually(&format!("{veth} gone"), || {
            !try_run("ip", &["link", "show", &veth]).0
        });
    }
    net.destroy().unwrap();
    assert!(!try_run("ip", &["link", "show", &bridge]).0);
    let links = ip(&["-o", "link"]);
    assert!(!links.contains(&format!("rk8snl{pid}")), "{links}");
    assert!(!ip(&["netns", "list"]).contains(&format!("rk8snl{pid}")));
}

/// Removes the test's namespaces, also when the test failed half-way.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = netns::delete(ns);
        }
    }
}

/// What `ip`/`bridge` show of the overlay in namespace `ns`, interface indexes left
/// out.
fn overlay_state(ns: &str) -> Vec<String> {
    [
        ("ip", &["-d", "link", "show", DEVICE][..]),
        ("ip", &["-4", "addr", "show", "dev", DEVICE]),
        ("ip", &["neigh", "show", "dev", DEVICE]),
        ("bridge", &["fdb", "show", "dev", DEVICE]),
        ("ip", &["-d", "route"]),
    ]
    .iter()
    .map(|(program, args)| {
        let mut all = vec!["netns", "exec", ns, program];
        all.extend_from_slice(args);
        let (_, out) = try_run("ip", &all);
        out.lines()
            .map(|l| match l.split_once(": ") {
                Some((index, rest)) if index.parse::<u32>().is_ok() => format!("{rest}\n"),
                _ => format!("{l}\n"),
            })
            .collect()
    })
    .collect()
}

/// The state (`NUD_*` bits) of each forwarding entry of the overlay device in `ns`:
/// `bridge fdb show` prints more than one as "permanent".
fn fdb_states(ns: &str) -> Vec<u16> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::AddressFamily;

    netns::run_in(ns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            let device = handle
                .link()
                .get()
                .match_name(DEVICE.to_string())
                .execute()
                .try_next()
                .await
                .unwrap()
                .expect("the overlay device");
            let entries: Vec<_> = handle
                .neighbours()
                .get()
                .set_address_family(AddressFamily::Bridge)
                .execute()
                .try_collect()
                .await
                .unwrap();
            entries
                .iter()
                .filter(|e| e.header.ifindex == device.header.index)
                .map(|e| u16::from(e.header.state))
                .collect()
        })
    })
    .unwrap()
}

#[test]
fn the_overlay_is_what_ip_and_bridge_made() {
    assert!(is_root(), "this test needs root: network namespaces");
    let pid = std::process::id();
    let (ours, theirs) = (format!("rk8snlo{pid}"), format!("rk8snlr{pid}"));
    let _guard = Namespaces(vec![ours.clone(), theirs.clone()]);
    netns::create(&ours).unwrap();
    netns::create(&theirs).unwrap();
    let me: std::net::Ipv4Addr = "10.99.0.11".parse().unwrap();
    let cidr = "10.244.0.0/24".parse().unwrap();
    let b = Peer {
        node_ip: "10.99.0.12".parse().unwrap(),
        pod_cidr: "10.244.1.0/24".parse().unwrap(),
    };
    let peers = BTreeMap::from([("b".to_string(), b.clone())]);

    // A device left by an earlier run is replaced.
    Overlay::new(InNetns(ours.clone()), me, cidr).unwrap();
    let mut overlay = Overlay::new(InNetns(ours.clone()), me, cidr).unwrap();
    assert_eq!(overlay.sync(&peers).unwrap(), 1);

    // The same changes made by `ip` and `bridge` in the other namespace.
    let recorder = std::sync::Arc::new(Recorder::new());
    let mut recorded = Overlay::new(recorder.clone(), me, cidr).unwrap();
    recorded.sync(&peers).unwrap();
    for line in recorder.commands() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut all = vec!["netns", "exec", &theirs];
        all.extend_from_slice(&words);
        // The first line removes a device there is none of yet.
        let (ok, _) = try_run("ip", &all);
        assert!(ok || line.starts_with("ip link delete"), "{line}");
    }
    let state = overlay_state(&ours);
    assert_eq!(state, overlay_state(&theirs));
    // Both "permanent" to `bridge`: NUD_NOARP | NUD_PERMANENT, as `bridge` sends.
    assert_eq!(fdb_states(&ours), fdb_states(&theirs));
    assert_eq!(fdb_states(&ours), [0xc0]);

    let link = &state[0];
    for part in [
        "vxlan id 1 local 10.99.0.11 ",
        " dstport 8472 nolearning ",
        "link/ether 0a:58:0a:63:00:0b ",
        ",UP,",
    ] {
        assert!(link.contains(part), "{part}: {link}");
    }
    assert!(
        state[1].contains("inet 10.244.0.0/32 scope global rk8s.vxlan"),
        "{}",
        state[1]
    );
    assert_eq!(state[2], "10.244.1.0 lladdr 0a:58:0a:63:00:0c PERMANENT \n");
    assert_eq!(
        state[3],
        "0a:58:0a:63:00:0c dst 10.99.0.12 self permanent\n"
    );
    assert_eq!(
        state[4],
        "unicast 10.244.1.0/24 via 10.244.1.0 dev rk8s.vxlan proto boot scope global onlink \n"
    );

    // The peer goes: its three entries go.
    assert_eq!(overlay.sync(&BTreeMap::new()).unwrap(), 1);
    let state = overlay_state(&ours);
    assert_eq!(state[2], "");
    assert_eq!(state[3], "");
    assert_eq!(state[4], "");
    // Removing what is gone already is fine.
    overlay.sync(&peers).unwrap();
    overlay.remove().unwrap();
    assert!(!try_run("ip", &["-n", &ours, "link", "show", DEVICE]).0);
    Overlay::remove_device(&InNetns(ours.clone())).unwrap();
}

#[test]
fn in_netns_makes_its_changes_and_runs_its_commands_inside_its_namespace() {
    use rk8s_netoverlay::{Host, NetOp};

    assert!(is_root(), "this test needs root: network namespaces");
    let pid = std::process::id();
    let ns = format!("rk8snli{pid}");
    let _guard = Namespaces(vec![ns.clone()]);
    netns::create(&ns).unwrap();
    let host = InNetns(ns.clone());
    let bridge = format!("rk8snli{pid}");
    host.apply(
        None,
        &[
            NetOp::AddBridge {
                name: bridge.clone(),
            },
            NetOp::Up {
                link: bridge.clone(),
            },
        ],
    )
    .unwrap();
    assert!(host.link_exists(&bridge).unwrap());
    assert!(!System.link_exists(&bridge).unwrap(), "not on the host");
    let links = host.run("ip", &["-o", "link"], None).unwrap();
    assert_eq!(links.lines().count(), 2, "{links}");
    assert!(links.contains(&format!(": {bridge}: ")), "{links}");
    // An error names the namespace and the change.
    let e = host
        .apply(
            None,
            &[NetOp::AddBridge {
                name: bridge.clone(),
            }],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("ip -n {ns} link add {bridge} type bridge: File exists (os error 17)")
    );
}

/// A namespace file with no namespace mounted on it (an agent killed between making
/// the file and mounting on it) is no namespace, is seen as a leftover, and goes
/// with a delete, as a pod's detach deletes it.
#[test]
fn a_namespace_file_left_unmounted_is_removed() {
    let name = format!("rk8s-leftover-{}", std::process::id());
    let file = netns::path(&name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _gone = Gone(file.clone());
    assert!(!netns::exists(&name));
    assert!(netns::leftover(&name));
    netns::delete(&name).unwrap();
    assert!(!file.exists());
    assert!(!netns::leftover(&name));
}
