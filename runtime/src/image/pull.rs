//! Pulling an image from a registry with oci-client into the store: the manifest (the
//! host's platform picked from an index), the config and every missing layer, each
//! checked against its digest. Each registry's mirrors are tried first, as
//! `registries.yaml` lists them ([`super::registries`]), each with the credentials
//! that serve it ([`super::pull_secrets`] first). Plain HTTP only for endpoints
//! written `http://` and registries listed as insecure.

use std::sync::Arc;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageIndex, ImageManifest};
use tokio::io::AsyncWriteExt;

use super::pull_secrets::PullCredential;
use super::registries::{Endpoint, Registries};
use super::{ImageStore, sha256, sha256_file};
use crate::error::{Error, Result, io};

/// A progress line sink (`pulling docker.io/library/busybox:latest: layer 1/1 …`).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// A layer download's progress: (digest, bytes downloaded, layer size), as bytes
/// arrive.
pub type LayerProgress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// How to reach registries.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) reached over plain HTTP; everything else is HTTPS.
    pub insecure_registries: Vec<String>,
    /// Basic auth (user, password) for endpoints `registries` has none for;
    /// anonymous when None.
    pub basic_auth: Option<(String, String)>,
    /// Mirrors, credentials and TLS per registry (`registries.yaml`).
    pub registries: Arc<Registries>,
    /// The credentials of the pod's image pull secrets, in the order they are tried
    /// ([`super::pull_secrets`]): before those of `registries`.
    pub pull_secrets: Arc<[PullCredential]>,
    /// Where progress lines go.
    pub progress: Option<Progress>,
    /// Where the layers' byte counts go (a progress bar).
    pub layer_progress: Option<LayerProgress>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(u, _)| (u, "…")),
            )
            .field("pull_secrets", &self.pull_secrets)
            .finish_non_exhaustive()
    }
}

const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Pulls `reference` (normalised) into `store` from the first of its endpoints (its
/// mirrors, then its registry) that serves it; returns the manifest digest.
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
    let endpoints = options.registries.endpoints(parsed.registry());
    let mut attempts = Vec::new();
    for endpoint in &endpoints {
        for (source, auth) in auths(endpoint, parsed.repository(), options)? {
            attempts.push((endpoint, source, auth));
        }
    }
    let mut failures = Vec::new();
    let single = attempts.len() == 1;
    for (endpoint, source, auth) in attempts {
        match pull_from(store, reference, &parsed, endpoint, auth, options).await {
            Ok(digest) => return Ok(digest),
            Err(e) if single => return Err(e),
            Err(e) => {
                let why = match e {
                    Error::Image { message, .. } => message,
                    other => other.to_string(),
                };
                let with = source.map(|s| format!(" with the credentials of {s}"));
                let attempt = format!("{}{}", endpoint.host, with.unwrap_or_default());
                say(options, format!("{reference}: {attempt} failed: {why}"));
                failures.push(format!("{attempt}: {why}"));
            }
        }
    }
    Err(failed(format!(
        "no endpoint served it ({})",
        failures.join("; ")
    )))
}

fn say(options: &PullOptions, line: String) {
    if let Some(progress) = &options.progress {
        progress(&line);
    }
}

/// The credentials to try at `endpoint` for `repository`, in order, each with where
/// it came from: the pod's pull secrets' that serve it, then `registries.yaml`'s (or
/// the basic auth given); anonymous when there are none.
fn auths(
    endpoint: &Endpoint,
    repository: &str,
    options: &PullOptions,
) -> Result<Vec<(Option<String>, RegistryAuth)>> {
    let mut out: Vec<(Option<String>, RegistryAuth)> = options
        .pull_secrets
        .iter()
        .filter(|c| c.serves(&endpoint.host, repository))
        .map(|c| {
            let auth = RegistryAuth::Basic(c.username.clone(), c.password.clone());
            (Some(c.source.clone()), auth)
        })
        .collect();
    let configured = options
        .registries
        .credentials(&endpoint.host)?
        .or_else(|| options.basic_auth.clone());
    if let Some((user, password)) = configured {
        out.push((None, RegistryAuth::Basic(user, password)));
    }
    if out.is_empty() {
        out.push((None, RegistryAuth::Anonymous));
    }
    Ok(out)
}

/// The client for `endpoint`.
fn client_for(endpoint: &Endpoint, options: &PullOptions) -> Result<Client> {
    let mut plain = options.insecure_registries.clone();
    if endpoint.plain_http {
        plain.push(endpoint.host.clone());
    }
    let tls = options.registries.tls(&endpoint.host);
    let mut extra_root_certificates = Vec::new();
    if let Some(ca) = tls.and_then(|t| t.ca_file.as_ref()) {
        extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data: std::fs::read(ca).map_err(io(ca))?,
        });
    }
    Ok(Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        accept_invalid_certificates: tls.is_some_and(|t| t.insecure_skip_verify),
        extra_root_certificates,
        ..Default::default()
    }))
}

/// Pulls `reference` (parsed: `parsed`) from `endpoint` with `auth`.
async fn pull_from(
    store: &ImageStore,
    reference: &str,
    parsed: &Reference,
    endpoint: &Endpoint,
    auth: RegistryAuth,
    options: &PullOptions,
) -> Result<String> {
    let failed = |message: String| Error::Image {
        reference: reference.to_string(),
        message,
    };
    let client = client_for(endpoint, options)?;
    let mut parsed = parsed.clone();
    if !endpoint.origin {
        parsed.set_mirror_registry(endpoint.host.clone());
    }
    let say = |line: String| say(options, line);
    say(if endpoint.origin {
        format!("pulling {reference}")
    } else {
        format!("pulling {reference} from the mirror {}", endpoint.host)
    });
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
    // The missing layers, PARALLEL_LAYERS at a time.
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_LAYERS));
    let mut fetching = tokio::task::JoinSet::new();
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
        let (client, image_ref, limit) = (client.clone(), image_ref.clone(), limit.clone());
        let size = layer.size();
        let report = options
            .layer_progress
            .clone()
            .map(|report| (report, layer_digest.clone(), size));
        fetching.spawn(async move {
            let _turn = limit.acquire_owned().await;
            fetch_layer(&client, &image_ref, &layer_digest, &path, report)
                .await
                .map_err(|message| format!("layer {layer_digest}: {message}"))
        });
    }
    // Every download finishes (its file kept or removed) before the first failure is
    // reported: none is left half-written.
    let mut first_failure = None;
    while let Some(done) = fetching.join_next().await {
        let outcome = done
            .map_err(|e| format!("a layer download failed: {e}"))
            .and_then(|fetched| fetched);
        if let Err(message) = outcome {
            first_failure.get_or_insert(message);
        }
    }
    if let Some(message) = first_failure {
        return Err(failed(message));
    }
    store.set_ref(reference, Some(&digest))?;
    say(format!("pulled {reference} ({digest})"));
    Ok(digest)
}

/// Layers downloaded at once (containerd's `max_concurrent_downloads` default).
const PARALLEL_LAYERS: usize = 3;

/// A writer that reports how many bytes went through it.
struct Counted<W> {
    inner: W,
    written: u64,
    report: Option<(LayerProgress, String, u64)>,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.written += *n as u64;
            if let Some((report, digest, size)) = &this.report {
                report(digest, this.written, *size);
            }
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Downloads the layer `digest` of `image_ref` to `path` (through a temporary file,
/// checked against the digest), reporting its bytes to `report` (with its size).
async fn fetch_layer(
    client: &Client,
    image_ref: &Reference,
    digest: &str,
    path: &std::path::Path,
    report: Option<(LayerProgress, String, u64)>,
) -> std::result::Result<(), String> {
    let tmp = super::unique_tmp(path);
    let file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut file = Counted {
        inner: file,
        written: 0,
        report,
    };
    let result = client.pull_blob(image_ref, digest, &mut file).await;
    let flushed = file.flush().await;
    drop(file);
    let checked = match (result, flushed) {
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(format!("{}: {e}", tmp.display())),
        (Ok(()), Ok(())) => match sha256_file(&tmp) {
            Ok(got) if got == digest => Ok(()),
            Ok(got) => Err(format!("arrived with digest {got}")),
            Err(e) => Err(e.to_string()),
        },
    };
    match checked {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
