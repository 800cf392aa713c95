//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines from the watch
//! cache, with bookmarks, tables and a timeout; or, for clients that prefer protobuf,
//! a stream of length-prefixed `WatchEvent` frames
//! (`application/vnd.kubernetes.protobuf;stream=watch`).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use rk8s_http::body::{Body, PIECE, channel_body};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use rk8s_api::{AnyObject, ObjectKind};

use crate::content::{self, Encoding};
use crate::cursor::{Cursor, Page};
use crate::list_options::Filter;
use crate::request::{Query, ResourceRequest};
use crate::server::ApiServer;
use crate::status::{ApiError, ApiResult};
use crate::table;
use crate::watch::Message;

/// The query's selectors alone (a watch's initial list reads everything they select).
pub(crate) fn without_paging(q: &Query) -> Query {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for key in ["labelSelector", "fieldSelector"] {
        if let Some(v) = q.get(key) {
            kept.append_pair(key, v);
        }
    }
    Query::parse(Some(&kept.finish()))
}

/// How many objects of a watch's initial list are read, decoded and sent at a time.
const INITIAL_PAGE: i64 = 500;

/// A watch's initial list (its `ADDED` events when it starts without a
/// `resourceVersion`), read a page at a time at one revision as it is sent: the
/// server holds a page of it, not every object decoded at once.
pub(crate) struct Initial {
    kind: ObjectKind,
    /// The page read and not yet sent.
    page: Vec<AnyObject>,
    /// Where the rest stands, until the last page has been read.
    rest: Option<Cursor>,
}

impl Initial {
    /// Nothing: a watch that resumes from a `resourceVersion`.
    fn none(kind: ObjectKind) -> Self {
        Initial {
            kind,
            page: Vec::new(),
            rest: None,
        }
    }

    /// Sends an event of each object as `event` writes it (`None`: no event) through
    /// `batch`, a page at a time: false if the client left, an error if a page could
    /// not be read (its revision compacted away meanwhile).
    pub(crate) async fn send(
        mut self,
        batch: &mut Batch,
        tx: &mpsc::Sender<Bytes>,
        mut event: impl FnMut(&AnyObject) -> Option<Bytes>,
    ) -> ApiResult<bool> {
        loop {
            for obj in std::mem::take(&mut self.page) {
                if let Some(line) = event(&obj)
                    && !batch.add(&line, tx).await
                {
                    return Ok(false);
                }
            }
            let Some(mut cursor) = self.rest.take() else {
                return Ok(batch.flush(tx).await);
            };
            let page = cursor.next_page(INITIAL_PAGE).await?;
            self = Initial::read(self.kind, page, cursor)?;
        }
    }

    /// The list from `page` on, `cursor` having read it.
    fn read(kind: ObjectKind, page: Page, cursor: Cursor) -> ApiResult<Self> {
        let rest = page.next.is_some().then_some(cursor);
        let page = page
            .items
            .into_iter()
            .map(|item| item.decoded(&kind))
            .collect::<ApiResult<_>>()?;
        Ok(Initial { kind, page, rest })
    }
}

/// Where a watch begins: its initial list (none when it resumes from a
/// `resourceVersion`), the revision after which changes are sent, the watch cache's
/// subscription, and when the watch ends (`timeoutSeconds`).
pub(crate) struct WatchStart {
    pub(crate) initial: Initial,
    pub(crate) from: i64,
    pub(crate) sub: crate::watch::Subscription,
    pub(crate) deadline: Option<tokio::time::Instant>,
}

/// A watch's next messages from `sub`: `None` once its deadline passed or its client
/// (`tx`'s receiver) left.
pub(crate) async fn next_messages(
    sub: &mut crate::watch::Subscription,
    kind: &rk8s_api::ObjectKind,
    deadline: Option<tokio::time::Instant>,
    tx: &mpsc::Sender<Bytes>,
) -> Option<Result<Vec<Message>, Option<ApiError>>> {
    Some(match deadline {
        Some(d) => tokio::time::timeout_at(d, sub.next(kind)).await.ok()?,
        None => tokio::select! {
            n = sub.next(kind) => n,
            _ = tx.closed() => return None,
        },
    })
}

impl ApiServer {
    /// Where the watch `r` with `query` begins ([`WatchStart`]): with no
    /// resourceVersion (or "0") the current state, listed, then changes after it; else
    /// changes after the one asked for, once the server has reached it (up to 3 s,
    /// then a 504 `Too large resource version`). `node`: see
    /// [`crate::watch::WatchCache::subscribe`].
    pub(crate) async fn watch_start(
        &self,
        r: &ResourceRequest,
        query: &Query,
        node: Option<String>,
    ) -> ApiResult<WatchStart> {
        let kind = r.kind;
        let timeout = query
            .number("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.unsigned_abs()));
        let rv = query.get("resourceVersion").unwrap_or("");
        let (initial, from) = if rv.is_empty() || rv == "0" {
            // The first page is read here: its revision is where changes begin.
            let mut cursor = self.handlers.cursor(r, &without_paging(query)).await?;
            let page = cursor.next_page(INITIAL_PAGE).await?;
            let revision = cursor.revision();
            (Initial::read(kind, page, cursor)?, revision)
        } else {
            let asked = crate::list_options::requested_revision(rv)?;
            self.handlers.wait_until_fresh(&kind, asked).await?;
            let from = i64::try_from(asked)
                .map_err(|_| crate::watch::too_large_resource_version(asked, i64::MAX))?;
            (Initial::none(kind), from)
        };
        let prefix = kind.storage_prefix(r.namespace.as_deref());
        let cache = self
            .handlers
            .caches
            .get(&kind)
            .ok_or_else(ApiError::no_route)?;
        let sub = cache.subscribe(&prefix, from, node).await?;
        Ok(WatchStart {
            initial,
            from,
            sub,
            // A `timeoutSeconds` past what the clock can count means no deadline.
            deadline: timeout.and_then(|t| tokio::time::Instant::now().checked_add(t)),
        })
    }

    /// `?watch=true`: a stream of `{"type": ..., "object": ...}` lines. A watch from a
    /// `resourceVersion` the server has not reached waits for it up to 3 s, then is a
    /// 504 `Too large resource version` before any stream starts; one from a version
    /// compacted away is a stream of one `ERROR` event, 410 `too old resource version`.
    pub(crate) async fn watch(
        &self,
        r: &ResourceRequest,
        query: &Query,
        accept: Option<&str>,
        served: Option<&'static rk8s_api::versions::Alias>,
    ) -> ApiResult<Response<Body>> {
        let kind = r.kind;
        // What the client sees: the kind in the version it asked for.
        let shown_kind = served.map_or(kind, |a| a.served);
        crate::list_options::validate_list_options(query, true)?;
        let filter = Filter::from_query(&kind, query)?;
        let bookmarks = query.flag("allowWatchBookmarks");
        let as_table = table::wants_table(accept);
        // Tables and kinds without a protobuf encoding are streamed as JSON.
        let protobuf = content::negotiate(accept) == Encoding::Protobuf
            && !as_table
            && rk8s_api::protobuf::has_schema(shown_kind.api_version, shown_kind.kind);
        let WatchStart {
            initial,
            from,
            mut sub,
            deadline,
        } = match self.watch_start(r, query, filter.node_trigger(&kind)).await {
            Ok(start) => start,
            Err(e) => return unstarted(e, protobuf),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let custom = self.handlers.custom.clone();
        let encode = move |ty: &str, shown: Shown<'_>| -> Option<Bytes> {
            if let Some(alias) = served
                && !as_table
            {
                // From the change's JSON where there is one (a deletion's carries the
                // deletion's resourceVersion).
                let stored = match shown.json() {
                    Some(j) => j.clone(),
                    None => Bytes::from(shown.object()?.to_json()),
                };
                let body = super::versions::served_bytes(alias, &stored)?;
                if protobuf {
                    return Some(protobuf_frame(ty, rk8s_api::protobuf::transcode(&body)));
                }
                return Some(event_line(ty, &body));
            }
            let json = shown.json();
            if protobuf {
                // The JSON of a change is what JSON watchers get (a deletion's
                // object carries the deletion's resourceVersion): transcoded.
                let body = match json {
                    Some(j) => rk8s_api::protobuf::transcode(j),
                    None => rk8s_api::protobuf::encode(&shown.object()?.to_value()),
                };
                return Some(protobuf_frame(ty, body));
            }
            let object = if as_table {
                let obj = shown.object()?;
                let rv = obj.metadata().resource_version.clone().unwrap_or_default();
                Bytes::from(
                    serde_json::to_vec(&crate::custom::table::any_table(
                        &custom,
                        &kind,
                        std::slice::from_ref(obj),
                        &rv,
                        None,
                        None,
                    ))
                    .unwrap_or_default(),
                )
            } else if shown.api_version() != kind.api_version {
                // A custom kind watched in a version other than its watch cache's
                // (one cache per resource): conversion `None`, the apiVersion only.
                let mut value = shown.object()?.to_value();
                value["apiVersion"] = json!(kind.api_version);
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
            } else {
                match json {
                    Some(j) => j.clone(),
                    None => Bytes::from(
                        serde_json::to_vec(&shown.object()?.to_value()).unwrap_or_default(),
                    ),
                }
            };
            Some(event_line(ty, &object))
        };
        tokio::spawn(async move {
            let _watching = crate::metrics::Watching::start(kind.plural);
            // Lines are sent in pieces of up to PIECE: a batch of changes is
            // one write to the connection, not one per change.
            let mut batch = Batch::default();
            let sent = initial
                .send(&mut batch, &tx, |obj| encode("ADDED", Shown::Listed(obj)))
                .await;
            match sent {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.send(error_event(&e, protobuf)).await;
                    return;
                }
            }
            while let Some(next) = next_messages(&mut sub, &kind, deadline, &tx).await {
                let messages = match next {
                    Ok(m) => m,
                    Err(Some(e)) => {
                        let _ = tx.send(error_event(&e, protobuf)).await;
                        return;
                    }
                    Err(None) => return,
                };
                for m in messages {
                    let line = match m {
                        Message::Progress(rev) if bookmarks => {
                            let obj = json!({"kind": shown_kind.kind, "apiVersion": shown_kind.api_version,
                                             "metadata": {"resourceVersion": rev.to_string()}});
                            Some(if protobuf {
                                protobuf_frame("BOOKMARK", rk8s_api::protobuf::encode(&obj))
                            } else {
                                Bytes::from(format!("{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"))
                            })
                        }
                        Message::Progress(_) => None,
                        Message::Change(c) if c.revision <= from => None,
                        Message::Change(c) => {
                            // Unfiltered, nothing is decoded: the stored bytes suffice;
                            // selectors read the labels (and a pod's fields) alone.
                            let (now, before) = if filter.is_everything() {
                                (c.exists(), c.existed())
                            } else {
                                (c.selected_by(&filter), c.was_selected_by(&filter))
                            };
                            let ty = match (c.exists(), before, now) {
                                (true, false, true) => Some("ADDED"),
                                (true, true, true) => Some("MODIFIED"),
                                (true, true, false) | (false, true, _) => Some("DELETED"),
                                _ => None,
                            };
                            ty.and_then(|ty| encode(ty, Shown::Changed(&c)))
                        }
                    };
                    if let Some(line) = line
                        && !batch.add(&line, &tx).await
                    {
                        return;
                    }
                }
                if !batch.flush(&tx).await {
                    return;
                }
            }
        });
        Ok(stream_response(rx, protobuf))
    }
}

/// A JSON watch's line: `{"type":TYPE,"object":OBJECT}`.
fn event_line(ty: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ty.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A watch's events not sent yet: one batch's lines gathered into pieces of up to
/// [`PIECE`], so that a busy watch costs a write per batch rather than per
/// event (and the server's tasks a wake-up per batch).
#[derive(Default)]
pub(crate) struct Batch(Vec<u8>);

impl Batch {
    /// Adds `line`, sending what is gathered once it reaches [`PIECE`]; false if
    /// the client is gone.
    pub(crate) async fn add(&mut self, line: &[u8], tx: &mpsc::Sender<Bytes>) -> bool {
        self.0.extend_from_slice(line);
        self.0.len() < PIECE || self.flush(tx).await
    }

    /// Sends what is gathered; false if the client is gone.
    pub(crate) async fn flush(&mut self, tx: &mpsc::Sender<Bytes>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let piece = Bytes::from(std::mem::take(&mut self.0));
        tx.send(piece).await.is_ok()
    }
}

/// The answer to a watch that could not start with `e`. A resourceVersion compacted
/// away (410) is, as from kube-apiserver's watch cache (its `newErrWatcher`), a
/// stream of one `ERROR` event rather than the request's status: client-go's reflector
/// and kube-rs' watcher list again on that event, where kube-rs' watcher retries a
/// 410 answer from the same version forever. Any other error is the answer's status.
pub(crate) fn unstarted(e: ApiError, protobuf: bool) -> ApiResult<Response<Body>> {
    if e.code != http::StatusCode::GONE {
        return Err(e);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let _ = tx.try_send(error_event(&e, protobuf));
    Ok(stream_response(rx, protobuf))
}

/// The answer to a watch: the lines (or protobuf frames) `rx` receives.
pub(crate) fn stream_response(rx: mpsc::Receiver<Bytes>, protobuf: bool) -> Response<Body> {
    let mut resp = Response::new(channel_body(rx));
    let content_type = if protobuf {
        rk8s_api::protobuf::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The `ERROR` event that ends a watch with `e`'s `Status`.
pub(crate) fn error_event(e: &ApiError, protobuf: bool) -> Bytes {
    let mut status = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
    if protobuf {
        status["apiVersion"] = json!("v1");
        status["kind"] = json!("Status");
        protobuf_frame("ERROR", rk8s_api::protobuf::encode(&status))
    } else {
        Bytes::from(format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n"))
    }
}

/// What a watch event shows: a listed object (a watch that starts with a list), or a
/// change, whose JSON is ready and whose object is decoded only if needed.
enum Shown<'a> {
    Listed(&'a AnyObject),
    Changed(&'a crate::watch::Change),
}

impl Shown<'_> {
    fn object(&self) -> Option<&AnyObject> {
        match self {
            Shown::Listed(o) => Some(o),
            Shown::Changed(c) => c.shown(),
        }
    }

    fn json(&self) -> Option<&Bytes> {
        match self {
            Shown::Listed(_) => None,
            Shown::Changed(c) => Some(&c.json),
        }
    }

    fn api_version(&self) -> &str {
        match self {
            Shown::Listed(o) => o.kind().api_version,
            Shown::Changed(c) => c.api_version(),
        }
    }
}

/// One protobuf watch frame: a `WatchEvent` of `ty` holding `body`, its object's
/// protobuf body (the object has a schema: the watch checked its kind). An object that
/// could not be encoded is sent as an `ERROR` event, as kube-apiserver reports an
/// encoding failure in the stream.
fn protobuf_frame(ty: &str, body: rk8s_api::protobuf::Result<Vec<u8>>) -> Bytes {
    let frame = match body {
        Ok(body) => rk8s_api::protobuf::watch_frame(ty, &body),
        Err(e) => {
            let status = ApiError::internal(format!("cannot encode the object: {e}")).to_status();
            let mut status = serde_json::to_value(status).unwrap_or(Value::Null);
            status["apiVersion"] = json!("v1");
            status["kind"] = json!("Status");
            let body = rk8s_api::protobuf::encode(&status).unwrap_or_default();
            rk8s_api::protobuf::watch_frame("ERROR", &body)
        }
    };
    Bytes::from(frame)
}
