//! One request to a resource as the verbs see it (the handlers, and the write steps
//! such as server-side apply that they call).

use bytes::Bytes;

use crate::auth::{Access, Identity};
use crate::request::{Query, ResourceRequest};

/// A request as the verbs see it: who, what, and the parts of the HTTP request they
/// read.
pub struct Call<'a> {
    /// The caller.
    pub identity: &'a Identity,
    /// What the caller may touch.
    pub access: Access,
    /// The resource request.
    pub req: &'a ResourceRequest,
    /// Query parameters.
    pub query: &'a Query,
    /// The request body.
    pub body: Bytes,
    /// The body's media type.
    pub content_type: String,
    /// The client's `User-Agent`, whose first word names the field manager of a
    /// write without `fieldManager` (`kubectl`).
    pub user_agent: Option<String>,
}
