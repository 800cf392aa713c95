//! rk8s's API server: Kubernetes' REST API over the raftstore, so kubectl, client
//! libraries and rk8s's own components all speak to rk8s as they would to Kubernetes.
//!
//! - [`request`]: what a request asks (verb, kind, namespace, name, subresource);
//! - [`auth`]: bearer tokens and what each caller may do ([`users`]: users by client
//!   certificate and impersonation; [`service_accounts`]: the tokens of
//!   ServiceAccounts, their admission and the `kubernetes` Service;
//!   [`token_request`]: the TokenRequest API; [`rbac`]: the authorizer chain, RBAC,
//!   escalation prevention and the default roles); [`admission`]: what the
//!   server changes and refuses before a write is stored ([`node_restriction`]: what a
//!   node may change of its own Node);
//! - [`registry`]: objects in the store, one key each, `resourceVersion` = revision;
//! - [`decode`]: bodies into objects (`fieldValidation`); [`list_options`]: what a list
//!   or watch asks (resource versions, selectors, continue tokens);
//! - [`handlers`]: the verbs and subresources ([`pod_writes`]: a pod's binding and
//!   eviction; [`proxy`]: what goes on to a node agent, [`locations`]: the pod a
//!   `pods/proxy` or `services/proxy` request reaches); [`listing`]: lists from stored
//!   bytes;
//!   [`strategy`]: what the server fills in;
//! - [`patch`]: merge, JSON and strategic merge patches;
//! - [`watch`]: the watch cache that fans one store watch out to many watchers;
//!   [`lister`]: in-memory copies of the kinds admission and RBAC read;
//! - [`discovery`], [`openapi`], [`table`]: what kubectl reads to find and print kinds;
//! - [`system_objects`]: the namespaces and StorageClass every cluster has;
//! - [`encryption`]: encryption at rest (`EncryptionConfiguration`), applied by the store
//!   handle;
//! - [`bootstrap`]: the CAs and certificates, shared secrets, member and node joins;
//! - [`server`]: the HTTP entry (authentication, dispatch); [`routes`]: the endpoints,
//!   one file per group; [`cluster`]: starting it all on a member; [`compaction`]: the
//!   leader's compaction of the store's history;
//! - [`metrics`]: Prometheus metrics (`/metrics`).

pub mod admission;
pub mod allocator;
pub mod apply;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod caches;
pub mod call;
pub mod certificate_signer;
pub mod certificates;
pub mod cluster;
pub mod compaction;
pub mod content;
pub mod cursor;
pub mod custom;
pub mod decode;
pub mod default_ingress_class;
pub mod default_storage_class;
pub mod default_tolerations;
pub mod discovery;
pub mod encryption;
pub mod handlers;
pub mod limit_ranger;
pub mod list_options;
pub mod lister;
pub mod listing;
pub mod locations;
pub mod metrics;
pub mod namespaces;
pub mod node_reads;
pub mod node_restriction;
pub mod openapi;
pub mod patch;
pub mod pod_security;
pub mod pod_writes;
pub mod priority;
pub mod proxy;
pub mod rbac;
pub mod rbac_index;
pub mod registry;
pub mod request;
pub mod resource_metrics;
pub mod resource_quota;
pub mod routes;
pub mod scale;
pub mod scan;
pub mod server;
pub mod service_accounts;
pub mod snapshots;
pub mod state_metrics;
pub mod status;
pub mod strategy;
pub mod system_objects;
pub mod table;
#[cfg(test)]
mod testing;
pub mod token_request;
pub mod update;
pub mod users;
pub mod watch;
pub mod webhooks;

pub use server::{ApiServer, serve};
