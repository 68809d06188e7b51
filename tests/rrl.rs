//! Response rate limiting end to end: `nsxdp serve` with `[rrl]` on loopback, flooded from
//! several 127.x.y.z source prefixes (client sockets bound to those addresses, as a spoofed
//! flood would look). The flooded prefixes get no more full answers than rate × time, the
//! rest of their responses dropped or slipped (TC set, no records: smaller than the query);
//! a client in another prefix and an exempt prefix are answered in full; the server logs
//! each limited prefix once and counts what it did.
//!
//! `rrl_through_af_xdp` runs the same flood through AF_XDP: `serve --xdp` in a network
//! namespace joined to the clients' by veth (198.18.0.0/15 only; the clients' addresses in
//! several /24s of it). It needs root, ip and ethtool; without them it is skipped with a
//! message, except under `CI=true`, where that is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::Testbed;
use common::{dns_query, qtype, start_nsxdp};

const RATE: u64 = 50;

/// The two floods take turns: side by side they would share two cores with each other's
/// clients, and what a loaded machine drops is not what is being measured.
static ONE_FLOOD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one client saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u64,
    /// Responses with TC clear (answers).
    full: u64,
    /// Responses with TC set.
    slipped: u64,
    /// Slips that carried records (must not happen).
    slips_with_records: u64,
    bytes_out: u64,
    bytes_in: u64,
    /// How long the client sent for.
    secs: f64,
}

/// A query for `name` A with an EDNS OPT carrying a COOKIE option (RFC 7873): `cookie` is
/// the client cookie, or client and server cookie.
fn cookie_query(id: u16, name: &str, cookie: &[u8]) -> Vec<u8> {
    let mut q = dns_query(id, name, qtype::A);
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&(4 + cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(&[0, 10]);
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// Asks once from `src` with a client cookie and returns the client and server cookie of
/// the answer.
fn fetch_cookie(src: &str, server: SocketAddr) -> Vec<u8> {
    let client_cookie = *b"rrltest!";
    let sock = UdpSocket::bind((src, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&cookie_query(7, "example.com.", &client_cookie), server).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer with a server cookie");
    let m = &buf[..n];
    // The option: code 10, length 24, our client cookie, the server's 16 octets.
    let mut head = vec![0, 10, 0, 24];
    head.extend_from_slice(&client_cookie);
    let at = m.windows(head.len()).position(|w| w == head).unwrap_or_else(|| panic!("no server cookie in {m:?}"));
    m[at + 4..at + 28].to_vec()
}

/// What a client that comes with a client cookie alone during a flood of its prefix sees.
#[derive(Debug, Default)]
struct FirstContact {
    /// BADCOOKIE slips (RFC 7873 §5.2.3), each with the question, no records and our cookie.
    badcookie: u64,
    /// TC slips (wrong for a client that sent a cookie) and full answers.
    truncated: u64,
    full: u64,
    /// The client and server cookie of the last BADCOOKIE.
    cookie: Option<Vec<u8>>,
}

/// Sends `count` queries with a client cookie alone from `src`, 20 ms apart, and sorts the
/// replies.
fn first_contact(src: &str, server: SocketAddr, count: u16) -> FirstContact {
    let client_cookie = *b"latecomr";
    let sock = UdpSocket::bind((src, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut seen = FirstContact::default();
    let mut buf = [0u8; 4096];
    for id in 0..count {
        sock.send_to(&cookie_query(id, "example.com.", &client_cookie), server).unwrap();
        while let Ok(n) = sock.recv(&mut buf) {
            let m = &buf[..n];
            let head = [&[0u8, 10, 0, 24][..], &client_cookie].concat();
            let at = m.windows(head.len()).position(|w| w == head);
            match (m[3] & 0x0F, m[2] & 0x02 != 0) {
                (_, true) => seen.truncated += 1,
                (7, false) => {
                    // 23 = 7 in the header and 1 in the OPT (the last record, its TTL's
                    // first octet); QD 1, AN 0, NS 0, AR 1.
                    assert_eq!(&m[4..12], &[0, 1, 0, 0, 0, 0, 0, 1], "BADCOOKIE counts: {m:?}");
                    assert_eq!(m[n - 39..n - 36], [0, 0, 41], "OPT last: {m:?}");
                    assert_eq!(m[n - 34], 1, "extended rcode 1 (BADCOOKIE): {m:?}");
                    let at = at.unwrap_or_else(|| panic!("BADCOOKIE without our cookie: {m:?}"));
                    seen.cookie = Some(m[at + 4..at + 28].to_vec());
                    seen.badcookie += 1;
                }
                _ => seen.full += 1,
            }
        }
    }
    seen
}

/// Sends `count` queries for `name` from `src` to `server`, `per_sec` a second (in bursts of
/// a millisecond's worth), and counts what comes back until 500 ms after the last one.
fn client(src: &str, server: SocketAddr, name: &str, count: u64, per_sec: u64) -> Tally {
    cookie_client(src, server, name, count, per_sec, None)
}

/// [`client`], with `cookie` (client and server cookie) in every query when given.
fn cookie_client(src: &str, server: SocketAddr, name: &str, count: u64, per_sec: u64, cookie: Option<&[u8]>) -> Tally {
    let sock = UdpSocket::bind((src, 0)).unwrap_or_else(|e| panic!("binding {src}: {e}"));
    sock.connect(server).unwrap();
    let reader = sock.try_clone().unwrap();
    reader.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let counting = s.spawn(|| {
            let mut t = Tally::default();
            let mut buf = [0u8; 4096];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match reader.recv(&mut buf) {
                    Ok(n) => {
                        quiet_since = None;
                        let m = &buf[..n];
                        t.bytes_in += n as u64;
                        assert!(n >= 12 && m[2] & 0x80 != 0, "not a response: {m:?}");
                        let records = m[6..12].iter().any(|&b| b != 0);
                        if m[2] & 0x02 != 0 {
                            t.slipped += 1;
                            t.slips_with_records += u64::from(records);
                        } else {
                            t.full += 1;
                        }
                    }
                    Err(_) if done.load(Ordering::Relaxed) => {
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_millis(500) {
                            return t;
                        }
                    }
                    Err(_) => {}
                }
            }
        });
        let t0 = Instant::now();
        let (mut sent, mut bytes) = (0u64, 0u64);
        let deadline = t0 + Duration::from_secs(30);
        while sent < count && Instant::now() < deadline {
            // Due by now at `per_sec`.
            let due = ((t0.elapsed().as_secs_f64() * per_sec as f64) as u64 + 1).min(count);
            while sent < due {
                let q = match cookie {
                    Some(c) => cookie_query(sent as u16, name, c),
                    None => dns_query(sent as u16, name, qtype::A),
                };
                if sock.send(&q).is_ok() {
                    bytes += q.len() as u64;
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let secs = t0.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let mut t = counting.join().unwrap();
        t.sent = sent;
        t.bytes_out = bytes;
        t.secs = secs;
        t
    })
}

#[test]
fn a_spoofed_flood_is_limited_per_prefix() {
    let _turn = ONE_FLOOD_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let conf = dir.path().join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"control.sock\"\n\n\
             [[zone]]\nname = \"example.com\"\nfile = \"{}\"\n\n\
             [rrl]\nrate = {RATE}\nslip = 2\nwindow = 15\nexempt = [\"127.3.0.0/24\"]\ntable-size = 4096\n\n\
             [cookies]\nsecret = \"000102030405060708090a0b0c0d0e0f\"\n",
            zone.display()
        ),
    )
    .unwrap();
    let server = start_nsxdp(dir.path(), &conf);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A client inside the flooded 127.1.0.0/24 that proves its address with a server
    // cookie (fetched before the flood) is answered throughout.
    let cookie = fetch_cookie("127.1.0.3", addr);
    // Another comes during the flood with a client cookie alone: its limited replies are
    // BADCOOKIE with a server cookie (not TC), with which it is then answered.
    let ((flood, exempt, other), with_cookie, (late, late_then)) = std::thread::scope(|s| {
        let c = s.spawn(|| cookie_client("127.1.0.3", addr, "example.com.", 100, 40, Some(&cookie)));
        let l = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            let late = first_contact("127.1.0.4", addr, 40);
            let cookie = late.cookie.clone().unwrap_or_else(|| panic!("no BADCOOKIE in the flood: {late:?}"));
            (late, cookie_client("127.1.0.4", addr, "example.com.", 50, 40, Some(&cookie)))
        });
        let f = run_flood(addr, ["127.1.0.1", "127.1.0.2", "127.2.0.1", "127.3.0.9", "127.5.0.1"], |f| f());
        (f, c.join().unwrap(), l.join().unwrap())
    });
    eprintln!("cookie client {with_cookie:?}\nlate cookie client {late:?} then {late_then:?}");
    assert_eq!(with_cookie.slipped, 0, "cookie client limited: {with_cookie:?}");
    assert!(with_cookie.full * 100 >= with_cookie.sent * 99, "cookie client: {with_cookie:?}");
    assert_eq!(late.truncated, 0, "TC slips to a client that sent a cookie: {late:?}");
    assert!(late.badcookie >= 5, "slip = 2: about half of 40 limited replies are BADCOOKIE: {late:?}");
    assert_eq!(late_then.slipped, 0, "cookie client limited after BADCOOKIE: {late_then:?}");
    assert!(late_then.full * 100 >= late_then.sent * 99, "cookie client after BADCOOKIE: {late_then:?}");
    let log_text = || std::fs::read_to_string(dir.path().join("nsxdp.log")).unwrap_or_default();
    drop(server);
    // The log is written by a thread of the test: wait for the last lines.
    let t0 = Instant::now();
    while !log_text().contains(" info: TCP") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log_text();
    check(
        &flood,
        &exempt,
        &other,
        &log,
        ["127.1.0.0/24", "127.2.0.0/24"],
        ["127.3.0.0/24", "127.5.0.0/24"],
        "stopping; UDP",
        (late.badcookie, 40 - late.full),
    );
}

/// Two sources in one /24 (`src[0..2]`) and one in another (`src[2]`) flood at 4,000
/// queries a second each; the exempt prefix (`src[3]`) at 2,000; a client of its own
/// prefix (`src[4]`) asks at 40 a second (under the rate), all for the same name, at the
/// same time. `within` runs each client (in a network namespace, say).
fn run_flood(
    addr: SocketAddr,
    src: [&'static str; 5],
    within: impl Fn(&(dyn Fn() -> Tally + Sync)) -> Tally + Sync,
) -> (Vec<Tally>, Tally, Tally) {
    let within = &within;
    let (flood, exempt, other) = std::thread::scope(|s| {
        let f: Vec<_> = src[..3]
            .iter()
            .map(|&src| s.spawn(move || within(&|| client(src, addr, "example.com.", 10_000, 4000))))
            .collect();
        let e = s.spawn(move || within(&|| client(src[3], addr, "example.com.", 5_000, 2000)));
        let o = s.spawn(move || within(&|| client(src[4], addr, "example.com.", 100, 40)));
        let f: Vec<Tally> = f.into_iter().map(|h| h.join().unwrap()).collect();
        (f, e.join().unwrap(), o.join().unwrap())
    });
    eprintln!("flood {flood:?}\nexempt {exempt:?}\nother {other:?}");
    (flood, exempt, other)
}

/// The verdict on a flood from [`run_flood`]: `limited` are the flooded prefixes, `spared`
/// the exempt one and the other client's; `counters` starts the server's exit line with
/// the counters of the loops that limited.
#[allow(clippy::too_many_arguments)]
fn check(
    flood: &[Tally],
    exempt: &Tally,
    other: &Tally,
    log: &str,
    limited: [&str; 2],
    spared: [&str; 2],
    counters: &str,
    (more_slipped, more_limited): (u64, u64),
) {
    // 127.1.0.0/24 (two sources, one bucket) and 127.2.0.0/24: at most rate × time answers
    // (plus the first second's credit), every limited response dropped or slipped, every
    // slip TC with no records, every second one slipped (slip = 2).
    let prefix_1 = [flood[0], flood[1]];
    let prefix_2 = [flood[2]];
    for (name, p) in [(limited[0], &prefix_1[..]), (limited[1], &prefix_2[..])] {
        let sum = |f: fn(&Tally) -> u64| p.iter().map(f).sum::<u64>();
        let (sent, full, slipped) = (sum(|t| t.sent), sum(|t| t.full), sum(|t| t.slipped));
        let secs = p.iter().map(|t| t.secs).fold(0.0, f64::max);
        let allowed = (RATE as f64 * (secs + 1.0)) as u64;
        assert!(full <= allowed, "{name}: {full} answers in {secs:.1} s, rate × time is {allowed}");
        assert!(full >= RATE / 2, "{name}: only {full} answers: the first second's credit is {RATE}");
        assert_eq!(sum(|t| t.slips_with_records), 0, "{name}: a slip carried records");
        let limited = sent - full;
        assert!(
            slipped.abs_diff(limited / 2) <= limited / 20 + 2,
            "{name}: {slipped} slips of {limited} limited (slip = 2)"
        );
        let (bytes_in, bytes_out) = (sum(|t| t.bytes_in), sum(|t| t.bytes_out));
        assert!(bytes_in <= bytes_out, "{name}: {bytes_in} bytes of responses to {bytes_out} bytes of queries");
    }
    // The exempt prefix is never limited; the other prefix's client is answered in full.
    assert_eq!(exempt.slipped, 0, "exempt prefix limited: {exempt:?}");
    assert!(exempt.full * 1000 >= exempt.sent * 999, "exempt: {exempt:?}");
    assert_eq!(other.slipped, 0, "other prefix limited: {other:?}");
    assert!(other.full * 1000 >= other.sent * 999, "other prefix: {other:?}");

    // One log line per limited prefix (not per packet), and the counters at exit.
    for prefix in limited {
        let line = format!(" info: rrl: {prefix} positive responses limited");
        assert_eq!(log.lines().filter(|l| l.ends_with(&line)).count(), 1, "{line:?} once in:\n{log}");
    }
    assert!(!log.contains(spared[0]) && !log.contains(spared[1]), "{log}");
    let counters = log.lines().find(|l| l.contains(counters)).expect("exit counters");
    let field = |k: &str| -> u64 {
        let v = counters.split(' ').find_map(|w| w.strip_prefix(&format!("{k}=")));
        v.unwrap_or_else(|| panic!("{k} in {counters}")).parse().unwrap()
    };
    // `more_*`: limited replies to other clients of the flooded prefixes.
    let limited: u64 = flood.iter().map(|t| t.sent - t.full).sum::<u64>() + more_limited;
    let slipped: u64 = flood.iter().map(|t| t.slipped).sum::<u64>() + more_slipped;
    // Loopback may lose a datagram under load; the counts agree within 1 %.
    let (server_slipped, server_limited) = (field("rrl_slipped"), field("rrl_dropped") + field("rrl_slipped"));
    assert!(server_slipped >= slipped && server_slipped <= slipped + limited / 100, "{counters}");
    assert!(server_limited <= limited && server_limited >= limited - limited / 100, "{counters}");
}

#[test]
fn rrl_through_af_xdp() {
    const TEST: &str = "rrl_through_af_xdp";
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "ethtool"].iter().all(|t| Command::new(t).arg("-V").output().is_ok());
    if !root || !tools {
        let why = if root { "ip or ethtool missing" } else { "needs root (BPF, AF_XDP, network namespaces)" };
        assert!(!common::in_ci(), "{TEST}: cannot run under CI=true: {why}");
        common::skipped(why);
        return;
    }
    let _turn = ONE_FLOOD_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tb = Testbed::new('r', true);
    // The clients' addresses, a /24 each (198.18.0.2 is the testbed's own).
    for a in ["198.18.1.2", "198.18.1.3", "198.18.2.2", "198.18.3.9", "198.18.5.2"] {
        common::netns::run(&["ip", "-n", &tb.cli, "addr", "add", &format!("{a}/32"), "dev", &tb.cli_if]);
    }
    let dir = tempfile::tempdir().unwrap();
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let conf = dir.path().join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"198.18.0.1:53\"]\ndata-dir = \"{0}/data\"\ncontrol = \"{0}/control.sock\"\n\n\
             [[zone]]\nname = \"example.com\"\nfile = \"{1}\"\n\n\
             [rrl]\nrate = {RATE}\nslip = 2\nwindow = 15\nexempt = [\"198.18.3.0/24\"]\ntable-size = 4096\n",
            dir.path().display(),
            zone.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.srv, env!("CARGO_BIN_EXE_nsxdp"), "serve", "--config"])
        .arg(&conf)
        .args(["--xdp", &tb.srv_if, "--cores", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.contains(" info: ready") {
        assert!(Instant::now() < deadline, "nsxdp not ready:\n{log}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push_str(&l);
            log.push('\n');
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nsxdp exited ({status}):\n{log}");
        }
    }
    assert!(log.contains("AF_XDP on"), "{log}");
    let addr: SocketAddr = "198.18.0.1:53".parse().unwrap();
    let src = ["198.18.1.2", "198.18.1.3", "198.18.2.2", "198.18.3.9", "198.18.5.2"];
    let (flood, exempt, other) = run_flood(addr, src, |f| tb.in_ns(&tb.cli, f));
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(status.success(), "nsxdp exit {status}:\n{log}");
    check(
        &flood,
        &exempt,
        &other,
        &log,
        ["198.18.1.0/24", "198.18.2.0/24"],
        ["198.18.3.0/24", "198.18.5.0/24"],
        " info: XDP DNS:",
        (0, 0),
    );
}

#[test]
fn a_reload_says_that_rrl_changes_wait_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let conf = dir.path().join("nsxdp.toml");
    let text = |rate: u32| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"control.sock\"\n\n\
             [[zone]]\nname = \"example.com\"\nfile = \"{}\"\nnotify-ns = false\n\n[rrl]\nrate = {rate}\n",
            zone.display()
        )
    };
    std::fs::write(&conf, text(5)).unwrap();
    let _server = start_nsxdp(dir.path(), &conf);
    let (ok, out) = common::ctl(&conf, &["reload"]);
    assert!(ok && !out.contains("[rrl]"), "unchanged: {out}");
    std::fs::write(&conf, text(50)).unwrap();
    let (ok, out) = common::ctl(&conf, &["reload"]);
    assert!(ok && out.contains("warning: changes to [rrl] take effect at the next start"), "{out}");
}
