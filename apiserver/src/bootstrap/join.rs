//! Joining nodes (`rk8s-node join`): a bootstrap token is exchanged, once, for a node
//! credential and a podCIDR, as kubeadm's TLS bootstrap and the node IPAM controller
//! do together in Kubernetes.
//!
//! - `GET /rk8s/v1/cluster-info` (anonymous, like kubeadm's `cluster-info` ConfigMap):
//!   the cluster CA, which the node checks against the `--ca-cert-hash` it was given
//!   before trusting anything else the server says.
//! - `POST /rk8s/v1/join` with the bootstrap token, body `{"nodeName": "..."}`: marks
//!   the token used, allocates the node a podCIDR from the cluster CIDR (or gives back
//!   the one it has: a rejoin after a reinstall keeps its range), records a node token
//!   and answers `{"nodeName", "token", "podCIDR"}`. All of it in one store
//!   transaction, so two joins never get the same range and a token never works twice.

use rk8s_api::net::{Ipv4Net, is_host_address};
use rk8s_http::wire::{JoinRequest, JoinResponse, ServingCert, ServingCertRequest};
use rk8s_raftstore::proto::{
    Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, RequestOp, TxnRequest,
    request_op,
};
use rk8s_raftstore::server::Store;

use crate::auth::{self, Identity, TokenRecord};
use crate::status::{ApiError, ApiResult};

/// podCIDR → node name.
pub const POD_CIDRS_PREFIX: &str = "/rk8s/podcidrs/";
/// node name → podCIDR.
pub const NODE_CIDRS_PREFIX: &str = "/rk8s/nodecidrs/";

/// How node ranges are cut from the cluster's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCidrs {
    /// The cluster's pod range (`--cluster-cidr`, default 10.244.0.0/16).
    pub cluster: Ipv4Net,
    /// The prefix length of each node's range (`--node-cidr-mask-size`, default 24).
    pub node_prefix: u8,
}

impl Default for PodCidrs {
    fn default() -> Self {
        PodCidrs {
            cluster: Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16)
                .unwrap_or(Ipv4Net::LOCAL_DEFAULT),
            node_prefix: 24,
        }
    }
}

impl PodCidrs {
    /// The `n`-th node range, if the cluster range has it.
    pub fn nth(&self, n: u32) -> Option<Ipv4Net> {
        let bits = self.node_prefix.checked_sub(self.cluster.prefix())?;
        if u64::from(n) >= 1u64 << bits.min(32) {
            return None;
        }
        let step = 1u64 << (32 - u32::from(self.node_prefix));
        let base = u64::from(u32::from(self.cluster.network())) + u64::from(n) * step;
        Ipv4Net::new(
            std::net::Ipv4Addr::from(u32::try_from(base).ok()?),
            self.node_prefix,
        )
    }
}

/// The most addresses one node certificate names.
const MAX_ADDRESSES: usize = 16;

/// Handles `POST /rk8s/v1/serving-cert`, body `{"addresses": ["10.0.0.5"]}`: a node
/// credential gets a certificate of the node CA (`ca`) for its own name and those IP
/// addresses. API servers verify the name when they connect to the node for logs and
/// exec; the addresses are for other clients that trust the node CA, so a node gets
/// none that is not another host's to reach it at (loopback, link-local, multicast,
/// unspecified).
pub fn serving_cert(
    ca: &crate::bootstrap::pki::ClusterCa,
    identity: &Identity,
    body: &[u8],
) -> ApiResult<ServingCert> {
    let Identity::Node(node) = identity else {
        return Err(ApiError::forbidden(format!(
            "User \"{}\" cannot get a node serving certificate: only node credentials can",
            identity.user()
        )));
    };
    let request: ServingCertRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("serving certificate request: {e}")))?;
    if request.addresses.len() > MAX_ADDRESSES {
        return Err(ApiError::bad_request(format!(
            "addresses: at most {MAX_ADDRESSES} addresses, not {}",
            request.addresses.len()
        )));
    }
    let mut addresses = Vec::new();
    for (i, address) in request.addresses.iter().enumerate() {
        let ip: std::net::IpAddr = address.parse().map_err(|_| {
            ApiError::bad_request(format!("addresses[{i}]: {address:?} is not an IP address"))
        })?;
        if !is_host_address(ip) {
            return Err(ApiError::bad_request(format!(
                "addresses[{i}]: {ip} is not an address other hosts reach a node at (loopback, link-local, multicast or unspecified)"
            )));
        }
        addresses.push(ip);
    }
    let (cert, key) = ca
        .issue_node_server(node, &addresses)
        .map_err(|e| ApiError::bad_request(format!("no certificate for node {node:?}: {e}")))?;
    Ok(ServingCert { cert, key })
}

fn cidr_key(cidr: &Ipv4Net) -> String {
    format!("{POD_CIDRS_PREFIX}{}", cidr.to_string().replace('/', "_"))
}

fn put(key: String, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::Put(PutRequest {
            key: key.into_bytes(),
            value: value.into(),
            lease: 0,
        })),
    }
}

fn compare(key: &str, target: CompareTarget, number: i64) -> Compare {
    Compare {
        key: key.as_bytes().to_vec(),
        target: target as i32,
        result: CompareResult::Equal as i32,
        number,
        value: Vec::new(),
    }
}

async fn get(store: &Store, key: &str) -> ApiResult<Option<(Vec<u8>, i64)>> {
    let range = RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    let found = store
        .range(range, true)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(found
        .kvs
        .into_iter()
        .next()
        .map(|kv| (kv.value.into(), kv.mod_revision)))
}

/// The podCIDR the join of `node` assigned, if it joined.
pub async fn assigned_pod_cidr(store: &Store, node: &str) -> ApiResult<Option<String>> {
    let found = get(store, &format!("{NODE_CIDRS_PREFIX}{node}")).await?;
    Ok(found.map(|(value, _)| String::from_utf8_lossy(&value).into_owned()))
}

/// A bootstrap token about to be used by `by` (`node NAME`, `member ADDRESS`): its
/// key, its record with this use counted (and marked used up when it reaches its
/// usage limit), and the revision the write of that record must compare against, so
/// that two joins at a time count twice. A token used up already is a 401.
pub(crate) async fn claim_token(
    store: &Store,
    bearer: &str,
    token_id: &str,
    by: String,
) -> ApiResult<(String, TokenRecord, i64)> {
    let key = auth::token_key(bearer);
    let (value, revision) = get(store, &key).await?.ok_or_else(ApiError::unauthorized)?;
    let mut record: TokenRecord =
        serde_json::from_slice(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(used) = &record.used_by {
        return Err(auth::used_token(token_id, used));
    }
    record.uses = record.uses.saturating_add(1);
    if record.usage_limit.is_some_and(|limit| record.uses >= limit) {
        record.used_by = Some(by);
    }
    Ok((key, record, revision))
}

/// Handles `POST /rk8s/v1/join` for the caller holding `bearer`.
pub async fn join(
    store: &Store,
    identity: &Identity,
    bearer: &str,
    body: &[u8],
    cidrs: PodCidrs,
) -> ApiResult<JoinResponse> {
    let Identity::Bootstrap(token_id) = identity else {
        return Err(ApiError::forbidden(format!(
            "User \"{}\" cannot join nodes: only bootstrap tokens (rk8s-server token create) can",
            identity.user()
        )));
    };
    let request: JoinRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("join request: {e}")))?;
    let name = request.node_name;
    let mut problems = rk8s_api::names::dns1123_subdomain(&name);
    if name.parse::<std::net::IpAddr>().is_ok() {
        // The API server verifies a node by its name as a DNS name, which an IP
        // address is not (another node's certificate may name that address).
        problems.push("must not be an IP address".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "nodeName {name:?}: {}",
            problems.join("; ")
        )));
    }
    for _attempt in 0..8 {
        let (token_key, record, token_rev) =
            claim_token(store, bearer, token_id, format!("node {name}")).await?;
        let node_cidr_key = format!("{NODE_CIDRS_PREFIX}{name}");
        let existing = get(store, &node_cidr_key).await?;
        let (cidr, mut compares) = match &existing {
            Some((value, rev)) => {
                let cidr: Ipv4Net = String::from_utf8_lossy(value)
                    .parse()
                    .map_err(|e: rk8s_api::net::InvalidCidr| ApiError::internal(e.to_string()))?;
                (
                    cidr,
                    vec![compare(&node_cidr_key, CompareTarget::Mod, *rev)],
                )
            }
            None => {
                let used = store
                    .range(
                        RangeRequest {
                            key: POD_CIDRS_PREFIX.as_bytes().to_vec(),
                            range_end: rk8s_raftstore::mvcc::prefix_end(
                                POD_CIDRS_PREFIX.as_bytes(),
                            ),
                            keys_only: true,
                            ..Default::default()
                        },
                        true,
                    )
                    .await
                    .map_err(|e| ApiError::unavailable(e.to_string()))?;
                let taken: std::collections::BTreeSet<Vec<u8>> =
                    used.kvs.into_iter().map(|kv| kv.key).collect();
                let cidr = (0..)
                    .map_while(|n| cidrs.nth(n))
                    .find(|c| !taken.contains(cidr_key(c).as_bytes()))
                    .ok_or_else(|| {
                        ApiError::new(
                            http::StatusCode::CONFLICT,
                            "Conflict",
                            format!(
                                "every /{} of {} is taken: no podCIDR left",
                                cidrs.node_prefix, cidrs.cluster
                            ),
                        )
                    })?;
                // Absent until this transaction: create revision 0.
                (
                    cidr,
                    vec![
                        compare(&cidr_key(&cidr), CompareTarget::Create, 0),
                        compare(&node_cidr_key, CompareTarget::Create, 0),
                    ],
                )
            }
        };
        compares.push(compare(&token_key, CompareTarget::Mod, token_rev));
        let node_token = auth::new_secret()?;
        let node_record = TokenRecord {
            identity: Identity::Node(name.clone()),
            expires: None,
            used_by: None,
            usage_limit: None,
            uses: 0,
        };
        let json =
            |v: &TokenRecord| serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()));
        let txn = TxnRequest {
            compare: compares,
            success: vec![
                put(token_key.clone(), json(&record)?),
                put(cidr_key(&cidr), name.clone().into_bytes()),
                put(node_cidr_key.clone(), cidr.to_string().into_bytes()),
                put(auth::token_key(&node_token), json(&node_record)?),
            ],
            failure: Vec::new(),
        };
        let done = store
            .txn(txn)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        if done.succeeded {
            tracing::info!(node = %name, pod_cidr = %cidr, token = %token_id, "node joined");
            return Ok(JoinResponse {
                node_name: name,
                token: node_token,
                pod_cidr: cidr.to_string(),
            });
        }
        // Another join took the range (or this token) meanwhile: look again.
    }
    Err(ApiError::unavailable(
        "too many concurrent joins; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ranges_are_cut_in_order_and_end_with_the_cluster_range() {
        let c = PodCidrs {
            cluster: "10.244.0.0/22".parse().unwrap(),
            node_prefix: 24,
        };
        let all: Vec<String> = (0..)
            .map_while(|n| c.nth(n))
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        let bad = PodCidrs {
            cluster: "10.0.0.0/24".parse().unwrap(),
            node_prefix: 16,
        };
        assert_eq!(bad.nth(0), None);
    }
}
