//! Which part of an object a write changes: the object, or one of the subresources
//! that write a part of it.

use rk8s_api::ObjectKind;

/// Which part of an object an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object (spec and metadata; `scale` too).
    Main,
    /// The `status` subresource.
    Status,
    /// A CertificateSigningRequest's `approval` subresource: its conditions alone.
    Approval,
    /// A pod's `ephemeralcontainers` subresource: `spec.ephemeralContainers` alone.
    EphemeralContainers,
    /// A Namespace's `finalize` subresource: its `spec.finalizers` (and metadata).
    Finalize,
}

impl Part {
    /// The part a write to `subresource` of `kind` changes: `None` where the kind has
    /// no such subresource to write (`scale` is a `Main` write of the replicas).
    pub fn of(kind: &ObjectKind, subresource: Option<&str>) -> Option<Part> {
        Some(match subresource {
            None => Part::Main,
            Some("scale") if kind.has_scale() => Part::Main,
            Some("status") if kind.has_status() => Part::Status,
            Some("approval") if kind.plural == "certificatesigningrequests" => Part::Approval,
            Some("ephemeralcontainers") if kind.plural == "pods" => Part::EphemeralContainers,
            Some("finalize") if kind.plural == "namespaces" && kind.group.is_empty() => {
                Part::Finalize
            }
            _ => return None,
        })
    }
}
