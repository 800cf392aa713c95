//! Requests for a kind in a version served by conversion (`autoscaling/v1`
//! HorizontalPodAutoscalers, `events.k8s.io/v1` Events; [`rk8s_api::versions`]):
//! the verbs run on the stored version, and this converts at their edges. A body
//! written in the served version is converted before the verb reads it; a patch is
//! applied to the object as the served version shows it, and the result written back
//! (again on a conflict, unless the patch itself named a `resourceVersion`); a
//! server-side apply's configuration is converted and applied to the stored version;
//! field
//! selectors are mapped onto the stored fields; and what the verbs answer (an object,
//! a list, its pages, a watch's events) is converted on the way out.

use bytes::Bytes;
use rk8s_api::versions::Alias;
use serde_json::Value;

use crate::decode::{
    Brought, FieldValidation, field_problems, field_validation, parse_body, reworded,
};
use crate::handlers::{Body, Call, Handlers, Reply};
use crate::request::{Query, ResourceRequest, Verb};
use crate::status::{ApiError, ApiResult};

/// How many times a patch is tried against a changing object.
const PATCH_TRIES: usize = 5;

/// kube-apiserver's words for a body that does not convert.
fn not_handled(alias: &Alias, e: &str) -> ApiError {
    let kind = alias.served.kind;
    ApiError::bad_request(format!(
        "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
        alias.served.version
    ))
}

/// The request `r` (in the served version) as the verbs run it: on the stored kind.
pub fn stored_request(alias: &Alias, r: &ResourceRequest) -> ResourceRequest {
    ResourceRequest {
        kind: alias.stored,
        ..r.clone()
    }
}

/// `query` with its field selector's labels in the stored version's terms.
pub fn stored_query(alias: &Alias, query: &Query) -> Query {
    let Some(selector) = query.get("fieldSelector") else {
        return query.clone();
    };
    let mapped: Vec<String> = selector
        .split(',')
        .map(|term| {
            let at = term.find(['=', '!']).unwrap_or(term.len());
            let (label, rest) = term.split_at(at);
            format!("{}{rest}", alias.field_label(label.trim()))
        })
        .collect();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.pairs() {
        if k == "fieldSelector" {
            out.append_pair(k, &mapped.join(","));
        } else {
            out.append_pair(k, v);
        }
    }
    Query::parse(Some(&out.finish()))
}

/// A create's or update's body (JSON, YAML or protobuf, in the served version) as
/// the stored version's JSON, and what `fieldValidation` (`mode`) says of its fields
/// the served version does not have (or its repeated keys): the warnings, or the 400
/// of `Strict`. An applied configuration (`apply`) keeps only the fields it sets.
pub(crate) fn stored_body(
    alias: &Alias,
    content_type: &str,
    body: &[u8],
    mode: FieldValidation,
    apply: bool,
) -> ApiResult<(Bytes, Vec<String>)> {
    let word = |e| match apply {
        true => e,
        false => reworded(e, Brought::Body(&alias.served)),
    };
    let parsed = parse_body(content_type, body, mode).map_err(word)?;
    let unknown = match mode {
        FieldValidation::Ignore => Vec::new(),
        _ => alias
            .unknown_fields(&parsed.value)
            .map_err(|e| not_handled(alias, &e))?,
    };
    let warnings = field_problems(&unknown, &parsed.duplicates, mode).map_err(word)?;
    let stored = if apply {
        alias.applied(parsed.value)
    } else {
        alias.from_served(parsed.value)
    }
    .map_err(|e| not_handled(alias, &e))?;
    Ok((
        Bytes::from(serde_json::to_vec(&stored).unwrap_or_default()),
        warnings,
    ))
}

/// A PATCH of `c` (its request on the stored kind, its body a patch of the served
/// version): the object read, shown in the served version, patched, and written
/// back in the stored one as an update.
pub async fn patch(handlers: &Handlers, alias: &Alias, c: &Call<'_>) -> ApiResult<Reply> {
    // A server-side apply: the applied configuration converted, and applied to the
    // stored version (the manager's fields are tracked in the stored version's terms).
    if crate::apply::is_apply(&c.content_type) {
        let mode = field_validation(c.query)?;
        let (body, warnings) = stored_body(alias, "application/yaml", &c.body, mode, true)?;
        let apply = Call {
            identity: c.identity,
            access: c.access.clone(),
            req: c.req,
            query: c.query,
            body,
            content_type: c.content_type.clone(),
            user_agent: c.user_agent.clone(),
        };
        let mut reply = handlers.update(&apply).await?;
        reply.warnings.extend(warnings);
        return Ok(reply);
    }
    let r = c.req;
    let update = ResourceRequest {
        verb: Verb::Update,
        ..r.clone()
    };
    let mut last = None;
    for _ in 0..PATCH_TRIES {
        let current = handlers
            .registry
            .get(&r.kind, r.namespace.as_deref(), r.name())
            .await?;
        let current_rv = current.metadata().resource_version.clone();
        let mut shown = alias
            .to_served(current.to_value())
            .map_err(ApiError::internal)?;
        crate::patch::apply_request(
            &c.content_type,
            &mut shown,
            &c.body,
            c.query,
            r.subresource.as_deref(),
        )?;
        let asked_rv = shown["metadata"]["resourceVersion"]
            .as_str()
            .filter(|rv| !rv.is_empty())
            .map(str::to_string);
        let precondition = asked_rv.is_some() && asked_rv != current_rv;
        // Written only over the state it was made from: a patch that removed the
        // resourceVersion does not overwrite a write made meanwhile (it is tried again).
        if asked_rv.is_none() {
            shown["metadata"]["resourceVersion"] = Value::from(current_rv.clone());
        }
        let stored = alias
            .from_served(shown)
            .map_err(|e| not_handled(alias, &e))?;
        let put = Call {
            identity: c.identity,
            access: c.access.clone(),
            req: &update,
            query: c.query,
            body: Bytes::from(serde_json::to_vec(&stored).unwrap_or_default()),
            content_type: "application/json".to_string(),
            user_agent: c.user_agent.clone(),
        };
        match handlers.update(&put).await {
            Err(e) if e.code == http::StatusCode::CONFLICT && !precondition => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| ApiError::internal("the patch was not applied")))
}

/// What a verb answered on the stored kind, as the served version shows it.
pub fn served_reply(alias: &'static Alias, reply: Reply) -> ApiResult<Reply> {
    let body = match reply.body {
        Body::Object(obj) => {
            let value = alias
                .to_served(obj.to_value())
                .map_err(ApiError::internal)?;
            Body::Value(value)
        }
        Body::List(mut list) => {
            for kv in &mut list.items {
                let served = alias
                    .stored_bytes_to_served(&kv.value)
                    .map_err(ApiError::internal)?;
                kv.value = Bytes::from(served);
            }
            list.api_version = alias.served.api_version;
            list.item_kind = alias.served.kind;
            list.encoded = None;
            Body::List(list)
        }
        Body::Stream(list) => Body::Stream(Box::new(list.served_by(alias))),
        Body::Value(v) => Body::Value(v),
    };
    Ok(Reply { body, ..reply })
}

/// The served version's JSON of a stored object's JSON text.
pub fn served_bytes(alias: &Alias, stored: &[u8]) -> Option<Bytes> {
    alias
        .stored_bytes_to_served(stored)
        .inspect_err(|e| tracing::warn!("a stored object does not convert: {e}"))
        .ok()
        .map(Bytes::from)
}
