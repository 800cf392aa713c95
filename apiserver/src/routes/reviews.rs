//! The review kinds, computed and never stored, as kube-apiserver's
//! `pkg/registry/authorization` and `pkg/registry/authentication` answer them (201
//! with the object and its `status`): who the caller is (SelfSubjectReview, `kubectl
//! auth whoami`), who a token is (TokenReview), whether a user may do something
//! (SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview: `kubectl
//! auth can-i`) and what the caller may do in a namespace (SelfSubjectRulesReview:
//! `kubectl auth can-i --list`).

use std::collections::BTreeMap;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, SelfSubjectReviewStatus, TokenReview, TokenReviewStatus, UserInfo,
};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes, ResourceRule,
    SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview, SubjectAccessReviewSpec,
    SubjectAccessReviewStatus, SubjectRulesReviewStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_http::body::{Body, json_response, protobuf_response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Identity;
use crate::content::{self, Encoding};
use crate::decode::{FieldValidation, parse_body};
use crate::rbac::{Attributes, Target};
use crate::request::{Query, ResourceRequest, ReviewKind, Verb};
use crate::server::{ApiServer, read_body};
use crate::status::{ApiError, ApiResult};
use crate::users::User;

/// Kubernetes' 422 for a review's `field`.
fn invalid(kind: ReviewKind, field: &str, value: &str, detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!(
            "{} \"\" is invalid: {field}: Invalid value: \"{value}\": {detail}",
            kind.kind()
        ),
    )
}

/// What a review asks about, once read.
enum Asked<'a> {
    Resource(&'a ResourceAttributes),
    Path(&'a NonResourceAttributes),
}

impl<'a> Asked<'a> {
    fn of(
        kind: ReviewKind,
        r: &'a Option<ResourceAttributes>,
        n: &'a Option<NonResourceAttributes>,
    ) -> ApiResult<Self> {
        match (r, n) {
            (Some(r), None) => Ok(Asked::Resource(r)),
            (None, Some(n)) => Ok(Asked::Path(n)),
            _ => Err(invalid(
                kind,
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )),
        }
    }

    fn attributes(&self) -> Attributes<'_> {
        match self {
            Asked::Resource(r) => Attributes {
                verb: r.verb.as_deref().unwrap_or_default(),
                namespace: r.namespace.as_deref().filter(|n| !n.is_empty()),
                target: Target::Resource {
                    group: r.group.as_deref().unwrap_or_default(),
                    resource: r.resource.as_deref().unwrap_or_default(),
                    subresource: r.subresource.as_deref().filter(|s| !s.is_empty()),
                    name: r.name.as_deref().filter(|n| !n.is_empty()),
                },
            },
            Asked::Path(n) => Attributes::path(
                n.verb.as_deref().unwrap_or_default(),
                n.path.as_deref().unwrap_or_default(),
            ),
        }
    }
}

/// A node's request of `a`, as its own authorizer sees requests, if it is one of
/// the API's (a resource rk8s serves, a verb of its REST API).
fn node_request(a: &Attributes<'_>) -> Option<ResourceRequest> {
    let Target::Resource {
        group,
        resource,
        subresource,
        name,
    } = a.target
    else {
        return None;
    };
    let verb = Verb::from_name(a.verb)?;
    Some(ResourceRequest {
        verb,
        kind: rk8s_api::object::kind_by_plural(group, resource)?,
        namespace: a.namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
    })
}

pub(crate) fn user_info(identity: &Identity) -> UserInfo {
    let mut extra = BTreeMap::new();
    if let Identity::ServiceAccount(a) = identity
        && let Some(pod) = &a.pod
    {
        extra.insert(
            "authentication.kubernetes.io/pod-name".to_string(),
            vec![pod.clone()],
        );
    }
    UserInfo {
        username: Some(identity.user()),
        uid: identity.uid(),
        groups: Some(identity.groups()),
        extra: (!extra.is_empty()).then_some(extra),
    }
}

/// A review's answer: 201 with the review, as protobuf when the client prefers it.
fn created(
    kind: ReviewKind,
    obj: &dyn ErasedSerialize,
    protobuf: bool,
) -> ApiResult<Response<Body>> {
    let mut v = obj.to_json()?;
    v["apiVersion"] = format!("{}/v1", kind.group()).into();
    v["kind"] = kind.kind().into();
    if protobuf && let Some(resp) = protobuf_response(StatusCode::CREATED, &v, &[]) {
        return Ok(resp);
    }
    Ok(json_response(StatusCode::CREATED, &v, &[]))
}

/// A review object as JSON (each review kind is a type of its own).
trait ErasedSerialize {
    fn to_json(&self) -> ApiResult<serde_json::Value>;
}

impl<T: Serialize> ErasedSerialize for T {
    fn to_json(&self) -> ApiResult<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| ApiError::internal(e.to_string()))
    }
}

impl ApiServer {
    /// Answers a review of `kind` (in `namespace` for a LocalSubjectAccessReview).
    pub(crate) async fn review(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
        kind: ReviewKind,
        namespace: Option<String>,
    ) -> ApiResult<Response<Body>> {
        // The self reviews are every caller's (kube's `system:basic-user`); the others
        // need `create` on their resource.
        let own = matches!(
            kind,
            ReviewKind::SelfSubjectReview
                | ReviewKind::SelfSubjectAccessReview
                | ReviewKind::SelfSubjectRulesReview
        );
        if !own {
            let r = Attributes {
                verb: "create",
                namespace: namespace.as_deref(),
                target: Target::Resource {
                    group: kind.group(),
                    resource: kind.plural(),
                    subresource: None,
                    name: None,
                },
            };
            if !self.handlers.may(identity, &r)? {
                return Err(r.forbidden(&identity.user()));
            }
        }
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (content_type, accept) = (header(header::CONTENT_TYPE), header(header::ACCEPT));
        let protobuf = content::negotiate(accept.as_deref()) == Encoding::Protobuf;
        let created = |obj: &dyn ErasedSerialize| created(kind, obj, protobuf);
        let body = read_body(req.into_body(), None).await?;
        let body = parse_body(
            content_type.as_deref().unwrap_or(""),
            &body,
            FieldValidation::Ignore,
        )?
        .value;
        match kind {
            ReviewKind::SelfSubjectReview => {
                let mut r: SelfSubjectReview = parse(kind, body)?;
                r.status = Some(SelfSubjectReviewStatus {
                    user_info: Some(user_info(identity)),
                });
                created(&r)
            }
            ReviewKind::TokenReview => {
                let mut r: TokenReview = parse(kind, body)?;
                let token = r.spec.token.clone().unwrap_or_default();
                r.status = Some(self.token_review(&token, r.spec.audiences.as_deref()).await);
                created(&r)
            }
            ReviewKind::SelfSubjectAccessReview => {
                let mut r: SelfSubjectAccessReview = parse(kind, body)?;
                let asked = Asked::of(
                    kind,
                    &r.spec.resource_attributes,
                    &r.spec.non_resource_attributes,
                )?;
                r.status = Some(self.access(identity, &asked.attributes())?);
                created(&r)
            }
            ReviewKind::SubjectAccessReview | ReviewKind::LocalSubjectAccessReview => {
                let mut r: SubjectAccessReview = parse(kind, body)?;
                if let Some(ns) = &namespace {
                    check_namespace(kind, ns, &mut r.metadata, &mut r.spec)?;
                }
                let subject = subject_of(kind, &r.spec)?;
                let asked = Asked::of(
                    kind,
                    &r.spec.resource_attributes,
                    &r.spec.non_resource_attributes,
                )?;
                r.status = Some(self.access(&subject, &asked.attributes())?);
                created(&r)
            }
            ReviewKind::SelfSubjectRulesReview => {
                let mut r: SelfSubjectRulesReview = parse(kind, body)?;
                let ns = r.spec.namespace.clone().unwrap_or_default();
                r.status = Some(self.rules(identity, &ns)?);
                created(&r)
            }
        }
    }

    /// Whether `identity` may do `a`, as an access review's status.
    fn access(
        &self,
        identity: &Identity,
        a: &Attributes<'_>,
    ) -> ApiResult<SubjectAccessReviewStatus> {
        let allowed = |reason: Option<String>| SubjectAccessReviewStatus {
            allowed: true,
            reason,
            ..Default::default()
        };
        if identity.is_superuser() {
            return Ok(allowed(None));
        }
        let status = match identity {
            Identity::User(_) | Identity::ServiceAccount(_) => {
                match self
                    .handlers
                    .rbac_allows(&identity.user(), &identity.groups(), a)?
                {
                    Some(source) => allowed(Some(format!("RBAC: allowed by {source}"))),
                    None => SubjectAccessReviewStatus::default(),
                }
            }
            Identity::Node(_) => match node_request(a) {
                Some(req) if crate::auth::authorize(identity, &req, &Query::default()).is_ok() => {
                    allowed(None)
                }
                _ => SubjectAccessReviewStatus::default(),
            },
            _ => SubjectAccessReviewStatus::default(),
        };
        Ok(status)
    }

    /// What `identity` may do in `namespace` (the cluster's bindings and the
    /// namespace's), as a rules review's status.
    fn rules(&self, identity: &Identity, namespace: &str) -> ApiResult<SubjectRulesReviewStatus> {
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        let ns = (!namespace.is_empty()).then_some(namespace);
        self.handlers
            .visit_rules(&identity.user(), &identity.groups(), ns, &mut |rule| {
                match &rule.non_resource_urls {
                    Some(urls) if !urls.is_empty() => non_resource_rules.push(NonResourceRule {
                        verbs: rule.verbs.clone(),
                        non_resource_urls: Some(urls.clone()),
                    }),
                    _ => resource_rules.push(ResourceRule {
                        verbs: rule.verbs.clone(),
                        api_groups: rule.api_groups.clone(),
                        resources: rule.resources.clone(),
                        resource_names: rule.resource_names.clone(),
                    }),
                }
                false
            })?;
        // A node's rights are its own authorizer's, which lists none.
        let incomplete = matches!(identity, Identity::Node(_));
        Ok(SubjectRulesReviewStatus {
            resource_rules,
            non_resource_rules,
            incomplete,
            evaluation_error: None,
        })
    }

    /// A token's user, as a TokenReview's status: authenticated as a request with it
    /// would be (the API server's own audience).
    async fn token_review(&self, token: &str, audiences: Option<&[String]>) -> TokenReviewStatus {
        let api = crate::service_accounts::API_AUDIENCE.to_string();
        if let Some(wanted) = audiences.filter(|a| !a.is_empty())
            && !wanted.contains(&api)
        {
            return TokenReviewStatus {
                error: Some(format!(
                    "token audiences [\"{api}\"] is invalid for the target audiences {wanted:?}"
                )),
                ..Default::default()
            };
        }
        let header = format!("Bearer {token}");
        match self.authenticator.authenticate_token(Some(&header)).await {
            // Join tokens join, and are nobody's login.
            Ok(Identity::Bootstrap(_) | Identity::MemberBootstrap(_)) | Err(_) => {
                TokenReviewStatus {
                    error: Some("invalid bearer token".to_string()),
                    ..Default::default()
                }
            }
            Ok(identity) => TokenReviewStatus {
                authenticated: Some(true),
                user: Some(user_info(&identity)),
                audiences: Some(vec![api]),
                error: None,
            },
        }
    }
}

fn parse<T: DeserializeOwned>(kind: ReviewKind, body: serde_json::Value) -> ApiResult<T> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the {} does not decode: {e}", kind.kind())))
}

/// A LocalSubjectAccessReview's namespace: its object's and its attributes' must be
/// the path's (an empty one is filled in).
fn check_namespace(
    kind: ReviewKind,
    ns: &str,
    meta: &mut ObjectMeta,
    spec: &mut SubjectAccessReviewSpec,
) -> ApiResult<()> {
    match meta.namespace.as_deref() {
        None | Some("") => meta.namespace = Some(ns.to_string()),
        Some(other) if other != ns => {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object does not match the namespace sent on the request ({other} != {ns})"
            )));
        }
        Some(_) => {}
    }
    if spec.non_resource_attributes.is_some() {
        return Err(invalid(
            kind,
            "spec.nonResourceAttributes",
            "",
            "disallowed on this kind of request",
        ));
    }
    if let Some(r) = &mut spec.resource_attributes {
        match r.namespace.as_deref() {
            None | Some("") => r.namespace = Some(ns.to_string()),
            Some(other) if other != ns => {
                return Err(invalid(
                    kind,
                    "spec.resourceAttributes.namespace",
                    other,
                    "must match metadata.namespace",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The caller a (local) SubjectAccessReview asks about: a node by its user name and
/// group, anyone else as a user (in `system:masters` a superuser).
fn subject_of(kind: ReviewKind, spec: &SubjectAccessReviewSpec) -> ApiResult<Identity> {
    let user = spec.user.clone().unwrap_or_default();
    let groups = spec.groups.clone().unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            kind,
            "spec.user",
            "",
            "at least one of user or group must be specified",
        ));
    }
    let is_node = groups.iter().any(|g| g == "system:nodes");
    if let Some(node) = user.strip_prefix("system:node:").filter(|_| is_node) {
        return Ok(Identity::Node(node.to_string()));
    }
    // Not `User::new`, which adds `system:authenticated`: kube-apiserver takes a
    // review's groups as given.
    Ok(Identity::User(User {
        name: user,
        groups,
        uid: spec.uid.clone(),
    }))
}
