//! One check of a secondary zone's primaries, as a state machine free of I/O (the way
//! quinn-proto's connection is): it is told what arrived (a message, a timeout, a closed
//! connection, the result of applying changes) and the time, and answers with what to do
//! next ([`Action`]). `control::secondary` moves the bytes.
//!
//! The rules, primary by primary in the configured order until one gives an answer:
//! 1. Nothing served yet, or a retransfer asked for: AXFR over TCP.
//! 2. A primary marked `ixfr-udp`: IXFR over UDP with our SOA in the authority section
//!    (RFC 1995 §2), which is also the serial check (a lone SOA not newer than ours means
//!    up to date). Truncated, REFUSED, NOTIMP, FORMERR, a lone newer SOA, an answer that is
//!    not the whole transfer, or no answer in half the timeout: the same IXFR over TCP.
//! 3. Otherwise: SOA query over UDP (sent twice, half the timeout each; over TCP when
//!    truncated). A serial not newer than ours (RFC 1982) ends the check; else IXFR over
//!    TCP (AXFR when the primary is `ixfr false`).
//! 4. IXFR answered with NOTIMP, FORMERR or REFUSED, or with changes that do not apply:
//!    AXFR over TCP. An IXFR answered with the whole zone (RFC 1995 §4) is taken like an
//!    AXFR. A whole zone must be newer than ours and pass the zone checks.
//! 5. A primary marked `tls` (XoT, RFC 9103): each "over TCP" above is over TLS, the SOA
//!    query too, and nothing goes over UDP.
//!
//! A primary that fails (no answer, a TSIG failure, a broken transfer) is noted with a
//! typed [`Failure`] and the next is tried; [`CheckError`] lists them all.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::secondary::xfrin::{Incoming, Kind, Limits, Request, Transferred, XfrInError};
use crate::wire::name::Name;
use crate::wire::serial::gt as serial_gt;
use crate::xfr::tsig::Key;
use crate::zone::parse::Severity;
use crate::zone::{soa_serial, Changeset, Record, Zone};

/// The UDP payload size offered with an IXFR over UDP (the DNS flag day 2020 value).
pub const UDP_PAYLOAD: u16 = 1232;

/// A primary as a check uses it.
#[derive(Clone, Debug)]
pub struct Primary {
    pub addr: SocketAddr,
    pub key: Option<Key>,
    /// Ask for IXFR (else AXFR only).
    pub ixfr: bool,
    /// Ask for IXFR over UDP first.
    pub ixfr_udp: bool,
    /// Reached over TLS (XoT, RFC 9103), and how its certificate is checked: the SOA query
    /// and the transfers go over TLS, none over UDP.
    pub tls: Option<TlsAuth>,
}

/// How a primary reached over TLS must prove who it is (RFC 9103 §9), checked by the driver
/// during the handshake. Neither a CA nor a pin: opportunistic (§9.3: encrypted, the
/// primary not authenticated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsAuth {
    /// PEM CA certificates the primary's certificate must chain to.
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the certificate must be valid for (default: the primary's address).
    pub hostname: Option<String>,
    /// SHA-256 digests of SubjectPublicKeyInfo, one of which the certificate must carry
    /// (Knot's `cert-key`, RFC 7858's SPKI pin).
    pub pins: Vec<[u8; 32]>,
}

impl TlsAuth {
    pub fn opportunistic(&self) -> bool {
        self.ca_file.is_none() && self.pins.is_empty()
    }
}

/// UDP, TCP, or TLS over TCP (XoT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Messages with a two-octet length on a connection (TCP or TLS).
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}

/// What is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    Soa,
    Ixfr,
    Axfr,
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Query::Soa => "SOA",
            Query::Ixfr => "IXFR",
            Query::Axfr => "AXFR",
        })
    }
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Send `bytes` to `to` (over TCP: on a new connection, closing any other), then report
    /// what comes back; nothing within `timeout` (over TCP: between two messages) is
    /// [`Input::Timeout`].
    Send { to: SocketAddr, transport: Transport, query: Query, bytes: Vec<u8>, timeout: Duration },
    /// Keep reading on the same exchange (the same deadline over UDP).
    Receive,
    /// Apply [`Check::changes`] strictly to a copy of our version ([`apply`]) and report the
    /// result as [`Input::Applied`].
    Apply,
    /// The check is over.
    Done(Result<Outcome, CheckError>),
}

/// What happened since the last [`Action`].
#[derive(Debug)]
pub enum Input<'a> {
    /// Begin the check.
    Start,
    /// One DNS message (a UDP datagram, or one TCP message without its length).
    Message(&'a [u8]),
    /// Nothing came within the timeout.
    Timeout,
    /// The TCP connection was closed by the primary.
    Closed,
    /// Sending or connecting failed.
    Io(String),
    /// The result of [`Action::Apply`].
    Applied(Result<Box<Zone>, XfrInError>),
}

/// How a new version arrived.
#[derive(Debug, Clone)]
pub struct Report {
    pub from: SocketAddr,
    pub how: How,
    pub transport: Transport,
    /// Why the zone came whole although IXFR was asked for, if it did.
    pub fallback: Option<Fallback>,
    /// Why an IXFR asked over UDP was asked again over TCP.
    pub udp_fallback: Option<UdpFallback>,
    pub messages: usize,
    pub bytes: usize,
    pub took: Duration,
}

/// The kind of transfer that brought a new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Changesets.
    Ixfr,
    /// An IXFR answered with the whole zone.
    AxfrStyleIxfr,
    Axfr,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            How::Ixfr => "IXFR",
            How::AxfrStyleIxfr => "AXFR-style IXFR",
            How::Axfr => "AXFR",
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let over = match self.transport {
            Transport::Udp => " over UDP",
            Transport::Tcp => "",
            Transport::Tls => " over TLS",
        };
        write!(
            f,
            "{}{over} from {}: {} messages, {} octets in {:.1} ms",
            self.how,
            self.from,
            self.messages,
            self.bytes,
            self.took.as_secs_f64() * 1000.0
        )?;
        if let Some(why) = &self.udp_fallback {
            write!(f, " (over TCP: {why})")?;
        }
        if let Some(why) = &self.fallback {
            write!(f, " ({why})")?;
        }
        Ok(())
    }
}

/// Why the zone came whole although IXFR was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fallback {
    #[error("IXFR failed: {0}")]
    IxfrFailed(XfrInError),
    #[error("IXFR did not apply: {0}")]
    DidNotApply(XfrInError),
    #[error("the primary answered the IXFR with the whole zone")]
    WholeZone,
}

/// Why an IXFR over UDP was asked again over TCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpFallback {
    #[error("the UDP answer was truncated")]
    Truncated,
    #[error("no answer over UDP")]
    NoAnswer,
    #[error("the UDP answer was not the whole transfer")]
    Incomplete,
    #[error("{0}")]
    Refused(XfrInError),
}

/// What went wrong with one primary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("{query} query: no answer within {timeout:?}")]
    Timeout { query: Query, timeout: Duration },
    #[error("SOA query: {0}")]
    Soa(XfrInError),
    #[error("IXFR: {0}")]
    Ixfr(XfrInError),
    #[error("AXFR: {0}")]
    Axfr(XfrInError),
    /// The AXFR that followed a failed IXFR failed too.
    #[error("{first}; then AXFR: {then}")]
    AfterFallback { first: Fallback, then: XfrInError },
    /// A whole zone (AXFR) not newer than ours, without a retransfer asked for.
    #[error("serial {theirs} is not newer than ours ({ours})")]
    NotNewer { theirs: u32, ours: u32 },
}

impl Failure {
    /// Whether the failure is the primary's TSIG answer or signature.
    pub fn is_tsig(&self) -> bool {
        matches!(
            self,
            Failure::Soa(XfrInError::Tsig(_))
                | Failure::Ixfr(XfrInError::Tsig(_))
                | Failure::Axfr(XfrInError::Tsig(_))
                | Failure::AfterFallback { then: XfrInError::Tsig(_), .. }
        )
    }
}

/// Every primary failed: each with what went wrong, in the order tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError(pub Vec<(SocketAddr, Failure)>);

impl std::error::Error for CheckError {}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no primaries");
        }
        for (i, (addr, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {e}")?;
        }
        Ok(())
    }
}

/// What a successful check found.
#[derive(Debug)]
pub enum Outcome {
    /// The primary at `from` has nothing newer than our version.
    UpToDate { from: SocketAddr, their_serial: u32 },
    /// A new version from IXFR changesets applied to ours: the zone and the changes.
    Applied { zone: Box<Zone>, changes: Vec<Changeset>, report: Report },
    /// A new version sent whole (the driver works out the difference to ours).
    Whole { zone: Box<Zone>, report: Report },
}

/// What the check is waiting for.
enum State {
    Idle,
    /// SOA query; `tries` sent so far over UDP.
    Soa {
        req: Box<Request>,
        transport: Transport,
        tries: u8,
    },
    /// IXFR or AXFR under way.
    Transfer {
        inc: Box<Incoming>,
        query: Query,
        transport: Transport,
        started: Instant,
    },
    /// Changes handed to the driver to apply.
    Applying {
        changes: Vec<Changeset>,
        messages: usize,
        bytes: usize,
        started: Instant,
        transport: Transport,
    },
    Finished,
}

/// One check of one zone.
pub struct Check {
    zone: Name,
    primaries: Vec<Primary>,
    /// The SOA of our version (None: nothing yet).
    ours: Option<Record>,
    force_axfr: bool,
    limits: Limits,
    timeout: Duration,
    /// The primary being tried.
    at: usize,
    state: State,
    /// Per primary: why the IXFR became an AXFR, why UDP became TCP.
    fallback: Option<Fallback>,
    udp_fallback: Option<UdpFallback>,
    failures: Vec<(SocketAddr, Failure)>,
    /// Makes the IDs of requests (random in the driver, fixed in tests).
    next_id: Box<dyn FnMut() -> u16 + Send>,
}

impl Check {
    /// A check of `zone`, whose served version has the SOA `ours` (None: nothing yet).
    /// `force_axfr` skips the SOA query and IXFR. `timeout` bounds each wait for an answer
    /// or the next message.
    pub fn new(
        zone: Name,
        primaries: Vec<Primary>,
        ours: Option<Record>,
        force_axfr: bool,
        limits: Limits,
        timeout: Duration,
    ) -> Check {
        Check {
            zone,
            primaries,
            ours,
            force_axfr,
            limits,
            timeout,
            at: 0,
            state: State::Idle,
            fallback: None,
            udp_fallback: None,
            failures: Vec::new(),
            next_id: Box::new(crate::wire::id::random),
        }
    }

    /// Request IDs from `f` instead of at random (for tests).
    pub fn with_ids(mut self, f: impl FnMut() -> u16 + Send + 'static) -> Check {
        self.next_id = Box::new(f);
        self
    }

    /// The changes to apply after [`Action::Apply`].
    pub fn changes(&self) -> &[Changeset] {
        match &self.state {
            State::Applying { changes, .. } => changes,
            _ => &[],
        }
    }

    fn our_serial(&self) -> Option<u32> {
        self.ours.as_ref().and_then(|s| soa_serial(&s.rdata))
    }

    fn primary(&self) -> &Primary {
        &self.primaries[self.at]
    }

    /// The connection transfers (and SOA queries that UDP truncated) to the current
    /// primary go over: TLS for one marked `tls`, else TCP.
    fn stream(&self) -> Transport {
        if self.primary().tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// Reads `input` at `now` (`unix`: seconds since the epoch, for TSIG) and says what to
    /// do next.
    pub fn next(&mut self, input: Input<'_>, now: Instant, unix: u64) -> Action {
        match input {
            Input::Start => {
                if !matches!(self.state, State::Idle) {
                    return Action::Receive;
                }
                self.begin_primary(now, unix)
            }
            Input::Message(msg) => self.message(msg, now, unix),
            Input::Timeout => self.timeout(now, unix),
            Input::Closed => self.broken(XfrInError::Incomplete, now, unix),
            Input::Io(e) => self.broken(XfrInError::Io(e), now, unix),
            Input::Applied(r) => self.applied(r, now, unix),
        }
    }

    fn begin_primary(&mut self, now: Instant, unix: u64) -> Action {
        self.fallback = None;
        self.udp_fallback = None;
        if self.at >= self.primaries.len() {
            self.state = State::Finished;
            return Action::Done(Err(CheckError(std::mem::take(&mut self.failures))));
        }
        let p = self.primary().clone();
        match (&self.ours, self.force_axfr) {
            (None, _) | (_, true) => self.send_transfer(Query::Axfr, self.stream(), now, unix),
            (Some(_), false) if p.ixfr && p.ixfr_udp && p.tls.is_none() => {
                self.send_transfer(Query::Ixfr, Transport::Udp, now, unix)
            }
            // A primary reached over TLS is asked nothing in the clear, the SOA query
            // included (as BIND 9.18 does with `primaries { ... tls NAME; }`).
            (Some(_), false) if p.tls.is_some() => self.send_soa(Transport::Tls, 0, unix),
            (Some(_), false) => self.send_soa(Transport::Udp, 0, unix),
        }
    }

    fn send_soa(&mut self, transport: Transport, tries: u8, unix: u64) -> Action {
        let id = (self.next_id)();
        let p = self.primary();
        let req = Request::new(&self.zone, &Kind::Soa, id, p.key.as_ref(), unix);
        let (to, bytes) = (p.addr, req.bytes.clone());
        let timeout = if transport == Transport::Udp { self.timeout / 2 } else { self.timeout };
        self.state = State::Soa { req: Box::new(req), transport, tries: tries + 1 };
        Action::Send { to, transport, query: Query::Soa, bytes, timeout }
    }

    fn send_transfer(&mut self, query: Query, transport: Transport, now: Instant, unix: u64) -> Action {
        let id = (self.next_id)();
        let p = self.primary();
        let kind = match (query, &self.ours) {
            (Query::Ixfr, Some(soa)) => Kind::Ixfr(soa.clone()),
            _ => Kind::Axfr,
        };
        let edns = (transport == Transport::Udp).then_some(UDP_PAYLOAD);
        let req = Request::with_edns(&self.zone, &kind, id, p.key.as_ref(), unix, edns);
        let (to, bytes) = (p.addr, req.bytes.clone());
        let ours = if query == Query::Ixfr { self.our_serial() } else { None };
        let timeout = if transport == Transport::Udp { self.timeout / 2 } else { self.timeout };
        self.state =
            State::Transfer { inc: Box::new(Incoming::new(req, ours, self.limits)), query, transport, started: now };
        Action::Send { to, transport, query, bytes, timeout }
    }

    /// The current primary failed: note why and go on to the next.
    fn fail(&mut self, why: Failure, now: Instant, unix: u64) -> Action {
        let addr = self.primary().addr;
        self.failures.push((addr, why));
        self.at += 1;
        self.state = State::Idle;
        self.begin_primary(now, unix)
    }

    /// The transfer under way failed with `e`.
    fn transfer_failed(
        &mut self,
        query: Query,
        transport: Transport,
        e: XfrInError,
        now: Instant,
        unix: u64,
    ) -> Action {
        match (query, transport) {
            (Query::Ixfr, Transport::Udp) => {
                // A TSIG failure is the primary's answer, whatever the transport.
                if matches!(e, XfrInError::Tsig(_)) {
                    return self.fail(Failure::Ixfr(e), now, unix);
                }
                self.udp_fallback = Some(match e {
                    XfrInError::Incomplete => UdpFallback::Incomplete,
                    e => UdpFallback::Refused(e),
                });
                self.send_transfer(Query::Ixfr, self.stream(), now, unix)
            }
            (Query::Ixfr, _) if e.try_axfr() => {
                self.fallback = Some(Fallback::IxfrFailed(e));
                self.send_transfer(Query::Axfr, self.stream(), now, unix)
            }
            (Query::Ixfr, _) => self.fail(Failure::Ixfr(e), now, unix),
            _ => {
                let why = match self.fallback.take() {
                    Some(first) => Failure::AfterFallback { first, then: e },
                    None => Failure::Axfr(e),
                };
                self.fail(why, now, unix)
            }
        }
    }

    fn message(&mut self, msg: &[u8], now: Instant, unix: u64) -> Action {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Soa { mut req, transport, tries } => {
                // Over UDP, a datagram that is not the answer (another ID) is ignored.
                if transport == Transport::Udp && (msg.len() < 2 || msg[..2] != req.id.to_be_bytes()) {
                    self.state = State::Soa { req, transport, tries };
                    return Action::Receive;
                }
                if transport == Transport::Udp && msg.len() >= 4 && msg[2] & 0x02 != 0 {
                    return self.send_soa(self.stream(), 0, unix);
                }
                match crate::secondary::xfrin::soa_response(&mut req, msg, unix) {
                    Ok(soa) => {
                        let theirs = soa_serial(&soa.rdata).expect("a checked SOA");
                        let ours = self.our_serial().expect("an SOA query only with a version");
                        if !serial_gt(theirs, ours) {
                            self.state = State::Finished;
                            return Action::Done(Ok(Outcome::UpToDate {
                                from: self.primary().addr,
                                their_serial: theirs,
                            }));
                        }
                        let q = if self.primary().ixfr { Query::Ixfr } else { Query::Axfr };
                        self.send_transfer(q, self.stream(), now, unix)
                    }
                    Err(e) => self.fail(Failure::Soa(e), now, unix),
                }
            }
            State::Transfer { mut inc, query, transport, started } => {
                if transport == Transport::Udp {
                    if msg.len() < 2 || msg[..2] != inc.request().id.to_be_bytes() {
                        self.state = State::Transfer { inc, query, transport, started };
                        return Action::Receive;
                    }
                    if msg.len() >= 4 && msg[2] & 0x02 != 0 {
                        self.udp_fallback = Some(UdpFallback::Truncated);
                        return self.send_transfer(Query::Ixfr, self.stream(), now, unix);
                    }
                }
                match inc.feed(msg, unix) {
                    Ok(false) if transport == Transport::Udp => {
                        self.transfer_failed(query, transport, XfrInError::Incomplete, now, unix)
                    }
                    Ok(false) => {
                        self.state = State::Transfer { inc, query, transport, started };
                        Action::Receive
                    }
                    Ok(true) => {
                        let (messages, bytes) = inc.progress();
                        match inc.finish() {
                            Ok(t) => self.transferred(t, query, transport, messages, bytes, started, now, unix),
                            Err(e) => self.transfer_failed(query, transport, e, now, unix),
                        }
                    }
                    Err(e) => self.transfer_failed(query, transport, e, now, unix),
                }
            }
            other => {
                // Nothing is waiting for a message: ignore it.
                self.state = other;
                Action::Receive
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transferred(
        &mut self,
        t: Transferred,
        query: Query,
        transport: Transport,
        messages: usize,
        bytes: usize,
        started: Instant,
        now: Instant,
        unix: u64,
    ) -> Action {
        let from = self.primary().addr;
        match t {
            Transferred::UpToDate { soa } => {
                self.state = State::Finished;
                let their_serial = soa_serial(&soa.rdata).unwrap_or(0);
                Action::Done(Ok(Outcome::UpToDate { from, their_serial }))
            }
            Transferred::Incremental { changesets } => {
                self.state = State::Applying { changes: changesets, messages, bytes, started, transport };
                Action::Apply
            }
            Transferred::Full { zone } => {
                let how = if query == Query::Ixfr { How::AxfrStyleIxfr } else { How::Axfr };
                if let Err(e) = servable(&zone) {
                    return self.transfer_failed(Query::Axfr, transport, e, now, unix);
                }
                if let (Some(ours), Some(theirs), false) = (self.our_serial(), zone.serial(), self.force_axfr) {
                    if !serial_gt(theirs, ours) {
                        return self.fail(Failure::NotNewer { theirs, ours }, now, unix);
                    }
                }
                if how == How::AxfrStyleIxfr {
                    self.fallback = Some(Fallback::WholeZone);
                }
                let report = self.report(how, transport, messages, bytes, now.saturating_duration_since(started));
                self.state = State::Finished;
                Action::Done(Ok(Outcome::Whole { zone, report }))
            }
        }
    }

    fn report(&mut self, how: How, transport: Transport, messages: usize, bytes: usize, took: Duration) -> Report {
        Report {
            from: self.primary().addr,
            how,
            transport,
            fallback: self.fallback.take(),
            udp_fallback: self.udp_fallback.take(),
            messages,
            bytes,
            took,
        }
    }

    fn applied(&mut self, r: Result<Box<Zone>, XfrInError>, now: Instant, unix: u64) -> Action {
        let State::Applying { changes, messages, bytes, started, transport } =
            std::mem::replace(&mut self.state, State::Idle)
        else {
            return Action::Receive;
        };
        match r {
            Ok(zone) => {
                let report = self.report(How::Ixfr, transport, messages, bytes, now.saturating_duration_since(started));
                self.state = State::Finished;
                Action::Done(Ok(Outcome::Applied { zone, changes, report }))
            }
            Err(e) => {
                self.fallback = Some(Fallback::DidNotApply(e));
                self.send_transfer(Query::Axfr, self.stream(), now, unix)
            }
        }
    }

    fn timeout(&mut self, now: Instant, unix: u64) -> Action {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            // The SOA query over UDP is sent twice.
            State::Soa { transport: Transport::Udp, tries: 1, .. } => self.send_soa(Transport::Udp, 1, unix),
            State::Soa { .. } => self.fail(Failure::Timeout { query: Query::Soa, timeout: self.timeout }, now, unix),
            State::Transfer { query: Query::Ixfr, transport: Transport::Udp, .. } => {
                self.udp_fallback = Some(UdpFallback::NoAnswer);
                self.send_transfer(Query::Ixfr, self.stream(), now, unix)
            }
            State::Transfer { query, inc, transport, .. } => {
                let e = XfrInError::Io(format!(
                    "timed out: nothing from the primary for {:?} after {} messages",
                    self.timeout,
                    inc.progress().0
                ));
                self.transfer_failed(query, transport, e, now, unix)
            }
            other => {
                self.state = other;
                Action::Receive
            }
        }
    }

    /// The connection broke or could not be made.
    fn broken(&mut self, e: XfrInError, now: Instant, unix: u64) -> Action {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Soa { .. } => self.fail(Failure::Soa(e), now, unix),
            State::Transfer { query, transport, .. } => self.transfer_failed(query, transport, e, now, unix),
            other => {
                self.state = other;
                Action::Receive
            }
        }
    }
}

/// Applies IXFR changesets strictly to `zone` (a copy of our version) and checks the result
/// like a zone file: what the driver reports as [`Input::Applied`].
pub fn apply(mut zone: Zone, changes: &[Changeset]) -> Result<Box<Zone>, XfrInError> {
    crate::secondary::xfrin::apply_strict(&mut zone, changes)?;
    servable(&zone)?;
    Ok(Box::new(zone))
}

/// The checks a zone file gets: a transferred zone with errors is not served.
pub fn servable(zone: &Zone) -> Result<(), XfrInError> {
    let problems = crate::zone::check::problems(zone);
    let errors: Vec<&str> =
        problems.iter().filter(|(s, _, _)| *s == Severity::Error).map(|(_, _, m)| m.as_str()).take(3).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(XfrInError::Invalid(format!("the zone has errors: {}", errors.join("; "))))
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
