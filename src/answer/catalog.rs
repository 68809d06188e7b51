//! The set of zones served: which loaded zone answers for a name.

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

/// Loaded snapshots, longest apex first.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    snaps: Vec<Arc<Snapshot>>,
    /// Apexes (lowercased wire names) of zones we cannot answer from.
    unavailable: Vec<Box<[u8]>>,
}

impl Catalog {
    pub fn new(snaps: Vec<Arc<Snapshot>>) -> Catalog {
        Catalog::with_unavailable(snaps, Vec::new())
    }

    /// Served snapshots, and the apexes of zones that answer SERVFAIL (see
    /// [`Zones::unavailable`]).
    pub fn with_unavailable(mut snaps: Vec<Arc<Snapshot>>, unavailable: Vec<Box<[u8]>>) -> Catalog {
        snaps.sort_by_key(|s| std::cmp::Reverse(s.zone().origin.len()));
        Catalog { snaps, unavailable }
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
        self.snaps.iter().map(|s| s.zone()).find(|z| is_suffix_lower(qname_lower, &z.origin))
    }

    #[inline]
    fn unavailable(&self, qname_lower: &[u8], served_len: Option<usize>) -> bool {
        !self.unavailable.is_empty()
            && self
                .unavailable
                .iter()
                .any(|u| served_len.is_none_or(|l| u.len() > l) && is_suffix_lower(qname_lower, u))
    }
}

impl Zones for ArchivedZoneImage {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        is_suffix_lower(qname_lower, &self.origin).then_some(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::wire::name::is_suffix_lower as in_zone;

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
