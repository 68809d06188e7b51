//! Turning pre-rendered fragments into message bytes, and back into records.

use super::{ArchivedZoneImage, RrsetRec};
use crate::wire::name::{self, Name};
use crate::wire::rdata;
use crate::zone::{Record, SrcPos, Zone};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no room in the message")]
    NoRoom,
    #[error("compression target beyond offset 16383")]
    PointerRange,
    #[error("malformed fragment: {0}")]
    Malformed(name::NameError),
}

/// Copies the RRs of `r` into `out[at..]`, pointing their owners at `owner_off` and apex
/// references at `apex_off`. Returns the number of bytes written.
pub fn render_rrset(
    z: &ArchivedZoneImage,
    r: &RrsetRec,
    out: &mut [u8],
    at: usize,
    owner_off: usize,
    apex_off: usize,
) -> Result<usize, RenderError> {
    if owner_off > 0x3FFF || apex_off > 0x3FFF {
        return Err(RenderError::PointerRange);
    }
    let frag = z.fragment(r);
    let dst = out.get_mut(at..at + frag.len()).ok_or(RenderError::NoRoom)?;
    dst.copy_from_slice(frag);
    let owner = (0xC000 | owner_off as u16).to_be_bytes();
    // Every RR starts with its owner; the loader checked that the fragment holds `count`
    // whole RRs.
    let mut p = 0;
    for _ in 0..r.count {
        dst[p..p + 2].copy_from_slice(&owner);
        p += 12 + u16::from_be_bytes([dst[p + 10], dst[p + 11]]) as usize;
    }
    if r.extra != super::NONE {
        let (apex_ptrs, owner_ptrs, _) = z.extra_parts(r);
        let apex = (0xC000 | apex_off as u16).to_be_bytes();
        for p in apex_ptrs {
            let p = p.to_native() as usize;
            dst[p..p + 2].copy_from_slice(&apex);
        }
        for p in owner_ptrs {
            let p = p.to_native() as usize;
            dst[p..p + 2].copy_from_slice(&owner);
        }
    }
    Ok(frag.len())
}

/// Every record of an archived zone, in canonical order (apex SOA first), uncompressed.
pub fn records(z: &ArchivedZoneImage) -> Result<Vec<Record>, RenderError> {
    let mut w = Walker::new();
    let mut out = Vec::new();
    while w.fill(z, || axfr_order(z).into())? {
        out.push(w.current().to_record()?);
        w.advance();
    }
    Ok(out)
}

/// One record of a snapshot, borrowed from the walker that decoded it: owner and rdata
/// uncompressed (the owner lowercase, as the snapshot keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSlices<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
}

impl RecordSlices<'_> {
    /// The record, owned.
    pub fn to_record(&self) -> Result<Record, RenderError> {
        Ok(Record {
            owner: Name::from_wire(self.owner).map_err(RenderError::Malformed)?,
            rtype: self.rtype,
            ttl: self.ttl,
            rdata: self.rdata.into(),
        })
    }
}

/// The records of a mapped snapshot in canonical order (apex SOA first), decoded a node at a
/// time as they are asked for: what AXFR streams, without the whole zone in memory. The
/// snapshot stays mapped while this lives. A snapshot that fails to render (it cannot: the
/// loader checked it) ends the sequence early and sets [`SnapshotRecords::failed`].
///
/// Two ways to read it: [`SnapshotRecords::peek`] and [`SnapshotRecords::advance`] lend each
/// record without allocating (what the transfer writers use), and the `Iterator` gives owned
/// [`Record`]s.
pub struct SnapshotRecords {
    snap: std::sync::Arc<super::Snapshot>,
    walker: Walker,
    failed: Option<RenderError>,
}

impl SnapshotRecords {
    pub fn new(snap: std::sync::Arc<super::Snapshot>) -> SnapshotRecords {
        let walker = Walker::new();
        SnapshotRecords { snap, walker, failed: None }
    }

    pub fn failed(&self) -> Option<&RenderError> {
        self.failed.as_ref()
    }

    /// The next record, without moving past it; None at the end (or after a failure).
    pub fn peek(&mut self) -> Option<RecordSlices<'_>> {
        let snap = &self.snap;
        match self.walker.fill(snap.zone(), || snap.canonical_order()) {
            Ok(true) => Some(self.walker.current()),
            Ok(false) => None,
            Err(e) => {
                self.failed = Some(e);
                self.walker.finish();
                None
            }
        }
    }

    /// Moves past the record [`SnapshotRecords::peek`] gave.
    pub fn advance(&mut self) {
        self.walker.advance();
    }
}

impl Iterator for SnapshotRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let r = self.peek()?.to_record();
        self.walker.advance();
        match r {
            Ok(r) => Some(r),
            Err(e) => {
                self.failed = Some(e);
                self.walker.finish();
                None
            }
        }
    }
}

/// One decoded record of the current node: its rdata is `data[start..start + len]`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    rtype: u16,
    ttl: u32,
    start: u32,
    len: u32,
}

/// Walks a zone's nodes in canonical order, the apex first, decoding one node's records at
/// a time into buffers it reuses (no allocation per record or per node once they have
/// grown).
struct Walker {
    /// The nodes in canonical order, apex first; sorted when the walk gets past the apex (an
    /// IXFR that only needs the SOA does not pay for sorting the zone).
    order: Option<std::sync::Arc<[u32]>>,
    /// The position in `order` of the next node to decode.
    next: usize,
    /// Nothing more to give.
    done: bool,
    /// The current node's name (lowercase wire form).
    owner: Vec<u8>,
    /// The current node's records, in the order they are given out, and which is next.
    entries: Vec<Entry>,
    current: usize,
    /// Their rdata, uncompressed.
    data: Vec<u8>,
    /// Pointer positions of the fragment being decoded: (offset, to the owner).
    patches: Vec<(usize, bool)>,
}

impl Walker {
    fn new() -> Walker {
        Walker {
            order: None,
            next: 0,
            done: false,
            owner: Vec::with_capacity(256),
            entries: Vec::new(),
            current: 0,
            data: Vec::new(),
            patches: Vec::new(),
        }
    }

    /// Decodes nodes until a record is there to give out. False at the end.
    /// `order` gives the nodes in AXFR order ([`axfr_order`]) when the walk first needs it.
    fn fill(
        &mut self,
        z: &ArchivedZoneImage,
        order: impl FnOnce() -> std::sync::Arc<[u32]>,
    ) -> Result<bool, RenderError> {
        let mut order = Some(order);
        while self.current >= self.entries.len() {
            if self.done {
                return Ok(false);
            }
            let apex = z.apex.to_native();
            let i = if self.next == 0 {
                apex
            } else {
                let order = self.order.get_or_insert_with(|| order.take().expect("asked for once")());
                match order.get(self.next) {
                    Some(&i) => i,
                    None => {
                        self.done = true;
                        return Ok(false);
                    }
                }
            };
            self.next += 1;
            self.decode_node(z, i)?;
        }
        Ok(true)
    }

    /// The record to give out (after `fill` said there is one).
    fn current(&self) -> RecordSlices<'_> {
        let e = self.entries[self.current];
        RecordSlices {
            owner: &self.owner,
            rtype: e.rtype,
            ttl: e.ttl,
            rdata: &self.data[e.start as usize..(e.start + e.len) as usize],
        }
    }

    fn advance(&mut self) {
        self.current += 1;
    }

    /// Gives nothing more.
    fn finish(&mut self) {
        self.done = true;
        self.entries.clear();
        self.current = 0;
    }

    fn decode_node(&mut self, z: &ArchivedZoneImage, i: u32) -> Result<(), RenderError> {
        self.entries.clear();
        self.data.clear();
        self.current = 0;
        self.owner.clear();
        self.owner.extend_from_slice(z.node_name(i));
        if i == z.apex.to_native() {
            // The SOA first at the apex, the rest in type order.
            for r in z.node_rrsets(i).filter(|r| r.rtype == rdata::rtype::SOA) {
                self.decode_rrset(z, &r)?;
            }
            for r in z.node_rrsets(i).filter(|r| r.rtype != rdata::rtype::SOA) {
                self.decode_rrset(z, &r)?;
            }
        } else {
            for r in z.node_rrsets(i) {
                self.decode_rrset(z, &r)?;
            }
        }
        Ok(())
    }

    /// Appends the records of a fragment: every RR is `owner(2) type class ttl rdlen rdata`,
    /// and the pointers the extras list (to the apex, or to the owner) are the ends of rdata
    /// names, replaced here by the name they point to.
    fn decode_rrset(&mut self, z: &ArchivedZoneImage, r: &RrsetRec) -> Result<(), RenderError> {
        let bad = || RenderError::Malformed(name::NameError::Truncated);
        let frag = z.fragment(r);
        let (apex_ptrs, owner_ptrs, _) = z.extra_parts(r);
        self.patches.clear();
        self.patches.extend(apex_ptrs.iter().map(|p| (p.to_native() as usize, false)));
        self.patches.extend(owner_ptrs.iter().map(|p| (p.to_native() as usize, true)));
        self.patches.sort_unstable();
        let mut patches = self.patches.iter().copied().peekable();
        let mut p = 0;
        for _ in 0..r.count {
            let h = frag.get(p..p + 12).ok_or_else(bad)?;
            let rtype = u16::from_be_bytes([h[2], h[3]]);
            let ttl = u32::from_be_bytes([h[6], h[7], h[8], h[9]]);
            let end = p + 12 + u16::from_be_bytes([h[10], h[11]]) as usize;
            if end > frag.len() {
                return Err(bad());
            }
            let start = self.data.len();
            let mut at = p + 12;
            while let Some((ptr, to_owner)) = patches.next_if(|&(ptr, _)| ptr < end) {
                if ptr < at || ptr + 2 > end {
                    return Err(bad());
                }
                self.data.extend_from_slice(&frag[at..ptr]);
                self.data.extend_from_slice(if to_owner { &self.owner } else { &z.origin });
                at = ptr + 2;
            }
            self.data.extend_from_slice(&frag[at..end]);
            let len = self.data.len() - start;
            self.entries.push(Entry { rtype, ttl, start: start as u32, len: len as u32 });
            p = end;
        }
        Ok(())
    }
}

/// The nodes in AXFR order: canonical, as master files and AXFR have it (the snapshot keeps
/// parents first), with the apex (and its SOA) first.
pub(super) fn axfr_order(z: &ArchivedZoneImage) -> Vec<u32> {
    let apex = z.apex.to_native();
    let mut order = canonical_nodes(z);
    if let Some(p) = order.iter().position(|&i| i == apex) {
        order[..=p].rotate_right(1);
    }
    order
}

/// The zone's nodes in canonical order (RFC 4034 §6.1). Every name ends in the origin, so
/// keys hold only the labels before it: right to left, each ended by 0x00, with 0x00 and
/// 0x01 inside a label written as 01 01 and 01 02 so that the end of a label sorts first
/// (names in the snapshot are lowercase). The first sixteen bytes of each key, as a number,
/// decide most comparisons without reading the keys (sorting a million names by their keys
/// alone took most of the time of a transfer's start).
fn canonical_nodes(z: &ArchivedZoneImage) -> Vec<u32> {
    let origin_len = z.origin.len();
    let mut keys: Vec<u8> = Vec::new();
    let mut sorted: Vec<(u128, u32, u32, u32)> = Vec::new();
    let mut starts: Vec<usize> = Vec::with_capacity(128);
    for n in z.node_ids() {
        let w = z.node_name(n);
        let from = keys.len();
        starts.clear();
        let mut i = 0;
        while i + origin_len < w.len() && w[i] != 0 {
            starts.push(i);
            i += w[i] as usize + 1;
        }
        for &s in starts.iter().rev() {
            for &b in w.get(s + 1..s + 1 + w[s] as usize).unwrap_or_default() {
                match b {
                    0 | 1 => keys.extend_from_slice(&[1, b + 1]),
                    _ => keys.push(b),
                }
            }
            keys.push(0);
        }
        let mut prefix = [0u8; 16];
        let k = &keys[from..];
        let l = k.len().min(16);
        prefix[..l].copy_from_slice(&k[..l]);
        sorted.push((u128::from_be_bytes(prefix), from as u32, (keys.len() - from) as u32, n));
    }
    // Past the prefix; a key shorter than it is padded with zeros, which sort first, as the
    // end of a key does.
    let key = |&(_, from, len, _): &(u128, u32, u32, u32)| &keys[(from + len.min(16)) as usize..(from + len) as usize];
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key(a).cmp(key(b))));
    sorted.into_iter().map(|e| e.3).collect()
}

/// Rebuilds the owned zone from an archived one.
pub fn to_zone(z: &ArchivedZoneImage) -> Result<Zone, RenderError> {
    let origin = Name::from_wire(&z.origin).map_err(RenderError::Malformed)?;
    let mut zone = Zone::new(&origin);
    for r in records(z)? {
        // Records in a validated snapshot were in a zone once, so they fit again.
        let _ = zone.insert(&r.owner, r.rtype, r.ttl, &r.rdata, SrcPos::default());
    }
    Ok(zone)
}
