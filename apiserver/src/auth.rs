//! Who is asking, and what they may do.
//!
//! Every request carries a bearer token. The store keeps, per token, only its SHA-256
//! (under `/rk8s/tokens/<hex>`, outside the `/registry` objects the API serves) and
//! what it stands for: the admin, one node, or a bootstrap token that may only
//! register a node. A token shaped like a JWT is a ServiceAccount's instead, checked
//! against the cluster's signing key and the objects it is bound to
//! ([`crate::service_accounts`]) and authorized by RBAC ([`crate::rbac`]); a node may
//! ask for the tokens of its pods' accounts. Authorization of nodes follows Kubernetes' Node authorizer (with
//! `AuthorizeNodeWithSelectors`, on by default since 1.32): a node reads what it
//! needs — the pods bound to it (lists and watches only with the
//! `spec.nodeName=NODE` field selector), the Secrets and ConfigMaps those pods use
//! (one at a time), Nodes, Services, Endpoints and EndpointSlices for the cluster
//! network,
//! Namespaces, Events and node Leases — and writes only its own
//! Node and Lease, the status of pods bound to it, and events. What it may change of
//! its own Node is [`crate::node_restriction`]'s.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError};

use rk8s_api::AnyObject;
use rk8s_api::object::kind_named;

use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::Store;
use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use crate::request::{Query, ResourceRequest, Verb};
use crate::service_accounts::{Account, SigningKey, looks_like_jwt, user_name};
use crate::status::{ApiError, ApiResult};
use crate::users::{AUTHENTICATED, CONTROL_PLANE, MASTERS, User};

/// Where token records live in the store.
pub const TOKENS_PREFIX: &str = "/rk8s/tokens/";

/// The namespace of node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What a token stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Who the token authenticates.
    pub identity: Identity,
    /// When the token stops working (never if unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<jiff::Timestamp>,
    /// For a bootstrap token that allows no more joins: who used it last (`node
    /// NAME` or `member ADDRESS`). It no longer authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
    /// For a bootstrap token: how many joins it allows (as many as come before it
    /// expires if unset, as kubeadm's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_limit: Option<u32>,
    /// For a bootstrap token: how many joins used it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uses: u32,
}

impl TokenRecord {
    /// The record of an admin token that never expires.
    pub fn admin() -> Self {
        TokenRecord {
            identity: Identity::Admin,
            expires: None,
            used_by: None,
            usage_limit: None,
            uses: 0,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The 401 for a bootstrap token that was used already (`by`: node NAME, member
/// ADDRESS).
pub fn used_token(id: &str, by: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::UNAUTHORIZED,
        "Unauthorized",
        format!(
            "bootstrap token {id} was already used (by {by}): create a new one with rk8s-server token create"
        ),
    )
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "camelCase")]
pub enum Identity {
    /// May do everything.
    Admin,
    /// A node agent, by node name.
    Node(String),
    /// A bootstrap token, by token id: may only register a node.
    Bootstrap(String),
    /// A member bootstrap token, by token id: may only get a store member's
    /// certificate (`rk8s-server --join`).
    MemberBootstrap(String),
    /// A ServiceAccount, by a token of [`crate::service_accounts`]; authorized by
    /// [`crate::rbac`].
    ServiceAccount(Account),
    /// A user: a client certificate's, or the one a request impersonates
    /// ([`crate::users`]); authorized by [`crate::rbac`] unless in `system:masters`.
    User(User),
}

impl Identity {
    /// The user name Kubernetes would give this caller.
    pub fn user(&self) -> String {
        match self {
            Identity::Admin => "admin".to_string(),
            Identity::Node(n) => format!("system:node:{n}"),
            Identity::Bootstrap(id) | Identity::MemberBootstrap(id) => {
                format!("system:bootstrap:{id}")
            }
            Identity::ServiceAccount(a) => user_name(&a.namespace, &a.name),
            Identity::User(u) => u.name.clone(),
        }
    }

    /// The groups Kubernetes would put this caller in.
    pub fn groups(&self) -> Vec<String> {
        let authenticated = AUTHENTICATED.to_string();
        match self {
            Identity::Admin => vec![MASTERS.to_string(), authenticated],
            Identity::Node(_) => vec!["system:nodes".to_string(), authenticated],
            Identity::Bootstrap(_) | Identity::MemberBootstrap(_) => {
                vec!["system:bootstrappers".to_string(), authenticated]
            }
            Identity::ServiceAccount(a) => a.groups(),
            Identity::User(u) => u.groups.clone(),
        }
    }

    /// Whether the caller may do everything (the admin, a `system:masters` user):
    /// no authorizer is asked, and in-flight limits do not apply.
    pub fn is_superuser(&self) -> bool {
        match self {
            Identity::Admin => true,
            Identity::User(u) => u.is_master(),
            _ => false,
        }
    }

    /// Whether the caller is exempt from the in-flight limits: a superuser, or one of
    /// this process' own components ([`CONTROL_PLANE`]).
    pub fn is_exempt_from_limits(&self) -> bool {
        match self {
            Identity::User(u) => u.is_master() || u.groups.iter().any(|g| g == CONTROL_PLANE),
            other => other.is_superuser(),
        }
    }

    /// The uid of the caller, when it has one (a ServiceAccount's, an impersonated
    /// one).
    pub fn uid(&self) -> Option<String> {
        match self {
            Identity::ServiceAccount(a) => Some(a.uid.clone()),
            Identity::User(u) => u.uid.clone(),
            _ => None,
        }
    }
}

/// A new random secret: 32 bytes as 64 hex digits.
pub fn new_secret() -> ApiResult<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system random number generator failed"))?;
    Ok(rk8s_http::tls::hex(&bytes))
}

/// A new bootstrap token in Kubernetes' format, `[a-z0-9]{6}.[a-z0-9]{16}`: the id
/// (public, shown in logs) and the secret.
pub fn new_bootstrap_token() -> ApiResult<(String, String)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let random = new_secret()?;
    let chars: Vec<char> = random
        .as_bytes()
        .chunks(2)
        .map(|c| {
            let byte = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
            ALPHABET[usize::from(byte) % ALPHABET.len()] as char
        })
        .collect();
    let id: String = chars[..6].iter().collect();
    let secret: String = chars[6..22].iter().collect();
    Ok((id, secret))
}

/// The store key of a token's record.
pub fn token_key(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    format!("{TOKENS_PREFIX}{}", rk8s_http::tls::hex(digest.as_ref()))
}

/// Records a token in the store.
pub async fn store_token(store: &Store, token: &str, record: &TokenRecord) -> ApiResult<()> {
    let value = serde_json::to_vec(record).map_err(|e| ApiError::internal(e.to_string()))?;
    store
        .put(token_key(token).as_bytes(), &value, 0, None)
        .await
        .map_err(|e| ApiError::unavailable(format!("could not record a token: {e}")))?;
    Ok(())
}

/// How long a successful authentication is remembered (kube-apiserver caches token
/// reviews for 10 s too): a revoked token may keep working that long. Bootstrap
/// tokens are never remembered: they work once.
pub const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Authenticates bearer tokens against the store, remembering successes for
/// [`AUTH_CACHE_TTL`] so most requests skip the store read.
pub struct Authenticator {
    registry: Registry,
    /// The key service-account tokens are checked with (shared with the
    /// TokenRequest handler; set once the cluster's secrets are read).
    service_account_key: Arc<OnceLock<SigningKey>>,
    cache: std::sync::Mutex<HashMap<String, (TokenRecord, std::time::Instant)>>,
    /// Service-account tokens checked lately, with the expiry they carry.
    accounts: std::sync::Mutex<HashMap<String, (Account, i64, std::time::Instant)>>,
    /// The users of the client certificates seen lately.
    certificates: crate::users::CertificateUsers,
    /// Credentials of this process' components, each a user of its own (the
    /// scheduler, the shared informers, each controller); never stored, gone with
    /// the process.
    components: std::sync::Mutex<Components>,
}

/// The credentials of this process' components.
#[derive(Default)]
struct Components {
    /// By credential (hashed): the user it is.
    users: HashMap<String, User>,
    /// By user name: its credential, made once.
    tokens: HashMap<String, String>,
}

impl Authenticator {
    /// Tokens from `registry`'s store; service-account tokens checked with the key
    /// `service_account_key` will hold.
    pub fn new(registry: Registry, service_account_key: Arc<OnceLock<SigningKey>>) -> Self {
        Authenticator {
            registry,
            service_account_key,
            cache: std::sync::Mutex::new(HashMap::new()),
            accounts: std::sync::Mutex::new(HashMap::new()),
            certificates: crate::users::CertificateUsers::default(),
            components: std::sync::Mutex::default(),
        }
    }

    /// The credential of the component of this process that runs as `user` (the
    /// same one each time it is asked for): a user authorized by RBAC like any
    /// ([`crate::rbac::components`]), in the group [`CONTROL_PLANE`] and, for a
    /// controller's ServiceAccount name, in the ServiceAccount groups.
    pub fn component_token(&self, user: &str) -> ApiResult<String> {
        let mut components = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(token) = components.tokens.get(user) {
            return Ok(token.clone());
        }
        let mut groups = vec![CONTROL_PLANE.to_string()];
        if rk8s_api::identities::controller_of(user).is_some() {
            let ns = rk8s_api::identities::CONTROLLER_NAMESPACE;
            groups.extend([
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ]);
        }
        let token = new_secret()?;
        components
            .users
            .insert(token_key(&token), User::new(user.to_string(), groups));
        components.tokens.insert(user.to_string(), token.clone());
        Ok(token)
    }

    /// The caller behind a request's client certificate (verified by the TLS
    /// handshake against the client CA), else its `Authorization` header value, or
    /// 401: kube-apiserver asks its x509 authenticator before the token ones.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        certificate: Option<&[u8]>,
    ) -> ApiResult<Identity> {
        if let Some(der) = certificate {
            return self.certificates.user(der).map(Identity::User);
        }
        self.authenticate_token(header).await
    }

    /// The caller behind an `Authorization` header value, or 401.
    pub async fn authenticate_token(&self, header: Option<&str>) -> ApiResult<Identity> {
        let token = bearer_token(header).ok_or_else(ApiError::unauthorized)?;
        if looks_like_jwt(token) {
            return self
                .service_account(token)
                .await
                .map(Identity::ServiceAccount);
        }
        let key = token_key(token);
        let component = self
            .components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .users
            .get(&key)
            .cloned();
        if let Some(user) = component {
            return Ok(Identity::User(user));
        }
        let cached = {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache
                .get(&key)
                .filter(|(_, at)| at.elapsed() < AUTH_CACHE_TTL)
                .map(|(r, _)| r.clone())
        };
        let record = match cached {
            Some(r) => r,
            None => {
                let r = self.lookup(&key).await?;
                // A bootstrap token is used once: remembering it would let it work
                // again after its use, until the entry expired.
                if !matches!(
                    r.identity,
                    Identity::Bootstrap(_) | Identity::MemberBootstrap(_)
                ) {
                    let mut cache = self
                        .cache
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    cache.retain(|_, (_, at)| at.elapsed() < AUTH_CACHE_TTL);
                    cache.insert(key, (r.clone(), std::time::Instant::now()));
                }
                r
            }
        };
        if let Some(expired) = record.expires.filter(|e| *e <= jiff::Timestamp::now()) {
            return Err(ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "Unauthorized",
                format!("the token expired at {expired}"),
            ));
        }
        if let (Identity::Bootstrap(id) | Identity::MemberBootstrap(id), Some(by)) =
            (&record.identity, &record.used_by)
        {
            return Err(used_token(id, by));
        }
        Ok(record.identity)
    }

    /// The account of a service-account token: signed by the cluster's key, within
    /// its lifetime, its account and bound object still those it names. A success is
    /// remembered for [`AUTH_CACHE_TTL`] (never past the token's expiry).
    async fn service_account(&self, token: &str) -> ApiResult<Account> {
        let refused = |why: String| {
            ApiError::new(
                http::StatusCode::UNAUTHORIZED,
                "Unauthorized",
                format!("Unauthorized: {why}"),
            )
        };
        let digest = token_key(token);
        let now = jiff::Timestamp::now().as_second();
        {
            let cache = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((account, exp, at)) = cache.get(&digest)
                && at.elapsed() < AUTH_CACHE_TTL
                && *exp > now
            {
                return Ok(account.clone());
            }
        }
        let key = self
            .service_account_key
            .get()
            .ok_or_else(|| refused("no service-account key on this API server yet".into()))?;
        let claims = key.verify(token).map_err(refused)?;
        let k = &claims.kubernetes;
        let ns = Some(k.namespace.as_str());
        let uid = |o: Option<AnyObject>| o.map(|o| o.metadata().uid.clone().unwrap_or_default());
        let account_uid = uid(self
            .find("ServiceAccount", ns, &k.serviceaccount.name)
            .await?);
        let pod = match &k.pod {
            Some(p) => self.find("Pod", ns, &p.name).await?,
            None => None,
        };
        let pod = pod.as_ref().map(|p| {
            let m = p.metadata();
            (
                m.uid.as_deref().unwrap_or_default(),
                m.deletion_timestamp.as_ref().map(|t| t.0.as_second()),
            )
        });
        let secret_uid = match &k.secret {
            Some(s) => uid(self.find("Secret", ns, &s.name).await?),
            None => None,
        };
        let node_uid = match (&k.pod, &k.node) {
            (None, Some(n)) => uid(self.find("Node", None, &n.name).await?),
            _ => None,
        };
        crate::service_accounts::still_bound(
            &claims,
            account_uid.as_deref(),
            pod,
            secret_uid.as_deref(),
            node_uid.as_deref(),
            now,
        )
        .map_err(refused)?;
        let account = Account {
            namespace: k.namespace.clone(),
            name: k.serviceaccount.name.clone(),
            uid: k.serviceaccount.uid.clone(),
            pod: k.pod.as_ref().map(|p| p.name.clone()),
        };
        let mut cache = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|_, (_, _, at)| at.elapsed() < AUTH_CACHE_TTL);
        cache.insert(
            digest,
            (account.clone(), claims.exp, std::time::Instant::now()),
        );
        Ok(account)
    }

    async fn find(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<AnyObject>> {
        match kind_named(kind) {
            Some(kind) => self.registry.find_locally(&kind, namespace, name).await,
            None => Ok(None),
        }
    }

    async fn lookup(&self, key: &str) -> ApiResult<TokenRecord> {
        let range = RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        };
        // A local read: tokens change rarely, and a follower that is a moment behind
        // only delays a new token by that moment.
        let found = self
            .registry
            .store()
            .range(range, false)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let kv = found.kvs.first().ok_or_else(ApiError::unauthorized)?;
        serde_json::from_slice(&kv.value).map_err(|_| ApiError::unauthorized())
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value (the scheme is
/// case-insensitive, RFC 7235), if it has one.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What an allowed request may touch; the handler checks the object-dependent parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anything the request addresses.
    All,
    /// Only an object named after this node (its Node or its Lease), also when the
    /// name comes from the body of a create.
    OwnName(String),
    /// Only objects bound to this node: pods whose `spec.nodeName` is it, local
    /// PersistentVolumes whose node affinity names it (their directory is there).
    BoundTo(String),
    /// Only a Secret, ConfigMap or PersistentVolumeClaim that a pod bound to this
    /// node uses
    /// ([`rk8s_api::references`]), or a Secret a served Ingress names for TLS; the
    /// handler looks at the pods and Ingresses before it reads.
    UsedOnNode(String),
    /// Only a `kubernetes.io/tls` Secret: the node reads it because a served Ingress
    /// names it (no pod of the node uses it); the handler checks the type after it
    /// reads.
    IngressTls(String),
}

/// Why a node may not read a Secret or ConfigMap, as kube-apiserver's Node
/// authorizer words it.
pub fn no_relationship(identity: &Identity, req: &ResourceRequest, node: &str) -> ApiError {
    let why = format!("no relationship found between node '{node}' and this object");
    denied_because(identity, req, Some(&why))
}

/// Kubernetes' 403 for `identity` making `req`.
pub(crate) fn denied(identity: &Identity, req: &ResourceRequest) -> ApiError {
    denied_because(identity, req, None)
}

/// [`denied`], saying `why`.
pub(crate) fn denied_because(
    identity: &Identity,
    req: &ResourceRequest,
    why: Option<&str>,
) -> ApiError {
    let group = req.kind.group;
    let mut message = format!(
        "{} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{group}\"",
        match &req.name {
            Some(n) => crate::status::qualified(&req.kind, n),
            None => req.resource(),
        },
        identity.user(),
        req.verb.as_str(),
        req.resource(),
    );
    // A Namespace is inside itself, as kube's RequestInfo has it.
    let namespace = match (req.kind.plural, &req.name) {
        ("namespaces", Some(name)) => Some(name),
        _ => req.namespace.as_ref(),
    };
    match namespace {
        Some(ns) => message.push_str(&format!(" in the namespace \"{ns}\"")),
        None => message.push_str(" at the cluster scope"),
    }
    if let Some(why) = why {
        message.push_str(": ");
        message.push_str(why);
    }
    ApiError::forbidden(message)
}

/// Whether `q`'s field selector keeps a list to pods bound to `node`.
fn selects_node(q: &Query, node: &str) -> bool {
    let Some(selector) = q.get("fieldSelector") else {
        return false;
    };
    let Ok(parsed) = selector.parse::<rk8s_api::selector::FieldSelector>() else {
        return false;
    };
    parsed.0.iter().any(|r| {
        r.field == "spec.nodeName" && r.op == rk8s_api::selector::FieldOp::Equal && r.value == node
    })
}

/// Decides whether `identity` may make `req` (with the query `q`: a node's list of
/// pods must select its own).
pub fn authorize(identity: &Identity, req: &ResourceRequest, q: &Query) -> ApiResult<Access> {
    let node = match identity {
        Identity::Admin => return Ok(Access::All),
        Identity::Bootstrap(_)
        | Identity::MemberBootstrap(_)
        | Identity::ServiceAccount(_)
        | Identity::User(_) => {
            return Err(denied(identity, req));
        }
        Identity::Node(n) => n,
    };
    // Logs, exec, attach and port forwarding reach into containers: the admin's alone.
    if req
        .subresource
        .as_deref()
        .is_some_and(|s| crate::request::NODE_SUBRESOURCES.contains(&s))
    {
        return Err(denied(identity, req));
    }
    if !req.verb.is_write() {
        let in_node_leases = req.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE);
        return match (req.kind.plural, req.subresource.as_deref()) {
            ("pods", None | Some("status")) if req.verb == Verb::Get => {
                Ok(Access::BoundTo(node.clone()))
            }
            ("pods", None) if selects_node(q, node) => Ok(Access::All),
            ("pods", None) => Err(denied_because(
                identity,
                req,
                Some("can only list/watch pods with spec.nodeName field selector"),
            )),
            ("secrets" | "configmaps" | "persistentvolumeclaims", None)
                if req.verb == Verb::Get =>
            {
                Ok(Access::UsedOnNode(node.clone()))
            }
            ("persistentvolumes", None) if req.verb == Verb::Get => {
                Ok(Access::BoundTo(node.clone()))
            }
            ("nodes" | "services" | "endpoints" | "namespaces" | "events", _) => Ok(Access::All),
            // Its cluster network's Services' endpoints, as kube-proxy reads them.
            ("endpointslices", _) if req.kind.group == "discovery.k8s.io" => Ok(Access::All),
            // Every node runs the built-in Ingress proxy: it reads what an ingress
            // controller reads (docs/security.md).
            ("ingresses" | "ingressclasses", None) if req.kind.group == "networking.k8s.io" => {
                Ok(Access::All)
            }
            ("leases", None) if in_node_leases => Ok(Access::All),
            // Every node enforces NetworkPolicy (docs/network.md); the pods they
            // select and allow it reads as PodPeers (`routes::pod_peers`).
            ("networkpolicies", None) if req.kind.group == "networking.k8s.io" => Ok(Access::All),
            _ => Err(denied(identity, req)),
        };
    }
    let own = || match &req.name {
        Some(name) if name != node => Err(denied(identity, req)),
        _ => Ok(Access::OwnName(node.clone())),
    };
    let verb = req.verb;
    let single = matches!(verb, Verb::Create | Verb::Update | Verb::Patch | Verb::Get);
    match (req.kind.plural, req.subresource.as_deref()) {
        ("nodes", None | Some("status")) if single => own(),
        ("leases", None)
            if (single || verb == Verb::Delete)
                && req.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE) =>
        {
            own()
        }
        ("pods", Some("status")) if matches!(verb, Verb::Update | Verb::Patch) => {
            Ok(Access::BoundTo(node.clone()))
        }
        ("pods", None) if verb == Verb::Delete => Ok(Access::BoundTo(node.clone())),
        ("events", None) if matches!(verb, Verb::Create | Verb::Update | Verb::Patch) => {
            Ok(Access::All)
        }
        // Tokens for the accounts of its pods, bound to them (checked by the
        // TokenRequest handler, as kube-apiserver's NodeRestriction does).
        ("serviceaccounts", Some("token")) if verb == Verb::Create => {
            Ok(Access::UsedOnNode(node.clone()))
        }
        _ => Err(denied(identity, req)),
    }
}

/// Checks an object-dependent [`Access`] against the object's name and, for pods, the
/// node it is bound to.
pub fn check_access(
    access: &Access,
    identity: &Identity,
    req: &ResourceRequest,
    name: &str,
    node_name: Option<&str>,
) -> ApiResult<()> {
    let ok = match access {
        Access::All => true,
        Access::OwnName(n) => n == name,
        Access::BoundTo(n) => node_name == Some(n.as_str()),
        // Decided before the read ([`crate::handlers::Handlers::get`]), not here.
        Access::UsedOnNode(_) | Access::IngressTls(_) => false,
    };
    if ok {
        Ok(())
    } else {
        let mut named = req.clone();
        named.name = Some(name.to_string());
        Err(denied(identity, &named))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn req(method: Method, path: &str) -> ResourceRequest {
        crate::request::resource_request(&method, path)
    }

    #[test]
    fn superusers_and_the_control_plane_are_exempt_from_in_flight_limits() {
        let user = |groups: &[&str]| {
            Identity::User(User::new(
                "u".into(),
                groups.iter().map(|g| g.to_string()).collect(),
            ))
        };
        assert!(Identity::Admin.is_exempt_from_limits());
        assert!(user(&[MASTERS]).is_exempt_from_limits());
        assert!(user(&[CONTROL_PLANE]).is_exempt_from_limits());
        assert!(!user(&[CONTROL_PLANE]).is_superuser());
        assert!(!user(&["devs"]).is_exempt_from_limits());
        assert!(!Identity::Node("n".into()).is_exempt_from_limits());
    }

    #[test]
    fn nodes_write_only_their_own_objects() {
        let n1 = Identity::Node("n1".into());
        let none = Query::default();
        let ok = |m, p| authorize(&n1, &req(m, p), &none);
        assert!(ok(Method::PUT, "/api/v1/nodes/n1/status").is_ok());
        assert!(ok(Method::PUT, "/api/v1/nodes/n2/status").is_err());
        assert_eq!(
            ok(Method::POST, "/api/v1/nodes").unwrap(),
            Access::OwnName("n1".into())
        );
        assert!(ok(Method::DELETE, "/api/v1/nodes/n1").is_err());
        assert!(
            ok(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
            )
            .is_ok()
        );
        assert!(
            ok(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/default/leases/n1"
            )
            .is_err()
        );
        assert_eq!(
            ok(Method::PATCH, "/api/v1/namespaces/d/pods/web/status").unwrap(),
            Access::BoundTo("n1".into())
        );
        assert!(ok(Method::PUT, "/api/v1/namespaces/d/pods/web").is_err());
        assert!(ok(Method::POST, "/api/v1/namespaces/d/pods").is_err());
        assert!(ok(Method::POST, "/api/v1/namespaces/d/events").is_ok());
        assert!(
            ok(
                Method::POST,
                "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices"
            )
            .is_err()
        );
        let e = ok(Method::DELETE, "/apis/apps/v1/namespaces/d/deployments/web").unwrap_err();
        assert_eq!(e.code, http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:node:n1\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"d\""
        );
        let pods = req(Method::PATCH, "/api/v1/namespaces/d/pods/web/status");
        let access = Access::BoundTo("n1".into());
        assert!(check_access(&access, &n1, &pods, "web", Some("n1")).is_ok());
        assert!(check_access(&access, &n1, &pods, "web", Some("n2")).is_err());
        assert!(check_access(&access, &n1, &pods, "web", None).is_err());
    }

    #[test]
    fn bootstrap_tokens_reach_no_resources() {
        let b = Identity::Bootstrap("abcdef".into());
        let none = Query::default();
        assert!(authorize(&b, &req(Method::GET, "/api/v1/pods"), &none).is_err());
        assert_eq!(
            authorize(
                &Identity::Admin,
                &req(Method::DELETE, "/api/v1/nodes/x"),
                &none
            )
            .unwrap(),
            Access::All
        );
    }

    #[test]
    fn nodes_read_their_own_pods_and_what_the_cluster_network_needs() {
        let n1 = Identity::Node("n1".into());
        let read = |path: &str, query: &str| {
            authorize(&n1, &req(Method::GET, path), &Query::parse(Some(query)))
        };
        assert_eq!(
            read("/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1").unwrap(),
            Access::All
        );
        assert_eq!(
            read(
                "/api/v1/namespaces/d/pods",
                "fieldSelector=status.phase%3DRunning,spec.nodeName%3D%3Dn1"
            )
            .unwrap(),
            Access::All
        );
        for query in [
            "",
            "fieldSelector=spec.nodeName%3Dn2",
            "fieldSelector=spec.nodeName!%3Dn1",
            "labelSelector=spec.nodeName%3Dn1",
        ] {
            let e = read("/api/v1/pods", query).unwrap_err();
            assert_eq!(
                e.message,
                "pods is forbidden: User \"system:node:n1\" cannot list resource \"pods\" in API group \"\" at the cluster scope: can only list/watch pods with spec.nodeName field selector",
                "{query}"
            );
        }
        assert_eq!(
            read("/api/v1/namespaces/d/pods/web", "").unwrap(),
            Access::BoundTo("n1".into())
        );
        for path in [
            "/api/v1/nodes",
            "/api/v1/nodes/n2",
            "/api/v1/services",
            "/api/v1/endpoints",
            "/apis/discovery.k8s.io/v1/endpointslices",
            "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices/web-abc",
            "/api/v1/namespaces",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            "/apis/networking.k8s.io/v1/networkpolicies",
            "/apis/networking.k8s.io/v1/namespaces/d/networkpolicies/deny",
        ] {
            assert_eq!(read(path, "").unwrap(), Access::All, "{path}");
        }
        for path in [
            "/api/v1/namespaces/d/secrets/pull",
            "/api/v1/namespaces/d/configmaps/settings",
            "/api/v1/namespaces/d/persistentvolumeclaims/data-web-0",
        ] {
            assert_eq!(
                read(path, "").unwrap(),
                Access::UsedOnNode("n1".into()),
                "{path}"
            );
        }
        assert_eq!(
            read("/api/v1/persistentvolumes/pvc-1", "").unwrap(),
            Access::BoundTo("n1".into())
        );
        for path in [
            "/api/v1/secrets",
            "/api/v1/namespaces/d/secrets",
            "/api/v1/namespaces/d/configmaps",
            "/api/v1/persistentvolumes",
            "/api/v1/namespaces/d/persistentvolumeclaims",
            "/apis/apps/v1/deployments",
            "/apis/apps/v1/namespaces/d/replicasets/r",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        ] {
            assert_eq!(
                read(path, "").unwrap_err().code,
                http::StatusCode::FORBIDDEN
            );
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc ", " bEaReR abc"] {
            assert_eq!(bearer_token(Some(header)), Some("abc"), "{header}");
        }
        for header in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""] {
            assert_eq!(bearer_token(Some(header)), None, "{header}");
        }
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn token_records_round_trip() {
        let r = TokenRecord {
            identity: Identity::Node("n1".into()),
            expires: None,
            used_by: None,
            usage_limit: None,
            uses: 0,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"identity":{"kind":"node","name":"n1"}}"#);
        assert_eq!(serde_json::from_str::<TokenRecord>(&json).unwrap(), r);
        assert_ne!(token_key("a"), token_key("b"));
        assert_eq!(new_secret().unwrap().len(), 64);
        let (id, secret) = new_bootstrap_token().unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        assert!(
            id.chars()
                .chain(secret.chars())
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
