//! What a pod takes from the API — the ConfigMaps and Secrets it names (environment,
//! image pull secrets, volumes: [`rk8s_api::references`]), the volumes its
//! PersistentVolumeClaims are bound to, and the bound service-account tokens of its
//! projected volumes ([`super::tokens`]) — read for the runtime as kubelet reads
//! them: when the pod starts, again every [`REREAD_AFTER`] while a container cannot
//! start for want of them (`CreateContainerConfigError`, a volume's FailedMount) or
//! of its image (`ErrImagePull`, `ImagePullBackOff`: a pull secret created or fixed
//! after the pod), every
//! [`REFRESH`] (`--sync-frequency`) otherwise, so that a container restarted later
//! starts with the values of the last minute, and when a token is due for renewal.
//! The node may read exactly these (the API server's node authorizer).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret,
};
use kube::Api;
use rk8s_runtime::pod::PodInputs;
use rk8s_runtime::pod::inputs::{ClaimVolume, Missing};

use super::tokens;

/// How often they are read again while a container waits for them.
pub const REREAD_AFTER: Duration = Duration::from_secs(10);

/// How often a pod's claims are read again while it waits (for a volume being
/// provisioned for it: seconds, not ten).
pub const CLAIM_REREAD_AFTER: Duration = Duration::from_secs(2);

/// How often they are read again otherwise.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Waiting reasons that more recent ConfigMaps or Secrets may end.
const WAITING_FOR_INPUTS: [&str; 4] = [
    "CreateContainerConfigError",
    "ContainerCreating",
    "ErrImagePull",
    "ImagePullBackOff",
];

/// The names of the pod's ConfigMaps, Secrets and claims.
fn names(pod: &Pod) -> (Vec<String>, Vec<String>, Vec<String>) {
    let Some(spec) = &pod.spec else {
        return Default::default();
    };
    let owned =
        |names: std::collections::BTreeSet<&str>| names.into_iter().map(str::to_string).collect();
    (
        owned(rk8s_api::references::config_maps(spec)),
        owned(rk8s_api::references::secrets(spec)),
        owned(rk8s_api::references::claims(spec)),
    )
}

/// Whether a container of `status` waits for a ConfigMap, a Secret or its image.
fn waiting(status: Option<&PodStatus>) -> bool {
    let Some(status) = status else { return false };
    let containers = status.container_statuses.iter().flatten();
    let inits = status.init_container_statuses.iter().flatten();
    containers.chain(inits).any(|c| {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        waiting
            .and_then(|w| w.reason.as_deref())
            .is_some_and(|r| WAITING_FOR_INPUTS.contains(&r))
    })
}

/// Whether the pod's inputs are to be read now: it names some, and it has not started
/// on this agent, or the last read is older than [`REREAD_AFTER`] while a container
/// waits for them or while `tokens_due` (a token of the pod is due for renewal, or
/// could not be had: [`PodInputs::tokens_due`]), or older than `refresh` ([`REFRESH`]
/// by default).
///
/// A token is renewed at 80 % of its TTL, and the API server grants no less than
/// 600 s: with the default `refresh` a token would be renewed within a minute of
/// falling due anyway, before it expires; `tokens_due` keeps that true with a longer
/// `--sync-frequency`, and renews it on time rather than up to a minute late. A read
/// reuses every token not due, so it asks the API only for the one that is; the
/// [`REREAD_AFTER`] floor keeps a failing renewal from asking every second.
pub fn due(
    pod: &Pod,
    started: bool,
    status: Option<&PodStatus>,
    last: Option<Instant>,
    refresh: Duration,
    tokens_due: bool,
) -> bool {
    // The cheap test first: most syncs of a running pod end here.
    let stale = match last.filter(|_| started) {
        None => true,
        Some(last) => {
            let age = last.elapsed();
            let claims = pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .is_some_and(|v| v.iter().any(|v| v.persistent_volume_claim.is_some()));
            let reread = if claims {
                CLAIM_REREAD_AFTER
            } else {
                REREAD_AFTER
            };
            age >= refresh
                || (waiting(status) && age >= reread.min(refresh))
                || (tokens_due && age >= REREAD_AFTER.min(refresh))
        }
    };
    stale && {
        let (config_maps, secrets, claims) = names(pod);
        let asks_tokens = || {
            pod.spec
                .as_ref()
                .is_some_and(|s| !rk8s_runtime::pod::tokens::keys(s).is_empty())
        };
        !config_maps.is_empty() || !secrets.is_empty() || !claims.is_empty() || asks_tokens()
    }
}

/// Reads `name` of `api`: the object, or why there is none (kubelet's wording for a
/// missing one: `configmap "x" not found`).
async fn read<K>(api: &Api<K>, what: &str, name: &str) -> Result<K, Missing>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(object) => Ok(object),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Err(Missing::NotFound(format!("{what} \"{name}\" not found")))
        }
        Err(e) => Err(Missing::Unreadable(format!("{what} \"{name}\": {e}"))),
    }
}

/// The pod's ConfigMaps, Secrets and claims as they are now, and its tokens: those of
/// `previous` (what the pod had, [`rk8s_runtime::pod::PodRuntime::inputs`]) while
/// they need no renewal, new ones otherwise. Image pull secrets that cannot be read
/// are said in the log (kubelet's `FailedToRetrieveImagePullSecret`): the pull goes
/// on without them.
pub async fn read_all(client: &kube::Client, pod: &Pod, previous: &PodInputs) -> PodInputs {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let config_map_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (config_maps, secrets, claims) = names(pod);
    let mut inputs = PodInputs::default();
    for name in claims {
        let found = claim_volume(client, namespace, &name).await;
        inputs.claims.insert(name, found);
    }
    for name in config_maps {
        let read = read(&config_map_api, "configmap", &name).await;
        inputs.config_maps.insert(name, read);
    }
    for name in secrets {
        let read = read(&secret_api, "secret", &name).await;
        inputs.secrets.insert(name, read);
    }
    inputs.tokens = tokens::read(client, pod, previous, jiff::Timestamp::now()).await;
    let pull = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    let unusable: Vec<String> = pull
        .into_iter()
        .flatten()
        .filter_map(|r| match inputs.secrets.get(&r.name)? {
            Err(e) => Some(e.to_string()),
            Ok(secret) => rk8s_runtime::image::pull_secrets::credentials(secret)
                .err()
                .map(|e| e.to_string()),
        })
        .collect();
    if !unusable.is_empty() {
        tracing::warn!(
            pod = %format!("{namespace}/{}", pod.metadata.name.as_deref().unwrap_or_default()),
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            unusable.join("; ")
        );
    }
    inputs
}

/// The directory of the volume the claim `name` is bound to: read through the claim
/// (it names the volume) and the volume (hostPath or local).
async fn claim_volume(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ClaimVolume, Missing> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = read(&claims, "persistentvolumeclaim", name).await?;
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
    let Some(volume) = volume.filter(|v| bound && !v.is_empty()) else {
        return Err(Missing::Unreadable(format!(
            "persistentvolumeclaim \"{name}\" is not bound yet"
        )));
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = read(&volumes, "persistentvolume", &volume).await?;
    let spec = pv.spec.unwrap_or_default();
    match (spec.host_path, spec.local) {
        (Some(h), _) => Ok(ClaimVolume {
            create: h.type_.as_deref() == Some("DirectoryOrCreate"),
            path: h.path.into(),
        }),
        (None, Some(l)) => Ok(ClaimVolume {
            path: l.path.into(),
            create: false,
        }),
        (None, None) => Err(Missing::Unreadable(format!(
            "persistentvolume \"{volume}\" of claim \"{name}\" is neither hostPath nor local: rk8s nodes mount only those"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "namespace": "d"}, "spec": spec}),
        )
        .unwrap()
    }

    fn waiting_with(reason: &str) -> PodStatus {
        serde_json::from_value(serde_json::json!({"containerStatuses": [{
            "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason}}}]}))
        .unwrap()
    }

    #[test]
    fn inputs_are_read_at_start_again_while_waited_for_and_each_minute() {
        let with = pod(
            serde_json::json!({"imagePullSecrets": [{"name": "regcred"}],
            "containers": [{"name": "c", "image": "x",
                "envFrom": [{"configMapRef": {"name": "settings"}}]}]}),
        );
        let without = pod(serde_json::json!({"containers": [{"name": "c", "image": "x"}]}));
        assert_eq!(
            names(&with),
            (
                vec!["settings".to_string()],
                vec!["regcred".to_string()],
                vec![]
            )
        );
        assert!(due(&with, false, None, None, REFRESH, false));
        assert!(!due(&without, false, None, None, REFRESH, false));
        // A restarted agent re-adopting a running pod reads them once.
        assert!(due(&with, true, None, None, REFRESH, false));
        let just_now = Some(Instant::now());
        let a_while_ago = Instant::now().checked_sub(REREAD_AFTER);
        let long_ago = Instant::now().checked_sub(REFRESH);
        for reason in WAITING_FOR_INPUTS {
            assert!(!due(
                &with,
                true,
                Some(&waiting_with(reason)),
                just_now,
                REFRESH,
                false
            ));
            assert!(due(
                &with,
                true,
                Some(&waiting_with(reason)),
                a_while_ago,
                REFRESH,
                false
            ));
        }
        let crashing = waiting_with("CrashLoopBackOff");
        assert!(!due(
            &with,
            true,
            Some(&crashing),
            a_while_ago,
            REFRESH,
            false
        ));
        assert!(due(&with, true, Some(&crashing), long_ago, REFRESH, false));
    }

    #[test]
    fn a_pod_whose_token_is_due_is_read_again_but_not_every_second() {
        let with_token = pod(
            serde_json::json!({"containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]}),
        );
        // A token is the only thing it asks for: read at start.
        assert!(due(&with_token, false, None, None, REFRESH, false));
        let just_now = Some(Instant::now());
        let a_while_ago = Instant::now().checked_sub(REREAD_AFTER);
        assert!(!due(&with_token, true, None, a_while_ago, REFRESH, false));
        assert!(due(&with_token, true, None, a_while_ago, REFRESH, true));
        assert!(!due(&with_token, true, None, just_now, REFRESH, true));
        // With a long --sync-frequency too.
        let hour = Duration::from_secs(3600);
        assert!(due(&with_token, true, None, a_while_ago, hour, true));
    }

    #[test]
    fn a_token_past_eighty_percent_of_its_ttl_makes_the_inputs_due() {
        use rk8s_runtime::pod::tokens::{ServiceAccountToken, TokenKey};
        let issued = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| issued + jiff::SignedDuration::from_secs(s);
        let key = TokenKey {
            audience: String::new(),
            expiration_seconds: 600,
        };
        let token = ServiceAccountToken {
            token: "jwt".to_string(),
            issued,
            expires: at(600),
        };
        let inputs = PodInputs {
            tokens: [(key.clone(), Ok(token))].into(),
            ..Default::default()
        };
        assert!(!inputs.tokens_due(at(480)));
        assert!(inputs.tokens_due(at(481)));
        let failed = PodInputs {
            tokens: [(
                key,
                Err(Missing::Unreadable("failed to fetch token: x".into())),
            )]
            .into(),
            ..Default::default()
        };
        assert!(failed.tokens_due(at(0)));
        assert!(!PodInputs::default().tokens_due(at(0)));
    }
}
