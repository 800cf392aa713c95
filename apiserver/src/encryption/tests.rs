//! Tests of encryption at rest: each provider's round trip and stored format (values
//! sealed by an independent implementation — Python's `cryptography` and a reference
//! XSalsa20-Poly1305 checked against NaCl's published vector — with fixed keys and
//! nonces), the configuration's errors, and the transformer's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rk8s_raftstore::transform::ValueTransformer;

use super::EncryptionTransformer;
use super::providers::{KeyTransformer, ProviderKind};

const MESSAGE: &[u8] = br#"{"kind":"Secret","apiVersion":"v1","data":{"password":"aHVudGVyMg=="}}"#;
const KEY: &[u8] = b"/registry/secrets/default/s";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes(range: std::ops::Range<u8>) -> Vec<u8> {
    range.collect()
}

/// AES-GCM, nonce 100..112, with `KEY` as additional data.
const GCM32: &str = "6465666768696a6b6c6d6e6f3339b50f178d74a41c313a8ba8001edf6ee0677ae23a9600d4b8c326d999873ea5cb6ce22873ef65dfc9031d8d23b9bc6c34ea8302706349b2a7d9b2a8d7dcc76fb1e62cab366867ebaf6366a39d33bf369cf30d8599";
const GCM16: &str = "6465666768696a6b6c6d6e6f614025ccb5669ac0b96d3273f4af5fce1caa198ffbffb8288706def99ec8d5858bde7e06ef7953f0a8625c64fde33774acf26f17bf3c63498bd874398bc81c2d03a72f2fd1ca0b26729ab2ae5f44dc66e31177a818a7";
const GCM24: &str = "6465666768696a6b6c6d6e6f924ad0153ccb2c02f18287628897ef9cf17b3fba93df149df22a27a49454ba366b762bbd3c7430d15ca918935c63539f17015c3ca337807cf1c7236bd437a87d8d05803200eebaf81f3c171d5996a420ca1eaae25b6c";
/// AES-256-CBC, IV 200..216, PKCS#7.
const CBC: &str = "c8c9cacbcccdcecfd0d1d2d3d4d5d6d707d16fe6735d98b78b6abb88e36de898560ffaa52519d3084a81e5b254ab99359b233138d1456ea68a128c2e7d317df9d56c8fabb1c9a58cdc5674d5c91ddec223ae130f5e156968fb363ccf76041e4f";
/// Secretbox, nonce 50..74.
const SECRETBOX: &str = "32333435363738393a3b3c3d3e3f404142434445464748492291eba1404bc5ed9c1af330ef65c10c55263a9797afd05c400464c9d2fdb65408242c48e6b41f49e8f0b39ac934cd551f4a2c5672d65f16e27da9d87723518318adee6480bac8af4938a8fdab547c96ddabc014121d";

#[test]
fn values_sealed_elsewhere_with_fixed_keys_and_nonces_open() {
    let cases = [
        (ProviderKind::AesGcm, bytes(0..32), GCM32),
        (ProviderKind::AesGcm, bytes(0..16), GCM16),
        (ProviderKind::AesGcm, bytes(0..24), GCM24),
        (ProviderKind::AesCbc, bytes(0..32), CBC),
        (ProviderKind::Secretbox, bytes(0..32), SECRETBOX),
    ];
    for (kind, secret, sealed) in cases {
        let k = KeyTransformer::new(kind, "k1", &secret).unwrap();
        assert_eq!(
            k.open(KEY, &hex(sealed)).unwrap(),
            MESSAGE,
            "{kind:?} {}",
            secret.len()
        );
    }
}

#[test]
fn every_provider_round_trips_with_kubes_prefix_and_a_fresh_nonce() {
    for (kind, len) in [
        (ProviderKind::AesGcm, 16),
        (ProviderKind::AesGcm, 24),
        (ProviderKind::AesGcm, 32),
        (ProviderKind::AesCbc, 32),
        (ProviderKind::Secretbox, 32),
    ] {
        let k = KeyTransformer::new(kind, "key1", &vec![7; len]).unwrap();
        let prefix = format!("k8s:enc:{}:v1:key1:", kind.name());
        for size in [0, 1, 15, 16, 17, 1024] {
            let value = vec![b'x'; size];
            let a = k.seal(KEY, &value).unwrap();
            let b = k.seal(KEY, &value).unwrap();
            assert!(a.starts_with(prefix.as_bytes()));
            assert_ne!(a, b, "{kind:?}: the same value sealed twice looks the same");
            assert_eq!(k.open(KEY, &a[prefix.len()..]).unwrap(), value);
        }
    }
}

#[test]
fn a_wrong_key_does_not_open_a_value() {
    for kind in [
        ProviderKind::AesGcm,
        ProviderKind::AesCbc,
        ProviderKind::Secretbox,
    ] {
        let right = KeyTransformer::new(kind, "k", &[1; 32]).unwrap();
        let wrong = KeyTransformer::new(kind, "k", &[2; 32]).unwrap();
        let sealed = right.seal(KEY, MESSAGE).unwrap();
        let data = &sealed[right.prefix().len()..];
        // CBC has no authentication: a wrong key is seen, almost always, in the
        // padding; what comes out is never the value.
        match wrong.open(KEY, data) {
            Ok(v) => assert_ne!(v, MESSAGE, "{kind:?}"),
            Err(e) => assert!(!e.is_empty()),
        }
        if kind != ProviderKind::AesCbc {
            assert!(wrong.open(KEY, data).is_err(), "{kind:?}");
        }
    }
}

#[test]
fn aes_gcm_binds_the_value_to_its_store_key() {
    let k = KeyTransformer::new(ProviderKind::AesGcm, "k", &[3; 32]).unwrap();
    let sealed = k.seal(KEY, MESSAGE).unwrap();
    let data = &sealed[k.prefix().len()..];
    assert_eq!(k.open(KEY, data).unwrap(), MESSAGE);
    let err = k
        .open(b"/registry/secrets/attacker/copy", data)
        .unwrap_err();
    assert_eq!(err, "cipher: message authentication failed");
    // The vector sealed with KEY as additional data neither opens elsewhere.
    let fixed = KeyTransformer::new(ProviderKind::AesGcm, "k", &bytes(0..32)).unwrap();
    assert!(
        fixed
            .open(b"/registry/secrets/default/t", &hex(GCM32))
            .is_err()
    );
}

#[test]
fn short_or_damaged_values_are_errors_not_panics() {
    for kind in [
        ProviderKind::AesGcm,
        ProviderKind::AesCbc,
        ProviderKind::Secretbox,
    ] {
        let k = KeyTransformer::new(kind, "k", &[1; 32]).unwrap();
        for data in [&b""[..], b"short", &[0u8; 17][..], &[0u8; 40][..]] {
            assert!(k.open(KEY, data).is_err(), "{kind:?} {data:?}");
        }
    }
}

fn config(providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
    )
}

/// base64 of `n` bytes of `b`.
fn secret(b: u8, n: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vec![b; n])
}

fn transformer(providers: &str) -> EncryptionTransformer {
    EncryptionTransformer::parse("enc.yaml", &config(providers)).unwrap()
}

fn errors(text: &str) -> String {
    EncryptionTransformer::parse("enc.yaml", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn key_sizes_are_checked_naming_the_file_line_and_field() {
    let text = config(&format!(
        "  - aesgcm:\n      keys: [{{name: a, secret: {}}}]\n  - aescbc:\n      keys:\n      - name: b\n        secret: {}\n  - secretbox:\n      keys: [{{name: c, secret: {}}}]\n",
        secret(1, 20),
        secret(1, 16),
        secret(1, 31),
    ));
    let e = errors(&text);
    assert!(
        e.contains("enc.yaml:7:24: resources[0].providers[0].aesgcm.keys[0].secret: invalid value \"REDACTED\": secret is not of the expected length, got 20, expected one of [16, 24, 32]"),
        "{e}"
    );
    assert!(
        e.contains("enc.yaml:11:9: resources[0].providers[1].aescbc.keys[0].secret: invalid value \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"),
        "{e}"
    );
    assert!(
        e.contains("resources[0].providers[2].secretbox.keys[0].secret: invalid value \"REDACTED\": secret is not of the expected length, got 31, expected one of [32]"),
        "{e}"
    );
    assert!(!e.contains(&secret(1, 16)), "a secret is printed: {e}");
}

#[test]
fn configuration_errors_say_what_kube_apiserver_says() {
    let kms = errors(&config(
        "  - kms:\n      name: vault\n      endpoint: unix:///kms.sock\n",
    ));
    assert!(
        kms.contains(
            "resources[0].providers[0].kms: forbidden: rk8s-server has no KMS plugin support"
        ),
        "{kms}"
    );
    let two = errors(&config(&format!(
        "  - identity: {{}}\n    aesgcm:\n      keys: [{{name: a, secret: {}}}]\n",
        secret(1, 32)
    )));
    assert!(
        two.contains(
            "resources[0].providers[0]: more than one provider specified in a single element"
        ),
        "{two}"
    );
    let none = errors(&config("  - {}\n"));
    assert!(
        none.contains("provider does not contain any of the expected providers"),
        "{none}"
    );
    let not_b64 = errors(&config(
        "  - aesgcm:\n      keys: [{name: a, secret: '!!'}]\n",
    ));
    assert!(
        not_b64.contains(
            "aesgcm.keys[0].secret: invalid value \"REDACTED\": secrets must be base64 encoded"
        ),
        "{not_b64}"
    );
    let no_keys = errors(&config("  - aescbc:\n      keys: []\n"));
    assert!(
        no_keys.contains("resources[0].providers[0].aescbc.keys: at least one keys is required"),
        "{no_keys}"
    );
    let no_name = errors(&config(&format!(
        "  - aescbc:\n      keys: [{{secret: {}}}]\n",
        secret(1, 32)
    )));
    assert!(
        no_name.contains("aescbc.keys[0].name: name is a mandatory field for a key"),
        "{no_name}"
    );
    let colon = errors(&config(&format!(
        "  - aesgcm:\n      keys: [{{name: \"a:b\", secret: {}}}]\n",
        secret(1, 32)
    )));
    assert!(
        colon.contains("aesgcm.keys[0].name: invalid value \"a:b\": should not contain ':'"),
        "{colon}"
    );
    let header = errors("apiVersion: v1\nkind: EncryptionConfig\nresources: []\n");
    assert!(
        header.contains("apiVersion: unsupported value \"v1\""),
        "{header}"
    );
    assert!(
        header.contains("kind: unsupported value \"EncryptionConfig\""),
        "{header}"
    );
    assert!(
        header.contains("resources: at least one resources is required"),
        "{header}"
    );
    let unknown = errors(&config("  - identity: {}\n    aesgcmm: {}\n"));
    assert!(unknown.contains("unknown field `aesgcmm`"), "{unknown}");
}

#[test]
fn resource_names_are_checked_as_kube_does() {
    let with = |names: &str| {
        errors(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: {names}\n  providers: [{{identity: {{}}}}]\n"
        ))
    };
    let cases = [
        (
            "[Secrets]",
            "resources[0].resources[0]: invalid value \"Secrets\": resource name should not contain capital letters",
        ),
        (
            "['*']",
            "use '*.' to encrypt all the resources from core API group",
        ),
        (
            "[events.events.k8s.io]",
            "Use 'events' instead in the config file",
        ),
        (
            "[deployments.extensions]",
            "'extensions' group has been removed",
        ),
        (
            "['secrets.*']",
            "encrypting the same resource across groups is not supported",
        ),
        (
            "[serviceipallocations]",
            "resources which do not have REST API/s cannot be encrypted",
        ),
        (
            "[secrets, secrets]",
            "the same resource cannot be specified multiple times",
        ),
        (
            "[secrets, '*.']",
            "using overlapping resources such as 'secrets' and '*.'",
        ),
        ("['*.*', configmaps]", "using overlapping resources"),
        (
            "[]",
            "resources[0].resources: at least one resources[0].resources is required",
        ),
    ];
    for (names, expected) in cases {
        let e = with(names);
        assert!(e.contains(expected), "{names}: {e}");
    }
}

#[test]
fn the_first_key_writes_and_every_key_reads_with_others_stale() {
    let old = transformer(&format!(
        "  - aesgcm:\n      keys: [{{name: old, secret: {}}}]\n",
        secret(1, 32)
    ));
    let rotated = transformer(&format!(
        "  - aesgcm:\n      keys:\n      - {{name: new, secret: {}}}\n      - {{name: old, secret: {}}}\n  - identity: {{}}\n",
        secret(2, 32),
        secret(1, 32)
    ));
    let written_old = old.transform_to_storage(KEY, MESSAGE).unwrap().into_owned();
    assert!(written_old.starts_with(b"k8s:enc:aesgcm:v1:old:"));
    let read = rotated.transform_from_storage(KEY, &written_old).unwrap();
    assert_eq!(&read.value[..], MESSAGE);
    assert!(read.stale, "read with the second key: stale");
    let written_new = rotated
        .transform_to_storage(KEY, MESSAGE)
        .unwrap()
        .into_owned();
    assert!(written_new.starts_with(b"k8s:enc:aesgcm:v1:new:"));
    assert!(
        !rotated
            .transform_from_storage(KEY, &written_new)
            .unwrap()
            .stale
    );
    // Plain values read through identity, stale since it is not first.
    let plain = rotated.transform_from_storage(KEY, MESSAGE).unwrap();
    assert_eq!(&plain.value[..], MESSAGE);
    assert!(plain.stale);
    // Only the old key: the new one is unknown, and named.
    let e = old.transform_from_storage(KEY, &written_new).unwrap_err();
    assert!(e.contains("aesgcm key named \"new\""), "{e}");
    // No identity: plain values are not read.
    let e = old.transform_from_storage(KEY, MESSAGE).unwrap_err();
    assert!(e.contains("not encrypted"), "{e}");
}

#[test]
fn identity_first_writes_plain_and_still_reads_encrypted_values() {
    let t = transformer(&format!(
        "  - identity: {{}}\n  - secretbox:\n      keys: [{{name: s, secret: {}}}]\n",
        secret(5, 32)
    ));
    assert_eq!(&t.transform_to_storage(KEY, MESSAGE).unwrap()[..], MESSAGE);
    let sealed = KeyTransformer::new(ProviderKind::Secretbox, "s", &[5; 32])
        .unwrap()
        .seal(KEY, MESSAGE)
        .unwrap();
    let read = t.transform_from_storage(KEY, &sealed).unwrap();
    assert_eq!(&read.value[..], MESSAGE);
    assert!(read.stale);
    assert!(!t.transform_from_storage(KEY, MESSAGE).unwrap().stale);
}

#[test]
fn two_providers_of_one_kind_share_a_prefix_and_both_are_tried() {
    let t = transformer(&format!(
        "  - aesgcm:\n      keys: [{{name: k, secret: {}}}]\n  - aesgcm:\n      keys: [{{name: k, secret: {}}}]\n",
        secret(1, 32),
        secret(2, 32)
    ));
    let by_second = KeyTransformer::new(ProviderKind::AesGcm, "k", &[2; 32])
        .unwrap()
        .seal(KEY, MESSAGE)
        .unwrap();
    // The first provider's key fails to authenticate it; the second reads it.
    let read = t.transform_from_storage(KEY, &by_second).unwrap();
    assert_eq!(&read.value[..], MESSAGE);
    assert!(read.stale);
    let by_neither = KeyTransformer::new(ProviderKind::AesGcm, "k", &[3; 32])
        .unwrap()
        .seal(KEY, MESSAGE)
        .unwrap();
    let e = t.transform_from_storage(KEY, &by_neither).unwrap_err();
    assert_eq!(
        e,
        "aesgcm key k: cipher: message authentication failed; aesgcm key k: cipher: message authentication failed"
    );
}

#[test]
fn only_configured_resources_are_encrypted_and_wildcards_resolve_as_kube() {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, crontabs.stable.example.com]\n  providers:\n  - aesgcm:\n      keys: [{{name: exact, secret: {a}}}]\n- resources: ['*.apps', '*.']\n  providers:\n  - aescbc:\n      keys: [{{name: group, secret: {a}}}]\n- resources: ['*.*']\n  providers:\n  - secretbox:\n      keys: [{{name: any, secret: {a}}}]\n",
        a = secret(9, 32)
    );
    let t = EncryptionTransformer::parse("enc.yaml", &text).unwrap();
    let prefix = |key: &str| {
        let out = t.transform_to_storage(key.as_bytes(), b"{}").unwrap();
        String::from_utf8_lossy(&out[..out.len().min(32)]).into_owned()
    };
    assert!(prefix("/registry/secrets/ns/s").starts_with("k8s:enc:aesgcm:v1:exact:"));
    assert!(
        prefix("/registry/stable.example.com/crontabs/ns/c").starts_with("k8s:enc:aesgcm:v1:exact")
    );
    assert!(prefix("/registry/deployments/ns/d").starts_with("k8s:enc:aescbc:v1:group:"));
    assert!(prefix("/registry/configmaps/ns/c").starts_with("k8s:enc:aescbc:v1:group:"));
    assert!(
        prefix("/registry/rbac.authorization.k8s.io/x").starts_with("k8s:enc:secretbox:v1:any:")
    );
    assert!(prefix("/registry/clusterroles/admin").starts_with("k8s:enc:secretbox:v1:any:"));
    // Outside /registry/: the store's own records are never transformed.
    assert_eq!(prefix("/rk8s/members/1"), "{}");
    assert!(!t.transforms(b"/rk8s/cluster/ca"));

    let secrets_only = transformer(&format!(
        "  - aesgcm:\n      keys: [{{name: k, secret: {}}}]\n",
        secret(1, 32)
    ));
    let cm = b"/registry/configmaps/default/c";
    assert_eq!(
        &secrets_only.transform_to_storage(cm, b"{}").unwrap()[..],
        b"{}"
    );
    assert!(!secrets_only.transforms(cm));
    // An encrypted value where none is expected is an error, not garbage.
    let sealed = secrets_only
        .transform_to_storage(KEY, b"{}")
        .unwrap()
        .into_owned();
    let e = secrets_only
        .transform_from_storage(cm, &sealed)
        .unwrap_err();
    assert!(
        e.contains("identity transformer tried to read encrypted data"),
        "{e}"
    );
    assert_eq!(secrets_only.prefixes(), ["/registry/secrets/"]);
}

#[test]
fn events_cover_both_event_apis() {
    let t = EncryptionTransformer::parse(
        "enc.yaml",
        &format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [events]\n  providers:\n  - aesgcm:\n      keys: [{{name: k, secret: {}}}]\n",
            secret(1, 16)
        ),
    )
    .unwrap();
    assert!(t.transforms(b"/registry/events/default/e"));
    assert!(t.transforms(b"/registry/events.k8s.io/events/default/e"));
}
