//! One record of every type that both Knot and BIND read from a master file
//! (`tests/data/types/every-type.test.zone`, written by `gen.py` beside it), loaded by
//! nsxdp and by knotd from the same file; their AXFRs must hold the same records with the
//! same rdata octets, compared record by record in canonical order by dnspython
//! (`tests/every_type/axfr.py`); so must their answers to a query for each owner and type,
//! and the AXFR of an nsxdp that took the zone from knotd as its secondary. The types Knot
//! refuses but BIND and NSD read (`bind-nsd-types.test.zone`) are compared with named.
//!
//! Needs knotd, named, kzonecheck, named-checkzone, nsd-checkzone and Debian's
//! /usr/bin/python3 with dnspython: under `CI=true` a missing one fails the test;
//! otherwise it skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, have, soa_serial, start_nsxdp, TEST_SECRET};

const PYTHON: &str = "/usr/bin/python3";
const ZONE: &str = "every-type.test.";

fn have_dnspython() -> bool {
    let ok = Command::new(PYTHON).args(["-c", "import dns.query"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !common::in_ci(),
            "{PYTHON} with dnspython is required under CI=true (apt-get install python3-dnspython)"
        );
        common::skipped(&format!("{PYTHON} with dnspython not found (apt-get install python3-dnspython)"));
    }
    ok
}

fn zone_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/types/every-type.test.zone")
}

/// The lines `axfr.py` prints for `ZONE` (`extra`: its mode), or its error.
fn axfr(port: u16, extra: &[&str]) -> Result<Vec<String>, String> {
    axfr_of(port, ZONE, extra)
}

fn axfr_of(port: u16, zone: &str, extra: &[&str]) -> Result<Vec<String>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/every_type/axfr.py");
    let o = Command::new(PYTHON).arg(script).args([&port.to_string(), zone, TEST_SECRET]).args(extra).output().unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
}

/// The wire part of a line (owner, type, TTL, rdata octets), without the presentation form.
fn wire_part(line: &str) -> &str {
    line.rsplit_once('\t').map_or(line, |(w, _)| w)
}

/// Knot and BIND read the every-type zone file, and so does NSD (the file holds only what
/// both of the first two accept), and all three read the zone as nsxdp prints it (`nsxdp
/// dump`'s form), which nsxdp reads back as the same zone; BIND and NSD likewise the
/// zone of the types Knot does not read.
#[test]
fn the_peers_accept_the_zones_and_our_print_of_them() {
    if !have("kzonecheck", "knot-dnssecutils")
        || !have("named-checkzone", "bind9-utils")
        || !common::have_probe("nsd-checkzone", "-h", "nsd")
    {
        return;
    }
    let bind_nsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/types/bind-nsd-types.test.zone");
    for (file, zone, knot) in [(zone_file(), ZONE, true), (bind_nsd, "bind-nsd-types.test.", false)] {
        let loaded = nsxdp::zone::parse::load_file(&file, None).unwrap();
        assert!(loaded.is_servable(), "{:?}", loaded.diagnostics);
        let dir = tempfile::tempdir().unwrap();
        let printed = dir.path().join("printed.zone");
        let text: String = loaded
            .zone
            .records_canonical()
            .iter()
            .map(|r| nsxdp::zone::text::format_record(&r.to_owned()) + "\n")
            .collect();
        std::fs::write(&printed, &text).unwrap();
        let again = nsxdp::zone::parse::load_file(&printed, Some(loaded.zone.origin())).unwrap();
        assert!(again.is_servable() && loaded.zone.diff(&again.zone).is_empty(), "{:?}\n{text}", again.diagnostics);
        // nsxdp's own check too, without the DNSSEC checks as kzonecheck -d off (the
        // every-type zone's DNSSEC records are samples, not a signed zone).
        let ours = env!("CARGO_BIN_EXE_nsxdp");
        let mut checkers = vec![
            ("named-checkzone", vec!["-i", "local", zone]),
            ("nsd-checkzone", vec![zone]),
            (ours, vec!["check", "--no-dnssec", "--origin", zone]),
        ];
        if knot {
            checkers.push(("kzonecheck", vec!["-d", "off", "-o", zone]));
        }
        for f in [&file, &printed] {
            for (tool, args) in &checkers {
                let o = Command::new(tool).args(args).arg(f).output().unwrap();
                assert!(
                    o.status.success(),
                    "{tool} refuses {}: {}{} (for the zone file: run tests/data/types/gen.py again)\n{}",
                    f.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr),
                    if *f == printed { text.as_str() } else { "" }
                );
            }
        }
    }
}

#[test]
fn every_type_transfers_as_knotd_transfers_it() {
    if !have("knotd", "knot") || !have_dnspython() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kd, nd) = (dir.path().join("knot"), dir.path().join("nsxdp"));
    std::fs::create_dir_all(&kd).unwrap();
    std::fs::create_dir_all(&nd).unwrap();
    let file = nd.join("every-type.test.zone");
    std::fs::copy(zone_file(), &file).unwrap();

    let kp = free_port();
    let knot_conf = common::knot_conf(
        &kd,
        kp,
        TEST_SECRET,
        "",
        &format!("  - domain: {ZONE}\n    file: \"{}\"\n    acl: peers\n", file.display()),
    );
    let _knot = common::start_knotd(&kd, &knot_conf);
    let np = free_port();
    let conf = nd.join("nsxdp.toml");
    std::fs::write(&conf, common::primary_conf(np, ZONE, "every-type.test.zone", &[])).unwrap();
    let _nsxdp = start_nsxdp(&nd, &conf);

    let t0 = Instant::now();
    while soa_serial(kp, ZONE) != Some(2026120501) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "knotd does not serve the zone:\n{}",
            std::fs::read_to_string(kd.join("knot.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let knot = axfr(kp, &[]).unwrap_or_else(|e| panic!("AXFR from knotd: {e}"));
    let ours = axfr(np, &[]).unwrap_or_else(|e| panic!("AXFR from nsxdp: {e}"));

    // Every record of the file, and each type of it, is there.
    let loaded = nsxdp::zone::parse::load_file(&file, None).unwrap();
    assert!(loaded.is_servable(), "{:?}", loaded.diagnostics);
    assert_eq!(knot.len(), loaded.zone.rr_count(), "knotd's AXFR:\n{}", knot.join("\n"));
    for t in ["LOC", "EUI48", "EUI64", "SVCB", "HTTPS", "APL", "CSYNC", "URI", "NID", "L32", "L64", "LP", "KX", "CERT"]
    {
        assert!(knot.iter().any(|l| l.split('\t').nth(1) == Some(t)), "no {t} in knotd's AXFR");
    }
    assert_same_lines(&knot, &ours, "records");

    // The same records in answers (UDP, DO=0), which come from the snapshot.
    let knot_answers = axfr(kp, &["answers"]).unwrap_or_else(|e| panic!("queries to knotd: {e}"));
    let ours = axfr(np, &["answers"]).unwrap_or_else(|e| panic!("queries to nsxdp: {e}"));
    let questions = knot_answers.iter().filter(|l| l.starts_with("? ")).count();
    assert!(questions > 60 && knot_answers.len() - questions > 60, "{}", knot_answers.join("\n"));
    assert_same_lines(&knot_answers, &ours, "answer lines");

    // nsxdp as knotd's secondary: the zone comes in by AXFR and goes out the same.
    let sd = dir.path().join("secondary");
    std::fs::create_dir_all(&sd).unwrap();
    let sp = free_port();
    let sconf = common::secondary_conf(&sd, sp, ZONE, kp, TEST_SECRET, "");
    let _secondary = start_nsxdp(&sd, &sconf);
    common::wait_serial(sp, ZONE, 2026120501, Duration::from_secs(20), "nsxdp secondary", &[sd.join("nsxdp.log")]);
    let ours = axfr(sp, &[]).unwrap_or_else(|e| panic!("AXFR from the nsxdp secondary: {e}"));
    assert_same_lines(&knot, &ours, "records of the secondary");
}

/// The types Knot refuses but BIND and NSD read (`bind-nsd-types.test.zone`): nsxdp and
/// named, primaries of the same file, transfer and answer the same records.
#[test]
fn bind_nsd_types_transfer_as_named_transfers_them() {
    if !have("named", "bind9") || !have_dnspython() {
        return;
    }
    const ZONE: &str = "bind-nsd-types.test.";
    let dir = tempfile::tempdir().unwrap();
    let (bd, nd) = (dir.path().join("named"), dir.path().join("nsxdp"));
    std::fs::create_dir_all(&bd).unwrap();
    std::fs::create_dir_all(&nd).unwrap();
    let file = nd.join("bind-nsd-types.test.zone");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/types/bind-nsd-types.test.zone"), &file)
        .unwrap();

    let bp = free_port();
    let conf = bd.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
             \x20 listen-on port {bp} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n\
             \x20 dnssec-validation no;\n  notify no;\n  allow-transfer {{ key xfr; }};\n}};\n\
             controls {{ }};\n\
             key \"xfr\" {{ algorithm hmac-sha256; secret \"{TEST_SECRET}\"; }};\n\
             zone \"{ZONE}\" {{\n  type primary;\n  file \"{f}\";\n  check-names ignore;\n}};\n",
            d = bd.display(),
            f = file.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("named");
    // Foreground, logging to stderr, one worker thread; stays root (no -u).
    cmd.args(["-g", "-n", "1", "-c"]).arg(&conf);
    let _named = common::Proc::spawn(cmd, &bd.join("named.log"));
    let np = free_port();
    let nconf = nd.join("nsxdp.toml");
    std::fs::write(&nconf, common::primary_conf(np, ZONE, "bind-nsd-types.test.zone", &[])).unwrap();
    let _nsxdp = start_nsxdp(&nd, &nconf);

    let t0 = Instant::now();
    while soa_serial(bp, ZONE) != Some(2026120501) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "named does not serve the zone:\n{}",
            std::fs::read_to_string(bd.join("named.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let named = axfr_of(bp, ZONE, &[]).unwrap_or_else(|e| panic!("AXFR from named: {e}"));
    let ours = axfr_of(np, ZONE, &[]).unwrap_or_else(|e| panic!("AXFR from nsxdp: {e}"));
    let loaded = nsxdp::zone::parse::load_file(&file, None).unwrap();
    assert_eq!(named.len(), loaded.zone.rr_count(), "named's AXFR:\n{}", named.join("\n"));
    for t in ["X25", "ISDN", "NSAP", "PX", "AVC", "DLV", "MB"] {
        assert!(named.iter().any(|l| l.split('\t').nth(1) == Some(t)), "no {t} in named's AXFR");
    }
    assert_same_lines(&named, &ours, "records");
    let named = axfr_of(bp, ZONE, &["answers"]).unwrap_or_else(|e| panic!("queries to named: {e}"));
    let ours = axfr_of(np, ZONE, &["answers"]).unwrap_or_else(|e| panic!("queries to nsxdp: {e}"));
    assert_same_lines(&named, &ours, "answer lines");
}

/// Panics unless knotd's and nsxdp's lines agree in their wire parts, showing those that
/// differ.
fn assert_same_lines(knot: &[String], ours: &[String], what: &str) {
    let mut diff = Vec::new();
    for k in 0..knot.len().max(ours.len()) {
        let (a, b) = (knot.get(k).map(String::as_str), ours.get(k).map(String::as_str));
        if a.map(wire_part) != b.map(wire_part) {
            diff.push(format!("knotd: {}\nnsxdp: {}", a.unwrap_or("-"), b.unwrap_or("-")));
        }
    }
    assert!(diff.is_empty(), "{} of {} {what} differ:\n{}", diff.len(), knot.len(), diff.join("\n"));
}
