//! The served zones on the control side: loading them at start, reloading them from their
//! files, and publishing each new version with one atomic swap of the catalog.
//!
//! A reload reads the zone file, checks it, compares it with the running version (rebuilt
//! from its snapshot, so no second copy of every zone stays in memory), raises the serial
//! when the data changed but the serial did not (per the zone's policy), appends the change
//! to the zone's journal (durable before anything is announced), writes the new snapshot
//! (atomically: temp file, fsync, rename) and swaps it into the catalog. Run loops pick the
//! new catalog up at their next batch; the old snapshot is unmapped when its last reader
//! lets go. Anything wrong (unreadable file, zone errors, a failed write) leaves the running
//! version in place and is kept as the zone's last error.
//!
//! On disk, per zone, in the data directory: `NAME.snap` (the latest version, or the one
//! before it after a crash between the journal append and the snapshot write) and
//! `NAME.journal` (the changes, for IXFR and to replay onto the snapshot at start; written
//! at the first change, as a missing journal is an empty one). At start the snapshot plus
//! the journal give the last version; the zone file is then compared with it like a reload,
//! so a restart neither loses a change nor reuses a serial — unless the snapshot records
//! the zone file as it stands now ([`SourceStamp`]) and the journal ends at the snapshot's
//! serial: then the file holds what is served, and the zone starts without parsing it.
//!
//! Many zones: the set locks its data directory (`nsxdp.lock`) once, so journals keep no
//! descriptor of their own ([`Guard::Directory`]); stale temporary files are looked for
//! once, at start, not at every write; zones are found by name through a hash; and the
//! writes of snapshots are made durable together in [`ZoneSet::publish`], before their
//! versions are served or announced:
//! - a snapshot that replaces another is fsynced before its rename (the journal's entries
//!   need a whole base), and the renames take one fsync of the directory;
//! - a new zone's first snapshot is not fsynced at all: one `syncfs` of the data
//!   directory's file system makes all of them durable at once (one fsync each took
//!   milliseconds: most of the start of 10^4 new zones). A crash before it can leave such a
//!   snapshot missing or with contents that never reached the disk; neither was served, and
//!   neither has a journal (a zone's journal is written at its first change, after the
//!   publish), so a start that finds a snapshot it cannot open and no journal beside it
//!   builds the zone again from its file (the snapshot is kept aside, `NAME.snap.refused-T`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::schedule::Timers;
use super::secondary::Primary;
use super::transfer::{Journals, SharedJournals};
use crate::answer::catalog::{Apexes, Served, Versioned};
use crate::answer::Catalog;
use crate::config::{Config, Role, SerialPolicy, ZoneConf};
use crate::dataplane::SharedCatalog;
use crate::journal::{self, Guard, Journal, Limits};
use crate::secondary::timers::{Bounds, Refresh, SoaTimers};
use crate::secondary::xfrin;
use crate::snapshot::{self, Durability, Snapshot, SourceStamp};
use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::zone::parse::{self, Loaded};
use crate::zone::{soa_serial, Changeset, Record, SrcPos, Zone};

use crate::wire::serial::gt as serial_gt;

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
    /// The version served; None only for a secondary zone never transferred.
    pub snapshot: Option<Arc<Snapshot>>,
    /// The change history (zones served from a bare snapshot file have none); shared with
    /// the transfer side, which reads it for IXFR.
    pub journal: Option<Arc<Mutex<Journal>>>,
    /// The zone file as the snapshot on disk records it (NONE: not known to match).
    pub source: SourceStamp,
    pub limits: Limits,
    pub loaded_at: SystemTime,
    /// Why the last reload failed (cleared by a successful one).
    pub last_error: Option<String>,
    /// NOTIFY targets found in the zone itself (the addresses of its NS names, ours
    /// excepted), refreshed at every change; empty unless [`ZoneSet::set_own_addresses`]
    /// was called.
    pub ns_targets: Vec<std::net::SocketAddr>,
    /// The secondary role's state (None for zones loaded from files).
    pub secondary: Option<Box<Secondary>>,
    /// A catalog this server generates ([`ZoneSet::add_generated`]): no file to reload.
    pub generated: bool,
}

impl ZoneState {
    /// The serial served, if any.
    pub fn serial(&self) -> Option<u32> {
        self.snapshot.as_ref().map(|s| s.serial())
    }

    /// Whether queries are answered from this zone (a secondary that has no version or has
    /// expired answers SERVFAIL).
    pub fn serving(&self) -> bool {
        self.snapshot.is_some() && self.secondary.as_ref().is_none_or(|s| s.refresh.serving())
    }
}

/// A secondary zone's primaries and refresh state.
pub struct Secondary {
    pub primaries: Vec<Primary>,
    pub refresh: Refresh,
    /// The SOA of the version served.
    pub soa: Option<Record>,
    /// The next check skips the SOA query and IXFR (`nsxdp ctl retransfer`).
    pub force_axfr: bool,
    pub limits: xfrin::Limits,
    pub timeout: std::time::Duration,
    /// How the last new version arrived.
    pub last_transfer: Option<String>,
    pub counters: SecondaryCounters,
    /// The times of this zone's entries in the set's check and expiry heaps
    /// ([`ZoneSet::schedule`]).
    armed_check: Option<std::time::Instant>,
    armed_expiry: Option<std::time::Instant>,
}

/// What a secondary zone did since the start.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecondaryCounters {
    pub checks: u64,
    pub up_to_date: u64,
    pub ixfr: u64,
    pub axfr: u64,
    /// IXFRs that became AXFRs.
    pub fallbacks: u64,
    /// New versions that came by IXFR over UDP; IXFRs asked over UDP that went to TCP.
    pub ixfr_udp: u64,
    pub udp_to_tcp: u64,
    pub failures: u64,
    pub notifies: u64,
    pub expired: u64,
}

impl std::fmt::Display for SecondaryCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checks={} up-to-date={} ixfr={} axfr={} ixfr-fallbacks={} ixfr-udp={} ixfr-udp-to-tcp={} failures={} \
             notifies={} expired={}",
            self.checks,
            self.up_to_date,
            self.ixfr,
            self.axfr,
            self.fallbacks,
            self.ixfr_udp,
            self.udp_to_tcp,
            self.failures,
            self.notifies,
            self.expired
        )
    }
}

impl SecondaryCounters {
    /// Counts how a new version used UDP.
    pub fn count_udp(&mut self, report: &super::secondary::Report) {
        if report.transport == crate::secondary::check::Transport::Udp {
            self.ixfr_udp += 1;
        }
        if report.udp_fallback.is_some() {
            self.udp_to_tcp += 1;
        }
    }
}

impl Secondary {
    pub fn new(primaries: Vec<Primary>, refresh: Refresh, timeout: std::time::Duration) -> Secondary {
        Secondary {
            primaries,
            refresh,
            soa: None,
            force_axfr: false,
            limits: xfrin::Limits::default(),
            timeout,
            last_transfer: None,
            counters: SecondaryCounters::default(),
            armed_check: None,
            armed_expiry: None,
        }
    }
}

/// The longest wait before the first check of a secondary zone served from what the last
/// run kept (see [`ZoneSet::first_check_spread`]).
pub const FIRST_CHECK_SPREAD_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The file holds what is served.
    Unchanged { serial: u32 },
    /// A new version is served.
    Updated { from: u32, to: u32, changes: Changeset, warnings: Vec<String> },
    /// The running version stays (or, for a zone that has none, SERVFAIL stays).
    Failed { error: String },
    /// A zone that did not load before (see [`ZoneSet::add_unloaded`]) is served now.
    Loaded { serial: u32, warnings: Vec<String> },
    /// A secondary zone: its data comes by transfer, not from a file (`refresh` and
    /// `retransfer` ask its primaries); nothing to do, and no failure.
    Secondary { serial: Option<u32> },
}

/// The zones, their snapshot directory and the catalog the run loops read.
pub struct ZoneSet {
    data_dir: PathBuf,
    catalog: SharedCatalog,
    journals: SharedJournals,
    /// Our addresses, left out of the NS-derived NOTIFY targets; None: no NS targets.
    own: Option<Vec<std::net::IpAddr>>,
    pub zones: Vec<ZoneState>,
    /// Position in `zones` by lowercased name.
    by_name: HashMap<Name, usize>,
    /// How journals keep other writers out: one lock over the data directory (held by
    /// `dir_lock`), or each its own when the directory cannot be locked; Err when another
    /// process holds the directory.
    guard: Result<Guard, String>,
    /// The exclusive lock of the data directory, held for the life of the set.
    _dir_lock: Option<std::fs::File>,
    /// A snapshot was renamed into place since the directory was last fsynced.
    dir_unsynced: std::sync::atomic::AtomicBool,
    /// A snapshot was written with [`Durability::Deferred`] since the last `syncfs`.
    fs_unsynced: std::sync::atomic::AtomicBool,
    /// Zone files read (parsed) since the set was made: at start, those whose snapshot was
    /// not current.
    pub files_read: usize,
    /// Raised whenever a zone joins or leaves the set (generated catalogs follow it).
    pub generation: u64,
    /// When the secondary zones' next checks and expiries fall due.
    checks: Timers,
    expiries: Timers,
    published: Option<Published>,
}

/// What [`ZoneSet::publish`] last published, kept to make the next version from.
struct Published {
    /// The set's [`ZoneSet::generation`] then: positions are the set's.
    generation: u64,
    apexes: Arc<Apexes>,
    snaps: Versioned<Option<Served>>,
    journals: Versioned<Option<Arc<Mutex<Journal>>>>,
}

/// Whether two optional `Arc`s are the same one (or both absent).
fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The file whose `flock` marks a data directory as in use.
const DIR_LOCK: &str = "nsxdp.lock";

impl ZoneSet {
    /// The set of zones kept in `data_dir`, which it locks (another process using it is
    /// refused when a zone is added). Temporary files that killed writers left there are
    /// removed now, once.
    pub fn new(data_dir: &Path, catalog: SharedCatalog) -> ZoneSet {
        let journals = Arc::new(arc_swap::ArcSwap::from_pointee(Journals::default()));
        let (guard, dir_lock) = match lock_dir(data_dir) {
            Ok(f) => {
                snapshot::remove_stale_tmp_files(data_dir);
                (Ok(Guard::Directory), Some(f))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => (
                Err(format!(
                    "data directory {} is in use by another process (it holds {DIR_LOCK})",
                    data_dir.display()
                )),
                None,
            ),
            // No lock file (a read-only directory, say): each journal locks itself.
            Err(_) => (Ok(Guard::File), None),
        };
        ZoneSet {
            data_dir: data_dir.to_path_buf(),
            catalog,
            journals,
            own: None,
            zones: Vec::new(),
            by_name: HashMap::new(),
            guard,
            _dir_lock: dir_lock,
            dir_unsynced: Default::default(),
            fs_unsynced: Default::default(),
            files_read: 0,
            generation: 0,
            checks: Timers::default(),
            expiries: Timers::default(),
            published: None,
        }
    }

    /// Adds a zone's state to the set (its name not yet in it).
    fn push(&mut self, state: ZoneState) -> usize {
        let i = self.zones.len();
        self.generation += 1;
        self.by_name.insert(state.name.to_lowercase(), i);
        self.zones.push(state);
        i
    }

    /// The data directory (snapshots, journals, the zone list).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops serving a zone (published by the next [`Self::publish`]); false when there is
    /// no such zone. Its files stay ([`Self::delete_data`] removes them).
    pub fn remove(&mut self, name: &Name) -> bool {
        let Some(i) = self.by_name.remove(&name.to_lowercase()) else { return false };
        self.generation += 1;
        self.zones.swap_remove(i);
        if let Some(moved) = self.zones.get(i) {
            self.by_name.insert(moved.name.to_lowercase(), i);
        }
        true
    }

    /// Deletes the snapshot, journal and refresh time of a zone that is no longer served
    /// (refused while it is). Files that are not there are no error.
    pub fn delete_data(&self, name: &Name) -> Result<(), String> {
        if self.index(name).is_some() {
            return Err(format!("zone {name} is served: its data stays"));
        }
        for path in [self.snapshot_path(name), self.journal_path(name), self.refresh_path(name)] {
            match std::fs::remove_file(&path) {
                Ok(()) => self.dir_unsynced.store(true, std::sync::atomic::Ordering::Relaxed),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// Turns on NOTIFY targets from the zones' NS records, leaving out these addresses.
    pub fn set_own_addresses(&mut self, own: Vec<std::net::IpAddr>) {
        self.own = Some(own);
    }

    /// Recomputes zone `i`'s NS-derived NOTIFY targets from its snapshot.
    pub fn refresh_ns_targets(&mut self, i: usize) {
        if self.own.is_none() {
            return;
        }
        let Some(snap) = &self.zones[i].snapshot else { return };
        if let Ok(z) = snapshot::to_zone(snap.zone()) {
            self.zones[i].ns_targets = self.ns_targets(&z);
        }
    }

    fn ns_targets(&self, zone: &Zone) -> Vec<std::net::SocketAddr> {
        self.own.as_ref().map_or_else(Vec::new, |own| super::notify::ns_addresses(zone, 53, own))
    }

    /// The zones' journals as the transfer side sees them (updated by [`Self::publish`]).
    pub fn journals(&self) -> SharedJournals {
        self.journals.clone()
    }

    /// Where a zone's snapshot lives.
    pub fn snapshot_path(&self, origin: &Name) -> PathBuf {
        let text = origin.to_string().to_ascii_lowercase();
        let stem = text.trim_end_matches('.');
        self.data_dir.join(format!("{}.snap", if stem.is_empty() { "root" } else { stem }))
    }

    /// Where a zone's journal lives.
    pub fn journal_path(&self, origin: &Name) -> PathBuf {
        self.snapshot_path(origin).with_extension("journal")
    }

    /// Starts serving a zone (published by [`Self::publish`]): the version left by the last
    /// run (snapshot + journal) if there is one, then the zone file compared with it as a
    /// reload would — or, when the snapshot records the file as it stands and the journal
    /// has nothing newer, the snapshot as it is, the file not even read. Notes for the log
    /// (the file's warnings, a replayed journal, a torn tail cut off, a zone file that did
    /// not load while the last version still could) go to `notes`.
    pub fn add(
        &mut self,
        name: Option<&Name>,
        file: &Path,
        policy: SerialPolicy,
        limits: Limits,
        now_unix: u32,
        notes: &mut Vec<String>,
    ) -> Result<&ZoneState, String> {
        let guard = self.guard.clone()?;
        // Taken before the file is read: a write after it changes the stamp.
        let stamp = source_stamp(file, now_unix);
        // The zone file, read when needed: not at all for a zone named in the configuration
        // whose snapshot is current; at once for a zone whose name it gives.
        let (origin, mut loaded) = match name {
            Some(n) => (n.clone(), None),
            None => {
                let l = load(file, None);
                let origin = match &l {
                    Ok(l) => l.zone.origin().clone(),
                    // The apex as the loader would guess it ($ORIGIN, or the file name), to
                    // find what the last run served.
                    Err(e) => match std::fs::read(file).ok().and_then(|t| parse::guess_origin(file, &t)) {
                        Some(n) if self.snapshot_path(&n).exists() => n,
                        _ => return Err(e.clone()),
                    },
                };
                (origin, Some(l))
            }
        };
        if self.index(&origin).is_some() {
            return Err(format!("zone {origin} given twice"));
        }
        let snap_path = self.snapshot_path(&origin);
        let journal_path = self.journal_path(&origin);
        let mut previous = None;
        if snap_path.exists() {
            match self.previous(&origin, &snap_path, &journal_path, limits, guard, notes) {
                Ok(p) => previous = Some(p),
                Err(e) => match crate::snapshot::format_version(&snap_path) {
                    // Refused, with no journal: a first snapshot that a crash kept from the
                    // disk (see the module's comment), or one damaged since. Built again.
                    v if v.is_none_or(|v| v == crate::snapshot::FORMAT_VERSION)
                        && !journal_path.exists()
                        && loaded.get_or_insert_with(|| load(file, Some(&origin))).is_ok() =>
                    {
                        let aside = snap_path.with_extension(format!("snap.refused-{now_unix}"));
                        std::fs::rename(&snap_path, &aside).map_err(|e| format!("{}: {e}", snap_path.display()))?;
                        notes.push(format!(
                            "zone {origin}: {e}; no journal beside it: moved to {}, rebuilt from the zone file",
                            aside.display()
                        ));
                    }
                    // Of another format (an older build): set aside and the zone rebuilt from
                    // its file, as if there were none (its journal, whose base it was, too).
                    Some(v)
                        if v != crate::snapshot::FORMAT_VERSION
                            && loaded.get_or_insert_with(|| load(file, Some(&origin))).is_ok() =>
                    {
                        let aside = snap_path.with_extension(format!("snap.format-{v}"));
                        std::fs::rename(&snap_path, &aside).map_err(|e| format!("{}: {e}", snap_path.display()))?;
                        notes.push(format!(
                            "zone {origin}: {} is of snapshot format {v}, this build writes {}; moved to {}, \
                             rebuilt from the zone file",
                            snap_path.display(),
                            crate::snapshot::FORMAT_VERSION,
                            aside.display()
                        ));
                    }
                    _ => return Err(e),
                },
            }
        }
        let Some((snapshot, journal)) = previous else {
            self.files_read += 1;
            let l = loaded.unwrap_or_else(|| load(file, Some(&origin)))?;
            let (snap, journal, stamp) = self.first_version(&origin, &l, stamp, limits, guard, now_unix, notes)?;
            let i = self.push(ZoneState {
                name: origin,
                file: file.to_path_buf(),
                policy,
                snapshot: Some(snap),
                journal: Some(Arc::new(Mutex::new(journal))),
                source: stamp,
                limits,
                loaded_at: SystemTime::now(),
                last_error: None,
                ns_targets: Vec::new(),
                secondary: None,
                generated: false,
            });
            self.ns_targets_from(i, &l.zone);
            return Ok(&self.zones[i]);
        };
        let current = !stamp.is_none()
            && snapshot.source_stamp() == stamp
            && journal.last_serial() == snapshot.serial()
            && loaded.is_none();
        let i = self.push(ZoneState {
            name: origin,
            file: file.to_path_buf(),
            policy,
            source: snapshot.source_stamp(),
            snapshot: Some(snapshot),
            journal: Some(Arc::new(Mutex::new(journal))),
            limits,
            loaded_at: SystemTime::now(),
            last_error: None,
            ns_targets: Vec::new(),
            secondary: None,
            generated: false,
        });
        self.refresh_ns_targets(i);
        if current {
            return Ok(&self.zones[i]);
        }
        self.files_read += 1;
        let loaded = loaded.unwrap_or_else(|| load(file, Some(&self.zones[i].name)));
        if let Ok(l) = &loaded {
            notes.extend(l.diagnostics.iter().map(|d| d.to_string()));
        }
        let r = self.reload_loaded(i, loaded, stamp, now_unix);
        self.zones[i].last_error = match &r {
            Reloaded::Failed { error } => Some(error.clone()),
            _ => None,
        };
        match r {
            Reloaded::Unchanged { .. } | Reloaded::Secondary { .. } | Reloaded::Loaded { .. } => {}
            Reloaded::Updated { from, to, warnings, .. } => {
                notes.extend(warnings);
                notes.push(format!(
                    "zone {}: zone file differs from the last run: serial {from} -> {to}",
                    self.zones[i].name
                ));
            }
            Reloaded::Failed { error } => notes.push(format!(
                "zone {}: serving serial {} from the last run: {error}",
                self.zones[i].name,
                self.zones[i].serial().unwrap_or(0)
            )),
        }
        Ok(&self.zones[i])
    }

    /// A zone's first version, from its file read as `l` (stamped `stamp` before it was
    /// read): the snapshot written, an empty journal, and the stamp the snapshot records. A
    /// journal left without its snapshot is moved aside.
    #[allow(clippy::too_many_arguments)]
    fn first_version(
        &mut self,
        origin: &Name,
        l: &Loaded,
        stamp: SourceStamp,
        limits: Limits,
        guard: Guard,
        now_unix: u32,
        notes: &mut Vec<String>,
    ) -> Result<(Arc<Snapshot>, Journal, SourceStamp), String> {
        notes.extend(l.diagnostics.iter().map(|d| d.to_string()));
        let zone = &l.zone;
        let serial = zone.serial().unwrap_or(0);
        let journal_path = self.journal_path(origin);
        if journal_path.exists() {
            // A journal without its snapshot cannot be replayed: keep it aside.
            let aside = journal_path.with_extension(format!("journal.orphan-{now_unix}"));
            std::fs::rename(&journal_path, &aside).map_err(|e| format!("{}: {e}", journal_path.display()))?;
            notes.push(format!(
                "zone {origin}: {} had no snapshot; moved to {}",
                journal_path.display(),
                aside.display()
            ));
        }
        let stamp = if l.files.len() == 1 { stamp } else { SourceStamp::NONE };
        let snap = self.write(zone, stamp, Durability::Deferred)?;
        let journal = Journal::unwritten(&journal_path, origin, serial, limits, guard);
        Ok((snap, journal, stamp))
    }

    /// Keeps a primary zone whose file did not load (`error`) and that has no earlier version
    /// in the set, without a version: it answers SERVFAIL, `status` and the metrics show the
    /// error, and the first reload that finds the file good serves it. The other zones are
    /// not held back by it (Knot and NSD start the same way).
    pub fn add_unloaded(
        &mut self,
        name: &Name,
        file: &Path,
        policy: SerialPolicy,
        limits: Limits,
        error: String,
    ) -> Result<&ZoneState, String> {
        if self.index(name).is_some() {
            return Err(format!("zone {name} given twice"));
        }
        let i = self.push(ZoneState {
            name: name.clone(),
            file: file.to_path_buf(),
            policy,
            snapshot: None,
            journal: None,
            source: SourceStamp::NONE,
            limits,
            loaded_at: SystemTime::now(),
            last_error: Some(error),
            ns_targets: Vec::new(),
            secondary: None,
            generated: false,
        });
        Ok(&self.zones[i])
    }

    /// The version the last run left: its snapshot with the journal replayed onto it (and
    /// written as the new snapshot when the journal went further).
    fn previous(
        &self,
        origin: &Name,
        snap_path: &Path,
        journal_path: &Path,
        limits: Limits,
        guard: Guard,
        notes: &mut Vec<String>,
    ) -> Result<(Arc<Snapshot>, Journal), String> {
        let snap = Snapshot::open(snap_path).map_err(|e| e.to_string())?;
        if snap.origin() != *origin {
            return Err(format!("{}: holds zone {}, not {origin}", snap_path.display(), snap.origin()));
        }
        let (j, torn) = Journal::open_or_create_with(journal_path, origin, snap.serial(), limits, guard)
            .map_err(|e| e.to_string())?;
        if let Some(t) = torn {
            notes.push(format!("zone {origin}: {t}"));
        }
        if j.last_serial() == snap.serial() {
            return Ok((Arc::new(snap), j));
        }
        let base = snapshot::to_zone(snap.zone()).map_err(|e| format!("{}: {e}", snap_path.display()))?;
        let r = journal::replay(base, &j).map_err(|e| e.to_string())?;
        notes.push(format!(
            "zone {origin}: journal replayed onto the snapshot: serial {} -> {} ({} changes)",
            snap.serial(),
            r.serial,
            r.applied
        ));
        Ok((self.write(&r.zone, SourceStamp::NONE, Durability::File)?, j))
    }

    /// Serves an existing snapshot file as it is (no zone file behind it: never reloaded).
    pub fn add_snapshot(&mut self, path: &Path) -> Result<&ZoneState, String> {
        let snap = Snapshot::open(path).map_err(|e| e.to_string())?;
        let name = snap.origin();
        if self.index(&name).is_some() {
            return Err(format!("zone {name} given twice"));
        }
        self.push(ZoneState {
            name,
            file: PathBuf::new(),
            policy: SerialPolicy::Keep,
            snapshot: Some(Arc::new(snap)),
            journal: None,
            source: SourceStamp::NONE,
            limits: Limits::default(),
            loaded_at: SystemTime::now(),
            last_error: None,
            ns_targets: Vec::new(),
            secondary: None,
            generated: false,
        });
        Ok(self.zones.last().expect("just pushed"))
    }

    /// How long the first check of the next secondary zone served from what the last run
    /// kept waits: random, below one millisecond per zone already in the set,
    /// at most [`FIRST_CHECK_SPREAD_MAX`]. A host of a few zones checks them at once; one of
    /// 10^5 spreads their first SOA queries over a minute instead of sending them all to its
    /// primaries at start-up (a NOTIFY still makes a zone due at once).
    fn first_check_spread(&self) -> std::time::Duration {
        let max_ms = (self.zones.len() as u64).min(FIRST_CHECK_SPREAD_MAX.as_millis() as u64);
        if max_ms == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_millis(getrandom::u64().unwrap_or(0) % (max_ms + 1))
    }

    /// Starts a secondary zone: served at once from what the last run kept (snapshot plus
    /// journal) unless that has expired (the time of its last successful check is kept in
    /// `NAME.refresh`), and checked soon ([`Self::first_check_spread`]). A zone with nothing
    /// kept answers SERVFAIL until its first transfer, which is due at once.
    pub fn add_secondary(
        &mut self,
        name: &Name,
        primaries: Vec<Primary>,
        bounds: Bounds,
        limits: Limits,
        timeout: std::time::Duration,
        notes: &mut Vec<String>,
    ) -> Result<&ZoneState, String> {
        if self.index(name).is_some() {
            return Err(format!("zone {name} given twice"));
        }
        let guard = self.guard.clone()?;
        let snap_path = self.snapshot_path(name);
        let journal_path = self.journal_path(name);
        let now = std::time::Instant::now();
        let mut state = ZoneState {
            name: name.clone(),
            file: PathBuf::new(),
            policy: SerialPolicy::Keep,
            snapshot: None,
            journal: None,
            source: SourceStamp::NONE,
            limits,
            loaded_at: SystemTime::now(),
            last_error: None,
            ns_targets: Vec::new(),
            secondary: None,
            generated: false,
        };
        let mut refresh = Refresh::empty(bounds, now);
        let mut soa = None;
        if snap_path.exists() {
            match self.previous(name, &snap_path, &journal_path, limits, guard, notes) {
                Ok((snap, journal)) => {
                    soa = crate::snapshot::SnapshotRecords::new(snap.clone()).next();
                    let timers = soa.as_ref().and_then(|s| SoaTimers::from_rdata(&s.rdata));
                    let since = read_last_success(&self.refresh_path(name));
                    if let Some(t) = timers {
                        refresh = Refresh::loaded(bounds, t, since, now, self.first_check_spread());
                        if !refresh.serving() {
                            notes.push(format!(
                                "zone {name}: serial {} kept from the last run has expired ({}s since the last \
                                 successful check); SERVFAIL until a primary answers",
                                snap.serial(),
                                since.as_secs()
                            ));
                        }
                    }
                    state.snapshot = Some(snap);
                    state.journal = Some(Arc::new(Mutex::new(journal)));
                }
                Err(e) => notes.push(format!("zone {name}: the last run's version cannot be used: {e}")),
            }
        } else if journal_path.exists() {
            let aside = journal_path.with_extension("journal.orphan");
            std::fs::rename(&journal_path, &aside).map_err(|e| format!("{}: {e}", journal_path.display()))?;
            notes.push(format!(
                "zone {name}: {} had no snapshot; moved to {}",
                journal_path.display(),
                aside.display()
            ));
        }
        let mut sec = Secondary::new(primaries, refresh, timeout);
        sec.soa = soa;
        state.secondary = Some(Box::new(sec));
        let i = self.push(state);
        self.refresh_ns_targets(i);
        self.schedule(i, now);
        Ok(&self.zones[i])
    }

    /// Starts serving a catalog zone this server generates (RFC 9432 producer): the version
    /// the last run left (snapshot and journal), else an empty catalog with the current
    /// time as its serial. Its members are set by [`Self::replace_generated`].
    pub fn add_generated(
        &mut self,
        name: &Name,
        limits: Limits,
        now_unix: u32,
        notes: &mut Vec<String>,
    ) -> Result<&ZoneState, String> {
        if self.index(name).is_some() {
            return Err(format!("zone {name} given twice"));
        }
        let guard = self.guard.clone()?;
        let (snap_path, journal_path) = (self.snapshot_path(name), self.journal_path(name));
        let previous = if snap_path.exists() {
            match self.previous(name, &snap_path, &journal_path, limits, guard, notes) {
                Ok(p) => Some(p),
                Err(e) => {
                    notes.push(format!("zone {name}: the last run's version cannot be used: {e}; generated anew"));
                    None
                }
            }
        } else {
            None
        };
        let (snapshot, journal) = match previous {
            Some(p) => p,
            None => {
                // A journal without its snapshot (or beside a refused one) has no base.
                let _ = std::fs::remove_file(&journal_path);
                let serial = now_unix.max(1);
                let zone = crate::catz::produce(name, serial, std::iter::empty());
                let snap = self.write(&zone, SourceStamp::NONE, Durability::File)?;
                (snap, Journal::unwritten(&journal_path, name, serial, limits, guard))
            }
        };
        let i = self.push(ZoneState {
            name: name.clone(),
            file: PathBuf::new(),
            policy: SerialPolicy::Unixtime,
            snapshot: Some(snapshot),
            journal: Some(Arc::new(Mutex::new(journal))),
            source: SourceStamp::NONE,
            limits,
            loaded_at: SystemTime::now(),
            last_error: None,
            ns_targets: Vec::new(),
            secondary: None,
            generated: true,
        });
        Ok(&self.zones[i])
    }

    /// Serves `members` (zone, group) as generated catalog `i`'s next version when they
    /// differ from what it lists: the serial raised (to the current time, or by one),
    /// journalled (IXFR) and published. Returns whether a new version is served.
    pub fn replace_generated<'a>(
        &mut self,
        i: usize,
        members: impl IntoIterator<Item = (&'a Name, Option<&'a [u8]>)> + Clone,
        now_unix: u32,
    ) -> Result<bool, String> {
        let z = &self.zones[i];
        let Some(snap) = z.snapshot.clone() else { return Err(format!("zone {} has no version", z.name)) };
        let old = snapshot::to_zone(snap.zone()).map_err(|e| format!("zone {}: {e}", z.name))?;
        let from = old.serial().unwrap_or(0);
        let same_serial = crate::catz::produce(&z.name, from, members.clone());
        if old.diff(&same_serial).is_empty() {
            return Ok(false);
        }
        let to = next_serial(from, SerialPolicy::Unixtime, now_unix).unwrap_or(from.wrapping_add(1));
        let new = crate::catz::produce(&z.name, to, members);
        let changes = old.diff(&new);
        self.commit(i, &new, &[changes])?;
        self.publish();
        Ok(true)
    }

    /// Starts serving a zone of the configuration file (either role).
    pub fn add_configured(
        &mut self,
        z: &ZoneConf,
        config: &Config,
        now_unix: u32,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        let limits = Limits { max_bytes: z.journal_max_bytes, max_depth: z.journal_max_depth };
        match z.role {
            Role::Secondary => {
                let primaries = super::secondary::primaries(z, config);
                let timeout = std::time::Duration::from_secs(z.transfer_timeout_secs);
                self.add_secondary(&z.name, primaries, z.timers, limits, timeout, notes)?;
            }
            Role::Primary if z.catalog_role == Some(crate::config::CatalogRole::Producer) => {
                self.add_generated(&z.name, limits, now_unix, notes)?;
            }
            Role::Primary => {
                let file = z.file.as_deref().ok_or_else(|| format!("zone {}: no file", z.name))?;
                self.add(Some(&z.name), file, z.serial_policy, limits, now_unix, notes)?;
            }
        }
        Ok(())
    }

    /// Applies a new configuration file's zones (the old one's are `old`): zones added are
    /// started, zones gone are no longer served (their files stay in the data directory),
    /// and the settings of the others (file, serial policy, journal limits, primaries,
    /// timers) take effect. A changed role needs a restart. Publishes the result.
    pub fn reconfigure(&mut self, old: &Config, new: &Config, now_unix: u32, notes: &mut Vec<String>) {
        let lower = |n: &Name| n.to_lowercase();
        for z in &new.zones {
            let Some(i) = self.index(&z.name) else {
                match self.add_configured(z, new, now_unix, notes) {
                    Ok(()) => notes.push(format!("zone {}: added", z.name)),
                    Err(e) => notes.push(format!("zone {}: not added: {e}", z.name)),
                }
                continue;
            };
            let st = &mut self.zones[i];
            let limits = Limits { max_bytes: z.journal_max_bytes, max_depth: z.journal_max_depth };
            st.limits = limits;
            if let Some(j) = &st.journal {
                j.lock().unwrap_or_else(|p| p.into_inner()).set_limits(limits);
            }
            match (&mut st.secondary, z.role) {
                (Some(s), Role::Secondary) => {
                    s.primaries = super::secondary::primaries(z, new);
                    s.refresh.set_bounds(z.timers);
                    s.timeout = std::time::Duration::from_secs(z.transfer_timeout_secs);
                }
                (None, Role::Primary) => {
                    st.policy = z.serial_policy;
                    if let Some(f) = &z.file {
                        st.file = f.clone();
                    }
                }
                _ => notes.push(format!("zone {}: a changed role takes effect at the next start", z.name)),
            }
        }
        let kept: std::collections::HashSet<Name> = new.zones.iter().map(|z| lower(&z.name)).collect();
        let gone: std::collections::HashSet<Name> = old
            .zones
            .iter()
            .map(|o| lower(&o.name))
            .filter(|n| !kept.contains(n) && self.by_name.contains_key(n))
            .collect();
        if !gone.is_empty() {
            self.zones.retain(|z| {
                let going = gone.contains(&z.name.to_lowercase());
                if going {
                    notes.push(format!(
                        "zone {}: removed (no longer served; its files stay in the data directory)",
                        z.name
                    ));
                }
                !going
            });
            self.by_name = self.zones.iter().enumerate().map(|(i, z)| (z.name.to_lowercase(), i)).collect();
            self.generation += 1;
        }
        self.publish();
    }

    /// Takes the last `n` journal entries of zone `i` back (their version was not served);
    /// text to add to the error when that fails too.
    fn retract(&self, i: usize, n: usize) -> String {
        let Some(j) = &self.zones[i].journal else { return String::new() };
        let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..n {
            if let Err(e) = j.retract_last() {
                return format!("; and taking the change back out of the journal failed: {e}");
            }
        }
        String::new()
    }

    /// Where the time of a secondary zone's last successful check is kept.
    pub fn refresh_path(&self, origin: &Name) -> PathBuf {
        self.snapshot_path(origin).with_extension("refresh")
    }

    /// Records a successful check of secondary zone `i` now (for the expire timer across
    /// restarts). Best effort: losing it only makes a restart count from an older check.
    pub fn note_success(&self, i: usize) {
        let path = self.refresh_path(&self.zones[i].name);
        let unix = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let tmp = path.with_extension("refresh.tmp");
        if std::fs::write(&tmp, format!("{unix}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }

    /// Serves `new` as zone `i`'s next version (a transfer in): the changes from the
    /// running version are journalled first (durable), then the snapshot is written and
    /// swapped in. When the changes cannot be journalled as a chain from the running
    /// version (nothing ran before, or a retransfer went sideways or back), the journal is
    /// restarted at the new version instead (removed before the snapshot is written, so a
    /// crash leaves the old snapshot without history, never a mismatched pair).
    pub fn commit(&mut self, i: usize, new: &Zone, changes: &[Changeset]) -> Result<(), String> {
        let origin = self.zones[i].name.clone();
        let to = new.serial().ok_or_else(|| format!("zone {origin}: no SOA"))?;
        let journal_path = self.journal_path(&origin);
        // A retransfer of the version we have changes nothing: no entry, the history stays.
        let changes: Vec<&Changeset> = changes.iter().filter(|c| !c.is_empty()).collect();
        let chained = match &self.zones[i].journal {
            Some(j) => {
                let j = j.lock().unwrap_or_else(|p| p.into_inner());
                let mut at = j.last_serial();
                let mut ok = !changes.is_empty() || at == to;
                for cs in &changes {
                    let from = cs.soa_from.as_ref().and_then(|s| soa_serial(&s.rdata));
                    let next = cs.soa_to.as_ref().and_then(|s| soa_serial(&s.rdata));
                    match (from, next) {
                        (Some(f), Some(n)) if f == at && serial_gt(n, f) => at = n,
                        _ => ok = false,
                    }
                }
                ok && at == to
            }
            None => false,
        };
        let n_changes = changes.len();
        if chained {
            let j = self.zones[i].journal.as_ref().expect("chained implies a journal");
            let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
            for cs in &changes {
                j.append(cs).map_err(|e| e.to_string())?;
            }
        } else if journal_path.exists() {
            self.zones[i].journal = None;
            std::fs::remove_file(&journal_path).map_err(|e| format!("{}: {e}", journal_path.display()))?;
            if let Some(dir) = journal_path.parent() {
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
        }
        // A zone's first version (nothing served, no file there) is written like a new zone's
        // first snapshot: made durable by the next publish's one syncfs (see the module's
        // comment; a crash before it leaves nothing the next start would serve).
        let first = self.zones[i].snapshot.is_none() && !self.snapshot_path(&origin).exists();
        let durability = if first { Durability::Deferred } else { Durability::File };
        let snap = match self.write(new, SourceStamp::NONE, durability) {
            Ok(s) => s,
            Err(e) => return Err(format!("{e}{}", self.retract(i, if chained { n_changes } else { 0 }))),
        };
        let limits = self.zones[i].limits;
        if !chained {
            let guard = self.guard.clone()?;
            let j = Journal::unwritten(&journal_path, &origin, to, limits, guard);
            self.zones[i].journal = Some(Arc::new(Mutex::new(j)));
        }
        let z = &mut self.zones[i];
        z.snapshot = Some(snap);
        z.loaded_at = SystemTime::now();
        z.last_error = None;
        if let Some(sec) = &mut z.secondary {
            sec.soa = new.soa().and_then(|s| {
                Some(Record { owner: origin.clone(), rtype: rtype::SOA, ttl: s.ttl, rdata: s.rdata.first()?.into() })
            });
        }
        self.zones[i].ns_targets = self.ns_targets(new);
        if let Some(j) = &self.zones[i].journal {
            let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
            if j.needs_compaction() {
                if let Err(e) = j.compact(to) {
                    log::error!("zone {origin}: journal compaction failed: {e}");
                }
            }
        }
        Ok(())
    }

    /// Makes the current set of snapshots the one every run loop reads (one atomic swap),
    /// with the journals transfers read beside it. While no zone joined or left the set
    /// since the last publish, the new version is the last one with the changed zones
    /// replaced (a walk comparing pointers: nothing hashed, nothing allocated per zone);
    /// else it is built anew. Then the heap that building them freed goes back to the
    /// kernel.
    pub fn publish(&mut self) {
        self.sync_dir();
        let served = |z: &ZoneState| z.snapshot.clone().filter(|_| z.serving());
        let entry = |z: &ZoneState| served(z).map(Served::new);
        let journal = |z: &ZoneState| z.journal.clone().filter(|_| z.serving());
        let mut fresh = Vec::new();
        let p = match self.published.take().filter(|p| p.generation == self.generation) {
            Some(mut p) => {
                for (i, z) in self.zones.iter().enumerate() {
                    let snap = z.snapshot.as_ref().filter(|_| z.serving());
                    if !same(p.snaps.get(i).as_ref().map(|s| s.snapshot()), snap) {
                        p.snaps.set(i, snap.cloned().map(Served::new));
                        fresh.extend(snap.cloned());
                    }
                    let j = z.journal.as_ref().filter(|_| z.serving());
                    if !same(p.journals.get(i).as_ref(), j) {
                        p.journals.set(i, j.cloned());
                    }
                }
                p
            }
            None => {
                fresh.extend(self.zones.iter().filter_map(served));
                Published {
                    generation: self.generation,
                    apexes: Arc::new(Apexes::new(self.zones.iter().map(|z| z.name.as_wire()))),
                    snaps: Versioned::new(self.zones.iter().map(entry)),
                    journals: Versioned::new(self.zones.iter().map(journal)),
                }
            }
        };
        self.catalog.store(Arc::new(Catalog::from_parts(p.apexes.clone(), p.snaps.clone())));
        self.journals.store(Arc::new(Journals::new(p.apexes.clone(), p.journals.clone())));
        self.published = Some(p);
        // Each new snapshot's AXFR order is made now, not at its first transfer: sorting the
        // names takes a few MiB for a while, and here that goes back with the rest.
        for s in fresh {
            s.canonical_order();
        }
        super::release_freed_memory();
    }

    /// Makes the snapshots written since the last call durable: one `syncfs` when a new
    /// zone's snapshot was written unsynced, else one fsync of the data directory for the
    /// renames (see the module's comment). A failure is logged: what a crash could then
    /// lose, the next start rebuilds (from the journal or the zone file).
    fn sync_dir(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let all = self.fs_unsynced.swap(false, Relaxed);
        if !(self.dir_unsynced.swap(false, Relaxed) || all) {
            return;
        }
        let synced = std::fs::File::open(&self.data_dir).and_then(|d| {
            if !all {
                return d.sync_all();
            }
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs takes a descriptor `d` owns and keeps open; no memory is passed.
            match unsafe { libc::syncfs(d.as_raw_fd()) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
        if let Err(e) = synced {
            log::warn!("sync of the data directory {}: {e}", self.data_dir.display());
        }
    }

    /// Reloads zone `i` from its file and publishes the result if it changed. A file whose
    /// stamp is the one its snapshot records is not read: unchanged.
    pub fn reload(&mut self, i: usize, now_unix: u32) -> Reloaded {
        let read_before = self.files_read;
        let r = self.reload_inner(i, now_unix);
        let z = &mut self.zones[i];
        match &r {
            Reloaded::Failed { error } => z.last_error = Some(error.clone()),
            // A secondary's last error is its last transfer's.
            Reloaded::Secondary { .. } => {}
            _ => z.last_error = None,
        }
        if let Reloaded::Updated { .. } | Reloaded::Loaded { .. } = r {
            z.loaded_at = SystemTime::now();
            self.publish();
        } else if self.files_read != read_before {
            // The file was parsed all the same.
            super::release_freed_memory();
        }
        r
    }

    fn reload_inner(&mut self, i: usize, now_unix: u32) -> Reloaded {
        let z = &self.zones[i];
        if z.secondary.is_some() {
            return Reloaded::Secondary { serial: z.serial() };
        }
        if z.generated {
            return Reloaded::Unchanged { serial: z.serial().unwrap_or(0) };
        }
        if z.file.as_os_str().is_empty() {
            return Reloaded::Failed { error: format!("zone {} has no zone file to reload", z.name) };
        }
        if z.snapshot.is_none() {
            return self.load_first(i, now_unix);
        }
        let stamp = source_stamp(&z.file, now_unix);
        if !stamp.is_none() && stamp == z.source {
            // The file is the one the snapshot was made from: not read (a reload of every
            // zone of a large host costs a stat each).
            return Reloaded::Unchanged { serial: z.serial().unwrap_or(0) };
        }
        let loaded = load(&z.file, Some(&z.name));
        self.files_read += 1;
        self.reload_loaded(i, loaded, stamp, now_unix)
    }

    /// [`Self::reload`] of a zone kept by [`Self::add_unloaded`]: its file read, and served if
    /// it loads.
    fn load_first(&mut self, i: usize, now_unix: u32) -> Reloaded {
        let z = &self.zones[i];
        let (name, limits) = (z.name.clone(), z.limits);
        let stamp = source_stamp(&z.file, now_unix);
        let loaded = load(&z.file, Some(&name));
        self.files_read += 1;
        let l = match loaded {
            Ok(l) => l,
            Err(error) => return Reloaded::Failed { error },
        };
        let guard = match self.guard.clone() {
            Ok(g) => g,
            Err(error) => return Reloaded::Failed { error },
        };
        let mut warnings = Vec::new();
        match self.first_version(&name, &l, stamp, limits, guard, now_unix, &mut warnings) {
            Ok((snap, journal, stamp)) => {
                let serial = snap.serial();
                let z = &mut self.zones[i];
                z.snapshot = Some(snap);
                z.journal = Some(Arc::new(Mutex::new(journal)));
                z.source = stamp;
                self.ns_targets_from(i, &l.zone);
                Reloaded::Loaded { serial, warnings }
            }
            Err(error) => Reloaded::Failed { error },
        }
    }

    /// [`Self::reload`] of zone `i` from its file read as `loaded`, whose stamp before it
    /// was read was `stamp`; nothing published.
    fn reload_loaded(
        &mut self,
        i: usize,
        loaded: Result<Loaded, String>,
        stamp: SourceStamp,
        now_unix: u32,
    ) -> Reloaded {
        let z = &self.zones[i];
        let Some(snap) = z.snapshot.clone() else {
            return Reloaded::Failed { error: format!("zone {} has no version", z.name) };
        };
        let fail = |error: String| Reloaded::Failed { error };
        let stamp = match &loaded {
            Ok(l) if l.files.len() == 1 => stamp,
            _ => SourceStamp::NONE,
        };
        let mut new = match loaded {
            Ok(l) => l.zone,
            Err(e) => return fail(e),
        };
        let old = match snapshot::to_zone(snap.zone()) {
            Ok(o) => o,
            Err(e) => return fail(format!("zone {}: reading the running version: {e}", z.name)),
        };
        let from = old.serial().unwrap_or(0);
        let mut changes = old.diff(&new);
        if changes.is_empty() {
            return self.unchanged(i, from, stamp);
        }
        let mut warnings = Vec::new();
        let data_changed = !changes.removed.is_empty() || !changes.added.is_empty();
        let to = new.serial().unwrap_or(0);
        if !data_changed && !serial_gt(to, from) {
            // Only the SOA differs and not upwards: e.g. a file whose serial we raised
            // before. What runs stays.
            return self.unchanged(i, from, stamp);
        }
        if data_changed && !serial_gt(to, from) {
            match next_serial(from, z.policy, now_unix) {
                // The SOA of a signed zone is signed: a serial of ours would leave its RRSIG
                // over another SOA (and the signer's next version would clash with ours).
                Some(_) if new.is_signed() => {
                    return fail(format!(
                        "zone {}: data changed but serial {to} is not above {from}, and the zone is signed \
                         (DNSKEY or RRSIG records): serial-policy {} would change its signed SOA, which nsxdp \
                         never does; re-sign the zone upstream with a higher serial",
                        z.name,
                        match z.policy {
                            SerialPolicy::Increment => "increment",
                            SerialPolicy::Unixtime => "unixtime",
                            SerialPolicy::Keep => "keep",
                        }
                    ))
                }
                Some(s) => {
                    if let Err(e) = set_serial(&mut new, s) {
                        return fail(format!("zone {}: raising the serial: {e}", z.name));
                    }
                    warnings
                        .push(format!("zone {}: data changed but serial {to} is not above {from}: serial {s}", z.name));
                    // Only the SOA differs from the changes already found.
                    changes.soa_to = new.soa().and_then(|soa| {
                        Some(Record {
                            owner: new.origin().clone(),
                            rtype: rtype::SOA,
                            ttl: soa.ttl,
                            rdata: soa.rdata.first()?.into(),
                        })
                    });
                }
                None => warnings.push(format!(
                    "zone {}: data changed but serial {to} is not above {from}; kept (serial-policy keep): \
                     secondaries will not see the change",
                    z.name
                )),
            }
        }
        let to = new.serial().unwrap_or(0);
        // Durable in the journal first: a crash from here on restarts at this version.
        if let Some(j) = &self.zones[i].journal {
            let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
            if to != from {
                if let Err(e) = j.append(&changes) {
                    return fail(e.to_string());
                }
            }
        }
        let snap = match self.write(&new, stamp, Durability::File) {
            Ok(snap) => snap,
            Err(e) => {
                // Not served after all: the journal goes back to where the running version is.
                let appended = usize::from(to != from);
                return fail(format!("{e}{}", self.retract(i, appended)));
            }
        };
        self.zones[i].snapshot = Some(snap);
        self.zones[i].source = stamp;
        self.zones[i].ns_targets = self.ns_targets(&new);
        if let Some(j) = &self.zones[i].journal {
            let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
            if j.needs_compaction() {
                // The snapshot just written is the base: nothing newer is in the journal.
                match j.compact(to) {
                    Ok(c) => warnings.push(format!("zone {}: journal compacted: {c:?}", self.zones[i].name)),
                    Err(e) => warnings.push(format!("zone {}: journal compaction failed: {e}", self.zones[i].name)),
                }
            }
        }
        Reloaded::Updated { from, to, changes, warnings }
    }

    /// A reload that found the file holding what is served: records the file's stamp in the
    /// snapshot if it had another (the file was written again with the same zone, or was
    /// too fresh to stamp before), so that the next start need not parse it.
    fn unchanged(&mut self, i: usize, serial: u32, stamp: SourceStamp) -> Reloaded {
        let z = &mut self.zones[i];
        if !stamp.is_none() && z.source != stamp {
            if let Some(snap) = &z.snapshot {
                // Best effort: without the stamp the next start parses the file.
                if snap.restamp(stamp, Durability::File).is_ok() {
                    z.source = stamp;
                    self.dir_unsynced.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        Reloaded::Unchanged { serial }
    }

    /// Sets zone `i`'s NS-derived NOTIFY targets from its zone.
    fn ns_targets_from(&mut self, i: usize, zone: &Zone) {
        if self.own.is_some() {
            self.zones[i].ns_targets = self.ns_targets(zone);
        }
    }

    /// Compiles and writes a zone's snapshot (made from a zone file with this stamp, or
    /// NONE) and opens it. What `durability` leaves undone, the next [`Self::publish`] does.
    fn write(&self, zone: &Zone, stamp: SourceStamp, durability: Durability) -> Result<Arc<Snapshot>, String> {
        let img = snapshot::compile(zone).map_err(|e| e.to_string())?;
        let path = self.snapshot_path(zone.origin());
        snapshot::write_snapshot_with(&path, &img, stamp, durability)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let pending = match durability {
            Durability::Now => None,
            Durability::File => Some(&self.dir_unsynced),
            Durability::Deferred => Some(&self.fs_unsynced),
        };
        if let Some(p) = pending {
            p.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let snap = Snapshot::open(&path).map_err(|e| e.to_string())?;
        Ok(Arc::new(snap))
    }

    /// Puts secondary zone `i`'s next check and expiry in the heaps the manager takes due
    /// zones from: to be called whenever its refresh state changed (a check started or
    /// ended, a NOTIFY, a command). A zone with a check under way has none until it ends.
    pub fn schedule(&mut self, i: usize, now: std::time::Instant) {
        let z = &mut self.zones[i];
        let Some(s) = z.secondary.as_mut() else { return };
        if !s.refresh.in_flight() {
            let at = if s.refresh.due(now) { now } else { s.refresh.next_check() };
            self.checks.arm(&z.name, at, &mut s.armed_check);
        }
        if let Some(at) = s.refresh.expires_at().filter(|_| !s.refresh.is_expired()) {
            self.expiries.arm(&z.name, at, &mut s.armed_expiry);
        }
    }

    /// A secondary zone whose check is due at `now` (taken from the heap: the caller starts
    /// the check, or fails it, and calls [`Self::schedule`]); None when no more are due.
    pub fn take_due_check(&mut self, now: std::time::Instant) -> Option<usize> {
        while let Some((at, name)) = self.checks.pop_due(now) {
            let Some(i) = self.index(&name) else { continue };
            let Some(s) = self.zones[i].secondary.as_mut() else { continue };
            if s.armed_check != Some(at) {
                continue; // superseded by an earlier entry
            }
            s.armed_check = None;
            if s.refresh.due(now) {
                return Some(i);
            }
            self.schedule(i, now);
        }
        None
    }

    /// A secondary zone that passes its expire time at `now` (it stops being served: the
    /// caller publishes); None when no more do.
    pub fn take_expired(&mut self, now: std::time::Instant) -> Option<usize> {
        while let Some((at, name)) = self.expiries.pop_due(now) {
            let Some(i) = self.index(&name) else { continue };
            let Some(s) = self.zones[i].secondary.as_mut() else { continue };
            if s.armed_expiry != Some(at) {
                continue;
            }
            s.armed_expiry = None;
            if s.refresh.expire(now) {
                return Some(i);
            }
            self.schedule(i, now);
        }
        None
    }

    /// When the manager should next look at the timers: the earliest expiry and, when
    /// `checks` (a worker is free to start one), the earliest check.
    pub fn next_timer(&self, checks: bool) -> Option<std::time::Instant> {
        let check = self.checks.next().filter(|_| checks);
        match (check, self.expiries.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The position of zone `name` (any case) in [`Self::zones`].
    pub fn index(&self, name: &Name) -> Option<usize> {
        self.by_name.get(&name.to_lowercase()).copied()
    }
}

/// Takes the exclusive lock of a data directory, without waiting.
fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(DIR_LOCK))?;
    // SAFETY: flock on a descriptor `f` owns and keeps open; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// The stamp of a zone file at `now_unix` (NONE when it cannot be read, or was written too
/// recently for its stamp to be trusted).
fn source_stamp(file: &Path, now_unix: u32) -> SourceStamp {
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now_unix.into());
    std::fs::metadata(file).map_or(SourceStamp::NONE, |m| SourceStamp::of(&m, now))
}

/// How long ago the last successful check recorded in `path` was (zero when unknown).
fn read_last_success(path: &Path) -> std::time::Duration {
    let Some(then) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok()) else {
        return std::time::Duration::ZERO;
    };
    let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    std::time::Duration::from_secs(now.saturating_sub(then))
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
        // Exactly half the space apart: undefined in RFC 1982, never "newer".
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
        zs.add(None, &file, SerialPolicy::Increment, Limits::default(), 0, &mut Vec::new()).unwrap();
        zs.publish();
        (zs, file)
    }

    fn served_serial(zs: &ZoneSet) -> u32 {
        zs.catalog.load().snapshots().next().unwrap().serial()
    }

    #[test]
    fn snapshot_of_an_older_format_is_set_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (zs, file) = set(dir.path());
        let snap = zs.snapshot_path(&Name::parse_text(b"r.test.", None).unwrap());
        drop(zs);
        // The header's version field, as an older build wrote it.
        let mut bytes = std::fs::read(&snap).unwrap();
        bytes[8..12].copy_from_slice(&(crate::snapshot::FORMAT_VERSION - 1).to_le_bytes());
        std::fs::write(&snap, &bytes).unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        let mut notes = Vec::new();
        zs.add(None, &file, SerialPolicy::Increment, Limits::default(), 0, &mut notes).unwrap();
        zs.publish();
        assert_eq!(served_serial(&zs), 10);
        assert!(notes.iter().any(|n| n.contains("rebuilt from the zone file")), "{notes:?}");
        assert_eq!(crate::snapshot::format_version(&snap), Some(crate::snapshot::FORMAT_VERSION));
        let aside = snap.with_extension(format!("snap.format-{}", crate::snapshot::FORMAT_VERSION - 1));
        assert!(aside.exists());
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
    fn restarts_continue_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut zs, file) = set(dir.path());
        let snap = zs.snapshot_path(&zs.zones[0].name);
        let v10 = std::fs::read(&snap).unwrap();
        // A change whose serial the file forgot: served as 11.
        std::fs::write(&file, V1.replace("192.0.2.2", "192.0.2.3")).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Updated { to: 11, .. }));
        drop(zs);
        // Restart with the same file: still 11 (not 10 again, and not 12).
        let restart = |dir: &Path| {
            let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
            let mut zs = ZoneSet::new(dir, catalog);
            let mut notes = Vec::new();
            zs.add(None, &file, SerialPolicy::Increment, Limits::default(), 0, &mut notes).unwrap();
            (zs, notes)
        };
        let (zs, notes) = restart(dir.path());
        assert_eq!(zs.zones[0].serial(), Some(11), "{notes:?}");
        assert_eq!(zs.zones[0].journal.as_ref().unwrap().lock().unwrap().last_serial(), 11);
        drop(zs);
        // A crash after the journal append but before the snapshot write: the old snapshot
        // and a journal one step ahead. The restart replays it.
        std::fs::write(&snap, &v10).unwrap();
        let (zs, notes) = restart(dir.path());
        assert_eq!(zs.zones[0].serial(), Some(11));
        assert!(notes.iter().any(|n| n.contains("journal replayed")), "{notes:?}");
        let z = snapshot::to_zone(zs.zones[0].snapshot.as_ref().unwrap().zone()).unwrap();
        let www = Name::parse_text(b"www.r.test.", None).unwrap();
        assert_eq!(z.rrset(&www, rtype::A).unwrap().rdata.first().unwrap(), &[192, 0, 2, 3][..]);
        let ixfr = zs.zones[0].journal.as_ref().unwrap().lock().unwrap().changes_since(10).unwrap().unwrap();
        assert_eq!(ixfr.len(), 1);
        drop(zs);
        // A broken zone file at start: the last version is served all the same.
        std::fs::write(
            &file,
            "$ORIGIN r.test.
www A 1.2.3
",
        )
        .unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        let mut notes = Vec::new();
        let name = Name::parse_text(b"r.test.", None).unwrap();
        zs.add(Some(&name), &file, SerialPolicy::Increment, Limits::default(), 0, &mut notes).unwrap();
        assert_eq!(zs.zones[0].serial(), Some(11));
        assert!(notes.iter().any(|n| n.contains("from the last run")), "{notes:?}");
        assert!(zs.zones[0].last_error.is_some());
    }

    #[test]
    fn first_checks_spread_with_the_number_of_zones() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        assert_eq!(zs.first_check_spread(), std::time::Duration::ZERO, "a first zone is checked at once");
        let add = |zs: &mut ZoneSet, n: usize| {
            for i in zs.zones.len()..n {
                let name = Name::parse_text(format!("z{i}.test.").as_bytes(), None).unwrap();
                zs.add_unloaded(&name, Path::new("x.zone"), SerialPolicy::Keep, Limits::default(), "-".into()).unwrap();
            }
        };
        add(&mut zs, 50);
        let spreads: Vec<_> = (0..200).map(|_| zs.first_check_spread()).collect();
        assert!(spreads.iter().all(|d| d.as_millis() <= 50), "{spreads:?}");
        assert!(spreads.iter().any(|d| d.as_millis() > 5), "random, not always at once: {spreads:?}");
        add(&mut zs, 61_000);
        let spreads: Vec<_> = (0..200).map(|_| zs.first_check_spread()).collect();
        assert!(spreads.iter().all(|d| *d <= FIRST_CHECK_SPREAD_MAX), "capped");
        assert!(spreads.iter().any(|d| d.as_secs() > 10), "{spreads:?}");
    }

    #[test]
    fn a_failed_snapshot_write_takes_the_change_back_out_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut zs, file) = set(dir.path());
        let snap = zs.snapshot_path(&zs.zones[0].name);
        // The snapshot cannot be replaced: a directory where the file was.
        std::fs::remove_file(&snap).unwrap();
        std::fs::create_dir(&snap).unwrap();
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.3")).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Failed { .. }));
        assert_eq!(served_serial(&zs), 10);
        let journal = zs.zones[0].journal.clone().unwrap();
        assert_eq!(journal.lock().unwrap().last_serial(), 10, "the journal still ends at the served version");
        // Once the snapshot can be written, the same change goes through.
        std::fs::remove_dir(&snap).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Updated { from: 10, to: 11, .. }));
        assert_eq!(journal.lock().unwrap().last_serial(), 11);
        assert_eq!(journal.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_signed_zone_keeps_its_soa() {
        let dir = tempfile::tempdir().unwrap();
        let (mut zs, file) = set(dir.path());
        // Signed (an RRSIG over the SOA, made up: nothing here validates it).
        let signed = format!("{V1}@ RRSIG SOA 13 2 300 20461201000000 20261201000000 1 r.test. c2ln\n");
        std::fs::write(&file, signed.replace(" 10 ", " 11 ")).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Updated { from: 10, to: 11, .. }));
        // Changed data under the same serial: refused whatever the policy would raise it to,
        // and what runs stays.
        for policy in [SerialPolicy::Increment, SerialPolicy::Unixtime] {
            zs.zones[0].policy = policy;
            std::fs::write(&file, signed.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.9")).unwrap();
            match zs.reload(0, 1_800_000_000) {
                Reloaded::Failed { error } => {
                    assert!(error.contains("signed") && error.contains("re-sign the zone upstream"), "{error}")
                }
                r => panic!("{r:?}"),
            }
            assert_eq!(served_serial(&zs), 11);
        }
        // Under keep, the change is served with the file's SOA as it is.
        zs.zones[0].policy = SerialPolicy::Keep;
        assert!(matches!(zs.reload(0, 0), Reloaded::Updated { from: 11, to: 11, .. }));
    }

    fn unix_now() -> u32 {
        SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
    }

    #[test]
    fn a_restart_serves_a_current_snapshot_without_reading_its_zone_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.test.zone");
        std::fs::write(&file, V1).unwrap();
        let name = Name::parse_text(b"r.test.", None).unwrap();
        // The file has settled `later` (SourceStamp::SETTLED).
        let later = unix_now() + 5;
        let start = |now: u32| {
            let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
            let mut zs = ZoneSet::new(dir.path(), catalog);
            let mut notes = Vec::new();
            zs.add(Some(&name), &file, SerialPolicy::Increment, Limits::default(), now, &mut notes).unwrap();
            zs.publish();
            (zs, notes)
        };
        let (zs, _) = start(later);
        assert_eq!(zs.files_read, 1);
        assert!(!zs.zones[0].source.is_none());
        drop(zs);
        let (zs, notes) = start(later);
        assert_eq!(zs.files_read, 0, "{notes:?}");
        assert_eq!(served_serial(&zs), 10);
        assert!(!zs.zones[0].journal.as_ref().unwrap().lock().unwrap().on_disk(), "no journal before a change");
        drop(zs);
        // The file changed (same length): read, and its new version served.
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.3")).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), V1.len() as u64);
        let (zs, notes) = start(later);
        assert_eq!((zs.files_read, served_serial(&zs)), (1, 11), "{notes:?}");
        drop(zs);
        let (mut zs, _) = start(later);
        assert_eq!((zs.files_read, served_serial(&zs)), (0, 11));
        // A reload of a file as recorded does not read it either.
        assert!(matches!(zs.reload(0, later), Reloaded::Unchanged { serial: 11 }));
        assert_eq!(zs.files_read, 0);
        drop(zs);
        // A file written again with the same zone, read before it settled: read at every
        // start until it has, then stamped (without a new version) and no longer read.
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.3")).unwrap();
        for _ in 0..2 {
            let (zs, _) = start(0);
            assert_eq!((zs.files_read, served_serial(&zs)), (1, 11));
        }
        let (zs, _) = start(later);
        assert_eq!((zs.files_read, served_serial(&zs)), (1, 11));
        assert_eq!(zs.zones[0].journal.as_ref().unwrap().lock().unwrap().len(), 1);
        drop(zs);
        let (zs, _) = start(later);
        assert_eq!((zs.files_read, served_serial(&zs)), (0, 11));
        drop(zs);
        // A journal ahead of the snapshot (a crash between the append and the snapshot's
        // rename): read, so that the file is compared with the replayed version.
        let snap = dir.path().join("r.test.snap");
        let v11 = std::fs::read(&snap).unwrap();
        std::fs::write(&file, V1.replace(" 10 ", " 12 ").replace("192.0.2.2", "192.0.2.4")).unwrap();
        let (zs, _) = start(0);
        assert_eq!(served_serial(&zs), 12);
        drop(zs);
        std::fs::write(&snap, &v11).unwrap();
        let (zs, notes) = start(later);
        assert_eq!((zs.files_read, served_serial(&zs)), (1, 12), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("journal replayed")), "{notes:?}");
    }

    #[test]
    fn a_first_snapshot_lost_to_a_crash_is_rebuilt_but_not_one_with_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (zs, file) = set(dir.path());
        let snap = zs.snapshot_path(&zs.zones[0].name);
        drop(zs);
        let restart = || {
            let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
            let mut zs = ZoneSet::new(dir.path(), catalog);
            let mut notes = Vec::new();
            let r = zs.add(None, &file, SerialPolicy::Increment, Limits::default(), 7, &mut notes).map(|_| ());
            (zs, notes, r)
        };
        // Renamed into place, its contents never written (a crash before the syncfs).
        let len = std::fs::metadata(&snap).unwrap().len();
        std::fs::write(&snap, vec![0u8; len as usize]).unwrap();
        let (zs, notes, r) = restart();
        r.unwrap();
        assert_eq!(zs.zones[0].serial(), Some(10));
        assert!(notes.iter().any(|n| n.contains("rebuilt from the zone file")), "{notes:?}");
        assert!(snap.with_extension("snap.refused-7").exists());
        assert!(Snapshot::open(&snap).is_ok());
        // With a journal beside it, the snapshot is its base: refused, not rebuilt.
        let mut zs = zs;
        zs.publish();
        std::fs::write(&file, V1.replace(" 10 ", " 11 ").replace("192.0.2.2", "192.0.2.3")).unwrap();
        assert!(matches!(zs.reload(0, 0), Reloaded::Updated { to: 11, .. }));
        drop(zs);
        let bytes = std::fs::read(&snap).unwrap();
        std::fs::write(&snap, &bytes[..bytes.len() - 1]).unwrap();
        let (_, _, r) = restart();
        assert!(r.unwrap_err().contains("snapshot refused"));
    }

    #[test]
    fn a_data_directory_serves_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (zs, file) = set(dir.path());
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut other = ZoneSet::new(dir.path(), catalog);
        let Err(err) = other.add(None, &file, SerialPolicy::Increment, Limits::default(), 0, &mut Vec::new()) else {
            panic!("a second zone set on the same directory")
        };
        assert!(err.contains("in use by another process"), "{err}");
        drop(other);
        drop(zs);
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        zs.add(None, &file, SerialPolicy::Increment, Limits::default(), 0, &mut Vec::new()).unwrap();
    }

    #[test]
    fn zones_are_found_by_name_after_others_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        let mut text = String::from("[server]\nlisten = [\"127.0.0.1:5300\"]\n");
        for k in 0..20 {
            let f = dir.path().join(format!("z{k}.test.zone"));
            std::fs::write(&f, V1.replace("r.test.", &format!("z{k}.test."))).unwrap();
            text.push_str(&format!("[[zone]]\nname = \"Z{k}.test\"\nfile = \"{}\"\n", f.display()));
        }
        let conf = dir.path().join("c.toml");
        std::fs::write(&conf, &text).unwrap();
        let old = Config::load(&conf).unwrap();
        for z in &old.zones {
            zs.add_configured(z, &old, 0, &mut Vec::new()).unwrap();
        }
        let n = |k: usize| Name::parse_text(format!("z{k}.TEST.").as_bytes(), None).unwrap();
        assert_eq!(zs.index(&n(7)), Some(7));
        // Every other zone goes.
        let kept: String = text
            .split("[[zone]]")
            .enumerate()
            .filter(|(i, _)| *i == 0 || i % 2 == 1)
            .map(|(i, t)| if i == 0 { t.to_string() } else { format!("[[zone]]{t}") })
            .collect();
        std::fs::write(&conf, kept).unwrap();
        let new = Config::load(&conf).unwrap();
        let mut notes = Vec::new();
        zs.reconfigure(&old, &new, 0, &mut notes);
        assert_eq!(notes.iter().filter(|n| n.contains("removed")).count(), 10, "{notes:?}");
        assert_eq!(zs.zones.len(), 10);
        for k in 0..20 {
            match zs.index(&n(k)) {
                Some(i) => assert!(k % 2 == 0 && zs.zones[i].name.to_lowercase() == n(k).to_lowercase()),
                None => assert!(k % 2 == 1),
            }
        }
        assert_eq!(zs.catalog.load().snapshots().count(), 10);
    }

    #[test]
    fn a_generated_catalog_follows_its_members_and_keeps_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        let start = || {
            let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
            let mut zs = ZoneSet::new(dir.path(), catalog);
            zs.add_generated(&n("cat.test."), Limits::default(), 1_000, &mut Vec::new()).unwrap();
            zs
        };
        let mut zs = start();
        assert_eq!(zs.zones[0].serial(), Some(1_000));
        assert!(matches!(zs.reload(0, 0), Reloaded::Unchanged { serial: 1_000 }));
        let (a, b) = (n("a.test."), n("b.test."));
        assert!(zs.replace_generated(0, [(&a, None), (&b, Some(&b"blue"[..]))], 500).unwrap());
        assert_eq!(zs.zones[0].serial(), Some(1_001));
        assert!(!zs.replace_generated(0, [(&a, None), (&b, Some(&b"blue"[..]))], 500).unwrap(), "nothing changed");
        assert!(zs.replace_generated(0, [(&a, None)], 2_000).unwrap());
        assert_eq!(zs.zones[0].serial(), Some(2_000));
        let z = snapshot::to_zone(zs.zones[0].snapshot.as_ref().unwrap().zone()).unwrap();
        let (c, _) = crate::catz::read(&z).unwrap();
        assert_eq!(c.members.len(), 1);
        // IXFR from the first version: two changes.
        let j = zs.zones[0].journal.clone().unwrap();
        assert_eq!(j.lock().unwrap().changes_since(1_000).unwrap().unwrap().len(), 2);
        drop(zs);
        // A restart continues from the last version.
        let zs = start();
        assert_eq!(zs.zones[0].serial(), Some(2_000));
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

    #[test]
    fn due_checks_come_from_the_heaps_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        let names: Vec<Name> =
            (0..3).map(|i| Name::parse_text(format!("s{i}.test.").as_bytes(), None).unwrap()).collect();
        for n in &names {
            let timeout = std::time::Duration::from_secs(5);
            zs.add_secondary(n, Vec::new(), Bounds::default(), Limits::default(), timeout, &mut Vec::new()).unwrap();
        }
        // Nothing kept: all three are due at once, each taken once; nothing expires.
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        while let Some(i) = zs.take_due_check(now) {
            zs.zones[i].secondary.as_mut().unwrap().refresh.started(now);
            zs.schedule(i, now);
            due.push(zs.zones[i].name.clone());
        }
        assert_eq!(due, names);
        assert_eq!((zs.take_expired(now + std::time::Duration::from_secs(1 << 30)), zs.next_timer(true)), (None, None));
        // The check of s1 fails: due again after its retry (1 s while nothing was ever
        // loaded), not before.
        let i = zs.index(&names[1]).unwrap();
        zs.zones[i].secondary.as_mut().unwrap().refresh.failed("no answer".into(), now);
        zs.schedule(i, now);
        assert_eq!(zs.next_timer(true), Some(now + std::time::Duration::from_secs(1)));
        assert_eq!(zs.next_timer(false), None, "checks are not waited for while no worker is free");
        assert_eq!(zs.take_due_check(now), None);
        // A flood of NOTIFYs makes it due now, with one entry in the heap for them all.
        for _ in 0..10_000 {
            zs.zones[i].secondary.as_mut().unwrap().refresh.notified();
            zs.schedule(i, now);
        }
        assert!(zs.checks.len() <= 2, "{} entries", zs.checks.len());
        assert_eq!(zs.take_due_check(now), Some(i));
        assert_eq!(zs.take_due_check(now), None);
        // A zone removed while its entry waits is passed over.
        zs.schedule(i, now);
        assert!(zs.remove(&names[1]));
        assert_eq!(zs.take_due_check(now + std::time::Duration::from_secs(2)), None);
    }

    #[test]
    fn a_publish_shares_what_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog.clone());
        for i in 0..20 {
            let file = dir.path().join(format!("z{i}.test.zone"));
            std::fs::write(&file, V1.replace("r.test.", &format!("z{i}.test."))).unwrap();
            zs.add(None, &file, SerialPolicy::Keep, Limits::default(), 0, &mut Vec::new()).unwrap();
        }
        zs.publish();
        let first = catalog.load_full();
        let apexes = zs.published.as_ref().unwrap().apexes.clone();
        // A new version of z7: only it differs; the apexes are the same Arc.
        let z7 = Name::parse_text(b"z7.test.", None).unwrap();
        let i = zs.index(&z7).unwrap();
        let file = zs.zones[i].file.clone();
        std::fs::write(&file, V1.replace("r.test.", "z7.test.").replace(" 10 ", " 11 ")).unwrap();
        let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32 + 5;
        assert!(matches!(zs.reload(i, later), Reloaded::Updated { to: 11, .. }), "{:?}", zs.zones[i].last_error);
        let second = catalog.load_full();
        assert!(Arc::ptr_eq(&apexes, &zs.published.as_ref().unwrap().apexes));
        let serial =
            |c: &Catalog, n: &str| c.zone(Name::parse_text(n.as_bytes(), None).unwrap().as_wire()).unwrap().serial();
        assert_eq!((serial(&first, "z7.test."), serial(&second, "z7.test.")), (10, 11));
        assert_eq!(serial(&second, "z8.test."), 10);
        assert!(zs.journals.load().get(z7.as_wire()).is_some());
        // A zone leaving the set makes the next version anew, without it.
        assert!(zs.remove(&z7));
        zs.publish();
        assert!(!Arc::ptr_eq(&apexes, &zs.published.as_ref().unwrap().apexes));
        assert!(catalog.load().zone(z7.as_wire()).is_none());
        assert!(zs.journals.load().get(z7.as_wire()).is_none());
        assert_eq!(catalog.load().snapshots().count(), 19);
    }
}
