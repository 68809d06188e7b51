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
    let mut w = Walker::new(z);
    let mut out = Vec::new();
    while let Some(r) = w.next(z) {
        out.push(r?);
    }
    Ok(out)
}

/// The records of a mapped snapshot in canonical order (apex SOA first), made a node at a
/// time as they are asked for: what AXFR streams, without the whole zone in memory. The
/// snapshot stays mapped while this lives. A snapshot that fails to render (it cannot: the
/// loader checked it) ends the sequence early and sets [`SnapshotRecords::failed`].
pub struct SnapshotRecords {
    snap: std::sync::Arc<super::Snapshot>,
    walker: Walker,
    failed: Option<RenderError>,
}

impl SnapshotRecords {
    pub fn new(snap: std::sync::Arc<super::Snapshot>) -> SnapshotRecords {
        let walker = Walker::new(snap.zone());
        SnapshotRecords { snap, walker, failed: None }
    }

    pub fn failed(&self) -> Option<&RenderError> {
        self.failed.as_ref()
    }
}

impl Iterator for SnapshotRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        match self.walker.next(self.snap.zone())? {
            Ok(r) => Some(r),
            Err(e) => {
                self.failed = Some(e);
                self.walker.next = self.walker.order.len();
                None
            }
        }
    }
}

/// Walks a zone's nodes in canonical order, the apex first, rendering one node's RRsets at a
/// time.
struct Walker {
    order: Vec<u32>,
    next: usize,
    /// The current node's records, last first.
    pending: Vec<Record>,
    msg: Vec<u8>,
}

impl Walker {
    fn new(z: &ArchivedZoneImage) -> Walker {
        let apex = z.apex.to_native();
        let nodes: Vec<u32> = z.node_ids().collect();
        // Canonical order, as master files and AXFR have it (the snapshot keeps parents first).
        let mut order: Vec<u32> =
            crate::zone::canonical_order(nodes.iter().map(|&n| z.node_name(n))).into_iter().map(|i| nodes[i]).collect();
        // SOA first, as AXFR and master files have it.
        if let Some(p) = order.iter().position(|&i| i == apex) {
            order.remove(p);
            order.insert(0, apex);
        }
        Walker { order, next: 0, pending: Vec::new(), msg: vec![0u8; 65536 + 512] }
    }

    fn next(&mut self, z: &ArchivedZoneImage) -> Option<Result<Record, RenderError>> {
        while self.pending.is_empty() {
            let &i = self.order.get(self.next)?;
            self.next += 1;
            if let Err(e) = self.render_node(z, i) {
                return Some(Err(e));
            }
            self.pending.reverse();
        }
        self.pending.pop().map(Ok)
    }

    fn render_node(&mut self, z: &ArchivedZoneImage, i: u32) -> Result<(), RenderError> {
        let msg = &mut self.msg;
        let owner = z.node_name(i);
        msg[12..12 + owner.len()].copy_from_slice(owner);
        let base = 12 + owner.len();
        let apex_off = base - z.origin.len();
        let mut sets: Vec<RrsetRec> = z.node_rrsets(i).collect();
        if i == z.apex.to_native() {
            sets.sort_by_key(|r| r.rtype != crate::wire::rdata::rtype::SOA);
        }
        for r in sets {
            let len = render_rrset(z, &r, msg, base, 12, apex_off)?;
            let mut pos = base;
            while pos < base + len {
                let mut buf = [0u8; 256];
                let (next, nlen) =
                    name::read_compressed(&msg[..base + len], pos, &mut buf).map_err(RenderError::Malformed)?;
                let f = &msg[next..next + 10];
                let t = u16::from_be_bytes([f[0], f[1]]);
                let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                let rdlen = u16::from_be_bytes([f[8], f[9]]) as usize;
                let rd = rdata::decompress(t, &msg[..base + len], next + 10, rdlen).map_err(RenderError::Malformed)?;
                let owner = Name::from_wire(&buf[..nlen]).map_err(RenderError::Malformed)?;
                self.pending.push(Record { owner, rtype: t, ttl, rdata: rd.into_boxed_slice() });
                pos = next + 10 + rdlen;
            }
        }
        Ok(())
    }
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
