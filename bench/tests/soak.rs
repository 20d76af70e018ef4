//! A shorter soak than `bash scripts/soak.sh` (500 sessions, 60 s), so it runs in the test
//! suite: 100 concurrent wss sessions for 12 s with checksummed echo, a stream of good and
//! foreign tickets; zero corrupt bytes, zero bad tickets accepted, no fd or memory growth.

use std::path::Path;
use std::process::Command;

#[test]
fn short_soak_loses_nothing_and_accepts_no_bad_ticket() {
    let relay = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wsproxy");
    assert!(relay.is_file(), "{} missing: `cargo test --workspace` builds it", relay.display());
    let o = Command::new(env!("CARGO_BIN_EXE_wsproxy-bench"))
        .args(["--soak", "--soak-seconds", "12", "--soak-sessions", "100", "--relay"])
        .arg(&relay)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    println!("{out}");
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("corrupt/lost bytes 0") && out.contains("0 bad accepted") && out.contains("PASS"), "{out}");
}
