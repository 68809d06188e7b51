//! DNS over TCP under clients that misbehave (RFC 7766 §6.2), over real sockets against
//! `nsxdp serve`: a client that pipelines queries and never reads is held to its output limit
//! (the server's memory stays flat), one that trickles bytes is closed after the message
//! timeout, idle time counts from the last complete message, a full table (or an address's
//! full share of it) closes the longest idle connection for a newcomer, and limits of 0 are
//! refused. Each test also checks that a well-behaved client is answered throughout.

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{dns_query, free_port, parse_dns, start_nsxdp_args, Proc};

fn zone() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone")
}

struct Srv {
    proc: Option<Proc>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Srv {
    fn start(extra: &[&str]) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let zone = zone();
        let listen = addr.to_string();
        let mut args: Vec<&OsStr> = vec![
            "--zone".as_ref(),
            zone.as_os_str(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--data-dir".as_ref(),
            dir.path().as_os_str(),
        ];
        args.extend(extra.iter().map(|a| OsStr::new(*a)));
        let proc = start_nsxdp_args(dir.path(), &args);
        Srv { proc: Some(proc), addr, dir }
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().unwrap().pid()
    }

    /// Stops the server and gives its log (with the counters printed on the way out).
    fn stop(mut self) -> String {
        drop(self.proc.take());
        std::fs::read_to_string(self.dir.path().join("nsxdp.log")).unwrap()
    }
}

/// A counter from the "TCP connections" line of the exit log.
fn counter(log: &str, name: &str) -> u64 {
    let line = log.lines().find(|l| l.contains(" info: TCP connections")).expect("TCP connections line");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{name} not in {line}"))
        .parse()
        .unwrap()
}

/// The server's resident set (or its peak, `VmHWM`), in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A TCP connection from `source` (an address of 127/8) to the server.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn frame(id: u16) -> Vec<u8> {
    let q = dns_query(id, "www.example.com.", 1);
    let mut f = (q.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&q);
    f
}

/// One query and its answer on `s`; the answer's rcode.
fn ask(s: &mut TcpStream, id: u16) -> std::io::Result<u16> {
    s.write_all(&frame(id))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut r)?;
    let m = parse_dns(&r).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
    assert_eq!(u16::from_be_bytes([r[0], r[1]]), id);
    Ok(m.rcode())
}

/// A new connection from `source`, one query: answered NOERROR.
fn answered(source: &str, to: SocketAddr, id: u16) -> bool {
    let mut s = connect_from(source, to);
    match ask(&mut s, id) {
        Ok(0) => true,
        other => {
            eprintln!("query {id} from {source}: {other:?}");
            false
        }
    }
}

/// True when the server has closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Clients that pipeline queries as fast as they can and never read: what the server holds
/// for them stays under its per-connection limit, so its memory stays flat (before the
/// limit, 20 such clients grew it to 9.8 GB), a well-behaved client is answered meanwhile,
/// and they are closed once they have taken nothing for the idle timeout.
#[test]
fn pipelining_clients_that_never_read_are_held_back() {
    let srv = Srv::start(&["--tcp-idle-timeout", "2"]);
    let before = memory_kib(srv.pid(), "VmRSS:");
    // 10 connections, each writing pipelined queries for 3 s (non-blocking: a write that
    // would block is the back-pressure we want to see).
    let batch: Vec<u8> = (0..1000u16).flat_map(frame).collect();
    let mut flooders: Vec<(TcpStream, usize)> = (0..10)
        .map(|_| {
            let s = connect_from("127.0.0.1", srv.addr);
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let t0 = Instant::now();
    let mut probes = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        for (s, sent) in flooders.iter_mut() {
            // Whole frames only: a write that took part of the batch goes on from there.
            match s.write(&batch[*sent % batch.len()..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("flooder write: {e}"),
            }
        }
        if probes < 10 && t0.elapsed() > Duration::from_millis(300 * (probes + 1)) {
            assert!(answered("127.0.0.2", srv.addr, 7000 + probes as u16), "a well-behaved client during the flood");
            probes += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent: usize = flooders.iter().map(|(_, n)| n).sum();
    let peak = memory_kib(srv.pid(), "VmHWM:");
    eprintln!("flooders sent {} MB of queries; server RSS {before} KiB before, peak {peak} KiB", sent >> 20);
    // Each flooder got far more queries into its socket than the server holds for it.
    assert!(sent > 10 << 20, "the flood was too small to show anything ({sent} octets)");
    assert!(peak < before + 48 * 1024, "server peak RSS {peak} KiB (from {before} KiB)");
    // Not reading, they are closed (reset) within the idle timeout and a poll.
    for (s, _) in flooders.iter_mut() {
        s.set_nonblocking(false).unwrap();
        assert!(closed_within(s, Duration::from_secs(6)), "a client that never reads must be closed");
    }
    assert!(answered("127.0.0.2", srv.addr, 7999));
    let log = srv.stop();
    // (One whose last frame went out in part is closed for that, when the server owes it
    // nothing.)
    assert!(counter(&log, "closed-not-reading") + counter(&log, "closed-slow-message") >= 10, "{log}");
    assert!(counter(&log, "closed-not-reading") >= 5, "{log}");
    assert!(counter(&log, "paused-output") >= 5, "{log}");
}

/// Slowloris: connections that send a byte now and then never finish a message; each is
/// closed the message timeout after its first byte, whatever else it sends, and a
/// well-behaved client is answered throughout.
#[test]
fn trickling_clients_are_closed_after_the_message_timeout() {
    let srv = Srv::start(&["--tcp-message-timeout", "500", "--tcp-max-clients", "40"]);
    let mut slow: Vec<TcpStream> = (0..60).map(|_| connect_from("127.0.0.1", srv.addr)).collect();
    let t0 = Instant::now();
    for s in slow.iter_mut() {
        // The first octet of a length (those over the table's 40 replace the longest idle,
        // which may already be gone).
        let _ = s.write_all(&[0]);
    }
    let mut ok = 0;
    for i in 0..10u16 {
        // A byte more from each (any byte would restart a naive timer).
        for s in slow.iter_mut() {
            let _ = s.write_all(&[40]);
        }
        ok += answered("127.0.0.2", srv.addr, i) as usize;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok, 10, "a well-behaved client beside the slow ones");
    for s in slow.iter_mut() {
        assert!(closed_within(s, Duration::from_secs(3)), "a trickling connection must be closed");
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let log = srv.stop();
    // 40 fit the table; the other 20 took the place of the longest idle.
    assert!(counter(&log, "closed-slow-message") + counter(&log, "evicted-table-full") >= 60, "{log}");
    assert!(counter(&log, "closed-slow-message") >= 30, "{log}");
}

/// Idle time counts from the last complete message: bytes that do not finish one do not
/// keep a connection open, and complete messages do.
#[test]
fn idle_time_counts_from_the_last_complete_message() {
    let srv = Srv::start(&["--tcp-idle-timeout", "1", "--tcp-message-timeout", "60000"]);
    let mut trickle = connect_from("127.0.0.1", srv.addr);
    let mut busy = connect_from("127.0.0.1", srv.addr);
    let t0 = Instant::now();
    let mut trickle_closed = None;
    let mut id = 0;
    // A 40-octet message announced, then an octet of it every 250 ms.
    trickle.write_all(&[0, 40]).unwrap();
    while t0.elapsed() < Duration::from_millis(3500) {
        if trickle_closed.is_none() && trickle.write_all(&[0]).is_err() {
            trickle_closed = Some(t0.elapsed());
        }
        if trickle_closed.is_none() && closed_within(&mut trickle, Duration::from_millis(1)) {
            trickle_closed = Some(t0.elapsed());
        }
        id += 1;
        assert_eq!(ask(&mut busy, id).unwrap(), 0, "a connection that asks every 250 ms stays open");
        std::thread::sleep(Duration::from_millis(250));
    }
    let at = trickle_closed.expect("a connection sending only stray bytes must be closed");
    assert!(at >= Duration::from_millis(800) && at < Duration::from_millis(2500), "closed after {at:?}");
    let log = srv.stop();
    assert!(counter(&log, "closed-idle") >= 1, "{log}");
}

/// With the table full, a newcomer is served and the longest idle connection is closed;
/// with an address's share full, that address's longest idle one (not another's).
#[test]
fn full_tables_close_the_longest_idle_connection() {
    let srv = Srv::start(&["--tcp-max-clients", "3", "--tcp-max-clients-per-address", "2"]);
    let mut a = connect_from("127.0.0.1", srv.addr);
    std::thread::sleep(Duration::from_millis(50));
    let mut b = connect_from("127.0.0.1", srv.addr);
    let mut c = connect_from("127.0.0.3", srv.addr);
    assert_eq!(ask(&mut b, 1).unwrap(), 0);
    assert_eq!(ask(&mut c, 2).unwrap(), 0);
    // 127.0.0.1 has its two: its newcomer replaces a (idle the longest of 127.0.0.1's).
    let mut d = connect_from("127.0.0.1", srv.addr);
    assert_eq!(ask(&mut d, 3).unwrap(), 0, "the newcomer is served");
    assert!(closed_within(&mut a, Duration::from_secs(2)), "the address's longest idle connection is closed");
    assert_eq!(ask(&mut b, 4).unwrap(), 0);
    assert_eq!(ask(&mut c, 5).unwrap(), 0);
    // The table (3) is full: b, c, d. c and then b asked last... d asked before them.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ask(&mut c, 6).unwrap(), 0);
    assert_eq!(ask(&mut b, 7).unwrap(), 0);
    let mut e = connect_from("127.0.0.4", srv.addr);
    assert_eq!(ask(&mut e, 8).unwrap(), 0, "a newcomer to a full table is served");
    assert!(closed_within(&mut d, Duration::from_secs(2)), "the longest idle connection is closed");
    assert_eq!(ask(&mut b, 9).unwrap(), 0);
    assert_eq!(ask(&mut c, 10).unwrap(), 0);
    let log = srv.stop();
    assert_eq!(counter(&log, "evicted-address-full"), 1, "{log}");
    assert_eq!(counter(&log, "evicted-table-full"), 1, "{log}");
}

/// Limits of 0 would turn TCP off: refused on the command line and, with file:line, in the
/// configuration file. A flag given beside `--config` wins over the file.
#[test]
fn zero_limits_are_refused_and_flags_beat_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--tcp-max-clients", "0", "--zone"])
        .arg(zone())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tcp-max-clients"), "{out:?}");

    let port = free_port();
    let conf = dir.path().join("nsxdp.toml");
    let write_conf = |extra: &str| {
        std::fs::write(
            &conf,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"{}\"\ncontrol = \"{}\"\n{extra}\n\
                 [[zone]]\nname = \"example.com\"\nfile = \"{}\"\n",
                dir.path().display(),
                dir.path().join("ctl.sock").display(),
                zone().display()
            ),
        )
        .unwrap()
    };
    write_conf("tcp-idle-timeout = 0");
    let out = Command::new(env!("CARGO_BIN_EXE_nsxdp")).args(["serve", "--config"]).arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nsxdp.toml:5: server.tcp-idle-timeout: must be at least 1"), "{err}");

    // The file says 100 clients; the flag says 1: a second connection replaces the first.
    write_conf("tcp-max-clients = 100");
    let p = start_nsxdp_args(
        dir.path(),
        &["--config".as_ref(), conf.as_os_str(), "--tcp-max-clients".as_ref(), "1".as_ref()],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut a = connect_from("127.0.0.1", addr);
    assert_eq!(ask(&mut a, 1).unwrap(), 0);
    let mut b = connect_from("127.0.0.2", addr);
    assert_eq!(ask(&mut b, 2).unwrap(), 0);
    assert!(closed_within(&mut a, Duration::from_secs(2)), "--tcp-max-clients 1 beside --config");
    drop(p);
}

/// Transfers to clients that do not read are held to the output budget (all clients' unsent
/// output together): they are paused, not buffered, while a client that reads gets its whole
/// transfer meanwhile.
#[test]
fn transfers_to_clients_that_do_not_read_are_held_to_the_budget() {
    if !common::have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (text, records) = common::big_zone_text("big.test.", 1);
    std::fs::write(dir.path().join("big.test.zone"), text).unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("nsxdp.toml"),
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             tcp-output-budget = 65536\n\
             [[acl]]\nname = \"local\"\naddress = [\"127.0.0.0/8\"]\naction = [\"transfer\"]\n\
             [[zone]]\nname = \"big.test\"\nfile = \"big.test.zone\"\nacl = [\"local\"]\nnotify-ns = false\n"
        ),
    )
    .unwrap();
    let p = common::start_nsxdp(dir.path(), &dir.path().join("nsxdp.toml"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Twelve AXFR requests from clients with small receive buffers that never read.
    let stuck: Vec<TcpStream> = (0..12u16)
        .map(|i| {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(4096).unwrap();
            s.connect(&addr.into()).unwrap();
            let mut s: TcpStream = s.into();
            let q = dns_query(100 + i, "big.test.", 252);
            s.write_all(&[(q.len() >> 8) as u8, q.len() as u8]).unwrap();
            s.write_all(&q).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let lines = common::axfr_lines(port, "big.test.", None);
    // Every record once (the SOA, sent first and last, counted once).
    assert!(lines.len() + 2 >= records, "a reading client got {} of {records} records", lines.len());
    drop(stuck);
    drop(p);
    let log = std::fs::read_to_string(dir.path().join("nsxdp.log")).unwrap();
    assert!(counter(&log, "paused-budget") >= 1, "{log}");
}
