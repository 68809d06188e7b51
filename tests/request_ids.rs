//! The message IDs of the requests a secondary sends are unpredictable, and answers with
//! another ID are not taken.
//!
//! A fake primary on 127.0.0.1 (a UDP socket for SOA queries, a TCP listener on the same
//! port for AXFR) records the ID of every request it gets. Before each true answer to an
//! SOA query it sends a forged one with another ID and a much higher serial, as an off-path
//! attacker who guessed wrong would; nsxdp's real check (`control::secondary::fetch`, over
//! real sockets) must ignore it and report the true serial. Over TCP, an answer with another
//! ID makes the transfer fail, with nothing taken from it. The IDs of 64 requests, SOA
//! queries and AXFRs, must be nearly all distinct, with no fixed step between them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nsxdp::control::secondary::{fetch, Fetched, Job, Primary};
use nsxdp::secondary::xfrin::Limits;
use nsxdp::snapshot::{compile, write_snapshot, Snapshot};
use nsxdp::wire::name::Name;
use nsxdp::wire::rdata::rtype;
use nsxdp::xfr::parse_request;
use nsxdp::zone::{Record, SrcPos, Zone};

const ZONE: &str = "ids.test.";

fn name(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

fn soa_rdata(serial: u32) -> Vec<u8> {
    let mut v = b"\x02ns\x03ids\x04test\x00\x0ahostmaster\x03ids\x04test\x00".to_vec();
    for x in [serial, 3600, 600, 86400, 60] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// A resource record with its owner compressed to the question name (offset 12).
fn rr_at_apex(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xC0, 12];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&300u32.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// An authoritative answer to `req` (its ID and question) with `answers`.
fn answer(id: u16, question: &[u8], answers: &[Vec<u8>]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x84, 0x00, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(question);
    for a in answers {
        m.extend_from_slice(a);
    }
    m
}

/// What the fake serves, and what it saw.
struct State {
    /// The serial in true answers; forged ones say `serial + 1000`.
    serial: u32,
    /// Answer AXFRs with another ID than the request's.
    wrong_axfr_id: bool,
    /// (kind, ID) of each request, in order.
    seen: Vec<(&'static str, u16)>,
}

struct FakePrimary {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FakePrimary {
    fn start(serial: u32) -> FakePrimary {
        let port = common::free_port();
        let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State { serial, wrong_axfr_id: false, seen: Vec::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (st, sp) = (state.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !sp.load(Ordering::Relaxed) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                let Ok(req) = parse_request(&buf[..n]) else { continue };
                if req.qtype != rtype::SOA {
                    continue;
                }
                let serial = {
                    let mut s = st.lock().unwrap();
                    s.seen.push(("SOA", req.id));
                    s.serial
                };
                // The forgery first: another ID, a far newer serial.
                let forged =
                    answer(req.id ^ 0x0101, &req.question, &[rr_at_apex(rtype::SOA, &soa_rdata(serial + 1000))]);
                let _ = udp.send_to(&forged, from);
                let _ =
                    udp.send_to(&answer(req.id, &req.question, &[rr_at_apex(rtype::SOA, &soa_rdata(serial))]), from);
            }
        }));
        let (st, sp) = (state.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut m).is_err() {
                    continue;
                }
                let Ok(req) = parse_request(&m) else { continue };
                let (serial, wrong) = {
                    let mut st = st.lock().unwrap();
                    st.seen.push((if req.is_axfr() { "AXFR" } else { "other" }, req.id));
                    (st.serial, st.wrong_axfr_id)
                };
                let id = if wrong { req.id.wrapping_add(1) } else { req.id };
                let soa = rr_at_apex(rtype::SOA, &soa_rdata(serial));
                let ns = rr_at_apex(rtype::NS, b"\x02ns\x07example\x00");
                let resp = answer(id, &req.question, &[soa.clone(), ns, soa]);
                let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&resp);
                let _ = s.write_all(&out);
            }
        }));
        FakePrimary { addr: SocketAddr::from(([127, 0, 0, 1], port)), state, stop, threads }
    }
}

impl Drop for FakePrimary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A check job for the zone; `current` is our version's serial (None: nothing yet).
fn job(primary: SocketAddr, current: Option<(Arc<Snapshot>, u32)>) -> Job {
    Job {
        zone: name(ZONE),
        primaries: vec![Primary { addr: primary, key: None, ixfr: false, ixfr_udp: false, tls: None }],
        current: current.map(|(snap, serial)| {
            (snap, Record { owner: name(ZONE), rtype: rtype::SOA, ttl: 300, rdata: soa_rdata(serial).into() })
        }),
        force_axfr: false,
        limits: Limits::default(),
        timeout: Duration::from_secs(2),
    }
}

/// Our version at `serial`, as a snapshot file in `dir`.
fn snapshot(dir: &std::path::Path, serial: u32) -> Arc<Snapshot> {
    let mut z = Zone::new(&name(ZONE));
    z.insert(&name(ZONE), rtype::SOA, 300, &soa_rdata(serial), SrcPos::default()).unwrap();
    z.insert(&name(ZONE), rtype::NS, 300, b"\x02ns\x07example\x00", SrcPos::default()).unwrap();
    let path = dir.join("ids.snap");
    write_snapshot(&path, &compile(&z).unwrap()).unwrap();
    Arc::new(Snapshot::open(&path).unwrap())
}

#[test]
fn forged_ids_ignored_and_ids_unpredictable() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakePrimary::start(3);
    let ours = snapshot(dir.path(), 5);

    // SOA checks: the forged serial 1003 would be newer than ours (5) and start a transfer;
    // the true 3 is not. Every check must end up to date at 3.
    for i in 0..32 {
        match fetch(&job(fake.addr, Some((ours.clone(), 5)))) {
            Ok(Fetched::UpToDate { their_serial, .. }) => assert_eq!(their_serial, 3, "check {i}"),
            other => panic!("check {i}: expected up to date at 3, got {other:?}"),
        }
    }
    // AXFRs (we have nothing yet): taken whole.
    for i in 0..32 {
        match fetch(&job(fake.addr, None)) {
            Ok(Fetched::New { zone, .. }) => assert_eq!(zone.serial(), Some(3), "AXFR {i}"),
            other => panic!("AXFR {i}: expected the zone, got {other:?}"),
        }
    }
    // An AXFR answered with another ID: refused, nothing taken.
    fake.state.lock().unwrap().wrong_axfr_id = true;
    match fetch(&job(fake.addr, None)) {
        Err(e) => assert!(e.to_string().contains("another ID"), "{e}"),
        Ok(f) => panic!("a transfer answered with another ID was taken: {f:?}"),
    }

    let seen = fake.state.lock().unwrap().seen.clone();
    let kinds = |k: &str| seen.iter().filter(|(kind, _)| *kind == k).count();
    assert_eq!((kinds("SOA"), kinds("AXFR"), seen.len()), (32, 33, 65), "{seen:?}");
    let ids: Vec<u16> = seen.iter().map(|(_, id)| *id).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // 65 uniform draws of 16 bits repeat with probability ~3%; five repeats, practically never.
    assert!(distinct.len() >= 60, "only {} distinct IDs in {}: {ids:04x?}", distinct.len(), ids.len());
    let mut steps: Vec<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    steps.sort_unstable();
    steps.dedup();
    assert!(steps.len() >= 56, "only {} different steps between consecutive IDs: {ids:04x?}", steps.len());
    // Each bit of the ID varies (a clock or a counter leaves the high bits still).
    for bit in 0..16 {
        let ones = ids.iter().filter(|id| *id >> bit & 1 == 1).count();
        assert!((8..=57).contains(&ones), "bit {bit} is set in {ones} of {} IDs: {ids:04x?}", ids.len());
    }
}
