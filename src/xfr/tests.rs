//! Unit tests of the transfer writers and TSIG over byte arrays. The signed requests and the
//! multi-message response come from dnspython, kdig and dig (`tests/data/xfr/vectors.txt`);
//! `tests/xfr.rs` has real clients read what we write.

use super::request::walk;
use super::tsig::{self, error, locate, verify_request, TsigFailure, VerifyError};
use super::*;
use crate::wire::message::rcode;
use crate::wire::name::Name;
use crate::wire::rdata::{self, rtype};
use crate::zone::{Changeset, Record, SrcPos, Zone};

const VECTORS: &str = include_str!("../../tests/data/xfr/vectors.txt");

fn vector(name: &str) -> Vec<u8> {
    let line =
        VECTORS.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no vector {name}"));
    let hex = line.split(' ').nth(1).unwrap();
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn n(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

/// The keys vectors.py signs with: bytes 0..32 as the secret.
fn keys() -> Vec<Key> {
    let secret: Vec<u8> = (0..32).collect();
    vec![
        Key::new(&n("sha1-key."), Algorithm::HmacSha1, &secret),
        Key::new(&n("xfr-key."), Algorithm::HmacSha256, &secret),
        Key::new(&n("sha384-key."), Algorithm::HmacSha384, &secret),
        Key::new(&n("sha512-key."), Algorithm::HmacSha512, &secret),
    ]
}

fn time_of(msg: &[u8]) -> u64 {
    locate(msg).unwrap().unwrap().record.time_signed
}

const REQUESTS: [&str; 7] = [
    "dnspython_axfr_hmac-sha1",
    "dnspython_axfr_hmac-sha256",
    "dnspython_axfr_hmac-sha384",
    "dnspython_axfr_hmac-sha512",
    "dnspython_ixfr_hmac-sha256",
    "kdig_axfr_hmac-sha256",
    "dig_ixfr_hmac-sha256",
];

#[test]
fn signed_requests_from_real_tools_verify() {
    let keys = keys();
    for name in REQUESTS {
        let m = vector(name);
        let t = time_of(&m);
        for now in [t, t - 300, t + 300] {
            let ok = verify_request(&m, &keys, now).unwrap_or_else(|e| panic!("{name} at {now}: {e}"));
            let ok = ok.unwrap();
            assert_eq!(ok.time_signed, t);
            assert_eq!(ok.mac.len(), ok.key.algorithm().mac_len(), "{name}");
        }
        let req = parse_request(&m).unwrap();
        assert!(req.signed);
        assert_eq!(req.qname.to_string(), "example.com.");
    }
    assert_eq!(parse_request(&vector("dig_ixfr_hmac-sha256")).unwrap().ixfr_serial, Some(2));
    assert_eq!(parse_request(&vector("dnspython_ixfr_hmac-sha256")).unwrap().ixfr_serial, Some(2));
    // Unsigned: nothing to verify.
    let m = vector("dnspython_axfr_hmac-sha256");
    let tsig_at = locate(&m).unwrap().unwrap().start;
    let mut unsigned = m[..tsig_at].to_vec();
    unsigned[11] -= 1;
    assert_eq!(verify_request(&unsigned, &keys, 0), Ok(None));
}

/// Reads a response's header fields and its TSIG, if any.
fn rcode_and_tsig(m: &[u8]) -> (u8, Option<tsig::TsigRecord>) {
    (m[3] & 0xF, locate(m).unwrap().map(|l| l.record))
}

#[test]
fn unknown_key_or_algorithm_is_badkey_unsigned() {
    let m = vector("dnspython_axfr_hmac-sha256");
    let t = time_of(&m);
    let secret: Vec<u8> = (0..32).collect();
    for keys in [
        vec![Key::new(&n("other-key."), Algorithm::HmacSha256, &secret)],
        // The right name with another algorithm.
        vec![Key::new(&n("xfr-key."), Algorithm::HmacSha512, &secret)],
        vec![],
    ] {
        let f = verify_request(&m, &keys, t).unwrap_err();
        assert!(matches!(f, TsigFailure::Unsigned { error: error::BADKEY, .. }), "{f:?}");
        let mut buf = [0u8; 512];
        let len = tsig::write_failure(&m, &f, &mut buf, t + 1).unwrap();
        let r = &buf[..len];
        assert_eq!(&r[..2], &m[..2], "ID");
        assert_eq!(r[2] & 0x80, 0x80, "QR");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&r[12..29], &m[12..29], "question echoed");
        let (rc, tsig) = rcode_and_tsig(r);
        assert_eq!(rc, rcode::NOTAUTH);
        let tsig = tsig.unwrap();
        assert_eq!((tsig.error, tsig.mac.len(), tsig.key_name.to_string()), (error::BADKEY, 0, "xfr-key.".into()));
        assert_eq!(tsig.algorithm.to_string(), "hmac-sha256.");
        // A client sees an unsigned BADKEY.
        let mut v = tsig::Verifier::new(&keys_sha256(), &locate(&m).unwrap().unwrap().record.mac);
        assert_eq!(v.verify(r, t), Err(VerifyError::Peer { error: error::BADKEY, signed: false }));
    }
}

fn keys_sha256() -> Key {
    keys()[1].clone()
}

#[test]
fn wrong_secret_or_altered_message_is_badsig() {
    let m = vector("kdig_axfr_hmac-sha256");
    let t = time_of(&m);
    let wrong = Key::from_base64(&n("xfr-key."), Algorithm::HmacSha256, "c2VjcmV0IHNlY3JldCBzZWNyZXQ=").unwrap();
    let f = verify_request(&m, &[wrong], t).unwrap_err();
    assert!(matches!(f, TsigFailure::Unsigned { error: error::BADSIG, .. }), "{f:?}");
    let mut buf = [0u8; 512];
    let len = tsig::write_failure(&m, &f, &mut buf, t).unwrap();
    let (rc, tsig) = rcode_and_tsig(&buf[..len]);
    assert_eq!(rc, rcode::NOTAUTH);
    assert_eq!(tsig.as_ref().map(|t| (t.error, t.mac.len())), Some((error::BADSIG, 0)));
    // One bit of the question changed, or the MAC.
    let mut altered = m.clone();
    altered[13] ^= 0x20;
    assert!(matches!(verify_request(&altered, &keys(), t), Err(TsigFailure::Unsigned { error: error::BADSIG, .. })));
    let mut altered = m.clone();
    let last_mac_octet = locate(&m).unwrap().unwrap().start + 9 + 10 + 13 + 10 + 31;
    altered[last_mac_octet] ^= 1;
    assert!(matches!(verify_request(&altered, &keys(), t), Err(TsigFailure::Unsigned { error: error::BADSIG, .. })));
}

#[test]
fn outside_the_fudge_is_badtime_signed() {
    let m = vector("dnspython_axfr_hmac-sha256");
    let t = time_of(&m);
    let keys = keys();
    for now in [t + 301, t - 301, 0] {
        let f = verify_request(&m, &keys, now).unwrap_err();
        let TsigFailure::Signed { error: error::BADTIME, ref request } = f else { panic!("{f:?}") };
        let mut buf = [0u8; 512];
        let len = tsig::write_failure(&m, &f, &mut buf, now).unwrap();
        let r = &buf[..len];
        let (rc, tsig) = rcode_and_tsig(r);
        assert_eq!(rc, rcode::NOTAUTH);
        let tsig = tsig.unwrap();
        // §5.2.3: the request's time and fudge, our time in Other Data, signed.
        assert_eq!((tsig.error, tsig.time_signed, tsig.fudge), (error::BADTIME, t, 300));
        assert_eq!(tsig.other, now.to_be_bytes()[2..].to_vec());
        let mut v = tsig::Verifier::new(&request.key, &request.mac);
        assert_eq!(v.verify(r, t), Err(VerifyError::Peer { error: error::BADTIME, signed: true }));
    }
}

/// The request with its MAC cut to `len` octets (MAC size and RDLENGTH adjusted). The MAC
/// does not cover its own size, so a prefix of a good MAC is a good truncated MAC.
fn truncate_mac(m: &[u8], len: usize) -> Vec<u8> {
    let l = locate(m).unwrap().unwrap();
    let owner = l.record.key_name.len();
    let rdata_at = l.start + owner + 10;
    let mac_size_at = rdata_at + l.record.algorithm.len() + 8;
    let full = l.record.mac.len();
    let mut out = m[..mac_size_at].to_vec();
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&l.record.mac[..len]);
    out.extend_from_slice(&m[mac_size_at + 2 + full..]);
    let rdlen = u16::from_be_bytes([m[rdata_at - 2], m[rdata_at - 1]]) - (full - len) as u16;
    out[rdata_at - 2..rdata_at].copy_from_slice(&rdlen.to_be_bytes());
    out
}

#[test]
fn truncated_macs() {
    let m = vector("dnspython_axfr_hmac-sha256");
    let t = time_of(&m);
    let key = keys_sha256();
    // 16 octets: allowed by RFC 8945, refused by the default policy (full MACs only).
    let short = truncate_mac(&m, 16);
    let f = verify_request(&short, std::slice::from_ref(&key), t).unwrap_err();
    assert!(matches!(f, TsigFailure::Signed { error: error::BADTRUNC, .. }), "{f:?}");
    let mut buf = [0u8; 512];
    let len = tsig::write_failure(&short, &f, &mut buf, t).unwrap();
    let (rc, tsig) = rcode_and_tsig(&buf[..len]);
    assert_eq!(rc, rcode::NOTAUTH);
    let tsig = tsig.unwrap();
    assert_eq!((tsig.error, tsig.mac.len(), tsig.other.len()), (error::BADTRUNC, 32, 0));
    let mut v = tsig::Verifier::new(&key, &short_mac(&short));
    assert_eq!(v.verify(&buf[..len], t), Err(VerifyError::Peer { error: error::BADTRUNC, signed: true }));
    // Accepted when the key's policy allows 16; the response covers the truncated MAC.
    let lenient = key.clone().with_min_mac_len(16);
    let ok = verify_request(&short, std::slice::from_ref(&lenient), t).unwrap().unwrap();
    assert_eq!(ok.mac.len(), 16);
    // A truncated but wrong MAC is still BADSIG.
    let mut bad = short.clone();
    let l = bad.len();
    bad[l - 7] ^= 1;
    assert!(matches!(
        verify_request(&bad, std::slice::from_ref(&lenient), t),
        Err(TsigFailure::Unsigned { error: error::BADSIG, .. })
    ));
    // Below max(10, 16) octets, or none: malformed (FORMERR, §5.2.2.1).
    for len in [15, 8, 0] {
        let tiny = truncate_mac(&m, len);
        let f = verify_request(&tiny, std::slice::from_ref(&lenient), t).unwrap_err();
        assert!(matches!(f, TsigFailure::Malformed(_)), "{len}: {f:?}");
        let n = tsig::write_failure(&tiny, &f, &mut buf, t).unwrap();
        assert_eq!(rcode_and_tsig(&buf[..n]), (rcode::FORMERR, None));
    }
}

fn short_mac(m: &[u8]) -> Vec<u8> {
    locate(m).unwrap().unwrap().record.mac
}

#[test]
fn misplaced_or_repeated_tsig_is_formerr() {
    let m = vector("dnspython_axfr_hmac-sha256");
    let t = time_of(&m);
    let l = locate(&m).unwrap().unwrap();
    let tsig_rr = m[l.start..].to_vec();
    // A record after the TSIG.
    let mut after = m.clone();
    after.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    after[11] += 1;
    // Two TSIGs.
    let mut twice = m.clone();
    twice.extend_from_slice(&tsig_rr);
    twice[11] += 1;
    // The TSIG in the authority section.
    let mut authority = m.clone();
    authority[9] = 1;
    authority[11] = 0;
    for bad in [after, twice, authority] {
        let f = verify_request(&bad, &keys(), t).unwrap_err();
        assert!(matches!(f, TsigFailure::Malformed(_)), "{f:?}");
    }
    // Class not ANY.
    let mut class = m.clone();
    class[l.start + 9 + 3] = 1;
    assert!(matches!(verify_request(&class, &keys(), t), Err(TsigFailure::Malformed(_))));
}

#[test]
fn multi_message_response_signed_by_dnspython_verifies() {
    let req = vector("multi_request");
    let key = keys_sha256();
    let ok = verify_request(&req, std::slice::from_ref(&key), time_of(&req)).unwrap().unwrap();
    let msgs: Vec<Vec<u8>> = (0..3).map(|i| vector(&format!("multi_response_{i}"))).collect();
    let t = time_of(&msgs[0]);
    let mut v = tsig::Verifier::new(&key, &ok.mac);
    for m in &msgs {
        v.verify(m, t).unwrap();
        assert!(v.is_settled());
    }
    // Out of order, a later message does not verify.
    let mut v = tsig::Verifier::new(&key, &ok.mac);
    v.verify(&msgs[0], t).unwrap();
    assert_eq!(v.verify(&msgs[2], t), Err(VerifyError::BadSig));
    // Nor does the first against another request MAC.
    let mut v = tsig::Verifier::new(&key, &[0; 32]);
    assert_eq!(v.verify(&msgs[0], t), Err(VerifyError::BadSig));
}

#[test]
fn request_and_response_signers_round_trip() {
    for key in keys() {
        // A request of ours (a NOTIFY, say), verified by the server side.
        let mut q = vec![0xbe, 0xef, 0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
        let len = q.len();
        q.resize(512, 0);
        let mut s = Signer::request(&key);
        let len = s.sign(&mut q, len, 1_700_000_000).unwrap();
        assert_eq!(len, 29 + s.reserve());
        let q = &q[..len];
        let ok = verify_request(q, &keys(), 1_700_000_100).unwrap().unwrap();
        assert_eq!(ok.key, key);
        assert_eq!(ok.mac, s.mac());
        // Three signed responses, verified in sequence.
        let req = parse_request(q).unwrap();
        let mut signer = Signer::response(&ok);
        let mut v = tsig::Verifier::new(&key, s.mac());
        for i in 0..3u64 {
            let mut buf = [0u8; 512];
            let len = write_error(&req, rcode::NOERROR, Some(&mut signer), &mut buf, 1_700_000_000 + i).unwrap();
            v.verify(&buf[..len], 1_700_000_000).unwrap();
        }
        assert_eq!(signer.signed(), 3);
    }
}

#[test]
fn keys_from_base64_and_configuration() {
    let k =
        Key::from_base64(&n("K."), Algorithm::HmacSha256, " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    assert_eq!(k, Key::new(&n("k."), Algorithm::HmacSha256, &(0..32).collect::<Vec<u8>>()));
    assert_eq!(Key::from_base64(&n("k."), Algorithm::HmacSha256, "Zm9v!"), Err(tsig::KeyError::Base64));
    // From the configuration's key.
    let c = crate::config::Key {
        name: n("xfr-key."),
        algorithm: crate::config::TsigAlgorithm::HmacSha256,
        secret: (0..32).collect(),
    };
    assert_eq!(Key::from(&c), keys_sha256());
    assert!(Key::from_base64(&n("k."), Algorithm::HmacSha256, "").is_err());
    assert_eq!(Algorithm::from_name("HMAC-SHA384."), Some(Algorithm::HmacSha384));
    assert_eq!(Algorithm::from_name("hmac-md5"), None);
    assert_eq!(Algorithm::HmacSha1.min_mac_len(), 10);
    assert_eq!(Algorithm::HmacSha512.min_mac_len(), 32);
    assert!(!format!("{:?}", keys()[0]).contains("secret"));
}

// ---------------------------------------------------------------------------------------
// Transfers

fn soa(serial: u32) -> Vec<u8> {
    let mut v = b"\x02ns\x07example\x03com\x00\x0ahostmaster\x07example\x03com\x00".to_vec();
    for x in [serial, 7200, 900, 1209600, 300] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// A zone with `hosts` A records and a few other types.
fn zone(serial: u32, hosts: usize) -> Zone {
    let mut z = Zone::new(&n("example.com."));
    let p = SrcPos::default();
    let origin = n("example.com.");
    z.insert(&origin, rtype::SOA, 3600, &soa(serial), p).unwrap();
    z.insert(&origin, rtype::NS, 3600, b"\x02ns\x07example\x03com\x00", p).unwrap();
    z.insert(&origin, rtype::MX, 3600, b"\x00\x0a\x04mail\x07example\x03com\x00", p).unwrap();
    z.insert(&n("ns.example.com."), rtype::A, 3600, &[192, 0, 2, 53], p).unwrap();
    z.insert(&n("_sip._udp.example.com."), rtype::SRV, 60, b"\x00\x01\x00\x02\x13\xc4\x02ns\x07example\x03com\x00", p)
        .unwrap();
    z.insert(&n("txt.example.com."), rtype::TXT, 60, b"\x05hello\x05world", p).unwrap();
    for i in 0..hosts {
        let o = n(&format!("host{i}.example.com."));
        z.insert(&o, rtype::A, 300, &[198, 51, (i >> 8) as u8, i as u8], p).unwrap();
    }
    z
}

fn axfr_request(id: u16, qtype: u16, serial: Option<u32>) -> Request {
    let mut question = b"\x07example\x03com\x00".to_vec();
    question.extend_from_slice(&qtype.to_be_bytes());
    question.extend_from_slice(&[0, 1]);
    Request {
        id,
        opcode: 0,
        rd: false,
        qname: n("example.com."),
        qtype,
        qclass: 1,
        question: question.into(),
        ixfr_serial: serial,
        edns_udp_size: None,
        signed: false,
    }
}

/// What a message holds: (ID, flags, the answer records decompressed, ARCOUNT).
fn decode(m: &[u8]) -> (u16, u16, Vec<Record>, u16) {
    let w = walk(m).unwrap();
    assert_eq!(&m[4..6], &[0, 1], "every message has the question");
    let answers = w
        .records
        .iter()
        .filter(|r| r.section == 1)
        .map(|r| {
            assert_eq!(r.class, 1);
            Record {
                owner: r.owner.to_lowercase(),
                rtype: r.rtype,
                ttl: r.ttl,
                rdata: rdata::decompress(r.rtype, m, r.rdata.start, r.rdata.len()).unwrap().into(),
            }
        })
        .collect();
    (u16::from_be_bytes([m[0], m[1]]), u16::from_be_bytes([m[2], m[3]]), answers, u16::from_be_bytes([m[10], m[11]]))
}

fn records_of(z: &Zone) -> Vec<Record> {
    z.records_canonical().iter().map(|r| r.to_owned()).collect()
}

/// Runs a transfer to the end: the messages written.
fn drain(mut next: impl FnMut(&mut [u8]) -> Result<Option<usize>, XfrError>, limit: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; limit];
    while let Some(len) = next(&mut buf).unwrap() {
        assert!(len <= limit);
        out.push(buf[..len].to_vec());
        assert!(out.len() < 100_000);
    }
    out
}

#[test]
fn axfr_fills_messages_in_order() {
    let z = zone(7, 400);
    let want: Vec<Record> = {
        let mut v = records_of(&z);
        v.push(v[0].clone());
        v
    };
    let req = axfr_request(0x4242, rtype::AXFR, None);
    for limit in [512, 4096, 65535] {
        let mut x = Axfr::new(&req, z.records_canonical(), None, Options { max_len: limit, ..Options::tcp() }).unwrap();
        let msgs = drain(|b| x.next_message(b, 0), limit);
        let mut got = Vec::new();
        for m in &msgs {
            let (id, flags, answers, ar) = decode(m);
            assert_eq!((id, flags, ar), (0x4242, 0x8400, 0));
            assert!(!answers.is_empty());
            got.extend(answers);
        }
        assert_eq!(got, want, "limit {limit}");
        assert_eq!(x.records(), want.len());
        assert_eq!(x.messages(), msgs.len());
        if limit == 65535 {
            assert_eq!(msgs.len(), 1);
            // Owners compress against the question: "host1" + pointer, not the whole name.
            assert!(msgs[0].len() < 12 + 17 + 406 * 30, "{}", msgs[0].len());
        } else {
            assert!(msgs.len() > 1);
        }
        // Done stays done.
        assert_eq!(x.next_message(&mut [0u8; 512], 0), Ok(None));
    }
}

#[test]
fn axfr_transfer_messages_stay_in_pointer_reach_but_take_a_big_record() {
    let z = zone(7, 3000);
    let mut recs = records_of(&z);
    // A record bigger than a transfer message: it gets a message of its own size.
    let big = Record { owner: n("big.example.com."), rtype: rtype::TXT, ttl: 1, rdata: vec![7u8; 20_000].into() };
    recs.insert(recs.len() / 2, big);
    let mut want = recs.clone();
    want.push(want[0].clone());
    let req = axfr_request(7, rtype::AXFR, None);
    let mut x = Axfr::new(&req, recs, None, Options::tcp_transfer()).unwrap();
    let msgs = drain(|b| x.next_message(b, 0), 65535);
    let mut got = Vec::new();
    for m in &msgs {
        let (_, _, answers, _) = decode(m);
        if answers.iter().any(|r| r.rtype == rtype::TXT && r.rdata.len() == 20_000) {
            assert!(m.len() <= 65535 && m.len() > 20_000);
        } else {
            assert!(m.len() <= message::TRANSFER_MESSAGE, "{}", m.len());
        }
        got.extend(answers);
    }
    assert_eq!(got, want);
    assert!(msgs.len() > 3, "{}", msgs.len());
    // Where a message must not grow (UDP), the big record fits nowhere.
    let mut recs = records_of(&z);
    recs.insert(1, Record { owner: n("big.example.com."), rtype: rtype::TXT, ttl: 1, rdata: vec![7u8; 2000].into() });
    let mut x = Axfr::new(&req, recs, None, Options::udp(1232)).unwrap();
    let mut buf = [0u8; 1232];
    assert!(x.next_message(&mut buf, 0).unwrap().is_some());
    assert!(matches!(x.next_message(&mut buf, 0), Err(XfrError::RecordTooBig { limit: 1232, .. })));
}

#[test]
fn axfr_one_record_per_message_signed() {
    let z = zone(7, 20);
    let key = keys_sha256();
    let q = vector("dnspython_axfr_hmac-sha256");
    let t = time_of(&q);
    let ok = verify_request(&q, std::slice::from_ref(&key), t).unwrap().unwrap();
    let req = parse_request(&q).unwrap();
    let opts = Options { one_rr_per_message: true, edns_udp_size: Some(1232), ..Options::tcp() };
    let mut x = Axfr::new(&req, records_of(&z), Some(Signer::response(&ok)), opts).unwrap();
    let msgs = drain(|b| x.next_message(b, t + 1), 65535);
    assert_eq!(msgs.len(), z.rr_count() + 1);
    let mut v = tsig::Verifier::new(&key, &ok.mac);
    for m in &msgs {
        let (id, _, answers, ar) = decode(m);
        assert_eq!((id, answers.len(), ar), (0x1234, 1, 2), "one record, then OPT and TSIG");
        v.verify(m, t + 2).unwrap();
    }
    // A message changed in flight breaks the chain.
    let mut x = Axfr::new(&req, records_of(&z), Some(Signer::response(&ok)), opts).unwrap();
    let mut msgs = drain(|b| x.next_message(b, t), 65535);
    msgs[3][20] ^= 1;
    let mut v = tsig::Verifier::new(&key, &ok.mac);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(v.verify(m, t).is_ok(), i < 3, "message {i}");
        if i == 3 {
            break;
        }
    }
}

#[test]
fn axfr_input_forms_and_errors() {
    let z = zone(3, 5);
    let req = axfr_request(1, rtype::AXFR, None);
    let mut closed = records_of(&z);
    closed.push(closed[0].clone());
    let run = |recs: Vec<Record>| {
        let mut x = Axfr::new(&req, recs, None, Options::tcp()).unwrap();
        drain(|b| x.next_message(b, 0), 65535)
    };
    // With or without the closing SOA in the input, the same messages.
    assert_eq!(run(closed), run(records_of(&z)));
    // The SOA must come first.
    let mut no_soa = records_of(&z);
    no_soa.remove(0);
    assert!(matches!(Axfr::new(&req, no_soa, None, Options::tcp()), Err(XfrError::NoSoa)));
    assert!(matches!(Axfr::new(&req, Vec::<Record>::new(), None, Options::tcp()), Err(XfrError::NoSoa)));
    // A record that fits in no message.
    let mut big = records_of(&z);
    big.insert(1, Record { owner: n("big.example.com."), rtype: rtype::TXT, ttl: 1, rdata: vec![0u8; 600].into() });
    let mut x = Axfr::new(&req, big, None, Options::udp(512)).unwrap();
    let mut buf = [0u8; 512];
    assert!(x.next_message(&mut buf, 0).unwrap().is_some());
    assert!(matches!(x.next_message(&mut buf, 0), Err(XfrError::RecordTooBig { rtype: rtype::TXT, .. })));
    // A limit too small for header, question and TSIG.
    let ok = RequestTsig { key: keys()[3].clone(), mac: vec![0; 64], time_signed: 0, fudge: 300 };
    let mut x = Axfr::new(&req, records_of(&z), Some(Signer::response(&ok)), Options::udp(100)).unwrap();
    assert!(matches!(x.next_message(&mut buf, 0), Err(XfrError::SmallBuffer(100))));
}

/// Versions 1 → 2 → 3 of a zone and the changesets between them.
fn history() -> (Vec<Zone>, Vec<Changeset>) {
    let v1 = zone(1, 30);
    let mut v2 = zone(2, 30);
    let p = SrcPos::default();
    v2.remove(&n("host3.example.com."), rtype::A, &[198, 51, 0, 3]);
    v2.insert(&n("new.example.com."), rtype::AAAA, 60, &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], p)
        .unwrap();
    let mut v3 = v2.clone();
    v3.remove(&n("example.com."), rtype::SOA, &soa(2));
    v3.insert(&n("example.com."), rtype::SOA, 3600, &soa(3), p).unwrap();
    v3.insert(&n("host3.example.com."), rtype::A, 300, &[198, 51, 100, 3], p).unwrap();
    let cs = vec![v1.diff(&v2), v2.diff(&v3)];
    (vec![v1, v2, v3], cs)
}

fn soa_record(serial: u32) -> Record {
    Record { owner: n("example.com."), rtype: rtype::SOA, ttl: 3600, rdata: soa(serial).into() }
}

#[test]
fn ixfr_incremental_sequence() {
    let (zones, cs) = history();
    let current = soa_record(3);
    let mut expected = vec![current.clone()];
    for c in &cs {
        expected.push(c.soa_from.clone().unwrap());
        expected.extend(c.removed.iter().cloned());
        expected.push(c.soa_to.clone().unwrap());
        expected.extend(c.added.iter().cloned());
    }
    expected.push(current.clone());
    for (serial, skip) in [(1u32, 0usize), (2, 1)] {
        let req = axfr_request(9, rtype::IXFR, Some(serial));
        let mut x =
            Ixfr::new(&req, current.clone(), Some(&cs[..]), || records_of(&zones[2]), None, Options::udp(512)).unwrap();
        assert_eq!(x.kind(), IxfrKind::Incremental { changesets: 2 - skip });
        let msgs = drain(|b| x.next_message(b, 0), 512);
        let got: Vec<Record> = msgs.iter().flat_map(|m| decode(m).2).collect();
        let want: Vec<Record> = if skip == 0 {
            expected.clone()
        } else {
            // From serial 2: the second changeset only.
            let c = &cs[1];
            let mut w = vec![current.clone(), c.soa_from.clone().unwrap()];
            w.extend(c.removed.iter().cloned());
            w.push(c.soa_to.clone().unwrap());
            w.extend(c.added.iter().cloned());
            w.push(current.clone());
            w
        };
        assert_eq!(got, want, "from serial {serial}");
        // Applying what came to the client's version gives ours.
        let mut patched = zones[serial as usize - 1].clone();
        let c = &cs[skip..];
        for c in c {
            patched.apply(c).unwrap();
        }
        assert!(patched.diff(&zones[2]).is_empty());
    }
}

#[test]
fn ixfr_current_missing_or_broken_history() {
    let (zones, cs) = history();
    let current = soa_record(3);
    let full = || records_of(&zones[2]);
    // Current or ahead (RFC 1982: 3 and 2^31 + 2 are both ≥ 3): our SOA alone.
    for serial in [3, 4, 0x8000_0002] {
        let req = axfr_request(9, rtype::IXFR, Some(serial));
        let mut x = Ixfr::new(&req, current.clone(), Some(&cs[..]), full, None, Options::tcp()).unwrap();
        assert_eq!(x.kind(), IxfrKind::UpToDate);
        let msgs = drain(|b| x.next_message(b, 0), 65535);
        assert_eq!(msgs.len(), 1);
        assert_eq!(decode(&msgs[0]).2, vec![current.clone()]);
    }
    // No history, history that does not reach the client's serial, or a broken chain:
    // the whole zone, as AXFR has it.
    let mut broken = cs.clone();
    broken[1].soa_from = Some(soa_record(9));
    let mut axfr = records_of(&zones[2]);
    axfr.push(axfr[0].clone());
    for (serial, hist) in [(1, None), (0, Some(&cs[..])), (1, Some(&broken[..])), (1, Some(&cs[1..]))] {
        let req = axfr_request(9, rtype::IXFR, Some(serial));
        let mut x = Ixfr::new(&req, current.clone(), hist, full, None, Options::tcp()).unwrap();
        assert_eq!(x.kind(), IxfrKind::Full);
        let got: Vec<Record> = drain(|b| x.next_message(b, 0), 65535).iter().flat_map(|m| decode(m).2).collect();
        assert_eq!(got, axfr);
    }
    assert_eq!(ixfr::history_from(&cs, 1, 3), Some(0));
    assert_eq!(ixfr::history_from(&cs, 2, 3), Some(1));
    assert_eq!(ixfr::history_from(&cs, 1, 4), None);
}

#[test]
fn ixfr_over_udp_fits_or_falls_back_to_soa() {
    let (zones, cs) = history();
    let current = soa_record(3);
    let key = keys_sha256();
    let q = vector("dnspython_ixfr_hmac-sha256");
    let t = time_of(&q);
    let ok = verify_request(&q, std::slice::from_ref(&key), t).unwrap().unwrap();
    let req = parse_request(&q).unwrap();
    assert_eq!(req.ixfr_serial, Some(2));
    // From 2 the answer is small: all of it in one signed datagram.
    let x = Ixfr::new(&req, current.clone(), Some(&cs[..]), || records_of(&zones[2]), Some(Signer::response(&ok)), {
        Options::udp(512)
    })
    .unwrap();
    let mut buf = [0u8; 512];
    let len = x.udp_message(&mut buf, t).unwrap();
    let (_, _, answers, ar) = decode(&buf[..len]);
    assert_eq!((answers.len(), ar), (5, 1));
    tsig::Verifier::new(&key, &ok.mac).verify(&buf[..len], t).unwrap();
    // From 1 with a 150-octet limit it does not fit: our SOA alone, signed.
    let mut req1 = req.clone();
    req1.ixfr_serial = Some(1);
    let x = Ixfr::new(&req1, current.clone(), Some(&cs[..]), || records_of(&zones[2]), Some(Signer::response(&ok)), {
        Options::udp(250)
    })
    .unwrap();
    let len = x.udp_message(&mut buf, t).unwrap();
    let (_, _, answers, _) = decode(&buf[..len]);
    assert_eq!(answers, vec![current.clone()]);
    assert!(len <= 250);
    tsig::Verifier::new(&key, &ok.mac).verify(&buf[..len], t).unwrap();
    // The whole zone never fits 512 octets either.
    let x = Ixfr::new(&req1, current.clone(), None::<&[Changeset]>, || records_of(&zones[2]), None, Options::udp(512))
        .unwrap();
    let len = x.udp_message(&mut buf, t).unwrap();
    assert_eq!(decode(&buf[..len]).2, vec![current]);
}

#[test]
fn error_responses_echo_the_request() {
    let q = vector("kdig_axfr_hmac-sha256");
    let key = keys_sha256();
    let t = time_of(&q);
    let ok = verify_request(&q, std::slice::from_ref(&key), t).unwrap().unwrap();
    let req = parse_request(&q).unwrap();
    let mut buf = [0u8; 512];
    let mut s = Signer::response(&ok);
    let len = write_error(&req, rcode::REFUSED, Some(&mut s), &mut buf, t).unwrap();
    let r = &buf[..len];
    assert_eq!(&r[..2], &q[..2]);
    // QR, RD copied (kdig sets it), not AA; REFUSED.
    assert_eq!(u16::from_be_bytes([r[2], r[3]]), 0x8105);
    tsig::Verifier::new(&key, &ok.mac).verify(r, t).unwrap();
    // With an OPT in the request, one in the response (before the TSIG), as Knot does.
    let req = Request { edns_udp_size: Some(4096), ..axfr_request(7, rtype::AXFR, None) };
    let len = write_error(&req, rcode::REFUSED, None, &mut buf, t).unwrap();
    let r = &buf[..len];
    assert_eq!(&r[10..12], &[0, 1], "ARCOUNT");
    assert_eq!(&r[len - 11..len - 6], &[0, 0, 41, 0x04, 0xd0], "OPT, payload 1232");
    let len = write_error(&axfr_request(7, rtype::AXFR, None), rcode::REFUSED, None, &mut buf, t).unwrap();
    assert_eq!(&buf[10..12], &[0, 0], "no OPT asked, none sent ({len} octets)");
}

#[test]
fn axfr_from_a_snapshot_is_axfr_from_the_zone() {
    // The control thread will stream from the mapped snapshot; its records come in the
    // same order as the zone's.
    let z = zone(11, 300);
    let img = crate::snapshot::compile(&z).unwrap();
    let bytes = rkyv::to_bytes::<rkyv::rancor::BoxedError>(&img).unwrap();
    let archived = rkyv::access::<crate::snapshot::ArchivedZoneImage, rkyv::rancor::BoxedError>(&bytes).unwrap();
    let from_snapshot = crate::snapshot::records(archived).unwrap();
    let req = axfr_request(5, rtype::AXFR, None);
    let opts = Options::udp(1232);
    let mut a = Axfr::new(&req, from_snapshot.iter(), None, opts).unwrap();
    let mut b = Axfr::new(&req, z.records_canonical(), None, opts).unwrap();
    let (ma, mb) = (drain(|buf| a.next_message(buf, 0), 1232), drain(|buf| b.next_message(buf, 0), 1232));
    assert!(ma.len() > 5);
    assert_eq!(ma, mb);
}

#[test]
fn axfr_from_a_mapped_snapshot_lends_the_zones_records() {
    // What the control thread does: the records lent by `SnapshotRecords` (rdata names
    // rebuilt from their pointers to the apex and to the owner) make the same messages as
    // the zone's own records. (The apex part of an rdata name comes back lowercase: the
    // snapshot keeps it as a pointer to the apex.)
    let mut z = zone(12, 500);
    let p = SrcPos::default();
    z.insert(&n("a.b.example.com."), rtype::MX, 60, b"\x00\x05\x01x\x01a\x01b\x07example\x03com\x00", p).unwrap();
    z.insert(&n("x.a.b.example.com."), rtype::A, 60, &[192, 0, 2, 9], p).unwrap();
    z.insert(&n("c.example.com."), rtype::CNAME, 60, b"\x04HOST\x01c\x07example\x03com\x00", p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.snap");
    crate::snapshot::write_snapshot(&path, &crate::snapshot::compile(&z).unwrap()).unwrap();
    let snap = std::sync::Arc::new(crate::snapshot::Snapshot::open(&path).unwrap());
    let req = axfr_request(6, rtype::AXFR, None);
    for opts in [Options::tcp_transfer(), Options::udp(512)] {
        let mut a = Axfr::from_cursor(&req, crate::snapshot::SnapshotRecords::new(snap.clone()), None, opts).unwrap();
        let mut b = Axfr::new(&req, z.records_canonical(), None, opts).unwrap();
        let (ma, mb) = (drain(|buf| a.next_message(buf, 0), 65535), drain(|buf| b.next_message(buf, 0), 65535));
        assert!(ma == mb, "{} messages from the snapshot, {} from the zone", ma.len(), mb.len());
        assert_eq!(a.records(), z.rr_count() + 1);
    }
    // The iterator gives the same records, owned.
    let owned: Vec<Record> = crate::snapshot::SnapshotRecords::new(snap.clone()).collect();
    assert_eq!(owned, records_of(&z));
}
