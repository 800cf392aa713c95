//! Arbitrary bytes as a Kubernetes protobuf body, as the bare messages of a few kinds
//! (a Pod, a CRD's self-nesting schema, a Status) and as a watch stream. Decoding may
//! fail but must never panic or recurse without bound; whatever decodes must encode
//! again and decode back. Bytes that are JSON, and the JSON of whatever decodes, must
//! transcode straight to protobuf as the encoder writes the parsed value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rk8s_api::protobuf;

/// The kinds the bytes are also read as, bare messages.
const KINDS: [(&str, &str); 4] = [
    ("v1", "Pod"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "Status"),
    ("apps/v1", "Deployment"),
];

/// `value` (an object of `kind` in `api_version`) encodes, and what it encodes to
/// decodes.
fn reencodes(api_version: &str, kind: &str, value: &serde_json::Value) {
    if let Ok(bytes) = protobuf::encode_message(api_version, kind, value) {
        protobuf::decode_message(api_version, kind, &bytes)
            .expect("what the encoder wrote decodes");
    }
}

/// The transcoder and the encoder agree: the same bytes, or the same error.
fn agree(transcoded: protobuf::Result<Vec<u8>>, encoded: protobuf::Result<Vec<u8>>) {
    match (transcoded, encoded) {
        (Ok(t), Ok(e)) => assert!(t == e, "the transcoder's bytes are not the encoder's"),
        (Err(t), Err(e)) => assert_eq!(t, e, "the transcoder's error is not the encoder's"),
        (t, e) => panic!("the transcoder gives {t:?}, the encoder {e:?}"),
    }
}

/// `json`, if it is JSON, transcodes as its value encodes, as a body and as the bare
/// message of each of [`KINDS`]. (The value is parsed here, not taken from whoever
/// wrote the JSON: serde_json may read a float back a bit off.)
fn transcodes(json: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    agree(protobuf::transcode(json), protobuf::encode(&value));
    for (api_version, kind) in KINDS {
        let mut buf = Vec::new();
        let transcoded = protobuf::transcode_message(api_version, kind, json, &mut buf);
        agree(
            transcoded.map(|()| buf),
            protobuf::encode_message(api_version, kind, &value),
        );
    }
}

fuzz_target!(|data: &[u8]| {
    transcodes(data);
    let mut body = protobuf::MAGIC.to_vec();
    body.extend_from_slice(data);
    for input in [data, &body[..]] {
        if let Ok(decoded) = protobuf::decode(input) {
            if let Ok(json) = serde_json::to_vec(&decoded.object) {
                transcodes(&json);
            }
            let again = protobuf::encode(&decoded.object);
            if let Ok(bytes) = again {
                protobuf::decode(&bytes).expect("what the encoder wrote decodes");
            }
        }
    }
    for (api_version, kind) in KINDS {
        if let Ok(value) = protobuf::decode_message(api_version, kind, data) {
            reencodes(api_version, kind, &value);
            if let Ok(json) = serde_json::to_vec(&value) {
                transcodes(&json);
            }
        }
    }
    let mut stream = data;
    while let Ok(Some((_, _, used))) = protobuf::read_watch_frame(stream) {
        stream = &stream[used..];
    }
});
