//! The set of zones served: which loaded zone answers for a name.

use std::sync::Arc;

use crate::snapshot::{ArchivedZoneImage, Snapshot};

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
        self.snaps.iter().map(|s| s.zone()).find(|z| in_zone(qname_lower, &z.origin))
    }
}

impl Zones for ArchivedZoneImage {
    fn find_zone(&self, qname_lower: &[u8]) -> Option<&ArchivedZoneImage> {
        in_zone(qname_lower, &self.origin).then_some(self)
    }
}

/// Whether the lowercased wire name `name` is `origin` or below it (`origin` lowercased too):
/// the bytes first, which rejects most other zones at once, then the label boundary.
#[inline]
fn in_zone(name: &[u8], origin: &[u8]) -> bool {
    let Some(start) = name.len().checked_sub(origin.len()) else { return false };
    if name[start..] != *origin {
        return false;
    }
    let mut i = 0;
    while i < start {
        i += name[i] as usize + 1;
    }
    i == start
}

#[cfg(test)]
mod tests {
    use super::in_zone;

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
