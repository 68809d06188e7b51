//! Zone transfers written by `nsxdp::xfr`, read by real clients: kdig, dig and dnspython.
//!
//! A test-only server (threads on 127.0.0.1, TCP and UDP on one port) answers AXFR and IXFR
//! requests with `xfr::Axfr`/`xfr::Ixfr`, checking TSIG with `xfr::tsig`. It serves
//! example.com at version 3 (a generated zone of about 6,000 records, so an AXFR takes
//! several messages) and holds the changesets 1→2 and 2→3. The clients:
//! - kdig and dig: AXFR and IXFR signed with hmac-sha256 (both verify TSIG on every message
//!   of a transfer); the record counts they report; AXFR with one record per message; a
//!   wrong secret refused.
//! - dnspython (`tests/xfr/check.py`): AXFR with each algorithm compared record by record
//!   with the zone file; IXFR over TCP and UDP applied to the older versions gives version
//!   3; BADKEY, BADSIG, BADTIME and an unsigned request refused.
//!
//! A missing kdig, dig or python3-dnspython fails the test when `CI=true` and skips it with
//! a message otherwise.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nsxdp::wire::message::rcode;
use nsxdp::wire::name::Name;
use nsxdp::xfr::{self, tsig, Algorithm, Axfr, Ixfr, Key, Options, RequestError, Signer};
use nsxdp::zone::{parse, Changeset, Record, Zone};

/// Debian's python3, which has python3-dnspython (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";
/// check.py's exit status for "dnspython is missing".
const EXIT_MISSING: i32 = 3;
/// Bytes 0..31, the secret of every test key.
const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Hosts in the generated zone.
const HOSTS: usize = 6000;

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// False (after saying why) when `tool` cannot run; under CI that is a failure.
fn have(tool: &str, version_arg: &str) -> bool {
    let ok = Command::new(tool).arg(version_arg).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(!in_ci(), "{tool} is needed for the transfer interop tests (CI=true)");
        common::skipped(&format!("{tool} is not installed"));
    }
    ok
}

fn n(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

fn keys() -> Vec<Key> {
    [
        ("sha1-key.", Algorithm::HmacSha1),
        ("xfr-key.", Algorithm::HmacSha256),
        ("sha384-key.", Algorithm::HmacSha384),
        ("sha512-key.", Algorithm::HmacSha512),
    ]
    .iter()
    .map(|(name, alg)| Key::from_base64(&n(name), *alg, SECRET).unwrap())
    .collect()
}

/// Version `v` (1, 2 or 3) of example.com as a master file.
fn zone_text(v: u32) -> String {
    // A 255-octet name.
    let longest = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(49));
    let mut s = format!(
        "$ORIGIN example.com.\n$TTL 3600\n\
         @ IN SOA ns1 hostmaster {v} 7200 900 1209600 300\n\
         @ NS ns1\n@ NS ns2.example.net.\n@ MX 10 mail\n@ MX 20 Mail2.Example.COM.\n\
         ns1 A 192.0.2.53\nmail A 192.0.2.25\nmail2 AAAA 2001:db8::25\nwww CNAME @\n\
         *.wild TXT \"wildcard answer\"\nsub NS ns.sub\nns.sub A 192.0.2.54\n\
         _sip._udp SRV 10 60 5060 mail\nold DNAME example.net.\n\
         long TXT \"{}\" \"{}\"\n\
         {} A 192.0.2.99\n",
        "a".repeat(255),
        "b".repeat(100),
        longest,
    );
    for i in 0..HOSTS {
        // Version 2 drops h5 and moves h7..h26 (too much for one 512-octet datagram);
        // version 3 brings h5 back.
        if v == 2 && i == 5 {
            continue;
        }
        let last = if (7..27).contains(&i) && v >= 2 { 200 + i } else { i % 250 };
        s.push_str(&format!("h{i} A 198.51.{}.{}\n", i / 250, last));
        if i % 10 == 0 {
            s.push_str(&format!("h{i} AAAA 2001:db8::{i:x}\n"));
        }
    }
    if v >= 2 {
        s.push_str("new TXT \"added in version 2\"\n");
    }
    if v >= 3 {
        s.push_str("three A 192.0.2.3\n");
    }
    s
}

struct Versions {
    _dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    current: Zone,
    history: Vec<Changeset>,
}

fn versions() -> Versions {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut zones = Vec::new();
    for v in 1..=3 {
        let path = dir.path().join(format!("example.com.v{v}.zone"));
        std::fs::write(&path, zone_text(v)).unwrap();
        let loaded = parse::load_file(&path, Some(&n("example.com."))).unwrap();
        assert!(loaded.is_servable(), "{:?}", loaded.diagnostics);
        files.push(path);
        zones.push(loaded.zone);
    }
    let history = vec![zones[0].diff(&zones[1]), zones[1].diff(&zones[2])];
    assert!(!history[0].is_empty() && !history[1].is_empty());
    Versions { _dir: dir, files, current: zones.pop().unwrap(), history }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// What the server is asked to do, and what it did.
struct State {
    keys: Vec<Key>,
    records: Vec<Record>,
    soa: Record,
    history: Vec<Changeset>,
    one_rr_per_message: bool,
    /// One line per request answered: "tcp axfr 3 messages", "udp ixfr soa-only"…
    log: Mutex<Vec<String>>,
}

impl State {
    fn new(v: &Versions, one_rr_per_message: bool) -> State {
        let records: Vec<Record> = v.current.records_canonical().iter().map(|r| r.to_owned()).collect();
        State {
            keys: keys(),
            soa: records[0].clone(),
            records,
            history: v.history.clone(),
            one_rr_per_message,
            log: Mutex::new(Vec::new()),
        }
    }

    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    /// The response messages to one request.
    fn answer(&self, msg: &[u8], udp: bool) -> Vec<Vec<u8>> {
        let now = now();
        let mut buf = vec![0u8; 65535];
        let req = match xfr::parse_request(msg) {
            Ok(r) => r,
            Err(RequestError::Malformed(why)) => {
                let len = tsig::write_failure(msg, &tsig::TsigFailure::Malformed(why), &mut buf, now).unwrap();
                return vec![buf[..len].to_vec()];
            }
            Err(_) => return vec![],
        };
        let ok = match tsig::verify_request(msg, &self.keys, now) {
            Ok(t) => t,
            Err(f) => {
                self.log(format!("refused {}", tsig::error_name(f.error())));
                let len = tsig::write_failure(msg, &f, &mut buf, now).unwrap();
                return vec![buf[..len].to_vec()];
            }
        };
        let mut signer = ok.as_ref().map(Signer::response);
        let refuse = |rcode: u8, signer: Option<&mut Signer>, buf: &mut [u8]| {
            let len = xfr::write_error(&req, rcode, signer, buf, now).unwrap();
            vec![buf[..len].to_vec()]
        };
        if ok.is_none() {
            self.log("refused unsigned".into());
            return refuse(rcode::REFUSED, None, &mut buf);
        }
        if !req.qname.ends_with(&n("example.com.")) || !n("example.com.").ends_with(&req.qname) {
            return refuse(rcode::NOTAUTH, signer.as_mut(), &mut buf);
        }
        let mut opts = Options { one_rr_per_message: self.one_rr_per_message, ..Options::tcp() };
        if req.edns_udp_size.is_some() {
            opts.edns_udp_size = Some(1232);
        }
        let mut out = Vec::new();
        if udp {
            if !req.is_ixfr() {
                return refuse(rcode::NOTIMP, signer.as_mut(), &mut buf);
            }
            opts.max_len = req.edns_udp_size.map_or(512, |s| (s as usize).clamp(512, 1232));
            let x = Ixfr::new(&req, self.soa.clone(), Some(&self.history[..]), || self.records.iter(), signer, opts)
                .unwrap();
            let kind = x.kind();
            let len = x.udp_message(&mut buf, now).unwrap();
            let answers = u16::from_be_bytes([buf[6], buf[7]]);
            let what =
                if answers == 1 && kind != xfr::IxfrKind::UpToDate { "soa-only".into() } else { format!("{kind:?}") };
            self.log(format!("udp ixfr {what}"));
            return vec![buf[..len].to_vec()];
        }
        if req.is_axfr() {
            let mut x = Axfr::new(&req, self.records.iter(), signer, opts).unwrap();
            while let Some(len) = x.next_message(&mut buf, now).unwrap() {
                out.push(buf[..len].to_vec());
            }
            self.log(format!("tcp axfr {} messages {} records", x.messages(), x.records()));
        } else if req.is_ixfr() {
            let mut x =
                Ixfr::new(&req, self.soa.clone(), Some(&self.history[..]), || self.records.iter(), signer, opts)
                    .unwrap();
            while let Some(len) = x.next_message(&mut buf, now).unwrap() {
                out.push(buf[..len].to_vec());
            }
            self.log(format!("tcp ixfr {:?} {} messages", x.kind(), x.messages()));
        } else {
            return refuse(rcode::NOTIMP, signer.as_mut(), &mut buf);
        }
        out
    }
}

/// The test server: TCP and UDP on one loopback port, until dropped.
struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(state: State) -> Server {
        let (tcp, udp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (tcp, udp);
            }
        };
        let addr = tcp.local_addr().unwrap();
        let state = Arc::new(state);
        let stop = Arc::new(AtomicBool::new(false));
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (st, sp) = (state.clone(), stop.clone());
        let tcp_thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve_tcp(conn, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let (st, sp) = (state.clone(), stop.clone());
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !sp.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = udp.recv_from(&mut buf) {
                    for m in st.answer(&buf[..len], true) {
                        let _ = udp.send_to(&m, peer);
                    }
                }
            }
        });
        Server { addr, state, stop, threads: vec![tcp_thread, udp_thread] }
    }

    fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Answers the requests of one connection (two-octet framing) until the client closes it.
fn serve_tcp(mut conn: TcpStream, state: &State) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        for m in state.answer(&msg, false) {
            let mut framed = (m.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&m);
            if conn.write_all(&framed).is_err() {
                return;
            }
        }
    }
}

/// Runs kdig or dig, which must succeed without complaint: kdig fails when a TSIG does
/// not verify; dig exits 0 but says "Couldn't verify signature" and "WARNING -- Some TSIG
/// could not be validated".
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    for bad in ["WARNING", "verify", "failed", ";; ERROR"] {
        assert!(!text.contains(bad), "{tool} {args:?} says {bad:?}:\n{text}");
    }
    text
}

/// Lines of `text` that are zone records (not comments, blank lines or TSIG RRs).
fn record_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';') && !l.split_whitespace().any(|w| w == "TSIG"))
        .collect()
}

#[test]
fn kdig_reads_transfers() {
    if !have("kdig", "--version") {
        return;
    }
    let v = versions();
    let server = Server::start(State::new(&v, false));
    let port = server.addr.port().to_string();
    let y = format!("hmac-sha256:xfr-key:{SECRET}");
    let base = ["-y", &y, "+tcp", "+timeout=10", "+retry=0", "@127.0.0.1", "-p", &port];
    let total = v.current.rr_count() + 1;

    // AXFR: every record, the SOA twice; kdig checks the TSIG of each message.
    let out = run("kdig", &[&base[..], &["AXFR", "example.com."]].concat());
    assert_eq!(record_lines(&out).len(), total, "{}", &out[out.len().saturating_sub(500)..]);
    assert!(out.contains(&format!("{total} records")), "{}", &out[out.len().saturating_sub(500)..]);

    // IXFR from version 1: two changesets.
    let out = run("kdig", &[&base[..], &["IXFR=1", "example.com."]].concat());
    let c = &v.history;
    let want = 2 + c.iter().map(|c| 2 + c.removed.len() + c.added.len()).sum::<usize>();
    assert_eq!(record_lines(&out).len(), want, "{out}");

    // A wrong secret: the server says BADSIG, kdig reports it.
    let bad = "hmac-sha256:xfr-key:c2VjcmV0IHNlY3JldCBzZWNyZXQ=";
    let out = Command::new("kdig")
        .args(["-y", bad, "+tcp", "+timeout=10", "+retry=0", "@127.0.0.1", "-p", &port, "AXFR", "example.com."])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("error 'BADSIG'"), "{text}");
    let log = server.log();
    assert!(log.iter().any(|l| l.starts_with("tcp axfr 3 messages")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("tcp ixfr Incremental { changesets: 2 }")), "{log:?}");
    assert!(log.iter().any(|l| l == "refused BADSIG"), "{log:?}");
}

#[test]
fn dig_reads_transfers() {
    if !have("dig", "-v") {
        return;
    }
    let v = versions();
    let total = v.current.rr_count() + 1;
    for one_rr in [false, true] {
        let server = Server::start(State::new(&v, one_rr));
        let port = server.addr.port().to_string();
        let y = format!("hmac-sha256:xfr-key:{SECRET}");
        let base = ["-y", &y, "+tcp", "+time=10", "+tries=1", "@127.0.0.1", "-p", &port];
        // dig verifies the TSIG of every message and says "XFR size" only for a good one.
        let out = run("dig", &[&base[..], &["AXFR", "example.com."]].concat());
        let messages = if one_rr { total } else { 3 };
        let size = format!("XFR size: {total} records (messages {messages},");
        assert!(out.contains(&size), "want {size}: {}", &out[out.len().saturating_sub(500)..]);
        assert_eq!(record_lines(&out).len(), total);
        if !one_rr {
            // IXFR from 2: one changeset, five records and the closing SOA.
            let out = run("dig", &[&base[..], &["IXFR=2", "example.com."]].concat());
            let c = &v.history[1];
            let want = 3 + 1 + c.removed.len() + c.added.len();
            assert!(out.contains(&format!("XFR size: {want} records")), "{out}");
            // From the current serial: our SOA alone.
            let out = run("dig", &[&base[..], &["IXFR=3", "example.com."]].concat());
            assert_eq!(record_lines(&out).len(), 1, "{out}");
        }
    }
}

#[test]
fn dnspython_reads_transfers() {
    if !Path::new(PYTHON).exists() {
        assert!(!in_ci(), "{PYTHON} is needed for the transfer interop tests (CI=true)");
        common::skipped(&format!("{PYTHON} is not installed"));
        return;
    }
    let v = versions();
    let server = Server::start(State::new(&v, false));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("xfr").join("check.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .arg(server.addr.port().to_string())
        .args(&v.files)
        .output()
        .expect("cannot start /usr/bin/python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(EXIT_MISSING) => {
            assert!(!in_ci(), "dnspython is needed (CI=true): {stdout}");
            common::skipped(stdout.trim());
            return;
        }
        status => panic!("check.py failed (exit {status:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"),
    }
    let log = server.log();
    for want in [
        "tcp ixfr Incremental { changesets: 2 }",
        "tcp ixfr Incremental { changesets: 1 }",
        "tcp ixfr UpToDate",
        "udp ixfr Incremental { changesets: 1 }",
        "udp ixfr soa-only",
        "refused BADKEY",
        "refused BADSIG",
        "refused BADTIME",
        "refused unsigned",
    ] {
        assert!(log.iter().any(|l| l.starts_with(want)), "no {want:?} in {log:#?}");
    }
}
