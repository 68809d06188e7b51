//! The one dispatch of a message that reaches the control side, shared by the messages the
//! run loops hand over (UDP: `handoff`) and DNS over TCP and TLS (`tcp`): what kind of
//! message it is, and how a query is answered — signed when it carries a TSIG, else by the
//! engine. What differs by transport stays with the caller: a transfer is streamed over TCP
//! and answered in one datagram (IXFR) over UDP, and the answer's room differs.

use super::transfer::{signed_query, SignedQuery};
use crate::wire::message::opcode;
use crate::xfr::tsig::Key;

/// What a message asks of the control side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// NOTIFY (opcode 4), request or response: for the zone manager (`handoff::notify_in`).
    Notify,
    /// A QUERY for AXFR or IXFR: for `transfer` (IXFR only over UDP).
    Transfer { ixfr: bool },
    /// Anything else: a query for the engine, signed or not (UPDATE gets its NOTIMP there).
    Query,
}

/// The kind of `msg` (a whole DNS message, not yet checked: a short or odd one is a
/// [`Kind::Query`], and the engine answers it FORMERR or drops it).
pub fn kind(msg: &[u8]) -> Kind {
    if msg.len() > 2 && (msg[2] >> 3) & 0x0f == opcode::NOTIFY {
        return Kind::Notify;
    }
    if crate::wire::message::transfer_query(msg) {
        return Kind::Transfer { ixfr: crate::xfr::parse_request(msg).is_ok_and(|r| r.is_ixfr()) };
    }
    Kind::Query
}

/// How [`answer_query`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// A signed query: the engine's answer signed with its key, or the TSIG error
    /// (NOTAUTH with BADKEY/BADSIG/BADTIME, FORMERR for a malformed TSIG), in `buf[..len]`.
    Signed(usize),
    /// An unsigned query: the engine's answer in `buf[..len]`.
    Plain(usize),
    /// Nothing to send.
    Nothing,
}

/// Answers the query `msg` into `buf`: when it carries a TSIG, checked against `keys()`
/// (asked for only then) and the engine's answer signed within `buf[..signed_room]`;
/// otherwise `engine` answers the query copied to the start of `buf`. `engine(buf, len)`
/// answers the query in `buf[..len]` in place and gives the answer's length, or None.
pub fn answer_query(
    msg: &[u8],
    keys: impl FnOnce() -> Vec<Key>,
    buf: &mut [u8],
    signed_room: usize,
    now: u64,
    mut engine: impl FnMut(&mut [u8], usize) -> Option<usize>,
) -> Answered {
    let room = signed_room.min(buf.len());
    match signed_query(msg, keys, &mut buf[..room], now, &mut engine) {
        SignedQuery::Reply(len) => Answered::Signed(len),
        SignedQuery::Nothing => Answered::Nothing,
        SignedQuery::Unsigned if msg.len() > buf.len() => Answered::Nothing,
        SignedQuery::Unsigned => {
            buf[..msg.len()].copy_from_slice(msg);
            engine(buf, msg.len()).map_or(Answered::Nothing, Answered::Plain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfr::tsig::{Algorithm, Signer};

    fn query(opcode: u8, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, opcode << 3, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x03com\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(&query(opcode::NOTIFY, 6)), Kind::Notify);
        assert_eq!(kind(&query(0, 252)), Kind::Transfer { ixfr: false });
        assert_eq!(kind(&query(0, 1)), Kind::Query);
        assert_eq!(kind(&query(5, 6)), Kind::Query, "UPDATE: the engine's NOTIMP");
        assert_eq!(kind(&[0x12]), Kind::Query);
        assert_eq!(kind(&[]), Kind::Query);
    }

    /// The engine stand-in: sets QR and returns the message as it is.
    fn echo(buf: &mut [u8], len: usize) -> Option<usize> {
        buf[2] |= 0x80;
        Some(len)
    }

    #[test]
    fn unsigned_queries_go_to_the_engine_and_signed_ones_are_answered_signed() {
        let name = crate::wire::name::Name::parse_text(b"k.", None).unwrap();
        let key = Key::new(&name, Algorithm::HmacSha256, &[7; 32]);
        let now = 1_700_000_000;
        let mut buf = [0u8; 512];
        let q = query(0, 1);
        let mut asked = false;
        let keys = || {
            asked = true;
            vec![key.clone()]
        };
        assert_eq!(answer_query(&q, keys, &mut buf, 512, now, echo), Answered::Plain(q.len()));
        assert!(!asked, "keys are looked up only for a message with additional records");
        assert_eq!(buf[2] & 0x80, 0x80);

        // Signed with the key: the answer is signed too (a TSIG after the echoed query).
        let mut b = vec![0u8; 512];
        b[..q.len()].copy_from_slice(&q);
        let n = Signer::request(&key).sign(&mut b, q.len(), now).unwrap();
        let r = answer_query(&b[..n], || vec![key.clone()], &mut buf, 512, now, echo);
        let Answered::Signed(len) = r else { panic!("{r:?}") };
        assert!(len > q.len() && buf[2] & 0x80 != 0 && buf[3] & 0x0f == 0, "{r:?}");
        // An unknown key: its TSIG error (NOTAUTH), the engine not asked.
        let r = answer_query(&b[..n], Vec::new, &mut buf, 512, now, |_: &mut [u8], _| -> Option<usize> {
            panic!("the engine answered a query whose TSIG failed")
        });
        let Answered::Signed(_) = r else { panic!("{r:?}") };
        assert_eq!(buf[3] & 0x0f, 9, "NOTAUTH");
        // No room for the query: nothing.
        let mut tiny = [0u8; 8];
        assert_eq!(answer_query(&q, Vec::new, &mut tiny, 8, 0, echo), Answered::Nothing);
    }
}
