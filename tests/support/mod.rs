pub mod apiserver;
pub mod netns;
pub mod node;
pub mod prometheus;
