//! Response rate limiting end to end: `nsxdp serve` with `[rrl]` on loopback, flooded from
//! several 127.x.y.z source prefixes (client sockets bound to those addresses, as a spoofed
//! flood would look). The flooded prefixes get no more full answers than rate × time, the
//! rest of their responses dropped or slipped (TC set, no records: smaller than the query);
//! a client in another prefix and an exempt prefix are answered in full; the server logs
//! each limited prefix once and counts what it did.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{dns_query, qtype, start_nsxdp};

const RATE: u64 = 50;

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

/// Sends `count` queries for `name` from `src` to `server`, `per_sec` a second (in bursts of
/// a millisecond's worth), and counts what comes back until 500 ms after the last one.
fn client(src: &str, server: SocketAddr, name: &str, count: u64, per_sec: u64) -> Tally {
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
                let q = dns_query(sent as u16, name, qtype::A);
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
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let conf = dir.path().join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"control.sock\"\n\n\
             [[zone]]\nname = \"example.com\"\nfile = \"{}\"\n\n\
             [rrl]\nrate = {RATE}\nslip = 2\nwindow = 15\nexempt = [\"127.3.0.0/24\"]\ntable-size = 4096\n",
            zone.display()
        ),
    )
    .unwrap();
    let server = start_nsxdp(dir.path(), &conf);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Two sources in 127.1.0.0/24 and one in 127.2.0.0/24 flood at 4,000 queries a second
    // each; the exempt prefix at 2,000; a client of its own prefix asks at 40 a second
    // (under the rate), all for the same name, at the same time.
    let (flood, exempt, other) = std::thread::scope(|s| {
        let f: Vec<_> = ["127.1.0.1", "127.1.0.2", "127.2.0.1"]
            .map(|src| s.spawn(move || client(src, addr, "example.com.", 10_000, 4000)))
            .into_iter()
            .collect();
        let e = s.spawn(move || client("127.3.0.9", addr, "example.com.", 5_000, 2000));
        let o = s.spawn(move || client("127.5.0.1", addr, "example.com.", 100, 40));
        let f: Vec<Tally> = f.into_iter().map(|h| h.join().unwrap()).collect();
        (f, e.join().unwrap(), o.join().unwrap())
    });
    let log_text = || std::fs::read_to_string(dir.path().join("nsxdp.log")).unwrap_or_default();
    drop(server);
    // The log is written by a thread of the test: wait for the last lines.
    let t0 = Instant::now();
    while !log_text().contains("nsxdp: TCP") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log_text();
    eprintln!("flood {flood:?}\nexempt {exempt:?}\nother {other:?}");

    // 127.1.0.0/24 (two sources, one bucket) and 127.2.0.0/24: at most rate × time answers
    // (plus the first second's credit), every limited response dropped or slipped, every
    // slip TC with no records, every second one slipped (slip = 2).
    let prefix_1 = [flood[0], flood[1]];
    let prefix_2 = [flood[2]];
    for (name, p) in [("127.1.0.0/24", &prefix_1[..]), ("127.2.0.0/24", &prefix_2[..])] {
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
    for prefix in ["127.1.0.0/24", "127.2.0.0/24"] {
        let line = format!("nsxdp: rrl: {prefix} positive responses limited");
        assert_eq!(log.lines().filter(|l| *l == line).count(), 1, "{line:?} once in:\n{log}");
    }
    assert!(!log.contains("127.3.0.0/24") && !log.contains("127.5.0.0/24"), "{log}");
    let counters = log.lines().find(|l| l.contains("nsxdp: stopping; UDP")).expect("exit counters");
    let field = |k: &str| -> u64 {
        let v = counters.split(' ').find_map(|w| w.strip_prefix(&format!("{k}=")));
        v.unwrap_or_else(|| panic!("{k} in {counters}")).parse().unwrap()
    };
    let limited: u64 = flood.iter().map(|t| t.sent - t.full).sum();
    let slipped: u64 = flood.iter().map(|t| t.slipped).sum();
    // Loopback may lose a datagram under load; the counts agree within 1 %.
    let (server_slipped, server_limited) = (field("rrl_slipped"), field("rrl_dropped") + field("rrl_slipped"));
    assert!(server_slipped >= slipped && server_slipped <= slipped + limited / 100, "{counters}");
    assert!(server_limited <= limited && server_limited >= limited - limited / 100, "{counters}");
}
