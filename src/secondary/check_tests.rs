//! The check's every path, driven with byte arrays and a clock, no sockets: the primaries'
//! answers are made by our own writers (`xfr`: AXFR, IXFR over TCP and UDP, error
//! responses, TSIG) from the requests the check sends, or by editing them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::wire::rdata::rtype;
use crate::xfr::axfr::Axfr;
use crate::xfr::ixfr::Ixfr;
use crate::xfr::message::{Compressor, MessageWriter, Options};
use crate::xfr::request::parse_request;
use crate::xfr::tsig::{verify_request, Algorithm, Signer};
use crate::zone::SrcPos;

const NOW: u64 = 1_750_000_000;
const TIMEOUT: Duration = Duration::from_secs(4);

fn n(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

fn origin() -> Name {
    n("example.com.")
}

fn soa(serial: u32) -> Vec<u8> {
    let mut v = b"\x02ns\x07example\x03com\x00\x05admin\x07example\x03com\x00".to_vec();
    for x in [serial, 3600, 600, 86400, 300] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn soa_record(serial: u32) -> Record {
    Record { owner: origin(), rtype: rtype::SOA, ttl: 3600, rdata: soa(serial).into() }
}

/// Version `serial` of the zone: `hosts` address records, and one that says its serial.
fn zone(serial: u32, hosts: usize) -> Zone {
    let mut z = Zone::new(&origin());
    let p = SrcPos::default();
    z.insert(&origin(), rtype::SOA, 3600, &soa(serial), p).unwrap();
    z.insert(&origin(), rtype::NS, 3600, b"\x02ns\x07example\x03com\x00", p).unwrap();
    z.insert(&n("ns.example.com."), rtype::A, 3600, &[192, 0, 2, 53], p).unwrap();
    z.insert(&n("version.example.com."), rtype::A, 60, &serial.to_be_bytes(), p).unwrap();
    for i in 0..hosts {
        z.insert(&n(&format!("host{i}.example.com.")), rtype::A, 300, &[198, 51, (i >> 8) as u8, i as u8], p).unwrap();
    }
    z
}

fn records_of(z: &Zone) -> Vec<Record> {
    z.records_canonical().iter().map(|r| r.to_owned()).collect()
}

fn key() -> Key {
    Key::new(&n("xfr."), Algorithm::HmacSha256, b"0123456789abcdef0123456789abcdef")
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 53))
}

fn primary(i: u8) -> Primary {
    Primary { addr: addr(i), key: None, ixfr: true, ixfr_udp: false, tls: None }
}

/// How a test primary answers one request.
enum Reply {
    Messages(Vec<Vec<u8>>),
    /// These messages, then the connection closes.
    ThenClosed(Vec<Vec<u8>>),
    Timeout,
    Io,
}

/// A primary's side: serves `versions` (the last is current) with the history between
/// them (None: no journal), messages of at most `max_len` octets over TCP.
struct Served {
    versions: Vec<Zone>,
    history: Option<Vec<Changeset>>,
    keys: Vec<Key>,
    max_len: usize,
}

impl Served {
    fn new(versions: Vec<Zone>, with_history: bool) -> Served {
        let history = with_history.then(|| versions.windows(2).map(|w| w[0].diff(&w[1])).collect());
        Served { versions, history, keys: vec![key()], max_len: 16384 }
    }

    fn current(&self) -> &Zone {
        self.versions.last().unwrap()
    }

    fn signer(&self, req: &[u8]) -> Option<Signer> {
        verify_request(req, &self.keys, NOW).unwrap().map(|t| Signer::response(&t))
    }

    /// The answer to `req` as our server would give it over `transport`.
    fn answer(&self, transport: Transport, req: &[u8]) -> Vec<Vec<u8>> {
        if let Err(f) = verify_request(req, &self.keys, NOW) {
            let mut buf = vec![0u8; 65535];
            let len = crate::xfr::tsig::write_failure(req, &f, &mut buf, NOW).unwrap();
            return vec![buf[..len].to_vec()];
        }
        let parsed = parse_request(req).unwrap();
        let signer = self.signer(req);
        let current = self.current();
        let soa = soa_record(current.serial().unwrap());
        let mut buf = vec![0u8; 65535];
        let mut out = Vec::new();
        match parsed.qtype {
            rtype::SOA => {
                let mut comp = Compressor::new();
                let reserve = signer.as_ref().map_or(0, |s| s.reserve());
                let mut w = MessageWriter::begin(&mut buf, &parsed.head(), 512, reserve, &mut comp).unwrap();
                assert!(w.push(&soa));
                let len = w.finish(None);
                let len = match signer {
                    Some(mut s) => s.sign(&mut buf, len, NOW).unwrap(),
                    None => len,
                };
                out.push(buf[..len].to_vec());
            }
            rtype::AXFR => {
                let opts = Options { max_len: self.max_len, ..Options::tcp() };
                let mut x = Axfr::new(&parsed, records_of(current), signer, opts).unwrap();
                while let Some(len) = x.next_message(&mut buf, NOW).unwrap() {
                    out.push(buf[..len].to_vec());
                }
            }
            rtype::IXFR => {
                let history = self.history.as_deref();
                let all = || records_of(current);
                if transport == Transport::Udp {
                    let max = parsed.edns_udp_size.map_or(512, usize::from);
                    let mut opts = Options::udp(max);
                    opts.edns_udp_size = parsed.edns_udp_size;
                    let x = Ixfr::new(&parsed, soa, history, all, signer, opts).unwrap();
                    let len = x.udp_message(&mut buf[..max], NOW).unwrap();
                    out.push(buf[..len].to_vec());
                } else {
                    let opts = Options { max_len: self.max_len, ..Options::tcp() };
                    let mut x = Ixfr::new(&parsed, soa, history, all, signer, opts).unwrap();
                    while let Some(len) = x.next_message(&mut buf, NOW).unwrap() {
                        out.push(buf[..len].to_vec());
                    }
                }
            }
            t => panic!("unexpected query type {t}"),
        }
        out
    }
}

/// An error response with `rcode` to `req`, signed when it was.
fn error_answer(s: &Served, req: &[u8], rcode: u8) -> Vec<Vec<u8>> {
    let parsed = parse_request(req).unwrap();
    let mut signer = s.signer(req);
    let mut buf = vec![0u8; 65535];
    let len = crate::xfr::write_error(&parsed, rcode, signer.as_mut(), &mut buf, NOW).unwrap();
    vec![buf[..len].to_vec()]
}

/// What a check sent, in order: (to, transport, query).
type Sent = Vec<(SocketAddr, Transport, Query)>;

/// Runs `check` to its end, each request answered by `respond`, our version being `ours`
/// (for applying IXFR changes). The clock moves 10 ms a step.
fn drive(
    mut check: Check,
    ours: Option<&Zone>,
    mut respond: impl FnMut(SocketAddr, Transport, Query, &[u8]) -> Reply,
) -> (Result<Outcome, CheckError>, Sent) {
    let t0 = Instant::now();
    let mut step = 0u32;
    let mut clock = || {
        step += 1;
        t0 + Duration::from_millis(10) * step
    };
    let mut sent = Vec::new();
    let mut queue: std::collections::VecDeque<Vec<u8>> = Default::default();
    // After the queued messages: time out, or the connection closes.
    let mut then_closed = false;
    let mut action = check.next(Input::Start, clock(), NOW);
    for _ in 0..10_000 {
        action = match action {
            Action::Send { to, transport, query, bytes, timeout } => {
                assert_eq!(timeout, if transport == Transport::Udp { TIMEOUT / 2 } else { TIMEOUT });
                sent.push((to, transport, query));
                queue.clear();
                then_closed = false;
                match respond(to, transport, query, &bytes) {
                    Reply::Messages(m) => queue.extend(m),
                    Reply::ThenClosed(m) => {
                        queue.extend(m);
                        then_closed = true;
                    }
                    Reply::Timeout => {}
                    Reply::Io => {
                        action = check.next(Input::Io("connection refused".into()), clock(), NOW);
                        continue;
                    }
                }
                next_input(&mut check, &mut queue, then_closed, clock())
            }
            Action::Receive => next_input(&mut check, &mut queue, then_closed, clock()),
            Action::Apply => {
                let ours = ours.expect("changes only with a version").clone();
                let r = apply(ours, check.changes());
                check.next(Input::Applied(r), clock(), NOW)
            }
            Action::Done(r) => return (r, sent),
        };
    }
    panic!("the check did not end");
}

fn next_input(
    check: &mut Check,
    queue: &mut std::collections::VecDeque<Vec<u8>>,
    closed: bool,
    now: Instant,
) -> Action {
    match queue.pop_front() {
        Some(m) => check.next(Input::Message(&m), now, NOW),
        None if closed => check.next(Input::Closed, now, NOW),
        None => check.next(Input::Timeout, now, NOW),
    }
}

fn check(primaries: Vec<Primary>, ours: Option<&Zone>) -> Check {
    let mut id = 0x1000u16;
    Check::new(origin(), primaries, ours.map(|z| soa_record(z.serial().unwrap())), false, Limits::default(), TIMEOUT)
        .with_ids(move || {
            id = id.wrapping_add(1);
            id
        })
}

/// The served answers, as a closure for [`drive`].
fn serve(s: &Served) -> impl FnMut(SocketAddr, Transport, Query, &[u8]) -> Reply + '_ {
    move |_, t, _, req| Reply::Messages(s.answer(t, req))
}

fn same_records(a: &Zone, b: &Zone) {
    assert_eq!(records_of(a), records_of(b));
}

use Query::{Axfr as AXFR, Ixfr as IXFR, Soa as SOA};
use Transport::{Tcp, Udp};

#[test]
fn up_to_date_and_older_serials_end_the_check() {
    for (ours, theirs) in [(5, 5), (5, 4), (1, u32::MAX - 10), (0x8000_0001, 1)] {
        let z = zone(ours, 3);
        let s = Served::new(vec![zone(theirs, 3)], false);
        let (r, sent) = drive(check(vec![primary(1)], Some(&z)), Some(&z), serve(&s));
        match r.unwrap() {
            Outcome::UpToDate { from, their_serial } => assert_eq!((from, their_serial), (addr(1), theirs)),
            o => panic!("ours {ours}, theirs {theirs}: {o:?}"),
        }
        assert_eq!(sent, vec![(addr(1), Udp, SOA)], "ours {ours}, theirs {theirs}");
    }
}

#[test]
fn newer_serial_comes_by_ixfr_over_tcp() {
    let versions = vec![zone(1, 50), zone(2, 60), zone(3, 40)];
    let s = Served::new(versions.clone(), true);
    let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), serve(&s));
    let Outcome::Applied { zone, changes, report } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[2]);
    assert_eq!(changes.len(), 2);
    assert_eq!((report.how, report.transport, &report.fallback, &report.udp_fallback), (How::Ixfr, Tcp, &None, &None));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, IXFR)]);
    assert!(report.to_string().starts_with("IXFR from 127.0.0.1:53: "), "{report}");
}

#[test]
fn nothing_yet_retransfer_and_ixfr_off_take_axfr() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    // Nothing yet: AXFR straight away.
    let (r, sent) = drive(check(vec![primary(1)], None), None, serve(&s));
    let Outcome::Whole { zone, report } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert_eq!((report.how, sent), (How::Axfr, vec![(addr(1), Tcp, AXFR)]));
    // A retransfer: AXFR of the same serial, taken.
    let ours = versions[1].clone();
    let mut c = check(vec![primary(1)], Some(&ours));
    c.force_axfr = true;
    let (r, sent) = drive(c, Some(&ours), serve(&s));
    assert!(matches!(r.unwrap(), Outcome::Whole { .. }));
    assert_eq!(sent, vec![(addr(1), Tcp, AXFR)]);
    // IXFR turned off: SOA query, then AXFR.
    let p = Primary { ixfr: false, ..primary(1) };
    let (r, sent) = drive(check(vec![p], Some(&versions[0])), Some(&versions[0]), serve(&s));
    assert!(matches!(r.unwrap(), Outcome::Whole { report: Report { how: How::Axfr, .. }, .. }));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, AXFR)]);
}

#[test]
fn ixfr_refused_or_notimp_or_formerr_becomes_axfr() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    for rcode in [5u8, 4, 1] {
        let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, q, req| {
            Reply::Messages(if q == IXFR { error_answer(&s, req, rcode) } else { s.answer(t, req) })
        });
        let Outcome::Whole { zone, report } = r.unwrap() else { panic!() };
        same_records(&zone, &versions[1]);
        assert_eq!(report.how, How::Axfr);
        assert_eq!(report.fallback, Some(Fallback::IxfrFailed(XfrInError::Rcode(rcode))));
        assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, IXFR), (addr(1), Tcp, AXFR)]);
    }
    // SERVFAIL is not "no IXFR here": the primary fails.
    let (r, _) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, q, req| {
        Reply::Messages(if q == IXFR { error_answer(&s, req, 2) } else { s.answer(t, req) })
    });
    assert_eq!(r.unwrap_err().0, vec![(addr(1), Failure::Ixfr(XfrInError::Rcode(2)))]);
}

#[test]
fn ixfr_answered_with_the_whole_zone_is_taken_like_axfr() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), false);
    let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), serve(&s));
    let Outcome::Whole { zone, report } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert_eq!((report.how, report.fallback.clone()), (How::AxfrStyleIxfr, Some(Fallback::WholeZone)));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, IXFR)]);
    assert!(report.to_string().contains("AXFR-style IXFR from"), "{report}");
}

#[test]
fn ixfr_that_does_not_apply_becomes_axfr() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    // Our copy lacks a record the change removes.
    let mut ours = versions[0].clone();
    let gone = versions[0].diff(&versions[1]).removed[0].clone();
    assert!(ours.remove(&gone.owner, gone.rtype, &gone.rdata));
    let (r, sent) = drive(check(vec![primary(1)], Some(&ours)), Some(&ours), serve(&s));
    let Outcome::Whole { zone, report } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert!(matches!(report.fallback, Some(Fallback::DidNotApply(XfrInError::Invalid(_)))), "{report}");
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, IXFR), (addr(1), Tcp, AXFR)]);
}

fn udp_primary(i: u8) -> Primary {
    Primary { ixfr_udp: true, ..primary(i) }
}

#[test]
fn ixfr_over_udp_that_fits_needs_no_tcp() {
    let versions = vec![zone(1, 20), zone(2, 21)];
    let s = Served::new(versions.clone(), true);
    let (r, sent) = drive(check(vec![udp_primary(1)], Some(&versions[0])), Some(&versions[0]), serve(&s));
    let Outcome::Applied { zone, report, .. } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert_eq!((report.transport, report.messages, &report.udp_fallback), (Udp, 1, &None));
    assert_eq!(sent, vec![(addr(1), Udp, IXFR)], "the UDP IXFR is the serial check too");
    assert!(report.to_string().starts_with("IXFR over UDP from"), "{report}");
    // Up to date: the lone SOA over UDP ends the check.
    let (r, sent) = drive(check(vec![udp_primary(1)], Some(&versions[1])), Some(&versions[1]), serve(&s));
    assert!(matches!(r.unwrap(), Outcome::UpToDate { their_serial: 2, .. }));
    assert_eq!(sent, vec![(addr(1), Udp, IXFR)]);
    // Signed both ways.
    let p = Primary { key: Some(key()), ..udp_primary(1) };
    let (r, sent) = drive(check(vec![p], Some(&versions[0])), Some(&versions[0]), serve(&s));
    assert!(matches!(r.unwrap(), Outcome::Applied { report: Report { transport: Udp, .. }, .. }));
    assert_eq!(sent, vec![(addr(1), Udp, IXFR)]);
}

#[test]
fn ixfr_over_udp_too_big_goes_to_tcp() {
    // A change of 3,000 records does not fit in 1,232 octets: our primary sends its SOA
    // alone (RFC 1995 §2).
    let versions = vec![zone(1, 10), zone(2, 3000)];
    let s = Served::new(versions.clone(), true);
    let (r, sent) = drive(check(vec![udp_primary(1)], Some(&versions[0])), Some(&versions[0]), serve(&s));
    let Outcome::Applied { zone, report, .. } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert_eq!(report.transport, Tcp);
    assert_eq!(report.udp_fallback, Some(UdpFallback::Refused(XfrInError::UseTcp(2))));
    assert_eq!(sent, vec![(addr(1), Udp, IXFR), (addr(1), Tcp, IXFR)]);
}

#[test]
fn ixfr_over_udp_truncated_refused_or_unanswered_goes_to_tcp() {
    let versions = vec![zone(1, 20), zone(2, 21)];
    let s = Served::new(versions.clone(), true);
    type Udp = fn(&Served, &[u8]) -> Reply;
    let cases: [(Udp, UdpFallback); 5] = [
        // TC set (a server that truncates rather than sending its SOA alone).
        (
            |s, req| {
                let mut m = s.answer(Transport::Udp, req);
                m[0][2] |= 0x02;
                Reply::Messages(m)
            },
            UdpFallback::Truncated,
        ),
        (|s, req| Reply::Messages(error_answer(s, req, 5)), UdpFallback::Refused(XfrInError::Rcode(5))),
        (|s, req| Reply::Messages(error_answer(s, req, 4)), UdpFallback::Refused(XfrInError::Rcode(4))),
        (|s, req| Reply::Messages(error_answer(s, req, 1)), UdpFallback::Refused(XfrInError::Rcode(1))),
        (|_, _| Reply::Timeout, UdpFallback::NoAnswer),
    ];
    for (udp, want) in cases {
        let (r, sent) = drive(check(vec![udp_primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, _, req| {
            if t == Transport::Udp {
                udp(&s, req)
            } else {
                Reply::Messages(s.answer(t, req))
            }
        });
        let Outcome::Applied { zone, report, .. } = r.unwrap() else { panic!("{want}") };
        same_records(&zone, &versions[1]);
        assert_eq!((report.transport, report.udp_fallback.as_ref()), (Tcp, Some(&want)));
        assert_eq!(sent, vec![(addr(1), Transport::Udp, IXFR), (addr(1), Tcp, IXFR)], "{want}");
    }
}

#[test]
fn stray_datagrams_are_ignored() {
    let versions = vec![zone(1, 20), zone(2, 21)];
    let s = Served::new(versions.clone(), true);
    for p in [primary(1), udp_primary(1)] {
        let (r, sent) = drive(check(vec![p], Some(&versions[0])), Some(&versions[0]), |_, t, _, req| {
            let mut m = s.answer(t, req);
            if t == Udp {
                // Another ID, then an empty datagram, then the answer.
                let mut other = m[0].clone();
                other[0] ^= 0xff;
                m.insert(0, Vec::new());
                m.insert(0, other);
            }
            Reply::Messages(m)
        });
        assert!(matches!(r.unwrap(), Outcome::Applied { .. }));
        assert_eq!(sent.len(), if sent[0].2 == SOA { 2 } else { 1 });
    }
}

#[test]
fn soa_query_truncated_is_asked_over_tcp_and_retried_once_over_udp() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, q, req| {
        let mut m = s.answer(t, req);
        if q == SOA && t == Udp {
            m[0][2] |= 0x02;
        }
        Reply::Messages(m)
    });
    assert!(matches!(r.unwrap(), Outcome::Applied { .. }));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Tcp, SOA), (addr(1), Tcp, IXFR)]);
    // The first UDP query lost: sent again.
    let mut first = true;
    let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, _, req| {
        if std::mem::take(&mut first) {
            return Reply::Timeout;
        }
        Reply::Messages(s.answer(t, req))
    });
    assert!(matches!(r.unwrap(), Outcome::Applied { .. }));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(1), Udp, SOA), (addr(1), Tcp, IXFR)]);
}

#[test]
fn a_failing_primary_hands_over_to_the_next() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    // Primary 1 does not answer (twice); primary 2 refuses connections; primary 3 answers.
    let (r, sent) = drive(
        check(vec![primary(1), primary(2), primary(3)], Some(&versions[0])),
        Some(&versions[0]),
        |to, t, q, req| match (to, q) {
            (a, _) if a == addr(1) => Reply::Timeout,
            (a, AXFR | IXFR) if a == addr(2) => Reply::Io,
            _ => Reply::Messages(s.answer(t, req)),
        },
    );
    let Outcome::Applied { report, .. } = r.unwrap() else { panic!() };
    assert_eq!(report.from, addr(3));
    assert_eq!(
        sent,
        vec![
            (addr(1), Udp, SOA),
            (addr(1), Udp, SOA),
            (addr(2), Udp, SOA),
            (addr(2), Tcp, IXFR),
            (addr(3), Udp, SOA),
            (addr(3), Tcp, IXFR)
        ]
    );
    // All fail: each is named with its failure, in order.
    let (r, _) = drive(check(vec![primary(1), primary(2)], Some(&versions[0])), Some(&versions[0]), |to, t, q, req| {
        match (to, q) {
            (a, _) if a == addr(1) => Reply::Timeout,
            (_, IXFR) => Reply::ThenClosed(Vec::new()),
            _ => Reply::Messages(s.answer(t, req)),
        }
    });
    let e = r.unwrap_err();
    assert_eq!(
        e.0,
        vec![
            (addr(1), Failure::Timeout { query: SOA, timeout: TIMEOUT }),
            (addr(2), Failure::Ixfr(XfrInError::Incomplete)),
        ]
    );
    assert_eq!(
        e.to_string(),
        "127.0.0.1:53: SOA query: no answer within 4s; 127.0.0.2:53: IXFR: transfer cut off before its closing SOA"
    );
    assert_eq!(CheckError(Vec::new()).to_string(), "no primaries");
}

#[test]
fn tsig_failures_fail_the_primary() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    // The primary knows the key by another secret: it answers BADSIG.
    let mut wrong = Served::new(versions.clone(), true);
    wrong.keys = vec![Key::new(&n("xfr."), Algorithm::HmacSha256, b"another secret, not ours.......")];
    let good = Served::new(versions.clone(), true);
    let p = |i| Primary { key: Some(key()), ..primary(i) };
    let (r, sent) = drive(check(vec![p(1), p(2)], Some(&versions[0])), Some(&versions[0]), |to, t, _, req| {
        Reply::Messages(if to == addr(1) { wrong.answer(t, req) } else { good.answer(t, req) })
    });
    let Outcome::Applied { report, .. } = r.unwrap() else { panic!() };
    assert_eq!(report.from, addr(2));
    assert_eq!(sent, vec![(addr(1), Udp, SOA), (addr(2), Udp, SOA), (addr(2), Tcp, IXFR)]);
    // Over UDP too (no TCP retry), and an unsigned answer to a signed request.
    let pu = Primary { key: Some(key()), ..udp_primary(1) };
    let (r, sent) = drive(check(vec![pu], Some(&versions[0])), Some(&versions[0]), |_, t, _, req| {
        Reply::Messages(wrong.answer(t, req))
    });
    let e = r.unwrap_err();
    assert!(e.0[0].1.is_tsig(), "{e}");
    assert!(e.to_string().contains("IXFR: TSIG: the primary says BADSIG"), "{e}");
    assert_eq!(sent, vec![(addr(1), Udp, IXFR)]);
    let unsigned = Served { keys: Vec::new(), ..Served::new(versions.clone(), true) };
    let (r, _) = drive(check(vec![p(1)], Some(&versions[0])), Some(&versions[0]), |_, t, _, req| {
        // The server does not know the key: it answers unsigned, as if asked unsigned.
        let mut stripped = req.to_vec();
        let tsig = crate::xfr::tsig::locate(req).unwrap().unwrap();
        stripped.truncate(tsig.start);
        stripped[11] -= 1;
        Reply::Messages(unsigned.answer(t, &stripped))
    });
    let e = r.unwrap_err();
    assert!(matches!(&e.0[0].1, Failure::Soa(XfrInError::Tsig(_))), "{e}");
}

#[test]
fn bad_soa_answers_fail_the_primary() {
    let versions = vec![zone(1, 5), zone(2, 6)];
    let s = Served::new(versions.clone(), true);
    type Edit = fn(&mut Vec<u8>);
    let edits: [(Edit, &str); 4] = [
        // The SOA's rdata cut to 10 octets (RDLENGTH fixed to match): its names broken.
        (
            |m| {
                let rdlen_at = m.len() - soa(2).len() - 2;
                m.truncate(rdlen_at + 2 + 10);
                m[rdlen_at..rdlen_at + 2].copy_from_slice(&10u16.to_be_bytes());
            },
            "SOA query: malformed response: ",
        ),
        (|m| m[2] &= !0x04, "not authoritative"),
        // The SOA in the authority section, none in the answer.
        (
            |m| {
                m[7] = 0;
                m[9] = 1;
            },
            "no SOA in the answer",
        ),
        (|m| m[0] ^= 1, "no answer within"),
    ];
    for (edit, want) in edits {
        let (r, sent) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, q, req| {
            let mut m = s.answer(t, req);
            if q == SOA {
                edit(&mut m[0]);
            }
            Reply::Messages(m)
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains(want), "{want}: {e}");
        assert!(sent.iter().all(|s| s.2 == SOA), "{want}: nothing transferred after a bad SOA answer");
    }
}

#[test]
fn a_whole_zone_not_newer_or_with_errors_is_refused() {
    // The SOA query says 3, the AXFR brings 1: refused.
    let ours = zone(2, 5);
    let old = Served::new(vec![zone(1, 5)], false);
    let new = Served::new(vec![zone(3, 5)], false);
    let p = Primary { ixfr: false, ..primary(1) };
    let (r, _) = drive(check(vec![p.clone()], Some(&ours)), Some(&ours), |_, t, q, req| {
        Reply::Messages(if q == SOA { new.answer(t, req) } else { old.answer(t, req) })
    });
    assert_eq!(r.unwrap_err().0, vec![(addr(1), Failure::NotNewer { theirs: 1, ours: 2 })]);
    // A zone with a CNAME beside other data is not served.
    let mut broken = zone(3, 5);
    broken
        .insert(&n("host1.example.com."), rtype::CNAME, 300, b"\x02ns\x07example\x03com\x00", SrcPos::default())
        .unwrap();
    let bad = Served::new(vec![broken], false);
    let (r, _) = drive(check(vec![p], Some(&ours)), Some(&ours), serve(&bad));
    let e = r.unwrap_err();
    assert!(matches!(&e.0[0].1, Failure::Axfr(XfrInError::Invalid(m)) if m.contains("errors")), "{e}");
}

#[test]
fn axfr_cut_off_or_silent_after_a_failed_ixfr_names_both() {
    let versions = vec![zone(1, 500), zone(2, 600)];
    let mut s = Served::new(versions.clone(), true);
    s.max_len = 1024;
    for cut in [true, false] {
        let (r, _) = drive(check(vec![primary(1)], Some(&versions[0])), Some(&versions[0]), |_, t, q, req| match q {
            IXFR => Reply::Messages(error_answer(&s, req, 5)),
            AXFR if cut => Reply::ThenClosed(s.answer(t, req)[..2].to_vec()),
            AXFR => Reply::Messages(s.answer(t, req)[..2].to_vec()),
            _ => Reply::Messages(s.answer(t, req)),
        });
        let e = r.unwrap_err();
        let Failure::AfterFallback { first, then } = &e.0[0].1 else { panic!("{e}") };
        assert_eq!(first, &Fallback::IxfrFailed(XfrInError::Rcode(5)));
        assert_eq!(matches!(then, XfrInError::Incomplete), cut, "{e}");
        assert!(e.to_string().contains("IXFR failed: the primary answered REFUSED; then AXFR: "), "{e}");
    }
}

fn tls_primary(i: u8) -> Primary {
    Primary { tls: Some(TlsAuth::default()), ..primary(i) }
}

/// A primary reached over TLS is asked everything over TLS: the SOA query (never UDP, not
/// even with `ixfr-udp`), IXFR, the AXFR fallback, the first AXFR; the report says TLS. A
/// plain primary after it gets the usual UDP SOA query.
#[test]
fn a_tls_primary_is_asked_nothing_in_the_clear() {
    use Transport::Tls;
    let versions = vec![zone(1, 20), zone(2, 21)];
    let s = Served::new(versions.clone(), true);
    let (r, sent) = drive(check(vec![tls_primary(1)], Some(&versions[1])), Some(&versions[1]), serve(&s));
    assert!(matches!(r.unwrap(), Outcome::UpToDate { their_serial: 2, .. }));
    assert_eq!(sent, vec![(addr(1), Tls, SOA)]);
    let p = Primary { ixfr_udp: true, ..tls_primary(1) };
    let (r, sent) = drive(check(vec![p], Some(&versions[0])), Some(&versions[0]), serve(&s));
    let Outcome::Applied { zone, report, .. } = r.unwrap() else { panic!() };
    same_records(&zone, &versions[1]);
    assert_eq!(report.transport, Tls);
    assert!(report.to_string().starts_with("IXFR over TLS from 127.0.0.1:53: "), "{report}");
    assert_eq!(sent, vec![(addr(1), Tls, SOA), (addr(1), Tls, IXFR)]);
    // Nothing yet: AXFR over TLS.
    let (r, sent) = drive(check(vec![tls_primary(1)], None), None, serve(&s));
    assert!(matches!(r.unwrap(), Outcome::Whole { report: Report { how: How::Axfr, transport: Tls, .. }, .. }));
    assert_eq!(sent, vec![(addr(1), Tls, AXFR)]);
    // IXFR refused: AXFR, over TLS still.
    let refuse_ixfr = |_: SocketAddr, t: Transport, q: Query, req: &[u8]| match q {
        IXFR => Reply::Messages(error_answer(&s, req, 5)),
        _ => Reply::Messages(s.answer(t, req)),
    };
    let (r, sent) = drive(check(vec![tls_primary(1)], Some(&versions[0])), Some(&versions[0]), refuse_ixfr);
    assert!(matches!(r.unwrap(), Outcome::Whole { report: Report { transport: Tls, .. }, .. }));
    assert_eq!(sent, vec![(addr(1), Tls, SOA), (addr(1), Tls, IXFR), (addr(1), Tls, AXFR)]);
    // The handshake fails (a wrong CA, a wrong pin): the next primary, in the clear.
    let fail_tls = |_: SocketAddr, t: Transport, _: Query, req: &[u8]| match t {
        Tls => Reply::Io,
        _ => Reply::Messages(s.answer(t, req)),
    };
    let (r, sent) = drive(check(vec![tls_primary(1), primary(2)], Some(&versions[0])), Some(&versions[0]), fail_tls);
    let Outcome::Applied { report, .. } = r.unwrap() else { panic!() };
    assert_eq!((report.from, report.transport), (addr(2), Tcp));
    assert_eq!(sent, vec![(addr(1), Tls, SOA), (addr(2), Udp, SOA), (addr(2), Tcp, IXFR)]);
    // A TLS primary that does not answer the SOA query is timed out once (no retry: that
    // is for UDP's lost datagrams).
    let (r, sent) =
        drive(check(vec![tls_primary(1)], Some(&versions[0])), Some(&versions[0]), |_, _, _, _| Reply::Timeout);
    assert!(r.is_err());
    assert_eq!(sent, vec![(addr(1), Tls, SOA)]);
}
