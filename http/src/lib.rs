//! The HTTPS floor the API server and the node agents stand on, so that neither links
//! the other: Kubernetes `Status` errors ([`status`]), query strings ([`query`]),
//! response bodies ([`body`]), the TLS accept loop ([`serve`]), in-process connections
//! ([`loopback`]), TLS configurations and
//! certificate hashes ([`tls`]), certificates renewed while in use ([`renewal`]), the bodies of joins and serving certificates
//! ([`wire`]), metric registration ([`metrics`]), the chaos endpoints' backend
//! ([`debug`]) and the SPDY/3.1 streams of kubectl's port-forward ([`spdy`]).
//!
//! ```
//! use rk8s_http::query::Query;
//! let q = Query::parse(Some("watch=1&limit=5"));
//! assert!(q.flag("watch"));
//! assert_eq!(q.number("limit").unwrap(), Some(5));
//! ```

pub mod body;
pub mod client_certs;
pub mod debug;
pub mod loopback;
pub mod metrics;
pub mod query;
pub mod renewal;
pub mod serve;
pub mod spdy;
pub mod status;
pub mod tls;
pub mod wire;
