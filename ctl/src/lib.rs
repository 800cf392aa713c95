//! What `rk8sctl` does: against a cluster, as a standard Kubernetes client (the `kube`
//! crate), apply, create, get, describe, delete, scale, rollout, label, annotate, edit,
//! cluster-info, version and config; on this host, without a cluster, validate, image
//! and the local modes. The binary only parses arguments.
//!
//! - [`cluster`]: kubeconfig, client, errors worded as kubectl words them;
//! - [`apply`]: the three-way apply with kubectl's last-applied annotation, and
//!   server-side apply;
//! - [`discovery`]: kind names and manifests' kinds resolved through the server's API
//!   discovery (custom kinds);
//! - [`print`](mod@print), [`describe`]: tables, YAML and descriptions;
//! - [`jsonpath`]: kubectl's JSONPath (`-o jsonpath`, `-o custom-columns`, `--sort-by`);
//! - [`input`]: `-f` files, directories and standard input;
//! - [`commands`]: the cluster commands and their arguments, one module per verb group;
//! - [`debug`]: `debug actors|kill-actor` (the control plane's actors, `--enable-chaos`);
//! - [`prometheus`]: `prometheus-config`, a scrape configuration for the cluster;
//! - [`rollout`]: `rollout status|history|undo|restart|pause|resume`;
//! - [`logs`], [`stream`], [`port_forward`]: `logs`, `exec` and `port-forward`,
//!   streamed from the pod's node;
//! - [`top`]: `top nodes|pods`, from the resource metrics API;
//! - [`validate`]: `validate`, manifests and local-mode files checked without a cluster;
//! - [`local`]: containers, pods and Compose apps on this host, without a cluster, and
//!   the image store they run from.

pub mod apply;
pub mod cluster;
pub mod commands;
pub mod completion;
pub mod debug;
pub mod describe;
pub mod discovery;
pub mod input;
pub mod jsonpath;
pub mod local;
pub mod logs;
pub mod port_forward;
pub mod print;
pub mod prometheus;
pub mod rollout;
pub mod stream;
pub mod top;
pub mod validate;
