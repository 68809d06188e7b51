//! nsxdp as a secondary asking for IXFR over UDP first (`ixfr-udp` on the primary, RFC
//! 1995 §2), with an hmac-sha256 TSIG key:
//!
//! - `from_nsxdp_primary`: another nsxdp as primary. A small change comes in one datagram
//!   (counted as `ixfr-udp` in zone-status, logged "IXFR over UDP", and the primary counts
//!   an IXFR over UDP); a change too large for a datagram gets the primary's SOA alone, and
//!   the secondary asks again over TCP (`ixfr-udp-to-tcp`). Both serve the same zone.
//! - `from_named_primary`: BIND named as primary (`ixfr-from-differences yes`): a change on
//!   named → its NOTIFY → our IXFR over UDP, which named (9.18, like every BIND 9) answers
//!   with its SOA alone → the same IXFR over TCP (`ixfr-udp-to-tcp`) → the new serial
//!   served, and the same zone as named's.
//!
//! Needs kdig (and named for the second): under `CI=true` a missing one fails the test;
//! otherwise it skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_same_zone, axfr_lines, ctl, free_port, have, start_nsxdp, wait_serial, Proc};

const SECRET: &str = "aXhmci11ZHAtc2Vjb25kYXJ5LWtleS1mb3ItbnN4ZHA=";

fn zone_text(origin: &str, serial: u32, hosts: usize) -> String {
    let mut t = format!(
        "$ORIGIN {origin}\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    );
    for i in 0..hosts {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

/// An nsxdp secondary of `zone` on `port`, from the primary on `primary` with `ixfr-udp`.
fn secondary_conf(dir: &Path, port: u16, zone: &str, primary: u16) -> PathBuf {
    let conf = dir.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [[acl]]\nname = \"peers\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"notify\", \"transfer\"]\n\
             [[zone]]\nname = \"{zone}\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{primary} key xfr ixfr-udp\"]\n\
             acl = [\"peers\"]\nnotify-ns = false\n"
        ),
    )
    .unwrap();
    conf
}

fn counter(status: &str, what: &str) -> u64 {
    let prefix = format!("{what}=");
    status.split_whitespace().find_map(|w| w.strip_prefix(prefix.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn status(conf: &Path, zone: &str) -> String {
    let (ok, s) = ctl(conf, &["zone-status", zone]);
    assert!(ok, "{s}");
    s
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn from_nsxdp_primary() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pd, sd) = (pdir.path(), sdir.path());
    let (pp, sp) = (free_port(), free_port());
    let zone = "u.test.";
    std::fs::write(pd.join("u.test.zone"), zone_text(zone, 1, 3)).unwrap();
    let pconf = pd.join("nsxdp.toml");
    std::fs::write(
        &pconf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{pp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [[acl]]\nname = \"sec\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             [[zone]]\nname = \"u.test\"\nfile = \"u.test.zone\"\nacl = [\"sec\"]\nnotify-ns = false\n\
             notify = [\"127.0.0.1:{sp} key xfr\"]\n"
        ),
    )
    .unwrap();
    let primary = start_nsxdp(pd, &pconf);
    let sconf = secondary_conf(sd, sp, "u.test", pp);
    let _secondary = start_nsxdp(sd, &sconf);
    let logs = [pd.join("nsxdp.log"), sd.join("nsxdp.log")];
    wait_serial(sp, zone, 1, Duration::from_secs(20), "the first AXFR", &logs);

    // One host more: the change fits in a datagram.
    std::fs::write(pd.join("u.test.zone"), zone_text(zone, 2, 4)).unwrap();
    let (ok, out) = ctl(&pconf, &["reload"]);
    assert!(ok, "{out}");
    let took = wait_serial(sp, zone, 2, Duration::from_secs(10), "IXFR over UDP after NOTIFY", &logs);
    eprintln!("serial 2 served by the secondary {took:?} after the primary's reload");
    let s = status(&sconf, "u.test");
    assert_eq!((counter(&s, "ixfr"), counter(&s, "ixfr-udp"), counter(&s, "ixfr-udp-to-tcp")), (1, 1, 0), "{s}");
    let slog = read(&sd.join("nsxdp.log"));
    let line = format!("serial 1 -> 2 by IXFR over UDP from 127.0.0.1:{pp}: 1 messages");
    assert!(slog.contains(&line), "no {line:?} in\n{slog}");

    // 400 hosts more: too large for a datagram; the primary's SOA alone sends us to TCP.
    std::fs::write(pd.join("u.test.zone"), zone_text(zone, 3, 404)).unwrap();
    let (ok, out) = ctl(&pconf, &["reload"]);
    assert!(ok, "{out}");
    wait_serial(sp, zone, 3, Duration::from_secs(10), "IXFR over TCP after the UDP answer's lone SOA", &logs);
    let s = status(&sconf, "u.test");
    assert_eq!((counter(&s, "ixfr"), counter(&s, "ixfr-udp"), counter(&s, "ixfr-udp-to-tcp")), (2, 1, 1), "{s}");
    assert_eq!((counter(&s, "axfr"), counter(&s, "failures")), (1, 0), "{s}");
    let slog = read(&sd.join("nsxdp.log"));
    let line = format!("serial 2 -> 3 by IXFR from 127.0.0.1:{pp}");
    assert!(slog.contains(&line) && slog.contains("(over TCP: the primary sent its SOA (serial 3) alone"), "{slog}");

    let key = format!("hmac-sha256:xfr:{SECRET}");
    let (a, b) = (axfr_lines(pp, zone, Some(&key)), axfr_lines(sp, zone, Some(&key)));
    assert!(a.len() > 400, "{} records", a.len());
    assert_same_zone(&a, &b, "primary", "secondary");

    // The primary's counters (printed at exit): both IXFRs over UDP, one answered whole.
    drop(primary);
    let plog = read(&pd.join("nsxdp.log"));
    let out = plog.lines().find(|l| l.contains("transfers out")).unwrap_or_else(|| panic!("no counters:\n{plog}"));
    assert!(out.contains("ixfr-udp=2"), "{out}");
}

/// A named in `dir` serving `zone` from `dir/ZONE.zone` as primary, NOTIFYing
/// 127.0.0.1:`notify_port` with the key.
fn named(dir: &Path, port: u16, notify_port: u16, zone: &str) -> Proc {
    let d = dir.display();
    let conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
         \x20 managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n\
         \x20 recursion no;\n  dnssec-validation no;\n  notify explicit;\n  notify-delay 0;\n\
         \x20 also-notify {{ 127.0.0.1 port {notify_port} key xfr; }};\n  ixfr-from-differences yes;\n\
         \x20 provide-ixfr yes;\n}};\ncontrols {{ }};\n\
         key \"xfr\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
         zone \"{zone}\" {{ type primary; file \"{zone}.zone\"; allow-transfer {{ key xfr; }}; }};\n"
    );
    let path = dir.join("named.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("named");
    cmd.arg("-g").arg("-c").arg(&path);
    Proc::spawn(cmd, &dir.join("named.log"))
}

/// Rewrites a zone file with a modification time after named's last load of it.
fn write_zone(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_millis(10);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(later).unwrap();
}

#[test]
fn from_named_primary() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bp, np) = (free_port(), free_port());
    let zone = "nu.test.";
    std::fs::write(d.join("nu.test.zone"), zone_text(zone, 1, 20)).unwrap();
    let named = named(d, bp, np, "nu.test");
    let logs = [d.join("named.log"), d.join("nsxdp.log")];
    wait_serial(bp, zone, 1, Duration::from_secs(20), "named loads its zone", &logs);
    let conf = secondary_conf(d, np, "nu.test", bp);
    let _ns = start_nsxdp(d, &conf);
    wait_serial(np, zone, 1, Duration::from_secs(20), "the first AXFR from named", &logs);

    // named skips a file not modified since its last load (by the second): wait first.
    std::thread::sleep(Duration::from_millis(1100));
    write_zone(&d.join("nu.test.zone"), &zone_text(zone, 2, 21));
    let ok = Command::new("kill").args(["-HUP", &named.pid().to_string()]).status().unwrap().success();
    assert!(ok, "kill -HUP named");
    let took = wait_serial(np, zone, 2, Duration::from_secs(15), "IXFR over UDP from named", &logs);
    eprintln!("serial 2 served by nsxdp {took:?} after named's SIGHUP");

    let s = status(&conf, "nu.test");
    let nlog = read(&d.join("nsxdp.log"));
    let blog = read(&d.join("named.log"));
    for l in blog.lines().filter(|l| l.contains("transfer of") || l.contains("IXFR")) {
        eprintln!("named: {l}");
    }
    // named answers every IXFR over UDP with its SOA alone (BIND 9 has never sent changes
    // over UDP): we asked over UDP first, then over TCP, and the change came by IXFR.
    let want = (counter(&s, "ixfr"), counter(&s, "ixfr-udp"), counter(&s, "ixfr-udp-to-tcp"), counter(&s, "failures"));
    assert_eq!(want, (1, 0, 1, 0), "{s}\n{nlog}");
    let line = format!("serial 1 -> 2 by IXFR from 127.0.0.1:{bp}");
    assert!(nlog.contains(&line), "no {line:?} in\n{nlog}");
    assert!(nlog.contains("(over TCP: the primary sent its SOA (serial 2) alone"), "{nlog}");
    // named saw the IXFR over TCP, from serial 1 (no AXFR after the first).
    let ixfr_tcp =
        blog.lines().filter(|l| l.contains("transfer of 'nu.test/IN'") && l.contains("IXFR started")).count();
    assert_eq!(ixfr_tcp, 1, "{blog}");
    let key = format!("hmac-sha256:xfr:{SECRET}");
    assert_same_zone(&axfr_lines(bp, zone, Some(&key)), &axfr_lines(np, zone, Some(&key)), "named", "nsxdp");
}
