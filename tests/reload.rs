//! `nsxdp serve` + `nsxdp ctl` as an operator uses them: a zone file edited and reloaded
//! through the control socket and by SIGHUP, a forgotten serial raised, a broken edit refused
//! while the last version keeps answering, and a restart that continues from the journal.
//! Answers are read with dig over UDP.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ZONE: &str = "$ORIGIN reload.test.\n$TTL 300\n@ SOA ns hostmaster 10 3600 600 86400 60\n@ NS ns\n\
                    ns A 192.0.2.1\nwww A 192.0.2.10\n";

fn dig_available() -> bool {
    let ok = Command::new("dig").arg("-v").output().is_ok();
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "dig is required under CI=true");
        common::skipped("dig not found (apt-get install bind9-dnsutils)");
    }
    ok
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, zone: &Path) -> Server {
        let port = loop {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let p = u.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
            .args(["serve", "--cores", "1", "--listen", &format!("127.0.0.1:{port}"), "--zone"])
            .arg(zone)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                let _ = tx.send(line);
            }
        });
        while !rx.recv_timeout(Duration::from_secs(20)).expect("server did not start").ends_with(" info: ready") {}
        Server { child, port }
    }

    fn dig(&self, name: &str, t: &str) -> String {
        let o = Command::new("dig")
            .args(["+short", "+time=2", "+tries=2", "-p", &self.port.to_string(), "@127.0.0.1", name, t])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn serial(&self) -> String {
        self.dig("reload.test.", "SOA").split_whitespace().nth(2).unwrap_or("").to_string()
    }

    fn signal(&self, sig: &str) {
        // Our own child, by PID.
        Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
    }

    fn stop(mut self) {
        self.signal("-TERM");
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(dir: &Path, cmd: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .arg("ctl")
        .arg("--socket")
        .arg(dir.join("data/control.sock"))
        .args(cmd)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string())
}

#[test]
fn reload_by_ctl_and_sighup_and_restart() {
    if !dig_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("reload.test.zone");
    std::fs::write(&zone, ZONE).unwrap();
    let s = Server::start(dir.path(), &zone);
    assert_eq!(s.dig("www.reload.test.", "A"), "192.0.2.10");

    // An edit with a new serial.
    std::fs::write(&zone, ZONE.replace(" 10 ", " 11 ").replace("192.0.2.10", "192.0.2.11")).unwrap();
    let (ok, out) = ctl(dir.path(), &["reload", "reload.test"]);
    assert!(ok && out.contains("serial 10 -> 11"), "{out}");
    assert_eq!(s.dig("www.reload.test.", "A"), "192.0.2.11");

    // An edit that forgets the serial, by SIGHUP: raised to 12.
    std::fs::write(&zone, ZONE.replace(" 10 ", " 11 ").replace("192.0.2.10", "192.0.2.12")).unwrap();
    s.signal("-HUP");
    let t0 = std::time::Instant::now();
    while s.dig("www.reload.test.", "A") != "192.0.2.12" {
        assert!(t0.elapsed() < Duration::from_secs(10), "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.serial(), "12");

    // A broken edit: refused, the last version answers, status shows the error.
    std::fs::write(&zone, format!("{ZONE}bad A 192.0.2\n")).unwrap();
    let (ok, out) = ctl(dir.path(), &["reload"]);
    assert!(!ok && out.contains("reload.test.zone:7"), "{out}");
    assert_eq!(s.dig("www.reload.test.", "A"), "192.0.2.12");
    let (ok, out) = ctl(dir.path(), &["status"]);
    assert!(ok && out.contains("serial 12") && out.contains("last-error"), "{out}");
    s.stop();

    // A restart with the file still broken serves the last version (12), and one with the
    // file fixed (its serial still 11) continues at 12, not below.
    let s = Server::start(dir.path(), &zone);
    assert_eq!(s.serial(), "12");
    assert_eq!(s.dig("www.reload.test.", "A"), "192.0.2.12");
    s.stop();
    std::fs::write(&zone, ZONE.replace(" 10 ", " 11 ").replace("192.0.2.10", "192.0.2.12")).unwrap();
    let s = Server::start(dir.path(), &zone);
    assert_eq!(s.serial(), "12");
    s.stop();
}
