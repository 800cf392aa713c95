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

impl StoredItem {
    /// The object, decoded if it was not yet.
    pub fn decoded(self, kind: &ObjectKind) -> ApiResult<AnyObject> {
        match self.object {
            Some(o) => Ok(o),
            None => registry::decode(kind, &self.kv),
        }
    }
}

/// What [`Cursor::next_page`] read.
pub struct Page {
    /// The items selected, in key order.
    pub items: Vec<StoredItem>,
    /// The first key not looked at, when the page is full and keys remain.
    pub next: Option<Vec<u8>>,
    /// The keys after the page, when the cursor is [`Cursor::counted`] and has no
    /// selector.
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
    /// Whether a page says how many keys follow it (`remainingItemCount`).
    counted: bool,
    /// The keys from `start` on at `revision`, when known: from the page before, or
    /// the continue token that page handed out.
    remaining: Option<i64>,
    /// Whether the list was resumed from a continue token (a page read at a revision
    /// compacted away is then the token's fault, in kube-apiserver's words).
    resumed: bool,
}

impl Cursor {
    /// A list of the objects of `kind` under `prefix` that `filter` selects, from the
    /// first key, now, not counted.
    pub fn new(registry: Registry, kind: ObjectKind, prefix: String, filter: Filter) -> Self {
        Cursor {
            registry,
            kind,
            prefix,
            filter,
            start: Vec::new(),
            revision: 0,
            counted: false,
            remaining: None,
            resumed: false,
        }
    }

    /// The list read at `revision` (0: now).
    pub fn at(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// The list resumed where a page left off: from `start`, at `revision`, with
    /// `remaining` keys from `start` on when the page knew.
    pub fn resume(mut self, start: Vec<u8>, revision: i64, remaining: Option<i64>) -> Self {
        self.resumed = !start.is_empty();
        self.start = start;
        self.revision = revision;
        self.remaining = remaining;
        self
    }

    /// Whether each page says how many keys follow it (a `limit`ed list without a
    /// selector: `remainingItemCount`). A list's first page counts them by reading the
    /// rest of the range, as etcd's range does; a later one takes its own length from
    /// the count the page before left. Uncounted, a page reads only its own keys.
    pub fn counted(mut self, counted: bool) -> Self {
        self.counted = counted;
        self
    }

    /// The prefix of the keys listed.
    pub fn prefix(&self) -> &str {
        &self.prefix
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
            let counts = self.counted && self.filter.is_everything();
            let page = self
                .registry
                .page(
                    &self.kind,
                    &self.prefix,
                    &self.start,
                    chunk,
                    self.revision,
                    counts && self.remaining.is_none(),
                )
                .await
                .map_err(|e| match (e.code, self.resumed) {
                    (http::StatusCode::GONE, true) => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    _ => e,
                })?;
            self.revision = page.revision;
            // The keys after this read, counted or known from the count before it.
            let read = i64::try_from(page.kvs.len()).unwrap_or(i64::MAX);
            let after = match (counts, page.remaining, self.remaining) {
                (false, _, _) => None,
                (true, Some(counted), _) => Some(counted),
                (true, None, known) => known.map(|r| r - read).filter(|r| *r >= 0),
            };
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
                    // Without a selector a read is the page: none was cut off it.
                    let remaining = after.filter(|_| cut_at.is_none());
                    self.remaining = remaining;
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
