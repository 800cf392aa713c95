//! `networking.rk8s.io/v1alpha1` `podpeers`: the pods as NetworkPolicy sees them
//! ([`rk8s_api::netpol::peer`]), served read-only from the pods' own keys — get, list
//! (with the pods' label and field selectors, `limit` and `continue`) and watch —
//! so a node learns every pod's labels, addresses and named ports without reading
//! any pod spec. A PodPeer's `resourceVersion` is its pod's; a watch leaves out the
//! pod changes that leave the projection as it was (status heartbeats, conditions),
//! which the watch cache's changes allow since each carries the state before it.
//!
//! Who may read them: every node (each enforces NetworkPolicy against every pod),
//! the admin, and users and ServiceAccounts that RBAC lets `get`/`list`/`watch`
//! `podpeers` in the group.

use bytes::Bytes;
use http::Response;
use k8s_openapi::api::core::v1::Pod;
use rk8s_api::netpol::peer::{self, PodPeer};
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_http::body::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::Identity;
use crate::list_options::{Filter, validate_list_options};
use crate::rbac::{Attributes, Target};
use crate::request::{PeerRequest, Query, ResourceRequest, Verb};
use crate::routes::watch::{
    Batch, WatchStart, error_event, next_messages, stream_response, unstarted,
};
use crate::server::{ApiServer, ok};
use crate::status::{ApiError, ApiResult};
use crate::watch::Message;

/// The projection of a pod at `revision` (its own, or a deletion's).
fn projected(obj: &AnyObject, revision: Option<i64>) -> Option<PodPeer> {
    let AnyObject::Pod(pod) = obj else {
        return None;
    };
    let mut p = PodPeer::of(pod);
    if let Some(r) = revision {
        p.metadata.resource_version = Some(r.to_string());
    }
    Some(p)
}

/// One watch line.
fn line(ty: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{ty}\",\"object\":{object}}}\n"))
}

/// What a change of a pod is to a PodPeer watcher selecting with `filter`: the
/// event type and the peer shown, or `None` when the watcher sees no change (not
/// selected before or after, or the projection is the same).
pub fn peer_event(change: &crate::watch::Change, filter: &Filter) -> Option<(&'static str, Value)> {
    let (now, before) = if filter.is_everything() {
        (change.exists(), change.existed())
    } else {
        (change.selected_by(filter), change.was_selected_by(filter))
    };
    let revision = Some(change.revision);
    match (change.exists(), before, now) {
        (true, false, true) => Some(("ADDED", projected(change.object()?, revision)?.to_value())),
        (true, true, true) => {
            let new = projected(change.object()?, revision)?;
            match change.prev().and_then(|p| projected(p, None)) {
                Some(old) if new.same_as(&old) => None,
                _ => Some(("MODIFIED", new.to_value())),
            }
        }
        (true, true, false) | (false, true, _) => {
            Some(("DELETED", projected(change.shown()?, revision)?.to_value()))
        }
        _ => None,
    }
}

impl ApiServer {
    /// Answers a PodPeer request.
    pub(crate) async fn pod_peers(
        &self,
        identity: &Identity,
        asked: PeerRequest,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        self.authorize_peers(identity, &asked)?;
        let kind = ObjectKind::of::<Pod>();
        if let Some(name) = &asked.name {
            let ns = asked.namespace.as_deref();
            let pod = self.handlers.registry.find(&kind, ns, name).await?;
            let peer = pod.as_ref().and_then(|p| projected(p, None));
            return match peer {
                Some(p) => ok(p.to_value()),
                None => Err(ApiError::new(
                    http::StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{}.{} \"{name}\" not found", peer::PLURAL, peer::GROUP),
                )),
            };
        }
        let all = ResourceRequest {
            verb: Verb::List,
            kind,
            namespace: asked.namespace.clone(),
            name: None,
            subresource: None,
        };
        if asked.watch {
            return self.watch_peers(&all, query).await;
        }
        validate_list_options(query, false)?;
        let listed = self.handlers.list_objects(&all, query).await?;
        let items: Vec<Value> = listed
            .items
            .iter()
            .filter_map(|o| projected(o, None))
            .map(|p| p.to_value())
            .collect();
        let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
        if let Some(token) = listed.continue_token {
            metadata["continue"] = json!(token);
        }
        if let Some(n) = listed.remaining {
            metadata["remainingItemCount"] = json!(n);
        }
        ok(json!({
            "apiVersion": peer::API_VERSION,
            "kind": "PodPeerList",
            "metadata": metadata,
            "items": items,
        }))
    }

    fn authorize_peers(&self, identity: &Identity, asked: &PeerRequest) -> ApiResult<()> {
        let a = Attributes {
            verb: asked.verb(),
            namespace: asked.namespace.as_deref(),
            target: Target::Resource {
                group: peer::GROUP,
                resource: peer::PLURAL,
                subresource: None,
                name: asked.name.as_deref(),
            },
        };
        // Every node enforces NetworkPolicy against every pod.
        if matches!(identity, Identity::Node(_)) || self.handlers.may(identity, &a)? {
            return Ok(());
        }
        Err(a.forbidden(&identity.user()))
    }

    /// `?watch=true` on PodPeers: the pods' watch, projected.
    async fn watch_peers(&self, r: &ResourceRequest, query: &Query) -> ApiResult<Response<Body>> {
        let kind = r.kind;
        validate_list_options(query, true)?;
        let filter = Filter::from_query(&kind, query)?;
        let bookmarks = query.flag("allowWatchBookmarks");
        let WatchStart {
            initial,
            from,
            mut sub,
            deadline,
        } = match self.watch_start(r, query, None).await {
            Ok(start) => start,
            Err(e) => return unstarted(e, false),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            let _watching = crate::metrics::Watching::start(peer::PLURAL);
            let mut batch = Batch::default();
            let sent = initial
                .send(&mut batch, &tx, |obj| {
                    projected(obj, None).map(|p| line("ADDED", &p.to_value()))
                })
                .await;
            match sent {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.send(error_event(&e, false)).await;
                    return;
                }
            }
            while let Some(next) = next_messages(&mut sub, &kind, deadline, &tx).await {
                let messages = match next {
                    Ok(m) => m,
                    Err(Some(e)) => {
                        let _ = tx.send(error_event(&e, false)).await;
                        return;
                    }
                    Err(None) => return,
                };
                for m in messages {
                    let out = match m {
                        Message::Progress(rev) if bookmarks => Some(line(
                            "BOOKMARK",
                            &json!({"kind": peer::KIND, "apiVersion": peer::API_VERSION,
                                    "metadata": {"resourceVersion": rev.to_string()}}),
                        )),
                        Message::Progress(_) => None,
                        Message::Change(c) if c.revision <= from => None,
                        Message::Change(c) => peer_event(&c, &filter).map(|(ty, v)| line(ty, &v)),
                    };
                    if let Some(out) = out
                        && !batch.add(&out, &tx).await
                    {
                        return;
                    }
                }
                if !batch.flush(&tx).await {
                    return;
                }
            }
        });
        Ok(stream_response(rx, false))
    }
}
