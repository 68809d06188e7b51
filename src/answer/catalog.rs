//! The set of zones served: which loaded zone answers for a name. With more than a few
//! zones, an index of the apexes (a hash table built once per catalog version) is probed
//! once per label suffix of the query name, longest first, so that finding the zone costs
//! the same for two zones or a million.

use std::hash::BuildHasher;
use std::sync::Arc;

use crate::snapshot::{ArchivedZoneImage, Image, Snapshot};
use crate::wire::name::is_suffix_lower;

/// Finds the zone whose apex is the longest suffix of a (lowercased) name.
pub trait Zones {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage>;

    /// Whether the name falls in a zone we are authoritative for but cannot answer from
    /// (a secondary zone not yet transferred, or expired): deeper than the served zone
    /// found for it, whose apex is `served_len` octets long (None: none found). Such
    /// queries get SERVFAIL, as Knot and NSD answer them.
    fn unavailable(&self, _qname_lower: &[u8], _served_len: Option<usize>) -> bool {
        false
    }

    /// Reads ahead what [`Self::find_zone`] and the start of an answer will read for each
    /// of a batch of names (at most [`crate::answer::BATCH`]), so that the batch's cache
    /// misses overlap instead of following one another. Changes nothing; the value
    /// returned is made of what was read, only so that the reads are kept.
    fn warm(&self, _names_lower: &[&[u8]]) -> u64 {
        0
    }

    /// Whether [`Self::warm`] does anything (else a batch need not read all its queries
    /// before it finds their zones).
    fn reads_ahead(&self) -> bool {
        false
    }
}

/// Suffixes of a name whose index slots [`Catalog::warm`] reads ahead (longest first).
const WARM_PROBES: usize = 4;

/// Up to this many zones a scan of the apexes is as quick as the index.
const SCAN_UP_TO: usize = 8;

/// The zones of a zone set, served or not, by position: their apexes and, for each, the
/// snapshot answered from (None: a zone we are authoritative for and cannot answer from — a
/// secondary not yet transferred or expired, a zone whose file did not load — whose
/// queries get SERVFAIL, as Knot and NSD answer them).
///
/// A new version that differs from the last in a few zones shares the rest with it: the
/// apexes (and their index) are kept while the set's members stay the same, and the
/// snapshots are held in chunks ([`Versioned`]), of which only the changed ones are copied.
/// Publishing a reload of one zone among 10^5 so costs a walk, not a rebuild.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    apexes: Arc<Apexes>,
    snaps: Versioned<Option<Served>>,
    /// How many of `snaps` are None: with none, no query asks twice.
    unavailable: usize,
}

/// A zone the catalog answers from: its snapshot, and beside it the handle to its image
/// that queries read, so that a query goes from the catalog's entry to the image without
/// reading the snapshot in between (one cache miss less per query among 10^5 zones).
#[derive(Clone, Debug)]
pub struct Served {
    snap: Arc<Snapshot>,
    image: Image,
}

impl Served {
    pub fn new(snap: Arc<Snapshot>) -> Served {
        Served { image: snap.image(), snap }
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }
}

/// Lowercased wire apexes, one after another in one buffer, and (beyond [`SCAN_UP_TO`])
/// their index: a probe compares with these bytes, not with each zone's mapped snapshot.
#[derive(Clone, Debug, Default)]
pub struct Apexes {
    bytes: Vec<u8>,
    /// Where apex i ends in `bytes` (it starts where i - 1 ends).
    ends: Vec<u32>,
    index: Option<ApexIndex>,
}

impl Apexes {
    /// The apexes of `names` (wire form, any case), the i-th at position i.
    pub fn new<'a>(names: impl ExactSizeIterator<Item = &'a [u8]>) -> Apexes {
        let mut a = Apexes { bytes: Vec::new(), ends: Vec::with_capacity(names.len()), index: None };
        for n in names {
            a.bytes.extend_from_slice(n);
            a.ends.push(a.bytes.len() as u32);
        }
        crate::wire::name::lowercase_in_place(&mut a.bytes);
        if a.len() > SCAN_UP_TO {
            a.index = Some(ApexIndex::new((0..a.len()).map(|i| a.get(i))));
        }
        a
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The i-th apex, lowercased.
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The position of the longest apex that is a suffix of `name` (lowercase wire form).
    #[inline]
    pub fn longest(&self, name: &[u8]) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(name, |i| self.get(i)),
            None => {
                let mut best: Option<usize> = None;
                for i in 0..self.len() {
                    let a = self.get(i);
                    if best.is_none_or(|b| self.get(b).len() < a.len()) && is_suffix_lower(name, a) {
                        best = Some(i);
                    }
                }
                best
            }
        }
    }

    /// The position of the apex `name` (lowercase wire form).
    pub fn exact(&self, name: &[u8]) -> Option<usize> {
        self.longest(name).filter(|&i| self.get(i).len() == name.len())
    }
}

/// Entries per chunk of a [`Versioned`].
const CHUNK: usize = 512;

/// A vector whose versions share what they have in common: entries in chunks of [`CHUNK`],
/// each behind an `Arc`. A clone copies the list of chunks; [`Self::set`] then copies the one
/// chunk it writes to if another version still holds it.
#[derive(Debug)]
pub struct Versioned<T> {
    chunks: Vec<Arc<[T]>>,
    len: usize,
}

impl<T> Clone for Versioned<T> {
    fn clone(&self) -> Self {
        Versioned { chunks: self.chunks.clone(), len: self.len }
    }
}

impl<T> Default for Versioned<T> {
    fn default() -> Self {
        Versioned { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Clone> Versioned<T> {
    pub fn new(items: impl IntoIterator<Item = T>) -> Versioned<T> {
        let mut v = Versioned::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in items {
            chunk.push(item);
            if chunk.len() == CHUNK {
                v.len += CHUNK;
                v.chunks.push(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)).into());
            }
        }
        if !chunk.is_empty() {
            v.len += chunk.len();
            v.chunks.push(chunk.into());
        }
        v
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    /// Replaces entry i, copying its chunk first if another version shares it.
    pub fn set(&mut self, i: usize, value: T) {
        let chunk = &mut self.chunks[i / CHUNK];
        if Arc::get_mut(chunk).is_none() {
            *chunk = Arc::from(&chunk[..]);
        }
        Arc::get_mut(chunk).expect("a chunk of our own")[i % CHUNK] = value;
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// Apexes (lowercase wire names) by hash: open addressing, linear probing, at most half
/// full. A slot holds the top half of the apex's hash (the bottom picks the slot) and its
/// position in the caller's list (+1; 0: empty), so a probe reads the apex itself only when
/// the hash matched; 8 octets a slot keep the index of 10^5 zones within 2 MiB of cache.
#[derive(Clone, Debug)]
pub struct ApexIndex {
    slots: Box<[(u32, u32)]>,
    hasher: foldhash::fast::RandomState,
    /// Which apex lengths (octets, 1–255) occur: suffixes of other lengths are not hashed.
    lengths: [u64; 4],
}

impl ApexIndex {
    /// The index of `apexes` (the i-th one found as i).
    pub fn new<'a>(apexes: impl ExactSizeIterator<Item = &'a [u8]>) -> ApexIndex {
        let size = (apexes.len() * 2).next_power_of_two().max(16);
        let mut index =
            ApexIndex { slots: vec![(0, 0); size].into_boxed_slice(), hasher: Default::default(), lengths: [0; 4] };
        let mask = size - 1;
        for (i, apex) in apexes.enumerate() {
            let h = index.hasher.hash_one(apex);
            let mut s = h as usize & mask;
            while index.slots[s].1 != 0 {
                s = (s + 1) & mask;
            }
            index.slots[s] = ((h >> 32) as u32, i as u32 + 1);
            let l = apex.len().min(255);
            index.lengths[l / 64] |= 1 << (l % 64);
        }
        index
    }

    /// The position of the longest apex that is a suffix of `name` (lowercase wire form),
    /// `apex(i)` giving the i-th apex to compare with.
    #[inline]
    pub fn find<'a>(&self, name: &[u8], apex: impl Fn(usize) -> &'a [u8]) -> Option<usize> {
        self.suffixes(name)
            .find_map(|(at, h)| self.run(h).find(|&(tag, i)| tag && apex(i) == &name[at..]).map(|(_, i)| i))
    }

    /// The suffixes of `name` (lowercase wire form) as long as some apex, longest first:
    /// where each starts, and its hash — what [`Self::find`] looks up.
    #[inline]
    fn suffixes<'n>(&'n self, name: &'n [u8]) -> impl Iterator<Item = (usize, u64)> + 'n {
        let mut next = Some(0);
        std::iter::from_fn(move || loop {
            let at = next.filter(|&at| at < name.len())?;
            next = (name[at] != 0).then(|| at + name[at] as usize + 1);
            let l = name.len() - at;
            if l <= 255 && self.lengths[l / 64] & (1 << (l % 64)) != 0 {
                return Some((at, self.hasher.hash_one(&name[at..])));
            }
        })
    }

    /// The occupied slots a search for hash `h` visits: (tag matches, position).
    #[inline]
    fn run(&self, h: u64) -> impl Iterator<Item = (bool, usize)> + '_ {
        let mask = self.slots.len() - 1;
        let tag = (h >> 32) as u32;
        (0..self.slots.len())
            .map(move |k| self.slots[(h as usize).wrapping_add(k) & mask])
            .take_while(|&(_, i)| i != 0)
            .map(move |(sh, i)| (sh == tag, i as usize - 1))
    }
}

impl Catalog {
    /// A catalog of `snaps`, all served.
    pub fn new(snaps: Vec<Arc<Snapshot>>) -> Catalog {
        let apexes = Apexes::new(snaps.iter().map(|s| s.zone().origin.as_slice()));
        Catalog {
            apexes: Arc::new(apexes),
            snaps: Versioned::new(snaps.into_iter().map(|s| Some(Served::new(s)))),
            unavailable: 0,
        }
    }

    /// The zones at the positions of `apexes`, each served from its snapshot or (None)
    /// answering SERVFAIL.
    pub fn from_parts(apexes: Arc<Apexes>, snaps: Versioned<Option<Served>>) -> Catalog {
        assert_eq!(apexes.len(), snaps.len(), "one snapshot or none per apex");
        let unavailable = snaps.iter().filter(|s| s.is_none()).count();
        Catalog { apexes, snaps, unavailable }
    }

    /// The served snapshots.
    pub fn snapshots(&self) -> impl Iterator<Item = &Arc<Snapshot>> {
        self.snaps.iter().flatten().map(|s| &s.snap)
    }

    /// The apexes of the zones answering SERVFAIL.
    pub fn unavailable_zones(&self) -> impl Iterator<Item = &[u8]> {
        self.snaps.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| self.apexes.get(i))
    }

    /// The served zone whose apex is `apex` (lowercase wire form).
    pub fn zone(&self, apex: &[u8]) -> Option<&Arc<Snapshot>> {
        self.apexes.exact(apex).and_then(|i| self.snaps.get(i).as_ref()).map(|s| &s.snap)
    }
}

impl Zones for Catalog {
    /// In steps, each one load per name that the step before brought into the cache: the
    /// index slots of the names' suffixes, the ends of the apexes whose tags match, their
    /// bytes, the catalog entries of the zones found, the zone images' roots. With 10^5
    /// zones spread over hundreds of MiB each step misses for almost every name; taken one
    /// name at a time, a query's misses came one after the other (at 10^5 zones a batch of
    /// 32 so costs 0.8 µs a query less). Without an index (a few zones) all of it is in
    /// the cache already.
    fn warm(&self, names: &[&[u8]]) -> u64 {
        const B: usize = crate::answer::BATCH;
        let Some(index) = &self.apexes.index else { return 0 };
        let names = &names[..names.len().min(B)];
        let apexes = &*self.apexes;
        let mut hashes = [[0u64; WARM_PROBES]; B];
        let mut counts = [0usize; B];
        let mut warm = 0u64;
        for (i, name) in names.iter().enumerate() {
            for (k, (_, h)) in index.suffixes(name).take(WARM_PROBES).enumerate() {
                hashes[i][k] = h;
                counts[i] = k + 1;
                warm ^= index.slots[h as usize & (index.slots.len() - 1)].1 as u64;
            }
        }
        let matches = |i: usize| hashes[i][..counts[i]].iter().flat_map(|&h| index.run(h)).filter(|m| m.0);
        for i in 0..names.len() {
            for (_, p) in matches(i) {
                warm ^= apexes.ends[p] as u64;
            }
        }
        for i in 0..names.len() {
            for (_, p) in matches(i) {
                warm ^= apexes.get(p).first().copied().unwrap_or(0) as u64;
            }
        }
        let mut served: [Option<&Served>; B] = [None; B];
        for (name, s) in names.iter().zip(&mut served) {
            *s = apexes.longest(name).and_then(|p| self.snaps.get(p).as_ref());
            warm ^= s.map_or(0, |s| Arc::as_ptr(&s.snap) as u64);
        }
        for s in served.iter().flatten() {
            warm ^= s.image.zone().origin.len() as u64;
        }
        warm
    }

    fn reads_ahead(&self) -> bool {
        self.apexes.index.is_some()
    }

    /// The zone with the longest apex above the name, if it is served: when it is not, the
    /// name has no zone to answer from ([`Zones::unavailable`] then says so).
    #[inline]
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        let i = self.apexes.longest(qname_lower)?;
        self.snaps.get(i).as_ref().map(|s| s.image.zone())
    }

    #[inline]
    fn unavailable(&self, qname_lower: &[u8], served_len: Option<usize>) -> bool {
        if self.unavailable == 0 {
            return false;
        }
        // The longest apex above the name is the zone that must answer; if it cannot and
        // it is below the zone that would (a DS query's parent), SERVFAIL.
        self.apexes
            .longest(qname_lower)
            .is_some_and(|i| self.snaps.get(i).is_none() && served_len.is_none_or(|l| self.apexes.get(i).len() > l))
    }
}

impl Zones for ArchivedZoneImage {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        is_suffix_lower(qname_lower, &self.origin).then_some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::ApexIndex;
    use crate::wire::name::is_suffix_lower as in_zone;
    use crate::wire::name::Name;

    fn wire(s: &str) -> Vec<u8> {
        Name::parse_text(s.as_bytes(), None).unwrap().to_lowercase().as_wire().to_vec()
    }

    /// The index finds what a scan of the apexes, longest first, finds: nested zones, the
    /// root, names outside every zone, names equal to an apex, 10,000 zones.
    #[test]
    fn the_index_finds_the_longest_apex() {
        let mut apexes: Vec<Vec<u8>> =
            ["example.com.", "sub.example.com.", "a.b.sub.example.com.", "com.", "example.net.", "xn--bcher-kva.de."]
                .iter()
                .map(|s| wire(s))
                .collect();
        apexes.extend((0..10_000).map(|i| wire(&format!("zone{i}.hosted.test."))));
        let names = [
            "example.com.",
            "www.example.com.",
            "sub.example.com.",
            "x.sub.example.com.",
            "b.sub.example.com.",
            "a.b.sub.example.com.",
            "deep.a.b.sub.example.com.",
            "other.com.",
            "com.",
            "org.",
            ".",
            "zone9999.hosted.test.",
            "www.zone42.hosted.test.",
            "zone10000.hosted.test.",
            "hosted.test.",
            "example.net.",
            "xexample.net.",
        ];
        let scan = |name: &[u8], apexes: &[Vec<u8>]| {
            let mut best: Option<usize> = None;
            for (i, a) in apexes.iter().enumerate() {
                if in_zone(name, a) && best.is_none_or(|b| apexes[b].len() < a.len()) {
                    best = Some(i);
                }
            }
            best
        };
        for with_root in [false, true] {
            let mut apexes = apexes.clone();
            if with_root {
                apexes.push(wire("."));
            }
            let index = ApexIndex::new(apexes.iter().map(|a| a.as_slice()));
            for n in names {
                let name = wire(n);
                assert_eq!(index.find(&name, |i| &apexes[i]), scan(&name, &apexes), "{n} (root zone: {with_root})");
            }
        }
        let index = ApexIndex::new(std::iter::empty());
        assert_eq!(index.find(&wire("www.example.com."), |_| &[][..]), None);
    }

    #[test]
    fn unavailable_zones_by_index_and_by_scan_agree() {
        use super::{Apexes, Catalog, Versioned, Zones};
        let names = ["a.test.", "b.a.test.", "x.test.", "www.b.a.test.", "c.test.", "test.", "other."];
        for count in [3, 40] {
            // `count` unavailable zones: z0.test. ... and b.a.test. (no zone is served here)
            let mut un: Vec<Vec<u8>> = (0..count).map(|i| wire(&format!("z{i}.test."))).collect();
            un.push(wire("b.a.test."));
            let apexes = Apexes::new(un.iter().map(|u| u.as_slice()));
            assert_eq!(apexes.index.is_some(), count + 1 > super::SCAN_UP_TO);
            let cat = Catalog::from_parts(std::sync::Arc::new(apexes), Versioned::new(un.iter().map(|_| None)));
            assert_eq!(cat.unavailable_zones().count(), count + 1);
            for n in names {
                let name = wire(n);
                for served in [None, Some(wire("a.test.").len()), Some(wire("b.a.test.").len())] {
                    let want = un.iter().any(|u| served.is_none_or(|l| u.len() > l) && in_zone(&name, u));
                    assert_eq!(cat.unavailable(&name, served), want, "{n} served {served:?}, {count} zones");
                }
                assert!(cat.find_zone(&name).is_none());
            }
            assert!(cat.unavailable(&wire("www.z7.test."), None) == (count > 7));
        }
    }

    #[test]
    fn apexes_longest_and_exact_by_scan_and_index() {
        use super::Apexes;
        for extra in [0, 50] {
            let mut names: Vec<Vec<u8>> = ["Example.COM.", "sub.example.com.", "com."]
                .iter()
                .map(|s| Name::parse_text(s.as_bytes(), None).unwrap().as_wire().to_vec())
                .collect();
            names.extend((0..extra).map(|i| wire(&format!("z{i}.test."))));
            let a = Apexes::new(names.iter().map(|n| n.as_slice()));
            assert_eq!(a.get(0), &wire("example.com.")[..], "lowercased");
            assert_eq!(a.longest(&wire("www.sub.example.com.")), Some(1));
            assert_eq!(a.longest(&wire("www.example.com.")), Some(0));
            assert_eq!(a.longest(&wire("net.")), None);
            assert_eq!(a.exact(&wire("sub.example.com.")), Some(1));
            assert_eq!(a.exact(&wire("www.example.com.")), None);
            assert_eq!(a.exact(&wire("com.")), Some(2));
        }
    }

    #[test]
    fn versions_share_the_chunks_they_did_not_change() {
        use super::{Versioned, CHUNK};
        let a = Versioned::new(0..(3 * CHUNK + 7));
        assert_eq!(a.len(), 3 * CHUNK + 7);
        let mut b = a.clone();
        b.set(CHUNK + 1, 1_000_000);
        assert_eq!((*a.get(CHUNK + 1), *b.get(CHUNK + 1)), (CHUNK + 1, 1_000_000));
        // Only the written chunk was copied.
        assert!(std::sync::Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert!(!std::sync::Arc::ptr_eq(&a.chunks[1], &b.chunks[1]));
        assert!(std::sync::Arc::ptr_eq(&a.chunks[3], &b.chunks[3]));
        // A chunk no other version holds is written in place.
        let before = std::sync::Arc::as_ptr(&b.chunks[1]);
        b.set(CHUNK + 2, 7);
        assert_eq!(std::sync::Arc::as_ptr(&b.chunks[1]), before);
        assert_eq!(
            a.iter().copied().sum::<usize>() + 1_000_000 - (CHUNK + 1) + 7 - (CHUNK + 2),
            b.iter().copied().sum::<usize>()
        );
    }

    #[test]
    fn names_in_and_out_of_a_zone() {
        let origin = b"\x07example\x03com\x00";
        assert!(in_zone(b"\x07example\x03com\x00", origin));
        assert!(in_zone(b"\x03www\x07example\x03com\x00", origin));
        assert!(in_zone(b"\x00", b"\x00"));
        assert!(in_zone(b"\x03com\x00", b"\x00"));
        // The same bytes, but not on a label boundary.
        assert!(!in_zone(b"\x0bwww\x07example\x03com\x00", origin));
        assert!(!in_zone(b"\x08xexample\x03com\x00", origin));
        assert!(!in_zone(b"\x03com\x00", origin));
        assert!(!in_zone(b"\x07example\x03org\x00", origin));
    }
}
