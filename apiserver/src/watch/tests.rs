use super::*;
use crate::testing::leading_store;
use rk8s_api::object::kind_named;

/// A one-member store in `dir` that leads, and the pods' watch cache over it.
async fn pods_cache(dir: &std::path::Path) -> (Store, Arc<WatchCache>) {
    let store = leading_store(dir).await;
    (store.clone(), started_cache(store).await)
}

/// The pods' watch cache over `store`, once it has started following it.
async fn started_cache(store: Store) -> Arc<WatchCache> {
    let cache = WatchCache::new(kind_named("Pod").unwrap(), store);
    tokio::spawn(cache.clone().run());
    let started = async {
        while cache.lock().start == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .unwrap();
    cache
}

async fn put(store: &Store, key: &str) -> i64 {
    store
        .put(key.as_bytes(), b"{}", 0, None)
        .await
        .unwrap()
        .revision
}

#[test]
fn a_change_is_served_from_its_stored_bytes_and_decoded_only_when_asked() {
    let kind = kind_named("Pod").unwrap();
    let stored = |image: &str| {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}});
        registry::encode(&AnyObject::from_value(&kind, pod).unwrap().unwrap())
    };
    let kv = |value: Vec<u8>, revision: i64| KeyValue {
        key: b"/registry/pods/default/web".to_vec(),
        value: value.into(),
        mod_revision: revision,
        ..KeyValue::default()
    };
    let served_as = |value: Vec<u8>, revision: i64| {
        let obj = registry::decode(&kind, &kv(value, revision)).unwrap();
        obj.to_json()
    };

    let put = rk8s_raftstore::Event {
        kind: EventKind::Put,
        kv: kv(stored("b"), 7),
        prev_kv: Some(kv(stored("a"), 5)),
    };
    let c = Change::from_event(&kind, &put).unwrap();
    assert_eq!(c.json, served_as(stored("b"), 7));
    assert!(c.object.get().is_none() && c.prev.get().is_none());
    assert!(c.exists() && c.existed());
    let version = |o: Option<&AnyObject>| o.and_then(|o| o.metadata().resource_version.clone());
    assert_eq!(version(c.object()), Some("7".into()));
    assert_eq!(version(c.prev()), Some("5".into()));
    let app = |l: Option<&Labels>| l.and_then(|l| l.get("app").cloned());
    assert_eq!(app(c.labels()), Some("web".into()));
    assert_eq!(app(c.prev_labels()), Some("web".into()));

    // A pod's field selector reads its JSON alone, as labels do: nothing decoded.
    let c = Change::from_event(&kind, &put).unwrap();
    let filter =
        |q: &str| Filter::from_query(&kind, &crate::request::Query::parse(Some(q))).unwrap();
    assert!(c.selected_by(&filter("fieldSelector=metadata.name%3Dweb")));
    assert!(c.was_selected_by(&filter(
        "fieldSelector=spec.nodeName%3D&labelSelector=app%3Dweb"
    )));
    assert!(!c.selected_by(&filter("fieldSelector=status.phase%3DRunning")));
    assert!(c.object.get().is_none() && c.prev.get().is_none());

    // A deletion shows the last state with the deletion's resourceVersion.
    let delete = rk8s_raftstore::Event {
        kind: EventKind::Delete,
        kv: kv(Vec::new(), 9),
        prev_kv: Some(kv(stored("b"), 7)),
    };
    let c = Change::from_event(&kind, &delete).unwrap();
    assert_eq!(c.json, served_as(stored("b"), 9));
    assert!(!c.exists() && c.existed());
    assert!(c.object().is_none() && c.labels().is_none());
    assert_eq!(version(c.shown()), Some("7".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_the_store_has_is_served_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache) = pods_cache(dir.path()).await;
    // Written under another resource: the pods' cache has not seen it.
    let revision = put(&store, "/registry/nodes/n1").await;
    let started = tokio::time::Instant::now();
    cache.wait_until_fresh(revision as u64).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_written_during_the_wait_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache) = pods_cache(dir.path()).await;
    let revision = put(&store, "/registry/nodes/n1").await;
    let writer = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        put(&writer, "/registry/nodes/n2").await;
    });
    let started = tokio::time::Instant::now();
    cache.wait_until_fresh(revision as u64 + 1).await.unwrap();
    assert!(started.elapsed() < FRESHNESS_TIMEOUT);
    store.shutdown();
}

/// The revisions of the changes queued for `sub` until it has `count` of them.
async fn revisions_seen(sub: &mut Subscription, count: usize) -> Vec<i64> {
    let kind = kind_named("Pod").unwrap();
    let mut seen = Vec::new();
    while seen.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(10), sub.next(&kind));
        for m in next.await.unwrap().unwrap() {
            if let Message::Change(c) = m {
                seen.push(c.revision);
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_confined_to_a_node_is_handed_only_that_nodes_pods() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache) = pods_cache(dir.path()).await;
    let first = put(&store, "/registry/pods/default/first").await;
    cache.wait_until_fresh(first as u64).await.unwrap();
    // A revision after the cache started, so that it serves these watchers.
    let start = put(&store, "/registry/pods/default/second").await;
    cache.wait_until_fresh(start as u64).await.unwrap();
    let prefix = "/registry/pods/";
    let mut on_a = cache
        .subscribe(prefix, start, Some("a".into()))
        .await
        .unwrap();
    let mut on_b = cache
        .subscribe(prefix, start, Some("b".into()))
        .await
        .unwrap();
    let mut unbound = cache
        .subscribe(prefix, start, Some(String::new()))
        .await
        .unwrap();
    let mut all = cache.subscribe(prefix, start, None).await.unwrap();
    assert_eq!(cache.watchers(), 4);
    let pod = |node: Option<&str>| {
        let mut spec = serde_json::json!({"containers": [{"name": "c", "image": "i"}]});
        if let Some(n) = node {
            spec["nodeName"] = n.into();
        }
        serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
        .unwrap()
    };
    let key = b"/registry/pods/default/web";
    let write = |value: Vec<u8>| {
        let store = store.clone();
        async move { store.put(key, &value, 0, None).await.unwrap().revision }
    };
    let created = write(pod(None)).await;
    let bound = write(pod(Some("a"))).await;
    let running = write(pod(Some("a"))).await;
    let deleted = store.delete(key, None).await.unwrap().revision;
    let elsewhere = store
        .put(b"/registry/pods/default/other", &pod(Some("b")), 0, None)
        .await
        .unwrap()
        .revision;
    assert_eq!(
        revisions_seen(&mut on_a, 3).await,
        [bound, running, deleted]
    );
    assert_eq!(revisions_seen(&mut on_b, 1).await, [elsewhere]);
    // The unbound pod's watcher sees it created, and bound (gone from its view).
    assert_eq!(revisions_seen(&mut unbound, 2).await, [created, bound]);
    assert_eq!(
        revisions_seen(&mut all, 5).await,
        [created, bound, running, deleted, elsewhere]
    );
    // Nothing else was queued for the confined watchers; bookmarks still come.
    cache.progress(elsewhere + 1);
    for sub in [&mut on_a, &mut on_b, &mut unbound] {
        let kind = kind_named("Pod").unwrap();
        let next = sub.next(&kind).await.unwrap();
        assert!(
            matches!(next[..], [Message::Progress(r)] if r > elsewhere),
            "{:?}",
            next.iter()
                .map(|m| matches!(m, Message::Change(_)))
                .collect::<Vec<_>>()
        );
    }
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_cache_reads_history_in_chunks_then_joins_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = leading_store(dir.path()).await;
    let mut written = Vec::new();
    for i in 0..STORE_CHUNK * 2 + 10 {
        written.push(put(&store, &format!("/registry/pods/default/p{}", i % 7)).await);
    }
    // A cache started after those writes holds none of them.
    let cache = started_cache(store.clone()).await;
    let mut sub = cache
        .subscribe("/registry/pods/", written[0] - 1, None)
        .await
        .unwrap();
    assert!(matches!(sub, Subscription::Store(_)));
    let kind = kind_named("Pod").unwrap();
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let chunk = sub.next(&kind).await.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= STORE_CHUNK);
        for m in chunk {
            if let Message::Change(c) = m {
                seen.push(c.revision);
            }
        }
    }
    assert_eq!(seen, written);
    // The history handed out, later changes come from the cache, each once.
    let later = put(&store, "/registry/pods/default/later").await;
    assert_eq!(revisions_seen(&mut sub, 1).await, vec![later]);
    assert!(matches!(sub, Subscription::Cache { .. }));
    assert_eq!(cache.watchers(), 1);
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_revision_is_a_504_after_three_seconds_in_kube_apiserver_words() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache) = pods_cache(dir.path()).await;
    let revision = put(&store, "/registry/pods/default/web").await;
    let started = tokio::time::Instant::now();
    let e = cache
        .wait_until_fresh(revision as u64 + 1000)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        (FRESHNESS_TIMEOUT..FRESHNESS_TIMEOUT + Duration::from_secs(2)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!((e.code.as_u16(), e.reason), (504, "Timeout"));
    assert_eq!(
        e.message,
        format!(
            "Timeout: Too large resource version: {}, current: {revision}",
            revision + 1000
        )
    );
    let details = e.details.unwrap();
    assert_eq!(details.retry_after_seconds, Some(1));
    let cause = &details.causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (
            Some("ResourceVersionTooLarge"),
            Some("Too large resource version")
        )
    );
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_after_the_last_revision_there_can_be_is_too_large_not_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cache) = pods_cache(dir.path()).await;
    let e = cache
        .subscribe("/registry/pods/", i64::MAX, None)
        .await
        .err()
        .unwrap();
    assert_eq!((e.code.as_u16(), e.reason), (504, "Timeout"));
    assert!(
        e.message
            .starts_with("Timeout: Too large resource version: 9223372036854775807, current: "),
        "{}",
        e.message
    );
    store.shutdown();
}

#[tokio::test]
async fn a_watcher_that_joined_from_the_store_skips_what_it_was_handed_already() {
    let kind = kind_named("Pod").unwrap();
    let change = |revision: i64| {
        let e = rk8s_raftstore::Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: b"/registry/pods/default/web".to_vec(),
                value: Bytes::from_static(b"{}"),
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev_kv: None,
        };
        Message::Change(Arc::new(Change::from_event(&kind, &e).unwrap()))
    };
    let (tx, rx) = mpsc::channel(8);
    let mut sub = Subscription::Cache {
        backlog: VecDeque::new(),
        rx,
        after: 10,
    };
    // The cache had not published up to 10 when the watcher joined at 10.
    for m in [change(9), Message::Progress(10), change(10), change(11)] {
        tx.send(m).await.unwrap();
    }
    tx.send(Message::Progress(11)).await.unwrap();
    drop(tx);
    let mut got = Vec::new();
    while let Ok(messages) = sub.next(&kind).await {
        got.extend(messages.into_iter().map(|m| match m {
            Message::Change(c) => format!("change {}", c.revision),
            Message::Progress(r) => format!("progress {r}"),
        }));
    }
    assert_eq!(got, ["change 11", "progress 11"]);
}
