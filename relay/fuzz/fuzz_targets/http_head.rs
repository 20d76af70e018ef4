//! The HTTP request head parser in front of every upgrade, plus the ticket path handling.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((req, len))) = wsproxy::http::parse(data) {
        assert!(len <= data.len());
        let _ = wsproxy::ticket::decode_path(req.path.trim_start_matches('/').as_bytes());
    }
    let _ = wsproxy::static_files::resolve(std::path::Path::new("/srv"), &String::from_utf8_lossy(data));
});
