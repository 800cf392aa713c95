//! The secrets every member shares, kept in the store under one key so every member
//! signs with the same CAs: made by the first API server of a cluster, read by the
//! others.

use rk8s_raftstore::Error as StoreError;
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::Store;
use serde::{Deserialize, Serialize};

use super::StartError;
use super::pki::ClusterCa;
use crate::auth::{TokenRecord, new_secret, store_token};
use crate::status::{ApiError, ApiResult};

/// Where the cluster's shared secrets live in the store.
pub const CLUSTER_KEY: &str = "/rk8s/cluster/ca";

/// The secrets every member shares.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecrets {
    /// The cluster CA.
    pub ca: ClusterCa,
    /// The member CA (store members' mutual TLS; see [`super::members`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_ca: Option<ClusterCa>,
    /// The node CA: node agents' serving certificates (see [`super::pki`]). A cluster
    /// made before it existed gets one at the next start of an API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ca: Option<ClusterCa>,
    /// The key service-account tokens are signed with (P-256 PKCS#8, base64; see
    /// [`crate::service_accounts`]). A cluster made before it existed gets one at the
    /// next start of an API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<String>,
    /// The client CA: users' client certificates (`rk8s-server kubeconfig create`).
    /// A cluster made before it existed gets one at the next start of an API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<ClusterCa>,
}

impl ClusterSecrets {
    /// Adds what a cluster made by an older version lacks; whether it added any.
    fn complete(&mut self) -> Result<bool, StartError> {
        let mut added = false;
        if self.node_ca.is_none() {
            self.node_ca = Some(ClusterCa::generate_node_ca()?);
            tracing::info!(
                "the cluster has a node CA now: restart node agents for new serving certificates"
            );
            added = true;
        }
        if self.service_account_key.is_none() {
            self.service_account_key = Some(
                crate::service_accounts::generate_key()
                    .map_err(|e| StartError::Store(e.message))?,
            );
            added = true;
        }
        if self.client_ca.is_none() {
            self.client_ca = Some(ClusterCa::generate_client_ca()?);
            added = true;
        }
        Ok(added)
    }
}

/// Reads the cluster's secrets, creating them (and the admin token) if this is the
/// first start of the cluster, with the member CA the first member made. Returns them
/// and, when this call created the cluster, the admin token.
pub async fn read_or_create(
    store: &Store,
    member_ca: Option<&ClusterCa>,
) -> Result<(ClusterSecrets, Option<String>), StartError> {
    let failed = |e: StoreError| StartError::Store(e.to_string());
    // A member that has just joined can see a linearizable read time out while the
    // cluster is still changing its membership (another member joining, a learner
    // promoted): tried again for as long as the start waits for the store.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let read = RangeRequest {
            key: CLUSTER_KEY.as_bytes().to_vec(),
            ..RangeRequest::default()
        };
        let found = match store.range(read, true).await {
            Ok(found) => found,
            Err(StoreError::Timeout(what)) if tokio::time::Instant::now() < deadline => {
                tracing::info!("{what} timed out while starting; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(failed(e)),
        };
        if let Some(kv) = found.kvs.first() {
            let mut secrets: ClusterSecrets = serde_json::from_slice(&kv.value)
                .map_err(|e| StartError::Store(format!("{CLUSTER_KEY} does not decode: {e}")))?;
            if !secrets.complete()? {
                return Ok((secrets, None));
            }
            // Added to a cluster from an older version, unless another member does
            // first (then read theirs).
            let value =
                serde_json::to_vec(&secrets).map_err(|e| StartError::Store(e.to_string()))?;
            match store
                .put(CLUSTER_KEY.as_bytes(), &value, 0, Some(kv.mod_revision))
                .await
            {
                Ok(_) => return Ok((secrets, None)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        let secrets = ClusterSecrets {
            ca: ClusterCa::generate()?,
            member_ca: member_ca.cloned(),
            node_ca: Some(ClusterCa::generate_node_ca()?),
            service_account_key: Some(
                crate::service_accounts::generate_key()
                    .map_err(|e| StartError::Store(e.message))?,
            ),
            client_ca: Some(ClusterCa::generate_client_ca()?),
        };
        let value = serde_json::to_vec(&secrets).map_err(|e| StartError::Store(e.to_string()))?;
        match store.put(CLUSTER_KEY.as_bytes(), &value, 0, Some(0)).await {
            Ok(_) => {
                let token = new_secret().map_err(|e| StartError::Store(e.message))?;
                let record = TokenRecord::admin();
                store_token(store, &token, &record)
                    .await
                    .map_err(|e| StartError::Store(e.message))?;
                return Ok((secrets, Some(token)));
            }
            // Another member created them first: read theirs.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(failed(e)),
        }
    }
}

/// The cluster's secrets as this member has them (a local read), for requests.
pub async fn read(store: &Store) -> ApiResult<ClusterSecrets> {
    let range = RangeRequest {
        key: CLUSTER_KEY.as_bytes().to_vec(),
        ..Default::default()
    };
    let found = store
        .range(range, false)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let kv = found
        .kvs
        .first()
        .ok_or_else(|| ApiError::unavailable("the cluster has no CA yet"))?;
    serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))
}
