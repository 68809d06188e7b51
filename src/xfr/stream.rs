//! The engine under AXFR and IXFR: fills one message at a time from a source of records,
//! then signs it.

use super::message::{Compressor, MessageWriter, Options, ResponseHead, MAX_MESSAGE};
use super::{Rr, Signer, XfrError};
use crate::snapshot::{RecordSlices, SnapshotRecords};

/// Records handed to a transfer one at a time, each lent until the cursor moves past it, so
/// that a source which decodes records into buffers of its own (a snapshot) gives them out
/// without allocating. Any iterator of records is one, through [`std::iter::Peekable`].
pub trait RecordCursor {
    type Rec<'a>: Rr
    where
        Self: 'a;
    /// The current record; None at the end.
    fn peek(&mut self) -> Option<Self::Rec<'_>>;
    /// Moves past the current record.
    fn advance(&mut self);
}

impl<I: Iterator> RecordCursor for std::iter::Peekable<I>
where
    I::Item: Rr,
{
    type Rec<'a>
        = &'a I::Item
    where
        Self: 'a;
    fn peek(&mut self) -> Option<&I::Item> {
        std::iter::Peekable::peek(self)
    }
    fn advance(&mut self) {
        self.next();
    }
}

impl RecordCursor for SnapshotRecords {
    type Rec<'a> = RecordSlices<'a>;
    fn peek(&mut self) -> Option<RecordSlices<'_>> {
        SnapshotRecords::peek(self)
    }
    fn advance(&mut self) {
        SnapshotRecords::advance(self)
    }
}

impl Rr for RecordSlices<'_> {
    fn owner(&self) -> &[u8] {
        self.owner
    }
    fn rtype(&self) -> u16 {
        self.rtype
    }
    fn ttl(&self) -> u32 {
        self.ttl
    }
    fn rdata(&self) -> &[u8] {
        self.rdata
    }
}

/// What a source did with the message it was offered.
pub(crate) enum Offer {
    /// Wrote one record.
    Written,
    /// Its next record does not fit; it stays next.
    NoRoom,
}

/// A sequence of records that can be offered to a message one at a time.
pub(crate) trait Source {
    /// Every record has been written.
    fn done(&self) -> bool;
    /// Writes the next record to `w` (only called when not done).
    fn offer(&mut self, w: &mut MessageWriter<'_>) -> Offer;
    /// The next record's owner and type, for an error message.
    fn pending(&mut self) -> (String, u16);
}

/// What every message of one response shares.
pub(crate) struct Sender {
    pub head: ResponseHead,
    pub opts: Options,
    pub signer: Option<Signer>,
    comp: Compressor,
    pub messages: usize,
    pub records: usize,
}

impl Sender {
    pub fn new(head: ResponseHead, opts: Options, signer: Option<Signer>) -> Sender {
        Sender { head, opts, signer, comp: Compressor::new(), messages: 0, records: 0 }
    }

    fn reserve(&self) -> usize {
        self.opts.reserve(self.signer.as_ref().map_or(0, Signer::reserve))
    }

    /// Fills one message in `buf` from `src` (unsigned). Returns its length and whether the
    /// source is done. A record that does not fit alone in `opts.max_len` octets gets a
    /// message of up to `opts.big_record_len`.
    pub fn fill(&mut self, src: &mut impl Source, buf: &mut [u8]) -> Result<(usize, bool), XfrError> {
        let reserve = self.reserve();
        let mut limit = self.opts.max_len.min(buf.len());
        'message: loop {
            let mut w = MessageWriter::begin(buf, &self.head, limit, reserve, &mut self.comp)
                .map_err(|_| XfrError::SmallBuffer(limit))?;
            while !src.done() {
                match src.offer(&mut w) {
                    Offer::Written => {
                        self.records += 1;
                        if self.opts.one_rr_per_message {
                            break;
                        }
                    }
                    Offer::NoRoom => {
                        if w.answers() == 0 {
                            let big = self.opts.big_record_len.min(buf.len()).min(MAX_MESSAGE);
                            if big > limit {
                                // Nothing was taken from the source: the same record again.
                                limit = big;
                                continue 'message;
                            }
                            let (owner, rtype) = src.pending();
                            return Err(XfrError::RecordTooBig { owner, rtype, limit });
                        }
                        break;
                    }
                }
            }
            let len = w.finish(self.opts.edns_udp_size);
            // The next message may be long in coming (a slow reader): hold no table till then.
            self.comp.release();
            return Ok((len, src.done()));
        }
    }

    /// Signs the message in `buf[..len]` when there is a key, and counts it.
    pub fn seal(&mut self, buf: &mut [u8], len: usize, now: u64) -> Result<usize, XfrError> {
        let len = match &mut self.signer {
            // The room was reserved, so this cannot fail unless `buf` shrank.
            Some(s) => s.sign(buf, len, now).map_err(|_| XfrError::SmallBuffer(buf.len()))?,
            None => len,
        };
        self.messages += 1;
        Ok(len)
    }
}

/// Owner of a record in presentation form, for messages.
pub(crate) fn owner_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let _ = crate::wire::name::write_text(wire, &mut s);
    s
}
