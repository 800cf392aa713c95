//! Arbitrary bytes as the credentials a request carries: a client certificate (DER),
//! an `Authorization` header (a bearer token, a service-account JWT checked against a
//! signing key) and impersonation headers. Each is accepted or refused, never a panic;
//! nothing the bytes say passes a check that only a signature can pass.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rk8s_apiserver::auth::bearer_token;
use rk8s_apiserver::service_accounts::{SigningKey, generate_key, looks_like_jwt};

/// A key of this run: no token the fuzzer writes is signed by it.
fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let text = generate_key().expect("a P-256 key");
        SigningKey::from_base64(&text).expect("the key just made")
    })
}

fuzz_target!(|data: &[u8]| {
    // The x509 authenticator: a user from a verified leaf (rustls has checked the
    // signature before; here only the subject is read).
    if let Ok(user) = rk8s_apiserver::users::from_certificate(data) {
        assert!(!user.name.is_empty(), "a certificate user has a name");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let header = format!("Bearer {text}");
    for value in [text, header.as_str()] {
        if let Some(token) = bearer_token(Some(value)) {
            let _ = rk8s_apiserver::auth::token_key(token);
            if looks_like_jwt(token) {
                assert!(key().verify(token).is_err(), "an unsigned token verified");
            }
        }
    }
    // Impersonation headers: each line `Name: value`.
    let mut headers = http::HeaderMap::new();
    for line in text.lines().take(32) {
        let Some((name, value)) = line.split_once(':') else { continue };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name.trim()),
            http::HeaderValue::try_from(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let _ = rk8s_apiserver::users::impersonation(&headers);
});
