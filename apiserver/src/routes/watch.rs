//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines from the watch
//! cache, with bookmarks, tables and a timeout.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use rk8s_http::body::{Body, channel_body};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::list_options::Filter;
use crate::request::{Query, ResourceRequest};
use crate::server::ApiServer;
use crate::status::{ApiError, ApiResult};
use crate::table;
use crate::watch::Message;

/// The query's selectors alone (a watch's initial list reads everything they select).
fn without_paging(q: &Query) -> Query {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for key in ["labelSelector", "fieldSelector"] {
        if let Some(v) = q.get(key) {
            kept.append_pair(key, v);
        }
    }
    Query::parse(Some(&kept.finish()))
}

impl ApiServer {
    /// `?watch=true`: a stream of `{"type": ..., "object": ...}` lines. A watch from a
    /// `resourceVersion` the server has not reached waits for it up to 3 s, then is a
    /// 504 `Too large resource version` before any stream starts.
    pub(crate) async fn watch(
        &self,
        r: &ResourceRequest,
        query: &Query,
        accept: Option<&str>,
    ) -> ApiResult<Response<Body>> {
        let kind = r.kind;
        crate::list_options::validate_list_options(query, true)?;
        let filter = Filter::from_query(&kind, query)?;
        let bookmarks = query.flag("allowWatchBookmarks");
        let as_table = table::wants_table(accept);
        let timeout = query
            .number("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.unsigned_abs()));
        let rv = query.get("resourceVersion").unwrap_or("");
        // No resourceVersion (or "0"): the current state as ADDED events, then changes.
        let (initial, from) = if rv.is_empty() || rv == "0" {
            let listed = self
                .handlers
                .list_objects(r, &without_paging(query))
                .await?;
            (listed.items, listed.revision)
        } else {
            let asked = crate::list_options::requested_revision(rv)?;
            self.handlers.wait_until_fresh(&kind, asked).await?;
            let from = i64::try_from(asked)
                .map_err(|_| crate::watch::too_large_resource_version(asked, i64::MAX))?;
            (Vec::new(), from)
        };
        let prefix = kind.storage_prefix(r.namespace.as_deref());
        let cache = self
            .handlers
            .caches
            .get(&kind)
            .ok_or_else(ApiError::no_route)?;
        let mut sub = cache.subscribe(&prefix, from).await?;
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let encode = move |ty: &str, obj: &rk8s_api::AnyObject, json: Option<&Bytes>| -> Bytes {
            let object = if as_table {
                let rv = obj.metadata().resource_version.clone().unwrap_or_default();
                Bytes::from(
                    serde_json::to_vec(&table::table(
                        &kind,
                        std::slice::from_ref(obj),
                        &rv,
                        None,
                        None,
                    ))
                    .unwrap_or_default(),
                )
            } else {
                match json {
                    Some(j) => j.clone(),
                    None => Bytes::from(serde_json::to_vec(&obj.to_value()).unwrap_or_default()),
                }
            };
            let mut line = Vec::with_capacity(object.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(ty.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(&object);
            line.extend_from_slice(b"}\n");
            Bytes::from(line)
        };
        tokio::spawn(async move {
            let _watching = crate::metrics::Watching::start(kind.plural);
            // A `timeoutSeconds` past what the clock can count means no deadline.
            let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
            for obj in &initial {
                if filter.matches(obj) && tx.send(encode("ADDED", obj, None)).await.is_err() {
                    return;
                }
            }
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, sub.next(&kind)).await {
                        Ok(n) => n,
                        Err(_) => return,
                    },
                    None => tokio::select! {
                        n = sub.next(&kind) => n,
                        _ = tx.closed() => return,
                    },
                };
                let messages = match next {
                    Ok(m) => m,
                    Err(Some(e)) => {
                        let status = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
                        let line = format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n");
                        let _ = tx.send(Bytes::from(line)).await;
                        return;
                    }
                    Err(None) => return,
                };
                for m in messages {
                    let line = match m {
                        Message::Progress(rev) if bookmarks => {
                            let obj = json!({"kind": kind.kind, "apiVersion": kind.api_version,
                                             "metadata": {"resourceVersion": rev.to_string()}});
                            Some(Bytes::from(format!(
                                "{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"
                            )))
                        }
                        Message::Progress(_) => None,
                        Message::Change(c) if c.revision <= from => None,
                        Message::Change(c) => {
                            let now = c.object.as_ref().is_some_and(|o| filter.matches(o));
                            let before = c.prev.as_ref().is_some_and(|o| filter.matches(o));
                            let ty = match (c.object.is_some(), before, now) {
                                (true, false, true) => Some("ADDED"),
                                (true, true, true) => Some("MODIFIED"),
                                (true, true, false) | (false, true, _) => Some("DELETED"),
                                _ => None,
                            };
                            ty.and_then(|ty| c.shown().map(|o| encode(ty, o, Some(&c.json))))
                        }
                    };
                    if let Some(line) = line
                        && tx.send(line).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut resp = Response::new(channel_body(rx));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}
