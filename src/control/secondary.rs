//! The secondary role's network side: checking a zone's primaries and transferring from
//! them, and answering NOTIFY.
//!
//! A check ([`fetch`]) runs on a worker thread of its own, so a slow primary or a large
//! transfer never holds up the zone manager, and takes the primaries in order until one
//! gives an answer:
//! 1. SOA query over UDP (TCP when truncated), unless the zone has nothing yet or a
//!    retransfer was asked for; a serial not newer than ours (RFC 1982) ends the check.
//! 2. IXFR over TCP with our SOA (unless the primary is configured `ixfr false` or we have
//!    nothing); changesets are applied strictly to a copy of the current version.
//!    An IXFR answered with the whole zone (RFC 1995 §4) is taken like an AXFR (logged as
//!    "AXFR-style IXFR", counted as an AXFR and a fallback).
//! 3. AXFR over TCP when the primary answered the IXFR with NOTIMP, FORMERR or REFUSED,
//!    sent something that did not apply, or IXFR was not to be used. When it follows a
//!    failed IXFR, its error names both failures.
//!
//! What comes back is checked message by message ([`crate::secondary::xfrin`]) and as a
//! whole zone (the checks a zone file gets); nothing is kept from a transfer that fails.
//! The manager then journals, compiles and swaps the result like a reload.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::secondary::xfrin::{self, apply_strict, Incoming, Kind, Limits, Request, Transferred, XfrInError};
use crate::snapshot::{self, Snapshot};
use crate::wire::name::Name;
use crate::wire::serial::gt as serial_gt;
use crate::xfr::tsig::Key;
use crate::zone::parse::Severity;
use crate::zone::{soa_serial, Changeset, Record, Zone};

/// A primary as a check uses it.
#[derive(Clone, Debug)]
pub struct Primary {
    pub addr: SocketAddr,
    pub key: Option<Key>,
    pub ixfr: bool,
}

/// The primaries of a configured secondary zone, their keys resolved.
pub fn primaries(zone: &crate::config::ZoneConf, config: &crate::config::Config) -> Vec<Primary> {
    zone.primaries
        .iter()
        .map(|r| Primary {
            addr: r.addr,
            key: r.key.as_deref().and_then(|k| config.key(k)).map(Key::from),
            ixfr: r.ixfr,
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

/// How a new version arrived.
#[derive(Debug, Clone)]
pub struct Report {
    pub from: SocketAddr,
    /// "IXFR" (changesets), "AXFR-style IXFR" (an IXFR answered with the whole zone) or
    /// "AXFR".
    pub kind: &'static str,
    /// Why the zone came whole although IXFR was asked for, if it did.
    pub fallback: Option<String>,
    pub messages: usize,
    pub bytes: usize,
    pub took: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} from {}: {} messages, {} octets in {:.1} ms",
            self.kind,
            self.from,
            self.messages,
            self.bytes,
            self.took.as_secs_f64() * 1000.0
        )?;
        if let Some(why) = &self.fallback {
            write!(f, " ({why})")?;
        }
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs a check: the primaries in order until one answers. The error names each primary
/// and what went wrong with it.
pub fn fetch(job: &Job) -> Result<Fetched, String> {
    let mut errors = Vec::new();
    for p in &job.primaries {
        match fetch_from(job, p) {
            Ok(f) => return Ok(f),
            Err(e) => errors.push(format!("{}: {e}", p.addr)),
        }
    }
    if errors.is_empty() {
        errors.push("no primaries".into());
    }
    Err(errors.join("; "))
}

fn fetch_from(job: &Job, p: &Primary) -> Result<Fetched, String> {
    let ours = job.current.as_ref().and_then(|(_, soa)| soa_serial(&soa.rdata).map(|s| (s, soa)));
    if let (Some((our_serial, _)), false) = (ours, job.force_axfr) {
        let theirs = soa_query(job, p).map_err(|e| format!("SOA query: {e}"))?;
        if !serial_gt(theirs, our_serial) {
            return Ok(Fetched::UpToDate { from: p.addr, their_serial: theirs });
        }
    }
    let mut fallback = None;
    if let (Some((our_serial, soa)), true, false) = (ours, p.ixfr, job.force_axfr) {
        let t0 = Instant::now();
        match transfer(job, p, Kind::Ixfr(soa.clone()), Some(our_serial)) {
            Ok((Transferred::UpToDate { soa }, _)) => {
                return Ok(Fetched::UpToDate { from: p.addr, their_serial: soa_serial(&soa.rdata).unwrap_or(0) })
            }
            Ok((Transferred::Incremental { changesets }, (messages, bytes))) => {
                let (snap, _) = job.current.as_ref().expect("IXFR only with a current version");
                let mut zone = snapshot::to_zone(snap.zone()).map_err(|e| format!("reading our version: {e}"))?;
                match apply_strict(&mut zone, &changesets).and_then(|()| servable(&zone)) {
                    Ok(()) => {
                        let report =
                            Report { from: p.addr, kind: "IXFR", fallback, messages, bytes, took: t0.elapsed() };
                        return Ok(Fetched::New { zone: Box::new(zone), changes: changesets, report });
                    }
                    Err(e) => fallback = Some(format!("IXFR did not apply: {e}")),
                }
            }
            Ok((Transferred::Full { zone }, (messages, bytes))) => {
                // The primary chose to send the whole zone (RFC 1995 §4): taken like an
                // AXFR, with the same checks.
                servable(&zone).map_err(|e| format!("IXFR: {e}"))?;
                newer(job, ours.map(|(s, _)| s), &zone).map_err(|e| format!("IXFR: {e}"))?;
                let fallback = Some("the primary answered the IXFR with the whole zone".to_string());
                let report =
                    Report { from: p.addr, kind: "AXFR-style IXFR", fallback, messages, bytes, took: t0.elapsed() };
                let changes = difference(job, &zone)?;
                return Ok(Fetched::New { zone, changes, report });
            }
            Err(e) if e.try_axfr() => fallback = Some(format!("IXFR failed: {e}")),
            Err(e) => return Err(format!("IXFR: {e}")),
        }
    }
    // When this AXFR follows a failed IXFR, its error says what went wrong with both.
    let why = |e: String| match &fallback {
        Some(f) => format!("{f}; then AXFR: {e}"),
        None => format!("AXFR: {e}"),
    };
    let t0 = Instant::now();
    match transfer(job, p, Kind::Axfr, None).map_err(|e| why(e.to_string()))? {
        (Transferred::Full { zone }, (messages, bytes)) => {
            servable(&zone).map_err(|e| why(e.to_string()))?;
            newer(job, ours.map(|(s, _)| s), &zone).map_err(&why)?;
            let report = Report { from: p.addr, kind: "AXFR", fallback, messages, bytes, took: t0.elapsed() };
            let changes = difference(job, &zone)?;
            Ok(Fetched::New { zone, changes, report })
        }
        _ => Err(why("not a whole zone".into())),
    }
}

/// A whole zone must be newer than ours (RFC 1982), unless a retransfer was asked for.
fn newer(job: &Job, ours: Option<u32>, zone: &Zone) -> Result<(), String> {
    match (ours, zone.serial()) {
        (Some(ours), Some(theirs)) if !job.force_axfr && !serial_gt(theirs, ours) => {
            Err(format!("serial {theirs} is not newer than ours ({ours})"))
        }
        _ => Ok(()),
    }
}

/// The change from our version to `zone` (nothing when we have no version).
fn difference(job: &Job, zone: &Zone) -> Result<Vec<Changeset>, String> {
    let Some((snap, _)) = &job.current else { return Ok(Vec::new()) };
    let old = snapshot::to_zone(snap.zone()).map_err(|e| format!("reading our version: {e}"))?;
    Ok(vec![old.diff(zone)])
}

/// The checks a zone file gets: a transferred zone with errors is not served.
fn servable(zone: &Zone) -> Result<(), XfrInError> {
    let problems = crate::zone::check::problems(zone);
    let errors: Vec<&str> =
        problems.iter().filter(|(s, _, _)| *s == Severity::Error).map(|(_, _, m)| m.as_str()).take(3).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(XfrInError::Invalid(format!("the zone has errors: {}", errors.join("; "))))
    }
}

/// The primary's serial, by SOA query over UDP (TCP when the answer is truncated).
fn soa_query(job: &Job, p: &Primary) -> Result<u32, String> {
    let now = unix_now();
    let mut req = Request::new(&job.zone, &Kind::Soa, crate::wire::id::random(), p.key.as_ref(), now);
    let resp = udp_exchange(p.addr, &req.bytes, req.id, job.timeout).map_err(|e| e.to_string())?;
    let resp = if resp.len() >= 4 && resp[2] & 0x02 != 0 {
        let mut req2 = Request::new(&job.zone, &Kind::Soa, crate::wire::id::random(), p.key.as_ref(), now);
        let mut out = None;
        tcp_exchange(p.addr, &req2.bytes, job.timeout, |m| {
            out = Some(m.to_vec());
            Ok(true)
        })?;
        req = std::mem::replace(&mut req2, req);
        out.ok_or("no answer over TCP")?
    } else {
        resp
    };
    let soa = xfrin::soa_response(&mut req, &resp, unix_now()).map_err(|e| e.to_string())?;
    Ok(soa_serial(&soa.rdata).expect("checked SOA"))
}

/// Sends `msg` over UDP and waits for the answer with the same ID from `to`.
fn udp_exchange(to: SocketAddr, msg: &[u8], id: u16, timeout: Duration) -> io::Result<Vec<u8>> {
    let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    sock.connect(to)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    // Two tries, half the time each.
    for attempt in 0..2 {
        sock.send(msg)?;
        let until = if attempt == 0 { Instant::now() + timeout / 2 } else { deadline };
        while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            sock.set_read_timeout(Some(left))?;
            match sock.recv(&mut buf) {
                Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => return Ok(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {timeout:?}")))
}

/// Sends `msg` over TCP and hands each response message to `feed` until it returns true
/// (complete). An error if the connection ends first.
fn tcp_exchange(
    to: SocketAddr,
    msg: &[u8],
    timeout: Duration,
    mut feed: impl FnMut(&[u8]) -> Result<bool, String>,
) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&to, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).map_err(|e| format!("send: {e}"))?;
    let mut r = io::BufReader::with_capacity(1 << 16, s);
    let mut buf = vec![0u8; 65535];
    let mut messages = 0usize;
    // A read that waited `timeout` in vain fails with WouldBlock or TimedOut (by platform).
    let read_error = |e: io::Error, messages: usize| match e.kind() {
        io::ErrorKind::UnexpectedEof => XfrInError::Incomplete.to_string(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("timed out: nothing from the primary for {timeout:?} after {messages} messages")
        }
        _ => format!("read: {e}"),
    };
    loop {
        let mut len = [0u8; 2];
        r.read_exact(&mut len).map_err(|e| read_error(e, messages))?;
        let n = u16::from_be_bytes(len) as usize;
        r.read_exact(&mut buf[..n]).map_err(|e| read_error(e, messages))?;
        messages += 1;
        if feed(&buf[..n])? {
            return Ok(());
        }
    }
}

/// One transfer over TCP: what it held, and (messages, octets).
fn transfer(
    job: &Job,
    p: &Primary,
    kind: Kind,
    ours: Option<u32>,
) -> Result<(Transferred, (usize, usize)), XfrInError> {
    let req = Request::new(&job.zone, &kind, crate::wire::id::random(), p.key.as_ref(), unix_now());
    let bytes = req.bytes.clone();
    let mut inc = Incoming::new(req, ours, job.limits);
    let mut failure = None;
    let r = tcp_exchange(p.addr, &bytes, job.timeout, |m| {
        inc.feed(m, unix_now()).map_err(|e| {
            let s = e.to_string();
            failure = Some(e);
            s
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match r {
        Ok(()) => {
            let progress = inc.progress();
            Ok((inc.finish()?, progress))
        }
        Err(e) if e == XfrInError::Incomplete.to_string() => Err(XfrInError::Incomplete),
        Err(e) => Err(XfrInError::Io(e)),
    }
}
