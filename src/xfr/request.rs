//! Reading a transfer request: the header, the one question, the client's SOA in the
//! authority section of an IXFR (RFC 1995 §3), EDNS, and whether a TSIG is there, over the
//! shared reader [`crate::wire::message`] (every length and offset checked, work bounded by
//! the message's length). The TSIG itself is checked by [`super::tsig`].

use std::ops::Range;

use super::message::ResponseHead;
use crate::wire::message::{self, Header, MessageError, Record, Section, HEADER_LEN};
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
    /// The question section (QDCOUNT of them); read by tests that rebuild a message.
    #[cfg_attr(not(test), allow(dead_code))]
    pub question: Range<usize>,
    pub records: Vec<RawRecord>,
}

pub(crate) fn u16_at(m: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(o)?, *m.get(o + 1)?]))
}

/// The owner of a located record, decompressed.
fn owner(m: &[u8], r: &Record) -> Result<Name, &'static str> {
    let mut buf = [0u8; 256];
    let (_, n) = name::read_compressed(m, r.start(), &mut buf).map_err(|_| "bad owner name")?;
    Name::from_wire(&buf[..n]).map_err(|_| "bad owner name")
}

/// Walks every question and record of a message; the message must end with the last one.
/// The records are collected (owners decompressed) in a vector reserved for no more than
/// the message's length can hold ([`message::records_upper_bound`]), whatever the header
/// claims.
pub(crate) fn walk(m: &[u8]) -> Result<Walk, &'static str> {
    let end = message::questions_end(m).map_err(MessageError::as_str)?;
    let mut q = HEADER_LEN;
    let mut buf = [0u8; 256];
    while q < end {
        // Question names may be compressed here; each must lead somewhere.
        let (next, _) = name::read_compressed(m, q, &mut buf).map_err(|_| "bad question name")?;
        q = next + 4;
    }
    let mut records = Vec::with_capacity(message::records_upper_bound(m));
    let mut rs = message::records_from(m, end).map_err(MessageError::as_str)?;
    for r in rs.by_ref() {
        let r = r.map_err(MessageError::as_str)?;
        let owner = owner(m, &r)?;
        records.push(RawRecord {
            start: r.start(),
            owner,
            rtype: r.rtype,
            class: r.class,
            ttl: r.ttl,
            rdata: r.rdata,
            section: r.section as u8,
        });
    }
    if rs.end() != m.len() {
        return Err(MessageError::Trailing.as_str());
    }
    Ok(Walk { question: HEADER_LEN..end, records })
}

/// Reads a request. The opcode and type are the caller's to dispatch on (AXFR, IXFR, SOA,
/// NOTIFY…); an IXFR must carry the client's SOA for the question name in its authority
/// section. Nothing is collected on the way: the records are walked once, every owner is
/// followed (pointers checked) in a buffer on the stack, and a `Name` is made only of the
/// IXFR SOA's owner.
pub fn parse_request(m: &[u8]) -> Result<Request, RequestError> {
    let h = Header::new_checked(m).map_err(|_| RequestError::Short)?;
    if h.qr() {
        return Err(RequestError::Response);
    }
    if h.qdcount() != 1 {
        return Err(RequestError::Malformed("QDCOUNT is not 1"));
    }
    let malformed = |e: MessageError| RequestError::Malformed(e.as_str());
    let Some(q) = message::question(m) else {
        // Tell a compressed name from a broken question.
        return Err(match message::questions_end(m) {
            Ok(_) => RequestError::Malformed("compressed question name"),
            Err(e) => malformed(e),
        });
    };
    let qname = Name::from_wire(&m[q.name.clone()]).map_err(|_| RequestError::Malformed("bad question name"))?;
    let mut req = Request {
        id: h.id(),
        opcode: h.opcode(),
        rd: h.rd(),
        qname,
        qtype: q.qtype,
        qclass: q.qclass,
        question: m[HEADER_LEN..q.end].into(),
        ixfr_serial: None,
        edns_udp_size: None,
        signed: false,
    };
    let mut rs = message::records_from(m, q.end).map_err(malformed)?;
    for r in rs.by_ref() {
        let r = r.map_err(malformed)?;
        // Every owner must be a name that can be read (pointers followed).
        let mut buf = [0u8; 256];
        name::read_compressed(m, r.start(), &mut buf).map_err(|_| RequestError::Malformed("bad owner name"))?;
        match (r.section, r.rtype) {
            (Section::Additional, rtype::OPT) => {
                if req.edns_udp_size.is_some() || !r.owner_is_root(m) {
                    return Err(RequestError::Malformed("second OPT, or an OPT not owned by the root"));
                }
                req.edns_udp_size = Some(r.class);
            }
            // Placement and uniqueness are checked with the signature.
            (_, rtype::TSIG) => req.signed = true,
            (Section::Authority, rtype::SOA) if req.is_ixfr() && req.ixfr_serial.is_none() => {
                let owner = owner(m, &r).map_err(RequestError::Malformed)?;
                if !owner.ends_with(&req.qname) || !req.qname.ends_with(&owner) {
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
    if rs.end() != m.len() {
        return Err(malformed(MessageError::Trailing));
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

    /// Requests of each kind the control side reads: IXFR with a compressed SOA and an OPT,
    /// AXFR signed, a NOTIFY with the SOA in the answer, an SOA query with EDNS options.
    fn seed_requests() -> Vec<Vec<u8>> {
        #[rustfmt::skip]
        let ixfr: &[u8] = &[
            0xab, 0xcd, 0x00, 0x00, 0, 1, 0, 0, 0, 1, 0, 1,
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 251, 0, 1,
            0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 27,
            2, b'n', b's', 0xc0, 12, 0xc0, 12, 0, 0, 0, 42, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
            0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0,
        ];
        let mut axfr = ixfr[..29].to_vec();
        axfr[9] = 0;
        axfr[28 - 2] = 252;
        axfr.extend_from_slice(b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x1d\x0bhmac-sha256\x00");
        axfr.extend_from_slice(&[0, 0, 0x65, 0x5a, 0x00, 0x00, 1, 0x2c, 0, 0, 0xab, 0xcd, 0, 0, 0, 0]);
        let mut notify = ixfr[..29].to_vec();
        notify[2] = 0x20;
        notify[7] = 1;
        notify[9] = 0;
        notify[11] = 0;
        notify[28 - 2] = 6;
        notify.extend_from_slice(&ixfr[29..29 + 12 + 27]);
        let mut soa = ixfr[..29].to_vec();
        soa[9] = 0;
        soa[28 - 2] = 6;
        soa.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        vec![ixfr.to_vec(), axfr, notify, soa]
    }

    #[test]
    fn mutated_requests_are_read_or_refused_within_bounds() {
        use crate::wire::message::mutate::{mutate, Rng};
        let seeds = seed_requests();
        for s in &seeds {
            let r = parse_request(s).unwrap_or_else(|e| panic!("seed {s:02x?}: {e}"));
            assert_eq!(walk(s).unwrap().records.len(), s[6..12].chunks(2).map(|c| usize::from(c[1])).sum::<usize>());
            assert!(r.qname.to_string() == "example.com.");
        }
        let mut rng = Rng(0xC0FF_EE00_1234_5678);
        let (mut read, mut refused) = (0, 0);
        for i in 0..20_000 {
            let mut m = seeds[i % seeds.len()].clone();
            mutate(&mut rng, &mut m);
            // The walker TSIG uses: what it reserves is bounded by the length.
            if let Ok(w) = walk(&m) {
                let bound = message::records_upper_bound(&m);
                assert!(w.records.len() <= bound && w.records.capacity() <= bound.max(1), "{m:02x?}");
                assert!(bound <= m.len() / message::MIN_RECORD_LEN);
                for r in &w.records {
                    assert!(r.owner.len() <= name::MAX_NAME_LEN && r.rdata.end <= m.len());
                }
            }
            match parse_request(&m) {
                Ok(req) => {
                    read += 1;
                    // What was read agrees with the message and with the walker.
                    let h = Header::new_checked(&m[..]).unwrap();
                    assert!(!h.qr() && h.qdcount() == 1);
                    assert_eq!((req.id, req.opcode, req.rd), (h.id(), h.opcode(), h.rd()));
                    let q = message::question(&m).unwrap();
                    assert_eq!(&*req.question, &m[HEADER_LEN..q.end]);
                    assert_eq!(req.qname.as_wire(), &m[q.name.clone()]);
                    let w = walk(&m).expect("a request that reads is a message that walks");
                    let opt = w.records.iter().find(|r| r.section == 3 && r.rtype == rtype::OPT);
                    assert_eq!(req.edns_udp_size, opt.map(|r| r.class), "{m:02x?}");
                    assert_eq!(req.signed, w.records.iter().any(|r| r.rtype == rtype::TSIG), "{m:02x?}");
                    assert_eq!(req.signed, message::has_tsig(&m, q.end));
                    assert_eq!(req.is_ixfr(), req.ixfr_serial.is_some());
                }
                Err(RequestError::Short) => assert!(m.len() < HEADER_LEN),
                Err(RequestError::Response) => assert!(m[2] & 0x80 != 0),
                Err(RequestError::Malformed(_)) => refused += 1,
            }
        }
        assert!(read > 1_000 && refused > 1_000, "{read} read, {refused} refused");
    }
}
