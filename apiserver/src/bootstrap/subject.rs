//! A client certificate's subject with several organizations (a user's groups, as
//! kube-apiserver reads them). rcgen keeps one value per attribute type, so a
//! certificate it signed gets its subject replaced here and is signed again with the
//! same CA key: the DER of X.509's `Certificate` (RFC 5280 §4.1) taken apart at its
//! top-level elements only.

use rcgen::{KeyPair, SigningKey};

use super::pki::PkiError;

/// `commonName` and `organizationName` (2.5.4.3, 2.5.4.10) as DER OIDs.
const COMMON_NAME: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
const ORGANIZATION: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x0a];
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTF8_STRING: u8 = 0x0c;
const BIT_STRING: u8 = 0x03;
/// The explicit `[0]` tag of a TBSCertificate's version.
const VERSION: u8 = 0xa0;
/// The subject's place among a v3 TBSCertificate's fields (version, serialNumber,
/// signature, issuer, validity, subject, ...).
const SUBJECT_FIELD: usize = 5;

fn malformed(detail: &str) -> PkiError {
    PkiError::Invalid {
        what: "certificate",
        detail: detail.to_string(),
    }
}

/// The length of the header and of the whole of the DER element `der` starts with.
fn element(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (2 + n, len)
    };
    let total = header.checked_add(len)?;
    (total <= der.len()).then_some((header, total))
}

/// The top-level elements of `content`.
fn elements(mut content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, total) = element(content)?;
        out.push(&content[..total]);
        content = &content[total..];
    }
    Some(out)
}

/// `content` as a DER element tagged `tag`.
fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// An X.509 Name: the common name, then one organization per group, each its own
/// relative distinguished name.
pub fn name(common_name: &str, organizations: &[String]) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        let mut attribute = oid.to_vec();
        attribute.extend(wrap(UTF8_STRING, value.as_bytes()));
        wrap(SET, &wrap(SEQUENCE, &attribute))
    };
    let mut rdns = rdn(&COMMON_NAME, common_name);
    for o in organizations {
        rdns.extend(rdn(&ORGANIZATION, o));
    }
    wrap(SEQUENCE, &rdns)
}

/// The certificate `cert` (DER) with `subject` (a DER Name) as its subject, signed
/// again by `ca_key` with the algorithm it was signed with.
pub fn with_subject(cert: &[u8], subject: &[u8], ca_key: &KeyPair) -> Result<Vec<u8>, PkiError> {
    let (header, total) = element(cert).ok_or_else(|| malformed("not DER"))?;
    let parts = elements(&cert[header..total]).ok_or_else(|| malformed("not DER"))?;
    let [tbs, algorithm, _signature] = parts.as_slice() else {
        return Err(malformed("not a certificate"));
    };
    let (tbs_header, _) = element(tbs).ok_or_else(|| malformed("not DER"))?;
    let mut fields = elements(&tbs[tbs_header..]).ok_or_else(|| malformed("not DER"))?;
    if fields.first().and_then(|f| f.first()) != Some(&VERSION) || fields.len() <= SUBJECT_FIELD {
        return Err(malformed("not an X.509 v3 certificate"));
    }
    fields[SUBJECT_FIELD] = subject;
    let tbs = wrap(SEQUENCE, &fields.concat());
    let signature = ca_key.sign(&tbs)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Ok(wrap(
        SEQUENCE,
        &[tbs, algorithm.to_vec(), wrap(BIT_STRING, &bits)].concat(),
    ))
}

/// `der` as a PEM certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_encode_and_decode_in_short_and_long_form() {
        for len in [0, 5, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let der = wrap(SEQUENCE, &content);
            let (header, total) = element(&der).unwrap();
            assert_eq!(total, der.len());
            assert_eq!(&der[header..], &content[..]);
        }
        // Truncated, and a length of more bytes than there are.
        assert_eq!(element(&[SEQUENCE]), None);
        assert_eq!(element(&[SEQUENCE, 0x82, 0x01]), None);
        assert_eq!(element(&[SEQUENCE, 0x05, 1, 2]), None);
        assert!(with_subject(b"junk", &name("x", &[]), &KeyPair::generate().unwrap()).is_err());
    }
}
