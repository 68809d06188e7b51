//! Rdata of the record types that NLnet Labs' `domain` crate does not read from a master
//! file, in presentation form and back, and checked in wire form: one table of field
//! layouts ([`LAYOUTS`]) drives all three, so a type is described once.
//!
//! Covers, of what Knot and BIND both load: AFSDB, RT, KX, LP (RFC 1183, 2230, 6742), KEY
//! (RFC 2535), CERT (RFC 4398), DHCID (RFC 4701), SMIMEA (RFC 8162), CSYNC (RFC 7477),
//! NID, L32, L64 (RFC 6742), EUI48, EUI64 (RFC 7043), URI (RFC 7553), LOC (RFC 1876) and
//! APL (RFC 3123); and of those BIND and NSD load but Knot does not, X25, ISDN (RFC 1183),
//! NSAP (RFC 1706), PX (RFC 2163), AVC and DLV (RFC 4431). Also SVCB/HTTPS parameters (RFC 9460 §2.1): `domain` 0.12.3's scanner
//! checks key characters with half-open ranges that leave out `9` and `z`, so it refuses
//! `key9`, `key99`, `key65279`...; they are read, checked and printed here, the keys 7 and
//! up as opaque octets as Knot 3.2 and BIND 9.18 read them. Owns no I/O; the master-file
//! reader (`zone::parse`) hands it one record's tokens.

use std::fmt::Write;

use base64::Engine;

use super::parse::{err, parse_name_into, parse_type, push_charstr, EntryError, Token};
use super::text::{write_charstrs, write_quoted};
use crate::wire::name;
use crate::wire::rdata::rtype;

/// One field of an rdata layout in presentation and wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    U8(&'static str),
    U16(&'static str),
    U32(&'static str),
    /// A DNSSEC algorithm number or mnemonic (one octet).
    Algorithm,
    /// A CERT type number or mnemonic (two octets, RFC 4398 §2.1).
    CertType,
    /// An uncompressed domain name.
    Name,
    Ipv4,
    /// Four groups of up to four hexadecimal digits, `:`-separated (RFC 6742 §2.3).
    Ilnp64,
    /// Six or eight two-digit hexadecimal octets, `-`-separated (RFC 7043 §3).
    Eui(usize),
    /// A <character-string> (RFC 1035 §3.3).
    CharStr,
    /// A <character-string> or nothing (the last field).
    OptCharStr,
    /// The rest of the rdata: one or more <character-string>s.
    CharStrs,
    /// An NSAP address: `0x` and hexadecimal digits, dots anywhere between them
    /// (RFC 1706 §5).
    Nsap,
    /// The rest of the rdata in base64, over any number of tokens (at least one).
    Base64,
    /// The rest of the rdata in hexadecimal, over any number of tokens (at least one).
    Hex,
    /// The rest of the rdata: a type bitmap (RFC 4034 §4.1.2), from type mnemonics.
    Bitmap,
    /// The rest of the rdata: one string, not length-prefixed (RFC 7553 §4.4; Knot and BIND
    /// take an empty one too).
    Rest,
    /// The whole rdata of LOC.
    Loc,
    /// The whole rdata of APL.
    Apl,
}

use Field::*;

/// The types read here, and their fields in order.
const LAYOUTS: &[(u16, &[Field])] = &[
    (rtype::AFSDB, &[U16("AFSDB subtype"), Name]),
    (rtype::RT, &[U16("RT preference"), Name]),
    (rtype::KX, &[U16("KX preference"), Name]),
    (rtype::LP, &[U16("LP preference"), Name]),
    (rtype::KEY, &[U16("KEY flags"), U8("KEY protocol"), Algorithm, Base64]),
    (rtype::CERT, &[CertType, U16("CERT key tag"), Algorithm, Base64]),
    (rtype::DHCID, &[Base64]),
    (rtype::SMIMEA, &[U8("SMIMEA usage"), U8("SMIMEA selector"), U8("SMIMEA matching type"), Hex]),
    (rtype::CSYNC, &[U32("CSYNC serial"), U16("CSYNC flags"), Bitmap]),
    (rtype::NID, &[U16("NID preference"), Ilnp64]),
    (rtype::L32, &[U16("L32 preference"), Ipv4]),
    (rtype::L64, &[U16("L64 preference"), Ilnp64]),
    (rtype::EUI48, &[Eui(6)]),
    (rtype::EUI64, &[Eui(8)]),
    (rtype::URI, &[U16("URI priority"), U16("URI weight"), Rest]),
    (rtype::LOC, &[Loc]),
    (rtype::APL, &[Apl]),
    // Read by BIND and NSD, not by Knot.
    (rtype::X25, &[CharStr]),
    (rtype::ISDN, &[CharStr, OptCharStr]),
    (rtype::NSAP, &[Nsap]),
    (rtype::PX, &[U16("PX preference"), Name, Name]),
    (rtype::AVC, &[CharStrs]),
    (rtype::DLV, &[U16("DLV key tag"), Algorithm, U8("DLV digest type"), Hex]),
];

fn layout(t: u16) -> Option<&'static [Field]> {
    LAYOUTS.iter().find(|(lt, _)| *lt == t).map(|(_, f)| *f)
}

/// True if type `t` is read, printed and checked here.
pub fn knows(t: u16) -> bool {
    layout(t).is_some()
}

/// DNSSEC algorithm mnemonics (RFC 8624 and the IANA registry).
const ALGORITHMS: &[(&str, u8)] = &[
    ("RSAMD5", 1),
    ("DH", 2),
    ("DSA", 3),
    ("RSASHA1", 5),
    ("DSA-NSEC3-SHA1", 6),
    ("RSASHA1-NSEC3-SHA1", 7),
    ("RSASHA256", 8),
    ("RSASHA512", 10),
    ("ECC-GOST", 12),
    ("ECDSAP256SHA256", 13),
    ("ECDSAP384SHA384", 14),
    ("ED25519", 15),
    ("ED448", 16),
    ("INDIRECT", 252),
    ("PRIVATEDNS", 253),
    ("PRIVATEOID", 254),
];

/// CERT type mnemonics (RFC 4398 §2.2).
const CERT_TYPES: &[(&str, u16)] = &[
    ("PKIX", 1),
    ("SPKI", 2),
    ("PGP", 3),
    ("IPKIX", 4),
    ("ISPKI", 5),
    ("IPGP", 6),
    ("ACPKIX", 7),
    ("IACPKIX", 8),
    ("URI", 253),
    ("OID", 254),
];

fn tname(t: u16) -> String {
    super::parse::type_name(t)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn number(tok: Token<'_>, what: &str, max: u64) -> Result<u64, EntryError> {
    let s = tok.text;
    let v = (!s.is_empty() && s.len() <= 10 && s.iter().all(u8::is_ascii_digit))
        .then(|| s.iter().fold(0u64, |v, d| v * 10 + (d - b'0') as u64))
        .filter(|&v| v <= max);
    v.ok_or_else(|| EntryError { line: tok.line, message: format!("bad {what} '{}' (0-{max})", lossy(s)) })
}

fn mnemonic_or_number<T: Copy + Into<u64> + TryFrom<u64>>(
    tok: Token<'_>,
    what: &str,
    table: &[(&str, T)],
    max: u64,
) -> Result<T, EntryError> {
    if let Some(&(_, v)) = table.iter().find(|(m, _)| tok.text.eq_ignore_ascii_case(m.as_bytes())) {
        return Ok(v);
    }
    let v = number(tok, what, max)?;
    T::try_from(v).map_err(|_| EntryError { line: tok.line, message: format!("bad {what}") })
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2).map(|p| Some((hex_digit(p[0])? << 4) | hex_digit(p[1])?)).collect()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The tokens of one record's rdata, read front to back.
struct Cursor<'t, 'a> {
    toks: &'t [Token<'a>],
    pos: usize,
    /// The entry's first line, for a field missing at its end.
    line: u32,
}

impl<'t, 'a> Cursor<'t, 'a> {
    /// The next token; `Err` naming `what` is missing if there is none.
    fn next(&mut self, ty: &str, what: usize, of: usize) -> Result<Token<'a>, EntryError> {
        let tok = self.toks.get(self.pos).copied().ok_or_else(|| EntryError {
            line: self.toks.last().map_or(self.line, |t| t.line),
            message: format!("{ty} takes {of} rdata fields, found {what}"),
        })?;
        self.pos += 1;
        Ok(tok)
    }

    /// The next token, if there is one.
    fn next_opt(&mut self) -> Option<Token<'a>> {
        let tok = self.toks.get(self.pos).copied()?;
        self.pos += 1;
        Some(tok)
    }

    /// All tokens left.
    fn rest(&mut self) -> &'t [Token<'a>] {
        let rest = &self.toks[self.pos.min(self.toks.len())..];
        self.pos = self.toks.len();
        rest
    }
}

/// Presentation rdata of a type [`knows`] → uncompressed wire rdata appended to `out`.
/// `line` is the entry's first line (for errors when tokens are missing).
pub fn parse(t: u16, toks: &[Token<'_>], origin: &name::Name, line: u32, out: &mut Vec<u8>) -> Result<(), EntryError> {
    let Some(fields) = layout(t) else { return err(line, format!("type {} is not read here", tname(t))) };
    let ty = tname(t);
    let mut cur = Cursor { toks, pos: 0, line };
    for (k, &field) in fields.iter().enumerate() {
        match field {
            U8(what) => out.push(number(cur.next(&ty, k, fields.len())?, what, u8::MAX as u64)? as u8),
            U16(what) => {
                let v = number(cur.next(&ty, k, fields.len())?, what, u16::MAX as u64)? as u16;
                out.extend_from_slice(&v.to_be_bytes());
            }
            U32(what) => {
                let v = number(cur.next(&ty, k, fields.len())?, what, u32::MAX as u64)? as u32;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Algorithm => {
                let tok = cur.next(&ty, k, fields.len())?;
                out.push(mnemonic_or_number(tok, &format!("{ty} algorithm"), ALGORITHMS, 255)?);
            }
            CertType => {
                let tok = cur.next(&ty, k, fields.len())?;
                out.extend_from_slice(&mnemonic_or_number(tok, "CERT type", CERT_TYPES, 65535)?.to_be_bytes());
            }
            Name => parse_name_into(cur.next(&ty, k, fields.len())?, origin, out)?,
            Ipv4 => {
                let tok = cur.next(&ty, k, fields.len())?;
                let a: std::net::Ipv4Addr =
                    std::str::from_utf8(tok.text).ok().and_then(|s| s.parse().ok()).ok_or_else(|| EntryError {
                        line: tok.line,
                        message: format!("bad IPv4 address '{}'", lossy(tok.text)),
                    })?;
                out.extend_from_slice(&a.octets());
            }
            Ilnp64 => {
                let tok = cur.next(&ty, k, fields.len())?;
                let groups: Vec<&[u8]> = tok.text.split(|&c| c == b':').collect();
                let bad = || EntryError {
                    line: tok.line,
                    message: format!(
                        "bad {ty} locator '{}' (four groups of hexadecimal digits, ':'-separated)",
                        lossy(tok.text)
                    ),
                };
                if groups.len() != 4 {
                    return Err(bad());
                }
                for g in groups {
                    if g.is_empty() || g.len() > 4 {
                        return Err(bad());
                    }
                    let v = g.iter().try_fold(0u16, |v, &c| Some(v << 4 | hex_digit(c)? as u16)).ok_or_else(bad)?;
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Eui(n) => {
                let tok = cur.next(&ty, k, fields.len())?;
                let parts: Vec<&[u8]> = tok.text.split(|&c| c == b'-').collect();
                let octets: Option<Vec<u8>> = (parts.len() == n && parts.iter().all(|p| p.len() == 2))
                    .then(|| parts.iter().map(|p| decode_hex(p).map(|v| v[0])).collect())
                    .flatten();
                let octets = octets.ok_or_else(|| EntryError {
                    line: tok.line,
                    message: format!("bad {ty} address '{}' ({n} hexadecimal octets, '-'-separated)", lossy(tok.text)),
                })?;
                out.extend_from_slice(&octets);
            }
            CharStr => push_charstr(out, cur.next(&ty, k, fields.len())?)?,
            OptCharStr => {
                if let Some(tok) = cur.next_opt() {
                    push_charstr(out, tok)?;
                }
            }
            CharStrs => {
                let rest = cur.rest();
                if rest.is_empty() {
                    return err(toks.last().map_or(line, |t| t.line), format!("{ty} needs a character string"));
                }
                for &tok in rest {
                    push_charstr(out, tok)?;
                }
            }
            Nsap => {
                let tok = cur.next(&ty, k, fields.len())?;
                let hex: Vec<u8> = tok.text.iter().copied().filter(|&c| c != b'.').collect();
                let data = hex
                    .strip_prefix(b"0x")
                    .or_else(|| hex.strip_prefix(b"0X"))
                    .filter(|h| !h.is_empty())
                    .and_then(decode_hex)
                    .ok_or_else(|| EntryError {
                        line: tok.line,
                        message: format!("bad NSAP address '{}' (0x and hexadecimal digits)", lossy(tok.text)),
                    })?;
                out.extend_from_slice(&data);
            }
            Rest => {
                let tok = cur.next(&ty, k, fields.len())?;
                super::parse::decode_text_into(tok.text, out).map_err(|m| EntryError { line: tok.line, message: m })?
            }
            Base64 | Hex => {
                let rest = cur.rest();
                let what = if field == Base64 { "base64" } else { "hexadecimal" };
                if let Some(q) = rest.iter().find(|t| t.quoted) {
                    return err(q.line, format!("{what} data in {ty} rdata is not quoted"));
                }
                let text: Vec<u8> = rest.iter().flat_map(|t| t.text.iter().copied()).collect();
                let Some(first) = rest.first() else {
                    return err(toks.last().map_or(line, |t| t.line), format!("{ty} needs its {what} data"));
                };
                let data = if field == Base64 {
                    base64::engine::general_purpose::STANDARD.decode(&text).ok()
                } else {
                    decode_hex(&text)
                };
                let data = data.ok_or_else(|| EntryError {
                    line: first.line,
                    message: format!("bad {what} data in {ty} rdata '{}'", lossy(&text)),
                })?;
                out.extend_from_slice(&data);
            }
            Bitmap => bitmap(cur.rest(), out)?,
            Loc => loc(cur.rest(), line, out)?,
            Apl => apl(cur.rest(), out)?,
        }
    }
    if let Some(tok) = toks.get(cur.pos) {
        return err(tok.line, format!("trailing data in {ty} rdata: '{}'", lossy(tok.text)));
    }
    Ok(())
}

/// A type bitmap from type mnemonics (RFC 4034 §4.1.2), windows in order.
fn bitmap(toks: &[Token<'_>], out: &mut Vec<u8>) -> Result<(), EntryError> {
    let mut types = Vec::with_capacity(toks.len());
    for &tok in toks {
        types.push(parse_type(tok)?);
    }
    types.sort_unstable();
    types.dedup();
    let mut k = 0;
    while k < types.len() {
        let window = (types[k] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while k < types.len() && (types[k] >> 8) as u8 == window {
            let low = (types[k] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            k += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    Ok(())
}

/// Size and precision values of LOC: centimetres as mantissa and power of ten
/// (RFC 1876 §2; the mantissa is the leading digit, lower digits dropped as BIND and
/// Knot drop them).
fn loc_precision(cm: u64) -> u8 {
    let mut e = 0u8;
    let mut m = cm;
    while m >= 10 {
        m /= 10;
        e += 1;
    }
    (m as u8) << 4 | e
}

/// A decimal number with at most `scale` digits after the point, times `10^scale`.
fn fixed_point(s: &[u8], scale: u32) -> Option<(bool, u64)> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|&c| c == b'.') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, &s[..0]),
    };
    if int.is_empty() || int.len() > 10 || frac.len() > scale as usize {
        return None;
    }
    if !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = int.iter().fold(0u64, |v, d| v * 10 + (d - b'0') as u64);
    for k in 0..scale as usize {
        v = v * 10 + frac.get(k).map_or(0, |d| (d - b'0') as u64);
    }
    Some((neg, v))
}

/// LOC (RFC 1876 §3): `d1 [m1 [s1]] N|S d2 [m2 [s2]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]`.
fn loc(toks: &[Token<'_>], line: u32, out: &mut Vec<u8>) -> Result<(), EntryError> {
    let mut i = 0;
    let bad = |tok: Option<&Token<'_>>, what: &str| -> EntryError {
        match tok {
            Some(t) => EntryError { line: t.line, message: format!("bad LOC {what} '{}'", lossy(t.text)) },
            None => EntryError { line, message: format!("LOC rdata ends before its {what}") },
        }
    };
    // Latitude, then longitude: degrees, optional minutes and seconds, hemisphere.
    let mut angles = [0u32; 2];
    for (a, (max_deg, hemis)) in [(90u64, [b'N', b'S']), (180, [b'E', b'W'])].into_iter().enumerate() {
        let what = if a == 0 { "latitude" } else { "longitude" };
        let mut parts = [0u64; 3];
        let mut n = 0;
        let hemisphere = loop {
            let tok = toks.get(i);
            let Some(tok) = tok else { return Err(bad(None, what)) };
            i += 1;
            if tok.text.len() == 1 && hemis.iter().any(|h| tok.text[0].eq_ignore_ascii_case(h)) && n > 0 {
                break tok.text[0].to_ascii_uppercase();
            }
            let v = match n {
                0 => number(*tok, &format!("LOC {what} degrees"), max_deg).ok(),
                1 => number(*tok, &format!("LOC {what} minutes"), 59).ok(),
                2 => fixed_point(tok.text, 3).filter(|&(neg, v)| !neg && v < 60_000).map(|(_, v)| v),
                _ => None,
            };
            parts[n] = v.ok_or_else(|| bad(Some(tok), what))?;
            n += 1;
        };
        let ms = (parts[0] * 3600 + parts[1] * 60) * 1000 + parts[2];
        if ms > max_deg * 3_600_000 {
            return Err(bad(toks.get(i - 1), what));
        }
        let ms = ms as u32;
        angles[a] = if hemisphere == hemis[0] { (1u32 << 31) + ms } else { (1u32 << 31) - ms };
    }
    // Altitude in metres with centimetres, from -100000.00 to 42849672.95.
    let metres = |tok: &Token<'_>| -> Option<(bool, u64)> {
        let t = tok.text;
        fixed_point(t.strip_suffix(b"m").or_else(|| t.strip_suffix(b"M")).unwrap_or(t), 2)
    };
    let alt_tok = toks.get(i);
    let (neg, cm) = alt_tok.and_then(metres).ok_or_else(|| bad(alt_tok, "altitude"))?;
    i += 1;
    let alt = if neg { 10_000_000i64 - cm as i64 } else { 10_000_000 + cm as i64 };
    if !(0..=u32::MAX as i64).contains(&alt) {
        return Err(bad(alt_tok, "altitude"));
    }
    // Size, horizontal and vertical precision: defaults 1 m, 10 km, 10 m (RFC 1876 §3).
    let mut sizes = [100u64, 1_000_000, 1_000];
    for (k, what) in ["size", "horizontal precision", "vertical precision"].into_iter().enumerate() {
        let Some(tok) = toks.get(i) else { break };
        i += 1;
        sizes[k] = metres(tok).filter(|&(neg, cm)| !neg && cm <= 9_000_000_000).ok_or_else(|| bad(Some(tok), what))?.1;
    }
    if let Some(tok) = toks.get(i) {
        return err(tok.line, format!("trailing data in LOC rdata: '{}'", lossy(tok.text)));
    }
    out.push(0);
    for s in sizes {
        out.push(loc_precision(s));
    }
    out.extend_from_slice(&angles[0].to_be_bytes());
    out.extend_from_slice(&angles[1].to_be_bytes());
    out.extend_from_slice(&(alt as u32).to_be_bytes());
    Ok(())
}

/// APL (RFC 3123 §5): items `[!]AFI:ADDRESS/PREFIX`, AFI 1 (IPv4) or 2 (IPv6); the
/// address is stored without its trailing zero octets.
fn apl(toks: &[Token<'_>], out: &mut Vec<u8>) -> Result<(), EntryError> {
    for &tok in toks {
        let bad = || EntryError {
            line: tok.line,
            message: format!("bad APL item '{}' ([!]1:IPV4/PREFIX or [!]2:IPV6/PREFIX)", lossy(tok.text)),
        };
        let s = std::str::from_utf8(tok.text).map_err(|_| bad())?;
        let (negate, s) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (afi, rest) = s.split_once(':').ok_or_else(bad)?;
        let (addr, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().ok().filter(|_| prefix.bytes().all(|c| c.is_ascii_digit())).ok_or_else(bad)?;
        let octets: Vec<u8> = match afi {
            "1" if prefix <= 32 => addr.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?.octets().to_vec(),
            "2" if prefix <= 128 => addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.octets().to_vec(),
            _ => return Err(bad()),
        };
        let len = octets.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        out.extend_from_slice(&(if afi == "1" { 1u16 } else { 2 }).to_be_bytes());
        out.push(prefix);
        out.push(len as u8 | if negate { 0x80 } else { 0 });
        out.extend_from_slice(&octets[..len]);
    }
    Ok(())
}

/// Checks wire rdata of a type [`knows`]; `Err` says what is wrong.
pub fn validate(t: u16, rd: &[u8]) -> Result<(), String> {
    walk(t, rd, |_, _| Ok(()))
}

/// Walks wire rdata of type `t` field by field, checking each, and calls `f` with it.
fn walk(t: u16, rd: &[u8], mut f: impl FnMut(Field, &[u8]) -> Result<(), String>) -> Result<(), String> {
    let ty = tname(t);
    let fields = layout(t).ok_or_else(|| format!("type {ty} is not read here"))?;
    let short = || format!("{ty} rdata is too short");
    let mut pos = 0usize;
    for &field in fields {
        let len = match field {
            U8(_) | Algorithm => 1,
            U16(_) | CertType => 2,
            U32(_) | Ipv4 => 4,
            Ilnp64 => 8,
            Eui(n) => n,
            Name => name::uncompressed_len(rd, pos).map_err(|e| format!("bad {ty} rdata: {e}"))?,
            Base64 | Hex => {
                if pos >= rd.len() {
                    return Err(format!("{ty} rdata lacks its last field"));
                }
                rd.len() - pos
            }
            Rest => rd.len().saturating_sub(pos),
            CharStr => 1 + *rd.get(pos).ok_or_else(short)? as usize,
            OptCharStr => rd.get(pos).map_or(0, |&n| 1 + n as usize),
            CharStrs => {
                let mut p = pos;
                while p < rd.len() {
                    p += 1 + rd[p] as usize;
                }
                if p == pos || p > rd.len() {
                    return Err(format!("{ty} rdata is not a sequence of character strings"));
                }
                p - pos
            }
            Nsap => {
                if pos >= rd.len() {
                    return Err(format!("{ty} rdata is empty"));
                }
                rd.len() - pos
            }
            Bitmap => {
                check_bitmap(&rd[pos.min(rd.len())..]).map_err(|m| format!("bad {ty} type bitmap: {m}"))?;
                rd.len() - pos.min(rd.len())
            }
            Loc => {
                if rd.len() != 16 || rd[0] != 0 {
                    return Err("LOC rdata must be 16 octets of version 0".into());
                }
                for &p in &rd[1..4] {
                    if p >> 4 > 9 || p & 15 > 9 {
                        return Err(format!("bad LOC size or precision octet {p:#04x}"));
                    }
                }
                16
            }
            Apl => {
                let mut k = 0;
                while k < rd.len() {
                    let item = rd.get(k..k + 4).ok_or_else(short)?;
                    let afi = u16::from_be_bytes([item[0], item[1]]);
                    let (max_prefix, max_len) = match afi {
                        1 => (32, 4),
                        2 => (128, 16),
                        _ => return Err(format!("APL address family {afi} (1 or 2)")),
                    };
                    let n = (item[3] & 0x7f) as usize;
                    if item[2] > max_prefix || n > max_len || k + 4 + n > rd.len() {
                        return Err("bad APL item".into());
                    }
                    k += 4 + n;
                }
                rd.len()
            }
        };
        let piece = rd.get(pos..pos + len).ok_or_else(short)?;
        f(field, piece)?;
        pos += len;
    }
    if pos != rd.len() {
        return Err(format!("bad {ty} rdata: trailing octets"));
    }
    Ok(())
}

fn check_bitmap(b: &[u8]) -> Result<(), &'static str> {
    let mut k = 0;
    let mut last: Option<u8> = None;
    while k < b.len() {
        let (window, len) = (b[k], *b.get(k + 1).ok_or("truncated")? as usize);
        if last.is_some_and(|l| l >= window) {
            return Err("windows out of order");
        }
        if !(1..=32).contains(&len) || k + 2 + len > b.len() {
            return Err("bad window length");
        }
        last = Some(window);
        k += 2 + len;
    }
    Ok(())
}

/// Wire rdata of a type [`knows`] in presentation form, appended to `s`; false (and `s`
/// as it was) if the rdata is not well formed.
pub fn format(t: u16, rd: &[u8], s: &mut String) -> bool {
    let start = s.len();
    let ok = walk(t, rd, |field, b| {
        if field == OptCharStr && b.is_empty() {
            return Ok(());
        }
        if s.len() > start {
            s.push(' ');
        }
        format_field(field, b, s);
        Ok(())
    });
    if ok.is_err() {
        s.truncate(start);
    }
    ok.is_ok()
}

fn format_field(field: Field, b: &[u8], s: &mut String) {
    let be = |b: &[u8]| b.iter().fold(0u64, |v, &x| v << 8 | x as u64);
    match field {
        U8(_) | U16(_) | U32(_) | Algorithm | CertType => {
            let _ = write!(s, "{}", be(b));
        }
        Name => {
            let _ = name::write_text(b, s);
        }
        Ipv4 => {
            let _ = write!(s, "{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        }
        Ilnp64 => {
            let g: Vec<String> = b.chunks(2).map(|c| format!("{:04x}", u16::from_be_bytes([c[0], c[1]]))).collect();
            s.push_str(&g.join(":"));
        }
        Eui(_) => {
            let g: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
            s.push_str(&g.join("-"));
        }
        Base64 => s.push_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        Hex => {
            for x in b {
                let _ = write!(s, "{x:02x}");
            }
        }
        Bitmap => {
            let mut first = true;
            let mut k = 0;
            while k + 1 < b.len() {
                let (window, len) = (b[k] as u16, b[k + 1] as usize);
                for (i, &octet) in b[k + 2..k + 2 + len].iter().enumerate() {
                    for bit in 0..8 {
                        if octet & (0x80 >> bit) != 0 {
                            if !first {
                                s.push(' ');
                            }
                            first = false;
                            s.push_str(&tname(window << 8 | (i * 8 + bit) as u16));
                        }
                    }
                }
                k += 2 + len;
            }
        }
        Rest => write_quoted(s, b),
        CharStr | OptCharStr => write_quoted(s, b.get(1..).unwrap_or_default()),
        CharStrs => {
            let _ = write_charstrs(s, b);
        }
        Nsap => {
            s.push_str("0x");
            for x in b {
                let _ = write!(s, "{x:02x}");
            }
        }
        Loc => format_loc(b, s),
        Apl => {
            let mut k = 0;
            let mut first = true;
            while k + 4 <= b.len() {
                let afi = u16::from_be_bytes([b[k], b[k + 1]]);
                let n = (b[k + 3] & 0x7f) as usize;
                if !first {
                    s.push(' ');
                }
                first = false;
                if b[k + 3] & 0x80 != 0 {
                    s.push('!');
                }
                let mut addr = [0u8; 16];
                addr[..n].copy_from_slice(&b[k + 4..k + 4 + n]);
                let _ = if afi == 1 {
                    write!(s, "1:{}/{}", std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]), b[k + 2])
                } else {
                    write!(s, "2:{}/{}", std::net::Ipv6Addr::from(addr), b[k + 2])
                };
                k += 4 + n;
            }
        }
    }
}

fn format_loc(b: &[u8], s: &mut String) {
    let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    for (k, hemis) in [(4usize, ['N', 'S']), (8, ['E', 'W'])] {
        let v = u32_at(k) as i64 - (1i64 << 31);
        let ms = v.unsigned_abs();
        let _ = write!(
            s,
            "{} {} {}.{:03} {} ",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000,
            if v >= 0 { hemis[0] } else { hemis[1] }
        );
    }
    let alt = u32_at(12) as i64 - 10_000_000;
    let sign = if alt < 0 { "-" } else { "" };
    let _ = write!(s, "{sign}{}.{:02}m", alt.unsigned_abs() / 100, alt.unsigned_abs() % 100);
    for &p in &b[1..4] {
        let cm = (p >> 4) as u64 * 10u64.pow((p & 15) as u32);
        let _ = write!(s, " {}.{:02}m", cm / 100, cm % 100);
    }
}

/// SvcParamKey mnemonics (RFC 9460 §14.3.2 and the IANA registry as Knot and BIND read
/// it); any key may also be written `keyNNNNN`.
const SVC_KEYS: &[(&str, u16)] = &[
    ("mandatory", 0),
    ("alpn", 1),
    ("no-default-alpn", 2),
    ("port", 3),
    ("ipv4hint", 4),
    ("ech", 5),
    ("ipv6hint", 6),
    ("dohpath", 7),
    ("ohttp", 8),
];

/// How a SvcParamValue is read and printed: as RFC 9460 says for keys 0 to 6, as opaque
/// octets for the rest (Knot 3.2 and BIND 9.18 know no other key).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SvcValue {
    Keys,
    Alpn,
    Empty,
    Port,
    Ipv4s,
    Base64,
    Ipv6s,
    Opaque,
}

fn svc_value(key: u16) -> SvcValue {
    match key {
        0 => SvcValue::Keys,
        1 => SvcValue::Alpn,
        2 => SvcValue::Empty,
        3 => SvcValue::Port,
        4 => SvcValue::Ipv4s,
        5 => SvcValue::Base64,
        6 => SvcValue::Ipv6s,
        _ => SvcValue::Opaque,
    }
}

fn svc_key(text: &[u8]) -> Option<u16> {
    if let Some(&(_, k)) = SVC_KEYS.iter().find(|(m, _)| m.as_bytes() == text) {
        return Some(k);
    }
    let digits = text.strip_prefix(b"key")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0u32, |v, d| v * 10 + (d - b'0') as u32);
    // 65535 is the reserved "invalid key" (RFC 9460 §14.3.2), but Knot and BIND read it.
    u16::try_from(v).ok()
}

/// A key as text: the mnemonic of keys 0 to 6, `keyNNNNN` for the rest (which Knot 3.2
/// and BIND 9.18 read only in that form).
fn svc_key_text(key: u16, s: &mut String) {
    match SVC_KEYS.iter().find(|(_, k)| *k == key && key <= 6) {
        Some((m, _)) => s.push_str(m),
        None => {
            let _ = write!(s, "key{key}");
        }
    }
}

/// Splits a value-list (RFC 9460 Appendix A.1) at its unescaped commas, `\` escaping the
/// octet after it.
fn value_list(v: &[u8]) -> Vec<Vec<u8>> {
    let mut items = vec![Vec::new()];
    let mut k = 0;
    while k < v.len() {
        match v[k] {
            b'\\' if k + 1 < v.len() => {
                items.last_mut().unwrap().push(v[k + 1]);
                k += 1;
            }
            b',' => items.push(Vec::new()),
            c => items.last_mut().unwrap().push(c),
        }
        k += 1;
    }
    items
}

/// SVCB and HTTPS (RFC 9460 §2.1): `PRIORITY TARGET [KEY[=VALUE]]...`, parameters written
/// in wire form in increasing key order.
pub fn parse_svcb(
    t: u16,
    toks: &[Token<'_>],
    origin: &name::Name,
    line: u32,
    out: &mut Vec<u8>,
) -> Result<(), EntryError> {
    let ty = tname(t);
    if toks.len() < 2 {
        return err(line, format!("{ty} needs a priority and a target name"));
    }
    out.extend_from_slice(&(number(toks[0], &format!("{ty} priority"), 65535)? as u16).to_be_bytes());
    parse_name_into(toks[1], origin, out)?;
    let mut params: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut mandatory: Option<(u32, Vec<u16>)> = None;
    let mut i = 2;
    while i < toks.len() {
        let first = toks[i];
        if first.quoted {
            return err(
                first.line,
                format!("{ty} parameter '{}' quoted whole (only a value may be)", lossy(first.text)),
            );
        }
        let mut item = Vec::new();
        super::parse::decode_text_into(first.text, &mut item)
            .map_err(|m| EntryError { line: first.line, message: m })?;
        i += 1;
        // `key="value"`: the quoted value is a token of its own, glued to the `=`.
        if let Some(&tok) = toks.get(i).filter(|t| t.glued && t.quoted && first.text.ends_with(b"=")) {
            super::parse::decode_text_into(tok.text, &mut item)
                .map_err(|m| EntryError { line: tok.line, message: m })?;
            i += 1;
        }
        let shown = lossy(&item);
        let (key_text, value) = match item.iter().position(|&c| c == b'=') {
            Some(p) => (&item[..p], Some(&item[p + 1..])),
            None => (&item[..], None),
        };
        let bad =
            |what: &str| EntryError { line: first.line, message: format!("bad {ty} parameter '{shown}': {what}") };
        let key = svc_key(key_text).ok_or_else(|| bad("unknown key (a mnemonic or keyNNNNN, 0-65534)"))?;
        if params.iter().any(|(k, _)| *k == key) {
            return Err(bad("key given twice"));
        }
        let value = value.unwrap_or(b"");
        let mut wire = Vec::new();
        match svc_value(key) {
            SvcValue::Empty if value.is_empty() => {}
            SvcValue::Empty => return Err(bad("takes no value")),
            SvcValue::Opaque => wire.extend_from_slice(value),
            SvcValue::Port => {
                let p = std::str::from_utf8(value).ok().filter(|s| s.bytes().all(|c| c.is_ascii_digit()));
                let p: u16 = p.and_then(|s| s.parse().ok()).ok_or_else(|| bad("not a port number"))?;
                wire.extend_from_slice(&p.to_be_bytes());
            }
            SvcValue::Base64 => {
                wire = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| bad("not base64"))?;
            }
            list => {
                for entry in value_list(value) {
                    let s = std::str::from_utf8(&entry).ok();
                    match list {
                        SvcValue::Alpn if !entry.is_empty() && entry.len() <= 255 => {
                            wire.push(entry.len() as u8);
                            wire.extend_from_slice(&entry);
                        }
                        SvcValue::Ipv4s => wire.extend_from_slice(
                            &s.and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
                                .ok_or_else(|| bad("not an IPv4 address list"))?
                                .octets(),
                        ),
                        SvcValue::Ipv6s => wire.extend_from_slice(
                            &s.and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
                                .ok_or_else(|| bad("not an IPv6 address list"))?
                                .octets(),
                        ),
                        SvcValue::Keys => {
                            let k = svc_key(&entry).ok_or_else(|| bad("unknown key in the list"))?;
                            if k == 0 {
                                return Err(bad("mandatory lists itself"));
                            }
                            wire.extend_from_slice(&k.to_be_bytes());
                        }
                        _ => return Err(bad("empty or overlong protocol id")),
                    }
                }
                if list == SvcValue::Keys {
                    let mut keys: Vec<u16> = wire.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                    keys.sort_unstable();
                    if keys.windows(2).any(|w| w[0] == w[1]) {
                        return Err(bad("a key listed twice"));
                    }
                    wire = keys.iter().flat_map(|k| k.to_be_bytes()).collect();
                    mandatory = Some((first.line, keys));
                }
            }
        }
        if wire.len() > 65535 {
            return Err(bad("value too long"));
        }
        params.push((key, wire));
    }
    if let Some((at, keys)) = mandatory {
        if let Some(k) = keys.iter().find(|k| !params.iter().any(|(p, _)| p == *k)) {
            let mut name = String::new();
            svc_key_text(*k, &mut name);
            return err(at, format!("{ty} lists {name} as mandatory but does not give it"));
        }
    }
    params.sort_unstable_by_key(|(k, _)| *k);
    for (k, v) in params {
        out.extend_from_slice(&k.to_be_bytes());
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(&v);
    }
    Ok(())
}

/// Checks the SvcParams of SVCB/HTTPS wire rdata: well formed, keys strictly increasing
/// (RFC 9460 §2.2), values of the known keys as their key wants them.
pub fn validate_svcb(rd: &[u8]) -> Result<(), String> {
    svc_params(rd).map(|_| ())
}

/// SVCB/HTTPS rdata taken apart.
struct Svcb<'a> {
    priority: u16,
    target: &'a [u8],
    /// (key, value), keys strictly increasing.
    params: Vec<(u16, &'a [u8])>,
}

/// SVCB/HTTPS wire rdata taken apart and checked.
fn svc_params(rd: &[u8]) -> Result<Svcb<'_>, String> {
    let priority = u16::from_be_bytes([*rd.first().ok_or("empty SVCB rdata")?, *rd.get(1).ok_or("short SVCB rdata")?]);
    let end = 2 + name::uncompressed_len(rd, 2).map_err(|e| format!("bad SVCB target: {e}"))?;
    let mut params = Vec::new();
    let mut k = end;
    while k < rd.len() {
        let h = rd.get(k..k + 4).ok_or("truncated SvcParam")?;
        let (key, len) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]) as usize);
        let v = rd.get(k + 4..k + 4 + len).ok_or("truncated SvcParam value")?;
        if params.last().is_some_and(|&(last, _)| last >= key) {
            return Err("SvcParam keys out of order or repeated".into());
        }
        let ok = match svc_value(key) {
            SvcValue::Keys => len > 0 && len % 2 == 0,
            SvcValue::Empty => len == 0,
            SvcValue::Port => len == 2,
            SvcValue::Ipv4s => len > 0 && len % 4 == 0,
            SvcValue::Ipv6s => len > 0 && len % 16 == 0,
            SvcValue::Alpn => {
                let mut p = 0;
                while p < len && v[p] > 0 {
                    p += 1 + v[p] as usize;
                }
                len > 0 && p == len
            }
            SvcValue::Base64 | SvcValue::Opaque => true,
        };
        if !ok {
            return Err(format!("bad value of SvcParam key{key}"));
        }
        params.push((key, v));
        k += 4 + len;
    }
    Ok(Svcb { priority, target: &rd[2..end], params })
}

/// SVCB/HTTPS wire rdata in presentation form, appended to `s`; false if not well formed.
pub fn format_svcb(rd: &[u8], s: &mut String) -> bool {
    let Ok(Svcb { priority, target, params }) = svc_params(rd) else { return false };
    let _ = write!(s, "{priority} ");
    let _ = name::write_text(target, s);
    for (key, v) in params {
        s.push(' ');
        svc_key_text(key, s);
        if v.is_empty() {
            continue;
        }
        s.push('=');
        match svc_value(key) {
            SvcValue::Keys => {
                for (n, c) in v.chunks(2).enumerate() {
                    if n > 0 {
                        s.push(',');
                    }
                    svc_key_text(u16::from_be_bytes([c[0], c[1]]), s);
                }
            }
            SvcValue::Port => {
                let _ = write!(s, "{}", u16::from_be_bytes([v[0], v[1]]));
            }
            SvcValue::Ipv4s => {
                let a: Vec<String> =
                    v.chunks(4).map(|c| std::net::Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string()).collect();
                s.push_str(&a.join(","));
            }
            SvcValue::Ipv6s => {
                let a: Vec<String> = v
                    .chunks(16)
                    .map(|c| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(c).unwrap()).to_string())
                    .collect();
                s.push_str(&a.join(","));
            }
            SvcValue::Base64 => s.push_str(&base64::engine::general_purpose::STANDARD.encode(v)),
            SvcValue::Alpn => {
                // A value-list: commas and backslashes inside an id are escaped first.
                let mut list = Vec::new();
                let mut p = 0;
                while p < v.len() {
                    if p > 0 {
                        list.push(b',');
                    }
                    for &c in &v[p + 1..p + 1 + v[p] as usize] {
                        if c == b',' || c == b'\\' {
                            list.push(b'\\');
                        }
                        list.push(c);
                    }
                    p += 1 + v[p] as usize;
                }
                format_field(Rest, &list, s);
            }
            SvcValue::Empty | SvcValue::Opaque => format_field(Rest, v, s),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name::Name;
    use crate::zone::parse::{load_text, Loaded};

    const HEAD: &str = "$TTL 3600\n@ SOA ns hostmaster 1 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n";

    fn load(records: &str) -> Loaded {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        load_text(std::path::Path::new("t.zone"), format!("{HEAD}{records}").as_bytes(), &origin)
    }

    /// The rdata of the one record of `t` at `r.example.com.` in a zone of `records`.
    fn rdata(t: u16, records: &str) -> Vec<u8> {
        let l = load(records);
        assert!(l.is_servable(), "{records}: {:?}", l.diagnostics);
        let owner = Name::parse_text(b"r.example.com.", None).unwrap();
        l.zone.rrset(&owner, t).unwrap().rdata.first().unwrap().to_vec()
    }

    /// The one error a zone of `records` gives: its line and message.
    fn error(records: &str) -> (u32, String) {
        let l = load(records);
        let errors: Vec<_> = l.errors().collect();
        assert_eq!(errors.len(), 1, "{records}: {:?}", l.diagnostics);
        (errors[0].line, errors[0].message.clone())
    }

    /// Presentation form of wire rdata, as `nsxdp dump` prints it.
    fn text(t: u16, rd: &[u8]) -> String {
        let mut s = String::new();
        crate::zone::text::format_rdata(&mut s, t, rd);
        s
    }

    #[test]
    fn loc() {
        // RFC 1876 §3's example, and one with every field.
        let rd = rdata(rtype::LOC, "r LOC 42 21 54 N 71 06 18 W -24m 30m\n");
        let want = [0, 0x33, 0x16, 0x13, 0x89, 0x17, 0x2d, 0xd0, 0x70, 0xbe, 0x15, 0xf0, 0x00, 0x98, 0x8d, 0x20];
        assert_eq!(rd, want);
        assert_eq!(text(rtype::LOC, &rd), "42 21 54.000 N 71 6 18.000 W -24.00m 30.00m 10000.00m 10.00m");
        let rd = rdata(rtype::LOC, "r LOC 52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m\n");
        assert_eq!(rd, [0, 0x12, 0x16, 0x13, 0x8b, 0x3c, 0xf0, 0x18, 0x81, 0x0c, 0xbc, 0xe0, 0x00, 0x98, 0x95, 0xb8]);
        // Minutes and seconds may go; sizes keep their leading digit.
        let rd = rdata(rtype::LOC, "r LOC 0 S 0 W 42849672.95m 90000000m 1.5m 0\n");
        assert_eq!(rd, [0, 0x99, 0x12, 0x00, 0x80, 0, 0, 0, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(text(rtype::LOC, &rd), "0 0 0.000 N 0 0 0.000 E 42849672.95m 90000000.00m 1.00m 0.00m");
        for (bad, what) in [
            ("91 0 0 N 0 E 0", "latitude"),
            ("90 0 0.001 N 0 E 0", "latitude"),
            ("0 60 N 0 E 0", "latitude"),
            ("0 0 60 N 0 E 0", "latitude"),
            ("0 0 1.0001 N 0 E 0", "latitude"),
            ("0 N 181 E 0", "longitude"),
            ("0 N 0 X 0", "longitude"),
            ("0 N 0 E", "altitude"),
            ("0 N 0 E -100000.01m", "altitude"),
            ("0 N 0 E 42849672.96m", "altitude"),
            ("0 N 0 E 0 90000000.01m", "size"),
            ("0 N 0 E 0 1 -1", "horizontal precision"),
            ("0 N 0 E 0 1 1 1 1", "trailing data"),
        ] {
            let (line, msg) = error(&format!("\nr LOC {bad}\n"));
            assert_eq!(line, 6, "{bad}");
            assert!(msg.contains(what), "{bad}: {msg}");
        }
        // Wire form: 16 octets of version 0, digits 0-9 in the sizes.
        let (_, msg) = error("r LOC \\# 15 000000000000000000000000000000\n");
        assert!(msg.contains("16 octets"), "{msg}");
        let (_, msg) = error("r LOC \\# 16 00a0000000000000000000000000000000\n");
        assert!(msg.contains("RFC 3597 length"), "{msg}");
        let (_, msg) = error("r LOC \\# 16 00a00000000000000000000000000000\n");
        assert!(msg.contains("precision octet"), "{msg}");
    }

    #[test]
    fn eui48_eui64() {
        // RFC 7043 §3.2 and §4.2.
        assert_eq!(rdata(rtype::EUI48, "r EUI48 00-00-5e-00-53-2a\n"), [0, 0, 0x5e, 0, 0x53, 0x2a]);
        let rd = rdata(rtype::EUI64, "r EUI64 00-00-5E-EF-10-00-00-2A\n");
        assert_eq!(rd, [0, 0, 0x5e, 0xef, 0x10, 0, 0, 0x2a]);
        assert_eq!(text(rtype::EUI64, &rd), "00-00-5e-ef-10-00-00-2a");
        for bad in [
            "EUI48 00-00-5e-00-53",
            "EUI48 00-00-5e-00-53-2a-00",
            "EUI48 00:00:5e:00:53:2a",
            "EUI48 0-00-5e-00-53-2a",
            "EUI48 00-00-5e-00-53-2g",
            "EUI64 00-00-5e-00-53-2a",
            "EUI48 00-00-5e-00-53-2a 1",
            "EUI48",
        ] {
            let (line, msg) = error(&format!("r {bad}\n"));
            assert_eq!(line, 5, "{bad}");
            assert!(msg.contains("EUI"), "{bad}: {msg}");
        }
        let (_, msg) = error("r EUI48 \\# 5 0000000000\n");
        assert!(msg.contains("too short"), "{msg}");
    }

    #[test]
    fn apl() {
        // RFC 3123 §5's example.
        let rd = rdata(rtype::APL, "r APL 1:192.168.32.0/21 !1:192.168.38.0/28\n");
        assert_eq!(rd, [0, 1, 21, 3, 192, 168, 32, 0, 1, 28, 0x83, 192, 168, 38]);
        assert_eq!(text(rtype::APL, &rd), "1:192.168.32.0/21 !1:192.168.38.0/28");
        let rd = rdata(rtype::APL, "r APL 2:2001:db8::/32 1:0.0.0.0/0\n");
        assert_eq!(rd, [0, 2, 32, 4, 0x20, 1, 0x0d, 0xb8, 0, 1, 0, 0]);
        assert_eq!(text(rtype::APL, &rd), "2:2001:db8::/32 1:0.0.0.0/0");
        assert_eq!(rdata(rtype::APL, "r APL\n"), b"");
        for bad in ["3:1.2.3.4/8", "1:1.2.3.4/33", "2:::/129", "1:1.2.3/8", "1:1.2.3.4", "!!1:1.2.3.4/8", "1:1.2.3.4/x"]
        {
            let (line, msg) = error(&format!("r APL 1:192.0.2.0/24 (\n {bad} )\n"));
            assert_eq!(line, 6, "{bad}");
            assert!(msg.contains("bad APL item"), "{bad}: {msg}");
        }
        let (_, msg) = error("r APL \\# 4 00030000\n");
        assert!(msg.contains("family 3"), "{msg}");
        let (_, msg) = error("r APL \\# 5 0001080201\n");
        assert!(msg.contains("bad APL item"), "{msg}");
    }

    #[test]
    fn name_and_number_types() {
        let rd = rdata(rtype::AFSDB, "r AFSDB 1 AFS\n");
        assert_eq!(rd, b"\x00\x01\x03AFS\x07example\x03com\x00");
        assert_eq!(text(rtype::AFSDB, &rd), "1 AFS.example.com.");
        assert_eq!(rdata(rtype::RT, "r RT 10 a.\n"), b"\x00\x0a\x01a\x00");
        assert_eq!(rdata(rtype::KX, "r KX 65535 .\n"), b"\xff\xff\x00");
        let rd = rdata(rtype::LP, "r LP 10 l\\.p.example.net.\n");
        assert_eq!(rd, b"\x00\x0a\x03l.p\x07example\x03net\x00");
        assert_eq!(text(rtype::LP, &rd), "10 l\\.p.example.net.");
        // RFC 6742 §2.
        let rd = rdata(rtype::NID, "r NID 10 0014:4fff:ff20:ee64\n");
        assert_eq!(rd, [0, 10, 0x00, 0x14, 0x4f, 0xff, 0xff, 0x20, 0xee, 0x64]);
        assert_eq!(text(rtype::NID, &rd), "10 0014:4fff:ff20:ee64");
        assert_eq!(
            rdata(rtype::L64, "r L64 10 2001:0DB8:1140:1000\n"),
            [0, 10, 0x20, 1, 0x0d, 0xb8, 0x11, 0x40, 0x10, 0]
        );
        let rd = rdata(rtype::L32, "r L32 10 10.1.2.0\n");
        assert_eq!(rd, [0, 10, 10, 1, 2, 0]);
        assert_eq!(text(rtype::L32, &rd), "10 10.1.2.0");
        // RFC 7477 §2.1.1 (A NS AAAA), and an empty bitmap.
        let rd = rdata(rtype::CSYNC, "r CSYNC 66 3 A NS AAAA\n");
        assert_eq!(rd, [0, 0, 0, 66, 0, 3, 0, 4, 0x60, 0, 0, 0x08]);
        assert_eq!(text(rtype::CSYNC, &rd), "66 3 A NS AAAA");
        assert_eq!(rdata(rtype::CSYNC, "r CSYNC 1 0\n"), [0, 0, 0, 1, 0, 0]);
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 1, 0x40, 4, 27];
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(rdata(rtype::CSYNC, "r CSYNC 1 0 TYPE1234 A\n"), want);
        // RFC 7553 §4.5.
        let rd = rdata(rtype::URI, "r URI 10 1 \"ftp://ftp1.example.com/public\"\n");
        assert_eq!(rd, b"\x00\x0a\x00\x01ftp://ftp1.example.com/public");
        assert_eq!(text(rtype::URI, &rd), "10 1 \"ftp://ftp1.example.com/public\"");
        assert_eq!(text(rtype::URI, b"\x00\x01\x00\x02a\"\\\x07"), "1 2 \"a\\\"\\\\\\007\"");
        for (bad, what) in [
            ("AFSDB 65536 a", "AFSDB subtype"),
            ("AFSDB 1", "AFSDB takes 2 rdata fields"),
            ("RT -1 a", "RT preference"),
            ("NID 1 0:0:0", "NID locator"),
            ("L64 1 0:0:0:00000", "L64 locator"),
            ("L64 1 0:0:0:g", "L64 locator"),
            ("L32 1 10.1.2", "IPv4"),
            ("CSYNC 1 0 FROB", "unknown record type"),
            ("CSYNC 4294967296 0", "CSYNC serial"),
            ("URI 1 1", "URI takes 3"),
            ("URI 1 1 a b", "trailing data"),
        ] {
            let (line, msg) = error(&format!("r {bad}\n"));
            assert_eq!(line, 5, "{bad}");
            assert!(msg.contains(what), "{bad}: {msg}");
        }
        let (_, msg) = error("r CSYNC \\# 8 0000000100000001\n");
        assert!(msg.contains("type bitmap"), "{msg}");
        assert_eq!(rdata(rtype::URI, "r URI 1 2 \"\"\n"), [0, 1, 0, 2]);
        assert_eq!(rdata(rtype::URI, "r URI \\# 4 00010002\n"), [0, 1, 0, 2]);
        let (_, msg) = error("r URI \\# 3 000100\n");
        assert!(msg.contains("too short"), "{msg}");
    }

    #[test]
    fn key_cert_dhcid_smimea() {
        let rd = rdata(rtype::KEY, "r KEY 256 3 RSASHA256 AQID BA==\n");
        assert_eq!(rd, [1, 0, 3, 8, 1, 2, 3, 4]);
        assert_eq!(text(rtype::KEY, &rd), "256 3 8 AQIDBA==");
        // RFC 4398 §2.2 mnemonics.
        assert_eq!(rdata(rtype::CERT, "r CERT PGP 0 0 AQID\n"), [0, 3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(rdata(rtype::CERT, "r CERT 65535 1 ed25519 AQID\n"), [0xff, 0xff, 0, 1, 15, 1, 2, 3]);
        // RFC 4701 §3.6.
        let rd = rdata(rtype::DHCID, "r DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=\n");
        assert_eq!(rd.len(), 35);
        assert_eq!(text(rtype::DHCID, &rd), "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=");
        let rd = rdata(rtype::SMIMEA, "r SMIMEA 3 1 1 0123 4567\n");
        assert_eq!(rd, [3, 1, 1, 0x01, 0x23, 0x45, 0x67]);
        assert_eq!(text(rtype::SMIMEA, &rd), "3 1 1 01234567");
        for (bad, what) in [
            ("KEY 256 3 8", "needs its base64"),
            ("KEY 256 3 8 AQI$", "bad base64"),
            ("KEY 256 3 FROB AQID", "KEY algorithm"),
            ("KEY 256 256 8 AQID", "KEY protocol"),
            ("CERT FROB 0 0 AQID", "CERT type"),
            ("SMIMEA 3 1 1 012", "bad hexadecimal"),
            ("SMIMEA 3 1 1", "needs its hexadecimal"),
            ("DHCID", "needs its base64"),
            ("DHCID \"AQID\"", "not quoted"),
            ("SMIMEA 3 1 1 \"01\"", "not quoted"),
        ] {
            let (line, msg) = error(&format!("r {bad}\n"));
            assert_eq!(line, 5, "{bad}");
            assert!(msg.contains(what), "{bad}: {msg}");
        }
    }

    #[test]
    fn bind_and_nsd_types() {
        // RFC 1183 §3.1 and §3.2.
        let rd = rdata(rtype::X25, "r X25 311061700956\n");
        assert_eq!(rd, b"\x0c311061700956");
        assert_eq!(text(rtype::X25, &rd), "\"311061700956\"");
        let rd = rdata(rtype::ISDN, "r ISDN 150862028003217 004\n");
        assert_eq!(rd, b"\x0f150862028003217\x03004");
        assert_eq!(text(rtype::ISDN, &rd), "\"150862028003217\" \"004\"");
        let rd = rdata(rtype::ISDN, "r ISDN \"1\\\"2\"\n");
        assert_eq!(rd, b"\x031\"2");
        assert_eq!(text(rtype::ISDN, &rd), "\"1\\\"2\"");
        // RFC 1706 §6's example.
        let rd = rdata(rtype::NSAP, "r NSAP 0x47.0005.80.005a00.0000.0001.e133.ffffff000162.00\n");
        assert_eq!(rd.len(), 20);
        assert_eq!(&rd[..4], [0x47, 0x00, 0x05, 0x80]);
        assert_eq!(text(rtype::NSAP, &rd), "0x47000580005a0000000001e133ffffff00016200");
        assert_eq!(rdata(rtype::NSAP, "r NSAP 0X.4.7.\n"), [0x47]);
        // RFC 2163 §4.
        let rd = rdata(rtype::PX, "r PX 10 Map822 x400.example.net.\n");
        assert_eq!(rd, b"\x00\x0a\x06Map822\x07example\x03com\x00\x04x400\x07example\x03net\x00");
        assert_eq!(text(rtype::PX, &rd), "10 Map822.example.com. x400.example.net.");
        let rd = rdata(rtype::AVC, "r AVC \"app-name:WOLFGANG\" b\n");
        assert_eq!(rd, b"\x11app-name:WOLFGANG\x01b");
        assert_eq!(text(rtype::AVC, &rd), "\"app-name:WOLFGANG\" \"b\"");
        let rd = rdata(rtype::DLV, "r DLV 30795 RSASHA1 1 0123456789abcdef0123456789abcdef01234567\n");
        assert_eq!(&rd[..5], [0x78, 0x4b, 5, 1, 0x01]);
        assert_eq!(text(rtype::DLV, &rd), "30795 5 1 0123456789abcdef0123456789abcdef01234567");
        for (bad, what) in [
            ("X25", "X25 takes 1"),
            ("X25 1 2", "trailing data"),
            ("ISDN 1 2 3", "trailing data"),
            ("AVC", "needs a character string"),
            ("NSAP 47", "bad NSAP"),
            ("NSAP 0x", "bad NSAP"),
            ("NSAP 0x4", "bad NSAP"),
            ("NSAP 0x4g", "bad NSAP"),
            ("PX 1 a", "PX takes 3"),
            ("DLV 1 1 1", "needs its hexadecimal"),
        ] {
            let (line, msg) = error(&format!("r {bad}\n"));
            assert_eq!(line, 5, "{bad}");
            assert!(msg.contains(what), "{bad}: {msg}");
        }
        let long = "x".repeat(256);
        let (_, msg) = error(&format!("r X25 {long}\n"));
        assert!(msg.contains("at most 255"), "{msg}");
        let (_, msg) = error("r AVC \\# 2 0200\n");
        assert!(msg.contains("character strings"), "{msg}");
        let (_, msg) = error("r ISDN \\# 4 01310231\n");
        assert!(msg.contains("too short"), "{msg}");
    }

    #[test]
    fn svcb_params() {
        // RFC 9460 Appendix D.2, figures 5 to 9.
        let rd = rdata(rtype::SVCB, "r SVCB 1 foo.example.com. key667=hello\n");
        assert_eq!(rd, b"\x00\x01\x03foo\x07example\x03com\x00\x02\x9b\x00\x05hello");
        assert_eq!(text(rtype::SVCB, &rd), "1 foo.example.com. key667=\"hello\"");
        let rd = rdata(rtype::SVCB, "r SVCB 1 foo.example.com. key667=\"hello\\210qoo\"\n");
        assert_eq!(rd, b"\x00\x01\x03foo\x07example\x03com\x00\x02\x9b\x00\x09hello\xd2qoo");
        let rd = rdata(rtype::SVCB, "r SVCB 1 foo.example.com. ipv6hint=\"2001:db8::1,2001:db8::53:1\"\n");
        assert_eq!(&rd[19..23], [0, 6, 0, 32]);
        let rd =
            rdata(rtype::SVCB, "r SVCB 16 foo.example.org. alpn=h2,h3-19 mandatory=ipv4hint,alpn ipv4hint=192.0.2.1\n");
        assert_eq!(
            &rd[19..],
            b"\x00\x00\x00\x04\x00\x01\x00\x04\x00\x01\x00\x09\x02h2\x05h3-19\x00\x04\x00\x04\xc0\x00\x02\x01"
        );
        assert_eq!(
            text(rtype::SVCB, &rd),
            "16 foo.example.org. mandatory=alpn,ipv4hint alpn=\"h2,h3-19\" ipv4hint=192.0.2.1"
        );
        let rd = rdata(rtype::SVCB, "r SVCB 16 foo.example.org. alpn=\"f\\\\\\\\oo\\\\,bar,h2\"\n");
        assert_eq!(&rd[19..], b"\x00\x01\x00\x0c\x08f\\oo,bar\x02h2");
        assert_eq!(text(rtype::SVCB, &rd), "16 foo.example.org. alpn=\"f\\\\\\\\oo\\\\,bar,h2\"");
        // The keys `domain` 0.12 refuses (a 9 in the number), beside ones it reads.
        let rd = rdata(
            rtype::HTTPS,
            "r HTTPS 1 . key9=a key99 key999=\"c c\" key9999= key65279=z key10=d key1000=f mandatory=key9\n",
        );
        assert_eq!(
            &rd[3..],
            b"\x00\x00\x00\x02\x00\x09\x00\x09\x00\x01a\x00\x0a\x00\x01d\x00\x63\x00\x00\x03\xe7\x00\x03c c\x03\xe8\x00\x01f\x27\x0f\x00\x00\xfe\xff\x00\x01z"
        );
        assert_eq!(
            text(rtype::HTTPS, &rd),
            "1 . mandatory=key9 key9=\"a\" key10=\"d\" key99 key999=\"c c\" key1000=\"f\" key9999 key65279=\"z\""
        );
        // Keys 7 and up are opaque, 65535 too (as Knot and BIND read them).
        let rd = rdata(rtype::SVCB, "r SVCB 1 . key8=x dohpath=/q{?dns} mandatory=key65535 key65535\n");
        assert!(rd.ends_with(b"\x00\x07\x00\x08/q{?dns}\x00\x08\x00\x01x\xff\xff\x00\x00"), "{rd:?}");
        assert_eq!(text(rtype::SVCB, &rd), "1 . mandatory=key65535 key7=\"/q{?dns}\" key8=\"x\" key65535");
        // RFC 9460 Appendix D.3's failures, and ours.
        for (bad, what) in [
            ("1 foo.example.com. key123=abc key123=def", "twice"),
            ("1 foo.example.com. mandatory", "unknown key in the list"),
            ("1 foo.example.com. alpn", "protocol id"),
            ("1 foo.example.com. port", "port"),
            ("1 foo.example.com. ipv4hint", "IPv4"),
            ("1 foo.example.com. ipv6hint", "IPv6"),
            ("1 foo.example.com. no-default-alpn=abc", "no value"),
            ("1 foo.example.com. mandatory=key123", "does not give it"),
            ("1 foo.example.com. mandatory=mandatory", "lists itself"),
            ("1 foo.example.com. ipv6hint=\"2001:db8::1,2001:db8::53:1\" mandatory=ipv6hint,ipv6hint", "twice"),
            ("1 foo.example.com. \"alpn=h2\"", "quoted whole"),
            ("1 foo.example.com. key9999=\"a\"\"b\"", "quoted whole"),
            ("1 foo.example.com. key65536=a", "unknown key"),
            ("1 foo.example.com. frob=1", "unknown key"),
            ("1 foo.example.com. Alpn=h2", "unknown key"),
            ("1 foo.example.com. ech=!!", "base64"),
            ("1", "priority and a target"),
            ("65536 .", "priority"),
        ] {
            let (line, msg) = error(&format!("r SVCB {bad}\n"));
            assert_eq!(line, 5, "{bad}");
            assert!(msg.contains(what), "{bad}: {msg}");
        }
        // Wire form: keys in increasing order, values as their key wants.
        let (_, msg) = error("r SVCB \\# 11 0001 00 0003000201bb 0001\n");
        assert!(msg.contains("truncated"), "{msg}");
        let (_, msg) = error("r SVCB \\# 11 0001 00 00090000 00080000\n");
        assert!(msg.contains("out of order"), "{msg}");
        let (_, msg) = error("r SVCB \\# 8 0001 00 00030001 01\n");
        assert!(msg.contains("bad value"), "{msg}");
    }

    #[test]
    fn rdata_over_65535_octets_is_refused() {
        let key = "AAAA".repeat(65536 / 3 + 1);
        let (line, msg) = error(&format!("r KEY 256 3 8 {key}\n"));
        assert_eq!(line, 5);
        assert!(msg.contains("longer than 65535"), "{msg}");
        let strings = "\"x\" ".repeat(33000);
        let (_, msg) = error(&format!("r AVC {strings}\n"));
        assert!(msg.contains("longer than 65535"), "{msg}");
        let value = "a".repeat(65536);
        let (_, msg) = error(&format!("r SVCB 1 . key999={value}\n"));
        assert!(msg.contains("value too long"), "{msg}");
        let values: String = (0..17).map(|k| format!(" key{}={}", 100 + k, "b".repeat(4000))).collect();
        let (_, msg) = error(&format!("r SVCB 1 .{values}\n"));
        assert!(msg.contains("longer than 65535"), "{msg}");
    }

    #[test]
    fn every_layout_refuses_and_prints_bad_rdata() {
        for &(t, fields) in LAYOUTS {
            // Empty rdata fits only APL; what does not fit is printed in RFC 3597 form.
            assert_eq!(validate(t, &[]).is_ok(), fields == [Apl], "{t}");
            if fields != [Apl] {
                assert_eq!(text(t, &[]), "\\# 0", "{t}");
            }
        }
    }
}
