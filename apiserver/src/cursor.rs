//! A list read page by page: the keys of one kind under a prefix, from a key on, at
//! one revision, those a [`Filter`] selects. A `limit`ed list reads one page and
//! hands out a continue token where it stopped; a list without one that does not fit
//! a page is streamed ([`crate::listing::StreamedList`]), each page read as the last
//! one has been sent.

use rk8s_api::{AnyObject, ObjectKind};
use rk8s_raftstore::proto::KeyValue;

use crate::list_options::Filter;
use crate::registry::{self, Registry};
use crate::status::{ApiError, ApiResult};

/// An object of a list as stored, and decoded if a selector had to look at it.
pub struct StoredItem {
    /// The stored key and value.
    pub kv: KeyValue,
    /// The object, if it was decoded.
    pub object: Option<AnyObject>,
}

/// What [`Cursor::next_page`] read.
pub struct Page {
    /// The items selected, in key order.
    pub items: Vec<StoredItem>,
    /// The first key not looked at, when the page is full and keys remain.
    pub next: Option<Vec<u8>>,
    /// The keys after the page, when known (no selector, and the page ended with a
    /// read of the store).
    pub remaining: Option<i64>,
}

/// Where a list stands.
pub struct Cursor {
    registry: Registry,
    kind: ObjectKind,
    prefix: String,
    filter: Filter,
    /// The next key to read (empty: the prefix's first).
    start: Vec<u8>,
    /// The revision read at (0 before the first read: the store's latest).
    revision: i64,
}

impl Cursor {
    /// A list of `kind` under `prefix` from `start`, at `revision` (0: now).
    pub fn new(
        registry: Registry,
        kind: ObjectKind,
        prefix: String,
        filter: Filter,
        start: Vec<u8>,
        revision: i64,
    ) -> Self {
        Cursor {
            registry,
            kind,
            prefix,
            filter,
            start,
            revision,
        }
    }

    /// The revision the list is read at (once a page is read).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The next `limit` items selected (0: all that remain). With a selector the store
    /// is read in chunks of at least 256 keys until the page is full. 410 Gone when a
    /// later page's revision has been compacted away.
    pub async fn next_page(&mut self, limit: i64) -> ApiResult<Page> {
        let mut items = Vec::new();
        loop {
            let want = if limit == 0 {
                0
            } else {
                limit - items.len() as i64
            };
            let chunk = if self.filter.is_everything() || want == 0 {
                want
            } else {
                want.max(256)
            };
            let started = !self.start.is_empty();
            let page = self
                .registry
                .page(&self.kind, &self.prefix, &self.start, chunk, self.revision)
                .await
                .map_err(|e| match (e.code, started) {
                    (http::StatusCode::GONE, true) => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    _ => e,
                })?;
            self.revision = page.revision;
            // The first key not looked at, if the page was cut short.
            let mut cut_at = None;
            let after_page = page.more.then(|| page.kvs.last()).flatten().map(|kv| {
                let mut k = kv.key.clone();
                k.push(0);
                k
            });
            for kv in page.kvs {
                if limit > 0 && items.len() as i64 >= limit {
                    cut_at = Some(kv.key);
                    break;
                }
                if self.filter.is_everything() {
                    items.push(StoredItem { kv, object: None });
                    continue;
                }
                let obj = registry::decode(&self.kind, &kv)?;
                if self.filter.matches(&obj) {
                    items.push(StoredItem {
                        kv,
                        object: Some(obj),
                    });
                }
            }
            let next = cut_at.clone().or(after_page);
            let full = limit > 0 && items.len() as i64 >= limit;
            match next {
                Some(k) if full => {
                    self.start.clone_from(&k);
                    let remaining =
                        (self.filter.is_everything() && cut_at.is_none()).then_some(page.remaining);
                    return Ok(Page {
                        items,
                        next: Some(k),
                        remaining,
                    });
                }
                Some(k) => self.start = k,
                None => {
                    return Ok(Page {
                        items,
                        next: None,
                        remaining: None,
                    });
                }
            }
        }
    }
}
