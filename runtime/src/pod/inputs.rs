//! What a pod takes from the API besides its own spec: the ConfigMaps and Secrets it
//! names (environment, volumes, image pull secrets), the directories of the volumes
//! its PersistentVolumeClaims are bound to, and the service-account tokens its
//! projected volumes ask for, as the node agent last read them. Kept in memory per
//! pod, never on disk; a restarted agent reads them again.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::tokens::{ServiceAccountToken, TokenKey};
use crate::image::pull_secrets::{self, PullCredential};

/// One object as read: itself, or why it is not at hand.
pub type Read<T> = std::result::Result<T, Missing>;

/// Why an object is not at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The API has none of that name (kubelet's `configmap "x" not found`): an
    /// optional source is then skipped.
    NotFound(String),
    /// It could not be read (the API away, refused): nothing is made without it,
    /// optional or not.
    Unreadable(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotFound(m) | Missing::Unreadable(m) => f.write_str(m),
        }
    }
}

/// A pod's ConfigMaps, Secrets and claims by name, and its tokens.
#[derive(Clone, Debug, Default)]
pub struct PodInputs {
    /// The ConfigMaps it names.
    pub config_maps: BTreeMap<String, Read<ConfigMap>>,
    /// The Secrets it names.
    pub secrets: BTreeMap<String, Read<Secret>>,
    /// The volumes of the claims it names, by claim.
    pub claims: BTreeMap<String, Read<ClaimVolume>>,
    /// The bound service-account tokens of its projected volumes, by what they were
    /// requested for ([`super::tokens::keys`]).
    pub tokens: BTreeMap<TokenKey, Read<ServiceAccountToken>>,
}

/// Where a claim's volume is on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimVolume {
    /// The volume's directory (its `hostPath` or `local` path).
    pub path: std::path::PathBuf,
    /// Whether the directory is made when missing (`hostPath` type
    /// `DirectoryOrCreate`: the local-path provisioner's volumes).
    pub create: bool,
}

impl PodInputs {
    /// Whether a token is to be requested again at `now`: one past 80 % of its TTL
    /// ([`ServiceAccountToken::needs_refresh`]), or one that could not be had.
    pub fn tokens_due(&self, now: jiff::Timestamp) -> bool {
        self.tokens.values().any(|t| match t {
            Ok(t) => t.needs_refresh(now),
            Err(_) => true,
        })
    }

    /// The credentials of the Secrets `names` (a pod's `imagePullSecrets`), in the
    /// order they are tried; those missing or not registry Secrets are left out (the
    /// agent said so when it read them).
    pub fn pull_credentials<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<PullCredential> {
        let mut out: Vec<PullCredential> = names
            .into_iter()
            .filter_map(|n| self.secrets.get(n)?.as_ref().ok())
            .filter_map(|s| pull_secrets::credentials(s).ok())
            .flatten()
            .collect();
        pull_secrets::sort(&mut out);
        out
    }
}

/// Every pod's inputs, by uid.
#[derive(Debug, Default)]
pub(super) struct Inputs(std::sync::Mutex<std::collections::HashMap<String, Arc<PodInputs>>>);

impl Inputs {
    pub(super) fn set(&self, uid: &str, inputs: PodInputs) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.insert(uid.to_string(), Arc::new(inputs));
    }

    pub(super) fn forget(&self, uid: &str) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.remove(uid);
    }

    /// Pod `uid`'s, empty when the agent gave none.
    pub(super) fn of(&self, uid: &str) -> Arc<PodInputs> {
        let all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.get(uid).cloned().unwrap_or_default()
    }
}
