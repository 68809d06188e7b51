//! Recovery: a base version of the zone plus the journal gives the latest version; and the
//! compaction sequence that writes a new base before the journal forgets anything.

use std::path::Path;

use super::{Compacted, Journal, JournalError};
use crate::snapshot;
use crate::zone::{Changeset, Zone};

/// The outcome of [`replay`].
#[derive(Debug)]
pub struct Replayed {
    /// The latest version: the base with every newer entry applied.
    pub zone: Zone,
    pub serial: u32,
    /// Entries applied.
    pub applied: usize,
    /// Entries skipped because the base already contains them.
    pub skipped: usize,
}

/// Applies to `base` every entry of the journal newer than the base's serial, in order, with
/// [`Zone::apply_strict`], and returns the latest version.
///
/// The base's serial must be a version of the journal: its start serial or the `to` of an
/// entry (entries up to it are skipped). Older than the start is [`JournalError::Gap`], newer
/// than the last serial [`JournalError::BaseAhead`]. Each changeset must fit the zone it is
/// applied to — every removed record present, every added one new, the SOA serial where the
/// entry starts — otherwise base and journal do not belong together and the replay stops
/// with [`JournalError::Replay`] rather than produce a mix.
pub fn replay(base: Zone, journal: &Journal) -> Result<Replayed, JournalError> {
    let path = journal.path();
    if base.origin() != journal.origin() {
        return Err(JournalError::WrongZone {
            path: path.to_path_buf(),
            found: journal.origin().clone(),
            expected: base.origin().clone(),
        });
    }
    let Some(base_serial) = base.serial() else {
        return Err(JournalError::Replay {
            path: path.to_path_buf(),
            from: 0,
            to: 0,
            reason: "the base has no SOA".into(),
        });
    };
    let start = journal.position_after(base_serial).ok_or_else(|| journal.not_in_history(base_serial))?;
    let mut zone = base;
    let mut buf = Vec::new();
    for i in start..journal.len() {
        let e = journal.entries()[i];
        let cs = journal.read_with(i, &mut buf)?;
        apply_checked(&mut zone, &cs, e.from, e.to).map_err(|reason| JournalError::Replay {
            path: path.to_path_buf(),
            from: e.from,
            to: e.to,
            reason,
        })?;
    }
    Ok(Replayed { zone, serial: journal.last_serial(), applied: journal.len() - start, skipped: start })
}

/// [`Zone::apply_strict`] (the checks an IXFR from a primary gets too), with the serials the
/// journal's index gives for the entry.
fn apply_checked(zone: &mut Zone, cs: &Changeset, from: u32, to: u32) -> Result<(), String> {
    if zone.serial() != Some(from) {
        return Err(format!("the zone is at serial {:?}", zone.serial()));
    }
    zone.apply_strict(cs).map_err(|e| format!("the change {e}"))?;
    if zone.serial() != Some(to) {
        return Err(format!("the zone ends at serial {:?}", zone.serial()));
    }
    Ok(())
}

/// Compaction in its safe order: writes the snapshot of `zone` (a version of the journal,
/// normally the latest) to `base_path` — atomic and durable — then drops the journal entries
/// that snapshot contains, as far as the limits ask ([`Journal::compact`]). A crash at any
/// point leaves a base and a journal that replay together.
pub fn compact_onto_base(journal: &mut Journal, zone: &Zone, base_path: &Path) -> Result<Compacted, JournalError> {
    let base = |reason: String| JournalError::Base { path: base_path.to_path_buf(), reason };
    let serial = zone.serial().ok_or_else(|| base("the zone has no SOA".into()))?;
    if zone.origin() != journal.origin() {
        return Err(JournalError::WrongZone {
            path: journal.path().to_path_buf(),
            found: journal.origin().clone(),
            expected: zone.origin().clone(),
        });
    }
    // Refuse before writing anything if the journal could not be compacted onto it.
    if journal.position_after(serial).is_none() {
        return Err(journal.not_in_history(serial));
    }
    let img = snapshot::compile(zone).map_err(|e| base(e.to_string()))?;
    snapshot::write_snapshot(base_path, &img).map_err(|e| base(e.to_string()))?;
    journal.compact(serial)
}
