//! When the secondary zones next need the zone manager: two min-heaps of (time, zone), one of
//! checks (SOA query or transfer) and one of expiries, so a turn of the manager costs time in
//! proportion to what falls due, not to the zone count (10^5 zones must not be walked once
//! per event).
//!
//! A heap entry is not removed when the zone's timer moves. Instead each zone remembers the
//! time of the one entry that stands for it (`armed`, kept in the zone's state): a new time
//! is pushed only when it is earlier than that entry (or none stands), and an entry that
//! comes up with a time other than the zone's armed one is dropped. The entry that stands is
//! always at or before the zone's real time, so nothing is missed; when it comes up early the
//! zone is armed again at its real time. Each zone thus has one entry that counts and at
//! most a few superseded ones, whatever a peer's NOTIFYs do to its timers.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::wire::name::Name;

/// One heap of (time, zone).
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Entry>,
}

/// A heap entry, ordered by its time alone, earliest greatest (`BinaryHeap` is a max-heap).
#[derive(Debug)]
struct Entry {
    at: Instant,
    name: Name,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl Timers {
    /// The zone `name` needs the manager at `at`; `armed` is the time of its entry in this
    /// heap, if one stands (updated here).
    pub fn arm(&mut self, name: &Name, at: Instant, armed: &mut Option<Instant>) {
        if armed.is_none_or(|a| at < a) {
            self.heap.push(Entry { at, name: name.clone() });
            *armed = Some(at);
        }
    }

    /// The earliest entry if it is due at `now` (taken from the heap). The caller checks it
    /// against the zone's armed time and drops it when they differ.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Name)> {
        if self.heap.peek().is_some_and(|e| e.at <= now) {
            self.heap.pop().map(|e| (e.at, e.name))
        } else {
            None
        }
    }

    /// The earliest time any entry comes up (perhaps a superseded one: waking for it costs
    /// one look).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Entries in the heap, superseded ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    #[test]
    fn earliest_first_and_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let (mut a, mut b) = (None, None);
        t.arm(&name("b.test."), t0 + Duration::from_secs(20), &mut b);
        t.arm(&name("a.test."), t0 + Duration::from_secs(10), &mut a);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(15)), Some((t0 + Duration::from_secs(10), name("a.test."))));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(15)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(20)), Some((t0 + Duration::from_secs(20), name("b.test."))));
        assert!(t.is_empty());
    }

    #[test]
    fn a_later_time_is_not_pushed_an_earlier_one_supersedes() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let mut armed = None;
        t.arm(&name("a.test."), t0 + Duration::from_secs(10), &mut armed);
        // Later than the entry that stands: that entry comes up first and re-arms.
        t.arm(&name("a.test."), t0 + Duration::from_secs(30), &mut armed);
        assert_eq!((t.len(), armed), (1, Some(t0 + Duration::from_secs(10))));
        // Earlier: pushed, and it is the one that counts.
        t.arm(&name("a.test."), t0 + Duration::from_secs(5), &mut armed);
        assert_eq!((t.len(), armed), (2, Some(t0 + Duration::from_secs(5))));
    }

    #[test]
    fn a_flood_of_rearms_adds_no_entries() {
        // A zone NOTIFYed a million times between two turns: its due time is `now` each time,
        // never earlier than the entry that stands.
        let t0 = Instant::now();
        let mut t = Timers::default();
        let mut armed = None;
        for _ in 0..1_000_000 {
            t.arm(&name("a.test."), t0, &mut armed);
        }
        assert_eq!(t.len(), 1);
    }
}
