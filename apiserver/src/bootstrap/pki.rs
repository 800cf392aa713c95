//! The cluster's certificates. Three CAs per cluster, all kept in the store so every
//! member signs with the same ones, as kubeadm keeps a cluster CA and an etcd CA and
//! Kubernetes separates the kubelet serving signer:
//!
//! - the cluster CA: the API servers' serving certificates and the API servers'
//!   client certificate towards nodes. Kubeconfigs trust it, so it signs no other
//!   server certificate: nothing but an API server can pass for one;
//! - the node CA: the node agents' serving certificates (their port 10250), each
//!   naming its node. Only API servers trust it, and only for the node they dial, so
//!   a node's certificate neither passes for the API server nor for another node;
//! - the member CA: the store members' certificates, each both server and client for
//!   the mutual TLS between members. Nothing else is signed by it, so no certificate
//!   of the cluster CA opens the store.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rk8s_http::tls::{self, TlsError, provider, roots};

use serde::{Deserialize, Serialize};

const CA_NAME: &str = "rk8s-ca";
const MEMBER_CA_NAME: &str = "rk8s-member-ca";
const NODE_CA_NAME: &str = "rk8s-node-ca";
const CLIENT_CA_NAME: &str = "rk8s-client-ca";

/// The subject of every store member's certificate.
pub const MEMBER_NAME: &str = "rk8s-member";

/// The subject of the API server's client certificate towards node agents.
pub const APISERVER_CLIENT_NAME: &str = "system:rk8s-apiserver";

/// The cluster CA: certificate and key, PEM.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterCa {
    /// The CA certificate (what clients trust).
    pub cert_pem: String,
    /// The CA private key.
    pub key_pem: String,
    /// How long the leaf certificates it issues are valid (`None`: a year);
    /// kube-controller-manager's `--cluster-signing-duration`.
    #[serde(skip)]
    leaf_validity: Option<std::time::Duration>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key does not parse.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// rustls refused a configuration.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut params, 10 * 365);
    params
}

/// How long a leaf certificate is valid unless told otherwise: a year.
pub const LEAF_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Valid from `not_before` until `not_after`.
fn valid_between(
    params: &mut CertificateParams,
    not_before: jiff::Timestamp,
    not_after: jiff::Timestamp,
) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since_epoch =
        |t: jiff::Timestamp| std::time::Duration::from_secs(t.as_second().max(0).unsigned_abs());
    params.not_before = epoch + since_epoch(not_before);
    params.not_after = epoch + since_epoch(not_after);
}

/// Valid for `validity` from now, and from before now by a tenth of that, at most a
/// day (clock skew between hosts).
fn valid_from_now(params: &mut CertificateParams, validity: std::time::Duration) {
    let now = jiff::Timestamp::now();
    let skew = (validity / 10).min(std::time::Duration::from_secs(24 * 3600));
    let back = jiff::SignedDuration::try_from(skew).unwrap_or(jiff::SignedDuration::ZERO);
    let ends = jiff::SignedDuration::try_from(validity)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    valid_between(params, now.checked_sub(back).unwrap_or(now), ends);
}

/// Valid from yesterday (clock skew between members) for `days`.
fn valid_for(params: &mut CertificateParams, days: i64) {
    let day = |offset: i64| {
        let d = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * offset))
            .unwrap_or(jiff::Timestamp::MAX)
            .to_zoned(jiff::tz::TimeZone::UTC);
        rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    params.not_before = day(-1);
    params.not_after = day(days);
}

impl ClusterCa {
    /// A new cluster CA, valid for ten years.
    pub fn generate() -> Result<Self, PkiError> {
        Self::generate_named(CA_NAME)
    }

    /// A new member CA (for the store's peers), valid for ten years.
    pub fn generate_member_ca() -> Result<Self, PkiError> {
        Self::generate_named(MEMBER_CA_NAME)
    }

    /// A new node CA (the node agents' serving certificates), valid for ten years.
    pub fn generate_node_ca() -> Result<Self, PkiError> {
        Self::generate_named(NODE_CA_NAME)
    }

    /// A new client CA (users' client certificates for the API server), valid for
    /// ten years. A CA of its own, so that a user's certificate never opens a node
    /// agent, which trusts the cluster CA's client certificates.
    pub fn generate_client_ca() -> Result<Self, PkiError> {
        Self::generate_named(CLIENT_CA_NAME)
    }

    fn generate_named(name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(name).self_signed(&key)?;
        Ok(ClusterCa::from_pem(cert.pem(), key.serialize_pem()))
    }

    /// A CA of a certificate and key (PEM) kept elsewhere.
    pub fn from_pem(cert_pem: String, key_pem: String) -> Self {
        ClusterCa {
            cert_pem,
            key_pem,
            leaf_validity: None,
        }
    }

    /// How long the leaf certificates it issues are valid.
    fn leaf_validity(&self) -> std::time::Duration {
        self.leaf_validity.unwrap_or(LEAF_VALIDITY)
    }

    /// The same CA, issuing leaf certificates valid for `validity` (not the admin's
    /// client certificate, whose life is given).
    pub fn with_leaf_validity(mut self, validity: std::time::Duration) -> Self {
        self.leaf_validity = Some(validity);
        self
    }

    /// Issues a store member's certificate (a member CA's job): server and client at
    /// once, for `names` (the host peers reach it at, DNS name or IP address).
    pub fn issue_member(&self, names: &[String]) -> Result<(String, String), PkiError> {
        self.issue(
            MEMBER_NAME,
            names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            self.leaf_validity(),
        )
    }

    /// Issues the API server's serving certificate for `names` (DNS names or IP
    /// addresses), valid for a year (or as set); returns (certificate PEM, key PEM).
    pub fn issue_server(&self, names: &[String]) -> Result<(String, String), PkiError> {
        self.issue(
            "rk8s-apiserver",
            names,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            self.leaf_validity(),
        )
    }

    /// Issues a node agent's serving certificate (its port 10250; a node CA's job):
    /// subject `system:node:NODE`, the node's name as a DNS name (also when it reads
    /// like an IP address: API servers verify the name, never an address a node
    /// reports), and `addresses` as IP addresses.
    pub fn issue_node_server(
        &self,
        node: &str,
        addresses: &[IpAddr],
    ) -> Result<(String, String), PkiError> {
        let mut sans = vec![SanType::DnsName(node.to_string().try_into()?)];
        sans.extend(addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        self.issue_with(
            &format!("system:node:{node}"),
            sans,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            self.leaf_validity(),
        )
    }

    /// Issues the certificate an API server presents to node agents when it proxies
    /// logs and exec. It is the only kind of certificate the CA signs for client
    /// authentication, so node agents accept a client when its chain verifies.
    pub fn issue_apiserver_client(&self) -> Result<(String, String), PkiError> {
        self.issue(
            APISERVER_CLIENT_NAME,
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
            self.leaf_validity(),
        )
    }

    /// Issues a user's client certificate (a client CA's job) as kube-apiserver reads
    /// them: the user name as the subject's common name, each group as an
    /// organization; valid from a minute ago for `ttl`.
    pub fn issue_client(
        &self,
        user: &str,
        groups: &[String],
        ttl: std::time::Duration,
    ) -> Result<(String, String), PkiError> {
        let now = jiff::Timestamp::now();
        let ends = jiff::SignedDuration::try_from(ttl)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(jiff::Timestamp::MAX);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        valid_between(&mut params, now - jiff::SignedDuration::from_secs(60), ends);
        // rcgen writes one organization at most: the subject with all the groups
        // replaces the one it wrote.
        let (cert, key) = self.sign(params)?;
        let der = rk8s_http::tls::pem_to_der(&cert)?;
        let subject = super::subject::name(user, groups);
        let der = super::subject::with_subject(&der, &subject, &self.key()?)?;
        Ok((super::subject::pem(&der), key))
    }

    /// A client certificate for the key of the signing request `csr_pem`, as
    /// kube-controller-manager's `kubernetes.io/kube-apiserver-client` signer issues
    /// one: the subject `user` in `groups` (the request's), for client
    /// authentication with the key usages `key_usages`, valid from five minutes ago
    /// (clocks that lag) until `not_after`.
    pub fn issue_for_request(
        &self,
        csr_pem: &str,
        user: &str,
        groups: &[String],
        key_usages: Vec<KeyUsagePurpose>,
        not_after: jiff::Timestamp,
    ) -> Result<String, PkiError> {
        let invalid = |e: rcgen::Error| PkiError::Invalid {
            what: "certificate signing request",
            detail: e.to_string(),
        };
        let mut request =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(invalid)?;
        let mut params = CertificateParams::default();
        params.key_usages = key_usages;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = jiff::Timestamp::now();
        valid_between(
            &mut params,
            now - jiff::SignedDuration::from_secs(300),
            not_after,
        );
        request.params = params;
        let cert = request.signed_by(&self.issuer()?).map_err(invalid)?;
        // rcgen writes one organization at most: the subject with every group.
        let subject = super::subject::name(user, groups);
        let der = super::subject::with_subject(cert.der(), &subject, &self.key()?)?;
        Ok(super::subject::pem(&der))
    }

    fn issue(
        &self,
        common_name: &str,
        names: &[String],
        usages: &[ExtendedKeyUsagePurpose],
        validity: std::time::Duration,
    ) -> Result<(String, String), PkiError> {
        let sans = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        self.issue_with(common_name, sans, usages, validity)
    }

    fn issue_with(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
        validity: std::time::Duration,
    ) -> Result<(String, String), PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages.to_vec();
        valid_from_now(&mut params, validity);
        self.sign(params)
    }

    /// A certificate of `params` with a new key, signed by this CA.
    fn sign(&self, params: CertificateParams) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// This CA as an issuer, named as its certificate names itself.
    fn issuer(&self) -> Result<Issuer<'_, KeyPair>, PkiError> {
        Issuer::from_ca_cert_pem(&self.cert_pem, self.key()?).map_err(|e| PkiError::Invalid {
            what: "CA certificate",
            detail: e.to_string(),
        })
    }

    fn key(&self) -> Result<KeyPair, PkiError> {
        KeyPair::from_pem(&self.key_pem).map_err(|e| PkiError::Invalid {
            what: "CA key",
            detail: e.to_string(),
        })
    }

    /// `sha256:<hex>` of the CA certificate (DER): what `rk8s-node join
    /// --ca-cert-hash` pins.
    pub fn cert_hash(&self) -> Result<String, PkiError> {
        Ok(tls::cert_hash(&self.cert_pem)?)
    }
}

/// A store member's mutual TLS, from the member CA and the member's certificate: it
/// accepts peers and clients only with a certificate of the member CA, and presents
/// its own when it connects.
pub fn member_tls(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<rk8s_raftstore::transport::PeerTls, PkiError> {
    member_tls_live(ca_pem, tls::LiveCert::new(cert_pem, key_pem)?)
}

/// [`member_tls`] presenting `cert`, which may be renewed while in use.
pub fn member_tls_live(
    ca_pem: &str,
    cert: Arc<tls::LiveCert>,
) -> Result<rk8s_raftstore::transport::PeerTls, PkiError> {
    let roots = roots(ca_pem)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| PkiError::Invalid {
                what: "member CA certificate",
                detail: e.to_string(),
            })?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert.clone());
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_cert_resolver(cert);
    Ok(rk8s_raftstore::transport::PeerTls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_http::tls::{
        LiveCert, client_config, node_client_config, node_server_config, server_config,
    };
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn verifier(ca_pem: &str) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let ca = ClusterCa::generate().unwrap();
        let (cert, key) = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        server_config(&cert, &key).unwrap();
        client_config(&ca.cert_pem).unwrap();
        let end = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let name = ServerName::try_from(name).unwrap();
            verifier(&ca.cert_pem)
                .verify_server_cert(&end, &[], &name, &[], UnixTime::now())
                .unwrap();
        }
        let other = ClusterCa::generate().unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        assert!(
            verifier(&other.cert_pem)
                .verify_server_cert(&end, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert!(ca.cert_hash().unwrap().starts_with("sha256:"));
        assert_eq!(ca.cert_hash().unwrap().len(), 7 + 64);
    }

    #[test]
    fn users_certificates_verify_against_the_client_ca_only() {
        use rustls::pki_types::UnixTime;
        let clients = ClusterCa::generate_client_ca().unwrap();
        let verifier = |ca: &ClusterCa| {
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots(&ca.cert_pem).unwrap(),
                provider(),
            )
            .build()
            .unwrap()
        };
        let groups = ["devs".to_string(), "ops".to_string(), "qa".to_string()];
        let (cert, key) = clients
            .issue_client("jane", &groups, std::time::Duration::from_secs(3600))
            .unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        verifier(&clients)
            .verify_client_cert(&der, &[], UnixTime::now())
            .unwrap();
        // Its key is the certificate's: rustls takes the pair for a client.
        rk8s_http::tls::client_cert_config(&clients.cert_pem, &cert, &key).unwrap();
        // The cluster CA (which node agents trust) did not sign it.
        let cluster = ClusterCa::generate().unwrap();
        assert!(
            verifier(&cluster)
                .verify_client_cert(&der, &[], UnixTime::now())
                .is_err()
        );
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let orgs: Vec<&str> = parsed
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(orgs, ["devs", "ops", "qa"]);
    }

    #[test]
    fn only_apiserver_client_certificates_reach_node_agents() {
        use rustls::pki_types::UnixTime;
        let ca = ClusterCa::generate().unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&ca.cert_pem).unwrap(),
            provider(),
        )
        .build()
        .unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (client, client_key) = ca.issue_apiserver_client().unwrap();
        verifier
            .verify_client_cert(&der(&client), &[], UnixTime::now())
            .unwrap();
        // A node's or a member's serving certificate is no client certificate.
        let (node, node_key) = ca
            .issue_node_server("n1", &["10.0.0.5".parse().unwrap()])
            .unwrap();
        let (member, _) = ca.issue_server(&["localhost".into()]).unwrap();
        for cert in [&node, &member] {
            assert!(
                verifier
                    .verify_client_cert(&der(cert), &[], UnixTime::now())
                    .is_err()
            );
        }
        // Another cluster's client certificate neither.
        let (foreign, _) = ClusterCa::generate()
            .unwrap()
            .issue_apiserver_client()
            .unwrap();
        assert!(
            verifier
                .verify_client_cert(&der(&foreign), &[], UnixTime::now())
                .is_err()
        );
        node_server_config(LiveCert::new(&node, &node_key).unwrap(), &ca.cert_pem).unwrap();
        node_client_config(&ca.cert_pem, LiveCert::new(&client, &client_key).unwrap()).unwrap();
    }

    #[test]
    fn only_member_certificates_reach_the_store() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let members = ClusterCa::generate_member_ca().unwrap();
        let (cert, key) = members
            .issue_member(&["10.0.0.1".into(), "localhost".into()])
            .unwrap();
        member_tls(&members.cert_pem, &cert, &key).unwrap();
        // A member's certificate serves and authenticates.
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&members.cert_pem).unwrap(),
            provider(),
        )
        .build()
        .unwrap();
        clients
            .verify_client_cert(&der(&cert), &[], UnixTime::now())
            .unwrap();
        verifier(&members.cert_pem)
            .verify_server_cert(
                &der(&cert),
                &[],
                &ServerName::try_from("10.0.0.1").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap();
        // The cluster CA's client certificate (the API server's, towards nodes) and
        // another cluster's member certificate do not.
        let cluster = ClusterCa::generate().unwrap();
        let (apiserver, _) = cluster.issue_apiserver_client().unwrap();
        let (foreign, _) = ClusterCa::generate_member_ca()
            .unwrap()
            .issue_member(&["10.0.0.1".into()])
            .unwrap();
        for cert in [&apiserver, &foreign] {
            assert!(
                clients
                    .verify_client_cert(&der(cert), &[], UnixTime::now())
                    .is_err()
            );
        }
    }

    #[test]
    fn node_certificates_pass_only_for_their_node_and_never_for_the_api_server() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{DnsName, ServerName, UnixTime};
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let cluster = ClusterCa::generate().unwrap();
        let nodes = ClusterCa::generate_node_ca().unwrap();
        let (n1, _) = nodes
            .issue_node_server("n1", &["10.0.0.5".parse().unwrap()])
            .unwrap();
        let dns = |n: &str| ServerName::DnsName(DnsName::try_from(n.to_string()).unwrap());
        let verify = |ca: &str, name: ServerName<'_>| {
            verifier(ca).verify_server_cert(&der(&n1), &[], &name, &[], UnixTime::now())
        };
        // The API server dialing n1 by name accepts it; dialing n2 it does not.
        verify(&nodes.cert_pem, dns("n1")).unwrap();
        assert!(verify(&nodes.cert_pem, dns("n2")).is_err());
        // A client of the API server (trusting the cluster CA) refuses it, by any name.
        for name in [dns("n1"), ServerName::try_from("10.0.0.5").unwrap()] {
            assert!(verify(&cluster.cert_pem, name).is_err());
        }
        // A name that reads like an IP address is no DNS name: such a node could not
        // be told from an address another node's certificate names, and joins refuse
        // it (crate::join).
        assert!(DnsName::try_from("10.0.0.5".to_string()).is_err());
    }
}
