//! The sync cursor decoder: arbitrary cursors are refused unless they carry the right MAC, and
//! every cursor the gateway makes decodes to its sequence number.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use partnergate_core::sync::{decode_cursor_with, encode_cursor_with};
use partnergate_core::vault::keys::{IndexKeys, IndexSecret};

fn keys() -> &'static IndexKeys {
    static KEYS: OnceLock<IndexKeys> = OnceLock::new();
    KEYS.get_or_init(|| IndexKeys::derive(&IndexSecret::generate().expect("random")))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (client, cursor) = text.split_once('\n').unwrap_or(("crm.jobandco", &text));
    if let Ok(seq) = decode_cursor_with(keys(), client, cursor) {
        // A forgery cannot get here (16-byte MAC): whatever decodes names a sequence whose
        // genuine cursor decodes to the same number.
        let genuine = encode_cursor_with(keys(), client, seq);
        assert_eq!(decode_cursor_with(keys(), client, &genuine), Ok(seq));
    }
    // Round trip of a sequence taken from the input.
    let seq = data
        .iter()
        .take(8)
        .fold(0i64, |acc, &b| acc.wrapping_shl(8) | i64::from(b));
    let genuine = encode_cursor_with(keys(), client, seq);
    assert_eq!(decode_cursor_with(keys(), client, &genuine), Ok(seq));
    assert!(decode_cursor_with(keys(), &format!("{client}x"), &genuine).is_err());
});
