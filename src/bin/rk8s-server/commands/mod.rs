//! One module per `rk8s-server` verb.

pub mod member;
pub mod run;
pub mod token;
