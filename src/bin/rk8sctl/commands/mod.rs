//! One module per `rk8sctl` verb.

pub mod validate;
