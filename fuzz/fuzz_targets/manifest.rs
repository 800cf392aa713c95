//! Arbitrary bytes through everything `rk8sctl validate` does: YAML/JSON decoding,
//! defaulting, validation, the Compose and single-container decoders, re-encoding,
//! and the selector and quantity parsers. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rk8s_api::{formats, manifest, quantity::Quantity, selector};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ms) = manifest::load("fuzz.yaml", text) {
        let objects: Vec<_> = ms.into_iter().map(|m| m.object).collect();
        let yaml = manifest::to_yaml(&objects);
        // What rk8s writes out must read back.
        let (again, errs) = manifest::decode("again.yaml", &yaml);
        assert!(errs.is_empty(), "re-encoded output does not decode: {errs:?}\n{yaml}");
        assert_eq!(again.len(), objects.len());
    }
    let _ = formats::decode_compose("fuzz.yaml", text);
    let _ = formats::decode_container("fuzz.yaml", text);
    let _ = selector::parse_label_selector(text);
    let _ = text.parse::<selector::FieldSelector>();
    if let Ok(q) = text.parse::<Quantity>() {
        let printed = q.to_string();
        assert_eq!(printed.parse::<Quantity>().ok(), Some(q), "{text} printed as {printed}");
    }
});
