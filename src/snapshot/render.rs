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
    let mut out = Vec::new();
    let origin_len = z.origin.len();
    let mut msg = vec![0u8; 65536 + 512];
    let apex = z.apex.to_native();
    // Canonical order, as master files and AXFR have it (the snapshot keeps parents first).
    let nodes: Vec<u32> = z.nodes.iter().map(|n| n.to_native()).collect();
    let mut order: Vec<u32> =
        crate::zone::canonical_order(nodes.iter().map(|&n| z.node_name(n))).into_iter().map(|i| nodes[i]).collect();
    // SOA first, as AXFR and master files have it.
    if let Some(p) = order.iter().position(|&i| i == apex) {
        order.remove(p);
        order.insert(0, apex);
    }
    for i in order {
        let owner = z.node_name(i);
        msg[12..12 + owner.len()].copy_from_slice(owner);
        let base = 12 + owner.len();
        let apex_off = base - origin_len;
        let mut sets: Vec<RrsetRec> = z.node_rrsets(i).collect();
        if i == apex {
            sets.sort_by_key(|r| r.rtype != crate::wire::rdata::rtype::SOA);
        }
        for r in sets {
            let len = render_rrset(z, &r, &mut msg, base, 12, apex_off)?;
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
                out.push(Record { owner, rtype: t, ttl, rdata: rd.into_boxed_slice() });
                pos = next + 10 + rdlen;
            }
        }
    }
    Ok(out)
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
