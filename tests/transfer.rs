//! Zone transfers out of the control thread's TCP server, asked for by kdig: AXFR and IXFR
//! signed with an hmac-sha256 key and allowed by the zone's ACL; unsigned, wrongly signed and
//! wrongly addressed requests refused; IXFR after a reload served from the journal.
//!
//! The server runs in the test process (the same `TcpServer`, `ZoneSet` and configuration
//! the `serve` command uses), on 127.0.0.1 with a kernel-chosen port. Needs kdig: under
//! `CI=true` a missing kdig fails the test; otherwise it is skipped with a message.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nsxdp::answer::{Catalog, Config as AnswerConfig};
use nsxdp::config::Config;
use nsxdp::control::tcp::{TcpLimits, TcpServer};
use nsxdp::control::transfer::Transfers;
use nsxdp::control::zones::{Reloaded, ZoneSet};
use nsxdp::journal::Limits;

const SECRET: &str = "bnN4ZHAtdGVzdC1rZXktZm9yLXpvbmUtdHJhbnNmZXJz";

fn kdig_available() -> bool {
    let ok = Command::new("kdig").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "kdig is required under CI=true");
        common::skipped("kdig not found (apt-get install knot-dnsutils)");
    }
    ok
}

fn zone_text(serial: u32, www: &str) -> String {
    let mut t = format!(
        "$ORIGIN xfr.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ NS ns1\n@ NS ns2\n\
         ns1 A 127.0.0.1\nns2 A 127.0.0.2\nwww A {www}\nsub NS ns.sub\nns.sub A 192.0.2.53\n"
    );
    for i in 0..300 {
        t.push_str(&format!("h{i} A 198.18.{}.{}\nh{i} TXT \"host {i}\"\n", i / 250, i % 250));
    }
    t
}

/// Records in the zone text above (SOA included).
const RECORDS: usize = 8 + 600;

/// The configuration's first zone in a zone set, published.
fn serve_zones(config: &Config) -> (nsxdp::dataplane::SharedCatalog, ZoneSet) {
    let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
    std::fs::create_dir_all(&config.server.data_dir).unwrap();
    let mut zones = ZoneSet::new(&config.server.data_dir, catalog.clone());
    let z = &config.zones[0];
    zones
        .add(Some(&z.name), z.file.as_deref().unwrap(), z.serial_policy, Limits::default(), 0, &mut Vec::new())
        .unwrap();
    zones.publish();
    (catalog, zones)
}

struct Kdig {
    out: String,
    ok: bool,
}

fn kdig(port: u16, args: &[&str]) -> Kdig {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tcp", "+time=5", "+retry=0"])
        .args(args)
        .output()
        .expect("kdig runs");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    Kdig { out, ok: o.status.success() }
}

/// The record count kdig reports for a transfer (";; Received N B (M messages, R records)").
fn records(out: &str) -> Option<usize> {
    let i = out.find(" records)")?;
    let head = &out[..i];
    head[head.rfind(' ')? + 1..].parse().ok()
}

#[test]
fn axfr_and_ixfr_with_tsig_and_acl() {
    if !kdig_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let zone_file = dir.path().join("xfr.test.zone");
    std::fs::write(&zone_file, zone_text(100, "192.0.2.10")).unwrap();
    let conf_path = dir.path().join("nsxdp.toml");
    let conf = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
data-dir = "data"
[[key]]
name = "xfr"
algorithm = "hmac-sha256"
secret = "{SECRET}"
[[acl]]
name = "secondaries"
address = ["127.0.0.1/32"]
key = "xfr"
action = ["transfer"]
[[zone]]
name = "xfr.test"
file = "xfr.test.zone"
acl = ["secondaries"]
"#
    );
    std::fs::write(&conf_path, &conf).unwrap();
    let config = Config::load(&conf_path).unwrap();

    let (catalog, mut zones) = serve_zones(&config);

    let mut server =
        TcpServer::bind(&["127.0.0.1:0".parse().unwrap()], catalog, AnswerConfig::default(), TcpLimits::default())
            .unwrap();
    server.set_transfers(Transfers::new(Arc::new(config), zones.journals()));
    let port = server.local_addrs()[0].port();
    let shutdown = Arc::new(AtomicBool::new(false));
    let stop = shutdown.clone();
    let t = std::thread::spawn(move || server.run(&stop).unwrap());

    let key = format!("hmac-sha256:xfr:{SECRET}");
    // Signed, from an allowed address: the whole zone, SOA first and last.
    let r = kdig(port, &["-y", &key, "AXFR", "xfr.test."]);
    assert!(r.ok, "{}", r.out);
    assert_eq!(records(&r.out), Some(RECORDS + 1), "{}", r.out);
    assert!(r.out.contains("h299.xfr.test."), "{}", r.out);
    // Unsigned: refused.
    let r = kdig(port, &["AXFR", "xfr.test."]);
    assert!(r.out.contains("REFUSED"), "{}", r.out);
    assert!(!r.out.contains("h299.xfr.test."), "{}", r.out);
    // The wrong secret: BADSIG.
    let r = kdig(port, &["-y", "hmac-sha256:xfr:d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA==", "AXFR", "xfr.test."]);
    assert!(r.out.contains("BADSIG"), "{}", r.out);
    // The right key from an address outside the ACL: refused.
    let r = kdig(port, &["-b", "127.0.0.2", "-y", &key, "AXFR", "xfr.test."]);
    assert!(r.out.contains("REFUSED"), "{}", r.out);
    // A zone we do not serve.
    let r = kdig(port, &["-y", &key, "AXFR", "other.test."]);
    assert!(r.out.contains("NOTAUTH"), "{}", r.out);
    // Ordinary queries on the same server still work.
    let r = kdig(port, &["www.xfr.test.", "A"]);
    assert!(r.out.contains("192.0.2.10"), "{}", r.out);

    // A change: IXFR from 100 gets exactly it (old SOA, the removed A, new SOA, the new A).
    std::fs::write(&zone_file, zone_text(101, "192.0.2.11")).unwrap();
    assert!(matches!(zones.reload(0, 0), Reloaded::Updated { from: 100, to: 101, .. }));
    let r = kdig(port, &["-y", &key, "IXFR=100", "xfr.test."]);
    assert!(r.ok, "{}", r.out);
    assert_eq!(records(&r.out), Some(6), "{}", r.out);
    assert!(r.out.contains("192.0.2.10") && r.out.contains("192.0.2.11"), "{}", r.out);
    // Up to date: the SOA alone.
    let r = kdig(port, &["-y", &key, "IXFR=101", "xfr.test."]);
    assert_eq!(records(&r.out), Some(1), "{}", r.out);
    // From a serial the journal does not have: the whole zone.
    let r = kdig(port, &["-y", &key, "IXFR=50", "xfr.test."]);
    assert_eq!(records(&r.out), Some(RECORDS + 1), "{}", r.out);
    // IXFR is refused like AXFR without the key.
    let r = kdig(port, &["IXFR=100", "xfr.test."]);
    assert!(r.out.contains("REFUSED"), "{}", r.out);

    shutdown.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

/// A reload that changes the zone sends NOTIFY, signed, to the configured target, and tries
/// again until it is answered.
#[test]
fn notify_after_reload_signed_and_retried() {
    use nsxdp::control::ctl::{self, Notifier};
    use nsxdp::xfr::tsig;

    let dir = tempfile::tempdir().unwrap();
    let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let zone_file = dir.path().join("xfr.test.zone");
    std::fs::write(&zone_file, zone_text(100, "192.0.2.10")).unwrap();
    let conf_path = dir.path().join("nsxdp.toml");
    let conf = format!(
        "[server]\ndata-dir = \"data\"\n[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
         [[zone]]\nname = \"xfr.test\"\nfile = \"xfr.test.zone\"\nnotify = [\"{} key xfr\"]\nnotify-ns = false\n",
        target.local_addr().unwrap()
    );
    std::fs::write(&conf_path, &conf).unwrap();
    let config = Arc::new(Config::load(&conf_path).unwrap());
    let (_catalog, zones) = serve_zones(&config);
    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let sock = dir.path().join("ctl.sock");
    let t1 = ctl::spawn_socket(&sock, tx.clone(), shutdown.clone(), Default::default()).unwrap();
    let notifier = Notifier::new(config.clone());
    let hup = Arc::new(AtomicBool::new(false));
    let t2 = ctl::spawn_manager(zones, rx, tx, hup, shutdown.clone(), Some(notifier), None, None).unwrap();

    std::fs::write(&zone_file, zone_text(101, "192.0.2.11")).unwrap();
    assert!(ctl::client(&sock, "reload xfr.test").unwrap());
    let keys: Vec<tsig::Key> = config.keys.iter().map(tsig::Key::from).collect();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut buf = [0u8; 2048];
    // The first NOTIFY goes unanswered; a second one comes.
    let (n, from) = target.recv_from(&mut buf).expect("a NOTIFY");
    let first = buf[..n].to_vec();
    assert_eq!((first[2] >> 3) & 0xF, 4, "opcode NOTIFY");
    assert!(tsig::verify_request(&first, &keys, now()).unwrap().is_some(), "signed with the key");
    // An answer from the target with another ID is not taken: the retry still comes.
    let t0 = std::time::Instant::now();
    let unsigned = tsig::locate(&first).unwrap().map_or(n, |l| l.start);
    let mut forged = first[..unsigned].to_vec();
    forged[2] |= 0x80;
    forged[11] = 0;
    forged[0] ^= 0x01;
    target.send_to(&forged, from).unwrap();
    let (n, _) = target.recv_from(&mut buf).expect("a retry");
    assert!(t0.elapsed() >= std::time::Duration::from_millis(1500), "retried after the timeout");
    assert_eq!(buf[..2], first[..2], "same ID");
    // Answered: no more.
    let q = tsig::locate(&buf[..n]).unwrap().map_or(n, |l| l.start);
    let mut resp = buf[..q].to_vec();
    resp[2] |= 0x80;
    resp[11] = 0; // no TSIG in the reply
    target.send_to(&resp, from).unwrap();
    target.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    assert!(target.recv_from(&mut buf).is_err(), "nothing after the answer");
    shutdown.store(true, Ordering::Relaxed);
    t1.join().unwrap();
    t2.join().unwrap();
}
