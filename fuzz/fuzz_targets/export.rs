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
        // Only the seed's records verify, byte for byte. The header and checkpoint lines are
        // read as JSON, so spacing or escapes there do not matter: their signatures cover
        // the values, not the spelling.
        let records = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("{\"v\":"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(records(text), records(SEED_EXPORT));
    }
});
