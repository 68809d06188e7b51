//! Differential tests of `nsxdp serve` against Knot DNS and NSD.
//!
//! Runs `tests/differential/run.py` (see `tests/differential/README.md`): it
//! starts knotd, nsd and nsxdp on 127.0.0.1, sends all three the same battery
//! of queries and requires every nsxdp response to match Knot's or NSD's.
//!
//! * `nsxdp_answers_match_knot_or_nsd`: the zones in `tests/differential/zones/`.
//! * `signed_zones_match_knot_or_nsd`: the signed zones in
//!   `tests/differential/dnssec/zones/` (`run.py --dnssec --delv
//!   --assert-dnssec`): DO=0 and DO=1 answers must match, and delv must validate
//!   nsxdp's answer of every kind as it validates Knot's or NSD's (which proves
//!   the signed zones and the harness).
//! * `signed_zones_are_what_sign_sh_makes`: `dnssec/sign.sh --check`.
//!
//! The script's summary is printed; all failures are written to
//! `$CARGO_TARGET_TMPDIR/differential*.json`.
//!
//! knotd, nsd, delv, dnssec-signzone and Debian's `/usr/bin/python3` with
//! python3-dnspython are needed: a missing one fails the test when the
//! environment has `CI=true` and skips it with a message otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Debian's python3, which has python3-dnspython (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";
/// run.py's and sign.sh's exit status for "a prerequisite is missing".
const EXIT_MISSING: i32 = 3;

/// The runs take turns: each starts three servers and keeps the machine busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn skip_or_fail(why: &str) {
    assert!(!in_ci(), "the differential test cannot run (CI=true): {why}");
    common::skipped(why);
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

fn differential_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("differential")
}

/// Runs run.py against the nsxdp under test with `args`, its failures written to
/// `$CARGO_TARGET_TMPDIR/JSON_NAME`; passes on exit status 0.
fn run_py(args: &[&str], json_name: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new(PYTHON).exists() {
        skip_or_fail(&format!("{PYTHON} is not installed"));
        return;
    }
    let json = Path::new(env!("CARGO_TARGET_TMPDIR")).join(json_name);
    let out = Command::new(PYTHON)
        .arg(differential_dir().join("run.py"))
        .arg("--nsxdp")
        .arg(env!("CARGO_BIN_EXE_nsxdp"))
        .arg("--json")
        .arg(&json)
        .args(args)
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

#[test]
fn nsxdp_answers_match_knot_or_nsd() {
    // seconds run.py may spend sending queries before it gives up
    run_py(&["--time-limit", "50"], "differential.json");
}

#[test]
fn signed_zones_match_knot_or_nsd() {
    run_py(&["--dnssec", "--delv", "--assert-dnssec", "--time-limit", "120"], "differential-dnssec.json");
}

#[test]
fn signed_zones_are_what_sign_sh_makes() {
    let script = differential_dir().join("dnssec").join("sign.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .env("PATH", path_with_sbin())
        .output()
        .expect("cannot start bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(EXIT_MISSING) => skip_or_fail(stderr.trim()),
        status => panic!("sign.sh --check failed (exit status {status:?})\n{stdout}{stderr}"),
    }
}
