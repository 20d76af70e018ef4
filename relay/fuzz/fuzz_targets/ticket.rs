//! Ticket decoding and verification with arbitrary input: never panics, never accepts.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use wsproxy::ticket::TicketVerifier;

fn verifier() -> &'static TicketVerifier {
    static V: OnceLock<TicketVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::StdRng::seed_from_u64(1), 1024).unwrap();
        TicketVerifier::from_public_key(key.to_public_key(), true, 5)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // No input the fuzzer can make carries a valid signature of our key.
        assert!(verifier().verify(text, 1_800_000_000).is_err());
        let _ = wsproxy::ticket::parse_data(text);
    }
});
