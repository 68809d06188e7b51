//! Messages the AF_XDP run loops hand to the control side: NOTIFY, UPDATE and IXFR over
//! UDP (`dataplane::xdp::Handoff`), answered here through a kernel UDP socket bound to the
//! address they were sent to.
//!
//! **The seam for the transfer issues.** Today every handed-over message gets the engine's
//! answer (NOTIMP for NOTIFY, UPDATE and IXFR over UDP), as it would on the kernel-socket
//! path; the secondary's NOTIFY handling and IXFR will replace [`answer_one`] with the real
//! thing. The loops never wait for this thread: the channel is bounded and they drop (and
//! count) what does not fit.
//!
//! This thread polls the channel (`try_recv`, then a short sleep when it is empty) instead
//! of blocking on it: a blocked receiver would make every `try_send` in a run loop take the
//! channel's waker lock and wake this thread with a syscall.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use socket2::Socket;

use crate::answer::{answer, Config, Outcome, Transport};
use crate::dataplane::xdp::Handoff;
use crate::dataplane::SharedCatalog;

/// How long the thread sleeps when the channel is empty.
const IDLE: Duration = Duration::from_millis(5);
/// Messages the channel holds (each a fixed-size [`Handoff`]).
pub const CHANNEL_CAPACITY: usize = 64;

/// Counters of the handoff thread.
#[derive(Debug, Default)]
pub struct HandoffStats {
    pub received: AtomicU64,
    pub answered: AtomicU64,
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
            "received={} answered={} dropped={} send_errors={}",
            self.received.load(Relaxed),
            self.answered.load(Relaxed),
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
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<(Arc<HandoffStats>, JoinHandle<()>)> {
    let stats = Arc::new(HandoffStats::default());
    let st = stats.clone();
    let h = std::thread::Builder::new().name("nsxdp-handoff".into()).spawn(move || {
        let locals: Vec<Option<SocketAddr>> =
            sockets.iter().map(|s| s.local_addr().ok().and_then(|a| a.as_socket())).collect();
        while !shutdown.load(Relaxed) {
            match rx.try_recv() {
                Ok(mut m) => {
                    st.received.fetch_add(1, Relaxed);
                    answer_one(&mut m, &sockets, &locals, &catalog, &cfg, &st);
                }
                Err(TryRecvError::Empty) => std::thread::sleep(IDLE),
                Err(TryRecvError::Disconnected) => break,
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
    st: &HandoffStats,
) {
    let (client, server) = (m.client, m.server);
    let (buf, len) = m.buffer_mut();
    let cat = catalog.load();
    let Outcome::Reply { len, .. } = answer(&**cat, buf, len, Transport::Udp, cfg) else {
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
