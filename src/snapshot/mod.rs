//! The zone snapshot: the archived, answer-ready form of one zone version, its compiler from
//! [`crate::zone::Zone`], the on-disk file (header + rkyv archive) and the mmap loader.
//!
//! Layout (all flat arrays, so that validation is cheap and lookups touch few cache lines):
//! - `nodes`: every name of the zone tree (empty non-terminals included) in canonical order,
//!   each with its lowercased wire name (a range of `names`), flags, parent and its RRsets
//!   (a range of `rrsets`, in type order);
//! - `buckets`: an open-addressing hash index from lowercased wire name to node;
//! - `rrsets`: per RRset a pre-rendered wire fragment (a range of `data`) holding every RR
//!   of the set ready to copy into a response, plus the places in it to patch
//!   (`fixups`) and the additional-section records it calls for (`additionals`).
//!
//! A fragment RR is `owner(2) type(2) class(2) ttl(4) rdlen(2) rdata`, where the owner is a
//! compression pointer filled in at answer time (usually the question name at offset 12)
//! and names in rdata of RFC 1035 types end in a pointer to the zone apex as written in the
//! question. The module must not know about sockets or queries.

mod compile;
mod file;
mod render;

pub use compile::{compile, CompileError};
pub use file::{write_snapshot, Snapshot, SnapshotError};
pub use render::{records, render_rrset, to_zone, RenderError};

use rkyv::{Archive, Deserialize, Serialize};

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"NSXDPSNP";
/// Bump on any change to the archived types or the header.
pub const FORMAT_VERSION: u32 = 1;
/// "No node" / "no RRset".
pub const NONE: u32 = u32::MAX;

/// What a fixup fills a pointer with.
pub mod fixup {
    /// The owner name of this RRset (the question name, a CNAME target, ...).
    pub const OWNER: u8 = 0;
    /// The zone apex, as the tail of the question name.
    pub const APEX: u8 = 1;
}

/// One compiled zone.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub struct ZoneImage {
    /// Lowercased wire name of the apex.
    pub origin: Vec<u8>,
    pub serial: u32,
    /// Index of the apex in `nodes`.
    pub apex: u32,
    /// The RRset used as the negative-answer SOA (RFC 2308 TTL).
    pub neg_soa: u32,
    pub nodes: Vec<NodeRec>,
    pub buckets: Vec<u32>,
    pub rrsets: Vec<RrsetRec>,
    pub fixups: Vec<Fixup>,
    pub additionals: Vec<AdditionalRec>,
    pub names: Vec<u8>,
    pub data: Vec<u8>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub struct NodeRec {
    pub name_off: u32,
    pub name_len: u8,
    /// `crate::zone::flags`.
    pub flags: u8,
    pub rrset_count: u16,
    pub rrset_start: u32,
    pub parent: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub struct RrsetRec {
    pub rtype: u16,
    /// Number of RRs in the fragment.
    pub count: u16,
    pub ttl: u32,
    pub data_off: u32,
    pub data_len: u32,
    pub fixup_start: u32,
    pub fixup_count: u32,
    pub additional_start: u32,
    pub additional_count: u32,
}

/// A 2-octet compression pointer at `at` (from the fragment start) to fill in.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Fixup {
    pub at: u16,
    pub kind: u8,
}

/// An additional-section candidate: the A/AAAA RRsets of `node`, whose owner is the name
/// written at `name_at` in the fragment.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub struct AdditionalRec {
    pub name_at: u16,
    pub node: u32,
}

/// The hash used by the name index: FNV-1a over the lowercased wire name.
pub fn name_hash(lower_wire: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in lower_wire {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl ArchivedZoneImage {
    /// Finds the node of a lowercased wire name.
    pub fn find(&self, lower_wire: &[u8]) -> Option<u32> {
        let mask = self.buckets.len() as u32 - 1;
        let mut i = name_hash(lower_wire) & mask;
        loop {
            let slot = self.buckets[i as usize].to_native();
            if slot == 0 {
                return None;
            }
            let node = slot - 1;
            if self.node_name(node) == lower_wire {
                return Some(node);
            }
            i = (i + 1) & mask;
        }
    }

    pub fn node(&self, i: u32) -> &ArchivedNodeRec {
        &self.nodes[i as usize]
    }

    pub fn node_name(&self, i: u32) -> &[u8] {
        let n = self.node(i);
        let off = n.name_off.to_native() as usize;
        &self.names[off..off + n.name_len as usize]
    }

    /// The RRsets of a node, in type order.
    pub fn node_rrsets(&self, i: u32) -> &[ArchivedRrsetRec] {
        let n = self.node(i);
        let s = n.rrset_start.to_native() as usize;
        &self.rrsets[s..s + n.rrset_count.to_native() as usize]
    }

    /// The RRset of one type at a node.
    pub fn rrset(&self, node: u32, t: u16) -> Option<&ArchivedRrsetRec> {
        self.node_rrsets(node).iter().find(|r| r.rtype.to_native() == t)
    }

    pub fn fragment(&self, r: &ArchivedRrsetRec) -> &[u8] {
        let off = r.data_off.to_native() as usize;
        &self.data[off..off + r.data_len.to_native() as usize]
    }

    pub fn rrset_fixups(&self, r: &ArchivedRrsetRec) -> &[ArchivedFixup] {
        let s = r.fixup_start.to_native() as usize;
        &self.fixups[s..s + r.fixup_count.to_native() as usize]
    }

    pub fn rrset_additionals(&self, r: &ArchivedRrsetRec) -> &[ArchivedAdditionalRec] {
        let s = r.additional_start.to_native() as usize;
        &self.additionals[s..s + r.additional_count.to_native() as usize]
    }
}
