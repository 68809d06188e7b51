//! The journal file's bytes: the file header and the entries (framing, checksums, the
//! changeset body). Pure: slices in, slices or values out; the file itself is `super`'s.
//! The layout is documented in `super` (the module docs).

use crate::wire::name::{self, Name};
use crate::wire::rdata::rtype;
use crate::zone::{soa_serial, Changeset, Record};

/// First bytes of every journal file.
pub const MAGIC: [u8; 8] = *b"NSXDPJNL";
/// Bump on any change to the layout.
pub const FORMAT_VERSION: u32 = 1;
/// Header bytes before the origin.
pub const FIXED_HEADER: usize = 24;
/// Entry bytes before the body: length, serial from, serial to, header CRC32C.
pub const ENTRY_HEAD: usize = 16;
/// Entry bytes after the body: the entry CRC32C.
pub const ENTRY_TAIL: usize = 4;
/// Framing bytes of one entry.
pub const ENTRY_OVERHEAD: usize = ENTRY_HEAD + ENTRY_TAIL;
/// Body bytes before the first RR: removed count, added count.
const BODY_COUNTS: usize = 8;
/// The class of every record (IN).
const CLASS_IN: u16 = 1;

/// Named byte ranges of the fixed header and of an entry's head.
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..8;
    pub const VERSION: Range<usize> = 8..12;
    pub const HEADER_LEN: Range<usize> = 12..16;
    pub const START_SERIAL: Range<usize> = 16..20;
    pub const ORIGIN_LEN: Range<usize> = 20..22;
    pub const RESERVED: Range<usize> = 22..24;

    pub const BODY_LEN: Range<usize> = 0..4;
    pub const FROM: Range<usize> = 4..8;
    pub const TO: Range<usize> = 8..12;
    pub const HEAD_CRC: Range<usize> = 12..16;
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The file header: which zone the journal belongs to and the serial its first entry
/// starts from (the serial it continues from while it has no entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Lowercased.
    pub origin: Name,
    pub start_serial: u32,
}

impl FileHeader {
    /// Bytes the header takes, CRC included: where the first entry starts.
    pub fn len(&self) -> usize {
        FIXED_HEADER + self.origin.len() + 4
    }

    pub fn encode(&self) -> Vec<u8> {
        let origin = self.origin.as_wire();
        let mut h = vec![0u8; self.len()];
        h[field::MAGIC].copy_from_slice(&MAGIC);
        h[field::VERSION].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[field::HEADER_LEN].copy_from_slice(&(self.len() as u32).to_le_bytes());
        h[field::START_SERIAL].copy_from_slice(&self.start_serial.to_le_bytes());
        h[field::ORIGIN_LEN].copy_from_slice(&(origin.len() as u16).to_le_bytes());
        h[FIXED_HEADER..FIXED_HEADER + origin.len()].copy_from_slice(origin);
        let crc = crc32c::crc32c(&h[..FIXED_HEADER + origin.len()]);
        h[FIXED_HEADER + origin.len()..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Reads the header at the start of `buf` (the first bytes of the file, at least the
    /// whole header if the file is that long). Returns it and its length.
    pub fn decode(buf: &[u8]) -> Result<(FileHeader, usize), String> {
        if buf.len() < FIXED_HEADER {
            return Err(format!("file is {} bytes, shorter than a journal header", buf.len()));
        }
        if buf[field::MAGIC] != MAGIC {
            return Err("not an nsxdp journal (bad magic)".into());
        }
        let version = le32(&buf[field::VERSION]);
        if version != FORMAT_VERSION {
            return Err(format!("format version {version}, this build reads {FORMAT_VERSION}"));
        }
        let olen = u16::from_le_bytes([buf[field::ORIGIN_LEN.start], buf[field::ORIGIN_LEN.start + 1]]) as usize;
        let hlen = le32(&buf[field::HEADER_LEN]) as usize;
        if olen == 0 || olen > name::MAX_NAME_LEN || hlen != FIXED_HEADER + olen + 4 {
            return Err("bad header length".into());
        }
        if buf.len() < hlen {
            return Err(format!("file is {} bytes, shorter than its header ({hlen})", buf.len()));
        }
        let crc = le32(&buf[hlen - 4..hlen]);
        if crc32c::crc32c(&buf[..hlen - 4]) != crc {
            return Err("header checksum mismatch".into());
        }
        if buf[field::RESERVED] != [0, 0] {
            return Err("reserved header bytes are not zero".into());
        }
        let origin = Name::from_wire(&buf[FIXED_HEADER..FIXED_HEADER + olen])
            .map_err(|e| format!("bad origin in header: {e}"))?;
        Ok((FileHeader { origin: origin.to_lowercase(), start_serial: le32(&buf[field::START_SERIAL]) }, hlen))
    }
}

/// An entry's head, once its own checksum has been verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHead {
    pub body_len: u32,
    pub from: u32,
    pub to: u32,
}

impl EntryHead {
    /// Bytes of the whole entry, framing included.
    pub fn entry_len(&self) -> u64 {
        ENTRY_OVERHEAD as u64 + self.body_len as u64
    }

    /// Reads an entry head; `None` if its checksum does not match (a torn or damaged head,
    /// whose length cannot be trusted).
    pub fn decode(b: &[u8]) -> Option<EntryHead> {
        let b = b.get(..ENTRY_HEAD)?;
        if crc32c::crc32c(&b[..field::HEAD_CRC.start]) != le32(&b[field::HEAD_CRC]) {
            return None;
        }
        Some(EntryHead { body_len: le32(&b[field::BODY_LEN]), from: le32(&b[field::FROM]), to: le32(&b[field::TO]) })
    }
}

/// Whether a whole entry (head, body, tail) carries the right entry checksum.
pub fn entry_crc_ok(entry: &[u8]) -> bool {
    let Some(split) = entry.len().checked_sub(ENTRY_TAIL) else { return false };
    crc32c::crc32c(&entry[..split]) == le32(&entry[split..])
}

/// Writes the entry of a changeset (`from` → `to`) into `out` (cleared first). The caller
/// has checked the changeset (SOAs present, records in the zone).
pub fn encode_entry(from: u32, to: u32, cs: &Changeset, out: &mut Vec<u8>) -> Result<(), String> {
    let (Some(soa_from), Some(soa_to)) = (&cs.soa_from, &cs.soa_to) else {
        return Err("a journal changeset needs both SOA records".into());
    };
    out.clear();
    let rr_len = |r: &Record| r.owner.len() + 10 + r.rdata.len();
    let body_len = BODY_COUNTS
        + rr_len(soa_from)
        + rr_len(soa_to)
        + cs.removed.iter().map(rr_len).sum::<usize>()
        + cs.added.iter().map(rr_len).sum::<usize>();
    let body_len = u32::try_from(body_len)
        .ok()
        .filter(|&b| b as u64 + ENTRY_OVERHEAD as u64 <= u32::MAX as u64)
        .ok_or_else(|| format!("changeset of {body_len} bytes is too large for one journal entry"))?;
    let count = |n: usize| u32::try_from(n).map_err(|_| "too many records in one changeset".to_string());
    out.reserve(ENTRY_OVERHEAD + body_len as usize);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(&to.to_le_bytes());
    let head_crc = crc32c::crc32c(out);
    out.extend_from_slice(&head_crc.to_le_bytes());
    out.extend_from_slice(&count(cs.removed.len())?.to_le_bytes());
    out.extend_from_slice(&count(cs.added.len())?.to_le_bytes());
    for r in [soa_from, soa_to].into_iter().chain(&cs.removed).chain(&cs.added) {
        if r.rdata.len() > u16::MAX as usize {
            return Err(format!("rdata of {} type {} longer than 65535 octets", r.owner, r.rtype));
        }
        out.extend_from_slice(r.owner.as_wire());
        out.extend_from_slice(&r.rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&r.rdata);
    }
    debug_assert_eq!(out.len(), ENTRY_HEAD + body_len as usize);
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One record of a body, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RrView<'a> {
    /// Uncompressed wire name, as stored.
    pub owner: &'a [u8],
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
}

impl RrView<'_> {
    fn to_record(self) -> Record {
        // The owner was checked by `uncompressed_len` when read.
        let owner = Name::from_wire(self.owner).unwrap_or_else(|_| Name::root());
        Record { owner, rtype: self.rtype, ttl: self.ttl, rdata: self.rdata.into() }
    }
}

/// Which part of a changeset a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    SoaFrom,
    SoaTo,
    Removed,
    Added,
}

/// Walks a body (`entry[ENTRY_HEAD..len - ENTRY_TAIL]`), checking its structure against the
/// zone `origin` and the serials of its head, and hands each record to `f`. Allocates
/// nothing.
pub fn walk_body<'a>(
    body: &'a [u8],
    origin: &Name,
    head: &EntryHead,
    mut f: impl FnMut(Part, RrView<'a>),
) -> Result<(), String> {
    if body.len() < BODY_COUNTS {
        return Err("body shorter than its counts".into());
    }
    let removed = le32(&body[0..4]) as usize;
    let added = le32(&body[4..8]) as usize;
    let mut pos = BODY_COUNTS;
    let total = 2usize.saturating_add(removed).saturating_add(added);
    for i in 0..total {
        let part = match i {
            0 => Part::SoaFrom,
            1 => Part::SoaTo,
            i if i < 2 + removed => Part::Removed,
            _ => Part::Added,
        };
        let rr = read_rr(body, &mut pos).map_err(|e| format!("record {i}: {e}"))?;
        if !name::is_suffix_wire(rr.owner, origin.as_wire()) {
            return Err(format!("record {i}: owner outside the zone"));
        }
        let is_apex_soa = rr.rtype == rtype::SOA && rr.owner.eq_ignore_ascii_case(origin.as_wire());
        match part {
            Part::SoaFrom | Part::SoaTo => {
                let want = if part == Part::SoaFrom { head.from } else { head.to };
                if !is_apex_soa {
                    return Err(format!("record {i}: expected the apex SOA"));
                }
                if soa_serial(rr.rdata) != Some(want) {
                    return Err(format!("record {i}: SOA serial does not match the entry's serial {want}"));
                }
            }
            _ if is_apex_soa => return Err(format!("record {i}: apex SOA among the removed or added records")),
            _ => {}
        }
        f(part, rr);
    }
    if pos != body.len() {
        return Err(format!("{} bytes after the last record", body.len() - pos));
    }
    Ok(())
}

/// Reads one uncompressed RR at `body[*pos..]`.
fn read_rr<'a>(body: &'a [u8], pos: &mut usize) -> Result<RrView<'a>, String> {
    let p = *pos;
    let nlen = name::uncompressed_len(body, p).map_err(|e| format!("bad owner: {e}"))?;
    let f = body.get(p + nlen..p + nlen + 10).ok_or("truncated record")?;
    let rtype = u16::from_be_bytes([f[0], f[1]]);
    let class = u16::from_be_bytes([f[2], f[3]]);
    if class != CLASS_IN {
        return Err(format!("class {class}, expected IN"));
    }
    let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
    let rdlen = u16::from_be_bytes([f[8], f[9]]) as usize;
    let start = p + nlen + 10;
    let rdata = body.get(start..start + rdlen).ok_or("truncated rdata")?;
    *pos = start + rdlen;
    Ok(RrView { owner: &body[p..p + nlen], rtype, ttl, rdata })
}

/// Decodes a body into a changeset (after [`walk_body`]'s checks).
pub fn decode_body(body: &[u8], origin: &Name, head: &EntryHead) -> Result<Changeset, String> {
    // Counts are only a hint for capacity (each RR takes at least 11 bytes).
    let hint = |i: usize| body.get(i..i + 4).map_or(0, |b| (le32(b) as usize).min(body.len() / 11));
    let mut cs = Changeset {
        soa_from: None,
        soa_to: None,
        removed: Vec::with_capacity(hint(0)),
        added: Vec::with_capacity(hint(4)),
    };
    walk_body(body, origin, head, |part, rr| match part {
        Part::SoaFrom => cs.soa_from = Some(rr.to_record()),
        Part::SoaTo => cs.soa_to = Some(rr.to_record()),
        Part::Removed => cs.removed.push(rr.to_record()),
        Part::Added => cs.added.push(rr.to_record()),
    })?;
    Ok(cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    fn soa(serial: u32) -> Record {
        let mut v = b"\x02ns\x00\x02hm\x00".to_vec();
        for x in [serial, 7200, 900, 1209600, 300] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        Record { owner: n("ex."), rtype: rtype::SOA, ttl: 3600, rdata: v.into() }
    }

    /// The header of the journal of `ex.` starting at serial 0x01020304, byte by byte.
    const HEADER: [u8; 32] = [
        b'N', b'S', b'X', b'D', b'P', b'J', b'N', b'L', // magic
        1, 0, 0, 0, // version
        32, 0, 0, 0, // header length
        4, 3, 2, 1, // start serial
        4, 0, // origin length
        0, 0, // reserved
        2, b'e', b'x', 0, // origin
        0x82, 0x0e, 0x9f, 0x08, // CRC32C of the 28 bytes before (computed apart, in Python)
    ];

    #[test]
    fn header_emit_and_parse() {
        let h = FileHeader { origin: n("ex."), start_serial: 0x0102_0304 };
        let bytes = h.encode();
        assert_eq!(bytes, HEADER);
        assert_eq!(FileHeader::decode(&bytes), Ok((h, 32)));
        for cut in 0..bytes.len() {
            assert!(FileHeader::decode(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[25] ^= 0x20;
        assert_eq!(FileHeader::decode(&bad).unwrap_err(), "header checksum mismatch");
    }

    #[test]
    fn entry_emit_and_parse() {
        let a = Record { owner: n("A.ex."), rtype: rtype::A, ttl: 300, rdata: vec![192, 0, 2, 1].into() };
        let cs = Changeset { soa_from: Some(soa(1)), soa_to: Some(soa(2)), removed: vec![a.clone()], added: vec![] };
        let mut buf = Vec::new();
        encode_entry(1, 2, &cs, &mut buf).unwrap();
        let soa_rr = 4 + 10 + 28;
        let a_rr = 6 + 10 + 4;
        assert_eq!(buf.len(), ENTRY_OVERHEAD + 8 + 2 * soa_rr + a_rr);
        let head = EntryHead::decode(&buf).unwrap();
        assert_eq!(head, EntryHead { body_len: (buf.len() - ENTRY_OVERHEAD) as u32, from: 1, to: 2 });
        assert!(entry_crc_ok(&buf));
        // The removed A record, in wire form, right before the tail.
        let tail = &buf[buf.len() - 4 - a_rr..buf.len() - 4];
        assert_eq!(tail, b"\x01A\x02ex\x00\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01");
        let body = &buf[ENTRY_HEAD..buf.len() - ENTRY_TAIL];
        assert_eq!(decode_body(body, &n("ex."), &head), Ok(cs.clone()));
        // Serials that disagree with the SOAs are refused.
        let other = EntryHead { to: 3, ..head };
        assert!(decode_body(body, &n("ex."), &other).unwrap_err().contains("serial"));
        // Any flipped bit fails one of the checksums.
        for i in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(EntryHead::decode(&b).is_none() || !entry_crc_ok(&b), "bit {i}");
        }
    }
}
