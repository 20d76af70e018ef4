//! Ticket decoding and verification with arbitrary input: never panics, never accepts, and
//! the memory it holds at its peak is at most one byte per input byte plus 16 KiB: the
//! decoded JSON is the one copy (fields are borrowed from it), and no input makes the verifier
//! build more than it was given, as repeated `signedFields` names once did (a 32 KB ticket
//! hashed a 100 MB message).
#![no_main]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use wsproxy::ticket::TicketVerifier;

/// The system allocator, counting live bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn verifier() -> &'static TicketVerifier {
    static V: OnceLock<TicketVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::StdRng::seed_from_u64(1), 1024).unwrap();
        TicketVerifier::from_public_key(key.to_public_key(), true, 5)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let v = verifier();
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        // No input the fuzzer can make carries a valid signature of our key.
        assert!(v.verify(text, 1_800_000_000).is_err());
        let grown = PEAK.load(Relaxed).saturating_sub(before);
        assert!(grown <= data.len() + 16 * 1024, "{} input bytes made the verifier hold {grown} bytes", data.len());
        let _ = wsproxy::ticket::parse_data(text);
    }
});
