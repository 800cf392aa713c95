//! Bound service-account tokens of a pod's projected volumes, kept as kubelet's token
//! manager keeps them (`pkg/kubelet/token/token_manager.go`): one per distinct
//! (audience, expirationSeconds), requested by the agent, renewed at 80 % of its TTL.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{PodSpec, ServiceAccountTokenProjection};

use super::inputs::{Missing, Read};

/// A projection's `expirationSeconds` when it gives none (the API's default, one
/// hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// A token older than this is renewed whatever its TTL (kubelet's `maxTTL`).
pub const MAX_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The service account a pod runs as when its spec names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What a token is requested for: the pod's projections asking for the same share
/// one token (kubelet's cache key, of which the service account and the bound pod
/// are the same for every projection of a pod).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenKey {
    /// The audience (`""`: the API server's default audiences, requested as none).
    pub audience: String,
    /// The TTL asked for, in seconds.
    pub expiration_seconds: i64,
}

impl TokenKey {
    /// The key of a `serviceAccountToken` projection (its expirationSeconds defaulted).
    pub fn of(source: &ServiceAccountTokenProjection) -> Self {
        Self {
            audience: source.audience.clone().unwrap_or_default(),
            expiration_seconds: source
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        }
    }
}

impl std::fmt::Display for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let audience = if self.audience.is_empty() {
            "the default audience"
        } else {
            &self.audience
        };
        write!(f, "{audience}, {}s", self.expiration_seconds)
    }
}

/// The distinct tokens the projected volumes of `spec` ask for.
pub fn keys(spec: &PodSpec) -> BTreeSet<TokenKey> {
    let volumes = spec.volumes.iter().flatten();
    volumes
        .filter_map(|v| v.projected.as_ref()?.sources.as_ref())
        .flatten()
        .filter_map(|s| s.service_account_token.as_ref())
        .map(TokenKey::of)
        .collect()
}

/// The service account `spec` runs as (`default` when it names none, as the API
/// server's ServiceAccount admission sets it).
pub fn service_account(spec: &PodSpec) -> &str {
    spec.service_account_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
}

/// A token as the API server granted it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountToken {
    /// The token itself (a JWT).
    pub token: String,
    /// When it was issued: its expiry less the TTL granted, on the server's clock
    /// (kubelet's `iat`).
    pub issued: Timestamp,
    /// When it expires (`status.expirationTimestamp`).
    pub expires: Timestamp,
}

impl std::fmt::Debug for ServiceAccountToken {
    // A token is a credential: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountToken")
            .field("token", &"<redacted>")
            .field("issued", &self.issued)
            .field("expires", &self.expires)
            .finish()
    }
}

impl ServiceAccountToken {
    /// Whether a new token is to be requested at `now` (kubelet's `requiresRefresh`,
    /// without its jitter): past 80 % of its TTL, or older than [`MAX_TTL`].
    pub fn needs_refresh(&self, now: Timestamp) -> bool {
        let ttl = self.expires.duration_since(self.issued);
        let age = now.duration_since(self.issued);
        age > MAX_TTL || age > ttl / 5 * 4
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        now >= self.expires
    }
}

/// The token of `previous` to go on with at `now` instead of requesting one: one
/// held that needs no refresh yet.
pub fn reusable(
    previous: Option<&Read<ServiceAccountToken>>,
    now: Timestamp,
) -> Option<&ServiceAccountToken> {
    previous?.as_ref().ok().filter(|t| !t.needs_refresh(now))
}

/// What a pod has when a new token could not be had (`why`, the server's message),
/// as kubelet's token manager decides (`GetServiceAccountToken`): the token it held
/// while that has not expired (a refresh is tried again later), else the failure in
/// kubelet's words, which the volume's FailedMount carries.
pub fn after_failure(
    previous: Option<&Read<ServiceAccountToken>>,
    why: &str,
    now: Timestamp,
) -> Read<ServiceAccountToken> {
    match previous {
        Some(Ok(held)) if !held.expired(now) => Ok(held.clone()),
        Some(Ok(_)) => Err(Missing::Unreadable(format!(
            "token expired and refresh failed: {why}"
        ))),
        _ => Err(Missing::Unreadable(format!("failed to fetch token: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn token(issued: i64, ttl: i64) -> ServiceAccountToken {
        ServiceAccountToken {
            token: "jwt".to_string(),
            issued: at(issued),
            expires: at(issued + ttl),
        }
    }

    #[test]
    fn a_token_is_renewed_past_eighty_percent_of_its_ttl() {
        // The admission's 3607 s: renewed after 2885.6 s.
        let t = token(0, 3607);
        assert!(!t.needs_refresh(at(0)));
        assert!(!t.needs_refresh(at(2885)));
        assert!(t.needs_refresh(at(2886)));
        assert!(!t.expired(at(3606)));
        assert!(t.expired(at(3607)));
        // The shortest TTL the API server grants.
        let short = token(0, 600);
        assert!(!short.needs_refresh(at(480)));
        assert!(short.needs_refresh(at(481)));
    }

    #[test]
    fn a_token_older_than_a_day_is_renewed_whatever_its_ttl() {
        let year = token(0, 365 * 24 * 3600);
        assert!(!year.needs_refresh(at(24 * 3600)));
        assert!(year.needs_refresh(at(24 * 3600 + 1)));
    }

    #[test]
    fn a_held_token_is_reused_until_due_and_kept_after_a_failed_refresh_until_it_expires() {
        let held: Read<ServiceAccountToken> = Ok(token(0, 1000));
        assert_eq!(reusable(Some(&held), at(700)), held.as_ref().ok());
        assert_eq!(reusable(Some(&held), at(801)), None);
        assert_eq!(reusable(None, at(0)), None);
        let failed: Read<ServiceAccountToken> = Err(Missing::Unreadable("x".into()));
        assert_eq!(reusable(Some(&failed), at(0)), None);
        // Refresh failed: the held token goes on while valid.
        assert_eq!(after_failure(Some(&held), "refused", at(900)), held);
        assert_eq!(
            after_failure(Some(&held), "refused", at(1000)),
            Err(Missing::Unreadable(
                "token expired and refresh failed: refused".into()
            ))
        );
        let none = Err(Missing::Unreadable(
            "failed to fetch token: serviceaccounts \"robot\" not found".into(),
        ));
        assert_eq!(
            after_failure(None, "serviceaccounts \"robot\" not found", at(0)),
            none
        );
        assert_eq!(
            after_failure(Some(&failed), "serviceaccounts \"robot\" not found", at(0)),
            none
        );
    }

    #[test]
    fn projections_asking_the_same_share_a_token() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "volumes": [
                {"name": "kube-api-access-abcde", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "vault", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "vault", "path": "a"}},
                    {"serviceAccountToken": {"audience": "vault", "path": "b", "expirationSeconds": 3600}}]}},
                {"name": "cache", "emptyDir": {}}
            ]
        }))
        .unwrap();
        let keys: Vec<String> = keys(&spec).iter().map(ToString::to_string).collect();
        assert_eq!(keys, ["the default audience, 3607s", "vault, 3600s"]);
        assert_eq!(service_account(&spec), "default");
    }
}
