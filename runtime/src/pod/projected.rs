//! ConfigMap, Secret, downwardAPI and projected volumes, written as kubelet's
//! `AtomicWriter` writes them: the files in a timestamped directory
//! (`..2026_12_04_23_10_00.123456789`), `..data` a symlink to it swapped atomically
//! (a new symlink renamed over the old), each top-level entry a symlink into `..data`.
//! A container always sees one whole version; a change reaches running containers
//! when the agent has read it (within a minute), except through a `subPath`, which
//! keeps the file it was started with (as in Kubernetes). A projected
//! `serviceAccountToken` is the token the agent holds for it ([`super::tokens`]),
//! swapped in the same way when the agent renews it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};

use super::env::{field, lookup, resource};
use super::inputs::{Missing, PodInputs};
use super::record::PodRecord;
use super::tokens::TokenKey;

/// A volume's files: relative path → (contents, mode).
pub(super) type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// Kubelet's default file mode for these volumes.
const DEFAULT_MODE: i32 = 0o644;

/// Whether `volume` is one of the kinds this module writes.
pub(super) fn is_projected(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    u32::try_from(item.or(default).unwrap_or(DEFAULT_MODE) & 0o777).unwrap_or(0o644)
}

/// A relative path that stays inside the volume, written plainly (no `..` or `.`
/// part, no empty part — `a//b`, `a/` —, not absolute, not starting with `..`, which
/// the writer keeps for itself).
fn checked_path(path: &str) -> Result<&str, String> {
    let inside = !path.is_empty()
        && !path.starts_with("..")
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if inside {
        Ok(path)
    } else {
        Err(format!(
            "invalid path {path:?}: must be relative and may not contain '..'"
        ))
    }
}

/// The entries of a ConfigMap or Secret (`entries`) placed as `items` say (every key
/// under its own name without them).
fn place(
    payload: &mut Payload,
    entries: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
    what: &str,
) -> Result<(), String> {
    match items {
        None => {
            for (key, value) in entries {
                payload.insert(
                    checked_path(&key)?.to_string(),
                    (value, mode(None, default_mode)),
                );
            }
        }
        Some(items) => {
            for item in items {
                match entries.get(&item.key) {
                    Some(value) => {
                        let path = checked_path(&item.path)?.to_string();
                        payload.insert(path, (value.clone(), mode(item.mode, default_mode)));
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "{what} references non-existent config key: {}",
                            item.key
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn config_map_entries(
    inputs: &PodInputs,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    match lookup(&inputs.config_maps, name, "configmap") {
        Ok(c) => {
            let text = c
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
            let binary = c
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()));
            Ok(Some(text.chain(binary).collect()))
        }
        Err(Missing::NotFound(_)) if optional => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn secret_entries(
    inputs: &PodInputs,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    match lookup(&inputs.secrets, name, "secret") {
        Ok(s) => Ok(Some(
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
        )),
        Err(Missing::NotFound(_)) if optional => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// One source of a volume's files.
enum Source<'a> {
    /// A ConfigMap's entries (`secret`: false) or a Secret's, placed as `items` say.
    Keyed {
        secret: bool,
        name: &'a str,
        items: Option<&'a [KeyToPath]>,
        optional: bool,
    },
    /// The pod's fields.
    Downward(&'a [DownwardAPIVolumeFile]),
    /// A bound service-account token, at `path`.
    Token { key: TokenKey, path: &'a str },
}

/// The sources of `volume` (one of [`is_projected`]'s kinds), its default mode and
/// what it is called in errors.
fn sources(volume: &Volume) -> Result<(Vec<Source<'_>>, Option<i32>, String), String> {
    let named = |kind: &str| format!("{kind} volume {:?}", volume.name);
    if let Some(c) = &volume.config_map {
        let source = Source::Keyed {
            secret: false,
            name: &c.name,
            items: c.items.as_deref(),
            optional: c.optional.unwrap_or(false),
        };
        return Ok((vec![source], c.default_mode, named("configMap")));
    }
    if let Some(s) = &volume.secret {
        let source = Source::Keyed {
            secret: true,
            name: s.secret_name.as_deref().unwrap_or_default(),
            items: s.items.as_deref(),
            optional: s.optional.unwrap_or(false),
        };
        return Ok((vec![source], s.default_mode, named("secret")));
    }
    if let Some(d) = &volume.downward_api {
        let items = d.items.as_deref().unwrap_or_default();
        return Ok((
            vec![Source::Downward(items)],
            d.default_mode,
            named("downwardAPI"),
        ));
    }
    let Some(p) = &volume.projected else {
        return Ok((Vec::new(), None, named("unknown")));
    };
    let what = named("projected");
    let mut out = Vec::new();
    for source in p.sources.iter().flatten() {
        out.push(if let Some(c) = &source.config_map {
            Source::Keyed {
                secret: false,
                name: &c.name,
                items: c.items.as_deref(),
                optional: c.optional.unwrap_or(false),
            }
        } else if let Some(s) = &source.secret {
            Source::Keyed {
                secret: true,
                name: &s.name,
                items: s.items.as_deref(),
                optional: s.optional.unwrap_or(false),
            }
        } else if let Some(d) = &source.downward_api {
            Source::Downward(d.items.as_deref().unwrap_or_default())
        } else if let Some(t) = &source.service_account_token {
            Source::Token {
                key: TokenKey::of(t),
                path: &t.path,
            }
        } else {
            return Err(format!(
                "{what}: only configMap, secret, downwardAPI and serviceAccountToken sources are supported here"
            ));
        });
    }
    Ok((out, p.default_mode, what))
}

/// The files of `volume` (one of [`is_projected`]'s kinds) of the pod in `record`
/// (address `pod_ip`), from `inputs`; why not, when a required source is missing.
pub(super) fn payload(
    volume: &Volume,
    record: &PodRecord,
    pod_ip: &str,
    inputs: &PodInputs,
    allocatable: super::Allocatable,
) -> Result<Payload, String> {
    let (sources, default_mode, what) = sources(volume)?;
    let mut payload = Payload::new();
    for source in sources {
        match source {
            Source::Keyed {
                secret,
                name,
                items,
                optional,
            } => {
                let entries = if secret {
                    secret_entries(inputs, name, optional)?
                } else {
                    config_map_entries(inputs, name, optional)?
                };
                if let Some(entries) = entries {
                    place(&mut payload, entries, items, default_mode, optional, &what)?;
                }
            }
            Source::Downward(items) => {
                for item in items {
                    let path = checked_path(&item.path)?.to_string();
                    let value = match (&item.field_ref, &item.resource_field_ref) {
                        (Some(f), _) => field(record, pod_ip, &f.field_path).ok_or_else(|| {
                            format!(
                                "downwardAPI {path}: fieldRef {:?} is not supported",
                                f.field_path
                            )
                        })?,
                        (None, Some(r)) => {
                            let spec = record.pod.spec.clone().unwrap_or_default();
                            // A volume's item names its container (validation
                            // requires it).
                            resource(&spec, "", r, allocatable)
                                .map_err(|e| format!("downwardAPI {path}: {e}"))?
                        }
                        (None, None) => {
                            return Err(format!(
                                "downwardAPI {path}: neither fieldRef nor resourceFieldRef"
                            ));
                        }
                    };
                    payload.insert(path, (value.into_bytes(), mode(item.mode, default_mode)));
                }
            }
            Source::Token { key, path } => {
                let path = checked_path(path)?.to_string();
                let token = match inputs.tokens.get(&key) {
                    Some(Ok(token)) => token,
                    // Kubelet's words, which the agent wrote (`failed to fetch token: …`).
                    Some(Err(e)) => return Err(e.to_string()),
                    None => {
                        return Err(format!(
                            "failed to fetch token: no token requested yet for {key}"
                        ));
                    }
                };
                // Kubelet's projected volume: the token has the volume's defaultMode
                // (0600 with an fsGroup, which this runtime does not apply).
                let contents = token.token.clone().into_bytes();
                payload.insert(path, (contents, mode(None, default_mode)));
            }
        }
    }
    Ok(payload)
}

/// Whether the version `dir` shows holds exactly `payload` (files, contents, modes).
pub(super) fn holds(dir: &Path, payload: &Payload) -> bool {
    fn walk(root: &Path, at: &Path, found: &mut Payload) -> std::io::Result<()> {
        for entry in std::fs::read_dir(at)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(root, &path, found)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let mode = entry.metadata()?.permissions().mode() & 0o777;
                let contents = std::fs::read(&path)?;
                found.insert(relative.to_string_lossy().into_owned(), (contents, mode));
            }
        }
        Ok(())
    }
    let data = dir.join("..data");
    let mut found = Payload::new();
    data.is_dir() && walk(&data, &data, &mut found).is_ok() && found == *payload
}

/// Makes `dir` hold exactly `payload`, atomically for its readers.
pub(super) fn write(dir: &Path, payload: &Payload) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let version = dir.join(&stamp);
    std::fs::create_dir(&version)?;
    let filled = (|| {
        std::fs::set_permissions(&version, std::fs::Permissions::from_mode(0o755))?;
        for (path, (contents, mode)) in payload {
            let file = version.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, contents)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
        }
        Ok(())
    })();
    if let Err(e) = filled {
        // Clashing paths (`a` and `a/b`) or a full disk: no version is left behind.
        let _ = std::fs::remove_dir_all(&version);
        return Err(e);
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    // The visible names: one symlink per top-level entry, stale ones removed.
    let tops: std::collections::BTreeSet<&str> =
        payload.keys().filter_map(|p| p.split('/').next()).collect();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("..") && !tops.contains(name.as_ref()) {
            std::fs::remove_file(dir.join(name.as_ref()))?;
        }
    }
    for top in tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link)?;
        }
    }
    if let Some(old) = old.filter(|o| *o != Path::new(&stamp)) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, path: &str) -> String {
        std::fs::read_to_string(dir.join(path)).unwrap()
    }

    #[test]
    fn versions_are_swapped_whole_and_stale_names_go() {
        let dir = tempfile::tempdir().unwrap();
        let first: Payload = [
            ("a".to_string(), (b"1".to_vec(), 0o644)),
            ("sub/b".to_string(), (b"2".to_vec(), 0o600)),
        ]
        .into();
        write(dir.path(), &first).unwrap();
        assert_eq!(read(dir.path(), "a"), "1");
        assert_eq!(read(dir.path(), "sub/b"), "2");
        let mode = std::fs::metadata(dir.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let first_version = std::fs::read_link(dir.path().join("..data")).unwrap();
        let second: Payload = [("a".to_string(), (b"one".to_vec(), 0o644))].into();
        write(dir.path(), &second).unwrap();
        assert_eq!(read(dir.path(), "a"), "one");
        assert!(!dir.path().join("sub").exists());
        assert!(!dir.path().join(first_version).exists());
        // Only ..data, one version, and the visible name.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[1..], ["..data", "a"]);
        assert!(holds(dir.path(), &second));
        assert!(!holds(dir.path(), &first));
    }

    /// A pod with the volume the API server's ServiceAccount admission adds, its
    /// `kube-root-ca.crt` ConfigMap, and `token` as its token.
    fn kube_api_access(default_mode: Option<i32>, token: &str) -> (Volume, PodRecord, PodInputs) {
        let mut volume: Volume = serde_json::from_value(serde_json::json!({
            "name": "kube-api-access-abcde",
            "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}
        }))
        .unwrap();
        if let Some(p) = volume.projected.as_mut() {
            p.default_mode = default_mode;
        }
        let pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], "volumes": [volume.clone()]}
        }))
        .unwrap();
        let record = PodRecord {
            pod,
            uid: "u1".to_string(),
            engine: Default::default(),
            attachment: None,
            pause_id: String::new(),
            containers: Default::default(),
            created_at_ns: 0,
        };
        let ca = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "CA"}
        }))
        .unwrap();
        let issued = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let token = super::super::tokens::ServiceAccountToken {
            token: token.to_string(),
            issued,
            expires: issued + jiff::SignedDuration::from_secs(3607),
        };
        let key = TokenKey {
            audience: String::new(),
            expiration_seconds: 3607,
        };
        let inputs = PodInputs {
            config_maps: [("kube-root-ca.crt".to_string(), Ok(ca))].into(),
            tokens: [(key, Ok(token))].into(),
            ..Default::default()
        };
        (volume, record, inputs)
    }

    fn node() -> super::super::Allocatable {
        super::super::Allocatable {
            cpu_milli: 1000,
            memory: 1 << 30,
        }
    }

    #[test]
    fn the_token_is_written_with_the_volumes_mode_and_swapped_when_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let (volume, record, inputs) = kube_api_access(Some(0o440), "first.jwt");
        let payload = payload(&volume, &record, "", &inputs, node()).unwrap();
        assert_eq!(payload.get("token"), Some(&(b"first.jwt".to_vec(), 0o440)));
        assert_eq!(payload.get("ca.crt"), Some(&(b"CA".to_vec(), 0o440)));
        assert_eq!(payload.get("namespace"), Some(&(b"shop".to_vec(), 0o440)));
        write(dir.path(), &payload).unwrap();
        assert_eq!(read(dir.path(), "token"), "first.jwt");
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o440);
        // Renewed: a new version, swapped whole.
        let (_, _, renewed) = kube_api_access(Some(0o440), "second.jwt");
        let next = super::payload(&volume, &record, "", &renewed, node()).unwrap();
        assert!(!holds(dir.path(), &next));
        let before = std::fs::read_link(dir.path().join("..data")).unwrap();
        write(dir.path(), &next).unwrap();
        assert_eq!(read(dir.path(), "token"), "second.jwt");
        assert_ne!(
            std::fs::read_link(dir.path().join("..data")).unwrap(),
            before
        );
        assert!(holds(dir.path(), &next));
        // Without a defaultMode, kubelet's 0644.
        let (volume, record, inputs) = kube_api_access(None, "t");
        let plain = super::payload(&volume, &record, "", &inputs, node()).unwrap();
        assert_eq!(plain.get("token"), Some(&(b"t".to_vec(), 0o644)));
    }

    #[test]
    fn a_token_that_could_not_be_had_fails_the_volume_in_kubelets_words() {
        let (volume, record, mut inputs) = kube_api_access(None, "t");
        for token in inputs.tokens.values_mut() {
            *token = Err(Missing::Unreadable(
                "failed to fetch token: serviceaccounts \"robot\" not found".into(),
            ));
        }
        assert_eq!(
            payload(&volume, &record, "", &inputs, node()).unwrap_err(),
            "failed to fetch token: serviceaccounts \"robot\" not found"
        );
        inputs.tokens.clear();
        let none = payload(&volume, &record, "", &inputs, node()).unwrap_err();
        assert!(none.starts_with("failed to fetch token: "), "{none}");
    }

    #[test]
    fn paths_stay_inside_the_volume() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "..data",
            "",
            "a//b",
            "a/",
            "./a",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
        assert_eq!(checked_path("conf/app.yaml"), Ok("conf/app.yaml"));
    }

    #[test]
    fn a_version_that_cannot_be_written_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clashing: Payload = [
            ("a".to_string(), (b"1".to_vec(), 0o644)),
            ("a/b".to_string(), (b"2".to_vec(), 0o644)),
        ]
        .into();
        assert!(write(dir.path(), &clashing).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
