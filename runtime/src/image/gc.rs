//! Image garbage collection at kubelet's thresholds: when the image store's
//! filesystem is more than `high_percent` used, the images no pod on the node uses are
//! removed, least recently used first, until it is below `low_percent` (kubelet's
//! `--image-gc-high-threshold` 85 and `--image-gc-low-threshold` 80); an image used
//! within `min_age` stays (`--image-minimum-gc-age`, 2 minutes). Last use is the
//! modification time of the image's manifest blob, set each time the image is handed
//! to a container ([`ImageStore::image`](super::ImageStore)).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::{ImageStore, normalize};
use crate::error::Result;

/// When and how far to collect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPolicy {
    /// Collect above this share of the filesystem used (percent; 100: never).
    pub high_percent: u8,
    /// Collect down to this share.
    pub low_percent: u8,
    /// Images used more recently than this stay.
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// The share of `path`'s filesystem in use, in percent.
pub fn used_percent(path: &std::path::Path) -> Result<u8> {
    let s = nix::sys::statvfs::statvfs(path)
        .map_err(crate::error::sys(format!("statvfs {}", path.display())))?;
    let total = s.blocks() as u128 * s.fragment_size() as u128;
    let available = s.blocks_available() as u128 * s.fragment_size() as u128;
    if total == 0 {
        return Ok(0);
    }
    Ok(u8::try_from((total - available.min(total)) * 100 / total).unwrap_or(100))
}

impl ImageStore {
    /// Removes unused images as `policy` says, while `used()` (the filesystem's use in
    /// percent, read again after each removal) is above the low threshold. `in_use`:
    /// the references the node's pods run (normalised here); an image whose digest an
    /// in-use reference names stays too, and so do the files of `running` (the
    /// manifest digests the node's containers were made from) and any file younger
    /// than `policy.min_age` (a pull under way). Returns the references removed, in
    /// order.
    pub fn collect_garbage(
        &self,
        policy: &GcPolicy,
        in_use: &BTreeSet<String>,
        running: &BTreeSet<String>,
        mut used: impl FnMut() -> Result<u8>,
    ) -> Result<Vec<String>> {
        if used()? <= policy.high_percent {
            return Ok(Vec::new());
        }
        let refs = self.refs()?;
        let keep: BTreeSet<&String> = in_use
            .iter()
            .filter_map(|r| refs.get(r).or_else(|| refs.get(&normalize(r))))
            .collect();
        let now = SystemTime::now();
        let mut candidates: Vec<(SystemTime, String)> = Vec::new();
        for (reference, digest) in &refs {
            if keep.contains(digest) {
                continue;
            }
            let last_used = std::fs::metadata(self.blob_path(digest)?)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if now.duration_since(last_used).unwrap_or_default() < policy.min_age {
                continue;
            }
            candidates.push((last_used, reference.clone()));
        }
        candidates.sort();
        let mut removed = Vec::new();
        for (_, reference) in candidates {
            if used()? < policy.low_percent {
                break;
            }
            self.set_ref(&reference, None)?;
            self.sweep(running, Some(policy.min_age))?;
            removed.push(reference);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A one-layer image stored under `reference`, last used (and pulled) `age` ago;
    /// its manifest digest.
    fn image(store: &ImageStore, reference: &str, age: Duration) -> String {
        let mut header = tar::Header::new_ustar();
        let content = reference.as_bytes();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_data(&mut header, "name", content).unwrap();
        let layer = tar.into_inner().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [super::super::sha256(&layer)]}}))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": super::super::sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": super::super::sha256(&layer), "size": layer.len()}]}))
        .unwrap();
        let digest = super::super::sha256(&manifest);
        for bytes in [&layer, &config, &manifest] {
            store.put_blob(&super::super::sha256(bytes), bytes).unwrap();
        }
        store.set_ref(reference, Some(&digest)).unwrap();
        let when = SystemTime::now() - age;
        for bytes in [&layer, &config, &manifest] {
            std::fs::File::options()
                .write(true)
                .open(store.blob_path(&super::super::sha256(bytes)).unwrap())
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        digest
    }

    #[test]
    fn unused_images_go_least_recently_used_first_until_below_the_low_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let hour = Duration::from_secs(3600);
        image(&store, "docker.io/library/old:1", 5 * hour);
        image(&store, "docker.io/library/older:1", 9 * hour);
        image(&store, "docker.io/library/running:1", 20 * hour);
        image(&store, "docker.io/library/fresh:1", Duration::from_secs(10));
        image(&store, "docker.io/library/middle:1", 7 * hour);
        let in_use = BTreeSet::from(["running:1".to_string()]);
        // Each image takes 5% of the disk: 25% used by images, 70% by the rest.
        let used = || Ok(70 + 5 * store.list().unwrap().len() as u8);
        let policy = GcPolicy {
            high_percent: 90,
            low_percent: 84,
            ..GcPolicy::default()
        };
        let removed = store
            .collect_garbage(&policy, &in_use, &BTreeSet::new(), used)
            .unwrap();
        // 95% → older (90%) → middle (85%) → old (80% < 84%): the running image and
        // the one used seconds ago stay.
        assert_eq!(
            removed,
            [
                "docker.io/library/older:1",
                "docker.io/library/middle:1",
                "docker.io/library/old:1"
            ]
        );
        let left: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.reference)
            .collect();
        assert_eq!(
            left,
            ["docker.io/library/fresh:1", "docker.io/library/running:1"]
        );
        // Their blobs and unpacked layers went with them.
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(blobs, 2 * 3);
        // Below the high threshold: nothing is looked at.
        let calls = Cell::new(0);
        let quiet = store
            .collect_garbage(&policy, &BTreeSet::new(), &BTreeSet::new(), || {
                calls.set(calls.get() + 1);
                Ok(90)
            })
            .unwrap();
        assert!(quiet.is_empty());
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn running_containers_images_and_pulls_under_way_keep_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let hour = Duration::from_secs(3600);
        // A container still runs the image `app:1` named before it was pulled again.
        let running = image(&store, "docker.io/library/app:1", 5 * hour);
        store.set_ref("docker.io/library/app:1", None).unwrap();
        image(&store, "docker.io/library/unused:1", 5 * hour);
        // A pull under way: its layer written, its reference not yet.
        store
            .put_blob(&super::super::sha256(b"partial"), b"partial")
            .unwrap();
        let policy = GcPolicy {
            high_percent: 50,
            low_percent: 40,
            ..GcPolicy::default()
        };
        let removed = store
            .collect_garbage(
                &policy,
                &BTreeSet::new(),
                &BTreeSet::from([running]),
                || Ok(90),
            )
            .unwrap();
        assert_eq!(removed, ["docker.io/library/unused:1"]);
        // The running image's three blobs and the pull's one stay.
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(blobs, 3 + 1);
    }
}
