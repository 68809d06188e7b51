//! The AF_XDP backend: one run loop per NIC RX queue, each pinned to its core, answering
//! UDP queries in the frames they arrived in.
//!
//! [`XdpPlane::start`] attaches the XDP program (`xdp_prog`), opens one AF_XDP socket per
//! queue (`xsk`), puts each into the program's socket map and starts the loops. One turn of
//! a loop: completions back to the free list, the fill ring topped up (the driver woken if
//! it asked), a batch of up to 32 frames from the RX ring → [`packet::parse`] (bad frames
//! dropped and counted by reason) → the DNS messages answered in place together by
//! [`answer_batch`] → [`packet::build_reply`] → the TX ring, and a TX kick (in copy mode one
//! kick sends at most 32 frames, so the loop kicks again while frames are pending). Frames
//! that get no reply go straight back to the free list. An idle loop spins for half a
//! millisecond, then sleeps in `poll` with a timeout so that it notices shutdown.
//!
//! Nothing on this path allocates, locks or makes a per-packet syscall: the buffers are
//! fixed arrays, the catalog is loaded once per batch, kicks and wakeups are per batch and
//! only when the kernel asks for them.
//!
//! Messages that are not plain queries — NOTIFY, UPDATE, and IXFR over UDP — are not
//! answered here: they are copied into a [`Handoff`] and sent to the control side over a
//! bounded channel (`try_send`: dropped and counted when full, never blocking).
//!
//! This module knows nothing of zones beyond handing the catalog to the engine.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use super::packet::{self, Datagram};
use super::xdp_prog::{describe_counters, XdpConfig, XdpError, XdpProgram, NUM_COUNTERS};
use super::xsk::{Frame, KernelStats, XdpMode, XskConfig, XskCounters, XskError, XskSocket, XskStats};
use super::{new_histogram, LoopRrl, LoopStats, ServiceHistogram, SharedCatalog};
use crate::answer::{self, answer_batch, BatchScratch, Config, Outcome, Transport, Zones};
use crate::rrl;
use crate::wire::message::{self, opcode, Header};
use crate::wire::rdata::rtype;

/// Frames taken from the RX ring per turn: the engine's batch.
pub const BATCH: usize = answer::BATCH;
/// How long a loop keeps spinning after the last frame before it sleeps in `poll`: going to
/// sleep and being woken costs more than a few microseconds of spinning, and under load the
/// next frame is rarely that far away.
const SPIN: std::time::Duration = std::time::Duration::from_micros(500);
/// Empty turns between two looks at the clock while spinning.
const SPIN_CHECK: u32 = 64;
/// How long an idle loop sleeps before it looks at the shutdown flag again.
const POLL_MS: i32 = 100;
/// The largest DNS message handed to the control side: any UDP payload (the kernel UDP
/// loops receive up to 64 KiB; AF_XDP frames are smaller).
pub const HANDOFF_MAX: usize = 65535;
/// Message buffers for hand-overs: as many as the control side's channel holds (64), and
/// some in the loops' and the control side's hands. Taken from and returned to [`handoff_pool`]; when none is free, the
/// message is dropped and counted like one that finds the channel full.
pub const HANDOFF_BUFFERS: usize = 80;
/// Bytes of each received frame fetched ahead of parsing (headers and a typical query).
const WARM_BYTES: usize = 192;
/// Ethernet MTU assumed when the interface's cannot be read.
pub const DEFAULT_MTU: usize = 1500;

type HandoffBuffer = Box<[u8; HANDOFF_MAX]>;

/// The free hand-over buffers, allocated together at the first use ([`reserve_handoff_buffers`]
/// at start-up, so that no run loop allocates them). A channel as a free list: taking and
/// returning never block.
fn handoff_pool() -> &'static (Sender<HandoffBuffer>, crossbeam_channel::Receiver<HandoffBuffer>) {
    static POOL: std::sync::OnceLock<(Sender<HandoffBuffer>, crossbeam_channel::Receiver<HandoffBuffer>)> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(HANDOFF_BUFFERS);
        for _ in 0..HANDOFF_BUFFERS {
            let b: HandoffBuffer = vec![0u8; HANDOFF_MAX].into_boxed_slice().try_into().expect("HANDOFF_MAX octets");
            let _ = tx.try_send(b);
        }
        (tx, rx)
    })
}

/// Allocates the hand-over buffers now (the control side calls it before the loops run).
pub fn reserve_handoff_buffers() {
    handoff_pool();
}

/// A message for the control side: NOTIFY, UPDATE, an IXFR query or a query signed with
/// TSIG, from either UDP path. Its buffer comes from a fixed pool and goes back to it when
/// the hand-over is dropped: sending one allocates nothing and copies only the message.
pub struct Handoff {
    /// Who sent it (where the answer goes).
    pub client: SocketAddr,
    /// The address and port it was sent to (where the answer comes from).
    pub server: SocketAddr,
    len: u16,
    msg: Option<HandoffBuffer>,
}

impl Handoff {
    /// A message from `client` to our `server` address; None if it is longer than
    /// [`HANDOFF_MAX`] or no buffer is free.
    pub fn new(client: SocketAddr, server: SocketAddr, msg: &[u8]) -> Option<Handoff> {
        let len = u16::try_from(msg.len()).ok().filter(|&l| usize::from(l) <= HANDOFF_MAX)?;
        let mut buf = handoff_pool().1.try_recv().ok()?;
        buf[..msg.len()].copy_from_slice(msg);
        Some(Handoff { client, server, len, msg: Some(buf) })
    }

    /// The DNS message.
    pub fn message(&self) -> &[u8] {
        &self.msg.as_deref().expect("held until dropped")[..usize::from(self.len)]
    }

    /// The message buffer (room for an answer written in place) and the message length.
    pub fn buffer_mut(&mut self) -> (&mut [u8; HANDOFF_MAX], usize) {
        (self.msg.as_deref_mut().expect("held until dropped"), usize::from(self.len))
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some(b) = self.msg.take() {
            let _ = handoff_pool().0.try_send(b);
        }
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("len", &self.len)
            .finish()
    }
}

/// Whether a DNS message goes to the control side instead of the engine: opcode NOTIFY or
/// UPDATE, a query for IXFR, or a query signed with TSIG (its answer must be signed, and a
/// TSIG we cannot verify answered NOTAUTH: RFC 8945 §5.2). Looks at the header, the question
/// type and, when there are records after the question, their types (a plain EDNS query
/// costs one look at its OPT), through [`message`]'s length-bounded reader.
pub fn for_control(msg: &[u8]) -> bool {
    let Ok(h) = Header::new_checked(msg) else { return false };
    match h.opcode() {
        opcode::NOTIFY | opcode::UPDATE => true,
        opcode::QUERY => {
            if h.qr() || h.qdcount() != 1 {
                return false;
            }
            let Some(q) = message::question(msg) else { return false };
            q.qtype == rtype::IXFR || message::has_tsig(msg, q.end)
        }
        _ => false,
    }
}

/// Frame-level counters of one queue loop (the DNS-level ones are a [`LoopStats`]; the
/// socket's are its [`XskStats`]). One writer, read by anyone.
#[derive(Debug, Default)]
pub struct FrameStats {
    /// Frames dropped by [`packet::parse`], by [`packet::DropReason::index`].
    pub drops: [AtomicU64; packet::DropReason::COUNT],
    /// Replies that could not be framed (never expected).
    pub build_errors: AtomicU64,
    /// Messages sent to the control side.
    pub handed_off: AtomicU64,
    /// Messages for the control side dropped because its channel was full (or closed).
    pub handoff_dropped: AtomicU64,
    /// Times an idle loop went to sleep in poll.
    pub idle_polls: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed) + n, Relaxed);
}

impl FrameStats {
    /// `name=value` for each non-zero drop reason, space separated ("none" if none).
    pub fn describe_drops(&self) -> String {
        let parts: Vec<String> = packet::DropReason::ALL
            .iter()
            .filter_map(|r| match self.drops[r.index()].load(Relaxed) {
                0 => None,
                n => Some(format!("{r}={n}")),
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }

    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// The AF_XDP socket of a queue loop: an RX ring of 4096 (at 150,000 queries/s, 27 ms of
/// queries while the loop is off its core), the fill ring twice that, and 16,384 frames of
/// 2048 bytes (4096 when the MTU needs it: in copy mode a frame starts 256 bytes into its
/// chunk, and a reply may be as long as the MTU allows).
pub fn socket_config(mtu: usize) -> XskConfig {
    let frame_size = if 256 + 18 + mtu <= 2048 { 2048 } else { 4096 };
    XskConfig {
        frame_size,
        frame_count: 16384,
        rx_size: 4096,
        tx_size: 4096,
        fill_size: 8192,
        comp_size: 8192,
        ..XskConfig::default()
    }
}

/// What to run: the interface, its queues and where their loops go.
#[derive(Debug, Clone)]
pub struct XdpOptions {
    pub ifname: String,
    /// RX queues to serve (an AF_XDP socket and a loop each).
    pub queues: Vec<u32>,
    /// Core of each queue's loop, in the order of `queues` (cycled if shorter; empty: not
    /// pinned).
    pub cores: Vec<usize>,
    /// Replace a foreign XDP program already on the interface.
    pub force: bool,
    /// Which frames the XDP program hands over.
    pub program: XdpConfig,
    /// The interface MTU: no reply frame is longer than the MTU plus its link header.
    pub mtu: usize,
    pub socket: XskConfig,
}

/// Why the AF_XDP data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum XdpStartError {
    #[error(transparent)]
    Program(#[from] XdpError),
    #[error(transparent)]
    Socket(#[from] XskError),
    #[error("starting the run loop of queue {queue}: {source}")]
    Thread { queue: u32, source: io::Error },
    #[error("no RX queue to serve on {0}")]
    NoQueues(String),
}

/// One queue's running loop and its counters.
#[derive(Debug)]
pub struct QueueLoop {
    pub queue: u32,
    pub core: Option<usize>,
    pub mode: XdpMode,
    pub dns: Arc<LoopStats>,
    pub frames: Arc<FrameStats>,
    pub socket: Arc<XskStats>,
    /// A descriptor of the queue's socket for [`super::xsk::kernel_stats_of`].
    pub kernel_fd: Option<Arc<std::os::fd::OwnedFd>>,
    handle: Option<JoinHandle<LoopEnd>>,
}

/// What a loop hands back when it stops.
#[derive(Debug)]
struct LoopEnd {
    hist: ServiceHistogram,
    kernel: Option<KernelStats>,
}

/// The report of one queue after its loop stopped.
#[derive(Debug)]
pub struct QueueReport {
    pub queue: u32,
    pub core: Option<usize>,
    pub mode: XdpMode,
    pub socket: XskCounters,
    pub kernel: Option<KernelStats>,
}

/// The XDP program on the interface and the loops of its queues. Dropping it detaches the
/// program (the loops stop with the shutdown flag).
pub struct XdpPlane {
    // Loops before the program: on drop, nothing is left attached.
    pub loops: Vec<QueueLoop>,
    program: XdpProgram,
    ifname: String,
}

/// The run loops' stopped state and the program's last counters.
pub struct XdpReport {
    pub queues: Vec<QueueReport>,
    pub hist: ServiceHistogram,
    pub program: Option<[u64; NUM_COUNTERS]>,
}

impl XdpPlane {
    /// Attaches the program to `opts.ifname` (a stale nsxdp program is replaced, a foreign
    /// one only with `opts.force`), opens and registers one socket per queue, and starts
    /// the loops. They answer with the catalog's zones until `shutdown` is set; messages
    /// for the control side go to `handoff`. With `rrl`, each loop limits its responses
    /// with a table of its own.
    pub fn start(
        opts: &XdpOptions,
        catalog: SharedCatalog,
        cfg: Config,
        handoff: Sender<Handoff>,
        shutdown: Arc<AtomicBool>,
        rrl: Option<&rrl::Settings>,
    ) -> Result<XdpPlane, XdpStartError> {
        if opts.queues.is_empty() {
            return Err(XdpStartError::NoQueues(opts.ifname.clone()));
        }
        let mut program = XdpProgram::attach(&opts.ifname, &opts.program, opts.force)?;
        // Every socket open and registered before any loop runs: an error leaves nothing
        // behind (the sockets close, the program is detached on return).
        let mut sockets = Vec::with_capacity(opts.queues.len());
        for &q in &opts.queues {
            let s = XskSocket::open(&opts.ifname, q, &opts.socket)?;
            program.register_socket(q, s.fd())?;
            sockets.push(s);
        }
        let mut plane = XdpPlane { loops: Vec::new(), program, ifname: opts.ifname.clone() };
        for (i, xsk) in sockets.into_iter().enumerate() {
            let queue = opts.queues[i];
            let core = (!opts.cores.is_empty()).then(|| opts.cores[i % opts.cores.len()]);
            let dns = Arc::new(LoopStats::default());
            let frames = Arc::new(FrameStats::default());
            let ctx = LoopCtx {
                catalog: catalog.clone(),
                cfg,
                mtu: opts.mtu,
                dns: dns.clone(),
                frames: frames.clone(),
                handoff: handoff.clone(),
                shutdown: shutdown.clone(),
                rrl: rrl.cloned(),
            };
            let (mode, socket) = (xsk.mode(), xsk.stats().clone());
            // For the metrics: the kernel's counters read through a second descriptor.
            let kernel_fd = xsk.stats_fd().ok().map(Arc::new);
            let handle = std::thread::Builder::new()
                .name(format!("nsxdp-xdp{queue}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: c });
                    }
                    run(xsk, ctx)
                })
                .map_err(|source| XdpStartError::Thread { queue, source })?;
            plane.loops.push(QueueLoop { queue, core, mode, dns, frames, socket, kernel_fd, handle: Some(handle) });
        }
        Ok(plane)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The program's counters now (summed over CPUs).
    pub fn program_counters(&self) -> Result<[u64; NUM_COUNTERS], XdpError> {
        self.program.counters()
    }

    /// Waits for the loops (stopped by the shutdown flag), reads the program's counters
    /// and detaches it.
    pub fn stop(mut self) -> XdpReport {
        let mut hist = new_histogram();
        let mut queues = Vec::new();
        for l in &mut self.loops {
            let end = l.handle.take().and_then(|h| h.join().ok());
            if let Some(e) = &end {
                let _ = hist.add(&e.hist);
            }
            queues.push(QueueReport {
                queue: l.queue,
                core: l.core,
                mode: l.mode,
                socket: l.socket.snapshot(),
                kernel: end.and_then(|e| e.kernel),
            });
        }
        let program = self.program.counters().ok();
        // Dropping `self` detaches the program.
        XdpReport { queues, hist, program }
    }
}

impl XdpReport {
    /// One line for the program's counters.
    pub fn describe_program(&self) -> String {
        match &self.program {
            Some(c) => describe_counters(c),
            None => "xdp: counters unavailable".into(),
        }
    }
}

/// `received=... sent=...` of a queue: the socket's counters and the kernel's.
pub fn describe_queue(r: &QueueReport) -> String {
    let core = r.core.map_or("unpinned".to_string(), |c| format!("core {c}"));
    let mut s = format!("queue {} ({core}, {} mode): {}", r.queue, r.mode, r.socket);
    if let Some(k) = &r.kernel {
        s.push_str(&format!(
            " kernel_rx_dropped={} kernel_rx_ring_full={} kernel_fill_empty={} kernel_rx_invalid={} \
             kernel_tx_invalid={}",
            k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty_descs, k.rx_invalid_descs, k.tx_invalid_descs
        ));
    }
    s
}

/// The RX queues of `ifname`, from `/sys/class/net/IFNAME/queues/rx-N` (in the network
/// namespace whose sysfs is mounted, as `ip netns exec` arranges).
pub fn rx_queues(ifname: &str) -> io::Result<Vec<u32>> {
    let dir = Path::new("/sys/class/net").join(ifname).join("queues");
    let mut qs: Vec<u32> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("rx-")?.parse().ok())
        .collect();
    qs.sort_unstable();
    Ok(qs)
}

/// The MTU of `ifname` (`/sys/class/net/IFNAME/mtu`).
pub fn interface_mtu(ifname: &str) -> io::Result<usize> {
    let path = Path::new("/sys/class/net").join(ifname).join("mtu");
    std::fs::read_to_string(&path)?
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{}: not a number", path.display())))
}

/// Parses a list of numbers and ranges: `0,2,4-7`.
pub fn parse_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("{t:?} is not a number (in {s:?})"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b - a > 1024 {
                    return Err(format!("bad range {part:?}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err(format!("empty list {s:?}"));
    }
    Ok(out)
}

/// What a loop works with besides its socket.
struct LoopCtx {
    catalog: SharedCatalog,
    cfg: Config,
    mtu: usize,
    dns: Arc<LoopStats>,
    frames: Arc<FrameStats>,
    handoff: Sender<Handoff>,
    shutdown: Arc<AtomicBool>,
    rrl: Option<rrl::Settings>,
}

/// Per-loop working memory, allocated once.
struct Work {
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    scratch: Box<BatchScratch>,
    hist: ServiceHistogram,
    rrl: Option<LoopRrl>,
}

fn run(mut xsk: XskSocket, ctx: LoopCtx) -> LoopEnd {
    let mut w = Work {
        rx: Vec::with_capacity(BATCH),
        tx: Vec::with_capacity(BATCH),
        scratch: BatchScratch::new(),
        hist: new_histogram(),
        rrl: ctx.rrl.as_ref().map(LoopRrl::new),
    };
    let mut empty = 0u32;
    let mut idle_since = Instant::now();
    while !ctx.shutdown.load(Relaxed) {
        if xsk.tx_in_flight() > 0 {
            xsk.complete();
        }
        xsk.refill();
        xsk.wakeup_rx();
        if xsk.rx_burst(&mut w.rx) == 0 {
            if xsk.tx_pending() > 0 {
                // Copy mode sends 32 frames a kick: keep kicking until the ring is empty.
                xsk.kick_tx();
                continue;
            }
            if empty == 0 {
                idle_since = Instant::now();
            }
            empty += 1;
            if empty % SPIN_CHECK == 0 && idle_since.elapsed() >= SPIN {
                bump(&ctx.frames.idle_polls, 1);
                // Sent frames not yet completed: look again soon, to recycle them.
                let _ = xsk.poll_rx(if xsk.tx_in_flight() > 0 { 1 } else { POLL_MS });
                empty = 0;
            }
            continue;
        }
        empty = 0;
        let t0 = Instant::now();
        let n = w.rx.len();
        turn(&mut xsk, &mut w, &ctx);
        if let Some(r) = &mut w.rrl {
            r.log();
        }
        // Service time per query (parse, answer, reply headers; not the kick, which in copy
        // mode is the kernel sending): the batch's time shared out evenly.
        let per = (t0.elapsed().as_nanos() as u64 / n as u64).max(1);
        let _ = w.hist.record_n(per, n as u64);
        ctx.dns.service.record_n(per, n as u64);
        xsk.tx_submit(&mut w.tx);
        // A full kick's worth now; less waits for the next turn, which kicks anyway if
        // nothing more has come in (one syscall for several small bursts).
        if xsk.tx_pending() >= BATCH as u32 {
            xsk.kick_tx();
        }
    }
    xsk.flush_tx(64);
    LoopEnd { hist: w.hist, kernel: xsk.kernel_stats().ok() }
}

/// Answers the frames in `w.rx`: replies go to `w.tx`, the rest back to the socket.
fn turn(xsk: &mut XskSocket, w: &mut Work, ctx: &LoopCtx) {
    let n = w.rx.len();
    debug_assert!(n <= BATCH, "the RX vector has a capacity of exactly BATCH");
    let mut lens = [0usize; BATCH];
    for (l, f) in lens.iter_mut().zip(&w.rx) {
        *l = f.len();
    }
    let mut replies: [Option<Range<usize>>; BATCH] = [const { None }; BATCH];
    let fctx = FrameCtx { cfg: ctx.cfg, mtu: ctx.mtu, dns: &ctx.dns, frames: &ctx.frames, handoff: &ctx.handoff };
    {
        let cat = ctx.catalog.load();
        let mut bufs: [&mut [u8]; BATCH] = Default::default();
        xsk.frames_mut(&w.rx, &mut bufs);
        answer_frames(&**cat, &fctx, &mut bufs[..n], &lens[..n], &mut replies, &mut w.scratch, w.rrl.as_mut());
    }
    for (i, mut f) in w.rx.drain(..).enumerate() {
        match replies[i].take() {
            Some(r) => {
                f.set_data(r);
                w.tx.push(f);
            }
            None => xsk.recycle(f),
        }
    }
}

/// What [`answer_frames`] needs besides the zones and the frames.
pub struct FrameCtx<'a> {
    pub cfg: Config,
    /// The interface MTU: a reply frame is at most the MTU plus its link-layer header.
    pub mtu: usize,
    pub dns: &'a LoopStats,
    pub frames: &'a FrameStats,
    pub handoff: &'a Sender<Handoff>,
}

/// The work of one turn on up to [`BATCH`] received frames, `frames[i][..lens[i]]` each
/// (`frames[i]` running to the end of its UMEM chunk): parse, hand over what is for the
/// control side, answer the rest in place together, limit the responses with `rrl` if given,
/// build the replies. `replies[i]` is the reply's range in `frames[i]` (for
/// [`Frame::set_data`]), or `None`: no reply. Counts everything. No I/O, no allocation, no
/// lock.
pub fn answer_frames(
    zones: &impl Zones,
    ctx: &FrameCtx,
    frames: &mut [&mut [u8]],
    lens: &[usize],
    replies: &mut [Option<Range<usize>>; BATCH],
    scratch: &mut BatchScratch,
    mut rrl: Option<&mut LoopRrl>,
) {
    let n = frames.len().min(lens.len()).min(BATCH);
    let mut msg_lens = [0usize; BATCH];
    let mut outcomes = [Outcome::Drop(answer::DropReason::Short); BATCH];
    // For the k-th message answered: its frame and datagram.
    let mut which = [(0usize, None::<Datagram>); BATCH];
    bump(&ctx.dns.batches, 1);
    // The kernel wrote these frames, usually on another CPU: touch the first cache lines of
    // all of them before reading any, so that their misses overlap instead of adding up.
    let mut warm = 0u8;
    for (buf, &len) in frames[..n].iter().zip(lens) {
        for off in (0..len.min(buf.len()).min(WARM_BYTES)).step_by(64) {
            warm ^= buf[off];
        }
    }
    std::hint::black_box(warm);
    let mut msgs: [&mut [u8]; BATCH] = Default::default();
    // With cookies on, each query's source address goes to the engine, and the time.
    let mut clients = [std::net::IpAddr::from([0u8; 4]); BATCH];
    let mut cfg = ctx.cfg;
    cfg.refresh();
    let mut k = 0;
    for (i, buf) in frames[..n].iter_mut().enumerate() {
        replies[i] = None;
        let d = match packet::parse(&buf[..lens[i].min(buf.len())]) {
            Ok(d) => d,
            Err(reason) => {
                bump(&ctx.frames.drops[reason.index()], 1);
                continue;
            }
        };
        let payload = d.payload_range();
        if for_control(&buf[payload.clone()]) {
            hand_off(ctx, &d, buf);
            continue;
        }
        // The reply may use the frame up to the end of its chunk, but not beyond the MTU.
        let end = buf.len().min(d.ip_offset() + ctx.mtu).max(payload.end);
        msg_lens[k] = payload.len();
        if cfg.cookies.is_some() {
            clients[k] = d.repr(buf).src.ip();
        }
        which[k] = (i, Some(d));
        msgs[k] = &mut buf[payload.start..end];
        k += 1;
    }
    let clients = if cfg.cookies.is_some() { &clients[..k] } else { &[][..] };
    answer_batch(zones, &mut msgs[..k], &msg_lens[..k], clients, Transport::Udp, &cfg, &mut outcomes[..k], scratch);
    let mut sent = 0;
    if let Some(r) = &mut rrl {
        r.prepare(&outcomes[..k], |j| which[j].1.map(|d| d.src_ip(frames[which[j].0])));
    }
    for (j, o) in outcomes[..k].iter().enumerate() {
        let (i, Some(d)) = which[j] else {
            ctx.dns.record(o);
            continue;
        };
        ctx.dns.record(o);
        if let Outcome::Reply { len, .. } = *o {
            let len = match &mut rrl {
                Some(r) => match r.apply(j, o, &mut frames[i][d.payload_offset()..]) {
                    Some(len) => len,
                    None => continue,
                },
                None => len,
            };
            match packet::build_reply(&mut *frames[i], &d, len) {
                Ok(r) => {
                    replies[i] = Some(r);
                    sent += 1;
                }
                Err(_) => bump(&ctx.frames.build_errors, 1),
            }
        }
    }
    bump(&ctx.dns.sent, sent);
    if let Some(r) = rrl {
        r.publish(ctx.dns);
    }
}

/// Copies a message for the control side into the channel, or counts it dropped.
fn hand_off(ctx: &FrameCtx, d: &Datagram, frame: &[u8]) {
    let payload = &frame[d.payload_range()];
    if payload.len() > HANDOFF_MAX {
        bump(&ctx.frames.handoff_dropped, 1);
        return;
    }
    let repr = d.repr(frame);
    let Some(h) = Handoff::new(repr.src, repr.dst, payload) else {
        bump(&ctx.frames.handoff_dropped, 1);
        return;
    };
    match ctx.handoff.try_send(h) {
        Ok(()) => bump(&ctx.frames.handed_off, 1),
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => bump(&ctx.frames.handoff_dropped, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(flags: u8, qdcount: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        m[4..6].copy_from_slice(&qdcount.to_be_bytes());
        m.extend_from_slice(qname);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn what_goes_to_the_control_side() {
        let name = b"\x07example\x03com\x00";
        // QUERY for A, AXFR: the engine's; IXFR: the control side's.
        assert!(!for_control(&msg(0x00, 1, name, 1)));
        assert!(!for_control(&msg(0x00, 1, name, rtype::AXFR)));
        assert!(for_control(&msg(0x00, 1, name, rtype::IXFR)));
        assert!(for_control(&msg(0x01, 1, b"\x00", rtype::IXFR)), "RD set, root");
        // IXFR responses, two questions, compressed or cut names: the engine's (it drops or
        // refuses them).
        assert!(!for_control(&msg(0x80, 1, name, rtype::IXFR)));
        assert!(!for_control(&msg(0x00, 2, name, rtype::IXFR)));
        assert!(!for_control(&msg(0x00, 1, b"\xc0\x0c", rtype::IXFR)));
        let cut = msg(0x00, 1, name, rtype::IXFR);
        assert!(!for_control(&cut[..cut.len() - 3]));
        assert!(!for_control(&cut[..11]));
        // NOTIFY (opcode 4) and UPDATE (5), queries and responses.
        assert!(for_control(&msg(4 << 3, 1, name, 6)));
        assert!(for_control(&msg(0x80 | 4 << 3 | 4, 1, name, 6)));
        assert!(for_control(&msg(5 << 3, 1, name, 6)));
        // STATUS (2) and unassigned opcodes: the engine's (NOTIMP).
        assert!(!for_control(&msg(2 << 3, 1, name, 1)));
        assert!(!for_control(&msg(15 << 3, 1, name, 1)));
        // A query with an OPT: the engine's; with a TSIG (after the OPT): the control side's.
        let mut edns = msg(0x00, 1, name, 1);
        edns[11] = 1;
        edns.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(!for_control(&edns));
        let mut signed = edns.clone();
        signed[11] = 2;
        signed.extend_from_slice(b"\x03key\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x02\xaa\xbb");
        assert!(for_control(&signed));
        // A record count beyond the message: the engine's (FORMERR).
        let mut lying = edns.clone();
        lying[11] = 3;
        assert!(!for_control(&lying));
    }

    #[test]
    fn handoffs_are_bounded_by_the_buffer_pool() {
        // The only test here that takes hand-over buffers: the pool is the process's.
        let (c, s): (SocketAddr, SocketAddr) = ("127.0.0.1:5300".parse().unwrap(), "127.0.0.1:53".parse().unwrap());
        let big = vec![0x5a; HANDOFF_MAX];
        assert!(Handoff::new(c, s, &[0; HANDOFF_MAX + 1]).is_none(), "longer than any UDP payload");
        let mut held: Vec<Handoff> = (0..HANDOFF_BUFFERS).map(|_| Handoff::new(c, s, &big).unwrap()).collect();
        assert!(Handoff::new(c, s, b"one more").is_none(), "no buffer beyond the pool");
        assert_eq!(held[7].message(), &big[..]);
        held.truncate(HANDOFF_BUFFERS - 1);
        let mut h = Handoff::new(c, s, b"\x12\x34").expect("a dropped hand-over returns its buffer");
        let (buf, len) = h.buffer_mut();
        assert_eq!((&buf[..len], buf.len()), (&b"\x12\x34"[..], HANDOFF_MAX));
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("0").unwrap(), [0]);
        assert_eq!(parse_list("1,3, 5-7").unwrap(), [1, 3, 5, 6, 7]);
        for bad in ["", ",", "a", "3-1", "1-", "0-100000"] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_has_queues_and_an_mtu() {
        assert!(!rx_queues("lo").unwrap().is_empty());
        assert!(interface_mtu("lo").unwrap() >= 1280);
        assert!(rx_queues("nsxdp-none0").is_err());
    }
}
