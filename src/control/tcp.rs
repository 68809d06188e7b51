//! DNS over TCP (RFC 7766) on the control thread's mio loop: two-octet length framing, many
//! and pipelined queries per connection, partial reads and writes. AXFR and IXFR requests go
//! to [`super::transfer`]; their messages are made as the connection drains, and queries
//! pipelined behind a transfer wait for its end. Other queries that carry a TSIG get a signed
//! answer ([`transfer::signed_query`]).
//!
//! Every client is bounded (RFC 7766 §6.2, [`TcpLimits`]): its input holds at most one
//! message and a read's worth; nothing more is read from it while its unsent output is above
//! `max_pending_output` (its queries wait in the kernel, and TCP's flow control slows it
//! down), and its transfer makes a message only when the last one went to the kernel. All clients' unsent output
//! together is held under `output_budget`: above it no connection is read and no transfer
//! advanced until readers catch up. A message must be whole within `message_timeout` of its
//! first octet; a connection is idle from its last complete message or the last output it
//! took, and closed after `idle_timeout`. When the table or an address's share of it is
//! full, the longest idle connection (of that address) is closed for the newcomer.
//! Connections closed for misbehaving are reset, so the kernel frees what they did not read.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::transfer::{self, Transfers};
use crate::answer::{answer_from, Config, Outcome, Transport};
pub use crate::config::TcpLimits;
use crate::dataplane::{LoopStats, SharedCatalog};
use crate::xfr::tsig::Key;

/// The largest DNS message with its length prefix.
const MAX_FRAME: usize = 2 + 65535;
/// Steps (a read, a write, an answer, a transfer message) of one connection's turn; then
/// the others get theirs.
const TURN: usize = 64;
/// What one read takes at most.
const READ_CHUNK: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// A zone transfer being sent.
    transfer: Option<transfer::Stream>,
    /// Octets read and not yet answered: at most one whole message and a read's worth.
    input: Vec<u8>,
    /// Octets to send; `output[..written]` went out already.
    output: Vec<u8>,
    written: usize,
    /// The last complete message in, or output taken by the client (or the accept).
    idle_since: Instant,
    /// When the first octet of the incomplete message in `input` arrived.
    partial_since: Option<Instant>,
    /// The client closed its side: answer what came, send it, then close.
    eof: bool,
    /// The socket said WouldBlock to the last read (mio is edge-triggered: reading again
    /// waits for the next readable event).
    drained: bool,
    /// In the server's `ready` queue.
    queued: bool,
}

impl Conn {
    fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            transfer: None,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            idle_since: now,
            partial_since: None,
            eof: false,
            drained: false,
            queued: false,
        }
    }

    fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    fn push_message(&mut self, msg: &[u8]) {
        self.output.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.output.extend_from_slice(msg);
    }

    /// Whether `input` holds a whole message (or a zero length, which closes).
    fn has_message(&self) -> bool {
        self.input.len() >= 2 && self.input.len() >= 2 + usize::from(u16::from_be_bytes([self.input[0], self.input[1]]))
    }

    /// Whether the client waits on us: output unsent or a transfer running.
    fn busy(&self) -> bool {
        self.pending() > 0 || self.transfer.is_some()
    }
}

/// Why connections were closed or held back, since the start.
#[derive(Debug, Default)]
pub struct TcpStats {
    pub accepted: AtomicU64,
    /// Closed for a newcomer: the table was full / the address had its share.
    pub evicted_full: AtomicU64,
    pub evicted_per_address: AtomicU64,
    /// Closed after `idle_timeout` without a message, or without taking output.
    pub closed_idle: AtomicU64,
    pub closed_stalled: AtomicU64,
    /// Closed because a message did not arrive whole within `message_timeout`.
    pub closed_slow_message: AtomicU64,
    /// Times a connection stopped being read because its own output, or all output,
    /// was over its limit.
    pub paused_output: AtomicU64,
    pub paused_budget: AtomicU64,
}

impl std::fmt::Display for TcpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = |c: &AtomicU64| c.load(Relaxed);
        write!(
            f,
            "accepted={} evicted-table-full={} evicted-address-full={} closed-idle={} closed-not-reading={} \
             closed-slow-message={} paused-output={} paused-budget={}",
            l(&self.accepted),
            l(&self.evicted_full),
            l(&self.evicted_per_address),
            l(&self.closed_idle),
            l(&self.closed_stalled),
            l(&self.closed_slow_message),
            l(&self.paused_output),
            l(&self.paused_budget)
        )
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// The key of the per-address limit: the address, or an IPv6 address's /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// The TCP side of the control thread.
pub struct TcpServer {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: HashMap<usize, Conn>,
    /// Open connections per [`address_key`].
    per_address: HashMap<IpAddr, usize>,
    /// The unsent output of all connections.
    pending_total: usize,
    /// Connections held back by the output budget, to be served again when it allows.
    parked: Vec<usize>,
    /// Connections whose turn ended with work left, in the order they are served again.
    ready: std::collections::VecDeque<usize>,
    next_token: usize,
    catalog: SharedCatalog,
    cfg: Config,
    limits: TcpLimits,
    scratch: Vec<u8>,
    transfers: Option<Transfers>,
    notify: Option<super::handoff::ControlSide>,
    pub stats: Arc<LoopStats>,
    pub tcp_stats: Arc<TcpStats>,
    /// The most connections open at once since the heap was last given back ([`Self::tidy`]).
    crowd: usize,
}

/// Connections that, once they have come and gone, leave enough heap behind to give back.
const CROWD: usize = 64;

const LISTENER_TOKENS: usize = 1024;

impl TcpServer {
    pub fn bind(
        listen: &[SocketAddr],
        catalog: SharedCatalog,
        cfg: Config,
        limits: TcpLimits,
    ) -> io::Result<TcpServer> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        for (i, addr) in listen.iter().enumerate() {
            let s = socket2::Socket::new(socket2::Domain::for_address(*addr), socket2::Type::STREAM, None)?;
            if addr.is_ipv6() {
                s.set_only_v6(true)?;
            }
            s.set_reuse_address(true)?;
            s.set_nonblocking(true)?;
            s.bind(&(*addr).into())?;
            s.listen(1024)?;
            let mut l = TcpListener::from_std(s.into());
            poll.registry().register(&mut l, Token(i), Interest::READABLE)?;
            listeners.push(l);
        }
        Ok(TcpServer {
            poll,
            listeners,
            conns: HashMap::new(),
            per_address: HashMap::new(),
            pending_total: 0,
            parked: Vec::new(),
            ready: std::collections::VecDeque::new(),
            next_token: LISTENER_TOKENS,
            catalog,
            cfg,
            limits,
            scratch: vec![0u8; 65535],
            transfers: None,
            notify: None,
            stats: Arc::new(LoopStats::default()),
            tcp_stats: Arc::new(TcpStats::default()),
            crowd: 0,
        })
    }

    /// NOTIFY over TCP (Knot sends it so) goes where the UDP one goes.
    pub fn set_notify(&mut self, c: super::handoff::ControlSide) {
        self.notify = Some(c);
    }

    /// The transfers-out counters (with transfers configured).
    pub fn transfer_stats(&self) -> Option<std::sync::Arc<super::transfer::TransferStats>> {
        self.transfers.as_ref().map(|t| t.stats.clone())
    }

    /// Allows zone transfers, as the configuration's ACLs say (without this, every transfer
    /// request is refused).
    pub fn set_transfers(&mut self, t: Transfers) {
        self.transfers = Some(t);
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Runs until `shutdown` is set.
    pub fn run(&mut self, shutdown: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut last_expiry = Instant::now();
        while !shutdown.load(Relaxed) {
            // Connections with work left from their last turn: look for events without waiting.
            let wait = if self.ready.is_empty() { Duration::from_millis(100) } else { Duration::ZERO };
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t < LISTENER_TOKENS {
                    self.accept(t);
                } else {
                    self.service(t);
                }
            }
            for _ in 0..self.ready.len() {
                let Some(t) = self.ready.pop_front() else { break };
                if let Some(c) = self.conns.get_mut(&t) {
                    c.queued = false;
                    self.service(t);
                }
            }
            self.unpark();
            let now = Instant::now();
            if now.duration_since(last_expiry) >= Duration::from_millis(50) {
                self.expire(now);
                self.tidy();
                last_expiry = now;
            }
        }
        Ok(())
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (mut stream, peer) = match self.listeners[i].accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors or the like: the rest wait in the backlog.
                Err(_) => return,
            };
            bump(&self.tcp_stats.accepted);
            let key = address_key(peer.ip());
            if self.per_address.get(&key).copied().unwrap_or(0) >= self.limits.max_clients_per_address {
                if let Some(t) = self.longest_idle(Some(key)) {
                    bump(&self.tcp_stats.evicted_per_address);
                    self.close(t, true);
                }
            }
            if self.conns.len() >= self.limits.max_clients {
                if let Some(t) = self.longest_idle(None) {
                    bump(&self.tcp_stats.evicted_full);
                    self.close(t, true);
                }
            }
            let _ = stream.set_nodelay(true);
            let token = self.next_token;
            self.next_token += 1;
            // Edge-triggered, both ways for the connection's life: no re-registering.
            if self
                .poll
                .registry()
                .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            *self.per_address.entry(key).or_insert(0) += 1;
            self.conns.insert(token, Conn::new(stream, peer, Instant::now()));
        }
    }

    /// The connection (of the address `key`, or of any) that has waited longest for a
    /// message from its client while owing it nothing; failing that, the longest idle.
    fn longest_idle(&self, key: Option<IpAddr>) -> Option<usize> {
        self.conns
            .iter()
            .filter(|(_, c)| key.is_none_or(|k| address_key(c.peer.ip()) == k))
            .min_by_key(|(_, c)| (c.busy(), c.idle_since))
            .map(|(t, _)| *t)
    }

    /// Closes a connection; `reset` sends a RST, so that the kernel drops whatever the
    /// client did not read instead of keeping it until the client does.
    fn close(&mut self, token: usize, reset: bool) {
        if let Some(mut c) = self.conns.remove(&token) {
            self.pending_total -= c.pending();
            self.forget(&mut c, reset);
        }
    }

    /// Lets go of a connection out of the table (its output no longer in `pending_total`).
    fn forget(&mut self, c: &mut Conn, reset: bool) {
        let key = address_key(c.peer.ip());
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
        }
        if reset {
            let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
    }

    fn over_budget(&self) -> bool {
        self.pending_total >= self.limits.output_budget
    }

    /// Serves the connections the budget held back, while it allows.
    fn unpark(&mut self) {
        while !self.parked.is_empty() && !self.over_budget() {
            let t = self.parked.swap_remove(0);
            self.service(t);
        }
    }

    fn service(&mut self, token: usize) {
        let Some(mut c) = self.conns.remove(&token) else { return };
        c.drained = false;
        // While it is served, `pending_total` holds the others' output.
        self.pending_total -= c.pending();
        let keep = self.drive(&mut c, token);
        if !keep || (c.eof && !c.busy() && !c.has_message()) {
            self.forget(&mut c, !keep);
            return;
        }
        self.pending_total += c.pending();
        self.conns.insert(token, c);
    }

    /// Writes, makes transfer messages, answers and reads, for as long as one of them gets
    /// anywhere and the limits allow. False when the connection should close.
    fn drive(&mut self, c: &mut Conn, token: usize) -> bool {
        for _ in 0..TURN {
            let mut progress = false;
            match flush(c) {
                Ok(n) => progress |= n > 0,
                Err(()) => return false,
            }
            if c.pending() >= self.limits.max_pending_output {
                // The client is not reading: wait for it (the writable event).
                bump(&self.tcp_stats.paused_output);
                return true;
            }
            // Over the budget, a client still owed output gets nothing more; one that took
            // all it was sent may have its next message (the budget holds back those that
            // do not read, not those that do).
            if c.pending() > 0 && self.pending_total + c.pending() >= self.limits.output_budget {
                bump(&self.tcp_stats.paused_budget);
                if !self.parked.contains(&token) {
                    self.parked.push(token);
                }
                return true;
            }
            if c.transfer.is_some() {
                if c.pending() > 0 {
                    // The kernel's socket buffer (which keeps the connection busy) is full:
                    // the next message is made when this one has gone into it.
                    return true;
                }
                match self.pump(c) {
                    Ok(made) => progress |= made,
                    Err(()) => return false,
                }
            } else if c.has_message() {
                if !self.answer_one(c) {
                    return false;
                }
                progress = true;
            } else if !c.eof && !c.drained {
                match read(c, Instant::now()) {
                    Ok(n) => progress |= n > 0,
                    Err(()) => return false,
                }
            }
            if !progress {
                return true;
            }
        }
        // More to do: after the others have had their turn (no event will say so again).
        if !c.queued {
            c.queued = true;
            self.ready.push_back(token);
        }
        true
    }

    /// Answers the message at the front of the input (there is one). False when the
    /// connection should close.
    fn answer_one(&mut self, c: &mut Conn) -> bool {
        let len = usize::from(u16::from_be_bytes([c.input[0], c.input[1]]));
        if len == 0 {
            return false;
        }
        let now = Instant::now();
        c.idle_since = now;
        let msg = &c.input[2..2 + len];
        if let Some(n) = self.notify.as_ref().filter(|_| super::handoff::is_notify(msg)) {
            if let (Some(n), _) = super::handoff::notify_in(msg, c.peer, n, &mut self.scratch) {
                c.push_message(&self.scratch[..n]);
            }
        } else if let Some(reply) = self.answer_message(c.peer, &c.input[2..2 + len]) {
            match reply {
                Answer::Message(n) => c.push_message(&self.scratch[..n]),
                Answer::Transfer(s) => c.transfer = Some(s),
            }
        }
        c.input.drain(..2 + len);
        // What follows is the start of the next message, timed from now.
        c.partial_since = (!c.input.is_empty()).then_some(now);
        if c.input.is_empty() && c.input.capacity() > READ_CHUNK {
            c.input = Vec::new();
        }
        true
    }

    /// The answer to one message: a reply in `scratch`, a transfer, or nothing.
    fn answer_message(&mut self, peer: SocketAddr, msg: &[u8]) -> Option<Answer> {
        if crate::wire::message::transfer_query(msg) {
            let cat = self.catalog.load();
            match transfer::request(msg, peer.ip(), &cat, self.transfers.as_ref(), &mut self.scratch, unix_now()) {
                transfer::Reply::Single(n) => return Some(Answer::Message(n)),
                transfer::Reply::Stream(s) => return Some(Answer::Transfer(s)),
                transfer::Reply::Nothing => {}
            }
        }
        let cat = self.catalog.load();
        let mut cfg = self.cfg;
        cfg.refresh();
        let client = Some(peer.ip());
        // A signed query gets a signed answer (or its TSIG error).
        let transfers = self.transfers.as_ref();
        let keys = || transfers.map_or_else(Vec::new, |t| t.config.load().keys.iter().map(Key::from).collect());
        let stats = &self.stats;
        let signed = transfer::signed_query(msg, keys, &mut self.scratch, unix_now(), |buf, len| {
            let o = answer_from(&**cat, buf, len, Transport::Tcp, &cfg, client);
            stats.record(&o);
            match o {
                Outcome::Reply { len, .. } => Some(len),
                Outcome::Drop(_) => None,
            }
        });
        match signed {
            transfer::SignedQuery::Reply(n) => Some(Answer::Message(n)),
            transfer::SignedQuery::Nothing => None,
            transfer::SignedQuery::Unsigned => {
                let len = msg.len();
                self.scratch[..len].copy_from_slice(msg);
                let o = answer_from(&**cat, &mut self.scratch, len, Transport::Tcp, &cfg, client);
                self.stats.record(&o);
                match o {
                    Outcome::Reply { len, .. } => Some(Answer::Message(len)),
                    Outcome::Drop(_) => None,
                }
            }
        }
    }

    /// Makes the transfer's next message. Ok(false) when it ended (queries pipelined behind
    /// it are answered next); Err when the connection should close (a transfer that failed
    /// halfway cannot be resumed).
    fn pump(&mut self, c: &mut Conn) -> Result<bool, ()> {
        let Some(s) = c.transfer.as_mut() else { return Ok(false) };
        match s(&mut self.scratch, unix_now()) {
            Ok(Some(n)) => {
                c.push_message(&self.scratch[..n]);
                Ok(true)
            }
            Ok(None) => {
                c.transfer = None;
                Ok(true)
            }
            Err(e) => {
                log::warn!("transfer to {} failed: {e}", c.peer);
                Err(())
            }
        }
    }

    /// When a crowd of connections (an attack, say) has mostly gone, gives the heap they
    /// used back to the kernel: the allocator would keep it until this thread allocates
    /// again, which an idle server may not do for hours.
    fn tidy(&mut self) {
        self.crowd = self.crowd.max(self.conns.len());
        if self.crowd >= CROWD && self.conns.len() <= self.crowd / 4 {
            super::release_freed_memory();
            self.crowd = self.conns.len();
        }
    }

    /// Closes what outlived its time: an incomplete message past `message_timeout` (unless
    /// we were not reading it because the client was not reading us), a connection idle or
    /// not taking its output for `idle_timeout`.
    fn expire(&mut self, now: Instant) {
        let l = self.limits;
        let stale: Vec<(usize, Expiry)> = self
            .conns
            .iter()
            .filter_map(|(t, c)| {
                let slow = !c.busy() && c.partial_since.is_some_and(|p| now.duration_since(p) > l.message_timeout);
                let why = if slow {
                    Expiry::SlowMessage
                } else if now.duration_since(c.idle_since) <= l.idle_timeout {
                    return None;
                } else if c.busy() {
                    Expiry::Stalled
                } else {
                    Expiry::Idle
                };
                Some((*t, why))
            })
            .collect();
        for (t, why) in stale {
            let s = &self.tcp_stats;
            bump(match why {
                Expiry::SlowMessage => &s.closed_slow_message,
                Expiry::Stalled => &s.closed_stalled,
                Expiry::Idle => &s.closed_idle,
            });
            // An idle client that was answered gets a plain close; the others a reset.
            self.close(t, why != Expiry::Idle);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expiry {
    SlowMessage,
    Stalled,
    Idle,
}

enum Answer {
    Message(usize),
    Transfer(transfer::Stream),
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads once, at most up to one whole message and a chunk in the input. Ok(octets read);
/// Err when the connection failed.
fn read(c: &mut Conn, now: Instant) -> Result<usize, ()> {
    let mut chunk = [0u8; READ_CHUNK];
    let room = (MAX_FRAME + READ_CHUNK).saturating_sub(c.input.len()).min(READ_CHUNK);
    loop {
        match c.stream.read(&mut chunk[..room]) {
            Ok(0) => {
                c.eof = true;
                return Ok(0);
            }
            Ok(n) => {
                if c.input.is_empty() {
                    c.partial_since = Some(now);
                }
                c.input.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.drained = true;
                return Ok(0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
}

/// Writes pending output. Ok(octets written); Err when the connection failed.
fn flush(c: &mut Conn) -> Result<usize, ()> {
    let mut total = 0;
    while c.written < c.output.len() {
        match c.stream.write(&c.output[c.written..]) {
            Ok(0) => return Err(()),
            Ok(n) => {
                c.written += n;
                total += n;
                c.idle_since = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // What went out is dropped from the front, so that the buffer holds about
                // the unsent part, not everything sent so far.
                if c.written >= c.output.len() / 2 {
                    c.output.drain(..c.written);
                    c.written = 0;
                }
                return Ok(total);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    c.output.clear();
    c.written = 0;
    if c.output.capacity() > 4 * READ_CHUNK {
        c.output = Vec::new();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: our side (non-blocking, as the server has it) and the client's.
    fn pair() -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (Conn::new(TcpStream::from_std(server), peer, Instant::now()), client)
    }

    /// A reader slower than we write: `flush` keeps the buffer near what is unsent instead
    /// of everything sent so far.
    #[test]
    fn a_slow_reader_does_not_make_the_output_grow() {
        let (mut c, mut client) = pair();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            loop {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        // Top the unsent part up to a mark, as the transfer pump does, then flush: 32 MiB in
        // all, at most 20 s.
        const MARK: usize = 64 * 1024;
        let chunk = vec![0x5au8; 16 * 1024];
        let (mut offered, mut most) = (0usize, 0usize);
        let t0 = Instant::now();
        while offered < 32 << 20 && t0.elapsed() < Duration::from_secs(20) {
            while c.pending() < MARK {
                c.output.extend_from_slice(&chunk);
                offered += chunk.len();
            }
            flush(&mut c).unwrap();
            most = most.max(c.output.len());
            std::thread::sleep(Duration::from_micros(200));
        }
        while c.pending() > 0 && t0.elapsed() < Duration::from_secs(30) {
            flush(&mut c).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(c);
        let received = reader.join().unwrap();
        assert_eq!(received, offered, "the reader got everything");
        assert!(offered >= 8 << 20, "only {offered} octets went through");
        assert!(most <= 2 * (MARK + chunk.len()), "the output grew to {most} octets");
    }

    /// A client that sends without end: the input never holds more than one message and a
    /// read, whatever is waiting in the socket.
    #[test]
    fn reads_stop_at_one_message_and_a_chunk() {
        let (mut c, mut client) = pair();
        // A frame that claims 65535 octets, and more behind it.
        let mut data = vec![0xffu8, 0xff];
        data.resize(300_000, 7);
        let writer = std::thread::spawn(move || {
            let _ = client.write_all(&data);
            client
        });
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            c.drained = false;
            read(&mut c, Instant::now()).unwrap();
            assert!(c.input.len() <= MAX_FRAME + READ_CHUNK, "{}", c.input.len());
            if c.input.len() >= MAX_FRAME {
                break;
            }
        }
        assert!(c.has_message(), "a whole message came in ({} octets)", c.input.len());
        assert!(c.partial_since.is_some());
        drop(c);
        drop(writer.join().unwrap());
    }

    #[test]
    fn address_keys() {
        let k = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
    }
}
