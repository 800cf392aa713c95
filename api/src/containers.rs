//! A pod's containers of every type: init, app and ephemeral. An ephemeral container
//! (added to a running pod by `kubectl debug`) is described by the same fields as
//! the others, a few of them forbidden, plus the container whose namespaces it joins;
//! the runtime runs it as a [`Container`] made from it.

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec};

/// The container an ephemeral container runs as: its own fields, of which the
/// validation lets it set only those an ephemeral container may.
pub fn ephemeral_as_container(ec: &EphemeralContainer) -> Container {
    let ec = ec.clone();
    Container {
        name: ec.name,
        image: ec.image,
        command: ec.command,
        args: ec.args,
        working_dir: ec.working_dir,
        env: ec.env,
        env_from: ec.env_from,
        volume_mounts: ec.volume_mounts,
        volume_devices: ec.volume_devices,
        termination_message_path: ec.termination_message_path,
        termination_message_policy: ec.termination_message_policy,
        image_pull_policy: ec.image_pull_policy,
        security_context: ec.security_context,
        stdin: ec.stdin,
        stdin_once: ec.stdin_once,
        tty: ec.tty,
        lifecycle: ec.lifecycle,
        liveness_probe: ec.liveness_probe,
        readiness_probe: ec.readiness_probe,
        startup_probe: ec.startup_probe,
        ports: ec.ports,
        resources: ec.resources,
        resize_policy: ec.resize_policy,
        restart_policy: ec.restart_policy,
    }
}

/// Container `name` of `spec`, of any type (an ephemeral one as
/// [`ephemeral_as_container`] makes it).
pub fn named(spec: &PodSpec, name: &str) -> Option<Container> {
    let regular = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let found = regular.into_iter().find(|c| c.name == name).cloned();
    found.or_else(|| {
        spec.ephemeral_containers
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .map(ephemeral_as_container)
    })
}

/// The names of every container of `spec`: init, app, then ephemeral ones.
pub fn names(spec: &PodSpec) -> impl Iterator<Item = &str> {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str());
    let app = spec.containers.iter().map(|c| c.name.as_str());
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    init.chain(app).chain(ephemeral.map(|c| c.name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_found_by_name_and_an_ephemeral_one_keeps_its_fields() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "init", "image": "i"}],
            "containers": [{"name": "app", "image": "a"}],
            "ephemeralContainers": [{"name": "dbg", "image": "d", "tty": true, "stdin": true,
                "command": ["sh"], "targetContainerName": "app"}]
        }))
        .unwrap();
        assert_eq!(names(&spec).collect::<Vec<_>>(), ["init", "app", "dbg"]);
        let dbg = named(&spec, "dbg").unwrap();
        assert_eq!(dbg.image.as_deref(), Some("d"));
        assert_eq!((dbg.tty, dbg.stdin), (Some(true), Some(true)));
        assert_eq!(dbg.command.unwrap(), ["sh"]);
        assert_eq!(named(&spec, "init").unwrap().image.as_deref(), Some("i"));
        assert!(named(&spec, "none").is_none());
    }
}
