//! What `rk8sctl` does against a cluster, as a standard Kubernetes client (the `kube`
//! crate): apply, create, get, describe, delete, scale, label, annotate, edit,
//! cluster-info, version and config. The binary only parses arguments.
//!
//! - [`cluster`]: kubeconfig, client, errors worded as kubectl words them;
//! - [`apply`]: the three-way apply with kubectl's last-applied annotation;
//! - [`print`], [`describe`]: tables, YAML and descriptions;
//! - [`input`]: `-f` files, directories and standard input;
//! - [`commands`]: the commands and their arguments;
//! - [`stream`]: `logs` and `exec`, streamed from the pod's node;
//! - [`local`]: containers, pods and Compose apps on this host, without a cluster.

pub mod apply;
pub mod cluster;
pub mod commands;
pub mod describe;
pub mod input;
pub mod local;
pub mod print;
pub mod stream;
