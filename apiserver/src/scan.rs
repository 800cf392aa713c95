//! Every stored object of a kind, read a page at a time: for what must look at all of
//! them (Prometheus' discovery of pods and nodes) without holding them all, decoded,
//! at once.

use crate::cursor::Cursor;
use crate::handlers::Handlers;
use crate::list_options::Filter;
use crate::status::{ApiError, ApiResult};

impl Handlers {
    /// Calls `each` with every stored object of `kind` in every namespace, read a page
    /// of 1,000 at a time at one revision (as a client's paginated list): a scan holds
    /// one page, not every object.
    pub async fn scan_kind(
        &self,
        kind: &str,
        mut each: impl FnMut(&rk8s_raftstore::proto::KeyValue),
    ) -> ApiResult<()> {
        let kind = rk8s_api::object::kind_named(kind).ok_or_else(ApiError::no_route)?;
        let mut cursor = Cursor::new(
            self.registry.clone(),
            kind,
            kind.storage_prefix(None),
            Filter::everything(),
        );
        loop {
            let page = cursor.next_page(1000).await?;
            page.items.iter().for_each(|item| each(&item.kv));
            if page.next.is_none() {
                return Ok(());
            }
        }
    }
}
