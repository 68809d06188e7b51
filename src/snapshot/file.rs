//! The snapshot file: a checked header, then the rkyv archive, aligned for mmap.
//!
//! Header (little endian):
//! ```text
//!  0  magic "NSXDPSNP"        8
//!  8  format version          u32
//! 12  header length           u32  (multiple of 16; the archive starts here)
//! 16  archive length          u64
//! 24  CRC32C of the archive   u32
//! 28  SOA serial              u32
//! 32  origin length           u32
//! 36  CRC32C of the header    u32  (every header byte but these four)
//! 40  source size             u64  (the zone file the snapshot was made from, or zero:
//! 48  source mtime            i64   see [`SourceStamp`]; zero in snapshots of format 6
//! 56  source ctime            i64   written before the stamp existed)
//! 64  origin, wire form, then zero padding to the header length
//! ```
//! Writing is atomic (temporary file, fsync, rename, fsync of the directory — or the syncs
//! left to the caller, [`Durability`]). Opening checks the header, both
//! checksums, the archive (bytecheck) and every index and range inside it, once; afterwards
//! the archive is read without checks.
//!
//! A snapshot keeps no file descriptor. A small one (up to [`READ_MAX`] octets, such as a
//! hosted zone of a few dozen records) is read into the heap instead of mapped: a host with
//! 10^5 such zones would otherwise need 10^5 mappings, beyond the kernel's default
//! `vm.max_map_count` (65,530), and a page of memory for each zone of a few hundred octets.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rkyv::rancor::BoxedError;

use super::{ArchivedZoneImage, RrsetRec, ZoneImage, BLOCK_HEADER, FORMAT_VERSION, MAGIC, NONE, RRSET_DESC};
use crate::wire::name;

const FIXED_HEADER: usize = 64;

/// Snapshots up to this size are read into memory rather than mapped.
pub const READ_MAX: u64 = 64 << 10;

/// The zone file a snapshot was made from, as it stood when it was read: its size and its
/// modification and change times (nanoseconds since the epoch). A zone file whose stamp is
/// the snapshot's has not been written since (a write changes the ctime, which no one can
/// set back), so the snapshot is that file's zone and the file need not be parsed again.
///
/// Timestamps are coarse (a clock tick): a file written twice within one tick, the second
/// time after it was read, would keep the stamp of what was read. So a file changed less
/// than [`SourceStamp::SETTLED`] before it was read gets no stamp ([`SourceStamp::of`] says
/// [`SourceStamp::NONE`]) and is parsed again at the next start. A stamp is only taken for a
/// zone read from one file (an `$INCLUDE`d file's changes would not show in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl SourceStamp {
    /// No stamp: the snapshot is not known to match any file.
    pub const NONE: SourceStamp = SourceStamp { size: 0, mtime_ns: 0, ctime_ns: 0 };

    /// How long a file must have been left alone before its stamp is trusted.
    pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

    /// The stamp of a file with this metadata, read at `now`; NONE if it changed less than
    /// [`Self::SETTLED`] before `now`.
    pub fn of(meta: &std::fs::Metadata, now: std::time::SystemTime) -> SourceStamp {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        let stamp = SourceStamp {
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        };
        let now_ns = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let settled = SourceStamp::SETTLED.as_nanos() as i64;
        if stamp.mtime_ns.max(stamp.ctime_ns) > now_ns - settled {
            return SourceStamp::NONE;
        }
        stamp
    }

    pub fn is_none(&self) -> bool {
        *self == SourceStamp::NONE
    }

    fn encode(&self, header: &mut [u8]) {
        header[40..48].copy_from_slice(&self.size.to_le_bytes());
        header[48..56].copy_from_slice(&self.mtime_ns.to_le_bytes());
        header[56..64].copy_from_slice(&self.ctime_ns.to_le_bytes());
    }

    fn decode(header: &[u8]) -> SourceStamp {
        let at = |o: usize| <[u8; 8]>::try_from(&header[o..o + 8]).unwrap_or_default();
        SourceStamp {
            size: u64::from_le_bytes(at(40)),
            mtime_ns: i64::from_le_bytes(at(48)),
            ctime_ns: i64::from_le_bytes(at(56)),
        }
    }
}

/// How much of a snapshot's write is durable when the write returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// All of it: the file is fsynced, renamed into place, and the directory fsynced.
    Now,
    /// The file is fsynced and renamed; the caller fsyncs the directory once for many
    /// writes, before anything relies on the new files (serving or announcing their
    /// versions). Until then a crash may leave the old file (or none) in place of a new one,
    /// each complete.
    File,
    /// A new file (none at its path: the write fails if there is one), written in place and
    /// not fsynced: the caller makes it durable with the rest (`syncfs` of the file system)
    /// before anything relies on it. Until then a crash may leave it partial, or with
    /// contents that never reached the disk, which [`Snapshot::open`] refuses (checksums):
    /// only for a file that can be made again from elsewhere (a new zone's first snapshot,
    /// from its zone file).
    Deferred,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: snapshot refused: {reason}")]
    Refused { path: PathBuf, reason: String },
}

fn refused(path: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Refused { path: path.to_path_buf(), reason: reason.into() }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), error: source }
}

/// Writes the archive to the file after the header, computing CRC32C over it, and starts
/// writing it out to the disk every few MiB, so that the final fsync has little left to wait
/// for.
struct CrcWriter {
    inner: File,
    crc: u32,
    len: u64,
    /// File offset where the archive starts.
    start: u64,
    /// Archive octets whose write-out has been started.
    started: u64,
    /// Large pieces are written by two threads, half each.
    two: bool,
}

/// Whether this process may run on more than one core: asked once (it reads cgroup files,
/// which cost more than writing a small snapshot).
fn two_cores() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Pieces at least this large are written by two threads.
const TWO_THREADS_MIN: usize = 16 << 20;

/// Write-out is started in steps of this many octets.
const WRITE_OUT_STEP: u64 = 8 << 20;

impl CrcWriter {
    /// Writes `buf` whole at the current position, the second half on another thread (the
    /// copy into the page cache is most of the cost of writing), checksumming each half
    /// where it is written.
    fn write_halves(&mut self, buf: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let (a, b) = buf.split_at(buf.len() / 2);
        let at = self.start + self.len;
        let (file, crc) = (&self.inner, self.crc);
        let (crc_a, crc_b) = std::thread::scope(|scope| {
            let second = scope.spawn(|| write_out_at(file, b, at + a.len() as u64).map(|()| crc32c::crc32c(b)));
            let first = write_out_at(file, a, at).map(|()| crc32c::crc32c_append(crc, a));
            match second.join() {
                Ok(second) => (first, second),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        self.crc = crc32c::crc32c_combine(crc_a?, crc_b?, b.len());
        self.inner.seek(SeekFrom::Start(at + buf.len() as u64))?;
        // Write-out has been started for all of it.
        self.started = self.len + buf.len() as u64;
        Ok(())
    }
}

/// Writes `buf` at `offset` in steps of [`WRITE_OUT_STEP`], starting the write-out of each.
fn write_out_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = offset;
    for piece in buf.chunks(WRITE_OUT_STEP as usize) {
        file.write_all_at(piece, at)?;
        start_write_out(file, at, piece.len() as u64);
        at += piece.len() as u64;
    }
    Ok(())
}

/// Asks the kernel to start writing `len` octets at `from` out to the disk.
fn start_write_out(file: &File, from: u64, len: u64) {
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open for
    // as long as `file` is borrowed. It is a hint: failure changes nothing (the fsync at the
    // end is what makes the file durable).
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

impl Write for CrcWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = if self.two && buf.len() >= TWO_THREADS_MIN {
            self.write_halves(buf)?;
            buf.len()
        } else {
            let n = self.inner.write(buf)?;
            self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
            n
        };
        self.len += n as u64;
        if self.len - self.started >= WRITE_OUT_STEP {
            start_write_out(&self.inner, self.start + self.started, self.len - self.started);
            self.started = self.len;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Serialises an image and writes it to `path` atomically, with no source stamp. Returns
/// the file size. Temporary files that killed writers of `path` left are removed first (one
/// listing of the directory: a caller writing many snapshots into one directory uses
/// [`write_snapshot_with`] and [`remove_stale_tmp_files`] once instead).
pub fn write_snapshot(path: &Path, img: &ZoneImage) -> Result<u64, SnapshotError> {
    let file_name = path.file_name().ok_or_else(|| refused(path, "not a file path"))?;
    remove_stale_tmp(&parent_dir(path), &format!(".{}.tmp.", file_name.to_string_lossy()));
    write_snapshot_with(path, img, SourceStamp::NONE, Durability::Now)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file a write of `path` by this process goes through.
fn tmp_path(path: &Path) -> Result<PathBuf, SnapshotError> {
    let file_name = path.file_name().ok_or_else(|| refused(path, "not a file path"))?;
    Ok(parent_dir(path).join(format!(".{}.tmp.{}", file_name.to_string_lossy(), std::process::id())))
}

/// The header of a snapshot of `origin` at `serial` whose archive is `archive_len` octets
/// with checksum `crc`.
fn make_header(origin: &[u8], serial: u32, archive_len: u64, crc: u32, stamp: SourceStamp) -> Vec<u8> {
    let header_len = (FIXED_HEADER + origin.len()).next_multiple_of(16);
    let mut header = vec![0u8; header_len];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(header_len as u32).to_le_bytes());
    header[16..24].copy_from_slice(&archive_len.to_le_bytes());
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header[28..32].copy_from_slice(&serial.to_le_bytes());
    header[32..36].copy_from_slice(&(origin.len() as u32).to_le_bytes());
    stamp.encode(&mut header);
    header[FIXED_HEADER..FIXED_HEADER + origin.len()].copy_from_slice(origin);
    let hcrc = header_crc(&header);
    header[36..40].copy_from_slice(&hcrc.to_le_bytes());
    header
}

/// Makes a written temporary file durable (as `sync` says) and renames it over `path`.
fn put_in_place(f: File, tmp: &Path, path: &Path, sync: Durability) -> Result<(), SnapshotError> {
    if sync != Durability::Deferred {
        f.sync_all().map_err(io(path))?;
    }
    drop(f);
    if tmp != path {
        std::fs::rename(tmp, path).map_err(io(path))?;
    }
    if sync == Durability::Now {
        File::open(parent_dir(path)).and_then(|d| d.sync_all()).map_err(io(path))?;
    }
    Ok(())
}

/// [`write_snapshot`] with a source stamp and the directory's fsync as `sync` says, and
/// without looking for stale temporary files.
pub fn write_snapshot_with(
    path: &Path,
    img: &ZoneImage,
    stamp: SourceStamp,
    sync: Durability,
) -> Result<u64, SnapshotError> {
    let header_len = (FIXED_HEADER + img.origin.len()).next_multiple_of(16);
    // A deferred write is of a new file (a zone's first snapshot): written in place under
    // its own name, with no temporary file and rename (two directory entries fewer per new
    // zone), as nothing is replaced. A crash leaves it partial or missing, which is no
    // different from its contents not having reached the disk (see `Durability::Deferred`).
    let in_place = sync == Durability::Deferred;
    let tmp = if in_place { path.to_path_buf() } else { tmp_path(path)? };
    let mut created = false;
    let result = (|| -> Result<u64, SnapshotError> {
        let mut f = match in_place {
            true => std::fs::OpenOptions::new().write(true).create_new(true).open(path),
            false => File::create(&tmp),
        }
        .map_err(io(path))?;
        created = true;
        // The archive is streamed to the file after room for the header (no copy of a
        // possibly huge archive in memory); the header, which needs its length and CRC,
        // is written last.
        f.write_all(&vec![0u8; header_len]).map_err(io(path))?;
        // rkyv writes the archive in many small pieces: they are gathered in the buffer,
        // and the checksum is taken over whole buffers on their way to the file.
        let sink = std::io::BufWriter::with_capacity(
            1 << 20,
            CrcWriter { inner: f, crc: 0, len: 0, start: header_len as u64, started: 0, two: two_cores() },
        );
        let writer = rkyv::api::high::to_bytes_in::<_, BoxedError>(img, rkyv::ser::writer::IoWriter::new(sink))
            .map_err(|e| refused(path, format!("cannot serialise: {e}")))?;
        let sink = writer
            .into_inner()
            .into_inner()
            .map_err(|e| SnapshotError::Io { path: path.to_path_buf(), error: e.into_error() })?;
        let (crc, archive_len, f) = (sink.crc, sink.len, sink.inner);
        let header = make_header(&img.origin, img.serial, archive_len, crc, stamp);
        std::os::unix::fs::FileExt::write_all_at(&f, &header, 0).map_err(io(path))?;
        put_in_place(f, &tmp, path, sync)?;
        Ok(header_len as u64 + archive_len)
    })();
    if result.is_err() && created {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes every temporary file (`.NAME.tmp.` + a process id: snapshots' and journals') that
/// writers killed before their rename left in `dir`, with one listing of it; as
/// [`remove_stale_tmp`] does for one name. Returns how many were removed.
pub fn remove_stale_tmp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.starts_with('.'))
            .and_then(|n| n.rsplit_once(".tmp.").map(|(_, p)| p))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid > 0
            && pid as u32 != std::process::id()
            && !process_exists(pid)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Removes the temporary files (`PREFIX` + a process id) that writers killed before their
/// rename left in `dir`: each is as large as a snapshot, and a process killed again and again
/// (a new id every time) would otherwise fill the disk with them. Only files whose process
/// is gone are removed, so a concurrent writer of the same path (`nsxdp compile`) keeps its
/// own; a recycled process id only means a file is left for a later write to remove.
fn remove_stale_tmp(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid > 0 && pid as u32 != std::process::id() && !process_exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (one we may not signal exists too).
fn process_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists and
    // may be signalled. No memory is passed.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn header_crc(header: &[u8]) -> u32 {
    let c = crc32c::crc32c(&header[..36]);
    crc32c::crc32c_append(c, &header[40..])
}

/// A snapshot file's bytes: mapped, or read into memory when small ([`READ_MAX`]).
enum Backing {
    Mapped(Mmap),
    Read(rkyv::util::AlignedVec<16>),
}

impl AsRef<[u8]> for Backing {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Read(v) => v,
        }
    }
}

/// A loaded, validated snapshot, mapped read-only or read into memory.
pub struct Snapshot {
    map: bytes::Bytes,
    image: Image,
    path: PathBuf,
    /// The nodes in AXFR order, sorted by the first transfer that needs it and shared by
    /// every later one (each would otherwise hold its own copy while it runs).
    canonical: std::sync::OnceLock<std::sync::Arc<[u32]>>,
}

/// The validated archive of a [`Snapshot`], which it keeps alive: a handle that can be held
/// apart from the snapshot and reaches the archive without reading the snapshot first
/// (where it is read (the catalog, once per query) that saves a cache miss per query when
/// there are many zones). Made only by [`Snapshot::image`].
#[derive(Clone)]
pub struct Image(bytes::Bytes);

impl Image {
    /// The archived zone.
    #[inline]
    pub fn zone(&self) -> &ArchivedZoneImage {
        // SAFETY: an Image is only made by `Snapshot::open`, of exactly the bytes it
        // validated with bytecheck (and whose every index it checked); the mapping
        // (read-only) or the buffer (never written after `open`) lives as long as any
        // handle to it, this one included.
        unsafe { rkyv::access_unchecked::<ArchivedZoneImage>(&self.0) }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes)", self.0.len())
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({}, {} bytes)", self.path.display(), self.map.len())
    }
}

impl Snapshot {
    /// Maps (or reads, when small) and validates a snapshot file. Nothing is kept if any
    /// check fails; no descriptor is kept either way.
    pub fn open(path: &Path) -> Result<Snapshot, SnapshotError> {
        let mut file = File::open(path).map_err(io(path))?;
        let size = file.metadata().map_err(io(path))?.len();
        if size < FIXED_HEADER as u64 {
            return Err(refused(path, format!("file is {size} bytes, shorter than a snapshot header")));
        }
        let map = if size <= READ_MAX {
            use std::io::Read;
            let mut v = rkyv::util::AlignedVec::<16>::with_capacity(size as usize);
            v.resize(size as usize, 0);
            file.read_exact(&mut v).map_err(io(path))?;
            // Nothing more than the size said (the file was replaced, not written in place:
            // a longer file is another file).
            if file.read(&mut [0u8; 1]).map_err(io(path))? != 0 {
                return Err(refused(path, "file grew while it was read"));
            }
            Backing::Read(v)
        } else {
            // SAFETY: the file is mapped read-only and private to this process's view;
            // snapshot files are never modified in place (writers create a new file and
            // rename it over), so the bytes cannot change under the mapping while it lives.
            Backing::Mapped(unsafe { Mmap::map(&file) }.map_err(io(path))?)
        };
        drop(file);
        // Shared without a copy: the handle points at the backing's own bytes.
        let map = bytes::Bytes::from_owner(map);
        let (start, len) = check_header(path, &map[..])?;
        let image = Image(map.slice(start..start + len));
        let snap = Snapshot { map, image, path: path.to_path_buf(), canonical: Default::default() };
        let archive = &snap.image.0[..];
        let img = rkyv::access::<ArchivedZoneImage, BoxedError>(archive)
            .map_err(|e| refused(path, format!("archive does not validate: {e}")))?;
        check_contents(img).map_err(|r| refused(path, r))?;
        let serial = u32::from_le_bytes(snap.map[28..32].try_into().unwrap_or_default());
        if img.serial.to_native() != serial || img.origin.as_slice() != origin_in_header(&snap.map) {
            return Err(refused(path, "header and archive disagree on the zone or serial"));
        }
        Ok(snap)
    }

    /// The archived zone.
    #[inline]
    pub fn zone(&self) -> &ArchivedZoneImage {
        self.image.zone()
    }

    /// A handle to the archived zone, which keeps its bytes alive.
    pub fn image(&self) -> Image {
        self.image.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The zone file this snapshot was made from, as it stood then (NONE if not known).
    pub fn source_stamp(&self) -> SourceStamp {
        SourceStamp::decode(&self.map)
    }

    /// Writes this snapshot again with another source stamp (the same archive under a new
    /// header, atomically as [`write_snapshot_with`] does) and opens the new file. The file
    /// replaces one, so it is fsynced before its rename even when `sync` says `Deferred`.
    pub fn restamp(&self, stamp: SourceStamp, sync: Durability) -> Result<Snapshot, SnapshotError> {
        let sync = if sync == Durability::Deferred { Durability::File } else { sync };
        let path = &self.path;
        let archive = &self.image.0[..];
        let crc = u32::from_le_bytes(self.map[24..28].try_into().unwrap_or_default());
        let header = make_header(origin_in_header(&self.map), self.serial(), archive.len() as u64, crc, stamp);
        let tmp = tmp_path(path)?;
        let written = (|| {
            let mut f = File::create(&tmp).map_err(io(path))?;
            f.write_all(&header).map_err(io(path))?;
            f.write_all(archive).map_err(io(path))?;
            put_in_place(f, &tmp, path, sync)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        Snapshot::open(path)
    }

    /// The zone's nodes in AXFR order: canonical (RFC 4034 §6.1), the apex first. Sorted
    /// once per snapshot.
    pub fn canonical_order(&self) -> std::sync::Arc<[u32]> {
        self.canonical.get_or_init(|| super::render::axfr_order(self.zone()).into()).clone()
    }

    /// Size of the mapped file.
    pub fn file_len(&self) -> usize {
        self.map.len()
    }

    pub fn serial(&self) -> u32 {
        self.zone().serial.to_native()
    }

    /// The apex as an owned name.
    pub fn origin(&self) -> name::Name {
        name::Name::from_wire(self.zone().origin.as_slice()).unwrap_or_else(|_| name::Name::root())
    }
}

fn origin_in_header(map: &[u8]) -> &[u8] {
    let olen = u32::from_le_bytes(map[32..36].try_into().unwrap_or_default()) as usize;
    &map[FIXED_HEADER..FIXED_HEADER + olen]
}

/// The format version written in a snapshot file's header, if it is one (magic and version
/// readable), whatever the version: a file of another version than [`FORMAT_VERSION`] was
/// written by another build and is rebuilt rather than read.
pub fn format_version(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut head = [0u8; 12];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (head[0..8] == MAGIC).then(|| u32::from_le_bytes([head[8], head[9], head[10], head[11]]))
}

fn check_header(path: &Path, map: &[u8]) -> Result<(usize, usize), SnapshotError> {
    let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().unwrap_or_default());
    if map[0..8] != MAGIC {
        return Err(refused(path, "not an nsxdp snapshot (bad magic)"));
    }
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(refused(path, format!("format version {version}, this build reads {FORMAT_VERSION}")));
    }
    let header_len = u32_at(12) as usize;
    let olen = u32_at(32) as usize;
    if olen == 0
        || olen > name::MAX_NAME_LEN
        || header_len != (FIXED_HEADER + olen).next_multiple_of(16)
        || header_len > map.len()
    {
        return Err(refused(path, "bad header length (truncated file?)"));
    }
    if header_crc(&map[..header_len]) != u32_at(36) {
        return Err(refused(path, "header checksum mismatch"));
    }
    let archive_len = u64::from_le_bytes(map[16..24].try_into().unwrap_or_default());
    let expected = header_len as u64 + archive_len;
    if expected != map.len() as u64 {
        return Err(refused(path, format!("file is {} bytes, header says {expected} (truncated?)", map.len())));
    }
    let archive = &map[header_len..];
    if crc32c::crc32c(archive) != u32_at(24) {
        return Err(refused(path, "archive checksum mismatch (corrupted file)"));
    }
    if name::uncompressed_len(origin_in_header(map), 0).ok() != Some(olen) {
        return Err(refused(path, "bad origin name in header"));
    }
    Ok((header_len, archive.len()))
}

/// Every index and range the answer path follows, checked once so that reading never goes
/// out of bounds: the node blocks laid end to end exactly as their headers say, every
/// reference (index slot, parent, additional-section node, apex) at the start of a block.
fn check_contents(z: &ArchivedZoneImage) -> Result<(), String> {
    let blocks = &z.blocks[..];
    let nodes = z.node_count.to_native() as usize;
    if nodes == 0 || nodes >= NONE as usize / 2 || blocks.len() >= (NONE - 1) as usize {
        return Err("bad node count".into());
    }
    if name::uncompressed_len(&z.origin, 0).ok() != Some(z.origin.len()) {
        return Err("bad origin".into());
    }
    let neg_at = z.neg_soa.data_off.to_native() as usize;
    // Block starts, as a bitmap over the bytes of `blocks`.
    let mut starts = vec![0u64; blocks.len() / 64 + 1];
    let mut expect = 0usize;
    let mut i = 0;
    while expect < neg_at {
        let off = expect;
        if i == nodes {
            return Err("more blocks than nodes".into());
        }
        starts[off / 64] |= 1 << (off % 64);
        let head = blocks.get(off..off + BLOCK_HEADER).ok_or_else(|| format!("node {i}: block out of range"))?;
        let len = head[1] as usize;
        let count = u16::from_le_bytes([head[2], head[3]]) as usize;
        let name_at = off + BLOCK_HEADER;
        let name = blocks.get(name_at..name_at + len).ok_or_else(|| format!("node {i}: name out of range"))?;
        if name::uncompressed_len(name, 0).ok() != Some(len) {
            return Err(format!("node {i}: bad name"));
        }
        let descs_at = name_at + len;
        let descs = blocks
            .get(descs_at..descs_at + count * RRSET_DESC)
            .ok_or_else(|| format!("node {i}: RRsets out of range"))?;
        expect = descs_at + descs.len();
        for d in descs.chunks_exact(RRSET_DESC) {
            let r = RrsetRec::decode(d, expect as u32);
            check_rrset(z, &r).map_err(|e| format!("node {i}: {e}"))?;
            expect += r.data_len as usize;
        }
        i += 1;
    }
    if i != nodes {
        return Err(format!("{i} blocks for {nodes} nodes"));
    }
    let neg = z.neg_soa();
    let sig = z.neg_soa_sig();
    if neg_at != expect
        || sig.data_off as usize != expect + neg.data_len as usize
        || sig.data_off as usize + sig.data_len as usize != blocks.len()
    {
        return Err("negative SOA not at the end".into());
    }
    check_rrset(z, &neg).map_err(|e| format!("negative SOA: {e}"))?;
    if sig.data_len != 0 {
        check_rrset(z, &sig).map_err(|e| format!("negative SOA's RRSIG: {e}"))?;
    }
    let is_node = |n: u32| (n as usize) < blocks.len() && starts[n as usize / 64] & (1 << (n % 64)) != 0;
    if !is_node(z.apex.to_native()) {
        return Err("apex is not a node".into());
    }
    for (i, n) in z.node_ids().enumerate() {
        let p = z.node_parent(n);
        // Parents come first: walking up always ends.
        if p != NONE && (p >= n || !is_node(p)) {
            return Err(format!("node {i}: bad parent"));
        }
        for r in z.node_rrsets(n) {
            if z.additionals(&r).any(|a| !is_node(a.node)) {
                return Err(format!("node {i}: additional-section record of no node"));
            }
        }
    }
    // The denial chains name nodes owning what they are chains of; NSEC3 owners are one
    // 32-octet label above the apex (the engine reads that label).
    if z.nsec_chain.iter().any(|n| !is_node(n.to_native())) {
        return Err("NSEC chain entry is no node".into());
    }
    if z.nsec_keys.len() != z.nsec_chain.len() || z.nsec3_keys.len() != z.nsec3_chain.len() {
        return Err("NSEC or NSEC3 chain keys do not match the chain".into());
    }
    let nsec3_owner = z.origin.len() + 33;
    if z.nsec3_chain.iter().any(|n| !is_node(n.to_native()) || z.node_name(n.to_native()).len() != nsec3_owner) {
        return Err("NSEC3 chain entry is no NSEC3 owner".into());
    }
    let mut last = None;
    for e in z.nsec3_of.iter() {
        let (n, m) = ((e.to_native() >> 32) as u32, e.to_native() as u32);
        if last.is_some_and(|l| l >= n) || !is_node(n) || !is_node(m) || z.node_name(m).len() != nsec3_owner {
            return Err("bad NSEC3 of a name".into());
        }
        last = Some(n);
    }
    if z.nsec3_wild.len() != z.nsec3_of.len()
        || z.nsec3_wild.iter().any(|w| {
            let w = w.to_native();
            w != NONE && (!is_node(w) || z.node_name(w).len() != nsec3_owner)
        })
    {
        return Err("bad NSEC3 covering a wildcard".into());
    }
    let b = z.buckets.len();
    if b < 2 || !b.is_power_of_two() || b < nodes {
        return Err("bad index size".into());
    }
    let mut empty = false;
    for s in z.buckets.iter() {
        let s = s.to_native() as u32;
        empty |= s == 0;
        if s != 0 && !is_node(s - 1) {
            return Err("index entry is no node".into());
        }
    }
    if !empty {
        return Err("index has no free slot".into());
    }
    Ok(())
}

/// An RRset's fragment holds whole RRs of its type (at least one, `count` of them), and its
/// `extras` entry is in range.
fn check_rrset(z: &ArchivedZoneImage, r: &RrsetRec) -> Result<(), String> {
    let (off, len) = (r.data_off as usize, r.data_len as usize);
    let frag = z.blocks.get(off..off + len).ok_or("data out of range")?;
    let (mut pos, mut count) = (0, 0);
    while pos < len {
        count += 1;
        let h = frag.get(pos..pos + 12).ok_or("truncated RR")?;
        if h[0..2] != [0xC0, 0] || u16::from_be_bytes([h[2], h[3]]) != r.rtype {
            return Err("bad RR header".into());
        }
        let rdlen = u16::from_be_bytes([h[10], h[11]]) as usize;
        // An RRSIG fragment's covered type is read from its first RR: every RR has one,
        // and the same.
        if r.rtype == crate::wire::rdata::rtype::RRSIG
            && (rdlen < 2 || frag.get(pos + 12..pos + 14) != frag.get(12..14))
        {
            return Err("RRSIG fragment covering more than one type".into());
        }
        pos += 12 + rdlen;
    }
    if pos != len || len == 0 {
        return Err("fragment does not hold whole RRs".into());
    }
    if count != r.count as usize {
        return Err("wrong RR count".into());
    }
    if r.extra == NONE {
        return Ok(());
    }
    let e = z.extras.get(r.extra as usize..).ok_or("extras out of range")?;
    let (apex, owner, adds) = super::split_extras(e).ok_or("extras out of range")?;
    if apex.iter().chain(owner.iter()).any(|p| p.to_native() as usize + 2 > len) {
        return Err("pointer out of range".into());
    }
    if adds.chunks_exact(3).any(|c| c[0].to_native() as usize >= len) {
        return Err("bad additional".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Above any pid_max: no such process.
        let dead = 2_000_000_000;
        let me = std::process::id();
        let names = [
            format!(".z.snap.tmp.{dead}"),
            ".z.snap.tmp.1".into(),
            format!(".z.snap.tmp.{me}"),
            ".z.snap.tmp.x".into(),
        ];
        for n in names.iter().chain([&format!(".y.snap.tmp.{dead}")]) {
            std::fs::write(d.join(n), b"partial").unwrap();
        }
        remove_stale_tmp(d, ".z.snap.tmp.");
        let mut left: Vec<String> =
            std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let mut want = vec![".y.snap.tmp.2000000000".to_string(), ".z.snap.tmp.1".into(), format!(".z.snap.tmp.{me}")];
        want.push(".z.snap.tmp.x".into());
        want.sort();
        assert_eq!(left, want);
    }

    /// A zone of `names` names (about 60 octets of snapshot each).
    fn image(names: usize) -> ZoneImage {
        let mut text =
            "$ORIGIN s.test.\n@ 300 SOA ns hm 7 3600 600 86400 60\n@ 300 NS ns\nns 300 A 192.0.2.1\n".to_string();
        for i in 0..names {
            text.push_str(&format!("h{i} 300 A 10.0.{}.{}\n", i / 256, i % 256));
        }
        let origin = name::Name::parse_text(b"s.test.", None).unwrap();
        let l = crate::zone::parse::load_text(Path::new("s.test.zone"), text.as_bytes(), &origin);
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        crate::snapshot::compile(&l.zone).unwrap()
    }

    /// Whether this process maps `path`.
    fn mapped(path: &Path) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().any(|l| l.ends_with(&*path.to_string_lossy()))
    }

    #[test]
    fn small_snapshots_are_read_and_large_ones_mapped_and_neither_keeps_a_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let fds = || {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir.path())))
        };
        for (names, mapped_want) in [(10, false), (5000, true)] {
            let path = dir.path().join(format!("s{names}.snap"));
            let len = write_snapshot(&path, &image(names)).unwrap();
            assert_eq!(len > READ_MAX, mapped_want, "{len} octets for {names} names");
            let snap = Snapshot::open(&path).unwrap();
            assert_eq!(mapped(&path), mapped_want, "{names} names");
            assert!(!fds(), "no descriptor kept for the snapshot of {names} names");
            assert_eq!(snap.serial(), 7);
            assert_eq!(snap.zone().node_count.to_native() as usize, names + 2);
            assert_eq!(snap.file_len() as u64, len);
            drop(snap);
            assert!(!mapped(&path));
        }
    }

    #[test]
    fn source_stamps_are_kept_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let stamp =
            SourceStamp { size: 1234, mtime_ns: 1_700_000_000_123_456_789, ctime_ns: 1_700_000_001_000_000_001 };
        write_snapshot_with(&path, &image(3), stamp, Durability::File).unwrap();
        let snap = Snapshot::open(&path).unwrap();
        assert_eq!(snap.source_stamp(), stamp);
        let other = SourceStamp { size: 1235, ..stamp };
        let again = snap.restamp(other, Durability::Now).unwrap();
        assert_eq!(again.source_stamp(), other);
        // The same archive, under a header with a good checksum.
        assert_eq!(again.zone().node_count, snap.zone().node_count);
        let (a, b) = (std::fs::read(&path).unwrap(), &snap.map[..]);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[64..], b[64..]);
        assert_ne!(a[36..64], b[36..64]);
        // A deferred write is of a new file only, in place.
        let new = dir.path().join("t.snap");
        write_snapshot_with(&new, &image(3), stamp, Durability::Deferred).unwrap();
        assert_eq!(Snapshot::open(&new).unwrap().source_stamp(), stamp);
        let e = write_snapshot_with(&new, &image(4), stamp, Durability::Deferred).unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
        assert_eq!(Snapshot::open(&new).unwrap().zone().node_count.to_native(), 5, "the file there is kept");
        std::fs::remove_file(&new).unwrap();
        // Snapshots written without one have none.
        write_snapshot(&path, &image(3)).unwrap();
        assert!(Snapshot::open(&path).unwrap().source_stamp().is_none());
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_is_stamped_only_once_it_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        std::fs::write(&path, b"twelve bytes").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let changed = meta.modified().unwrap();
        assert!(SourceStamp::of(&meta, changed).is_none());
        assert!(SourceStamp::of(&meta, changed + SourceStamp::SETTLED / 2).is_none());
        let s = SourceStamp::of(&meta, changed + SourceStamp::SETTLED * 2);
        assert_eq!(s.size, 12);
        assert!(!s.is_none());
        // A write changes it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"twelve bytez").unwrap();
        let later = std::fs::metadata(&path).unwrap();
        assert_ne!(SourceStamp::of(&later, later.modified().unwrap() + SourceStamp::SETTLED * 2), s);
    }

    #[test]
    fn one_listing_removes_every_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let dead = 2_000_000_000;
        let me = std::process::id();
        for n in [
            format!(".a.snap.tmp.{dead}"),
            format!(".b.journal.tmp.{dead}"),
            format!(".c.snap.tmp.{me}"),
            ".d.snap.tmp.x".into(),
            format!("e.snap.tmp.{dead}"),
            "f.snap".into(),
        ] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        assert_eq!(remove_stale_tmp_files(d), 2);
        let mut left: Vec<String> =
            std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(
            left,
            [format!(".c.snap.tmp.{me}"), ".d.snap.tmp.x".into(), format!("e.snap.tmp.{dead}"), "f.snap".into()]
        );
    }

    #[test]
    fn large_pieces_written_in_halves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halves");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"head").unwrap();
        let piece: Vec<u8> = (0..TWO_THREADS_MIN + 12_345).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut w = CrcWriter { inner: f, crc: 0, len: 0, start: 4, started: 0, two: true };
        w.write_all(b"small").unwrap();
        w.write_all(&piece).unwrap();
        w.write_all(b"tail").unwrap();
        let mut all = b"small".to_vec();
        all.extend_from_slice(&piece);
        all.extend_from_slice(b"tail");
        assert_eq!(w.crc, crc32c::crc32c(&all));
        assert_eq!(w.len, all.len() as u64);
        drop(w);
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&all);
        assert!(std::fs::read(&path).unwrap() == expected);
    }
}
