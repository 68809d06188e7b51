//! The per-zone journal: an append-only file of changesets (serial from → to, RRs removed,
//! RRs added), each made durable before `append` returns, so that a change is announced
//! (NOTIFY, IXFR) only once it survives a crash. Replayed on start onto a base version of the
//! zone; read back by ranges for IXFR; compacted when it grows past its limits.
//!
//! This module owns the journal file and nothing else: no sockets, no timers, no knowledge
//! of who asks for a range or why. The base version it replays onto (a snapshot or a zone
//! file) is the caller's.
//!
//! # File format (version 1)
//!
//! Framing integers are **little-endian** (like the snapshot header); the records inside a
//! body are in DNS wire form, so their integers are **big-endian** (network order).
//!
//! File header, at offset 0:
//! ```text
//!  0  magic "NSXDPJNL"          8 bytes
//!  8  format version            u32 LE   (1)
//! 12  header length H           u32 LE   (= 24 + L + 4; the first entry starts at H)
//! 16  start serial              u32 LE   (the serial the first entry starts from; while the
//!                                          journal has no entries, the serial it continues from)
//! 20  origin length L           u16 LE   (1..=255)
//! 22  reserved                  2 bytes  (zero)
//! 24  origin                    L bytes  (the zone apex, lowercased, uncompressed wire form)
//! 24+L CRC32C of bytes 0..24+L  u32 LE
//! ```
//! Then entries, back to back until the end of the file. One entry:
//! ```text
//!  0  body length B             u32 LE
//!  4  serial from               u32 LE
//!  8  serial to                 u32 LE
//! 12  head CRC32C               u32 LE   (of bytes 0..12: a damaged length is recognised
//!                                          as such, rather than followed)
//! 16  body                      B bytes
//! 16+B entry CRC32C             u32 LE   (of bytes 0..16+B: head and body)
//! ```
//! Body:
//! ```text
//!  0  removed count R           u32 LE
//!  4  added count A             u32 LE
//!  8  SOA before the change     RR  (the apex SOA; its serial is `serial from`)
//!     SOA after the change      RR  (its serial is `serial to`)
//!     R removed records         RR each
//!     A added records           RR each
//! ```
//! RR, as in a DNS message (RFC 1035 §4.1.3) without compression: owner (uncompressed wire
//! name, case as given), type u16 BE, class u16 BE (always 1, IN), TTL u32 BE, rdata length
//! u16 BE, rdata. The apex SOA appears only in the two SOA slots. Applying an entry is:
//! remove the removed records, add the added ones, replace the SOA (what
//! [`Zone::apply`](crate::zone::Zone::apply) does). Serials chain: each entry's `from` is
//! the previous entry's `to` (the header's start serial for the first), and each `to` is
//! newer than its `from` in RFC 1982 arithmetic ([`serial`]).
//!
//! # Durability and recovery
//!
//! - [`Journal::append`] writes one entry at the end with one `pwrite` and `fdatasync`s
//!   before returning. A failed write is cut off again; a failed fsync (or a failed fsync
//!   of the directory after compaction renamed the new file into place) makes the handle
//!   refuse further appends: after a failed fsync the kernel's view of the file cannot be
//!   trusted, and reopening re-reads what is really there.
//! - [`Journal::open`] reads every entry and checks both checksums, the body structure and
//!   the serial chain. Only the last entry can be incomplete (each append is durable before
//!   the next begins), so damage with nothing valid after it is a **torn tail**: the file is
//!   truncated to the end of the last good entry, fsynced, and the cut is reported
//!   ([`TornTail`]) for the caller to log. Damage followed by a valid entry is **corruption
//!   in the middle**: the journal is refused ([`JournalError::Corrupt`]) and left as it is;
//!   nothing is guessed. Precisely, at the first entry that is not right:
//!   - fewer than 16 bytes left, or a good head whose entry runs past the end of the file:
//!     torn tail;
//!   - a good head, a bad entry checksum: torn tail unless a complete entry with good
//!     checksums starts at some offset at or after where this entry ends;
//!   - a bad head checksum (the length cannot be trusted): torn tail unless a complete entry
//!     with good checksums starts at some later offset;
//!   - good checksums but a body that does not parse, or serials that do not chain or do not
//!     increase: corruption (those bytes are what some writer wrote; no tear explains them).
//! - The file, its temporary files and the directory are written the way snapshots are:
//!   temporary file, fsync, rename, fsync of the directory (creation and compaction). A
//!   crash leaves the old file or the new one, each consistent.
//! - The file is locked (`flock`, exclusive) while a [`Journal`] holds it: a second writer,
//!   in this process or another, is refused. Or, for a caller that holds journals of many
//!   zones ([`Guard::Directory`]): the caller keeps other writers out with one lock over the
//!   whole directory, and the journal keeps no descriptor between operations (each append
//!   or read opens the file and closes it again), so 10^5 zones do not need 10^5
//!   descriptors; and a journal with no entries need not exist on disk yet
//!   ([`Journal::unwritten`]: it is created, atomically as always, at its first append —
//!   a missing journal and an empty one mean the same to [`Journal::open_or_create_with`]).
//!
//! # Base and journal
//!
//! The journal holds changes; the zone itself lives in a **base**: a snapshot written at
//! compaction time, or the zone file the journal was started from. [`replay`] applies the
//! entries newer than the base's serial onto it. The base's serial must be the journal's
//! start serial or the `to` of one of its entries; entries up to the base's serial are
//! already in the base and are skipped; a base older than the start serial is a gap (an
//! error: changes would be missing), one newer than the last serial is an error too (the
//! journal does not belong to that base).
//!
//! Compaction ([`Journal::compact`], or [`compact_onto_base`] which writes the base too) is
//! two steps in this order: (1) write the base snapshot of the current zone (atomic, durable),
//! (2) rewrite the journal without its oldest entries. Only entries already in the base are
//! dropped, so a crash between or during the steps leaves a journal that still replays onto
//! the base on disk (the old journal's extra entries are older than the base and skipped).
//!
//! # Memory and reads
//!
//! Opening reads and checks the whole file once, sequentially, one entry in memory at a time.
//! Afterwards the journal keeps an in-memory index only (per entry: offset, length, serials —
//! 24 bytes), and reads entries from the file on demand with `pread` ([`Journal::read`],
//! [`Journal::changes_since`]). Entries can be large (a changeset of a big zone), so keeping
//! them in memory would tie the journal's memory to its size limit; IXFR reads are rare and
//! sequential, and the page cache serves recent ones. Finding the start of a range is a
//! backwards scan of the index (most clients are a few versions behind).

mod format;
mod replay;
#[cfg(test)]
mod tests;

pub use format::FORMAT_VERSION;
pub use replay::{compact_onto_base, replay, Replayed};

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use format::{EntryHead, FileHeader, ENTRY_HEAD, ENTRY_OVERHEAD, ENTRY_TAIL};

use crate::wire::name::{self, Name};
use crate::wire::rdata::rtype;
use crate::wire::serial;
use crate::zone::{soa_serial, Changeset};

/// Why a journal operation failed. Every message names the journal file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// The header is bad, or an entry in the middle is damaged, or checksummed bytes do not
    /// make sense: the file is refused as it is.
    #[error("{path}: journal refused: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: journal is locked by another writer")]
    Locked { path: PathBuf },
    #[error("{path}: journal already exists")]
    Exists { path: PathBuf },
    #[error("{path}: journal of zone {found}, not {expected}")]
    WrongZone { path: PathBuf, found: Name, expected: Name },
    /// `append` of a changeset that cannot go into the journal.
    #[error("{path}: changeset refused: {reason}")]
    BadChangeset { path: PathBuf, reason: String },
    /// `append` of a changeset that does not start where the journal ends.
    #[error("{path}: serials do not chain: the journal ends at serial {last}, the changeset starts at {from}")]
    Chain { path: PathBuf, last: u32, from: u32 },
    /// An earlier write or fsync failed; the handle takes no more appends.
    #[error("{path}: journal unusable after a failed write or fsync; reopen it")]
    Poisoned { path: PathBuf },
    /// The base is older than the journal's first entry: changes in between are missing.
    #[error("{path}: gap: the base is at serial {base}, the journal starts at {start}")]
    Gap { path: PathBuf, base: u32, start: u32 },
    /// The base is newer than the journal's last serial.
    #[error("{path}: the base is at serial {base}, newer than the journal's last serial {last}")]
    BaseAhead { path: PathBuf, base: u32, last: u32 },
    /// The base's serial lies within the journal's range but is none of its versions.
    #[error("{path}: serial {base} is not a version in this journal ({start} to {last})")]
    NotInHistory { path: PathBuf, base: u32, start: u32, last: u32 },
    /// A changeset did not apply cleanly to the base: the two do not belong together.
    #[error("{path}: replay of serial {from} to {to}: {reason}")]
    Replay { path: PathBuf, from: u32, to: u32, reason: String },
    /// Writing the base snapshot before compaction failed.
    #[error("{path}: base snapshot not written, journal left as it was: {reason}")]
    Base { path: PathBuf, reason: String },
}

/// Size and depth limits. Going over either makes [`Journal::needs_compaction`] true;
/// compaction then keeps at most half of each (so that a rewrite, which costs the size of
/// what is kept, happens once per many appends, not after every one), but never drops an
/// entry that is not yet in the base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the journal file.
    pub max_bytes: u64,
    /// Entries (changesets).
    pub max_depth: usize,
}

impl Default for Limits {
    /// 64 MiB and 100 changesets: the defaults of the zone configuration
    /// (`journal-max-bytes`, `journal-max-depth`).
    fn default() -> Limits {
        Limits { max_bytes: 64 << 20, max_depth: 100 }
    }
}

/// Where one entry is, and which change it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Offset of the entry in the file.
    pub offset: u64,
    /// Bytes of the whole entry, framing included.
    pub len: u64,
    pub from: u32,
    pub to: u32,
}

/// A damaged tail found and cut off by [`Journal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the damage starts: the file now ends here.
    pub offset: u64,
    /// Bytes cut off.
    pub cut: u64,
    pub reason: String,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "torn tail cut off at offset {} ({} bytes dropped): {}", self.offset, self.cut, self.reason)
    }
}

/// What [`Journal::compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    pub dropped: usize,
    pub kept: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// How a journal keeps a second writer out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// An exclusive `flock` on the file, held (with its descriptor) while the journal lives.
    /// Opening also removes the temporary files a killed writer of this journal left.
    File,
    /// The caller holds a lock over the journal's directory: no lock of its own, no
    /// descriptor kept between operations, and the caller removes stale temporary files
    /// (one listing for the whole directory rather than one per journal).
    Directory,
}

/// The journal's file for one operation: the descriptor kept, or one opened for it.
enum Handle<'a> {
    Kept(&'a File),
    Opened(File),
}

impl std::ops::Deref for Handle<'_> {
    type Target = File;
    fn deref(&self) -> &File {
        match self {
            Handle::Kept(f) => f,
            Handle::Opened(f) => f,
        }
    }
}

/// One zone's journal, open for appending and reading.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The file, while the journal keeps it open ([`Guard::File`]); None under
    /// [`Guard::Directory`], and before the file exists.
    file: Option<File>,
    guard: Guard,
    /// The file exists ([`Journal::unwritten`] journals are created at their first append).
    on_disk: bool,
    header: FileHeader,
    /// Where the first entry starts (the header's length).
    data_start: u64,
    /// The end of the last entry: the file's length.
    end: u64,
    entries: Vec<EntryInfo>,
    limits: Limits,
    poisoned: bool,
    /// Reused by `append` for encoding.
    buf: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |error| JournalError::Io { path: path.to_path_buf(), error }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The prefix of this journal's temporary files (`.NAME.tmp.`); the process id follows.
fn tmp_prefix(path: &Path) -> String {
    format!(".{}.tmp.", path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
}

fn sync_dir(path: &Path) -> Result<(), JournalError> {
    File::open(parent_dir(path)).and_then(|d| d.sync_all()).map_err(io(path))
}

/// Takes the exclusive advisory lock of an open journal file, without waiting.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    // SAFETY: flock on a file descriptor this `File` owns and keeps open; no memory is
    // passed to the kernel.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == ErrorKind::WouldBlock {
        return Err(JournalError::Locked { path: path.to_path_buf() });
    }
    Err(JournalError::Io { path: path.to_path_buf(), error: e })
}

/// A journal file written by [`write_atomically`] and put in place.
struct NewFile {
    file: File,
    index: Vec<EntryInfo>,
    end: u64,
    /// The directory could not be fsynced after the file was put in place: the file is
    /// there and consistent, but may not survive a crash.
    unsynced: Option<JournalError>,
}

/// Writes a new journal file next to `path` from a header and entries read from `source`
/// (verified again on the way), fsyncs and locks it, puts it in place and fsyncs the
/// directory. In place means renamed over `path` when `source` is given (compaction), and
/// linked to `path` otherwise (creation), which fails if `path` exists. An error means
/// nothing was put in place.
fn write_atomically(
    path: &Path,
    header: &FileHeader,
    source: Option<(&File, &[EntryInfo])>,
) -> Result<NewFile, JournalError> {
    let tmp = parent_dir(path).join(format!("{}{}", tmp_prefix(path), std::process::id()));
    let written = (|| {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp).map_err(io(path))?;
        lock(&f, path)?;
        let head = header.encode();
        f.write_all_at(&head, 0).map_err(io(path))?;
        let mut pos = head.len() as u64;
        let mut index = Vec::new();
        if let Some((src, entries)) = source {
            let mut buf = Vec::new();
            for e in entries {
                read_entry(src, path, e, &mut buf)?;
                f.write_all_at(&buf, pos).map_err(io(path))?;
                index.push(EntryInfo { offset: pos, ..*e });
                pos += e.len;
            }
        }
        f.sync_all().map_err(io(path))?;
        if source.is_some() {
            std::fs::rename(&tmp, path).map_err(io(path))?;
        } else {
            std::fs::hard_link(&tmp, path).map_err(|error| match error.kind() {
                ErrorKind::AlreadyExists => JournalError::Exists { path: path.to_path_buf() },
                _ => JournalError::Io { path: path.to_path_buf(), error },
            })?;
        }
        Ok(NewFile { file: f, index, end: pos, unsynced: None })
    })();
    // After a rename the temporary name is gone; after a link or a failure it goes now.
    let _ = std::fs::remove_file(&tmp);
    let mut new = written?;
    new.unsynced = sync_dir(path).err();
    Ok(new)
}

/// Reads the entry `e` into `buf` and checks its checksums.
fn read_entry(file: &File, path: &Path, e: &EntryInfo, buf: &mut Vec<u8>) -> Result<(), JournalError> {
    buf.clear();
    buf.resize(e.len as usize, 0);
    file.read_exact_at(buf, e.offset).map_err(io(path))?;
    let head = EntryHead::decode(buf);
    if head.is_none_or(|h| h.entry_len() != e.len || h.from != e.from || h.to != e.to) || !format::entry_crc_ok(buf) {
        return Err(corrupt(path, format!("entry at offset {} changed on disk since it was read", e.offset)));
    }
    Ok(())
}

/// Whether a complete, valid entry starts anywhere in `file[from..len]`: the test that
/// tells damage in the middle from a torn tail when a damaged head hides the length.
fn valid_entry_after(file: &File, from: u64, len: u64) -> std::io::Result<bool> {
    const CHUNK: u64 = 1 << 20;
    let mut window = Vec::new();
    let mut entry = Vec::new();
    let mut off = from;
    while off + ENTRY_OVERHEAD as u64 <= len {
        let n = (CHUNK + ENTRY_HEAD as u64).min(len - off) as usize;
        window.resize(n, 0);
        file.read_exact_at(&mut window, off)?;
        for i in 0..=n - ENTRY_HEAD {
            if i as u64 >= CHUNK {
                break;
            }
            let Some(h) = EntryHead::decode(&window[i..]) else { continue };
            let at = off + i as u64;
            if at + h.entry_len() > len {
                continue;
            }
            entry.resize(h.entry_len() as usize, 0);
            file.read_exact_at(&mut entry, at)?;
            if format::entry_crc_ok(&entry) {
                return Ok(true);
            }
        }
        off += CHUNK;
    }
    Ok(false)
}

impl Journal {
    /// Creates the journal of zone `origin`, empty, continuing from `serial` (the serial of
    /// the base it belongs to). Atomic: a crash leaves no file or a complete one. Fails if
    /// the file exists (checked atomically: the new file is hard-linked into place).
    pub fn create(path: &Path, origin: &Name, serial: u32, limits: Limits) -> Result<Journal, JournalError> {
        let mut j = Journal::unwritten(path, origin, serial, limits, Guard::File);
        j.write_file()?;
        Ok(j)
    }

    /// The journal of zone `origin`, empty, continuing from `serial`, not yet on disk: the
    /// file is created ([`create`](Self::create)'s way) at the first append. For a zone
    /// whose base is durable, this is the same as an empty journal file, without its cost.
    pub fn unwritten(path: &Path, origin: &Name, serial: u32, limits: Limits, guard: Guard) -> Journal {
        let header = FileHeader { origin: origin.to_lowercase(), start_serial: serial };
        let data_start = header.len() as u64;
        Journal {
            path: path.to_path_buf(),
            file: None,
            guard,
            on_disk: false,
            header,
            data_start,
            end: data_start,
            entries: Vec::new(),
            limits,
            poisoned: false,
            buf: Vec::new(),
        }
    }

    /// Creates the file of an [`unwritten`](Self::unwritten) journal.
    fn write_file(&mut self) -> Result<(), JournalError> {
        let new = write_atomically(&self.path, &self.header, None)?;
        if let Some(e) = new.unsynced {
            return Err(e);
        }
        self.on_disk = true;
        self.end = new.end;
        if self.guard == Guard::File {
            self.file = Some(new.file);
        }
        Ok(())
    }

    /// The file for one operation.
    fn handle(&self) -> Result<Handle<'_>, JournalError> {
        match &self.file {
            Some(f) => Ok(Handle::Kept(f)),
            None => {
                OpenOptions::new().read(true).write(true).open(&self.path).map(Handle::Opened).map_err(io(&self.path))
            }
        }
    }

    /// Opens a journal: checks the header and every entry, cuts off a torn tail (reported in
    /// the second value, for the caller to log) and builds the index. Corruption anywhere
    /// but the tail is an error and the file is left untouched.
    pub fn open(path: &Path, limits: Limits) -> Result<(Journal, Option<TornTail>), JournalError> {
        Journal::open_with(path, limits, Guard::File)
    }

    /// [`open`](Self::open), with the other writers kept out as `guard` says.
    pub fn open_with(path: &Path, limits: Limits, guard: Guard) -> Result<(Journal, Option<TornTail>), JournalError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io(path))?;
        if guard == Guard::File {
            lock(&file, path)?;
            remove_stale_tmp(path);
        }
        let len = file.metadata().map_err(io(path))?.len();
        let mut first = vec![0u8; len.min((format::FIXED_HEADER + name::MAX_NAME_LEN + 4) as u64) as usize];
        file.read_exact_at(&mut first, 0).map_err(io(path))?;
        let (header, hlen) = FileHeader::decode(&first).map_err(|r| corrupt(path, r))?;
        let mut j = Journal {
            path: path.to_path_buf(),
            file: Some(file),
            guard,
            on_disk: true,
            data_start: hlen as u64,
            end: hlen as u64,
            header,
            entries: Vec::new(),
            limits,
            poisoned: false,
            buf: Vec::new(),
        };
        let torn = j.scan(len)?;
        if let (Some(t), Some(f)) = (&torn, &j.file) {
            f.set_len(t.offset).map_err(io(path))?;
            f.sync_all().map_err(io(path))?;
        }
        if guard == Guard::Directory {
            j.file = None;
        }
        Ok((j, torn))
    }

    /// Opens the journal at `path`, or creates it (empty, at `serial`) if there is none.
    /// An existing journal must belong to `origin`.
    pub fn open_or_create(
        path: &Path,
        origin: &Name,
        serial: u32,
        limits: Limits,
    ) -> Result<(Journal, Option<TornTail>), JournalError> {
        let (mut j, torn) = Journal::open_or_create_with(path, origin, serial, limits, Guard::File)?;
        if !j.on_disk {
            j.write_file()?;
        }
        Ok((j, torn))
    }

    /// [`open_or_create`](Self::open_or_create) with the other writers kept out as `guard`
    /// says, and a missing file left [`unwritten`](Self::unwritten) until the first append.
    pub fn open_or_create_with(
        path: &Path,
        origin: &Name,
        serial: u32,
        limits: Limits,
        guard: Guard,
    ) -> Result<(Journal, Option<TornTail>), JournalError> {
        match Journal::open_with(path, limits, guard) {
            Ok((j, torn)) => {
                if j.origin() != &origin.to_lowercase() {
                    return Err(JournalError::WrongZone {
                        path: path.to_path_buf(),
                        found: j.origin().clone(),
                        expected: origin.to_lowercase(),
                    });
                }
                Ok((j, torn))
            }
            Err(JournalError::Io { error, .. }) if error.kind() == ErrorKind::NotFound => {
                Ok((Journal::unwritten(path, origin, serial, limits, guard), None))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the entries after the header, up to `len`; fills the index. Returns the torn
    /// tail, if any (not yet cut).
    fn scan(&mut self, len: u64) -> Result<Option<TornTail>, JournalError> {
        let path = self.path.clone();
        let mut pos = self.data_start;
        let mut prev = self.header.start_serial;
        let mut buf = Vec::new();
        let torn = |offset: u64, reason: String| Ok(Some(TornTail { offset, cut: len - offset, reason }));
        let file = self.file.as_ref().expect("open keeps the file while it scans");
        while pos < len {
            if len - pos < ENTRY_HEAD as u64 {
                return torn(pos, format!("partial entry head ({} of {ENTRY_HEAD} bytes)", len - pos));
            }
            let mut h = [0u8; ENTRY_HEAD];
            file.read_exact_at(&mut h, pos).map_err(io(&path))?;
            let Some(head) = EntryHead::decode(&h) else {
                if valid_entry_after(file, pos + 1, len).map_err(io(&path))? {
                    return Err(corrupt(
                        &path,
                        format!("entry at offset {pos}: damaged head, and valid entries follow"),
                    ));
                }
                return torn(pos, "damaged entry head".into());
            };
            let elen = head.entry_len();
            if pos + elen > len {
                return torn(pos, format!("partial entry ({} of {elen} bytes)", len - pos));
            }
            buf.resize(elen as usize, 0);
            file.read_exact_at(&mut buf, pos).map_err(io(&path))?;
            if !format::entry_crc_ok(&buf) {
                if valid_entry_after(file, pos + elen, len).map_err(io(&path))? {
                    return Err(corrupt(
                        &path,
                        format!("entry at offset {pos}: checksum mismatch, and valid entries follow"),
                    ));
                }
                return torn(pos, "checksum mismatch in the last entry".into());
            }
            // From here on the bytes are what was written: any fault is not a torn write.
            let at = |r: String| corrupt(&path, format!("entry at offset {pos} ({} to {}): {r}", head.from, head.to));
            if head.from != prev {
                return Err(at(format!("does not follow serial {prev}")));
            }
            if !serial::gt(head.to, head.from) {
                return Err(at("serial does not increase".into()));
            }
            format::walk_body(&buf[ENTRY_HEAD..buf.len() - ENTRY_TAIL], &self.header.origin, &head, |_, _| {})
                .map_err(at)?;
            self.entries.push(EntryInfo { offset: pos, len: elen, from: head.from, to: head.to });
            prev = head.to;
            pos += elen;
            self.end = pos;
        }
        Ok(None)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the journal keeps its file open between operations ([`Guard::File`]).
    pub fn holds_descriptor(&self) -> bool {
        self.file.is_some()
    }

    /// Whether the file exists (an [`unwritten`](Self::unwritten) journal's does not until
    /// its first append).
    pub fn on_disk(&self) -> bool {
        self.on_disk
    }

    /// The zone's apex, lowercased.
    pub fn origin(&self) -> &Name {
        &self.header.origin
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The serial the first entry starts from (the oldest version the journal can bring
    /// forward).
    pub fn first_serial(&self) -> u32 {
        self.header.start_serial
    }

    /// The serial the last entry leads to: the newest durable version.
    pub fn last_serial(&self) -> u32 {
        self.entries.last().map_or(self.header.start_serial, |e| e.to)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.end
    }

    /// The index: every entry, oldest first.
    pub fn entries(&self) -> &[EntryInfo] {
        &self.entries
    }

    /// Over either limit: time to write a new base and [`compact`](Journal::compact).
    pub fn needs_compaction(&self) -> bool {
        self.end > self.limits.max_bytes || self.entries.len() > self.limits.max_depth
    }

    /// Appends a changeset and makes it durable (`fdatasync`) before returning the new
    /// serial. The changeset must carry both SOAs, start at [`last_serial`](Self::last_serial)
    /// and lead to a newer serial (RFC 1982), with every record inside the zone and the apex
    /// SOA only in `soa_from`/`soa_to`.
    pub fn append(&mut self, cs: &Changeset) -> Result<u32, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned { path: self.path.clone() });
        }
        let (from, to) = self.check_changeset(cs)?;
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.append_entry(from, to, cs, &mut buf);
        // Large changesets do not keep their buffer.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result
    }

    fn append_entry(&mut self, from: u32, to: u32, cs: &Changeset, buf: &mut Vec<u8>) -> Result<u32, JournalError> {
        format::encode_entry(from, to, cs, buf)
            .map_err(|reason| JournalError::BadChangeset { path: self.path.clone(), reason })?;
        if !self.on_disk {
            self.write_file()?;
        }
        let file = self.handle()?;
        let path = &self.path;
        if let Err(error) = file.write_all_at(buf, self.end) {
            // Cut off what may have been written; if even that fails, stop.
            let cut = file.set_len(self.end).is_err();
            drop(file);
            self.poisoned |= cut;
            return Err(JournalError::Io { path: path.clone(), error });
        }
        if let Err(error) = file.sync_data() {
            drop(file);
            self.poisoned = true;
            return Err(JournalError::Io { path: self.path.clone(), error });
        }
        drop(file);
        self.entries.push(EntryInfo { offset: self.end, len: buf.len() as u64, from, to });
        self.end += buf.len() as u64;
        Ok(to)
    }

    /// Takes back the last changeset appended (durably), for a change that could not be
    /// served after all (its snapshot failed to write): the journal then ends where the
    /// running version is, and the next change can follow it. A crash before this returns
    /// leaves the entry, which a restart replays: a version nobody was told of, whole.
    pub fn retract_last(&mut self) -> Result<(), JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned { path: self.path.clone() });
        }
        let Some(last) = self.entries.last().copied() else { return Ok(()) };
        let cut =
            self.handle().and_then(|f| f.set_len(last.offset).and_then(|()| f.sync_data()).map_err(io(&self.path)));
        if let Err(e) = cut {
            self.poisoned = true;
            return Err(e);
        }
        self.entries.pop();
        self.end = last.offset;
        Ok(())
    }

    /// The serials of a changeset, once it is known to fit this journal.
    fn check_changeset(&self, cs: &Changeset) -> Result<(u32, u32), JournalError> {
        let bad = |reason: String| JournalError::BadChangeset { path: self.path.clone(), reason };
        let origin = &self.header.origin;
        let serial_of = |r: &Option<crate::zone::Record>, which: &str| {
            let r = r.as_ref().ok_or_else(|| bad(format!("no SOA {which} the change")))?;
            if r.rtype != rtype::SOA || r.owner.to_lowercase() != *origin {
                return Err(bad(format!("the SOA {which} the change is not the apex SOA of {origin}")));
            }
            soa_serial(&r.rdata).ok_or_else(|| bad(format!("malformed SOA {which} the change")))
        };
        let from = serial_of(&cs.soa_from, "before")?;
        let to = serial_of(&cs.soa_to, "after")?;
        let last = self.last_serial();
        if from != last {
            return Err(JournalError::Chain { path: self.path.clone(), last, from });
        }
        if !serial::gt(to, from) {
            return Err(bad(format!("serial {to} is not newer than {from} (RFC 1982)")));
        }
        for r in cs.removed.iter().chain(&cs.added) {
            if !r.owner.ends_with(origin) {
                return Err(bad(format!("{} is outside the zone {origin}", r.owner)));
            }
            if r.rtype == rtype::SOA && r.owner.to_lowercase() == *origin {
                return Err(bad("the apex SOA belongs in soa_from/soa_to, not among the records".into()));
            }
        }
        Ok((from, to))
    }

    /// The changeset of entry `i` (0 = oldest), read from the file and checked again.
    pub fn read(&self, i: usize) -> Result<Changeset, JournalError> {
        self.read_with(i, &mut Vec::new())
    }

    fn read_with(&self, i: usize, buf: &mut Vec<u8>) -> Result<Changeset, JournalError> {
        let e = self.entries.get(i).ok_or_else(|| corrupt(&self.path, format!("no entry {i}")))?;
        read_entry(&*self.handle()?, &self.path, e, buf)?;
        self.decode(e, buf)
    }

    /// The changeset of entry `e`, whose bytes (checked) are `buf`.
    fn decode(&self, e: &EntryInfo, buf: &[u8]) -> Result<Changeset, JournalError> {
        let head = EntryHead { body_len: (e.len - ENTRY_OVERHEAD as u64) as u32, from: e.from, to: e.to };
        format::decode_body(&buf[ENTRY_HEAD..buf.len() - ENTRY_TAIL], &self.header.origin, &head)
            .map_err(|r| corrupt(&self.path, format!("entry at offset {}: {r}", e.offset)))
    }

    /// The index of the first entry a version at `serial` needs to become current:
    /// `Some(len())` when it is current, `None` when the journal does not reach back to it.
    pub fn position_after(&self, serial: u32) -> Option<usize> {
        if serial == self.last_serial() {
            return Some(self.entries.len());
        }
        // The latest entry starting there: serials are unique along one chain unless the
        // journal spans more than the serial space.
        self.entries.iter().rposition(|e| e.from == serial)
    }

    /// The changesets that bring a version at `serial` to the last one, oldest first (for
    /// IXFR). `Ok(Some(empty))` when `serial` is the last one; `Ok(None)` when `serial` is
    /// none of the journal's versions: older than its history (the caller falls back to
    /// AXFR), or newer than the last one, or between versions (the caller decides: RFC 1995
    /// answers a client that is not behind with the SOA alone). Entries are read from the
    /// file one by one; [`position_after`](Self::position_after) and [`read`](Self::read)
    /// stream them instead, for a range too big to hold at once.
    pub fn changes_since(&self, serial: u32) -> Result<Option<Vec<Changeset>>, JournalError> {
        let Some(start) = self.position_after(serial) else { return Ok(None) };
        if start == self.entries.len() {
            return Ok(Some(Vec::new()));
        }
        // One descriptor for the whole range.
        let file = self.handle()?;
        let mut buf = Vec::new();
        let out = (start..self.entries.len())
            .map(|i| {
                let e = &self.entries[i];
                read_entry(&file, &self.path, e, &mut buf)?;
                self.decode(e, &buf)
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(out))
    }

    /// Drops the oldest entries that the base at `base_serial` already contains, keeping at
    /// most half of each limit (see [`Limits`]) and every entry newer than the base. The new
    /// file is written beside the old one and renamed over it (crash-safe: either file is
    /// consistent). The base must be durable before this is called — see
    /// [`compact_onto_base`], which writes it.
    pub fn compact(&mut self, base_serial: u32) -> Result<Compacted, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned { path: self.path.clone() });
        }
        // Entries [0, covered) are in the base.
        let covered = self.position_after(base_serial).ok_or_else(|| self.not_in_history(base_serial))?;
        let keep_depth = self.limits.max_depth / 2;
        let keep_bytes = (self.limits.max_bytes / 2).saturating_sub(self.data_start);
        let mut drop = covered;
        let mut bytes: u64 = self.entries[covered..].iter().map(|e| e.len).sum();
        while drop > 0 {
            let e = &self.entries[drop - 1];
            if self.entries.len() - drop + 1 > keep_depth || bytes + e.len > keep_bytes {
                break;
            }
            bytes += e.len;
            drop -= 1;
        }
        let before = self.end;
        if drop == 0 {
            return Ok(Compacted { dropped: 0, kept: self.entries.len(), bytes_before: before, bytes_after: before });
        }
        let start_serial = self.entries.get(drop).map_or(self.last_serial(), |e| e.from);
        let header = FileHeader { origin: self.header.origin.clone(), start_serial };
        let new = write_atomically(&self.path, &header, Some((&*self.handle()?, &self.entries[drop..])))?;
        // The new file is in place: from now on it is the journal. The old file's lock goes
        // with its handle; the new one is already locked.
        self.file = (self.guard == Guard::File).then_some(new.file);
        self.header = header;
        self.data_start = self.header.len() as u64;
        self.entries = new.index;
        self.end = new.end;
        if let Some(e) = new.unsynced {
            // The rename may not survive a crash, and appends to the new file with it:
            // take no more until the journal is reopened.
            self.poisoned = true;
            return Err(e);
        }
        Ok(Compacted { dropped: drop, kept: self.entries.len(), bytes_before: before, bytes_after: new.end })
    }

    /// The error for a base serial that is not a version of this journal.
    fn not_in_history(&self, base: u32) -> JournalError {
        let path = self.path.clone();
        let (start, last) = (self.first_serial(), self.last_serial());
        if serial::lt(base, start) {
            JournalError::Gap { path, base, start }
        } else if serial::gt(base, last) {
            JournalError::BaseAhead { path, base, last }
        } else {
            JournalError::NotInHistory { path, base, start, last }
        }
    }
}

/// Removes temporary files a crashed writer of this journal left behind (best effort; the
/// caller holds the journal's lock, so no live writer owns them).
fn remove_stale_tmp(path: &Path) {
    let prefix = tmp_prefix(path);
    let Ok(dir) = std::fs::read_dir(parent_dir(path)) else { return };
    for entry in dir.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
