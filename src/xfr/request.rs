//! Reading a transfer request: the header, the one question, the client's SOA in the
//! authority section of an IXFR (RFC 1995 §3), EDNS, and whether a TSIG is there. Every
//! length and offset is checked; the TSIG itself is checked by [`super::tsig`].

use std::ops::Range;

use super::message::ResponseHead;
use crate::wire::name::{self, Name};
use crate::wire::rdata::{self, rtype};

/// Why a request cannot be served. `Malformed` calls for FORMERR; the others for silence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("shorter than a DNS header")]
    Short,
    #[error("a response (QR=1), not a request")]
    Response,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    /// The question name as it came (case kept).
    pub qname: Name,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section's bytes: name, type, class.
    pub question: Box<[u8]>,
    /// IXFR: the serial of the client's SOA, from the authority section.
    pub ixfr_serial: Option<u32>,
    /// The UDP payload size of the request's OPT, if it had one.
    pub edns_udp_size: Option<u16>,
    /// A TSIG RR is present (whether it is valid is for [`super::tsig::verify_request`]).
    pub signed: bool,
}

impl Request {
    /// What each response message repeats from this request.
    pub fn head(&self) -> ResponseHead {
        ResponseHead { id: self.id, opcode: self.opcode, rd: self.rd, question: self.question.clone() }
    }

    pub fn is_axfr(&self) -> bool {
        self.qtype == rtype::AXFR
    }

    pub fn is_ixfr(&self) -> bool {
        self.qtype == rtype::IXFR
    }
}

/// One record of a message, located.
#[derive(Clone, Debug)]
pub(crate) struct RawRecord {
    /// Offset of the record (its owner name).
    pub start: usize,
    /// The owner, uncompressed.
    pub owner: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Range<usize>,
    /// 1 answer, 2 authority, 3 additional.
    pub section: u8,
}

/// A message's sections, located.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    /// The question section (QDCOUNT of them).
    pub question: Range<usize>,
    pub records: Vec<RawRecord>,
}

pub(crate) fn u16_at(m: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(o)?, *m.get(o + 1)?]))
}

fn u32_at(m: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(m.get(o..o + 4)?.try_into().ok()?))
}

/// Walks every question and record of a message; the message must end with the last one.
pub(crate) fn walk(m: &[u8]) -> Result<Walk, &'static str> {
    if m.len() < 12 {
        return Err("shorter than a header");
    }
    let count = |i: usize| u16::from_be_bytes([m[4 + 2 * i], m[5 + 2 * i]]) as usize;
    let mut pos = 12;
    let mut buf = [0u8; 256];
    for _ in 0..count(0) {
        let (next, _) = name::read_compressed(m, pos, &mut buf).map_err(|_| "bad question name")?;
        pos = next + 4;
        if pos > m.len() {
            return Err("question runs past the end");
        }
    }
    let question = 12..pos;
    let mut records = Vec::with_capacity(count(1) + count(2) + count(3));
    for section in 1..=3u8 {
        for _ in 0..count(section as usize) {
            let start = pos;
            let (next, n) = name::read_compressed(m, pos, &mut buf).map_err(|_| "bad owner name")?;
            let bad = "record runs past the end";
            let rtype = u16_at(m, next).ok_or(bad)?;
            let class = u16_at(m, next + 2).ok_or(bad)?;
            let ttl = u32_at(m, next + 4).ok_or(bad)?;
            let rdlen = u16_at(m, next + 8).ok_or(bad)? as usize;
            let rdata = next + 10..next + 10 + rdlen;
            if rdata.end > m.len() {
                return Err(bad);
            }
            let owner = Name::from_wire(&buf[..n]).map_err(|_| "bad owner name")?;
            pos = rdata.end;
            records.push(RawRecord { start, owner, rtype, class, ttl, rdata, section });
        }
    }
    if pos != m.len() {
        return Err("trailing octets after the last record");
    }
    Ok(Walk { question, records })
}

/// Reads a request. The opcode and type are the caller's to dispatch on (AXFR, IXFR, SOA,
/// NOTIFY…); an IXFR must carry the client's SOA for the question name in its authority
/// section.
pub fn parse_request(m: &[u8]) -> Result<Request, RequestError> {
    if m.len() < 12 {
        return Err(RequestError::Short);
    }
    let flags = u16::from_be_bytes([m[2], m[3]]);
    if flags & 0x8000 != 0 {
        return Err(RequestError::Response);
    }
    if u16::from_be_bytes([m[4], m[5]]) != 1 {
        return Err(RequestError::Malformed("QDCOUNT is not 1"));
    }
    let w = walk(m).map_err(RequestError::Malformed)?;
    let q = &m[w.question.clone()];
    let qname_len = name::uncompressed_len(q, 0).map_err(|_| RequestError::Malformed("compressed question name"))?;
    let qname = Name::from_wire(&q[..qname_len]).map_err(|_| RequestError::Malformed("bad question name"))?;
    let mut req = Request {
        id: u16::from_be_bytes([m[0], m[1]]),
        opcode: ((flags >> 11) & 0xF) as u8,
        rd: flags & 0x0100 != 0,
        qname,
        qtype: u16::from_be_bytes([q[qname_len], q[qname_len + 1]]),
        qclass: u16::from_be_bytes([q[qname_len + 2], q[qname_len + 3]]),
        question: q.into(),
        ixfr_serial: None,
        edns_udp_size: None,
        signed: false,
    };
    for r in &w.records {
        match (r.section, r.rtype) {
            (3, rtype::OPT) => {
                if req.edns_udp_size.is_some() || !r.owner.is_root() {
                    return Err(RequestError::Malformed("second OPT, or an OPT not owned by the root"));
                }
                req.edns_udp_size = Some(r.class);
            }
            // Placement and uniqueness are checked with the signature.
            (_, rtype::TSIG) => req.signed = true,
            (2, rtype::SOA) if req.is_ixfr() && req.ixfr_serial.is_none() => {
                if !r.owner.ends_with(&req.qname) || !req.qname.ends_with(&r.owner) {
                    return Err(RequestError::Malformed("IXFR SOA owner is not the question name"));
                }
                let rd = rdata::decompress(rtype::SOA, m, r.rdata.start, r.rdata.len())
                    .map_err(|_| RequestError::Malformed("bad SOA rdata"))?;
                let serial = crate::zone::soa_serial(&rd).ok_or(RequestError::Malformed("bad SOA rdata"))?;
                req.ixfr_serial = Some(serial);
            }
            _ => {}
        }
    }
    if req.is_ixfr() && req.ixfr_serial.is_none() {
        return Err(RequestError::Malformed("IXFR without the client's SOA in the authority section"));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ixfr_request_with_compressed_soa() {
        // IXFR example.com, authority: example.com SOA (owner and names compressed).
        #[rustfmt::skip]
        let m: &[u8] = &[
            0xab, 0xcd, 0x00, 0x00, 0, 1, 0, 0, 0, 1, 0, 1,
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 251, 0, 1,
            0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 27,
            2, b'n', b's', 0xc0, 12, 0xc0, 12, 0, 0, 0, 42, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
            0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0,
        ];
        let r = parse_request(m).unwrap();
        assert_eq!(r.id, 0xabcd);
        assert!(r.is_ixfr() && !r.rd && !r.signed);
        assert_eq!(r.qname.to_string(), "example.com.");
        assert_eq!(r.ixfr_serial, Some(42));
        assert_eq!(r.edns_udp_size, Some(1232));
        assert_eq!(&*r.question, &m[12..29]);
        // Without its SOA, an IXFR is malformed; with trailing octets too.
        let mut no_soa = m[..29].to_vec();
        no_soa[9] = 0;
        no_soa[11] = 0;
        assert!(matches!(parse_request(&no_soa), Err(RequestError::Malformed(_))));
        let mut trailing = m.to_vec();
        trailing.push(0);
        assert!(matches!(parse_request(&trailing), Err(RequestError::Malformed(_))));
        let mut response = m.to_vec();
        response[2] = 0x80;
        assert_eq!(parse_request(&response), Err(RequestError::Response));
        assert_eq!(parse_request(&m[..11]), Err(RequestError::Short));
    }
}
