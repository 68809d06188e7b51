//! `nsxdp ctl zone-notify ZONE` sends NOTIFY to the zone's targets now (a UDP socket of the
//! test's own stands in for a secondary), and SIGHUP's reload is logged once.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{ctl, free_port, primary_conf, start_nsxdp};

const ZONE: &str = "$ORIGIN n.test.\n$TTL 300\n@ SOA ns hm 7 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n";

/// The NOTIFY messages (opcode 4) for n.test. that arrive within `wait`.
fn notifies(sock: &UdpSocket, wait: Duration) -> usize {
    let mut n = 0;
    let t0 = Instant::now();
    let mut buf = [0u8; 1500];
    while let Some(left) = wait.checked_sub(t0.elapsed()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        let Ok(len) = sock.recv(&mut buf) else { break };
        let m = &buf[..len];
        if len > 12 && (m[2] >> 3) & 0xF == 4 && m[12..].starts_with(b"\x01n\x04test\x00") {
            n += 1;
        }
    }
    n
}

#[test]
fn zone_notify_sends_now_and_sighup_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = target.local_addr().unwrap().to_string();
    let port = free_port();
    std::fs::write(dir.path().join("n.zone"), ZONE).unwrap();
    let conf = dir.path().join("nsxdp.toml");
    std::fs::write(&conf, primary_conf(port, "n.test.", "n.zone", &[to])).unwrap();
    let server = start_nsxdp(dir.path(), &conf);
    // Whatever start-up sends, then nothing until asked.
    notifies(&target, Duration::from_millis(500));
    assert_eq!(notifies(&target, Duration::from_millis(300)), 0);
    let (ok, out) = ctl(&conf, &["zone-notify", "n.test."]);
    assert!(ok && out.contains("n.test. NOTIFY queued to its targets"), "{out}");
    assert!(notifies(&target, Duration::from_secs(5)) >= 1, "no NOTIFY arrived");
    let (ok, out) = ctl(&conf, &["zone-notify", "other.test."]);
    assert!(!ok, "{out}");
    let (ok, out) = ctl(&conf, &["zone-notify"]);
    assert!(!ok, "{out}");

    // SIGHUP (to our own child, by PID): the reload's line once, its verdict once.
    assert!(std::process::Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap().success());
    let log = dir.path().join("nsxdp.log");
    let t0 = Instant::now();
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap();
        if t.contains("SIGHUP: ok") || t0.elapsed() > Duration::from_secs(10) {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(text.matches("n.test. unchanged, serial 7").count(), 1, "{text}");
    assert_eq!(text.matches("SIGHUP: ok").count(), 1, "{text}");
}
