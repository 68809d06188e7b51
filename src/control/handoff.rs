//! Messages the run loops (AF_XDP or kernel UDP) hand to the control side: NOTIFY, UPDATE
//! and IXFR over UDP (`dataplane::xdp::Handoff`), answered here through a kernel UDP socket
//! bound to the address they were sent to.
//!
//! - NOTIFY (RFC 1996) for one of our secondary zones: TSIG verified, the zone's ACL
//!   asked (action `notify`), answered with AA and the question echoed, and passed to the
//!   zone manager as an [`Event::Notify`], which starts a check (several coalesce). A
//!   zone that is not one of our secondaries gets NOTAUTH, an ACL that says no REFUSED.
//! - IXFR over UDP (RFC 1995 §2), when transfers are configured: `transfer::udp_ixfr`, the
//!   same checks as over TCP; the answer if it fits in one datagram, else our SOA alone.
//! - A query signed with TSIG: verified with the configured keys and answered by the engine,
//!   the answer signed (`transfer::signed_query`); a bad TSIG gets its error (NOTAUTH), and a
//!   key we do not know NOTAUTH/BADKEY also when the server runs without a configuration
//!   (`control` is None: no keys).
//! - Everything else gets the engine's answer (NOTIMP for UPDATE).
//!
//! The loops never wait for this thread: the channel is bounded and they drop (and count)
//! what does not fit.
//!
//! This thread polls the channel (`try_recv`, then a short sleep when it is empty) instead
//! of blocking on it: a blocked receiver would make every `try_send` in a run loop take the
//! channel's waker lock and wake this thread with a syscall.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use socket2::Socket;

use super::ctl::Event;
use super::dispatch::{Answered, Kind};
use crate::answer::{answer, Config, Outcome, Transport};
use crate::config::{Action, Role};
use crate::dataplane::xdp::Handoff;
use crate::dataplane::SharedCatalog;
use crate::xfr::tsig::{self, Key, Signer};

/// What NOTIFY in needs: the configuration (zones, ACLs, keys) and the zone manager.
#[derive(Clone)]
pub struct ControlSide {
    /// The running configuration, replaced by reloads.
    pub config: crate::config::SharedConfig,
    pub events: std::sync::mpsc::Sender<Event>,
    /// For IXFR over UDP (the zones' journals and ACLs).
    pub transfers: Option<super::transfer::Transfers>,
}

impl ControlSide {
    pub fn new(config: impl Into<crate::config::SharedConfig>, events: std::sync::mpsc::Sender<Event>) -> ControlSide {
        ControlSide { config: config.into(), events, transfers: None }
    }
}

/// How long the thread waits for a message before it looks at the shutdown flag again. A
/// message wakes it at once (a loop that hands one over to the waiting thread pays one
/// futex wake; messages handed over are few: NOTIFY, IXFR over UDP, signed queries).
const IDLE: Duration = Duration::from_millis(100);
/// Messages the channel holds (each a [`Handoff`] with a buffer from a fixed pool).
pub const CHANNEL_CAPACITY: usize = 64;
const _: () = assert!(crate::dataplane::xdp::HANDOFF_BUFFERS > CHANNEL_CAPACITY, "a buffer for each queued message");

/// The channel from the run loops to the handoff thread, its message buffers allocated now
/// (before any loop runs, so that none allocates them).
pub fn channel() -> (crossbeam_channel::Sender<Handoff>, Receiver<Handoff>) {
    crate::dataplane::xdp::reserve_handoff_buffers();
    crossbeam_channel::bounded(CHANNEL_CAPACITY)
}

/// Counters of the handoff thread.
#[derive(Debug, Default)]
pub struct HandoffStats {
    pub received: AtomicU64,
    pub answered: AtomicU64,
    /// NOTIFYs accepted (passed to the zone manager).
    pub notify_accepted: AtomicU64,
    /// NOTIFYs refused (unknown zone, ACL, TSIG).
    pub notify_refused: AtomicU64,
    /// IXFR requests over UDP answered (incremental, whole zone, or our SOA alone).
    pub ixfr_udp: AtomicU64,
    /// Queries signed with TSIG, answered signed (or with the TSIG error).
    pub signed: AtomicU64,
    /// Messages the engine answers with silence (responses, garbage).
    pub dropped: AtomicU64,
    /// No socket to answer from (no listen address of the message's family), or the send
    /// failed.
    pub send_errors: AtomicU64,
}

impl std::fmt::Display for HandoffStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received={} answered={} notify_accepted={} notify_refused={} ixfr_udp={} signed={} dropped={} send_errors={}",
            self.received.load(Relaxed),
            self.answered.load(Relaxed),
            self.notify_accepted.load(Relaxed),
            self.notify_refused.load(Relaxed),
            self.ixfr_udp.load(Relaxed),
            self.signed.load(Relaxed),
            self.dropped.load(Relaxed),
            self.send_errors.load(Relaxed)
        )
    }
}

/// Starts the thread: messages from `rx` are answered through `sockets` (kernel UDP sockets
/// bound to the listen addresses) until `shutdown` is set.
pub fn spawn(
    rx: Receiver<Handoff>,
    sockets: Vec<Socket>,
    catalog: SharedCatalog,
    cfg: Config,
    control: Option<ControlSide>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<(Arc<HandoffStats>, JoinHandle<()>)> {
    crate::dataplane::xdp::reserve_handoff_buffers();
    let stats = Arc::new(HandoffStats::default());
    let st = stats.clone();
    let h = std::thread::Builder::new().name("nsxdp-handoff".into()).spawn(move || {
        let locals: Vec<Option<SocketAddr>> =
            sockets.iter().map(|s| s.local_addr().ok().and_then(|a| a.as_socket())).collect();
        while !shutdown.load(Relaxed) {
            match rx.recv_timeout(IDLE) {
                Ok(mut m) => {
                    st.received.fetch_add(1, Relaxed);
                    answer_one(&mut m, &sockets, &locals, &catalog, &cfg, control.as_ref(), &st);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    })?;
    Ok((stats, h))
}

/// Answers one message with the engine and sends the answer from the socket bound to the
/// address it was sent to (else one of the same family bound to the unspecified address
/// and the same port).
fn answer_one(
    m: &mut Handoff,
    sockets: &[Socket],
    locals: &[Option<SocketAddr>],
    catalog: &SharedCatalog,
    cfg: &Config,
    control: Option<&ControlSide>,
    st: &HandoffStats,
) {
    let (client, server) = (m.client, m.server);
    let kind = super::dispatch::kind(m.message());
    let (buf, len) = m.buffer_mut();
    let transfers = control.and_then(|c| c.transfers.as_ref());
    let msg = buf[..len].to_vec();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let cat = catalog.load();
    let engine = |b: &mut [u8], l: usize| match answer(&**cat, b, l, Transport::Udp, cfg) {
        Outcome::Reply { len, .. } => Some(len),
        Outcome::Drop(_) => None,
    };
    let reply = match (kind, control) {
        (Kind::Notify, Some(c)) => {
            let (reply, accepted) = notify_in(&msg, client, c, buf);
            match accepted {
                Some(true) => st.notify_accepted.fetch_add(1, Relaxed),
                Some(false) => st.notify_refused.fetch_add(1, Relaxed),
                None => 0,
            };
            reply
        }
        (Kind::Transfer { ixfr: true }, _) if transfers.is_some() => {
            match super::transfer::udp_ixfr(&msg, client.ip(), &cat, transfers, buf, now) {
                Some(len) => {
                    st.ixfr_udp.fetch_add(1, Relaxed);
                    Some(len)
                }
                // Nothing to send for it: the engine's answer (FORMERR or nothing).
                None => {
                    buf[..msg.len()].copy_from_slice(&msg);
                    engine(buf, msg.len())
                }
            }
        }
        // A query signed with TSIG gets a signed answer, or the TSIG error: NOTAUTH with
        // BADKEY for a key we do not know, also when no keys are configured (RFC 8945
        // §5.2.1); the signed answer gets the room the client's UDP size leaves. Anything
        // else (an AXFR, an UPDATE, a NOTIFY without a configuration) the engine answers.
        _ => {
            let keys = || control.map_or_else(Vec::new, |c| c.config.load().keys.iter().map(Key::from).collect());
            match super::dispatch::answer_query(&msg, keys, buf, udp_size(&msg, cfg), now, engine) {
                Answered::Signed(len) => {
                    st.signed.fetch_add(1, Relaxed);
                    Some(len)
                }
                Answered::Plain(len) => Some(len),
                Answered::Nothing => None,
            }
        }
    };
    let Some(len) = reply else {
        st.dropped.fetch_add(1, Relaxed);
        return;
    };
    let pick = locals.iter().position(|l| *l == Some(server)).or_else(|| {
        locals.iter().position(|l| {
            l.is_some_and(|l| l.is_ipv4() == server.is_ipv4() && l.ip().is_unspecified() && l.port() == server.port())
        })
    });
    match pick.map(|i| sockets[i].send_to(&buf[..len], &client.into())) {
        Some(Ok(_)) => st.answered.fetch_add(1, Relaxed),
        _ => st.send_errors.fetch_add(1, Relaxed),
    };
}

/// Answers a NOTIFY (over UDP or TCP) into `buf`, and tells the zone manager when it is
/// accepted. Returns the reply's length (None for a message not to answer: a response, or
/// one that cannot be read) and whether it was accepted (None: neither accepted nor
/// refused).
pub fn notify_in(msg: &[u8], from: SocketAddr, c: &ControlSide, buf: &mut [u8]) -> (Option<usize>, Option<bool>) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let req = match crate::xfr::parse_request(msg) {
        Ok(r) => r,
        Err(crate::xfr::RequestError::Malformed(why)) => {
            return (tsig::write_failure(msg, &tsig::TsigFailure::Malformed(why), buf, now).ok(), Some(false));
        }
        Err(_) => return (None, None),
    };
    let config = c.config.load();
    let keys: Vec<Key> = config.keys.iter().map(Key::from).collect();
    let verified = match tsig::verify_request(msg, &keys, now) {
        Ok(v) => v,
        Err(f) => {
            log::warn!("NOTIFY {} from {from}: TSIG: {f}", req.qname);
            return (tsig::write_failure(msg, &f, buf, now).ok(), Some(false));
        }
    };
    let mut signer = verified.as_ref().map(Signer::response);
    let conf = config.zone(&req.qname).filter(|z| z.role == Role::Secondary);
    let rcode = match conf {
        None => crate::wire::message::rcode::NOTAUTH,
        Some(z) if !config.allows(z, Action::Notify, from.ip(), verified.as_ref().map(|v| v.key.name())) => {
            crate::wire::message::rcode::REFUSED
        }
        Some(_) => 0,
    };
    if rcode == 0 {
        let _ = c.events.send(Event::Notify { zone: req.qname.clone(), from });
    } else {
        log::warn!("NOTIFY {} from {from} refused (rcode {rcode})", req.qname);
    }
    (crate::xfr::write_error(&req, rcode, signer.as_mut(), buf, now).ok(), Some(rcode == 0))
}

/// The largest UDP answer the client takes: its EDNS size (at least 512, at most ours), else
/// 512.
fn udp_size(msg: &[u8], cfg: &Config) -> usize {
    let mut name = [0u8; 256];
    match crate::answer::parse_query(msg, &mut name) {
        Ok(q) => q.edns.map_or(512, |e| usize::from(e.udp_size).clamp(512, usize::from(cfg.edns_size.max(512)))),
        Err(_) => 512,
    }
}
