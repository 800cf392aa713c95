//! rk8s object model.
pub mod defaults;
pub mod emit;
pub mod formats;
pub mod manifest;
pub mod names;
pub mod object;
pub mod path;
pub mod quantity;
pub mod selector;
pub mod validation;
pub mod yaml;
