//! The secondary role's network side: the thin driver of a check of a zone's primaries
//! ([`crate::secondary::check`] decides what to send and what the answers mean; this
//! module sends it over UDP, TCP or TLS and reads the answers back).
//!
//! Over TLS (a primary marked `tls`, XoT: RFC 9103) the connection is a rustls client
//! stream with the same timeouts as TCP (the handshake included), TLS 1.3 and ALPN "dot";
//! the primary's certificate is checked as the zone's TLS settings say
//! ([`super::tls::client_config`]) and a failed check fails that primary like any
//! broken connection.
//!
//! A check ([`fetch`]) runs on a worker thread of its own, so a slow primary or a large
//! transfer never holds up the zone manager. What comes back is checked message by message
//! ([`crate::secondary::xfrin`]) and as a whole zone (the checks a zone file gets); IXFR
//! changes are applied strictly to a copy of the current version; nothing is kept from a
//! transfer that fails. The manager then journals, compiles and swaps the result like a
//! reload.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::secondary::check::{self, Action, Check, Input, Outcome, TlsAuth, Transport};
pub use crate::secondary::check::{CheckError, Primary, Report};
use crate::secondary::xfrin::{Limits, XfrInError};
use crate::snapshot::{self, Snapshot};
use crate::wire::name::Name;
use crate::xfr::tsig::Key;
use crate::zone::{Changeset, Record, Zone};

/// The primaries of a configured secondary zone, their keys resolved.
pub fn primaries(zone: &crate::config::ZoneConf, config: &crate::config::Config) -> Vec<Primary> {
    zone.primaries
        .iter()
        .map(|r| Primary {
            addr: r.addr,
            key: r.key.as_deref().and_then(|k| config.key(k)).map(Key::from),
            ixfr: r.ixfr,
            ixfr_udp: r.ixfr_udp,
            tls: r.tls.clone(),
        })
        .collect()
}

/// One check of one zone, for a worker thread.
#[derive(Clone)]
pub struct Job {
    pub zone: Name,
    pub primaries: Vec<Primary>,
    /// The version served (None: nothing yet) and its SOA.
    pub current: Option<(Arc<Snapshot>, Record)>,
    /// Skip the SOA query and IXFR: transfer the whole zone.
    pub force_axfr: bool,
    pub limits: Limits,
    /// Longest wait for any one answer or read.
    pub timeout: Duration,
}

/// What a successful check found.
#[derive(Debug)]
pub enum Fetched {
    /// The primary at `from` has nothing newer than our version.
    UpToDate { from: SocketAddr, their_serial: u32 },
    /// A new version: the zone, and the changes from ours to it (IXFR's changesets, or the
    /// difference after an AXFR; empty when we had nothing).
    New { zone: Box<Zone>, changes: Vec<Changeset>, report: Report },
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The open exchange with a primary.
enum Conn {
    None,
    Udp { sock: UdpSocket, id: u16, deadline: Instant },
    Tcp { r: io::BufReader<TcpStream>, timeout: Duration },
    Tls { r: Box<io::BufReader<TlsStream>>, timeout: Duration },
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Runs a check: the primaries in order until one answers. The error names each primary
/// and what went wrong with it.
pub fn fetch(job: &Job) -> Result<Fetched, CheckError> {
    let ours = job.current.as_ref().map(|(_, soa)| soa.clone());
    let mut check = Check::new(job.zone.clone(), job.primaries.clone(), ours, job.force_axfr, job.limits, job.timeout);
    let mut conn = Conn::None;
    let mut buf = vec![0u8; 65535];
    let mut action = check.next(Input::Start, Instant::now(), unix_now());
    loop {
        action = match action {
            Action::Send { to, transport, bytes, timeout, .. } => {
                conn = Conn::None;
                let tls = job.primaries.iter().filter(|p| p.addr == to).find_map(|p| p.tls.as_ref());
                match open(to, transport, tls, &bytes, timeout) {
                    Ok(c) => {
                        conn = c;
                        let input = receive(&mut conn, &mut buf);
                        check.next(input, Instant::now(), unix_now())
                    }
                    Err(e) => check.next(Input::Io(e.to_string()), Instant::now(), unix_now()),
                }
            }
            Action::Receive => {
                let input = receive(&mut conn, &mut buf);
                check.next(input, Instant::now(), unix_now())
            }
            Action::Apply => {
                let applied = match &job.current {
                    Some((snap, _)) => snapshot::to_zone(snap.zone())
                        .map_err(|e| XfrInError::Invalid(format!("reading our version: {e}")))
                        .and_then(|zone| check::apply(zone, check.changes())),
                    None => Err(XfrInError::Invalid("IXFR changes but no version of ours".into())),
                };
                check.next(Input::Applied(applied), Instant::now(), unix_now())
            }
            Action::Done(r) => {
                return r.and_then(|o| match o {
                    Outcome::UpToDate { from, their_serial } => Ok(Fetched::UpToDate { from, their_serial }),
                    Outcome::Applied { zone, changes, report } => Ok(Fetched::New { zone, changes, report }),
                    Outcome::Whole { zone, report } => {
                        let changes = difference(job, &zone).map_err(|e| {
                            CheckError(vec![(report.from, check::Failure::Axfr(XfrInError::Invalid(e)))])
                        })?;
                        Ok(Fetched::New { zone, changes, report })
                    }
                })
            }
        };
    }
}

/// The change from our version to `zone` (nothing when we have no version).
fn difference(job: &Job, zone: &Zone) -> Result<Vec<Changeset>, String> {
    let Some((snap, _)) = &job.current else { return Ok(Vec::new()) };
    let old = snapshot::to_zone(snap.zone()).map_err(|e| format!("reading our version: {e}"))?;
    Ok(vec![old.diff(zone)])
}

/// Sends `msg` to `to`: over UDP from a socket of its own, over TCP or TLS (checked as
/// `tls` says) on a new connection.
fn open(
    to: SocketAddr,
    transport: Transport,
    tls: Option<&TlsAuth>,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Conn> {
    if msg.len() < 2 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a request shorter than its ID"));
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    match transport {
        Transport::Udp => {
            let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
            sock.connect(to)?;
            sock.send(msg)?;
            Ok(Conn::Udp { sock, id, deadline: Instant::now() + timeout })
        }
        Transport::Tcp => {
            let s = connect(to, timeout)?;
            (&s).write_all(&framed(msg))?;
            Ok(Conn::Tcp { r: io::BufReader::with_capacity(1 << 16, s), timeout })
        }
        Transport::Tls => {
            let auth = tls.ok_or_else(|| io::Error::other("TLS asked for a primary without TLS settings"))?;
            let config = super::tls::client_config(auth).map_err(io::Error::other)?;
            let name = super::tls::server_name(auth, to.ip()).map_err(io::Error::other)?;
            let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
            let s = connect(to, timeout)?;
            // The handshake, under the read and write timeouts, then the request.
            s.set_read_timeout(Some(timeout))?;
            let mut stream = rustls::StreamOwned::new(conn, s);
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock).map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?;
            }
            if stream.conn.alpn_protocol() != Some(super::tls::ALPN_DOT) {
                return Err(io::Error::other("TLS: the primary did not agree on ALPN \"dot\" (RFC 9103 §7.1)"));
            }
            stream.write_all(&framed(msg))?;
            stream.flush()?;
            Ok(Conn::Tls { r: Box::new(io::BufReader::with_capacity(1 << 16, stream)), timeout })
        }
    }
}

fn connect(to: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&to, timeout)?;
    s.set_write_timeout(Some(timeout))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// `msg` with its two-octet length.
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Waits for the next message of the open exchange.
fn receive<'b>(conn: &mut Conn, buf: &'b mut [u8]) -> Input<'b> {
    match conn {
        Conn::None => Input::Io("no exchange open".into()),
        Conn::Udp { sock, id, deadline } => loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Input::Timeout;
            };
            if let Err(e) = sock.set_read_timeout(Some(left)) {
                return Input::Io(e.to_string());
            }
            match sock.recv(buf) {
                // Datagrams with other IDs are dropped here (the check would ignore them).
                Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == *id => return Input::Message(&buf[..n]),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Input::Timeout
                }
                // ICMP port unreachable: nobody listens there.
                Err(e) => return Input::Io(format!("receive: {e}")),
            }
        },
        Conn::Tcp { r, timeout } => {
            if let Err(e) = r.get_ref().set_read_timeout(Some(*timeout)) {
                return Input::Io(e.to_string());
            }
            read_message(r, buf)
        }
        Conn::Tls { r, timeout } => {
            if let Err(e) = r.get_ref().sock.set_read_timeout(Some(*timeout)) {
                return Input::Io(e.to_string());
            }
            read_message(&mut **r, buf)
        }
    }
}

/// The next length-prefixed message of a connection.
fn read_message<'b>(r: &mut impl Read, buf: &'b mut [u8]) -> Input<'b> {
    let mut len = [0u8; 2];
    let read = r.read_exact(&mut len).and_then(|()| {
        let n = u16::from_be_bytes(len) as usize;
        r.read_exact(&mut buf[..n]).map(|()| n)
    });
    match read {
        Ok(n) => Input::Message(&buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Input::Closed,
        // A read that waited in vain fails with WouldBlock or TimedOut (by platform).
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Input::Timeout,
        Err(e) => Input::Io(format!("read: {e}")),
    }
}
