//! The finalizer names Kubernetes defines without a domain (`IsStandardFinalizerName`):
//! any other finalizer must be a domain-qualified name (`example.com/cleanup`).

/// The namespace controller's finalizer in a Namespace's `spec.finalizers`
/// (`FinalizerKubernetes`): a deleted namespace stays until its content is gone.
pub const KUBERNETES: &str = "kubernetes";
/// The garbage collector's finalizer of an orphaning deletion.
pub const ORPHAN: &str = "orphan";
/// The garbage collector's finalizer of a foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Every standard finalizer name.
pub const STANDARD: &[&str] = &[KUBERNETES, ORPHAN, FOREGROUND];
