//! The last step of compiling: the draft (flat arrays indexed by node and RRset number, easy
//! to build) packed into node blocks (what the answer path reads; see the module docs).

use super::{bucket_entry, name_hash, NodeRec, RrsetRec, ZoneImage, BLOCK_HEADER, NONE, RRSET_DESC};

/// A zone image under construction: node `i`'s name is `names[name_off..]`, its RRsets are
/// `rrsets[rrset_start..]`, fragments are in `data`, and additional-section candidates in
/// `extras` name nodes by index.
#[derive(Debug, Default)]
pub struct Draft {
    pub origin: Vec<u8>,
    pub serial: u32,
    pub apex: u32,
    pub neg_soa: RrsetRec,
    /// The negative SOA's signatures (`data_len` 0: none), rendered after it.
    pub neg_soa_sig: RrsetRec,
    /// Nodes owning NSEC, in canonical order.
    pub nsec_chain: Vec<u32>,
    /// Their canonical key prefixes.
    pub nsec_keys: Vec<u64>,
    /// Nodes owning NSEC3 of the zone's chain, in hash order.
    pub nsec3_chain: Vec<u32>,
    /// Their owner labels' first eight octets.
    pub nsec3_keys: Vec<u64>,
    /// (node, the node owning its NSEC3), by node.
    pub nsec3_of: Vec<(u32, u32)>,
    /// For each of `nsec3_of`, the node owning the NSEC3 that covers the wildcard below it.
    pub nsec3_wild: Vec<u32>,
    pub nsec3_salt: Vec<u8>,
    pub nsec3_iterations: u16,
    pub nodes: Vec<NodeRec>,
    pub rrsets: Vec<RrsetRec>,
    pub extras: Vec<u16>,
    pub names: Vec<u8>,
    pub data: Vec<u8>,
}

impl Default for RrsetRec {
    fn default() -> Self {
        RrsetRec { data_off: 0, data_len: 0, rtype: 0, extra: NONE, count: 0 }
    }
}

/// Packs a draft into node blocks; None if the blocks would pass 4 GiB.
pub fn pack(mut d: Draft) -> Option<ZoneImage> {
    // Block offsets first: parents, additionals and the index refer to them.
    let mut offsets = Vec::with_capacity(d.nodes.len());
    let mut total = 0usize;
    for n in &d.nodes {
        offsets.push(u32::try_from(total).ok()?);
        let sets = &d.rrsets[n.rrset_start as usize..][..n.rrset_count as usize];
        total += BLOCK_HEADER + n.name_len as usize + sets.len() * RRSET_DESC;
        total += sets.iter().map(|r| r.data_len as usize).sum::<usize>();
    }
    total += d.neg_soa.data_len as usize + d.neg_soa_sig.data_len as usize;
    if total >= (u32::MAX - 1) as usize {
        return None;
    }
    // Additional-section candidates now name blocks.
    for r in d.rrsets.iter().chain([&d.neg_soa]) {
        if r.extra == NONE {
            continue;
        }
        let e = &mut d.extras[r.extra as usize..];
        let skip = 1 + e[0] as usize;
        let skip = skip + 1 + e[skip] as usize;
        let adds = e[skip] as usize;
        for c in e[skip + 1..skip + 1 + 3 * adds].chunks_exact_mut(3) {
            let node = offsets[((c[1] as usize) << 16) | c[2] as usize];
            c[1] = (node >> 16) as u16;
            c[2] = node as u16;
        }
    }
    let mut blocks = Vec::with_capacity(total);
    for n in &d.nodes {
        let sets = &d.rrsets[n.rrset_start as usize..][..n.rrset_count as usize];
        blocks.push(n.flags);
        blocks.push(n.name_len);
        blocks.extend_from_slice(&n.rrset_count.to_le_bytes());
        let parent = if n.parent == NONE { NONE } else { offsets[n.parent as usize] };
        blocks.extend_from_slice(&parent.to_le_bytes());
        blocks.extend_from_slice(&d.names[n.name_off as usize..][..n.name_len as usize]);
        for r in sets {
            blocks.extend_from_slice(&r.encode());
        }
        for r in sets {
            blocks.extend_from_slice(&d.data[r.data_off as usize..][..r.data_len as usize]);
        }
    }
    let neg_soa = RrsetRec { data_off: blocks.len() as u32, ..d.neg_soa };
    blocks.extend_from_slice(&d.data[d.neg_soa.data_off as usize..][..d.neg_soa.data_len as usize]);
    let neg_soa_sig = RrsetRec { data_off: blocks.len() as u32, ..d.neg_soa_sig };
    blocks.extend_from_slice(&d.data[d.neg_soa_sig.data_off as usize..][..d.neg_soa_sig.data_len as usize]);
    debug_assert_eq!(blocks.len(), total);
    let buckets = build_index(&d, &offsets);
    Some(ZoneImage {
        origin: d.origin,
        serial: d.serial,
        apex: offsets[d.apex as usize],
        neg_soa,
        neg_soa_sig,
        nsec_chain: d.nsec_chain.iter().map(|&i| offsets[i as usize]).collect(),
        nsec_keys: std::mem::take(&mut d.nsec_keys),
        nsec3_chain: d.nsec3_chain.iter().map(|&i| offsets[i as usize]).collect(),
        nsec3_keys: std::mem::take(&mut d.nsec3_keys),
        // Block offsets grow with tree position: still sorted by node.
        nsec3_of: d
            .nsec3_of
            .iter()
            .map(|&(n, m)| (offsets[n as usize] as u64) << 32 | offsets[m as usize] as u64)
            .collect(),
        nsec3_wild: d.nsec3_wild.iter().map(|&m| if m == NONE { NONE } else { offsets[m as usize] }).collect(),
        nsec3_salt: std::mem::take(&mut d.nsec3_salt),
        nsec3_iterations: d.nsec3_iterations,
        node_count: offsets.len() as u32,
        buckets,
        extras: d.extras,
        blocks,
    })
}

/// The name index: twice as many slots as names, rounded up to a power of two.
fn build_index(d: &Draft, offsets: &[u32]) -> Vec<u64> {
    let size = (d.nodes.len() * 2).next_power_of_two().max(2);
    let mask = size - 1;
    let mut buckets = vec![0u64; size];
    for (n, &off) in d.nodes.iter().zip(offsets) {
        let h = name_hash(&d.names[n.name_off as usize..][..n.name_len as usize]);
        let mut b = h as usize & mask;
        while buckets[b] != 0 {
            b = (b + 1) & mask;
        }
        buckets[b] = bucket_entry(off, h);
    }
    buckets
}
