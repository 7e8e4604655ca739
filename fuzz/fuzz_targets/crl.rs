//! The revocation list reader: DER bytes parsed and checked against the partnership CA whose
//! real lists are in the seed corpus.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use partnergate::pki::parse_crl;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn ca_der() -> &'static [u8] {
    static CA: OnceLock<CertificateDer<'static>> = OnceLock::new();
    CA.get_or_init(|| {
        CertificateDer::from_pem_slice(include_bytes!("../fixtures/ca.pem")).expect("CA PEM")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(crl) = parse_crl(data, ca_der(), Path::new("fuzz.crl")) {
        // Only a list the CA really signed gets here; reading it back must not panic.
        let _ = crl.serials().count();
        let _ = crl.is_stale(crl.this_update);
    }
});
