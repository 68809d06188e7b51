//! The served zones on the control side: loading them at start, reloading them from their
//! files, and publishing each new version with one atomic swap of the catalog.
//!
//! A reload reads the zone file, checks it, compares it with the running version (rebuilt
//! from its snapshot, so no second copy of every zone stays in memory), raises the serial
//! when the data changed but the serial did not (per the zone's policy), writes the new
//! snapshot (atomically: temp file, fsync, rename) and swaps it into the catalog. Run loops
//! pick the new catalog up at their next batch; the old snapshot is unmapped when its last
//! reader lets go. Anything wrong (unreadable file, zone errors, a failed write) leaves the
//! running version in place and is kept as the zone's last error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::answer::Catalog;
use crate::config::SerialPolicy;
use crate::dataplane::SharedCatalog;
use crate::snapshot::{self, Snapshot};
use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::zone::parse::{self, Loaded};
use crate::zone::{soa_serial, Changeset, SrcPos, Zone};

/// RFC 1982 serial number arithmetic: `a` is newer than `b`.
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// The serial a changed zone gets when its file kept the old one, or None to keep it.
pub fn next_serial(old: u32, policy: SerialPolicy, now_unix: u32) -> Option<u32> {
    match policy {
        SerialPolicy::Keep => None,
        SerialPolicy::Increment => Some(old.wrapping_add(1)),
        SerialPolicy::Unixtime if serial_gt(now_unix, old) => Some(now_unix),
        SerialPolicy::Unixtime => Some(old.wrapping_add(1)),
    }
}

/// One zone as served.
pub struct ZoneState {
    pub name: Name,
    pub file: PathBuf,
    pub policy: SerialPolicy,
    pub snapshot: Arc<Snapshot>,
    pub loaded_at: SystemTime,
    /// Why the last reload failed (cleared by a successful one).
    pub last_error: Option<String>,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The file holds what is served.
    Unchanged { serial: u32 },
    /// A new version is served.
    Updated { from: u32, to: u32, changes: Changeset, warnings: Vec<String> },
    /// The running version stays.
    Failed { error: String },
}

/// The zones, their snapshot directory and the catalog the run loops read.
pub struct ZoneSet {
    data_dir: PathBuf,
    catalog: SharedCatalog,
    pub zones: Vec<ZoneState>,
}

impl ZoneSet {
    pub fn new(data_dir: &Path, catalog: SharedCatalog) -> ZoneSet {
        ZoneSet { data_dir: data_dir.to_path_buf(), catalog, zones: Vec::new() }
    }

    /// Where a zone's snapshot lives.
    pub fn snapshot_path(&self, origin: &Name) -> PathBuf {
        let text = origin.to_string().to_ascii_lowercase();
        let stem = text.trim_end_matches('.');
        self.data_dir.join(format!("{}.snap", if stem.is_empty() { "root" } else { stem }))
    }

    /// Loads a zone file for the first time and serves it (published by [`Self::publish`]).
    pub fn add(&mut self, name: Option<&Name>, file: &Path, policy: SerialPolicy) -> Result<&ZoneState, String> {
        let loaded = load(file, name)?;
        let origin = loaded.zone.origin().clone();
        if self.zones.iter().any(|z| z.name == origin) {
            return Err(format!("zone {origin} given twice"));
        }
        let snapshot = self.write(&loaded.zone)?;
        self.zones.push(ZoneState {
            name: origin,
            file: file.to_path_buf(),
            policy,
            snapshot,
            loaded_at: SystemTime::now(),
            last_error: None,
        });
        Ok(self.zones.last().expect("just pushed"))
    }

    /// Serves an existing snapshot file as it is (no zone file behind it: never reloaded).
    pub fn add_snapshot(&mut self, path: &Path) -> Result<&ZoneState, String> {
        let snap = Snapshot::open(path).map_err(|e| e.to_string())?;
        let name = snap.origin();
        if self.zones.iter().any(|z| z.name == name) {
            return Err(format!("zone {name} given twice"));
        }
        self.zones.push(ZoneState {
            name,
            file: PathBuf::new(),
            policy: SerialPolicy::Keep,
            snapshot: Arc::new(snap),
            loaded_at: SystemTime::now(),
            last_error: None,
        });
        Ok(self.zones.last().expect("just pushed"))
    }

    /// Makes the current set of snapshots the one every run loop reads (one atomic swap).
    pub fn publish(&self) {
        let snaps = self.zones.iter().map(|z| z.snapshot.clone()).collect();
        self.catalog.store(Arc::new(Catalog::new(snaps)));
    }

    /// Reloads zone `i` from its file and publishes the result if it changed.
    pub fn reload(&mut self, i: usize, now_unix: u32) -> Reloaded {
        let r = self.reload_inner(i, now_unix);
        let z = &mut self.zones[i];
        match &r {
            Reloaded::Failed { error } => z.last_error = Some(error.clone()),
            _ => z.last_error = None,
        }
        if let Reloaded::Updated { .. } = r {
            z.loaded_at = SystemTime::now();
            self.publish();
        }
        r
    }

    fn reload_inner(&mut self, i: usize, now_unix: u32) -> Reloaded {
        let z = &self.zones[i];
        if z.file.as_os_str().is_empty() {
            return Reloaded::Failed { error: format!("zone {} has no zone file to reload", z.name) };
        }
        let fail = |error: String| Reloaded::Failed { error };
        let mut new = match load(&z.file, Some(&z.name)) {
            Ok(l) => l.zone,
            Err(e) => return fail(e),
        };
        let old = match snapshot::to_zone(z.snapshot.zone()) {
            Ok(o) => o,
            Err(e) => return fail(format!("zone {}: reading the running version: {e}", z.name)),
        };
        let from = old.serial().unwrap_or(0);
        let mut changes = old.diff(&new);
        if changes.is_empty() {
            return Reloaded::Unchanged { serial: from };
        }
        let mut warnings = Vec::new();
        let data_changed = !changes.removed.is_empty() || !changes.added.is_empty();
        let to = new.serial().unwrap_or(0);
        if data_changed && !serial_gt(to, from) {
            match next_serial(from, z.policy, now_unix) {
                Some(s) => {
                    if let Err(e) = set_serial(&mut new, s) {
                        return fail(format!("zone {}: raising the serial: {e}", z.name));
                    }
                    warnings
                        .push(format!("zone {}: data changed but serial {to} is not above {from}: serial {s}", z.name));
                    changes = old.diff(&new);
                }
                None => warnings.push(format!(
                    "zone {}: data changed but serial {to} is not above {from}; kept (serial-policy keep): \
                     secondaries will not see the change",
                    z.name
                )),
            }
        }
        let to = new.serial().unwrap_or(0);
        match self.write(&new) {
            Ok(snap) => {
                self.zones[i].snapshot = snap;
                Reloaded::Updated { from, to, changes, warnings }
            }
            Err(e) => fail(e),
        }
    }

    /// Compiles and writes a zone's snapshot and maps it.
    fn write(&self, zone: &Zone) -> Result<Arc<Snapshot>, String> {
        let img = snapshot::compile(zone).map_err(|e| e.to_string())?;
        let path = self.snapshot_path(zone.origin());
        snapshot::write_snapshot(&path, &img).map_err(|e| format!("{}: {e}", path.display()))?;
        let snap = Snapshot::open(&path).map_err(|e| e.to_string())?;
        Ok(Arc::new(snap))
    }

    pub fn index(&self, name: &Name) -> Option<usize> {
        let name = name.to_lowercase();
        self.zones.iter().position(|z| z.name.to_lowercase() == name)
    }
}

/// Reads and checks a zone file; the error names the file and its first problems.
fn load(file: &Path, origin: Option<&Name>) -> Result<Loaded, String> {
    let loaded = parse::load_file(file, origin).map_err(|e| format!("{}: {e}", file.display()))?;
    if !loaded.is_servable() {
        let errors: Vec<String> = loaded.errors().take(5).map(|d| d.to_string()).collect();
        let more = loaded.errors().count().saturating_sub(errors.len());
        let tail = if more > 0 { format!(" (and {more} more)") } else { String::new() };
        return Err(format!("{}: zone not loaded: {}{tail}", file.display(), errors.join("; ")));
    }
    Ok(loaded)
}

/// Rewrites the apex SOA with another serial.
fn set_serial(zone: &mut Zone, serial: u32) -> Result<(), String> {
    let origin = zone.origin().clone();
    let soa = zone.soa().ok_or("no SOA")?;
    let ttl = soa.ttl;
    let old: Vec<u8> = soa.rdata.first().ok_or("empty SOA")?.to_vec();
    soa_serial(&old).ok_or("bad SOA rdata")?;
    // The serial is the first of the five numbers after the two names.
    let at = old.len() - 20;
    let mut new = old.clone();
    new[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    zone.remove(&origin, rtype::SOA, &old);
    zone.insert(&origin, rtype::SOA, ttl, &new, SrcPos::default()).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 1));
        assert!(!serial_gt(1, 2));
        assert!(serial_gt(0, u32::MAX));
        assert!(serial_gt(5, u32::MAX - 5));
        assert!(!serial_gt(0x8000_0000, 0));
        assert_eq!(next_serial(7, SerialPolicy::Increment, 0), Some(8));
        assert_eq!(next_serial(u32::MAX, SerialPolicy::Increment, 0), Some(0));
        assert_eq!(next_serial(7, SerialPolicy::Keep, 100), None);
        assert_eq!(next_serial(7, SerialPolicy::Unixtime, 1_700_000_000), Some(1_700_000_000));
        assert_eq!(next_serial(2_000_000_000, SerialPolicy::Unixtime, 1_700_000_000), Some(2_000_000_001));
    }

    const V1: &str =
        "$ORIGIN r.test.\n$TTL 300\n@ SOA ns hm 10 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n";

    fn set(dir: &Path) -> (ZoneSet, PathBuf) {
        let file = dir.join("r.test.zone");
        std::fs::write(&file, V1).unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir, catalog);
        zs.add(None, &file, SerialPolicy::Increment).unwrap();
        zs.publish();
        (zs, file)
    }

    fn served_serial(zs: &ZoneSet) -> u32 {
        zs.catalog.load().snapshots()[0].serial()
    }

    #[test]
    fn reload_publishes_changes_and_raises_a_forgotten_serial() {
        let dir = tempfile::tempdir().unwrap();
        let (mut zs, file) = set(dir.path());
        assert_eq!(served_serial(&zs), 10);
        assert!(matches!(zs.reload(0, 0), Reloaded::Unchanged { serial: 10 }));
        // New data, new serial.
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.3")).unwrap();
        match zs.reload(0, 0) {
            Reloaded::Updated { from: 10, to: 11, changes, warnings } => {
                assert_eq!(changes.removed.len(), 1);
                assert_eq!(changes.added.len(), 1);
                assert!(warnings.is_empty());
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(served_serial(&zs), 11);
        // New data, the serial forgotten: raised to 12.
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.4")).unwrap();
        match zs.reload(0, 0) {
            Reloaded::Updated { from: 11, to: 12, warnings, .. } => assert_eq!(warnings.len(), 1),
            r => panic!("{r:?}"),
        }
        assert_eq!(served_serial(&zs), 12);
        // A broken file: the running version stays, the error is kept.
        std::fs::write(&file, "$ORIGIN r.test.\n@ SOA ns hm 13 1 1 1 1\nwww A 300.1.1.1\n").unwrap();
        let Reloaded::Failed { error } = zs.reload(0, 0) else { panic!() };
        assert!(error.contains("r.test.zone:3"), "{error}");
        assert_eq!(zs.zones[0].last_error.as_deref(), Some(error.as_str()));
        assert_eq!(served_serial(&zs), 12);
        // The file gone: same.
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Failed { .. }));
        assert_eq!(served_serial(&zs), 12);
    }

    #[test]
    fn keep_policy_serves_the_change_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (mut zs, file) = set(dir.path());
        zs.zones[0].policy = SerialPolicy::Keep;
        std::fs::write(&file, V1.replace("192.0.2.2", "192.0.2.9")).unwrap();
        match zs.reload(0, 0) {
            Reloaded::Updated { from: 10, to: 10, warnings, .. } => assert!(warnings[0].contains("kept")),
            r => panic!("{r:?}"),
        }
    }
}
