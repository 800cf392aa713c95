//! The events kubelet writes about a pod, read off its status as each sync changes it:
//! `Created` and `Started` for a new container, `Failed` for an image that cannot be
//! pulled (with the registry's error) or a container that cannot be made, `BackOff`
//! for a crash loop and between the pulls of an image that failed
//! (`ImagePullBackOff`), `FailedMount` for a volume whose source is missing, `Killing`
//! as a deleted pod's containers stop; and what the runtime tells ([`tell`]):
//! `Pulling` and `Pulled` (or already present), `Unhealthy` for each failed probe,
//! `Killing` for a container that failed its liveness probe. They go through the
//! process's event correlator (`rk8s_events`, client-go's, which kubelet
//! uses too): a repeated event is counted on the one already written (`count`,
//! `lastTimestamp`), so a crash loop or a pull back-off writes one event, not one per
//! try.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use rk8s_events::{Involved, Source, record_from};

/// Something that happened to the pod: (type, reason, message).
pub type Happened = (&'static str, &'static str, String);

fn statuses(status: Option<&PodStatus>) -> impl Iterator<Item = &ContainerStatus> {
    let status = status.into_iter();
    status.flat_map(|s| {
        let inits = s.init_container_statuses.iter().flatten();
        inits.chain(s.container_statuses.iter().flatten())
    })
}

fn waiting(c: &ContainerStatus) -> Option<(&str, &str)> {
    let w = c.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.as_deref().unwrap_or_default(),
        w.message.as_deref().unwrap_or_default(),
    ))
}

/// What changed between the status `before` and `now` of `pod`, as kubelet reports it.
pub fn transitions(pod: &Pod, before: Option<&PodStatus>, now: &PodStatus) -> Vec<Happened> {
    let mut out = Vec::new();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    for c in statuses(Some(now)) {
        let was = statuses(before).find(|b| b.name == c.name);
        let new_attempt = c.container_id.is_some()
            && was.and_then(|w| w.container_id.as_ref()) != c.container_id.as_ref();
        if new_attempt {
            out.push((
                "Normal",
                "Created",
                format!("Created container: {}", c.name),
            ));
            out.push(("Normal", "Started", format!("Started container {}", c.name)));
        }
        let Some((reason, message)) = waiting(c) else {
            continue;
        };
        let same = was.and_then(waiting) == Some((reason, message));
        let restarted = was.is_some_and(|w| w.restart_count != c.restart_count);
        match reason {
            "ErrImagePull" if !same => {
                let why = format!("Failed to pull image {:?}: {message}", c.image);
                out.push(("Warning", "Failed", why));
                out.push(("Warning", "Failed", "Error: ErrImagePull".to_string()));
            }
            // kubelet's image manager (no pull, no back-off), then its container start.
            "ErrImageNeverPull" if !same => {
                out.push(("Warning", "ErrImageNeverPull", message.to_string()));
                out.push(("Warning", "Failed", "Error: ErrImageNeverPull".to_string()));
            }
            // kubelet's image manager, then its container start, between two pulls.
            "ImagePullBackOff" if !same => {
                let why = format!("Back-off pulling image {:?}", c.image);
                out.push(("Normal", "BackOff", why));
                out.push(("Warning", "Failed", "Error: ImagePullBackOff".to_string()));
            }
            "CreateContainerConfigError" | "CreateContainerError" if !same => {
                out.push(("Warning", "Failed", format!("Error: {message}")));
            }
            "ContainerCreating" if !same && !message.is_empty() => {
                out.push(("Warning", "FailedMount", message.to_string()));
            }
            "CrashLoopBackOff" if !same || restarted => out.push((
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {name}_{namespace}({uid})",
                    c.name
                ),
            )),
            _ => {}
        }
    }
    out
}

/// What a deleted pod's running containers are told.
pub fn killing(last: Option<&PodStatus>) -> Vec<Happened> {
    statuses(last)
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .map(|c| {
            (
                "Normal",
                "Killing",
                format!("Stopping container {}", c.name),
            )
        })
        .collect()
}

/// Writes `happened` about `pod` as the kubelet of `node`: a new event, or one more
/// on the event already written for the same reason and message.
pub async fn record(client: &kube::Client, node: &str, pod: &Pod, happened: Vec<Happened>) {
    let about = Involved::of("v1", "Pod", &pod.metadata);
    let from = Source {
        component: "kubelet",
        host: Some(node),
    };
    for (type_, reason, message) in happened {
        record_from(client, &from, &about, type_, reason, &message).await;
    }
}

/// Writes what the runtime tells of pods (an image pulling or pulled, a probe
/// failing, a container killed for it) as the kubelet of `node` writes it, each
/// repeat counted on one event (a readiness probe failing every 10 s is one event
/// whose count grows).
pub async fn tell(
    client: kube::Client,
    node: String,
    mut from: tokio::sync::mpsc::Receiver<rk8s_runtime::pod::Happening>,
) {
    while let Some(h) = from.recv().await {
        let happened = vec![(h.type_, h.reason, h.message)];
        record(&client, &node, &h.pod, happened).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"}
        }))
        .unwrap()
    }

    fn status(containers: serde_json::Value) -> PodStatus {
        serde_json::from_value(serde_json::json!({"containerStatuses": containers})).unwrap()
    }

    fn container(id: Option<&str>, restarts: i32, state: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": restarts, "containerID": id, "state": state})
    }

    fn reasons(happened: &[Happened]) -> Vec<(&str, &str)> {
        happened.iter().map(|(_, r, m)| (*r, m.as_str())).collect()
    }

    #[test]
    fn a_new_container_is_created_and_started_once() {
        let running = status(serde_json::json!([container(
            Some("rk8s://a"),
            0,
            serde_json::json!({"running": {}})
        )]));
        let happened = transitions(&pod(), None, &running);
        assert_eq!(
            reasons(&happened),
            [
                ("Created", "Created container: main"),
                ("Started", "Started container main")
            ]
        );
        assert!(transitions(&pod(), Some(&running), &running).is_empty());
        assert_eq!(
            reasons(&killing(Some(&running))),
            [("Killing", "Stopping container main")]
        );
    }

    #[test]
    fn pull_failures_config_errors_mounts_and_crash_loops_are_warnings() {
        let pull = status(serde_json::json!([container(
            None,
            0,
            serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "Not authorized"}})
        )]));
        let happened = transitions(&pod(), None, &pull);
        assert_eq!(
            reasons(&happened),
            [
                ("Failed", "Failed to pull image \"busybox\": Not authorized"),
                ("Failed", "Error: ErrImagePull")
            ]
        );
        assert!(happened.iter().all(|(t, _, _)| *t == "Warning"));
        assert!(transitions(&pod(), Some(&pull), &pull).is_empty());
        // Between two pulls: a BackOff, once per wait (the next pull's failure comes
        // between two waits).
        let backing_off = status(serde_json::json!([container(
            None,
            0,
            serde_json::json!({"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"busybox\": ErrImagePull: Not authorized"}})
        )]));
        let happened = transitions(&pod(), Some(&pull), &backing_off);
        assert_eq!(
            happened,
            [
                (
                    "Normal",
                    "BackOff",
                    "Back-off pulling image \"busybox\"".to_string()
                ),
                ("Warning", "Failed", "Error: ImagePullBackOff".to_string())
            ]
        );
        assert!(transitions(&pod(), Some(&backing_off), &backing_off).is_empty());
        assert_eq!(
            reasons(&transitions(&pod(), Some(&backing_off), &pull))[0].0,
            "Failed"
        );
        let mount = status(serde_json::json!([container(
            None,
            0,
            serde_json::json!({"waiting": {"reason": "ContainerCreating", "message": "MountVolume.SetUp failed"}})
        )]));
        assert_eq!(
            reasons(&transitions(&pod(), None, &mount)),
            [("FailedMount", "MountVolume.SetUp failed")]
        );
        let back_off = |restarts| {
            status(serde_json::json!([container(
                Some("rk8s://a"),
                restarts,
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}})
            )]))
        };
        let once = transitions(&pod(), Some(&back_off(1)), &back_off(2));
        assert_eq!(
            reasons(&once),
            [(
                "BackOff",
                "Back-off restarting failed container main in pod web_shop(u1)"
            )]
        );
        assert!(transitions(&pod(), Some(&back_off(2)), &back_off(2)).is_empty());
        let never = status(serde_json::json!([container(
            None,
            0,
            serde_json::json!({"waiting": {"reason": "ErrImageNeverPull",
                "message": "Container image \"busybox\" is not present with pull policy of Never"}})
        )]));
        let happened = transitions(&pod(), None, &never);
        assert_eq!(
            reasons(&happened),
            [
                (
                    "ErrImageNeverPull",
                    "Container image \"busybox\" is not present with pull policy of Never"
                ),
                ("Failed", "Error: ErrImageNeverPull")
            ]
        );
        assert!(happened.iter().all(|(t, _, _)| *t == "Warning"));
        assert!(transitions(&pod(), Some(&never), &never).is_empty());
    }
}
