//! The owned, mutable zone model used by the control side: RRsets by (name, type), the
//! zone's tree (zone cuts, empty non-terminals, wildcards), iteration in canonical order and
//! the difference of two versions.
//!
//! Owner names are kept lowercased (they are compared case-insensitively everywhere and the
//! answer path writes owners as pointers to the question). Rdata is kept as written, in
//! uncompressed wire form. Nothing here does I/O; `parse` reads master files and `check`
//! judges whether a zone can be served.

pub mod check;
pub mod parse;
mod rdata_text;
mod strict;
pub mod text;

pub use strict::ApplyError;

use std::fmt;
use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHasher};

use crate::wire::name::{self, Name};
use crate::wire::rdata::{self, rtype};

/// Where a record came from: an index into the list of files read, and a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SrcPos {
    pub file: u16,
    pub line: u32,
}

/// All records of one type at one name (a view into the node's [`RrsetMap`]). Rdata is
/// unique in canonical form.
///
/// RRSIG records are not one RRset per name: the signatures covering each type are an
/// RRset of their own, with their own TTL (the covered RRset's, RFC 4034 §3, RFC 4035
/// §2.2), never merged with or deduplicated against those covering another type. `covered`
/// says which type they cover; see [`Node::signatures`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rrset<'a> {
    pub ttl: u32,
    /// For RRSIG sets, the type the signatures cover; 0 for every other type.
    pub covered: u16,
    pub rdata: RdataList<'a>,
    /// Where the first record of the set was read (zero for records from elsewhere).
    pub src: SrcPos,
}

/// The rdata of an RRset's records back to back, each after its length (two octets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RdataList<'a> {
    bytes: &'a [u8],
    count: u32,
}

impl<'a> RdataList<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Octets of rdata over all records.
    pub fn octets(&self) -> usize {
        self.bytes.len() - 2 * self.count as usize
    }

    /// The rdata of each record, in insertion order.
    pub fn iter(&self) -> RdataIter<'a> {
        RdataIter { bytes: self.bytes, pos: 0 }
    }

    pub fn first(&self) -> Option<&'a [u8]> {
        self.iter().next()
    }
}

pub struct RdataIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RdataIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_le_bytes([*self.bytes.get(self.pos)?, *self.bytes.get(self.pos + 1)?]) as usize;
        let r = &self.bytes[self.pos + 2..self.pos + 2 + len];
        self.pos += 2 + len;
        Some(r)
    }
}

impl<'a> IntoIterator for RdataList<'a> {
    type Item = &'a [u8];
    type IntoIter = RdataIter<'a>;

    fn into_iter(self) -> RdataIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &RdataList<'a> {
    type Item = &'a [u8];
    type IntoIter = RdataIter<'a>;

    fn into_iter(self) -> RdataIter<'a> {
        self.iter()
    }
}

/// A name that owns records.
#[derive(Clone, Debug)]
pub struct Node {
    /// Lowercased owner.
    pub name: Name,
    /// RRsets by type, in type order.
    pub rrsets: RrsetMap,
}

/// The RRsets of a node and all their records in one buffer (one allocation per name, sized
/// to fit): per RRset, in key order, a header of [`HEADER`] octets (type u16, TTL u32,
/// source file u16, source line u32, record count u32, octets of records u32, covered type
/// u16, little endian) and the records, each its rdata length (u16) and rdata.
///
/// An RRset's key is its type and, for RRSIG, the type its records cover ([`rrset_key`]):
/// the signatures over each type are an RRset of their own (each with its own TTL), and
/// they lie together, in covered-type order, where type RRSIG sorts. Iteration
/// ([`RrsetMap::iter`]) gives each of them; [`RrsetMap::get`] is for the other types and
/// [`RrsetMap::signatures`] for RRSIGs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RrsetMap {
    buf: Vec<u8>,
    /// Records over all RRsets.
    records: u32,
    /// RRsets.
    count: u16,
    /// Which of the types the zone's rules look at are here ([`type_bit`]): most questions
    /// about a name are answered without reading its buffer.
    types: u8,
}

/// The bit of a type in [`RrsetMap::types`], or 0 for types without one.
fn type_bit(t: u16) -> u8 {
    match t {
        rtype::A => 1,
        rtype::NS => 2,
        rtype::CNAME => 4,
        rtype::SOA => 8,
        rtype::DNAME => 16,
        rtype::AAAA => 32,
        rtype::RRSIG => 64,
        rtype::DS => 128,
        _ => 0,
    }
}

/// The key an RRset is kept under in an [`RrsetMap`]: the type in the high half and, for
/// RRSIG, the covered type (the first two octets of its rdata, RFC 4034 §3.1) in the low
/// half; zero there for every other type. RRsets sort by key.
pub fn rrset_key(t: u16, rdata: &[u8]) -> u32 {
    let covered = match (t, rdata) {
        (rtype::RRSIG, [a, b, ..]) => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    (t as u32) << 16 | covered as u32
}

/// The type an RRSIG record covers (its first rdata field), or None if the rdata is too
/// short to say.
pub fn rrsig_covered(rdata: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*rdata.first()?, *rdata.get(1)?]))
}

/// Octets of an RRset header in an [`RrsetMap`].
const HEADER: usize = 22;
/// [`HEADER`], for those who size an [`RrsetMap`] in advance.
pub(crate) const RRSET_HEADER: usize = HEADER;

/// What adding a record to an [`RrsetMap`] did or why it did not.
enum AddOutcome {
    New,
    Duplicate,
    /// Added with the RRset's TTL, which differs from the record's.
    TtlNormalised(u32),
    /// Not added: an SOA or CNAME RRset already has its record.
    Second,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The key of the RRset whose header starts at `at`.
#[inline]
fn key_at(b: &[u8], at: usize) -> u32 {
    (u16_at(b, at) as u32) << 16 | u16_at(b, at + 20) as u32
}

/// The RRset whose header starts at `at`: its type, the RRset, and where the next one starts.
#[inline]
fn rrset_at(b: &[u8], at: usize) -> (u16, Rrset<'_>, usize) {
    let h: &[u8; HEADER] = b[at..at + HEADER].try_into().expect("header");
    let octets = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
    let end = at + HEADER + octets;
    let set = Rrset {
        ttl: u32::from_le_bytes([h[2], h[3], h[4], h[5]]),
        covered: u16::from_le_bytes([h[20], h[21]]),
        src: SrcPos { file: u16::from_le_bytes([h[6], h[7]]), line: u32::from_le_bytes([h[8], h[9], h[10], h[11]]) },
        rdata: RdataList { bytes: &b[at + HEADER..end], count: u32::from_le_bytes([h[12], h[13], h[14], h[15]]) },
    };
    (u16::from_le_bytes([h[0], h[1]]), set, end)
}

impl RrsetMap {
    /// (type, RRset) in key order: by type, and the RRSIG sets (one per covered type, each
    /// with its own TTL, `Rrset::covered` telling them apart) by the type they cover. Every
    /// record of the node is in exactly one of them.
    pub fn iter(&self) -> RrsetIter<'_> {
        RrsetIter { buf: &self.buf, pos: 0 }
    }

    pub fn values(&self) -> impl Iterator<Item = Rrset<'_>> {
        self.iter().map(|e| e.1)
    }

    /// The types, in order, each once (RRSIG once however many types it covers).
    pub fn types(&self) -> impl Iterator<Item = u16> + '_ {
        let mut pos = 0;
        let mut last = None;
        std::iter::from_fn(move || loop {
            if pos >= self.buf.len() {
                return None;
            }
            let t = u16_at(&self.buf, pos);
            pos += HEADER + u32_at(&self.buf, pos + 16) as usize;
            if last != Some(t) {
                last = Some(t);
                return Some(t);
            }
        })
    }

    /// The RRset of type `t`. None for RRSIG, which is one RRset per covered type: see
    /// [`RrsetMap::signatures`].
    pub fn get(&self, t: &u16) -> Option<Rrset<'_>> {
        if *t == rtype::RRSIG || !self.may_have(*t) {
            return None;
        }
        self.find((*t as u32) << 16).ok().map(|at| self.rrset_at(at))
    }

    /// The RRSIG RRset covering type `covered`: the signatures over the RRset of that type
    /// at this name, with their own TTL.
    pub fn signatures(&self, covered: u16) -> Option<Rrset<'_>> {
        if !self.may_have(rtype::RRSIG) {
            return None;
        }
        self.find((rtype::RRSIG as u32) << 16 | covered as u32).ok().map(|at| self.rrset_at(at))
    }

    /// Every RRSIG RRset of the node: (covered type, RRset), in covered-type order.
    pub fn all_signatures(&self) -> impl Iterator<Item = (u16, Rrset<'_>)> {
        self.iter().filter(|(t, _)| *t == rtype::RRSIG).map(|(_, s)| (s.covered, s))
    }

    /// The RRset of type `t` and, for RRSIG, covering `covered` (ignored for other types):
    /// how an RRset of one version of a node is found in another (`Rrset::covered`).
    pub fn get_covering(&self, t: u16, covered: u16) -> Option<Rrset<'_>> {
        if !self.may_have(t) {
            return None;
        }
        let covered = if t == rtype::RRSIG { covered } else { 0 };
        self.find((t as u32) << 16 | covered as u32).ok().map(|at| self.rrset_at(at))
    }

    /// The RRset a record of type `t` with this rdata belongs to (or would join): for
    /// RRSIG, the set covering the type its rdata names.
    pub fn rrset_of(&self, t: u16, rdata: &[u8]) -> Option<Rrset<'_>> {
        if !self.may_have(t) {
            return None;
        }
        self.find(rrset_key(t, rdata)).ok().map(|at| self.rrset_at(at))
    }

    /// True if there is an RRset of type `t` (for RRSIG: a signature over any type).
    pub fn has(&self, t: u16) -> bool {
        let bit = type_bit(t);
        if bit != 0 {
            self.types & bit != 0
        } else {
            self.find_type(t)
        }
    }

    /// True if an RRset of type `t` is here, whatever it covers.
    fn find_type(&self, t: u16) -> bool {
        match self.find((t as u32) << 16) {
            Ok(_) => true,
            Err(at) => at < self.buf.len() && u16_at(&self.buf, at) == t,
        }
    }

    /// Number of distinct types (RRSIG counted once): what a node holds per type.
    pub fn type_count(&self) -> usize {
        self.types().count()
    }

    /// False if there is certainly no RRset of type `t`.
    fn may_have(&self, t: u16) -> bool {
        let bit = type_bit(t);
        bit == 0 || self.types & bit != 0
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Number of RRsets (each RRSIG set, one per covered type, counts).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Number of records over all RRsets.
    pub fn records(&self) -> usize {
        self.records as usize
    }

    /// Octets of rdata over all records.
    pub fn rdata_octets(&self) -> usize {
        self.buf.len() - HEADER * self.count as usize - 2 * self.records as usize
    }

    /// Where the RRset of key `key` ([`rrset_key`]) starts in `buf`: Ok if there is one,
    /// else Err with where it would go.
    #[inline]
    fn find(&self, key: u32) -> Result<usize, usize> {
        let mut pos = 0;
        while pos < self.buf.len() {
            let here = key_at(&self.buf, pos);
            if here == key {
                return Ok(pos);
            }
            if here > key {
                break;
            }
            pos += HEADER + u32_at(&self.buf, pos + 16) as usize;
        }
        Err(pos)
    }

    /// Adds a record (RFC 2181 §5: an rdata equal in canonical form to one already there is
    /// a duplicate; §5.2: the RRset keeps its first TTL; one record only in an SOA or CNAME
    /// RRset). An RRSIG joins the set covering the type it covers.
    fn add(&mut self, t: u16, ttl: u32, rdata: &[u8], src: SrcPos) -> AddOutcome {
        let rec = 2 + rdata.len();
        let key = rrset_key(t, rdata);
        let (at, set_ttl) = match self.find(key) {
            Ok(at) => {
                let set = self.rrset_at(at);
                if set.rdata.iter().any(|r| rdata::canonical_eq(t, r, rdata)) {
                    return AddOutcome::Duplicate;
                }
                if t == rtype::SOA || t == rtype::CNAME {
                    return AddOutcome::Second;
                }
                (at, set.ttl)
            }
            Err(at) => {
                let mut header = [0u8; HEADER];
                header[0..2].copy_from_slice(&t.to_le_bytes());
                header[2..6].copy_from_slice(&ttl.to_le_bytes());
                header[6..8].copy_from_slice(&src.file.to_le_bytes());
                header[8..12].copy_from_slice(&src.line.to_le_bytes());
                header[20..22].copy_from_slice(&(key as u16).to_le_bytes());
                self.buf.reserve_exact(HEADER + rec);
                self.put(at, &[&header]);
                self.count += 1;
                self.types |= type_bit(t);
                (at, ttl)
            }
        };
        let count = u32_at(&self.buf, at + 12) + 1;
        let octets = u32_at(&self.buf, at + 16) as usize;
        self.buf[at + 12..at + 16].copy_from_slice(&count.to_le_bytes());
        self.buf[at + 16..at + 20].copy_from_slice(&((octets + rec) as u32).to_le_bytes());
        self.buf.reserve_exact(rec);
        self.put(at + HEADER + octets, &[&(rdata.len() as u16).to_le_bytes(), rdata]);
        self.records += 1;
        if set_ttl != ttl {
            AddOutcome::TtlNormalised(set_ttl)
        } else {
            AddOutcome::New
        }
    }

    /// Inserts `parts` one after the other at `at` (usually the end). The caller reserves
    /// the room first, exactly: most names get all their records one after the other, and
    /// exact sizes keep a million names small.
    fn put(&mut self, at: usize, parts: &[&[u8]]) {
        let old = self.buf.len();
        if at == old {
            for p in parts {
                self.buf.extend_from_slice(p);
            }
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.resize(old + len, 0);
        self.buf.copy_within(at..old, at + len);
        let mut to = at;
        for p in parts {
            self.buf[to..to + p.len()].copy_from_slice(p);
            to += p.len();
        }
    }

    /// Removes a record (rdata compared in canonical form), and its RRset if it was the
    /// last. Returns the rdata octets removed.
    fn remove_record(&mut self, t: u16, rdata: &[u8]) -> Option<usize> {
        let at = self.find(rrset_key(t, rdata)).ok()?;
        let set = self.rrset_at(at);
        let (count, octets) = (set.rdata.count, set.rdata.bytes.len());
        let mut pos = at + HEADER;
        let len = set
            .rdata
            .iter()
            .find(|r| {
                let hit = rdata::canonical_eq(t, r, rdata);
                if !hit {
                    pos += 2 + r.len();
                }
                hit
            })?
            .len();
        self.records -= 1;
        if count == 1 {
            self.buf.drain(at..at + HEADER + 2 + len);
            self.count -= 1;
            if !self.find_type(t) {
                self.types &= !type_bit(t);
            }
        } else {
            self.buf.drain(pos..pos + 2 + len);
            self.buf[at + 12..at + 16].copy_from_slice(&(count - 1).to_le_bytes());
            self.buf[at + 16..at + 20].copy_from_slice(&((octets - 2 - len) as u32).to_le_bytes());
        }
        Some(len)
    }

    /// Removes the RRset of type `t` (not RRSIG: see [`RrsetMap::remove_signatures`]);
    /// returns its record count and rdata octets.
    pub fn remove(&mut self, t: &u16) -> Option<(usize, usize)> {
        if *t == rtype::RRSIG {
            return None;
        }
        self.remove_key((*t as u32) << 16)
    }

    /// Removes the RRSIG RRset covering `covered`; returns its record count and rdata octets.
    pub fn remove_signatures(&mut self, covered: u16) -> Option<(usize, usize)> {
        self.remove_key((rtype::RRSIG as u32) << 16 | covered as u32)
    }

    fn remove_key(&mut self, key: u32) -> Option<(usize, usize)> {
        let t = (key >> 16) as u16;
        let at = self.find(key).ok()?;
        let set = self.rrset_at(at);
        let found = (set.rdata.len(), set.rdata.octets());
        let end = at + HEADER + set.rdata.bytes.len();
        self.buf.drain(at..end);
        self.records -= found.0 as u32;
        self.count -= 1;
        if !self.find_type(t) {
            self.types &= !type_bit(t);
        }
        Some(found)
    }

    fn rrset_at(&self, at: usize) -> Rrset<'_> {
        rrset_at(&self.buf, at).1
    }
}

impl fmt::Debug for RrsetMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The RRsets of a node, in type order.
pub struct RrsetIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RrsetIter<'a> {
    type Item = (u16, Rrset<'a>);

    #[inline]
    fn next(&mut self) -> Option<(u16, Rrset<'a>)> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (t, set, end) = rrset_at(self.buf, self.pos);
        self.pos = end;
        Some((t, set))
    }
}

impl<'a> IntoIterator for &'a RrsetMap {
    type Item = (u16, Rrset<'a>);
    type IntoIter = RrsetIter<'a>;

    fn into_iter(self) -> RrsetIter<'a> {
        self.iter()
    }
}

impl Node {
    /// The RRset of type `t` (None for RRSIG: see [`Node::signatures`]).
    pub fn get(&self, t: u16) -> Option<Rrset<'_>> {
        self.rrsets.get(&t)
    }

    /// The RRSIG RRset covering type `covered` at this name (RFC 4034 §3: the signatures
    /// over that RRset, with its TTL). Cheap: a walk over the node's RRset headers.
    pub fn signatures(&self, covered: u16) -> Option<Rrset<'_>> {
        self.rrsets.signatures(covered)
    }
}

/// What inserting one record did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new record.
    Added,
    /// The same rdata was already there (RFC 2181 §5: duplicates are dropped).
    Duplicate,
    /// Added, but the TTL differed from the RRset's; the record took the RRset's TTL.
    TtlNormalised { rrset_ttl: u32 },
}

/// Why a record cannot go into the zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("{name} is outside the zone {origin}")]
    OutOfZone { name: Name, origin: Name },
    #[error("type {0} cannot be stored in a zone")]
    MetaType(u16),
    #[error("second SOA record at {0} (a zone has exactly one)")]
    SecondSoa(Name),
    #[error("second CNAME record at {0} (RFC 2181 §10.1 allows one)")]
    SecondCname(Name),
}

/// One version of a zone.
///
/// Nodes sit in a vector (in the order their names first appeared) with a hash index by
/// lowercased wire name beside it: one allocation per name, iteration in memory order, and a
/// zone of a million names built without rehashing when its size is known in advance.
#[derive(Clone)]
pub struct Zone {
    origin: Name,
    nodes: Vec<Node>,
    /// Positions in `nodes`, hashed by the node's name (`name_hash`).
    index: HashTable<u32>,
    rr_count: usize,
    /// Octets of rdata in all records (for sizing what is built from the zone).
    rdata_octets: usize,
    /// The node the last insert went to: records of a name usually come together.
    last: Option<u32>,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone")
            .field("origin", &self.origin)
            .field("rr_count", &self.rr_count)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// "No entry" in [`Zone::tree`]'s parent lists.
const NO_ENTRY: u32 = u32::MAX;

/// Hash of a lowercased wire name for the zone's index.
fn name_hash(lower_wire: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(lower_wire);
    h.finish()
}

/// One resource record, borrowed from a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub owner: &'a Name,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
}

/// An owned resource record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub owner: Name,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
}

impl RecordRef<'_> {
    pub fn to_owned(&self) -> Record {
        Record { owner: self.owner.clone(), rtype: self.rtype, ttl: self.ttl, rdata: self.rdata.into() }
    }
}

/// The difference between two versions of a zone: apply `removed` then `added` (the way an
/// IXFR or a journal record does). SOA records are carried apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changeset {
    pub soa_from: Option<Record>,
    pub soa_to: Option<Record>,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.soa_from == self.soa_to
    }
}

/// Flags of a name in the zone tree.
pub mod flags {
    /// The zone apex.
    pub const APEX: u8 = 1 << 0;
    /// A delegation point: NS records below the apex.
    pub const CUT: u8 = 1 << 1;
    /// Owns a DNAME.
    pub const DNAME: u8 = 1 << 2;
    /// Has a child labelled `*`.
    pub const WILDCARD_CHILD: u8 = 1 << 3;
    /// Exists only because names below it exist (RFC 8020).
    pub const EMPTY_NON_TERMINAL: u8 = 1 << 4;
    /// Lies below a zone cut: glue or occluded data, not authoritative.
    pub const BELOW_CUT: u8 = 1 << 5;
    /// Lies below a DNAME: occluded.
    pub const BELOW_DNAME: u8 = 1 << 6;
    /// Owns a CNAME.
    pub const CNAME: u8 = 1 << 7;
}

/// The names of a zone, empty non-terminals included: see [`Zone::tree`]. Held as a few
/// flat arrays indexed by position; [`Tree::get`] puts a [`TreeName`] together.
pub struct Tree<'a> {
    zone: &'a Zone,
    /// The entry at each position: a zone node (by its index in the zone), or an empty
    /// non-terminal (the zone's node count plus its index in `ent_names`).
    order: Vec<u32>,
    /// Position of each entry.
    pos: Vec<u32>,
    /// Per position: the parent's position, or [`NO_ENTRY`].
    parent: Vec<u32>,
    /// Per position: [`flags`].
    flags: Vec<u8>,
    /// Per position: owns A or AAAA records.
    address: Vec<bool>,
    /// Empty non-terminals (and the apex when it owns nothing).
    ent_names: Vec<&'a [u8]>,
    /// Their entry numbers, by name.
    ents: FxHashMap<&'a [u8], u32>,
}

impl<'a> Tree<'a> {
    /// Number of names.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The name at position `i` (parents come before their children).
    pub fn get(&self, i: usize) -> TreeName<'a> {
        let e = self.order[i] as usize;
        let nodes = &self.zone.nodes;
        let (name, node) = match nodes.get(e) {
            Some(node) => (node.name.as_wire(), Some(node)),
            None => (self.ent_names[e - nodes.len()], None),
        };
        let parent = Some(self.parent[i]).filter(|&p| p != NO_ENTRY);
        TreeName { name, node, parent, flags: self.flags[i], has_address: self.address[i] }
    }

    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = TreeName<'a>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// True if the name at position `i` owns A or AAAA records.
    pub fn has_address(&self, i: usize) -> bool {
        self.address[i]
    }

    /// Position of a lowercased wire name.
    pub fn find(&self, lower_wire: &[u8]) -> Option<usize> {
        let entry = match self.zone.find_index(lower_wire) {
            Some(i) => i,
            None => *self.ents.get(lower_wire)?,
        };
        Some(self.pos[entry as usize] as usize)
    }
}

/// A name of the zone's tree, empty non-terminals included.
#[derive(Clone, Copy, Debug)]
pub struct TreeName<'a> {
    /// Lowercased wire name.
    pub name: &'a [u8],
    pub node: Option<&'a Node>,
    /// Position of the parent in the tree; None for the apex.
    pub parent: Option<u32>,
    pub flags: u8,
    /// Owns A or AAAA records.
    pub has_address: bool,
}

impl Zone {
    pub fn new(origin: &Name) -> Zone {
        Zone::with_capacity(origin, 0)
    }

    /// An empty zone with room for `names` owner names.
    pub fn with_capacity(origin: &Name, names: usize) -> Zone {
        Zone {
            origin: origin.to_lowercase(),
            nodes: Vec::with_capacity(names),
            index: HashTable::with_capacity(names),
            rr_count: 0,
            rdata_octets: 0,
            last: None,
        }
    }

    /// The apex, lowercased.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn rr_count(&self) -> usize {
        self.rr_count
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Octets of rdata over all records.
    pub fn rdata_octets(&self) -> usize {
        self.rdata_octets
    }

    pub fn get(&self, name: &Name) -> Option<&Node> {
        let mut buf = [0u8; 256];
        self.get_wire(name::lowercase_into(name.as_wire(), &mut buf))
    }

    /// The node of a lowercased wire name.
    pub fn get_wire(&self, lower_wire: &[u8]) -> Option<&Node> {
        self.find_index(lower_wire).map(|i| &self.nodes[i as usize])
    }

    /// Position in `nodes` of a lowercased wire name.
    fn find_index(&self, lower_wire: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index.find(name_hash(lower_wire), |&i| nodes[i as usize].name.as_wire() == lower_wire).copied()
    }

    /// Every node, in the order their names first appeared.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// The RRset of type `t` at `name` (None for RRSIG: see [`Zone::signatures`]).
    pub fn rrset(&self, name: &Name, t: u16) -> Option<Rrset<'_>> {
        self.get(name)?.get(t)
    }

    /// The RRSIG RRset covering type `covered` at `name`.
    pub fn signatures(&self, name: &Name, covered: u16) -> Option<Rrset<'_>> {
        self.get(name)?.signatures(covered)
    }

    /// The RRset at `owner` that a record of type `t` with this rdata belongs to (for
    /// RRSIG, the one covering the type the rdata names).
    pub fn rrset_of(&self, owner: &Name, t: u16, rdata: &[u8]) -> Option<Rrset<'_>> {
        self.get(owner)?.rrsets.rrset_of(t, rdata)
    }

    /// True if the zone holds this record: its owner, type and rdata (compared in canonical
    /// form) and, if `ttl` is given, that TTL.
    pub fn contains_record(&self, owner: &Name, t: u16, ttl: Option<u32>, rdata: &[u8]) -> bool {
        self.rrset_of(owner, t, rdata)
            .is_some_and(|set| ttl.is_none_or(|ttl| set.ttl == ttl) && contains(t, set, rdata))
    }

    /// True if the zone is signed: DNSKEY records at the apex or RRSIG records anywhere.
    pub fn is_signed(&self) -> bool {
        self.get(&self.origin).is_some_and(|apex| apex.rrsets.has(rtype::DNSKEY))
            || self.nodes.iter().any(|n| n.rrsets.has(rtype::RRSIG))
    }

    pub fn soa(&self) -> Option<Rrset<'_>> {
        self.rrset(&self.origin, rtype::SOA)
    }

    /// The SOA serial, read from the apex SOA.
    pub fn serial(&self) -> Option<u32> {
        soa_serial(self.soa()?.rdata.first()?)
    }

    /// Adds one record. The owner must be inside the zone.
    pub fn insert(
        &mut self,
        owner: &Name,
        t: u16,
        ttl: u32,
        rdata: &[u8],
        src: SrcPos,
    ) -> Result<Inserted, InsertError> {
        self.insert_wire(owner.as_wire(), t, ttl, rdata, src)
    }

    /// [`Zone::insert`] with the owner as a wire name (well formed, any case).
    pub fn insert_wire(
        &mut self,
        owner: &[u8],
        t: u16,
        ttl: u32,
        rdata: &[u8],
        src: SrcPos,
    ) -> Result<Inserted, InsertError> {
        self.insert_with_room(owner, t, ttl, rdata, src, 0, &mut None)
    }

    /// [`Zone::insert_wire`], first making room for `room` more octets in the name's
    /// buffer (when more records for it are known to follow). If the record makes a new
    /// name and `made` holds an empty buffer, that becomes the name's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_with_room(
        &mut self,
        owner: &[u8],
        t: u16,
        ttl: u32,
        rdata: &[u8],
        src: SrcPos,
        room: usize,
        made: &mut Option<Vec<u8>>,
    ) -> Result<Inserted, InsertError> {
        let mut buf = [0u8; 256];
        let key = name::lowercase_into(owner, &mut buf);
        if !name::is_suffix_lower(key, self.origin.as_wire()) {
            return Err(InsertError::OutOfZone { name: Name::from_wire_trusted(owner), origin: self.origin.clone() });
        }
        if rdata::is_meta(t) {
            return Err(InsertError::MetaType(t));
        }
        let i = self.node_index_or_insert(key, made);
        let node = &mut self.nodes[i];
        node.rrsets.buf.reserve_exact(room);
        let added = node.rrsets.add(t, ttl, rdata, src);
        match added {
            AddOutcome::Duplicate => return Ok(Inserted::Duplicate),
            AddOutcome::Second if t == rtype::SOA => return Err(InsertError::SecondSoa(node.name.clone())),
            AddOutcome::Second => return Err(InsertError::SecondCname(node.name.clone())),
            AddOutcome::New | AddOutcome::TtlNormalised(_) => {}
        }
        self.rr_count += 1;
        self.rdata_octets += rdata.len();
        Ok(match added {
            AddOutcome::TtlNormalised(rrset_ttl) => Inserted::TtlNormalised { rrset_ttl },
            _ => Inserted::Added,
        })
    }

    /// Position of the node of a lowercased wire name, created (empty) if missing, with the
    /// buffer in `made` if there is one.
    fn node_index_or_insert(&mut self, key: &[u8], made: &mut Option<Vec<u8>>) -> usize {
        if let Some(last) = self.last {
            if self.nodes[last as usize].name.as_wire() == key {
                return last as usize;
            }
        }
        let nodes = &mut self.nodes;
        let hash = name_hash(key);
        let i = match self.index.find(hash, |&i| nodes[i as usize].name.as_wire() == key) {
            Some(&i) => i,
            None => {
                let i = nodes.len() as u32;
                let buf = made.take().unwrap_or_default();
                nodes
                    .push(Node { name: Name::from_wire_trusted(key), rrsets: RrsetMap { buf, ..RrsetMap::default() } });
                self.index.insert_unique(hash, i, |&j| name_hash(nodes[j as usize].name.as_wire()));
                i
            }
        };
        self.last = Some(i);
        i as usize
    }

    /// Removes one record (rdata compared in canonical form). True if it was there.
    pub fn remove(&mut self, owner: &Name, t: u16, rdata: &[u8]) -> bool {
        let mut buf = [0u8; 256];
        let key = name::lowercase_into(owner.as_wire(), &mut buf);
        let Some(i) = self.find_index(key) else { return false };
        let node = &mut self.nodes[i as usize];
        let Some(octets) = node.rrsets.remove_record(t, rdata) else { return false };
        self.rdata_octets -= octets;
        self.rr_count -= 1;
        if node.rrsets.is_empty() {
            self.remove_node(i);
        }
        true
    }

    /// Removes the node at position `i`; the last node takes its place.
    fn remove_node(&mut self, i: u32) {
        let hash = name_hash(self.nodes[i as usize].name.as_wire());
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let last = self.nodes.len() as u32 - 1;
        if i != last {
            let hash = name_hash(self.nodes[last as usize].name.as_wire());
            if let Some(slot) = self.index.find_mut(hash, |&j| j == last) {
                *slot = i;
            }
        }
        self.nodes.swap_remove(i as usize);
        self.last = None;
    }

    /// Nodes in canonical order (RFC 4034 §6.1).
    pub fn nodes_canonical(&self) -> Vec<&Node> {
        let order = canonical_order(self.nodes.iter().map(|n| n.name.as_wire()));
        order.into_iter().map(|i| &self.nodes[i]).collect()
    }

    /// Every record in canonical order, the apex SOA first, RRsets in type order and rdata
    /// in canonical order within each (the order AXFR and `dump` use).
    pub fn records_canonical(&self) -> Vec<RecordRef<'_>> {
        let mut out = Vec::with_capacity(self.rr_count);
        if let Some(soa) = self.soa() {
            push_rrset(&mut out, &self.origin, rtype::SOA, soa);
        }
        for node in self.nodes_canonical() {
            for (t, set) in &node.rrsets {
                if t == rtype::SOA && node.name == self.origin {
                    continue;
                }
                push_rrset(&mut out, &node.name, t, set);
            }
        }
        out
    }

    /// The tree of names: every node plus every empty non-terminal between a node and the
    /// apex, parents before children (by label count, not canonical order: the answer path
    /// needs no order and sorting a million names costs seconds; within a label count,
    /// nodes in the order their names first appeared, then empty non-terminals), with
    /// flags, parent links and a lookup by lowercased wire name ([`Tree::find`]).
    pub fn tree(&self) -> Tree<'_> {
        let origin = self.origin.as_wire();
        let n = self.nodes.len();
        // Per entry (the nodes by index, then the empty non-terminals): the parent entry,
        // the label count, the entry's own flags, and whether it owns addresses / is a
        // wildcard (bits 0 and 1 of `info`).
        let mut parent: Vec<u32> = vec![NO_ENTRY; n];
        let mut depth: Vec<u8> = vec![0; n];
        let mut own: Vec<u8> = vec![0; n];
        let mut info: Vec<u8> = vec![0; n];
        let mut ent_names: Vec<&[u8]> = Vec::new();
        let mut ents: FxHashMap<&[u8], u32> = FxHashMap::default();
        let new_ent = |name: &'_ [u8]| {
            let f = flags::EMPTY_NON_TERMINAL | if name == origin { flags::APEX } else { 0 };
            (f, u8::from(name.starts_with(b"\x01*")) << 1, name::labels(name).count() as u8)
        };
        let mut ent_info: Vec<(u8, u8, u8)> = Vec::new();
        let mut ent_parent: Vec<u32> = Vec::new();
        if self.find_index(origin).is_none() {
            ents.insert(origin, n as u32);
            ent_names.push(origin);
            ent_info.push(new_ent(origin));
            ent_parent.push(NO_ENTRY);
        }
        // Names of a file come in groups below the same parent: remember the last one.
        let mut last_parent: (&[u8], u32) = (&[], NO_ENTRY);
        for (i, node) in self.nodes.iter().enumerate() {
            let w = node.name.as_wire();
            let mut f = 0u8;
            let mut bits = u8::from(w.starts_with(b"\x01*")) << 1;
            let sets = &node.rrsets;
            if sets.has(rtype::DNAME) {
                f |= flags::DNAME;
            }
            if sets.has(rtype::CNAME) {
                f |= flags::CNAME;
            }
            if w == origin {
                f |= flags::APEX;
            } else if sets.has(rtype::NS) {
                f |= flags::CUT;
            }
            if sets.has(rtype::A) || sets.has(rtype::AAAA) {
                bits |= 1;
            }
            own[i] = f;
            info[i] = bits;
            depth[i] = name::labels(w).count() as u8;
            if w.len() <= origin.len() {
                continue;
            }
            // Every suffix of an owner down to the apex is a name of the tree: find the
            // nearest one that is already known, adding those in between.
            let mut child = i as u32;
            let mut at = 0;
            loop {
                at += w[at] as usize + 1;
                let suffix = &w[at..];
                if suffix.len() < origin.len() {
                    break;
                }
                let found = if suffix == last_parent.0 {
                    Some(last_parent.1)
                } else {
                    match self.find_index(suffix) {
                        Some(j) => Some(j),
                        None => ents.get(suffix).copied(),
                    }
                };
                if at == w[0] as usize + 1 {
                    if let Some(e) = found {
                        last_parent = (suffix, e);
                    }
                }
                let e = found.unwrap_or_else(|| {
                    let e = (n + ent_names.len()) as u32;
                    ents.insert(suffix, e);
                    ent_names.push(suffix);
                    ent_info.push(new_ent(suffix));
                    ent_parent.push(NO_ENTRY);
                    e
                });
                if (child as usize) < n {
                    parent[child as usize] = e;
                } else {
                    ent_parent[child as usize - n] = e;
                }
                if found.is_some() {
                    break;
                }
                child = e;
            }
        }
        let total = n + ent_names.len();
        let depth_of = |e: usize| if e < n { depth[e] } else { ent_info[e - n].2 };
        // Counting sort by label count: parents first.
        let mut buckets = vec![0u32; 130];
        for e in 0..total {
            buckets[depth_of(e) as usize + 1] += 1;
        }
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        let mut order = vec![0u32; total];
        let mut pos = vec![0u32; total];
        for (e, at) in pos.iter_mut().enumerate() {
            let d = depth_of(e) as usize;
            let p = buckets[d];
            buckets[d] += 1;
            order[p as usize] = e as u32;
            *at = p;
        }
        drop(depth);
        let mut parent_at = vec![NO_ENTRY; total];
        let mut flags_at = vec![0u8; total];
        let mut address = vec![false; total];
        let mut wildcard = vec![false; total];
        for (i, &e) in order.iter().enumerate() {
            let e = e as usize;
            let (f, bits, p) = if e < n {
                (own[e], info[e], parent[e])
            } else {
                (ent_info[e - n].0, ent_info[e - n].1, ent_parent[e - n])
            };
            flags_at[i] = f;
            address[i] = bits & 1 != 0;
            wildcard[i] = bits & 2 != 0;
            if f & flags::APEX == 0 && p != NO_ENTRY {
                parent_at[i] = pos[p as usize];
            }
        }
        // Parents come first, so one pass propagates.
        for i in 0..total {
            let p = parent_at[i];
            if p == NO_ENTRY {
                continue;
            }
            let p = p as usize;
            let pf = flags_at[p];
            if pf & (flags::CUT | flags::BELOW_CUT) != 0 {
                flags_at[i] |= flags::BELOW_CUT;
            }
            if pf & (flags::DNAME | flags::BELOW_DNAME) != 0 {
                flags_at[i] |= flags::BELOW_DNAME;
            }
            if wildcard[i] {
                flags_at[p] |= flags::WILDCARD_CHILD;
            }
        }
        Tree { zone: self, order, pos, parent: parent_at, flags: flags_at, address, ent_names, ents }
    }

    /// The changes that turn `self` into `newer`. An RRset whose TTL changed is removed
    /// and added whole. The records come in the zones' storage order (no canonical sort of
    /// either zone: a reload of a large zone spends its time elsewhere); IXFR and the
    /// journal take them in any order.
    pub fn diff(&self, newer: &Zone) -> Changeset {
        let mut cs = Changeset { soa_from: self.soa_record(), soa_to: newer.soa_record(), ..Default::default() };
        for node in self.nodes() {
            for (t, old) in &node.rrsets {
                if t == rtype::SOA && node.name == self.origin {
                    continue;
                }
                let new = newer.get(&node.name).and_then(|n| n.rrsets.get_covering(t, old.covered));
                for r in &old.rdata {
                    let keep = new.is_some_and(|n| n.ttl == old.ttl && contains(t, n, r));
                    if !keep {
                        cs.removed.push(Record { owner: node.name.clone(), rtype: t, ttl: old.ttl, rdata: r.into() });
                    }
                }
            }
        }
        for node in newer.nodes() {
            for (t, new) in &node.rrsets {
                if t == rtype::SOA && node.name == newer.origin {
                    continue;
                }
                let old = self.get(&node.name).and_then(|n| n.rrsets.get_covering(t, new.covered));
                for r in &new.rdata {
                    let had = old.is_some_and(|o| o.ttl == new.ttl && contains(t, o, r));
                    if !had {
                        cs.added.push(Record { owner: node.name.clone(), rtype: t, ttl: new.ttl, rdata: r.into() });
                    }
                }
            }
        }
        cs
    }

    /// Applies a changeset (removals, then additions, then the new SOA).
    pub fn apply(&mut self, cs: &Changeset) -> Result<(), InsertError> {
        for r in &cs.removed {
            self.remove(&r.owner, r.rtype, &r.rdata);
        }
        for r in &cs.added {
            self.insert(&r.owner, r.rtype, r.ttl, &r.rdata, SrcPos::default())?;
        }
        if let Some(soa) = &cs.soa_to {
            let origin = self.origin.clone();
            if let Some(i) = self.find_index(origin.as_wire()) {
                if let Some((count, octets)) = self.nodes[i as usize].rrsets.remove(&rtype::SOA) {
                    self.rr_count -= count;
                    self.rdata_octets -= octets;
                    if self.nodes[i as usize].rrsets.is_empty() {
                        self.remove_node(i);
                    }
                }
            }
            self.insert(&origin, rtype::SOA, soa.ttl, &soa.rdata, SrcPos::default())?;
        }
        Ok(())
    }

    fn soa_record(&self) -> Option<Record> {
        let soa = self.soa()?;
        Some(Record { owner: self.origin.clone(), rtype: rtype::SOA, ttl: soa.ttl, rdata: soa.rdata.first()?.into() })
    }
}

fn contains(t: u16, set: Rrset<'_>, rdata: &[u8]) -> bool {
    set.rdata.iter().any(|r| rdata::canonical_eq(t, r, rdata))
}

fn push_rrset<'a>(out: &mut Vec<RecordRef<'a>>, owner: &'a Name, t: u16, set: Rrset<'a>) {
    let mut rd: Vec<&[u8]> = set.rdata.iter().collect();
    if rd.len() > 1 {
        rd.sort_by_cached_key(|r| rdata::canonical_rdata(t, r));
    }
    out.extend(rd.into_iter().map(|r| RecordRef { owner, rtype: t, ttl: set.ttl, rdata: r }));
}

/// Positions of `names` (lowercased wire names) sorted into canonical order. Builds every
/// sort key into one buffer so that each comparison is a `memcmp`.
pub fn canonical_order<'a>(names: impl Iterator<Item = &'a [u8]>) -> Vec<usize> {
    // Key: labels right to left, lowercased, each ended by 0x00, with 0x00 and 0x01 inside
    // a label written as 01 01 and 01 02 so that the end of a label sorts first.
    let mut keys: Vec<u8> = Vec::new();
    let mut spans: Vec<(u32, u32)> = Vec::new();
    let mut starts: Vec<usize> = Vec::with_capacity(128);
    for w in names {
        let from = keys.len() as u32;
        starts.clear();
        let mut i = 0;
        while i < w.len() && w[i] != 0 {
            starts.push(i);
            i += w[i] as usize + 1;
        }
        keys.reserve(w.len() + 8);
        for &s in starts.iter().rev() {
            for &b in &w[s + 1..s + 1 + w[s] as usize] {
                match b {
                    0 | 1 => keys.extend_from_slice(&[1, b + 1]),
                    _ => keys.push(b.to_ascii_lowercase()),
                }
            }
            keys.push(0);
        }
        spans.push((from, keys.len() as u32 - from));
    }
    let key = |i: usize| &keys[spans[i].0 as usize..(spans[i].0 + spans[i].1) as usize];
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
    order
}

/// The serial field of SOA rdata.
pub fn soa_serial(rdata: &[u8]) -> Option<u32> {
    let fixed = soa_fixed(rdata)?;
    Some(u32::from_be_bytes(fixed[0..4].try_into().ok()?))
}

/// The MINIMUM field of SOA rdata (RFC 2308: the negative-caching TTL).
pub fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let fixed = soa_fixed(rdata)?;
    Some(u32::from_be_bytes(fixed[16..20].try_into().ok()?))
}

fn soa_fixed(rdata: &[u8]) -> Option<&[u8]> {
    let names = rdata::names_in(rtype::SOA, rdata).ok()?;
    let start = names.last()?.offset + names.last()?.len;
    rdata.get(start..start + 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    fn soa(serial: u32) -> Vec<u8> {
        let mut v = b"\x02ns\x00\x02hm\x00".to_vec();
        for x in [serial, 7200, 900, 1209600, 300] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    fn base() -> Zone {
        let mut z = Zone::new(&n("Example.COM."));
        let p = SrcPos::default();
        z.insert(&n("example.com."), rtype::SOA, 3600, &soa(1), p).unwrap();
        z.insert(&n("example.com."), rtype::NS, 3600, b"\x02ns\x07example\x03com\x00", p).unwrap();
        z.insert(&n("a.b.c.example.com."), rtype::A, 300, &[192, 0, 2, 1], p).unwrap();
        z.insert(&n("*.w.example.com."), rtype::A, 300, &[192, 0, 2, 2], p).unwrap();
        z.insert(&n("sub.example.com."), rtype::NS, 300, b"\x02ns\x03sub\x07example\x03com\x00", p).unwrap();
        z.insert(&n("ns.sub.example.com."), rtype::A, 300, &[192, 0, 2, 3], p).unwrap();
        z
    }

    #[test]
    fn insert_rules() {
        let mut z = base();
        let p = SrcPos::default();
        assert_eq!(z.insert(&n("A.B.C.example.com."), rtype::A, 300, &[192, 0, 2, 1], p), Ok(Inserted::Duplicate));
        assert_eq!(
            z.insert(&n("a.b.c.example.com."), rtype::A, 60, &[192, 0, 2, 9], p),
            Ok(Inserted::TtlNormalised { rrset_ttl: 300 })
        );
        assert!(matches!(
            z.insert(&n("example.net."), rtype::A, 1, &[1, 2, 3, 4], p),
            Err(InsertError::OutOfZone { .. })
        ));
        assert!(matches!(z.insert(&n("example.com."), rtype::SOA, 1, &soa(2), p), Err(InsertError::SecondSoa(_))));
        assert_eq!(z.serial(), Some(1));
        assert_eq!(z.rr_count(), 7);
    }

    #[test]
    fn rrsets_of_a_name_in_one_buffer() {
        let mut z = base();
        let p = SrcPos::default();
        let x = n("x.example.com.");
        // Types out of order, records added to an RRset that is not the last.
        z.insert(&x, rtype::TXT, 60, b"\x01a", p).unwrap();
        z.insert(&x, rtype::A, 60, &[192, 0, 2, 1], p).unwrap();
        z.insert(&x, rtype::MX, 60, b"\x00\x0a\x01m\x00", p).unwrap();
        z.insert(&x, rtype::A, 60, &[192, 0, 2, 2], p).unwrap();
        z.insert(&x, rtype::TXT, 60, b"\x01b", p).unwrap();
        assert_eq!(z.insert(&x, rtype::MX, 60, b"\x00\x0a\x01M\x00", p), Ok(Inserted::Duplicate));
        let node = z.get(&x).unwrap();
        let types: Vec<u16> = node.rrsets.types().collect();
        assert_eq!(types, [rtype::A, rtype::MX, rtype::TXT]);
        assert_eq!((node.rrsets.len(), node.rrsets.records(), node.rrsets.rdata_octets()), (3, 5, 8 + 5 + 4));
        let a: Vec<&[u8]> = node.get(rtype::A).unwrap().rdata.iter().collect();
        assert_eq!(a, [&[192, 0, 2, 1][..], &[192, 0, 2, 2][..]]);
        assert!(node.rrsets.has(rtype::A) && !node.rrsets.has(rtype::AAAA) && node.rrsets.has(rtype::TXT));
        assert!(z.remove(&x, rtype::A, &[192, 0, 2, 1]));
        assert!(z.remove(&x, rtype::MX, b"\x00\x0a\x01m\x00"));
        assert!(!z.remove(&x, rtype::MX, b"\x00\x0a\x01m\x00"));
        let node = z.get(&x).unwrap();
        assert_eq!((node.rrsets.len(), node.rrsets.records()), (2, 3));
        assert!(node.get(rtype::MX).is_none() && node.get(rtype::TXT).unwrap().rdata.len() == 2);
        for r in [&b"\x01a"[..], b"\x01b"] {
            assert!(z.remove(&x, rtype::TXT, r));
        }
        assert!(z.remove(&x, rtype::A, &[192, 0, 2, 2]));
        assert!(z.get(&x).is_none());
        assert_eq!(z.rr_count(), base().rr_count());
        assert_eq!(z.rdata_octets(), base().rdata_octets());
    }

    /// RRSIG rdata covering `covered` with original TTL `ttl` and a one-octet signature.
    fn rrsig(covered: u16, ttl: u32, sig: u8) -> Vec<u8> {
        let mut v = covered.to_be_bytes().to_vec();
        v.extend_from_slice(&[13, 2]);
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&2_000_000_000u32.to_be_bytes());
        v.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]);
        v.extend_from_slice(b"\x07Example\x03com\x00");
        v.push(sig);
        v
    }

    #[test]
    fn signatures_belong_to_the_rrset_they_cover() {
        let mut z = base();
        let p = SrcPos::default();
        let apex = n("example.com.");
        let x = n("a.b.c.example.com.");
        // Each set with its own TTL: none normalised to another's.
        for (owner, covered, ttl, sig) in
            [(&apex, rtype::SOA, 3600, 1), (&apex, rtype::NS, 3600, 2), (&x, rtype::A, 300, 3), (&x, rtype::A, 300, 4)]
        {
            assert_eq!(z.insert(owner, rtype::RRSIG, ttl, &rrsig(covered, ttl, sig), p), Ok(Inserted::Added));
        }
        z.insert(&x, rtype::NSEC, 600, b"\x01x\x07example\x03com\x00\x00\x01\x40", p).unwrap();
        assert_eq!(z.insert(&x, rtype::RRSIG, 600, &rrsig(rtype::NSEC, 600, 5), p), Ok(Inserted::Added));
        // A second key's signature over A with another TTL joins the A signatures' TTL.
        assert_eq!(
            z.insert(&x, rtype::RRSIG, 60, &rrsig(rtype::A, 60, 6), p),
            Ok(Inserted::TtlNormalised { rrset_ttl: 300 })
        );
        // The same signature again is a duplicate; the same bytes over another type are not.
        assert_eq!(z.insert(&x, rtype::RRSIG, 300, &rrsig(rtype::A, 300, 3), p), Ok(Inserted::Duplicate));
        let node = z.get(&x).unwrap();
        assert_eq!(node.signatures(rtype::A).map(|s| (s.ttl, s.rdata.len(), s.covered)), Some((300, 3, rtype::A)));
        assert_eq!(node.signatures(rtype::NSEC).map(|s| (s.ttl, s.rdata.len())), Some((600, 1)));
        assert!(node.signatures(rtype::AAAA).is_none());
        assert!(node.get(rtype::RRSIG).is_none(), "RRSIG is no RRset of its own");
        assert!(node.rrsets.has(rtype::RRSIG));
        assert_eq!(node.rrsets.types().collect::<Vec<_>>(), [rtype::A, rtype::RRSIG, rtype::NSEC]);
        assert_eq!((node.rrsets.len(), node.rrsets.type_count()), (4, 3));
        let covered: Vec<u16> = node.rrsets.all_signatures().map(|(c, _)| c).collect();
        assert_eq!(covered, [rtype::A, rtype::NSEC]);
        assert_eq!(z.signatures(&apex, rtype::SOA).unwrap().ttl, 3600);
        assert!(z.is_signed() && !base().is_signed());
        // Every record goes out with the TTL of the set it belongs to.
        let sigs: Vec<(u16, u32)> = z
            .records_canonical()
            .iter()
            .filter(|r| r.rtype == rtype::RRSIG && *r.owner == x)
            .map(|r| (rrsig_covered(r.rdata).unwrap(), r.ttl))
            .collect();
        assert_eq!(sigs, [(rtype::A, 300), (rtype::A, 300), (rtype::A, 300), (rtype::NSEC, 600)]);
        // One signature removed: the right set loses it, the flags follow.
        assert!(!z.remove(&x, rtype::RRSIG, &rrsig(rtype::NSEC, 600, 3)));
        assert!(z.remove(&x, rtype::RRSIG, &rrsig(rtype::NSEC, 600, 5)));
        let node = z.get(&x).unwrap();
        assert!(node.signatures(rtype::NSEC).is_none() && node.signatures(rtype::A).is_some());
        for (ttl, sig) in [(300, 3), (300, 4), (60, 6)] {
            assert!(z.remove(&x, rtype::RRSIG, &rrsig(rtype::A, ttl, sig)));
        }
        assert!(!z.get(&x).unwrap().rrsets.has(rtype::RRSIG));
    }

    #[test]
    fn resigning_diffs_and_applies_signature_by_signature() {
        let p = SrcPos::default();
        let apex = n("example.com.");
        let x = n("a.b.c.example.com.");
        let mut old = base();
        old.insert(&apex, rtype::RRSIG, 3600, &rrsig(rtype::NS, 3600, 1), p).unwrap();
        old.insert(&x, rtype::RRSIG, 300, &rrsig(rtype::A, 300, 2), p).unwrap();
        let mut new = old.clone();
        // A re-signing of A; the NS signature's TTL changes with its RRset's.
        assert!(new.remove(&x, rtype::RRSIG, &rrsig(rtype::A, 300, 2)));
        new.insert(&x, rtype::RRSIG, 300, &rrsig(rtype::A, 300, 9), p).unwrap();
        assert!(new.remove(&apex, rtype::RRSIG, &rrsig(rtype::NS, 3600, 1)));
        new.insert(&apex, rtype::RRSIG, 7200, &rrsig(rtype::NS, 3600, 1), p).unwrap();
        let cs = old.diff(&new);
        let show = |v: &[Record]| v.iter().map(|r| (rrsig_covered(&r.rdata).unwrap(), r.ttl)).collect::<Vec<_>>();
        let (mut removed, mut added) = (show(&cs.removed), show(&cs.added));
        removed.sort_unstable();
        added.sort_unstable();
        assert_eq!(removed, [(rtype::A, 300), (rtype::NS, 3600)]);
        assert_eq!(added, [(rtype::A, 300), (rtype::NS, 7200)]);
        let mut patched = old.clone();
        patched.apply(&cs).unwrap();
        assert!(patched.diff(&new).is_empty());
        assert_eq!(patched.records_canonical(), new.records_canonical());
        assert!(patched.contains_record(&x, rtype::RRSIG, Some(300), &rrsig(rtype::A, 300, 9)));
        assert!(!patched.contains_record(&x, rtype::RRSIG, Some(300), &rrsig(rtype::A, 300, 2)));
        assert!(!patched.contains_record(&apex, rtype::RRSIG, Some(3600), &rrsig(rtype::NS, 3600, 1)));
        // As a secondary applies an IXFR: strictly, each signature removed must be there and
        // each added must not.
        let mut strict = old.clone();
        crate::secondary::xfrin::apply_strict(&mut strict, std::slice::from_ref(&cs)).unwrap();
        assert_eq!(strict.records_canonical(), new.records_canonical());
        let again = crate::secondary::xfrin::apply_strict(&mut strict.clone(), std::slice::from_ref(&cs));
        assert!(again.is_err(), "the same signatures removed twice");
        let mut twice = cs.clone();
        twice.removed.clear();
        twice.added.retain(|r| rrsig_covered(&r.rdata) == Some(rtype::A));
        twice.soa_from = cs.soa_to.clone();
        assert!(crate::secondary::xfrin::apply_strict(&mut strict.clone(), &[twice]).is_err(), "added twice");
    }

    #[test]
    fn tree_flags_and_order() {
        let z = base();
        let tree: Vec<TreeName<'_>> = z.tree().iter().collect();
        let show = |w: &[u8]| Name::from_wire(w).unwrap().to_string();
        for (i, t) in tree.iter().enumerate() {
            assert!(t.parent.is_none_or(|p| (p as usize) < i), "parents come first");
        }
        // Canonical order is what `canonical_order` gives.
        let order = canonical_order(tree.iter().map(|t| t.name));
        let names: Vec<String> = order.iter().map(|&i| show(tree[i].name)).collect();
        assert_eq!(
            names,
            [
                "example.com.",
                "c.example.com.",
                "b.c.example.com.",
                "a.b.c.example.com.",
                "sub.example.com.",
                "ns.sub.example.com.",
                "w.example.com.",
                "*.w.example.com."
            ]
        );
        let f = |s: &str| tree.iter().find(|t| show(t.name) == s).unwrap().flags;
        assert_ne!(f("example.com.") & flags::APEX, 0);
        assert_ne!(f("c.example.com.") & flags::EMPTY_NON_TERMINAL, 0);
        assert_ne!(f("sub.example.com.") & flags::CUT, 0);
        assert_ne!(f("ns.sub.example.com.") & flags::BELOW_CUT, 0);
        assert_ne!(f("w.example.com.") & flags::WILDCARD_CHILD, 0);
        let pos = |s: &str| tree.iter().position(|t| show(t.name) == s).unwrap();
        assert_eq!(tree[pos("a.b.c.example.com.")].parent, Some(pos("b.c.example.com.") as u32));
    }

    #[test]
    fn diff_and_apply() {
        let old = base();
        let mut new = base();
        let p = SrcPos::default();
        new.remove(&n("a.b.c.example.com."), rtype::A, &[192, 0, 2, 1]);
        new.insert(&n("new.example.com."), rtype::TXT, 60, b"\x02hi", p).unwrap();
        // TTL change: removed and added whole
        new.remove(&n("*.w.example.com."), rtype::A, &[192, 0, 2, 2]);
        new.insert(&n("*.w.example.com."), rtype::A, 30, &[192, 0, 2, 2], p).unwrap();
        let origin = n("example.com.");
        new.remove(&origin, rtype::SOA, &soa(1));
        new.insert(&origin, rtype::SOA, 3600, &soa(2), p).unwrap();
        let cs = old.diff(&new);
        assert_eq!(cs.removed.len(), 2);
        assert_eq!(cs.added.len(), 2);
        assert_eq!(soa_serial(&cs.soa_to.as_ref().unwrap().rdata), Some(2));
        let mut patched = old.clone();
        patched.apply(&cs).unwrap();
        assert!(patched.diff(&new).is_empty());
        assert_eq!(patched.records_canonical(), new.records_canonical());
    }
}
