//! The oVirt KEY=VALUE parser and the typed config built from it: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wsproxy::config::{Config, Settings};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut s = Settings::default();
        if s.parse_text(text, std::path::Path::new("fuzz.conf")).is_ok() {
            let _ = Config::from_settings(&s);
        }
    }
});
