//! AXFR out (RFC 5936): the zone's SOA, every other record, the SOA again; as many records
//! per message as fit (or one, for old peers), each message signed in turn when the request
//! was. Records are pulled from the caller's iterator as messages are written, so a large
//! zone is never held as messages.

use super::message::{MessageWriter, Options};
use super::stream::{owner_text, Offer, Sender, Source};
use super::{Request, Rr, Signer, XfrError};
use crate::wire::rdata::rtype;
use crate::zone::Record;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Body,
    Close,
    Done,
}

/// The records of a full transfer: the SOA, the rest, the SOA.
pub(crate) struct FullZone<I: Iterator> {
    soa: Record,
    records: I,
    /// Taken from `records` but not yet written.
    pending: Option<I::Item>,
    phase: Phase,
}

impl<I: Iterator> FullZone<I>
where
    I::Item: Rr,
{
    /// `records` must start with the zone's SOA; a later SOA of the same owner (the closing
    /// one, if the caller's sequence has it) is skipped, as the SOA is sent last anyway.
    pub fn new(records: impl IntoIterator<IntoIter = I>) -> Result<FullZone<I>, XfrError> {
        let mut records = records.into_iter();
        let first = records.next().ok_or(XfrError::NoSoa)?;
        if first.rtype() != rtype::SOA {
            return Err(XfrError::NoSoa);
        }
        let soa = Record {
            owner: crate::wire::name::Name::from_wire(first.owner()).map_err(|_| XfrError::NoSoa)?,
            rtype: rtype::SOA,
            ttl: first.ttl(),
            rdata: first.rdata().into(),
        };
        Ok(FullZone { soa, records, pending: None, phase: Phase::Open })
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }
}

impl<I: Iterator> Source for FullZone<I>
where
    I::Item: Rr,
{
    fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn offer(&mut self, w: &mut MessageWriter<'_>) -> Offer {
        loop {
            match self.phase {
                Phase::Open | Phase::Close => {
                    if !w.push(&self.soa) {
                        return Offer::NoRoom;
                    }
                    self.phase = if self.phase == Phase::Open { Phase::Body } else { Phase::Done };
                    return Offer::Written;
                }
                Phase::Body => {
                    let next = match self.pending.take() {
                        Some(r) => Some(r),
                        None => {
                            let apex = self.soa.owner.as_wire();
                            self.records
                                .by_ref()
                                .find(|r| !(r.rtype() == rtype::SOA && r.owner().eq_ignore_ascii_case(apex)))
                        }
                    };
                    let Some(r) = next else {
                        self.phase = Phase::Close;
                        continue;
                    };
                    if w.push(&r) {
                        return Offer::Written;
                    }
                    self.pending = Some(r);
                    return Offer::NoRoom;
                }
                Phase::Done => unreachable!("a finished source is not offered a message"),
            }
        }
    }

    fn pending(&self) -> (String, u16) {
        match (&self.pending, self.phase) {
            (Some(r), Phase::Body) => (owner_text(r.owner()), r.rtype()),
            _ => (self.soa.owner.to_string(), rtype::SOA),
        }
    }
}

/// An AXFR response being written.
pub struct Axfr<I: Iterator> {
    sender: Sender,
    zone: FullZone<I>,
    finished: bool,
}

impl<I: Iterator> Axfr<I>
where
    I::Item: Rr,
{
    /// A transfer answering `req` with `records` (the zone in AXFR order: the SOA first;
    /// the closing SOA may be there or not). `signer` signs every message (build it with
    /// [`Signer::response`] from the verified request).
    pub fn new(
        req: &Request,
        records: impl IntoIterator<IntoIter = I>,
        signer: Option<Signer>,
        opts: Options,
    ) -> Result<Axfr<I>, XfrError> {
        Ok(Axfr { sender: Sender::new(req.head(), opts, signer), zone: FullZone::new(records)?, finished: false })
    }

    /// Writes the next message into `buf` (which should hold `opts.max_len` octets; the
    /// message is never longer than `buf`) and returns its length, or None when the
    /// transfer is complete. `now` is the time to sign with.
    pub fn next_message(&mut self, buf: &mut [u8], now: u64) -> Result<Option<usize>, XfrError> {
        if self.finished {
            return Ok(None);
        }
        let (len, done) = self.sender.fill(&mut self.zone, buf)?;
        self.finished = done;
        self.sender.seal(buf, len, now).map(Some)
    }

    /// Messages written so far.
    pub fn messages(&self) -> usize {
        self.sender.messages
    }

    /// Records written so far (both SOAs included).
    pub fn records(&self) -> usize {
        self.sender.records
    }

    /// The SOA the transfer opens and closes with.
    pub fn soa(&self) -> &Record {
        self.zone.soa()
    }

    /// The signer, with the last MAC sent.
    pub fn signer(&self) -> Option<&Signer> {
        self.sender.signer.as_ref()
    }
}
