//! Engine tests: one behaviour per test, queries and responses as bytes.
//!
//! Zones are built from master-file text, compiled and archived in memory; responses are
//! parsed strictly (every count honoured, every byte consumed, pointers only backwards) and
//! records are compared as `owner ttl TYPE rdata` text with the owner lowercased.

use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::snapshot::{compile, ArchivedZoneImage};
use crate::wire::name::{read_compressed, Name};
use crate::wire::rdata::decompress;
use crate::zone::parse::{load_text, type_name};
use crate::zone::text::format_rdata;

// ---------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------

type Bytes = rkyv::util::AlignedVec;

fn build(origin: &str, text: &str) -> Bytes {
    let origin = Name::parse_text(origin.as_bytes(), None).unwrap();
    let loaded = load_text(Path::new("t.zone"), text.as_bytes(), &origin);
    assert!(loaded.is_servable(), "{:?}", loaded.diagnostics);
    let img = compile(&loaded.zone).unwrap();
    rkyv::to_bytes::<rkyv::rancor::BoxedError>(&img).unwrap()
}

fn archived(b: &Bytes) -> &ArchivedZoneImage {
    rkyv::access::<ArchivedZoneImage, rkyv::rancor::BoxedError>(b).unwrap()
}

/// `n` TXT records of one 100-octet string each: about 113 octets per RR in a message.
fn txt_set(owner: &str, n: usize) -> String {
    (0..n).map(|i| format!("{owner} TXT \"{i:03}{}\"\n", "x".repeat(97))).collect()
}

fn example_text() -> String {
    let mut t = String::from(
        r#"$ORIGIN example.com.
$TTL 3600
@         SOA   ns1 hostmaster 2024010101 7200 900 1209600 300
@         NS    ns1
@         NS    ns2
@         MX    10 mail
@         TXT   "apex"
ns1       A     192.0.2.1
ns2       A     192.0.2.2
ns2       AAAA  2001:db8::2
mail      A     192.0.2.3
mail      AAAA  2001:db8::3
www       A     192.0.2.10
www       AAAA  2001:db8::10
sip       A     192.0.2.20
_sip._tcp SRV   0 5 5060 sip
a.b.c     A     192.0.2.4
c1        CNAME c2
c2        CNAME C3
c3        CNAME www
cnx       CNAME nothere
cout      CNAME www.example.net.
loop1     CNAME loop2
loop2     CNAME loop1
csub      CNAME host.sub
sub       NS    ns.sub
sub       NS    ns.example.net.
ns.sub    A     192.0.2.53
ns.sub    AAAA  2001:db8::53
*.sub     TXT   "occluded"
signed    NS    ns.signed
signed    DS    12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE8C50A8E9C2D2A2F6C0A3C5E1
ns.signed A     192.0.2.54
unsigned  NS    ns.example.net.
*.w       TXT   "wild"
*.w       MX    10 mail
exists.w  A     192.0.2.30
x.ent.w   A     192.0.2.31
*.wc      CNAME www
d     600 DNAME example.net.
dn        DNAME inner.example.com.
host.inner A    192.0.2.40
cd        CNAME X.d
"#,
    );
    // A DNAME whose target is long: 3 × 64 + 13 = 205 octets.
    let l63 = |c: char| c.to_string().repeat(63);
    t.push_str(&format!("l DNAME {}.{}.{}.example.net.\n", l63('a'), l63('b'), l63('c')));
    t.push_str(&txt_set("big", 8));
    t.push_str(&txt_set("huge", 30));
    // A delegation whose NS RRset fits 512 octets but whose glue does not.
    for i in 1..=13 {
        t.push_str(&format!("many NS ns{i:02}.many\nns{i:02}.many A 192.0.2.{i}\nns{i:02}.many AAAA 2001:db8::{i}\n"));
    }
    t
}

fn ex() -> &'static ArchivedZoneImage {
    static Z: OnceLock<Bytes> = OnceLock::new();
    archived(Z.get_or_init(|| build("example.com.", &example_text())))
}

/// A zone with a wildcard at the apex, a delegation, and SOA TTL < MINIMUM.
fn wild() -> &'static ArchivedZoneImage {
    static Z: OnceLock<Bytes> = OnceLock::new();
    archived(Z.get_or_init(|| {
        build(
            "wild.test.",
            "$ORIGIN wild.test.\n$TTL 60\n@ SOA ns hm 1 7200 900 1209600 3600\n@ NS ns\nns A 192.0.2.1\n\
             * A 192.0.2.99\nsub NS ns.sub\nns.sub A 192.0.2.53\n",
        )
    }))
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Opt {
    size: u16,
    dnssec_ok: bool,
    version: u8,
}

#[derive(Clone)]
struct Q {
    id: u16,
    flags: u16,
    name: String,
    qtype: u16,
    qclass: u16,
    opt: Option<Opt>,
}

impl Q {
    /// An IN query with RD set.
    fn new(name: &str, qtype: u16) -> Q {
        Q { id: 0xBEEF, flags: 0x0100, name: name.to_string(), qtype, qclass: 1, opt: None }
    }

    fn edns(mut self, size: u16) -> Q {
        self.opt = Some(Opt { size, dnssec_ok: false, version: 0 });
        self
    }

    fn wire(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&self.id.to_be_bytes());
        m.extend_from_slice(&self.flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(self.opt.is_some())]);
        m.extend_from_slice(Name::parse_text(self.name.as_bytes(), None).unwrap().as_wire());
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some(o) = self.opt {
            m.extend_from_slice(&opt_rr(o.size, o.version, o.dnssec_ok, &[]));
        }
        m
    }
}

fn opt_rr(size: u16, version: u8, dnssec_ok: bool, rdata: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&rtype::OPT.to_be_bytes());
    m.extend_from_slice(&size.to_be_bytes());
    m.extend_from_slice(&[0, version]);
    m.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
    m
}

// ---------------------------------------------------------------------------
// Running and reading responses
// ---------------------------------------------------------------------------

fn run_raw(zones: &impl Zones, query: &[u8], t: Transport, buf_len: usize) -> (Outcome, Vec<u8>) {
    let mut buf = vec![0u8; buf_len.max(query.len())];
    buf[..query.len()].copy_from_slice(query);
    let o = answer(zones, &mut buf, query.len(), t, &Config::default());
    if let Outcome::Reply { len, .. } = o {
        assert!(len <= buf_len.max(query.len()));
        buf.truncate(len);
    }
    (o, buf)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RespOpt {
    size: u16,
    ext_rcode: u8,
    version: u8,
    flags: u16,
    rdlen: u16,
}

struct Resp {
    raw: Vec<u8>,
    id: u16,
    flags: u16,
    /// Header rcode plus the OPT's extended bits.
    rcode: u16,
    qd: u16,
    /// Each question's uncompressed name (original case), type and class.
    questions: Vec<(Vec<u8>, u16, u16)>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    opt: Option<RespOpt>,
    /// Offset just past the question section.
    question_end: usize,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "id {:04x} flags {:04x} rcode {} qd {} opt {:?}",
            self.id, self.flags, self.rcode, self.qd, self.opt
        )?;
        for (q, t, c) in &self.questions {
            writeln!(f, "  question {} {t} {c}", name_text(q))?;
        }
        for (title, s) in [("answer", &self.answer), ("authority", &self.authority), ("additional", &self.additional)] {
            for rr in s {
                writeln!(f, "  {title}: {rr}")?;
            }
        }
        write!(f, "  raw ({} octets, question ends at {}): {:02x?}", self.raw.len(), self.question_end, self.raw)
    }
}

impl Resp {
    fn aa(&self) -> bool {
        self.flags & 0x0400 != 0
    }
    fn tc(&self) -> bool {
        self.flags & 0x0200 != 0
    }
    fn qr(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    fn ra(&self) -> bool {
        self.flags & 0x0080 != 0
    }
    fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xF
    }
    fn counts(&self) -> [usize; 3] {
        [self.answer.len(), self.authority.len(), self.additional.len() + usize::from(self.opt.is_some())]
    }
}

fn u16_at(m: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([m[o], m[o + 1]])
}

fn name_text(wire: &[u8]) -> String {
    Name::from_wire(wire).unwrap().to_string()
}

/// Parses a response strictly; panics on anything malformed.
fn parse_response(m: &[u8]) -> Resp {
    assert!(m.len() >= 12, "response shorter than a header: {m:02x?}");
    let counts = [u16_at(m, 4), u16_at(m, 6), u16_at(m, 8), u16_at(m, 10)];
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let mut n = [0u8; 256];
        let (next, len) = read_compressed(m, pos, &mut n).unwrap();
        questions.push((n[..len].to_vec(), u16_at(m, next), u16_at(m, next + 2)));
        pos = next + 4;
    }
    let question_end = pos;
    let mut sections: [Vec<String>; 3] = Default::default();
    let mut opt = None;
    for (s, &count) in counts[1..].iter().enumerate() {
        for _ in 0..count {
            let mut n = [0u8; 256];
            let (next, len) = read_compressed(m, pos, &mut n).unwrap_or_else(|e| panic!("owner at {pos}: {e:?}"));
            let t = u16_at(m, next);
            let class = u16_at(m, next + 2);
            let ttl = u32::from_be_bytes([m[next + 4], m[next + 5], m[next + 6], m[next + 7]]);
            let rdlen = u16_at(m, next + 8) as usize;
            let start = next + 10;
            assert!(start + rdlen <= m.len(), "rdata past the end");
            if t == rtype::OPT {
                assert_eq!(s, 2, "OPT outside the additional section");
                assert!(opt.is_none(), "two OPT records");
                assert_eq!(&n[..len], b"\x00", "OPT not owned by the root");
                opt = Some(RespOpt {
                    size: class,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    flags: ttl as u16,
                    rdlen: rdlen as u16,
                });
            } else {
                // IN, or the question's class (CH answers).
                assert!(class == 1 || questions.first().is_some_and(|q| q.2 == class), "class {class}");
                let rd = decompress(t, m, start, rdlen).unwrap();
                let mut text = format!("{} {} {} ", name_text(&n[..len]).to_ascii_lowercase(), ttl, type_name(t));
                format_rdata(&mut text, t, &rd);
                sections[s].push(text);
            }
            pos = start + rdlen;
        }
    }
    assert_eq!(pos, m.len(), "bytes after the last record");
    let flags = u16_at(m, 2);
    let rcode = (flags & 0xF) | opt.map_or(0, |o| (o.ext_rcode as u16) << 4);
    let [answer, authority, additional] = sections;
    Resp {
        raw: m.to_vec(),
        id: u16_at(m, 0),
        flags,
        rcode,
        qd: counts[0],
        questions,
        answer,
        authority,
        additional,
        opt,
        question_end,
    }
}

fn ask_zones(zones: &impl Zones, query: &[u8], t: Transport) -> Resp {
    let (o, raw) = run_raw(zones, query, t, 65535);
    let Outcome::Reply { len, rcode, truncated, .. } = o else { panic!("no reply: {o:?}") };
    assert_eq!(len, raw.len());
    let r = parse_response(&raw);
    assert_eq!(r.rcode, rcode, "Outcome rcode differs from the message");
    assert_eq!(r.tc(), truncated, "Outcome TC differs from the message");
    assert!(r.qr());
    assert!(!r.ra());
    r
}

fn ask(q: &Q) -> Resp {
    ask_zones(ex(), &q.wire(), Transport::Udp)
}

fn ask_tcp(q: &Q) -> Resp {
    ask_zones(ex(), &q.wire(), Transport::Tcp)
}

fn ask_bytes(query: &[u8]) -> Resp {
    ask_zones(ex(), query, Transport::Udp)
}

fn outcome(query: &[u8]) -> Outcome {
    run_raw(ex(), query, Transport::Udp, 512).0
}

/// The negative-answer SOA of example.com (TTL = MINIMUM 300 < 3600).
const NEG_SOA: &str = "example.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024010101 7200 900 1209600 300";

fn assert_answer(r: &Resp, rcode: u16, aa: bool, answer: &[&str], authority: &[&str], additional: &[&str]) {
    assert_eq!(r.rcode, rcode, "{r:#?}");
    assert_eq!(r.aa(), aa, "AA: {r:#?}");
    assert!(!r.tc(), "TC: {r:#?}");
    assert_eq!(r.answer, answer, "answer: {r:#?}");
    assert_eq!(sorted(&r.authority), sorted(authority), "authority: {r:#?}");
    assert_eq!(sorted(&r.additional), sorted(additional), "additional: {r:#?}");
}

/// Order inside the authority and additional sections carries no meaning.
fn sorted<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

#[test]
fn header_id_opcode_rd_cd_echoed_qr_set_ra_ad_clear() {
    // ID abcd; flags: RD, AD, CD set (0x0130); www.example.com A IN.
    let q = b"\xab\xcd\x01\x30\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";
    let r = ask_bytes(q);
    assert_eq!(r.id, 0xabcd);
    // QR, AA, RD, CD; opcode 0; TC, RA, Z, AD clear; NOERROR.
    assert_eq!(r.flags, 0x8000 | 0x0400 | 0x0100 | 0x0010);
    assert_eq!(&r.raw[4..12], b"\x00\x01\x00\x01\x00\x00\x00\x00");
    // RD clear stays clear.
    let mut q2 = q.to_vec();
    q2[2] = 0;
    q2[3] = 0;
    let r = ask_bytes(&q2);
    assert_eq!(r.flags, 0x8400);
}

#[test]
fn header_qdcount_zero_is_formerr() {
    let q = b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let r = ask_bytes(q);
    assert_eq!(r.rcode, rcode::FORMERR as u16);
    assert_eq!(r.raw, b"\x12\x34\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00");
}

#[test]
fn header_qdcount_two_is_formerr() {
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    q[5] = 2;
    let r = ask_bytes(&q);
    assert_eq!(r.rcode, rcode::FORMERR as u16);
    assert!(!r.aa());
    assert_eq!(r.counts(), [0, 0, 0]);
}

#[test]
fn header_response_is_dropped() {
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q[2] |= 0x80;
    assert_eq!(outcome(&q), Outcome::Drop(DropReason::Response));
}

#[test]
fn header_short_is_dropped() {
    let q = Q::new("www.example.com.", rtype::A).wire();
    for len in 0..12 {
        assert_eq!(outcome(&q[..len]), Outcome::Drop(DropReason::Short), "len {len}");
    }
}

#[test]
fn header_unknown_opcode_is_notimp() {
    for op in [1u16, 2, 3, 6, 15] {
        // RD and CD are QUERY's flags: not copied into the NOTIMP (genreport "opcodeflg").
        let mut q = Q::new("www.example.com.", rtype::A);
        q.flags = 0x0100 | 0x0010 | (op << 11);
        let r = ask(&q);
        assert_eq!(r.rcode, rcode::NOTIMP as u16);
        assert_eq!(r.opcode(), op, "opcode echoed");
        assert_eq!(r.flags, 0x8000 | (op << 11) | rcode::NOTIMP as u16, "only QR, the opcode and NOTIMP");
        assert_eq!(r.qd, 1);
        assert_eq!(r.counts(), [0, 0, 0]);
        // With EDNS, the OPT is answered too.
        let r = ask(&q.clone().edns(4096));
        assert_eq!((r.rcode, r.counts()), (rcode::NOTIMP as u16, [0, 0, 1]));
        // The opcode is judged before the sections: no question (genreport "opcode"), two,
        // or garbage after the header are all NOTIMP, header only.
        let mut empty = vec![0xab, 0xcd, (op << 3) as u8 | 0x07, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0];
        for tail in [&b""[..], b"\x01", b"\xff\xff\xff"] {
            empty.truncate(12);
            empty.extend_from_slice(tail);
            empty[5] = if tail.is_empty() { 0 } else { 2 };
            let r = ask_bytes(&empty);
            assert_eq!(r.rcode, rcode::NOTIMP as u16, "opcode {op}, tail {tail:?}");
            assert_eq!(r.raw, [0xab, 0xcd, 0x80 | (op << 3) as u8, 0x04, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
    }
}

#[test]
fn header_notify_and_update_are_notimp_for_now() {
    for op in [opcode::NOTIFY, opcode::UPDATE] {
        let mut q = Q::new("example.com.", rtype::SOA);
        q.flags = (op as u16) << 11;
        let r = ask(&q);
        assert_eq!(r.rcode, rcode::NOTIMP as u16);
        assert_eq!(r.opcode(), op as u16);
    }
}

#[test]
fn header_class_ch_is_refused() {
    let mut q = Q::new("www.example.com.", rtype::TXT);
    q.qclass = 3;
    let r = ask(&q);
    assert_eq!(r.rcode, rcode::REFUSED as u16);
    assert!(!r.aa());
    assert_eq!(r.questions[0].2, 3);
    assert_eq!(r.counts(), [0, 0, 0]);
}

#[test]
fn header_name_outside_every_zone_is_refused() {
    for name in ["www.example.org.", "com.", ".", "example.com.evil."] {
        let r = ask(&Q::new(name, rtype::A));
        assert_eq!(r.rcode, rcode::REFUSED as u16, "{name}");
        assert!(!r.aa(), "{name}");
        assert_eq!(r.counts(), [0, 0, 0], "{name}");
    }
}

// ---------------------------------------------------------------------------
// Positive answers
// ---------------------------------------------------------------------------

#[test]
fn exact_match() {
    let r = ask(&Q::new("www.example.com.", rtype::A));
    assert_answer(&r, 0, true, &["www.example.com. 3600 A 192.0.2.10"], &[], &[]);
    let r = ask(&Q::new("www.example.com.", rtype::AAAA));
    assert_answer(&r, 0, true, &["www.example.com. 3600 AAAA 2001:db8::10"], &[], &[]);
}

#[test]
fn case_insensitive_lookup_echoes_question_and_points_owner_at_it() {
    let q = b"\x00\x07\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03wWw\x07ExAmPlE\x03CoM\x00\x00\x01\x00\x01";
    let r = ask_bytes(q);
    assert_eq!(r.rcode, 0);
    assert!(r.aa());
    assert_eq!(&r.raw[..4], b"\x00\x07\x84\x00");
    // The question, byte for byte.
    assert_eq!(&r.raw[12..q.len()], &q[12..]);
    // The answer's owner is a pointer to the question name.
    assert_eq!(&r.raw[q.len()..], b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x0a");
}

#[test]
fn rdata_names_point_into_the_question() {
    // MX at the apex: the target "mail" + a pointer to the apex, which is the question.
    let q = Q::new("EXAMPLE.com.", rtype::MX).wire();
    let r = ask_bytes(&q);
    let at = q.len();
    assert_eq!(&r.raw[at..at + 12], b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x09");
    assert_eq!(&r.raw[at + 12..at + 21], b"\x00\x0a\x04mail\xc0\x0c");
    // Rdata names take the case of the question's apex.
    assert_eq!(r.answer, ["example.com. 3600 MX 10 mail.EXAMPLE.com."]);
}

// ---------------------------------------------------------------------------
// CNAME
// ---------------------------------------------------------------------------

#[test]
fn cname_chain_inside_the_zone() {
    let r = ask(&Q::new("c1.example.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &[
            "c1.example.com. 3600 CNAME c2.example.com.",
            "c2.example.com. 3600 CNAME C3.example.com.",
            "c3.example.com. 3600 CNAME www.example.com.",
            "www.example.com. 3600 A 192.0.2.10",
        ],
        &[],
        &[],
    );
}

#[test]
fn cname_chain_ending_in_nxdomain() {
    // RFC 6604: the rcode is that of the last name of the chain.
    let r = ask(&Q::new("cnx.example.com.", rtype::A));
    assert_answer(
        &r,
        rcode::NXDOMAIN as u16,
        true,
        &["cnx.example.com. 3600 CNAME nothere.example.com."],
        &[NEG_SOA],
        &[],
    );
}

#[test]
fn cname_chain_ending_in_nodata() {
    let r = ask(&Q::new("c3.example.com.", rtype::MX));
    assert_answer(&r, 0, true, &["c3.example.com. 3600 CNAME www.example.com."], &[NEG_SOA], &[]);
}

#[test]
fn cname_to_out_of_zone_is_just_the_cname() {
    let r = ask(&Q::new("cout.example.com.", rtype::A));
    assert_answer(&r, 0, true, &["cout.example.com. 3600 CNAME www.example.net."], &[], &[]);
}

#[test]
fn cname_loop_terminates() {
    // Each CNAME once (RFC 2181 §5: no duplicate RRs); the resolver sees the loop.
    let r = ask(&Q::new("loop1.example.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &["loop1.example.com. 3600 CNAME loop2.example.com.", "loop2.example.com. 3600 CNAME loop1.example.com."],
        &[],
        &[],
    );
    // A CNAME to itself, and a wildcard CNAME whose target it matches itself.
    let bytes = build(
        "l.test.",
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nself CNAME self\n*.w CNAME x.w\n\
         a DNAME b.l.test.\nb DNAME a.l.test.\n",
    );
    let z = archived(&bytes);
    let r = ask_zones(z, &Q::new("self.l.test.", rtype::A).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &["self.l.test. 60 CNAME self.l.test."], &[], &[]);
    let r = ask_zones(z, &Q::new("q.w.l.test.", rtype::A).wire(), Transport::Udp);
    // The wildcard answers for x.w too (as Knot and NSD do); the loop is the second visit of
    // the name x.w, so it ends there with each record once.
    assert_answer(&r, 0, true, &["q.w.l.test. 60 CNAME x.w.l.test.", "x.w.l.test. 60 CNAME x.w.l.test."], &[], &[]);
    // DNAME loop: each DNAME once.
    let r = ask_zones(z, &Q::new("x.a.l.test.", rtype::A).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        true,
        &[
            "a.l.test. 60 DNAME b.l.test.",
            "x.a.l.test. 60 CNAME x.b.l.test.",
            "b.l.test. 60 DNAME a.l.test.",
            "x.b.l.test. 60 CNAME x.a.l.test.",
        ],
        &[],
        &[],
    );
}

#[test]
fn cname_chain_longer_than_the_limit_stops() {
    let mut text = String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..20 {
        text.push_str(&format!("c{i} CNAME c{}\n", i + 1));
    }
    text.push_str("c20 A 192.0.2.2\n");
    let bytes = build("chain.test.", &text);
    let r = ask_zones(archived(&bytes), &Q::new("c0.chain.test.", rtype::A).wire(), Transport::Udp);
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answer.len(), MAX_CHAIN);
    assert!(r.answer.iter().all(|a| a.contains(" CNAME ")));
}

#[test]
fn qtype_cname_returns_the_cname_itself() {
    let r = ask(&Q::new("c1.example.com.", rtype::CNAME));
    assert_answer(&r, 0, true, &["c1.example.com. 3600 CNAME c2.example.com."], &[], &[]);
}

#[test]
fn cname_into_a_delegation_gives_the_referral() {
    // AA follows the first owner of the answer (RFC 1035 §4.1.1), which is ours.
    let r = ask(&Q::new("csub.example.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &["csub.example.com. 3600 CNAME host.sub.example.com."],
        &["sub.example.com. 3600 NS ns.example.net.", "sub.example.com. 3600 NS ns.sub.example.com."],
        &["ns.sub.example.com. 3600 A 192.0.2.53", "ns.sub.example.com. 3600 AAAA 2001:db8::53"],
    );
}

// ---------------------------------------------------------------------------
// Referrals
// ---------------------------------------------------------------------------

const SUB_NS: [&str; 2] = ["sub.example.com. 3600 NS ns.example.net.", "sub.example.com. 3600 NS ns.sub.example.com."];
const SUB_GLUE: [&str; 2] = ["ns.sub.example.com. 3600 A 192.0.2.53", "ns.sub.example.com. 3600 AAAA 2001:db8::53"];

#[test]
fn referral_at_a_zone_cut() {
    for t in [rtype::A, rtype::NS, rtype::SOA, rtype::ANY] {
        let r = ask(&Q::new("sub.example.com.", t));
        assert_answer(&r, 0, false, &[], &SUB_NS, &SUB_GLUE);
    }
}

#[test]
fn referral_below_a_zone_cut() {
    for name in ["host.sub.example.com.", "a.b.c.sub.example.com.", "ns.sub.example.com.", "x.sub.example.com."] {
        let r = ask(&Q::new(name, rtype::A));
        assert_answer(&r, 0, false, &[], &SUB_NS, &SUB_GLUE);
    }
    // The NS owner points into the question name at "sub".
    let q = Q::new("Host.SUB.example.com.", rtype::A).wire();
    let r = ask_bytes(&q);
    assert_eq!(&r.raw[q.len()..q.len() + 2], b"\xc0\x11");
    // DS below the cut belongs to the child too.
    let r = ask(&Q::new("x.sub.example.com.", rtype::DS));
    assert_answer(&r, 0, false, &[], &SUB_NS, &SUB_GLUE);
}

#[test]
fn ds_at_the_cut_is_answered_from_the_parent() {
    let r = ask(&Q::new("signed.example.com.", rtype::DS));
    assert_answer(
        &r,
        0,
        true,
        &["signed.example.com. 3600 DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE8C50A8E9C2D2A2F6C0A3C5E1"],
        &[],
        &[],
    );
    // No DS: NODATA with the SOA.
    let r = ask(&Q::new("sub.example.com.", rtype::DS));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
    let r = ask(&Q::new("unsigned.example.com.", rtype::DS));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn referral_glue_that_does_not_fit_sets_tc() {
    // RFC 9471: all in-domain glue, or TC.
    let r = ask(&Q::new("www.many.example.com.", rtype::A));
    assert!(r.tc(), "{r:#?}");
    assert!(!r.aa());
    assert_eq!(r.rcode, 0);
    assert_eq!(r.qd, 1);
    assert_eq!(r.counts(), [0, 0, 0]);
    // With room for it all: 13 NS, 26 glue records.
    for r in
        [ask(&Q::new("www.many.example.com.", rtype::A).edns(1232)), ask_tcp(&Q::new("many.example.com.", rtype::A))]
    {
        assert!(!r.tc() && !r.aa());
        assert_eq!(r.authority.len(), 13);
        assert_eq!(r.additional.len(), 26);
        assert!(r.additional.contains(&"ns13.many.example.com. 3600 AAAA 2001:db8::13".to_string()));
    }
}

#[test]
fn sibling_glue_that_does_not_fit_is_left_out_without_tc() {
    // "a" has one in-domain server and 13 servers below the sibling cut "b"; the sibling
    // glue sorts first but does not fit 512 octets. The in-domain glue must be there, and
    // no TC (RFC 9471 requires TC for in-domain glue only).
    let mut text = String::from(
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nb NS ns.b\nns.b A 192.0.2.2\n\
         a NS nameserver.a\nnameserver.a A 192.0.2.3\n",
    );
    for i in 1..=13 {
        text.push_str(&format!("a NS ns{i:02}.b\nns{i:02}.b A 192.0.2.{}\nns{i:02}.b AAAA 2001:db8::{i}\n", 10 + i));
    }
    let bytes = build("sib.test.", &text);
    let z = archived(&bytes);
    let r = ask_zones(z, &Q::new("x.a.sib.test.", rtype::A).wire(), Transport::Udp);
    assert!(!r.tc(), "{r:#?}");
    assert!(!r.aa());
    assert_eq!(r.authority.len(), 14);
    assert!(r.additional.contains(&"nameserver.a.sib.test. 60 A 192.0.2.3".to_string()), "{r:#?}");
    assert!(r.additional.len() < 27);
    // Over TCP everything.
    let r = ask_zones(z, &Q::new("x.a.sib.test.", rtype::A).wire(), Transport::Tcp);
    assert_eq!(r.additional.len(), 27);
}

#[test]
fn no_wildcard_below_a_zone_cut() {
    // "*.sub" lies below the cut: occluded, the referral wins.
    let r = ask(&Q::new("nothing.sub.example.com.", rtype::TXT));
    assert_answer(&r, 0, false, &[], &SUB_NS, &SUB_GLUE);
    // A wildcard at the apex does not reach below a cut either.
    let r = ask_zones(wild(), &Q::new("x.sub.wild.test.", rtype::A).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        false,
        &[],
        &["sub.wild.test. 60 NS ns.sub.wild.test."],
        &["ns.sub.wild.test. 60 A 192.0.2.53"],
    );
    let r = ask_zones(wild(), &Q::new("sub.wild.test.", rtype::A).wire(), Transport::Udp);
    assert!(!r.aa());
    assert_eq!(r.authority.len(), 1);
}

// ---------------------------------------------------------------------------
// Negative answers
// ---------------------------------------------------------------------------

#[test]
fn nxdomain_with_soa() {
    let r = ask(&Q::new("nothere.example.com.", rtype::A));
    assert_answer(&r, rcode::NXDOMAIN as u16, true, &[], &[NEG_SOA], &[]);
    let r = ask(&Q::new("a.b.nothere.example.com.", rtype::A));
    assert_answer(&r, rcode::NXDOMAIN as u16, true, &[], &[NEG_SOA], &[]);
    // The SOA owner points at the apex inside the question.
    let q = Q::new("nothere.example.com.", rtype::A).wire();
    let r = ask_bytes(&q);
    assert_eq!(&r.raw[q.len()..q.len() + 2], b"\xc0\x14");
}

#[test]
fn nodata_with_soa() {
    let r = ask(&Q::new("www.example.com.", rtype::MX));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn negative_soa_ttl_is_min_of_ttl_and_minimum() {
    // SOA TTL 60, MINIMUM 3600: 60.
    let r = ask_zones(wild(), &Q::new("ns.wild.test.", rtype::MX).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &[], &["wild.test. 60 SOA ns.wild.test. hm.wild.test. 1 7200 900 1209600 3600"], &[]);
}

#[test]
fn empty_non_terminal_is_nodata() {
    for name in ["c.example.com.", "b.c.example.com.", "ent.w.example.com.", "_tcp.example.com."] {
        let r = ask(&Q::new(name, rtype::A));
        assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
    }
}

// ---------------------------------------------------------------------------
// Wildcards (RFC 4592)
// ---------------------------------------------------------------------------

#[test]
fn wildcard_expansion_owner_is_the_qname() {
    let q = Q::new("Foo.w.example.com.", rtype::TXT).wire();
    let r = ask_bytes(&q);
    assert_answer(&r, 0, true, &["foo.w.example.com. 3600 TXT \"wild\""], &[], &[]);
    assert_eq!(&r.raw[q.len()..q.len() + 2], b"\xc0\x0c");
    // Several labels below the closest encloser.
    let r = ask(&Q::new("a.b.c.w.example.com.", rtype::TXT));
    assert_answer(&r, 0, true, &["a.b.c.w.example.com. 3600 TXT \"wild\""], &[], &[]);
    // With additional processing of the expanded MX.
    let r = ask(&Q::new("mx.w.example.com.", rtype::MX));
    assert_answer(
        &r,
        0,
        true,
        &["mx.w.example.com. 3600 MX 10 mail.example.com."],
        &[],
        &["mail.example.com. 3600 A 192.0.2.3", "mail.example.com. 3600 AAAA 2001:db8::3"],
    );
    // Apex wildcard.
    let r = ask_zones(wild(), &Q::new("anything.wild.test.", rtype::A).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &["anything.wild.test. 60 A 192.0.2.99"], &[], &[]);
}

#[test]
fn wildcard_blocked_by_an_existing_name() {
    let r = ask(&Q::new("exists.w.example.com.", rtype::TXT));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
    // Below an existing name the closest encloser is that name, which has no wildcard.
    let r = ask(&Q::new("below.exists.w.example.com.", rtype::TXT));
    assert_answer(&r, rcode::NXDOMAIN as u16, true, &[], &[NEG_SOA], &[]);
    let r = ask_zones(wild(), &Q::new("ns.wild.test.", rtype::A).wire(), Transport::Udp);
    assert_eq!(r.answer, ["ns.wild.test. 60 A 192.0.2.1"]);
}

#[test]
fn wildcard_blocked_by_an_empty_non_terminal() {
    let r = ask(&Q::new("ent.w.example.com.", rtype::TXT));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
    let r = ask(&Q::new("y.ent.w.example.com.", rtype::TXT));
    assert_answer(&r, rcode::NXDOMAIN as u16, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn wildcard_cname() {
    let r = ask(&Q::new("abc.wc.example.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &["abc.wc.example.com. 3600 CNAME www.example.com.", "www.example.com. 3600 A 192.0.2.10"],
        &[],
        &[],
    );
}

#[test]
fn wildcard_literal_star_query() {
    let q = Q::new("*.w.example.com.", rtype::TXT).wire();
    let r = ask_bytes(&q);
    assert_answer(&r, 0, true, &["*.w.example.com. 3600 TXT \"wild\""], &[], &[]);
    // "*" below the wildcard is not the wildcard: expansion of *.w.
    let r = ask(&Q::new("*.x.w.example.com.", rtype::TXT));
    assert_answer(&r, 0, true, &["*.x.w.example.com. 3600 TXT \"wild\""], &[], &[]);
    // Below the wildcard node itself nothing matches (RFC 4592 §2.2.1).
    let r = ask(&Q::new("x.*.w.example.com.", rtype::TXT));
    assert_answer(&r, rcode::NXDOMAIN as u16, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn wildcard_nodata() {
    let r = ask(&Q::new("foo.w.example.com.", rtype::A));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

// ---------------------------------------------------------------------------
// DNAME (RFC 6672)
// ---------------------------------------------------------------------------

#[test]
fn dname_synthesises_a_cname() {
    let q = Q::new("WWW.d.example.com.", rtype::A).wire();
    let r = ask_bytes(&q);
    assert_answer(
        &r,
        0,
        true,
        &["d.example.com. 600 DNAME example.net.", "www.d.example.com. 600 CNAME WWW.example.net."],
        &[],
        &[],
    );
    // The DNAME owner points at "d" inside the question; the CNAME owner at the question.
    assert_eq!(&r.raw[q.len()..q.len() + 2], b"\xc0\x10");
    let cname = q.len() + 12 + 13;
    assert_eq!(&r.raw[cname..cname + 2], b"\xc0\x0c");
    // Several labels above the owner.
    let r = ask(&Q::new("a.b.d.example.com.", rtype::TXT));
    assert_eq!(r.answer[1], "a.b.d.example.com. 600 CNAME a.b.example.net.");
}

#[test]
fn dname_chased_inside_the_zone() {
    let r = ask(&Q::new("host.dn.example.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &[
            "dn.example.com. 3600 DNAME inner.example.com.",
            "host.dn.example.com. 3600 CNAME host.inner.example.com.",
            "host.inner.example.com. 3600 A 192.0.2.40",
        ],
        &[],
        &[],
    );
    // Chased to a name that does not exist.
    let r = ask(&Q::new("nope.dn.example.com.", rtype::A));
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16);
    assert_eq!(r.answer.len(), 2);
    assert_eq!(r.authority, [NEG_SOA]);
}

#[test]
fn cname_into_a_dname() {
    // The DNAME owner and the synthesised CNAME's prefix are found inside the CNAME's rdata
    // ("X.d" + a pointer to the apex in the question).
    let r = ask(&Q::new("cd.EXAMPLE.com.", rtype::A));
    assert_answer(
        &r,
        0,
        true,
        &[
            "cd.example.com. 3600 CNAME X.d.EXAMPLE.com.",
            "d.example.com. 600 DNAME example.net.",
            "x.d.example.com. 600 CNAME X.example.net.",
        ],
        &[],
        &[],
    );
}

#[test]
fn dname_result_too_long_is_yxdomain() {
    // 51 + 205 = 256 octets > 255.
    let name = format!("{}.l.example.com.", "p".repeat(50));
    let r = ask(&Q::new(&name, rtype::A));
    assert_eq!(r.rcode, rcode::YXDOMAIN as u16, "{r:#?}");
    assert!(r.aa());
    assert_eq!(r.answer.len(), 1);
    assert!(r.answer[0].starts_with("l.example.com. 3600 DNAME aaa"));
    // One octet less fits.
    let name = format!("{}.l.example.com.", "p".repeat(49));
    let r = ask(&Q::new(&name, rtype::A));
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answer.len(), 2);
}

#[test]
fn dname_owner_itself() {
    let r = ask(&Q::new("d.example.com.", rtype::DNAME));
    assert_answer(&r, 0, true, &["d.example.com. 600 DNAME example.net."], &[], &[]);
    // The DNAME does not apply to its owner: other types are NODATA.
    let r = ask(&Q::new("d.example.com.", rtype::A));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn dname_at_the_apex() {
    // RFC 6672 §2.3 allows a DNAME at the apex; names below it are redirected.
    let bytes = build(
        "alias.test.",
        "$ORIGIN alias.test.\n$TTL 300\n@ SOA ns.example.net. hm.example.net. 1 2 3 4 5\n\
         @ NS ns.example.net.\n@ DNAME example.net.\n",
    );
    let z = archived(&bytes);
    let r = ask_zones(z, &Q::new("www.alias.test.", rtype::A).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        true,
        &["alias.test. 300 DNAME example.net.", "www.alias.test. 300 CNAME www.example.net."],
        &[],
        &[],
    );
    let r = ask_zones(z, &Q::new("alias.test.", rtype::DNAME).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &["alias.test. 300 DNAME example.net."], &[], &[]);
}

// ---------------------------------------------------------------------------
// ANY and additional-section processing
// ---------------------------------------------------------------------------

#[test]
fn any_returns_one_rrset() {
    for name in ["www.example.com.", "example.com.", "mail.example.com.", "foo.w.example.com."] {
        let r = ask(&Q::new(name, rtype::ANY));
        assert_eq!(r.rcode, 0);
        assert!(r.aa());
        let first_type = r.answer[0].split(' ').nth(2).unwrap().to_string();
        assert!(r.answer.iter().all(|a| a.split(' ').nth(2) == Some(&first_type)), "{name}: {r:#?}");
        assert!(r.authority.is_empty());
    }
    // An empty non-terminal has nothing to give: NODATA.
    let r = ask(&Q::new("c.example.com.", rtype::ANY));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn additional_for_ns_mx_srv_targets() {
    let r = ask(&Q::new("example.com.", rtype::NS));
    assert_answer(
        &r,
        0,
        true,
        &["example.com. 3600 NS ns1.example.com.", "example.com. 3600 NS ns2.example.com."],
        &[],
        &[
            "ns1.example.com. 3600 A 192.0.2.1",
            "ns2.example.com. 3600 A 192.0.2.2",
            "ns2.example.com. 3600 AAAA 2001:db8::2",
        ],
    );
    let r = ask(&Q::new("example.com.", rtype::MX));
    assert_answer(
        &r,
        0,
        true,
        &["example.com. 3600 MX 10 mail.example.com."],
        &[],
        &["mail.example.com. 3600 A 192.0.2.3", "mail.example.com. 3600 AAAA 2001:db8::3"],
    );
    let r = ask(&Q::new("_sip._tcp.example.com.", rtype::SRV));
    assert_answer(
        &r,
        0,
        true,
        &["_sip._tcp.example.com. 3600 SRV 0 5 5060 sip.example.com."],
        &[],
        &["sip.example.com. 3600 A 192.0.2.20"],
    );
}

#[test]
fn additional_that_does_not_fit_is_left_out_without_tc() {
    // RFC 2181 §9: TC only for the answer itself. 13 NS = 13 × 24 octets plus 26 addresses
    // do not fit 512; the NS RRset does, and is sent alone.
    let bytes = build(
        "big.test.",
        &(1..=13).fold(String::from("$ORIGIN big.test.\n$TTL 60\n@ SOA ns01 hm 1 2 3 4 5\n"), |mut s, i| {
            s.push_str(&format!("@ NS ns{i:02}\nns{i:02} A 192.0.2.{i}\nns{i:02} AAAA 2001:db8::{i}\n"));
            s
        }),
    );
    let r = ask_zones(archived(&bytes), &Q::new("big.test.", rtype::NS).wire(), Transport::Udp);
    assert!(!r.tc());
    assert_eq!(r.answer.len(), 13);
    assert!(r.additional.len() < 26);
    assert!(r.raw.len() <= 512);
}

// ---------------------------------------------------------------------------
// EDNS (RFC 6891)
// ---------------------------------------------------------------------------

#[test]
fn edns_opt_echoed_with_our_size() {
    let q = Q::new("www.example.com.", rtype::A).edns(4096).wire();
    let r = ask_bytes(&q);
    assert_eq!(r.answer, ["www.example.com. 3600 A 192.0.2.10"]);
    assert_eq!(r.opt, Some(RespOpt { size: 1232, ext_rcode: 0, version: 0, flags: 0, rdlen: 0 }));
    // The OPT is the last record: root, type 41, 1232, ext 0, version 0, flags 0, rdlen 0.
    assert_eq!(&r.raw[r.raw.len() - 11..], b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
    assert_eq!(u16_at(&r.raw, 10), 1);
    // Another configured size.
    let mut buf = vec![0u8; 4096];
    buf[..q.len()].copy_from_slice(&q);
    let o = answer(ex(), &mut buf, q.len(), Transport::Udp, &Config { edns_size: 4000, ..Config::default() });
    let Outcome::Reply { len, .. } = o else { panic!() };
    assert_eq!(&buf[len - 11..len], b"\x00\x00\x29\x0f\xa0\x00\x00\x00\x00\x00\x00");
    // No OPT in the query, none in the response.
    let r = ask(&Q::new("www.example.com.", rtype::A));
    assert!(r.opt.is_none());
}

#[test]
fn edns_do_bit_echoed() {
    let mut q = Q::new("www.example.com.", rtype::A).edns(1232);
    q.opt.as_mut().unwrap().dnssec_ok = true;
    let r = ask(&q);
    assert_eq!(r.opt.unwrap().flags, 0x8000);
    assert_eq!(&r.raw[r.raw.len() - 11..], b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00");
    // Also on error responses.
    q.qclass = 3;
    let r = ask(&q);
    assert_eq!(r.rcode, rcode::REFUSED as u16);
    assert_eq!(r.opt.unwrap().flags, 0x8000);
}

#[test]
fn edns_version_1_is_badvers() {
    let mut q = Q::new("www.example.com.", rtype::A).edns(1232);
    q.opt.as_mut().unwrap().version = 1;
    let r = ask(&q);
    assert_eq!(r.rcode, rcode::BADVERS);
    assert_eq!(r.flags & 0xF, 0, "header rcode");
    assert_eq!(r.opt, Some(RespOpt { size: 1232, ext_rcode: 1, version: 0, flags: 0, rdlen: 0 }));
    assert!(!r.aa());
    assert_eq!(r.qd, 1);
    assert_eq!(r.counts(), [0, 0, 1]);
}

#[test]
fn edns_two_opts_is_formerr() {
    let mut q = Q::new("www.example.com.", rtype::A).edns(1232).wire();
    q[11] = 2;
    q.extend_from_slice(&opt_rr(1232, 0, false, &[]));
    let r = ask_bytes(&q);
    assert_eq!(r.rcode, rcode::FORMERR as u16);
    assert_eq!(r.counts(), [0, 0, 0]);
}

#[test]
fn edns_opt_not_in_additional_or_not_root_is_formerr() {
    // OPT in the answer section.
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q[7] = 1;
    q.extend_from_slice(&opt_rr(1232, 0, false, &[]));
    assert_eq!(ask_bytes(&q).rcode, rcode::FORMERR as u16);
    // OPT owned by a name other than the root.
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q[11] = 1;
    q.extend_from_slice(b"\xc0\x0c");
    q.extend_from_slice(&opt_rr(1232, 0, false, &[])[1..]);
    assert_eq!(ask_bytes(&q).rcode, rcode::FORMERR as u16);
}

#[test]
fn edns_bad_option_length_is_formerr() {
    // Option code 10 claiming 8 octets with 4 present; then a lone 2-octet fragment.
    for rd in [&b"\x00\x0a\x00\x08\x01\x02\x03\x04"[..], b"\x00\x0a", b"\x00\x0a\x00\x00\x00"] {
        let mut q = Q::new("www.example.com.", rtype::A).wire();
        q[11] = 1;
        q.extend_from_slice(&opt_rr(1232, 0, false, rd));
        let r = ask_bytes(&q);
        assert_eq!(r.rcode, rcode::FORMERR as u16, "{rd:02x?}");
        assert_eq!(r.qd, 1, "the question could be read");
    }
}

#[test]
fn edns_unknown_options_ignored() {
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q[11] = 1;
    // An unknown option (65001) and an empty one (NSID).
    q.extend_from_slice(&opt_rr(1232, 0, false, b"\xfd\xe9\x00\x04abcd\x00\x03\x00\x00"));
    let r = ask_bytes(&q);
    assert_answer(&r, 0, true, &["www.example.com. 3600 A 192.0.2.10"], &[], &[]);
    assert_eq!(r.opt.unwrap().rdlen, 0);
}

#[test]
fn edns_size_below_512_treated_as_512() {
    // The apex NS answer with its additionals is ~200 octets: more than 100, less than 512.
    let r = ask(&Q::new("example.com.", rtype::NS).edns(100));
    assert!(!r.tc());
    assert!(r.raw.len() > 100);
    assert_eq!(r.answer.len(), 2);
    assert_eq!(r.additional.len(), 3);
    let r = ask(&Q::new("big.example.com.", rtype::TXT).edns(0));
    assert!(r.tc());
}

// ---------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------

#[test]
fn truncation_without_edns_is_question_only() {
    let q = Q::new("big.example.com.", rtype::TXT).wire();
    let r = ask_bytes(&q);
    assert!(r.tc());
    assert!(r.aa());
    assert_eq!(r.rcode, 0);
    assert_eq!(r.qd, 1);
    assert_eq!(r.counts(), [0, 0, 0]);
    assert_eq!(r.raw.len(), q.len());
    assert_eq!(&r.raw[12..], &q[12..]);
    // With EDNS the question and OPT only.
    let r = ask(&Q::new("big.example.com.", rtype::TXT).edns(600));
    assert!(r.tc());
    assert_eq!(r.counts(), [0, 0, 1]);
    assert!(r.opt.is_some());
}

#[test]
fn truncation_fits_with_edns_1232() {
    let r = ask(&Q::new("big.example.com.", rtype::TXT).edns(1232));
    assert!(!r.tc());
    assert_eq!(r.answer.len(), 8);
    assert!(r.raw.len() > 512 && r.raw.len() <= 1232);
}

#[test]
fn truncation_tcp_up_to_65535() {
    let r = ask(&Q::new("huge.example.com.", rtype::TXT).edns(4096));
    assert!(r.tc(), "1232 is our limit");
    let r = ask_tcp(&Q::new("huge.example.com.", rtype::TXT));
    assert!(!r.tc());
    assert_eq!(r.answer.len(), 30);
    assert!(r.raw.len() > 3000);
    // A TCP buffer smaller than the answer: never past its end.
    let q = Q::new("huge.example.com.", rtype::TXT).wire();
    let (o, raw) = run_raw(ex(), &q, Transport::Tcp, 2048);
    assert!(matches!(o, Outcome::Reply { truncated: true, .. }));
    assert_eq!(raw.len(), q.len());
}

#[test]
fn truncation_of_a_cname_chain_keeps_no_partial_answer() {
    // CNAME then a big RRset: TC, question only.
    let bytes = build(
        "t.test.",
        &format!("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nalias CNAME big\n{}", txt_set("big", 6)),
    );
    let z = archived(&bytes);
    let r = ask_zones(z, &Q::new("alias.t.test.", rtype::TXT).wire(), Transport::Udp);
    assert!(r.tc());
    assert_eq!(r.counts(), [0, 0, 0]);
    let r = ask_zones(z, &Q::new("alias.t.test.", rtype::TXT).edns(1232).wire(), Transport::Udp);
    assert!(!r.tc());
    assert_eq!(r.answer.len(), 7);
}

// ---------------------------------------------------------------------------
// Malformed queries
// ---------------------------------------------------------------------------

const HDR: &[u8] = b"\x55\x55\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00";

fn formerr_without_question(body: &[u8]) {
    let mut q = HDR.to_vec();
    q.extend_from_slice(body);
    let r = ask_bytes(&q);
    assert_eq!(r.rcode, rcode::FORMERR as u16, "{body:02x?}");
    assert_eq!(r.raw, b"\x55\x55\x80\x01\x00\x00\x00\x00\x00\x00\x00\x00", "{body:02x?}");
}

#[test]
fn malformed_compression_pointer_in_question() {
    formerr_without_question(b"\xc0\x0c\x00\x01\x00\x01");
    formerr_without_question(b"\x03www\xc0\x0c\x00\x01\x00\x01");
    formerr_without_question(b"\x03www\xc0\x00\x00\x01\x00\x01");
}

#[test]
fn malformed_label_types() {
    formerr_without_question(b"\x43www\x00\x00\x01\x00\x01");
    formerr_without_question(b"\x03www\x80\x00\x01\x00\x01");
    formerr_without_question(b"\x03www\x41\x00\x00\x01\x00\x01");
}

#[test]
fn malformed_name_over_255() {
    // 4 × 63-octet labels + root = 257 octets.
    let mut body = Vec::new();
    for _ in 0..4 {
        body.push(63);
        body.extend_from_slice(&[b'a'; 63]);
    }
    body.extend_from_slice(b"\x00\x00\x01\x00\x01");
    formerr_without_question(&body);
    // Exactly 255 is a name (outside our zones: REFUSED).
    let mut body = Vec::new();
    for _ in 0..3 {
        body.push(63);
        body.extend_from_slice(&[b'a'; 63]);
    }
    body.push(61);
    body.extend_from_slice(&[b'b'; 61]);
    body.extend_from_slice(b"\x00\x00\x01\x00\x01");
    let mut q = HDR.to_vec();
    q.extend_from_slice(&body);
    assert_eq!(ask_bytes(&q).rcode, rcode::REFUSED as u16);
}

#[test]
fn malformed_truncated_question() {
    let q = Q::new("www.example.com.", rtype::A).wire();
    for len in 12..q.len() {
        let r = ask_bytes(&q[..len]);
        assert_eq!(r.rcode, rcode::FORMERR as u16, "len {len}");
        assert_eq!(r.qd, 0, "len {len}");
        assert_eq!(r.raw.len(), 12);
    }
}

#[test]
fn malformed_trailing_garbage() {
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q.push(0);
    let r = ask_bytes(&q);
    assert_eq!(r.rcode, rcode::FORMERR as u16);
    assert_eq!(r.qd, 1, "the question is echoed");
    assert_eq!(&r.raw[12..], &q[12..q.len() - 1]);
    // After an OPT record.
    let mut q = Q::new("www.example.com.", rtype::A).edns(1232).wire();
    q.extend_from_slice(b"junk");
    let r = ask_bytes(&q);
    assert_eq!(r.rcode, rcode::FORMERR as u16);
    // A record count with no record.
    let mut q = Q::new("www.example.com.", rtype::A).wire();
    q[9] = 1;
    assert_eq!(ask_bytes(&q).rcode, rcode::FORMERR as u16);
}

#[test]
fn malformed_meta_qtypes() {
    for t in [rtype::OPT, rtype::TSIG, rtype::TKEY] {
        let r = ask(&Q::new("www.example.com.", t));
        assert_eq!(r.rcode, rcode::FORMERR as u16);
        assert_eq!(r.qd, 1);
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed_queries() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let names = [
        "www.example.com.",
        "c1.example.com.",
        "host.sub.example.com.",
        "x.y.w.example.com.",
        "a.b.d.example.com.",
        "host.dn.example.com.",
        "many.example.com.",
        "big.example.com.",
        "loop1.example.com.",
        "nothere.example.com.",
        "example.com.",
        "abc.wc.example.com.",
    ];
    let types = [rtype::A, rtype::TXT, rtype::NS, rtype::MX, rtype::ANY, rtype::DS, rtype::CNAME, rtype::DNAME];
    for (i, n) in names.iter().enumerate() {
        let t = types[i % types.len()];
        v.push(Q::new(n, t).wire());
        let mut q = Q::new(n, types[(i + 3) % types.len()]).edns(1232);
        q.opt.as_mut().unwrap().dnssec_ok = i % 2 == 0;
        let mut w = q.wire();
        // Some with an option in the OPT.
        if i % 3 == 0 {
            w.truncate(w.len() - 2);
            w.extend_from_slice(b"\x00\x08\x00\x0a\x00\x01\x00\x00\x00\x08\x00\x00");
        }
        v.push(w);
    }
    v
}

#[test]
fn fuzz_mutations_never_panic() {
    let seeds = seed_queries();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut replies = 0;
    for i in 0..20_000 {
        let mut q = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(7) {
                0 => {
                    let p = rng.below(q.len());
                    q[p] = rng.next() as u8;
                }
                1 => {
                    let p = rng.below(q.len());
                    q[p] ^= 1 << rng.below(8);
                }
                2 => q.truncate(rng.below(q.len() + 1)),
                3 => {
                    let p = rng.below(q.len() + 1);
                    let b = rng.next() as u8;
                    q.insert(p, b);
                }
                4 if q.len() > 12 => {
                    // A count field.
                    let p = 4 + 2 * rng.below(4);
                    q[p + 1] = rng.below(4) as u8;
                    q[p] = 0;
                }
                5 if q.len() > 13 => {
                    // A compression pointer somewhere.
                    let p = 12 + rng.below(q.len() - 13);
                    q[p] = 0xC0;
                    q[p + 1] = rng.next() as u8;
                }
                _ => q.extend_from_slice(&(rng.next() as u32).to_be_bytes()),
            }
            if q.is_empty() {
                break;
            }
        }
        // Never a query bit: the mutation is meant to reach the answer path.
        if q.len() > 2 && i % 8 != 0 {
            q[2] &= 0x7F;
        }
        let t = if i % 3 == 0 { Transport::Tcp } else { Transport::Udp };
        let buf_len = if t == Transport::Tcp { 65535 } else { 512.max(q.len()) };
        let (o, raw) = run_raw(ex(), &q, t, buf_len);
        if let Outcome::Reply { len, rcode, truncated, .. } = o {
            replies += 1;
            assert!(len <= buf_len);
            if t == Transport::Udp {
                assert!(len <= 1232.max(q.len()), "{q:02x?}");
            }
            let r = parse_response(&raw);
            assert!(r.qr(), "{q:02x?}");
            assert_eq!(r.rcode, rcode, "{q:02x?}");
            assert_eq!(r.tc(), truncated);
            assert_eq!(&raw[..2], &q[..2], "ID echoed");
        }
    }
    assert!(replies > 10_000, "only {replies} replies");
}

// ---------------------------------------------------------------------------
// Several zones
// ---------------------------------------------------------------------------

/// Parent and child zones served together: the longest apex wins.
struct Two<'a>(&'a ArchivedZoneImage, &'a ArchivedZoneImage);

impl Zones for Two<'_> {
    fn find_zone(&self, q: &[u8]) -> Option<&ArchivedZoneImage> {
        let mut best: Option<&ArchivedZoneImage> = None;
        for z in [self.0, self.1] {
            if name::is_suffix_wire(q, &z.origin) && best.is_none_or(|b| b.origin.len() < z.origin.len()) {
                best = Some(z);
            }
        }
        best
    }
}

#[test]
fn child_zone_answers_below_its_apex() {
    let child = build(
        "sub.example.com.",
        "$ORIGIN sub.example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.53\nhost A 192.0.2.77\n",
    );
    let zones = Two(ex(), archived(&child));
    let r = ask_zones(&zones, &Q::new("host.sub.example.com.", rtype::A).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &["host.sub.example.com. 60 A 192.0.2.77"], &[], &[]);
    let r = ask_zones(&zones, &Q::new("www.example.com.", rtype::A).wire(), Transport::Udp);
    assert_eq!(r.answer, ["www.example.com. 3600 A 192.0.2.10"]);
    // The child's apex for anything but DS.
    let r = ask_zones(&zones, &Q::new("sub.example.com.", rtype::NS).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        true,
        &["sub.example.com. 60 NS ns.sub.example.com."],
        &[],
        &["ns.sub.example.com. 60 A 192.0.2.53"],
    );
}

#[test]
fn ds_at_a_served_child_apex_comes_from_the_parent() {
    // RFC 4035 §3.1.4.1: example.com holds the DS for signed.example.com (and none for sub).
    let signed = build(
        "signed.example.com.",
        "$ORIGIN signed.example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.54\n",
    );
    let sub = build(
        "sub.example.com.",
        "$ORIGIN sub.example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.53\n",
    );
    let zones = Two(ex(), archived(&signed));
    let r = ask_zones(&zones, &Q::new("signed.example.com.", rtype::DS).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        true,
        &["signed.example.com. 3600 DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE8C50A8E9C2D2A2F6C0A3C5E1"],
        &[],
        &[],
    );
    // Below the child's apex the child answers DS (NODATA from its SOA).
    let r = ask_zones(&zones, &Q::new("ns.signed.example.com.", rtype::DS).wire(), Transport::Udp);
    assert_answer(
        &r,
        0,
        true,
        &[],
        &["signed.example.com. 5 SOA ns.signed.example.com. hm.signed.example.com. 1 2 3 4 5"],
        &[],
    );
    let zones = Two(ex(), archived(&sub));
    let r = ask_zones(&zones, &Q::new("sub.example.com.", rtype::DS).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
    // Without the parent the child's apex answers (NODATA).
    let r = ask_zones(archived(&sub), &Q::new("sub.example.com.", rtype::DS).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &[], &["sub.example.com. 5 SOA ns.sub.example.com. hm.sub.example.com. 1 2 3 4 5"], &[]);
    // The apex of the only zone: its parent is not ours.
    let r = ask(&Q::new("example.com.", rtype::DS));
    assert_answer(&r, 0, true, &[], &[NEG_SOA], &[]);
}

#[test]
fn buffer_of_exactly_the_query_length_is_never_overrun() {
    // With EDNS the query's own OPT leaves room for ours; without, no OPT is written.
    for q in seed_queries() {
        for t in [Transport::Udp, Transport::Tcp] {
            let (o, raw) = run_raw(ex(), &q, t, q.len());
            let Outcome::Reply { len, .. } = o else { panic!("{o:?}") };
            assert!(len <= q.len());
            parse_response(&raw);
        }
    }
}

#[test]
fn root_zone_referral() {
    let bytes = build(
        ".",
        "$TTL 86400\n. SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400\n\
         . NS a.root-servers.net.\nroot-servers.net. NS a.root-servers.net.\na.root-servers.net. A 198.41.0.4\n\
         com. NS a.gtld-servers.net.\nnet. NS a.gtld-servers.net.\na.gtld-servers.net. A 192.5.6.30\n",
    );
    let z = archived(&bytes);
    let r = ask_zones(z, &Q::new("www.Example.COM.", rtype::A).wire(), Transport::Udp);
    // The glue lies below "net", a sibling of "com": sent since it fits.
    assert_answer(
        &r,
        0,
        false,
        &[],
        &["com. 86400 NS a.gtld-servers.net."],
        &["a.gtld-servers.net. 86400 A 192.5.6.30"],
    );
    let r = ask_zones(z, &Q::new(".", rtype::NS).wire(), Transport::Udp);
    assert_answer(&r, 0, true, &[". 86400 NS a.root-servers.net."], &[], &["a.root-servers.net. 86400 A 198.41.0.4"]);
    let r = ask_zones(z, &Q::new("nope.", rtype::A).wire(), Transport::Udp);
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16);
    assert_eq!(r.authority, [". 86400 SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400"]);
}

#[test]
fn tcp_answer_past_the_compression_range() {
    // 1500 MX records: the answer runs past offset 16383, where names can no longer be
    // pointed at; the additional records for those targets are left out, never mangled.
    let mut text = String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..1500 {
        text.push_str(&format!("@ MX {i} mx{i:04}\nmx{i:04} A 10.0.{}.{}\n", i / 256, i % 256));
    }
    let bytes = build("mx.test.", &text);
    let r = ask_zones(archived(&bytes), &Q::new("mx.test.", rtype::MX).wire(), Transport::Tcp);
    assert!(!r.tc());
    assert_eq!(r.answer.len(), 1500);
    assert!(!r.additional.is_empty() && r.additional.len() < 1500, "{}", r.additional.len());
    assert!(r.raw.len() <= 65535);
    // Over UDP: TC, question only.
    let r = ask_zones(archived(&bytes), &Q::new("mx.test.", rtype::MX).edns(1232).wire(), Transport::Udp);
    assert!(r.tc());
    assert_eq!(r.counts(), [0, 0, 1]);
}

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

#[test]
fn batch_answers_equal_single_answers() {
    let names = [
        "example.com.",
        "www.example.com.",
        "WwW.Example.COM.",
        "mail.example.com.",
        "c1.example.com.",
        "loop1.example.com.",
        "nothere.example.com.",
        "x.sub.example.com.",
        "sub.example.com.",
        "signed.example.com.",
        "a.w.example.com.",
        "exists.w.example.com.",
        "ent.w.example.com.",
        "q.wc.example.com.",
        "x.d.example.com.",
        "cd.example.com.",
        "many.example.com.",
        "huge.example.com.",
        "_sip._tcp.example.com.",
        "b.c.example.com.",
        "www.example.net.",
    ];
    let types = [rtype::A, rtype::AAAA, rtype::MX, rtype::NS, rtype::DS, rtype::TXT, rtype::ANY, rtype::SOA];
    let mut queries: Vec<Vec<u8>> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (j, &t) in types.iter().enumerate() {
            let q = Q::new(n, t);
            queries.push(if (i + j) % 2 == 0 { q.edns(1232).wire() } else { q.wire() });
        }
    }
    // Malformed and refused ones among them.
    queries.insert(3, vec![0; 5]);
    queries.insert(40, b"\xbe\xef\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01".to_vec());
    queries.insert(41, b"\xbe\xef\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01".to_vec());
    // Many zones (the catalog's index, and the batch reading ahead through it): the example,
    // a child zone of it, an unavailable one below it, and others.
    let tmp = tempfile::tempdir().unwrap();
    let many = indexed_catalog(tmp.path());
    queries.extend(
        ["www.z3.test.", "z11.test.", "a.b.sub.example.com.", "in.w.example.com.", "w.example.com."]
            .iter()
            .map(|n| Q::new(n, rtype::A).wire()),
    );
    let cfg = Config::default();
    for zones in [&Catalog::default() as &dyn ZonesDyn, ex() as &dyn ZonesDyn, &many as &dyn ZonesDyn] {
        let mut bufs: Vec<Vec<u8>> = queries.iter().map(|q| [q.as_slice(), &[0u8; 4096]].concat()).collect();
        let lens: Vec<usize> = queries.iter().map(|q| q.len()).collect();
        let mut out = vec![Outcome::Drop(DropReason::Short); queries.len()];
        zones.batch(&mut bufs, &lens, &mut out, &cfg);
        assert!(queries.len() > 2 * BATCH);
        for (i, q) in queries.iter().enumerate() {
            let mut one = [q.as_slice(), &[0u8; 4096]].concat();
            let o = zones.single(&mut one, q.len(), &cfg);
            assert_eq!(out[i], o, "query {i}");
            if let Outcome::Reply { len, .. } = o {
                assert_eq!(bufs[i][..len], one[..len], "query {i}");
            }
        }
    }
}

#[test]
fn the_indexed_catalog_answers_from_the_zone_of_the_longest_apex() {
    let tmp = tempfile::tempdir().unwrap();
    let many = indexed_catalog(tmp.path());
    let ask_many = |n: &str| ask_zones(&many, &Q::new(n, rtype::A).wire(), Transport::Udp);
    let r = ask_many("www.z11.test.");
    assert!(r.aa() && r.rcode == 0 && r.answer == ["www.z11.test. 60 A 192.0.2.9"], "{r:?}");
    // The child zone, not the parent's delegation to it.
    let r = ask_many("b.sub.example.com.");
    assert!(r.aa() && r.answer == ["b.sub.example.com. 60 A 192.0.2.8"], "{r:?}");
    assert_eq!(ask_many("in.w.example.com.").rcode, rcode::SERVFAIL as u16);
    assert_eq!(ask_many("www.example.com.").rcode, 0);
    assert_eq!(ask_many("z12.test.").rcode, rcode::REFUSED as u16);
}

/// A catalog of more zones than are scanned (so with its apex index), from snapshot files
/// in `dir` as the server has them: example.com., its child zone sub.example.com., twelve
/// zones z<i>.test., and w.example.com. unavailable (SERVFAIL).
fn indexed_catalog(dir: &Path) -> Catalog {
    use crate::answer::catalog::{Apexes, Served, Versioned};
    let mut zones = vec![
        ("example.com.".to_string(), example_text()),
        (
            "sub.example.com.".to_string(),
            "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\nb A 192.0.2.8\n".into(),
        ),
    ];
    for i in 0..12 {
        zones.push((
            format!("z{i}.test."),
            format!("$TTL 60\n@ SOA ns hm {i} 2 3 4 5\n@ NS ns\nns A 192.0.2.{i}\nwww A 192.0.2.9\n"),
        ));
    }
    let mut names: Vec<Name> = Vec::new();
    let mut served = Vec::new();
    for (i, (origin, text)) in zones.iter().enumerate() {
        let name = Name::parse_text(origin.as_bytes(), None).unwrap();
        let loaded = load_text(Path::new("t.zone"), text.as_bytes(), &name);
        let path = dir.join(format!("{i}.snap"));
        crate::snapshot::write_snapshot(&path, &compile(&loaded.zone).unwrap()).unwrap();
        served.push(Some(Served::new(std::sync::Arc::new(crate::snapshot::Snapshot::open(&path).unwrap()))));
        names.push(name);
    }
    names.push(Name::parse_text(b"w.example.com.", None).unwrap());
    served.push(None);
    let apexes = Apexes::new(names.iter().map(|n| n.as_wire()));
    Catalog::from_parts(std::sync::Arc::new(apexes), Versioned::new(served))
}

/// Both entry points over either kind of zone set, for the test above.
trait ZonesDyn {
    fn batch(&self, bufs: &mut [Vec<u8>], lens: &[usize], out: &mut [Outcome], cfg: &Config);
    fn single(&self, buf: &mut [u8], len: usize, cfg: &Config) -> Outcome;
}

impl<Z: Zones> ZonesDyn for Z {
    fn batch(&self, bufs: &mut [Vec<u8>], lens: &[usize], out: &mut [Outcome], cfg: &Config) {
        answer_batch(self, bufs, lens, &[], Transport::Udp, cfg, out, &mut BatchScratch::new());
    }
    fn single(&self, buf: &mut [u8], len: usize, cfg: &Config) -> Outcome {
        answer(self, buf, len, Transport::Udp, cfg)
    }
}

// ---------------------------------------------------------------------------
// DNS cookies (RFC 7873, RFC 9018)
// ---------------------------------------------------------------------------

mod cookies {
    use super::*;
    use crate::cookie::{server_cookie, Secrets};
    use std::net::IpAddr;

    const NOW: u32 = 1_700_000_000;
    const CLIENT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn secrets() -> Secrets {
        Secrets::new([0x42; 16])
    }

    fn on() -> Config {
        Config { cookies: Some(secrets()), now: NOW, ..Config::default() }
    }

    fn ip() -> IpAddr {
        "192.0.2.77".parse().unwrap()
    }

    /// `name`/`qtype` with EDNS and a COOKIE option of `data`, another option before it.
    fn query(name: &str, qtype: u16, data: &[u8]) -> Vec<u8> {
        let mut q = Q::new(name, qtype).wire();
        q[11] = 1;
        let mut rdata = vec![0, 3, 0, 0]; // NSID, empty
        rdata.extend_from_slice(&crate::cookie::OPTION_CODE.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
        q.extend_from_slice(&opt_rr(1232, 0, false, &rdata));
        q
    }

    fn run(q: &[u8], cfg: &Config, client: Option<IpAddr>) -> (Outcome, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        buf[..q.len()].copy_from_slice(q);
        let o = answer_from(ex(), &mut buf, q.len(), Transport::Udp, cfg, client);
        if let Outcome::Reply { len, .. } = o {
            buf.truncate(len);
        }
        (o, buf)
    }

    /// The COOKIE option's data in a response (the OPT is the last record).
    fn reply_cookie(r: &Resp) -> Option<Vec<u8>> {
        let opt = r.opt?;
        let m = &r.raw;
        let rd = &m[m.len() - opt.rdlen as usize..];
        let mut o = 0;
        while o + 4 <= rd.len() {
            let (code, len) = (u16_at(rd, o), u16_at(rd, o + 2) as usize);
            if code == crate::cookie::OPTION_CODE {
                return Some(rd[o + 4..o + 4 + len].to_vec());
            }
            o += 4 + len;
        }
        None
    }

    fn ours(client: &[u8; 8]) -> Vec<u8> {
        let mut c = client.to_vec();
        c.extend_from_slice(&server_cookie(client, ip(), NOW, &secrets()));
        c
    }

    #[test]
    fn a_client_cookie_alone_gets_our_server_cookie() {
        let (o, raw) = run(&query("www.example.com.", rtype::A, &CLIENT), &on(), Some(ip()));
        assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::Unproven, .. }), "{o:?}");
        let r = parse_response(&raw);
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answer.len(), 1);
        assert_eq!(reply_cookie(&r), Some(ours(&CLIENT)));
    }

    #[test]
    fn our_server_cookie_is_valid_and_renewed() {
        let (_, raw) = run(&query("www.example.com.", rtype::A, &CLIENT), &on(), Some(ip()));
        let cookie = reply_cookie(&parse_response(&raw)).unwrap();
        // Half an hour later, the client comes back with it.
        let later = Config { now: NOW + 1800, ..on() };
        let (o, raw) = run(&query("www.example.com.", rtype::A, &cookie), &later, Some(ip()));
        assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::Valid, rcode: 0, .. }), "{o:?}");
        let renewed = reply_cookie(&parse_response(&raw)).unwrap();
        // Ten minutes after it was made, the same cookie comes back as it was.
        let soon = Config { now: NOW + 600, ..on() };
        let (o, raw) = run(&query("www.example.com.", rtype::A, &cookie), &soon, Some(ip()));
        assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::Valid, .. }), "{o:?}");
        assert_eq!(reply_cookie(&parse_response(&raw)), Some(cookie.clone()), "a fresh cookie is echoed");
        assert_eq!(&renewed[..8], &CLIENT);
        assert_eq!(u32::from_be_bytes(renewed[12..16].try_into().unwrap()), NOW + 1800, "a fresh timestamp");
        // From another address, or past its hour, it is not valid (and a new one is given).
        let (o, _) = run(&query("www.example.com.", rtype::A, &cookie), &later, Some("192.0.2.78".parse().unwrap()));
        assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::Unproven, rcode: 0, .. }), "{o:?}");
        let (o, _) =
            run(&query("www.example.com.", rtype::A, &cookie), &Config { now: NOW + 3601, ..on() }, Some(ip()));
        assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::Unproven, rcode: 0, .. }), "{o:?}");
    }

    #[test]
    fn a_cookie_option_of_a_wrong_length_is_formerr() {
        for len in [0, 7, 9, 15, 41] {
            let (o, raw) = run(&query("www.example.com.", rtype::A, &vec![9; len]), &on(), Some(ip()));
            let r = parse_response(&raw);
            assert_eq!(r.rcode, rcode::FORMERR as u16, "{len}: {o:?}");
            assert_eq!(reply_cookie(&r), None);
        }
    }

    #[test]
    fn errors_and_negative_answers_carry_the_cookie_too() {
        for (name, qtype, rc) in [
            ("nope.example.com.", rtype::A, rcode::NXDOMAIN as u16),
            ("www.example.net.", rtype::A, rcode::REFUSED as u16),
            ("www.example.com.", rtype::AXFR, rcode::NOTIMP as u16),
        ] {
            let (_, raw) = run(&query(name, qtype, &CLIENT), &on(), Some(ip()));
            let r = parse_response(&raw);
            assert_eq!(r.rcode, rc, "{name}");
            assert_eq!(reply_cookie(&r), Some(ours(&CLIENT)), "{name}");
        }
    }

    #[test]
    fn without_secrets_or_a_client_the_option_is_ignored() {
        let q = query("www.example.com.", rtype::A, &CLIENT);
        for (cfg, client) in [(Config::default(), Some(ip())), (on(), None)] {
            let (o, raw) = run(&q, &cfg, client);
            let r = parse_response(&raw);
            assert_eq!(r.rcode, 0);
            assert_eq!(r.opt.unwrap().rdlen, 0, "no options");
            assert!(matches!(o, Outcome::Reply { cookie: CookieSeen::None, .. }));
        }
        // A malformed one too: a server without cookies does not judge them.
        let (_, raw) = run(&query("www.example.com.", rtype::A, &[1; 5]), &Config::default(), Some(ip()));
        assert_eq!(parse_response(&raw).rcode, 0);
    }

    /// The room the option takes comes off what the answer may use: a reply that only just
    /// fits 512 octets without it is truncated with it, and never exceeds the limit.
    #[test]
    fn the_option_counts_against_the_size_limit() {
        let q = {
            let mut q = query("big.example.com.", rtype::TXT, &CLIENT);
            // EDNS size 512.
            let n = q.len();
            let at = n - (11 + 4 + 4 + 8) + 3; // the OPT's class: its payload size
            q[at..at + 2].copy_from_slice(&512u16.to_be_bytes());
            q
        };
        let (o, raw) = run(&q, &on(), Some(ip()));
        let Outcome::Reply { len, .. } = o else { panic!() };
        assert!(len <= 512, "{len}");
        assert_eq!(reply_cookie(&parse_response(&raw)), Some(ours(&CLIENT)));
    }

    /// The batch path gives the same bytes, with each query's own client.
    #[test]
    fn batches_answer_as_one_by_one() {
        let qs: Vec<Vec<u8>> = (0..40u8)
            .map(|i| {
                let mut c = CLIENT;
                c[0] = i;
                query(if i % 3 == 0 { "nope.example.com." } else { "www.example.com." }, rtype::A, &c)
            })
            .collect();
        let clients: Vec<IpAddr> = (0..40u8).map(|i| IpAddr::from([192, 0, 2, i])).collect();
        let mut bufs: Vec<Vec<u8>> = qs
            .iter()
            .map(|q| {
                let mut b = vec![0u8; 4096];
                b[..q.len()].copy_from_slice(q);
                b
            })
            .collect();
        let lens: Vec<usize> = qs.iter().map(|q| q.len()).collect();
        let mut out = vec![Outcome::Drop(DropReason::Short); 40];
        answer_batch(ex(), &mut bufs, &lens, &clients, Transport::Udp, &on(), &mut out, &mut BatchScratch::new());
        for i in 0..40 {
            let (o, raw) = run(&qs[i], &on(), Some(clients[i]));
            assert_eq!(out[i], o, "{i}");
            let Outcome::Reply { len, .. } = o else { panic!() };
            assert_eq!(bufs[i][..len], raw[..], "{i}");
        }
    }
}

// ---------------------------------------------------------------------------
// Response classes (what rate limiting counts)
// ---------------------------------------------------------------------------

#[test]
fn response_classes_and_the_names_they_count_against() {
    let lower = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap().to_lowercase();
    let apex = name_hash(lower("example.com.").as_wire());
    let class_of = |q: &[u8]| match outcome(q) {
        Outcome::Reply { class, class_name, .. } => (class, class_name),
        o => panic!("{o:?}"),
    };
    let q = |n: &str, t: u16| Q::new(n, t).wire();
    let www = name_hash(lower("www.example.com.").as_wire());
    assert_eq!(class_of(&q("WWW.example.com.", rtype::A)), (ResponseClass::Positive, www));
    assert_eq!(class_of(&q("c1.example.com.", rtype::A)).0, ResponseClass::Positive, "CNAME chain");
    assert_eq!(class_of(&q("nothere.example.com.", rtype::A)), (ResponseClass::NxDomain, apex));
    assert_eq!(class_of(&q("cnx.example.com.", rtype::A)), (ResponseClass::NxDomain, apex), "CNAME to nothing");
    assert_eq!(class_of(&q("www.example.com.", rtype::MX)), (ResponseClass::NoData, apex));
    assert_eq!(class_of(&q("b.c.example.com.", rtype::A)), (ResponseClass::NoData, apex), "empty non-terminal");
    assert_eq!(class_of(&q("host.sub.example.com.", rtype::A)), (ResponseClass::Referral, apex));
    assert_eq!(class_of(&q("x.w.example.com.", rtype::TXT)), (ResponseClass::Wildcard, apex));
    assert_eq!(class_of(&q("x.w.example.com.", rtype::AAAA)), (ResponseClass::Wildcard, apex), "wildcard NODATA");
    // Errors: outside every zone (no name), and one from inside a zone (YXDOMAIN).
    assert_eq!(class_of(&q("example.org.", rtype::A)), (ResponseClass::Error, 0));
    let mut formerr = q("www.example.com.", rtype::A);
    formerr[5] = 2;
    assert_eq!(class_of(&formerr), (ResponseClass::Error, 0));
    let long = format!("{0}.{0}.d.example.com.", "x".repeat(20));
    assert_eq!(class_of(&q(&long, rtype::A)).0, ResponseClass::Positive, "DNAME then CNAME");
    let too_long = format!("{}.l.example.com.", "p".repeat(50));
    let (class, _) = class_of(&q(&too_long, rtype::A));
    assert_eq!(class, ResponseClass::Error, "DNAME substitution too long: YXDOMAIN");
    // The batch path classes the same.
    let queries = [q("www.example.com.", rtype::A), q("nothere.example.com.", rtype::A), q("example.org.", rtype::A)];
    let mut bufs: Vec<Vec<u8>> = queries
        .iter()
        .map(|m| {
            let mut b = m.clone();
            b.resize(512, 0);
            b
        })
        .collect();
    let lens: Vec<usize> = queries.iter().map(Vec::len).collect();
    let mut out = [Outcome::Drop(DropReason::Short); 3];
    answer_batch(ex(), &mut bufs, &lens, &[], Transport::Udp, &Config::default(), &mut out, &mut BatchScratch::new());
    for (m, o) in queries.iter().zip(out) {
        assert_eq!(o, outcome(m));
    }
}

// ---------------------------------------------------------------------------
// DNSSEC (DO=1): signatures and denial proofs
// ---------------------------------------------------------------------------

/// A small NSEC-signed zone (signatures are made up: nothing here validates them). Canonical
/// order: @, b, c.ent, sub, w, *.w; the apex TXT RRset fits 512 octets only without its
/// RRSIG.
fn nsec_zone() -> &'static ArchivedZoneImage {
    static Z: OnceLock<Bytes> = OnceLock::new();
    let sig = |t: &str, labels: u8, ttl: u32| {
        format!("{ttl} RRSIG {t} 8 {labels} {ttl} 20300101000000 20200101000000 1 s.test. AAAA")
    };
    archived(Z.get_or_init(|| {
        let text = format!(
            "$ORIGIN s.test.\n$TTL 300\n\
             @ SOA ns.s.test. hm 1 7200 900 1209600 60\n@ {}\n@ NS ns.ext.test.\n@ {}\n{}@ {}\n\
             @ 60 NSEC b NS SOA TXT RRSIG NSEC\n@ {}\n\
             *.w A 192.0.2.9\n*.w {}\n*.w 60 NSEC *.w A RRSIG NSEC\n*.w {}\n\
             b A 192.0.2.1\nb {}\nb 60 NSEC c.ent A RRSIG NSEC\nb {}\n\
             c.ent A 192.0.2.2\nc.ent {}\nc.ent 60 NSEC sub A RRSIG NSEC\nc.ent {}\n\
             sub NS ns.ext.test.\nsub 60 NSEC w NS RRSIG NSEC\nsub {}\n\
             w A 192.0.2.3\nw {}\nw 60 NSEC *.w A RRSIG NSEC\nw {}\n",
            sig("SOA", 2, 300),
            sig("NS", 2, 300),
            txt_set("@", 4),
            sig("TXT", 2, 300),
            sig("NSEC", 2, 60),
            sig("A", 3, 300),
            sig("NSEC", 3, 60),
            sig("A", 3, 300),
            sig("NSEC", 3, 60),
            sig("A", 4, 300),
            sig("NSEC", 4, 60),
            sig("NSEC", 3, 60),
            sig("A", 3, 300),
            sig("NSEC", 3, 60),
        );
        build("s.test.", &text)
    }))
}

fn ask_do(z: &ArchivedZoneImage, name: &str, qtype: u16, size: u16) -> Resp {
    let mut q = Q::new(name, qtype).edns(size);
    q.opt.as_mut().unwrap().dnssec_ok = true;
    ask_zones(z, &q.wire(), Transport::Udp)
}

fn owners_of(s: &[String], t: &str) -> Vec<String> {
    let mut v: Vec<String> =
        s.iter().filter(|r| r.split(' ').nth(2) == Some(t)).map(|r| r.split(' ').next().unwrap().to_string()).collect();
    v.sort();
    v
}

fn covered_types(s: &[String]) -> Vec<String> {
    let mut v: Vec<String> = s
        .iter()
        .filter(|r| r.split(' ').nth(2) == Some("RRSIG"))
        .map(|r| r.split(' ').nth(3).unwrap().into())
        .collect();
    v.sort();
    v
}

#[test]
fn dnssec_positive_answer_carries_its_rrsig_and_do0_stays_as_it_was() {
    let z = nsec_zone();
    let r = ask_do(z, "B.s.test.", rtype::A, 1232);
    assert_eq!(r.rcode, 0);
    assert_eq!(r.answer.len(), 2, "{r:#?}");
    assert!(r.answer[0].starts_with("b.s.test. 300 A 192.0.2.1"));
    assert!(r.answer[1].starts_with("b.s.test. 300 RRSIG A 8 3 300"));
    assert!(r.authority.is_empty() && r.additional.is_empty());
    assert_eq!(r.opt.unwrap().flags, 0x8000, "DO echoed");
    let plain = ask_zones(z, &Q::new("B.s.test.", rtype::A).edns(1232).wire(), Transport::Udp);
    assert_eq!(plain.answer, ["b.s.test. 300 A 192.0.2.1"]);
}

#[test]
fn dnssec_nxdomain_proves_the_name_and_the_wildcard() {
    let z = nsec_zone();
    // bb sorts between b and c.ent; *.s.test (closest encloser s.test) between @ and *.w.
    let r = ask_do(z, "bb.s.test.", rtype::A, 1232);
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16);
    assert_eq!(owners_of(&r.authority, "NSEC"), ["b.s.test.", "s.test."], "{r:#?}");
    assert_eq!(covered_types(&r.authority), ["NSEC", "NSEC", "SOA"]);
    assert!(r.authority.iter().any(|a| a.starts_with("s.test. 60 SOA")), "negative SOA TTL: {r:#?}");
    assert!(r.authority.iter().any(|a| a.starts_with("s.test. 60 RRSIG SOA")), "its RRSIG, same TTL: {r:#?}");
    // One NSEC covers both: listed once.
    let r = ask_do(z, "a.s.test.", rtype::A, 1232);
    assert_eq!(owners_of(&r.authority, "NSEC"), ["s.test."], "{r:#?}");
    // Past the last name the chain wraps to its last NSEC.
    let r = ask_do(z, "zz.s.test.", rtype::A, 1232);
    assert_eq!(owners_of(&r.authority, "NSEC"), ["*.w.s.test.", "s.test."], "{r:#?}");
}

/// The shortcut for the wildcard of an NXDOMAIN (the closest encloser's own NSEC) agrees
/// with the binary search wherever it answers, and answers for most names just below an NSEC owner,
/// including children that sort before `*`.
#[test]
fn dnssec_own_nsec_cover_agrees_with_the_search() {
    static Z: OnceLock<Bytes> = OnceLock::new();
    let file = archived(Z.get_or_init(|| build("nsec.test.", include_str!("../../tests/data/signed/nsec.test.zone"))));
    let mut shortcuts = 0;
    for z in [nsec_zone(), file] {
        for n in z.node_ids().filter(|&n| z.rrset(n, rtype::NSEC).is_some()) {
            for first in [&b"\x01*"[..], b"\x01!", b"\x01\x00", b"\x02*a", b"\x01a", b"\x03zzz", b"\x02\xff\xff"] {
                let below = [first, z.node_name(n)].concat();
                if below.len() > 255 || z.find(&below).is_some() {
                    continue;
                }
                let searched = super::denial::nsec_cover(z, &below);
                let own = super::denial::own_nsec_covers(z, n, &below);
                // Where it answers it agrees (elsewhere the search runs: a chain whose last
                // NSEC does not point back to the apex, as in `nsec_zone`, is searched).
                assert!(!own || searched == Some(n), "{}", name_text(&below));
                shortcuts += usize::from(own);
            }
        }
    }
    assert!(shortcuts >= 10, "{shortcuts}");
}

#[test]
fn dnssec_nodata_and_empty_non_terminal() {
    let z = nsec_zone();
    let r = ask_do(z, "b.s.test.", rtype::MX, 1232);
    assert_eq!((r.rcode, r.answer.len()), (0, 0));
    assert_eq!(owners_of(&r.authority, "NSEC"), ["b.s.test."], "{r:#?}");
    // ent has no NSEC: the one covering it (b → c.ent).
    let r = ask_do(z, "ent.s.test.", rtype::A, 1232);
    assert_eq!((r.rcode, r.answer.len()), (0, 0));
    assert_eq!(owners_of(&r.authority, "NSEC"), ["b.s.test."], "{r:#?}");
}

#[test]
fn dnssec_wildcard_answer_and_nodata() {
    let z = nsec_zone();
    let r = ask_do(z, "x.w.s.test.", rtype::A, 1232);
    assert_eq!(r.answer.len(), 2, "{r:#?}");
    assert!(r.answer[1].starts_with("x.w.s.test. 300 RRSIG A 8 3 "), "the wildcard's RRSIG (labels 3)");
    // No closer match: the NSEC covering x.w (the last, *.w → apex).
    assert_eq!(owners_of(&r.authority, "NSEC"), ["*.w.s.test."], "{r:#?}");
    assert_eq!(covered_types(&r.authority), ["NSEC"]);
    // Wildcard NODATA: that NSEC also says the wildcard has no TXT (one NSEC for both).
    let r = ask_do(z, "x.w.s.test.", rtype::TXT, 1232);
    assert_eq!(owners_of(&r.authority, "NSEC"), ["*.w.s.test."], "{r:#?}");
    assert_eq!(covered_types(&r.authority), ["NSEC", "SOA"]);
}

#[test]
fn dnssec_insecure_referral_proves_no_ds() {
    let z = nsec_zone();
    let r = ask_do(z, "host.sub.s.test.", rtype::A, 1232);
    assert!(!r.aa());
    assert_eq!(owners_of(&r.authority, "NS"), ["sub.s.test."]);
    assert_eq!(owners_of(&r.authority, "NSEC"), ["sub.s.test."], "{r:#?}");
    assert_eq!(covered_types(&r.authority), ["NSEC"], "the NS at a cut is not signed");
    // DS asked at the cut: NODATA from the parent side, the same NSEC.
    let r = ask_do(z, "sub.s.test.", rtype::DS, 1232);
    assert!(r.aa() && r.answer.is_empty());
    assert_eq!(owners_of(&r.authority, "NSEC"), ["sub.s.test."], "{r:#?}");
}

#[test]
fn dnssec_answer_that_does_not_fit_with_its_rrsig_is_truncated() {
    let z = nsec_zone();
    // Four 113-octet TXT records fit 512 octets, with the RRSIG they do not: never the
    // RRset without its RRSIG (RFC 4035 §3.1.1), TC instead; whole with a larger buffer.
    let plain = ask_zones(z, &Q::new("s.test.", rtype::TXT).edns(512).wire(), Transport::Udp);
    assert!(!plain.tc() && plain.answer.len() == 4, "{plain:#?}");
    let r = ask_do(z, "s.test.", rtype::TXT, 512);
    assert!(r.tc(), "{r:#?}");
    assert_eq!(r.counts(), [0, 0, 1]);
    let r = ask_do(z, "s.test.", rtype::TXT, 1232);
    assert!(!r.tc());
    assert_eq!(covered_types(&r.answer), ["TXT"]);
    assert_eq!(r.answer.len(), 5);
    // NXDOMAIN keeps its rcode when truncated (as Knot): a long name, whose proofs do not
    // fit 512 octets.
    let long = format!("{0}.{0}.{0}.{1}.s.test.", "q".repeat(61), "q".repeat(60));
    let r = ask_do(z, &long, rtype::A, 512);
    assert!(r.tc(), "{r:#?}");
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16, "{r:#?}");
    assert_eq!(ask_do(z, &long, rtype::A, 1232).authority.len(), 6);
}

/// The NSEC3 zone signed by dnssec-signzone (tests/data/signed).
fn nsec3_zone() -> &'static ArchivedZoneImage {
    static Z: OnceLock<Bytes> = OnceLock::new();
    archived(Z.get_or_init(|| build("nsec3.test.", include_str!("../../tests/data/signed/nsec3.test.zone"))))
}

/// The NSEC3 records of a section: (owner hash label, next hash label).
fn nsec3_spans(s: &[String]) -> Vec<(String, String)> {
    s.iter()
        .filter(|r| r.split(' ').nth(2) == Some("NSEC3"))
        .map(|r| {
            let f: Vec<&str> = r.split(' ').collect();
            (f[0].split('.').next().unwrap().to_string(), f[7].to_ascii_lowercase())
        })
        .collect()
}

fn hash_label(z: &ArchivedZoneImage, name: &str) -> String {
    let w = Name::parse_text(name.as_bytes(), None).unwrap().to_lowercase();
    let l = crate::wire::nsec3::owner_label(w.as_wire(), &z.nsec3_salt, z.nsec3_iterations.to_native());
    String::from_utf8(l.to_vec()).unwrap()
}

fn matches(spans: &[(String, String)], h: &str) -> bool {
    spans.iter().any(|(o, _)| o == h)
}

fn covers(spans: &[(String, String)], h: &str) -> bool {
    spans.iter().any(|(o, n)| if o < n { o.as_str() < h && h < n.as_str() } else { h > o.as_str() || h < n.as_str() })
}

#[test]
fn dnssec_nsec3_nxdomain_is_the_closest_encloser_proof() {
    let z = nsec3_zone();
    assert_eq!(z.nsec3_iterations.to_native(), 5);
    for (name, ce) in [("nothere.nsec3.test.", "nsec3.test."), ("a.b.www.nsec3.test.", "www.nsec3.test.")] {
        let r = ask_do(z, name, rtype::A, 1232);
        assert_eq!(r.rcode, rcode::NXDOMAIN as u16, "{r:#?}");
        let spans = nsec3_spans(&r.authority);
        let next_closer = &name[name[..name.len() - ce.len() - 1].rfind('.').map_or(0, |i| i + 1)..];
        assert!(matches(&spans, &hash_label(z, ce)), "closest encloser {ce}: {r:#?}");
        assert!(covers(&spans, &hash_label(z, next_closer)), "next closer {next_closer}: {r:#?}");
        assert!(covers(&spans, &hash_label(z, &format!("*.{ce}"))), "wildcard: {r:#?}");
        assert!(spans.len() <= 3);
        assert_eq!(covered_types(&r.authority).iter().filter(|t| *t == "NSEC3").count(), spans.len());
    }
}

#[test]
fn dnssec_nsec3_nodata_ent_wildcard_and_hashed_owners() {
    let z = nsec3_zone();
    // NODATA: the NSEC3 matching the name.
    let r = ask_do(z, "www.nsec3.test.", rtype::MX, 1232);
    assert_eq!((r.rcode, r.answer.len()), (0, 0));
    let spans = nsec3_spans(&r.authority);
    assert_eq!(spans.len(), 1);
    assert!(matches(&spans, &hash_label(z, "www.nsec3.test.")), "{r:#?}");
    // An empty non-terminal has its NSEC3 too.
    let r = ask_do(z, "y.ent.nsec3.test.", rtype::A, 1232);
    assert!(matches(&nsec3_spans(&r.authority), &hash_label(z, "y.ent.nsec3.test.")), "{r:#?}");
    // A wildcard answer: the NSEC3 covering the next closer name.
    let r = ask_do(z, "a.b.wild.nsec3.test.", rtype::TXT, 1232);
    assert_eq!(r.answer.len(), 2, "{r:#?}");
    let spans = nsec3_spans(&r.authority);
    assert_eq!(spans.len(), 1);
    assert!(covers(&spans, &hash_label(z, "b.wild.nsec3.test.")), "{r:#?}");
    // An NSEC3 owner name is no name of the zone: NXDOMAIN, with or without DO.
    let owner = format!("{}.nsec3.test.", hash_label(z, "www.nsec3.test."));
    let r = ask_zones(z, &Q::new(&owner, rtype::A).wire(), Transport::Udp);
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16, "{r:#?}");
    let r = ask_do(z, &owner, rtype::NSEC3, 1232);
    assert_eq!(r.rcode, rcode::NXDOMAIN as u16, "{r:#?}");
    assert!(matches(&nsec3_spans(&r.authority), &hash_label(z, "nsec3.test.")));
    // Insecure delegation in an opt-out chain (no NSEC3 of its own): the closest provable
    // encloser proof — the apex's NSEC3 and the opt-out one covering the cut (RFC 5155
    // §7.2.7).
    let r = ask_do(z, "host.insecure.nsec3.test.", rtype::A, 1232);
    let spans = nsec3_spans(&r.authority);
    assert!(!matches(&spans, &hash_label(z, "insecure.nsec3.test.")));
    assert!(matches(&spans, &hash_label(z, "nsec3.test.")), "{r:#?}");
    assert!(covers(&spans, &hash_label(z, "insecure.nsec3.test.")), "{r:#?}");
    assert!(r.authority.iter().any(|a| a.contains(" NSEC3 1 1 5 ")), "opt-out flag");
    // Secure delegation: DS and its RRSIG, no NSEC3.
    let r = ask_do(z, "host.secure.nsec3.test.", rtype::A, 1232);
    assert_eq!(owners_of(&r.authority, "DS"), ["secure.nsec3.test."]);
    assert_eq!(covered_types(&r.authority), ["DS"], "{r:#?}");
}

#[test]
fn dnssec_precomputed_nsec3_of_every_name_is_its_hash() {
    let z = nsec3_zone();
    let mut with = 0;
    for n in z.node_ids() {
        let hashed = super::denial::nsec3_match(z, z.node_name(n));
        assert_eq!(z.nsec3_of(n), hashed, "{}", name_text(z.node_name(n)));
        with += usize::from(hashed.is_some());
        // And the NSEC3 covering the wildcard below it, as hashing `*.name` now finds it.
        if let Some((_, w)) = z.nsec3_proofs(n) {
            let wild = [b"\x01*", z.node_name(n)].concat();
            assert_eq!(Some(w), super::denial::nsec3_cover(z, &wild), "*.{}", name_text(z.node_name(n)));
        }
    }
    // Every name but the NSEC3 owners and what an opt-out span leaves out has one.
    assert!(with >= 10, "{with}");
    assert!(nsec_zone().nsec3_of(nsec_zone().apex.to_native()).is_none());
}

#[test]
fn dnssec_batch_answers_equal_single_answers() {
    let labels =
        ["", "www.", "nothere.", "a.b.nothere.", "y.ent.", "a.b.wild.", "host.insecure.", "host.secure.", "alias."];
    let types = [rtype::A, rtype::MX, rtype::DS, rtype::TXT, rtype::RRSIG, rtype::NSEC3, rtype::ANY];
    let cfg = Config::default();
    for (z, origin) in [(nsec3_zone(), "nsec3.test."), (nsec_zone(), "s.test.")] {
        let mut queries = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            for (j, &t) in types.iter().enumerate() {
                let mut q = Q::new(&format!("{l}{origin}"), t).edns([512, 1232, 4096][(i + j) % 3]);
                q.opt.as_mut().unwrap().dnssec_ok = (i + j) % 4 != 0;
                queries.push(q.wire());
            }
        }
        let mut bufs: Vec<Vec<u8>> = queries.iter().map(|q| [q.as_slice(), &[0u8; 4096]].concat()).collect();
        let lens: Vec<usize> = queries.iter().map(|q| q.len()).collect();
        let mut out = vec![Outcome::Drop(DropReason::Short); queries.len()];
        z.batch(&mut bufs, &lens, &mut out, &cfg);
        for (i, q) in queries.iter().enumerate() {
            let mut one = [q.as_slice(), &[0u8; 4096]].concat();
            let o = z.single(&mut one, q.len(), &cfg);
            assert_eq!(out[i], o, "query {i}");
            let Outcome::Reply { len, .. } = o else { panic!("query {i}: {o:?}") };
            assert_eq!(bufs[i][..len], one[..len], "query {i}");
            parse_response(&one[..len]);
        }
    }
}

// ---------------------------------------------------------------------------
// CH TXT version.bind / id.server (RFC 4892) and NSID (RFC 5001)
// ---------------------------------------------------------------------------

mod identity {
    use super::*;

    fn about() -> &'static Identity {
        static I: OnceLock<Identity> = OnceLock::new();
        I.get_or_init(|| Identity {
            version: Some(b"9.9".to_vec()),
            identity: Some(b"ns1".to_vec()),
            nsid: Some(vec![b'n'; 200]),
        })
    }

    fn cfg() -> Config {
        Config { identity: Some(about()), ..Config::default() }
    }

    /// The query `q` with an OPT of `size` holding an empty NSID option.
    fn with_nsid(q: &Q, size: u16) -> Vec<u8> {
        let mut m = q.wire();
        m[11] = 1;
        m.extend_from_slice(&opt_rr(size, 0, false, &[0, 3, 0, 0]));
        m
    }

    fn run(q: &[u8], cfg: &Config, t: Transport) -> Resp {
        let mut buf = vec![0u8; 65535];
        buf[..q.len()].copy_from_slice(q);
        let Outcome::Reply { len, .. } = answer(ex(), &mut buf, q.len(), t, cfg) else { panic!("no reply") };
        buf.truncate(len);
        parse_response(&buf)
    }

    /// The options of a response's OPT (the last record): (code, data).
    fn options(r: &Resp) -> Vec<(u16, Vec<u8>)> {
        let Some(opt) = r.opt else { return Vec::new() };
        let rd = &r.raw[r.raw.len() - opt.rdlen as usize..];
        let (mut o, mut out) = (0, Vec::new());
        while o + 4 <= rd.len() {
            let len = u16_at(rd, o + 2) as usize;
            out.push((u16_at(rd, o), rd[o + 4..o + 4 + len].to_vec()));
            o += 4 + len;
        }
        assert_eq!(o, rd.len(), "options fill the OPT exactly");
        out
    }

    fn ch(name: &str, qtype: u16) -> Q {
        Q { qclass: 3, ..Q::new(name, qtype) }
    }

    #[test]
    fn chaos_txt_answers_without_aa_and_with_ttl_zero() {
        let r = run(&ch("VERSION.bind.", rtype::TXT).wire(), &cfg(), Transport::Udp);
        assert_eq!((r.rcode, r.aa(), r.counts()), (0, false, [1, 0, 0]));
        // Owner whole and in lower case, class CH, TTL 0, one character-string.
        let a = &r.raw[r.question_end..];
        assert_eq!(a, b"\x07version\x04bind\x00\x00\x10\x00\x03\x00\x00\x00\x00\x00\x04\x039.9");
        let r = run(&ch("hostname.bind.", rtype::ANY).wire(), &cfg(), Transport::Tcp);
        assert!(r.raw.ends_with(b"\x00\x04\x03ns1"), "{r:#?}");
        for (name, qtype) in [("version.bind.", rtype::A), ("authors.bind.", rtype::TXT), ("example.com.", rtype::SOA)]
        {
            let r = run(&ch(name, qtype).wire(), &cfg(), Transport::Udp);
            assert_eq!((r.rcode, r.counts()), (rcode::REFUSED as u16, [0, 0, 0]), "{name}");
        }
        // Without an identity (a server with none configured) CH is refused.
        let r = run(&ch("id.server.", rtype::TXT).wire(), &Config::default(), Transport::Udp);
        assert_eq!(r.rcode, rcode::REFUSED as u16);
    }

    #[test]
    fn nsid_only_when_asked_on_every_kind_of_reply() {
        let nsid = (3u16, vec![b'n'; 200]);
        for q in
            [Q::new("www.example.com.", rtype::A), Q::new("nx.example.com.", rtype::A), Q::new("other.test.", rtype::A)]
        {
            let r = run(&with_nsid(&q, 1232), &cfg(), Transport::Udp);
            assert_eq!(options(&r), std::slice::from_ref(&nsid), "{r:#?}");
            let r = run(&q.clone().edns(1232).wire(), &cfg(), Transport::Udp);
            assert_eq!(options(&r), [], "not asked");
        }
        let r = run(&with_nsid(&ch("id.server.", rtype::TXT), 1232), &cfg(), Transport::Udp);
        assert_eq!((r.counts(), options(&r)), ([1, 0, 1], vec![nsid]));
    }

    /// The NSID's room is kept when the answer is filled: a reply that fits 512 octets
    /// only without the option is truncated (TC, no records) with the option, never
    /// longer than 512 and never without the option.
    #[test]
    fn nsid_room_is_kept_in_a_full_reply() {
        static Z: OnceLock<Bytes> = OnceLock::new();
        let text =
            format!("$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nt TXT \"{}\" \"{}\"\n", "x".repeat(200), "y".repeat(150));
        let z = archived(Z.get_or_init(|| build("t.test.", &text)));
        let ask = |q: &[u8]| {
            let mut buf = vec![0u8; 4096];
            buf[..q.len()].copy_from_slice(q);
            let Outcome::Reply { len, .. } = answer(z, &mut buf, q.len(), Transport::Udp, &cfg()) else { panic!() };
            buf.truncate(len);
            parse_response(&buf)
        };
        let q = Q::new("t.t.test.", rtype::TXT);
        let plain = ask(&q.clone().edns(512).wire());
        assert!(!plain.tc() && plain.counts()[0] == 1 && plain.raw.len() + 204 > 512, "{}", plain.raw.len());
        let asked = ask(&with_nsid(&q, 512));
        assert!(asked.tc() && asked.counts() == [0, 0, 1] && asked.raw.len() <= 512, "{asked:#?}");
        assert_eq!(options(&asked), [(3, vec![b'n'; 200])]);
        // With room, all of it.
        let asked = ask(&with_nsid(&q, 1232));
        assert!(!asked.tc() && asked.counts() == [1, 0, 1] && options(&asked).len() == 1);
    }
}

/// The outcome carries the question's type for the loops' counters: on answers, on
/// errors after the question was read, on CH answers; 0 when there is no question.
#[test]
fn outcomes_carry_the_question_type() {
    let qtype_of = |q: &[u8]| match run_raw(ex(), q, Transport::Udp, 4096).0 {
        Outcome::Reply { qtype, .. } => qtype,
        o => panic!("{o:?}"),
    };
    assert_eq!(qtype_of(&Q::new("www.example.com.", rtype::AAAA).wire()), rtype::AAAA);
    assert_eq!(qtype_of(&Q::new("elsewhere.test.", rtype::MX).wire()), rtype::MX);
    assert_eq!(qtype_of(&Q { qclass: 3, ..Q::new("id.server.", rtype::TXT) }.wire()), rtype::TXT);
    assert_eq!(qtype_of(&Q::new("example.com.", rtype::AXFR).wire()), rtype::AXFR);
    let mut broken = Q::new("www.example.com.", rtype::A).wire();
    broken[5] = 2; // two questions
    assert_eq!(qtype_of(&broken), 0);
    let mut batch = [Q::new("www.example.com.", rtype::TXT).wire(), Q::new("nx.example.com.", rtype::SRV).wire()];
    let lens = [batch[0].len(), batch[1].len()];
    for b in &mut batch {
        b.resize(4096, 0);
    }
    let mut out = [Outcome::Drop(DropReason::Short); 2];
    answer_batch(ex(), &mut batch, &lens, &[], Transport::Udp, &Config::default(), &mut out, &mut BatchScratch::new());
    assert!(
        matches!(out, [Outcome::Reply { qtype: rtype::TXT, .. }, Outcome::Reply { qtype: rtype::SRV, .. }]),
        "{out:?}"
    );
}
