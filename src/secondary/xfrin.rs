//! Transfers in, as pure protocol code: the requests a secondary sends (SOA query, IXFR
//! with our SOA, AXFR; TSIG-signed when a key is configured) and the checks on what comes
//! back, one message at a time.
//!
//! [`Incoming`] takes the response messages of a transfer in order and decides what they
//! hold (RFC 5936, RFC 1995 §4):
//! - one SOA not newer than ours: we are up to date;
//! - SOA, then another SOA: incremental — changesets (old SOA, removed, new SOA, added),
//!   each starting at the serial the previous one ended at, the first at ours;
//! - SOA, then anything else: the whole zone, up to the SOA again.
//!
//! Every message must answer our request (ID, QR, opcode, question when present, rcode
//! NOERROR), verify under the key when we signed (RFC 8945 §5.3.1: the first and last
//! signed, at most 99 unsigned in a row), and keep within limits; every record must be of
//! class IN, inside the zone, and not a meta type; SOAs only at the apex. A transfer that
//! ends before its closing SOA, or has records after it, is refused. Any failure throws the
//! whole transfer away: nothing is applied until [`Incoming::finish`] says it is complete.

use crate::wire::name::Name;
use crate::wire::rdata::{self, rtype};
use crate::xfr::request::walk;
use crate::xfr::tsig::{Key, Signer, Verifier, VerifyError};
use crate::zone::{soa_serial, Changeset, Record, SrcPos, Zone};

use crate::wire::serial::gt as serial_gt;

const CLASS_IN: u16 = 1;
const OPCODE_QUERY: u8 = 0;

/// Why a transfer (or SOA query) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrInError {
    /// The primary answered with an error rcode (for IXFR: NOTIMP, FORMERR or REFUSED
    /// mean "try AXFR").
    #[error("the primary answered {}", rcode_name(*.0))]
    Rcode(u8),
    #[error("TSIG: {0}")]
    Tsig(String),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("transfer over the limit: {0}")]
    Limit(String),
    #[error("transfer cut off before its closing SOA")]
    Incomplete,
    /// An IXFR answered with the primary's SOA alone although it is newer than ours: over
    /// UDP the sign to ask again over TCP (RFC 1995 §2), over TCP a broken answer.
    #[error("the primary sent its SOA (serial {0}) alone: it wants the transfer over TCP")]
    UseTcp(u32),
    /// The connection could not be made or broke (not the primary's data at fault).
    #[error("{0}")]
    Io(String),
}

impl XfrInError {
    /// Whether an IXFR that failed this way should be retried as AXFR: the primary does not
    /// do IXFR (RFC 1995 §4 allows refusing it), or what it sent did not apply.
    pub fn try_axfr(&self) -> bool {
        matches!(self, XfrInError::Rcode(1 | 4 | 5) | XfrInError::Invalid(_) | XfrInError::UseTcp(_))
    }
}

/// The name of an rcode, for messages.
pub fn rcode_name(r: u8) -> &'static str {
    match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        9 => "NOTAUTH",
        _ => "an unknown rcode",
    }
}

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// SOA query (is the primary's serial newer?).
    Soa,
    Axfr,
    /// IXFR from the version whose SOA this is.
    Ixfr(Record),
}

/// A request on its way: its bytes and what checks the responses.
pub struct Request {
    pub bytes: Vec<u8>,
    pub id: u16,
    pub zone: Name,
    pub qtype: u16,
    verifier: Option<Verifier>,
}

impl Request {
    /// Builds the request for `zone` (signed with `key` at `now`, seconds since the epoch).
    pub fn new(zone: &Name, kind: &Kind, id: u16, key: Option<&Key>, now: u64) -> Request {
        Request::with_edns(zone, kind, id, key, now, None)
    }

    /// As [`Request::new`], with an OPT offering `edns` octets of UDP payload when given (a
    /// request over UDP, so that the answer may be larger than 512 octets).
    pub fn with_edns(zone: &Name, kind: &Kind, id: u16, key: Option<&Key>, now: u64, edns: Option<u16>) -> Request {
        let qtype = match kind {
            Kind::Soa => rtype::SOA,
            Kind::Axfr => rtype::AXFR,
            Kind::Ixfr(_) => rtype::IXFR,
        };
        let mut m = Vec::with_capacity(512);
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[OPCODE_QUERY << 3, 0]);
        let ns = u16::from(matches!(kind, Kind::Ixfr(_)));
        for c in [1u16, 0, ns, 0] {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(zone.as_wire());
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Kind::Ixfr(soa) = kind {
            // Our SOA in the authority section (RFC 1995 §3), owner pointing at the question.
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&rtype::SOA.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&soa.ttl.to_be_bytes());
            m.extend_from_slice(&(soa.rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&soa.rdata);
        }
        if let Some(size) = edns {
            // OPT: root owner, the payload size as class, no extended rcode or flags.
            m.extend_from_slice(&[0, 0, 41]);
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            m[11] = 1;
        }
        let verifier = key.map(|k| {
            let mut signer = Signer::request(k);
            let len = m.len();
            m.resize(len + signer.reserve() + 16, 0);
            let signed = signer.sign(&mut m, len, now).expect("room was made for the TSIG");
            m.truncate(signed);
            Verifier::new(k, signer.mac())
        });
        Request { bytes: m, id, zone: zone.clone(), qtype, verifier }
    }

    /// Checks one response message's header, question and TSIG; returns the walk of its
    /// records.
    fn check(&mut self, msg: &[u8], first: bool, now: u64) -> Result<Vec<crate::xfr::request::RawRecord>, XfrInError> {
        if msg.len() < 12 {
            return Err(XfrInError::Malformed("shorter than a header".into()));
        }
        if u16::from_be_bytes([msg[0], msg[1]]) != self.id {
            return Err(XfrInError::Malformed("a response with another ID".into()));
        }
        if msg[2] & 0x80 == 0 || (msg[2] >> 3) & 0x0f != OPCODE_QUERY {
            return Err(XfrInError::Malformed("not a response to a query".into()));
        }
        // Before the walk, which sizes its record list by the counts.
        if !crate::wire::counts_fit(msg) {
            return Err(XfrInError::Malformed("the header counts more records than the message holds".into()));
        }
        let w = walk(msg).map_err(|e| XfrInError::Malformed(e.into()))?;
        let qd = u16::from_be_bytes([msg[4], msg[5]]);
        if qd > 1 || (first && qd == 0 && msg[3] & 0x0f == 0) {
            return Err(XfrInError::Malformed(format!("{qd} questions")));
        }
        if qd == 1 {
            let mut buf = [0u8; 256];
            let (end, n) = crate::wire::name::read_compressed(msg, 12, &mut buf)
                .map_err(|_| XfrInError::Malformed("bad question".into()))?;
            let same_name = buf[..n].eq_ignore_ascii_case(self.zone.as_wire());
            // walk() checked that type and class are there.
            if !same_name || msg[end..end + 2] != self.qtype.to_be_bytes() {
                return Err(XfrInError::Malformed("the question is not ours".into()));
            }
        }
        if let Some(v) = &mut self.verifier {
            v.verify(msg, now).map_err(|e| match e {
                VerifyError::Peer { error, .. } => {
                    XfrInError::Tsig(format!("the primary says {}", crate::xfr::tsig::error_name(error)))
                }
                e => XfrInError::Tsig(e.to_string()),
            })?;
        } else if crate::xfr::tsig::locate(msg).ok().flatten().is_some() {
            return Err(XfrInError::Tsig("a signed response to an unsigned request".into()));
        }
        let rcode = msg[3] & 0x0f;
        if rcode != 0 {
            return Err(XfrInError::Rcode(rcode));
        }
        Ok(w.records)
    }

    /// Whether the transfer may end at the last message checked (its TSIG state allows).
    fn settled(&self) -> bool {
        self.verifier.as_ref().is_none_or(|v| v.is_settled())
    }
}

/// The primary's answer to an SOA query: its serial and SOA record.
pub fn soa_response(req: &mut Request, msg: &[u8], now: u64) -> Result<Record, XfrInError> {
    let records = req.check(msg, true, now)?;
    if msg[2] & 0x04 == 0 {
        return Err(XfrInError::Invalid("the SOA answer is not authoritative".into()));
    }
    let r = records
        .iter()
        .find(|r| r.section == 1 && r.rtype == rtype::SOA && r.owner.as_wire().eq_ignore_ascii_case(req.zone.as_wire()))
        .ok_or_else(|| XfrInError::Invalid("no SOA in the answer".into()))?;
    let rdata = rdata::decompress(rtype::SOA, msg, r.rdata.start, r.rdata.len())
        .map_err(|_| XfrInError::Malformed("bad SOA rdata".into()))?;
    soa_serial(&rdata).ok_or_else(|| XfrInError::Malformed("bad SOA rdata".into()))?;
    Ok(Record { owner: req.zone.clone(), rtype: rtype::SOA, ttl: r.ttl, rdata: rdata.into() })
}

/// Limits on one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_messages: 1 << 20, max_bytes: 4 << 30, max_records: 50_000_000 }
    }
}

/// What a complete transfer holds.
#[derive(Debug, Clone)]
pub enum Transferred {
    /// The primary has nothing newer than `soa` (ours or older).
    UpToDate { soa: Record },
    /// The whole zone (from an AXFR, or an IXFR answered with the whole zone).
    Full { zone: Box<Zone> },
    /// Changes from our serial to the primary's.
    Incremental { changesets: Vec<Changeset> },
}

enum State {
    /// Before the first record.
    Start,
    /// After the first SOA (the primary's), before the second record.
    AfterFirst,
    Full,
    /// Incremental: reading the removals of the last changeset (after its old SOA).
    Removing,
    /// Incremental: reading the additions (after its new SOA).
    Adding,
    /// The closing SOA was read.
    Done,
}

/// A transfer in, fed one response message at a time.
pub struct Incoming {
    req: Request,
    /// Our serial (IXFR), to recognise "up to date" and the first changeset.
    ours: Option<u32>,
    limits: Limits,
    messages: usize,
    bytes: usize,
    records: usize,
    state: State,
    first: Option<Record>,
    zone: Option<Zone>,
    changesets: Vec<Changeset>,
    /// Set when the stream ended with the closing SOA and nothing may follow.
    up_to_date: bool,
}

impl Incoming {
    /// For the request `req` (AXFR or IXFR; for IXFR `ours` is the serial we asked from).
    pub fn new(req: Request, ours: Option<u32>, limits: Limits) -> Incoming {
        Incoming {
            req,
            ours,
            limits,
            messages: 0,
            bytes: 0,
            records: 0,
            state: State::Start,
            first: None,
            zone: None,
            changesets: Vec::new(),
            up_to_date: false,
        }
    }

    pub fn request(&self) -> &Request {
        &self.req
    }

    /// Messages and octets read so far.
    pub fn progress(&self) -> (usize, usize) {
        (self.messages, self.bytes)
    }

    /// Reads one response message. Ok(true) when the transfer is complete (nothing more
    /// must come).
    pub fn feed(&mut self, msg: &[u8], now: u64) -> Result<bool, XfrInError> {
        if matches!(self.state, State::Done) {
            return Err(XfrInError::Invalid("a message after the closing SOA".into()));
        }
        self.messages += 1;
        self.bytes += msg.len();
        if self.messages > self.limits.max_messages {
            return Err(XfrInError::Limit(format!("more than {} messages", self.limits.max_messages)));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(XfrInError::Limit(format!("more than {} octets", self.limits.max_bytes)));
        }
        let first_message = self.messages == 1;
        let records = self.req.check(msg, first_message, now)?;
        let answers: Vec<_> = records.into_iter().filter(|r| r.section == 1).collect();
        if answers.is_empty() {
            return Err(XfrInError::Malformed("a message without records".into()));
        }
        let n = answers.len();
        for (i, r) in answers.into_iter().enumerate() {
            if matches!(self.state, State::Done) {
                return Err(XfrInError::Invalid("records after the closing SOA".into()));
            }
            self.records += 1;
            if self.records > self.limits.max_records {
                return Err(XfrInError::Limit(format!("more than {} records", self.limits.max_records)));
            }
            if r.class != CLASS_IN {
                return Err(XfrInError::Invalid(format!("{} has class {}, not IN", r.owner, r.class)));
            }
            if rdata::is_meta(r.rtype) {
                return Err(XfrInError::Invalid(format!("{} has meta type {}", r.owner, r.rtype)));
            }
            if !r.owner.ends_with(&self.req.zone) {
                return Err(XfrInError::Invalid(format!("{} is outside the zone {}", r.owner, self.req.zone)));
            }
            let rd = rdata::decompress(r.rtype, msg, r.rdata.start, r.rdata.len())
                .map_err(|_| XfrInError::Malformed(format!("bad rdata at {}", r.owner)))?;
            if r.rtype == rtype::SOA && !r.owner.as_wire().eq_ignore_ascii_case(self.req.zone.as_wire()) {
                return Err(XfrInError::Invalid(format!("an SOA at {}, below the apex", r.owner)));
            }
            if r.rtype == rtype::SOA && soa_serial(&rd).is_none() {
                return Err(XfrInError::Malformed("bad SOA rdata".into()));
            }
            let rec = Record { owner: r.owner.to_lowercase(), rtype: r.rtype, ttl: r.ttl, rdata: rd.into() };
            let last_of_message = i + 1 == n;
            self.record(rec, last_of_message)?;
        }
        match self.state {
            State::Done if !self.req.settled() => {
                Err(XfrInError::Tsig("the last message of the transfer is not signed".into()))
            }
            State::Done => Ok(true),
            // One SOA alone: up to date (IXFR, RFC 1995 §2/§4).
            State::AfterFirst if self.req.qtype == rtype::IXFR && first_message => {
                let serial = self.first_serial();
                match self.ours {
                    Some(o) if !serial_gt(serial, o) => {
                        if !self.req.settled() {
                            return Err(XfrInError::Tsig("the answer is not signed".into()));
                        }
                        self.up_to_date = true;
                        self.state = State::Done;
                        Ok(true)
                    }
                    _ => Err(XfrInError::UseTcp(serial)),
                }
            }
            _ => Ok(false),
        }
    }

    fn first_serial(&self) -> u32 {
        self.first.as_ref().and_then(|s| soa_serial(&s.rdata)).expect("the first record is a checked SOA")
    }

    fn record(&mut self, rec: Record, last_of_message: bool) -> Result<(), XfrInError> {
        let is_soa = rec.rtype == rtype::SOA;
        let serial = if is_soa { soa_serial(&rec.rdata) } else { None };
        match self.state {
            State::Start => {
                if !is_soa {
                    return Err(XfrInError::Invalid("the transfer does not start with the zone's SOA".into()));
                }
                self.first = Some(rec);
                self.state = State::AfterFirst;
            }
            State::AfterFirst => {
                let incremental = is_soa && self.req.qtype == rtype::IXFR;
                if incremental {
                    // The first changeset starts at our serial.
                    if serial != self.ours {
                        return Err(XfrInError::Invalid(format!(
                            "the first change starts at serial {}, not ours ({})",
                            serial.unwrap_or(0),
                            self.ours.unwrap_or(0)
                        )));
                    }
                    self.changesets.push(Changeset { soa_from: Some(rec), ..Default::default() });
                    self.state = State::Removing;
                } else if is_soa {
                    // AXFR of a zone with only its SOA: SOA, SOA.
                    self.start_full()?;
                    self.close_full(rec, last_of_message)?;
                } else {
                    self.start_full()?;
                    self.add_full(rec)?;
                    self.state = State::Full;
                }
            }
            State::Full => {
                if is_soa {
                    self.close_full(rec, last_of_message)?;
                } else {
                    self.add_full(rec)?;
                }
            }
            State::Removing => {
                let cs = self.changesets.last_mut().expect("a changeset under way");
                if is_soa {
                    let from = cs.soa_from.as_ref().and_then(|s| soa_serial(&s.rdata)).unwrap_or(0);
                    let to = serial.unwrap_or(0);
                    if !serial_gt(to, from) {
                        return Err(XfrInError::Invalid(format!("a change from serial {from} to {to}, not upwards")));
                    }
                    cs.soa_to = Some(rec);
                    self.state = State::Adding;
                } else {
                    cs.removed.push(rec);
                }
            }
            State::Adding => {
                if is_soa {
                    let last = self.first_serial();
                    let reached =
                        self.changesets.last().and_then(|c| c.soa_to.as_ref()).and_then(|s| soa_serial(&s.rdata));
                    if reached == Some(last) && serial == Some(last) {
                        if !last_of_message {
                            return Err(XfrInError::Invalid("records after the closing SOA".into()));
                        }
                        if Some(&rec) != self.first.as_ref() {
                            return Err(XfrInError::Invalid("the closing SOA differs from the first".into()));
                        }
                        self.state = State::Done;
                    } else if serial == reached {
                        self.changesets.push(Changeset { soa_from: Some(rec), ..Default::default() });
                        self.state = State::Removing;
                    } else {
                        return Err(XfrInError::Invalid(format!(
                            "a change starts at serial {}, where the one before ended at {}",
                            serial.unwrap_or(0),
                            reached.unwrap_or(0)
                        )));
                    }
                } else {
                    self.changesets.last_mut().expect("a changeset under way").added.push(rec);
                }
            }
            State::Done => return Err(XfrInError::Invalid("records after the closing SOA".into())),
        }
        Ok(())
    }

    fn start_full(&mut self) -> Result<(), XfrInError> {
        let mut z = Zone::new(&self.req.zone);
        let soa = self.first.as_ref().expect("first SOA read");
        z.insert(&soa.owner, soa.rtype, soa.ttl, &soa.rdata, SrcPos::default())
            .map_err(|e| XfrInError::Invalid(e.to_string()))?;
        self.zone = Some(z);
        Ok(())
    }

    fn add_full(&mut self, rec: Record) -> Result<(), XfrInError> {
        let z = self.zone.as_mut().expect("a zone under way");
        z.insert(&rec.owner, rec.rtype, rec.ttl, &rec.rdata, SrcPos::default())
            .map_err(|e| XfrInError::Invalid(e.to_string()))?;
        Ok(())
    }

    fn close_full(&mut self, rec: Record, last_of_message: bool) -> Result<(), XfrInError> {
        if Some(&rec) != self.first.as_ref() {
            return Err(XfrInError::Invalid(format!(
                "an SOA with serial {} inside a transfer of serial {}",
                soa_serial(&rec.rdata).unwrap_or(0),
                self.first_serial()
            )));
        }
        if !last_of_message {
            return Err(XfrInError::Invalid("records after the closing SOA".into()));
        }
        self.state = State::Done;
        Ok(())
    }

    /// The result, once [`Incoming::feed`] returned true; [`XfrInError::Incomplete`] if the
    /// stream ended before.
    pub fn finish(self) -> Result<Transferred, XfrInError> {
        if !matches!(self.state, State::Done) {
            return Err(XfrInError::Incomplete);
        }
        let first = self.first.expect("a finished transfer has its SOA");
        if self.up_to_date {
            return Ok(Transferred::UpToDate { soa: first });
        }
        match self.zone {
            Some(z) => Ok(Transferred::Full { zone: Box::new(z) }),
            None => Ok(Transferred::Incremental { changesets: self.changesets }),
        }
    }
}

/// Applies IXFR changesets to a copy of the zone with [`Zone::apply_strict`] (the same
/// checks as a journal replay): each must start at the serial the zone is at, every record
/// removed must be there (with its TTL), every record added must not be.
pub fn apply_strict(zone: &mut Zone, changesets: &[Changeset]) -> Result<(), XfrInError> {
    for cs in changesets {
        zone.apply_strict(cs).map_err(|e| XfrInError::Invalid(format!("IXFR {e}")))?;
    }
    Ok(())
}
