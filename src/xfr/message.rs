//! One response message at a time: the header and question repeated from the request, as
//! many records as fit, an OPT when asked for, and room kept for the TSIG that the
//! [`Signer`](super::Signer) appends afterwards.
//!
//! Names are compressed within each message (RFC 1035 §4.1.4): owners always, and names
//! inside the rdata of the RFC 1035 types (RFC 3597 §4); every name written whole becomes a
//! target for later ones. The table of targets lives in a [`Compressor`]; a transfer frees
//! it after each message ([`Compressor::release`]), so that one waiting for a slow reader
//! holds none. Matching is exact, octet for octet, so every name reaches
//! the peer in the case it has in the zone (zone owners are lowercase; rdata keeps the
//! zone file's case).

use super::Rr;
use crate::wire::name::MAX_NAME_LEN;
use crate::wire::rdata::{self, rtype};

/// The message is full: what was asked for does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no room in the message")]
pub struct NoRoom;

/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Size of an OPT RR without options.
pub const OPT_LEN: usize = 11;
/// Largest DNS message (over TCP).
pub const MAX_MESSAGE: usize = 65535;
/// Compression pointers reach offsets below this.
const POINTER_RANGE: usize = 0x4000;
/// The size zone transfers aim at over TCP: names written past the first 16 KiB of a message
/// cannot be compression targets (pointers have 14 bits), so in larger messages each new
/// name costs more. For a zone of a million names 16 KiB messages were 18 % smaller than
/// 64 KiB ones, took less CPU to write, and are what Knot sends.
pub const TRANSFER_MESSAGE: usize = POINTER_RANGE;

mod field {
    pub const ID: std::ops::Range<usize> = 0..2;
    pub const FLAGS: std::ops::Range<usize> = 2..4;
    pub const QDCOUNT: std::ops::Range<usize> = 4..6;
    pub const ANCOUNT: std::ops::Range<usize> = 6..8;
    pub const NSCOUNT: std::ops::Range<usize> = 8..10;
    pub const ARCOUNT: std::ops::Range<usize> = 10..12;
}

mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const RD: u16 = 0x0100;
}

/// What every message of a response repeats from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub id: u16,
    pub opcode: u8,
    /// The request's RD bit, copied (RFC 5936 §2.2.1).
    pub rd: bool,
    /// The question as it came (name uncompressed, case kept, then type and class); empty
    /// for a response without a question section.
    pub question: Box<[u8]>,
}

/// How a transfer's messages are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Largest message: 65535 over TCP; over UDP the client's payload size (512 without
    /// EDNS).
    pub max_len: usize,
    /// One record per message, for old peers (RFC 5936 §2.2 allows any number).
    pub one_rr_per_message: bool,
    /// Put an OPT with this UDP payload size in every message (when the request had one).
    pub edns_udp_size: Option<u16>,
    /// A record that does not fit alone in a message of `max_len` octets gets a message of
    /// up to this many (over TCP, where `max_len` is a target, not a limit).
    pub big_record_len: usize,
}

impl Options {
    /// As many records per message as fit in 65535 octets, no OPT.
    pub fn tcp() -> Options {
        Options { max_len: MAX_MESSAGE, one_rr_per_message: false, edns_udp_size: None, big_record_len: MAX_MESSAGE }
    }

    /// A zone transfer over TCP: messages of up to [`TRANSFER_MESSAGE`] octets, so that every
    /// name in them can be a compression target; a record too big for one gets a message of
    /// up to 65535 octets. No OPT.
    pub fn tcp_transfer() -> Options {
        Options { max_len: TRANSFER_MESSAGE, ..Options::tcp() }
    }

    /// Messages of at most `max_len` octets (a UDP payload size), no OPT.
    pub fn udp(max_len: usize) -> Options {
        let max_len = max_len.min(MAX_MESSAGE);
        Options { max_len, one_rr_per_message: false, edns_udp_size: None, big_record_len: max_len }
    }

    /// Octets kept free at the end of each message for the OPT and a TSIG of `tsig` octets.
    pub fn reserve(&self, tsig: usize) -> usize {
        tsig + if self.edns_udp_size.is_some() { OPT_LEN } else { 0 }
    }
}

/// Slots of a message's compression targets: a 16 KiB message has a few hundred distinct
/// suffixes below [`POINTER_RANGE`], and few of them share a slot among 8,192 (the table
/// lives only while a message is made, so its size costs no memory held).
const TARGET_SLOTS: usize = 8192;

/// Where names already written to the current message are, by a hash of their suffixes.
/// A hit is checked against the message bytes before a pointer is written, so a
/// hash collision costs a missed compression, never a wrong name.
#[derive(Debug, Default)]
pub struct Compressor {
    /// The offset of the first name written with each suffix, in the slot of the suffix's
    /// hash (0: none, as the header is at 0; a suffix whose slot is taken is no target).
    /// None between messages.
    targets: Option<Box<[u16]>>,
    /// The owner of the last record written to the message (empty: none yet), and where it
    /// was written (`owner_at..owner_end`, as a name compressed or not). Records of one
    /// owner come together in a transfer, so most owners repeat the one before.
    owner: Vec<u8>,
    owner_at: usize,
    owner_end: usize,
}

impl Compressor {
    pub fn new() -> Compressor {
        Compressor::default()
    }

    /// Ready for a new message.
    fn clear(&mut self) {
        match &mut self.targets {
            Some(t) => t.fill(0),
            None => self.targets = Some(vec![0; TARGET_SLOTS].into_boxed_slice()),
        }
        self.owner.clear();
    }

    /// The message is done: the table goes (a transfer between messages holds none).
    pub fn release(&mut self) {
        self.targets = None;
    }

    /// Writes the owner `name` at `buf[at..]`, ending before `limit`: when it is the last
    /// record's owner, as a pointer to where that one was written (or, past the reach of
    /// pointers, as a copy of the same compressed bytes), without looking anything up;
    /// otherwise as [`Compressor::write_name`] does, compressed.
    fn write_owner(&mut self, buf: &mut [u8], at: usize, limit: usize, name: &[u8]) -> Option<usize> {
        if !self.owner.is_empty() && self.owner == name {
            let (from, to) = (self.owner_at, self.owner_end);
            if from < POINTER_RANGE {
                let end = at + 2;
                if end > limit {
                    return None;
                }
                buf[at..end].copy_from_slice(&(0xC000 | from as u16).to_be_bytes());
                return Some(end);
            }
            // Its bytes end in a pointer to an earlier offset (or are the whole name), so
            // they read the same here.
            let end = at + (to - from);
            if end > limit {
                return None;
            }
            buf.copy_within(from..to, at);
            return Some(end);
        }
        let end = self.write_name(buf, at, limit, name, true)?;
        self.owner.clear();
        self.owner.extend_from_slice(name);
        self.owner_at = at;
        self.owner_end = end;
        Some(end)
    }

    /// Writes the uncompressed wire name `name` at `buf[at..]`, ending before `limit`, with
    /// its longest suffix already in `buf[..at]` replaced by a pointer when `compress` is
    /// set. Returns the end of what was written; None (and nothing useful written) if it
    /// does not fit.
    fn write_name(&mut self, buf: &mut [u8], at: usize, limit: usize, name: &[u8], compress: bool) -> Option<usize> {
        // Label starts and the hash of the suffix from each, computed right to left so that
        // each suffix's hash extends its parent's.
        let mut starts = [0u8; MAX_NAME_LEN / 2 + 1];
        let mut hashes = [0u64; MAX_NAME_LEN / 2 + 1];
        let mut n = 0;
        let mut i = 0;
        while i < name.len() && name[i] != 0 {
            // A name that is not one (more than 127 labels, or a label running past the
            // end) fits nowhere.
            if n == starts.len() || name[i] & 0xC0 != 0 {
                return None;
            }
            starts[n] = i as u8;
            n += 1;
            i += name[i] as usize + 1;
        }
        if i + 1 != name.len() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for k in (0..n).rev() {
            let s = starts[k] as usize;
            for &b in &name[s..s + 1 + name[s] as usize] {
                h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
            hashes[k] = h;
        }
        let slot = |h: u64| (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 51) as usize % TARGET_SLOTS;
        let targets = self.targets.get_or_insert_with(|| vec![0; TARGET_SLOTS].into_boxed_slice());
        let mut hit = None;
        if compress {
            for k in 0..n {
                let s = starts[k] as usize;
                let off = targets[slot(hashes[k])];
                if off != 0 && (off as usize) < at && same_name(&buf[..at], off as usize, &name[s..]) {
                    hit = Some((s, off));
                    break;
                }
            }
        }
        let literal = hit.map_or(name.len(), |(s, _)| s);
        let end = at + literal + if hit.is_some() { 2 } else { 0 };
        if end > limit {
            return None;
        }
        buf[at..at + literal].copy_from_slice(&name[..literal]);
        if let Some((_, off)) = hit {
            buf[at + literal..end].copy_from_slice(&(0xC000 | off).to_be_bytes());
        }
        for k in 0..n {
            let s = starts[k] as usize;
            if s >= literal || at + s >= POINTER_RANGE {
                break;
            }
            let t = &mut targets[slot(hashes[k])];
            if *t == 0 {
                *t = (at + s) as u16;
            }
        }
        Some(end)
    }
}

/// True if the (possibly compressed) name at `msg[off..]` is `name` (uncompressed), octet
/// for octet. Pointers must lead backwards, so this ends.
fn same_name(msg: &[u8], mut off: usize, name: &[u8]) -> bool {
    let mut i = 0;
    loop {
        let Some(&l) = msg.get(off) else { return false };
        match l & 0xC0 {
            0xC0 => {
                let Some(&lo) = msg.get(off + 1) else { return false };
                let target = ((l as usize & 0x3F) << 8) | lo as usize;
                if target >= off {
                    return false;
                }
                off = target;
            }
            0x00 => {
                let l = l as usize;
                if name.get(i) != Some(&(l as u8)) {
                    return false;
                }
                if l == 0 {
                    return true;
                }
                match (msg.get(off + 1..off + 1 + l), name.get(i + 1..i + 1 + l)) {
                    (Some(a), Some(b)) if a == b => {}
                    _ => return false,
                }
                off += 1 + l;
                i += 1 + l;
            }
            _ => return false,
        }
    }
}

/// Builds one response message in a caller's buffer: the header and question from a
/// [`ResponseHead`], then records in the answer section while they fit.
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// Records end before this: the message limit less the reserved octets.
    room: usize,
    ancount: u16,
    /// A record did not fit: the message takes no more.
    full: bool,
    comp: &'b mut Compressor,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message of at most `max_len` octets (and at most `buf.len()`), keeping
    /// `reserve` octets free at its end (for an OPT and a TSIG). Fails if the header and
    /// question do not fit, or the head's question is not a name, a type and a class.
    pub fn begin(
        buf: &'b mut [u8],
        head: &ResponseHead,
        max_len: usize,
        reserve: usize,
        comp: &'b mut Compressor,
    ) -> Result<MessageWriter<'b>, NoRoom> {
        let limit = max_len.min(buf.len()).min(MAX_MESSAGE);
        let room = limit.checked_sub(reserve).ok_or(NoRoom)?;
        let qlen = head.question.len();
        if HEADER_LEN + qlen > room
            || (qlen > 0 && crate::wire::name::uncompressed_len(&head.question, 0) != Ok(qlen.wrapping_sub(4)))
        {
            return Err(NoRoom);
        }
        comp.clear();
        buf[field::ID].copy_from_slice(&head.id.to_be_bytes());
        let flags = flag::QR | flag::AA | ((head.opcode as u16 & 0xF) << 11) | if head.rd { flag::RD } else { 0 };
        buf[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        buf[field::QDCOUNT].copy_from_slice(&(if qlen > 0 { 1u16 } else { 0 }).to_be_bytes());
        buf[field::ANCOUNT.start..field::ARCOUNT.end].fill(0);
        let mut len = HEADER_LEN;
        if qlen > 0 {
            // The question's name becomes the first compression target; its bytes go out as
            // they came.
            let name_len = qlen - 4;
            len = comp.write_name(buf, len, room, &head.question[..name_len], false).ok_or(NoRoom)?;
            buf[len..len + 4].copy_from_slice(&head.question[name_len..]);
            len += 4;
        }
        Ok(MessageWriter { buf, len, room, ancount: 0, full: false, comp })
    }

    /// Sets the RCODE (and clears AA for an error).
    pub fn set_rcode(&mut self, rcode: u8) {
        let mut flags = u16::from_be_bytes([self.buf[2], self.buf[3]]);
        flags = (flags & !0x000F) | (rcode as u16 & 0xF);
        if rcode != 0 {
            flags &= !flag::AA;
        }
        self.buf[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    /// Adds a record to the answer section (class IN). False if it does not fit: the
    /// message is then full and takes no other record.
    pub fn push(&mut self, rr: &impl Rr) -> bool {
        if self.full || self.ancount == u16::MAX {
            self.full = true;
            return false;
        }
        match self.try_push(rr) {
            Some(end) => {
                self.len = end;
                self.ancount += 1;
                true
            }
            None => {
                // Compression targets recorded for the record's names point past the end
                // now; no name is written to this message after this, so none is used.
                self.full = true;
                false
            }
        }
    }

    fn try_push(&mut self, rr: &impl Rr) -> Option<usize> {
        let (buf, room) = (&mut *self.buf, self.room);
        let mut at = self.comp.write_owner(buf, self.len, room, rr.owner())?;
        if at + 10 > room {
            return None;
        }
        buf[at..at + 2].copy_from_slice(&rr.rtype().to_be_bytes());
        buf[at + 2..at + 4].copy_from_slice(&1u16.to_be_bytes());
        buf[at + 4..at + 8].copy_from_slice(&rr.ttl().to_be_bytes());
        let rdlen_at = at + 8;
        at += 10;
        let rd_start = at;
        let rd = rr.rdata();
        // The names in the rdata (no type has more than two). Rdata that does not hold the
        // names its type promises goes out as it is.
        let mut names = [None; 2];
        let mut count = 0;
        let structured = rdata::for_each_name(rr.rtype(), rd, |n| {
            if let Some(slot) = names.get_mut(count) {
                *slot = Some(n);
            }
            count += 1;
        })
        .is_ok()
            && count <= names.len();
        let mut copied = 0;
        if structured {
            for n in names.iter().flatten() {
                let plain = &rd[copied..n.offset];
                if at + plain.len() > room {
                    return None;
                }
                buf[at..at + plain.len()].copy_from_slice(plain);
                at += plain.len();
                at = self.comp.write_name(buf, at, room, &rd[n.offset..n.offset + n.len], n.compress)?;
                copied = n.offset + n.len;
            }
        }
        if at + (rd.len() - copied) > room {
            return None;
        }
        buf[at..at + rd.len() - copied].copy_from_slice(&rd[copied..]);
        at += rd.len() - copied;
        let rdlen = u16::try_from(at - rd_start).ok()?;
        buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        Some(at)
    }

    /// Records in the answer section so far.
    pub fn answers(&self) -> usize {
        self.ancount as usize
    }

    /// Whether a record was refused for want of room.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Length of the message so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Ends the message: an OPT in the additional section when `edns_udp_size` is given
    /// (its room was reserved), then the section counts. Returns the message length.
    pub fn finish(self, edns_udp_size: Option<u16>) -> usize {
        let mut len = self.len;
        let mut arcount = 0u16;
        if let Some(size) = edns_udp_size {
            let opt = &mut self.buf[len..len + OPT_LEN];
            opt[0] = 0;
            opt[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
            opt[3..5].copy_from_slice(&size.to_be_bytes());
            opt[5..].fill(0);
            len += OPT_LEN;
            arcount = 1;
        }
        self.buf[field::ANCOUNT].copy_from_slice(&self.ancount.to_be_bytes());
        self.buf[field::NSCOUNT].fill(0);
        self.buf[field::ARCOUNT].copy_from_slice(&arcount.to_be_bytes());
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name::{read_compressed, Name};
    use crate::zone::Record;

    fn rec(owner: &str, t: u16, rdata: &[u8]) -> Record {
        Record { owner: Name::parse_text(owner.as_bytes(), None).unwrap(), rtype: t, ttl: 3600, rdata: rdata.into() }
    }

    fn head() -> ResponseHead {
        ResponseHead {
            id: 0x1234,
            opcode: 0,
            rd: false,
            question: b"\x07example\x03com\x00\x00\xfc\x00\x01".as_slice().into(),
        }
    }

    #[test]
    fn header_question_and_compressed_records() {
        let mut buf = [0u8; 512];
        let mut comp = Compressor::new();
        let mut w = MessageWriter::begin(&mut buf, &head(), 512, 0, &mut comp).unwrap();
        assert!(w.push(&rec("example.com.", rtype::NS, b"\x02ns\x07example\x03com\x00")));
        assert!(w.push(&rec("www.example.com.", rtype::A, &[192, 0, 2, 1])));
        // SRV's target may not be compressed (RFC 2782, RFC 3597 §4), but is a target.
        assert!(w.push(&rec(
            "_x._tcp.example.com.",
            rtype::SRV,
            b"\x00\x01\x00\x02\x00\x03\x03www\x07example\x03com\x00"
        )));
        // Names match octet for octet: only "com" is shared with this one.
        assert!(w.push(&rec("Www.EXAMPLE.com.", rtype::A, &[192, 0, 2, 2])));
        let len = w.finish(None);
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x12, 0x34, 0x84, 0x00, 0, 1, 0, 4, 0, 0, 0, 0,
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 252, 0, 1,
            // example.com NS ns.example.com: owner → question (12), rdata "ns" + pointer
            0xc0, 12, 0, 2, 0, 1, 0, 0, 0x0e, 0x10, 0, 5, 2, b'n', b's', 0xc0, 12,
            // www.example.com A
            3, b'w', b'w', b'w', 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1,
            // _x._tcp.example.com SRV 1 2 3 www.example.com (written whole)
            2, b'_', b'x', 4, b'_', b't', b'c', b'p', 0xc0, 12, 0, 33, 0, 1, 0, 0, 0x0e, 0x10, 0, 23,
            0, 1, 0, 2, 0, 3, 3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0,
            // Www.EXAMPLE.com A: "com" at 20
            3, b'W', b'w', b'w', 7, b'E', b'X', b'A', b'M', b'P', b'L', b'E', 0xc0, 20, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4,
            192, 0, 2, 2,
        ];
        assert_eq!(&buf[..len], want);
    }

    #[test]
    fn full_message_refuses_and_stays_full() {
        let mut buf = [0u8; 100];
        let mut comp = Compressor::new();
        // 12 + 17 question; each A record with a fresh 5-octet label: 5 + 2 + 10 + 4 = 21.
        let mut w = MessageWriter::begin(&mut buf, &head(), 100, 11, &mut comp).unwrap();
        assert!(w.push(&rec("aaaa.example.com.", rtype::A, &[1, 2, 3, 4])));
        assert!(w.push(&rec("bbbb.example.com.", rtype::A, &[1, 2, 3, 4])));
        assert!(!w.push(&rec("cccc.example.com.", rtype::A, &[1, 2, 3, 4])));
        assert!(!w.push(&rec("example.com.", rtype::A, &[1, 2, 3, 4])), "full stays full");
        assert_eq!(w.answers(), 2);
        let len = w.finish(Some(1232));
        assert_eq!(len, 29 + 42 + 11);
        assert_eq!(&buf[len - 11..len], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&buf[6..12], &[0, 2, 0, 0, 0, 1]);
    }

    /// A record whose owner is given as raw bytes.
    struct RawOwner(&'static [u8]);

    impl Rr for RawOwner {
        fn owner(&self) -> &[u8] {
            self.0
        }
        fn rtype(&self) -> u16 {
            rtype::A
        }
        fn ttl(&self) -> u32 {
            0
        }
        fn rdata(&self) -> &[u8] {
            &[1, 2, 3, 4]
        }
    }

    #[test]
    fn names_that_are_not_names_fit_nowhere() {
        let mut buf = [0u8; 512];
        let mut comp = Compressor::new();
        for bad in [&b"\x03ab"[..], b"\x01a", b"\x01a\x00\x00", b"\xc0\x0c", b""] {
            let mut w = MessageWriter::begin(&mut buf, &head(), 512, 0, &mut comp).unwrap();
            assert!(!w.push(&RawOwner(bad)), "{bad:?}");
        }
        let mut h = head();
        h.question = b"\x07example\x03com\x00\x00\xfc".as_slice().into();
        assert!(MessageWriter::begin(&mut buf, &h, 512, 0, &mut comp).is_err());
    }

    #[test]
    fn every_name_reads_back() {
        // Many owners sharing suffixes in different cases; each must decompress to itself.
        let mut buf = vec![0u8; 65535];
        let mut comp = Compressor::new();
        let mut w = MessageWriter::begin(&mut buf, &head(), 65535, 0, &mut comp).unwrap();
        let mut owners = Vec::new();
        for i in 0..300 {
            let o = format!("h{}.Z{}.sub{}.EXAMPLE.com.", i, i % 7, i % 3);
            assert!(w.push(&rec(&o, rtype::MX, b"\x00\x0a\x04mail\x03SUB\x07example\x03COM\x00")));
            owners.push(o);
        }
        let len = w.finish(None);
        let mut pos = 12 + 17;
        for o in owners {
            let mut out = [0u8; 256];
            let (next, n) = read_compressed(&buf[..len], pos, &mut out).unwrap();
            assert_eq!(&out[..n], Name::parse_text(o.as_bytes(), None).unwrap().as_wire());
            let rdlen = u16::from_be_bytes([buf[next + 8], buf[next + 9]]) as usize;
            let rd = rdata::decompress(rtype::MX, &buf[..len], next + 10, rdlen).unwrap();
            assert_eq!(rd, b"\x00\x0a\x04mail\x03SUB\x07example\x03COM\x00");
            pos = next + 10 + rdlen;
        }
        assert_eq!(pos, len);
    }
}
