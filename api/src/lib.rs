//! rk8s object model.
pub mod names;
pub mod object;
pub mod path;
pub mod quantity;
pub mod selector;
pub mod yaml;
