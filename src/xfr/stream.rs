//! The engine under AXFR and IXFR: fills one message at a time from a source of records,
//! then signs it.

use super::message::{Compressor, MessageWriter, Options, ResponseHead};
use super::{Signer, XfrError};

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
    fn pending(&self) -> (String, u16);
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
    /// source is done.
    pub fn fill(&mut self, src: &mut impl Source, buf: &mut [u8]) -> Result<(usize, bool), XfrError> {
        let reserve = self.reserve();
        let limit = self.opts.max_len.min(buf.len());
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
                        let (owner, rtype) = src.pending();
                        return Err(XfrError::RecordTooBig { owner, rtype, limit });
                    }
                    break;
                }
            }
        }
        let len = w.finish(self.opts.edns_udp_size);
        Ok((len, src.done()))
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
