//! nsxdp as a secondary of a fake primary that breaks its transfers on purpose.
//!
//! The fake primary lives in this file: a UDP socket answering SOA queries and a TCP
//! listener answering IXFR/AXFR, both on one port of 127.0.0.1, TSIG-signed with an
//! hmac-sha256 key. Correct responses come from nsxdp's own transfer writers
//! (`xfr::Axfr`, `xfr::Ixfr`); broken ones are those edited (records dropped or changed,
//! a MAC garbled, a message cut short, the connection closed early) or re-encoded here,
//! still signed correctly unless the signature is the point.
//!
//! The zone's SOA timers are an hour, so only the test's triggers (`nsxdp ctl refresh`,
//! one NOTIFY) cause checks. After the first AXFR (serial 1), the fake offers serial 2
//! (3 for the broken IXFR chain) and breaks the transfer in one way after another; after
//! each, zone-status must show the failed check with a `last-error` naming the problem,
//! and serial 1 with its data must still be served. Then the fallbacks that must
//! succeed: an IXFR answered REFUSED, NOTIMP, or with changes that do not apply → AXFR;
//! and a good IXFR after a NOTIFY.
//!
//! Needs kdig: under `CI=true` a missing one fails the test; otherwise it skips.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{assert_same_zone, axfr_lines, ctl, free_port, have, soa_serial, start_nsxdp};
use nsxdp::wire::name::Name;
use nsxdp::wire::rdata::rtype;
use nsxdp::xfr::tsig::{verify_request, write_failure, Algorithm, Key, RequestTsig, Signer};
use nsxdp::xfr::{parse_request, Axfr, Ixfr, Options, Request};
use nsxdp::zone::{Changeset, Record, SrcPos, Zone};

const ZONE: &str = "broken.test.";
const SECRET: &str = "YnJva2VuLXByaW1hcnktdGVzdC1rZXktZm9yLW5zeGRw";
/// Versions the fake primary can offer: serials 1 to 6.
const VERSIONS: u32 = 6;

fn name(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

fn key() -> Key {
    Key::from_base64(&name("xfr."), Algorithm::HmacSha256, SECRET).unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn soa_rdata(serial: u32) -> Vec<u8> {
    let mut v = b"\x02ns\x06broken\x04test\x00\x0ahostmaster\x06broken\x04test\x00".to_vec();
    // Refresh and retry an hour, expire a day: no check but the test's own.
    for x in [serial, 3600, 3600, 86400, 60] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn soa_record(serial: u32) -> Record {
    Record { owner: name(ZONE), rtype: rtype::SOA, ttl: 300, rdata: soa_rdata(serial).into() }
}

/// Version `serial` of the zone: `www` is 192.0.2.SERIAL, and the hosts grow.
fn version(serial: u32) -> Zone {
    let mut z = Zone::new(&name(ZONE));
    let p = SrcPos::default();
    z.insert(&name(ZONE), rtype::SOA, 300, &soa_rdata(serial), p).unwrap();
    z.insert(&name(ZONE), rtype::NS, 300, b"\x02ns\x06broken\x04test\x00", p).unwrap();
    z.insert(&name("ns.broken.test."), rtype::A, 300, &[127, 0, 0, 1], p).unwrap();
    z.insert(&name("www.broken.test."), rtype::A, 300, &[192, 0, 2, serial as u8], p).unwrap();
    let txt = format!("version {serial}");
    let mut rd = vec![txt.len() as u8];
    rd.extend_from_slice(txt.as_bytes());
    z.insert(&name("txt.broken.test."), rtype::TXT, 300, &rd, p).unwrap();
    for i in 0..150 + 10 * serial as usize {
        z.insert(&name(&format!("h{i}.broken.test.")), rtype::A, 300, &[198, 18, (i >> 8) as u8, i as u8], p).unwrap();
    }
    z
}

fn records(z: &Zone) -> Vec<Record> {
    z.records_canonical().iter().map(|r| r.to_owned()).collect()
}

/// How the fake primary answers IXFR and AXFR (SOA queries are always answered right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Correct IXFR (from the history) and AXFR.
    Good,
    /// IXFR: NOTIMP. AXFR: the zone without its closing SOA, then the connection closed.
    NoFinalSoa,
    /// IXFR: NOTIMP. AXFR: closed by the SOA of the next serial.
    ClosingSoaOtherSerial,
    /// IXFR: NOTIMP. AXFR: the version we already have, although the SOA query said newer.
    StaleAxfr,
    /// IXFR: a changeset starting at a serial that is not ours. AXFR: REFUSED.
    IxfrWrongStart,
    /// IXFR: two changesets, the second not starting where the first ended. AXFR: REFUSED.
    IxfrChainGap,
    /// IXFR: NOTIMP. AXFR: a record of another zone in the middle.
    OutOfZone,
    /// IXFR: NOTIMP. AXFR: one octet of the MAC of the second message changed.
    BadMac,
    /// IXFR: NOTIMP. AXFR: signed with another secret under the same key name.
    OtherKey,
    /// IXFR: NOTIMP. AXFR: not signed at all.
    Unsigned,
    /// IXFR: NOTIMP. AXFR: the first message cut short (its length prefix says so too).
    Truncated,
    /// IXFR: NOTIMP. AXFR: two messages, then the connection closed.
    CutOff,
    /// IXFR: NOTIMP. AXFR: two messages, then nothing (the connection kept open).
    Stalled,
    /// IXFR: NOTIMP. AXFR: every message signed but the last.
    LastUnsigned,
    /// IXFR: NOTIMP. AXFR: a CNAME beside other data (a zone that fails the zone checks).
    CnameAndOther,
    /// IXFR: one octet of the MAC of the first message changed (no AXFR must follow).
    IxfrBadMac,
    /// The SOA query answered without a signature.
    SoaUnsigned,
    /// The primary does not know our key: NOTAUTH with TSIG error BADKEY to everything.
    UnknownKey,
    /// IXFR: NOTIMP. AXFR: signed by a clock an hour behind.
    SkewedClock,
    /// The SOA query over UDP answered with TC (nothing else); over TCP correctly; IXFR
    /// and AXFR correct.
    SoaTruncated,
    /// IXFR answered with this rcode; a correct AXFR.
    IxfrRcode(u8),
    /// IXFR: a changeset removing a record the zone does not have; a correct AXFR.
    IxfrNotApplying,
}

struct State {
    mode: Mode,
    /// The serial offered (in SOA answers, and the version transferred).
    serial: u32,
    /// What the fake was asked, in order ("SOA", "IXFR 1", "AXFR").
    asked: Vec<String>,
}

/// The fake primary: its threads stop when it is dropped.
struct Fake {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Fake {
    fn start(port: u16) -> Fake {
        let versions: Arc<Vec<Zone>> = Arc::new((1..=VERSIONS).map(version).collect());
        let state = Arc::new(Mutex::new(State { mode: Mode::Good, serial: 1, asked: Vec::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut threads = Vec::new();
        {
            let (state, stop) = (state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                    if let Some(resp) = soa_answer(&buf[..n], &state, false) {
                        let _ = udp.send_to(&resp, from);
                    }
                }
            }));
        }
        {
            let (state, stop) = (state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((s, _)) => {
                            let (state, stop, versions) = (state.clone(), stop.clone(), versions.clone());
                            conns.push(std::thread::spawn(move || serve_tcp(s, &state, &versions, &stop)));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            }));
        }
        Fake { state, stop, threads }
    }

    fn set(&self, mode: Mode, serial: u32) {
        let mut s = self.state.lock().unwrap();
        s.mode = mode;
        s.serial = serial;
        s.asked.clear();
    }

    fn asked(&self) -> Vec<String> {
        self.state.lock().unwrap().asked.clone()
    }

    /// Sends nsxdp on `port` a NOTIFY for the zone, signed, and waits for its answer.
    fn notify(&self, port: u16) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut m = nsxdp::control::notify::message(0x4242, &name(ZONE), None);
        let len = m.len();
        let mut signer = Signer::request(&key());
        m.resize(len + signer.reserve() + 16, 0);
        let len = signer.sign(&mut m, len, unix_now()).unwrap();
        sock.send_to(&m[..len], ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 1024];
        let (n, _) = sock.recv_from(&mut buf).expect("nsxdp answers the NOTIFY");
        assert!(n >= 12 && buf[0..2] == [0x42, 0x42] && buf[2] & 0x80 != 0, "NOTIFY answer {:?}", &buf[..n]);
        assert_eq!(buf[3] & 0x0f, 0, "NOTIFY answered with rcode {}", buf[3] & 0x0f);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Signs `m` with `signer` (when there is one) and returns it.
fn signed(mut m: Vec<u8>, signer: Option<&mut Signer>) -> Vec<u8> {
    if let Some(s) = signer {
        let len = m.len();
        m.resize(len + s.reserve() + 16, 0);
        let len = s.sign(&mut m, len, unix_now()).unwrap();
        m.truncate(len);
    }
    m
}

/// A response header and the request's question; counts as given.
fn head(req: &Request, flags: [u8; 2], an: u16) -> Vec<u8> {
    let mut m = req.id.to_be_bytes().to_vec();
    m.extend_from_slice(&flags);
    for c in [1, an, 0, 0] {
        m.extend_from_slice(&u16::to_be_bytes(c));
    }
    m.extend_from_slice(&req.question);
    m
}

/// The answer to an SOA query for our zone: the offered version's SOA, signed when the
/// query was (unless the mode says otherwise).
fn soa_answer(msg: &[u8], state: &Mutex<State>, tcp: bool) -> Option<Vec<u8>> {
    let req = parse_request(msg).ok()?;
    if req.qtype != rtype::SOA {
        return None;
    }
    let tsig = verify_request(msg, &[key()], unix_now()).ok()?;
    let (serial, mode) = {
        let mut s = state.lock().unwrap();
        s.asked.push(if tcp { "SOA/TCP" } else { "SOA" }.into());
        (s.serial, s.mode)
    };
    if mode == Mode::UnknownKey {
        return Some(badkey(msg));
    }
    let mut signer = tsig.filter(|_| mode != Mode::SoaUnsigned).map(|t| Signer::response(&t));
    if mode == Mode::SoaTruncated && !tcp {
        // QR, AA, TC.
        return Some(signed(head(&req, [0x86, 0], 0), signer.as_mut()));
    }
    let mut m = head(&req, [0x84, 0], 1);
    let rd = soa_rdata(serial);
    m.extend_from_slice(&[0xC0, 12]);
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&300u32.to_be_bytes());
    m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    m.extend_from_slice(&rd);
    Some(signed(m, signer.as_mut()))
}

/// What a server that does not know the request's key answers (RFC 8945 §5.2.2: NOTAUTH,
/// TSIG error BADKEY, no MAC), from nsxdp's own writer.
fn badkey(msg: &[u8]) -> Vec<u8> {
    let failure = verify_request(msg, &[], unix_now()).expect_err("a signed request, no keys");
    let mut buf = vec![0u8; 1024];
    let len = write_failure(msg, &failure, &mut buf, unix_now()).unwrap();
    buf.truncate(len);
    buf
}

/// An error answer (header and question).
fn rcode_answer(req: &Request, rcode: u8, signer: Option<Signer>) -> Vec<Vec<u8>> {
    let mut signer = signer;
    vec![signed(head(req, [0x84, rcode], 0), signer.as_mut())]
}

/// Messages of at most 1024 octets: several per transfer.
fn opts() -> Options {
    Options { max_len: 1024, ..Options::tcp() }
}

/// A correct AXFR of `zone`, from nsxdp's writer.
fn good_axfr(req: &Request, zone: &Zone, signer: Option<Signer>) -> Vec<Vec<u8>> {
    axfr_signed_at(req, zone, signer, unix_now())
}

/// An AXFR of `zone` signed with the time `now`.
fn axfr_signed_at(req: &Request, zone: &Zone, signer: Option<Signer>, now: u64) -> Vec<Vec<u8>> {
    let mut x = Axfr::new(req, records(zone), signer, opts()).unwrap();
    let mut buf = vec![0u8; 1024];
    let mut out = Vec::new();
    while let Some(len) = x.next_message(&mut buf, now).unwrap() {
        out.push(buf[..len].to_vec());
    }
    out
}

/// A correct IXFR to the last of `versions`, from nsxdp's writer.
fn good_ixfr(req: &Request, versions: &[Zone], signer: Option<Signer>) -> Vec<Vec<u8>> {
    let history: Vec<Changeset> = versions.windows(2).map(|w| w[0].diff(&w[1])).collect();
    let current = versions.last().unwrap();
    let soa = soa_record(current.serial().unwrap());
    let mut x = Ixfr::new(req, soa, Some(&history[..]), || records(current), signer, opts()).unwrap();
    let mut buf = vec![0u8; 1024];
    let mut out = Vec::new();
    while let Some(len) = x.next_message(&mut buf, unix_now()).unwrap() {
        out.push(buf[..len].to_vec());
    }
    out
}

/// The records of an AXFR of `zone`: SOA, the rest, SOA.
fn axfr_records(zone: &Zone) -> Vec<Record> {
    let mut r = records(zone);
    r.push(r[0].clone());
    r
}

/// The records of an IXFR through `versions` (RFC 1995 §4): the new SOA, then per
/// changeset the old SOA, removals, the new SOA, additions; the new SOA again.
fn ixfr_records(versions: &[Zone]) -> Vec<Record> {
    let last = soa_record(versions.last().unwrap().serial().unwrap());
    let mut r = vec![last.clone()];
    for w in versions.windows(2) {
        let cs = w[0].diff(&w[1]);
        r.push(soa_record(w[0].serial().unwrap()));
        r.extend(cs.removed.iter().filter(|x| x.rtype != rtype::SOA).cloned());
        r.push(soa_record(w[1].serial().unwrap()));
        r.extend(cs.added.iter().filter(|x| x.rtype != rtype::SOA).cloned());
    }
    r.push(last);
    r
}

/// `recs` as response messages of 40 records each (names uncompressed), each signed in
/// turn.
fn encode(req: &Request, recs: &[Record], signer: Option<Signer>) -> Vec<Vec<u8>> {
    let mut signer = signer;
    recs.chunks(40)
        .map(|chunk| {
            let mut m = head(req, [0x84, 0], chunk.len() as u16);
            for r in chunk {
                m.extend_from_slice(r.owner.as_wire());
                m.extend_from_slice(&r.rtype.to_be_bytes());
                m.extend_from_slice(&1u16.to_be_bytes());
                m.extend_from_slice(&r.ttl.to_be_bytes());
                m.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
                m.extend_from_slice(&r.rdata);
            }
            signed(m, signer.as_mut())
        })
        .collect()
}

/// What to do after the messages.
enum After {
    Close,
    Stall,
}

/// The fake's answer to a transfer request, by mode.
fn transfer_answer(msg: &[u8], state: &Mutex<State>, versions: &[Zone]) -> (Vec<Vec<u8>>, After) {
    let req = parse_request(msg).unwrap();
    let ixfr = req.qtype == rtype::IXFR;
    let (mode, serial) = {
        let mut s = state.lock().unwrap();
        s.asked.push(if ixfr { format!("IXFR {}", req.ixfr_serial.unwrap_or(0)) } else { "AXFR".into() });
        (s.mode, s.serial)
    };
    if mode == Mode::UnknownKey {
        return (vec![badkey(msg)], After::Close);
    }
    let tsig = verify_request(msg, &[key()], unix_now()).unwrap().expect("nsxdp signs its requests");
    let signer = || Some(Signer::response(&tsig));
    let current = &versions[serial as usize - 1];
    let from = req.ixfr_serial.unwrap_or(1).clamp(1, serial) as usize;
    let chain = &versions[from - 1..serial as usize];
    const NOTIMP: u8 = 4;
    const REFUSED: u8 = 5;
    let msgs = match (mode, ixfr) {
        (Mode::Good | Mode::SoaTruncated | Mode::SoaUnsigned, false)
        | (Mode::IxfrRcode(_) | Mode::IxfrNotApplying | Mode::IxfrBadMac, false) => good_axfr(&req, current, signer()),
        (Mode::Good | Mode::SoaTruncated | Mode::SoaUnsigned, true) => good_ixfr(&req, chain, signer()),
        (Mode::IxfrBadMac, true) => {
            let mut m = good_ixfr(&req, chain, signer());
            let len = m[0].len();
            m[0][len - 7] ^= 0x5a;
            m
        }
        (Mode::IxfrRcode(r), true) => rcode_answer(&req, r, signer()),
        (Mode::IxfrNotApplying, true) => {
            let mut r = ixfr_records(chain);
            let not_there =
                Record { owner: name("nothere.broken.test."), rtype: rtype::A, ttl: 300, rdata: [10, 9, 8, 7].into() };
            r.insert(2, not_there);
            encode(&req, &r, signer())
        }
        (Mode::IxfrWrongStart, true) => {
            let mut r = ixfr_records(chain);
            r[1] = soa_record(from as u32 + 7);
            encode(&req, &r, signer())
        }
        (Mode::IxfrChainGap, true) => {
            let mut r = ixfr_records(chain);
            // The fourth SOA starts the second changeset.
            let at = r.iter().enumerate().filter(|(_, x)| x.rtype == rtype::SOA).nth(3).unwrap().0;
            r[at] = soa_record(9);
            encode(&req, &r, signer())
        }
        (Mode::IxfrWrongStart | Mode::IxfrChainGap, false) => rcode_answer(&req, REFUSED, signer()),
        (_, true) => rcode_answer(&req, NOTIMP, signer()),
        (Mode::NoFinalSoa, false) => {
            let mut r = axfr_records(current);
            r.pop();
            encode(&req, &r, signer())
        }
        (Mode::ClosingSoaOtherSerial, false) => {
            let mut r = axfr_records(current);
            *r.last_mut().unwrap() = soa_record(serial + 1);
            encode(&req, &r, signer())
        }
        (Mode::StaleAxfr, false) => good_axfr(&req, &versions[0], signer()),
        (Mode::OutOfZone, false) => {
            let mut r = axfr_records(current);
            let evil =
                Record { owner: name("www.example.net."), rtype: rtype::A, ttl: 300, rdata: [203, 0, 113, 66].into() };
            r.insert(r.len() / 2, evil);
            encode(&req, &r, signer())
        }
        (Mode::BadMac, false) => {
            let mut m = good_axfr(&req, current, signer());
            // The MAC's last octet sits before original ID, error and other length.
            let len = m[1].len();
            m[1][len - 7] ^= 0x5a;
            m
        }
        (Mode::OtherKey, false) => {
            let other = Key::from_base64(
                &name("xfr."),
                Algorithm::HmacSha256,
                "YW5vdGhlci1zZWNyZXQtdW5kZXItdGhlLXNhbWUtbmFtZQ==",
            )
            .unwrap();
            let t = RequestTsig { key: other, ..tsig.clone() };
            good_axfr(&req, current, Some(Signer::response(&t)))
        }
        (Mode::Unsigned, false) => good_axfr(&req, current, None),
        (Mode::SkewedClock, false) => axfr_signed_at(&req, current, signer(), unix_now() - 3600),
        (Mode::UnknownKey, _) => unreachable!("answered above"),
        (Mode::LastUnsigned, false) => {
            let r = axfr_records(current);
            let last = (r.len() - 1) / 40 * 40;
            let mut m = encode(&req, &r[..last], signer());
            m.extend(encode(&req, &r[last..], None));
            assert!(m.len() > 2);
            m
        }
        (Mode::CnameAndOther, false) => {
            let mut r = axfr_records(current);
            let cname = Record {
                owner: name("www.broken.test."),
                rtype: rtype::CNAME,
                ttl: 300,
                rdata: name("h1.broken.test.").as_wire().into(),
            };
            r.insert(3, cname);
            encode(&req, &r, signer())
        }
        (Mode::Truncated, false) => {
            let mut m = good_axfr(&req, current, signer());
            let cut = m[0].len() - 9;
            m[0].truncate(cut);
            m.truncate(1);
            m
        }
        (Mode::CutOff, false) => {
            let mut m = good_axfr(&req, current, signer());
            assert!(m.len() > 3, "{} messages", m.len());
            m.truncate(2);
            m
        }
        (Mode::Stalled, false) => {
            let mut m = good_axfr(&req, current, signer());
            m.truncate(2);
            return (m, After::Stall);
        }
    };
    (msgs, After::Close)
}

/// One TCP connection: one request, its answer, then close (or stall, then close).
fn serve_tcp(mut s: TcpStream, state: &Mutex<State>, versions: &[Zone], stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return;
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    if s.read_exact(&mut msg).is_err() {
        return;
    }
    let (msgs, after) = match soa_answer(&msg, state, true) {
        Some(m) => (vec![m], After::Close),
        None => transfer_answer(&msg, state, versions),
    };
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(&m);
    }
    if s.write_all(&out).is_err() {
        return;
    }
    if let After::Stall = after {
        let t0 = Instant::now();
        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn nsxdp_conf(dir: &Path, port: u16, primary: u16) -> PathBuf {
    common::secondary_conf(dir, port, "broken.test", primary, SECRET, "transfer-timeout = 1\n")
}

/// A counter from zone-status (`failures`, `axfr`, ...).
fn counter(status: &str, what: &str) -> u64 {
    let prefix = format!("{what}=");
    status.split_whitespace().find_map(|w| w.strip_prefix(prefix.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn zone_status(conf: &Path) -> String {
    let (ok, status) = ctl(conf, &["zone-status", "broken.test"]);
    assert!(ok, "{status}");
    status
}

fn last_error(status: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix("last-error ")).unwrap_or("").to_string()
}

/// `www`'s address as nsxdp on `port` answers it over UDP.
fn www(port: u16) -> String {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=1", "+retry=0", "www.broken.test.", "A"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn broken_primaries() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let t_all = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (fp, np) = (free_port(), free_port());
    let fake = Fake::start(fp);
    let conf = nsxdp_conf(d, np, fp);
    let _ns = start_nsxdp(d, &conf);
    let nlog = || std::fs::read_to_string(d.join("nsxdp.log")).unwrap_or_default();
    let logs = [d.join("nsxdp.log")];
    common::wait_serial(np, ZONE, 1, Duration::from_secs(20), "the first AXFR", &logs);
    assert_eq!(fake.asked(), ["AXFR"], "a zone with nothing yet is transferred whole");
    assert_eq!(www(np), "192.0.2.1");
    let key_arg = format!("hmac-sha256:xfr:{SECRET}");
    let v1 = axfr_lines(np, ZONE, Some(&key_arg));
    assert!(v1.len() > 150, "{v1:?}");

    // Broken transfers of serial 2 (3 for the IXFR chain): each refused, serial 1 served.
    let broken: &[(Mode, u32, &[&str], &str)] = &[
        (Mode::NoFinalSoa, 2, &["SOA", "IXFR 1", "AXFR"], "cut off before its closing SOA"),
        (
            Mode::ClosingSoaOtherSerial,
            2,
            &["SOA", "IXFR 1", "AXFR"],
            "an SOA with serial 3 inside a transfer of serial 2",
        ),
        (Mode::StaleAxfr, 2, &["SOA", "IXFR 1", "AXFR"], "serial 1 is not newer than ours (1)"),
        (Mode::IxfrWrongStart, 2, &["SOA", "IXFR 1", "AXFR"], "the first change starts at serial 8, not ours (1)"),
        (
            Mode::IxfrChainGap,
            3,
            &["SOA", "IXFR 1", "AXFR"],
            "a change starts at serial 9, where the one before ended at 2",
        ),
        (Mode::OutOfZone, 2, &["SOA", "IXFR 1", "AXFR"], "www.example.net. is outside the zone broken.test."),
        (Mode::BadMac, 2, &["SOA", "IXFR 1", "AXFR"], "TSIG: MAC does not verify"),
        (Mode::OtherKey, 2, &["SOA", "IXFR 1", "AXFR"], "TSIG: MAC does not verify"),
        (Mode::Unsigned, 2, &["SOA", "IXFR 1", "AXFR"], "TSIG: the response is not signed"),
        (Mode::Truncated, 2, &["SOA", "IXFR 1", "AXFR"], "malformed response"),
        (Mode::CutOff, 2, &["SOA", "IXFR 1", "AXFR"], "cut off before its closing SOA"),
        (
            Mode::Stalled,
            2,
            &["SOA", "IXFR 1", "AXFR"],
            "AXFR: timed out: nothing from the primary for 1s after 2 messages",
        ),
        (Mode::LastUnsigned, 2, &["SOA", "IXFR 1", "AXFR"], "TSIG: the last message of the transfer is not signed"),
        (Mode::CnameAndOther, 2, &["SOA", "IXFR 1", "AXFR"], "the zone has errors"),
        (Mode::IxfrBadMac, 2, &["SOA", "IXFR 1"], ": IXFR: TSIG: MAC does not verify"),
        (Mode::SoaUnsigned, 2, &["SOA"], ": SOA query: TSIG: the response is not signed"),
        (Mode::UnknownKey, 2, &["SOA"], ": SOA query: TSIG: the primary says BADKEY"),
        (Mode::SkewedClock, 2, &["SOA", "IXFR 1", "AXFR"], "then AXFR: TSIG: time signed is outside the fudge"),
    ];
    for &(mode, serial, asked, expect) in broken {
        let t0 = Instant::now();
        fake.set(mode, serial);
        let before = counter(&zone_status(&conf), "failures");
        let (ok, out) = ctl(&conf, &["refresh", "broken.test"]);
        assert!(ok, "{out}");
        let status = loop {
            let s = zone_status(&conf);
            if counter(&s, "failures") > before && !s.contains("next-check under way") {
                break s;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{mode:?}: the check did not end:\n{s}\n{}", nlog());
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = last_error(&status);
        eprintln!("{mode:?}: failed after {:?}: last-error {err}", t0.elapsed());
        assert!(err.contains(expect), "{mode:?}: last-error does not say {expect:?}:\n{status}");
        assert!(err.starts_with(&format!("127.0.0.1:{fp}: ")), "{mode:?}: the primary is not named:\n{status}");
        assert_eq!(fake.asked(), asked, "{mode:?}: what nsxdp asked");
        assert!(status.contains("serial 1\n") && status.contains("state serving"), "{mode:?}:\n{status}");
        assert_eq!(soa_serial(np, ZONE), Some(1), "{mode:?}: the old zone is not served");
        assert_eq!(www(np), "192.0.2.1", "{mode:?}: the old data is not served");
        assert!(nlog().contains(&format!("check failed: 127.0.0.1:{fp}: ")), "{mode:?}:\n{}", nlog());
    }
    // Serial 1 as it was, record by record (the fake's AXFR of version 1 beside nsxdp's).
    assert_same_zone(&axfr_lines(np, ZONE, Some(&key_arg)), &v1, "nsxdp after the broken transfers", "serial 1");
    fake.set(Mode::Good, 1);
    assert_same_zone(&axfr_lines(fp, ZONE, Some(&key_arg)), &v1, "the fake primary", "nsxdp");

    // Fallbacks that must succeed, and a good IXFR after a NOTIFY.
    let steps: &[(Mode, u32, &[&str], &str)] = &[
        (Mode::IxfrRcode(5), 2, &["SOA", "IXFR 1", "AXFR"], "by AXFR from {P}: "),
        (Mode::Good, 3, &["SOA", "IXFR 2"], "by IXFR from {P}: "),
        (Mode::IxfrNotApplying, 4, &["SOA", "IXFR 3", "AXFR"], "by AXFR from {P}: "),
        (Mode::IxfrRcode(4), 5, &["SOA", "IXFR 4", "AXFR"], "by AXFR from {P}: "),
        (Mode::SoaTruncated, 6, &["SOA", "SOA/TCP", "IXFR 5"], "by IXFR from {P}: "),
    ];
    let why = [
        Some("(IXFR failed: the primary answered REFUSED)"),
        None,
        Some("(IXFR did not apply: IXFR removes a record the zone does not have: nothere.broken.test. type 1)"),
        Some("(IXFR failed: the primary answered NOTIMP)"),
        None,
    ];
    for (&(mode, serial, asked, how), why) in steps.iter().zip(why) {
        fake.set(mode, serial);
        let t0 = Instant::now();
        if mode == Mode::Good {
            fake.notify(np);
        } else {
            let (ok, out) = ctl(&conf, &["refresh", "broken.test"]);
            assert!(ok, "{out}");
        }
        let took = common::wait_serial(np, ZONE, serial, Duration::from_secs(10), &format!("{mode:?}"), &logs);
        eprintln!("{mode:?}: serial {serial} served after {took:?}");
        assert_eq!(fake.asked(), asked, "{mode:?}: what nsxdp asked");
        // The log line goes through a pipe and a relay thread: it may come a moment after
        // the new serial is served.
        let want = format!("serial {} -> {serial} ", serial - 1);
        let t1 = Instant::now();
        let line = loop {
            let log = nlog();
            if let Some(l) = log.lines().find(|l| l.contains(&want)) {
                break l.to_string();
            }
            assert!(t1.elapsed() < Duration::from_secs(5), "{mode:?}: no transfer logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        };
        eprintln!("  {line}");
        assert!(line.contains(&how.replace("{P}", &format!("127.0.0.1:{fp}"))), "{mode:?}: {line}");
        match why {
            Some(w) => assert!(line.ends_with(w), "{mode:?}: {line}"),
            None => assert!(!line.ends_with(')'), "{mode:?}: {line}"),
        }
        assert_eq!(www(np), format!("192.0.2.{serial}"), "{mode:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{mode:?} took {:?}", t0.elapsed());
    }
    // `retransfer`: the whole zone again, same serial, no SOA query or IXFR.
    fake.set(Mode::Good, VERSIONS);
    let (ok, out) = ctl(&conf, &["retransfer", "broken.test"]);
    assert!(ok, "{out}");
    let t0 = Instant::now();
    let line = format!("serial {VERSIONS} -> {VERSIONS} by AXFR from 127.0.0.1:{fp}");
    while !nlog().contains(&line) {
        assert!(t0.elapsed() < Duration::from_secs(10), "retransfer: no {line:?}:\n{}", nlog());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.asked(), ["AXFR"], "retransfer");
    let status = zone_status(&conf);
    assert!(status.contains("last-error none"), "{status}");
    assert_eq!(counter(&status, "ixfr-fallbacks"), 3, "{status}");
    assert_eq!(counter(&status, "ixfr"), 2, "{status}");
    assert_eq!(counter(&status, "axfr"), 5, "{status}");
    assert_eq!(counter(&status, "failures"), broken.len() as u64, "{status}");
    // The last version, record by record.
    assert_same_zone(
        &axfr_lines(fp, ZONE, Some(&key_arg)),
        &axfr_lines(np, ZONE, Some(&key_arg)),
        "the fake primary",
        "nsxdp",
    );
    eprintln!("broken_primaries took {:?}", t_all.elapsed());
}
