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

/// A renewed certificate (`cert_pem`, key `key_pem`) checked before it is kept or
/// presented: it parses, the key is its own, and it is not due for renewal at `now`
/// already.
pub fn checked(
    cert_pem: &str,
    key_pem: &str,
    now: SystemTime,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let certified = crate::tls::certified(cert_pem, key_pem).map_err(|e| e.to_string())?;
    if renewal_delay(cert_pem, now)
        .map_err(|e| e.to_string())?
        .is_zero()
    {
        return Err("the new certificate is already due for renewal".to_string());
    }
    Ok(certified)
}

/// The wait after a failed renewal that waited `last` (zero: the first failure):
/// 2 s doubling to 5 minutes.
pub fn retry_after(last: Duration) -> Duration {
    if last.is_zero() {
        RETRY_FIRST
    } else {
        (last * 2).clamp(RETRY_FIRST, RETRY_MAX)
    }
}

/// The longest single wait: the wall clock is read again after it, so a host that
/// slept (or a clock set forward) renews on time.
const WAKE_AT_LEAST_EVERY: Duration = Duration::from_secs(600);
/// The first wait after a failed renewal; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between failed renewals.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Renews `live` (which presents `cert_pem`) whenever it is due, for as long as the
/// task runs: `renew` returns a new certificate and key (PEM), which must pass
/// [`checked`]; `keep` saves them (where a restart reads them) before they are
/// presented. A renewal that fails anywhere is retried after a back-off
/// ([`retry_after`]), and the certificate presented stays; `what` names the
/// certificate in the log.
pub async fn keep_renewed<F, Fut, K>(
    what: &'static str,
    live: Arc<LiveCert>,
    mut cert_pem: String,
    mut renew: F,
    mut keep: K,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(String, String), String>>,
    K: FnMut(&str, &str) -> Result<(), String>,
{
    let mut retry = Duration::ZERO;
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
            let certified = checked(&cert, &key, SystemTime::now())?;
            keep(&cert, &key)?;
            live.set(certified);
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
                retry = Duration::ZERO;
            }
            Err(e) => {
                retry = retry_after(retry);
                tracing::warn!(
                    "renewing the {what} certificate failed: {e}; trying again in {retry:?}"
                );
                tokio::time::sleep(retry).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A self-signed certificate valid from `from` to `until` seconds from now.
    fn cert(from: i64, until: i64) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let at = |s: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs((now + s) as u64);
        params.not_before = at(from);
        params.not_after = at(until);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_is_due_at_70_to_90_percent_of_its_life() {
        let (pem, _) = cert(-100, 900);
        let due = renewal_delay(&pem, SystemTime::now()).unwrap().as_secs();
        // 700-900 s after its start, 100 s of which are gone.
        assert!((598..=800).contains(&due), "due in {due} s");
        let (expired, _) = cert(-100, -10);
        assert_eq!(
            renewal_delay(&expired, SystemTime::now()).unwrap(),
            Duration::ZERO
        );
    }

    #[test]
    fn a_renewal_is_checked_before_it_is_kept() {
        let (fresh, fresh_key) = cert(-1, 1000);
        assert!(checked(&fresh, &fresh_key, SystemTime::now()).is_ok());
        // Due already (90 % of its life gone): refused, so it is not kept.
        let (due, due_key) = cert(-1000, 10);
        let refused = checked(&due, &due_key, SystemTime::now()).unwrap_err();
        assert!(refused.contains("already due"), "{refused}");
        // Another pair's key: refused, and a LiveCert is not made of it either.
        let refused = checked(&fresh, &due_key, SystemTime::now()).unwrap_err();
        assert!(refused.contains("not the certificate's"), "{refused}");
        assert!(LiveCert::new(&fresh, &due_key).is_err());
        let live = LiveCert::new(&fresh, &fresh_key).unwrap();
        assert!(live.replace(&due, &fresh_key).is_err());
    }

    #[test]
    fn failed_renewals_back_off_from_2_seconds_to_5_minutes() {
        let mut wait = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..10 {
            wait = retry_after(wait);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
