//! Operating a control plane, on real servers. `rk8s-server member
//! add|list|promote|remove` (every test cluster's members are added with `member
//! add`; a voter removed leaves two that take writes). `rk8s-server snapshot
//! save|restore|status`: a snapshot saved from a
//! follower of a three-member cluster while writes go on holds exactly the writes
//! acknowledged at or below its revision; restored into a new data directory it
//! starts a one-member cluster with every object, the old admin credentials working
//! and a new admin kubeconfig, and a member added to it gets every object; damaged
//! files and occupied directories are refused;
//! scheduled snapshots keep their retention; a data directory in a newer format is
//! refused at start. `rk8s-server certs check|rotate`: the certificates' expiry, and a
//! member's certificate renewed for the same names and used at its next start. A
//! server's and a node's data directories never nested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};
use support::apiserver::Server;

fn rk8s_server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `member list` shows the three members, once the leader has promoted the two that
/// joined; `member promote` refuses a voter and an id that is no member.
fn member_list_and_promote(first: &Server, members: &[Server]) {
    let store: Vec<String> = first.store_access();
    let store: Vec<&str> = store.iter().map(String::as_str).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let out = rk8s_server(&[&["member", "list"][..], &store].concat());
        assert!(out.status.success(), "{}", text(&out));
        let listed = text(&out);
        if listed.lines().filter(|l| l.contains(" voter ")).count() == 3 {
            break listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not three voters: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed.starts_with("ID"), "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.contains(" yes ")).count(),
        1,
        "{listed}"
    );
    for m in members.iter().chain([first]) {
        assert!(listed.contains(&m.peer), "{} not in {listed}", m.peer);
    }
    let voter: &str = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let out = rk8s_server(&[&["member", "promote", voter][..], &store].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("is a voter already"), "{}", text(&out));
    let out = rk8s_server(&[&["member", "promote", "65534"][..], &store].concat());
    assert!(!out.status.success());
    assert!(text(&out).contains("is not a learner"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_saved_during_writes_restore_every_acknowledged_write_up_to_their_revision() {
    let first = Server::start(&["--snapshot-interval", "2s", "--snapshot-retention", "2"]);
    let members = [Server::join(&first), Server::join(&first)];
    member_list_and_promote(&first, &members);
    let maps: Api<ConfigMap> = Api::namespaced(first.client().await, "default");

    // Writes go on, each acknowledged one recorded with its resourceVersion.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (maps, stop) = (maps.clone(), stop.clone());
        async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let cm: ConfigMap =
                    serde_json::from_value(serde_json::json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}}))
                        .unwrap();
                let created = maps.create(&PostParams::default(), &cm).await.unwrap();
                let rv: i64 = created.metadata.resource_version.unwrap().parse().unwrap();
                acked.push((format!("cm-{i}"), rv));
                i += 1;
            }
            acked
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Saved from a member that joined (a follower), through its own API server.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let save = {
        let args: Vec<String> = [
            "snapshot",
            "save",
            path(&file),
            "--kubeconfig",
            path(&first.kubeconfig()),
            "--server",
            &format!("https://127.0.0.1:{}", members[1].port),
        ]
        .map(str::to_string)
        .into();
        tokio::task::spawn_blocking(move || {
            rk8s_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let saved = save.await.unwrap();
    assert!(saved.status.success(), "{}", text(&saved));
    // It holds the CAs' keys and every token: its owner's alone.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    // Snapshot saved at FILE (revision R, N bytes, from member M)
    let said = text(&saved);
    let revision: i64 = said
        .split("(revision ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {said:?}"));
    assert!(
        acked.iter().any(|(_, rv)| *rv <= revision) && acked.iter().any(|(_, rv)| *rv > revision),
        "writes on both sides of revision {revision}: {acked:?}"
    );
    let status = rk8s_server(&["snapshot", "status", path(&file)]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{revision} ")),
        "{}",
        text(&status)
    );

    // Restored: a one-member cluster with every write at or below the revision, and
    // none after it.
    let restored = Server::start_restored(&file);
    let listed = Api::<ConfigMap>::namespaced(restored.client().await, "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    let present: std::collections::BTreeSet<String> = listed
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .filter(|n| n.starts_with("cm-"))
        .collect();
    for (name, rv) in &acked {
        assert_eq!(
            present.contains(name),
            *rv <= revision,
            "{name} (resourceVersion {rv}) against the snapshot's revision {revision}"
        );
    }
    // Resource versions go on from the snapshot's.
    let newer = Api::<ConfigMap>::namespaced(restored.client().await, "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "after"}})).unwrap(),
        )
        .await
        .unwrap();
    let newer_rv: i64 = newer.metadata.resource_version.unwrap().parse().unwrap();
    assert!(newer_rv > revision, "{newer_rv} after {revision}");
    // The old cluster's admin credentials and CA work with the new one.
    let old_admin = Api::<ConfigMap>::namespaced(first.client_for(&restored).await, "default");
    assert!(old_admin.get("after").await.is_ok());
    // One member, with its own id.
    let status = rk8s_server(
        &[
            &["member", "status"][..],
            &restored
                .store_access()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(
        text(&status)
            .lines()
            .filter(|l| l.contains("voter"))
            .count(),
        1,
        "{}",
        text(&status)
    );

    // Members are added to it as to any cluster (`member add`): the new one gets
    // the restored objects and what is written after it joined.
    let added = Server::join(&restored);
    let through_added = Api::<ConfigMap>::namespaced(restored.client_for(&added).await, "default");
    let restored_maps = Api::<ConfigMap>::namespaced(restored.client().await, "default");
    restored_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "joined"}})).unwrap(),
        )
        .await
        .unwrap();
    let seen = support::node::eventually("the added member replicates", async || {
        through_added.get_opt("joined").await.ok()??;
        Some(through_added.list(&ListParams::default()).await.ok()?.items)
    })
    .await;
    for (name, rv) in &acked {
        assert_eq!(
            seen.iter().any(|c| c.metadata.name.as_ref() == Some(name)),
            *rv <= revision,
            "{name} on the added member"
        );
    }
    let restored_store: Vec<String> = restored.store_access();
    let restored_store: Vec<&str> = restored_store.iter().map(String::as_str).collect();
    let listed = listed_members(&restored_store);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().any(|(_, _, peer)| *peer == added.peer),
        "{listed:?}"
    );

    // Refused: a damaged file, and a directory that holds a member.
    let damaged = dir.path().join("damaged.db");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() - 100]).unwrap();
    let target = dir.path().join("new");
    let out = rk8s_server(&[
        "snapshot",
        "restore",
        path(&damaged),
        "--data-dir",
        path(&target),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("damaged or incomplete"),
        "{}",
        text(&out)
    );
    assert!(
        !target.join("member_id").exists(),
        "a refused restore wrote a member"
    );
    let data = restored.data_dir();
    let out = rk8s_server(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&data),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds a store member already"),
        "{}",
        text(&out)
    );

    // The first member's scheduled snapshots: every 2 s, the newest 2 kept.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let scheduled: Vec<_> = std::fs::read_dir(first.data_dir().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    for s in &scheduled {
        let name = s.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("rk8s-snapshot-") && name.ends_with(".db"),
            "{name}"
        );
        let out = rk8s_server(&["snapshot", "status", path(s)]);
        assert!(out.status.success(), "{name}: {}", text(&out));
    }

    // A data directory in a newer format than this binary reads: refused at start.
    let mut restored = restored;
    restored.kill();
    std::fs::write(data.join("format"), "99\n").unwrap();
    let out = rk8s_server(&[
        "--data-dir",
        path(&data),
        "--address",
        "127.0.0.1",
        "--port",
        &support::apiserver::free_port().to_string(),
        "--peer-listen",
        &format!("127.0.0.1:{}", support::apiserver::free_port()),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("data format 99") && text(&out).contains("reads formats up to 1"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked_and_the_members_rotated_for_its_next_start() {
    let mut server = Server::start(&[]);
    let data = server.data_dir();
    let check = rk8s_server(&["certs", "check", "--data-dir", path(&data)]);
    assert!(check.status.success(), "{}", text(&check));
    let table = text(&check);
    let residual = |name: &str| -> i64 {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {table}"));
        let days = line.split_whitespace().find(|w| w.ends_with('d')).unwrap();
        days.trim_end_matches('d').parse().unwrap()
    };
    // CAs for ten years, leaf certificates for one.
    assert!((3645..=3650).contains(&residual("cluster CA")), "{table}");
    assert!((3645..=3650).contains(&residual("member CA")), "{table}");
    assert!((360..=365).contains(&residual("API server")), "{table}");
    assert!((360..=365).contains(&residual("store member")), "{table}");
    assert!((3645..=3650).contains(&residual("client CA")), "{table}");
    assert!(
        (360..=365).contains(&residual("admin kubeconfig")),
        "{table}"
    );

    let member_cert = || std::fs::read_to_string(data.join("pki/member.crt")).unwrap();
    let before = member_cert();
    let args: Vec<String> = ["certs", "rotate"]
        .map(str::to_string)
        .into_iter()
        .chain(server.store_access())
        .collect();
    let rotated = rk8s_server(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(
        text(&rotated).contains("restart the member"),
        "{}",
        text(&rotated)
    );
    let after = member_cert();
    assert_ne!(before, after);
    let names = |pem: &str| {
        let mut n = rk8s_apiserver::bootstrap::certs::names(pem).unwrap();
        n.sort();
        n
    };
    assert_eq!(names(&before), names(&after));
    // The member starts again with it and serves.
    server.restart();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(server.client().await);
    let listed = support::node::eventually("the restarted member serves", async || {
        namespaces.list(&ListParams::default()).await.ok()
    })
    .await;
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
}

#[test]
fn server_and_node_data_directories_are_kept_apart() {
    // A member's data directory (it has its member id) with a node's inside it.
    let server_dir = tempfile::tempdir().unwrap();
    std::fs::write(server_dir.path().join("member_id"), "7\n").unwrap();
    let inside = server_dir.path().join("node");
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-node"))
        .args(["run", "--data-dir", path(&inside), "--run-dir"])
        .arg(server_dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("inside the data directory of an rk8s-server member"),
        "{}",
        text(&out)
    );
    assert!(!inside.exists(), "the refused node wrote its directory");
    // A node's data directory (it has its identity) with a member's inside it.
    let node_dir = tempfile::tempdir().unwrap();
    std::fs::write(node_dir.path().join("identity.json"), "{}").unwrap();
    let inside = node_dir.path().join("server");
    let out = rk8s_server(&["--data-dir", path(&inside)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("inside the data directory of a node agent"),
        "{}",
        text(&out)
    );
    assert!(!inside.exists(), "the refused server wrote its directory");
}

/// The members `member list` (through `store`) shows: id, role and peer address.
fn listed_members(store: &[&str]) -> Vec<(String, String, String)> {
    let out = rk8s_server(&[&["member", "list"][..], store].concat());
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[3].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_voter_leaves_two_members_that_take_writes() {
    let first = Server::start(&[]);
    let members = [Server::join(&first), Server::join(&first)];
    member_list_and_promote(&first, &members);
    let store: Vec<String> = first.store_access();
    let store: Vec<&str> = store.iter().map(String::as_str).collect();
    let maps: Api<ConfigMap> = Api::namespaced(first.client().await, "default");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    };
    // The member to remove serves before (a read through its own API server).
    let gone = &members[1];
    let through_gone: Api<ConfigMap> = Api::namespaced(first.client_for(gone).await, "default");
    maps.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    support::node::eventually("the member to remove serves", async || {
        through_gone.get("before").await.ok()
    })
    .await;
    let id = listed_members(&store)
        .into_iter()
        .find(|(_, _, peer)| *peer == gone.peer)
        .unwrap()
        .0;

    let out = rk8s_server(&[&["member", "remove", &id][..], &store].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out), format!("member {id} removed\n"));
    // Two voters left, the removed one listed nowhere; writes still succeed.
    let left = listed_members(&store);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|(i, role, _)| *i != id && role == "voter"),
        "{left:?}"
    );
    for name in ["after-1", "after-2"] {
        maps.create(&PostParams::default(), &cm(name))
            .await
            .unwrap();
    }
    let other: Api<ConfigMap> = Api::namespaced(first.client_for(&members[0]).await, "default");
    support::node::eventually("the other member has the writes", async || {
        other.get_opt("after-2").await.ok()?
    })
    .await;
    // The removed member's process applied its own removal: it no longer counts
    // itself a voter (`leaving`), and the cluster's writes no longer reach it.
    let removed_store: Vec<String> = gone.store_access();
    let removed_store: Vec<&str> = removed_store.iter().map(String::as_str).collect();
    let out = rk8s_server(&[&["member", "status"][..], &removed_store].concat());
    assert!(out.status.success(), "{}", text(&out));
    let status = text(&out);
    assert!(status.starts_with(&format!("member    {id}\n")), "{status}");
    let own = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(own.split_whitespace().nth(1), Some("leaving"), "{status}");
    assert_eq!(status.matches(" voter ").count(), 2, "{status}");
    let read = tokio::time::timeout(Duration::from_secs(5), through_gone.get_opt("after-2")).await;
    assert!(
        !matches!(read, Ok(Ok(Some(_)))),
        "the removed member served a write made after its removal"
    );
}
