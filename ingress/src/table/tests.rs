#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::{Value, json};

fn class() -> Arc<IngressClass> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "rk8s", "annotations": {rk8s_api::ingress::DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": rk8s_api::ingress::CONTROLLER}
        }))
        .unwrap(),
    )
}

/// A cluster whose Services `svc-*` each have a port 80 named `http` with one
/// endpoint; the endpoint's port tells the Services apart (`svc-a` → 1, …).
fn cluster(names: &[&str]) -> StaticCluster {
    let mut c = StaticCluster::default();
    for (i, name) in names.iter().enumerate() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]}
        }))
        .unwrap();
        c.services
            .insert(("default".into(), name.to_string()), Arc::new(svc));
        let at = SocketAddr::from(([10, 0, 0, 1], 1 + i as u16));
        c.endpoints.insert(
            ("default".into(), name.to_string(), "http".into()),
            vec![at],
        );
        let admin = SocketAddr::from(([10, 0, 0, 2], 1 + i as u16));
        c.endpoints.insert(
            ("default".into(), name.to_string(), "admin".into()),
            vec![admin],
        );
    }
    c
}

fn backend_of(service: &str) -> Value {
    json!({"service": {"name": service, "port": {"number": 80}}})
}

fn ingress(name: &str, created: &str, spec: Value) -> Arc<Ingress> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": spec
        }))
        .unwrap(),
    )
}

/// One Ingress with these `(pathType, path, service)` rules for `host`.
fn paths(host: Option<&str>, rules: &[(&str, &str, &str)]) -> Arc<Ingress> {
    let paths: Vec<Value> = rules
        .iter()
        .map(|(t, p, s)| json!({"pathType": t, "path": p, "backend": backend_of(s)}))
        .collect();
    let mut rule = json!({"http": {"paths": paths}});
    if let Some(h) = host {
        rule["host"] = json!(h);
    }
    ingress("web", "2025-01-01T00:00:00Z", json!({"rules": [rule]}))
}

/// The Service a request reaches (`None`: 404), by the table's endpoint port.
fn reached(table: &Table, host: &str, path: &str) -> Option<String> {
    match table.route(host, path, true) {
        Route::Backend { backend, .. } => Some(backend.service.clone()),
        Route::NotFound => None,
        Route::Redirect => Some("redirect".into()),
        Route::BadPath => Some("400".into()),
    }
}

const SERVICES: [&str; 4] = ["svc-a", "svc-b", "svc-c", "svc-d"];

fn table(ingresses: &[Arc<Ingress>]) -> Table {
    Table::build(ingresses, &[class()], &cluster(&SERVICES))
}

#[test]
fn the_kubernetes_io_path_matching_examples_hold() {
    // kubernetes.io, Concepts → Ingress → "Examples" (path types): kind, paths,
    // request path, matched.
    let p = "Prefix";
    let e = "Exact";
    /// Rules (pathType, path), the request's path, the rule matched.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
    let cases: &[Case] = &[
        (&[(p, "/")], "/anything/at/all", Some("/")),
        (&[(e, "/foo")], "/foo", Some("/foo")),
        (&[(e, "/foo")], "/bar", None),
        (&[(e, "/foo")], "/foo/", None),
        (&[(e, "/foo/")], "/foo", None),
        (&[(p, "/foo")], "/foo", Some("/foo")),
        (&[(p, "/foo")], "/foo/", Some("/foo")),
        (&[(p, "/foo/")], "/foo", Some("/foo/")),
        (&[(p, "/foo/")], "/foo/", Some("/foo/")),
        (&[(p, "/aaa/bb")], "/aaa/bbb", None),
        (&[(p, "/aaa/bbb")], "/aaa/bbb", Some("/aaa/bbb")),
        (&[(p, "/aaa/bbb/")], "/aaa/bbb", Some("/aaa/bbb/")),
        (&[(p, "/aaa/bbb")], "/aaa/bbb/", Some("/aaa/bbb")),
        (&[(p, "/aaa/bbb")], "/aaa/bbb/ccc", Some("/aaa/bbb")),
        (&[(p, "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[(p, "/"), (p, "/aaa")], "/aaa/ccc", Some("/aaa")),
        (
            &[(p, "/"), (p, "/aaa"), (p, "/aaa/bbb")],
            "/aaa/bbb",
            Some("/aaa/bbb"),
        ),
        (&[(p, "/"), (p, "/aaa"), (p, "/aaa/bbb")], "/ccc", Some("/")),
        (&[(p, "/aaa")], "/ccc", None),
        (&[(p, "/foo"), (e, "/foo")], "/foo", Some("Exact /foo")),
        // Ranked by the length without the trailing slash: Exact wins at equal length.
        (&[(p, "/foo/"), (e, "/foo")], "/foo", Some("/foo")),
        (&[(e, "/foo"), (p, "/foo/")], "/foo/bar", Some("/foo/")),
    ];
    for (rules, request, expected) in cases {
        // Each rule its own Service, named after the rule.
        let named: Vec<(String, String)> = rules
            .iter()
            .enumerate()
            .map(|(i, (t, path))| {
                let label = if rules.len() > 1 && rules.iter().filter(|r| r.1 == *path).count() > 1
                {
                    format!("{t} {path}")
                } else {
                    path.to_string()
                };
                (label, SERVICES[i].to_string())
            })
            .collect();
        let triples: Vec<(&str, &str, &str)> = rules
            .iter()
            .zip(&named)
            .map(|((t, path), (_, svc))| (*t, *path, svc.as_str()))
            .collect();
        let t = table(&[paths(None, &triples)]);
        let got = reached(&t, "example.com", request);
        let want = expected.map(|label| {
            named
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, s)| s.clone())
                .unwrap()
        });
        assert_eq!(got, want, "{rules:?} for {request}");
    }
}

#[test]
fn an_exact_host_beats_a_wildcard_which_covers_one_label() {
    let i = ingress(
        "hosts",
        "2025-01-01T00:00:00Z",
        json!({"rules": [
            {"host": "*.example.com", "http": {"paths": [{"pathType": "Prefix", "path": "/", "backend": backend_of("svc-a")}]}},
            {"host": "www.example.com", "http": {"paths": [{"pathType": "Prefix", "path": "/", "backend": backend_of("svc-b")}]}},
            {"http": {"paths": [{"pathType": "Prefix", "path": "/", "backend": backend_of("svc-c")}]}}
        ]}),
    );
    let t = table(&[i]);
    assert_eq!(reached(&t, "www.example.com", "/").unwrap(), "svc-b");
    assert_eq!(reached(&t, "WWW.Example.com:8080", "/").unwrap(), "svc-b");
    assert_eq!(reached(&t, "shop.example.com", "/").unwrap(), "svc-a");
    // One label only; the domain itself is not covered.
    assert_eq!(reached(&t, "a.b.example.com", "/").unwrap(), "svc-c");
    assert_eq!(reached(&t, "example.com", "/").unwrap(), "svc-c");
    assert_eq!(reached(&t, "other.org", "/x").unwrap(), "svc-c");
}

#[test]
fn the_oldest_ingress_wins_a_conflict() {
    let rule = |svc: &str| {
        json!({"rules": [{"host": "a.test", "http": {"paths": [
            {"pathType": "Prefix", "path": "/app", "backend": backend_of(svc)}]}}]})
    };
    let newer = ingress("newer", "2025-06-01T00:00:00Z", rule("svc-a"));
    let older = ingress("older", "2025-01-01T00:00:00Z", rule("svc-b"));
    let t = table(&[newer.clone(), older.clone()]);
    assert_eq!(reached(&t, "a.test", "/app/x").unwrap(), "svc-b");
    // At equal times, by namespace and name.
    let same_a = ingress("a", "2025-01-01T00:00:00Z", rule("svc-c"));
    let same_b = ingress("b", "2025-01-01T00:00:00Z", rule("svc-d"));
    let t = table(&[same_b, same_a]);
    assert_eq!(reached(&t, "a.test", "/app").unwrap(), "svc-c");
}

#[test]
fn default_backends_answer_what_no_path_matches() {
    let with_default = ingress(
        "site",
        "2025-01-01T00:00:00Z",
        json!({"defaultBackend": backend_of("svc-a"), "rules": [{"host": "site.test", "http": {"paths": [
            {"pathType": "Exact", "path": "/only", "backend": backend_of("svc-b")}]}}]}),
    );
    let t = table(std::slice::from_ref(&with_default));
    assert_eq!(reached(&t, "site.test", "/only").unwrap(), "svc-b");
    assert_eq!(reached(&t, "site.test", "/other").unwrap(), "svc-a");
    // Another host has no default: 404.
    assert_eq!(reached(&t, "elsewhere.test", "/"), None);
    // A rule-less Ingress's defaultBackend is the cluster's: the oldest one's.
    let catch_all = ingress(
        "catch-all",
        "2025-02-01T00:00:00Z",
        json!({"defaultBackend": backend_of("svc-c")}),
    );
    let newer = ingress(
        "catch-all-2",
        "2025-03-01T00:00:00Z",
        json!({"defaultBackend": backend_of("svc-d")}),
    );
    let t = table(&[with_default, newer, catch_all]);
    assert_eq!(reached(&t, "elsewhere.test", "/").unwrap(), "svc-c");
    assert_eq!(reached(&t, "site.test", "/other").unwrap(), "svc-a");
}

#[test]
fn backends_resolve_ports_by_number_or_name_and_round_robin() {
    let i = ingress(
        "ports",
        "2025-01-01T00:00:00Z",
        json!({"rules": [{"http": {"paths": [
            {"pathType": "Prefix", "path": "/admin", "backend": {"service": {"name": "svc-a", "port": {"name": "admin"}}}},
            {"pathType": "Prefix", "path": "/none", "backend": {"service": {"name": "svc-a", "port": {"number": 81}}}},
            {"pathType": "Prefix", "path": "/gone", "backend": {"service": {"name": "gone", "port": {"number": 80}}}},
            {"pathType": "Prefix", "path": "/res", "backend": {"resource": {"kind": "Bucket", "name": "b"}}},
            {"pathType": "Prefix", "path": "/", "backend": backend_of("svc-b")}]}}]}),
    );
    let mut c = cluster(&SERVICES);
    c.endpoints.insert(
        ("default".into(), "svc-b".into(), "http".into()),
        vec![
            SocketAddr::from(([10, 0, 0, 7], 80)),
            SocketAddr::from(([10, 0, 0, 8], 80)),
        ],
    );
    let t = Table::build(&[i], &[class()], &c);
    let pick = |path: &str| match t.route("x", path, false) {
        Route::Backend { backend, .. } => backend.pick(),
        _ => panic!("no backend for {path}"),
    };
    assert_eq!(pick("/admin"), Some(SocketAddr::from(([10, 0, 0, 2], 1))));
    assert_eq!(pick("/none"), None);
    assert_eq!(pick("/gone"), None);
    assert_eq!(pick("/res"), None);
    let two = [pick("/"), pick("/"), pick("/")];
    assert_eq!(two[0], two[2]);
    assert_ne!(two[0], two[1]);
}

#[test]
fn ingresses_of_other_classes_are_not_served() {
    let mut other = (*paths(Some("x.test"), &[("Prefix", "/", "svc-a")])).clone();
    other.spec.as_mut().unwrap().ingress_class_name = Some("nginx".into());
    let t = table(&[Arc::new(other)]);
    assert_eq!(reached(&t, "x.test", "/"), None);
    assert!(t.served.is_empty());
}

#[test]
fn tls_hosts_redirect_plain_http_unless_told_not_to() {
    let spec = json!({
        "tls": [{"hosts": ["secure.test"], "secretName": "cert"}],
        "rules": [{"host": "secure.test", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": backend_of("svc-a")}]}}]
    });
    let t = table(&[ingress("tls", "2025-01-01T00:00:00Z", spec.clone())]);
    assert!(matches!(
        t.route("secure.test", "/", false),
        Route::Redirect
    ));
    assert!(matches!(
        t.route("secure.test", "/", true),
        Route::Backend { .. }
    ));
    assert_eq!(
        t.tls,
        [TlsSecret {
            namespace: "default".into(),
            secret: "cert".into(),
            hosts: vec!["secure.test".into()]
        }]
    );
    let mut off = (*ingress("tls", "2025-01-01T00:00:00Z", spec)).clone();
    off.metadata.annotations = Some(
        [(
            format!("{}ssl-redirect", annotations::PREFIX),
            "false".to_string(),
        )]
        .into(),
    );
    let t = table(&[Arc::new(off)]);
    assert!(matches!(
        t.route("secure.test", "/", false),
        Route::Backend { .. }
    ));
}

#[test]
fn rewrite_target_with_regex_paths() {
    let mut i = (*paths(
        Some("r.test"),
        &[("ImplementationSpecific", "/something(/|$)(.*)", "svc-a")],
    ))
    .clone();
    i.metadata.annotations = Some(
        [(
            format!("{}rewrite-target", annotations::PREFIX),
            "/$2".to_string(),
        )]
        .into(),
    );
    let t = table(&[Arc::new(i)]);
    let sent = |path: &str| match t.route("r.test", path, false) {
        Route::Backend { path, .. } => Some(path),
        _ => None,
    };
    assert_eq!(sent("/something/new?q=1").as_deref(), Some("/new?q=1"));
    assert_eq!(sent("/Something").as_deref(), Some("/"));
    assert_eq!(sent("/other"), None);
    // A bad regex is reported and left out.
    let mut bad = (*paths(Some("b.test"), &[("ImplementationSpecific", "/(", "svc-a")])).clone();
    bad.metadata.annotations = Some(
        [(
            format!("{}use-regex", annotations::PREFIX),
            "true".to_string(),
        )]
        .into(),
    );
    let t = table(&[Arc::new(bad)]);
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
}

#[test]
fn paths_are_matched_normalised() {
    let t = table(&[paths(
        None,
        &[
            ("Prefix", "/api", "svc-a"),
            ("Prefix", "/", "svc-b"),
            ("Exact", "/admin", "svc-c"),
        ],
    )]);
    for path in [
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/api/%2E%2E/admin",
        "//admin",
        "/api/./../admin",
    ] {
        assert_eq!(
            reached(&t, "x.test", path).as_deref(),
            Some("svc-c"),
            "{path}"
        );
    }
    assert_eq!(
        reached(&t, "x.test", "/api//v1/./x").as_deref(),
        Some("svc-a")
    );
    let sent = match t.route("x.test", "/api/%2e%2e/admin?q=/../x", false) {
        Route::Backend { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(sent, "/admin?q=/../x", "the query is kept as it was");
    assert!(matches!(
        t.route("x.test", "/api/../../etc", false),
        Route::BadPath
    ));
}

#[test]
fn tls_applies_only_to_hosts_the_same_ingress_has_rules_for() {
    let catch = ingress(
        "catch",
        "2025-01-01T00:00:00Z",
        json!({"rules": [
            {"http": {"paths": [{"pathType": "Prefix", "path": "/", "backend": backend_of("svc-a")}]}},
            {"host": "*.example.com", "http": {"paths": [{"pathType": "Prefix", "path": "/", "backend": backend_of("svc-b")}]}}
        ]}),
    );
    let team = ingress(
        "team",
        "2025-01-02T00:00:00Z",
        json!({"rules": [{"host": "team.test", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": backend_of("svc-d")}]}}]}),
    );
    // Lists hosts it has no rule for, and one it has.
    let other = ingress(
        "other",
        "2025-01-03T00:00:00Z",
        json!({
            "tls": [{"hosts": ["x.test", "www.example.com", "team.test"], "secretName": "stolen"},
                    {"hosts": ["mine.test"], "secretName": "mine"}],
            "rules": [{"host": "mine.test", "http": {"paths": [
                {"pathType": "Prefix", "path": "/", "backend": backend_of("svc-c")}]}}]
        }),
    );
    let t = table(&[catch, team, other]);
    // No empty server hides the host-less and wildcard rules.
    assert_eq!(reached(&t, "x.test", "/").as_deref(), Some("svc-a"));
    assert_eq!(
        reached(&t, "www.example.com", "/").as_deref(),
        Some("svc-b")
    );
    // No redirect nor certificate for another team's host.
    assert!(matches!(
        t.route("team.test", "/", false),
        Route::Backend { .. }
    ));
    assert!(matches!(t.route("mine.test", "/", false), Route::Redirect));
    assert_eq!(
        t.tls,
        [TlsSecret {
            namespace: "default".into(),
            secret: "mine".into(),
            hosts: vec!["mine.test".into()]
        }]
    );
    // A wildcard under spec.tls covers the rule hosts of its domain, and only those.
    let wild = ingress(
        "wild",
        "2025-01-04T00:00:00Z",
        json!({
            "tls": [{"hosts": ["*.w.test"], "secretName": "w"}],
            "rules": [{"host": "a.w.test", "http": {"paths": [
                {"pathType": "Prefix", "path": "/", "backend": backend_of("svc-a")}]}}]
        }),
    );
    let t = table(&[wild]);
    assert_eq!(t.tls[0].hosts, ["a.w.test"]);
    assert!(matches!(t.route("a.w.test", "/", false), Route::Redirect));
}

#[test]
fn compiled_ingresses_are_reused_while_their_resource_version_stays() {
    let mut i = (*paths(
        Some("r.test"),
        &[("ImplementationSpecific", "/v(\\d+)/", "svc-a")],
    ))
    .clone();
    i.metadata.resource_version = Some("1".into());
    i.metadata.annotations = Some(
        [(
            format!("{}use-regex", annotations::PREFIX),
            "true".to_string(),
        )]
        .into(),
    );
    let ingresses = [Arc::new(i.clone())];
    let mut compiled = Compiled::default();
    let c = cluster(&SERVICES);
    let t = Table::build_with(&mut compiled, &ingresses, &[class()], &c);
    assert_eq!(compiled.compilations(), 1);
    let pick = |t: &Table| match t.route("r.test", "/v2/x", false) {
        Route::Backend { backend, .. } => backend.pick(),
        _ => None,
    };
    assert_eq!(pick(&t), Some(SocketAddr::from(([10, 0, 0, 1], 1))));
    // Only the endpoints change: nothing is compiled again, the new ones are used.
    let mut moved = cluster(&SERVICES);
    let elsewhere = SocketAddr::from(([10, 9, 9, 9], 80));
    moved.endpoints.insert(
        ("default".into(), "svc-a".into(), "http".into()),
        vec![elsewhere],
    );
    let t = Table::build_with(&mut compiled, &ingresses, &[class()], &moved);
    assert_eq!(compiled.compilations(), 1);
    assert_eq!(pick(&t), Some(elsewhere));
    // A new version is compiled again.
    i.metadata.resource_version = Some("2".into());
    let t = Table::build_with(&mut compiled, &[Arc::new(i)], &[class()], &moved);
    assert_eq!(compiled.compilations(), 2);
    assert_eq!(pick(&t), Some(elsewhere));
    // One gone is forgotten.
    Table::build_with(&mut compiled, &[], &[class()], &moved);
    assert!(compiled.by.is_empty());
}
