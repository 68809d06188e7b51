//! Differential test of `nsxdp serve` against Knot DNS and NSD.
//!
//! Runs `tests/differential/run.py` (see `tests/differential/README.md`): it
//! starts knotd, nsd and nsxdp on 127.0.0.1 with the zones in
//! `tests/differential/zones/`, sends all three the same battery of queries
//! and requires every nsxdp response to match Knot's or NSD's. The script's
//! summary is printed; all failures are written to
//! `$CARGO_TARGET_TMPDIR/differential.json`.
//!
//! knotd, nsd and Debian's `/usr/bin/python3` with python3-dnspython are
//! needed: a missing one fails the test when the environment has `CI=true`
//! and skips it with a message otherwise.

use std::path::Path;
use std::process::Command;

/// Debian's python3, which has python3-dnspython (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";
/// run.py's exit status for "a prerequisite is missing".
const EXIT_MISSING: i32 = 3;
/// Seconds run.py may spend sending queries before it gives up.
const TIME_LIMIT: &str = "50";

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn skip_or_fail(why: &str) {
    assert!(!in_ci(), "the differential test cannot run (CI=true): {why}");
    eprintln!("differential test skipped: {why}");
}

/// PATH plus the sbin directories, where knotd and nsd are installed.
fn path_with_sbin() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        if !path.split(':').any(|p| p == dir) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(dir);
        }
    }
    path
}

#[test]
fn nsxdp_answers_match_knot_or_nsd() {
    if !Path::new(PYTHON).exists() {
        skip_or_fail(&format!("{PYTHON} is not installed"));
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("differential").join("run.py");
    let json = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential.json");
    let out = Command::new(PYTHON)
        .arg(&script)
        .arg("--nsxdp")
        .arg(env!("CARGO_BIN_EXE_nsxdp"))
        .arg("--json")
        .arg(&json)
        .args(["--time-limit", TIME_LIMIT])
        .env("PATH", path_with_sbin())
        .output()
        .expect("cannot start /usr/bin/python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(EXIT_MISSING) => skip_or_fail(stdout.trim()),
        status => panic!(
            "differential test failed (run.py exit status {status:?}; every failure is in {})\n\
             --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            json.display()
        ),
    }
}
