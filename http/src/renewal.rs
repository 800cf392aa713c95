//! Certificates renewed while in use, as kubelet's certificate manager renews its own:
//! a [`LiveCert`] (kept in [`crate::tls`]) that TLS configurations read the current
//! certificate from at each handshake, when a certificate is due for renewal
//! ([`renewal_delay`]: at a point between 70 % and 90 % of its life), and a task that
//! renews it then ([`keep_renewed`]). Established connections keep the certificate
//! they shook hands with; new ones get the new one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::tls::LiveCert;
use crate::tls::{TlsError, pem_to_der};

/// When the PEM certificate `pem` starts and stops being valid (seconds since the
/// Unix epoch).
pub fn validity(pem: &str) -> Result<(i64, i64), TlsError> {
    let der = pem_to_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::Invalid {
        what: "certificate",
        detail: e.to_string(),
    })?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// The share of its life after which a certificate is renewed: between 70 % and 90 %
/// (kubelet's `nextRotationDeadline`), where in that range picked by `pem`'s digest so
/// that certificates issued together are not all renewed at the same moment.
fn renewal_share(pem: &str) -> f64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
    let first = digest.as_ref().first().copied().unwrap_or(0);
    0.7 + 0.2 * f64::from(first) / 255.0
}

/// How long from `now` until the PEM certificate `pem` is due for renewal (zero
/// once due).
pub fn renewal_delay(pem: &str, now: SystemTime) -> Result<Duration, TlsError> {
    let (not_before, not_after) = validity(pem)?;
    let life = not_after.saturating_sub(not_before).max(0) as f64;
    let due = not_before as f64 + life * renewal_share(pem);
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(_) => 0.0,
    };
    Ok(Duration::from_secs_f64((due - now).max(0.0)))
}

/// The longest single wait: the wall clock is read again after it, so a host that
/// slept (or a clock set forward) renews on time.
const WAKE_AT_LEAST_EVERY: Duration = Duration::from_secs(600);
/// The first wait after a failed renewal; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between failed renewals.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Renews `live` (which presents `cert_pem`) whenever it is due, for as long as the
/// task runs: `renew` returns a new certificate and key (PEM). A renewal that fails,
/// or returns a certificate due no later than now, is retried after a back-off (2 s
/// doubling to 5 minutes); `what` names the certificate in the log.
pub async fn keep_renewed<F, Fut>(
    what: &'static str,
    live: Arc<LiveCert>,
    mut cert_pem: String,
    mut renew: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(String, String), String>>,
{
    let mut retry = RETRY_FIRST;
    loop {
        let delay = match renewal_delay(&cert_pem, SystemTime::now()) {
            Ok(delay) => delay,
            Err(e) => {
                tracing::warn!("the {what} certificate does not parse ({e}); renewing it");
                Duration::ZERO
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay.min(WAKE_AT_LEAST_EVERY)).await;
            continue;
        }
        let renewed = renew().await.and_then(|(cert, key)| {
            let due = renewal_delay(&cert, SystemTime::now()).map_err(|e| e.to_string())?;
            if due.is_zero() {
                return Err("the new certificate is already due for renewal".to_string());
            }
            live.replace(&cert, &key).map_err(|e| e.to_string())?;
            Ok(cert)
        });
        match renewed {
            Ok(cert) => {
                match validity(&cert) {
                    Ok((_, not_after)) => tracing::info!(
                        "the {what} certificate was renewed; the new one is valid until {not_after} (Unix time)"
                    ),
                    Err(_) => tracing::info!("the {what} certificate was renewed"),
                }
                cert_pem = cert;
                retry = RETRY_FIRST;
            }
            Err(e) => {
                tracing::warn!(
                    "renewing the {what} certificate failed: {e}; trying again in {retry:?}"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}
