//! Zone → [`ZoneImage`]: the tree flattened, RRsets rendered to wire fragments.

use super::layout::{pack, Draft};
use super::{rr_starts, NodeRec, RrsetRec, ZoneImage, NONE};
use crate::wire::name::{is_suffix_wire, Name};
use crate::wire::rdata::{self, rtype};
use crate::zone::{soa_minimum, Rrset, Zone};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("zone {0} has no SOA record at its apex")]
    NoSoa(Name),
    #[error("the {rtype} RRset at {owner} is {len} octets in wire form, more than a DNS message can carry")]
    RrsetTooLarge { owner: Name, rtype: String, len: usize },
    #[error("zone {0} is too large for the snapshot format")]
    TooLarge(Name),
    #[error("bad rdata in the {rtype} RRset at {owner}")]
    BadRdata { owner: Name, rtype: String },
}

/// Builds the answer-ready image of a zone.
pub fn compile(zone: &Zone) -> Result<ZoneImage, CompileError> {
    let origin = zone.origin();
    let soa = zone.soa().ok_or_else(|| CompileError::NoSoa(origin.clone()))?;
    let crate::zone::Tree { names: tree, index } = zone.tree();
    if tree.len() >= NONE as usize / 2 {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    // Sizes known in advance, so the big arrays never grow by copying.
    let mut data_len = 0usize;
    let mut rrset_count = 0usize;
    for node in zone.nodes() {
        for set in node.rrsets.values() {
            rrset_count += 1;
            data_len += set.rdata.iter().map(|r| r.len() + 12).sum::<usize>();
        }
    }
    let names_len: usize = tree.iter().map(|t| t.name.len()).sum();
    let mut img = Draft {
        origin: origin.as_wire().to_vec(),
        serial: zone.serial().unwrap_or(0),
        apex: index[origin.as_wire()],
        neg_soa: RrsetRec::default(),
        nodes: Vec::with_capacity(tree.len()),
        rrsets: Vec::with_capacity(rrset_count + 1),
        extras: Vec::new(),
        names: Vec::with_capacity(names_len),
        data: Vec::with_capacity(data_len + 512),
    };
    let has_addr =
        |w: &[u8]| zone.get_wire(w).is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
    // The node whose addresses go with a target name: the name itself if it exists, else
    // the wildcard below its closest encloser (RFC 4592), whose records then answer for the
    // target (their owner is the target name in the fragment).
    let address_node = |target: &Name| -> Option<u32> {
        let w = target.as_wire();
        if !target.ends_with(origin) {
            return None;
        }
        if let Some(&i) = index.get(w) {
            return has_addr(w).then_some(i);
        }
        let mut off = 0;
        while w[off] != 0 {
            off += w[off] as usize + 1;
            if index.contains_key(&w[off..]) {
                let mut wild = b"\x01*".to_vec();
                wild.extend_from_slice(&w[off..]);
                return index.get(&wild[..]).copied().filter(|_| has_addr(&wild));
            }
        }
        None
    };
    for t in &tree {
        let name_off = img.names.len() as u32;
        img.names.extend_from_slice(t.name);
        let rrset_start = img.rrsets.len() as u32;
        let mut count = 0u16;
        if let Some(node) = t.node {
            for (&ty, set) in &node.rrsets {
                let rec = render(&mut img, origin, &node.name, ty, set.ttl, set, &address_node)?;
                img.rrsets.push(rec);
                count += 1;
            }
        }
        img.nodes.push(NodeRec {
            name_off,
            name_len: t.name.len() as u8,
            flags: t.flags,
            rrset_count: count,
            rrset_start,
            parent: t.parent.map_or(NONE, |p| p as u32),
        });
    }
    // RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, MINIMUM).
    let min = soa.rdata.first().and_then(soa_minimum).unwrap_or(soa.ttl);
    img.neg_soa = render(&mut img, origin, origin, rtype::SOA, soa.ttl.min(min), soa, &|_| None)?;
    if img.data.len() >= u32::MAX as usize || img.names.len() >= u32::MAX as usize {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    pack(img).ok_or_else(|| CompileError::TooLarge(origin.clone()))
}

/// Renders one RRset into `img.data`, returning its record.
fn render(
    img: &mut Draft,
    origin: &Name,
    owner: &Name,
    ty: u16,
    ttl: u32,
    set: &Rrset,
    additional_node: &dyn Fn(&Name) -> Option<u32>,
) -> Result<RrsetRec, CompileError> {
    let mut frag: Vec<u8> = Vec::new();
    let mut apex_ptrs: Vec<u16> = Vec::new();
    let mut owner_ptrs: Vec<u16> = Vec::new();
    // Names below the owner point at it (it is in the message, as the question or a name
    // in it), except for a wildcard, whose owner in the message is the expanded name.
    let owner_compress = owner.len() > origin.len() && !owner.is_wildcard();
    let mut adds: Vec<(u16, u32)> = Vec::new();
    let mut rdatas: Vec<&[u8]> = set.rdata.iter().collect();
    if rdatas.len() > 1 {
        rdatas.sort_by_cached_key(|r| rdata::canonical_rdata(ty, r));
    }
    let bad = || CompileError::BadRdata { owner: owner.clone(), rtype: crate::zone::parse::type_name(ty) };
    for rd in &rdatas {
        // The owner pointer (C0 00) is filled in at answer time.
        frag.extend_from_slice(&[0xC0, 0]);
        frag.extend_from_slice(&ty.to_be_bytes());
        frag.extend_from_slice(&1u16.to_be_bytes());
        frag.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = frag.len();
        frag.extend_from_slice(&[0, 0]);
        let rdata_start = frag.len();
        let names = rdata::names_in(ty, rd).map_err(|_| bad())?;
        let target = rdata::additional_target(ty, rd);
        let mut pos = 0;
        for n in names {
            frag.extend_from_slice(&rd[pos..n.offset]);
            let name_at = frag.len();
            let wire = &rd[n.offset..n.offset + n.len];
            if n.compress && owner_compress && is_suffix_wire(wire, owner.as_wire()) {
                let head = wire.len() - owner.len();
                frag.extend_from_slice(&wire[..head]);
                owner_ptrs.push(frag.len().min(u16::MAX as usize) as u16);
                frag.extend_from_slice(&[0xC0, 0]);
            } else if n.compress && is_suffix_wire(wire, origin.as_wire()) {
                let head = wire.len() - origin.len();
                frag.extend_from_slice(&wire[..head]);
                apex_ptrs.push(frag.len().min(u16::MAX as usize) as u16);
                frag.extend_from_slice(&[0xC0, 0]);
            } else {
                frag.extend_from_slice(wire);
            }
            if target.is_some_and(|t| t.offset == n.offset) && name_at <= u16::MAX as usize {
                let lower = Name::from_wire(wire).map_err(|_| bad())?.to_lowercase();
                if let Some(node) = additional_node(&lower) {
                    adds.push((name_at as u16, node));
                }
            }
            pos = n.offset + n.len;
        }
        frag.extend_from_slice(&rd[pos..]);
        let rdlen = frag.len() - rdata_start;
        if rdlen > u16::MAX as usize || frag.len() > u16::MAX as usize {
            return Err(too_large(owner, ty, frag.len()));
        }
        frag[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    }
    let extra = if apex_ptrs.is_empty() && owner_ptrs.is_empty() && adds.is_empty() {
        NONE
    } else {
        let at = img.extras.len() as u32;
        img.extras.push(apex_ptrs.len() as u16);
        img.extras.extend_from_slice(&apex_ptrs);
        img.extras.push(owner_ptrs.len() as u16);
        img.extras.extend_from_slice(&owner_ptrs);
        img.extras.push(adds.len() as u16);
        for (name_at, node) in adds {
            img.extras.extend_from_slice(&[name_at, (node >> 16) as u16, node as u16]);
        }
        at
    };
    let data_off = img.data.len() as u32;
    img.data.extend_from_slice(&frag);
    let count = rr_starts(&frag).count() as u16;
    Ok(RrsetRec { data_off, data_len: frag.len() as u16, rtype: ty, extra, count })
}

fn too_large(owner: &Name, ty: u16, len: usize) -> CompileError {
    CompileError::RrsetTooLarge { owner: owner.clone(), rtype: crate::zone::parse::type_name(ty), len }
}
