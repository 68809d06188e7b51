//! Zone transfers out and TSIG, as pure protocol code: request bytes in, response messages
//! out, one at a time into the caller's buffer.
//!
//! - [`request`]: reads a transfer request (the question, the client's SOA of an IXFR, EDNS,
//!   where its TSIG is).
//! - [`tsig`]: keys, verifying signed requests, signing responses, single and multi-message
//!   (RFC 8945).
//! - [`message`]: the message writer shared by both transfers (name compression within a
//!   message, room kept for OPT and TSIG).
//! - [`axfr`]: the full zone (RFC 5936); [`ixfr`]: the changes since the client's serial
//!   (RFC 1995).
//!
//! Nothing here owns a socket, reads a clock or touches a file: time is a parameter
//! (seconds since the Unix epoch), records come from iterators the caller owns, and the
//! control thread moves the bytes. A transfer never holds more than one message.

pub mod axfr;
pub mod ixfr;
pub mod message;
pub mod request;
mod stream;
pub mod tsig;

pub use axfr::Axfr;
pub use ixfr::{Ixfr, IxfrKind};
pub use message::{MessageWriter, Options, ResponseHead};
pub use request::{parse_request, Request, RequestError};
pub use stream::RecordCursor;
pub use tsig::{Algorithm, Key, RequestTsig, Signer, TsigFailure};

use crate::zone::{Record, RecordRef};

/// Why a transfer cannot go on. The caller ends the transfer (and, over TCP, may close the
/// connection: part of the zone has gone out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    #[error("the transfer does not start with an SOA record")]
    NoSoa,
    #[error("a record of {owner} type {rtype} does not fit in a message of {limit} octets")]
    RecordTooBig { owner: String, rtype: u16, limit: usize },
    #[error("a message of {0} octets cannot hold the header, question, OPT and TSIG")]
    SmallBuffer(usize),
}

/// A resource record as the transfer writers read it: an uncompressed owner name, type,
/// TTL and uncompressed rdata (class IN). Implemented by the zone's records, owned and
/// borrowed, so a transfer can stream from whatever the caller holds.
pub trait Rr {
    fn owner(&self) -> &[u8];
    fn rtype(&self) -> u16;
    fn ttl(&self) -> u32;
    fn rdata(&self) -> &[u8];
}

impl Rr for Record {
    fn owner(&self) -> &[u8] {
        self.owner.as_wire()
    }
    fn rtype(&self) -> u16 {
        self.rtype
    }
    fn ttl(&self) -> u32 {
        self.ttl
    }
    fn rdata(&self) -> &[u8] {
        &self.rdata
    }
}

impl Rr for RecordRef<'_> {
    fn owner(&self) -> &[u8] {
        self.owner.as_wire()
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

impl<T: Rr + ?Sized> Rr for &T {
    fn owner(&self) -> &[u8] {
        (**self).owner()
    }
    fn rtype(&self) -> u16 {
        (**self).rtype()
    }
    fn ttl(&self) -> u32 {
        (**self).ttl()
    }
    fn rdata(&self) -> &[u8] {
        (**self).rdata()
    }
}

/// The UDP payload size in the OPT of an error response.
const ERROR_EDNS_SIZE: u16 = 1232;

/// Writes a response with no records to `req`: its ID, RD and opcode, the question, `rcode`,
/// an OPT (our payload size, 1232) when the request had one (RFC 6891 §7, as Knot answers),
/// and a TSIG signed by `signer` when the request was signed (e.g. REFUSED after a good
/// TSIG but an ACL that says no). Returns the message length.
pub fn write_error(
    req: &Request,
    rcode: u8,
    signer: Option<&mut Signer>,
    buf: &mut [u8],
    now: u64,
) -> Result<usize, message::NoRoom> {
    let head = req.head();
    let mut opts = Options::tcp();
    opts.max_len = buf.len().min(u16::MAX as usize);
    let edns = req.edns_udp_size.map(|_| ERROR_EDNS_SIZE);
    let reserve = signer.as_ref().map_or(0, |s| s.reserve()) + edns.map_or(0, |_| message::OPT_LEN);
    let mut comp = message::Compressor::new();
    let mut w = MessageWriter::begin(buf, &head, opts.max_len, reserve, &mut comp)?;
    w.set_rcode(rcode);
    let len = w.finish(edns);
    match signer {
        Some(s) => s.sign(buf, len, now),
        None => Ok(len),
    }
}

#[cfg(test)]
mod tests;
