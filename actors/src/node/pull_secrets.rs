//! A pod's image pull secrets, read for the runtime as kubelet reads them: when the
//! pod starts, and again while one of its images cannot be pulled (a Secret created
//! or fixed after the pod is picked up), at most every [`REREAD_AFTER`]. The node may
//! read exactly these Secrets (the API server's node authorizer).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret};
use kube::Api;
use rk8s_runtime::image::pull_secrets::{self, PullCredential};

/// How often the Secrets are read again while an image pull fails.
pub const REREAD_AFTER: Duration = Duration::from_secs(10);

/// The names in the pod's `imagePullSecrets`.
fn names(pod: &Pod) -> Vec<&str> {
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    refs.into_iter()
        .flatten()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether a container of `status` waits for its image.
fn pull_failing(status: Option<&PodStatus>) -> bool {
    let Some(status) = status else { return false };
    let containers = status.container_statuses.iter().flatten();
    let inits = status.init_container_statuses.iter().flatten();
    containers.chain(inits).any(|c| {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        waiting.and_then(|w| w.reason.as_deref()) == Some("ErrImagePull")
    })
}

/// Whether the pod's pull secrets are to be read now: it names some, and it has not
/// started yet on this agent or its pulls fail and the last read is old enough.
pub fn due(pod: &Pod, started: bool, status: Option<&PodStatus>, last: Option<Instant>) -> bool {
    !names(pod).is_empty()
        && (!started
            || last.is_none()
            || (pull_failing(status) && last.is_some_and(|t| t.elapsed() >= REREAD_AFTER)))
}

/// The credentials of the pod's pull secrets; one that is missing, unreadable or not
/// a registry Secret is left out, and said in the log (kubelet's
/// `FailedToRetrieveImagePullSecret`): the pull goes on without it.
pub async fn read(client: &kube::Client, pod: &Pod) -> Vec<PullCredential> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut credentials = Vec::new();
    let mut missing = Vec::new();
    for name in names(pod) {
        match secrets.get(name).await {
            Ok(secret) => match pull_secrets::credentials(&secret) {
                Ok(found) => credentials.extend(found),
                Err(e) => {
                    tracing::warn!(pod = %pod_key(pod), "{e}");
                    missing.push(name);
                }
            },
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), "pull secret {namespace}/{name}: {e}");
                missing.push(name);
            }
        }
    }
    if !missing.is_empty() {
        tracing::warn!(
            pod = %pod_key(pod),
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            missing.join(", ")
        );
    }
    credentials
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(secrets: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"imagePullSecrets": secrets, "containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap()
    }

    fn waiting(reason: &str) -> PodStatus {
        serde_json::from_value(serde_json::json!({"containerStatuses": [{
            "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason}}}]}))
        .unwrap()
    }

    #[test]
    fn secrets_are_read_at_start_and_again_while_pulls_fail() {
        let with = pod(serde_json::json!([{"name": "regcred"}]));
        let without = pod(serde_json::json!([]));
        assert!(due(&with, false, None, None));
        assert!(!due(&without, false, None, None));
        // A restarted agent re-adopting a running pod reads them once.
        assert!(due(&with, true, None, None));
        let just_now = Some(Instant::now());
        let long_ago = Instant::now().checked_sub(REREAD_AFTER);
        assert!(!due(&with, true, Some(&waiting("ErrImagePull")), just_now));
        assert!(due(&with, true, Some(&waiting("ErrImagePull")), long_ago));
        assert!(!due(
            &with,
            true,
            Some(&waiting("CrashLoopBackOff")),
            long_ago
        ));
    }
}
