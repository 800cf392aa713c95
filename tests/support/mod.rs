pub mod apiserver;
pub mod cli;
pub mod images;
pub mod netns;
pub mod node;
pub mod prometheus;
pub mod registry;
