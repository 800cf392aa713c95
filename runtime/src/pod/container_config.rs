//! A work container's OCI settings from its pod: command and args over the image's,
//! env (service variables, fieldRefs, ConfigMaps, Secrets: [`super::env`]),
//! resources, the sandbox's namespaces (an ephemeral container's target's pid
//! namespace), mounts and security context, and the devices a device plugin gives it.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;
use rk8s_api::resources::CgroupResources;

use super::record::PodRecord;
use super::{PodRuntime, env, etc_files, volumes};
use crate::cgroups;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::spec::{self, ContainerConfig};

impl PodRuntime {
    /// The settings of container `c` of the pod in `record`, running `image` with
    /// `devices`. Its namespaces are the pause container's, which must be running.
    pub(super) fn container_config(
        &self,
        record: &PodRecord,
        c: &Container,
        image: &Image,
        devices: super::ContainerDevices,
    ) -> Result<ContainerConfig> {
        let pod_spec = record.pod.spec.clone().unwrap_or_default();
        let pause_pid = self.runtime.live_pid(&record.pause_id)?.ok_or_else(|| {
            Error::InvalidSpec("the pod sandbox (pause) is not running".to_string())
        })?;
        let pod_ip = record
            .attachment
            .as_ref()
            .map(|a| a.address.to_string())
            .unwrap_or_default();
        let meta = &record.pod.metadata;
        let field = |path: &str| env::field(record, &pod_ip, path);
        let allocatable = self.config.allocatable;
        let resource = |r: &k8s_openapi::api::core::v1::ResourceFieldSelector| {
            env::resource(&pod_spec, &c.name, r, allocatable)
        };
        let fields = env::PodFields {
            field: &field,
            resource: &resource,
        };
        let inputs = self.inputs.of(&record.uid);
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        // The pod's variables (its service variables first), `$(VAR)` expanded among
        // themselves (kubelet never sees the image's), then over the image's.
        let services = self.service_env(&record.pod).map_err(Error::InvalidSpec)?;
        let own = env::container_env(c, &inputs, namespace, &fields, &services)
            .map_err(Error::InvalidSpec)?;
        // A device plugin's variables come first in kubelet's list; the container's
        // own win over them (the runtime keeps the last of a name).
        let from_devices: Vec<(String, String)> = devices
            .env
            .into_iter()
            .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
            .collect();
        let mut pairs: Vec<(String, String)> = image
            .process
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
            .collect();
        // Kubernetes: command replaces the entrypoint, args the cmd; `$(VAR)` in them
        // is one of the pod's variables.
        let vars: std::collections::BTreeMap<String, String> = own.iter().cloned().collect();
        pairs.retain(|(k, _)| !from_devices.iter().any(|(d, _)| d == k));
        pairs.extend(from_devices);
        pairs.extend(own);
        let expand = |words: &[String]| -> Vec<String> {
            words.iter().map(|w| env::expand(w, &vars)).collect()
        };
        let args = match (&c.command, &c.args) {
            (Some(command), args) => {
                [expand(command), expand(args.as_deref().unwrap_or_default())].concat()
            }
            (None, Some(args)) => [image.process.entrypoint.clone(), expand(args)].concat(),
            (None, None) => [image.process.entrypoint.clone(), image.process.cmd.clone()].concat(),
        };
        let env: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let resources = c.resources.clone().unwrap_or_default();
        let resources = CgroupResources::from_requirements(
            resources.requests.as_ref(),
            resources.limits.as_ref(),
        )
        .map_err(|e| Error::InvalidSpec(format!("container {}: resources: {e}", c.name)))?;
        let dir = self.pod_dir(&record.uid);
        let mut mounts = etc_files::mounts(&dir);
        // Kubelet: the devices' mounts, then the volumes'.
        mounts.extend(devices.mounts);
        mounts.extend(volumes::mounts(&dir, &pod_spec, c, &inputs.claims)?);
        let security = c.security_context.clone().unwrap_or_default();
        let pod_security = pod_spec.security_context.clone().unwrap_or_default();
        let caps = security.capabilities.clone().unwrap_or_default();
        let share_pid = pod_spec.share_process_namespace.unwrap_or(false);
        let mut namespaces = spec::container_namespaces(pause_pid, share_pid);
        if let Some(pid) = self.target_pid(record, &pod_spec, &c.name, share_pid)? {
            namespaces = spec::with_pid_namespace_of(namespaces, pid);
        }
        let uid = security.run_as_user.or(pod_security.run_as_user);
        let gid = security.run_as_group.or(pod_security.run_as_group);
        let config = ContainerConfig {
            args,
            env,
            cwd: c
                .working_dir
                .clone()
                .unwrap_or_else(|| image.process.working_dir.clone()),
            uid: uid.and_then(|u| u32::try_from(u).ok()),
            gid: gid.and_then(|g| u32::try_from(g).ok()),
            image_user: image.process.user.clone(),
            hostname: None,
            rootfs: PathBuf::new(),
            readonly_rootfs: security.read_only_root_filesystem.unwrap_or(false),
            namespaces,
            cgroups_path: cgroups::container_path(&record.uid, &c.name),
            resources,
            pids_limit: self.config.pids_limit,
            mounts,
            cap_add: caps.add.unwrap_or_default(),
            cap_drop: caps.drop.unwrap_or_default(),
            terminal: c.tty.unwrap_or(false),
            devices: devices.devices,
            annotations: devices.annotations,
        };
        Ok(config)
    }

    /// For an ephemeral container `name` that targets a container (and a pod whose
    /// containers do not share one pid namespace): the pid whose pid namespace it
    /// joins, the target's (kubelet's `NamespaceMode_TARGET`), which must be running.
    fn target_pid(
        &self,
        record: &PodRecord,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        name: &str,
        share_pid: bool,
    ) -> Result<Option<i32>> {
        let ephemeral = spec.ephemeral_containers.iter().flatten();
        let Some(target) = ephemeral
            .filter(|e| e.name == name)
            .find_map(|e| e.target_container_name.as_deref())
            .filter(|t| !t.is_empty() && !share_pid)
        else {
            return Ok(None);
        };
        let id = record.containers.get(target).and_then(|c| c.id.as_deref());
        let pid = match id {
            Some(id) => self.runtime.live_pid(id)?,
            None => None,
        };
        pid.map(Some).ok_or_else(|| {
            Error::InvalidSpec(format!("the target container {target:?} is not running"))
        })
    }
}
