use super::*;

fn claims(now: i64, audience: &str) -> Claims {
    Claims {
        sub: user_name("d", "robot"),
        iss: ISSUER.into(),
        aud: vec![audience.into()],
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: "1".into(),
        kubernetes: Private {
            namespace: "d".into(),
            serviceaccount: Ref {
                name: "robot".into(),
                uid: "sa-1".into(),
            },
            pod: Some(Ref {
                name: "web".into(),
                uid: "pod-1".into(),
            }),
            secret: None,
            node: Some(Ref {
                name: "n1".into(),
                uid: "node-1".into(),
            }),
        },
    }
}

fn key() -> SigningKey {
    SigningKey::from_base64(&generate_key().unwrap()).unwrap()
}

#[test]
fn tokens_round_trip_with_kubernetes_claims() {
    let key = key();
    let now = jiff::Timestamp::now().as_second();
    let c = claims(now, API_AUDIENCE);
    let token = key.issue(&c).unwrap();
    assert!(looks_like_jwt(&token));
    assert_eq!(key.verify(&token).unwrap(), c);
    // The payload is Kubernetes' shape: clients (and people) decode it.
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["sub"], "system:serviceaccount:d:robot");
    assert_eq!(json["kubernetes.io"]["pod"]["name"], "web");
    assert_eq!(json["kubernetes.io"]["serviceaccount"]["uid"], "sa-1");
    assert!(json["kubernetes.io"].get("secret").is_none());
}

#[test]
fn foreign_expired_and_other_audience_tokens_are_refused() {
    let key = key();
    let now = jiff::Timestamp::now().as_second();
    let other = self::key().issue(&claims(now, API_AUDIENCE)).unwrap();
    assert!(key.verify(&other).unwrap_err().contains("invalid"));
    let mut old = claims(now - 7200, API_AUDIENCE);
    old.exp = now - 120;
    let expired = key.issue(&old).unwrap();
    assert_eq!(
        key.verify(&expired).unwrap_err(),
        "service account token has expired"
    );
    let vault = key.issue(&claims(now, "vault")).unwrap();
    assert!(key.verify(&vault).unwrap_err().contains("audiences"));
    let mut tampered = key.issue(&claims(now, API_AUDIENCE)).unwrap();
    tampered.push('A');
    assert!(key.verify(&tampered).is_err());
    for not_jwt in ["abc", "a.b", "eyJ.x.y.z", "0123456789abcdef"] {
        assert!(!looks_like_jwt(not_jwt), "{not_jwt}");
    }
}

#[test]
fn a_token_ends_with_its_account_and_its_pod() {
    let now = 1_000_000;
    let c = claims(now, API_AUDIENCE);
    let pod = Some(("pod-1", None));
    assert!(still_bound(&c, Some("sa-1"), pod, None, None, now).is_ok());
    assert_eq!(
        still_bound(&c, None, pod, None, None, now).unwrap_err(),
        "serviceaccounts \"robot\" not found"
    );
    assert_eq!(
        still_bound(&c, Some("sa-2"), pod, None, None, now).unwrap_err(),
        "service account UID (sa-2) does not match claim (sa-1)"
    );
    assert_eq!(
        still_bound(&c, Some("sa-1"), None, None, None, now).unwrap_err(),
        "pods \"web\" not found"
    );
    assert!(
        still_bound(&c, Some("sa-1"), Some(("pod-2", None)), None, None, now)
            .unwrap_err()
            .contains("does not match")
    );
    // Deleting: the token works for a minute, while the containers stop.
    let deleting = |since: i64| Some(("pod-1", Some(now - since)));
    assert!(still_bound(&c, Some("sa-1"), deleting(30), None, None, now).is_ok());
    assert_eq!(
        still_bound(&c, Some("sa-1"), deleting(61), None, None, now).unwrap_err(),
        "pod d/web has been deleted"
    );
    // The pod's node is information only.
    assert!(still_bound(&c, Some("sa-1"), pod, None, Some("node-2"), now).is_ok());
}
