//! `nsxdp serve` over real sockets: kdig and dig over UDP and TCP, pipelined TCP queries on
//! one connection, and a corpus of malformed packets that must get FORMERR or a counted drop
//! while the server keeps answering.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ZONE: &str = "examples/example.com.zone";

struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        // A free port for both UDP and TCP.
        let port = loop {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let p = u.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
            .args(["serve", "--zone", ZONE, "--listen", &addr.to_string(), "--cores", "2", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx.recv_timeout(Duration::from_secs(20)).expect("server did not start");
            if line.ends_with(" info: ready") {
                break;
            }
        }
        Server { child, addr, stderr: rx, _dir: dir }
    }

    /// Stops the server with SIGTERM and returns what it printed on the way out.
    fn stop(mut self) -> String {
        // Our own child, by PID.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exit {status}");
        let mut out = String::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = vec![(id >> 8) as u8, id as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8];
    for l in name.trim_end_matches('.').split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

fn udp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    s.send_to(msg, addr).unwrap();
    let mut buf = [0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn rcode(r: &[u8]) -> u8 {
    r[3] & 0x0F
}

fn tool(name: &str) -> bool {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is required under CI=true");
        }
        common::skipped_part(&format!("{name} is not installed"));
    }
    found
}

#[test]
fn kdig_and_dig_over_udp_and_tcp() {
    let srv = Server::start();
    let port = srv.addr.port().to_string();
    for (client, args) in [
        ("kdig", vec!["@127.0.0.1", "-p", &port, "+short"]),
        ("dig", vec!["@127.0.0.1", "-p", &port, "+short", "+norecurse"]),
    ] {
        if !tool(client) {
            continue;
        }
        for transport in [None, Some("+tcp")] {
            let mut a = args.clone();
            a.extend(transport);
            a.extend(["mail.example.com", "A"]);
            let out = Command::new(client).args(&a).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.trim(), "192.0.2.25", "{client} {a:?}: {text}");
        }
    }
    srv.stop();
}

#[test]
fn pipelined_queries_on_one_tcp_connection() {
    let srv = Server::start();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Three queries in one write, the third split across two writes.
    let names = ["example.com", "mail.example.com", "nope.example.com"];
    let mut wire = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let q = query(100 + i as u16, n, 1, i == 1);
        wire.extend_from_slice(&(q.len() as u16).to_be_bytes());
        wire.extend_from_slice(&q);
    }
    let cut = wire.len() - 5;
    s.write_all(&wire[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&wire[cut..]).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut r).unwrap();
        ids.push((u16::from_be_bytes([r[0], r[1]]), rcode(&r)));
    }
    ids.sort();
    assert_eq!(ids, [(100, 0), (101, 0), (102, 3)]);
    // The connection stays usable.
    let q = query(7, "example.com", 6, false);
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    srv.stop();
}

#[test]
fn malformed_packets_get_formerr_or_a_counted_drop() {
    let srv = Server::start();
    let good = query(1, "example.com", 1, false);
    let mut corpus: Vec<(&str, Vec<u8>, Option<u8>)> = Vec::new();
    corpus.push(("empty", vec![], None));
    corpus.push(("short header", good[..7].to_vec(), None));
    let mut qd0 = good[..12].to_vec();
    qd0[5] = 0;
    corpus.push(("QDCOUNT 0", qd0, Some(1)));
    let mut qd2 = good.clone();
    qd2[5] = 2;
    corpus.push(("QDCOUNT 2", qd2, Some(1)));
    let mut ptr = good[..12].to_vec();
    ptr.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    corpus.push(("compression loop in the question", ptr, Some(1)));
    let mut fwd = good[..12].to_vec();
    fwd.extend_from_slice(&[0xC0, 0x12, 0, 1, 0, 1, 0]);
    corpus.push(("forward pointer", fwd, Some(1)));
    let mut long_label = good[..12].to_vec();
    long_label.push(64);
    long_label.extend_from_slice(&[b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    corpus.push(("label over 63", long_label, Some(1)));
    let mut long_name = good[..12].to_vec();
    for _ in 0..5 {
        long_name.push(63);
        long_name.extend_from_slice(&[b'b'; 63]);
    }
    long_name.extend_from_slice(&[0, 0, 1, 0, 1]);
    corpus.push(("name over 255", long_name, Some(1)));
    let mut two_opt = query(1, "example.com", 1, true);
    two_opt[11] = 2;
    two_opt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    corpus.push(("two OPT", two_opt, Some(1)));
    let mut bad_opt = query(1, "example.com", 1, true);
    let l = bad_opt.len();
    bad_opt[l - 1] = 8;
    bad_opt.extend_from_slice(&[0, 10, 0, 9, 1, 2, 3, 4]);
    corpus.push(("bad OPT option length", bad_opt, Some(1)));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    corpus.push(("trailing garbage", trailing, Some(1)));
    let mut qr = good.clone();
    qr[2] |= 0x80;
    corpus.push(("QR=1", qr, None));
    let mut truncated_q = good.clone();
    truncated_q.truncate(good.len() - 3);
    corpus.push(("truncated question", truncated_q, Some(1)));
    let mut expect_short = 0;
    let mut expect_qr = 0;
    for (what, msg, want) in &corpus {
        let got = udp_exchange(srv.addr, msg);
        match want {
            Some(rc) => {
                let r = got.unwrap_or_else(|| panic!("{what}: no answer"));
                assert_eq!(rcode(&r), *rc, "{what}");
                assert_eq!(&r[0..2], &msg[0..2], "{what}: ID echoed");
            }
            None => {
                assert!(got.is_none(), "{what}: answered");
                if msg.len() < 12 {
                    expect_short += 1;
                } else {
                    expect_qr += 1;
                }
            }
        }
        // Still answering.
        let ok = udp_exchange(srv.addr, &good).expect("server stopped answering");
        assert_eq!(rcode(&ok), 0, "after {what}");
    }
    // Random bytes: never a crash, and the server keeps answering.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        let mut m = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % m.len();
            m[i] = (x >> 32) as u8;
        }
        m.truncate(((x >> 20) as usize) % (m.len() + 1));
        s.send_to(&m, srv.addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rcode(&udp_exchange(srv.addr, &good).expect("alive after fuzz")), 0);
    let summary = srv.stop();
    let count = |key: &str| -> u64 {
        let udp = summary.lines().find(|l| l.contains(" info: stopping; UDP")).expect("summary");
        udp.split_whitespace().find_map(|kv| kv.strip_prefix(key)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    assert!(count("dropped_short=") >= expect_short, "{summary}");
    assert!(count("dropped_response=") >= expect_qr, "{summary}");
}

fn tcp_roundtrip(s: &mut TcpStream, id: u16) -> std::io::Result<Vec<u8>> {
    let q = query(id, "example.com", 6, false);
    let mut wire = (q.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(&q);
    s.write_all(&wire)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut r)?;
    Ok(r)
}

/// True if the server has closed the connection (read gives EOF or a reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn tcp_idle_connections_are_closed() {
    let srv = Server::start_with(&["--tcp-idle-timeout", "1"]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(rcode(&tcp_roundtrip(&mut s, 1).unwrap()), 0);
    let t0 = std::time::Instant::now();
    assert!(closed_by_server(&mut s));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(4), "{waited:?}");
    srv.stop();
}
