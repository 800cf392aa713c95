//! rk8s object model.
pub mod path;
pub mod quantity;
pub mod yaml;
