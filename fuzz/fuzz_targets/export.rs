//! The offline audit export verifier (`partnergate audit verify`), on arbitrary text, with the
//! public key whose export is in the seed corpus.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use partnergate_core::audit::verify::verify_export;

const SEED_EXPORT: &str = include_str!("../seeds/export/three_records.jsonl");

fn public_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let text = include_str!("../fixtures/audit-signing.pub");
        let mut key = vec![0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text.trim()[2 * i..2 * i + 2], 16).expect("hex");
        }
        key
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = verify_export(text, public_key());
    if report.ok {
        // Only the seed itself (the one signed export) may verify.
        assert_eq!(
            text.trim_end_matches('\n'),
            SEED_EXPORT.trim_end_matches('\n')
        );
    }
});
