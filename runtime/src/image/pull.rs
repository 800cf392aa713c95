//! Pulling an image from a registry with oci-client into the store: the manifest (the
//! host's platform picked from an index), the config and every missing layer, each
//! checked against its digest. Plain HTTP only for registries listed as insecure.

use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageIndex, ImageManifest};
use tokio::io::AsyncWriteExt;

use super::{ImageStore, sha256, sha256_file};
use crate::error::{Error, Result, io};

/// A progress line sink (`pulling docker.io/library/busybox:latest: layer 1/1 …`).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// How to reach registries.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) reached over plain HTTP; everything else is HTTPS.
    pub insecure_registries: Vec<String>,
    /// Basic auth (user, password); anonymous when None.
    pub basic_auth: Option<(String, String)>,
    /// Where progress lines go.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(u, _)| (u, "…")),
            )
            .finish_non_exhaustive()
    }
}

const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Pulls `reference` (normalised) into `store`; returns the manifest digest.
pub(super) async fn pull(
    store: &ImageStore,
    reference: &str,
    options: &PullOptions,
) -> Result<String> {
    let failed = |message: String| Error::Image {
        reference: reference.to_string(),
        message,
    };
    // rustls needs one process-wide crypto provider; ring is the project's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed: Reference = reference
        .parse()
        .map_err(|e| failed(format!("not an image reference: {e}")))?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(options.insecure_registries.clone()),
        ..Default::default()
    });
    let auth = match &options.basic_auth {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let say = |line: String| {
        if let Some(progress) = &options.progress {
            progress(&line);
        }
    };
    say(format!("pulling {reference}"));
    let (mut bytes, mut digest) = client
        .pull_manifest_raw(&parsed, &auth, MANIFEST_TYPES)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut image_ref = parsed.clone();
    if let Ok(index) = ImageIndex::from_reader(&bytes[..])
        && !index.manifests().is_empty()
        && ImageManifest::from_reader(&bytes[..]).is_err()
    {
        {
            let arch = host_arch();
            let chosen = index
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == "linux" && p.architecture().to_string() == arch
                    })
                })
                .ok_or_else(|| failed(format!("no linux/{arch} image in the index")))?;
            image_ref = parsed.clone_with_digest(chosen.digest().to_string());
            (bytes, digest) = client
                .pull_manifest_raw(&image_ref, &auth, MANIFEST_TYPES)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    if sha256(&bytes) != digest {
        // Registries that answer a tag with a digest of other bytes are broken.
        digest = sha256(&bytes);
    }
    store.put_blob(&digest, &bytes)?;
    let manifest =
        ImageManifest::from_reader(&bytes[..]).map_err(|e| failed(format!("manifest: {e}")))?;
    let config_digest = manifest.config().digest().to_string();
    let mut config = Vec::new();
    client
        .pull_blob(&image_ref, config_digest.as_str(), &mut config)
        .await
        .map_err(|e| failed(format!("config: {e}")))?;
    store.put_blob(&config_digest, &config)?;
    let total = manifest.layers().len();
    for (i, layer) in manifest.layers().iter().enumerate() {
        let layer_digest = layer.digest().to_string();
        let path = store.blob_path(&layer_digest)?;
        if path.exists() {
            say(format!(
                "{reference}: layer {}/{total} {layer_digest} already present",
                i + 1
            ));
            continue;
        }
        say(format!(
            "{reference}: layer {}/{total} {layer_digest} ({} bytes)",
            i + 1,
            layer.size()
        ));
        let tmp = super::unique_tmp(&path);
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        let result = client
            .pull_blob(&image_ref, layer_digest.as_str(), &mut file)
            .await;
        file.flush().await.map_err(io(&tmp))?;
        drop(file);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(format!("layer {layer_digest}: {e}")));
        }
        let got = sha256_file(&tmp)?;
        if got != layer_digest {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(format!(
                "layer {layer_digest} arrived with digest {got}"
            )));
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    store.set_ref(reference, Some(&digest))?;
    say(format!("pulled {reference} ({digest})"));
    Ok(digest)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
