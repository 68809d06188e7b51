//! AXFR out (RFC 5936): the zone's SOA, every other record, the SOA again; as many records
//! per message as fit (or one, for old peers), each message signed in turn when the request
//! was. Records are pulled from the caller's iterator as messages are written, so a large
//! zone is never held as messages.

use super::message::{MessageWriter, Options};
use super::stream::{owner_text, Offer, RecordCursor, Sender, Source};
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
pub(crate) struct FullZone<C> {
    soa: Record,
    records: C,
    phase: Phase,
}

impl<C: RecordCursor> FullZone<C> {
    /// `records` must start with the zone's SOA; a later SOA of the same owner (the closing
    /// one, if the caller's sequence has it) is skipped, as the SOA is sent last anyway.
    pub fn new(mut records: C) -> Result<FullZone<C>, XfrError> {
        let soa = {
            let first = records.peek().ok_or(XfrError::NoSoa)?;
            if first.rtype() != rtype::SOA {
                return Err(XfrError::NoSoa);
            }
            Record {
                owner: crate::wire::name::Name::from_wire(first.owner()).map_err(|_| XfrError::NoSoa)?,
                rtype: rtype::SOA,
                ttl: first.ttl(),
                rdata: first.rdata().into(),
            }
        };
        records.advance();
        Ok(FullZone { soa, records, phase: Phase::Open })
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }
}

impl<I: Iterator> FullZone<std::iter::Peekable<I>>
where
    I::Item: Rr,
{
    /// The same from an iterator of records.
    pub fn from_iter(records: impl IntoIterator<IntoIter = I>) -> Result<Self, XfrError> {
        FullZone::new(records.into_iter().peekable())
    }
}

impl<C: RecordCursor> Source for FullZone<C> {
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
                    // The record lent by the cursor lives in this block only.
                    let written = {
                        let apex = self.soa.owner.as_wire();
                        let Some(r) = self.records.peek() else {
                            self.phase = Phase::Close;
                            continue;
                        };
                        if r.rtype() == rtype::SOA && r.owner().eq_ignore_ascii_case(apex) {
                            None
                        } else {
                            Some(w.push(&r))
                        }
                    };
                    match written {
                        // A closing SOA in the input: skipped.
                        None => self.records.advance(),
                        Some(true) => {
                            self.records.advance();
                            return Offer::Written;
                        }
                        Some(false) => return Offer::NoRoom,
                    }
                }
                Phase::Done => unreachable!("a finished source is not offered a message"),
            }
        }
    }

    fn pending(&mut self) -> (String, u16) {
        if self.phase == Phase::Body {
            if let Some(r) = self.records.peek() {
                return (owner_text(r.owner()), r.rtype());
            }
        }
        (self.soa.owner.to_string(), rtype::SOA)
    }
}

/// An AXFR response being written.
pub struct Axfr<C> {
    sender: Sender,
    zone: FullZone<C>,
    finished: bool,
}

impl<I: Iterator> Axfr<std::iter::Peekable<I>>
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
    ) -> Result<Self, XfrError> {
        Axfr::from_cursor(req, records.into_iter().peekable(), signer, opts)
    }
}

impl<C: RecordCursor> Axfr<C> {
    /// The same with the records from a [`RecordCursor`] (e.g. a snapshot's, lent one at a
    /// time without allocating).
    pub fn from_cursor(req: &Request, records: C, signer: Option<Signer>, opts: Options) -> Result<Self, XfrError> {
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
