//! DNS messages (RFC 1035 §4.1): the header as a length-checked view, the question, and a
//! walker over the records of the answer, authority and additional sections. The readers of
//! peers' messages stand on this one: transfer requests, TSIG, the run loops' hand-over
//! decision, TCP's transfer check (`transfer_query`). The answer engine keeps its own reader,
//! fused with lowercasing and hashing, for speed (measured: the walker costs its EDNS queries
//! with options about 10 ns each), and shares `skip_name` and the constants.
//!
//! Nothing here allocates. The walker's work is bounded by the message length, not by the
//! counts a peer writes in the header: a question takes at least 5 octets and a record at
//! least 11, so a count that claims more than the length allows ends the walk with an error
//! after at most `len / 5` steps; [`records_upper_bound`] gives callers that collect records
//! a reservation capped the same way.
//!
//! Owner names are located, not decompressed: a caller that needs one reads it with
//! [`name::read_compressed`].

use std::ops::Range;

use super::name::{self, MAX_NAME_LEN};

/// Length of the header.
pub const HEADER_LEN: usize = 12;
/// The shortest question: the root name, type and class.
pub const MIN_QUESTION_LEN: usize = 5;
/// The shortest record: the root name (or half a pointer more), type, class, TTL, RDLENGTH.
pub const MIN_RECORD_LEN: usize = 11;

/// Response codes (RFC 1035 §4.1.1, RFC 2136, RFC 6891, RFC 8945).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    pub const YXDOMAIN: u8 = 6;
    /// "Not authorized" (RFC 8945): the RCODE of every TSIG error response.
    pub const NOTAUTH: u8 = 9;
    /// Extended (needs OPT): 16.
    pub const BADVERS: u16 = 16;
    /// Extended: 23, a bad or missing server cookie (RFC 7873 §8).
    pub const BADCOOKIE: u16 = 23;
}

/// Opcodes (RFC 1035, 1996, 2136).
pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const NOTIFY: u8 = 4;
    pub const UPDATE: u8 = 5;
}

/// Header field positions.
mod field {
    use std::ops::Range;

    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Header flag bits (of the 16-bit flags word).
pub mod flag {
    pub const QR: u16 = 0x8000;
    pub const OPCODE_SHIFT: u16 = 11;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const Z: u16 = 0x0040;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const RCODE_MASK: u16 = 0x000F;
}

/// Why a message cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("shorter than a DNS header")]
    Truncated,
    #[error("bad name")]
    BadName,
    #[error("question runs past the end")]
    QuestionOverrun,
    #[error("record runs past the end")]
    RecordOverrun,
    #[error("trailing octets after the last record")]
    Trailing,
}

impl MessageError {
    /// The text used in FORMERR diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageError::Truncated => "shorter than a header",
            MessageError::BadName => "bad name",
            MessageError::QuestionOverrun => "question runs past the end",
            MessageError::RecordOverrun => "record runs past the end",
            MessageError::Trailing => "trailing octets after the last record",
        }
    }
}

fn be16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// A read-only (or, over `AsMut<[u8]>`, writable) view of a DNS header at the start of a
/// buffer; [`Header::new_checked`] checks once that the buffer holds one.
#[derive(Clone, Copy, Debug)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// A view of `buffer`, which must be at least [`HEADER_LEN`] long.
    pub fn new_checked(buffer: T) -> Result<Header<T>, MessageError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(MessageError::Truncated);
        }
        Ok(Header { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ID)
    }

    /// The whole flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// A response (QR=1).
    pub fn qr(&self) -> bool {
        self.flags() & flag::QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags() & flag::OPCODE_MASK) >> flag::OPCODE_SHIFT) as u8
    }

    pub fn rd(&self) -> bool {
        self.flags() & flag::RD != 0
    }

    pub fn cd(&self) -> bool {
        self.flags() & flag::CD != 0
    }

    /// The header's 4-bit rcode.
    pub fn rcode(&self) -> u8 {
        (self.flags() & flag::RCODE_MASK) as u8
    }

    pub fn qdcount(&self) -> u16 {
        be16(self.buffer.as_ref(), field::QDCOUNT)
    }

    pub fn ancount(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ANCOUNT)
    }

    pub fn nscount(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NSCOUNT)
    }

    pub fn arcount(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ARCOUNT)
    }

    /// The record counts of the answer, authority and additional sections.
    pub fn record_counts(&self) -> [u16; 3] {
        [self.ancount(), self.nscount(), self.arcount()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    pub fn set_id(&mut self, id: u16) {
        self.buffer.as_mut()[field::ID].copy_from_slice(&id.to_be_bytes());
    }

    pub fn set_flags(&mut self, flags: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    pub fn set_qdcount(&mut self, n: u16) {
        self.buffer.as_mut()[field::QDCOUNT].copy_from_slice(&n.to_be_bytes());
    }

    pub fn set_ancount(&mut self, n: u16) {
        self.buffer.as_mut()[field::ANCOUNT].copy_from_slice(&n.to_be_bytes());
    }

    pub fn set_nscount(&mut self, n: u16) {
        self.buffer.as_mut()[field::NSCOUNT].copy_from_slice(&n.to_be_bytes());
    }

    pub fn set_arcount(&mut self, n: u16) {
        self.buffer.as_mut()[field::ARCOUNT].copy_from_slice(&n.to_be_bytes());
    }
}

/// Where a name that starts at `pos` ends: after its root label or its pointer. The name is
/// not followed: a pointer's target is for [`name::read_compressed`] to check.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, MessageError> {
    let start = pos;
    loop {
        let l = *msg.get(pos).ok_or(MessageError::BadName)?;
        match l & 0xC0 {
            0 if l == 0 => return Ok(pos + 1),
            0 => pos += 1 + usize::from(l),
            0xC0 => {
                msg.get(pos + 1).ok_or(MessageError::BadName)?;
                return Ok(pos + 2);
            }
            _ => return Err(MessageError::BadName),
        }
        if pos - start > MAX_NAME_LEN {
            return Err(MessageError::BadName);
        }
    }
}

/// The first question of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The name's octets (uncompressed: nothing comes before it to point at).
    pub name: Range<usize>,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question.
    pub end: usize,
}

/// The first question of a message with at least one, if it is complete and its name
/// uncompressed. It does not look at QR or the opcode: see [`transfer_query`].
pub fn question(msg: &[u8]) -> Option<Question> {
    let h = Header::new_checked(msg).ok()?;
    if h.qdcount() == 0 {
        return None;
    }
    let len = name::uncompressed_len(msg, HEADER_LEN).ok()?;
    let end = HEADER_LEN + len;
    let Some(&[t0, t1, c0, c1]) = msg.get(end..end + 4) else { return None };
    Some(Question {
        name: HEADER_LEN..end,
        qtype: u16::from_be_bytes([t0, t1]),
        qclass: u16::from_be_bytes([c0, c1]),
        end: end + 4,
    })
}

/// Whether a message is a request (QR=0) of opcode QUERY for AXFR or IXFR, from its header
/// and first question; anything unreadable is not.
pub fn transfer_query(msg: &[u8]) -> bool {
    let Ok(h) = Header::new_checked(msg) else { return false };
    if h.qr() || h.opcode() != opcode::QUERY {
        return false;
    }
    matches!(question(msg), Some(q) if q.qtype == super::rdata::rtype::AXFR || q.qtype == super::rdata::rtype::IXFR)
}

/// Where the question section (all QDCOUNT questions, names possibly compressed) ends.
pub fn questions_end(msg: &[u8]) -> Result<usize, MessageError> {
    let h = Header::new_checked(msg)?;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount() {
        // Each turn moves at least 5 octets or fails: at most len / 5 turns.
        pos = skip_name(msg, pos)? + 4;
        if pos > msg.len() {
            return Err(MessageError::QuestionOverrun);
        }
    }
    Ok(pos)
}

/// The most records a message of this length can hold, whatever its header claims: what
/// to reserve when collecting them.
pub fn records_upper_bound(msg: &[u8]) -> usize {
    let claimed = Header::new_checked(msg).map_or(0, |h| h.record_counts().iter().map(|&c| usize::from(c)).sum());
    claimed.min(msg.len().saturating_sub(HEADER_LEN) / MIN_RECORD_LEN)
}

/// The section a record is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer = 1,
    Authority = 2,
    Additional = 3,
}

/// One record of a message, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The owner's octets as they are in the message (possibly a pointer at the end).
    pub owner: Range<usize>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Range<usize>,
    pub section: Section,
}

impl Record {
    /// Offset of the record (its owner name).
    pub fn start(&self) -> usize {
        self.owner.start
    }

    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata.end
    }

    /// The owner is the root name (an OPT's must be).
    pub fn owner_is_root(&self, msg: &[u8]) -> bool {
        msg.get(self.owner.clone()) == Some(&[0][..])
    }
}

/// The records of the answer, authority and additional sections, in order; an error ends
/// the walk (it is the last item). When the records are all read, [`Records::end`] says
/// where they ended; [`Records::finish`] checks that the message ends there too.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Records still to read in each section.
    left: [u16; 3],
    section: usize,
    failed: bool,
}

/// Walks the records of `msg`, starting after its question section.
pub fn records(msg: &[u8]) -> Result<Records<'_>, MessageError> {
    let h = Header::new_checked(msg)?;
    let pos = questions_end(msg)?;
    Ok(Records { msg, pos, left: h.record_counts(), section: 0, failed: false })
}

/// Walks the records of `msg` from `pos`, where its question section ends (a caller that
/// has read the question already).
pub fn records_from(msg: &[u8], pos: usize) -> Result<Records<'_>, MessageError> {
    let h = Header::new_checked(msg)?;
    Ok(Records { msg, pos, left: h.record_counts(), section: 0, failed: false })
}

impl<'a> Records<'a> {
    /// Where the records read so far end.
    pub fn end(&self) -> usize {
        self.pos
    }

    /// Reads the rest, and checks that the message ends with the last record.
    pub fn finish(mut self) -> Result<(), MessageError> {
        for r in self.by_ref() {
            r?;
        }
        if self.pos != self.msg.len() {
            return Err(MessageError::Trailing);
        }
        Ok(())
    }

    fn read(&mut self, section: Section) -> Result<Record, MessageError> {
        let m = self.msg;
        let start = self.pos;
        let next = skip_name(m, start)?;
        // Every record moves the walk at least 11 octets or fails.
        let Some(fixed) = m.get(next..next + 10) else { return Err(MessageError::RecordOverrun) };
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = next + 10..next + 10 + rdlen;
        if rdata.end > m.len() {
            return Err(MessageError::RecordOverrun);
        }
        self.pos = rdata.end;
        Ok(Record {
            owner: start..next,
            rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            class: u16::from_be_bytes([fixed[2], fixed[3]]),
            ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            rdata,
            section,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while self.section < 3 && self.left[self.section] == 0 {
            self.section += 1;
        }
        if self.section == 3 {
            return None;
        }
        self.left[self.section] -= 1;
        let section = [Section::Answer, Section::Authority, Section::Additional][self.section];
        let r = self.read(section);
        self.failed = r.is_err();
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            return (0, Some(0));
        }
        let claimed: usize = self.left.iter().map(|&c| usize::from(c)).sum();
        let room = self.msg.len().saturating_sub(self.pos) / MIN_RECORD_LEN;
        // One more than the room: the record that fails is an item too.
        (0, Some(claimed.min(room + 1)))
    }
}

/// Whether one of the records after the question is a TSIG. A walk that fails says no
/// (what is malformed is for the engine to answer FORMERR).
pub fn has_tsig(msg: &[u8], question_end: usize) -> bool {
    let Ok(rs) = records_from(msg, question_end) else { return false };
    for r in rs {
        match r {
            Ok(r) if r.rtype == super::rdata::rtype::TSIG => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Deterministic message mutations for the mutation tests of this reader and of the
/// readers built on it.
#[cfg(test)]
pub(crate) mod mutate {
    /// xorshift64*: deterministic, dependency-free.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// One to four mutations of `m`: a random or flipped octet, a cut, an inserted octet, a
    /// count set small or to 0xffff, a compression pointer, a length field (a label's or an
    /// RDLENGTH-looking pair) changed, or octets added at the end.
    pub fn mutate(rng: &mut Rng, m: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(4) {
            if m.is_empty() {
                return;
            }
            match rng.below(9) {
                0 => {
                    let p = rng.below(m.len());
                    m[p] = rng.next() as u8;
                }
                1 => {
                    let p = rng.below(m.len());
                    m[p] ^= 1 << rng.below(8);
                }
                2 => m.truncate(rng.below(m.len() + 1)),
                3 => {
                    let p = rng.below(m.len() + 1);
                    m.insert(p, rng.next() as u8);
                }
                4 if m.len() >= 12 => {
                    let p = 4 + 2 * rng.below(4);
                    let v: u16 = if rng.below(4) == 0 { 0xffff } else { rng.below(4) as u16 };
                    m[p..p + 2].copy_from_slice(&v.to_be_bytes());
                }
                5 if m.len() > 13 => {
                    let p = 12 + rng.below(m.len() - 13);
                    m[p] = 0xC0 | (rng.next() as u8 & 0x3F);
                    m[p + 1] = rng.next() as u8;
                }
                6 if m.len() > 13 => {
                    // A two-octet length somewhere: small, large, or all ones.
                    let p = 12 + rng.below(m.len() - 13);
                    let v: u16 = [0, 1, 0x00ff, 0x7fff, 0xffff][rng.below(5)];
                    m[p..p + 2].copy_from_slice(&v.to_be_bytes());
                }
                7 if m.len() > 12 => {
                    // A label length.
                    let p = 12 + rng.below(m.len() - 12);
                    m[p] = [0, 1, 63, 64, 0x80][rng.below(5)];
                }
                _ => m.extend_from_slice(&(rng.next() as u32).to_be_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mutate::{mutate, Rng};
    use super::*;
    use crate::wire::rdata::rtype;

    /// A query for example.com SOA with RD and CD set, ID 0x1234, and an OPT (4096, DO) with
    /// one option (code 100, 2 octets).
    #[rustfmt::skip]
    const QUERY: &[u8] = &[
        0x12, 0x34, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1,
        7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 6, 0, 1,
        0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 6, 0, 100, 0, 2, 0xab, 0xcd,
    ];

    #[test]
    fn deconstruct_header() {
        let h = Header::new_checked(QUERY).unwrap();
        assert_eq!(h.id(), 0x1234);
        assert!(!h.qr() && h.rd() && h.cd());
        assert_eq!(h.opcode(), opcode::QUERY);
        assert_eq!(h.rcode(), 0);
        assert_eq!((h.qdcount(), h.ancount(), h.nscount(), h.arcount()), (1, 0, 0, 1));
        assert_eq!(Header::new_checked(&QUERY[..11]).unwrap_err(), MessageError::Truncated);
    }

    #[test]
    fn construct_header() {
        let mut b = [0u8; 12];
        let mut h = Header::new_checked(&mut b[..]).unwrap();
        h.set_id(0xbeef);
        h.set_flags(flag::QR | (u16::from(opcode::NOTIFY) << flag::OPCODE_SHIFT) | flag::AA | u16::from(rcode::NOTIMP));
        h.set_qdcount(1);
        h.set_ancount(2);
        h.set_nscount(3);
        h.set_arcount(4);
        assert_eq!(b, [0xbe, 0xef, 0xa4, 0x04, 0, 1, 0, 2, 0, 3, 0, 4]);
        let h = Header::new_checked(&b[..]).unwrap();
        assert!(h.qr());
        assert_eq!((h.opcode(), h.rcode()), (opcode::NOTIFY, rcode::NOTIMP));
    }

    #[test]
    fn question_and_records() {
        let q = question(QUERY).unwrap();
        assert_eq!((q.name.clone(), q.qtype, q.qclass, q.end), (12..25, rtype::SOA, 1, 29));
        assert_eq!(questions_end(QUERY), Ok(29));
        let rs: Vec<_> = records(QUERY).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(rs.len(), 1);
        let opt = &rs[0];
        assert_eq!((opt.rtype, opt.class, opt.ttl, opt.section), (rtype::OPT, 4096, 0x8000, Section::Additional));
        assert!(opt.owner_is_root(QUERY));
        assert_eq!(&QUERY[opt.rdata.clone()], &[0, 100, 0, 2, 0xab, 0xcd]);
        assert_eq!((opt.start(), opt.end()), (29, QUERY.len()));
        assert_eq!(records(QUERY).unwrap().finish(), Ok(()));
        assert!(!has_tsig(QUERY, 29));
        assert!(!transfer_query(QUERY));
    }

    #[test]
    fn walk_errors() {
        // One octet more: trailing.
        let mut m = QUERY.to_vec();
        m.push(0);
        assert_eq!(records(&m).unwrap().finish(), Err(MessageError::Trailing));
        // One octet less: the OPT runs past the end, and the walk stops there.
        let m = &QUERY[..QUERY.len() - 1];
        let mut rs = records(m).unwrap();
        assert_eq!(rs.next(), Some(Err(MessageError::RecordOverrun)));
        assert_eq!(rs.next(), None);
        // A header that claims 65535 records of each kind: the walk fails at the first
        // missing one, and the bound is what the length allows.
        let mut m = QUERY.to_vec();
        m[6..12].fill(0xff);
        assert_eq!(records_upper_bound(&m), (m.len() - 12) / MIN_RECORD_LEN);
        assert_eq!(records(&m).unwrap().count(), 2);
        assert!(records(&m).unwrap().size_hint().1.unwrap() <= 2);
        // Question names: a label type 0x40 and an overlong name are bad.
        let mut m = QUERY.to_vec();
        m[12] = 0x41;
        assert_eq!(questions_end(&m), Err(MessageError::BadName));
        let mut long = QUERY[..12].to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(questions_end(&long), Err(MessageError::BadName));
        // A question count larger than the message.
        let mut m = QUERY.to_vec();
        m[4..6].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(questions_end(&m), Err(MessageError::BadName));
    }

    #[test]
    fn tsig_and_transfer() {
        // AXFR example.com with a TSIG-typed record (owner a pointer to the question name).
        #[rustfmt::skip]
        let m: &[u8] = &[
            0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1,
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 252, 0, 1,
            0xc0, 12, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0,
        ];
        assert!(transfer_query(m));
        assert!(has_tsig(m, 29));
        let r = records(m).unwrap().next().unwrap().unwrap();
        assert_eq!((r.owner.clone(), r.rtype), (29..31, rtype::TSIG));
        let mut buf = [0u8; 256];
        let (_, n) = name::read_compressed(m, r.start(), &mut buf).unwrap();
        assert_eq!(&buf[..n], &m[12..25]);
        // A response, or opcode NOTIFY, is not a transfer query.
        let mut resp = m.to_vec();
        resp[2] = 0x80;
        assert!(!transfer_query(&resp));
        let mut notify = m.to_vec();
        notify[2] = opcode::NOTIFY << 3;
        assert!(!transfer_query(&notify));
        // Truncated in the middle of the TSIG's fixed part.
        assert!(!has_tsig(&m[..m.len() - 4], 29));
    }

    #[test]
    fn mutations_stay_in_bounds() {
        #[rustfmt::skip]
        let axfr_signed: &[u8] = &[
            0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1,
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 252, 0, 1,
            0xc0, 12, 0, 250, 0, 255, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4,
        ];
        let seeds = [QUERY, axfr_signed];
        let mut rng = Rng(0x5DEE_CE66_D1CE_5EED);
        let (mut complete, mut failed) = (0, 0);
        for i in 0..20_000 {
            let mut m = seeds[i % seeds.len()].to_vec();
            mutate(&mut rng, &mut m);
            let Ok(h) = Header::new_checked(&m[..]) else {
                assert!(m.len() < HEADER_LEN);
                assert!(records(&m).is_err() && question(&m).is_none() && !transfer_query(&m));
                continue;
            };
            // The bound never exceeds what the length allows, whatever the counts say.
            let bound = records_upper_bound(&m);
            assert!(bound <= (m.len() - HEADER_LEN) / MIN_RECORD_LEN, "{m:02x?}");
            let Ok(end) = questions_end(&m) else { continue };
            assert!(end <= m.len());
            let mut rs = records(&m).unwrap();
            let hint = rs.size_hint().1.unwrap();
            let mut prev_end = end;
            let mut n = 0;
            let mut ok = true;
            for r in rs.by_ref() {
                n += 1;
                match r {
                    Ok(r) => {
                        // Records follow each other, inside the message.
                        assert_eq!(r.start(), prev_end, "{m:02x?}");
                        assert!(r.owner.end <= r.rdata.start && r.end() <= m.len(), "{m:02x?}");
                        assert!(r.end() - r.start() >= MIN_RECORD_LEN, "{m:02x?}");
                        prev_end = r.end();
                    }
                    Err(_) => ok = false,
                }
            }
            assert!(n <= hint, "{n} items, size hint {hint}: {m:02x?}");
            let claimed: usize = h.record_counts().iter().map(|&c| usize::from(c)).sum();
            assert!(n <= claimed && n <= bound + 1, "{m:02x?}");
            assert_eq!(rs.end(), prev_end);
            if ok {
                assert_eq!(n, claimed, "a walk that did not fail read every record");
                complete += 1;
            } else {
                failed += 1;
            }
            let _ = has_tsig(&m, end);
        }
        // Both outcomes are reached: the mutations are neither all harmless nor all fatal.
        assert!(complete > 1_000 && failed > 1_000, "{complete} complete walks, {failed} failed");
    }
}
