//! DNS over TCP (RFC 7766) on the control thread's mio loop: two-octet length framing, many
//! and pipelined queries per connection, partial reads and writes, an idle timeout and a
//! connection limit. AXFR and IXFR requests go to [`super::transfer`]; their messages are made
//! as the connection drains, and queries pipelined behind a transfer wait for its end. Other
//! queries that carry a TSIG get a signed answer ([`transfer::signed_query`]).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::transfer::{self, Transfers};
use crate::answer::{answer, Config, Outcome, Transport};
use crate::dataplane::{LoopStats, SharedCatalog};
use crate::wire::rdata::rtype;
use crate::xfr::tsig::Key;

/// TCP settings.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// Close a connection with nothing to do for this long (Knot's default is 10 s).
    pub idle_timeout: Duration,
    /// Connections open at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Stop reading from a client that does not read its responses past this many bytes.
    pub max_pending_output: usize,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig { idle_timeout: Duration::from_secs(10), max_connections: 256, max_pending_output: 1 << 20 }
    }
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// A zone transfer being sent.
    transfer: Option<transfer::Stream>,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    last_active: Instant,
    interest: Interest,
    /// The client closed its side: answer what came, send it, then close.
    eof: bool,
}

/// The TCP side of the control thread.
pub struct TcpServer {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    catalog: SharedCatalog,
    cfg: Config,
    tcp: TcpConfig,
    scratch: Vec<u8>,
    transfers: Option<Transfers>,
    notify: Option<super::handoff::ControlSide>,
    pub stats: Arc<LoopStats>,
}

/// Output kept ready while a transfer is sent: more is made when less is waiting.
const TRANSFER_LOW_WATER: usize = 256 * 1024;

const LISTENER_TOKENS: usize = 1024;

impl TcpServer {
    pub fn bind(listen: &[SocketAddr], catalog: SharedCatalog, cfg: Config, tcp: TcpConfig) -> io::Result<TcpServer> {
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
            next_token: LISTENER_TOKENS,
            catalog,
            cfg,
            tcp,
            scratch: vec![0u8; 65535],
            transfers: None,
            notify: None,
            stats: Arc::new(LoopStats::default()),
        })
    }

    /// Allows zone transfers, as the configuration's ACLs say (without this, every transfer
    /// request is refused).
    /// NOTIFY over TCP (Knot sends it so) goes where the UDP one goes.
    pub fn set_notify(&mut self, c: super::handoff::ControlSide) {
        self.notify = Some(c);
    }

    /// The transfers-out counters (with transfers configured).
    pub fn transfer_stats(&self) -> Option<std::sync::Arc<super::transfer::TransferStats>> {
        self.transfers.as_ref().map(|t| t.stats.clone())
    }

    pub fn set_transfers(&mut self, t: Transfers) {
        self.transfers = Some(t);
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Runs until `shutdown` is set.
    pub fn run(&mut self, shutdown: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !shutdown.load(Ordering::Relaxed) {
            match self.poll.poll(&mut events, Some(Duration::from_millis(200))) {
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
            self.expire_idle();
        }
        Ok(())
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (mut stream, peer) = match self.listeners[i].accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            if self.conns.len() >= self.tcp.max_connections {
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let token = self.next_token;
            self.next_token += 1;
            if self.poll.registry().register(&mut stream, Token(token), Interest::READABLE).is_err() {
                continue;
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    transfer: None,
                    input: Vec::with_capacity(512),
                    output: Vec::new(),
                    written: 0,
                    last_active: Instant::now(),
                    interest: Interest::READABLE,
                    eof: false,
                },
            );
        }
    }

    fn service(&mut self, token: usize) {
        let Some(mut c) = self.conns.remove(&token) else { return };
        let mut keep = self.read_and_answer(&mut c) && self.pump(&mut c) && flush(&mut c);
        // A transfer that drained its output makes more; when it ends, what was pipelined
        // behind it is answered.
        while keep && c.transfer.is_some() && c.output.is_empty() {
            keep = self.pump(&mut c) && flush(&mut c);
        }
        if keep && c.transfer.is_none() && c.input.len() >= 2 {
            keep = self.answer_input(&mut c) && self.pump(&mut c) && flush(&mut c);
        }
        if !keep || (c.eof && c.output.is_empty() && c.transfer.is_none()) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            return;
        }
        // Read while the client keeps up; write when output is waiting.
        let mut want = Interest::READABLE;
        if c.transfer.is_some() {
            want = Interest::WRITABLE;
        } else if c.output.len() > c.written {
            want = if c.eof || c.output.len() - c.written > self.tcp.max_pending_output {
                Interest::WRITABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
        }
        if want != c.interest && self.poll.registry().reregister(&mut c.stream, Token(token), want).is_ok() {
            c.interest = want;
        }
        self.conns.insert(token, c);
    }

    /// Reads what is there and answers every complete message. False when the connection
    /// should close.
    fn read_and_answer(&mut self, c: &mut Conn) -> bool {
        if c.interest == Interest::WRITABLE {
            return true;
        }
        let mut chunk = [0u8; 16384];
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    c.eof = true;
                    break;
                }
                Ok(n) => {
                    c.input.extend_from_slice(&chunk[..n]);
                    c.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if c.transfer.is_some() {
            return true;
        }
        self.answer_input(c)
    }

    /// Answers the complete messages in the input, up to a transfer request. False when the
    /// connection should close.
    fn answer_input(&mut self, c: &mut Conn) -> bool {
        let mut pos = 0;
        while c.input.len() - pos >= 2 && c.transfer.is_none() {
            let len = u16::from_be_bytes([c.input[pos], c.input[pos + 1]]) as usize;
            if len == 0 {
                return false;
            }
            if c.input.len() - pos - 2 < len {
                break;
            }
            let msg = &c.input[pos + 2..pos + 2 + len];
            if let Some(n) = self.notify.as_ref().filter(|_| super::handoff::is_notify(msg)) {
                if let (Some(n), _) = super::handoff::notify_in(msg, c.peer, n, &mut self.scratch) {
                    c.output.extend_from_slice(&(n as u16).to_be_bytes());
                    c.output.extend_from_slice(&self.scratch[..n]);
                }
                pos += 2 + len;
                continue;
            }
            if is_transfer(msg) {
                let cat = self.catalog.load();
                let now = unix_now();
                match transfer::request(msg, c.peer.ip(), &cat, self.transfers.as_ref(), &mut self.scratch, now) {
                    transfer::Reply::Single(n) => {
                        c.output.extend_from_slice(&(n as u16).to_be_bytes());
                        c.output.extend_from_slice(&self.scratch[..n]);
                        pos += 2 + len;
                        continue;
                    }
                    transfer::Reply::Stream(s) => {
                        c.transfer = Some(s);
                        pos += 2 + len;
                        continue;
                    }
                    transfer::Reply::Nothing => {}
                }
            }
            let msg = &c.input[pos + 2..pos + 2 + len];
            let cat = self.catalog.load();
            // A signed query gets a signed answer (or its TSIG error).
            let transfers = self.transfers.as_ref();
            let keys = || transfers.map_or_else(Vec::new, |t| t.config.load().keys.iter().map(Key::from).collect());
            let (stats, cfg) = (&self.stats, &self.cfg);
            let signed = transfer::signed_query(msg, keys, &mut self.scratch, unix_now(), |buf, len| {
                let o = answer(&**cat, buf, len, Transport::Tcp, cfg);
                stats.record(&o);
                match o {
                    Outcome::Reply { len, .. } => Some(len),
                    Outcome::Drop(_) => None,
                }
            });
            let reply = match signed {
                transfer::SignedQuery::Reply(n) => Some(n),
                transfer::SignedQuery::Nothing => None,
                transfer::SignedQuery::Unsigned => {
                    self.scratch[..len].copy_from_slice(msg);
                    let o = answer(&**cat, &mut self.scratch, len, Transport::Tcp, &self.cfg);
                    self.stats.record(&o);
                    match o {
                        Outcome::Reply { len, .. } => Some(len),
                        Outcome::Drop(_) => None,
                    }
                }
            };
            if let Some(n) = reply {
                c.output.extend_from_slice(&(n as u16).to_be_bytes());
                c.output.extend_from_slice(&self.scratch[..n]);
            }
            pos += 2 + len;
        }
        c.input.drain(..pos);
        true
    }

    /// Makes transfer messages until enough output waits or the transfer ends. False when
    /// the connection should close (a transfer that failed halfway cannot be resumed).
    fn pump(&mut self, c: &mut Conn) -> bool {
        let now = unix_now();
        while let Some(s) = c.transfer.as_mut() {
            if c.output.len() - c.written >= TRANSFER_LOW_WATER {
                return true;
            }
            match s(&mut self.scratch, now) {
                Ok(Some(n)) => {
                    c.output.extend_from_slice(&(n as u16).to_be_bytes());
                    c.output.extend_from_slice(&self.scratch[..n]);
                    c.last_active = Instant::now();
                }
                Ok(None) => c.transfer = None,
                Err(e) => {
                    eprintln!("nsxdp: transfer to {} failed: {e}", c.peer);
                    return false;
                }
            }
        }
        true
    }

    fn expire_idle(&mut self) {
        let now = Instant::now();
        let idle = self.tcp.idle_timeout;
        let stale: Vec<usize> =
            self.conns.iter().filter(|(_, c)| now.duration_since(c.last_active) > idle).map(|(t, _)| *t).collect();
        for t in stale {
            if let Some(mut c) = self.conns.remove(&t) {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Whether a message is a QUERY for AXFR or IXFR (from its header and question; anything
/// malformed is left to the answer engine).
fn is_transfer(msg: &[u8]) -> bool {
    if msg.len() < 12 || (msg[2] >> 3) & 0xF != 0 || msg[2] & 0x80 != 0 {
        return false;
    }
    let mut pos = 12;
    while let Some(&l) = msg.get(pos) {
        if l == 0 {
            let t = msg.get(pos + 1..pos + 3).map(|b| u16::from_be_bytes([b[0], b[1]]));
            return matches!(t, Some(rtype::AXFR) | Some(rtype::IXFR));
        }
        if l & 0xC0 != 0 {
            return false;
        }
        pos += 1 + l as usize;
    }
    false
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes pending output. False when the connection failed.
fn flush(c: &mut Conn) -> bool {
    while c.written < c.output.len() {
        match c.stream.write(&c.output[c.written..]) {
            Ok(0) => return false,
            Ok(n) => {
                c.written += n;
                c.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // What went out is dropped from the front, so that a transfer to a slow
                // reader keeps at most its low-water mark and a message in memory instead
                // of everything sent so far.
                if c.written >= TRANSFER_LOW_WATER {
                    c.output.drain(..c.written);
                    c.written = 0;
                }
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    c.output.clear();
    c.written = 0;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transfer to a reader slower than we write: `flush` keeps the output near the
    /// low-water mark instead of everything sent so far.
    #[test]
    fn a_slow_reader_does_not_make_the_output_grow() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
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
        let mut c = Conn {
            stream: TcpStream::from_std(server),
            peer,
            transfer: None,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            last_active: Instant::now(),
            interest: Interest::READABLE,
            eof: false,
        };
        // Top the unsent part up to the low-water mark, as `pump` does, then flush: 32 MiB
        // in all, at most 20 s.
        let chunk = vec![0x5au8; 16 * 1024];
        let (mut offered, mut most) = (0usize, 0usize);
        let t0 = Instant::now();
        while offered < 32 << 20 && t0.elapsed() < Duration::from_secs(20) {
            while c.output.len() - c.written < TRANSFER_LOW_WATER {
                c.output.extend_from_slice(&chunk);
                offered += chunk.len();
            }
            assert!(flush(&mut c));
            most = most.max(c.output.len());
            std::thread::sleep(Duration::from_micros(200));
        }
        while c.written < c.output.len() && t0.elapsed() < Duration::from_secs(30) {
            assert!(flush(&mut c));
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(c);
        let received = reader.join().unwrap();
        assert_eq!(received, offered, "the reader got everything");
        assert!(offered >= 8 << 20, "only {offered} octets went through");
        assert!(most <= 3 * TRANSFER_LOW_WATER, "the output grew to {most} octets");
    }
}
