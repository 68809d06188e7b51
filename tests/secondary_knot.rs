//! nsxdp as a secondary of a real Knot DNS primary, with an hmac-sha256 TSIG key.
//!
//! - `chain_knot_nsxdp_knot`: knotd (primary, `zonefile-load: difference`) → nsxdp →
//!   knotd (a secondary of nsxdp). The first AXFR at start; a change on the first knotd →
//!   its NOTIFY → nsxdp's IXFR (nsxdp's log and counters, knotd's log) → the new serial
//!   served by nsxdp within 1 s → NOTIFY onward → the last knotd serves it by IXFR from
//!   nsxdp's journal. All three transfer the same zone.
//! - `primary_down_retry_expire_and_back`: short SOA timers; the primary stops → retries
//!   (zone-status counts failures) → expire → SERVFAIL → the primary is back → served again.
//!
//! Needs knotd, knotc and kdig: under `CI=true` a missing one fails the test; otherwise it
//! skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_same_zone, axfr_lines, ctl, free_port, have, soa_serial, start_nsxdp, Proc};

const SECRET: &str = "c2Vjb25kYXJ5LWludGVyb3Ata2V5LWZvci1uc3hkcA==";
const ZONE: &str = "sec.test.";

fn zone_text(serial: u32, timers: &str, www: &str, extra: usize) -> String {
    let mut t = format!(
        "$ORIGIN sec.test.\n$TTL 300\n@ SOA ns hostmaster {serial} {timers}\n@ NS ns\n\
         ns A 127.0.0.1\nwww A {www}\nmail MX 10 www\n"
    );
    for i in 0..500 + extra {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

/// A knotd in `dir`: its configuration's remote and zone parts.
fn knotd(dir: &Path, port: u16, remotes: &str, zone_conf: &str) -> (Proc, PathBuf) {
    let conf = common::knot_conf(dir, port, SECRET, remotes, zone_conf);
    (common::start_knotd(dir, &conf), conf)
}

fn nsxdp_conf(dir: &Path, port: u16, primary: u16, downstream: Option<u16>, extra: &str) -> PathBuf {
    let notify = downstream.map_or(String::new(), |p| format!("notify = [\"127.0.0.1:{p} key xfr\"]\n"));
    common::secondary_conf(dir, port, "sec.test", primary, SECRET, &format!("{notify}{extra}"))
}

fn logs(dirs: &[&Path]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in dirs {
        for f in ["knot.log", "nsxdp.log"] {
            if d.join(f).exists() {
                v.push(d.join(f));
            }
        }
    }
    v
}

fn wait_serial(port: u16, want: u32, limit: Duration, what: &str, dirs: &[&Path]) -> Duration {
    common::wait_serial(port, ZONE, want, limit, what, &logs(dirs))
}

fn knotc(conf: &Path, args: &[&str]) {
    let o = Command::new("knotc").arg("-c").arg(conf).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "knotc {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn chain_knot_nsxdp_knot() {
    if !have("knotd", "knot") || !have("knotc", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pd, nd, sd) = (dir.path().join("primary"), dir.path().join("nsxdp"), dir.path().join("downstream"));
    for d in [&pd, &nd, &sd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (kp, np, sp) = (free_port(), free_port(), free_port());
    let timers = "3600 600 86400 60";
    let zone_file = pd.join("knot/zones/sec.test.zone");
    std::fs::create_dir_all(pd.join("knot/zones")).unwrap();
    std::fs::write(&zone_file, zone_text(1, timers, "192.0.2.1", 0)).unwrap();
    let (_primary, pconf) = knotd(
        &pd,
        kp,
        &format!("  - id: nsxdp\n    address: 127.0.0.1@{np}\n    key: xfr\n"),
        "  - domain: sec.test\n    file: sec.test.zone\n    zonefile-load: difference\n    journal-content: changes\n\
         \x20   notify: nsxdp\n    acl: peers\n",
    );
    let key = format!("hmac-sha256:xfr:{SECRET}");
    wait_serial(kp, 1, Duration::from_secs(20), "the primary loads its zone", &[&pd]);

    let conf = nsxdp_conf(&nd, np, kp, Some(sp), "");
    let ns = start_nsxdp(&nd, &conf);
    wait_serial(np, 1, Duration::from_secs(20), "nsxdp's first AXFR", &[&pd, &nd]);
    let (_downstream, _) = knotd(
        &sd,
        sp,
        &format!("  - id: nsxdp\n    address: 127.0.0.1@{np}\n    key: xfr\n"),
        "  - domain: sec.test\n    master: nsxdp\n    acl: peers\n    zonefile-sync: -1\n",
    );
    wait_serial(sp, 1, Duration::from_secs(20), "the downstream knotd's first AXFR from nsxdp", &[&pd, &nd, &sd]);

    // A change on the primary: NOTIFY → IXFR into nsxdp → NOTIFY → IXFR out of nsxdp.
    for (serial, www, extra) in [(2, "192.0.2.2", 40), (3, "192.0.2.3", 80)] {
        std::fs::write(&zone_file, zone_text(serial, timers, www, extra)).unwrap();
        knotc(&pconf, &["zone-reload", "sec.test"]);
        let took = wait_serial(np, serial, Duration::from_secs(10), "nsxdp after the primary's NOTIFY", &[&pd, &nd]);
        assert!(took < Duration::from_secs(1), "nsxdp served serial {serial} after {took:?}");
        wait_serial(sp, serial, Duration::from_secs(10), "the downstream knotd", &[&pd, &nd, &sd]);
    }
    let k = axfr_lines(kp, ZONE, Some(&key));
    let n = axfr_lines(np, ZONE, Some(&key));
    let s = axfr_lines(sp, ZONE, Some(&key));
    assert!(k.len() > 500, "the primary sent {} records", k.len());
    assert_same_zone(&k, &n, "primary knotd", "nsxdp");
    assert_same_zone(&n, &s, "nsxdp", "downstream knotd");

    let nlog = std::fs::read_to_string(nd.join("nsxdp.log")).unwrap();
    assert!(nlog.contains("serial 1 -> 2 by IXFR"), "nsxdp did not take serial 2 by IXFR:\n{nlog}");
    assert!(nlog.contains("serial 2 -> 3 by IXFR"), "nsxdp did not take serial 3 by IXFR:\n{nlog}");
    assert!(nlog.contains("NOTIFY from 127.0.0.1"), "{nlog}");
    let plog = std::fs::read_to_string(pd.join("knot.log")).unwrap();
    assert!(plog.contains("IXFR, outgoing"), "the primary did not send IXFR:\n{plog}");
    let slog = std::fs::read_to_string(sd.join("knot.log")).unwrap();
    assert!(slog.contains("IXFR, incoming") && slog.contains("finished"), "downstream did not IXFR:\n{slog}");
    assert!(!slog.contains("fallback to AXFR"), "downstream fell back to AXFR:\n{slog}");
    let (ok, status) = ctl(&conf, &["zone-status", "sec.test"]);
    assert!(ok, "{status}");
    assert!(status.contains("serial 3") && status.contains("ixfr=2") && status.contains("axfr=1"), "{status}");
    // A reload of everything (what a service manager's ExecReload does) succeeds: the
    // secondary is reported, not failed, and keeps what it serves.
    let (ok, out) = ctl(&conf, &["reload"]);
    assert!(ok, "{out}");
    assert!(out.contains("sec.test. is a secondary (serial 3): transferred, not reloaded"), "{out}");
    assert_eq!(soa_serial(np, ZONE), Some(3), "after a reload");

    // A restart serves the transferred zone at once, from the snapshot and journal.
    drop(ns);
    let ns = start_nsxdp(&nd, &conf);
    assert_eq!(soa_serial(np, ZONE), Some(3), "after a restart");
    drop(ns);
}

#[test]
fn primary_down_retry_expire_and_back() {
    if !have("knotd", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pd, nd) = (dir.path().join("primary"), dir.path().join("nsxdp"));
    for d in [&pd, &nd] {
        std::fs::create_dir_all(d.join("knot/zones")).unwrap();
    }
    let (kp, np) = (free_port(), free_port());
    // refresh 2 s, retry 1 s, expire 6 s (nsxdp's expire-min lowered to allow it).
    let timers = "2 1 6 60";
    std::fs::write(pd.join("knot/zones/sec.test.zone"), zone_text(7, timers, "192.0.2.7", 0)).unwrap();
    let zone_conf = "  - domain: sec.test\n    file: sec.test.zone\n    acl: peers\n";
    let (primary, _) = knotd(&pd, kp, "", zone_conf);
    wait_serial(kp, 7, Duration::from_secs(20), "the primary loads its zone", &[&pd]);
    let conf = nsxdp_conf(&nd, np, kp, None, "expire-min = 1\nrefresh-min = 1\nretry-min = 1\ntransfer-timeout = 1\n");
    let _ns = start_nsxdp(&nd, &conf);
    wait_serial(np, 7, Duration::from_secs(20), "the first AXFR", &[&pd, &nd]);

    // The primary goes away: retries, then expiry and SERVFAIL.
    drop(primary);
    let t0 = Instant::now();
    let rcode = |port: u16| {
        let o = Command::new("kdig")
            .args(["@127.0.0.1", "-p", &port.to_string(), "+time=1", "+retry=0", "www.sec.test.", "A"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.split("status: ").nth(1).and_then(|r| r.split([',', ';']).next()).unwrap_or("none").to_string()
    };
    while rcode(np) != "SERVFAIL" {
        if t0.elapsed() > Duration::from_secs(20) {
            let log = std::fs::read_to_string(nd.join("nsxdp.log")).unwrap_or_default();
            panic!("not expired after {:?}: {:?}\n{log}", t0.elapsed(), ctl(&conf, &["zone-status", "sec.test"]));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let expired_after = t0.elapsed();
    assert!(expired_after > Duration::from_secs(2), "expired after only {expired_after:?}");
    let (ok, status) = ctl(&conf, &["zone-status", "sec.test"]);
    assert!(ok, "{status}");
    let failures: u64 =
        status.split_whitespace().find_map(|w| w.strip_prefix("failures=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(failures >= 2, "retries not seen: {status}");
    assert!(status.contains("expired") && status.contains("last-error 127.0.0.1"), "{status}");
    let log = std::fs::read_to_string(nd.join("nsxdp.log")).unwrap();
    assert!(log.contains("expired"), "{log}");

    // The primary is back (with a new serial): served again.
    std::fs::write(pd.join("knot/zones/sec.test.zone"), zone_text(8, timers, "192.0.2.8", 0)).unwrap();
    let _primary = knotd(&pd, kp, "", zone_conf);
    wait_serial(np, 8, Duration::from_secs(20), "served again once the primary is back", &[&pd, &nd]);
    assert_eq!(rcode(np), "NOERROR");
}
