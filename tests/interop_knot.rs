//! nsxdp as the primary of a real Knot DNS secondary, with an hmac-sha256 TSIG key: knotd's
//! first AXFR; then an edit of the zone file and `nsxdp ctl reload` → NOTIFY → knotd pulls
//! by IXFR (Knot checks IXFR strictly) and serves the new serial; an edit without a serial
//! bump arrives with the serial nsxdp raised. Both sides' zones are compared record by record
//! (kdig AXFR from each).
//!
//! Needs knotd and kdig: under `CI=true` a missing one fails the test; otherwise it skips.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET: &str = "a25vdC1pbnRlcm9wLWtleS1mb3ItbnN4ZHAtdGVzdHM=";

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is required under CI=true");
        eprintln!("skipping: {tool} not found (apt-get install knot knot-dnsutils)");
    }
    ok
}

fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

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

/// A child process that is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nsxdp(dir: &Path, conf: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--cores", "1", "--config"])
        .arg(conf)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let log = dir.join("nsxdp.log");
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(log).unwrap();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            use std::io::Write;
            let _ = writeln!(f, "{line}");
            let _ = tx.send(line);
        }
    });
    while rx.recv_timeout(Duration::from_secs(20)).expect("nsxdp did not start") != "nsxdp: ready" {}
    Proc(child)
}

/// The SOA serial a server answers for the zone, if any.
fn serial(port: u16) -> Option<u32> {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=1", "+retry=0", "interop.test.", "SOA"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).split_whitespace().nth(2)?.parse().ok()
}

fn wait_serial(port: u16, want: u32, what: &str, dir: &Path) {
    let t0 = Instant::now();
    while serial(port) != Some(want) {
        if t0.elapsed() > Duration::from_secs(30) {
            let knot = std::fs::read_to_string(dir.join("knot.log")).unwrap_or_default();
            let ns = std::fs::read_to_string(dir.join("nsxdp.log")).unwrap_or_default();
            panic!("{what}: serial {want} not served (got {:?})\nknotd:\n{knot}\nnsxdp:\n{ns}", serial(port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The zone as a server transfers it: sorted record lines without the closing SOA.
fn axfr(port: u16, key: &str) -> Vec<String> {
    let o = Command::new("kdig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "-y",
            key,
            "+tcp",
            "+nocomments",
            "+nostats",
            "AXFR",
            "interop.test.",
        ])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Both servers transfer the same zone.
fn same_zone(kp: u16, np: u16, key: &str) {
    let (k, n) = (axfr(kp, key), axfr(np, key));
    assert!(n.len() > 2000, "nsxdp sent {} records", n.len());
    let only_k: Vec<_> = k.iter().filter(|l| !n.contains(l)).take(5).collect();
    let only_n: Vec<_> = n.iter().filter(|l| !k.contains(l)).take(5).collect();
    assert!(only_k.is_empty() && only_n.is_empty(), "only at knotd: {only_k:?}; only at nsxdp: {only_n:?}");
}

#[test]
fn knotd_secondary_follows_by_axfr_then_ixfr() {
    if !have("knotd") || !have("kdig") {
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

    let kd = d.join("knot");
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(kd.join(sub)).unwrap();
    }
    let knot_conf = d.join("knot.conf");
    std::fs::write(
        &knot_conf,
        format!(
            "server:\n    rundir: \"{k}/run\"\n    listen: 127.0.0.1@{kp}\n    udp-workers: 1\n    tcp-workers: 1\n\
             \nlog:\n  - target: stderr\n    any: info\n\
             \ndatabase:\n    storage: \"{k}/db\"\n\
             \nkey:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             \nremote:\n  - id: primary\n    address: 127.0.0.1@{np}\n    key: xfr\n\
             \nacl:\n  - id: from_primary\n    address: 127.0.0.1\n    key: xfr\n    action: [notify, transfer]\n\
             \ntemplate:\n  - id: default\n    storage: \"{k}/zones\"\n    zonefile-sync: -1\n\
             \nzone:\n  - domain: interop.test\n    master: primary\n    acl: from_primary\n",
            k = kd.display()
        ),
    )
    .unwrap();
    let knot_log = std::fs::File::create(d.join("knot.log")).unwrap();
    let _knot = Proc(
        Command::new("knotd")
            .args(["-c"])
            .arg(&knot_conf)
            .stderr(Stdio::from(knot_log))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
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
    let t0 = Instant::now();
    wait_serial(kp, 2, "after reload and NOTIFY", d);
    let took = t0.elapsed();
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
