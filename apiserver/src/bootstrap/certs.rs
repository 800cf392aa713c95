//! The certificates in a member's data directory, their expiry, and their renewal
//! (`rk8s-server certs check|rotate`, as `kubeadm certs check-expiration|renew`).
//!
//! The CAs are valid for ten years and kept. Leaf certificates are valid for one year
//! (`--cluster-signing-duration` for the API server's and node agents') and renewed
//! while in use at 70-90 % of their life, as kubelet renews its own (see
//! [`rk8s_http::renewal`]): the API server's serving certificate and its client
//! certificate towards node agents (issued anew at every start too), each node
//! agent's serving certificate (from the API server), and a store member's
//! certificate ([`keep_member_renewed`], from the member CA, for the same names; or
//! at any time by `certs rotate`, which a running member presents from its next
//! start). The admin kubeconfig's client certificate (`pki/admin.crt`, of the client
//! CA, user `admin` in `system:masters`) is kept across starts and issued again at a
//! start once it has less than [`RENEW_BEFORE`] left.

use std::path::{Path, PathBuf};

use super::StartError;
use super::members::MemberCerts;
use super::pki::{ClusterCa, PkiError};

/// How long before it expires the admin kubeconfig's certificate is issued again at
/// a start (k3s renews its certificates 90 days before they expire).
pub const RENEW_BEFORE: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);

/// One certificate of a member's data directory.
#[derive(Clone, Debug)]
pub struct CertStatus {
    /// What it is.
    pub name: &'static str,
    /// Its file.
    pub path: PathBuf,
    /// Who signed it.
    pub authority: &'static str,
    /// When it stops being valid.
    pub expires: jiff::Timestamp,
}

/// The certificates of `data_dir/pki` that exist, with what they are.
const FILES: [(&str, &str, &str); 6] = [
    ("ca.crt", "cluster CA", "(self-signed)"),
    ("apiserver.crt", "API server", "cluster CA"),
    ("client-ca.crt", "client CA", "(self-signed)"),
    ("admin.crt", "admin kubeconfig", "client CA"),
    ("member-ca.crt", "member CA", "(self-signed)"),
    ("member.crt", "store member", "member CA"),
];

fn invalid(detail: String) -> PkiError {
    PkiError::Invalid {
        what: "certificate",
        detail,
    }
}

/// Runs `read` on the parsed PEM certificate `pem`.
fn parsed<T>(
    pem: &str,
    read: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T, PkiError>,
) -> Result<T, PkiError> {
    let der = rk8s_http::tls::pem_to_der(pem)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(e.to_string()))?;
    read(&cert)
}

/// When the PEM certificate `pem` expires.
pub fn expiry(pem: &str) -> Result<jiff::Timestamp, PkiError> {
    let (_, not_after) = rk8s_http::renewal::validity(pem)?;
    jiff::Timestamp::from_second(not_after).map_err(|e| invalid(e.to_string()))
}

/// The names (DNS names and IP addresses) the PEM certificate `pem` is for.
pub fn names(pem: &str) -> Result<Vec<String>, PkiError> {
    use x509_parser::extensions::GeneralName;
    parsed(pem, |cert| {
        let sans = cert
            .subject_alternative_name()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(sans
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(*bytes)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect())
    })
}

/// The certificates in `data_dir`.
pub fn check(data_dir: &Path) -> Result<Vec<CertStatus>, StartError> {
    let mut out = Vec::new();
    for (file, name, authority) in FILES {
        let path = data_dir.join("pki").join(file);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StartError::Io { path, source }),
        };
        let expires =
            expiry(&pem).map_err(|e| StartError::Restore(format!("{}: {e}", path.display())))?;
        out.push(CertStatus {
            name,
            path,
            authority,
            expires,
        });
    }
    Ok(out)
}

/// `certs` renewed by the member CA `ca`: a new key and certificate for the same
/// names, valid for a year from now (or as `ca` says).
pub fn renew_member(certs: &MemberCerts, ca: &ClusterCa) -> Result<MemberCerts, PkiError> {
    let (cert, key) = ca.issue_member(&names(&certs.cert)?)?;
    Ok(MemberCerts {
        member_ca: ca.cert_pem.clone(),
        cert,
        key,
    })
}

/// Renews this member's certificate `live` (saved in `data_dir`) while the member
/// runs, at 70-90 % of its life, from the member CA the cluster's secrets in `store`
/// hold, for `validity` (`--cluster-signing-duration`): saved, then presented to
/// peers from the next connection on.
pub async fn keep_member_renewed(
    store: rk8s_raftstore::server::Store,
    data_dir: PathBuf,
    live: std::sync::Arc<rk8s_http::tls::LiveCert>,
    (cert_pem, validity): (String, std::time::Duration),
) {
    let renew = {
        let data_dir = data_dir.clone();
        move || {
            let (store, data_dir) = (store.clone(), data_dir.clone());
            async move {
                let secrets = crate::bootstrap::secrets::read(&store)
                    .await
                    .map_err(|e| e.message)?;
                let ca = secrets
                    .member_ca
                    .ok_or("the cluster's secrets hold no member CA")?
                    .with_leaf_validity(validity);
                let certs = MemberCerts::load(&data_dir)
                    .map_err(|e| e.to_string())?
                    .ok_or("this member has no saved certificate")?;
                let renewed = renew_member(&certs, &ca).map_err(|e| e.to_string())?;
                Ok((renewed.cert, renewed.key))
            }
        }
    };
    let keep = move |cert: &str, key: &str| {
        let certs = MemberCerts::load(&data_dir)
            .map_err(|e| e.to_string())?
            .ok_or("this member has no saved certificate")?;
        MemberCerts {
            cert: cert.to_string(),
            key: key.to_string(),
            ..certs
        }
        .save(&data_dir)
        .map_err(|e| e.to_string())
    };
    rk8s_http::renewal::keep_renewed("store member's", live, cert_pem, renew, keep).await;
}

/// The user of the admin kubeconfig's certificate (in `system:masters`).
pub const ADMIN_USER: &str = "admin";
/// How long the admin certificate is valid (kubeadm's year).
const ADMIN_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Whether the PEM certificate `cert` verifies against the CA `ca` (now).
fn issued_by(cert: &str, ca: &ClusterCa) -> bool {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let (Ok(der), Ok(roots)) = (
        rk8s_http::tls::pem_to_der(cert),
        rk8s_http::tls::roots(&ca.cert_pem),
    ) else {
        return false;
    };
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots,
        rk8s_http::tls::provider(),
    );
    builder.build().is_ok_and(|verifier| {
        verifier
            .verify_client_cert(&CertificateDer::from(der), &[], UnixTime::now())
            .is_ok()
    })
}

/// The admin kubeconfig's certificate and key (PEM) kept in `data_dir/pki`, or new
/// ones of `client_ca` (saved there) when there are none, they do not parse, another
/// CA issued them (a restored or re-keyed cluster), or less than [`RENEW_BEFORE`] is
/// left.
pub fn admin_certificate(
    data_dir: &Path,
    client_ca: &ClusterCa,
) -> Result<(String, String), StartError> {
    let (cert_path, key_path) = (
        data_dir.join("pki/admin.crt"),
        data_dir.join("pki/admin.key"),
    );
    let kept = std::fs::read_to_string(&cert_path)
        .ok()
        .zip(std::fs::read_to_string(&key_path).ok());
    if let Some((cert, key)) = kept
        && expiry(&cert).is_ok_and(|t| t.duration_since(jiff::Timestamp::now()) > RENEW_BEFORE)
        && issued_by(&cert, client_ca)
    {
        return Ok((cert, key));
    }
    let groups = [crate::users::MASTERS.to_string()];
    let (cert, key) = client_ca.issue_client(ADMIN_USER, &groups, ADMIN_TTL)?;
    super::write_file(&key_path, &key, true)?;
    super::write_file(&cert_path, &cert, false)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_member_certificate_keeps_its_names_and_lasts_a_year() {
        let ca = ClusterCa::generate_member_ca().unwrap();
        let names_in = vec![
            "10.0.0.7".to_string(),
            "localhost".into(),
            "m1.example".into(),
        ];
        let (cert, key) = ca.issue_member(&names_in).unwrap();
        let certs = MemberCerts {
            member_ca: ca.cert_pem.clone(),
            cert,
            key,
        };
        let mut got = names(&certs.cert).unwrap();
        got.sort();
        assert_eq!(got, names_in);
        let renewed = renew_member(&certs, &ca).unwrap();
        assert_ne!(renewed.key, certs.key);
        let mut kept = names(&renewed.cert).unwrap();
        kept.sort();
        assert_eq!(kept, names_in);
        let left = expiry(&renewed.cert)
            .unwrap()
            .duration_since(jiff::Timestamp::now());
        let days = left.as_hours() / 24;
        assert!((363..=365).contains(&days), "{days} days");
        // The CA itself: ten years.
        let ca_days = expiry(&ca.cert_pem)
            .unwrap()
            .duration_since(jiff::Timestamp::now())
            .as_hours()
            / 24;
        assert!((3648..=3650).contains(&ca_days), "{ca_days} days");
        // Renewed while in use at 70-90 % of its life (a year, from a day before).
        let due = rk8s_http::renewal::renewal_delay(&renewed.cert, std::time::SystemTime::now())
            .unwrap()
            .as_secs()
            / 86_400;
        assert!((254..=328).contains(&due), "due in {due} days");
    }

    #[test]
    fn leaf_validity_sets_the_server_certificates_life() {
        let ca = ClusterCa::generate()
            .unwrap()
            .with_leaf_validity(std::time::Duration::from_secs(100));
        let (cert, _) = ca.issue_server(&["localhost".into()]).unwrap();
        let (not_before, not_after) = rk8s_http::renewal::validity(&cert).unwrap();
        let now = jiff::Timestamp::now().as_second();
        // From a tenth of its life before now, for its life from now.
        assert!(
            (now - 11..=now - 9).contains(&not_before),
            "{not_before} {now}"
        );
        assert!(
            (now + 99..=now + 100).contains(&not_after),
            "{not_after} {now}"
        );
        let due = rk8s_http::renewal::renewal_delay(&cert, std::time::SystemTime::now())
            .unwrap()
            .as_secs();
        // 70-90 % of 110 s, less the 10 s already gone.
        assert!((66..=90).contains(&due), "due in {due} s");
        // A member's certificate too; a user's client certificate keeps the life
        // it is given.
        let (member, _) = ca.issue_member(&["localhost".into()]).unwrap();
        let (_, member_ends) = rk8s_http::renewal::validity(&member).unwrap();
        assert!(
            (now + 99..=now + 100).contains(&member_ends),
            "{member_ends} {now}"
        );
        let (user, _) = ca
            .issue_client("pat", &[], std::time::Duration::from_secs(3600))
            .unwrap();
        let (_, user_ends) = rk8s_http::renewal::validity(&user).unwrap();
        assert!(
            (now + 3599..=now + 3600).contains(&user_ends),
            "{user_ends} {now}"
        );
    }

    #[test]
    fn the_admin_certificate_is_kept_until_it_nears_its_end() {
        let ca = ClusterCa::generate_client_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let first = admin_certificate(dir.path(), &ca).unwrap();
        assert_eq!(admin_certificate(dir.path(), &ca).unwrap(), first);
        // One that ends within RENEW_BEFORE is issued again.
        let groups = [crate::users::MASTERS.to_string()];
        let (short, key) = ca
            .issue_client(ADMIN_USER, &groups, std::time::Duration::from_secs(3600))
            .unwrap();
        std::fs::write(dir.path().join("pki/admin.crt"), &short).unwrap();
        std::fs::write(dir.path().join("pki/admin.key"), &key).unwrap();
        let renewed = admin_certificate(dir.path(), &ca).unwrap();
        assert_ne!(renewed.0, short);
        // Another client CA: the kept certificate is replaced by one of it.
        let other = ClusterCa::generate_client_ca().unwrap();
        let reissued = admin_certificate(dir.path(), &other).unwrap();
        assert_ne!(reissued.0, renewed.0);
        assert!(issued_by(&reissued.0, &other) && !issued_by(&reissued.0, &ca));
        let renewed = reissued;
        let der = rk8s_http::tls::pem_to_der(&renewed.0).unwrap();
        let user = crate::users::from_certificate(&der).unwrap();
        assert_eq!(user.name, "admin");
        assert!(user.groups.contains(&"system:masters".to_string()));
    }
}
