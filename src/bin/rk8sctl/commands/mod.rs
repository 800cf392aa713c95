//! One module per `rk8sctl` verb.

pub mod image;
pub mod validate;
