//! The original rk8s single-container file (`rk8sctl container run single.yaml`):
//!
//! ```yaml
//! name: single-container-test
//! image: busybox:1.36
//! args: ["sleep", "100"]
//! ports:
//!   - containerPort: 80
//!     protocol: ""
//!     hostPort: 0
//! resources:
//!   limits:
//!     cpu: 500m
//!     memory: 233Mi
//! ```
//!
//! It is checked as the one container of a pod would be, so the rules and messages are
//! the same as for Pod manifests.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::manifest::Diagnostic;
use crate::object::AnyObject;
use crate::path::{FieldPath, Segment};
use crate::validation;

use super::{decode_single, diagnostic};

/// A single container to run without a pod manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// The container's name (an RFC 1123 label), also its id in `rk8sctl container ls`.
    pub name: String,
    /// Image reference or path to an OCI layout.
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments (replace the image's cmd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Ports, as in a pod (`hostPort` publishes on the host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

impl ContainerSpec {
    /// The Kubernetes container this describes. The original format writes "unset" as
    /// empty strings and zeros (`protocol: ""`, `hostPort: 0`); those become unset.
    pub fn to_container(&self) -> Container {
        let ports = self
            .ports
            .iter()
            .map(|p| ContainerPort {
                protocol: p.protocol.clone().filter(|s| !s.is_empty()),
                host_ip: p.host_ip.clone().filter(|s| !s.is_empty()),
                host_port: p.host_port.filter(|p| *p != 0),
                name: p.name.clone().filter(|s| !s.is_empty()),
                ..p.clone()
            })
            .collect::<Vec<_>>();
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Container {
            name: self.name.clone(),
            image: Some(self.image.clone()),
            command: nonempty(&self.command),
            args: nonempty(&self.args),
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            ports: (!ports.is_empty()).then_some(ports),
            resources: self.resources.clone(),
            working_dir: self.working_dir.clone(),
            ..Default::default()
        }
    }

    /// A pod holding just this container (the runtime runs single containers as pods
    /// so they get the same sandbox, network and cgroups).
    pub fn to_pod(&self) -> Pod {
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![self.to_container()],
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
            status: None,
        };
        if let Some(spec) = &mut pod.spec {
            defaults::pod_spec(spec);
        }
        pod
    }
}

/// Decodes and validates a single-container file.
pub fn decode_container(file: &str, text: &str) -> Result<ContainerSpec, Vec<Diagnostic>> {
    let (spec, positions): (ContainerSpec, _) = decode_single(file, text)?;
    let mut pod: AnyObject = spec.to_pod().into();
    defaults::apply_defaults(&mut pod);
    // Only the container's own fields exist in this file: report them at their place.
    let prefix = FieldPath::root().key("spec").key("containers").index(0);
    let mut diags: Vec<Diagnostic> = validation::validate(&pod)
        .into_iter()
        .filter_map(|mut e| {
            let rest = e.path.segments().strip_prefix(prefix.segments())?.to_vec();
            e.path = rest.into_iter().fold(FieldPath::root(), |p, s| match s {
                Segment::Key(k) => p.key(k),
                Segment::Index(i) => p.index(i),
            });
            Some(diagnostic(file, &positions, &e))
        })
        .collect();
    diags.sort_by_key(|d| d.location);
    if diags.is_empty() {
        Ok(spec)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_format_decodes() {
        let text = "name: single-container-test\nimage: busybox:1.36\nports:\n  - containerPort: 80\n    protocol: \"\"\n    hostPort: 0\n    hostIP: \"\"\nargs:\n  - sleep\n  - \"100\"\nresources:\n  limits:\n    cpu: 500m\n    memory: 233Mi\n";
        let spec = decode_container("single.yaml", text).unwrap();
        let c = spec.to_container();
        assert_eq!(c.args.unwrap(), ["sleep", "100"]);
        assert_eq!(c.ports.unwrap()[0].protocol, None);
    }

    #[test]
    fn errors_point_at_the_container_fields() {
        let text = "name: web\nimage: busybox\nports:\n  - containerPort: 0\nresources:\n  limits:\n    cpu: lots\n";
        let errs: Vec<String> = decode_container("c.yaml", text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            errs,
            [
                "c.yaml:4:5: ports[0].containerPort: invalid value \"0\": must be between 1 and 65535, inclusive",
                "c.yaml:7:5: resources.limits.cpu: \"lots\" is not a quantity",
            ]
        );
        let err =
            decode_container("c.yaml", "name: web\nimage: x\nimagePullSecret: y\n").unwrap_err();
        assert!(err[0].to_string().starts_with("c.yaml:3:1: imagePullSecret: unknown field `imagePullSecret`, expected one of `name`, `image`"), "{}", err[0]);
    }
}
