//! The zone snapshot: the archived, answer-ready form of one zone version, its compiler from
//! [`crate::zone::Zone`], the on-disk file (header + rkyv archive) and the mmap loader.
//!
//! Layout: one byte array of **node blocks**, so that answering a name touches its hash slot
//! and then one contiguous block (usually two or three cache lines) — nothing else.
//! - `blocks`: per name of the zone tree (empty non-terminals included; parents before
//!   children) one block, identified by its offset (the node id):
//!   `flags(1) name_len(1) rrset_count(2) parent(4)`, the lowercased wire name, one
//!   [`RRSET_DESC`]-byte descriptor per RRset (in type order: `rtype(2) count(2) len(2)
//!   extra(4)`), then the RRsets' pre-rendered wire fragments in the same order (so each
//!   fragment's offset is the end of the descriptors plus the lengths before it). Integers
//!   are little-endian; nothing is aligned (it is read byte-wise). Blocks follow each other
//!   with no gap, so the zone is walked block by block ([`ArchivedZoneImage::node_ids`]);
//! - `buckets`: an open-addressing hash index (linear probing, load ≤ 1/2) from lowercased
//!   wire name to node: each slot holds the block offset + 1 (0 = empty) in its low 32 bits
//!   and the high 32 bits of the name's [`name_hash`] as a tag, so a probe that hits another
//!   name is usually rejected without touching its block;
//! - `extras`: per RRset that needs it, the apex pointers to patch and the
//!   additional-section records it calls for.
//!
//! A fragment RR is `owner(2) type(2) class(2) ttl(4) rdlen(2) rdata`, where the owner is a
//! compression pointer filled in at answer time (usually the question name at offset 12)
//! and names in rdata of RFC 1035 types end in a pointer to the zone apex as written in the
//! question. The module must not know about sockets or queries.
//!
//! `extras` entry (u16 words): `F, at × F, O, at × O, A, (name_at, node_hi, node_lo) × A` —
//! offsets (from the fragment start) of F pointers to the apex and O pointers to the RRset's
//! owner (rdata names below the owner, e.g. in-bailiwick NS targets, compress against it),
//! then A additional-section candidates: the A/AAAA RRsets of `node`, owned by the name
//! written at `name_at` in the fragment.

mod compile;
mod file;
mod layout;
mod render;

pub(crate) use compile::nsec3_key;
pub use compile::{compile, CompileError};
pub use file::{
    format_version, remove_stale_tmp_files, write_snapshot, write_snapshot_with, Durability, Image, Snapshot,
    SnapshotError, SourceStamp, READ_MAX,
};
pub use render::{records, render_rrset, to_zone, RecordSlices, RenderError, SnapshotRecords};

use rkyv::{Archive, Deserialize, Serialize};

use crate::wire::name::{bytes_eq, load8};

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"NSXDPSNP";
/// Bump on any change to the archived types or the header.
pub const FORMAT_VERSION: u32 = 7;
/// "No node" / "no RRset".
pub const NONE: u32 = u32::MAX;

/// One compiled zone.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub struct ZoneImage {
    /// Lowercased wire name of the apex.
    pub origin: Vec<u8>,
    pub serial: u32,
    /// The apex node.
    pub apex: u32,
    /// The RRset used as the negative-answer SOA (RFC 2308 TTL); its fragment is in `blocks`
    /// after the last node.
    pub neg_soa: RrsetRec,
    /// The negative SOA's RRSIGs (same TTL), after it in `blocks`; `data_len` 0 if the zone
    /// is not signed.
    pub neg_soa_sig: RrsetRec,
    /// The nodes that own NSEC, in canonical order (RFC 4034 §6.1): the covering NSEC of a
    /// name is found by binary search.
    pub nsec_chain: Vec<u32>,
    /// For each of `nsec_chain`, the first eight octets of its owner's canonical key
    /// (`wire::name::canonical_prefix`): the binary search compares these, contiguous,
    /// and reads an owner name only where they tie.
    pub nsec_keys: Vec<u64>,
    /// The nodes that own an NSEC3 of the chain NSEC3PARAM names, in hash order (their
    /// first labels, base32hex, sort as the hashes do); empty without NSEC3PARAM.
    pub nsec3_chain: Vec<u32>,
    /// For each of `nsec3_chain`, the first eight octets of its owner label, big-endian:
    /// searched instead of the owners, which are read only where these tie.
    pub nsec3_keys: Vec<u64>,
    /// For each name that has one, the node owning its NSEC3: `node << 32 | nsec3 node`,
    /// sorted (found by binary search, so that proofs about names of the zone hash nothing
    /// at query time).
    pub nsec3_of: Vec<u64>,
    /// For each of `nsec3_of`, the node owning the NSEC3 that covers the wildcard at that
    /// name (`*.name`, RFC 5155 §7.2.2): with the name as closest encloser, an NXDOMAIN
    /// hashes only its next closer name.
    pub nsec3_wild: Vec<u32>,
    /// The chain's salt and extra iterations (RFC 5155 §5).
    pub nsec3_salt: Vec<u8>,
    pub nsec3_iterations: u16,
    /// Number of nodes (blocks).
    pub node_count: u32,
    pub buckets: Vec<u64>,
    pub extras: Vec<u16>,
    pub blocks: Vec<u8>,
}

/// A node while compiling (indexes into the draft's arrays).
#[derive(Debug, Clone, Copy)]
pub struct NodeRec {
    pub name_off: u32,
    pub name_len: u8,
    /// `crate::zone::flags`.
    pub flags: u8,
    pub rrset_count: u16,
    pub rrset_start: u32,
    pub parent: u32,
}

/// An RRset: where its fragment is, its type, RR count and `extras` entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsetRec {
    pub data_off: u32,
    pub data_len: u16,
    pub rtype: u16,
    /// Index into `extras`, or `NONE`.
    pub extra: u32,
    /// Number of RRs in the fragment (the loader checks it).
    pub count: u16,
}

/// Bytes of a node block before its name.
pub const BLOCK_HEADER: usize = 8;
/// Bytes of an RRset descriptor in a node block.
pub const RRSET_DESC: usize = 10;

impl RrsetRec {
    /// Reads a descriptor (`d` holds at least [`RRSET_DESC`] bytes) whose fragment starts at
    /// `data_off`.
    #[inline]
    pub fn decode(d: &[u8], data_off: u32) -> RrsetRec {
        let u16_at = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
        let extra = u32::from_le_bytes([d[6], d[7], d[8], d[9]]);
        RrsetRec { rtype: u16_at(0), count: u16_at(2), data_len: u16_at(4), data_off, extra }
    }

    pub fn encode(&self) -> [u8; RRSET_DESC] {
        let mut d = [0u8; RRSET_DESC];
        d[0..2].copy_from_slice(&self.rtype.to_le_bytes());
        d[2..4].copy_from_slice(&self.count.to_le_bytes());
        d[4..6].copy_from_slice(&self.data_len.to_le_bytes());
        d[6..10].copy_from_slice(&self.extra.to_le_bytes());
        d
    }
}

/// An additional-section candidate of an RRset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Additional {
    /// Offset in the fragment of the name that owns the additional records.
    pub name_at: u16,
    pub node: u32,
}

/// Splits an `extras` entry into its apex-pointer, owner-pointer and additional lists; None
/// if it runs past the end.
#[allow(clippy::type_complexity)]
pub fn split_extras(
    e: &[rkyv::rend::u16_le],
) -> Option<(&[rkyv::rend::u16_le], &[rkyv::rend::u16_le], &[rkyv::rend::u16_le])> {
    let f = e.first()?.to_native() as usize;
    let apex = e.get(1..1 + f)?;
    let e = &e[1 + f..];
    let o = e.first()?.to_native() as usize;
    let owner = e.get(1..1 + o)?;
    let e = &e[1 + o..];
    let a = e.first()?.to_native() as usize;
    let adds = e.get(1..1 + 3 * a)?;
    Some((apex, owner, adds))
}

/// Offsets of the RRs in a fragment (which must be well formed: the loader checks).
pub fn rr_starts(frag: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos + 12 > frag.len() {
            return None;
        }
        let at = pos;
        pos += 12 + u16::from_be_bytes([frag[pos + 10], frag[pos + 11]]) as usize;
        Some(at)
    })
}

/// The hash used by the name index over a lowercased wire name: eight bytes at a time, each
/// word folded in with a 64×64→128-bit multiply (the high and low halves xored), so a
/// typical name costs three or four multiplies. The low bits pick the slot, the high 32 bits
/// are the slot's tag. Names come from the zone's operator, never from queries, so there is
/// no flooding to defend against.
#[inline]
pub fn name_hash(lower_wire: &[u8]) -> u64 {
    let n = lower_wire.len();
    let mut h = HASH_K1 ^ n as u64;
    let mut words = lower_wire.chunks_exact(8);
    for w in &mut words {
        h = hash_fold(h ^ load8(w, 0), HASH_K0);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let w = if n >= 8 {
            // The last eight bytes, shifted so that only the remainder is left.
            load8(lower_wire, n - 8) >> (8 * (8 - rest.len()))
        } else {
            rest.iter().rev().fold(0u64, |a, &b| a << 8 | b as u64)
        };
        h = hash_fold(h ^ w, HASH_K0);
    }
    hash_fold(h, HASH_K1)
}

/// Copies a wire name (1 to 255 octets) into `dst` in lower case and returns the
/// [`name_hash`] of the copy: one pass over the name, eight octets at a time, which is what
/// reading a query needs (the lowercased name to look up, and its hash).
#[inline]
pub fn lower_and_hash(src: &[u8], dst: &mut [u8; 256]) -> u64 {
    let n = src.len();
    debug_assert!((1..=255).contains(&n));
    let mut h = HASH_K1 ^ n as u64;
    let mut words = src.chunks_exact(8);
    for (s, d) in (&mut words).zip(dst.chunks_exact_mut(8)) {
        let w = lower8(load8(s, 0));
        d.copy_from_slice(&w.to_le_bytes());
        h = hash_fold(h ^ w, HASH_K0);
    }
    let rest = words.remainder().len();
    if rest > 0 {
        let w = if n >= 8 {
            // The last eight octets again (lowercasing twice changes nothing), so that no
            // octet past the name is read or written.
            let w = lower8(load8(src, n - 8));
            dst[n - 8..n].copy_from_slice(&w.to_le_bytes());
            w >> (8 * (8 - rest))
        } else {
            let w = lower8(src.iter().rev().fold(0u64, |a, &b| a << 8 | b as u64));
            dst[..n].copy_from_slice(&w.to_le_bytes()[..n]);
            w
        };
        h = hash_fold(h ^ w, HASH_K0);
    }
    hash_fold(h, HASH_K1)
}

const HASH_K0: u64 = 0x9E37_79B9_7F4A_7C15;
const HASH_K1: u64 = 0xD6E8_FEB8_6659_FD93;

#[inline(always)]
fn hash_fold(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

/// ASCII-lowercases the eight octets of a word at once: 0x20 is added to every octet from
/// `A` to `Z`, and nothing else changes (octets of 0x80 and up included).
#[inline(always)]
fn lower8(w: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    // Per octet, no carries (low ≤ 0x7F): the high bit says low ≥ 'A', resp. low > 'Z'.
    let from_a = low + 0x3F3F_3F3F_3F3F_3F3F;
    let past_z = low + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !w & HIGH;
    w | (upper >> 2)
}

/// An index slot for node `node` whose name hashes to `h`.
pub fn bucket_entry(node: u32, h: u64) -> u64 {
    (h & 0xFFFF_FFFF_0000_0000) | (node as u64 + 1)
}

impl ArchivedZoneImage {
    /// Finds the node of a lowercased wire name.
    pub fn find(&self, lower_wire: &[u8]) -> Option<u32> {
        self.find_hashed(lower_wire, name_hash(lower_wire))
    }

    /// [`Self::find`] with the name's hash already computed.
    #[inline]
    pub fn find_hashed(&self, lower_wire: &[u8], h: u64) -> Option<u32> {
        let mut i = h as usize;
        loop {
            let (at, node) = self.next_tagged(i, h)?;
            if bytes_eq(self.node_name(node), lower_wire) {
                return Some(node);
            }
            i = at + 1;
        }
    }

    /// [`Self::find_hashed`] given [`Self::candidate`]'s answer for the same hash: the same
    /// result, without probing again when the candidate is the name.
    #[inline]
    pub fn find_with_candidate(&self, lower_wire: &[u8], h: u64, candidate: u32) -> Option<u32> {
        if candidate != NONE && bytes_eq(self.node_name(candidate), lower_wire) {
            return Some(candidate);
        }
        self.find_hashed(lower_wire, h)
    }

    /// The index slot where the search for a name with hash `h` starts.
    #[inline]
    pub fn first_slot(&self, h: u64) -> u64 {
        self.buckets[h as usize & (self.buckets.len() - 1)].to_native()
    }

    /// The first node on the probe sequence of hash `h` whose slot carries the hash's tag
    /// (usually the node of the name, if the zone has it), or `NONE`: what a lookup will
    /// compare first, found without touching any node block.
    #[inline]
    pub fn candidate(&self, h: u64) -> u32 {
        self.next_tagged(h as usize, h).map_or(NONE, |(_, node)| node)
    }

    /// From slot `i` (taken modulo the index size) on, the first slot carrying the tag of
    /// hash `h`: its position and node; None when an empty slot comes first.
    #[inline]
    fn next_tagged(&self, i: usize, h: u64) -> Option<(usize, u32)> {
        let mask = self.buckets.len() - 1;
        let mut i = i & mask;
        loop {
            let slot = self.buckets[i].to_native();
            if slot as u32 == 0 {
                return None;
            }
            if slot >> 32 == h >> 32 {
                return Some((i, slot as u32 - 1));
            }
            i = (i + 1) & mask;
        }
    }

    /// The `crate::zone::flags` of a node.
    #[inline]
    pub fn node_flags(&self, n: u32) -> u8 {
        self.blocks[n as usize]
    }

    /// The parent node, or `NONE` at the apex.
    #[inline]
    pub fn node_parent(&self, n: u32) -> u32 {
        let b = &self.blocks[n as usize + 4..n as usize + 8];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The lowercased wire name of a node.
    #[inline]
    pub fn node_name(&self, n: u32) -> &[u8] {
        let n = n as usize;
        let len = self.blocks[n + 1] as usize;
        &self.blocks[n + BLOCK_HEADER..n + BLOCK_HEADER + len]
    }

    /// The descriptors of a node's RRsets, and where its first fragment starts.
    #[inline]
    fn descriptors(&self, n: u32) -> (&[u8], u32) {
        let n = n as usize;
        let b = &self.blocks[n..n + 4];
        let start = n + BLOCK_HEADER + b[1] as usize;
        let end = start + u16::from_le_bytes([b[2], b[3]]) as usize * RRSET_DESC;
        (&self.blocks[start..end], end as u32)
    }

    /// The RRsets of a node, in type order.
    pub fn node_rrsets(&self, n: u32) -> impl ExactSizeIterator<Item = RrsetRec> + '_ {
        let (descs, mut off) = self.descriptors(n);
        descs.chunks_exact(RRSET_DESC).map(move |d| {
            let r = RrsetRec::decode(d, off);
            off += r.data_len as u32;
            r
        })
    }

    /// The RRset of one type at a node.
    #[inline]
    pub fn rrset(&self, node: u32, t: u16) -> Option<RrsetRec> {
        let (descs, mut off) = self.descriptors(node);
        for d in descs.chunks_exact(RRSET_DESC) {
            let len = u16::from_le_bytes([d[4], d[5]]) as u32;
            if u16::from_le_bytes([d[0], d[1]]) == t {
                return Some(RrsetRec::decode(d, off));
            }
            off += len;
        }
        None
    }

    /// Where the block after node `n` starts (the end of its last fragment).
    pub fn node_end(&self, n: u32) -> u32 {
        let (descs, off) = self.descriptors(n);
        off + descs.chunks_exact(RRSET_DESC).map(|d| u16::from_le_bytes([d[4], d[5]]) as u32).sum::<u32>()
    }

    /// Every node, block by block (parents before children).
    pub fn node_ids(&self) -> impl Iterator<Item = u32> + '_ {
        let end = self.neg_soa.data_off.to_native();
        let mut at = 0u32;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let n = at;
            at = self.node_end(n);
            Some(n)
        })
    }

    /// The A and AAAA RRsets of a node (one pass over its descriptors).
    #[inline]
    pub fn addresses(&self, node: u32) -> [Option<RrsetRec>; 2] {
        let mut out = [None, None];
        let (descs, mut off) = self.descriptors(node);
        for d in descs.chunks_exact(RRSET_DESC) {
            match u16::from_le_bytes([d[0], d[1]]) {
                crate::wire::rdata::rtype::A => out[0] = Some(RrsetRec::decode(d, off)),
                crate::wire::rdata::rtype::AAAA => out[1] = Some(RrsetRec::decode(d, off)),
                _ => {}
            }
            off += u16::from_le_bytes([d[4], d[5]]) as u32;
        }
        out
    }

    /// The negative-answer SOA.
    pub fn neg_soa(&self) -> RrsetRec {
        let r = &self.neg_soa;
        RrsetRec {
            data_off: r.data_off.to_native(),
            data_len: r.data_len.to_native(),
            rtype: r.rtype.to_native(),
            extra: r.extra.to_native(),
            count: r.count.to_native(),
        }
    }

    /// The negative SOA's RRSIGs (`data_len` 0 when the zone is not signed).
    pub fn neg_soa_sig(&self) -> RrsetRec {
        let r = &self.neg_soa_sig;
        RrsetRec {
            data_off: r.data_off.to_native(),
            data_len: r.data_len.to_native(),
            rtype: r.rtype.to_native(),
            extra: r.extra.to_native(),
            count: r.count.to_native(),
        }
    }

    /// True if the zone is signed (its SOA has signatures).
    #[inline]
    pub fn is_signed(&self) -> bool {
        self.neg_soa_sig.data_len.to_native() != 0
    }

    /// The RRSIGs at a node over its RRset of type `covered` (one fragment per covered type,
    /// in the node's block beside the RRset: a DO=1 answer copies both).
    #[inline]
    pub fn signatures(&self, node: u32, covered: u16) -> Option<RrsetRec> {
        let (descs, mut off) = self.descriptors(node);
        for d in descs.chunks_exact(RRSET_DESC) {
            let len = u16::from_le_bytes([d[4], d[5]]) as u32;
            if u16::from_le_bytes([d[0], d[1]]) == crate::wire::rdata::rtype::RRSIG {
                // The covered type: the first rdata field of the first RR.
                let at = off as usize + 12;
                if self.blocks[at..at + 2] == covered.to_be_bytes() {
                    return Some(RrsetRec::decode(d, off));
                }
            }
            off += len;
        }
        None
    }

    /// The node owning the NSEC3 that matches node `n`'s name (RFC 5155 §7.2: NODATA, empty
    /// non-terminals, closest enclosers), without hashing: precomputed.
    #[inline]
    pub fn nsec3_of(&self, n: u32) -> Option<u32> {
        self.nsec3_proofs(n).map(|(m, _)| m)
    }

    /// The NSEC3 matching node `n`'s name and the NSEC3 covering the wildcard below it,
    /// both precomputed (the closest-encloser proof of an NXDOMAIN at `n`).
    #[inline]
    pub fn nsec3_proofs(&self, n: u32) -> Option<(u32, u32)> {
        let t = &self.nsec3_of;
        let i = t.partition_point(|e| (e.to_native() >> 32) < n as u64);
        let e = t.get(i)?.to_native();
        ((e >> 32) as u32 == n).then(|| (e as u32, self.nsec3_wild.get(i).map_or(NONE, |w| w.to_native())))
    }

    /// Every RRset of type `t` at a node (several only for RRSIG: one per covered type).
    pub fn rrsets_of_type(&self, node: u32, t: u16) -> impl Iterator<Item = RrsetRec> + '_ {
        self.node_rrsets(node).filter(move |r| r.rtype == t)
    }

    #[inline]
    pub fn fragment(&self, r: &RrsetRec) -> &[u8] {
        let off = r.data_off as usize;
        &self.blocks[off..off + r.data_len as usize]
    }

    /// Offsets in the fragment of the pointers to the apex.
    pub fn apex_pointers(&self, r: &RrsetRec) -> impl Iterator<Item = usize> + '_ {
        self.extra_parts(r).0.iter().map(|v| v.to_native() as usize)
    }

    /// Offsets in the fragment of the pointers to the RRset's owner.
    pub fn owner_pointers(&self, r: &RrsetRec) -> impl Iterator<Item = usize> + '_ {
        self.extra_parts(r).1.iter().map(|v| v.to_native() as usize)
    }

    /// The additional-section candidates of an RRset.
    pub fn additionals(&self, r: &RrsetRec) -> impl Iterator<Item = Additional> + '_ {
        self.extra_parts(r).2.chunks_exact(3).map(|c| Additional {
            name_at: c[0].to_native(),
            node: (c[1].to_native() as u32) << 16 | c[2].to_native() as u32,
        })
    }

    /// The three lists of an RRset's `extras` entry (empty when it has none).
    #[inline]
    pub(crate) fn extra_parts(
        &self,
        r: &RrsetRec,
    ) -> (&[rkyv::rend::u16_le], &[rkyv::rend::u16_le], &[rkyv::rend::u16_le]) {
        if r.extra == NONE {
            return (&[], &[], &[]);
        }
        split_extras(&self.extras[r.extra as usize..]).unwrap_or((&[], &[], &[]))
    }

    /// TTL of an RRset (every RR in a fragment has the same).
    pub fn ttl(&self, r: &RrsetRec) -> u32 {
        let f = self.fragment(r);
        u32::from_be_bytes([f[6], f[7], f[8], f[9]])
    }

    /// Number of RRs in an RRset.
    pub fn rr_count(&self, r: &RrsetRec) -> usize {
        r.count as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name::Name;
    use crate::zone::parse::load_text;
    use std::path::Path;

    const ZONE: &str =
        "$ORIGIN example.com.\n$TTL 3600\n@ SOA ns1 hostmaster 7 7200 900 1209600 300\n@ NS ns1\n@ NS ns.sub\n\
        @ MX 10 mail\nns1 A 192.0.2.1\nmail A 192.0.2.2\nmail AAAA 2001:db8::2\nsub NS ns.sub\nns.sub A 192.0.2.3\n\
        *.w TXT \"wild\"\na.b.c A 192.0.2.4\nd DNAME example.net.\nc2 CNAME mail\n";

    fn image() -> (crate::zone::Zone, ZoneImage) {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        let l = load_text(Path::new("t.zone"), ZONE.as_bytes(), &origin);
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        let img = compile(&l.zone).unwrap();
        (l.zone, img)
    }

    fn written() -> (crate::zone::Zone, tempfile::TempDir, std::path::PathBuf) {
        let (zone, img) = image();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.snap");
        write_snapshot(&path, &img).unwrap();
        (zone, dir, path)
    }

    /// A few thousand names of every length, with upper case, length octets and octets of
    /// 0x80 and up: the fused lowercase-and-hash agrees with lowercasing then hashing, and
    /// the word-wise comparison with `==`.
    #[test]
    fn lower_and_hash_matches_name_hash() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"aZ09-_*AzMm\x00\x3f\x40\x41\x5a\x5b\x60\x61\x7a\x7b\x7f\x80\xc1\xda\xff";
        for round in 0..4000 {
            let n = 1 + round % 255;
            let src: Vec<u8> = (0..n).map(|_| alphabet[next() as usize % alphabet.len()]).collect();
            let mut dst = [0xEEu8; 256];
            let h = lower_and_hash(&src, &mut dst);
            let want = src.to_ascii_lowercase();
            assert_eq!(&dst[..n], &want[..], "len {n}");
            assert!(dst[n..].iter().all(|&b| b == 0xEE), "wrote past the name, len {n}");
            assert_eq!(h, name_hash(&want), "len {n}");
            let mut other = want.clone();
            assert!(bytes_eq(&want, &other));
            let at = next() as usize % n;
            other[at] ^= 1 << (next() % 8);
            assert!(!bytes_eq(&want, &other), "len {n}, flipped at {at}");
            assert!(!bytes_eq(&want, &want[..n - 1]));
        }
    }

    #[test]
    fn round_trip_through_file() {
        let (zone, _dir, path) = written();
        let snap = Snapshot::open(&path).unwrap();
        assert_eq!(snap.serial(), 7);
        let back = to_zone(snap.zone()).unwrap();
        assert!(zone.diff(&back).is_empty(), "{:?}", zone.diff(&back));
        assert_eq!(back.records_canonical(), zone.records_canonical());
    }

    #[test]
    fn lookup_flags_and_prepared_additionals() {
        let (_zone, _dir, path) = written();
        let snap = Snapshot::open(&path).unwrap();
        let z = snap.zone();
        let find = |s: &str| z.find(Name::parse_text(s.as_bytes(), None).unwrap().as_wire());
        let apex = find("example.com.").unwrap();
        assert_eq!(apex, z.apex.to_native());
        assert!(find("nope.example.com.").is_none());
        let ent = find("b.c.example.com.").unwrap();
        assert_ne!(z.node_flags(ent) & crate::zone::flags::EMPTY_NON_TERMINAL, 0);
        let glue = find("ns.sub.example.com.").unwrap();
        assert_ne!(z.node_flags(glue) & crate::zone::flags::BELOW_CUT, 0);
        assert_ne!(z.node_flags(find("w.example.com.").unwrap()) & crate::zone::flags::WILDCARD_CHILD, 0);
        // The apex MX names mail, which has A and AAAA: one additional entry for it.
        let mx = z.rrset(apex, crate::wire::rdata::rtype::MX).unwrap();
        let adds: Vec<Additional> = z.additionals(&mx).collect();
        assert_eq!(adds.len(), 1);
        assert_eq!(adds[0].node, find("mail.example.com.").unwrap());
        assert_eq!(adds[0].name_at, 14);
        // Rendered for the question "MAIL.example.com" the MX target points at the apex
        // inside the question: 10, "mail", pointer to offset 17.
        let mut msg = [0u8; 512];
        let q = b"\x04www1\x07Example\x03com\x00";
        msg[12..12 + q.len()].copy_from_slice(q);
        let at = 12 + q.len();
        let n = render_rrset(z, &mx, &mut msg, at, 12, 17).unwrap();
        assert_eq!(&msg[at..at + n], b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x09\x00\x0a\x04mail\xc0\x11");
        // The negative SOA carries min(TTL, MINIMUM) = 300.
        assert_eq!(z.ttl(&z.neg_soa()), 300);
        assert_eq!(z.rr_count(&z.rrset(apex, crate::wire::rdata::rtype::NS).unwrap()), 2);
        assert_eq!(render_rrset(z, &mx, &mut msg, 500, 12, 17), Err(RenderError::NoRoom));
    }

    #[test]
    fn truncated_and_corrupted_files_are_refused() {
        let (_zone, dir, path) = written();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.snap");
        for len in [0, 7, 63, 64, good.len() / 2, good.len() - 1] {
            std::fs::write(&bad, &good[..len]).unwrap();
            let e = Snapshot::open(&bad).unwrap_err().to_string();
            assert!(e.contains("snapshot refused"), "len {len}: {e}");
        }
        for pos in (0..good.len()).step_by(7) {
            for bit in [0, 5] {
                let mut b = good.clone();
                b[pos] ^= 1 << bit;
                std::fs::write(&bad, &b).unwrap();
                let e = Snapshot::open(&bad).unwrap_err().to_string();
                assert!(e.contains("snapshot refused"), "flip at {pos}: {e}");
            }
        }
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let (_zone, _dir, path) = written();
        let before = std::fs::read(&path).unwrap();
        let (_, img) = image();
        // A directory where the file should go cannot be replaced by rename.
        let blocked = path.with_extension("dir");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_snapshot(&blocked, &img).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }
}
