//! rk8s object model.
pub mod path;
pub mod yaml;
