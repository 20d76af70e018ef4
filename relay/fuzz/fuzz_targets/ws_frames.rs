//! The websocket frame decoder that reads everything a browser sends after the upgrade:
//! fed in arbitrary pieces, it must never panic, never hand out a range outside the input,
//! never consume more than it was given, and always make progress.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wsproxy::wsframe::{Decoder, Kind};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut decoder = Decoder::new(4096);
    let mut pending: Vec<u8> = Vec::new();
    let step = (split as usize % 64) + 1;
    for piece in rest.chunks(step) {
        pending.extend_from_slice(piece);
        loop {
            match decoder.next(&mut pending) {
                Ok(Some(f)) => {
                    assert!(f.consumed <= pending.len());
                    assert!(f.payload.end <= f.consumed && f.payload.start <= f.payload.end);
                    if matches!(f.kind, Kind::Ping | Kind::Pong | Kind::Close) {
                        assert!(f.payload.len() <= 125);
                    }
                    assert!(f.consumed > 0, "a frame that consumes nothing would loop forever");
                    pending.drain(..f.consumed);
                }
                Ok(None) => break,
                Err(v) => {
                    assert!(v.code == 1002 || v.code == 1009);
                    return;
                }
            }
        }
    }
});
