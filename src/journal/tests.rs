//! Journal tests: round trips, refusals, and crashes simulated by cutting, extending and
//! damaging the file at every byte of interest.

use std::path::{Path, PathBuf};

use super::*;
use crate::wire::rdata::rtype;
use crate::zone::{Record, SrcPos, Zone};

fn n(s: &str) -> Name {
    Name::parse_text(s.as_bytes(), None).unwrap()
}

fn soa_rdata(serial: u32) -> Vec<u8> {
    let mut v = b"\x02ns\x02ex\x00\x02hm\x02ex\x00".to_vec();
    for x in [serial, 7200, 900, 1209600, 300] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// Serial of version `k`: starts just below the wrap so that serial arithmetic is used.
fn serial_of(k: u32) -> u32 {
    0xFFFF_FFF0u32.wrapping_add(k.wrapping_mul(3))
}

/// Version `k` of the test zone: SOA, NS, address records `h{i}` for the last five
/// versions, one TXT whose size and TTL change with `k`.
fn zone_v(k: u32) -> Zone {
    let p = SrcPos::default();
    let mut z = Zone::new(&n("ex."));
    z.insert(&n("ex."), rtype::SOA, 3600, &soa_rdata(serial_of(k)), p).unwrap();
    z.insert(&n("ex."), rtype::NS, 3600, b"\x02ns\x02ex\x00", p).unwrap();
    z.insert(&n("ns.ex."), rtype::A, 3600, &[192, 0, 2, 53], p).unwrap();
    for i in k.saturating_sub(4)..=k {
        let owner = n(&format!("h{i}.ex."));
        z.insert(&owner, rtype::A, 300, &[10, 0, (i >> 8) as u8, i as u8], p).unwrap();
    }
    let len = 1 + (k as usize * 37) % 200;
    let mut txt = vec![len as u8];
    txt.extend(std::iter::repeat_n(b'a' + (k % 26) as u8, len));
    z.insert(&n("t.ex."), rtype::TXT, 60 + k % 3, &txt, p).unwrap();
    z
}

fn cs(k: u32) -> Changeset {
    zone_v(k - 1).diff(&zone_v(k))
}

fn same(a: &Zone, b: &Zone) -> bool {
    a.records_canonical() == b.records_canonical()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    /// A journal starting at version 0 with versions 1..=count appended.
    fn new(count: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ex.journal");
        let mut j = Journal::create(&path, &n("ex."), serial_of(0), Limits::default()).unwrap();
        for k in 1..=count {
            assert_eq!(j.append(&cs(k)).unwrap(), serial_of(k));
        }
        Fixture { _dir: dir, path }
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    fn write(&self, bytes: &[u8]) {
        std::fs::write(&self.path, bytes).unwrap();
    }

    fn open(&self) -> Result<(Journal, Option<TornTail>), JournalError> {
        Journal::open(&self.path, Limits::default())
    }

    /// Offsets of the entries, from a clean open.
    fn offsets(&self) -> Vec<u64> {
        self.open().unwrap().0.entries().iter().map(|e| e.offset).collect()
    }
}

/// Opens the journal and checks that it holds exactly versions 1..=k and replays to
/// version k from version 0.
fn check_holds(path: &Path, k: u32) -> Journal {
    let (j, _) = Journal::open(path, Limits::default()).unwrap();
    assert_eq!(j.len(), k as usize);
    assert_eq!(j.last_serial(), serial_of(k));
    let r = replay(zone_v(0), &j).unwrap();
    assert_eq!(r.serial, serial_of(k));
    assert!(same(&r.zone, &zone_v(k)), "replay gives version {k}");
    j
}

#[test]
fn round_trip() {
    let f = Fixture::new(6);
    let (j, torn) = f.open().unwrap();
    assert_eq!(torn, None);
    assert_eq!(j.origin(), &n("ex."));
    assert_eq!(j.first_serial(), serial_of(0));
    assert_eq!(j.last_serial(), serial_of(6));
    assert_eq!(j.len(), 6);
    assert_eq!(j.file_len(), f.bytes().len() as u64);
    for k in 1..=6u32 {
        let e = j.entries()[k as usize - 1];
        assert_eq!((e.from, e.to), (serial_of(k - 1), serial_of(k)));
        assert_eq!(j.read(k as usize - 1).unwrap(), cs(k));
    }
    // IXFR ranges.
    assert_eq!(j.changes_since(serial_of(6)).unwrap(), Some(vec![]));
    assert_eq!(j.changes_since(serial_of(4)).unwrap(), Some(vec![cs(5), cs(6)]));
    assert_eq!(j.changes_since(serial_of(0)).unwrap().unwrap().len(), 6);
    assert_eq!(j.changes_since(serial_of(0) - 3).unwrap(), None);
    assert_eq!(j.changes_since(serial_of(2) + 1).unwrap(), None);
    assert_eq!(j.changes_since(serial_of(7)).unwrap(), None);
    // Replay from every version.
    for k in 0..=6 {
        let r = replay(zone_v(k), &j).unwrap();
        assert!(same(&r.zone, &zone_v(6)));
        assert_eq!((r.applied, r.skipped), (6 - k as usize, k as usize));
    }
    drop(j);
    check_holds(&f.path, 6);
}

#[test]
fn append_refusals_leave_the_file_alone() {
    let f = Fixture::new(2);
    let before = f.bytes();
    let (mut j, _) = f.open().unwrap();
    let refused = |j: &mut Journal, c: &Changeset| {
        let e = j.append(c).unwrap_err();
        assert_eq!(j.len(), 2);
        e
    };
    // Does not chain.
    assert!(matches!(refused(&mut j, &cs(2)), JournalError::Chain { last, from, .. }
        if last == serial_of(2) && from == serial_of(1)));
    assert!(matches!(refused(&mut j, &cs(4)), JournalError::Chain { .. }));
    // Not newer: equal, older, and exactly 2^31 away.
    let soa = |s: u32| Record { owner: n("ex."), rtype: rtype::SOA, ttl: 3600, rdata: soa_rdata(s).into() };
    for to in [serial_of(2), serial_of(1), serial_of(2).wrapping_add(1 << 31)] {
        let c = Changeset { soa_from: Some(soa(serial_of(2))), soa_to: Some(soa(to)), ..Default::default() };
        let e = refused(&mut j, &c);
        assert!(e.to_string().contains("not newer"), "{e}");
    }
    // No SOA, records outside the zone, apex SOA among the records.
    let mut c = cs(3);
    c.soa_to = None;
    assert!(refused(&mut j, &c).to_string().contains("no SOA after"));
    let mut c = cs(3);
    c.added.push(Record { owner: n("x.other."), rtype: rtype::A, ttl: 1, rdata: vec![1, 2, 3, 4].into() });
    assert!(refused(&mut j, &c).to_string().contains("outside the zone"));
    let mut c = cs(3);
    c.added.push(soa(99));
    assert!(refused(&mut j, &c).to_string().contains("apex SOA"));
    let mut c = cs(3);
    c.soa_from.as_mut().unwrap().owner = n("sub.ex.");
    assert!(refused(&mut j, &c).to_string().contains("not the apex SOA"));
    drop(j);
    assert_eq!(f.bytes(), before);
    // And the next good one goes in.
    let (mut j, _) = f.open().unwrap();
    j.append(&cs(3)).unwrap();
    drop(j);
    check_holds(&f.path, 3);
}

#[test]
fn create_refuses_existing_and_lock_refuses_second_writer() {
    let f = Fixture::new(1);
    assert!(matches!(Journal::create(&f.path, &n("ex."), 1, Limits::default()), Err(JournalError::Exists { .. })));
    let (j, _) = f.open().unwrap();
    assert!(matches!(f.open(), Err(JournalError::Locked { .. })));
    drop(j);
    let (j, _) = f.open().unwrap();
    assert_eq!(j.len(), 1);
    drop(j);
    assert!(matches!(
        Journal::open_or_create(&f.path, &n("other."), 1, Limits::default()),
        Err(JournalError::WrongZone { .. })
    ));
    let (j, _) = Journal::open_or_create(&f.path, &n("EX."), 1, Limits::default()).unwrap();
    assert_eq!(j.len(), 1);
}

#[test]
fn empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ex.journal");
    let (j, torn) = Journal::open_or_create(&path, &n("ex."), serial_of(0), Limits::default()).unwrap();
    assert_eq!(torn, None);
    assert_eq!((j.len(), j.first_serial(), j.last_serial()), (0, serial_of(0), serial_of(0)));
    assert_eq!(j.changes_since(serial_of(0)).unwrap(), Some(vec![]));
    let r = replay(zone_v(0), &j).unwrap();
    assert_eq!((r.applied, r.skipped, r.serial), (0, 0, serial_of(0)));
    assert!(matches!(replay(zone_v(1), &j), Err(JournalError::BaseAhead { .. })));
    drop(j);
    // Everything after a complete header is entries: a cut inside the header is corruption
    // (creation is atomic, so it cannot be a torn write).
    let bytes = std::fs::read(&path).unwrap();
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(matches!(Journal::open(&path, Limits::default()), Err(JournalError::Corrupt { .. })), "cut {cut}");
    }
}

/// A crash while the last entry was being written leaves any prefix of it: every one is
/// cut off, the entries before stay, and the journal takes the entry again.
#[test]
fn torn_last_entry_at_every_byte() {
    let f = Fixture::new(3);
    let full = f.bytes();
    let last = *f.offsets().last().unwrap() as usize;
    for cut in last..full.len() {
        f.write(&full[..cut]);
        let (mut j, torn) = f.open().unwrap();
        if cut == last {
            assert_eq!(torn, None);
        } else {
            let t = torn.unwrap_or_else(|| panic!("cut {cut}: no torn tail reported"));
            assert_eq!((t.offset, t.cut), (last as u64, (cut - last) as u64), "cut {cut}");
        }
        assert_eq!(j.len(), 2);
        assert_eq!(j.file_len(), last as u64);
        assert_eq!(std::fs::metadata(&f.path).unwrap().len(), last as u64);
        // The same change again, as a restarted writer would.
        j.append(&cs(3)).unwrap();
        drop(j);
        assert_eq!(f.bytes(), full, "cut {cut}: rewritten journal differs");
    }
    check_holds(&f.path, 3);
}

/// The file grew but the data did not land (zeros or garbage where the last entry should
/// be, or after it).
#[test]
fn zeroed_and_garbage_tails() {
    let f = Fixture::new(3);
    let full = f.bytes();
    let offsets = f.offsets();
    let last = *offsets.last().unwrap() as usize;
    for fill in [0x00u8, 0xFF, 0x5A] {
        // The last entry's bytes replaced from some point on.
        for from in (last..full.len()).step_by(7) {
            let mut b = full.clone();
            b[from..].fill(fill);
            f.write(&b);
            let (j, torn) = f.open().unwrap();
            if b == full {
                assert_eq!(torn, None);
                assert_eq!(j.len(), 3);
            } else {
                assert_eq!(torn.unwrap().offset, last as u64, "fill {fill:#x} from {from}");
                assert_eq!(j.len(), 2);
            }
        }
        // Junk after a complete journal.
        for extra in [1usize, 15, 16, 17, 100, 5000] {
            let mut b = full.clone();
            b.extend(std::iter::repeat_n(fill, extra));
            f.write(&b);
            let (j, torn) = f.open().unwrap();
            let t = torn.unwrap();
            assert_eq!((t.offset, t.cut), (full.len() as u64, extra as u64));
            assert_eq!(j.len(), 3);
        }
    }
    f.write(&full);
    check_holds(&f.path, 3);
}

/// A flipped bit in the last entry is a torn tail (cut); anywhere before it the journal is
/// refused and left as it is; in the header too. Every bit of the file header and of the
/// entries' heads and checksums, one bit of every other byte (each cut costs an fsync).
#[test]
fn flipped_bits() {
    let f = Fixture::new(3);
    let full = f.bytes();
    let offsets = f.offsets();
    let (first, last) = (offsets[0] as usize, offsets[2] as usize);
    let framing = |at: usize| {
        at < first
            || offsets.iter().any(|&o| (o as usize..o as usize + 16).contains(&at))
            || offsets.iter().skip(1).chain([&(full.len() as u64)]).any(|&e| (e as usize - 4..e as usize).contains(&at))
    };
    let bits = (0..full.len() * 8).filter(|b| framing(b / 8) || b % 8 == (b / 8) % 8);
    for bit in bits {
        let mut b = full.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        f.write(&b);
        let at = bit / 8;
        match f.open() {
            Ok((j, torn)) => {
                assert!(at >= last, "byte {at}: damage before the last entry accepted");
                assert_eq!(torn.unwrap().offset, last as u64);
                assert_eq!(j.len(), 2);
            }
            Err(JournalError::Corrupt { reason, .. }) => {
                assert!(at < last, "byte {at}: damage in the last entry refused: {reason}");
                if at >= first {
                    assert!(reason.contains("follow"), "byte {at}: {reason}");
                }
                assert_eq!(f.bytes(), b, "a refused journal is not modified");
            }
            Err(e) => panic!("byte {at}: {e}"),
        }
    }
}

/// Cuts at random points, with random junk after them, against what must survive.
#[test]
fn random_cuts_and_junk() {
    let f = Fixture::new(8);
    let full = f.bytes();
    let offsets = f.offsets();
    let header = offsets[0] as usize;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..300 {
        let cut = header + (next() as usize) % (full.len() - header + 1);
        let junk = match next() % 3 {
            0 => 0,
            _ => 1 + (next() as usize) % 300,
        };
        let mut b = full[..cut].to_vec();
        for _ in 0..junk {
            b.push(next() as u8);
        }
        f.write(&b);
        let complete = offsets.iter().skip(1).chain([&(full.len() as u64)]).filter(|&&o| o as usize <= cut).count();
        let (j, torn) = f.open().unwrap();
        assert_eq!(j.len(), complete, "cut {cut} junk {junk}");
        let good_end = if complete == 8 { full.len() } else { offsets[complete] as usize };
        assert_eq!(torn.is_some(), b.len() > good_end, "cut {cut} junk {junk}");
        drop(j);
        check_holds(&f.path, complete as u32);
        // Back to the whole journal for the next round.
        f.write(&full);
    }
}

#[test]
fn replay_refuses_what_does_not_belong() {
    let f = Fixture::new(4);
    let (j, _) = f.open().unwrap();
    // A base of the right serial with different data: a changeset does not apply.
    let mut wrong = zone_v(1);
    let txt = wrong.rrset(&n("t.ex."), rtype::TXT).unwrap().rdata.first().unwrap().to_vec();
    wrong.remove(&n("t.ex."), rtype::TXT, &txt);
    assert!(matches!(replay(wrong, &j), Err(JournalError::Replay { .. })));
    let mut extra = zone_v(1);
    extra.insert(&n("h2.ex."), rtype::A, 300, &[10, 0, 0, 2], SrcPos::default()).unwrap();
    let e = replay(extra, &j).unwrap_err();
    assert!(e.to_string().contains("adds a record the zone already has: h2.ex. type 1"), "{e}");
    // Serials outside the journal, or within it but not a version of it.
    assert!(matches!(replay(zone_v(5), &j), Err(JournalError::BaseAhead { .. })));
    let mut z = zone_v(2);
    z.apply(&Changeset {
        soa_to: Some(Record {
            owner: n("ex."),
            rtype: rtype::SOA,
            ttl: 3600,
            rdata: soa_rdata(serial_of(2) + 1).into(),
        }),
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(replay(z, &j), Err(JournalError::NotInHistory { .. })));
    let other = Zone::new(&n("other."));
    assert!(matches!(replay(other, &j), Err(JournalError::WrongZone { .. })));
}

#[test]
fn compaction_keeps_what_ixfr_and_replay_need() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ex.journal");
    let base = dir.path().join("ex.snap");
    let limits = Limits { max_bytes: 1 << 20, max_depth: 6 };
    let mut j = Journal::create(&path, &n("ex."), serial_of(0), limits).unwrap();
    for k in 1..=7 {
        j.append(&cs(k)).unwrap();
    }
    assert!(j.needs_compaction());
    // A base that is not a version of the journal is refused before anything is written.
    assert!(matches!(compact_onto_base(&mut j, &zone_v(8), &base), Err(JournalError::BaseAhead { .. })));
    assert!(!base.exists());
    let c = compact_onto_base(&mut j, &zone_v(7), &base).unwrap();
    assert_eq!(c, Compacted { dropped: 4, kept: 3, bytes_before: c.bytes_before, bytes_after: j.file_len() });
    assert!(c.bytes_after < c.bytes_before);
    assert!(!j.needs_compaction());
    assert_eq!((j.first_serial(), j.last_serial()), (serial_of(4), serial_of(7)));
    assert_eq!(j.changes_since(serial_of(4)).unwrap().unwrap(), vec![cs(5), cs(6), cs(7)]);
    assert_eq!(j.changes_since(serial_of(3)).unwrap(), None);
    // The new file takes appends and is locked like the old one.
    j.append(&cs(8)).unwrap();
    assert!(matches!(Journal::open(&path, limits), Err(JournalError::Locked { .. })));
    drop(j);
    // Restart: the base snapshot plus the journal.
    let (j, torn) = Journal::open(&path, limits).unwrap();
    assert_eq!(torn, None);
    let snap = crate::snapshot::Snapshot::open(&base).unwrap();
    let base_zone = crate::snapshot::to_zone(snap.zone()).unwrap();
    assert_eq!(base_zone.serial(), Some(serial_of(7)));
    let r = replay(base_zone, &j).unwrap();
    assert_eq!((r.applied, r.skipped), (1, 3));
    assert!(same(&r.zone, &zone_v(8)));
    // An older base than the journal's start is a gap.
    assert!(matches!(replay(zone_v(3), &j), Err(JournalError::Gap { .. })));
    let r = replay(zone_v(4), &j).unwrap();
    assert!(same(&r.zone, &zone_v(8)));
}

#[test]
fn compaction_never_drops_what_the_base_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ex.journal");
    let limits = Limits { max_bytes: 1, max_depth: 0 };
    let mut j = Journal::create(&path, &n("ex."), serial_of(0), limits).unwrap();
    for k in 1..=5 {
        j.append(&cs(k)).unwrap();
    }
    // The base is at version 2: entries 3..=5 must stay whatever the limits say.
    let c = j.compact(serial_of(2)).unwrap();
    assert_eq!((c.dropped, c.kept), (2, 3));
    assert_eq!(j.first_serial(), serial_of(2));
    // Nothing more to drop for the same base.
    assert_eq!(j.compact(serial_of(2)).unwrap().dropped, 0);
    assert!(matches!(j.compact(serial_of(1)), Err(JournalError::Gap { .. })));
    // Base at the last version: the journal becomes empty and continues from there.
    let c = j.compact(serial_of(5)).unwrap();
    assert_eq!((c.dropped, c.kept), (3, 0));
    assert_eq!((j.first_serial(), j.last_serial()), (serial_of(5), serial_of(5)));
    assert!(matches!(j.append(&cs(5)), Err(JournalError::Chain { .. })));
    j.append(&cs(6)).unwrap();
    drop(j);
    let (j, _) = Journal::open(&path, limits).unwrap();
    let r = replay(zone_v(5), &j).unwrap();
    assert!(same(&r.zone, &zone_v(6)));
}

/// The states a crash during compaction can leave: the new base with the old journal, and
/// a half-written temporary file beside the journal.
#[test]
fn crash_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ex.journal");
    let base = dir.path().join("ex.snap");
    let limits = Limits { max_bytes: 1 << 20, max_depth: 4 };
    let mut j = Journal::create(&path, &n("ex."), serial_of(0), limits).unwrap();
    for k in 1..=6 {
        j.append(&cs(k)).unwrap();
    }
    drop(j);
    let old = std::fs::read(&path).unwrap();
    // Step 1 done, step 2 not: the old journal holds entries older than the base.
    let img = crate::snapshot::compile(&zone_v(6)).unwrap();
    crate::snapshot::write_snapshot(&base, &img).unwrap();
    // And a temporary file from the interrupted rewrite.
    let tmp = dir.path().join(format!("{}4242", tmp_prefix(&path)));
    std::fs::write(&tmp, &old[..old.len() / 2]).unwrap();
    let (mut j, torn) = Journal::open(&path, limits).unwrap();
    assert_eq!(torn, None);
    assert!(!tmp.exists(), "stale temporary file removed");
    let snap = crate::snapshot::Snapshot::open(&base).unwrap();
    let r = replay(crate::snapshot::to_zone(snap.zone()).unwrap(), &j).unwrap();
    assert_eq!((r.applied, r.skipped), (0, 6));
    assert!(same(&r.zone, &zone_v(6)));
    // Compaction again, then both the old and the new journal replay onto the base.
    let c = compact_onto_base(&mut j, &r.zone, &base).unwrap();
    assert_eq!((c.dropped, c.kept), (4, 2));
    drop(j);
    let new = std::fs::read(&path).unwrap();
    for bytes in [&old, &new] {
        std::fs::write(&path, bytes).unwrap();
        let (j, _) = Journal::open(&path, limits).unwrap();
        let r = replay(crate::snapshot::to_zone(snap.zone()).unwrap(), &j).unwrap();
        assert!(same(&r.zone, &zone_v(6)));
    }
}

/// Entries with good checksums that do not chain are no torn write: refused.
#[test]
fn checksummed_entries_must_chain() {
    let f = Fixture::new(2);
    let full = f.bytes();
    let offsets = f.offsets();
    let (e1, e2) = (offsets[0] as usize, offsets[1] as usize);
    // The first entry twice.
    let mut b = full[..e2].to_vec();
    b.extend_from_slice(&full[e1..e2]);
    f.write(&b);
    let e = f.open().unwrap_err();
    assert!(e.to_string().contains("does not follow serial"), "{e}");
    assert_eq!(f.bytes(), b);
    // The second entry alone after the header.
    let mut b = full[..e1].to_vec();
    b.extend_from_slice(&full[e2..]);
    f.write(&b);
    assert!(matches!(f.open(), Err(JournalError::Corrupt { .. })));
    // A header from another format version.
    let mut b = full.clone();
    b[8] = 2;
    f.write(&b);
    let e = f.open().unwrap_err();
    assert!(e.to_string().contains("format version 2"), "{e}");
}

/// A changeset of 20,000 records (a bulk change), through append, reopen, IXFR read and
/// replay.
#[test]
fn large_changeset() {
    let f = Fixture::new(1);
    let mut big = zone_v(2);
    for i in 0..20_000u32 {
        let owner = n(&format!("bulk{i}.ex."));
        big.insert(
            &owner,
            rtype::AAAA,
            300,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (i >> 8) as u8, i as u8],
            SrcPos::default(),
        )
        .unwrap();
    }
    let c = zone_v(1).diff(&big);
    assert!(c.added.len() > 20_000);
    let (mut j, _) = f.open().unwrap();
    j.append(&c).unwrap();
    assert!(j.entries()[1].len > 20_000 * 36);
    drop(j);
    let (j, torn) = f.open().unwrap();
    assert_eq!(torn, None);
    assert_eq!(j.changes_since(serial_of(1)).unwrap(), Some(vec![c]));
    let r = replay(zone_v(0), &j).unwrap();
    assert!(same(&r.zone, &big));
}

/// `body` framed as an entry from `from` to `to`, with both checksums right: what a writer
/// that wrote these bytes would have left (no torn write explains them).
fn framed(from: u32, to: u32, body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(format::ENTRY_OVERHEAD + body.len());
    e.extend_from_slice(&(body.len() as u32).to_le_bytes());
    e.extend_from_slice(&from.to_le_bytes());
    e.extend_from_slice(&to.to_le_bytes());
    let head_crc = crc32c::crc32c(&e);
    e.extend_from_slice(&head_crc.to_le_bytes());
    e.extend_from_slice(body);
    let crc = crc32c::crc32c(&e);
    e.extend_from_slice(&crc.to_le_bytes());
    e
}

/// 20,000 entry bodies mutated (counts, names, types, lengths, rdata) and decoded against
/// the zone and the entry's serials. A body that decodes is exactly what encoding its
/// changeset writes (nothing read differently from what is there, no record silently
/// changed), holds only records of the zone and the two SOAs at the apex; none panics or
/// allocates by a count it claims.
#[test]
fn mutated_bodies_decode_exactly_or_not_at_all() {
    use crate::testing::{measure, mutate, Rng};
    let origin = n("ex.");
    let mut seeds = Vec::new();
    for k in 1..=6 {
        let mut e = Vec::new();
        format::encode_entry(serial_of(k - 1), serial_of(k), &cs(k), &mut e).unwrap();
        let head = format::EntryHead::decode(&e).unwrap();
        seeds.push((head, e[format::ENTRY_HEAD..e.len() - format::ENTRY_TAIL].to_vec()));
    }
    let mut rng = Rng::new(0x0100_e1a1);
    let (mut decoded, mut refused) = (0, 0);
    let mut reasons = std::collections::BTreeMap::new();
    for i in 0..20_000 {
        let (head, seed) = &seeds[i % seeds.len()];
        let mut body = seed.clone();
        mutate(&mut rng, &mut body, 0);
        let head = format::EntryHead { body_len: body.len() as u32, ..*head };
        let (r, mem) = measure(|| format::decode_body(&body, &origin, &head));
        assert!(mem.largest <= 16 << 10, "round {i}: {mem:?}");
        match r {
            Ok(c) => {
                decoded += 1;
                let mut again = Vec::new();
                format::encode_entry(head.from, head.to, &c, &mut again).unwrap();
                assert_eq!(
                    &again[format::ENTRY_HEAD..again.len() - format::ENTRY_TAIL],
                    &body[..],
                    "round {i}: decoded as something else: {c:?}"
                );
                for r in c.removed.iter().chain(&c.added) {
                    assert!(r.owner.ends_with(&origin), "round {i}: {r:?}");
                    assert!(r.rtype != rtype::SOA || r.owner != origin, "round {i}: {r:?}");
                }
            }
            Err(e) => {
                refused += 1;
                let what = e.split(": ").nth(1).unwrap_or(&e).split(|c: char| c.is_ascii_digit()).next().unwrap_or("");
                *reasons.entry(what.to_string()).or_insert(0) += 1;
            }
        }
    }
    eprintln!("decoded {decoded}, refused {refused}: {reasons:?}");
    assert!(refused > 12_000, "{refused} refused");
    // TTLs, rdata octets, types of non-SOA records: other data, still well formed.
    assert!(decoded > 1_000, "{decoded} decoded");
}

/// 3,000 journal files with one entry's body mutated and both its checksums made right
/// (a writer wrote these bytes: no tear explains them). Open either refuses the journal
/// and leaves the file as it was, or takes it; a journal taken reads back each entry as
/// written and replays from version 0 to its last serial or refuses the replay, never a
/// panic. An entry in the middle that does not make sense is never taken as a torn tail.
#[test]
fn mutated_entries_with_good_checksums() {
    use crate::testing::{measure, mutate, Rng};
    let f = Fixture::new(4);
    let full = f.bytes();
    let offsets = f.offsets();
    let bounds: Vec<(usize, usize)> = offsets
        .iter()
        .zip(offsets.iter().skip(1).chain([&(full.len() as u64)]))
        .map(|(a, b)| (*a as usize, *b as usize))
        .collect();
    let mut rng = Rng::new(0x0a11_0ad5);
    let (mut opened, mut refused, mut replayed) = (0, 0, 0);
    for i in 0..3_000 {
        let k = rng.below(bounds.len());
        let (start, end) = bounds[k];
        let entry = &full[start..end];
        let head = format::EntryHead::decode(entry).unwrap();
        let mut body = entry[format::ENTRY_HEAD..entry.len() - format::ENTRY_TAIL].to_vec();
        mutate(&mut rng, &mut body, 0);
        let (from, to) = match rng.below(8) {
            // Now and then serials that do not chain or do not increase.
            0 => (head.from.wrapping_add(1), head.to),
            1 => (head.from, head.from),
            _ => (head.from, head.to),
        };
        let b = [&full[..start], &framed(from, to, &body)[..], &full[end..]].concat();
        f.write(&b);
        let (r, mem) = measure(|| f.open());
        assert!(mem.largest <= 64 << 10, "round {i}: {mem:?}");
        match r {
            Ok((j, torn)) => {
                opened += 1;
                assert_eq!(torn, None, "round {i}: checksummed bytes taken as a tear");
                assert_eq!(j.len(), 4, "round {i}");
                for e in 0..4 {
                    j.read(e).unwrap_or_else(|e| panic!("round {i}: opened, then unreadable: {e}"));
                }
                match replay(zone_v(0), &j) {
                    Ok(r) => {
                        replayed += 1;
                        assert_eq!(r.serial, serial_of(4), "round {i}");
                    }
                    Err(JournalError::Replay { .. } | JournalError::NotInHistory { .. }) => {}
                    Err(e) => panic!("round {i}: {e}"),
                }
            }
            Err(JournalError::Corrupt { .. }) => {
                refused += 1;
                assert_eq!(f.bytes(), b, "round {i}: a refused journal was changed");
            }
            Err(e) => panic!("round {i}: {e}"),
        }
    }
    eprintln!("opened {opened} (replayed {replayed}), refused {refused}");
    assert!(refused > 1_500, "{refused} refused");
    assert!(opened > 100 && replayed > 20, "{opened} opened, {replayed} replayed");
    // And the whole journal still opens as before.
    f.write(&full);
    check_holds(&f.path, 4);
}

/// 3,000 journal files whose header (magic, version, lengths, start serial, origin) is
/// mutated and its checksum made right again: open takes a header that reads as one
/// (then the entries must still chain from its start serial and belong to its origin, or
/// the journal is refused) or refuses it, leaving the file as it was; never a panic, and
/// nothing sized by a length the header claims.
#[test]
fn mutated_headers_with_good_checksums() {
    use crate::testing::{measure, mutate, Rng};
    let f = Fixture::new(2);
    let full = f.bytes();
    let hlen = f.offsets()[0] as usize;
    let mut rng = Rng::new(0x4ead_e125);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..3_000 {
        let mut header = full[..hlen - 4].to_vec();
        mutate(&mut rng, &mut header, 0);
        let crc = crc32c::crc32c(&header);
        let b = [&header[..], &crc.to_le_bytes(), &full[hlen..]].concat();
        f.write(&b);
        let (r, mem) = measure(|| f.open());
        assert!(mem.largest <= 64 << 10, "round {i}: {mem:?}");
        match r {
            Ok((j, torn)) => {
                opened += 1;
                // Only what keeps the entries valid: the same origin (up to case) and
                // start serial; a changed header length or origin length is refused.
                assert_eq!(torn, None, "round {i}");
                assert_eq!((j.origin(), j.first_serial(), j.len()), (&n("ex."), serial_of(0), 2), "round {i}");
            }
            Err(JournalError::Corrupt { .. }) => {
                refused += 1;
                assert_eq!(f.bytes(), b, "round {i}: a refused journal was changed");
            }
            Err(e) => panic!("round {i}: {e}"),
        }
    }
    eprintln!("opened {opened}, refused {refused}");
    assert!(refused > 2_500 && opened > 10, "opened {opened}, refused {refused}");
}

#[test]
fn unwritten_journal_is_written_at_its_first_append_and_a_directory_guard_keeps_no_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ex.journal");
    let mut j = Journal::unwritten(&path, &n("ex."), serial_of(0), Limits::default(), Guard::Directory);
    assert!(!path.exists() && !j.on_disk());
    assert_eq!(j.last_serial(), serial_of(0));
    assert_eq!(j.changes_since(serial_of(0)).unwrap(), Some(Vec::new()));
    assert_eq!(j.changes_since(serial_of(1)).unwrap(), None);
    j.retract_last().unwrap();
    // Missing and empty are the same to open_or_create_with: still nothing on disk.
    let (again, torn) =
        Journal::open_or_create_with(&path, &n("ex."), serial_of(0), Limits::default(), Guard::Directory).unwrap();
    assert!(torn.is_none() && !again.on_disk() && !path.exists());
    for k in 1..=3 {
        assert_eq!(j.append(&cs(k)).unwrap(), serial_of(k));
        assert!(!j.holds_descriptor(), "no descriptor kept after an append");
    }
    assert!(path.exists() && j.on_disk());
    // Reads open the file for the call.
    let since = j.changes_since(serial_of(0)).unwrap().unwrap();
    assert_eq!(since.len(), 3);
    assert_eq!(j.read(1).unwrap(), cs(2));
    j.retract_last().unwrap();
    assert_eq!(j.last_serial(), serial_of(2));
    assert!(!j.holds_descriptor());
    // What it wrote is a journal like any other (checked by a File-guarded open).
    check_holds(&path, 2);
    // No lock of its own under a directory guard (the directory's owner keeps writers
    // out); a File-guarded open locks and keeps its descriptor.
    let (d, _) = Journal::open_with(&path, Limits::default(), Guard::Directory).unwrap();
    assert!(!d.holds_descriptor());
    let (f, _) = Journal::open(&path, Limits::default()).unwrap();
    assert!(f.holds_descriptor());
    assert!(matches!(Journal::open(&path, Limits::default()), Err(JournalError::Locked { .. })));
    drop(f);
    // Compaction under a directory guard keeps no descriptor either.
    let mut d = d;
    d.set_limits(Limits { max_bytes: 1 << 20, max_depth: 1 });
    assert!(d.needs_compaction());
    let c = d.compact(serial_of(2)).unwrap();
    assert_eq!(c.kept, 0);
    assert!(!d.holds_descriptor());
    let (j, _) = Journal::open(&path, Limits::default()).unwrap();
    assert_eq!((j.len(), j.first_serial(), j.last_serial()), (0, serial_of(2), serial_of(2)));
}
