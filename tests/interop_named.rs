//! nsxdp as the primary of BIND's named as a secondary, with an hmac-sha256 TSIG key:
//! named's first AXFR; an edit of the zone file and `nsxdp ctl reload` → NOTIFY → named pulls
//! by IXFR (its log says which transfer it made) and serves the new serial; an edit without a
//! serial bump arrives with the serial nsxdp raised; a wrong key and an address outside the
//! ACL are refused. Both sides' zones are compared record by record (kdig AXFR from each).
//! A second test transfers a zone of 200,000 records and compares it the same way; a third
//! has named ask for IXFR from a serial nsxdp has no history from, which gets the whole zone.
//!
//! named signs the SOA queries of its refresh with the primary's key and refuses an unsigned
//! answer ("expected a TSIG or SIG(0)"): nsxdp answers signed queries signed, over UDP (the
//! run loops hand them to the control side, which has the keys) and TCP. named runs with its
//! defaults (SOA queries over UDP).
//!
//! named runs with `-d 3`: BIND 9.18 says whether a transfer was incremental ("got
//! incremental response") only at that debug level.
//!
//! Needs named (bind9) and kdig: under `CI=true` a missing one fails the test; otherwise it
//! skips.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{assert_same_zone, axfr_lines, free_port, have, kdig_status, primary_conf, start_nsxdp, test_key, Proc};

const ZONE: &str = "interop.test.";

fn zone_text(serial: u32, www: &str, extra: usize) -> String {
    let mut t = format!(
        "$ORIGIN interop.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\n\
         ns A 127.0.0.1\nwww A {www}\nmail MX 10 www\ntxt TXT \"named interop\"\n\
         sub NS ns.sub\nns.sub A 198.51.100.53\n"
    );
    for i in 0..2000 + extra {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

/// named as a secondary of `zone` from nsxdp on 127.0.0.1:`primary`, listening on
/// 127.0.0.1:`port` only, its files under `dir/named`, logging to `dir/named.log`.
fn start_named(dir: &Path, port: u16, primary: u16, zone: &str) -> Proc {
    common::dnssec::start_named_secondary(dir, port, primary, zone).0
}

fn logs(d: &Path) -> [PathBuf; 2] {
    [d.join("named.log"), d.join("nsxdp.log")]
}

/// Both servers transfer the same zone (at least `min` records).
fn same_zone(named: u16, nsxdp: u16, zone: &str, min: usize) -> usize {
    let key = test_key();
    let (b, n) = (axfr_lines(named, zone, Some(&key)), axfr_lines(nsxdp, zone, Some(&key)));
    assert!(n.len() >= min, "nsxdp sent {} records", n.len());
    assert_same_zone(&b, &n, "named", "nsxdp");
    n.len()
}

/// named's log so far.
fn named_log(d: &Path) -> String {
    std::fs::read_to_string(d.join("named.log")).unwrap_or_default()
}

#[test]
fn named_secondary_follows_by_axfr_then_ixfr() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, bp) = (free_port(), free_port());
    let zone = d.join("interop.test.zone");
    std::fs::write(&zone, zone_text(1, "192.0.2.1", 0)).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(&conf, primary_conf(np, "interop.test", "interop.test.zone", &[format!("127.0.0.1:{bp}")])).unwrap();
    let ns = start_nsxdp(d, &conf);
    let _named = start_named(d, bp, np, "interop.test");
    let wait = |want: u32, what: &str| common::wait_serial(bp, ZONE, want, Duration::from_secs(30), what, &logs(d));

    // The first transfer: named asks at start.
    wait(1, "initial AXFR");
    same_zone(bp, np, ZONE, 2000);

    // An edit with a serial bump: reload → NOTIFY → IXFR.
    std::fs::write(&zone, zone_text(2, "192.0.2.2", 50)).unwrap();
    common::reload(&conf, Some("interop.test"));
    let took = wait(2, "after reload and NOTIFY");
    assert!(took < Duration::from_secs(10), "the secondary took {took:?}");
    same_zone(bp, np, ZONE, 2050);

    // An edit without a serial bump: nsxdp raises it to 3, named follows.
    std::fs::write(&zone, zone_text(2, "192.0.2.3", 60)).unwrap();
    common::reload(&conf, None);
    wait(3, "after a reload without a serial bump");
    let records = same_zone(bp, np, ZONE, 2060);

    let log = named_log(d);
    eprintln!("named's transfers, and nsxdp's (kdig's comparisons among them):");
    for l in log.lines().filter(|l| l.contains("transfer of") || l.contains("IXFR") || l.contains("AXFR")) {
        eprintln!("  {l}");
    }
    let sent = std::fs::read_to_string(d.join("nsxdp.log")).unwrap_or_default();
    for l in sent.lines().filter(|l| l.contains("XFR")) {
        eprintln!("  {l}");
    }
    // Three transfers completed, the last two incremental, as both sides say.
    for from in [1, 2] {
        let ixfr = format!("IXFR (Incremental {{ changesets: 1 }}) of interop.test. serial {from} -> {}", from + 1);
        assert!(sent.contains(&ixfr), "nsxdp did not send {ixfr}:\n{sent}");
    }
    assert_eq!(log.matches("Transfer completed").count(), 3, "named's log:\n{log}");
    assert!(log.contains("Transfer status: success"), "named's log:\n{log}");
    assert_eq!(log.matches("got incremental response").count(), 2, "named did not use IXFR twice:\n{log}");
    assert_eq!(log.matches("got nonincremental response").count(), 1, "named's log:\n{log}");

    // A wrong secret is refused (NOTAUTH with the TSIG error BADSIG, which kdig shows as
    // the status), and so are an address outside the ACL and a request without the key.
    let wrong = "hmac-sha256:xfr:d3JvbmctLXNlY3JldC0td3Jvbmctc2VjcmV0LS13cm9uZw==";
    assert_eq!(kdig_status(np, ZONE, "AXFR", &["-y", wrong]), "BADSIG", "AXFR with a wrong secret");
    assert_eq!(kdig_status(np, ZONE, "IXFR=1", &["-y", wrong]), "BADSIG", "IXFR with a wrong secret");
    let key = test_key();
    assert_eq!(kdig_status(np, ZONE, "AXFR", &["-b", "127.0.0.2", "-y", &key]), "REFUSED", "AXFR from 127.0.0.2");
    assert_eq!(kdig_status(np, ZONE, "IXFR=1", &["-b", "127.0.0.2", "-y", &key]), "REFUSED", "IXFR from 127.0.0.2");
    assert_eq!(kdig_status(np, ZONE, "AXFR", &[]), "REFUSED", "AXFR without a key");
    // The right key from the right address: named's SOA queries are signed, and so is the
    // answer (over TCP; see the module comment).
    assert_eq!(kdig_status(np, ZONE, "SOA", &["-y", &key]), "NOERROR", "a signed SOA query");
    eprintln!("named test: {records} records compared, {:?} in all", t0.elapsed());
    drop(ns);
}

#[test]
fn named_secondary_receives_a_200k_record_zone() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, bp) = (free_port(), free_port());
    let (text, count) = common::big_zone_text("big.test.", 7);
    std::fs::write(d.join("big.test.zone"), text).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(&conf, primary_conf(np, "big.test", "big.test.zone", &[])).unwrap();
    let ns = start_nsxdp(d, &conf);
    let started = t0.elapsed();
    let _named = start_named(d, bp, np, "big.test");
    let took = common::wait_serial(bp, "big.test.", 7, Duration::from_secs(40), "200k-record AXFR", &logs(d));
    let records = same_zone(bp, np, "big.test.", count);
    assert_eq!(records, count, "nsxdp's AXFR holds every record of the zone file");
    let log = named_log(d);
    let done: Vec<&str> = log.lines().filter(|l| l.contains("Transfer completed")).collect();
    eprintln!(
        "200k zone: {count} records; nsxdp ready after {started:?}, named served it {took:?} later; {done:?}; \
         {:?} in all",
        t0.elapsed()
    );
    drop(ns);
}

#[test]
fn named_secondary_takes_the_whole_zone_by_ixfr_when_history_is_missing() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, bp) = (free_port(), free_port());
    // named starts with a copy at serial 1 that nsxdp never had; nsxdp starts at serial 5
    // and reloads serial 6, so it has the changes from 5 only. Notified, named asks for IXFR
    // from serial 1 and gets the whole zone.
    std::fs::create_dir_all(d.join("named")).unwrap();
    std::fs::write(d.join("named/secondary.db"), zone_text(1, "192.0.2.99", 10)).unwrap();
    std::fs::write(d.join("interop.test.zone"), zone_text(5, "192.0.2.5", 30)).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(&conf, primary_conf(np, "interop.test", "interop.test.zone", &[format!("127.0.0.1:{bp}")])).unwrap();
    let ns = start_nsxdp(d, &conf);
    let _named = start_named(d, bp, np, "interop.test");
    common::wait_serial(bp, ZONE, 1, Duration::from_secs(30), "named's own copy", &logs(d));
    std::fs::write(d.join("interop.test.zone"), zone_text(6, "192.0.2.6", 40)).unwrap();
    common::reload(&conf, None);
    common::wait_serial(bp, ZONE, 6, Duration::from_secs(30), "IXFR answered by the whole zone", &logs(d));
    same_zone(bp, np, ZONE, 2040);
    let log = named_log(d);
    assert!(log.contains("requesting IXFR for serial 1"), "named's log:\n{log}");
    assert!(log.contains("got nonincremental response"), "named's log:\n{log}");
    let sent = std::fs::read_to_string(d.join("nsxdp.log")).unwrap_or_default();
    assert!(sent.contains("IXFR (Full) of interop.test. serial 1 -> 6"), "nsxdp's log:\n{sent}");
    drop(ns);
}
