//! Store members' certificates, and members joining (`rk8s-server --join`).
//!
//! Members talk mutual TLS with certificates of the member CA (see [`crate::pki`]).
//! The first member of a cluster makes that CA before its store starts and hands it to
//! the store with the cluster's other secrets; a joining member gets its certificate
//! from any member's API server, with a one-use member bootstrap token (`rk8s-server
//! token create --member`), after pinning the cluster CA by its hash as nodes do:
//!
//! - `POST /rk8s/v1/members`, body `{"peerAddress": "10.0.0.2:2380"}`: marks the
//!   token used and answers `{"memberCa", "cert", "key", "join"}`: the member CA, a
//!   certificate naming the host of `peerAddress`, and the store address of the
//!   answering member, through which the new member then joins the store (over mutual
//!   TLS, with that certificate).
//!
//! A member keeps its files in `<data-dir>/pki/`: `member-ca.crt`, `member.crt`,
//! `member.key`, and on the first member `member-ca.key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rk8s_http::tls::LiveCert;
use rk8s_raftstore::server::Store;
use rk8s_raftstore::transport::PeerTls;
use serde::{Deserialize, Serialize};

use super::pki::{ClusterCa, PkiError};
use super::{StartError, write_file};
use crate::auth::{self, Identity};
use crate::status::{ApiError, ApiResult};

const CA_CERT: &str = "member-ca.crt";
const CA_KEY: &str = "member-ca.key";
const CERT: &str = "member.crt";
const KEY: &str = "member.key";

/// Where a new certificate and key are written before they replace the old ones.
const NEXT: &str = "member.next";

fn pki(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// Moves a complete new pair in `dir/member.next` into place (the key, then the
/// certificate), or drops an incomplete one (no certificate yet: the old pair
/// stands).
fn finish_save(dir: &Path) -> Result<(), StartError> {
    let next = dir.join(NEXT);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StartError::Io { path, source }
    };
    let missing = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    if !next.join(CERT).exists() {
        return match std::fs::remove_dir_all(&next) {
            Err(e) if !missing(&e) => Err(io(&next)(e)),
            _ => Ok(()),
        };
    }
    // The key may have moved already (a crash between the two renames).
    match std::fs::rename(next.join(KEY), dir.join(KEY)) {
        Err(e) if !missing(&e) => return Err(io(&next.join(KEY))(e)),
        _ => {}
    }
    std::fs::rename(next.join(CERT), dir.join(CERT)).map_err(io(&next.join(CERT)))?;
    std::fs::remove_dir(&next).map_err(io(&next))
}

/// A member's certificate, key and the member CA it trusts (PEM).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberCerts {
    /// The member CA's certificate.
    pub member_ca: String,
    /// This member's certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
}

impl std::fmt::Debug for MemberCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCerts").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Option<String>, StartError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StartError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl MemberCerts {
    /// The certificates saved in `data_dir`, if the member has them.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, StartError> {
        let dir = pki(data_dir);
        finish_save(&dir)?;
        let (Some(member_ca), Some(cert), Some(key)) = (
            read(&dir.join(CA_CERT))?,
            read(&dir.join(CERT))?,
            read(&dir.join(KEY))?,
        ) else {
            return Ok(None);
        };
        Ok(Some(MemberCerts {
            member_ca,
            cert,
            key,
        }))
    }

    /// Saves them in `data_dir` (the key readable by root only). The certificate and
    /// key are written complete into `pki/member.next/` first and then take the old
    /// pair's place, so that a crash between the two leaves no key with another
    /// certificate: the next [`MemberCerts::load`] finishes the move.
    pub fn save(&self, data_dir: &Path) -> Result<(), StartError> {
        let dir = pki(data_dir);
        write_file(&dir.join(CA_CERT), &self.member_ca, false)?;
        let next = dir.join(NEXT);
        write_file(&next.join(KEY), &self.key, true)?;
        // The certificate last: its presence says the new pair is complete.
        write_file(&next.join(CERT), &self.cert, false)?;
        finish_save(&dir)
    }

    /// The member's mutual TLS.
    pub fn tls(&self) -> Result<PeerTls, PkiError> {
        self.renewable_tls().map(|(tls, _)| tls)
    }

    /// The member's mutual TLS, and its certificate (to be renewed in place by
    /// [`crate::bootstrap::certs::keep_member_renewed`]).
    pub fn renewable_tls(&self) -> Result<(PeerTls, Arc<LiveCert>), PkiError> {
        let live = LiveCert::new(&self.cert, &self.key)?;
        let tls = crate::bootstrap::pki::member_tls_live(&self.member_ca, live.clone())?;
        Ok((tls, live))
    }
}

/// What a member's certificate names: the host of its peer address (`host:port`),
/// and the loopback names local tools connect with.
pub fn certificate_names(peer_address: &str) -> Result<Vec<String>, String> {
    let (host, port) = rk8s_raftstore::transport::host_and_port(peer_address).ok_or_else(|| {
        format!("{peer_address:?} is not a peer address such as 10.0.0.2:2380 (host:port)")
    })?;
    if port.parse::<u16>().is_err() {
        return Err(format!("{peer_address:?}: {port:?} is not a port"));
    }
    let ip = host.parse::<std::net::IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_unspecified()) {
        return Err(format!(
            "{peer_address:?}: peers cannot reach an unspecified address; give the address they should use (--advertise)"
        ));
    }
    if ip.is_none() && !rk8s_api::names::dns1123_subdomain(host).is_empty() {
        return Err(format!(
            "{peer_address:?}: {host:?} is neither an IP address nor a DNS name"
        ));
    }
    let mut names = vec![host.to_string(), "localhost".into(), "127.0.0.1".into()];
    names.sort();
    names.dedup();
    Ok(names)
}

/// The first member of a new cluster: makes the member CA and this member's
/// certificate for `advertise`, and saves both (the CA's key too: the API server puts
/// it in the store with the cluster's other secrets when it creates them). Returns
/// the certificates and the CA.
pub fn bootstrap(data_dir: &Path, advertise: &str) -> Result<(MemberCerts, ClusterCa), StartError> {
    let ca = ClusterCa::generate_member_ca()?;
    let certs = first_member_certs(&ca, advertise)?;
    save_first_member(data_dir, &ca, &certs)?;
    Ok((certs, ca))
}

/// A certificate of the member CA `ca` for the member at `advertise`.
pub fn first_member_certs(ca: &ClusterCa, advertise: &str) -> Result<MemberCerts, StartError> {
    let names = certificate_names(advertise).map_err(|detail| {
        StartError::Pki(PkiError::Invalid {
            what: "peer address",
            detail,
        })
    })?;
    let (cert, key) = ca.issue_member(&names)?;
    Ok(MemberCerts {
        member_ca: ca.cert_pem.clone(),
        cert,
        key,
    })
}

/// Saves a first member's certificates and the member CA's key in `data_dir`.
pub fn save_first_member(
    data_dir: &Path,
    ca: &ClusterCa,
    certs: &MemberCerts,
) -> Result<(), StartError> {
    write_file(&pki(data_dir).join(CA_KEY), &ca.key_pem, true)?;
    certs.save(data_dir)
}

/// The member CA kept by the first member (see [`bootstrap`]), if this is it.
pub fn local_member_ca(data_dir: &Path) -> Result<Option<ClusterCa>, StartError> {
    let dir = pki(data_dir);
    Ok(
        match (read(&dir.join(CA_CERT))?, read(&dir.join(CA_KEY))?) {
            (Some(cert_pem), Some(key_pem)) => Some(ClusterCa::from_pem(cert_pem, key_pem)),
            _ => None,
        },
    )
}

/// Where a starting member's certificates come from.
#[derive(Debug)]
pub enum MemberPki {
    /// Saved in its data directory (a restart), with the member CA on the cluster's
    /// first member.
    Saved {
        /// Its certificates.
        certs: MemberCerts,
        /// The member CA, on the first member.
        member_ca: Option<ClusterCa>,
    },
    /// Made just now with a new member CA: the first member of a new cluster.
    Bootstrapped {
        /// Its certificates (saved).
        certs: MemberCerts,
        /// The new member CA.
        member_ca: ClusterCa,
    },
    /// To be asked of a member's API server with a member bootstrap token
    /// (`rk8s-server --join`): see [`join`].
    Join,
}

/// The member PKI policy: saved certificates if the data directory has them; none
/// and a store member already there is a join that did not finish (refused: start
/// over); else a join when `joining`, or a new cluster's first member for `advertise`.
pub fn member_pki(
    data_dir: &Path,
    advertise: &str,
    joining: bool,
) -> Result<MemberPki, StartError> {
    if let Some(certs) = MemberCerts::load(data_dir)? {
        let member_ca = local_member_ca(data_dir)?;
        return Ok(MemberPki::Saved { certs, member_ca });
    }
    if rk8s_raftstore::data_dir::has_member(data_dir) {
        return Err(StartError::UnfinishedJoin {
            dir: data_dir.to_path_buf(),
        });
    }
    if joining {
        return Ok(MemberPki::Join);
    }
    let (certs, member_ca) = bootstrap(data_dir, advertise)?;
    tracing::info!("made the member CA and this member's certificate");
    Ok(MemberPki::Bootstrapped { certs, member_ca })
}

/// What a joining member asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinBody {
    peer_address: String,
}

/// What a joining member gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Its certificates.
    #[serde(flatten)]
    pub certs: MemberCerts,
    /// The store address of the member that answered: join the store through it.
    pub join: String,
}

/// Handles `POST /rk8s/v1/members` for the caller holding `bearer`.
pub async fn join(
    store: &Store,
    member_ca: &ClusterCa,
    identity: &Identity,
    bearer: &str,
    body: &[u8],
) -> ApiResult<JoinResponse> {
    let Identity::MemberBootstrap(token_id) = identity else {
        return Err(ApiError::forbidden(format!(
            "User \"{}\" cannot add store members: only member bootstrap tokens (rk8s-server token create --member) can",
            identity.user()
        )));
    };
    let request: JoinBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("member join request: {e}")))?;
    let names = certificate_names(&request.peer_address)
        .map_err(|e| ApiError::bad_request(format!("peerAddress: {e}")))?;
    let join = store
        .member_addresses()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .into_iter()
        .find(|a| a.id == store.id())
        .map(|a| a.address)
        .ok_or_else(|| {
            ApiError::unavailable(
                "this member has not recorded its own peer address yet; try again",
            )
        })?;
    let by = format!("member {}", request.peer_address);
    let (key, record, revision) =
        crate::bootstrap::join::claim_token(store, bearer, token_id, by).await?;
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    match store.put(key.as_bytes(), &value, 0, Some(revision)).await {
        Ok(_) => {}
        Err(rk8s_raftstore::Error::Conflict { .. }) => {
            return Err(auth::used_token(token_id, "a concurrent join"));
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    }
    let (cert, key) = member_ca
        .issue_member(&names)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(peer = %request.peer_address, token = %token_id, "member certificate issued");
    Ok(JoinResponse {
        certs: MemberCerts {
            member_ca: member_ca.cert_pem.clone(),
            cert,
            key,
        },
        join,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_cut_short_leaves_a_pair_that_belongs_together() {
        let ca = ClusterCa::generate_member_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let old = first_member_certs(&ca, "10.0.0.2:2380").unwrap();
        old.save(dir.path()).unwrap();
        let new = first_member_certs(&ca, "10.0.0.2:2380").unwrap();
        let next = pki(dir.path()).join(NEXT);
        // Cut short while writing the new pair: the old one stands.
        write_file(&next.join(KEY), &new.key, true).unwrap();
        assert_eq!(MemberCerts::load(dir.path()).unwrap().unwrap(), old);
        assert!(!next.exists());
        // Cut short between moving the key and the certificate: finished at load.
        write_file(&next.join(KEY), &new.key, true).unwrap();
        write_file(&next.join(CERT), &new.cert, false).unwrap();
        std::fs::rename(next.join(KEY), pki(dir.path()).join(KEY)).unwrap();
        let loaded = MemberCerts::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, new);
        loaded.tls().unwrap();
        assert!(!next.exists());
    }

    #[test]
    fn certificates_name_the_peer_host_and_loopback() {
        assert_eq!(
            certificate_names("10.0.0.2:2380").unwrap(),
            ["10.0.0.2", "127.0.0.1", "localhost"]
        );
        assert_eq!(
            certificate_names("member-b.example:2380").unwrap(),
            ["127.0.0.1", "localhost", "member-b.example"]
        );
        assert_eq!(
            certificate_names("127.0.0.1:2381").unwrap(),
            ["127.0.0.1", "localhost"]
        );
        for (bad, says) in [
            ("10.0.0.2", "host:port"),
            ("10.0.0.2:http", "not a port"),
            ("0.0.0.0:2380", "--advertise"),
            ("bad_host!:2380", "neither an IP address nor a DNS name"),
        ] {
            let e = certificate_names(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_first_member_keeps_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let (certs, ca) = bootstrap(dir.path(), "127.0.0.1:2380").unwrap();
        assert_eq!(MemberCerts::load(dir.path()).unwrap(), Some(certs.clone()));
        let kept = local_member_ca(dir.path()).unwrap().unwrap();
        assert_eq!((kept.cert_pem, kept.key_pem), (ca.cert_pem, ca.key_pem));
        certs.tls().unwrap();
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(MemberCerts::load(empty.path()).unwrap(), None);
        assert!(local_member_ca(empty.path()).unwrap().is_none());
    }
}
