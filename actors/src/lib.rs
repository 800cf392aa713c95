//! rk8s' actors. For now the node agent's identity: joining a cluster with a bootstrap
//! token ([`node::identity`]) and keeping the node registered — its Node object and
//! its Lease heartbeat ([`node::registration`]). The NodeActor and PodActor that run
//! the pods bound to the node build on these.

pub mod node;
