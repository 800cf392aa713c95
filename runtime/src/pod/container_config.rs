//! A work container's OCI settings from its pod: command and args over the image's,
//! env with fieldRefs, resources, the sandbox's namespaces, mounts and security
//! context.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;
use rk8s_api::resources::CgroupResources;

use super::record::PodRecord;
use super::{PodRuntime, etc_files, volumes};
use crate::cgroups;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::spec::{self, ContainerConfig};

impl PodRuntime {
    /// The settings of container `c` of the pod in `record`, running `image`. Its
    /// namespaces are the pause container's, which must be running.
    pub(super) fn container_config(
        &self,
        record: &PodRecord,
        c: &Container,
        image: &Image,
    ) -> Result<ContainerConfig> {
        let pod_spec = record.pod.spec.clone().unwrap_or_default();
        let pause_pid = self.runtime.live_pid(&record.pause_id)?.ok_or_else(|| {
            Error::InvalidSpec("the pod sandbox (pause) is not running".to_string())
        })?;
        // Kubernetes: command replaces the entrypoint, args the cmd.
        let args = match (&c.command, &c.args) {
            (Some(command), args) => [command.clone(), args.clone().unwrap_or_default()].concat(),
            (None, Some(args)) => [image.process.entrypoint.clone(), args.clone()].concat(),
            (None, None) => [image.process.entrypoint.clone(), image.process.cmd.clone()].concat(),
        };
        let mut env: Vec<String> = image.process.env.clone();
        let pod_ip = record
            .attachment
            .as_ref()
            .map(|a| a.address.to_string())
            .unwrap_or_default();
        for var in c.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (_, Some(from)) => {
                    let field = from
                        .field_ref
                        .as_ref()
                        .map(|f| f.field_path.as_str())
                        .ok_or_else(|| {
                            Error::InvalidSpec(format!(
                                "env {}: only valueFrom.fieldRef is supported here",
                                var.name
                            ))
                        })?;
                    match field {
                        "metadata.name" => record.pod.metadata.name.clone().unwrap_or_default(),
                        "metadata.namespace" => {
                            record.pod.metadata.namespace.clone().unwrap_or_default()
                        }
                        "metadata.uid" => record.uid.clone(),
                        "status.podIP" => pod_ip.clone(),
                        "spec.nodeName" => pod_spec.node_name.clone().unwrap_or_default(),
                        other => {
                            return Err(Error::InvalidSpec(format!(
                                "env {}: fieldRef {other:?} is not supported",
                                var.name
                            )));
                        }
                    }
                }
                (value, None) => value.clone().unwrap_or_default(),
            };
            env.retain(|kv| kv.split('=').next() != Some(var.name.as_str()));
            env.push(format!("{}={value}", var.name));
        }
        let resources = c.resources.clone().unwrap_or_default();
        let resources = CgroupResources::from_requirements(
            resources.requests.as_ref(),
            resources.limits.as_ref(),
        )
        .map_err(|e| Error::InvalidSpec(format!("container {}: resources: {e}", c.name)))?;
        let dir = self.pod_dir(&record.uid);
        let mut mounts = etc_files::mounts(&dir);
        mounts.extend(volumes::mounts(&dir, &pod_spec, c)?);
        let security = c.security_context.clone().unwrap_or_default();
        let pod_security = pod_spec.security_context.clone().unwrap_or_default();
        let caps = security.capabilities.clone().unwrap_or_default();
        let share_pid = pod_spec.share_process_namespace.unwrap_or(false);
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
            namespaces: spec::container_namespaces(pause_pid, share_pid),
            cgroups_path: cgroups::container_path(&record.uid, &c.name),
            resources,
            pids_limit: self.config.pids_limit,
            mounts,
            cap_add: caps.add.unwrap_or_default(),
            cap_drop: caps.drop.unwrap_or_default(),
        };
        Ok(config)
    }
}
