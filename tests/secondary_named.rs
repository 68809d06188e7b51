//! nsxdp as a secondary of BIND named, with an hmac-sha256 TSIG key.
//!
//! - `named_notify_ixfr`: named (primary, `ixfr-from-differences yes`, NOTIFY to nsxdp
//!   signed with the key). The first AXFR when nsxdp starts; a change on named (zone file
//!   edited, SIGHUP) → its NOTIFY → nsxdp's IXFR (nsxdp's log line and counters, named's
//!   "IXFR started") → the new serial served by nsxdp within 1 s of named logging the
//!   NOTIFY; both transfer the same zone, record by record.
//! - `named_ixfr_refused_axfr_fallback`: named with `provide-ixfr no` for our address
//!   answers an IXFR with the whole zone, which nsxdp must accept (zone `fb1.test`); a
//!   primary configured `ixfr false` in nsxdp gets an AXFR straight away (zone `fb2.test`).
//!
//! Needs named and kdig: under `CI=true` a missing one fails the test; otherwise it skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_same_zone, axfr_lines, ctl, free_port, have, soa_serial, start_nsxdp, Proc};

const SECRET: &str = "c2Vjb25kYXJ5LWludGVyb3Ata2V5LWZvci1uc3hkcA==";

fn zone_text(origin: &str, serial: u32, www: &str, extra: usize) -> String {
    let mut t = format!(
        "$ORIGIN {origin}\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\n\
         ns A 127.0.0.1\nwww A {www}\nmail MX 10 www\ntxt TXT \"serial {serial}\" \"two strings\"\n"
    );
    for i in 0..400 + extra {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

/// A named in `dir` serving `zones` (names without the final dot) from `dir/NAME.zone`,
/// NOTIFYing 127.0.0.1:`notify_port` with the key; `extra` goes after the options.
fn named(dir: &Path, port: u16, notify_port: u16, zones: &[&str], extra: &str) -> Proc {
    let d = dir.display();
    let mut conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
         \x20 managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n\
         \x20 recursion no;\n  dnssec-validation no;\n  notify explicit;\n  notify-delay 0;\n\
         \x20 also-notify {{ 127.0.0.1 port {notify_port} key xfr; }};\n  ixfr-from-differences yes;\n}};\n\
         controls {{ }};\n\
         key \"xfr\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n{extra}"
    );
    for z in zones {
        conf.push_str(&format!(
            "zone \"{z}\" {{ type primary; file \"{z}.zone\"; allow-transfer {{ key xfr; }}; }};\n"
        ));
    }
    let path = dir.join("named.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("named");
    cmd.arg("-g").arg("-c").arg(&path);
    Proc::spawn(cmd, &dir.join("named.log"))
}

/// Our own child: SIGHUP makes named re-read its configuration and zone files.
fn hup(p: &Proc) {
    let ok = Command::new("kill").args(["-HUP", &p.pid().to_string()]).status().unwrap().success();
    assert!(ok, "kill -HUP {}", p.pid());
}

/// The nsxdp configuration: one secondary zone per (name, primary options) pair.
fn nsxdp_conf(dir: &Path, port: u16, zones: &[(&str, String)]) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
         [[acl]]\nname = \"peers\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"notify\", \"transfer\"]\n"
    );
    for (name, primary) in zones {
        text.push_str(&format!(
            "[[zone]]\nname = \"{name}\"\nrole = \"secondary\"\nprimaries = [\"{primary}\"]\n\
             acl = [\"peers\"]\nnotify-ns = false\n"
        ));
    }
    let conf = dir.join("nsxdp.toml");
    std::fs::write(&conf, text).unwrap();
    conf
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    ["named.log", "nsxdp.log"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Rewrites a zone file with a modification time after named's last load of it.
fn write_zone(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_millis(10);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(later).unwrap();
}

/// Milliseconds since midnight of the first line of named's log containing `what`.
fn log_time(log: &str, what: &str) -> Option<i64> {
    let line = log.lines().find(|l| l.contains(what))?;
    let t = line.split_whitespace().nth(1)?;
    let (hms, ms) = t.split_once('.')?;
    let mut parts = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?)
}

/// Prints what each side logged about the transfers.
fn show_transfers(named_log: &str, nsxdp_log: &str) {
    for l in named_log.lines().filter(|l| l.contains("transfer of") && l.contains("started")) {
        eprintln!("named: {}", l.split_once(": ").map_or(l, |(_, rest)| rest));
    }
    for l in nsxdp_log.lines().filter(|l| l.contains(" by ")) {
        eprintln!("{l}");
    }
}

#[test]
fn named_notify_ixfr() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let t_all = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bp, np) = (free_port(), free_port());
    let zone = "sec.test.";
    std::fs::write(d.join("sec.test.zone"), zone_text(zone, 1, "192.0.2.1", 0)).unwrap();
    let primary = named(d, bp, np, &["sec.test"], "");
    common::wait_serial(bp, zone, 1, Duration::from_secs(20), "named loads its zone", &logs(d));

    let conf = nsxdp_conf(d, np, &[("sec.test", format!("127.0.0.1:{bp} key xfr"))]);
    let _ns = start_nsxdp(d, &conf);
    let took = common::wait_serial(np, zone, 1, Duration::from_secs(20), "nsxdp's first AXFR", &logs(d));
    eprintln!("first AXFR served after {took:?}");
    let key = format!("hmac-sha256:xfr:{SECRET}");
    assert_same_zone(&axfr_lines(bp, zone, Some(&key)), &axfr_lines(np, zone, Some(&key)), "named", "nsxdp");

    // Changes on named: NOTIFY → IXFR, the new serial served within 1 s of the NOTIFY.
    for (serial, www, extra) in [(2u32, "192.0.2.2", 30), (3, "192.0.2.3", 60)] {
        // named skips a file not modified since its last load (by the clock's second on
        // some file systems): let the clock move on first.
        std::thread::sleep(Duration::from_millis(1100));
        write_zone(&d.join("sec.test.zone"), &zone_text(zone, serial, www, extra));
        let t_hup = Instant::now();
        hup(&primary);
        let marker = format!("zone sec.test/IN: sending notifies (serial {serial})");
        let mut notified: Option<Instant> = None;
        let served = loop {
            if notified.is_none() && read(&d.join("named.log")).contains(&marker) {
                notified = Some(Instant::now());
            }
            if soa_serial(np, zone) == Some(serial) {
                break Instant::now();
            }
            assert!(
                t_hup.elapsed() < Duration::from_secs(15),
                "serial {serial} not served by nsxdp within 15 s of SIGHUP:\n{}\n{}",
                read(&d.join("named.log")),
                read(&d.join("nsxdp.log"))
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // named logged the NOTIFY before nsxdp could have heard of the change.
        let notified = notified.unwrap_or_else(|| {
            assert!(read(&d.join("named.log")).contains(&marker), "named did not log {marker:?}");
            served
        });
        let after_notify = served.saturating_duration_since(notified);
        eprintln!(
            "serial {serial}: served by nsxdp {:?} after SIGHUP, {after_notify:?} after named logged the NOTIFY",
            served - t_hup
        );
        // named's own clock: from its NOTIFY to nsxdp's IXFR reaching it.
        let blog = read(&d.join("named.log"));
        let ixfr = format!("IXFR started: TSIG xfr (serial {} -> {serial})", serial - 1);
        if let (Some(a), Some(b)) = (log_time(&blog, &marker), log_time(&blog, &ixfr)) {
            eprintln!("serial {serial}: named logged nsxdp's IXFR {} ms after its NOTIFY", b - a);
        }
        assert!(after_notify < Duration::from_secs(1), "serial {serial} served {after_notify:?} after the NOTIFY");
    }

    let b = axfr_lines(bp, zone, Some(&key));
    let n = axfr_lines(np, zone, Some(&key));
    assert!(b.len() > 400, "named sent {} records", b.len());
    assert_same_zone(&b, &n, "named", "nsxdp");

    let nlog = read(&d.join("nsxdp.log"));
    let from = format!("from 127.0.0.1:{bp}");
    for (a, b) in [(1, 2), (2, 3)] {
        let line = format!("serial {a} -> {b} by IXFR {from}");
        assert!(nlog.contains(&line), "nsxdp did not log {line:?}:\n{nlog}");
    }
    assert!(nlog.contains("serial 1 by AXFR"), "{nlog}");
    assert!(nlog.contains("NOTIFY from 127.0.0.1"), "{nlog}");
    let blog = read(&d.join("named.log"));
    let ixfr_out =
        blog.lines().filter(|l| l.contains("transfer of 'sec.test/IN'") && l.contains("IXFR started")).count();
    assert!(ixfr_out >= 2, "named did not log two outgoing IXFRs:\n{blog}");
    assert!(blog.contains("AXFR started"), "named did not log the first AXFR:\n{blog}");
    show_transfers(&blog, &nlog);
    let (ok, status) = ctl(&conf, &["zone-status", "sec.test"]);
    assert!(ok, "{status}");
    assert!(status.contains("serial 3") && status.contains("ixfr=2") && status.contains("axfr=1"), "{status}");
    assert!(status.contains("last-error none"), "{status}");
    eprintln!("named_notify_ixfr took {:?}", t_all.elapsed());
}

#[test]
fn named_ixfr_refused_axfr_fallback() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let t_all = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bp, np) = (free_port(), free_port());
    for z in ["fb1.test", "fb2.test"] {
        std::fs::write(d.join(format!("{z}.zone")), zone_text(&format!("{z}."), 10, "192.0.2.10", 0)).unwrap();
    }
    // named sends the whole zone in answer to IXFR from us (RFC 1995 §4 allows it).
    let primary = named(d, bp, np, &["fb1.test", "fb2.test"], "server 127.0.0.1 { provide-ixfr no; };\n");
    for z in ["fb1.test.", "fb2.test."] {
        common::wait_serial(bp, z, 10, Duration::from_secs(20), "named loads its zones", &logs(d));
    }
    let conf = nsxdp_conf(
        d,
        np,
        &[("fb1.test", format!("127.0.0.1:{bp} key xfr")), ("fb2.test", format!("127.0.0.1:{bp} key xfr ixfr false"))],
    );
    let _ns = start_nsxdp(d, &conf);
    for z in ["fb1.test.", "fb2.test."] {
        common::wait_serial(np, z, 10, Duration::from_secs(20), "nsxdp's first AXFR", &logs(d));
    }

    std::thread::sleep(Duration::from_millis(1100));
    for z in ["fb1.test", "fb2.test"] {
        write_zone(&d.join(format!("{z}.zone")), &zone_text(&format!("{z}."), 11, "192.0.2.11", 25));
    }
    hup(&primary);
    let key = format!("hmac-sha256:xfr:{SECRET}");
    for z in ["fb1.test.", "fb2.test."] {
        let took = common::wait_serial(np, z, 11, Duration::from_secs(15), "nsxdp after named's NOTIFY", &logs(d));
        eprintln!("{z} serial 11 served {took:?} after the SIGHUP");
        assert_same_zone(&axfr_lines(bp, z, Some(&key)), &axfr_lines(np, z, Some(&key)), "named", "nsxdp");
    }

    let nlog = read(&d.join("nsxdp.log"));
    let blog = read(&d.join("named.log"));
    show_transfers(&blog, &nlog);
    let from = format!("from 127.0.0.1:{bp}");
    // fb1: IXFR asked, the whole zone came back: taken as such.
    let line = format!("zone fb1.test.: serial 10 -> 11 by AXFR-style IXFR {from}");
    assert!(nlog.contains(&line), "nsxdp did not log {line:?}:\n{nlog}");
    assert!(
        blog.lines().any(|l| l.contains("transfer of 'fb1.test/IN'") && l.contains("AXFR-style IXFR started")),
        "named did not log an AXFR-style IXFR for fb1.test:\n{blog}"
    );
    let (ok, status) = ctl(&conf, &["zone-status", "fb1.test"]);
    assert!(ok && status.contains("serial 11") && status.contains("ixfr-fallbacks=1"), "{status}");
    // fb2: `ixfr false`: AXFR only, never an IXFR.
    let line = format!("zone fb2.test.: serial 10 -> 11 by AXFR {from}");
    assert!(nlog.contains(&line), "nsxdp did not log {line:?}:\n{nlog}");
    let fb2: Vec<&str> = blog.lines().filter(|l| l.contains("transfer of 'fb2.test/IN'")).collect();
    assert!(fb2.iter().filter(|l| l.contains(": AXFR started")).count() >= 2, "{fb2:#?}");
    assert!(!fb2.iter().any(|l| l.contains("IXFR")), "an IXFR for fb2.test:\n{fb2:#?}");
    let (ok, status) = ctl(&conf, &["zone-status", "fb2.test"]);
    assert!(ok && status.contains("serial 11") && status.contains("axfr=2 ixfr-fallbacks=0"), "{status}");
    eprintln!("named_ixfr_refused_axfr_fallback took {:?}", t_all.elapsed());
}
