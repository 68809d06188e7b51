//! nsxdp as the primary of a real Knot DNS secondary, with an hmac-sha256 TSIG key: knotd's
//! first AXFR; then an edit of the zone file and `nsxdp ctl reload` → NOTIFY → knotd pulls
//! by IXFR (Knot checks IXFR strictly) and serves the new serial; an edit without a serial
//! bump arrives with the serial nsxdp raised. Both sides' zones are compared record by record
//! (kdig AXFR from each).
//!
//! Needs knotd and kdig: under `CI=true` a missing one fails the test; otherwise it skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_same_zone, axfr_lines, free_port, have, start_nsxdp, Proc};

const SECRET: &str = "a25vdC1pbnRlcm9wLWtleS1mb3ItbnN4ZHAtdGVzdHM=";
const ZONE: &str = "interop.test.";

fn zone_text(serial: u32, www: &str, extra: usize) -> String {
    let mut t = format!(
        "$ORIGIN interop.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\n\
         ns A 127.0.0.1\nwww A {www}\nmail MX 10 www\n"
    );
    for i in 0..2000 + extra {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

fn wait_serial(port: u16, want: u32, what: &str, dir: &Path) -> Duration {
    let logs = [dir.join("knot.log"), dir.join("nsxdp.log")];
    common::wait_serial(port, ZONE, want, Duration::from_secs(30), what, &logs)
}

/// Both servers transfer the same zone.
fn same_zone(kp: u16, np: u16, key: &str) {
    let (k, n) = (axfr_lines(kp, ZONE, Some(key)), axfr_lines(np, ZONE, Some(key)));
    assert!(n.len() > 2000, "nsxdp sent {} records", n.len());
    assert_same_zone(&k, &n, "knotd", "nsxdp");
}

#[test]
fn knotd_secondary_follows_by_axfr_then_ixfr() {
    if !have("knotd", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, kp) = (free_port(), free_port());
    let zone = d.join("interop.test.zone");
    std::fs::write(&zone, zone_text(1, "192.0.2.1", 0)).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{np}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [[acl]]\nname = \"knot\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             [[zone]]\nname = \"interop.test\"\nfile = \"interop.test.zone\"\nacl = [\"knot\"]\n\
             notify = [\"127.0.0.1:{kp} key xfr\"]\nnotify-ns = false\n"
        ),
    )
    .unwrap();
    let ns = start_nsxdp(d, &conf);

    let knot_conf = common::knot_conf(
        d,
        kp,
        SECRET,
        &format!("  - id: primary\n    address: 127.0.0.1@{np}\n    key: xfr\n"),
        "  - domain: interop.test\n    master: primary\n    acl: peers\n",
    );
    let _knot = common::start_knotd(d, &knot_conf);
    let key = format!("hmac-sha256:xfr:{SECRET}");

    // The first transfer: knotd asks at start.
    wait_serial(kp, 1, "initial AXFR", d);
    same_zone(kp, np, &key);

    // An edit with a serial bump: reload → NOTIFY → IXFR.
    std::fs::write(&zone, zone_text(2, "192.0.2.2", 50)).unwrap();
    let ctl = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["ctl", "--config"])
        .arg(&conf)
        .args(["reload", "interop.test"])
        .output()
        .unwrap();
    assert!(ctl.status.success(), "{}", String::from_utf8_lossy(&ctl.stdout));
    let took = wait_serial(kp, 2, "after reload and NOTIFY", d);
    assert!(took < Duration::from_secs(5), "the secondary took {took:?}");
    same_zone(kp, np, &key);

    // An edit without a serial bump: nsxdp raises it to 3, knotd follows.
    std::fs::write(&zone, zone_text(2, "192.0.2.3", 60)).unwrap();
    let ctl = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["ctl", "--config"])
        .arg(&conf)
        .args(["reload"])
        .output()
        .unwrap();
    assert!(ctl.status.success(), "{}", String::from_utf8_lossy(&ctl.stdout));
    wait_serial(kp, 3, "after a reload without a serial bump", d);
    same_zone(kp, np, &key);
    let knot = std::fs::read_to_string(d.join("knot.log")).unwrap();
    assert!(knot.contains("IXFR"), "knotd did not use IXFR:\n{knot}");
    assert!(!knot.contains("fallback to AXFR"), "knotd fell back to AXFR:\n{knot}");
    drop(ns);
}

/// knotd as a secondary of `zone` from nsxdp on 127.0.0.1:`primary`, listening on
/// 127.0.0.1:`port`, its files under `dir/knot`, logging to `dir/knot.log`.
fn start_knotd(dir: &Path, port: u16, primary: u16, zone: &str) -> Proc {
    let conf = common::knot_conf(
        dir,
        port,
        common::TEST_SECRET,
        &format!("  - id: primary\n    address: 127.0.0.1@{primary}\n    key: xfr\n"),
        &format!("  - domain: {zone}\n    master: primary\n    acl: peers\n"),
    );
    common::start_knotd(dir, &conf)
}

#[test]
fn knotd_secondary_receives_a_200k_record_zone() {
    if !have("knotd", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, kp) = (free_port(), free_port());
    let (text, count) = common::big_zone_text("big.test.", 7);
    std::fs::write(d.join("big.test.zone"), text).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(&conf, common::primary_conf(np, "big.test", "big.test.zone", &[])).unwrap();
    let ns = start_nsxdp(d, &conf);
    let started = t0.elapsed();
    let _knot = start_knotd(d, kp, np, "big.test");
    let logs = [d.join("knot.log"), d.join("nsxdp.log")];
    let took = common::wait_serial(kp, "big.test.", 7, Duration::from_secs(40), "200k-record AXFR", &logs);
    let key = common::test_key();
    let (k, n) = (axfr_lines(kp, "big.test.", Some(&key)), axfr_lines(np, "big.test.", Some(&key)));
    assert_eq!(n.len(), count, "nsxdp's AXFR holds every record of the zone file");
    assert_same_zone(&k, &n, "knotd", "nsxdp");
    let log = std::fs::read_to_string(d.join("knot.log")).unwrap_or_default();
    let done: Vec<&str> = log.lines().filter(|l| l.contains("AXFR") && l.contains("finished")).collect();
    eprintln!(
        "200k zone: {count} records; nsxdp ready after {started:?}, knotd served it {took:?} later; {done:?}; \
         {:?} in all",
        t0.elapsed()
    );
    drop(ns);
}
