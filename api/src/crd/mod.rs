//! CustomResourceDefinitions: what the API server needs to serve custom resources.
//!
//! Everything here is pure logic on `k8s-openapi`'s `CustomResourceDefinition` and on
//! custom objects held as `serde_json::Value`, following kube-apiserver's
//! apiextensions-apiserver:
//!
//! - [`definition`]: validation and defaulting of a CRD itself, and the status the API
//!   server computes for it (`NamesAccepted`, `Established`, `acceptedNames`,
//!   `storedVersions`); [`structural`]: the structural-schema rules its schemas obey;
//! - [`schema`]: a version's `openAPIV3Schema` compiled once into a [`CompiledVersion`];
//! - [`validate`]: a custom object checked against it, errors worded as Kubernetes words
//!   them (`spec.replicas: Invalid value: "string": spec.replicas in body must be of
//!   type integer: "string"`);
//! - [`default`] and [`prune`]: structural defaulting and pruning of unknown fields;
//! - [`columns`] (with [`jsonpath`]): `additionalPrinterColumns` as table cells;
//! - [`scale`]: the scale subresource's replica and selector paths.
//!
//! A request for a custom object goes through them in kube-apiserver's order: prune,
//! default, then validate.
//!
//! ```
//! use rk8s_api::crd::CompiledVersion;
//! use serde_json::json;
//!
//! let crd = serde_json::from_value(json!({
//!     "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
//!     "metadata": {"name": "crontabs.stable.example.com"},
//!     "spec": {
//!         "group": "stable.example.com", "scope": "Namespaced",
//!         "names": {"plural": "crontabs", "kind": "CronTab"},
//!         "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
//!             "openAPIV3Schema": {"type": "object", "properties": {"spec": {
//!                 "type": "object",
//!                 "properties": {"replicas": {"type": "integer", "default": 1}}}}}}}]
//!     }
//! })).map_err(|e| e.to_string())?;
//! let version = CompiledVersion::new(&crd, "v1").map_err(|e| e.to_string())?;
//! let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
//!     "metadata": {"name": "nightly", "namespace": "default"},
//!     "spec": {"cron": "* * * * */5"}});
//! let pruned = version.prune(&mut obj);
//! assert_eq!(pruned[0].to_string(), "spec.cron");
//! version.default(&mut obj);
//! assert_eq!(obj["spec"]["replicas"], 1);
//! assert!(version.validate(&obj).is_empty());
//! # Ok::<(), String>(())
//! ```
//!
//! Not evaluated: CEL rules (`x-kubernetes-validations`), ratcheting of unchanged
//! invalid values on update, and conversion webhooks (refused by [`definition`]).

pub mod columns;
pub mod default;
pub mod definition;
pub mod jsonpath;
pub mod prune;
pub mod scale;
pub mod schema;
pub mod structural;
pub mod validate;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;

pub use columns::{Column, Columns};
pub use definition::{TakenNames, compute_status, default_crd, validate_crd};
pub use scale::ScalePaths;
pub use schema::CompiledVersion;
pub use validate::kubernetes_message;

/// What can go wrong when preparing a CRD's version for serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CRD has no version of that name.
    #[error("custom resource definition {crd} has no version {version:?}")]
    VersionNotFound {
        /// The CRD's name.
        crd: String,
        /// The version asked for.
        version: String,
    },
    /// The version's schema could not be compiled into a validator (a CRD that passed
    /// [`validate_crd`] can still have, say, a `pattern` the regex engine refuses).
    #[error("{path}: schema cannot be compiled: {message}")]
    InvalidSchema {
        /// Where in the CRD the schema is (`spec.versions[0].schema.openAPIV3Schema`).
        path: String,
        /// The validator's reason.
        message: String,
    },
    /// A JSONPath expression (printer column, scale path) is malformed.
    #[error("invalid JSONPath {expression:?}: {reason}")]
    InvalidJsonPath {
        /// The expression.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A scale subresource path leads to a value of the wrong type.
    #[error("{path}: {reason}")]
    Scale {
        /// The path (`.spec.replicas`).
        path: String,
        /// What is wrong there.
        reason: String,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
