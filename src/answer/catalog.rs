//! The set of zones served: which loaded zone answers for a name.

use std::sync::Arc;

use crate::snapshot::{ArchivedZoneImage, Snapshot};
use crate::wire::name::is_suffix_lower;

/// Finds the zone whose apex is the longest suffix of a (lowercased) name.
pub trait Zones {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage>;
}

/// Loaded snapshots, longest apex first.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    snaps: Vec<Arc<Snapshot>>,
}

impl Catalog {
    pub fn new(mut snaps: Vec<Arc<Snapshot>>) -> Catalog {
        snaps.sort_by_key(|s| std::cmp::Reverse(s.zone().origin.len()));
        Catalog { snaps }
    }

    pub fn snapshots(&self) -> &[Arc<Snapshot>] {
        &self.snaps
    }
}

impl Zones for Catalog {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        self.snaps.iter().map(|s| s.zone()).find(|z| is_suffix_lower(qname_lower, &z.origin))
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
