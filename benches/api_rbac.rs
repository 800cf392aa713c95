//! What RBAC costs the API server (`make bench`): a real one-member `rk8s-server`, a
//! user known by a client certificate and bound through 1,000 RoleBindings to 100
//! ClusterRoles of ten rules each (one binding, among them, to a role that may create
//! pods), and other users' bindings beside them. Creates pods as the admin (no RBAC:
//! `system:masters`) and as the user, four rounds of each that the two begin in turn
//! (the store grows and compacts under both), 1 and 64 clients; reads the server's
//! `apiserver_authorization_duration_seconds` histogram for RBAC's own time per
//! request.
//!
//! Prints a table and writes `target/bench/api_rbac.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::pods::{create_pods, pod};
use common::server::Server;
use common::{histogram_quantile, ms, percentile, print_table, write_json};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::json;

const ROLES: usize = 100;
const BINDINGS: usize = 1000;
const ROUNDS: usize = 4;

/// The cumulative buckets of `apiserver_authorization_duration_seconds{result="allowed"}`
/// in the server's `/metrics`: (upper bound, count).
async fn authorization_buckets(admin: &kube::Client) -> Vec<(f64, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = admin.request_text(req).await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("apiserver_authorization_duration_seconds_bucket{"))
        .filter(|l| l.contains("result=\"allowed\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((le.parse().unwrap_or(f64::INFINITY), count))
        })
        .collect()
}

/// Prometheus' `histogram_quantile` of the difference of two bucket readings.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, n - was)
        })
        .collect();
    histogram_quantile(&counts, q)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let admin = server.client().await;
    let user = Server::client_from(&server.user_kubeconfig("bench-user", &["bench"])).await;

    // 100 ClusterRoles of ten rules, none of which creates pods, but the last's.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    for r in 0..ROLES {
        let mut rules: Vec<_> = (0..10)
            .map(|i| {
                json!({"apiGroups": ["bench.example.com"], "resources": [format!("things{i}")],
                "verbs": ["get", "list", "watch"]})
            })
            .collect();
        if r == ROLES - 1 {
            rules[9] =
                json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]});
        }
        let role = json!({"metadata": {"name": format!("bench-role-{r}")}, "rules": rules});
        roles
            .create(
                &PostParams::default(),
                &serde_json::from_value(role).unwrap(),
            )
            .await
            .unwrap();
    }
    // 1,000 RoleBindings naming the user (the one to the last role among them), and as
    // many naming other users.
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "default");
    for b in 0..2 * BINDINGS {
        let subject = if b % 2 == 0 {
            "bench-user".to_string()
        } else {
            format!("other-{b}")
        };
        let role = if b == BINDINGS {
            ROLES - 1
        } else {
            b % (ROLES - 1)
        };
        let binding = json!({"metadata": {"name": format!("bench-{b}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": format!("bench-role-{role}")},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": subject}]});
        bindings
            .create(
                &PostParams::default(),
                &serde_json::from_value(binding).unwrap(),
            )
            .await
            .unwrap();
    }
    let as_admin: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let as_user: Api<Pod> = Api::namespaced(user, "default");
    // The bindings reach the authorizer's copy through a watch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while as_user
        .create(&PostParams::default(), &pod("probe"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the user's binding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create_pods(&as_admin, "warm-admin", 100, 4).await;
    create_pods(&as_user, "warm-user", 100, 4).await;

    let mut table = Vec::new();
    let mut json_rows = Vec::new();
    for (clients, total) in [(1usize, 500usize), (64, 2000)] {
        let (mut admin_lat, mut user_lat) = (Vec::new(), Vec::new());
        let before = authorization_buckets(&admin).await;
        // Rounds alternate who goes first: the store grows and compacts under both.
        for round in 0..ROUNDS {
            for turn in 0..2 {
                let (api, lat, who) = if (round + turn) % 2 == 0 {
                    (&as_admin, &mut admin_lat, "a")
                } else {
                    (&as_user, &mut user_lat, "u")
                };
                let prefix = format!("{who}{clients}-{round}");
                lat.extend(create_pods(api, &prefix, total, clients).await.0);
            }
        }
        let after = authorization_buckets(&admin).await;
        admin_lat.sort();
        user_lat.sort();
        let (a99, u99) = (
            ms(percentile(&admin_lat, 0.99)),
            ms(percentile(&user_lat, 0.99)),
        );
        let (auth50, auth99) = (
            quantile(&before, &after, 0.5) * 1e6,
            quantile(&before, &after, 0.99) * 1e6,
        );
        eprintln!("{clients} client(s): done");
        table.push(vec![
            format!("{clients}"),
            format!("{:.2} / {a99:.2}", ms(percentile(&admin_lat, 0.5))),
            format!("{:.2} / {u99:.2}", ms(percentile(&user_lat, 0.5))),
            format!("{:+.1}%", (u99 / a99 - 1.0) * 100.0),
            format!("{auth50:.0} / {auth99:.0}"),
        ]);
        json_rows.push(
            json!({"clients": clients, "pods_per_identity": total * ROUNDS,
            "admin_p50_ms": ms(percentile(&admin_lat, 0.5)), "admin_p99_ms": a99,
            "user_p50_ms": ms(percentile(&user_lat, 0.5)), "user_p99_ms": u99,
            "rbac_p50_us": auth50, "rbac_p99_us": auth99}),
        );
    }
    println!(
        "\nCreate pod as the admin and as a user bound through {BINDINGS} RoleBindings to {ROLES} ClusterRoles ({} bindings in the namespace), one member, HTTPS on loopback\n",
        2 * BINDINGS
    );
    print_table(
        &[
            "clients",
            "admin p50 / p99 ms",
            "user p50 / p99 ms",
            "user p99 vs admin",
            "RBAC p50 / p99 µs",
        ],
        &table,
    );
    write_json(
        "api_rbac",
        &json!({"benchmark": "api_rbac", "roles": ROLES, "bindings": BINDINGS, "rows": json_rows}),
    );
}
