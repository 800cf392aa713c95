//! rk8s' built-in Ingress proxy (IngressClass `rk8s`, controller `rk8s.io/ingress`),
//! which every node agent runs on its ports 80 and 443.
//!
//! - [`table`]: the route table, a pure function of the Ingresses, IngressClasses,
//!   Services and endpoints ([`table::Table::build`]), and the route of a request
//!   ([`table::Table::route`]) with Kubernetes' matching rules ([`routes`]) and the
//!   ingress-nginx annotations rk8s reads ([`annotations`]);
//! - [`tls`]: the certificates by SNI, from `kubernetes.io/tls` Secrets;
//! - [`proxy`]: the hyper server, which reads the table of the moment per request,
//!   and [`clients`]: the keep-alive pools to the pods;
//! - [`activation`]: requests held while a Service scaled to zero wakes, and the
//!   traffic the node reports for it;
//! - [`headers`]: hop-by-hop and `X-Forwarded-*` fields; [`idle`]: the timeouts of
//!   quiet peers; [`metrics`].
//!
//! The node agent watches the objects, builds a table on change and swaps it in:
//!
//! ```
//! use std::sync::Arc;
//! use rk8s_ingress::proxy::{Ports, Proxy};
//! use rk8s_ingress::table::{StaticCluster, Table, Route};
//! use rk8s_ingress::tls::{Certificates, fake_certificate};
//!
//! let default = fake_certificate().unwrap();
//! let proxy = Proxy::new(Ports { http: 80, https: 443 }, default.clone());
//! let table = Table::build(&[], &[], &StaticCluster::default());
//! proxy.set(table, Certificates::new(default));
//! assert!(matches!(proxy.table().route("a.test", "/", false), Route::NotFound));
//! ```

pub mod activation;
pub mod annotations;
pub mod clients;
pub mod headers;
pub mod idle;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod table;
pub mod tls;
