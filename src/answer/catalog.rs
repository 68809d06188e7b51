//! The set of zones served: which loaded zone answers for a name. With more than a few
//! zones, an index of the apexes (a hash table built once per catalog version) is probed
//! once per label suffix of the query name, longest first, so that finding the zone costs
//! the same for two zones or a million.

use std::hash::BuildHasher;
use std::sync::Arc;

use crate::snapshot::{ArchivedZoneImage, Snapshot};
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
}

/// Up to this many zones a scan of the apexes, longest first, is as quick as the index.
const SCAN_UP_TO: usize = 8;

/// Loaded snapshots, longest apex first.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    snaps: Vec<Arc<Snapshot>>,
    /// The apexes of `snaps` (when there are more than [`SCAN_UP_TO`]).
    index: Option<ApexIndex>,
    /// Apexes (lowercased wire names) of zones we cannot answer from.
    unavailable: Vec<Box<[u8]>>,
    /// Their index (when there are more than [`SCAN_UP_TO`]): a host whose 10^5 secondary
    /// zones wait for their first transfer must not scan them for every query.
    unavailable_index: Option<ApexIndex>,
}

/// Apexes (lowercase wire names) by hash: open addressing, linear probing, at most half
/// full. A slot holds the apex's hash and its position in the caller's list (+1; 0: empty),
/// so a probe reads the apex itself only when the hash matched.
#[derive(Clone, Debug)]
pub struct ApexIndex {
    slots: Box<[(u64, u32)]>,
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
            index.slots[s] = (h, i as u32 + 1);
            let l = apex.len().min(255);
            index.lengths[l / 64] |= 1 << (l % 64);
        }
        index
    }

    /// The position of the longest apex that is a suffix of `name` (lowercase wire form),
    /// `apex(i)` giving the i-th apex to compare with.
    #[inline]
    pub fn find<'a>(&self, name: &[u8], apex: impl Fn(usize) -> &'a [u8]) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut at = 0;
        while at < name.len() {
            let suffix = &name[at..];
            let l = suffix.len();
            if l <= 255 && self.lengths[l / 64] & (1 << (l % 64)) != 0 {
                let h = self.hasher.hash_one(suffix);
                let mut s = h as usize & mask;
                loop {
                    let (sh, i) = self.slots[s];
                    if i == 0 {
                        break;
                    }
                    if sh == h && apex(i as usize - 1) == suffix {
                        return Some(i as usize - 1);
                    }
                    s = (s + 1) & mask;
                }
            }
            if name[at] == 0 {
                break;
            }
            at += name[at] as usize + 1;
        }
        None
    }
}

impl Catalog {
    pub fn new(snaps: Vec<Arc<Snapshot>>) -> Catalog {
        Catalog::with_unavailable(snaps, Vec::new())
    }

    /// Served snapshots, and the apexes of zones that answer SERVFAIL (see
    /// [`Zones::unavailable`]).
    pub fn with_unavailable(mut snaps: Vec<Arc<Snapshot>>, unavailable: Vec<Box<[u8]>>) -> Catalog {
        snaps.sort_by_key(|s| std::cmp::Reverse(s.zone().origin.len()));
        let index =
            (snaps.len() > SCAN_UP_TO).then(|| ApexIndex::new(snaps.iter().map(|s| s.zone().origin.as_slice())));
        let unavailable_index =
            (unavailable.len() > SCAN_UP_TO).then(|| ApexIndex::new(unavailable.iter().map(|u| &u[..])));
        Catalog { snaps, index, unavailable, unavailable_index }
    }

    /// The apexes of the zones answering SERVFAIL.
    pub fn unavailable_zones(&self) -> &[Box<[u8]>] {
        &self.unavailable
    }

    pub fn snapshots(&self) -> &[Arc<Snapshot>] {
        &self.snaps
    }
}

impl Zones for Catalog {
    #[inline]
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        match &self.index {
            Some(index) => {
                let apex = |i: usize| self.snaps[i].zone().origin.as_slice();
                index.find(qname_lower, apex).map(|i| self.snaps[i].zone())
            }
            None => self.snaps.iter().map(|s| s.zone()).find(|z| is_suffix_lower(qname_lower, &z.origin)),
        }
    }

    #[inline]
    fn unavailable(&self, qname_lower: &[u8], served_len: Option<usize>) -> bool {
        if self.unavailable.is_empty() {
            return false;
        }
        match &self.unavailable_index {
            // The longest unavailable apex above the name: if it is not below the zone
            // that answers, none is.
            Some(index) => index
                .find(qname_lower, |i| &self.unavailable[i])
                .is_some_and(|i| served_len.is_none_or(|l| self.unavailable[i].len() > l)),
            None => self
                .unavailable
                .iter()
                .any(|u| served_len.is_none_or(|l| u.len() > l) && is_suffix_lower(qname_lower, u)),
        }
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
        use super::{Catalog, Zones};
        let names = ["a.test.", "b.a.test.", "x.test.", "www.b.a.test.", "c.test.", "test.", "other."];
        for count in [3, 40] {
            // `count` unavailable zones: z0.test. ... and b.a.test.
            let mut un: Vec<Box<[u8]>> = (0..count).map(|i| wire(&format!("z{i}.test.")).into()).collect();
            un.push(wire("b.a.test.").into());
            let cat = Catalog::with_unavailable(Vec::new(), un.clone());
            assert_eq!(cat.unavailable_index.is_some(), count > super::SCAN_UP_TO);
            for n in names {
                let name = wire(n);
                for served in [None, Some(wire("a.test.").len()), Some(wire("b.a.test.").len())] {
                    let want = un.iter().any(|u| served.is_none_or(|l| u.len() > l) && in_zone(&name, u));
                    assert_eq!(cat.unavailable(&name, served), want, "{n} served {served:?}, {count} zones");
                }
            }
            assert!(cat.unavailable(&wire("www.z7.test."), None) == (count > 7));
        }
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
