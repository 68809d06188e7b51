//! Zone → [`ZoneImage`]: the tree flattened, RRsets rendered to wire fragments.

use super::{name_hash, NodeRec, RrsetRec, ZoneImage, NONE};
use crate::wire::name::{is_suffix_wire, lowercase_into, Name};
use crate::wire::rdata::{self, rtype};
use crate::zone::parse::type_name;
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
    let tree = zone.tree();
    if tree.names.len() >= NONE as usize / 2 {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    // Sizes known in advance, so the big arrays never grow by copying.
    let rrset_count: usize = zone.nodes().map(|n| n.rrsets.len()).sum();
    let data_len = zone.rdata_octets() + 12 * zone.rr_count();
    let names_len: usize = tree.names.iter().map(|t| t.name.len()).sum();
    let mut img = ZoneImage {
        origin: origin.as_wire().to_vec(),
        serial: zone.serial().unwrap_or(0),
        apex: tree.find(origin.as_wire()).map_or(0, |p| p as u32),
        neg_soa: NONE,
        nodes: Vec::with_capacity(tree.names.len()),
        buckets: Vec::new(),
        rrsets: Vec::with_capacity(rrset_count + 1),
        extras: Vec::new(),
        names: Vec::with_capacity(names_len),
        data: Vec::with_capacity(data_len + 512),
    };
    let has_addr =
        |p: usize| tree.names[p].node.is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
    // The node whose addresses go with a target name (lowercased wire): the name itself if
    // it exists, else the wildcard below its closest encloser (RFC 4592), whose records then
    // answer for the target (their owner is the target name in the fragment).
    let address_node = |w: &[u8]| -> Option<u32> {
        if !is_suffix_wire(w, origin.as_wire()) {
            return None;
        }
        if let Some(p) = tree.find(w) {
            return has_addr(p).then_some(p as u32);
        }
        let mut off = 0;
        while w[off] != 0 {
            off += w[off] as usize + 1;
            if tree.find(&w[off..]).is_some() {
                let mut wild = [0u8; 2 + 256];
                wild[..2].copy_from_slice(b"\x01*");
                wild[2..2 + w.len() - off].copy_from_slice(&w[off..]);
                return tree.find(&wild[..2 + w.len() - off]).filter(|&p| has_addr(p)).map(|p| p as u32);
            }
        }
        None
    };
    let mut scratch = Scratch::default();
    for t in &tree.names {
        let name_off = img.names.len() as u32;
        img.names.extend_from_slice(t.name);
        let rrset_start = img.rrsets.len() as u32;
        let mut count = 0u16;
        if let Some(node) = t.node {
            for (&ty, set) in &node.rrsets {
                let rec = render(&mut img, &mut scratch, origin, node.name.as_wire(), ty, set.ttl, set, &address_node)?;
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
    let neg = render(&mut img, &mut scratch, origin, origin.as_wire(), rtype::SOA, soa.ttl.min(min), soa, &|_| None)?;
    img.neg_soa = img.rrsets.len() as u32;
    img.rrsets.push(neg);
    img.buckets = build_index(&img);
    if img.data.len() >= u32::MAX as usize || img.names.len() >= u32::MAX as usize {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    Ok(img)
}

fn build_index(img: &ZoneImage) -> Vec<u32> {
    let size = (img.nodes.len() * 2).next_power_of_two().max(2);
    let mask = size as u32 - 1;
    let mut buckets = vec![0u32; size];
    for (i, n) in img.nodes.iter().enumerate() {
        let name = &img.names[n.name_off as usize..n.name_off as usize + n.name_len as usize];
        let mut b = name_hash(name) & mask;
        while buckets[b as usize] != 0 {
            b = (b + 1) & mask;
        }
        buckets[b as usize] = i as u32 + 1;
    }
    buckets
}

/// Buffers reused from one RRset to the next.
#[derive(Default)]
struct Scratch<'z> {
    rdatas: Vec<&'z [u8]>,
    apex_ptrs: Vec<u16>,
    owner_ptrs: Vec<u16>,
    adds: Vec<(u16, u32)>,
    key_a: Vec<u8>,
    key_b: Vec<u8>,
}

/// Sorts the rdata of an RRset into canonical order (RFC 4034 §6.3: canonical forms
/// compared as octet strings) without allocating per record.
fn sort_canonical(ty: u16, rdatas: &mut [&[u8]], key_a: &mut Vec<u8>, key_b: &mut Vec<u8>) {
    if rdatas.len() < 2 {
        return;
    }
    if !rdata::lowercase_in_canonical_form(ty) {
        rdatas.sort_unstable();
        return;
    }
    let canonical = |r: &[u8], key: &mut Vec<u8>| {
        key.clear();
        key.extend_from_slice(r);
        // Length octets are below 64, so folding ASCII case over a whole name is exact.
        let _ = rdata::for_each_name(ty, r, |n| key[n.offset..n.offset + n.len].make_ascii_lowercase());
    };
    rdatas.sort_unstable_by(|a, b| {
        canonical(a, key_a);
        canonical(b, key_b);
        key_a.as_slice().cmp(key_b.as_slice())
    });
}

/// Renders one RRset into `img.data`, returning its record.
#[allow(clippy::too_many_arguments)]
fn render<'z>(
    img: &mut ZoneImage,
    scratch: &mut Scratch<'z>,
    origin: &Name,
    owner: &[u8],
    ty: u16,
    ttl: u32,
    set: &'z Rrset,
    additional_node: &dyn Fn(&[u8]) -> Option<u32>,
) -> Result<RrsetRec, CompileError> {
    let Scratch { rdatas, apex_ptrs, owner_ptrs, adds, key_a, key_b } = scratch;
    rdatas.clear();
    apex_ptrs.clear();
    owner_ptrs.clear();
    adds.clear();
    let origin = origin.as_wire();
    // Names below the owner point at it (it is in the message, as the question or a name
    // in it), except for a wildcard, whose owner in the message is the expanded name.
    let owner_compress = owner.len() > origin.len() && !owner.starts_with(b"\x01*");
    // NS, MX and SRV name one target each, which calls for additional A/AAAA records.
    let has_target = matches!(ty, rtype::NS | rtype::MX | rtype::SRV);
    rdatas.extend(set.rdata.iter());
    sort_canonical(ty, rdatas, key_a, key_b);
    let bad = || CompileError::BadRdata { owner: Name::from_wire_trusted(owner), rtype: type_name(ty) };
    let data = &mut img.data;
    let start = data.len();
    for rd in rdatas.iter() {
        // The owner pointer (C0 00) is filled in at answer time.
        data.extend_from_slice(&[0xC0, 0]);
        data.extend_from_slice(&ty.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&ttl.to_be_bytes());
        let rdlen_at = data.len();
        data.extend_from_slice(&[0, 0]);
        let rdata_start = data.len();
        let mut pos = 0;
        rdata::for_each_name(ty, rd, |n| {
            data.extend_from_slice(&rd[pos..n.offset]);
            let name_at = data.len() - start;
            let wire = &rd[n.offset..n.offset + n.len];
            if n.compress && owner_compress && is_suffix_wire(wire, owner) {
                let head = wire.len() - owner.len();
                data.extend_from_slice(&wire[..head]);
                owner_ptrs.push((data.len() - start).min(u16::MAX as usize) as u16);
                data.extend_from_slice(&[0xC0, 0]);
            } else if n.compress && is_suffix_wire(wire, origin) {
                let head = wire.len() - origin.len();
                data.extend_from_slice(&wire[..head]);
                apex_ptrs.push((data.len() - start).min(u16::MAX as usize) as u16);
                data.extend_from_slice(&[0xC0, 0]);
            } else {
                data.extend_from_slice(wire);
            }
            if has_target && name_at <= u16::MAX as usize {
                let mut buf = [0u8; 256];
                if let Some(node) = additional_node(lowercase_into(wire, &mut buf)) {
                    adds.push((name_at as u16, node));
                }
            }
            pos = n.offset + n.len;
        })
        .map_err(|_| bad())?;
        data.extend_from_slice(&rd[pos..]);
        let rdlen = data.len() - rdata_start;
        let frag_len = data.len() - start;
        if rdlen > u16::MAX as usize || frag_len > u16::MAX as usize {
            return Err(too_large(owner, ty, frag_len));
        }
        data[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    }
    let frag_len = data.len() - start;
    let extra = if apex_ptrs.is_empty() && owner_ptrs.is_empty() && adds.is_empty() {
        NONE
    } else {
        let at = img.extras.len() as u32;
        img.extras.push(apex_ptrs.len() as u16);
        img.extras.extend_from_slice(apex_ptrs);
        img.extras.push(owner_ptrs.len() as u16);
        img.extras.extend_from_slice(owner_ptrs);
        img.extras.push(adds.len() as u16);
        for &(name_at, node) in adds.iter() {
            img.extras.extend_from_slice(&[name_at, (node >> 16) as u16, node as u16]);
        }
        at
    };
    Ok(RrsetRec { data_off: start as u32, data_len: frag_len as u16, rtype: ty, extra })
}

fn too_large(owner: &[u8], ty: u16, len: usize) -> CompileError {
    CompileError::RrsetTooLarge { owner: Name::from_wire_trusted(owner), rtype: type_name(ty), len }
}
