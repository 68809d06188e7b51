//! The authoritative answer algorithm (RFC 1034 §4.3.2 with RFC 2308, 4592, 6604, 6672,
//! 6891, 8020, 8482 and 9471) over archived snapshots: query bytes in, response bytes out,
//! written in place over the query.
//!
//! Pure: no allocation, no I/O, no clock, no locks. It must not know about sockets, frames or
//! anything below UDP/TCP; the caller says which transport the query came over.

pub mod catalog;
mod denial;
mod query;

pub use catalog::{Catalog, Zones};
pub use query::{parse_query, Edns, Query, QueryError};

use crate::snapshot::{name_hash, render_rrset, ArchivedZoneImage, RrsetRec, NONE};
use crate::wire::message::{flag, opcode, rcode, Header};
use crate::wire::name::{self, MAX_NAME_LEN};
use crate::wire::rdata::rtype;
use crate::zone::flags;

/// Server-wide answer settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Our EDNS UDP payload size (RFC 6891 §6.2.5), sent in every OPT.
    pub edns_size: u16,
    /// DNS cookies (RFC 7873): with secrets, a query's COOKIE option is judged and the reply
    /// carries our server cookie (for queries whose client address is known); without, the
    /// option is ignored, as by a server that does not know it.
    pub cookies: Option<crate::cookie::Secrets>,
    /// Unix time (low 32 bits), for server cookies; the run loops set it once per batch.
    pub now: u32,
    /// Where [`Config::refresh`] finds the secrets in use (a reload may rotate them).
    pub shared_secrets: Option<&'static crate::cookie::SharedSecrets>,
    /// What we say about ourselves (CH TXT, NSID); none: CH queries are refused.
    pub identity: Option<&'static Identity>,
}

/// What the server tells about itself when asked: the TXT answers of the CHAOS-class
/// names `version.bind`/`version.server` and `id.server`/`hostname.bind` (RFC 4892), and
/// the NSID option (RFC 5001). Each is off when `None`; as Knot and NSD do, the answers
/// have TTL 0 and no AA, other CHAOS names and types are REFUSED.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// At most 255 octets (one character-string).
    pub version: Option<Vec<u8>>,
    /// At most 255 octets.
    pub identity: Option<Vec<u8>>,
    /// At most 255 octets (what fits an answer beside the rest).
    pub nsid: Option<Vec<u8>>,
}

impl Identity {
    /// The text answering CH TXT `qname` (lowercased wire form), if we answer it.
    fn chaos_text(&self, qname: &[u8]) -> Option<&[u8]> {
        match qname {
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => self.version.as_deref(),
            b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => self.identity.as_deref(),
            _ => None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config { edns_size: 1232, cookies: None, now: 0, shared_secrets: None, identity: None }
    }
}

impl Config {
    /// The NSID option we add to a reply to `edns`: the octets, if asked for and we have one.
    #[inline]
    fn nsid(&self, edns: Edns) -> Option<&'static [u8]> {
        if edns.nsid {
            self.identity.and_then(|i| i.nsid.as_deref())
        } else {
            None
        }
    }

    /// With cookies on: the time, and the secrets in use now. The run loops call it once
    /// per batch (the engine itself reads no clock and nothing shared).
    #[inline]
    pub fn refresh(&mut self) {
        if self.cookies.is_some() {
            self.now = crate::cookie::unix_now();
            if let Some(s) = self.shared_secrets {
                self.cookies = Some(**s.load());
            }
        }
    }
}

/// The COOKIE option of a reply: the client's cookie and our server cookie.
type ReplyCookie = [u8; crate::cookie::REPLY_LEN];
/// What the COOKIE option adds to an OPT.
const COOKIE_OPT_LEN: usize = 4 + crate::cookie::REPLY_LEN;

/// How the query arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Why a message got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than a DNS header.
    Short,
    /// QR=1: a response, never answered (RFC 1035 §4.1.1).
    Response,
}

/// What kind of response a reply is, in the classes that response rate limiting counts
/// apart (those of BIND's and Knot's RRL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ResponseClass {
    /// Records of the question's name and type (also through CNAME/DNAME).
    Positive = 0,
    /// The name does not exist.
    NxDomain = 1,
    /// The name exists without the type (RFC 2308 NODATA), or is an empty non-terminal.
    NoData = 2,
    /// A referral to a delegated child zone.
    Referral = 3,
    /// Synthesised from a wildcard (RFC 4592).
    Wildcard = 4,
    /// FORMERR, SERVFAIL, NOTIMP, REFUSED, YXDOMAIN, BADVERS.
    Error = 5,
}

impl ResponseClass {
    pub const ALL: [ResponseClass; 6] = [
        ResponseClass::Positive,
        ResponseClass::NxDomain,
        ResponseClass::NoData,
        ResponseClass::Referral,
        ResponseClass::Wildcard,
        ResponseClass::Error,
    ];

    /// The name operators know it by.
    pub fn name(self) -> &'static str {
        ["positive", "nxdomain", "nodata", "referral", "wildcard", "error"][self as usize]
    }
}

/// What to do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the first `len` bytes of the buffer. `cookie`: what the query's COOKIE option
    /// proved (with a valid server cookie of ours its source address is not spoofed). `class` and
    /// `class_name` say what rate limiting counts the response against: `class_name` is the
    /// hash of the question name for positive answers, of the zone's apex for the other
    /// classes, and 0 for errors outside any zone. `qtype`: the question's type (0 when
    /// the query's question could not be read), for the loops' counters.
    Reply {
        len: usize,
        rcode: u16,
        truncated: bool,
        cookie: CookieSeen,
        class: ResponseClass,
        class_name: u64,
        qtype: u16,
    },
    /// Send nothing.
    Drop(DropReason),
}

/// What a query's COOKIE option proved (RFC 7873 §5.2), judged only with cookies on and the
/// client's address known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieSeen {
    /// No option, or cookies not judged.
    None,
    /// A client cookie with no server cookie or one that is not ours (§5.2.3, §5.2.4): the
    /// reply ends with an OPT whose one option is the client cookie and a fresh server
    /// cookie of ours, so that a limited reply can become a BADCOOKIE (see
    /// `rrl::badcookie_reply`).
    Unproven,
    /// A valid server cookie of ours (§5.2.5): the source address is not spoofed.
    Valid,
}

/// Longest CNAME/DNAME chain followed (loop protection).
const MAX_CHAIN: usize = 16;
/// Additional-section nodes remembered to avoid duplicates.
const MAX_ADDITIONAL_NODES: usize = 32;
/// Size of an OPT RR without options.
const OPT_LEN: usize = 11;

/// Answers the query in `buf[..len]`, writing the response over it. `buf` should be at
/// least 512 bytes for UDP and 65535 for TCP; responses never exceed it.
pub fn answer(zones: &impl Zones, buf: &mut [u8], len: usize, transport: Transport, cfg: &Config) -> Outcome {
    answer_from(zones, buf, len, transport, cfg, None)
}

/// [`answer`] for a query from `client` (its source address): with cookies configured, the
/// query's COOKIE option is judged against it and the reply carries our server cookie.
pub fn answer_from(
    zones: &impl Zones,
    buf: &mut [u8],
    len: usize,
    transport: Transport,
    cfg: &Config,
    client: Option<std::net::IpAddr>,
) -> Outcome {
    let mut name = [0u8; 256];
    match prepare(zones, buf, len, cfg, &mut name, client) {
        Ok(p) => complete(&p, buf, transport, cfg, &mut name, NONE).outcome().with_qtype(p.q.qtype),
        Err(o) => o,
    }
}

/// Queries answered together by [`answer_batch`].
pub const BATCH: usize = 32;

/// Working memory of [`answer_batch`], kept by the caller from one batch to the next (so
/// that it is not cleared for every batch).
pub struct BatchScratch {
    names: [[u8; 256]; BATCH],
}

impl BatchScratch {
    pub fn new() -> Box<BatchScratch> {
        Box::new(BatchScratch { names: [[0; 256]; BATCH] })
    }
}

/// Answers several queries, `bufs[i][..lens[i]]` each, in place, like [`answer`]; the
/// outcomes go to `out[i]`. Answers are identical to answering one by one; the difference
/// is speed: the memory the queries need is fetched for all of them before any is answered,
/// so that their cache misses overlap instead of adding up. Only the first
/// `min(bufs.len(), lens.len(), out.len())` entries are used; `clients[i]`, where given, is
/// the source address of query i (for cookies, as [`answer_from`]).
#[allow(clippy::too_many_arguments)]
pub fn answer_batch<B: AsMut<[u8]>>(
    zones: &impl Zones,
    bufs: &mut [B],
    lens: &[usize],
    clients: &[std::net::IpAddr],
    transport: Transport,
    cfg: &Config,
    out: &mut [Outcome],
    scratch: &mut BatchScratch,
) {
    let n = bufs.len().min(lens.len()).min(out.len());
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let cl = clients.get(start..end).unwrap_or_default();
        answer_chunk(
            zones,
            &mut bufs[start..end],
            &lens[start..end],
            cl,
            transport,
            cfg,
            &mut out[start..end],
            scratch,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn answer_chunk<B: AsMut<[u8]>>(
    zones: &impl Zones,
    bufs: &mut [B],
    lens: &[usize],
    clients: &[std::net::IpAddr],
    transport: Transport,
    cfg: &Config,
    out: &mut [Outcome],
    scratch: &mut BatchScratch,
) {
    let names = &mut scratch.names;
    let mut ready: [Option<Prepared>; BATCH] = [None; BATCH];
    if zones.reads_ahead() {
        // All the queries read first; then their zones' memory, for the whole batch at once;
        // then the zones found.
        let mut parsed: [Option<Query>; BATCH] = [None; BATCH];
        for (i, b) in bufs.iter_mut().enumerate() {
            let buf = b.as_mut();
            match parse_query(&buf[..lens[i].min(buf.len())], &mut names[i]) {
                Ok(q) => parsed[i] = Some(q),
                Err(e) => out[i] = unparsed(e, buf, cfg),
            }
        }
        let mut qnames: [&[u8]; BATCH] = [&[]; BATCH];
        let mut k = 0;
        for (q, name) in parsed.iter().zip(names.iter()) {
            if let Some(q) = q {
                qnames[k] = &name[..q.qname_len];
                k += 1;
            }
        }
        std::hint::black_box(zones.warm(&qnames[..k]));
        for (i, b) in bufs.iter_mut().enumerate() {
            let Some(q) = parsed[i] else { continue };
            match prepare_query(zones, q, b.as_mut(), lens[i], cfg, &mut names[i], clients.get(i).copied()) {
                Ok(p) => ready[i] = Some(p),
                Err(o) => out[i] = o.with_qtype(q.qtype),
            }
        }
    } else {
        // A few zones, in the cache already: each query read and its zone found in one
        // go (the query kept in registers).
        for (i, b) in bufs.iter_mut().enumerate() {
            match prepare(zones, b.as_mut(), lens[i], cfg, &mut names[i], clients.get(i).copied()) {
                Ok(p) => ready[i] = Some(p),
                Err(o) => out[i] = o,
            }
        }
    }
    // The index slots, then the node blocks they lead to, then the fragment the answer
    // will copy: independent loads across the batch, so many are in flight at once. What
    // they bring into the cache is what answering reads.
    let mut warm = 0u64;
    for p in ready.iter().flatten() {
        warm ^= p.zone.first_slot(p.h);
    }
    let mut nodes = [NONE; BATCH];
    for (p, n) in ready.iter().zip(nodes.iter_mut()) {
        if let Some(p) = p {
            *n = p.zone.candidate(p.h);
            if *n != NONE {
                warm ^= p.zone.node_flags(*n) as u64;
            }
        }
    }
    for (n, p) in nodes.iter().zip(&ready) {
        if let (Some(p), true) = (p, *n != NONE) {
            if let Some(r) = p.zone.rrset(*n, p.q.qtype).or_else(|| p.zone.rrset(*n, rtype::CNAME)) {
                let f = p.zone.fragment(&r);
                warm ^= (f[0] ^ f[f.len() - 1]) as u64;
            }
        }
    }
    std::hint::black_box(warm);
    for (i, b) in bufs.iter_mut().enumerate() {
        if let Some(p) = &ready[i] {
            out[i] = complete(p, b.as_mut(), transport, cfg, &mut names[i], nodes[i]).outcome().with_qtype(p.q.qtype);
        }
    }
}

/// A query that was read and whose zone was found: what answering it needs besides the
/// message and the lowercased question name.
#[derive(Clone, Copy)]
struct Prepared<'z> {
    q: Query,
    zone: &'z ArchivedZoneImage,
    /// Index hash of the question name.
    h: u64,
    /// The reply's COOKIE option, and whether the query's server cookie was ours.
    cookie: Option<(ReplyCookie, bool)>,
}

/// Reads the query and picks the zone; any other outcome is final (the reply, if any, is
/// already in `buf`). Inlined so that the result is not passed through memory (reading back
/// a struct just written field by field stalls the load).
#[inline(always)]
fn prepare<'z>(
    zones: &'z impl Zones,
    buf: &mut [u8],
    len: usize,
    cfg: &Config,
    name: &mut [u8; 256],
    client: Option<std::net::IpAddr>,
) -> Result<Prepared<'z>, Outcome> {
    let q = parse_query(&buf[..len.min(buf.len())], name).map_err(|e| unparsed(e, buf, cfg))?;
    prepare_query(zones, q, buf, len, cfg, name, client).map_err(|o| o.with_qtype(q.qtype))
}

/// The outcome of a message that is not a query we can read.
fn unparsed(e: QueryError, buf: &mut [u8], cfg: &Config) -> Outcome {
    match e {
        QueryError::Short => Outcome::Drop(DropReason::Short),
        QueryError::Response => Outcome::Drop(DropReason::Response),
        QueryError::Malformed { question_end } => malformed(buf, question_end, cfg),
    }
}

/// [`prepare`] once the query is read.
fn prepare_query<'z>(
    zones: &'z impl Zones,
    q: Query,
    buf: &mut [u8],
    len: usize,
    cfg: &Config,
    name: &mut [u8; 256],
    client: Option<std::net::IpAddr>,
) -> Result<Prepared<'z>, Outcome> {
    let edns = q.edns;
    let mut cookie = None;
    if let (Some(e), Some(secrets), Some(ip)) = (edns, &cfg.cookies, client) {
        if let Some(data) = e.cookie(&buf[..len]) {
            use crate::cookie::{check, server_cookie, Verdict, CLIENT_LEN};
            let verdict = check(data, ip, cfg.now, secrets);
            let Some(client_cookie) = verdict.client() else {
                // A COOKIE option of a length no cookie has: FORMERR (RFC 7873 §5.2.2).
                return Err(error_reply(buf, Some(q.question_end), edns, rcode::FORMERR as u16, cfg, None));
            };
            let mut c = [0u8; crate::cookie::REPLY_LEN];
            c[..CLIENT_LEN].copy_from_slice(client_cookie);
            let valid = matches!(verdict, Verdict::Valid { .. });
            match data.get(CLIENT_LEN..) {
                // Ours, of the current secret and less than half an hour old: sent back as it
                // came (RFC 9018 §4.3), which saves making a new one.
                Some(ours)
                    if matches!(verdict, Verdict::Valid { current: true, .. })
                        && crate::cookie::fresh(ours, cfg.now) =>
                {
                    c[CLIENT_LEN..].copy_from_slice(ours)
                }
                _ => c[CLIENT_LEN..].copy_from_slice(&server_cookie(client_cookie, ip, cfg.now, secrets)),
            }
            cookie = Some((c, valid));
        }
    }
    let reply_cookie = cookie.as_ref().map(|(c, _)| c);
    let fail = |buf: &mut [u8], rc: u16| {
        Err(error_reply(buf, Some(q.question_end), edns, rc, cfg, reply_cookie).with_cookie(cookie))
    };
    if edns.is_some_and(|e| e.version > 0) {
        return fail(buf, rcode::BADVERS);
    }
    if q.opcode != opcode::QUERY {
        // NOTIFY and UPDATE reach the engine only when there is no control side to hand
        // them to.
        return Err(not_implemented(buf, Some(q.question_end), edns, cfg, reply_cookie).with_cookie(cookie));
    }
    // IN, or ANY (answered from our IN data, as Knot and NSD do).
    if q.qclass != 1 && q.qclass != 255 {
        if q.qclass == CLASS_CH {
            return Err(chaos(buf, &q, &name[..q.qname_len], cfg, reply_cookie).with_cookie(cookie));
        }
        return fail(buf, rcode::REFUSED as u16);
    }
    match q.qtype {
        rtype::OPT | rtype::TSIG | rtype::TKEY => return fail(buf, rcode::FORMERR as u16),
        rtype::AXFR | rtype::IXFR | rtype::MAILA | rtype::MAILB => return fail(buf, rcode::NOTIMP as u16),
        _ => {}
    }
    // DS belongs to the parent side of a cut (RFC 4035 §3.1.4.1): when we serve the parent
    // too, the zone holding the name's parent answers, not the child whose apex it is.
    let qname = &name[..q.qname_len];
    let found = match q.qtype {
        rtype::DS if qname.len() > 1 => {
            zones.find_zone(&qname[qname[0] as usize + 1..]).or_else(|| zones.find_zone(qname))
        }
        _ => zones.find_zone(qname),
    };
    if zones.unavailable(qname, found.map(|z| z.origin.len())) {
        return fail(buf, rcode::SERVFAIL as u16);
    }
    let Some(zone) = found else {
        return fail(buf, rcode::REFUSED as u16);
    };
    Ok(Prepared { q, zone, h: q.qname_hash, cookie })
}

/// Answers a prepared query; `candidate` is [`ArchivedZoneImage::candidate`] for its name's
/// hash if known (else `NONE`).
fn complete(
    p: &Prepared,
    buf: &mut [u8],
    transport: Transport,
    cfg: &Config,
    name: &mut [u8; 256],
    candidate: u32,
) -> Reply {
    let (q, zone) = (&p.q, p.zone);
    let edns = q.edns;
    let cap = match transport {
        Transport::Udp => match edns {
            Some(e) => e.udp_size.max(512).min(cfg.edns_size) as usize,
            None => 512,
        },
        Transport::Tcp => 65535,
    }
    .min(buf.len());
    let reserve = match (edns, p.cookie) {
        (None, _) => 0,
        (Some(e), None) => OPT_LEN + cfg.nsid(e).map_or(0, |n| 4 + n.len()),
        (Some(e), Some(_)) => OPT_LEN + COOKIE_OPT_LEN + cfg.nsid(e).map_or(0, |n| 4 + n.len()),
    };
    // The section counts are kept in the header as records are written.
    buf[6..12].fill(0);
    let mut r = Responder {
        buf,
        z: zone,
        w: q.question_end,
        limit: cap.saturating_sub(reserve),
        apex_off: 12 + q.qname_len - zone.origin.len(),
        added: [NONE; MAX_ADDITIONAL_NODES],
        n_added: 0,
        class: ResponseClass::Positive,
        dnssec: edns.is_some_and(|e| e.dnssec_ok) && zone.is_signed(),
        proofs: [NONE; MAX_PROOFS],
        n_proofs: 0,
    };
    let (rc, aa, tc) = match r.resolve(q, name, p.h, candidate) {
        Ok((rc, aa)) => (rc, aa, false),
        Err(Truncated { aa, rcode }) => {
            r.w = q.question_end;
            r.buf[6..12].fill(0);
            (rcode, aa, true)
        }
    };
    let (w, class) = (r.w, r.class);
    let class_name = match class {
        ResponseClass::Positive => p.h,
        _ => name_hash(&zone.origin),
    };
    let reply = finish_reply(buf, w, rc as u16, aa, tc, edns, cfg, p.cookie.as_ref().map(|(c, _)| c))
        .classed(class, class_name);
    match p.cookie {
        Some((_, true)) => Reply(reply.0 | VALID_COOKIE, reply.1),
        Some((_, false)) => Reply(reply.0 | UNPROVEN_COOKIE, reply.1),
        None => reply,
    }
}

/// The response did not fit: send TC with the question only.
struct Truncated {
    aa: bool,
    /// The rcode the whole answer would have had (Knot keeps NXDOMAIN with TC).
    rcode: u8,
}

struct Responder<'b, 'z> {
    buf: &'b mut [u8],
    z: &'z ArchivedZoneImage,
    /// Write position.
    w: usize,
    /// Where the sections must end (room for OPT kept aside).
    limit: usize,
    /// Offset of the zone apex inside the question name.
    apex_off: usize,
    added: [u32; MAX_ADDITIONAL_NODES],
    n_added: usize,
    /// What the response is, as far as it is written.
    class: ResponseClass,
    /// DO=1 on a signed zone: RRSIGs with authoritative RRsets, denial proofs (RFC 4035
    /// §3.1, RFC 5155 §7.2).
    dnssec: bool,
    /// Nodes whose NSEC (or NSEC3) RRset goes to authority once the answer section is
    /// complete, each once.
    proofs: [u32; MAX_PROOFS],
    n_proofs: usize,
}

/// Most NSEC/NSEC3 RRsets one answer needs: one per wildcard met along a CNAME chain,
/// and three for an NSEC3 closest-encloser proof where it ends.
const MAX_PROOFS: usize = MAX_CHAIN + 3;

const ANSWER: usize = 0;
const AUTHORITY: usize = 1;
const ADDITIONAL: usize = 2;

/// What the zone says about one name.
enum Lookup {
    /// The name exists (with data, or as an empty non-terminal).
    Node(u32),
    /// The name matched the wildcard `node`.
    Wildcard(u32),
    /// The name lies at or below the zone cut `node`.
    Delegation(u32),
    /// The name lies below the DNAME at `node`.
    Dname(u32),
    NxDomain,
}

impl Responder<'_, '_> {
    /// Runs the lookup for the question, writing sections. Returns (rcode, AA).
    fn resolve(
        &mut self,
        q: &Query,
        name: &mut [u8; 256],
        qname_hash: u64,
        candidate: u32,
    ) -> Result<(u8, bool), Truncated> {
        let z = self.z;
        let qtype = q.qtype;
        let mut name_len = q.qname_len;
        // Where the current name is written in the message.
        let mut name_off = 12usize;
        // Names already looked up (by hash): meeting one again is a loop (RFC 1034 §3.6.2),
        // and answering it again would repeat records (RFC 2181 §5). Names, not nodes: a
        // wildcard CNAME answers for many names.
        // The index hash serves: 64 bits, so a false "loop" is not a practical worry.
        let mut seen = [0u64; MAX_CHAIN];
        for step in 0..MAX_CHAIN {
            let h = if step == 0 { qname_hash } else { name_hash(&name[..name_len]) };
            if seen[..step].contains(&h) {
                self.flush_proofs().map_err(|_| Truncated { aa: true, rcode: rcode::NOERROR })?;
                return Ok((rcode::NOERROR, true));
            }
            seen[step] = h;
            let aa = true;
            let trunc = Truncated { aa, rcode: rcode::NOERROR };
            // A wildcard's RRsets answer for the name itself: owners point at `name_off`.
            let hint = if step == 0 { candidate } else { NONE };
            let node = match self.lookup(&name[..name_len], h, hint, qtype) {
                Lookup::Node(n) => n,
                Lookup::Wildcard(n) => {
                    self.class = ResponseClass::Wildcard;
                    if self.dnssec {
                        self.deny_closer_match(&name[..name_len], n);
                    }
                    n
                }
                Lookup::Delegation(cut) => {
                    self.class = ResponseClass::Referral;
                    self.referral(cut, &name[..name_len], name_off)
                        .map_err(|_| Truncated { aa: step > 0, rcode: rcode::NOERROR })?;
                    return Ok((rcode::NOERROR, step > 0));
                }
                Lookup::Dname(d) => {
                    match self.synthesise(d, name, &mut name_len, &mut name_off) {
                        Ok(true) => {}
                        Ok(false) => {
                            self.class = ResponseClass::Error;
                            return Ok((rcode::YXDOMAIN, aa));
                        }
                        Err(()) => return Err(trunc),
                    }
                    // The synthesised CNAME is the answer to a CNAME query.
                    if qtype == rtype::CNAME || !name::is_suffix_lower(&name[..name_len], &z.origin) {
                        self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                        return Ok((rcode::NOERROR, aa));
                    }
                    continue;
                }
                Lookup::NxDomain => {
                    self.class = ResponseClass::NxDomain;
                    if self.dnssec {
                        self.deny_name(&name[..name_len]);
                    }
                    self.negative().map_err(|_| Truncated { aa, rcode: rcode::NXDOMAIN })?;
                    return Ok((rcode::NXDOMAIN, aa));
                }
            };
            if qtype == rtype::ANY {
                // RFC 8482 §4.1: one RRset is enough; the first in type order.
                if let Some(r) = z.node_rrsets(node).next() {
                    if r.rtype == rtype::RRSIG {
                        for r in z.rrsets_of_type(node, rtype::RRSIG) {
                            self.push(ANSWER, &r, name_off).map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                        }
                        return Ok((rcode::NOERROR, aa));
                    }
                    let base = self.w;
                    self.push_signed(ANSWER, node, &r, name_off).map_err(|_| trunc)?;
                    self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                    self.additionals_of(&r, base);
                    return Ok((rcode::NOERROR, aa));
                }
                self.nodata();
                if self.dnssec {
                    self.deny_type(&name[..name_len], node);
                }
                self.negative().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                return Ok((rcode::NOERROR, aa));
            }
            if qtype == rtype::RRSIG {
                // One fragment per covered type: the answer is all of them.
                let mut any = false;
                for r in z.rrsets_of_type(node, rtype::RRSIG) {
                    self.push(ANSWER, &r, name_off).map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                    any = true;
                }
                if any {
                    self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                    return Ok((rcode::NOERROR, aa));
                }
            } else if let Some(r) = z.rrset(node, qtype) {
                let base = self.w;
                self.push_signed(ANSWER, node, &r, name_off).map_err(|_| trunc)?;
                self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                self.additionals_of(&r, base);
                return Ok((rcode::NOERROR, aa));
            }
            // A CNAME is not followed for NSEC, which belongs to the name itself (as Knot).
            if let Some(r) = z.rrset(node, rtype::CNAME).filter(|_| qtype != rtype::NSEC) {
                let base = self.w;
                self.push_signed(ANSWER, node, &r, name_off).map_err(|_| trunc)?;
                // The target is the rdata of the one CNAME RR: its name starts there.
                let target_off = base + 12;
                let mut tmp = [0u8; 256];
                let Ok((_, tlen)) = name::read_compressed(&self.buf[..self.w], target_off, &mut tmp) else {
                    self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                    return Ok((rcode::NOERROR, aa));
                };
                name[..tlen].copy_from_slice(&tmp[..tlen]);
                name::lowercase_in_place(&mut name[..tlen]);
                name_len = tlen;
                name_off = target_off;
                if !name::is_suffix_lower(&name[..name_len], &z.origin) || name_off > 0x3FFF {
                    self.flush_proofs().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
                    return Ok((rcode::NOERROR, aa));
                }
                continue;
            }
            // NODATA (RFC 2308 §2.2), also for empty non-terminals (RFC 8020).
            self.nodata();
            if self.dnssec {
                self.deny_type(&name[..name_len], node);
            }
            self.negative().map_err(|_| Truncated { aa, rcode: rcode::NOERROR })?;
            return Ok((rcode::NOERROR, aa));
        }
        self.flush_proofs().map_err(|_| Truncated { aa: true, rcode: rcode::NOERROR })?;
        Ok((rcode::NOERROR, true))
    }

    /// Finds what the zone holds for `name` (lowercased, inside the zone); `candidate` as
    /// for [`ArchivedZoneImage::find_with_candidate`].
    fn lookup(&self, name: &[u8], h: u64, candidate: u32, qtype: u16) -> Lookup {
        let z = self.z;
        if let Some(n) = z.find_with_candidate(name, h, candidate).filter(|&n| !self.hashed_owner(n)) {
            let f = z.node_flags(n);
            if f & (flags::BELOW_CUT | flags::BELOW_DNAME) != 0 {
                if let Some(l) = self.occluder(z.node_parent(n)) {
                    return l;
                }
            }
            // At a zone cut only DS (and the NSEC/RRSIG that go with it) belong to us.
            if f & flags::CUT != 0 && qtype != rtype::DS {
                return Lookup::Delegation(n);
            }
            return Lookup::Node(n);
        }
        // Closest encloser: strip labels until a name of the tree is found; every ancestor
        // up to the apex is one, so this ends at the apex at the latest.
        let mut off = 0;
        while name[off] != 0 {
            off += name[off] as usize + 1;
            let suffix = &name[off..];
            let Some(enc) = z.find(suffix).filter(|&n| !self.hashed_owner(n)) else { continue };
            let f = z.node_flags(enc);
            if f & (flags::BELOW_CUT | flags::BELOW_DNAME | flags::CUT | flags::DNAME) != 0 {
                if let Some(l) = self.occluder(enc) {
                    return l;
                }
            }
            if f & flags::WILDCARD_CHILD != 0 {
                let mut wild = [0u8; 257];
                wild[0] = 1;
                wild[1] = b'*';
                let wlen = 2 + suffix.len();
                if wlen <= MAX_NAME_LEN {
                    wild[2..wlen].copy_from_slice(suffix);
                    if let Some(w) = z.find(&wild[..wlen]) {
                        if qtype != rtype::DS || z.node_flags(w) & flags::CUT == 0 {
                            return Lookup::Wildcard(w);
                        }
                    }
                }
            }
            return Lookup::NxDomain;
        }
        Lookup::NxDomain
    }

    /// The topmost zone cut or DNAME at `from` or above it (a cut below the apex; a DNAME at
    /// the apex too).
    fn occluder(&self, from: u32) -> Option<Lookup> {
        let z = self.z;
        let mut cur = from;
        let mut top = None;
        while cur != NONE {
            let f = z.node_flags(cur);
            if f & flags::APEX != 0 {
                // The apex is never a cut, but a DNAME there redirects every name below it
                // (RFC 6672 §2.3).
                if f & flags::DNAME != 0 {
                    top = Some(Lookup::Dname(cur));
                }
                break;
            }
            if f & flags::CUT != 0 {
                top = Some(Lookup::Delegation(cur));
            } else if f & flags::DNAME != 0 {
                top = Some(Lookup::Dname(cur));
            }
            cur = z.node_parent(cur);
        }
        top
    }

    /// Offset in the message of the suffix of the name at `off` that has `keep` labels.
    fn suffix_offset(&self, off: usize, name_labels: usize, keep: usize) -> Option<usize> {
        let mut pos = off;
        let mut skip = name_labels.checked_sub(keep)?;
        loop {
            let b = *self.buf.get(pos)?;
            if b & 0xC0 == 0xC0 {
                let lo = *self.buf.get(pos + 1)? as usize;
                pos = ((b as usize & 0x3F) << 8) | lo;
                continue;
            }
            if skip == 0 {
                return Some(pos);
            }
            if b == 0 {
                return None;
            }
            pos += b as usize + 1;
            skip -= 1;
        }
    }

    /// A referral to the zone cut `cut` (RFC 1034 §4.3.2 step 3b): NS in authority, glue in
    /// additional. All in-domain glue (below the cut) must fit, or the response is truncated;
    /// sibling glue (below another cut) and other in-zone addresses go in if they fit
    /// (RFC 9471). In-domain glue goes first so that the others cannot crowd it out.
    fn referral(&mut self, cut: u32, name: &[u8], name_off: usize) -> Result<(), ()> {
        let z = self.z;
        let Some(ns) = z.rrset(cut, rtype::NS) else { return Err(()) };
        let cut_labels = labels(z.node_name(cut));
        let owner = self.suffix_offset(name_off, labels(name), cut_labels).ok_or(())?;
        let base = self.w;
        self.push(AUTHORITY, &ns, owner)?;
        if self.dnssec {
            // RFC 4035 §3.1.4: the DS RRset and its RRSIGs, or the proof that there is none.
            match z.rrset(cut, rtype::DS) {
                Some(ds) => self.push_signed(AUTHORITY, cut, &ds, owner)?,
                None => {
                    self.deny_type(z.node_name(cut), cut);
                    self.flush_proofs()?;
                }
            }
        }
        let cut_name = z.node_name(cut);
        // In-domain glue now; the rest remembered for afterwards (past the first 32, they
        // are left out: they are optional).
        let mut optional = [(0usize, NONE); MAX_ADDITIONAL_NODES];
        let mut n_optional = 0;
        for a in z.additionals(&ns) {
            let owner = base + a.name_at as usize;
            if !name::is_suffix_lower(z.node_name(a.node), cut_name) {
                if owner <= 0x3FFF && n_optional < optional.len() {
                    optional[n_optional] = (owner, a.node);
                    n_optional += 1;
                }
                continue;
            }
            if owner > 0x3FFF {
                return Err(());
            }
            for r in z.addresses(a.node).into_iter().flatten() {
                self.push(ADDITIONAL, &r, owner)?;
            }
        }
        // Addresses that are the zone's own data (not glue) come with their RRSIGs.
        for &(owner, node) in &optional[..n_optional] {
            for r in z.addresses(node).into_iter().flatten() {
                let _ = self.push_signed(ADDITIONAL, node, &r, owner);
            }
        }
        Ok(())
    }

    /// DNAME substitution (RFC 6672 §3.1): the DNAME RR and a CNAME synthesised from it.
    /// Returns false when the new name is too long (YXDOMAIN), with the DNAME in place.
    fn synthesise(
        &mut self,
        d: u32,
        name: &mut [u8; 256],
        name_len: &mut usize,
        name_off: &mut usize,
    ) -> Result<bool, ()> {
        let z = self.z;
        let Some(dn) = z.rrset(d, rtype::DNAME) else { return Err(()) };
        let owner_labels = labels(z.node_name(d));
        let cur_labels = labels(&name[..*name_len]);
        let owner = self.suffix_offset(*name_off, cur_labels, owner_labels).ok_or(())?;
        let base = self.w;
        self.push(ANSWER, &dn, owner)?;
        let target_off = base + 12;
        if self.dnssec {
            if let Some(sig) = z.signatures(d, rtype::DNAME) {
                self.push(ANSWER, &sig, owner)?;
            }
        }
        let target_len = name::uncompressed_len(self.buf, target_off).map_err(|_| ())?;
        // The prefix: the labels of the current name above the DNAME owner.
        let prefix_len = *name_len - z.node_name(d).len();
        let new_len = prefix_len + target_len;
        if new_len > MAX_NAME_LEN {
            return Ok(false);
        }
        let ttl = z.ttl(&dn);
        // owner(2) type(2) class(2) ttl(4) rdlen(2) + prefix + pointer to the target.
        let rdlen = prefix_len + 2;
        let need = 12 + rdlen;
        if self.w + need > self.limit || target_off > 0x3FFF || *name_off > 0x3FFF {
            return Err(());
        }
        let w = self.w;
        let b = &mut self.buf[w..w + need];
        b[0..2].copy_from_slice(&(0xC000 | *name_off as u16).to_be_bytes());
        b[2..4].copy_from_slice(&rtype::CNAME.to_be_bytes());
        b[4..6].copy_from_slice(&1u16.to_be_bytes());
        b[6..10].copy_from_slice(&ttl.to_be_bytes());
        b[10..12].copy_from_slice(&(rdlen as u16).to_be_bytes());
        // Prefix labels as they appear in the message (the question's case).
        let mut src = *name_off;
        let mut copied = 0;
        let mut prefix = [0u8; 256];
        while copied < prefix_len {
            let l = self.buf[src];
            if l & 0xC0 == 0xC0 {
                src = ((l as usize & 0x3F) << 8) | self.buf[src + 1] as usize;
                continue;
            }
            let n = l as usize + 1;
            prefix[copied..copied + n].copy_from_slice(&self.buf[src..src + n]);
            copied += n;
            src += n;
        }
        let b = &mut self.buf[w..w + need];
        b[12..12 + prefix_len].copy_from_slice(&prefix[..prefix_len]);
        b[12 + prefix_len..].copy_from_slice(&(0xC000 | target_off as u16).to_be_bytes());
        self.w += need;
        self.count(ANSWER, 1);
        // Continue with the synthesised name.
        let mut full = [0u8; 256];
        full[..prefix_len].copy_from_slice(&prefix[..prefix_len]);
        full[prefix_len..new_len].copy_from_slice(&self.buf[target_off..target_off + target_len]);
        name::lowercase_in_place(&mut full[..new_len]);
        name[..new_len].copy_from_slice(&full[..new_len]);
        *name_len = new_len;
        *name_off = w + 12;
        Ok(true)
    }

    /// The answer is NODATA (a wildcard's stays counted as a wildcard answer).
    fn nodata(&mut self) {
        if self.class != ResponseClass::Wildcard {
            self.class = ResponseClass::NoData;
        }
    }

    /// The SOA of a negative answer, in authority.
    fn negative(&mut self) -> Result<(), ()> {
        let z = self.z;
        self.push(AUTHORITY, &z.neg_soa(), self.apex_off)?;
        if self.dnssec {
            self.push(AUTHORITY, &z.neg_soa_sig(), self.apex_off)?;
        }
        self.flush_proofs()
    }

    /// Additional A/AAAA for the NS/MX/SRV targets of an RRset written at `base`; only
    /// what fits.
    fn additionals_of(&mut self, r: &RrsetRec, base: usize) {
        let z = self.z;
        for a in z.additionals(r) {
            let owner = base + a.name_at as usize;
            if owner > 0x3FFF || self.added[..self.n_added].contains(&a.node) {
                continue;
            }
            if self.n_added < MAX_ADDITIONAL_NODES {
                self.added[self.n_added] = a.node;
                self.n_added += 1;
            }
            for ar in z.addresses(a.node).into_iter().flatten() {
                let _ = self.push_signed(ADDITIONAL, a.node, &ar, owner);
            }
        }
    }

    /// Appends an RRset of `node` to a section and, with DNSSEC, its RRSIGs: both or
    /// neither (nothing written when they do not fit).
    fn push_signed(&mut self, section: usize, node: u32, r: &RrsetRec, owner_off: usize) -> Result<(), ()> {
        let (w, counts) = (self.w, [self.buf[6], self.buf[7], self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        self.push(section, r, owner_off)?;
        if self.dnssec {
            if let Some(sig) = self.z.signatures(node, r.rtype) {
                if self.push(section, &sig, owner_off).is_err() {
                    self.w = w;
                    self.buf[6..12].copy_from_slice(&counts);
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// Appends the RRset `r` of `node` to a section with the node's own name as owner (not a
    /// name already in the message): the labels above the apex, then a pointer to the apex
    /// in the question. Returns the owner's offset, for the records that share it.
    fn push_named(&mut self, section: usize, node: u32, r: &RrsetRec) -> Result<usize, ()> {
        let z = self.z;
        let full = z.node_name(node);
        let head = &full[..full.len() - z.origin.len()];
        let w = self.w;
        let name_len = head.len() + 2;
        if w + name_len - 2 + r.data_len as usize > self.limit || w > 0x3FFF {
            return Err(());
        }
        // The fragment goes where the first RR's owner pointer is the name's last two octets
        // (the apex pointer written over it); the other RRs point at the name.
        let n = render_rrset(z, r, &mut self.buf[..self.limit], w + name_len - 2, w, self.apex_off).map_err(|_| ())?;
        self.buf[w..w + head.len()].copy_from_slice(head);
        self.buf[w + head.len()..w + name_len].copy_from_slice(&(0xC000 | self.apex_off as u16).to_be_bytes());
        self.w = w + name_len - 2 + n;
        self.count(section, z.rr_count(r));
        Ok(w)
    }

    /// Puts the NSEC (NSEC3) RRsets of the proofs gathered so far, with their RRSIGs, in
    /// authority.
    fn flush_proofs(&mut self) -> Result<(), ()> {
        if self.n_proofs == 0 {
            return Ok(());
        }
        let z = self.z;
        let t = if z.nsec3_chain.is_empty() { rtype::NSEC } else { rtype::NSEC3 };
        for i in 0..self.n_proofs {
            let node = self.proofs[i];
            let Some(r) = z.rrset(node, t) else { continue };
            let owner = self.push_named(AUTHORITY, node, &r)?;
            if let Some(sig) = z.signatures(node, t) {
                self.push(AUTHORITY, &sig, owner)?;
            }
        }
        self.n_proofs = 0;
        Ok(())
    }

    /// Appends an RRset to a section, whole or not at all.
    fn push(&mut self, section: usize, r: &RrsetRec, owner_off: usize) -> Result<(), ()> {
        let len = r.data_len as usize;
        if self.w + len > self.limit {
            return Err(());
        }
        let n =
            render_rrset(self.z, r, &mut self.buf[..self.limit], self.w, owner_off, self.apex_off).map_err(|_| ())?;
        self.w += n;
        self.count(section, self.z.rr_count(r));
        Ok(())
    }

    /// Adds `n` records to a section's count in the header (a message of at most 65,535
    /// octets holds fewer than 65,536 records).
    #[inline]
    fn count(&mut self, section: usize, n: usize) {
        let at = 6 + 2 * section;
        let c = u16::from_be_bytes([self.buf[at], self.buf[at + 1]]).wrapping_add(n as u16);
        self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

fn labels(wire: &[u8]) -> usize {
    name::labels(wire).count()
}

/// A response written by [`complete`]: length, rcode, TC and class in one word, the class
/// name's hash in another, so that it comes back in registers rather than through memory.
#[derive(Clone, Copy)]
struct Reply(u64, u64);

/// [`Reply`]'s bits for [`Outcome::Reply::cookie`].
const VALID_COOKIE: u64 = 1 << 49;
const UNPROVEN_COOKIE: u64 = 1 << 50;

impl Reply {
    #[inline]
    fn classed(self, class: ResponseClass, class_name: u64) -> Reply {
        Reply(self.0 & !(0xFF << 56) | (class as u64) << 56, class_name)
    }

    #[inline]
    fn outcome(self) -> Outcome {
        let v = self.0;
        let class = ResponseClass::ALL[((v >> 56) as usize).min(ResponseClass::ALL.len() - 1)];
        Outcome::Reply {
            len: v as u32 as usize,
            rcode: (v >> 32) as u16,
            truncated: (v >> 48) & 1 != 0,
            cookie: if v & VALID_COOKIE != 0 {
                CookieSeen::Valid
            } else if v & UNPROVEN_COOKIE != 0 {
                CookieSeen::Unproven
            } else {
                CookieSeen::None
            },
            class,
            class_name: self.1,
            qtype: 0,
        }
    }
}

impl Outcome {
    /// Marks a reply with what the query's cookie proved (its reply carries the cookie).
    fn with_cookie(self, cookie: Option<(ReplyCookie, bool)>) -> Outcome {
        match (self, cookie) {
            (Outcome::Reply { len, rcode, truncated, class, class_name, qtype, .. }, Some((_, valid))) => {
                let cookie = if valid { CookieSeen::Valid } else { CookieSeen::Unproven };
                Outcome::Reply { len, rcode, truncated, cookie, class, class_name, qtype }
            }
            (o, _) => o,
        }
    }

    /// Marks a reply with its question's type.
    #[inline]
    fn with_qtype(self, t: u16) -> Outcome {
        match self {
            Outcome::Reply { len, rcode, truncated, cookie, class, class_name, .. } => {
                Outcome::Reply { len, rcode, truncated, cookie, class, class_name, qtype: t }
            }
            o => o,
        }
    }
}

/// Header flags and OPT around sections (and their counts in the header) already written
/// up to `w`.
#[inline]
#[allow(clippy::too_many_arguments)]
fn finish_reply(
    buf: &mut [u8],
    w: usize,
    rc: u16,
    aa: bool,
    tc: bool,
    edns: Option<Edns>,
    cfg: &Config,
    cookie: Option<&ReplyCookie>,
) -> Reply {
    let qflags = u16::from_be_bytes([buf[2], buf[3]]);
    // QR, opcode echoed, AA, TC, RD echoed, RA clear, Z clear, AD clear, CD echoed.
    let mut f = 0x8000 | (qflags & 0x7800) | (qflags & 0x0100) | (qflags & 0x0010);
    if aa {
        f |= 0x0400;
    }
    if tc {
        f |= 0x0200;
    }
    f |= rc & 0xF;
    buf[2..4].copy_from_slice(&f.to_be_bytes());
    let mut ar = u16::from_be_bytes([buf[10], buf[11]]);
    let mut end = w;
    if let Some(e) = edns {
        // root, OPT, our payload size, extended rcode, version 0, DO echoed, no options.
        let ext = (rc >> 4) as u8;
        let opt = &mut buf[w..w + OPT_LEN];
        opt[0] = 0;
        opt[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
        opt[3..5].copy_from_slice(&cfg.edns_size.to_be_bytes());
        opt[5] = ext;
        opt[6] = 0;
        opt[7..9].copy_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
        opt[9..11].copy_from_slice(&[0, 0]);
        end += OPT_LEN;
        ar += 1;
        if let Some(c) = cookie {
            // The option: code, length, client and server cookie.
            buf[end..end + 2].copy_from_slice(&crate::cookie::OPTION_CODE.to_be_bytes());
            buf[end + 2..end + 4].copy_from_slice(&(c.len() as u16).to_be_bytes());
            buf[end + 4..end + COOKIE_OPT_LEN].copy_from_slice(c);
            end += COOKIE_OPT_LEN;
        }
        if let Some(n) = cfg.nsid(e).filter(|n| end + 4 + n.len() <= buf.len()) {
            end = write_option(buf, end, crate::answer::query::NSID_OPTION, n);
        }
        // RDLEN: the options written.
        let rdlen = (end - (w + OPT_LEN)) as u16;
        buf[w + OPT_LEN - 2..w + OPT_LEN].copy_from_slice(&rdlen.to_be_bytes());
    }
    buf[10..12].copy_from_slice(&ar.to_be_bytes());
    Reply(end as u64 | (rc as u64) << 32 | (tc as u64) << 48 | (ResponseClass::Error as u64) << 56, 0)
}

/// Writes an EDNS option (code, length, data) at `at`; returns where it ends.
#[cold]
fn write_option(buf: &mut [u8], at: usize, code: u16, data: &[u8]) -> usize {
    buf[at..at + 2].copy_from_slice(&code.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&(data.len() as u16).to_be_bytes());
    buf[at + 4..at + 4 + data.len()].copy_from_slice(data);
    at + 4 + data.len()
}

/// The CHAOS class (RFC 1035 §3.2.4).
const CLASS_CH: u16 = 3;

/// A CHAOS-class query: `version.bind` and the others of [`Identity`] for TXT (and ANY,
/// answered with the TXT as NSD does), everything else REFUSED. `qname` is lowercased; the
/// answer's owner is written whole in lower case, as Knot and NSD write it.
#[cold]
#[inline(never)]
fn chaos(buf: &mut [u8], q: &Query, qname: &[u8], cfg: &Config, cookie: Option<&ReplyCookie>) -> Outcome {
    let text = match q.qtype {
        rtype::TXT | rtype::ANY => cfg.identity.and_then(|i| i.chaos_text(qname)),
        _ => None,
    };
    let w = q.question_end;
    // owner, type, class, TTL, RDLENGTH, then one character-string; an OPT after it.
    let end = w + qname.len() + 10 + 1 + text.map_or(0, <[u8]>::len);
    let Some(text) = text.filter(|t| t.len() <= 255 && end + OPT_LEN + COOKIE_OPT_LEN + 4 + 255 <= buf.len()) else {
        return error_reply(buf, Some(w), q.edns, rcode::REFUSED as u16, cfg, cookie);
    };
    buf[w..w + qname.len()].copy_from_slice(qname);
    let r = w + qname.len();
    buf[r..r + 2].copy_from_slice(&rtype::TXT.to_be_bytes());
    buf[r + 2..r + 4].copy_from_slice(&CLASS_CH.to_be_bytes());
    buf[r + 4..r + 8].fill(0);
    buf[r + 8..r + 10].copy_from_slice(&(1 + text.len() as u16).to_be_bytes());
    buf[r + 10] = text.len() as u8;
    buf[r + 11..end].copy_from_slice(text);
    buf[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    finish_reply(buf, end, rcode::NOERROR as u16, false, false, q.edns, cfg, cookie)
        .classed(ResponseClass::Positive, name_hash(qname))
        .outcome()
}

/// A response with no records: the question if it could be read, and OPT if the query had
/// one.
fn error_reply(
    buf: &mut [u8],
    question_end: Option<usize>,
    edns: Option<Edns>,
    rc: u16,
    cfg: &Config,
    cookie: Option<&ReplyCookie>,
) -> Outcome {
    let (w, qd) = match question_end {
        Some(end) => (end, 1u16),
        None => (12, 0),
    };
    buf[4..6].copy_from_slice(&qd.to_be_bytes());
    buf[6..12].fill(0);
    finish_reply(buf, w, rc, false, false, edns, cfg, cookie).outcome()
}

/// FORMERR for a query whose sections cannot be read — unless its opcode is one we do not
/// serve: the opcode is judged before the sections, NOTIMP (header only, then).
#[cold]
#[inline(never)]
fn malformed(buf: &mut [u8], question_end: Option<usize>, cfg: &Config) -> Outcome {
    if Header::new_checked(&buf[..]).is_ok_and(|h| h.opcode() != opcode::QUERY) {
        return not_implemented(buf, None, None, cfg, None);
    }
    error_reply(buf, question_end, None, rcode::FORMERR as u16, cfg, None)
}

/// NOTIMP for an opcode we do not serve: the opcode echoed, but none of the flags that only
/// QUERY defines (RD, CD), as genreport expects; the question and OPT when they could be
/// read.
#[cold]
#[inline(never)]
fn not_implemented(
    buf: &mut [u8],
    question_end: Option<usize>,
    edns: Option<Edns>,
    cfg: &Config,
    cookie: Option<&ReplyCookie>,
) -> Outcome {
    let out = error_reply(buf, question_end, edns, rcode::NOTIMP as u16, cfg, cookie);
    let mut h = Header::new_checked(&mut buf[..]).expect("a reply has a header");
    h.set_flags(h.flags() & !(flag::RD | flag::CD));
    out
}

#[cfg(test)]
mod tests;
