//! Arbitrary bytes as a Kubernetes protobuf body, as the bare messages of a few kinds
//! (a Pod, a CRD's self-nesting schema, a Status) and as a watch stream. Decoding may
//! fail but must never panic or recurse without bound; whatever decodes must encode
//! again and decode back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rk8s_api::protobuf;

/// `value` (an object of `kind` in `api_version`) encodes, and what it encodes to
/// decodes.
fn reencodes(api_version: &str, kind: &str, value: &serde_json::Value) {
    if let Ok(bytes) = protobuf::encode_message(api_version, kind, value) {
        protobuf::decode_message(api_version, kind, &bytes)
            .expect("what the encoder wrote decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut body = protobuf::MAGIC.to_vec();
    body.extend_from_slice(data);
    for input in [data, &body[..]] {
        if let Ok(decoded) = protobuf::decode(input) {
            let again = protobuf::encode(&decoded.object);
            if let Ok(bytes) = again {
                protobuf::decode(&bytes).expect("what the encoder wrote decodes");
            }
        }
    }
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "Status"),
        ("apps/v1", "Deployment"),
    ] {
        if let Ok(value) = protobuf::decode_message(api_version, kind, data) {
            reencodes(api_version, kind, &value);
        }
    }
    let mut stream = data;
    while let Ok(Some((_, _, used))) = protobuf::read_watch_frame(stream) {
        stream = &stream[used..];
    }
});
