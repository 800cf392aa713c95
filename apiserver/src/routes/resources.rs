//! The verbs on resources (get, list, create, update, patch, delete,
//! deletecollection) with the in-flight limits of kube-apiserver; the verbs themselves
//! are [`crate::handlers`]'. Answers, errors included, are JSON or protobuf as the
//! `Accept` header prefers ([`crate::content`]).

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use rk8s_http::body::{
    Body, bytes_response, json_response, protobuf_error_response, protobuf_response,
    yaml_error_response, yaml_response,
};

use crate::auth::Identity;
use crate::content::{self, Encoding};
use crate::handlers::{Body as ReplyBody, Call, Reply};
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
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let deprecated = deprecation(&r.kind);
        let answer = match self.serve(req, r, identity, query, accept.as_deref()).await {
            // A watch's errors before its stream starts are negotiated there too.
            Err(e) if content::negotiate(accept.as_deref()) == Encoding::Protobuf => {
                Ok(protobuf_error_response(&e))
            }
            Err(e)
                if content::negotiate(accept.as_deref()) == Encoding::Yaml
                    && e.code != http::StatusCode::NOT_ACCEPTABLE =>
            {
                Ok(yaml_error_response(&e))
            }
            other => other,
        };
        answer.map(|mut resp| {
            if let Some(w) = deprecated
                && let Ok(v) = http::HeaderValue::from_str(&format!("299 - {w:?}"))
            {
                resp.headers_mut().append(header::WARNING, v);
            }
            resp
        })
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        r: ResourceRequest,
        identity: &Identity,
        query: &Query,
        accept: Option<&str>,
    ) -> ApiResult<Response<Body>> {
        let access = self.handlers.authorize(identity, &r, query)?;
        let encoding = content::accepted(accept, r.verb == Verb::Watch)?;
        // A version served by conversion: the verbs run on the stored one.
        let alias = rk8s_api::versions::alias_of(&r.kind);
        let (r, query) = match alias {
            Some(a) => (
                super::versions::stored_request(a, &r),
                &super::versions::stored_query(a, query),
            ),
            None => (r, query),
        };
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if r.verb == Verb::Watch {
            return self.watch(&r, query, accept, alias).await;
        }
        let limit = if r.verb.is_write() {
            &self.writes_inflight
        } else {
            &self.reads_inflight
        };
        // kube-apiserver's max-in-flight filter answers a system:masters caller (the
        // admin, and the controllers' client) even when the limit is reached, and its
        // priority levels keep the scheduler's requests apart: only other callers get
        // a 429.
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if identity.is_exempt_from_limits() => None,
            Err(_) => {
                return Err(ApiError::too_many_requests(
                    "too many requests, please try again later",
                ));
            }
        };
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let is_delete = req.method() == Method::DELETE;
        let mut body = match *req.method() {
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                read_body(req.into_body(), length).await?
            }
            _ => Bytes::new(),
        };
        // The verbs read a DELETE's `DeleteOptions` as JSON; a protobuf client
        // (client-go's typed clients) sends them as protobuf.
        if is_delete && content::is_protobuf(&content_type) && !body.is_empty() {
            let options = rk8s_api::protobuf::decode(&body).map_err(|e| {
                ApiError::bad_request(format!("the body is not valid protobuf: {e}"))
            })?;
            body = Bytes::from(serde_json::to_vec(&options.object).unwrap_or_default());
            content_type = "application/json".to_string();
        }
        let mut conversion_warnings = Vec::new();
        if let Some(a) = alias
            && matches!(r.verb, Verb::Create | Verb::Update)
        {
            let mode = crate::decode::field_validation(query)?;
            (body, conversion_warnings) =
                super::versions::stored_body(a, &content_type, &body, mode, false)?;
            content_type = "application/json".to_string();
        }
        let call = Call {
            identity,
            access,
            req: &r,
            query,
            body,
            content_type,
            user_agent,
        };
        let h = &self.handlers;
        let reply: Reply = match (r.verb, alias) {
            (Verb::Get, _) => h.get(&call, accept).await?,
            (Verb::List, _) => h.list(&call, accept).await?,
            (Verb::Create, _) => h.create(&call).await?,
            (Verb::Patch, Some(a)) => super::versions::patch(h, a, &call).await?,
            (Verb::Update | Verb::Patch, _) => h.update(&call).await?,
            (Verb::Delete, _) => h.delete(&call).await?,
            (Verb::DeleteCollection, _) => h.delete_collection(&call).await?,
            (Verb::Watch, _) => return Err(ApiError::no_route()),
        };
        let mut reply = match alias {
            Some(a) => super::versions::served_reply(a, reply)?,
            None => reply,
        };
        reply.warnings.extend(conversion_warnings);
        if encoding == Encoding::Yaml {
            return yaml_reply(reply, permit).await;
        }
        respond(accept, reply, permit)
    }
}

/// The warning every request to a deprecated resource gets (kube-apiserver's
/// deprecation warnings): v1 Endpoints since Kubernetes 1.33 (KEP-4974).
fn deprecation(kind: &rk8s_api::ObjectKind) -> Option<&'static str> {
    (kind.group.is_empty() && kind.plural == "endpoints")
        .then_some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
}

/// The reply written as YAML (`Accept: application/yaml`): a list built whole, as
/// kube-apiserver's YAML serializer does (it has no streaming form).
async fn yaml_reply(
    reply: Reply,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> ApiResult<Response<Body>> {
    use http_body_util::BodyExt;
    let json = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let value = match reply.body {
        ReplyBody::Value(v) => v,
        ReplyBody::Object(obj) => obj.to_value(),
        ReplyBody::List(list) => json(&list.to_json()?)?,
        ReplyBody::Stream(list) => {
            let collected = list.into_body(permit)?.collect().await;
            let bytes = match collected {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            json(&bytes)?
        }
    };
    Ok(yaml_response(reply.code, &value, &reply.warnings))
}

/// The reply, encoded as `accept` prefers: protobuf for a kind that has an encoding
/// (a `Table` never, custom resources not), JSON otherwise. A streamed list holds
/// `permit` (its place among the requests in flight) until its last page is sent.
fn respond(
    accept: Option<&str>,
    reply: Reply,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> ApiResult<Response<Body>> {
    let protobuf = content::negotiate(accept) == Encoding::Protobuf;
    match reply.body {
        ReplyBody::Value(body) => {
            let table = body.get("kind").and_then(|k| k.as_str()) == Some("Table");
            if protobuf
                && !table
                && let Some(resp) = protobuf_response(reply.code, &body, &reply.warnings)
            {
                return Ok(resp);
            }
            Ok(json_response(reply.code, &body, &reply.warnings))
        }
        ReplyBody::Object(obj) => {
            if protobuf
                && let Some(resp) = protobuf_response(reply.code, &obj.to_value(), &reply.warnings)
            {
                return Ok(resp);
            }
            Ok(bytes_response(
                reply.code,
                obj.to_json(),
                "application/json",
                &reply.warnings,
            ))
        }
        ReplyBody::Stream(list) => {
            let mut resp = Response::new(list.into_body(permit)?);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        ReplyBody::List(list) => {
            let encoded = if protobuf {
                list.to_protobuf()
                    .map(|bytes| bytes.map(|b| (b, rk8s_api::protobuf::MEDIA_TYPE)))
            } else {
                None
            };
            let (bytes, content_type) =
                encoded.unwrap_or_else(|| list.to_json().map(|b| (b, "application/json")))?;
            Ok(bytes_response(
                reply.code,
                bytes,
                content_type,
                &reply.warnings,
            ))
        }
    }
}
