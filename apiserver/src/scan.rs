//! Every stored object of a kind, read a page at a time: for what must look at all of
//! them (`/metrics`' object-state series, Prometheus' discovery) without holding them
//! all, decoded, at once.

use crate::handlers::Handlers;
use crate::request::{Query, ResourceRequest};
use crate::status::{ApiError, ApiResult};

impl Handlers {
    /// Calls `each` with every stored object of `kind` in every namespace, read a page
    /// of 1,000 at a time (one consistent list, as a client's paginated one): a scan
    /// holds one page, not every object.
    pub async fn scan_kind(
        &self,
        kind: &str,
        mut each: impl FnMut(&rk8s_raftstore::proto::KeyValue),
    ) -> ApiResult<()> {
        let kind = rk8s_api::object::kind_named(kind).ok_or_else(ApiError::no_route)?;
        let all = ResourceRequest {
            verb: crate::request::Verb::List,
            kind,
            namespace: None,
            name: None,
            subresource: None,
        };
        let mut token: Option<String> = None;
        loop {
            let query = {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("limit", "1000");
                if let Some(t) = &token {
                    q.append_pair("continue", t);
                }
                Query::parse(Some(&q.finish()))
            };
            let page = self.list_stored(&all, &query).await?;
            page.items.iter().for_each(|item| each(&item.kv));
            match page.continue_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }
}
