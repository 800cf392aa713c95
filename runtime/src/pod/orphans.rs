//! Removing what belongs to no wanted pod: pods, containers and network attachments
//! left by a crash between steps or no longer asked for.

use std::time::Duration;

use super::record::PodRecord;
use super::{PodRuntime, blocking};
use crate::error::Result;

impl PodRuntime {
    /// Removes what belongs to no wanted pod: pods for which `keep` is false (stopped
    /// at once), containers of the helper and network attachments that no pod record
    /// names (left by a crash between steps). Returns what was removed.
    pub async fn remove_orphans(&self, keep: impl Fn(&PodRecord) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut known = std::collections::BTreeSet::new();
        for record in self.pods()? {
            if keep(&record) {
                known.insert(record.pause_id.clone());
                known.extend(record.containers.values().filter_map(|c| c.id.clone()));
                known.insert(record.uid.clone());
            } else {
                self.stop_pod(&record.uid, Duration::ZERO).await?;
                removed.push(format!("pod {}", record.key()));
            }
        }
        let runtime = self.runtime.clone();
        for state in blocking(move || runtime.list()).await? {
            if !known.contains(state.id()) {
                self.remove_container(state.id()).await?;
                removed.push(format!("container {}", state.id()));
            }
        }
        if let Some(network) = &self.network {
            for owner in network.attached()? {
                if !known.contains(&owner) {
                    let network = network.clone();
                    let uid = owner.clone();
                    blocking(move || network.detach(&uid)).await?;
                    removed.push(format!("network attachment {owner}"));
                }
            }
        }
        Ok(removed)
    }
}
