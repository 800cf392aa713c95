#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use rk8s_netoverlay::host::Recorder;

fn ready() -> Readiness {
    Readiness {
        policies_listed: true,
        ..Readiness::default()
    }
}

#[test]
fn an_unselected_pod_starts_once_policies_are_listed_without_waiting_for_peers() {
    assert_eq!(admission(&ready(), false), Admission::Now);
    assert_eq!(admission(&ready(), true), Admission::AfterSync);
    let unlisted = Readiness::default();
    assert_eq!(admission(&unlisted, false), Admission::AfterSync);
}

#[test]
fn unavailable_network_policy_gates_no_pod_and_says_so_in_the_condition() {
    let r = Readiness {
        unavailable: Some("podpeers: 404 not found".into()),
        ..Readiness::default()
    };
    assert_eq!(admission(&r, true), Admission::Now);
    assert_eq!(admission(&r, false), Admission::Now);
    let c = condition(&r).unwrap();
    assert!(!c.status);
    assert_eq!(c.reason, "NetworkPolicyUnavailable");
    assert!(c.message.contains("podpeers"), "{}", c.message);
}

#[test]
fn without_br_netfilter_a_selected_pod_is_refused_and_an_unselected_one_starts() {
    let r = Readiness {
        bridge: Err("net.bridge.bridge-nf-call-iptables cannot be read".into()),
        ..ready()
    };
    assert_eq!(admission(&r, false), Admission::Now);
    assert!(matches!(admission(&r, true), Admission::Refused(why) if why.contains("bridge")));
    let c = condition(&r).unwrap();
    assert_eq!((c.status, c.reason), (false, "BridgeNetfilterUnavailable"));
}

#[test]
fn the_condition_follows_the_last_sync() {
    assert_eq!(condition(&ready()), None);
    let failed = Readiness {
        synced: Some(Err("nft: Operation not permitted".into())),
        ..ready()
    };
    let c = condition(&failed).unwrap();
    assert_eq!((c.status, c.reason), (false, "NetworkPolicySyncFailed"));
    let ok = Readiness {
        synced: Some(Ok(())),
        ..ready()
    };
    assert!(condition(&ok).unwrap().status);
}

#[test]
fn failed_syncs_are_retried_after_one_second_doubling_to_thirty() {
    let mut waits = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let w = backoff(last);
        waits.push(w.as_secs());
        last = Some(w);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn br_netfilter_counts_only_when_the_sysctl_reads_back_as_one() {
    let host = Recorder::new();
    assert_eq!(bridge_filtering(&host, |_| Ok("1\n".into())), Ok(()));
    assert_eq!(
        host.commands(),
        vec!["sysctl net.bridge.bridge-nf-call-iptables=1".to_string()]
    );
    let missing = bridge_filtering(&host, |_| {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    });
    assert!(missing.unwrap_err().contains("br_netfilter"));
    let unchanged = bridge_filtering(&host, |_| Ok("0\n".into()));
    assert!(unchanged.unwrap_err().contains("\"0\""));
}

#[test]
fn a_403_or_404_is_a_refusal_and_other_errors_are_not() {
    let status = |code: u16| {
        Box::new(kube::core::Status {
            code,
            message: format!("code {code}"),
            ..Default::default()
        })
    };
    for code in [403, 404] {
        let e = watcher::Error::InitialListFailed(kube::Error::Api(status(code)));
        assert!(refusal(&e).unwrap().contains(&code.to_string()));
        assert!(refusal(&watcher::Error::WatchError(status(code))).is_some());
    }
    let e = watcher::Error::InitialListFailed(kube::Error::Api(status(500)));
    assert_eq!(refusal(&e), None);
    assert_eq!(refusal(&watcher::Error::NoResourceVersion), None);
}

fn peer(uid: &str, name: &str, ip: Option<&str>, terminal: bool) -> PodPeer {
    PodPeer {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("x".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        node_name: Some("n1".into()),
        ips: ip.map(|i| vec![i.to_string()]).unwrap_or_default(),
        terminal,
        ..Default::default()
    }
}

#[test]
fn an_admitted_pod_is_kept_by_uid_until_its_own_peer_shows_its_address_or_it_is_forgotten() {
    let mut admitted = Admitted::default();
    admitted.insert(
        "u2".into(),
        PodInfo::new("x", "web-0", "10.244.1.9".parse().unwrap()),
    );
    // The old web-0 (another uid) at its old address changes nothing.
    let old = peer("u1", "web-0", Some("10.244.1.3"), false);
    admitted.prune([&old].into_iter());
    assert_eq!(admitted.pods().count(), 1);
    // Its own PodPeer without an address yet: kept however long it takes.
    let pending = peer("u2", "web-0", None, false);
    admitted.prune([&pending].into_iter());
    assert_eq!(admitted.pods().count(), 1);
    let shown = peer("u2", "web-0", Some("10.244.1.9"), false);
    admitted.prune([&shown].into_iter());
    assert_eq!(admitted.pods().count(), 0);
    admitted.insert(
        "u3".into(),
        PodInfo::new("x", "web-1", "10.244.1.10".parse().unwrap()),
    );
    admitted.forget("u3");
    assert_eq!(admitted.pods().count(), 0);
}

#[test]
fn a_recreated_pod_is_local_at_its_new_address_beside_its_old_peer() {
    let (namespaces, _writer) = reflector::store::<Namespace>();
    let mut admitted = Admitted::default();
    admitted.insert(
        "u2".into(),
        PodInfo::new("x", "web-0", "10.244.1.9".parse().unwrap()).on("n1"),
    );
    let peers = vec![std::sync::Arc::new(peer(
        "u1",
        "web-0",
        Some("10.244.1.3"),
        false,
    ))];
    let (w, local) = world(
        Vec::new(),
        &namespaces,
        &peers,
        &admitted,
        ("n1", "10.244.1.1".parse().unwrap()),
    );
    let local_ips: Vec<String> = local
        .iter()
        .flat_map(|p| p.ips.iter().map(|i| i.to_string()))
        .collect();
    assert!(
        local_ips.contains(&"10.244.1.9".to_string()),
        "{local_ips:?}"
    );
    assert!(
        w.pods
            .iter()
            .any(|p| p.ips == vec!["10.244.1.9".parse::<Ipv4Addr>().unwrap()])
    );
}
