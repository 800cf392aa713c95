//! The rk8s object model: what every rk8s component speaks.
//!
//! Kubernetes kinds are `k8s-openapi`'s types (Kubernetes 1.33), so rk8s reads and
//! writes exactly the JSON and YAML that Kubernetes does; label selectors come from
//! `kube-core`. On top, this crate adds what no crate gives:
//!
//! - [`object`]: the kinds rk8s serves, their URLs and storage keys, and [`AnyObject`];
//! - [`quantity`]: exact Kubernetes quantities; [`resources`]: their cgroup values;
//! - [`selector`]: label selector parsing and field selectors;
//! - [`defaults`] and [`validation`]: what the API server fills in and refuses;
//! - [`duration`]: durations as Kubernetes' command lines write them (`1h30m`);
//! - [`manifest`]: YAML/JSON decoding whose every error names file, line, column and
//!   field; [`formats`]: the single-container and Compose files of the local modes;
//! - [`patch`]: merge, JSON and strategic merge patches, bounded as kube-apiserver
//!   bounds them; [`net`]: CIDR ranges and host addresses; [`netpol`]: NetworkPolicy
//!   semantics and the reference model nodes are tested against.
//! - [`placement`]: node selectors, required node affinity, taints and tolerations;
//! - [`containers`]: a pod's containers of every type (init, app, ephemeral);
//! - [`references`]: the Secrets and ConfigMaps a pod uses (what its node may read);
//! - [`activation`]: scale from zero on request (annotations, node activity lines);
//! - [`identities`]: the user names the control plane's own components run as;
//! - [`stored`]: a stored object's JSON with its revision written in, read only as
//!   far as its `metadata`.
//!
//! The crate does no I/O: callers hand it text.
//!
//! ```
//! use rk8s_api::manifest;
//!
//! let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: busybox}]}\n";
//! let objects = manifest::load("web.yaml", text).map_err(|e| format!("{e:?}"))?;
//! assert_eq!(objects[0].object.storage_key(), "/registry/deployments/default/web");
//! # Ok::<(), String>(())
//! ```

pub mod activation;
pub mod apply;
pub mod containers;
pub mod crd;
pub mod defaults;
pub mod duration;
pub mod emit;
pub mod finalizers;
pub mod formats;
pub mod identities;
pub mod ingress;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod net;
pub mod netpol;
pub mod object;
pub mod patch;
pub mod path;
pub mod placement;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod references;
pub mod resources;
pub mod selector;
pub mod stored;
pub mod validation;
pub mod versions;
pub mod yaml;

pub use manifest::{Diagnostic, Manifest};
pub use object::{AnyObject, CustomObject, ObjectKind, Scope};
pub use path::FieldPath;
pub use quantity::Quantity;
