//! The verbs on resources (get, list, create, update, patch, delete,
//! deletecollection) with the in-flight limits of kube-apiserver; the verbs themselves
//! are [`crate::handlers`]'.

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use rk8s_http::body::{Body, json_response};

use crate::auth::{self, Identity};
use crate::handlers::{Call, Reply};
use crate::request::{Query, ResourceRequest, Verb};
use crate::server::{ApiServer, read_body};
use crate::status::{ApiError, ApiResult};

impl ApiServer {
    pub(crate) async fn resource(
        &self,
        req: Request<Incoming>,
        r: ResourceRequest,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        let access = auth::authorize(identity, &r, query)?;
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if r.verb == Verb::Watch {
            return self.watch(&r, query, accept.as_deref()).await;
        }
        let limit = if r.verb.is_write() {
            &self.writes_inflight
        } else {
            &self.reads_inflight
        };
        let Ok(_permit) = limit.clone().try_acquire_owned() else {
            return Err(ApiError::too_many_requests(
                "too many requests, please try again later",
            ));
        };
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = match *req.method() {
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                read_body(req.into_body(), length).await?
            }
            _ => Bytes::new(),
        };
        let call = Call {
            identity,
            access,
            req: &r,
            query,
            body,
            content_type,
        };
        let h = &self.handlers;
        let reply: Reply = match r.verb {
            Verb::Get => h.get(&call, accept.as_deref()).await?,
            Verb::List => h.list(&call, accept.as_deref()).await?,
            Verb::Create => h.create(&call).await?,
            Verb::Update | Verb::Patch => h.update(&call).await?,
            Verb::Delete => h.delete(&call).await?,
            Verb::DeleteCollection => h.delete_collection(&call).await?,
            Verb::Watch => return Err(ApiError::no_route()),
        };
        Ok(json_response(reply.code, &reply.body, &reply.warnings))
    }
}
