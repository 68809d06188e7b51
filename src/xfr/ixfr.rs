//! IXFR out (RFC 1995): what the client with serial N needs to reach our current version.
//!
//! - The client is current (its serial is ours or later, RFC 1982): our SOA alone (§2).
//! - We hold the changes from N to now: SOA(new), then per changeset SOA(old), the records
//!   removed, SOA(new of that step), the records added; then SOA(new) (§4).
//! - Otherwise the whole zone, condensed, as AXFR sends it: SOA, every record, SOA (§4).
//!
//! Over TCP this is a sequence of messages like AXFR's. Over UDP, [`Ixfr::udp_message`]
//! sends the answer if it fits in one message and otherwise our SOA alone, which tells the
//! client to retry over TCP (§2).

use std::cmp::Ordering;

use super::axfr::FullZone;
use super::message::{MessageWriter, Options};
use super::stream::{owner_text, Offer, Sender, Source};
use super::{Request, Rr, Signer, XfrError};
use crate::wire::serial;
use crate::zone::{soa_serial, Changeset, Record};

/// Which answer an IXFR request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IxfrKind {
    /// The client has our serial (or a later one): our SOA alone.
    UpToDate,
    /// The changes since the client's serial, in this many changesets.
    Incremental { changesets: usize },
    /// No history from the client's serial: the whole zone.
    Full,
}

fn serial_of(r: &Option<Record>) -> Option<u32> {
    soa_serial(&r.as_ref()?.rdata)
}

/// The changesets that lead from `client` to `current`: the index of the one that starts
/// at `client`, if from there every changeset has both SOAs, each starts where the one
/// before ended, and the last ends at `current`.
pub fn history_from(changesets: &[Changeset], client: u32, current: u32) -> Option<usize> {
    let start = changesets.iter().position(|c| serial_of(&c.soa_from) == Some(client))?;
    let mut at = client;
    for c in &changesets[start..] {
        if serial_of(&c.soa_from)? != at {
            return None;
        }
        at = serial_of(&c.soa_to)?;
    }
    (at == current).then_some(start)
}

/// Where the incremental sequence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pos {
    Head,
    From(usize),
    Removed(usize, usize),
    To(usize),
    Added(usize, usize),
    Tail,
    Done,
}

/// The records of an incremental answer, read in place from the changesets.
struct Incremental<C> {
    soa: Record,
    changesets: C,
    /// The first changeset sent.
    start: usize,
    pos: Pos,
}

impl<C: AsRef<[Changeset]>> Incremental<C> {
    fn new(soa: Record, changesets: C, start: usize) -> Incremental<C> {
        Incremental { soa, changesets, start, pos: Pos::Head }
    }

    fn current(&self) -> Option<&Record> {
        let cs = self.changesets.as_ref();
        match self.pos {
            Pos::Head | Pos::Tail => Some(&self.soa),
            Pos::From(i) => cs[i].soa_from.as_ref(),
            Pos::Removed(i, j) => cs[i].removed.get(j),
            Pos::To(i) => cs[i].soa_to.as_ref(),
            Pos::Added(i, j) => cs[i].added.get(j),
            Pos::Done => None,
        }
    }

    /// Moves past the current record, and past empty lists.
    fn advance(&mut self) {
        let cs = self.changesets.as_ref();
        let mut p = match self.pos {
            Pos::Head => Pos::From(self.start),
            Pos::From(i) => Pos::Removed(i, 0),
            Pos::Removed(i, j) => Pos::Removed(i, j + 1),
            Pos::To(i) => Pos::Added(i, 0),
            Pos::Added(i, j) => Pos::Added(i, j + 1),
            Pos::Tail | Pos::Done => Pos::Done,
        };
        loop {
            p = match p {
                Pos::From(i) if i == cs.len() => Pos::Tail,
                Pos::Removed(i, j) if j == cs[i].removed.len() => Pos::To(i),
                Pos::Added(i, j) if j == cs[i].added.len() => Pos::From(i + 1),
                _ => break,
            };
        }
        self.pos = p;
    }
}

impl<C: AsRef<[Changeset]>> Source for Incremental<C> {
    fn done(&self) -> bool {
        self.pos == Pos::Done
    }

    fn offer(&mut self, w: &mut MessageWriter<'_>) -> Offer {
        let Some(r) = self.current() else { unreachable!("changesets were checked to have their SOAs") };
        if !w.push(r) {
            return Offer::NoRoom;
        }
        self.advance();
        Offer::Written
    }

    fn pending(&mut self) -> (String, u16) {
        self.current().map_or((String::new(), 0), |r| (owner_text(r.owner()), r.rtype))
    }
}

/// Our SOA, once.
struct SoaOnly {
    soa: Record,
    sent: bool,
}

impl Source for SoaOnly {
    fn done(&self) -> bool {
        self.sent
    }

    fn offer(&mut self, w: &mut MessageWriter<'_>) -> Offer {
        if !w.push(&self.soa) {
            return Offer::NoRoom;
        }
        self.sent = true;
        Offer::Written
    }

    fn pending(&mut self) -> (String, u16) {
        (self.soa.owner.to_string(), self.soa.rtype)
    }
}

enum Answer<C, I: Iterator> {
    Soa(SoaOnly),
    Incremental(Incremental<C>),
    Full(FullZone<std::iter::Peekable<I>>),
}

impl<C: AsRef<[Changeset]>, I: Iterator> Answer<C, I>
where
    I::Item: Rr,
{
    fn fill(&mut self, sender: &mut Sender, buf: &mut [u8]) -> Result<(usize, bool), XfrError> {
        match self {
            Answer::Soa(s) => sender.fill(s, buf),
            Answer::Incremental(s) => sender.fill(s, buf),
            Answer::Full(s) => sender.fill(s, buf),
        }
    }
}

/// An IXFR response being written.
pub struct Ixfr<C, I: Iterator> {
    sender: Sender,
    answer: Answer<C, I>,
    kind: IxfrKind,
    soa: Record,
    finished: bool,
}

impl<C: AsRef<[Changeset]>, I: Iterator> Ixfr<C, I>
where
    I::Item: Rr,
{
    /// The response to the IXFR `req` (whose client serial [`Request::ixfr_serial`] gives),
    /// given our current SOA, the changesets we hold (`history`, oldest first, ending at the
    /// current version; those before the client's serial are skipped), and the whole zone
    /// in AXFR order, asked for only when the history does not reach back to the client's
    /// serial.
    pub fn new<F, J>(
        req: &Request,
        current_soa: Record,
        history: Option<C>,
        full_zone: F,
        signer: Option<Signer>,
        opts: Options,
    ) -> Result<Ixfr<C, I>, XfrError>
    where
        F: FnOnce() -> J,
        J: IntoIterator<IntoIter = I>,
    {
        let current = soa_serial(&current_soa.rdata).ok_or(XfrError::NoSoa)?;
        let sender = Sender::new(req.head(), opts, signer);
        let incremental = |client: u32| {
            let h = history?;
            let start = history_from(h.as_ref(), client, current)?;
            Some((h, start))
        };
        let (kind, answer) = match req.ixfr_serial {
            // The client is current or ahead (RFC 1982; serials 2^31 apart are not).
            Some(client) if matches!(serial::compare(client, current), Some(Ordering::Equal | Ordering::Greater)) => {
                (IxfrKind::UpToDate, Answer::Soa(SoaOnly { soa: current_soa.clone(), sent: false }))
            }
            // A request without the client's SOA (not an IXFR) gets the whole zone.
            client => match client.and_then(incremental) {
                Some((h, start)) => {
                    let n = h.as_ref().len() - start;
                    let inc = Incremental::new(current_soa.clone(), h, start);
                    (IxfrKind::Incremental { changesets: n }, Answer::Incremental(inc))
                }
                None => (IxfrKind::Full, Answer::Full(FullZone::from_iter(full_zone())?)),
            },
        };
        Ok(Ixfr { sender, answer, kind, soa: current_soa, finished: false })
    }

    /// Which answer this is.
    pub fn kind(&self) -> IxfrKind {
        self.kind
    }

    /// Writes the next message (TCP) into `buf` and returns its length, or None when the
    /// answer is complete.
    pub fn next_message(&mut self, buf: &mut [u8], now: u64) -> Result<Option<usize>, XfrError> {
        if self.finished {
            return Ok(None);
        }
        let (len, done) = self.answer.fill(&mut self.sender, buf)?;
        self.finished = done;
        self.sender.seal(buf, len, now).map(Some)
    }

    /// The one UDP message: the whole answer if it fits in `opts.max_len`, else our SOA
    /// alone (RFC 1995 §2).
    pub fn udp_message(mut self, buf: &mut [u8], now: u64) -> Result<usize, XfrError> {
        let (len, done) = match self.answer.fill(&mut self.sender, buf) {
            Ok(r) => r,
            Err(XfrError::RecordTooBig { .. }) => (0, false),
            Err(e) => return Err(e),
        };
        if done {
            return self.sender.seal(buf, len, now);
        }
        self.kind = IxfrKind::UpToDate;
        let mut soa = SoaOnly { soa: self.soa.clone(), sent: false };
        let (len, _) = self.sender.fill(&mut soa, buf)?;
        self.sender.seal(buf, len, now)
    }

    /// Messages written so far.
    pub fn messages(&self) -> usize {
        self.sender.messages
    }

    /// Records written so far.
    pub fn records(&self) -> usize {
        self.sender.records
    }

    /// The signer, with the last MAC sent.
    pub fn signer(&self) -> Option<&Signer> {
        self.sender.signer.as_ref()
    }
}
