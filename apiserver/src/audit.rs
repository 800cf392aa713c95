//! Kubernetes audit logging (being written).
