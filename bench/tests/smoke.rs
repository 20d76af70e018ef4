//! The benchmark harness at tiny sizes, so it cannot rot. Not a timed test: it checks that
//! every row was measured, not how fast.

use std::path::Path;
use std::process::Command;

#[test]
fn smoke_run_measures_every_system() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let relay = root.join("target/debug/wsproxy");
    assert!(relay.is_file(), "{} missing: `cargo test --workspace` builds it", relay.display());
    let json = tempfile_path();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_wsproxy-bench"))
            .args(["--smoke", "--relay"])
            .arg(&relay)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap()
    };
    // No retry: a failed run is a failure. (The stall once seen here was the harness's own
    // client not flushing; see docs/BENCHMARKS.md, "Solved: the stalled wss session".)
    let o = run();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Every figure is stamped with what it was measured on.
    for key in ["commit", "relay_profile", "cores", "kernel"] {
        assert!(!v["stamp"][key].is_null() && v["stamp"][key] != "unknown", "stamp.{key} missing: {}", v["stamp"]);
    }
    assert_eq!(v["stamp"]["relay_profile"], "debug");
    // The latency-under-load figures are there for every system (the two setup-only rows aside).
    let setup_only = ["wsproxy wss (RSA-2048 cert)", "wsproxy wss + replay store (redis)"];
    for row in v["rows"].as_array().unwrap().iter().filter(|r| !setup_only.contains(&r["system"].as_str().unwrap_or(""))) {
        assert!(row["load"]["rtt_p99_us"].as_f64().is_some_and(|p| p > 0.0), "{row}");
        assert!(row["load"]["fairness_jain"].as_f64().is_some_and(|f| f > 0.0 && f <= 1.0), "{row}");
    }
    let names: Vec<&str> = v["rows"].as_array().unwrap().iter().map(|r| r["system"].as_str().unwrap()).collect();
    for want in ["direct TCP", "socat relay", "wsproxy ws", "wsproxy wss", "websockify ws", "wsproxy wss + replay store (redis)"] {
        assert!(names.contains(&want), "{want} missing from {names:?} (socat, websockify and redis-server come with scripts/test.sh)");
    }
    let stored = v["rows"].as_array().unwrap().iter().find(|r| r["system"] == "wsproxy wss + replay store (redis)").unwrap();
    assert!(stored["setups_per_s"].as_f64().is_some_and(|s| s > 0.0), "{stored}");
    let ws = v["rows"].as_array().unwrap().iter().find(|r| r["system"] == "wsproxy ws").unwrap();
    assert!(ws["send_mb_s"].as_f64().unwrap() > 0.0 && ws["idle_bytes_per_session"].is_number());
    assert!(out.contains("targets (ratios within this run)"), "{out}");
}

fn tempfile_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke.json")
}
