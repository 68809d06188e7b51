//! TSIG (RFC 8945): shared-secret keys, verifying a signed request, signing responses —
//! one message or a whole transfer — and the error responses of §5.3.2. Also the client
//! side (signing a request, verifying a sequence of responses), for NOTIFY and transfers in.
//!
//! The MAC is HMAC from RustCrypto's `hmac`, `sha1` and `sha2`; MACs are compared in
//! constant time (`Mac::verify_truncated_left`). Time is a parameter: seconds since the
//! Unix epoch. Not kept: the "last Time Signed per key" cache that §5.2.3 suggests
//! (SHOULD) against replays within the fudge window.

use hmac::{Hmac, KeyInit, Mac};

use super::message::{self, NoRoom, ResponseHead};
use super::request::{u16_at, walk};
use crate::wire::message::{self as wire_message, rcode};
use crate::wire::name::{self, Name};
use crate::wire::rdata::rtype;

/// The class of a TSIG RR (ANY).
const CLASS_ANY: u16 = 255;
/// Fudge we put in what we sign (RFC 8945 §10 recommends 300 seconds).
pub const DEFAULT_FUDGE: u16 = 300;
/// RFC 8945 §5.3.1: at most this many unsigned messages between two signed ones.
const MAX_UNSIGNED_RUN: usize = 99;

/// TSIG error codes (RFC 8945 §3).
pub mod error {
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
    pub const BADTRUNC: u16 = 22;
}

/// A MAC algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// For old peers only.
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] =
        [Algorithm::HmacSha1, Algorithm::HmacSha256, Algorithm::HmacSha384, Algorithm::HmacSha512];

    /// The name as configuration files and `dig -y` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm's domain name in (lowercase, canonical) wire form.
    pub fn wire_name(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha1 => b"\x09hmac-sha1\x00",
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    /// From a name such as `hmac-sha256` (any case, trailing dot or not).
    pub fn from_name(s: &str) -> Option<Algorithm> {
        let s = s.strip_suffix('.').unwrap_or(s);
        Algorithm::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// From an uncompressed wire name (any case).
    pub fn from_wire(w: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.wire_name().eq_ignore_ascii_case(w))
    }

    /// Length of the full MAC.
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha1 => 20,
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }

    /// The shortest truncated MAC RFC 8945 §5.2.2.1 allows: the larger of 10 octets and
    /// half the hash.
    pub fn min_mac_len(self) -> usize {
        (self.mac_len() / 2).max(10)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the secret is not valid base64")]
    Base64,
    #[error("the secret is empty")]
    EmptySecret,
}

/// A TSIG key: a name (kept lowercased), an algorithm and a shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    name: Name,
    algorithm: Algorithm,
    secret: Box<[u8]>,
    /// Local policy for truncated MACs in requests (§5.2.4): shorter ones get BADTRUNC.
    min_mac_len: usize,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("Key").field("name", &self.name).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl Key {
    /// A key that accepts only full-length MACs.
    pub fn new(name: &Name, algorithm: Algorithm, secret: &[u8]) -> Key {
        Key { name: name.to_lowercase(), algorithm, secret: secret.into(), min_mac_len: algorithm.mac_len() }
    }

    /// A key from a base64 secret (RFC 4648 §4, surrounding whitespace ignored), the way
    /// configuration files and `dig -y` give it.
    pub fn from_base64(name: &Name, algorithm: Algorithm, secret: &str) -> Result<Key, KeyError> {
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD.decode(secret.trim()).map_err(|_| KeyError::Base64)?;
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Key::new(name, algorithm, &secret))
    }

    /// Accept requests whose MAC is truncated to `len` octets or more (clamped to what RFC
    /// 8945 §5.2.2.1 allows and the full length).
    pub fn with_min_mac_len(mut self, len: usize) -> Key {
        self.min_mac_len = len.clamp(self.algorithm.min_mac_len(), self.algorithm.mac_len());
        self
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn min_mac_len(&self) -> usize {
        self.min_mac_len
    }
}

impl From<crate::config::TsigAlgorithm> for Algorithm {
    fn from(a: crate::config::TsigAlgorithm) -> Algorithm {
        use crate::config::TsigAlgorithm as C;
        match a {
            C::HmacSha1 => Algorithm::HmacSha1,
            C::HmacSha256 => Algorithm::HmacSha256,
            C::HmacSha384 => Algorithm::HmacSha384,
            C::HmacSha512 => Algorithm::HmacSha512,
        }
    }
}

impl From<&crate::config::Key> for Key {
    /// A configured key (full-length MACs only).
    fn from(k: &crate::config::Key) -> Key {
        Key::new(&k.name, k.algorithm.into(), &k.secret)
    }
}

/// An HMAC under way, for one of the algorithms.
#[derive(Clone)]
enum Hmacs {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha384(Hmac<sha2::Sha384>),
    Sha512(Hmac<sha2::Sha512>),
}

impl Hmacs {
    fn new(key: &Key) -> Hmacs {
        // HMAC takes keys of any length (longer ones are hashed first).
        const ANY_LEN: &str = "HMAC accepts keys of any length";
        let s = &key.secret;
        match key.algorithm {
            Algorithm::HmacSha1 => Hmacs::Sha1(Hmac::new_from_slice(s).expect(ANY_LEN)),
            Algorithm::HmacSha256 => Hmacs::Sha256(Hmac::new_from_slice(s).expect(ANY_LEN)),
            Algorithm::HmacSha384 => Hmacs::Sha384(Hmac::new_from_slice(s).expect(ANY_LEN)),
            Algorithm::HmacSha512 => Hmacs::Sha512(Hmac::new_from_slice(s).expect(ANY_LEN)),
        }
    }

    fn update(&mut self, d: &[u8]) {
        match self {
            Hmacs::Sha1(h) => h.update(d),
            Hmacs::Sha256(h) => h.update(d),
            Hmacs::Sha384(h) => h.update(d),
            Hmacs::Sha512(h) => h.update(d),
        }
    }

    /// Feeds a MAC as TSIG digests it: its length on two octets, then the MAC.
    fn update_mac(&mut self, mac: &[u8]) {
        self.update(&(mac.len() as u16).to_be_bytes());
        self.update(mac);
    }

    fn finalize_into(self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Hmacs::Sha1(h) => out.extend_from_slice(&h.finalize().into_bytes()),
            Hmacs::Sha256(h) => out.extend_from_slice(&h.finalize().into_bytes()),
            Hmacs::Sha384(h) => out.extend_from_slice(&h.finalize().into_bytes()),
            Hmacs::Sha512(h) => out.extend_from_slice(&h.finalize().into_bytes()),
        }
    }

    /// Whether `mac` is the leftmost part of this MAC, compared in constant time.
    fn verify_left(self, mac: &[u8]) -> bool {
        match self {
            Hmacs::Sha1(h) => h.verify_truncated_left(mac).is_ok(),
            Hmacs::Sha256(h) => h.verify_truncated_left(mac).is_ok(),
            Hmacs::Sha384(h) => h.verify_truncated_left(mac).is_ok(),
            Hmacs::Sha512(h) => h.verify_truncated_left(mac).is_ok(),
        }
    }
}

/// A TSIG RR as read from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigRecord {
    /// The owner: the key's name, as sent.
    pub key_name: Name,
    pub ttl: u32,
    pub algorithm: Name,
    /// Seconds since the epoch (48 bits).
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A message's TSIG RR and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub start: usize,
    pub record: TsigRecord,
}

/// Finds the TSIG RR of a message: None if there is none; an error if it is not the last
/// record of the additional section, is not alone, or cannot be read (§5.1: FORMERR).
pub fn locate(msg: &[u8]) -> Result<Option<Located>, &'static str> {
    // Before the walk, which sizes its record list by the counts.
    if !crate::wire::counts_fit(msg) {
        return Err("the header counts more records than the message holds");
    }
    let w = walk(msg)?;
    let n = w.records.len();
    let Some(pos) = w.records.iter().position(|r| r.rtype == rtype::TSIG) else { return Ok(None) };
    if pos != n - 1 || w.records[pos].section != 3 {
        return Err("TSIG is not the last record of the additional section, or not the only one");
    }
    let r = &w.records[pos];
    if r.class != CLASS_ANY {
        return Err("TSIG class is not ANY");
    }
    let rd = &msg[r.rdata.clone()];
    let bad = "malformed TSIG rdata";
    let mut out = [0u8; 256];
    // The algorithm name should be uncompressed; a pointer is followed all the same.
    let (next, alen) = name::read_compressed(msg, r.rdata.start, &mut out).map_err(|_| bad)?;
    let algorithm = Name::from_wire(&out[..alen]).map_err(|_| bad)?;
    let mut p = next - r.rdata.start;
    let fixed = rd.get(p..p + 10).ok_or(bad)?;
    let time_signed = u64::from_be_bytes([0, 0, fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5]]);
    let fudge = u16::from_be_bytes([fixed[6], fixed[7]]);
    let mac_len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    p += 10;
    let mac = rd.get(p..p + mac_len).ok_or(bad)?.to_vec();
    p += mac_len;
    let original_id = u16_at(rd, p).ok_or(bad)?;
    let error = u16_at(rd, p + 2).ok_or(bad)?;
    let other_len = u16_at(rd, p + 4).ok_or(bad)? as usize;
    p += 6;
    let other = rd.get(p..p + other_len).ok_or(bad)?.to_vec();
    if p + other_len != rd.len() {
        return Err(bad);
    }
    let record = TsigRecord {
        key_name: r.owner.clone(),
        ttl: r.ttl,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    };
    Ok(Some(Located { start: r.start, record }))
}

/// Feeds a signed message as TSIG digests it (§4.3.2): the header with the original ID
/// and one record less, then everything before the TSIG RR.
fn digest_message(h: &mut Hmacs, msg: &[u8], tsig_start: usize, original_id: u16) {
    let mut header = [0u8; message::HEADER_LEN];
    header.copy_from_slice(&msg[..message::HEADER_LEN]);
    header[0..2].copy_from_slice(&original_id.to_be_bytes());
    let arcount = u16::from_be_bytes([header[10], header[11]]).wrapping_sub(1);
    header[10..12].copy_from_slice(&arcount.to_be_bytes());
    h.update(&header);
    h.update(&msg[message::HEADER_LEN..tsig_start]);
}

/// The TSIG variables (§4.3.3), names in canonical (lowercase) form.
struct Variables<'a> {
    key_name: &'a [u8],
    ttl: u32,
    algorithm: &'a [u8],
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &'a [u8],
}

fn digest_variables(h: &mut Hmacs, v: &Variables<'_>) {
    let mut lower = [0u8; 256];
    let kn = &mut lower[..v.key_name.len()];
    kn.copy_from_slice(v.key_name);
    name::lowercase_in_place(kn);
    h.update(kn);
    h.update(&CLASS_ANY.to_be_bytes());
    h.update(&v.ttl.to_be_bytes());
    let an = &mut lower[..v.algorithm.len()];
    an.copy_from_slice(v.algorithm);
    name::lowercase_in_place(an);
    h.update(an);
    digest_timers(h, v.time_signed, v.fudge);
    h.update(&v.error.to_be_bytes());
    h.update(&(v.other.len() as u16).to_be_bytes());
    h.update(v.other);
}

fn digest_timers(h: &mut Hmacs, time_signed: u64, fudge: u16) {
    h.update(&time_signed.to_be_bytes()[2..]);
    h.update(&fudge.to_be_bytes());
}

/// A request whose TSIG checked out (or whose MAC did, for BADTIME and BADTRUNC): what
/// signing the response takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTsig {
    pub key: Key,
    /// The request's MAC, as sent (possibly truncated).
    pub mac: Vec<u8>,
    pub time_signed: u64,
    pub fudge: u16,
}

/// Why a signed request is refused, and so how to answer it (§5.2, §5.3.2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TsigFailure {
    /// The TSIG RR is misplaced or unreadable, or its MAC size is impossible
    /// (§5.2.2.1): FORMERR, no TSIG.
    #[error("malformed TSIG: {0}")]
    Malformed(&'static str),
    /// BADKEY (unknown key or algorithm) or BADSIG: NOTAUTH with an unsigned TSIG.
    #[error("TSIG {} for key {key_name}", error_name(*.error))]
    Unsigned { error: u16, key_name: Name, algorithm: Name, time_signed: u64, fudge: u16 },
    /// BADTIME or BADTRUNC: the MAC was good, so the NOTAUTH is signed.
    #[error("TSIG {} for key {}", error_name(*.error), .request.key.name())]
    Signed { error: u16, request: RequestTsig },
}

impl TsigFailure {
    /// The TSIG error code (0 for a malformed TSIG, which is a FORMERR).
    pub fn error(&self) -> u16 {
        match self {
            TsigFailure::Malformed(_) => 0,
            TsigFailure::Unsigned { error, .. } | TsigFailure::Signed { error, .. } => *error,
        }
    }
}

/// The mnemonic of a TSIG error code.
pub fn error_name(e: u16) -> &'static str {
    match e {
        0 => "NOERROR",
        error::BADSIG => "BADSIG",
        error::BADKEY => "BADKEY",
        error::BADTIME => "BADTIME",
        error::BADTRUNC => "BADTRUNC",
        _ => "error",
    }
}

/// Checks the TSIG of a request (§5.2) against `keys` at time `now`: the key (name and
/// algorithm), the MAC (constant-time, truncation allowed down to the key's policy), the
/// time (within the fudge). Ok(None) for an unsigned request.
pub fn verify_request(msg: &[u8], keys: &[Key], now: u64) -> Result<Option<RequestTsig>, TsigFailure> {
    let Some(Located { start, record: t }) = locate(msg).map_err(TsigFailure::Malformed)? else {
        return Ok(None);
    };
    let unsigned = |error| TsigFailure::Unsigned {
        error,
        key_name: t.key_name.clone(),
        algorithm: t.algorithm.clone(),
        time_signed: t.time_signed,
        fudge: t.fudge,
    };
    let Some(alg) = Algorithm::from_wire(t.algorithm.as_wire()) else { return Err(unsigned(error::BADKEY)) };
    let Some(key) =
        keys.iter().find(|k| k.algorithm == alg && k.name.as_wire().eq_ignore_ascii_case(t.key_name.as_wire()))
    else {
        return Err(unsigned(error::BADKEY));
    };
    if t.mac.len() > alg.mac_len() || t.mac.len() < alg.min_mac_len() {
        return Err(TsigFailure::Malformed("MAC size outside what the algorithm allows"));
    }
    let mut h = Hmacs::new(key);
    digest_message(&mut h, msg, start, t.original_id);
    digest_variables(
        &mut h,
        &Variables {
            key_name: t.key_name.as_wire(),
            ttl: t.ttl,
            algorithm: t.algorithm.as_wire(),
            time_signed: t.time_signed,
            fudge: t.fudge,
            error: t.error,
            other: &t.other,
        },
    );
    if !h.verify_left(&t.mac) {
        return Err(unsigned(error::BADSIG));
    }
    let request = RequestTsig { key: key.clone(), mac: t.mac, time_signed: t.time_signed, fudge: t.fudge };
    if now.abs_diff(t.time_signed) > t.fudge as u64 {
        return Err(TsigFailure::Signed { error: error::BADTIME, request });
    }
    if request.mac.len() < key.min_mac_len {
        return Err(TsigFailure::Signed { error: error::BADTRUNC, request });
    }
    Ok(Some(request))
}

/// Signs messages with one key: a response (the first message covers the request's MAC)
/// or a request, and then every further message of the same exchange (§5.3.1: the prior
/// MAC, the message, and the timers only). Keeps the last MAC.
#[derive(Clone, Debug)]
pub struct Signer {
    key: Key,
    /// The request's MAC before the first message, then the last MAC signed.
    prior: Vec<u8>,
    /// Whether the first message covers a request MAC (a response) or not (a request).
    response: bool,
    signed: usize,
    fudge: u16,
}

impl Signer {
    /// Signs the response(s) to a verified request.
    pub fn response(request: &RequestTsig) -> Signer {
        Signer { key: request.key.clone(), prior: request.mac.clone(), response: true, signed: 0, fudge: DEFAULT_FUDGE }
    }

    /// Signs a request of ours (NOTIFY, SOA query, transfer in).
    pub fn request(key: &Key) -> Signer {
        Signer { key: key.clone(), prior: Vec::new(), response: false, signed: 0, fudge: DEFAULT_FUDGE }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The last MAC made (empty before the first).
    pub fn mac(&self) -> &[u8] {
        if self.signed == 0 {
            &[]
        } else {
            &self.prior
        }
    }

    /// Messages signed so far.
    pub fn signed(&self) -> usize {
        self.signed
    }

    /// Octets the TSIG RR takes, to keep free in each message.
    pub fn reserve(&self) -> usize {
        tsig_rr_len(&self.key, self.key.algorithm.mac_len(), 0)
    }

    /// Signs the message in `buf[..len]`: appends the TSIG RR (after everything else of
    /// the additional section) and counts it in ARCOUNT. Returns the new length.
    pub fn sign(&mut self, buf: &mut [u8], len: usize, now: u64) -> Result<usize, NoRoom> {
        self.sign_with(buf, len, now, self.fudge, 0, &[])
    }

    fn sign_with(
        &mut self,
        buf: &mut [u8],
        len: usize,
        time_signed: u64,
        fudge: u16,
        error: u16,
        other: &[u8],
    ) -> Result<usize, NoRoom> {
        let alg = self.key.algorithm;
        let end = len + tsig_rr_len(&self.key, alg.mac_len(), other.len());
        if end > buf.len().min(message::MAX_MESSAGE) || len < message::HEADER_LEN {
            return Err(NoRoom);
        }
        let mut h = Hmacs::new(&self.key);
        let first = self.signed == 0;
        if !first || self.response {
            h.update_mac(&self.prior);
        }
        h.update(&buf[..len]);
        if first {
            let v = Variables {
                key_name: self.key.name.as_wire(),
                ttl: 0,
                algorithm: alg.wire_name(),
                time_signed,
                fudge,
                error,
                other,
            };
            digest_variables(&mut h, &v);
        } else {
            digest_timers(&mut h, time_signed, fudge);
        }
        h.finalize_into(&mut self.prior);
        self.signed += 1;
        let original_id = [buf[0], buf[1]];
        write_tsig_rr(buf, len, &self.key, time_signed, fudge, &self.prior, original_id, error, other);
        bump_arcount(buf);
        Ok(end)
    }
}

/// Length of a TSIG RR of `key` with a MAC of `mac_len` and `other_len` octets of other
/// data.
fn tsig_rr_len(key: &Key, mac_len: usize, other_len: usize) -> usize {
    key.name.len() + 10 + key.algorithm.wire_name().len() + 16 + mac_len + other_len
}

#[allow(clippy::too_many_arguments)]
fn write_tsig_rr(
    buf: &mut [u8],
    at: usize,
    key: &Key,
    time_signed: u64,
    fudge: u16,
    mac: &[u8],
    original_id: [u8; 2],
    error: u16,
    other: &[u8],
) {
    let alg = key.algorithm.wire_name();
    let mut p = at;
    let mut put = |b: &[u8]| {
        buf[p..p + b.len()].copy_from_slice(b);
        p += b.len();
    };
    put(key.name.as_wire());
    put(&rtype::TSIG.to_be_bytes());
    put(&CLASS_ANY.to_be_bytes());
    put(&0u32.to_be_bytes());
    put(&((alg.len() + 16 + mac.len() + other.len()) as u16).to_be_bytes());
    put(alg);
    put(&time_signed.to_be_bytes()[2..]);
    put(&fudge.to_be_bytes());
    put(&(mac.len() as u16).to_be_bytes());
    put(mac);
    put(&original_id);
    put(&error.to_be_bytes());
    put(&(other.len() as u16).to_be_bytes());
    put(other);
}

fn bump_arcount(buf: &mut [u8]) {
    let n = u16::from_be_bytes([buf[10], buf[11]]).wrapping_add(1);
    buf[10..12].copy_from_slice(&n.to_be_bytes());
}

/// The head of a response to `msg` as far as it can be read: ID, opcode, RD, and the
/// question when there is exactly one, uncompressed.
fn echo_head(msg: &[u8]) -> ResponseHead {
    let id = u16_at(msg, 0).unwrap_or(0);
    let flags = u16_at(msg, 2).unwrap_or(0);
    let mut question: Box<[u8]> = Box::new([]);
    if u16_at(msg, 4) == Some(1) {
        if let Ok(n) = name::uncompressed_len(msg, message::HEADER_LEN) {
            if let Some(q) = msg.get(message::HEADER_LEN..message::HEADER_LEN + n + 4) {
                question = q.into();
            }
        }
    }
    ResponseHead { id, opcode: ((flags >> 11) & 0xF) as u8, rd: flags & 0x0100 != 0, question }
}

/// The UDP size for the OPT of an error response: a request with an OPT gets one back (RFC
/// 6891 §7), with the engine's default size (the server's own is not known here).
fn echo_edns(msg: &[u8]) -> Option<u16> {
    let mut rs = wire_message::records(msg).ok()?;
    rs.any(|r| r.is_ok_and(|r| r.section == wire_message::Section::Additional && r.rtype == rtype::OPT)).then_some(1232)
}

/// Writes the response to a request refused by [`verify_request`] (§5.3.2): FORMERR
/// without TSIG for a malformed one; NOTAUTH with an unsigned TSIG carrying BADKEY or
/// BADSIG; NOTAUTH signed with the request's key for BADTIME (Time Signed the request's,
/// our time in Other Data, the request's fudge: §5.2.3) and BADTRUNC. Returns the length.
pub fn write_failure(msg: &[u8], failure: &TsigFailure, buf: &mut [u8], now: u64) -> Result<usize, NoRoom> {
    let head = echo_head(msg);
    let edns = echo_edns(msg);
    let mut comp = message::Compressor::new();
    let reserve = match failure {
        TsigFailure::Malformed(_) => 0,
        TsigFailure::Unsigned { key_name, algorithm, .. } => key_name.len() + 10 + algorithm.len() + 16,
        TsigFailure::Signed { request, .. } => tsig_rr_len(&request.key, request.key.algorithm.mac_len(), 6),
    } + if edns.is_some() { message::OPT_LEN } else { 0 };
    let mut w = message::MessageWriter::begin(buf, &head, message::MAX_MESSAGE, reserve, &mut comp)?;
    let rc = if matches!(failure, TsigFailure::Malformed(_)) { rcode::FORMERR } else { rcode::NOTAUTH };
    w.set_rcode(rc);
    let len = w.finish(edns);
    match failure {
        TsigFailure::Malformed(_) => Ok(len),
        TsigFailure::Unsigned { error, key_name, algorithm, time_signed, fudge } => {
            // Written with the key's name and algorithm as the request gave them.
            let mut p = len;
            let mut put = |b: &[u8]| {
                buf[p..p + b.len()].copy_from_slice(b);
                p += b.len();
            };
            put(key_name.as_wire());
            put(&rtype::TSIG.to_be_bytes());
            put(&CLASS_ANY.to_be_bytes());
            put(&0u32.to_be_bytes());
            put(&((algorithm.len() + 16) as u16).to_be_bytes());
            put(algorithm.as_wire());
            put(&time_signed.to_be_bytes()[2..]);
            put(&fudge.to_be_bytes());
            put(&0u16.to_be_bytes());
            put(&head.id.to_be_bytes());
            put(&error.to_be_bytes());
            put(&0u16.to_be_bytes());
            bump_arcount(buf);
            Ok(p)
        }
        TsigFailure::Signed { error, request } => {
            let mut s = Signer::response(request);
            if *error == error::BADTIME {
                s.sign_with(buf, len, request.time_signed, request.fudge, *error, &now.to_be_bytes()[2..])
            } else {
                s.sign_with(buf, len, now, DEFAULT_FUDGE, *error, &[])
            }
        }
    }
}

/// Why a signed response was not accepted (client side).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed TSIG: {0}")]
    Malformed(&'static str),
    #[error("the response is not signed")]
    Unsigned,
    #[error("signed with another key or algorithm")]
    WrongKey,
    #[error("MAC does not verify")]
    BadSig,
    #[error("time signed is outside the fudge")]
    BadTime,
    /// The peer sent a TSIG error; `signed` if its MAC verified (BADTIME, BADTRUNC).
    #[error("the peer answered with TSIG error {error} ({name})", name = error_name(*.error))]
    Peer { error: u16, signed: bool },
    #[error("more than 99 unsigned messages in a row")]
    TooManyUnsigned,
}

/// Verifies the responses to a request we signed: the first covers our request's MAC,
/// each later signed one the prior MAC, any unsigned messages in between (at most 99,
/// §5.3.1) and its timers.
#[derive(Clone)]
pub struct Verifier {
    key: Key,
    /// The MAC under way: the prior MAC and the unsigned messages since.
    running: Hmacs,
    request_mac: Vec<u8>,
    /// No signed response seen yet.
    first: bool,
    unsigned_run: usize,
}

impl Verifier {
    /// Verifier for the responses to a request signed with `key` whose MAC was `request_mac`.
    pub fn new(key: &Key, request_mac: &[u8]) -> Verifier {
        Verifier {
            key: key.clone(),
            running: Hmacs::new(key),
            request_mac: request_mac.to_vec(),
            first: true,
            unsigned_run: 0,
        }
    }

    /// True if the last message verified was signed: a transfer may end here.
    pub fn is_settled(&self) -> bool {
        !self.first && self.unsigned_run == 0
    }

    /// Checks one response.
    pub fn verify(&mut self, msg: &[u8], now: u64) -> Result<(), VerifyError> {
        let located = locate(msg).map_err(VerifyError::Malformed)?;
        let Some(Located { start, record: t }) = located else {
            if self.first {
                return Err(VerifyError::Unsigned);
            }
            self.unsigned_run += 1;
            if self.unsigned_run > MAX_UNSIGNED_RUN {
                return Err(VerifyError::TooManyUnsigned);
            }
            self.running.update(msg);
            return Ok(());
        };
        if Algorithm::from_wire(t.algorithm.as_wire()) != Some(self.key.algorithm)
            || !t.key_name.as_wire().eq_ignore_ascii_case(self.key.name.as_wire())
        {
            return Err(VerifyError::WrongKey);
        }
        if t.error != 0 && t.mac.is_empty() {
            return Err(VerifyError::Peer { error: t.error, signed: false });
        }
        let alg = self.key.algorithm;
        if t.mac.len() > alg.mac_len() || t.mac.len() < alg.min_mac_len() {
            return Err(VerifyError::Malformed("MAC size outside what the algorithm allows"));
        }
        let mut h = if self.first {
            let mut h = Hmacs::new(&self.key);
            h.update_mac(&self.request_mac);
            h
        } else {
            self.running.clone()
        };
        digest_message(&mut h, msg, start, t.original_id);
        if self.first {
            let v = Variables {
                key_name: t.key_name.as_wire(),
                ttl: t.ttl,
                algorithm: t.algorithm.as_wire(),
                time_signed: t.time_signed,
                fudge: t.fudge,
                error: t.error,
                other: &t.other,
            };
            digest_variables(&mut h, &v);
        } else {
            digest_timers(&mut h, t.time_signed, t.fudge);
        }
        if !h.verify_left(&t.mac) {
            return Err(VerifyError::BadSig);
        }
        if t.error != 0 {
            return Err(VerifyError::Peer { error: t.error, signed: true });
        }
        if now.abs_diff(t.time_signed) > t.fudge as u64 {
            return Err(VerifyError::BadTime);
        }
        let mut next = Hmacs::new(&self.key);
        next.update_mac(&t.mac);
        self.running = next;
        self.first = false;
        self.unsigned_run = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response without a TSIG: header and one question.
    fn message(id: u16, label: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.push(label.len() as u8);
        m.extend_from_slice(label);
        m.extend_from_slice(&[0, 0, 252, 0, 1]);
        m
    }

    /// Signs `m` as a later message of a sequence in which `unsigned` came unsigned after
    /// the message whose MAC was `prior` (RFC 8945 §5.3.1), the way a peer that does not
    /// sign every message would.
    fn sign_after_unsigned(key: &Key, prior: &[u8], unsigned: &[&[u8]], m: &mut Vec<u8>, now: u64) -> Vec<u8> {
        let mut h = Hmacs::new(key);
        h.update_mac(prior);
        for u in unsigned {
            h.update(u);
        }
        h.update(m);
        digest_timers(&mut h, now, DEFAULT_FUDGE);
        let mut mac = Vec::new();
        h.finalize_into(&mut mac);
        let len = m.len();
        m.resize(len + tsig_rr_len(key, mac.len(), 0), 0);
        let id = [m[0], m[1]];
        write_tsig_rr(m, len, key, now, DEFAULT_FUDGE, &mac, id, 0, &[]);
        bump_arcount(m);
        mac
    }

    #[test]
    fn verifier_takes_unsigned_messages_between_signed_ones() {
        let key = Key::new(&Name::parse_text(b"k.", None).unwrap(), Algorithm::HmacSha256, b"secret");
        let request_mac = [7u8; 32];
        let mut first = message(1, b"a");
        let n = first.len();
        first.resize(512, 0);
        let mut s =
            Signer::response(&RequestTsig { key: key.clone(), mac: request_mac.to_vec(), time_signed: 0, fudge: 300 });
        let n = s.sign(&mut first, n, 1000).unwrap();
        first.truncate(n);
        let (u1, u2) = (message(1, b"b"), message(1, b"c"));
        let mut last = message(1, b"d");
        sign_after_unsigned(&key, s.mac(), &[&u1, &u2], &mut last, 1001);

        let mut v = Verifier::new(&key, &request_mac);
        assert_eq!(v.verify(&u1, 1000), Err(VerifyError::Unsigned), "the first message must be signed");
        v.verify(&first, 1000).unwrap();
        assert!(v.is_settled());
        v.verify(&u1, 1000).unwrap();
        v.verify(&u2, 1000).unwrap();
        assert!(!v.is_settled(), "a transfer cannot end on an unsigned message");
        v.verify(&last, 1000).unwrap();
        assert!(v.is_settled());

        // Leaving an unsigned message out breaks the MAC.
        let mut v = Verifier::new(&key, &request_mac);
        v.verify(&first, 1000).unwrap();
        v.verify(&u1, 1000).unwrap();
        assert_eq!(v.verify(&last, 1000), Err(VerifyError::BadSig));

        // No more than 99 unsigned in a row.
        let mut v = Verifier::new(&key, &request_mac);
        v.verify(&first, 1000).unwrap();
        for _ in 0..99 {
            v.verify(&u1, 1000).unwrap();
        }
        assert_eq!(v.verify(&u1, 1000), Err(VerifyError::TooManyUnsigned));
    }

    /// A request whose header claims 65,535 records of each kind: refused before the
    /// record walk sizes anything by the counts (4.7 MB for a 12-octet header before).
    #[test]
    fn hostile_counts_size_nothing() {
        let mut m = message(1, b"a");
        m[2] = 0;
        m[6..12].fill(0xff);
        let (r, mem) = crate::testing::measure(|| verify_request(&m, &[], 0));
        assert!(matches!(r, Err(TsigFailure::Malformed(e)) if e.contains("counts")), "{r:?}");
        assert!(mem.largest < 1024, "{mem:?}");
    }

    /// `m` with the parts a valid signature does not fix made canonical: the ID (the MAC
    /// covers the original ID in the TSIG RR instead), and the case of the key and
    /// algorithm names in the TSIG RR (digested in lowercase). After the first message of
    /// a stream, the TSIG RR's TTL too: only the timers of its variables are digested
    /// (RFC 8945 §5.3.1).
    fn canonical(m: &[u8], first: bool) -> Vec<u8> {
        let mut c = m.to_vec();
        c[..2].fill(0);
        if let Ok(Some(l)) = locate(m) {
            let owner = l.start..l.start + l.record.key_name.len();
            let alg = owner.end + 10..owner.end + 10 + l.record.algorithm.len();
            if !first {
                c[owner.end + 4..owner.end + 8].fill(0);
            }
            c[owner].make_ascii_lowercase();
            c[alg].make_ascii_lowercase();
        }
        c
    }

    fn mutation_keys() -> Vec<Key> {
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        vec![
            Key::new(&n("k1."), Algorithm::HmacSha1, b"one secret"),
            Key::new(&n("k256.example."), Algorithm::HmacSha256, b"another secret, longer"),
            Key::new(&n("k384."), Algorithm::HmacSha384, &[0x5a; 48]),
            Key::new(&n("K512.Example."), Algorithm::HmacSha512, &[0xa5; 64]),
        ]
    }

    /// 20,000 signed requests (a transfer request, an IXFR with its SOA and an OPT, a
    /// NOTIFY; each key and algorithm), mutated and verified. Whatever verifies, or fails
    /// only on time or truncation (so its MAC verified), is the request as signed, up to
    /// what the MAC does not cover; nothing panics or allocates by a claimed count.
    #[test]
    fn mutated_signed_requests_verify_only_unchanged() {
        use crate::testing::{measure, mutate, Rng};
        const NOW: u64 = 1_700_000_000;
        let keys = mutation_keys();
        let mut axfr = message(0x1111, b"zone");
        axfr[2] = 0;
        let mut ixfr = axfr.clone();
        ixfr[19] = 251;
        ixfr[9] = 1;
        ixfr[11] = 1;
        ixfr.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
        ixfr.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        ixfr.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        let mut notify = message(0x2222, b"zone");
        notify[2] = 0x24;
        let mut seeds = Vec::new();
        for k in &keys {
            for m in [&axfr, &ixfr, &notify] {
                let mut buf = m.clone();
                buf.resize(m.len() + 200, 0);
                let len = Signer::request(k).sign(&mut buf, m.len(), NOW).unwrap();
                buf.truncate(len);
                assert!(verify_request(&buf, &keys, NOW).unwrap().is_some());
                seeds.push(buf);
            }
        }
        let mut rng = Rng::new(0x0075_1600);
        let (mut verified, mut unsigned, mut refused) = (0, 0, 0);
        let mut errors = std::collections::BTreeMap::new();
        for i in 0..20_000 {
            let seed = &seeds[i % seeds.len()];
            let mut m = seed.clone();
            mutate(&mut rng, &mut m, 0);
            let (r, mem) = measure(|| verify_request(&m, &keys, NOW));
            assert!(mem.largest <= 4096, "round {i}: {mem:?}");
            match r {
                Ok(Some(_)) | Err(TsigFailure::Signed { .. }) => {
                    verified += 1;
                    assert_eq!(canonical(&m, true), canonical(seed, true), "round {i}: a changed request verified");
                }
                // The mutation took the TSIG RR away (its type or the record count).
                Ok(None) => unsigned += 1,
                Err(e) => {
                    refused += 1;
                    let kind = if matches!(e, TsigFailure::Malformed(_)) { "malformed" } else { error_name(e.error()) };
                    *errors.entry(kind).or_insert(0) += 1;
                }
            }
        }
        eprintln!("verified {verified}, unsigned {unsigned}, refused {refused}: {errors:?}");
        assert!(refused > 18_000, "{refused}");
        // Changes to the ID and to the case of the names in the TSIG RR verify.
        assert!(verified > 20, "{verified}");
        for e in ["malformed", "BADSIG", "BADKEY"] {
            assert!(errors.get(e).copied().unwrap_or(0) > 100, "{e}: {errors:?}");
        }
    }

    /// 10,000 signed response streams (four messages, each signed; for each key) with one
    /// message mutated, dropped or repeated, through a [`Verifier`]: a stream that verifies
    /// to the end and is settled is the one signed or a prefix of it, up to the IDs and the
    /// case of the names in the TSIG RRs.
    #[test]
    fn mutated_signed_responses_verify_only_unchanged() {
        use crate::testing::{measure, mutate, Rng};
        const NOW: u64 = 1_700_000_000;
        let request_mac = [0x33u8; 20];
        let mut streams = Vec::new();
        for k in mutation_keys() {
            let mut s = Signer::response(&RequestTsig {
                key: k.clone(),
                mac: request_mac.to_vec(),
                time_signed: NOW,
                fudge: 300,
            });
            let stream: Vec<Vec<u8>> = (0..4)
                .map(|i| {
                    let mut m = message(0x3333, &[b'a' + i; 9]);
                    let len = m.len();
                    m.resize(len + 200, 0);
                    let len = s.sign(&mut m, len, NOW + u64::from(i)).unwrap();
                    m.truncate(len);
                    m
                })
                .collect();
            streams.push((k, stream));
        }
        let run = |k: &Key, msgs: &[Vec<u8>]| {
            let mut v = Verifier::new(k, &request_mac);
            for m in msgs {
                v.verify(m, NOW)?;
            }
            if v.is_settled() {
                Ok(())
            } else {
                Err(VerifyError::Unsigned)
            }
        };
        for (k, stream) in &streams {
            run(k, stream).unwrap();
        }
        let mut rng = Rng::new(0x5e0e_4ce5);
        let (mut verified, mut refused) = (0, 0);
        for i in 0..10_000 {
            let (k, stream) = &streams[i % streams.len()];
            let mut msgs = stream.clone();
            let j = rng.below(msgs.len());
            match rng.below(10) {
                0 => {
                    msgs.remove(j);
                }
                1 => msgs.insert(j, msgs[j].clone()),
                _ => mutate(&mut rng, &mut msgs[j], 0),
            }
            let (r, mem) = measure(|| run(k, &msgs));
            assert!(mem.largest <= 4096, "round {i}: {mem:?}");
            match r {
                Ok(()) => {
                    verified += 1;
                    // A stream cut after a signed message verifies: TSIG cannot tell,
                    // the transfer's closing SOA must.
                    assert!(msgs.len() <= stream.len(), "round {i}");
                    for (j, (m, s)) in msgs.iter().zip(stream).enumerate() {
                        let first = j == 0;
                        assert_eq!(canonical(m, first), canonical(s, first), "round {i}: a changed response verified");
                    }
                }
                Err(_) => refused += 1,
            }
        }
        eprintln!("verified {verified}, refused {refused}");
        assert!(refused > 9_000, "{refused}");
        assert!(verified > 10, "{verified}");
    }
}
