//! The node's Ingress traffic for scale from zero, served on its 10250 endpoint as
//! `GET /ingress/activity` (only the API server gets in; the leader's activation
//! controller reads it through `nodes/{name}/proxy/ingress/activity`): NDJSON
//! lines ([`rk8s_api::activation::ActivityLine`]), a snapshot at once, a `waiting`
//! line at once whenever a Service's held requests go from none to some (Knative's
//! concurrency reporter: "report the first request for a key immediately"), a
//! snapshot at once when the last held request of a Service leaves (so the reader
//! does not go on believing requests wait), a snapshot when a Service's requests
//! in flight go from none to some (at most one such a [`BUSY_EVERY`]: the leader
//! must not find idle a Service whose long request or WebSocket started after the
//! last snapshot), and a snapshot every [`SNAPSHOT_EVERY`]. The node writes nothing for this: the
//! controller, with its own credential, decides and scales.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use rk8s_api::activation::{ActivityLine, LineKind};
use rk8s_http::body::{Body, channel_body};
use tokio::sync::mpsc;

pub use rk8s_ingress::activation::{Activation, DEFAULT_QUEUE};

/// How often a snapshot line is sent.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(10);
/// At most one snapshot a second for requests newly in flight (coalesced).
pub const BUSY_EVERY: Duration = Duration::from_secs(1);

/// The stream of `activation`'s counts, until the client goes.
pub fn stream(activation: Arc<Activation>) -> Response<Body> {
    // A slow reader holds the sender, not the node's memory.
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut demand = activation.demand();
        demand.mark_unchanged();
        let mut busy = activation.busy();
        busy.mark_unchanged();
        // No busy line before then (coalesced: what comes meanwhile waits for it).
        let mut quiet_until = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval(SNAPSHOT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let became_busy = async {
                tokio::time::sleep_until(quiet_until).await;
                busy.changed().await
            };
            let pushed = tokio::select! {
                _ = ticks.tick() => false,
                changed = demand.changed() => match changed {
                    Ok(()) => true,
                    Err(_) => return,
                },
                changed = became_busy => match changed {
                    Ok(()) => {
                        quiet_until = tokio::time::Instant::now() + BUSY_EVERY;
                        false
                    }
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            if tx.send(line(pushed, &activation)).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(channel_body(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// One line with `activation`'s counts now: a `waiting` line when `pushed` and
/// some request waits, else a snapshot.
fn line(pushed: bool, activation: &Activation) -> Bytes {
    let backends = activation.snapshot();
    let kind = if pushed && backends.iter().any(|b| b.waiting > 0) {
        LineKind::Waiting
    } else {
        LineKind::Snapshot
    };
    let line = ActivityLine { kind, backends };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;

    async fn next_line(body: &mut Body) -> ActivityLine {
        let frame = body.frame().await.unwrap().unwrap();
        let data = frame.into_data().unwrap();
        serde_json::from_slice(&data).unwrap()
    }

    #[tokio::test]
    async fn a_snapshot_comes_first_then_demand_and_release_at_once_then_every_ten_seconds() {
        tokio::time::pause();
        let activation = Activation::new(8);
        let mut body = stream(activation.clone()).into_body();
        let first = next_line(&mut body).await;
        assert_eq!(first.kind, LineKind::Snapshot);
        assert!(first.backends.is_empty());
        let key = ("default".to_string(), "web".to_string());
        let held = activation.hold(&key).unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(10), next_line(&mut body))
            .await
            .expect("the waiting line is sent at once");
        assert_eq!(waiting.kind, LineKind::Waiting);
        assert_eq!(waiting.backends[0].waiting, 1);
        drop(held);
        let released = tokio::time::timeout(Duration::from_millis(10), next_line(&mut body))
            .await
            .expect("the release is sent at once");
        assert_eq!(released.kind, LineKind::Snapshot);
        assert_eq!(released.backends[0].waiting, 0);
        let started = tokio::time::Instant::now();
        let snapshot = next_line(&mut body).await;
        assert_eq!(snapshot.kind, LineKind::Snapshot);
        assert!(started.elapsed() >= SNAPSHOT_EVERY - Duration::from_millis(10));
    }

    #[tokio::test]
    async fn requests_newly_in_flight_are_reported_at_once_at_most_once_a_second() {
        tokio::time::pause();
        let activation = Activation::new(8);
        let mut body = stream(activation.clone()).into_body();
        next_line(&mut body).await;
        let key = ("default".to_string(), "web".to_string());
        let first = activation.in_flight(&key, true);
        let busy = tokio::time::timeout(Duration::from_millis(10), next_line(&mut body))
            .await
            .expect("a request newly in flight is told at once");
        assert_eq!(busy.kind, LineKind::Snapshot);
        assert_eq!(busy.backends[0].in_flight, 1);
        drop(first);
        let started = tokio::time::Instant::now();
        let _second = activation.in_flight(&key, true);
        let coalesced = next_line(&mut body).await;
        assert_eq!(coalesced.backends[0].in_flight, 1);
        let took = started.elapsed();
        assert!(
            took >= BUSY_EVERY - Duration::from_millis(10) && took < SNAPSHOT_EVERY,
            "{took:?}"
        );
    }
}
