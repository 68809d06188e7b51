//! IXFR over UDP (RFC 1995 §2) through the binary, with kdig: the changes when they fit in
//! one datagram, our SOA alone when they do not (the client then asks over TCP), the SOA
//! alone for a current client; TSIG and the zone's ACL as over TCP.
//!
//! Needs kdig: under `CI=true` a missing one fails the test; otherwise it skips.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ctl, free_port, have, start_nsxdp};

const SECRET: &str = "aXhmci1vdmVyLXVkcC10ZXN0LWtleS1mb3ItbnN4ZHA=";

fn zone(dir: &Path, serial: u32, hosts: usize) {
    let mut t = format!("$ORIGIN u.test.\n$TTL 300\n@ SOA ns hm {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..hosts {
        t.push_str(&format!("h{i} A 198.18.0.{}\n", i % 250));
    }
    std::fs::write(dir.join("u.test.zone"), t).unwrap();
}

/// kdig IXFR over UDP from `serial`: (NOERROR or the error rcode, answer records).
fn ixfr_udp(port: u16, serial: u32, key: Option<&str>, source: &str) -> (String, usize) {
    let mut cmd = Command::new("kdig");
    cmd.args(["-b", source, "@127.0.0.1", "-p", &port.to_string(), "+notcp", "+time=2", "+retry=0"]);
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let o = cmd.args([&format!("IXFR={serial}"), "u.test."]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    // kdig prints a transfer's records (no header), or why it failed.
    let status = match text.split("replied with error '").nth(1) {
        Some(r) => r.split('\'').next().unwrap_or("?").to_string(),
        None if text.contains(";; ERROR") => "failed".to_string(),
        None => "NOERROR".to_string(),
    };
    let records = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG") && l.contains("u.test."))
        .count();
    (status, records)
}

#[test]
fn ixfr_over_udp() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    zone(d, 1, 3);
    std::fs::write(
        d.join("nsxdp.toml"),
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [[acl]]\nname = \"sec\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             [[zone]]\nname = \"u.test\"\nfile = \"u.test.zone\"\nacl = [\"sec\"]\nnotify-ns = false\n"
        ),
    )
    .unwrap();
    let conf = d.join("nsxdp.toml");
    let ns = start_nsxdp(d, &conf);
    let key = format!("hmac-sha256:xfr:{SECRET}");

    // A small change: 1 → 2 adds one host. The answer: SOA 2, SOA 1, SOA 2, h3, SOA 2.
    zone(d, 2, 4);
    let (ok, out) = ctl(&conf, &["reload"]);
    assert!(ok, "{out}");
    assert_eq!(ixfr_udp(port, 1, Some(&key), "127.0.0.1"), ("NOERROR".to_string(), 5));
    // Current: the SOA alone.
    assert_eq!(ixfr_udp(port, 2, Some(&key), "127.0.0.1").1, 1);
    // A change too large for a datagram: the SOA alone, the client goes to TCP.
    zone(d, 3, 400);
    let (ok, out) = ctl(&conf, &["reload"]);
    assert!(ok, "{out}");
    assert_eq!(ixfr_udp(port, 2, Some(&key), "127.0.0.1").1, 1);
    // Unsigned, or from outside the ACL: refused.
    assert_eq!(ixfr_udp(port, 1, None, "127.0.0.1").0, "REFUSED");
    assert_eq!(ixfr_udp(port, 1, Some(&key), "127.0.0.2").0, "REFUSED");
    // The counters printed at exit.
    drop(ns);
    let log = std::fs::read_to_string(d.join("nsxdp.log")).unwrap();
    let out = log.lines().find(|l| l.contains("transfers out")).unwrap_or_else(|| panic!("no counters:\n{log}"));
    for want in ["ixfr-incremental=2", "ixfr-current=1", "ixfr-udp=3", "refused=2"] {
        assert!(out.contains(want), "{want} not in {out}");
    }
}
