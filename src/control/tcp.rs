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
//!
//! DNS over TLS (for zone transfers, XoT: RFC 9103) runs on the same loop: connections
//! accepted on a `tls-listen` address carry a rustls `ServerConnection` that their reads and
//! writes go through; everything else (framing, transfers, the limits) is the same, and
//! transfer requests carry the fact that they came over TLS to the ACL check. The handshake
//! must end within `message_timeout` of the accept (else the connection is closed, counted)
//! and agree on ALPN "dot". rustls holds at most `max_pending_output` octets of our
//! output ([`rustls::ConnectionCommon::set_buffer_limit`]), and a transfer makes its next
//! message only when rustls has written everything to the kernel, as over TCP.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::dispatch::{Answered, Kind};
use super::tls::ALPN_DOT;
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
    /// TLS on this connection (accepted on a TLS address); reads and writes go through it.
    tls: Option<Box<rustls::ServerConnection>>,
    /// Octets of `output` handed to `tls` that it has not yet written to the socket (at
    /// most; 0 once it has written everything): part of [`Conn::pending`].
    tls_held: usize,
    /// The TLS handshake ended with ALPN "dot".
    tls_ready: bool,
    /// The accept.
    opened: Instant,
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
            tls: None,
            tls_held: 0,
            tls_ready: false,
            opened: now,
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
        self.output.len() - self.written + self.tls_held
    }

    /// Still in the TLS handshake.
    fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
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
    /// Connections accepted on TLS addresses; of those, closed because the handshake was
    /// not over within `message_timeout`, and because it failed (a TLS error, no ALPN "dot").
    pub tls_accepted: AtomicU64,
    pub closed_slow_handshake: AtomicU64,
    pub tls_failed: AtomicU64,
}

impl std::fmt::Display for TcpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = |c: &AtomicU64| c.load(Relaxed);
        write!(
            f,
            "accepted={} evicted-table-full={} evicted-address-full={} closed-idle={} closed-not-reading={} \
             closed-slow-message={} paused-output={} paused-budget={} tls-accepted={} \
             closed-slow-handshake={} tls-failed={}",
            l(&self.accepted),
            l(&self.evicted_full),
            l(&self.evicted_per_address),
            l(&self.closed_idle),
            l(&self.closed_stalled),
            l(&self.closed_slow_message),
            l(&self.paused_output),
            l(&self.paused_budget),
            l(&self.tls_accepted),
            l(&self.closed_slow_handshake),
            l(&self.tls_failed)
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
    /// Per listener: its TLS configuration (a `tls-listen` address) or none.
    listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
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
            listeners.push(listener(&poll, *addr, i)?);
        }
        Ok(TcpServer {
            poll,
            listener_tls: vec![None; listeners.len()],
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

    /// Serves DNS over TLS (for zone transfers, RFC 9103) on `listen` as well.
    pub fn listen_tls(&mut self, listen: &[SocketAddr], config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        for addr in listen {
            let i = self.listeners.len();
            if i >= LISTENER_TOKENS {
                return Err(io::Error::other("too many listen addresses"));
            }
            self.listeners.push(listener(&self.poll, *addr, i)?);
            self.listener_tls.push(Some(config.clone()));
        }
        Ok(())
    }

    /// The TCP addresses (without TLS) listened on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(false)
    }

    /// The TLS addresses listened on.
    pub fn tls_local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(true)
    }

    fn addrs(&self, tls: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .zip(&self.listener_tls)
            .filter(|(_, t)| t.is_some() == tls)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
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
            let mut conn = Conn::new(stream, peer, Instant::now());
            if let Some(config) = &self.listener_tls[i] {
                bump(&self.tcp_stats.tls_accepted);
                match rustls::ServerConnection::new(config.clone()) {
                    Ok(mut t) => {
                        // What rustls may hold of our output (see `flush_tls`).
                        t.set_buffer_limit(Some(self.limits.max_pending_output.max(16 * 1024)));
                        conn.tls = Some(Box::new(t));
                    }
                    Err(e) => {
                        log::warn!("TLS connection from {peer} not started: {e}");
                        bump(&self.tcp_stats.tls_failed);
                        let _ = self.poll.registry().deregister(&mut conn.stream);
                        continue;
                    }
                }
            }
            *self.per_address.entry(key).or_insert(0) += 1;
            self.conns.insert(token, conn);
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
        } else if let Some(t) = c.tls.as_mut().filter(|t| !t.is_handshaking()) {
            // A TLS client that is done: close_notify, if the socket takes it now.
            t.send_close_notify();
            let _ = t.write_tls(&mut c.stream);
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
                let r = if c.tls.is_some() {
                    read_tls(c, Instant::now(), &self.tcp_stats)
                } else {
                    read(c, Instant::now())
                };
                match r {
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
        let kind = super::dispatch::kind(msg);
        if let (Kind::Notify, Some(n)) = (kind, self.notify.as_ref()) {
            if let (Some(n), _) = super::handoff::notify_in(msg, c.peer, n, &mut self.scratch) {
                c.push_message(&self.scratch[..n]);
            }
        } else if let Some(reply) = self.answer_message(c.peer, c.tls.is_some(), kind, &c.input[2..2 + len]) {
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

    /// The answer to one message of `kind` (not a NOTIFY for the control side): a reply in
    /// `scratch`, a transfer, or nothing.
    fn answer_message(&mut self, peer: SocketAddr, tls: bool, kind: Kind, msg: &[u8]) -> Option<Answer> {
        if let Kind::Transfer { .. } = kind {
            let cat = self.catalog.load();
            let transfers = self.transfers.as_ref();
            match transfer::request(msg, peer.ip(), tls, &cat, transfers, &mut self.scratch, unix_now()) {
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
        let engine = |buf: &mut [u8], len: usize| {
            let o = answer_from(&**cat, buf, len, Transport::Tcp, &cfg, client);
            stats.record(&o);
            match o {
                Outcome::Reply { len, .. } => Some(len),
                Outcome::Drop(_) => None,
            }
        };
        let room = self.scratch.len();
        match super::dispatch::answer_query(msg, keys, &mut self.scratch, room, unix_now(), engine) {
            Answered::Signed(n) | Answered::Plain(n) => Some(Answer::Message(n)),
            Answered::Nothing => None,
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
                let why = if c.handshaking() && now.duration_since(c.opened) > l.message_timeout {
                    Expiry::SlowHandshake
                } else if slow {
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
                Expiry::SlowHandshake => &s.closed_slow_handshake,
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
    SlowHandshake,
    Stalled,
    Idle,
}

enum Answer {
    Message(usize),
    Transfer(transfer::Stream),
}

/// A listening socket on `addr`, registered with `poll` under `token`.
fn listener(poll: &Poll, addr: SocketAddr, token: usize) -> io::Result<TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    let mut l = TcpListener::from_std(s.into());
    poll.registry().register(&mut l, Token(token), Interest::READABLE)?;
    Ok(l)
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

/// Reads once through TLS: the plaintext rustls holds first, else the socket's next
/// records, at most up to one whole message and a chunk in the input. Ok(octets of
/// plaintext taken, or of records read when they held none, as in the handshake: progress
/// either way); Err when the connection failed, broke the protocol or did not agree on
/// ALPN "dot" (counted).
fn read_tls(c: &mut Conn, now: Instant, stats: &TcpStats) -> Result<usize, ()> {
    let mut chunk = [0u8; READ_CHUNK];
    let room = (MAX_FRAME + READ_CHUNK).saturating_sub(c.input.len()).min(READ_CHUNK);
    let Conn { stream, tls: Some(tls), input, partial_since, eof, drained, tls_ready, peer, .. } = c else {
        return Err(());
    };
    let mut records = 0;
    loop {
        match tls.reader().read(&mut chunk[..room]) {
            // The client's close_notify.
            Ok(0) => {
                *eof = true;
                return Ok(records);
            }
            Ok(n) => {
                if input.is_empty() {
                    *partial_since = Some(now);
                }
                input.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket closed without a close_notify.
            Err(_) => {
                *eof = true;
                return Ok(records);
            }
        }
        if records > 0 {
            // Records without plaintext (the handshake): what they call for is written next.
            return Ok(records);
        }
        match tls.read_tls(stream) {
            Ok(0) => {
                *eof = true;
                return Ok(0);
            }
            Ok(n) => {
                records = n;
                if let Err(e) = tls.process_new_packets() {
                    log::debug!("TLS from {peer}: {e}");
                    bump(&stats.tls_failed);
                    // The alert, if the socket takes it.
                    let _ = tls.write_tls(stream);
                    return Err(());
                }
                if !*tls_ready && !tls.is_handshaking() {
                    if tls.alpn_protocol() != Some(ALPN_DOT) {
                        log::debug!("TLS from {peer}: no ALPN \"dot\" (RFC 9103 §7.1)");
                        bump(&stats.tls_failed);
                        return Err(());
                    }
                    *tls_ready = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *drained = true;
                return Ok(0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
}

/// Writes pending output (through TLS on a TLS connection). Ok(octets written); Err when
/// the connection failed.
fn flush(c: &mut Conn) -> Result<usize, ()> {
    if c.tls.is_some() {
        return flush_tls(c);
    }
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
                compact(&mut c.output, &mut c.written);
                return Ok(total);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    sent_all(&mut c.output, &mut c.written);
    Ok(total)
}

/// What went out is dropped from the front, so that the buffer holds about the unsent
/// part, not everything sent so far.
fn compact(output: &mut Vec<u8>, written: &mut usize) {
    if *written >= output.len() / 2 {
        output.drain(..*written);
        *written = 0;
    }
}

fn sent_all(output: &mut Vec<u8>, written: &mut usize) {
    output.clear();
    *written = 0;
    if output.capacity() > 4 * READ_CHUNK {
        *output = Vec::new();
    }
}

/// [`flush`] through TLS: what rustls holds goes to the socket first; only then is more of
/// the output handed to it (encrypted as it is taken, at most its buffer limit), so rustls
/// never holds more than that limit of ours.
fn flush_tls(c: &mut Conn) -> Result<usize, ()> {
    let Conn { stream, tls: Some(tls), output, written, tls_held, idle_since, .. } = c else { return Err(()) };
    let mut total = 0;
    loop {
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    total += n;
                    *idle_since = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    compact(output, written);
                    return Ok(total);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(()),
            }
        }
        *tls_held = 0;
        if *written == output.len() {
            break;
        }
        match tls.writer().write(&output[*written..]) {
            // Nothing taken: rustls is still in the handshake with its buffer full (we
            // answer nothing before the handshake is over, so this does not happen).
            Ok(0) => return Ok(total),
            Ok(n) => {
                *written += n;
                *tls_held += n;
            }
            Err(_) => return Err(()),
        }
    }
    sent_all(output, written);
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

    /// Over TLS, a transfer's output is bounded as over TCP: rustls never holds more than
    /// its limit, the output buffer stays near what is unsent, and a slow reader gets
    /// every octet (through the handshake, made by `read_tls` and `flush`).
    #[test]
    fn a_slow_tls_reader_gets_everything_and_rustls_holds_at_most_its_limit() {
        use crate::control::tls;
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["primary.test".to_string()]).unwrap().self_signed(&key).unwrap();
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, cert.pem()).unwrap();
        std::fs::write(&kp, key.serialize_pem()).unwrap();
        const LIMIT: usize = 32 * 1024;
        let (mut c, client) = pair();
        let mut server = rustls::ServerConnection::new(tls::server_config(&cp, &kp).unwrap()).unwrap();
        server.set_buffer_limit(Some(LIMIT));
        c.tls = Some(Box::new(server));
        let reader = std::thread::spawn(move || {
            let auth = crate::secondary::check::TlsAuth::default();
            let name = tls::server_name(&auth, "127.0.0.1".parse().unwrap()).unwrap();
            let conn = rustls::ClientConnection::new(tls::client_config(&auth).unwrap(), name).unwrap();
            let mut s = rustls::StreamOwned::new(conn, client);
            // The first read makes the handshake. Nothing is sent: what the server leaves
            // unread would make its close a reset, and the reader would lose the end.
            let (mut buf, mut total) = (vec![0u8; 64 * 1024], 0usize);
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return (total, s.conn.alpn_protocol().map(<[u8]>::to_vec)),
                    Ok(n) => total += n,
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        });
        let stats = TcpStats::default();
        let t0 = Instant::now();
        while !c.tls_ready && t0.elapsed() < Duration::from_secs(10) {
            c.drained = false;
            read_tls(&mut c, Instant::now(), &stats).unwrap();
            flush(&mut c).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(c.tls_ready, "the handshake ended with ALPN dot");
        // Messages made only when everything before went to the kernel, as `drive` does.
        let message = vec![0x5au8; 16 * 1024 + 2];
        let (mut offered, mut most) = (0usize, 0usize);
        while offered < 16 << 20 && t0.elapsed() < Duration::from_secs(30) {
            if c.pending() == 0 {
                c.output.extend_from_slice(&message);
                offered += message.len();
            }
            flush(&mut c).unwrap();
            assert!(c.tls_held <= LIMIT, "rustls held {} octets", c.tls_held);
            most = most.max(c.output.len());
            std::thread::sleep(Duration::from_micros(50));
        }
        while c.pending() > 0 && t0.elapsed() < Duration::from_secs(40) {
            flush(&mut c).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = c.tls.as_mut().unwrap();
        t.send_close_notify();
        flush(&mut c).unwrap();
        drop(c);
        let (received, alpn) = reader.join().unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"dot"[..]));
        assert_eq!(received, offered, "the reader got everything");
        assert!(offered >= 4 << 20, "only {offered} octets went through");
        assert!(most <= message.len(), "the output grew to {most} octets");
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
