//! AF_XDP sockets, on libc: the UMEM, its four rings, and the frame bookkeeping a run loop
//! needs.
//!
//! One [`XskSocket`] owns everything for one NIC RX queue: a socket bound to (interface,
//! queue), its own UMEM (one anonymous mapping of `frame_count × frame_size` bytes), and the
//! fill, completion, RX and TX rings mapped from the kernel. Frames circulate as [`Frame`]
//! tokens: the kernel hands a received frame over through the RX ring, the run loop answers
//! in it and gives it back through the TX ring (the reply is sent from the very frame the
//! query arrived in); the completion ring returns sent frames, which go back to the fill ring.
//! Frames the loop drops go straight back to the fill ring.
//!
//! The ring index logic ([`Ring`]) is separate from the memory it runs over, so it is tested
//! here over plain heap memory, and so is the frame bookkeeping ([`Queues`]) with a simulated
//! kernel. This module knows nothing of IP or DNS, and does not load XDP programs: the loader
//! puts [`XskSocket::fd`] into its XSKMAP.
//!
//! Every `unsafe` block of the AF_XDP data plane is in this file, each with its reason.
//!
//! One turn of a run loop, with `answer` standing for the engine (query bytes and length
//! in, reply length out, written in place):
//! ```no_run
//! use nsxdp::dataplane::{packet, xsk::{Frame, XskSocket}};
//!
//! fn turn(xsk: &mut XskSocket, rx: &mut Vec<Frame>, tx: &mut Vec<Frame>,
//!         answer: &mut impl FnMut(&mut [u8], usize) -> Option<usize>) {
//!     xsk.rx_burst(rx);
//!     for mut f in rx.drain(..) {
//!         let buf = xsk.frame_mut(&f);
//!         let Ok(d) = packet::parse(&buf[..f.len()]) else { xsk.recycle(f); continue };
//!         let reply = answer(&mut buf[d.payload_offset()..], d.payload_len())
//!             .and_then(|len| packet::build_reply(buf, &d, len).ok());
//!         match reply {
//!             Some(range) => { f.set_data(range); tx.push(f) }
//!             None => xsk.recycle(f),
//!         }
//!     }
//!     xsk.tx_submit(tx);
//!     xsk.kick_tx();   // and again on the next turn while xsk.tx_pending() > 0
//!     xsk.complete();
//!     xsk.refill();
//!     xsk.wakeup_rx();
//! }
//! ```

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use libc::{xdp_desc, xdp_mmap_offsets, xdp_ring_offset};

/// Size of the huge pages tried for the UMEM.
const HUGE_PAGE: usize = 2 << 20;

/// How a socket should bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy if the driver can, else copy mode.
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// The mode a socket got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    ZeroCopy,
    Copy,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::ZeroCopy => "zero-copy",
            XdpMode::Copy => "copy",
        })
    }
}

/// Sizes of one socket's UMEM and rings. Ring sizes are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Bytes per frame: 2048 or 4096 (a power of two, at most the page size). In copy mode
    /// a received frame starts 256 bytes into its chunk, so 4096 leaves 3840 bytes for the
    /// frame and its in-place reply.
    pub frame_size: u32,
    pub frame_count: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    /// Larger than the RX ring, so the kernel has frames while a batch is being answered.
    pub fill_size: u32,
    pub comp_size: u32,
    /// Try huge pages for the UMEM first (falls back to normal pages silently).
    pub huge_pages: bool,
    pub mode: BindMode,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            frame_size: 4096,
            frame_count: 4096,
            rx_size: 1024,
            tx_size: 1024,
            fill_size: 2048,
            comp_size: 2048,
            huge_pages: true,
            mode: BindMode::Auto,
        }
    }
}

impl XskConfig {
    fn validate(&self) -> Result<(), XskError> {
        let page = page_size();
        if !self.frame_size.is_power_of_two() || self.frame_size < 2048 || self.frame_size as usize > page {
            return Err(XskError::Config("frame_size must be a power of two from 2048 to the page size"));
        }
        for (n, what) in [
            (self.rx_size, "rx_size must be a power of two"),
            (self.tx_size, "tx_size must be a power of two"),
            (self.fill_size, "fill_size must be a power of two"),
            (self.comp_size, "comp_size must be a power of two"),
        ] {
            if !n.is_power_of_two() {
                return Err(XskError::Config(what));
            }
        }
        if self.frame_count == 0 || u64::from(self.frame_count) * u64::from(self.frame_size) > 1 << 40 {
            return Err(XskError::Config("frame_count must be at least 1 and the UMEM at most 1 TiB"));
        }
        Ok(())
    }
}

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("AF_XDP configuration: {0}")]
    Config(&'static str),
    #[error("AF_XDP socket on {ifname} queue {queue}: {step}: {source}")]
    Setup { ifname: String, queue: u32, step: &'static str, source: io::Error },
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

// ---------------------------------------------------------------------------------------
// Memory mappings

/// One mmap'd region, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain owned memory; nothing about it is tied to the creating thread.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Private anonymous memory, zeroed; with huge pages when asked and available. Returns
    /// whether huge pages were used.
    fn anonymous(len: usize, huge: bool) -> io::Result<(Mapping, bool)> {
        if huge {
            let hlen = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            if let Ok(m) = Mapping::map(hlen, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB, -1, 0) {
                return Ok((m, true));
            }
        }
        Ok((Mapping::map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)?, false))
    }

    fn map(len: usize, flags: libc::c_int, fd: RawFd, offset: libc::off_t) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping at an address of the kernel's choosing (NULL hint) cannot
        // overlap any memory Rust knows about; the result is checked before use.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and the region is unmapped once,
        // here; every pointer into it lives in the value that owns this Mapping.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rings

/// Role marker: we write entries, the other side (the kernel) reads them (fill, TX).
#[derive(Debug)]
pub enum Producer {}
/// Role marker: the other side writes entries, we read them (completion, RX).
#[derive(Debug)]
pub enum Consumer {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Producer {}
    impl Sealed for super::Consumer {}
}

/// Which end of a ring we are: [`Producer`] or [`Consumer`].
pub trait Role: sealed::Sealed {
    const PRODUCER: bool;
}

impl Role for Producer {
    const PRODUCER: bool = true;
}

impl Role for Consumer {
    const PRODUCER: bool = false;
}

/// What keeps a ring's memory alive.
#[derive(Debug)]
enum Backing {
    Mapped(Mapping),
    #[cfg(test)]
    Heap(Arc<tests::HeapBlock>),
}

impl Backing {
    fn region(&self) -> (NonNull<u8>, usize) {
        match self {
            Backing::Mapped(m) => (m.ptr, m.len),
            #[cfg(test)]
            Backing::Heap(h) => (h.ptr, h.len),
        }
    }
}

/// One side of a single-producer single-consumer ring of `T` (a frame address for fill and
/// completion, an [`xdp_desc`] for RX and TX) in memory shared with the other side.
///
/// The shared words are the producer and consumer indices (free-running u32, compared with
/// wrapping arithmetic, so they may overflow) and a flags word. Each side keeps its own index
/// (`local`) and its last view of the other one (`remote`), and reads the other's index again
/// only when that view is not enough. Entry contents are published by a Release store of the
/// index and seen after an Acquire load of it.
#[derive(Debug)]
pub struct Ring<T, R> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer: entries submitted so far. Consumer: entries released so far.
    local: u32,
    /// Producer: the consumer index as last read. Consumer: the producer index as last read.
    remote: u32,
    /// Entries handed out by `reserve`/`peek` and not yet submitted/released.
    pending: u32,
    _backing: Backing,
    _role: PhantomData<R>,
}

// SAFETY: the ring only holds pointers into memory it owns (through `_backing`); the other
// party is the kernel (or, in tests, a ring of the opposite role) and synchronises through
// the atomic indices, whichever thread we run on.
unsafe impl<T: Send, R> Send for Ring<T, R> {}

impl<T: Copy, R: Role> Ring<T, R> {
    /// A ring of `size` entries laid out in `backing` as `off` says.
    ///
    /// # Safety
    /// Apart from this ring, the memory may be used only by one party of the opposite role
    /// that follows the ring protocol (the kernel for a mapped ring).
    unsafe fn over(backing: Backing, off: &xdp_ring_offset, size: u32) -> io::Result<Ring<T, R>> {
        if !size.is_power_of_two() {
            return Err(io::Error::other("ring size is not a power of two"));
        }
        let (base, len) = backing.region();
        let word = |o: u64| -> io::Result<NonNull<AtomicU32>> {
            let o = usize::try_from(o).map_err(io::Error::other)?;
            if o.checked_add(4).is_none_or(|e| e > len) || (base.as_ptr() as usize + o) % 4 != 0 {
                return Err(io::Error::other("ring offset out of range or misaligned"));
            }
            // SAFETY: o + 4 <= len, so the pointer stays inside the region.
            Ok(unsafe { base.add(o) }.cast())
        };
        let producer = word(off.producer)?;
        let consumer = word(off.consumer)?;
        let flags = word(off.flags)?;
        let d = usize::try_from(off.desc).map_err(io::Error::other)?;
        let bytes = (size as usize).checked_mul(std::mem::size_of::<T>());
        if bytes.and_then(|b| b.checked_add(d)).is_none_or(|e| e > len)
            || (base.as_ptr() as usize + d) % std::mem::align_of::<T>() != 0
        {
            return Err(io::Error::other("ring descriptors out of range or misaligned"));
        }
        // SAFETY: d + size * size_of::<T>() <= len: the slot array lies inside the region.
        let slots = unsafe { base.add(d) }.cast::<T>();
        let mut ring = Ring {
            producer,
            consumer,
            flags,
            slots,
            mask: size - 1,
            size,
            local: 0,
            remote: 0,
            pending: 0,
            _backing: backing,
            _role: PhantomData,
        };
        let (p, c) = (ring.producer().load(Ordering::Acquire), ring.consumer().load(Ordering::Acquire));
        (ring.local, ring.remote) = if R::PRODUCER { (p, c) } else { (c, p) };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: checked in-bounds and aligned in `over`; the memory lives as long as
        // `_backing`, i.e. as long as `self`; it is only ever accessed atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// The slot of free-running index `idx`.
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < size, and `over` checked that `size` slots fit the region.
        unsafe { self.slots.as_ptr().add((idx & self.mask) as usize) }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether the other side asked to be woken (XDP_RING_NEED_WAKEUP). Only the kernel sets
    /// this, and only on the fill and TX rings.
    pub fn needs_wakeup(&self) -> bool {
        self.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T: Copy> Ring<T, Producer> {
    /// Claims up to `want` free slots; returns how many. The consumer index is read only when
    /// the last view of it shows fewer than `want` free.
    pub fn reserve(&mut self, want: u32) -> u32 {
        let mut free = self.size.saturating_sub(self.local.wrapping_sub(self.remote));
        if free < want {
            // Acquire: the consumer has finished reading the slots it released.
            self.remote = self.consumer().load(Ordering::Acquire);
            free = self.size.saturating_sub(self.local.wrapping_sub(self.remote));
        }
        self.pending = free.min(want);
        self.pending
    }

    /// Fills reserved slot `i` (0-based within the last reservation).
    pub fn write(&mut self, i: u32, v: T) {
        debug_assert!(i < self.pending, "write outside the reservation");
        // SAFETY: the slot is in bounds (see `slot`), and it is ours: it lies between the
        // consumer index and the consumer index + size, which the other side does not read
        // until we publish it.
        unsafe { self.slot(self.local.wrapping_add(i)).write(v) }
    }

    /// Publishes the first `n` reserved slots.
    pub fn submit(&mut self, n: u32) {
        assert!(n <= self.pending, "submit of more entries than reserved");
        self.local = self.local.wrapping_add(n);
        // Release: the slot contents are visible before the new index.
        self.producer().store(self.local, Ordering::Release);
        self.pending = 0;
    }

    /// Entries published and not yet consumed by the other side (reads its index).
    pub fn outstanding(&mut self) -> u32 {
        self.remote = self.consumer().load(Ordering::Acquire);
        self.local.wrapping_sub(self.remote).min(self.size)
    }
}

impl<T: Copy> Ring<T, Consumer> {
    /// Up to `want` entries ready to read; returns how many. The producer index is read only
    /// when the last view of it shows fewer than `want`.
    pub fn peek(&mut self, want: u32) -> u32 {
        let mut ready = self.remote.wrapping_sub(self.local).min(self.size);
        if ready < want {
            // Acquire: the entries before the producer index are fully written.
            self.remote = self.producer().load(Ordering::Acquire);
            ready = self.remote.wrapping_sub(self.local).min(self.size);
        }
        self.pending = ready.min(want);
        self.pending
    }

    /// Entry `i` (0-based within the last peek).
    pub fn read(&self, i: u32) -> T {
        debug_assert!(i < self.pending, "read outside the peeked entries");
        // SAFETY: in bounds (see `slot`); the entry was published by the producer's Release
        // store, seen by our Acquire load in `peek`, and is not rewritten until we release it.
        unsafe { self.slot(self.local.wrapping_add(i)).read() }
    }

    /// Gives the first `n` peeked entries back to the producer.
    pub fn release(&mut self, n: u32) {
        assert!(n <= self.pending, "release of more entries than peeked");
        self.local = self.local.wrapping_add(n);
        // Release: our reads of the entries happen before the producer may reuse them.
        self.consumer().store(self.local, Ordering::Release);
        self.pending = 0;
    }
}

// ---------------------------------------------------------------------------------------
// Frames and counters

/// A UMEM frame the application holds: received and not yet given back, or allocated for
/// sending. Not `Clone`: each frame is in exactly one place, and goes back to its socket
/// through [`XskSocket::tx_submit`] or [`XskSocket::recycle`] (a dropped token is a frame
/// lost until the socket is closed).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// UMEM offset of the first byte of data.
    addr: u64,
    len: u32,
    /// Bytes from `addr` to the end of the frame's chunk.
    room: u32,
    /// The socket it belongs to.
    owner: u32,
}

impl Frame {
    /// UMEM offset of the data.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Bytes of data (received, or to send).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes from the start of the data to the end of the frame: the most a reply written
    /// in place can use.
    pub fn room(&self) -> usize {
        self.room as usize
    }

    /// Makes `range` (relative to the current data start) the data, e.g. the range
    /// [`crate::dataplane::packet::build_reply`] returns.
    ///
    /// # Panics
    /// If `range` goes past [`Frame::room`].
    pub fn set_data(&mut self, range: Range<usize>) {
        assert!(range.start <= range.end && range.end <= self.room as usize, "frame data past the frame's room");
        self.addr += range.start as u64;
        self.room -= range.start as u32;
        self.len = range.len() as u32;
    }
}

/// Counters of one socket: one writer (the loop that owns the socket), read by anyone.
#[derive(Debug, Default)]
pub struct XskStats {
    /// Frames received from the RX ring.
    pub rx: AtomicU64,
    /// Frames put on the TX ring.
    pub tx: AtomicU64,
    /// Frames the kernel reported sent (completion ring).
    pub tx_completed: AtomicU64,
    /// Frames dropped because the TX ring was full.
    pub tx_ring_full: AtomicU64,
    /// Frames not sent because their length was 0 or past their room.
    pub tx_invalid: AtomicU64,
    /// RX descriptors outside the UMEM (never expected from the kernel; skipped).
    pub rx_invalid: AtomicU64,
    /// Refills that found the fill ring empty (the kernel had no frame to receive into).
    pub fill_empty: AtomicU64,
    /// Wakeups of the driver for the fill ring (recvfrom).
    pub rx_wakeups: AtomicU64,
    /// TX kicks (sendto).
    pub tx_kicks: AtomicU64,
    /// Kicks and wakeups that failed with something other than a transient error.
    pub wakeup_errors: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    // One writer per counter: a load and a store, no read-modify-write needed.
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// A copy of [`XskStats`] taken when asked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XskCounters {
    pub rx: u64,
    pub tx: u64,
    pub tx_completed: u64,
    pub tx_ring_full: u64,
    pub tx_invalid: u64,
    pub rx_invalid: u64,
    pub fill_empty: u64,
    pub rx_wakeups: u64,
    pub tx_kicks: u64,
    pub wakeup_errors: u64,
}

impl XskStats {
    pub fn snapshot(&self) -> XskCounters {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        XskCounters {
            rx: l(&self.rx),
            tx: l(&self.tx),
            tx_completed: l(&self.tx_completed),
            tx_ring_full: l(&self.tx_ring_full),
            tx_invalid: l(&self.tx_invalid),
            rx_invalid: l(&self.rx_invalid),
            fill_empty: l(&self.fill_empty),
            rx_wakeups: l(&self.rx_wakeups),
            tx_kicks: l(&self.tx_kicks),
            wakeup_errors: l(&self.wakeup_errors),
        }
    }
}

impl std::fmt::Display for XskCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx={} tx={} tx_completed={} tx_ring_full={} tx_invalid={} rx_invalid={} fill_empty={} \
             rx_wakeups={} tx_kicks={} wakeup_errors={}",
            self.rx,
            self.tx,
            self.tx_completed,
            self.tx_ring_full,
            self.tx_invalid,
            self.rx_invalid,
            self.fill_empty,
            self.rx_wakeups,
            self.tx_kicks,
            self.wakeup_errors
        )
    }
}

/// What the kernel counts for a socket (getsockopt XDP_STATISTICS).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons than a full RX ring or an empty fill ring.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty_descs: u64,
}

// ---------------------------------------------------------------------------------------
// Frame bookkeeping over the four rings (no syscalls: tested with a simulated kernel)

/// Hands out socket ids, so that a frame is never used with a socket it does not belong to.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

#[derive(Debug)]
struct Queues {
    fill: Ring<u64, Producer>,
    comp: Ring<u64, Consumer>,
    rx: Ring<xdp_desc, Consumer>,
    tx: Ring<xdp_desc, Producer>,
    /// Chunk addresses we hold that are in no ring and with no [`Frame`] token. Capacity
    /// `frame_count` up front, so pushing never allocates.
    free: Vec<u64>,
    /// One bit per chunk: set while a [`Frame`] token for it exists. A chunk never has two
    /// tokens, so frames handed out together never overlap ([`XskSocket::frames_mut`]).
    held: Vec<u64>,
    frame_size: u32,
    umem_len: u64,
    id: u32,
    /// Frames on the TX ring whose completion has not come back.
    tx_in_flight: u32,
    stats: Arc<XskStats>,
}

impl Queues {
    fn new(
        fill: Ring<u64, Producer>,
        comp: Ring<u64, Consumer>,
        rx: Ring<xdp_desc, Consumer>,
        tx: Ring<xdp_desc, Producer>,
        frame_size: u32,
        frame_count: u32,
    ) -> Queues {
        let mut free = Vec::with_capacity(frame_count as usize);
        // Highest first, so frames are handed out from the start of the UMEM.
        free.extend((0..u64::from(frame_count)).rev().map(|i| i * u64::from(frame_size)));
        Queues {
            fill,
            comp,
            rx,
            tx,
            free,
            held: vec![0; (frame_count as usize).div_ceil(64)],
            frame_size,
            umem_len: u64::from(frame_count) * u64::from(frame_size),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tx_in_flight: 0,
            stats: Arc::new(XskStats::default()),
        }
    }

    fn chunk(&self, addr: u64) -> u64 {
        addr & !u64::from(self.frame_size - 1)
    }

    fn check(&self, f: &Frame) {
        assert_eq!(f.owner, self.id, "frame used with a socket it does not belong to");
    }

    /// Marks the chunk of `addr` as held by a token; false if it already was.
    fn take_chunk(&mut self, addr: u64) -> bool {
        let i = (addr / u64::from(self.frame_size)) as usize;
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let was = self.held[word] & bit != 0;
        self.held[word] |= bit;
        !was
    }

    /// The token of the chunk at `addr` is gone (recycled or on the TX ring).
    fn release_chunk(&mut self, addr: u64) {
        let i = (addr / u64::from(self.frame_size)) as usize;
        self.held[i / 64] &= !(1u64 << (i % 64));
    }

    /// The first refill, before the kernel has seen the ring (an empty ring is not an event).
    fn prime(&mut self) -> u32 {
        self.fill_from_free()
    }

    /// Moves free frames into the fill ring; returns how many. Counts the times the kernel
    /// had emptied it.
    fn refill(&mut self) -> u32 {
        if self.fill.outstanding() == 0 {
            bump(&self.stats.fill_empty, 1);
        }
        self.fill_from_free()
    }

    fn fill_from_free(&mut self) -> u32 {
        let n = self.fill.reserve(self.free.len().min(u32::MAX as usize) as u32);
        for i in 0..n {
            let addr = self.free.pop().expect("reserve is bounded by the free count");
            self.fill.write(i, addr);
        }
        self.fill.submit(n);
        n
    }

    /// Takes received frames, as many as `out` has spare capacity for (never allocates).
    fn rx_burst(&mut self, out: &mut Vec<Frame>) -> usize {
        let want = (out.capacity() - out.len()).min(u32::MAX as usize) as u32;
        let n = self.rx.peek(want);
        let mut taken = 0;
        for i in 0..n {
            let d = self.rx.read(i);
            let room = u64::from(self.frame_size) - (d.addr & u64::from(self.frame_size - 1));
            if d.addr >= self.umem_len || u64::from(d.len) > room || !self.take_chunk(d.addr) {
                bump(&self.stats.rx_invalid, 1);
                continue;
            }
            out.push(Frame { addr: d.addr, len: d.len, room: room as u32, owner: self.id });
            taken += 1;
        }
        self.rx.release(n);
        bump(&self.stats.rx, taken as u64);
        taken
    }

    /// A free frame to build a datagram in (data length 0, the whole chunk as room).
    fn alloc(&mut self) -> Option<Frame> {
        let addr = self.free.pop()?;
        self.take_chunk(addr);
        Some(Frame { addr, len: 0, room: self.frame_size, owner: self.id })
    }

    /// Gives a frame back unsent.
    fn recycle(&mut self, f: Frame) {
        self.check(&f);
        self.release_chunk(f.addr);
        self.free.push(self.chunk(f.addr));
    }

    /// Queues `frames` for sending and empties the vector; returns how many went on the TX
    /// ring. The rest (ring full, or an empty/oversized frame) are recycled and counted.
    fn tx_submit(&mut self, frames: &mut Vec<Frame>) -> usize {
        let n = self.tx.reserve(frames.len().min(u32::MAX as usize) as u32);
        let mut queued = 0u32;
        for f in frames.drain(..) {
            self.check(&f);
            self.release_chunk(f.addr);
            if f.len == 0 || f.len > f.room {
                bump(&self.stats.tx_invalid, 1);
                self.free.push(f.addr & !u64::from(self.frame_size - 1));
            } else if queued < n {
                self.tx.write(queued, xdp_desc { addr: f.addr, len: f.len, options: 0 });
                queued += 1;
            } else {
                bump(&self.stats.tx_ring_full, 1);
                self.free.push(f.addr & !u64::from(self.frame_size - 1));
            }
        }
        self.tx.submit(queued);
        self.tx_in_flight += queued;
        bump(&self.stats.tx, u64::from(queued));
        queued as usize
    }

    /// Takes sent frames off the completion ring into the free list; returns how many.
    fn complete(&mut self) -> u32 {
        let n = self.comp.peek(self.comp.size());
        for i in 0..n {
            let addr = self.comp.read(i);
            if addr < self.umem_len && self.free.len() < self.free.capacity() {
                self.free.push(self.chunk(addr));
            }
        }
        self.comp.release(n);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(n);
        bump(&self.stats.tx_completed, u64::from(n));
        n
    }
}

// ---------------------------------------------------------------------------------------
// The socket

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM and rings.
#[derive(Debug)]
pub struct XskSocket {
    // Field order is drop order: rings unmapped, then the socket closed, then the UMEM.
    q: Queues,
    fd: OwnedFd,
    umem: Mapping,
    umem_huge: bool,
    frame_count: u32,
    mode: XdpMode,
    ifindex: u32,
    queue: u32,
}

impl XskSocket {
    /// Creates the UMEM and rings, fills the fill ring, and binds to `queue` of the
    /// interface `ifname` (looked up in the calling thread's network namespace) with
    /// XDP_USE_NEED_WAKEUP. With [`BindMode::Auto`], zero-copy is tried first and copy mode
    /// after it (veth only does copy mode); [`XskSocket::mode`] says which was obtained. A
    /// queue found busy is retried for up to a second (a socket just closed releases its
    /// queue asynchronously).
    pub fn open(ifname: &str, queue: u32, cfg: &XskConfig) -> Result<XskSocket, XskError> {
        let err =
            |step: &'static str, source: io::Error| XskError::Setup { ifname: ifname.to_string(), queue, step, source };
        cfg.validate()?;
        let ifindex = if_index(ifname).map_err(|e| err("interface lookup", e))?;
        let len = cfg.frame_count as usize * cfg.frame_size as usize;
        let (umem, umem_huge) = Mapping::anonymous(len, cfg.huge_pages).map_err(|e| err("UMEM mmap", e))?;
        let attempts: &[u16] = match cfg.mode {
            BindMode::Auto => &[libc::XDP_ZEROCOPY, libc::XDP_COPY],
            BindMode::ZeroCopy => &[libc::XDP_ZEROCOPY],
            BindMode::Copy => &[libc::XDP_COPY],
        };
        let mut last = None;
        for &mode_flag in attempts {
            match setup_retrying(&umem, len, ifindex, queue, cfg, mode_flag) {
                Ok((fd, q)) => {
                    let mode = match xdp_options(&fd) {
                        Ok(flags) if flags & libc::XDP_OPTIONS_ZEROCOPY != 0 => XdpMode::ZeroCopy,
                        Ok(_) => XdpMode::Copy,
                        Err(_) if mode_flag == libc::XDP_ZEROCOPY => XdpMode::ZeroCopy,
                        Err(_) => XdpMode::Copy,
                    };
                    return Ok(XskSocket {
                        q,
                        fd,
                        umem,
                        umem_huge,
                        frame_count: cfg.frame_count,
                        mode,
                        ifindex,
                        queue,
                    });
                }
                Err((step, e)) => last = Some(err(step, e)),
            }
        }
        Err(last.expect("at least one bind attempt"))
    }

    /// The socket, for the loader's XSKMAP (`register_socket(queue_id, fd)`) and for poll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the UMEM got huge pages.
    pub fn huge_pages(&self) -> bool {
        self.umem_huge
    }

    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    pub fn stats(&self) -> &Arc<XskStats> {
        &self.q.stats
    }

    /// Frames held by the socket itself, in no ring (free for [`XskSocket::alloc_frame`]
    /// and for the next refill).
    pub fn free_frames(&self) -> usize {
        self.q.free.len()
    }

    /// Frames in the fill ring that the kernel has not taken yet.
    pub fn fill_level(&mut self) -> u32 {
        self.q.fill.outstanding()
    }

    /// Frames on the TX ring not yet taken by the kernel.
    pub fn tx_pending(&mut self) -> u32 {
        self.q.tx.outstanding()
    }

    /// Frames put on the TX ring whose completion has not been drained yet.
    pub fn tx_in_flight(&self) -> u32 {
        self.q.tx_in_flight
    }

    /// Moves free frames into the fill ring (done once at open; call after
    /// [`XskSocket::complete`] and [`XskSocket::recycle`]); returns how many.
    pub fn refill(&mut self) -> u32 {
        self.q.refill()
    }

    /// Takes received frames, as many as `out` has spare capacity for; never allocates.
    pub fn rx_burst(&mut self, out: &mut Vec<Frame>) -> usize {
        self.q.rx_burst(out)
    }

    /// A free frame to build a datagram in, if any.
    pub fn alloc_frame(&mut self) -> Option<Frame> {
        self.q.alloc()
    }

    /// Gives a frame back without sending it (a dropped query); it returns to the fill ring
    /// at the next refill.
    pub fn recycle(&mut self, f: Frame) {
        self.q.recycle(f)
    }

    /// Puts `frames` on the TX ring (data as set with [`Frame::set_data`]) and empties the
    /// vector; returns how many were queued. Frames that do not fit (ring full) or are
    /// invalid are recycled and counted. Call [`XskSocket::kick_tx`] afterwards.
    pub fn tx_submit(&mut self, frames: &mut Vec<Frame>) -> usize {
        self.q.tx_submit(frames)
    }

    /// Drains the completion ring: sent frames become free again. Returns how many.
    pub fn complete(&mut self) -> u32 {
        self.q.complete()
    }

    /// The received bytes of a frame.
    pub fn frame(&self, f: &Frame) -> &[u8] {
        self.q.check(f);
        // SAFETY: a Frame of this socket (checked above) is only made from an address below
        // the UMEM length with `len <= room` and `addr + room` at most its chunk's end, so
        // the range lies inside the UMEM mapping, which lives as long as `self`. The token
        // means the frame is in no ring, so the kernel does not write it meanwhile.
        unsafe { std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(f.addr as usize), f.len as usize) }
    }

    /// The frame from its data start to the end of its chunk: the received bytes are
    /// `[..f.len()]`, the rest is room for a longer reply written in place.
    pub fn frame_mut(&mut self, f: &Frame) -> &mut [u8] {
        self.q.check(f);
        // SAFETY: as in `frame`, with `room` for the length; `&mut self` makes this the only
        // reference into the UMEM that Rust code holds.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(f.addr as usize), f.room as usize) }
    }

    /// The frames `frames` at once, each from its data start to the end of its chunk (as
    /// [`XskSocket::frame_mut`]), into `out[i]`; for answering a batch in place. Returns how
    /// many were written: `min(frames.len(), out.len())`.
    pub fn frames_mut<'a>(&'a mut self, frames: &[Frame], out: &mut [&'a mut [u8]]) -> usize {
        let base = self.umem.ptr.as_ptr();
        let mut n = 0;
        for (f, o) in frames.iter().zip(out.iter_mut()) {
            self.q.check(f);
            // SAFETY: as in `frame_mut`, the range lies inside the UMEM mapping, which lives
            // as long as `self` (borrowed mutably for 'a, so no other reference into the
            // UMEM is made meanwhile), and the kernel does not write a frame held as a
            // token. The slices do not overlap: each lies within its own chunk, and a
            // chunk has at most one token (`Queues::held`), so distinct tokens in `frames`
            // are distinct chunks (`Frame` is not `Clone`, so `frames` cannot hold one
            // token twice).
            *o = unsafe { std::slice::from_raw_parts_mut(base.add(f.addr as usize), f.room as usize) };
            n += 1;
        }
        n
    }

    /// Tells the kernel to send what is on the TX ring, if it asked to be told (always so
    /// in copy mode). In copy mode one kick sends at most 32 frames: kick again while
    /// [`XskSocket::tx_pending`] is non-zero. Returns whether a syscall was made.
    pub fn kick_tx(&mut self) -> bool {
        if !self.q.tx.needs_wakeup() {
            return false;
        }
        bump(&self.q.stats.tx_kicks, 1);
        // SAFETY: sendto on our own socket with a NULL, zero-length buffer and no address:
        // the kernel reads no user memory.
        let r = unsafe { libc::sendto(self.fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if r < 0 {
            self.count_wakeup_error();
        }
        true
    }

    /// After a refill: wakes the driver if it stopped for lack of fill entries. Returns
    /// whether a syscall was made.
    pub fn wakeup_rx(&mut self) -> bool {
        if !self.q.fill.needs_wakeup() {
            return false;
        }
        bump(&self.q.stats.rx_wakeups, 1);
        // SAFETY: recvfrom on our own socket with a NULL, zero-length buffer and no address
        // out-parameters: the kernel writes no user memory.
        let r = unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.count_wakeup_error();
        }
        true
    }

    /// Waits up to `timeout_ms` for received frames (poll for POLLIN, which also wakes the
    /// driver when it asked for it). For idle loops. Returns whether frames are ready.
    pub fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid, exclusively borrowed pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        Ok(n > 0 && pfd.revents & libc::POLLIN != 0)
    }

    /// Kicks and drains completions until the TX ring is empty or `max_kicks` kicks were
    /// made; returns the frames still pending on the TX ring.
    pub fn flush_tx(&mut self, max_kicks: u32) -> u32 {
        let mut kicks = 0;
        loop {
            self.complete();
            let pending = self.tx_pending();
            if pending == 0 || kicks >= max_kicks {
                return pending;
            }
            if self.kick_tx() {
                kicks += 1;
            } else {
                // The driver is running on its own: give it a moment.
                std::thread::yield_now();
                kicks += 1;
            }
        }
    }

    fn count_wakeup_error(&self) {
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // Busy or out of buffers: the next kick tries again; those are not errors.
        if !matches!(e, libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) {
            bump(&self.q.stats.wakeup_errors, 1);
        }
    }

    /// The kernel's counters for this socket.
    pub fn kernel_stats(&self) -> io::Result<KernelStats> {
        kernel_stats_of(self.fd.as_fd())
    }

    /// A second descriptor of the socket, for reading [`kernel_stats_of`] from another
    /// thread (the metrics) while the loop owns the socket.
    pub fn stats_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

/// The kernel's counters (XDP_STATISTICS) of the AF_XDP socket `fd`.
pub fn kernel_stats_of(fd: BorrowedFd<'_>) -> io::Result<KernelStats> {
    // SAFETY: xdp_statistics is a plain C struct; all-zero bytes are a valid value.
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    xdp_getsockopt(fd.as_raw_fd(), libc::XDP_STATISTICS, &mut s)?;
    Ok(KernelStats {
        rx_dropped: s.rx_dropped,
        rx_invalid_descs: s.rx_invalid_descs,
        tx_invalid_descs: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
        tx_ring_empty_descs: s.tx_ring_empty_descs,
    })
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i)
}

type SetupError = (&'static str, io::Error);

/// How long a bind that finds the queue busy is retried: the kernel releases a closed
/// socket's hold on its queue asynchronously, so a socket reopened at once (a restart, or a
/// fallback) can find the queue still taken for a few milliseconds.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

fn setup_retrying(
    umem: &Mapping,
    len: usize,
    ifindex: u32,
    queue: u32,
    cfg: &XskConfig,
    mode_flag: u16,
) -> Result<(OwnedFd, Queues), SetupError> {
    let deadline = std::time::Instant::now() + BUSY_RETRY;
    loop {
        match setup(umem, len, ifindex, queue, cfg, mode_flag) {
            Err((step, e))
                if step.starts_with("bind")
                    && e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// One attempt: a socket with the UMEM registered, its rings sized and mapped, the fill
/// ring filled, bound with `mode_flag`.
fn setup(
    umem: &Mapping,
    len: usize,
    ifindex: u32,
    queue: u32,
    cfg: &XskConfig,
    mode_flag: u16,
) -> Result<(OwnedFd, Queues), SetupError> {
    let os = |step: &'static str| move |e: io::Error| (step, e);
    // SAFETY: socket() has no memory-safety preconditions; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(("socket(AF_XDP)", io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let reg = libc::xdp_umem_reg {
        addr: umem.ptr.as_ptr() as u64,
        len: len as u64,
        chunk_size: cfg.frame_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    set_opt(&fd, libc::XDP_UMEM_REG, &reg).map_err(os("XDP_UMEM_REG"))?;
    set_opt(&fd, libc::XDP_UMEM_FILL_RING, &(cfg.fill_size as libc::c_int)).map_err(os("XDP_UMEM_FILL_RING"))?;
    set_opt(&fd, libc::XDP_UMEM_COMPLETION_RING, &(cfg.comp_size as libc::c_int))
        .map_err(os("XDP_UMEM_COMPLETION_RING"))?;
    set_opt(&fd, libc::XDP_RX_RING, &(cfg.rx_size as libc::c_int)).map_err(os("XDP_RX_RING"))?;
    set_opt(&fd, libc::XDP_TX_RING, &(cfg.tx_size as libc::c_int)).map_err(os("XDP_TX_RING"))?;
    let off = mmap_offsets(&fd).map_err(os("XDP_MMAP_OFFSETS"))?;
    let fill = map_ring::<u64, Producer>(&fd, &off.fr, cfg.fill_size, libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t)
        .map_err(os("fill ring mmap"))?;
    let comp =
        map_ring::<u64, Consumer>(&fd, &off.cr, cfg.comp_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t)
            .map_err(os("completion ring mmap"))?;
    let rx = map_ring::<xdp_desc, Consumer>(&fd, &off.rx, cfg.rx_size, libc::XDP_PGOFF_RX_RING)
        .map_err(os("RX ring mmap"))?;
    let tx = map_ring::<xdp_desc, Producer>(&fd, &off.tx, cfg.tx_size, libc::XDP_PGOFF_TX_RING)
        .map_err(os("TX ring mmap"))?;
    let mut q = Queues::new(fill, comp, rx, tx, cfg.frame_size, cfg.frame_count);
    // Frames in the fill ring before bind, so a zero-copy driver finds them at once.
    q.prime();
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: libc::XDP_USE_NEED_WAKEUP | mode_flag,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `sa` is a valid sockaddr_xdp of the given length that outlives the call.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let step = if mode_flag == libc::XDP_ZEROCOPY { "bind (zero-copy)" } else { "bind (copy mode)" };
        return Err((step, io::Error::last_os_error()));
    }
    Ok((fd, q))
}

fn set_opt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a valid T of size_of::<T>() bytes that outlives the call; the kernel
    // only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mmap_offsets(fd: &OwnedFd) -> io::Result<xdp_mmap_offsets> {
    // SAFETY: xdp_mmap_offsets is a plain C struct; all-zero bytes are a valid value.
    let mut off: xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let len = xdp_getsockopt(fd.as_raw_fd(), libc::XDP_MMAP_OFFSETS, &mut off)?;
    if len != std::mem::size_of::<xdp_mmap_offsets>() {
        // Kernels before 5.4 give no flags offsets (and no need_wakeup).
        return Err(io::Error::other("kernel too old: no ring flags in XDP_MMAP_OFFSETS"));
    }
    Ok(off)
}

fn xdp_options(fd: &OwnedFd) -> io::Result<u32> {
    let mut o = libc::xdp_options { flags: 0 };
    xdp_getsockopt(fd.as_raw_fd(), libc::XDP_OPTIONS, &mut o)?;
    Ok(o.flags)
}

/// `getsockopt(fd, SOL_XDP, opt)` into `out` (a plain C struct of the option's type);
/// returns how many bytes the kernel wrote.
fn xdp_getsockopt<T: Copy>(fd: RawFd, opt: libc::c_int, out: &mut T) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` is a writable buffer of `len` bytes that outlives the call; the kernel
    // writes at most `len` bytes and reports how many in `len`.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (out as *mut T).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

fn map_ring<T: Copy, R: Role>(
    fd: &OwnedFd,
    off: &xdp_ring_offset,
    size: u32,
    pgoff: libc::off_t,
) -> io::Result<Ring<T, R>> {
    let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
    let m = Mapping::map(len, libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd(), pgoff)?;
    // SAFETY: the mapping is the kernel's ring for this socket; the kernel is the only other
    // party and plays the opposite role.
    unsafe { Ring::over(Backing::Mapped(m), off, size) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeroed heap memory standing in for a mapped ring.
    #[derive(Debug)]
    pub(super) struct HeapBlock {
        pub(super) ptr: NonNull<u8>,
        pub(super) len: usize,
        layout: std::alloc::Layout,
    }

    // SAFETY: plain owned memory; the rings over it synchronise through atomics.
    unsafe impl Send for HeapBlock {}
    // SAFETY: as above; HeapBlock itself gives no access to the memory.
    unsafe impl Sync for HeapBlock {}

    impl HeapBlock {
        fn new(len: usize) -> HeapBlock {
            let layout = std::alloc::Layout::from_size_align(len, 64).unwrap();
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            HeapBlock { ptr: NonNull::new(p).expect("allocation"), len, layout }
        }
    }

    impl Drop for HeapBlock {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
        }
    }

    /// The kernel's layout: indices and flags on their own cache lines, slots after.
    const OFF: xdp_ring_offset = xdp_ring_offset { producer: 0, consumer: 64, flags: 128, desc: 192 };

    /// A producer and a consumer over one block, with both indices starting at `start`.
    fn pair<T: Copy>(size: u32, start: u32) -> (Ring<T, Producer>, Ring<T, Consumer>, Arc<HeapBlock>) {
        let block = Arc::new(HeapBlock::new(192 + size as usize * std::mem::size_of::<T>()));
        for o in [OFF.producer, OFF.consumer] {
            // SAFETY: in bounds, aligned, and no ring exists yet.
            unsafe { block.ptr.as_ptr().add(o as usize).cast::<u32>().write(start) };
        }
        // SAFETY: exactly one producer and one consumer over the block.
        let p = unsafe { Ring::over(Backing::Heap(block.clone()), &OFF, size) }.unwrap();
        // SAFETY: as above.
        let c = unsafe { Ring::over(Backing::Heap(block.clone()), &OFF, size) }.unwrap();
        (p, c, block)
    }

    #[test]
    fn produce_and_consume() {
        let (mut p, mut c, _b) = pair::<u64>(8, 0);
        assert_eq!(c.peek(8), 0);
        assert_eq!(p.reserve(4), 4);
        for i in 0..4 {
            p.write(i, 100 + u64::from(i));
        }
        // Nothing visible before submit.
        assert_eq!(c.peek(8), 0);
        p.submit(4);
        assert_eq!(p.outstanding(), 4);
        assert_eq!(c.peek(8), 4);
        assert_eq!((0..4).map(|i| c.read(i)).collect::<Vec<_>>(), [100, 101, 102, 103]);
        c.release(2);
        assert_eq!(p.outstanding(), 2);
        assert_eq!(c.peek(8), 2);
        assert_eq!(c.read(0), 102);
        c.release(2);
        assert_eq!(p.outstanding(), 0);
    }

    #[test]
    fn full_ring_and_partial_reserve() {
        let (mut p, mut c, _b) = pair::<u64>(4, 0);
        assert_eq!(p.reserve(10), 4);
        p.submit(3);
        assert_eq!(p.reserve(10), 1);
        p.submit(1);
        assert_eq!(p.reserve(1), 0);
        assert_eq!(c.peek(2), 2);
        c.release(1);
        // The producer's cached view is stale until it needs more than it thinks is free.
        assert_eq!(p.reserve(1), 1);
        p.submit(0);
        assert_eq!(c.peek(10), 3);
        c.release(3);
        assert_eq!(p.reserve(4), 4);
    }

    #[test]
    fn indices_wrap_around_u32() {
        for start in [u32::MAX - 5, u32::MAX, 0x7fff_fffe] {
            let (mut p, mut c, _b) = pair::<xdp_desc>(8, start);
            let mut next_in = 0u64;
            let mut next_out = 0u64;
            for round in 0..40 {
                let k = p.reserve(1 + round % 8);
                for i in 0..k {
                    p.write(i, xdp_desc { addr: next_in, len: next_in as u32, options: 0 });
                    next_in += 1;
                }
                p.submit(k);
                let n = c.peek(1 + (round * 3) % 8);
                for i in 0..n {
                    let d = c.read(i);
                    assert_eq!((d.addr, d.len), (next_out, next_out as u32));
                    next_out += 1;
                }
                c.release(n);
            }
            assert!(next_out > 40);
            assert_eq!(u64::from(p.outstanding()), next_in - next_out);
        }
    }

    #[test]
    fn consumer_clamps_a_bogus_producer_index() {
        let (_p, mut c, b) = pair::<u64>(4, 0);
        // SAFETY: in bounds and aligned; written as the atomic the rings read.
        unsafe { &*b.ptr.as_ptr().add(OFF.producer as usize).cast::<AtomicU32>() }.store(1000, Ordering::Release);
        assert_eq!(c.peek(100), 4);
    }

    #[test]
    fn need_wakeup_flag() {
        let (p, c, b) = pair::<u64>(4, 0);
        assert!(!p.needs_wakeup());
        // SAFETY: in bounds and aligned.
        let flags = unsafe { &*b.ptr.as_ptr().add(OFF.flags as usize).cast::<AtomicU32>() };
        flags.store(libc::XDP_RING_NEED_WAKEUP, Ordering::Release);
        assert!(p.needs_wakeup());
        assert!(c.needs_wakeup());
        flags.store(2, Ordering::Release);
        assert!(!p.needs_wakeup());
    }

    #[test]
    fn rejects_bad_layouts() {
        let block = Arc::new(HeapBlock::new(256));
        let bad = [
            (xdp_ring_offset { producer: 254, consumer: 64, flags: 128, desc: 192 }, 8),
            (xdp_ring_offset { producer: 2, consumer: 64, flags: 128, desc: 192 }, 8),
            (OFF, 16), // 16 slots of 8 bytes do not fit after 192
            (OFF, 6),  // not a power of two
        ];
        for (off, size) in bad {
            // SAFETY: the ring is refused before any access.
            let r = unsafe { Ring::<u64, Producer>::over(Backing::Heap(block.clone()), &off, size) };
            assert!(r.is_err(), "{off:?} {size}");
        }
    }

    #[test]
    fn two_threads_keep_order() {
        let (mut p, mut c, _b) = pair::<u64>(64, u32::MAX - 1000);
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < N {
                let k = p.reserve(16).min((N - next) as u32);
                for i in 0..k {
                    p.write(i, next * 3);
                    next += 1;
                }
                p.submit(k);
                if k == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut expect = 0u64;
        while expect < N {
            let n = c.peek(32);
            for i in 0..n {
                assert_eq!(c.read(i), expect * 3);
                expect += 1;
            }
            c.release(n);
            if n == 0 {
                std::thread::yield_now();
            }
        }
        t.join().unwrap();
    }

    /// The kernel's ends of the four rings, for the bookkeeping tests.
    struct FakeKernel {
        fill: Ring<u64, Consumer>,
        comp: Ring<u64, Producer>,
        rx: Ring<xdp_desc, Producer>,
        tx: Ring<xdp_desc, Consumer>,
        _blocks: Vec<Arc<HeapBlock>>,
    }

    const FRAME: u32 = 2048;

    fn queues(frames: u32, fill: u32, ring: u32) -> (Queues, FakeKernel) {
        let (fp, fc, b1) = pair::<u64>(fill, 0);
        let (cp, cc, b2) = pair::<u64>(ring, 7);
        let (rp, rc, b3) = pair::<xdp_desc>(ring, u32::MAX - 2);
        let (tp, tc, b4) = pair::<xdp_desc>(ring, 3);
        let q = Queues::new(fp, cc, rc, tp, FRAME, frames);
        (q, FakeKernel { fill: fc, comp: cp, rx: rp, tx: tc, _blocks: vec![b1, b2, b3, b4] })
    }

    impl FakeKernel {
        /// Receives `lens.len()` packets into frames from the fill ring.
        fn receive(&mut self, lens: &[u32]) -> u32 {
            let n = self.fill.peek(lens.len() as u32);
            let k = self.rx.reserve(n);
            for i in 0..k {
                // Copy mode puts the data 256 bytes into the chunk.
                let addr = self.fill.read(i) + 256;
                self.rx.write(i, xdp_desc { addr, len: lens[i as usize], options: 0 });
            }
            self.fill.release(k);
            self.rx.submit(k);
            k
        }

        /// Sends what is on the TX ring and completes it; returns the descriptors.
        fn transmit(&mut self) -> Vec<xdp_desc> {
            let n = self.tx.peek(u32::MAX);
            let out: Vec<_> = (0..n).map(|i| self.tx.read(i)).collect();
            self.tx.release(n);
            let k = self.comp.reserve(n);
            assert_eq!(k, n, "completion ring full");
            for (i, d) in out.iter().enumerate() {
                self.comp.write(i as u32, d.addr);
            }
            self.comp.submit(k);
            out
        }
    }

    #[test]
    fn frames_circulate_without_loss() {
        let (mut q, mut k) = queues(64, 32, 16);
        assert_eq!(q.prime(), 32);
        assert_eq!(q.free.len(), 32);
        assert_eq!(q.fill.outstanding(), 32);
        let mut batch = Vec::with_capacity(8);
        for round in 0..50u32 {
            let got = k.receive(&[60, 100, 1500, 61, 70]);
            let n = q.rx_burst(&mut batch);
            assert_eq!(n as u32, got.min(8));
            assert!(batch.iter().all(|f| f.addr() % u64::from(FRAME) == 256 && f.room() == FRAME as usize - 256));
            // Drop every third frame, answer the rest in place (data moved 8 bytes on).
            let mut out = Vec::with_capacity(8);
            for (i, mut f) in batch.drain(..).enumerate() {
                if (i as u32 + round) % 3 == 0 {
                    q.recycle(f);
                } else {
                    f.set_data(8..f.len() + 20);
                    out.push(f);
                }
            }
            let sent = out.len();
            assert_eq!(q.tx_submit(&mut out), sent);
            let on_wire = k.transmit();
            assert_eq!(on_wire.len(), sent);
            assert!(on_wire.iter().all(|d| d.addr % u64::from(FRAME) == 264));
            assert_eq!(q.complete() as usize, sent);
            q.refill();
        }
        // Every frame is accounted for: free, or in the fill ring, or received and unread.
        let rx_unread = k.rx.outstanding();
        assert_eq!(q.free.len() as u32 + q.fill.outstanding() + rx_unread, 64);
        assert_eq!(q.tx_in_flight, 0);
        let s = q.stats.snapshot();
        assert_eq!(s.tx, s.tx_completed);
        assert_eq!(s.rx_invalid + s.tx_invalid + s.tx_ring_full, 0);
    }

    #[test]
    fn tx_ring_full_and_invalid_frames_are_recycled() {
        let (mut q, mut k) = queues(64, 16, 4);
        let mut out = Vec::with_capacity(8);
        for i in 0..7 {
            let mut f = q.alloc().unwrap();
            f.set_data(0..60 + i);
            out.push(f);
        }
        out.push(q.alloc().unwrap()); // length 0: invalid
        let free_before = q.free.len();
        assert_eq!(q.tx_submit(&mut out), 4);
        assert!(out.is_empty());
        assert_eq!(q.free.len(), free_before + 4);
        let s = q.stats.snapshot();
        assert_eq!((s.tx, s.tx_ring_full, s.tx_invalid), (4, 3, 1));
        assert_eq!(k.transmit().len(), 4);
        assert_eq!(q.complete(), 4);
        assert_eq!(q.free.len(), 64);
    }

    #[test]
    fn rx_burst_respects_capacity_and_skips_bad_descriptors() {
        let (mut q, mut k) = queues(16, 16, 16);
        q.prime();
        assert_eq!(q.fill.outstanding(), 16);
        // A fill ring drained by the kernel counts as empty at the next refill.
        k.receive(&[64; 16]);
        q.refill();
        assert_eq!(q.stats.snapshot().fill_empty, 1);
        let mut small = Vec::with_capacity(3);
        assert_eq!(q.rx_burst(&mut small), 3);
        assert_eq!(q.rx_burst(&mut small), 0, "no spare capacity, nothing taken");
        for f in small.drain(..) {
            q.recycle(f);
        }
        // A descriptor beyond the UMEM and one longer than its frame are skipped.
        let (mut q2, mut k2) = queues(4, 4, 4);
        assert_eq!(k2.rx.reserve(2), 2);
        k2.rx.write(0, xdp_desc { addr: 4 * u64::from(FRAME), len: 10, options: 0 });
        k2.rx.write(1, xdp_desc { addr: 300, len: FRAME, options: 0 });
        k2.rx.submit(2);
        let mut v = Vec::with_capacity(4);
        assert_eq!(q2.rx_burst(&mut v), 0);
        assert_eq!(q2.stats.snapshot().rx_invalid, 2);
    }

    #[test]
    fn a_chunk_is_never_handed_out_twice() {
        let (mut q, mut k) = queues(4, 4, 4);
        // The same chunk twice in the RX ring (a misbehaving kernel): the second is skipped.
        assert_eq!(k.rx.reserve(2), 2);
        k.rx.write(0, xdp_desc { addr: 256, len: 60, options: 0 });
        k.rx.write(1, xdp_desc { addr: 300, len: 60, options: 0 });
        k.rx.submit(2);
        let mut v = Vec::with_capacity(4);
        assert_eq!(q.rx_burst(&mut v), 1);
        assert_eq!(q.stats.snapshot().rx_invalid, 1);
        // Once the token is gone, the chunk can come back.
        q.recycle(v.pop().unwrap());
        assert_eq!(k.rx.reserve(1), 1);
        k.rx.write(0, xdp_desc { addr: 256, len: 60, options: 0 });
        k.rx.submit(1);
        assert_eq!(q.rx_burst(&mut v), 1);
        let mut out = vec![v.pop().unwrap()];
        out[0].set_data(0..60);
        assert_eq!(q.tx_submit(&mut out), 1);
        assert_eq!(q.held.iter().map(|w| w.count_ones()).sum::<u32>(), 0);
    }

    #[test]
    #[should_panic(expected = "does not belong")]
    fn frames_of_another_socket_are_refused() {
        let (mut a, _ka) = queues(4, 4, 4);
        let (mut b, _kb) = queues(4, 4, 4);
        let f = a.alloc().unwrap();
        b.recycle(f);
    }

    #[test]
    fn config_validation() {
        assert!(XskConfig::default().validate().is_ok());
        for bad in [
            XskConfig { frame_size: 3000, ..XskConfig::default() },
            XskConfig { frame_size: 1024, ..XskConfig::default() },
            XskConfig { rx_size: 1000, ..XskConfig::default() },
            XskConfig { frame_count: 0, ..XskConfig::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
