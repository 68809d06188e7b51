//! The kernel-socket backend: per core, one UDP socket per listen address (SO_REUSEPORT
//! spreads flows over the cores), batches in with recvmmsg and out with sendmmsg.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::xdp::{for_control, Handoff};
use super::{new_histogram, LoopRrl, LoopStats, ServiceHistogram, SharedCatalog};
use crate::answer::{answer_batch, BatchScratch, Config, DropReason, Outcome, Transport};
use crate::rrl;

/// Messages per receive/send call.
pub const BATCH: usize = 32;
const _: () = assert!(BATCH <= super::RRL_BATCH, "the rate limiter takes a whole batch");
/// Room per message: any UDP payload (a query of up to 65,535 octets with large EDNS
/// options is answered, not cut short into a FORMERR), and its in-place response (at most
/// the EDNS size we offer). Three cache lines more than 64 KiB, so that the slots of a
/// batch do not all start on the same cache sets.
pub const SLOT: usize = 65536 + 192;
/// How often an idle loop looks at the shutdown flag.
const POLL_MS: i32 = 200;

/// Binds one UDP socket with SO_REUSEPORT.
pub fn bind_udp(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.set_recv_buffer_size(4 << 20).ok();
    s.bind(&addr.into())?;
    Ok(s)
}

/// A running set of UDP loops.
pub struct UdpLoops {
    pub stats: Vec<Arc<LoopStats>>,
    pub handles: Vec<JoinHandle<ServiceHistogram>>,
    /// The addresses actually bound (port 0 resolved).
    pub bound: Vec<SocketAddr>,
    /// A second handle (dup) of the first loop's socket on each address, in the order of
    /// `bound`: for sending from elsewhere (the control side) with the same source address.
    /// Never read from: what arrives goes to the loops.
    pub senders: Vec<Socket>,
}

/// Starts `threads` loops, each with its own socket on every address in `listen`, pinned
/// to `cores` in turn (if given). Messages for the control side (NOTIFY, UPDATE, IXFR
/// over UDP) go to `handoff` when given (dropped and counted when it is full); without
/// one the engine answers them (NOTIMP). With `rrl`, each loop limits its responses with a
/// table of its own.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    listen: &[SocketAddr],
    threads: usize,
    cores: &[core_affinity::CoreId],
    catalog: SharedCatalog,
    cfg: Config,
    shutdown: Arc<AtomicBool>,
    handoff: Option<crossbeam_channel::Sender<Handoff>>,
    rrl: Option<&rrl::Settings>,
) -> io::Result<UdpLoops> {
    // Resolve port 0 once, so that every thread's socket joins the same reuseport group.
    let mut bound = Vec::new();
    let mut first_sockets = Vec::new();
    for addr in listen {
        let s = bind_udp(*addr)?;
        let local = s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
        bound.push(local);
        first_sockets.push(s);
    }
    let senders = first_sockets.iter().map(Socket::try_clone).collect::<io::Result<Vec<_>>>()?;
    let mut loops = UdpLoops { stats: Vec::new(), handles: Vec::new(), bound: bound.clone(), senders };
    let mut first = Some(first_sockets);
    for t in 0..threads.max(1) {
        let sockets = match first.take() {
            Some(s) => s,
            None => bound.iter().map(|a| bind_udp(*a)).collect::<io::Result<Vec<_>>>()?,
        };
        let stats = Arc::new(LoopStats::default());
        loops.stats.push(stats.clone());
        let core = cores.get(t % cores.len().max(1)).copied().filter(|_| !cores.is_empty());
        let catalog = catalog.clone();
        let shutdown = shutdown.clone();
        let handoff = handoff.clone().map(|tx| (tx, bound.clone()));
        let rrl = rrl.cloned();
        let h = std::thread::Builder::new().name(format!("nsxdp-udp{t}")).spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            // The table is allocated on the loop's own core (its pages local to it).
            let rrl = rrl.as_ref().map(LoopRrl::new);
            run(sockets, catalog, cfg, stats, shutdown, handoff, rrl)
        })?;
        loops.handles.push(h);
    }
    Ok(loops)
}

/// Receive buffers and headers of one socket batch, reused for the life of the loop.
struct Batch {
    bufs: Vec<[u8; SLOT]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    out_iovs: Vec<libc::iovec>,
    out_hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero
        // bytes are a valid value.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let mut b = Box::new(Batch {
            bufs: vec![[0u8; SLOT]; BATCH],
            addrs: vec![zero_addr; BATCH],
            iovs: Vec::with_capacity(BATCH),
            hdrs: vec![zero_hdr; BATCH],
            out_iovs: Vec::with_capacity(BATCH),
            out_hdrs: vec![zero_hdr; BATCH],
        });
        for i in 0..BATCH {
            let base = b.bufs[i].as_mut_ptr().cast();
            b.iovs.push(libc::iovec { iov_base: base, iov_len: SLOT });
            b.out_iovs.push(libc::iovec { iov_base: base, iov_len: 0 });
        }
        b
    }

    /// Points the receive headers at the buffers and address slots again (the kernel
    /// rewrites lengths on every call).
    fn arm_receive(&mut self) {
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
    }
}

/// The control side's channel and the local address of each socket (in order).
type HandoffTo = (crossbeam_channel::Sender<Handoff>, Vec<SocketAddr>);

fn run(
    sockets: Vec<Socket>,
    catalog: SharedCatalog,
    cfg: Config,
    stats: Arc<LoopStats>,
    shutdown: Arc<AtomicBool>,
    handoff: Option<HandoffTo>,
    mut rrl: Option<LoopRrl>,
) -> ServiceHistogram {
    let mut hist = new_histogram();
    let mut batch = Batch::new();
    let mut scratch = BatchScratch::new();
    let mut lens = [0usize; BATCH];
    let mut outcomes = [Outcome::Drop(DropReason::Short); BATCH];
    // With cookies on, each query's source address goes to the engine, and the time.
    let mut cfg = cfg;
    let mut clients = [std::net::IpAddr::from([0u8; 4]); BATCH];
    let mut pfds: Vec<libc::pollfd> =
        sockets.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    while !shutdown.load(Ordering::Relaxed) {
        // SAFETY: `pfds` is a valid, exclusively borrowed array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, POLL_MS) };
        if n <= 0 {
            continue;
        }
        for (sock_index, pfd) in pfds.iter().enumerate() {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            // Drain the socket, a batch at a time.
            loop {
                let got = receive(pfd.fd, &mut batch);
                if got == 0 {
                    break;
                }
                stats.batches.store(stats.batches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                let cat = catalog.load();
                for (l, h) in lens.iter_mut().zip(&batch.hdrs[..got]) {
                    *l = h.msg_len as usize;
                }
                // Messages for the control side leave the batch (length 0: the engine skips
                // them, and they are not counted as answered).
                let mut handed = 0u64;
                if let Some((tx, locals)) = &handoff {
                    for (i, len) in lens[..got].iter_mut().enumerate() {
                        let msg = &batch.bufs[i][..*len];
                        if !for_control(msg) {
                            continue;
                        }
                        handed |= 1 << i;
                        let client = sockaddr(&batch.addrs[i], batch.hdrs[i].msg_hdr.msg_namelen);
                        let h = client.and_then(|c| Handoff::new(c, locals[sock_index], msg));
                        if h.is_none_or(|h| tx.try_send(h).is_err()) {
                            let d = &stats.handoff_dropped;
                            d.store(d.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                        }
                        *len = 0;
                    }
                }
                let clients = match cfg.cookies {
                    Some(_) => {
                        cfg.refresh();
                        for (i, c) in clients[..got].iter_mut().enumerate() {
                            let from = sockaddr(&batch.addrs[i], batch.hdrs[i].msg_hdr.msg_namelen);
                            *c = from.map_or(std::net::IpAddr::from([0u8; 4]), |a| a.ip());
                        }
                        &clients[..got]
                    }
                    None => &[][..],
                };
                let t0 = Instant::now();
                answer_batch(
                    &**cat,
                    &mut batch.bufs[..got],
                    &lens[..got],
                    clients,
                    Transport::Udp,
                    &cfg,
                    &mut outcomes,
                    &mut scratch,
                );
                // Service time per query: the batch's, shared out.
                let each = (t0.elapsed().as_nanos() as u64 / got as u64).max(1);
                let _ = hist.record_n(each, got as u64);
                stats.service.record_n(each, got as u64);
                let mut out = 0;
                if let Some(r) = &mut rrl {
                    let (addrs, hdrs) = (&batch.addrs, &batch.hdrs);
                    r.prepare(&outcomes[..got], |i| sockaddr(&addrs[i], hdrs[i].msg_hdr.msg_namelen).map(|a| a.ip()));
                }
                for (i, o) in outcomes[..got].iter().enumerate() {
                    if handed & (1 << i) != 0 {
                        continue;
                    }
                    stats.record(o);
                    if let Outcome::Reply { len, .. } = *o {
                        let len = match &mut rrl {
                            Some(r) => match r.apply(i, o, &mut batch.bufs[i]) {
                                Some(len) => len,
                                None => continue,
                            },
                            None => len,
                        };
                        batch.out_iovs[out].iov_base = batch.bufs[i].as_mut_ptr().cast();
                        batch.out_iovs[out].iov_len = len;
                        let h = &mut batch.out_hdrs[out].msg_hdr;
                        h.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_storage).cast();
                        h.msg_namelen = batch.hdrs[i].msg_hdr.msg_namelen;
                        h.msg_iov = &mut batch.out_iovs[out];
                        h.msg_iovlen = 1;
                        out += 1;
                    }
                }
                drop(cat);
                if let Some(r) = &mut rrl {
                    r.publish(&stats);
                    r.log();
                }
                let sent = send(pfd.fd, &mut batch, out);
                stats.sent.store(stats.sent.load(Ordering::Relaxed) + sent as u64, Ordering::Relaxed);
                if sent < out {
                    let e = &stats.send_errors;
                    e.store(e.load(Ordering::Relaxed) + (out - sent) as u64, Ordering::Relaxed);
                }
                if got < BATCH {
                    break;
                }
            }
        }
    }
    hist
}

/// The address a message came from.
fn sockaddr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET, length checked);
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6 (family AF_INET6, length checked).
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One recvmmsg call without blocking; the number of messages received.
fn receive(fd: RawFd, b: &mut Batch) -> usize {
    b.arm_receive();
    // SAFETY: every header points at a live buffer of SLOT bytes and a sockaddr_storage
    // owned by `b`, which outlives the call; the count matches the array length.
    let n = unsafe { libc::recvmmsg(fd, b.hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
    n.max(0) as usize
}

/// sendmmsg until every one of the `count` prepared messages is sent or has failed; the
/// number sent.
fn send(fd: RawFd, b: &mut Batch, count: usize) -> usize {
    let mut done = 0;
    let mut failed = 0;
    while done < count {
        // SAFETY: headers `done..count` point at buffers, iovecs and addresses owned by `b`,
        // set up by the caller for this batch.
        let n = unsafe { libc::sendmmsg(fd, b.out_hdrs[done..].as_mut_ptr(), (count - done) as u32, 0) };
        if n <= 0 {
            // Skip the message that failed (e.g. an unreachable address) and go on.
            done += 1;
            failed += 1;
            continue;
        }
        done += n as usize;
    }
    count - failed
}
