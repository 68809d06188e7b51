//! Transfers in, read back from what our own transfer writers (`xfr`) send, signed and
//! unsigned, and from broken streams made by editing them: a missing closing SOA,
//! mismatched serials, a name outside the zone, a bad signature, a message cut short.

use super::xfrin::*;
use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::xfr::axfr::Axfr;
use crate::xfr::ixfr::Ixfr;
use crate::xfr::message::Options;
use crate::xfr::request::parse_request;
use crate::xfr::tsig::{verify_request, Algorithm, Key, Signer};
use crate::zone::{soa_serial, Changeset, Record, SrcPos, Zone};

const NOW: u64 = 1_750_000_000;

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

fn zone(serial: u32, hosts: usize) -> Zone {
    let mut z = Zone::new(&origin());
    let p = SrcPos::default();
    z.insert(&origin(), rtype::SOA, 3600, &soa(serial), p).unwrap();
    z.insert(&origin(), rtype::NS, 3600, b"\x02ns\x07example\x03com\x00", p).unwrap();
    z.insert(&origin(), rtype::MX, 3600, b"\x00\x0a\x04mail\x07example\x03com\x00", p).unwrap();
    z.insert(&n("ns.example.com."), rtype::A, 3600, &[192, 0, 2, 53], p).unwrap();
    for i in 0..hosts {
        z.insert(&n(&format!("host{i}.example.com.")), rtype::A, 300, &[198, 51, (i >> 8) as u8, i as u8], p).unwrap();
    }
    z
}

fn records_of(z: &Zone) -> Vec<Record> {
    z.records_canonical().iter().map(|r| r.to_owned()).collect()
}

fn soa_record(z: &Zone) -> Record {
    Record { owner: origin(), rtype: rtype::SOA, ttl: 3600, rdata: soa(z.serial().unwrap()).into() }
}

fn key() -> Key {
    Key::new(&n("xfr."), Algorithm::HmacSha256, b"0123456789abcdef0123456789abcdef")
}

/// The primary's side: answers `req` with our writers (signed when the request was).
fn primary(req: &Request, zones: &[Zone], history: Option<&[Changeset]>, max_len: usize) -> Vec<Vec<u8>> {
    let parsed = parse_request(&req.bytes).unwrap();
    let signer = verify_request(&req.bytes, &[key()], NOW).unwrap().map(|t| Signer::response(&t));
    let current = zones.last().unwrap();
    let opts = Options { max_len, ..Options::tcp() };
    let mut buf = vec![0u8; max_len];
    let mut out = Vec::new();
    if parsed.qtype == rtype::AXFR {
        let mut x = Axfr::new(&parsed, records_of(current), signer, opts).unwrap();
        while let Some(len) = x.next_message(&mut buf, NOW).unwrap() {
            out.push(buf[..len].to_vec());
        }
    } else {
        let mut x = Ixfr::new(&parsed, soa_record(current), history, || records_of(current), signer, opts).unwrap();
        while let Some(len) = x.next_message(&mut buf, NOW).unwrap() {
            out.push(buf[..len].to_vec());
        }
    }
    out
}

fn run(req: Request, ours: Option<u32>, msgs: &[Vec<u8>]) -> Result<Transferred, XfrInError> {
    let mut inc = Incoming::new(req, ours, Limits::default());
    for (i, m) in msgs.iter().enumerate() {
        if inc.feed(m, NOW)? {
            assert_eq!(i + 1, msgs.len(), "complete before the last message");
        }
    }
    inc.finish()
}

fn same_records(a: &Zone, b: &Zone) {
    let (ra, rb) = (records_of(a), records_of(b));
    assert_eq!(ra.len(), rb.len());
    assert_eq!(ra, rb);
}

#[test]
fn axfr_in_plain_and_signed() {
    let z = zone(7, 2000);
    for k in [None, Some(key())] {
        let req = Request::new(&origin(), &Kind::Axfr, 0x1234, k.as_ref(), NOW);
        let msgs = primary(&req, std::slice::from_ref(&z), None, 16384);
        assert!(msgs.len() > 2, "{} messages", msgs.len());
        match run(req, None, &msgs).unwrap() {
            Transferred::Full { zone } => same_records(&zone, &z),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn ixfr_in_incremental_up_to_date_and_full() {
    let zones = [zone(1, 50), zone(2, 60), zone(3, 40)];
    let history = [zones[0].diff(&zones[1]), zones[1].diff(&zones[2])];
    for k in [None, Some(key())] {
        // Two changesets from serial 1.
        let req = Request::new(&origin(), &Kind::Ixfr(soa_record(&zones[0])), 7, k.as_ref(), NOW);
        let msgs = primary(&req, &zones, Some(&history), 512);
        let Transferred::Incremental { changesets } = run(req, Some(1), &msgs).unwrap() else { panic!() };
        assert_eq!(changesets.len(), 2);
        let mut z = zones[0].clone();
        apply_strict(&mut z, &changesets).unwrap();
        same_records(&z, &zones[2]);
        // Applied to the wrong version: refused, the zone untouched.
        let mut wrong = zones[1].clone();
        assert!(apply_strict(&mut wrong, &changesets).is_err());

        // Current.
        let req = Request::new(&origin(), &Kind::Ixfr(soa_record(&zones[2])), 8, k.as_ref(), NOW);
        let msgs = primary(&req, &zones, Some(&history), 512);
        assert_eq!(msgs.len(), 1);
        assert!(matches!(run(req, Some(3), &msgs).unwrap(), Transferred::UpToDate { .. }));

        // History missing: the whole zone.
        let req = Request::new(&origin(), &Kind::Ixfr(soa_record(&zone(0, 0))), 9, k.as_ref(), NOW);
        let msgs = primary(&req, &zones, Some(&history), 512);
        let Transferred::Full { zone } = run(req, Some(0), &msgs).unwrap() else { panic!() };
        same_records(&zone, &zones[2]);
    }
}

#[test]
fn strict_apply_refuses_what_does_not_fit() {
    let zones = [zone(1, 10), zone(2, 12)];
    let mut cs = zones[0].diff(&zones[1]);
    let mut z = zones[0].clone();
    // Adds a record that is there already.
    cs.added.push(Record {
        owner: n("host0.example.com."),
        rtype: rtype::A,
        ttl: 300,
        rdata: vec![198, 51, 0, 0].into(),
    });
    assert!(apply_strict(&mut z, std::slice::from_ref(&cs)).unwrap_err().to_string().contains("already has"));
    // Removes one that is not.
    let mut cs = zones[0].diff(&zones[1]);
    cs.removed.push(Record {
        owner: n("nothere.example.com."),
        rtype: rtype::A,
        ttl: 300,
        rdata: vec![1, 2, 3, 4].into(),
    });
    let mut z = zones[0].clone();
    assert!(apply_strict(&mut z, &[cs]).unwrap_err().to_string().contains("does not have"));
}

/// Rewrites the answer records of an unsigned message with `f`, re-encoding it.
fn rewrite(msg: &[u8], f: impl Fn(&mut Vec<Record>)) -> Vec<u8> {
    let w = crate::xfr::request::walk(msg).unwrap();
    let mut recs: Vec<Record> = w
        .records
        .iter()
        .filter(|r| r.section == 1)
        .map(|r| Record {
            owner: r.owner.clone(),
            rtype: r.rtype,
            ttl: r.ttl,
            rdata: crate::wire::rdata::decompress(r.rtype, msg, r.rdata.start, r.rdata.len()).unwrap().into(),
        })
        .collect();
    f(&mut recs);
    let mut out = msg[..w.question.end].to_vec();
    out[6..8].copy_from_slice(&(recs.len() as u16).to_be_bytes());
    out[8..12].fill(0);
    for r in recs {
        out.extend_from_slice(r.owner.as_wire());
        out.extend_from_slice(&r.rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&r.rdata);
    }
    out
}

fn one_message_axfr(z: &Zone) -> (Request, Vec<u8>) {
    let req = Request::new(&origin(), &Kind::Axfr, 42, None, NOW);
    let msgs = primary(&req, std::slice::from_ref(z), None, 65535);
    assert_eq!(msgs.len(), 1);
    (req, msgs.into_iter().next().unwrap())
}

#[test]
fn broken_transfers_are_refused() {
    let z = zone(5, 20);
    let (req0, good) = one_message_axfr(&z);
    assert!(run(req0, None, std::slice::from_ref(&good)).is_ok());
    let again = || Request::new(&origin(), &Kind::Axfr, 42, None, NOW);
    let err = |m: Vec<u8>| run(again(), None, &[m]).unwrap_err().to_string();

    // No closing SOA: the stream ends incomplete.
    let e = err(rewrite(&good, |r| {
        r.pop();
    }));
    assert!(e.contains("cut off"), "{e}");
    // A closing SOA of another serial.
    let e = err(rewrite(&good, |r| {
        let last = r.last_mut().unwrap();
        last.rdata = soa(6).into();
    }));
    assert!(e.contains("serial 6 inside a transfer of serial 5"), "{e}");
    // A name outside the zone.
    let e = err(rewrite(&good, |r| {
        r[3].owner = n("evil.example.net.");
    }));
    assert!(e.contains("outside the zone"), "{e}");
    // Not starting with the SOA.
    let e = err(rewrite(&good, |r| r.swap(0, 1)));
    assert!(e.contains("does not start with"), "{e}");
    // Records after the closing SOA.
    let e = err(rewrite(&good, |r| {
        let extra = r[2].clone();
        r.push(extra);
    }));
    assert!(e.contains("after the closing SOA"), "{e}");
    // A message cut short.
    let e = err(good[..good.len() - 7].to_vec());
    assert!(e.contains("malformed"), "{e}");
    // Another ID.
    let mut other = good.clone();
    other[1] ^= 1;
    assert!(err(other).contains("another ID"));
    // An error rcode: IXFR falls back to AXFR on REFUSED/NOTIMP/FORMERR.
    let mut refused = good[..12].to_vec();
    refused[3] = 5;
    refused[4..12].fill(0);
    let e = run(again(), None, &[refused]).unwrap_err();
    assert!(e.try_axfr() && e.to_string().contains("REFUSED"), "{e}");
}

#[test]
fn ixfr_with_mismatched_serials_is_refused() {
    let zones = [zone(1, 5), zone(2, 6), zone(3, 7)];
    let history = [zones[0].diff(&zones[1]), zones[1].diff(&zones[2])];
    let req = Request::new(&origin(), &Kind::Ixfr(soa_record(&zones[0])), 3, None, NOW);
    let msgs = primary(&req, &zones, Some(&history), 65535);
    assert_eq!(msgs.len(), 1);
    // The second changeset claims to start at serial 9.
    let bad = rewrite(&msgs[0], |r| {
        let mut seen = 0;
        for rec in r.iter_mut().filter(|x| x.rtype == rtype::SOA) {
            seen += 1;
            if seen == 4 {
                rec.rdata = soa(9).into();
            }
        }
    });
    let again = || Request::new(&origin(), &Kind::Ixfr(soa_record(&zones[0])), 3, None, NOW);
    let e = run(again(), Some(1), &[bad]).unwrap_err();
    assert!(e.to_string().contains("starts at serial 9"), "{e}");
    // Asked from serial 1, answered from serial 2.
    let e = run(again(), Some(2), std::slice::from_ref(&msgs[0])).unwrap_err();
    assert!(e.to_string().contains("not ours"), "{e}");
    assert!(e.try_axfr());
}

#[test]
fn bad_signatures_are_refused() {
    let z = zone(5, 300);
    let k = key();
    let req = Request::new(&origin(), &Kind::Axfr, 77, Some(&k), NOW);
    let msgs = primary(&req, std::slice::from_ref(&z), None, 1024);
    assert!(msgs.len() > 3);
    let again = || Request::new(&origin(), &Kind::Axfr, 77, Some(&k), NOW);
    assert!(run(again(), None, &msgs).is_ok());
    // One octet of a middle message changed.
    let mut bad = msgs.clone();
    let mid = bad.len() / 2;
    let at = bad[mid].len() / 2;
    bad[mid][at] ^= 0x20;
    let e = run(again(), None, &bad).unwrap_err();
    assert!(matches!(e, XfrInError::Tsig(_) | XfrInError::Malformed(_)), "{e}");
    // Unsigned responses to a signed request.
    let plain_req = Request::new(&origin(), &Kind::Axfr, 77, None, NOW);
    let plain = primary(&plain_req, std::slice::from_ref(&z), None, 1024);
    let e = run(again(), None, &plain).unwrap_err();
    assert!(matches!(e, XfrInError::Tsig(_)), "{e}");
    // Signed with another key.
    let other = Key::new(&n("xfr."), Algorithm::HmacSha256, b"another secret, same key name..");
    let e = run(Request::new(&origin(), &Kind::Axfr, 77, Some(&other), NOW), None, &msgs).unwrap_err();
    assert!(matches!(e, XfrInError::Tsig(_)), "{e}");
    // Too old.
    let e = run(again(), None, &msgs).and_then(|_| {
        let mut inc = Incoming::new(again(), None, Limits::default());
        inc.feed(&msgs[0], NOW + 3600)?;
        Ok(())
    });
    assert!(e.is_err());
}

#[test]
fn limits_and_soa_queries() {
    let z = zone(5, 300);
    let req = Request::new(&origin(), &Kind::Axfr, 1, None, NOW);
    let msgs = primary(&req, std::slice::from_ref(&z), None, 1024);
    let limits = Limits { max_messages: 2, ..Limits::default() };
    let mut inc = Incoming::new(Request::new(&origin(), &Kind::Axfr, 1, None, NOW), None, limits);
    let e = msgs.iter().try_for_each(|m| inc.feed(m, NOW).map(|_| ())).unwrap_err();
    assert!(matches!(e, XfrInError::Limit(_)), "{e}");

    // An SOA query and a crafted authoritative answer.
    let mut q = Request::new(&origin(), &Kind::Soa, 99, None, NOW);
    let mut resp = q.bytes.clone();
    resp[2] |= 0x84;
    resp[7] = 1;
    resp.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10]);
    resp.extend_from_slice(&(soa(42).len() as u16).to_be_bytes());
    resp.extend_from_slice(&soa(42));
    let r = soa_response(&mut q, &resp, NOW).unwrap();
    assert_eq!(soa_serial(&r.rdata), Some(42));
    // Not authoritative: refused.
    let mut q = Request::new(&origin(), &Kind::Soa, 99, None, NOW);
    resp[2] &= !0x04;
    assert!(soa_response(&mut q, &resp, NOW).is_err());
}

/// A response whose header claims 65,535 records in each section is refused before
/// anything is sized by those counts (the record walk reserved room for all of them: 4.7 MB
/// for a 12-octet header).
#[test]
fn hostile_counts_size_nothing() {
    let mut msg = Request::new(&origin(), &Kind::Axfr, 0x4444, None, NOW).bytes;
    msg[2] |= 0x84;
    msg[6..12].fill(0xff);
    msg.extend_from_slice(&[0u8; 64]);
    let (r, mem) = crate::testing::measure(|| {
        Incoming::new(Request::new(&origin(), &Kind::Axfr, 0x4444, None, NOW), None, Limits::default()).feed(&msg, NOW)
    });
    assert!(matches!(r, Err(XfrInError::Malformed(ref m)) if m.contains("counts")), "{r:?}");
    assert!(mem.largest < 4096, "{mem:?}");
}

/// Feeds `msgs` in order; the first refusal, or what [`Incoming::finish`] makes of them.
fn run_all(req: Request, ours: Option<u32>, msgs: &[Vec<u8>]) -> Result<Transferred, XfrInError> {
    let mut inc = Incoming::new(req, ours, Limits::default());
    for m in msgs {
        inc.feed(m, NOW)?;
    }
    inc.finish()
}

/// A transfer's outcome in comparable form: kind and records.
fn outcome(t: &Transferred) -> (&'static str, Vec<Record>) {
    match t {
        Transferred::UpToDate { soa } => ("up to date", vec![soa.clone()]),
        Transferred::Full { zone } => ("full", records_of(zone)),
        Transferred::Incremental { changesets } => {
            let mut v = Vec::new();
            for c in changesets {
                v.extend(c.soa_from.iter().cloned());
                v.extend(c.removed.iter().cloned());
                v.extend(c.soa_to.iter().cloned());
                v.extend(c.added.iter().cloned());
            }
            ("incremental", v)
        }
    }
}

/// 20,000 transfers in (AXFR, IXFR with changesets, IXFR up to date; unsigned and
/// TSIG-signed; several messages each) with one message mutated, or one dropped or
/// repeated. None panics; none allocates more than a bounded amount, whatever counts and
/// lengths the bytes claim; a signed transfer that is taken is exactly the one sent (the
/// MAC covers everything but the ID, and the ID must be ours); an unsigned one that is taken
/// has only records of the zone, the SOA at the apex, and its serial.
#[test]
fn mutated_transfers_are_refused_or_harmless() {
    use crate::testing::{measure, mutate, Rng};
    let zones = [zone(1, 30), zone(2, 60), zone(3, 90)];
    let history = [zones[0].diff(&zones[1]), zones[1].diff(&zones[2])];
    // (kind, our serial, signed): the request is made again for each run (it holds the
    // TSIG state), the same each time.
    let request = |kind: &Kind, signed: bool| Request::new(&origin(), kind, 0x5151, signed.then(key).as_ref(), NOW);
    let mut seeds = Vec::new();
    for signed in [false, true] {
        for (kind, ours) in [
            (Kind::Axfr, None),
            (Kind::Ixfr(soa_record(&zones[0])), Some(1)),
            (Kind::Ixfr(soa_record(&zones[2])), Some(3)),
        ] {
            let msgs = primary(&request(&kind, signed), &zones, Some(&history), 512);
            seeds.push((kind, ours, signed, msgs));
        }
    }
    let expected: Vec<_> = seeds
        .iter()
        .map(|(kind, ours, signed, msgs)| outcome(&run_all(request(kind, *signed), *ours, msgs).unwrap()))
        .collect();
    assert_eq!(expected.iter().map(|e| e.0).collect::<Vec<_>>()[..3], ["full", "incremental", "up to date"]);
    eprintln!("messages per seed: {:?}", seeds.iter().map(|s| s.3.len()).collect::<Vec<_>>());
    assert!(seeds.iter().filter(|s| s.3.len() > 2).count() >= 4, "multi-message seeds");

    let mut rng = Rng::new(0x00dd_b1a5_e5e5);
    let (mut taken, mut taken_changed, mut refused) = (0, 0, 0);
    let mut reasons = std::collections::BTreeMap::new();
    let mut worst = crate::testing::Memory { largest: 0, peak: 0 };
    for i in 0..20_000 {
        let s = i % seeds.len();
        let (kind, ours, signed, seed) = &seeds[s];
        let mut msgs = seed.clone();
        let j = rng.below(msgs.len());
        match rng.below(16) {
            0 => {
                msgs.remove(j);
            }
            1 => msgs.insert(j, msgs[j].clone()),
            // The header mostly kept, so that most mutations get past the ID check.
            r => mutate(&mut rng, &mut msgs[j], if r < 6 { 0 } else { 12 }),
        }
        let (result, mem) = measure(|| run_all(request(kind, *signed), *ours, &msgs));
        worst.largest = worst.largest.max(mem.largest);
        worst.peak = worst.peak.max(mem.peak);
        assert!(mem.largest <= 128 << 10, "seed {s} round {i}: an allocation of {} bytes", mem.largest);
        assert!(mem.peak <= 1 << 20, "seed {s} round {i}: {} bytes live at once", mem.peak);
        match result {
            Ok(t) => {
                taken += 1;
                let got = outcome(&t);
                if got != expected[s] {
                    taken_changed += 1;
                    assert!(!signed, "seed {s} round {i}: a signed transfer was taken changed: {got:?}");
                    for r in &got.1 {
                        assert!(r.owner.ends_with(&origin()), "{r:?}");
                        assert!(r.rtype != rtype::SOA || r.owner == origin(), "{r:?}");
                    }
                }
            }
            Err(e) => {
                refused += 1;
                let kind = format!("{e:?}").split('(').next().unwrap_or_default().to_string();
                *reasons.entry(kind).or_insert(0) += 1;
            }
        }
    }
    eprintln!("taken {taken} ({taken_changed} changed), refused {refused}; worst {worst:?}; {reasons:?}");
    for kind in ["Malformed", "Invalid", "Tsig", "Incomplete"] {
        assert!(reasons.get(kind).copied().unwrap_or(0) >= 20, "{kind}: {reasons:?}");
    }
    // Most mutations hit something checked; some (an rdata byte of an unsigned transfer, a
    // TTL) are taken as the data the primary sent.
    assert!(refused > 14_000, "{refused} refused");
    assert!(taken_changed > 100, "{taken_changed} taken changed");
}

/// 20,000 answers to an SOA query (the UDP exchange a spoofer aims at), unsigned and
/// signed, mutated. A signed answer taken is the primary's SOA; an unsigned one taken is
/// an SOA of the zone's apex with a serial; nothing panics or allocates by a claimed count.
#[test]
fn mutated_soa_answers_are_refused_or_harmless() {
    use crate::testing::{measure, mutate, Rng};
    let answer = |signed: bool| {
        let q = Request::new(&origin(), &Kind::Soa, 0x6161, signed.then(key).as_ref(), NOW);
        let parsed = parse_request(&q.bytes).unwrap();
        let mut m = q.bytes[..12 + parsed.question.len()].to_vec();
        m[2] = 0x84;
        m[3] = 0;
        m[6..12].copy_from_slice(&[0, 1, 0, 1, 0, 0]);
        for (owner, rt, rd) in
            [(&[0xc0u8, 12][..], rtype::SOA, soa(9)), (&[0xc0, 12], rtype::NS, b"\x02ns\xc0\x0c".to_vec())]
        {
            m.extend_from_slice(owner);
            m.extend_from_slice(&rt.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
            m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            m.extend_from_slice(&rd);
        }
        if signed {
            let t = verify_request(&q.bytes, &[key()], NOW).unwrap().unwrap();
            let len = m.len();
            m.resize(len + 200, 0);
            let len = Signer::response(&t).sign(&mut m, len, NOW).unwrap();
            m.truncate(len);
        }
        m
    };
    let seeds = [answer(false), answer(true)];
    let want = soa_record(&zone(9, 0));
    for (i, s) in seeds.iter().enumerate() {
        let mut q = Request::new(&origin(), &Kind::Soa, 0x6161, (i == 1).then(key).as_ref(), NOW);
        assert_eq!(soa_response(&mut q, s, NOW).unwrap(), want);
    }
    let mut rng = Rng::new(0x050a_050a);
    let (mut taken, mut changed) = (0, 0);
    for i in 0..20_000 {
        let signed = i % 2 == 1;
        let mut m = seeds[i % 2].clone();
        mutate(&mut rng, &mut m, if i % 5 == 0 { 0 } else { 2 });
        let mut q = Request::new(&origin(), &Kind::Soa, 0x6161, signed.then(key).as_ref(), NOW);
        let (r, mem) = measure(|| soa_response(&mut q, &m, NOW));
        assert!(mem.largest <= 16 << 10, "round {i}: {mem:?}");
        if let Ok(soa) = r {
            taken += 1;
            if soa != want {
                changed += 1;
                assert!(!signed, "round {i}: a signed SOA answer taken changed: {soa:?}");
                assert_eq!((soa.owner.clone(), soa.rtype), (origin(), rtype::SOA), "round {i}");
                assert!(soa_serial(&soa.rdata).is_some(), "round {i}");
            }
        }
    }
    eprintln!("taken {taken} ({changed} changed) of 20000");
    assert!(taken < 10_000 && changed > 100, "taken {taken}, changed {changed}");
}
