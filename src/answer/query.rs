//! Reading a query: header, the one question, and the additional section for EDNS.
//! Every length and offset is checked; nothing is allocated. Name skipping and the header's
//! layout are [`crate::wire::message`]'s; the header, the question and the usual OPT shapes
//! are read here directly, fused with lowercasing and hashing (the engine's hot path).

use crate::snapshot::lower_and_hash;
use crate::wire::message::{flag, skip_name, HEADER_LEN};
use crate::wire::name::MAX_NAME_LEN;
use crate::wire::rdata::rtype;

/// The EDNS option code of NSID (RFC 5001 §2.3).
pub const NSID_OPTION: u16 = 3;

/// EDNS facts from a query's OPT record (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// Where the data of the first COOKIE option (RFC 7873) is in the query: offset and
    /// length; offset 0 when there is none (the header is there).
    pub cookie_at: u16,
    pub cookie_len: u16,
    /// The query asks for our name server identifier (an NSID option, RFC 5001 §2.1).
    pub nsid: bool,
}

impl Edns {
    /// The COOKIE option's data in the query `m`, if it has one.
    pub fn cookie<'m>(&self, m: &'m [u8]) -> Option<&'m [u8]> {
        let at = usize::from(self.cookie_at);
        (at != 0).then(|| m.get(at..at + usize::from(self.cookie_len))).flatten()
    }
}

/// A parsed query. The question name itself goes to a buffer of the caller's.
#[derive(Clone, Copy, Debug)]
pub struct Query {
    pub id: u16,
    pub opcode: u8,
    pub qtype: u16,
    pub qclass: u16,
    /// Length of the question name in wire form.
    pub qname_len: usize,
    /// [`name_hash`](crate::snapshot::name_hash) of the lowercased question name.
    pub qname_hash: u64,
    /// Offset just past the question.
    pub question_end: usize,
    pub edns: Option<Edns>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Shorter than a header: nothing to answer.
    Short,
    /// QR is set.
    Response,
    /// FORMERR; the question can be echoed if it was read.
    Malformed { question_end: Option<usize> },
}

fn u16_at(m: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(o)?, *m.get(o + 1)?]))
}

/// Reads a query message; the question name, lowercased, is written to `qname` and its
/// index hash ([`name_hash`](crate::snapshot::name_hash)) goes to [`Query::qname_hash`].
/// Inlined: a `Query` returned through memory, written field by field and read back at
/// once, stalls the reads.
#[inline(always)]
pub fn parse_query(m: &[u8], qname: &mut [u8; 256]) -> Result<Query, QueryError> {
    // The header read directly rather than through `message::Header`: that view costs the
    // engine bench about 2 ns per query (its checks are not all folded away here).
    if m.len() < HEADER_LEN {
        return Err(QueryError::Short);
    }
    let flags = u16::from_be_bytes([m[2], m[3]]);
    if flags & flag::QR != 0 {
        return Err(QueryError::Response);
    }
    let bad = QueryError::Malformed { question_end: None };
    let qd = u16::from_be_bytes([m[4], m[5]]);
    let an = u16::from_be_bytes([m[6], m[7]]);
    let ns = u16::from_be_bytes([m[8], m[9]]);
    let ar = u16::from_be_bytes([m[10], m[11]]);
    if qd != 1 {
        return Err(bad);
    }
    // The question name: uncompressed (there is nothing before it to point at). First the
    // labels are walked to find its end, then it is copied, lowercased and hashed in one go.
    let mut pos = 12;
    loop {
        let l = *m.get(pos).ok_or(bad)? as usize;
        pos += 1 + l;
        if l & 0xC0 != 0 || pos - 12 > MAX_NAME_LEN {
            return Err(bad);
        }
        if l == 0 {
            break;
        }
    }
    let qname_len = pos - 12;
    let name = m.get(12..pos).ok_or(bad)?;
    let qname_hash = lower_and_hash(name, qname);
    let Some(&[t0, t1, c0, c1]) = m.get(pos..pos + 4) else { return Err(bad) };
    let mut q = Query {
        id: u16::from_be_bytes([m[0], m[1]]),
        opcode: ((flags & flag::OPCODE_MASK) >> flag::OPCODE_SHIFT) as u8,
        qtype: u16::from_be_bytes([t0, t1]),
        qclass: u16::from_be_bytes([c0, c1]),
        qname_len,
        qname_hash,
        question_end: pos + 4,
        edns: None,
    };
    pos += 4;
    let rest = &m[pos..];
    // The usual shapes first: nothing after the question, or one OPT without options.
    if an == 0 && ns == 0 {
        match (ar, rest) {
            (0, []) => return Ok(q),
            (1, &[0, 0, 41, s0, s1, _rcode, version, d0, _d1, 0, 0]) => {
                q.edns = Some(Edns {
                    udp_size: u16::from_be_bytes([s0, s1]),
                    version,
                    dnssec_ok: d0 & 0x80 != 0,
                    cookie_at: 0,
                    cookie_len: 0,
                    nsid: false,
                });
                return Ok(q);
            }
            _ => {}
        }
    }
    let bad = QueryError::Malformed { question_end: Some(pos) };
    for i in 0..(an as usize + ns as usize + ar as usize) {
        let owner_root = m.get(pos) == Some(&0);
        pos = skip_name(m, pos).map_err(|_| bad)?;
        let t = u16_at(m, pos).ok_or(bad)?;
        let class = u16_at(m, pos + 2).ok_or(bad)?;
        let ttl_hi = u16_at(m, pos + 4).ok_or(bad)?;
        let ttl_lo = u16_at(m, pos + 6).ok_or(bad)?;
        let rdlen = u16_at(m, pos + 8).ok_or(bad)? as usize;
        let rd_start = pos + 10;
        let rd = m.get(rd_start..rd_start + rdlen).ok_or(bad)?;
        if t == rtype::OPT {
            // Only in the additional section, only once, owned by the root (RFC 6891 §6.1.1).
            if i < an as usize + ns as usize || q.edns.is_some() || !owner_root {
                return Err(bad);
            }
            let (mut o, mut cookie_at, mut cookie_len, mut nsid) = (0, 0, 0, false);
            while o < rd.len() {
                let code = u16_at(rd, o).ok_or(bad)?;
                let olen = u16_at(rd, o + 2).ok_or(bad)?;
                if code == crate::cookie::OPTION_CODE && cookie_at == 0 {
                    // Offsets fit: a message is at most 65,535 octets.
                    (cookie_at, cookie_len) = ((rd_start + o + 4) as u16, olen);
                }
                nsid |= code == NSID_OPTION;
                o += 4 + usize::from(olen);
            }
            if o != rd.len() {
                return Err(bad);
            }
            q.edns = Some(Edns {
                udp_size: class,
                version: (ttl_hi & 0xFF) as u8,
                dnssec_ok: ttl_lo & 0x8000 != 0,
                cookie_at,
                cookie_len,
                nsid,
            });
        }
        pos = rd_start + rdlen;
    }
    if pos != m.len() {
        return Err(bad);
    }
    Ok(q)
}
