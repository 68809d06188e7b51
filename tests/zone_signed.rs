//! Pre-signed zones: `nsxdp check` on zones signed by BIND's dnssec-signzone
//! (tests/data/signed, and zones signed here at test time), with each problem of a signed
//! zone reported at its file and line; and signed zones through transfers unchanged — every
//! RRSIG with the TTL of the RRset it covers, as knotd transfers the same file, and a
//! re-signing that reaches a knotd secondary by IXFR.
//!
//! The check tests need nothing but the binary; the tests that sign at test time need
//! dnssec-keygen and dnssec-signzone (bind9-utils), ldns-keygen and ldns-signzone
//! (ldnsutils), kzonesign (knot-dnssecutils), the transfer tests knotd and kdig:
//! under `CI=true` a missing one fails the test, otherwise it skips with a line saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{assert_same_zone, axfr_lines, free_port, have, start_nsxdp, test_key, wait_serial};

fn signed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join("signed")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `nsxdp ARGS`, which must never crash.
fn nsxdp(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_nsxdp")).args(args).output().expect("cannot start nsxdp");
    assert!(
        out.status.code().is_some_and(|c| c != 101),
        "nsxdp {args:?} crashed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether `stderr` has `PATH:LINE: SEVERITY: ...WORDS...`.
fn has_diagnostic(stderr: &str, path: &Path, line: u32, severity: &str, words: &str) -> bool {
    let head = format!("{}:{line}: {severity}: ", path.display());
    stderr.lines().any(|l| l.starts_with(&head) && l.contains(words))
}

/// The line (1-based) of the first line of `text` that starts with `owner` and contains
/// `part`.
fn line_of(text: &str, owner: &str, part: &str) -> u32 {
    let i = text.lines().position(|l| l.starts_with(owner) && l.contains(part));
    i.unwrap_or_else(|| panic!("no line {owner} … {part}")) as u32 + 1
}

/// `text` without the lines that start with `owner` and contain `part`.
fn without(text: &str, owner: &str, part: &str) -> String {
    text.lines().filter(|l| !(l.starts_with(owner) && l.contains(part))).map(|l| format!("{l}\n")).collect()
}

#[test]
fn zones_signed_by_dnssec_signzone_check_without_a_word() {
    for zone in ["nsec.test.zone", "nsec3.test.zone"] {
        let path = signed_dir().join(zone);
        // The signatures run from 2026-12-01 to 2046-12-01: judged in between.
        let out = nsxdp(&["check", "--time", "20300101000000", p(&path)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{zone}:\n{err}");
        assert!(!err.contains("warning") && !err.contains("error"), "{zone} must load without a word:\n{err}");
        assert!(err.contains("OK"), "{err}");
    }
}

/// One problem made in a signed zone: how, the options, and what `nsxdp check` must say.
struct Case {
    name: &'static str,
    zone: &'static str,
    /// The zone text with the problem in it.
    make: fn(&str) -> String,
    /// The line the diagnostic is at, found in the text with the problem.
    line: fn(&str) -> u32,
    severity: &'static str,
    words: &'static str,
}

#[test]
fn each_problem_of_a_signed_zone_is_reported_at_its_line() {
    let cases = [
        Case {
            name: "an NSEC missing",
            zone: "nsec.test.zone",
            make: |t| without(t, "mail.nsec.test.", "IN NSEC\t"),
            line: |t| line_of(t, "mail.nsec.test.", "IN A"),
            severity: "error",
            words: "mail.nsec.test. has no NSEC record",
        },
        Case {
            name: "an NSEC out of order",
            zone: "nsec.test.zone",
            make: |t| {
                let l = t.lines().find(|l| l.starts_with("ns1.nsec.test.") && l.contains("IN NSEC\t")).unwrap();
                t.replace(l, &l.replace("ns2.nsec.test.", "secure.nsec.test."))
            },
            line: |t| line_of(t, "ns1.nsec.test.", "IN NSEC\t"),
            severity: "error",
            words: "next in canonical order is ns2.nsec.test.",
        },
        Case {
            name: "an NSEC type bitmap that leaves a type out",
            zone: "nsec.test.zone",
            make: |t| {
                let l = t.lines().find(|l| l.starts_with("nsec.test.") && l.contains("IN NSEC\t")).unwrap();
                t.replace(l, &l.replace(" MX ", " "))
            },
            line: |t| line_of(t, "nsec.test.", "IN NSEC\t"),
            severity: "error",
            words:
                "the NSEC at nsec.test. lists A NS SOA RRSIG NSEC DNSKEY, the name has A NS SOA MX RRSIG NSEC DNSKEY",
        },
        Case {
            name: "an NSEC at glue",
            zone: "nsec.test.zone",
            make: |t| format!("{t}ns.secure.nsec.test. 3600 IN NSEC www.nsec.test. A\n"),
            line: |t| line_of(t, "ns.secure.nsec.test. 3600 IN NSEC", ""),
            severity: "error",
            words: "below a zone cut",
        },
        Case {
            name: "DS away from a delegation",
            zone: "nsec.test.zone",
            make: |t| {
                format!("{t}mail.nsec.test. 3600 IN DS 1 13 2 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\n")
            },
            line: |t| line_of(t, "mail.nsec.test. 3600 IN DS", ""),
            severity: "error",
            words: "not at a delegation",
        },
        Case {
            name: "an unsigned RRset",
            zone: "nsec.test.zone",
            make: |t| without(t, "www.nsec.test.", "RRSIG\tAAAA "),
            line: |t| line_of(t, "www.nsec.test.", "IN AAAA"),
            severity: "warning",
            words: "the AAAA RRset at www.nsec.test. has no RRSIG",
        },
        Case {
            name: "an NSEC3 missing",
            zone: "nsec3.test.zone",
            make: |t| {
                // The NSEC3 whose owner is the hash of www (found by what covers it: the
                // one record whose bitmap is exactly A AAAA RRSIG).
                let l = t.lines().find(|l| l.contains("IN NSEC3\t") && l.ends_with(" A AAAA RRSIG")).unwrap();
                t.replace(&format!("{l}\n"), "")
            },
            line: |t| line_of(t, "www.nsec3.test.", "IN A"),
            severity: "error",
            words: "www.nsec3.test. has no NSEC3 record",
        },
        Case {
            name: "an NSEC3 of another chain",
            zone: "nsec3.test.zone",
            make: |t| {
                let l = t.lines().find(|l| l.contains("IN NSEC3\t")).unwrap();
                format!(
                    "{t}{}\n",
                    l.replacen(&l[..32], "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV", 1).replace("AABBCCDD", "00")
                )
            },
            line: |t| line_of(t, "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV", "NSEC3"),
            severity: "error",
            words: "salt 00, the NSEC3PARAM algorithm 1 iterations 5 salt AABBCCDD",
        },
        Case {
            name: "an NSEC3 owner that is the hash of no name",
            zone: "nsec3.test.zone",
            make: |t| {
                let l = t.lines().find(|l| l.contains("IN NSEC3\t")).unwrap();
                format!("{t}{}\n", l.replacen(&l[..32], "00000000000000000000000000000000", 1))
            },
            line: |t| line_of(t, "00000000000000000000000000000000", "NSEC3"),
            severity: "error",
            words: "is the hash of no name in the zone",
        },
        Case {
            name: "NSEC3 without NSEC3PARAM",
            zone: "nsec3.test.zone",
            make: |t| without(t, "nsec3.test.", "IN NSEC3PARAM"),
            line: |t| {
                let first = t.lines().position(|l| l.contains("IN NSEC3\t")).unwrap();
                first as u32 + 1
            },
            severity: "error",
            words: "no NSEC3PARAM",
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for case in &cases {
        let text = (case.make)(&std::fs::read_to_string(signed_dir().join(case.zone)).unwrap());
        let path = dir.path().join(case.zone);
        std::fs::write(&path, &text).unwrap();
        let out = nsxdp(&["check", "--time", "20300101000000", p(&path)]);
        let err = stderr(&out);
        let line = (case.line)(&text);
        let code = if case.severity == "error" { 1 } else { 0 };
        if out.status.code() != Some(code) || !has_diagnostic(&err, &path, line, case.severity, case.words) {
            problems.push(format!(
                "[{}] expected exit {code} and `{}:{line}: {}: …{}…`, got {:?}:\n{err}",
                case.name,
                path.display(),
                case.severity,
                case.words,
                out.status.code()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn signature_times_follow_the_options() {
    let path = signed_dir().join("nsec.test.zone");
    let text = std::fs::read_to_string(&path).unwrap();
    let soa_sig = line_of(&text, "nsec.test.", "RRSIG\tSOA ");
    // A week before the signatures end: warned (7 days by default), still servable.
    let out = nsxdp(&["check", "--time", "20461125000000", p(&path)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(has_diagnostic(&err, &path, soa_sig, "warning", "expires at 20461201000000"), "{err}");
    // A shorter warning window says nothing.
    let out = nsxdp(&["check", "--time", "20461125000000", "--sig-warn-days", "2", p(&path)]);
    assert!(out.status.code() == Some(0) && !stderr(&out).contains("warning"), "{}", stderr(&out));
    // All expired: an error, unless forced.
    let out = nsxdp(&["check", "--time", "20470101000000", p(&path)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: every signature of nsec.test. has expired"), "{err}");
    let out = nsxdp(&["check", "--time", "20470101000000", "--force", p(&path)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: every signature of nsec.test. has expired") && !err.contains("error"), "{err}");
    // A bad time is refused as such.
    let out = nsxdp(&["check", "--time", "yesterday", p(&path)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Signs `src` (its origin `origin`) into `out` with fresh keys in `dir` (one KSK and one
/// ZSK, ECDSA P-256), signatures valid from `start` to `end` (dnssec-signzone's -s/-e),
/// with `extra` options (e.g. NSEC3).
fn sign(dir: &Path, origin: &str, src: &Path, out: &Path, start: &str, end: &str, extra: &[&str]) {
    if !dir.join("keys").exists() {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        for ksk in [true, false] {
            let mut cmd = Command::new("dnssec-keygen");
            cmd.current_dir(dir.join("keys")).args(["-q", "-a", "ECDSAP256SHA256"]);
            if ksk {
                cmd.args(["-f", "KSK"]);
            }
            let o = cmd.arg(origin).output().unwrap();
            assert!(o.status.success(), "dnssec-keygen: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    // -d: its dsset file goes to the test's directory, not the working directory.
    let o = Command::new("dnssec-signzone")
        .current_dir(dir)
        .args(["-S", "-K"])
        .arg(dir.join("keys"))
        .arg("-d")
        .arg(dir)
        .args(["-o", origin, "-s", start, "-e", end, "-O", "full", "-f"])
        .arg(out)
        .args(extra)
        .arg(src)
        .output()
        .unwrap();
    assert!(o.status.success(), "dnssec-signzone: {}", String::from_utf8_lossy(&o.stderr));
}

/// The unsigned source of the test zones with `origin` and `serial`.
fn source(origin: &str, serial: u32) -> String {
    let text = std::fs::read_to_string(signed_dir().join("unsigned.src")).unwrap();
    text.replace("ORIGIN.", origin).replace("2026120501", &serial.to_string())
}

#[test]
fn zones_signed_now_load_clean_or_need_force_when_expired() {
    if !have("dnssec-signzone", "bind9-utils") || !have("dnssec-keygen", "bind9-utils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src.zone");
    std::fs::write(&src, source("now.test.", 1)).unwrap();
    for (what, extra) in
        [("NSEC", &[][..]), ("NSEC3", &["-3", "-", "-H", "0"][..]), ("NSEC3 opt-out", &["-3", "beef", "-A"][..])]
    {
        let signed = d.join("now.test.zone");
        sign(d, "now.test.", &src, &signed, "now-3600", "now+2592000", extra);
        let out = nsxdp(&["check", p(&signed)]);
        let err = stderr(&out);
        assert!(out.status.code() == Some(0) && !err.contains("warning"), "{what}:\n{err}");
        // Signed long ago, expired long ago (-P: dnssec-signzone's own verification would
        // refuse signatures that have expired).
        let expired_extra: Vec<&str> = extra.iter().copied().chain(["-P"]).collect();
        sign(d, "now.test.", &src, &signed, "20200101000000", "20200201000000", &expired_extra);
        let out = nsxdp(&["check", p(&signed)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}:\n{err}");
        assert!(err.contains("error: every signature of now.test. has expired"), "{what}:\n{err}");
        let out = nsxdp(&["check", "--force", p(&signed)]);
        assert_eq!(out.status.code(), Some(0), "{what}:\n{}", stderr(&out));
    }
}

/// Signs `src` for `origin` with ldns (`ldns-keygen`, `ldns-signzone`, signatures until
/// 2046-12-01) into `out`; `extra` are ldns-signzone's options (NSEC3: `-n -s SALT -t N`).
fn sign_ldns(dir: &Path, origin: &str, src: &Path, out: &Path, extra: &[&str]) {
    let keygen = |ksk: bool| {
        let mut cmd = Command::new("ldns-keygen");
        cmd.current_dir(dir).args(["-a", "ECDSAP256SHA256"]);
        if ksk {
            cmd.arg("-k");
        }
        let o = cmd.arg(origin).output().unwrap();
        assert!(o.status.success(), "ldns-keygen: {}", String::from_utf8_lossy(&o.stderr));
        dir.join(String::from_utf8_lossy(&o.stdout).trim())
    };
    let (ksk, zsk) = (keygen(true), keygen(false));
    let o = Command::new("ldns-signzone")
        .args(extra)
        .args(["-o", origin, "-e", "20461201000000", "-f"])
        .arg(out)
        .arg(src)
        .args([&ksk, &zsk])
        .output()
        .unwrap();
    assert!(o.status.success(), "ldns-signzone: {}", String::from_utf8_lossy(&o.stderr));
}

/// Signs `src` for `origin` with Knot's signer (`kzonesign`, its keys made as it signs)
/// into `out`; `policy` is the body of a Knot `policy:` entry.
fn sign_knot(dir: &Path, origin: &str, src: &Path, out: &Path, policy: &str) {
    let zone = origin.trim_end_matches('.');
    let kd = dir.join("knot");
    let _ = std::fs::remove_dir_all(&kd);
    for sub in ["db", "keys", "in", "out"] {
        std::fs::create_dir_all(kd.join(sub)).unwrap();
    }
    std::fs::copy(src, kd.join("in").join(format!("{zone}.zone"))).unwrap();
    let conf = kd.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "database:\n    storage: \"{k}/db\"\n    kasp-db: \"{k}/keys\"\n\
             policy:\n  - id: p\n    algorithm: ecdsap256sha256\n{policy}\
             template:\n  - id: default\n    storage: \"{k}/in\"\n    dnssec-signing: on\n    dnssec-policy: p\n\
             zone:\n  - domain: {zone}\n",
            k = kd.display()
        ),
    )
    .unwrap();
    let o = Command::new("kzonesign").arg("-c").arg(&conf).arg("-o").arg(kd.join("out")).arg(zone).output().unwrap();
    assert!(o.status.success(), "kzonesign: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::copy(kd.join("out").join(format!("{zone}.zone")), out).unwrap();
}

#[test]
fn zones_signed_by_ldns_and_knot_check_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src.zone");
    std::fs::write(&src, source("other.test.", 1)).unwrap();
    let mut signed = Vec::new();
    if have("ldns-signzone", "ldnsutils") && have("ldns-keygen", "ldnsutils") {
        for (what, extra) in [("ldns NSEC", &[][..]), ("ldns NSEC3", &["-n", "-s", "aabb", "-t", "3"][..])] {
            let out = d.join(format!("{}.zone", signed.len()));
            sign_ldns(d, "other.test.", &src, &out, extra);
            signed.push((what, out));
        }
    }
    if have("kzonesign", "knot-dnssecutils") {
        for (what, policy) in [
            ("Knot NSEC", ""),
            (
                "Knot NSEC3 opt-out",
                "    nsec3: on\n    nsec3-opt-out: on\n    nsec3-salt-length: 4\n    nsec3-iterations: 2\n",
            ),
        ] {
            let out = d.join(format!("{}.zone", signed.len()));
            sign_knot(d, "other.test.", &src, &out, policy);
            signed.push((what, out));
        }
    }
    for (what, file) in &signed {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("RRSIG") && text.contains("DNSKEY"), "{what}: not signed:\n{text}");
        let out = nsxdp(&["check", "--origin", "other.test.", p(file)]);
        let err = stderr(&out);
        assert!(out.status.code() == Some(0) && !err.contains("warning"), "{what}:\n{err}");
    }
}

/// knotd serving `file` as a primary of `zone` on `port`, started in `dir`.
fn knotd_primary(dir: &Path, port: u16, zone: &str, file: &Path) -> common::Proc {
    let conf = common::knot_conf(
        dir,
        port,
        common::TEST_SECRET,
        "",
        &format!("  - domain: {zone}\n    file: \"{}\"\n    acl: peers\n", file.display()),
    );
    common::start_knotd(dir, &conf)
}

#[test]
fn signed_zones_transfer_as_knotd_transfers_them() {
    if !have("knotd", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    for (zone, file) in [("nsec.test.", "nsec.test.zone"), ("nsec3.test.", "nsec3.test.zone")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::copy(signed_dir().join(file), d.join(file)).unwrap();
        let (np, kp) = (free_port(), free_port());
        let conf = d.join("nsxdp.toml");
        std::fs::write(&conf, common::primary_conf(np, zone.trim_end_matches('.'), file, &[])).unwrap();
        let _ns = start_nsxdp(d, &conf);
        let kdir = d.join("k");
        std::fs::create_dir_all(&kdir).unwrap();
        let _knot = knotd_primary(&kdir, kp, zone, &d.join(file));
        let logs = [kdir.join("knot.log"), d.join("nsxdp.log")];
        wait_serial(kp, zone, 2026120501, Duration::from_secs(20), "knotd serving the signed file", &logs);
        let key = test_key();
        let (k, n) = (axfr_lines(kp, zone, Some(&key)), axfr_lines(np, zone, Some(&key)));
        assert!(!k.is_empty(), "knotd's AXFR failed");
        assert_same_zone(&k, &n, "knotd", "nsxdp");
        // The RRSIGs with the TTL of the RRset each covers (the file has 300 and 3600).
        let ttls: std::collections::BTreeSet<&str> =
            n.iter().filter(|l| l.split(' ').nth(3) == Some("rrsig")).filter_map(|l| l.split(' ').nth(1)).collect();
        assert!(ttls.contains("300") && ttls.contains("3600"), "{zone}: RRSIG TTLs {ttls:?}");
        let log = std::fs::read_to_string(d.join("nsxdp.log")).unwrap();
        assert!(!log.contains("differs from"), "{zone}: the load warned:\n{log}");
    }
}

#[test]
fn a_resigned_zone_reaches_a_knotd_secondary_by_ixfr() {
    if !have("knotd", "knot")
        || !have("kdig", "knot-dnsutils")
        || !have("dnssec-signzone", "bind9-utils")
        || !have("dnssec-keygen", "bind9-utils")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zone = "resign.test.";
    let file = d.join("resign.test.zone");
    let src = d.join("src.zone");
    let sign_serial = |serial: u32, start: &str| {
        std::fs::write(&src, source(zone, serial)).unwrap();
        sign(d, zone, &src, &file, start, "now+2592000", &["-3", "-", "-H", "0"]);
    };
    sign_serial(1, "now-7200");
    let (np, kp) = (free_port(), free_port());
    let conf = d.join("nsxdp.toml");
    std::fs::write(&conf, common::primary_conf(np, "resign.test", "resign.test.zone", &[format!("127.0.0.1:{kp}")]))
        .unwrap();
    let _ns = start_nsxdp(d, &conf);
    let kdir = d.join("k");
    std::fs::create_dir_all(&kdir).unwrap();
    let kconf = common::knot_conf(
        &kdir,
        kp,
        common::TEST_SECRET,
        &format!("  - id: primary\n    address: 127.0.0.1@{np}\n    key: xfr\n"),
        &format!("  - domain: {zone}\n    master: primary\n    acl: peers\n"),
    );
    let _knot = common::start_knotd(&kdir, &kconf);
    let logs = [kdir.join("knot.log"), d.join("nsxdp.log")];
    let key = test_key();
    wait_serial(kp, zone, 1, Duration::from_secs(20), "knotd's first AXFR", &logs);
    assert_same_zone(&axfr_lines(kp, zone, Some(&key)), &axfr_lines(np, zone, Some(&key)), "knotd", "nsxdp");
    // Three re-signings: the same data, new signatures (another inception), a new serial.
    for (serial, start) in [(2, "now-3600"), (3, "now-1800"), (4, "now-600")] {
        sign_serial(serial, start);
        common::reload(&conf, Some("resign.test"));
        wait_serial(kp, zone, serial, Duration::from_secs(20), "knotd after a re-signing", &logs);
        let (k, n) = (axfr_lines(kp, zone, Some(&key)), axfr_lines(np, zone, Some(&key)));
        assert_same_zone(&k, &n, "knotd", "nsxdp");
        // Only signatures (and the SOA) changed: the IXFR carries RRSIG churn alone.
        let ixfr = common::ixfr_lines(np, zone, serial - 1, Some(&key)).expect("IXFR");
        let types: std::collections::BTreeSet<&str> = ixfr.iter().filter_map(|l| l.split(' ').nth(3)).collect();
        assert!(types.iter().all(|t| ["soa", "rrsig"].contains(t)), "IXFR {} → {serial}: {types:?}", serial - 1);
    }
    let log = std::fs::read_to_string(kdir.join("knot.log")).unwrap();
    assert!(log.contains("IXFR") && !log.contains("fallback to AXFR"), "knotd did not follow by IXFR:\n{log}");
    // Changed data under the same serial: nsxdp never raises a signed zone's serial.
    std::fs::write(&src, source(zone, 4).replace("192.0.2.80", "192.0.2.81")).unwrap();
    sign(d, zone, &src, &file, "now-600", "now+2592000", &["-3", "-", "-H", "0"]);
    let (ok, out) = common::ctl(&conf, &["reload", "resign.test"]);
    assert!(!ok && out.contains("re-sign the zone upstream"), "{out}");
    assert_eq!(common::soa_serial(np, zone), Some(4));
}
