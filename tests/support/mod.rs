pub mod apiserver;
pub mod node;
