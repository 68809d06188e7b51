//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995) on the control thread: the request's
//! TSIG checked, the zone found, the zone's ACL asked, then a stream of messages built one at
//! a time as the connection drains, from records read out of the snapshot a node at a time
//! (so a large zone never sits in memory or in the output buffer whole).
//!
//! Denied by default: a zone without a configuration entry, or whose ACLs do not allow
//! `transfer` to the client's address and key, gets REFUSED. The first ACL that allows it
//! sets the transfer's format: as many records per message as fit (many-answers, the
//! default), or one (`transfer-format = "one-answer"`, for old secondaries). The protocol itself (message
//! layout, TSIG chaining, IXFR sequences) is `crate::xfr`; this module picks the data: the
//! zone's published snapshot (one consistent version, even while a reload swaps in the next)
//! and, for IXFR, its journal.
//!
//! A request that came over TLS (XoT, RFC 9103) is served the same way; ACLs with
//! `transport = "tls"` allow only such requests.
//!
//! [`signed_query`] gives any other query that carries a TSIG (a secondary's refresh SOA
//! query) the same check, and signs the engine's answer with the request's key.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::answer::catalog::{Apexes, Versioned};
use crate::answer::Catalog;
use crate::config::{Action, SharedConfig, TransferFormat};
use crate::journal::Journal;
use crate::snapshot::{Snapshot, SnapshotRecords};
use crate::wire::message::rcode;
use crate::xfr::message::Options;
use crate::xfr::tsig::{self, Key, Signer};
use crate::xfr::{self, Axfr, Ixfr, RequestError};
use crate::zone::Changeset;

/// Each zone's journal, by lowercased origin; republished with the catalog.
pub type SharedJournals = Arc<ArcSwap<Journals>>;

/// The served zones' journals by apex, published with each catalog version (and sharing
/// its apexes): IXFR takes a zone's history from here.
#[derive(Debug, Default)]
pub struct Journals {
    apexes: Arc<Apexes>,
    journals: Versioned<Option<Arc<Mutex<Journal>>>>,
}

impl Journals {
    pub fn new(apexes: Arc<Apexes>, journals: Versioned<Option<Arc<Mutex<Journal>>>>) -> Journals {
        assert_eq!(apexes.len(), journals.len(), "one journal or none per apex");
        Journals { apexes, journals }
    }

    /// The journal of the zone whose apex is `apex` (lowercase wire form).
    pub fn get(&self, apex: &[u8]) -> Option<&Arc<Mutex<Journal>>> {
        self.apexes.exact(apex).and_then(|i| self.journals.get(i).as_ref())
    }
}

/// What transfers need besides the catalog.
#[derive(Clone)]
pub struct Transfers {
    /// The running configuration (zones' ACLs, keys), replaced by reloads.
    pub config: SharedConfig,
    pub journals: SharedJournals,
    pub stats: Arc<TransferStats>,
}

impl Transfers {
    pub fn new(config: impl Into<SharedConfig>, journals: SharedJournals) -> Transfers {
        Transfers { config: config.into(), journals, stats: Arc::default() }
    }
}

/// Transfers out since the start.
#[derive(Debug, Default)]
pub struct TransferStats {
    pub axfr: AtomicU64,
    /// IXFR answered with changesets, with the whole zone, with the SOA alone.
    pub ixfr_incremental: AtomicU64,
    pub ixfr_full: AtomicU64,
    pub ixfr_current: AtomicU64,
    /// Over UDP (any of the three).
    pub ixfr_udp: AtomicU64,
    /// Refused by an ACL, for a zone we do not serve (NOTAUTH), or for a bad TSIG.
    pub refused: AtomicU64,
    pub notauth: AtomicU64,
    pub tsig_failures: AtomicU64,
    /// Transfers that ended with every message made.
    pub completed: AtomicU64,
    pub messages: AtomicU64,
}

impl std::fmt::Display for TransferStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = |c: &AtomicU64| c.load(Relaxed);
        write!(
            f,
            "axfr={} ixfr-incremental={} ixfr-full={} ixfr-current={} ixfr-udp={} completed={} messages={} \
             refused={} notauth={} tsig-failures={}",
            l(&self.axfr),
            l(&self.ixfr_incremental),
            l(&self.ixfr_full),
            l(&self.ixfr_current),
            l(&self.ixfr_udp),
            l(&self.completed),
            l(&self.messages),
            l(&self.refused),
            l(&self.notauth),
            l(&self.tsig_failures)
        )
    }
}

/// Counts a transfer's messages and its end, and logs the end.
fn counted(
    stats: Option<Arc<TransferStats>>,
    what: String,
    mut next: impl FnMut(&mut [u8], u64) -> Result<Option<usize>, xfr::XfrError> + Send + 'static,
) -> Stream {
    let t0 = std::time::Instant::now();
    let mut messages = 0u64;
    Box::new(move |b, now| {
        let r = next(b, now);
        match &r {
            Ok(Some(_)) => messages += 1,
            Ok(None) => {
                if let Some(s) = &stats {
                    s.completed.fetch_add(1, Relaxed);
                    s.messages.fetch_add(messages, Relaxed);
                }
                log::info!("{what}: {messages} messages in {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0);
            }
            Err(e) => log::warn!("{what}: failed after {messages} messages: {e}"),
        }
        r
    })
}

/// Produces the next message of a transfer into a buffer; `Ok(None)` when done.
pub type Stream = Box<dyn FnMut(&mut [u8], u64) -> Result<Option<usize>, xfr::XfrError> + Send>;

/// How a transfer request is answered.
pub enum Reply {
    /// One message (an error) in `buf[..len]`.
    Single(usize),
    /// A stream of messages.
    Stream(Stream),
    /// Nothing (not a request at all).
    Nothing,
}

/// Handles an AXFR or IXFR request over TCP from `from`, over TLS when `tls` (ACLs with
/// `transport = "tls"` allow only those). `buf` receives a single reply.
pub fn request(
    msg: &[u8],
    from: IpAddr,
    tls: bool,
    catalog: &Catalog,
    transfers: Option<&Transfers>,
    buf: &mut [u8],
    now: u64,
) -> Reply {
    respond(msg, from, tls, catalog, transfers, buf, now, None)
}

/// Handles an IXFR over UDP (RFC 1995 §2): the one message written into `buf` (at most
/// the request's EDNS size, else 512, and `buf`'s length): the answer when it fits, else our
/// SOA alone, which tells the client to ask over TCP. The same checks as over TCP (TSIG,
/// zone, ACL). None: nothing to send (not an IXFR request).
pub fn udp_ixfr(
    msg: &[u8],
    from: IpAddr,
    catalog: &Catalog,
    transfers: Option<&Transfers>,
    buf: &mut [u8],
    now: u64,
) -> Option<usize> {
    let req = xfr::parse_request(msg).ok().filter(|r| r.is_ixfr())?;
    let max = req.edns_udp_size.map_or(512, |s| usize::from(s).max(512)).min(buf.len());
    match respond(msg, from, false, catalog, transfers, buf, now, Some(max)) {
        Reply::Single(n) => Some(n),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    msg: &[u8],
    from: IpAddr,
    tls: bool,
    catalog: &Catalog,
    transfers: Option<&Transfers>,
    buf: &mut [u8],
    now: u64,
    udp: Option<usize>,
) -> Reply {
    let req = match xfr::parse_request(msg) {
        Ok(r) => r,
        Err(RequestError::Malformed(why)) => {
            return single(tsig::write_failure(msg, &tsig::TsigFailure::Malformed(why), buf, now))
        }
        Err(_) => return Reply::Nothing,
    };
    let config = transfers.map(|t| t.config.load());
    let keys: Vec<Key> = config.as_ref().map_or_else(Vec::new, |c| c.keys.iter().map(Key::from).collect());
    let stats = transfers.map(|t| t.stats.clone());
    let count = |c: fn(&TransferStats) -> &AtomicU64| {
        if let Some(s) = &stats {
            c(s).fetch_add(1, Relaxed);
        }
    };
    let verified = match tsig::verify_request(msg, &keys, now) {
        Ok(v) => v,
        Err(f) => {
            count(|s| &s.tsig_failures);
            log::warn!("transfer of {} to {from} refused: TSIG: {f}", req.qname);
            return single(tsig::write_failure(msg, &f, buf, now));
        }
    };
    let mut signer = verified.as_ref().map(Signer::response);
    let qname = req.qname.to_lowercase();
    let Some(snap) = catalog.zone(qname.as_wire()) else {
        count(|s| &s.notauth);
        return single(xfr::write_error(&req, rcode::NOTAUTH, signer.as_mut(), buf, now));
    };
    // The ACL that allows the transfer decides its format.
    let allowed = config.as_ref().and_then(|c| {
        let z = c.zone(&qname)?;
        c.allowed_over(z, Action::Transfer, from, verified.as_ref().map(|v| v.key.name()), tls)
            .map(|a| a.transfer_format)
    });
    let Some(format) = allowed else {
        count(|s| &s.refused);
        log::warn!("transfer of {} to {from}{} refused by the zone's ACL", req.qname, over(tls));
        return single(xfr::write_error(&req, rcode::REFUSED, signer.as_mut(), buf, now));
    };
    let mut opts = Options::tcp_transfer();
    // One record per message for old secondaries (BIND's transfer-format one-answer).
    opts.one_rr_per_message = format == TransferFormat::OneAnswer;
    if req.edns_udp_size.is_some() {
        opts.edns_udp_size = Some(1232);
    }
    let snap: Arc<Snapshot> = snap.clone();
    // The records come from the snapshot a node at a time, as the messages are made.
    let mut records = SnapshotRecords::new(snap.clone());
    let Some(soa) = records.peek().and_then(|r| r.to_record().ok()) else {
        return single(xfr::write_error(&req, rcode::SERVFAIL, signer.as_mut(), buf, now));
    };
    let serial = snap.serial();
    if req.is_axfr() {
        count(|s| &s.axfr);
        let what = format!("AXFR of {} serial {serial} to {from}{}", req.qname, over(tls));
        // Records lent one at a time from the snapshot's decoder: nothing allocated per record.
        return match Axfr::from_cursor(&req, records, signer, opts) {
            Ok(mut x) => Reply::Stream(counted(stats, what, move |b, now| x.next_message(b, now))),
            Err(_) => Reply::Nothing,
        };
    }
    // IXFR: the journal's changes since the client's serial, or the whole zone.
    let history: Option<Vec<Changeset>> = match (req.ixfr_serial, transfers) {
        (Some(serial), Some(t)) => t
            .journals
            .load()
            .get(qname.as_wire())
            .and_then(|j| j.lock().ok().and_then(|j| j.changes_since(serial).ok().flatten())),
        _ => None,
    };
    // `records` still starts with the SOA.
    if let Some(max) = udp {
        let mut opts = Options::udp(max);
        if req.edns_udp_size.is_some() {
            opts.edns_udp_size = Some(max as u16);
        }
        count(|s| &s.ixfr_udp);
        return match Ixfr::new(&req, soa, history, move || records, signer, opts) {
            Ok(x) => {
                count_ixfr(&stats, x.kind());
                single(x.udp_message(&mut buf[..max], now).map_err(|_| xfr::message::NoRoom))
            }
            Err(_) => Reply::Nothing,
        };
    }
    match Ixfr::new(&req, soa, history, move || records, signer, opts) {
        Ok(mut x) => {
            count_ixfr(&stats, x.kind());
            let what = format!(
                "IXFR ({:?}) of {} serial {} -> {serial} to {from}{}",
                x.kind(),
                req.qname,
                req.ixfr_serial.unwrap_or(0),
                over(tls)
            );
            Reply::Stream(counted(stats, what, move |b, now| x.next_message(b, now)))
        }
        Err(_) => Reply::Nothing,
    }
}

fn over(tls: bool) -> &'static str {
    if tls {
        " over TLS"
    } else {
        ""
    }
}

fn count_ixfr(stats: &Option<Arc<TransferStats>>, kind: xfr::IxfrKind) {
    if let Some(s) = stats {
        match kind {
            xfr::IxfrKind::Incremental { .. } => &s.ixfr_incremental,
            xfr::IxfrKind::Full => &s.ixfr_full,
            xfr::IxfrKind::UpToDate => &s.ixfr_current,
        }
        .fetch_add(1, Relaxed);
    }
}

/// How a query other than a transfer is answered, as far as TSIG goes.
#[derive(Debug, PartialEq, Eq)]
pub enum SignedQuery {
    /// It carries no TSIG: answer it as usual.
    Unsigned,
    /// The reply is in `buf[..len]`: the answer signed with the request's key, or the TSIG
    /// error (RFC 8945 §5.3.2).
    Reply(usize),
    /// Send nothing.
    Nothing,
}

/// A query (not a transfer) that may carry a TSIG (RFC 8945 §5.2, §5.3): secondaries sign
/// the SOA queries of their refresh with the transfer key (named does, and refuses an
/// unsigned answer: "expected a TSIG or SIG(0)"). The TSIG is checked against `keys()`
/// (asked for only when the query has an additional record); a failure gets its error
/// response (NOTAUTH with BADKEY, BADSIG or BADTIME; FORMERR for a malformed TSIG).
/// Otherwise the query is copied to the start of `buf` and `answer` answers it in place — it
/// is given the query's length and a buffer shortened by the room the TSIG needs, and
/// returns the response's length, or None to send nothing — and the response is signed with
/// the request's key.
pub fn signed_query(
    msg: &[u8],
    keys: impl FnOnce() -> Vec<Key>,
    buf: &mut [u8],
    now: u64,
    answer: impl FnOnce(&mut [u8], usize) -> Option<usize>,
) -> SignedQuery {
    // Most queries have no additional record but an OPT: no walk for those.
    let arcount = msg.get(10..12).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    if arcount == 0 {
        return SignedQuery::Unsigned;
    }
    let verified = match tsig::verify_request(msg, &keys(), now) {
        Ok(Some(v)) => v,
        Ok(None) => return SignedQuery::Unsigned,
        Err(f) => {
            return match tsig::write_failure(msg, &f, buf, now) {
                Ok(len) => SignedQuery::Reply(len),
                Err(_) => SignedQuery::Nothing,
            }
        }
    };
    let mut signer = Signer::response(&verified);
    let room = buf.len().min(xfr::message::MAX_MESSAGE).saturating_sub(signer.reserve());
    if msg.len() > room {
        return SignedQuery::Nothing;
    }
    buf[..msg.len()].copy_from_slice(msg);
    let Some(len) = answer(&mut buf[..room], msg.len()) else { return SignedQuery::Nothing };
    match signer.sign(buf, len, now) {
        Ok(len) => SignedQuery::Reply(len),
        Err(_) => SignedQuery::Nothing,
    }
}

fn single(r: Result<usize, xfr::message::NoRoom>) -> Reply {
    match r {
        Ok(len) => Reply::Single(len),
        Err(_) => Reply::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfr::tsig::{error, locate, Algorithm, Verifier};

    const NOW: u64 = 1_800_000_000;

    fn key(secret: &[u8]) -> Key {
        Key::new(&crate::wire::name::Name::parse_text(b"xfr.", None).unwrap(), Algorithm::HmacSha256, secret)
    }

    /// An SOA query for interop.test (with an OPT when `edns`), signed with `key` when given;
    /// and the request's MAC.
    fn query(edns: bool, key: Option<&Key>) -> (Vec<u8>, Vec<u8>) {
        let mut m = vec![0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        m.extend_from_slice(b"\x07interop\x04test\x00\x00\x06\x00\x01");
        if edns {
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        let Some(k) = key else { return (m, Vec::new()) };
        let len = m.len();
        m.resize(512, 0);
        let mut s = Signer::request(k);
        let len = s.sign(&mut m, len, NOW).unwrap();
        m.truncate(len);
        (m, s.mac().to_vec())
    }

    /// A stand-in for the answer engine: the query's header and question with QR set, and
    /// NOERROR; checks it was given the query and room for the TSIG.
    fn engine(query_len: usize, called: &mut bool) -> impl FnOnce(&mut [u8], usize) -> Option<usize> + '_ {
        move |buf: &mut [u8], len: usize| {
            *called = true;
            assert_eq!(len, query_len);
            assert!(buf.len() < 65535 && buf.len() > 65000, "{}", buf.len());
            buf[2] |= 0x80;
            buf[10..12].fill(0);
            Some(12 + 14 + 4)
        }
    }

    #[test]
    fn a_signed_query_gets_a_signed_answer() {
        let k = key(b"the right secret");
        let (q, mac) = query(true, Some(&k));
        let mut buf = vec![0u8; 65535];
        let mut called = false;
        let SignedQuery::Reply(n) = signed_query(&q, || vec![k.clone()], &mut buf, NOW, engine(q.len(), &mut called))
        else {
            panic!("no reply")
        };
        assert!(called);
        let r = &buf[..n];
        assert_eq!((r[2] & 0x80, r[3] & 0x0F, &r[10..12]), (0x80, 0, &[0, 1][..]), "a response with one TSIG");
        assert_eq!(&r[12..30], &q[12..30], "the question");
        Verifier::new(&k, &mac).verify(r, NOW).expect("the answer verifies with the request's key and MAC");
    }

    #[test]
    fn unsigned_queries_are_left_to_the_caller() {
        let k = key(b"the right secret");
        let mut buf = vec![0u8; 65535];
        for edns in [false, true] {
            let (q, _) = query(edns, None);
            let r = signed_query(&q, || vec![k.clone()], &mut buf, NOW, |_, _| panic!("not for us to answer"));
            assert_eq!(r, SignedQuery::Unsigned);
        }
    }

    #[test]
    fn a_wrong_secret_or_unknown_key_is_notauth_and_not_answered() {
        let k = key(b"the right secret");
        let (q, _) = query(false, Some(&key(b"a wrong secret")));
        let mut buf = vec![0u8; 65535];
        for (keys, want) in [(vec![k.clone()], error::BADSIG), (vec![], error::BADKEY)] {
            let r = signed_query(&q, || keys, &mut buf, NOW, |_, _| panic!("a refused query is not answered"));
            let SignedQuery::Reply(n) = r else { panic!("{r:?}") };
            assert_eq!(buf[3] & 0x0F, rcode::NOTAUTH);
            let t = locate(&buf[..n]).unwrap().unwrap().record;
            assert_eq!((t.error, t.mac.len()), (want, 0));
        }
        // Outside the fudge: BADTIME, signed.
        let (q, mac) = query(false, Some(&k));
        let r = signed_query(&q, || vec![k.clone()], &mut buf, NOW + 3600, |_, _| panic!("not answered"));
        let SignedQuery::Reply(n) = r else { panic!("{r:?}") };
        assert_eq!(buf[3] & 0x0F, rcode::NOTAUTH);
        assert_eq!(locate(&buf[..n]).unwrap().unwrap().record.error, error::BADTIME);
        let v = Verifier::new(&k, &mac).verify(&buf[..n], NOW + 3600);
        assert!(matches!(v, Err(tsig::VerifyError::Peer { error: error::BADTIME, signed: true })), "{v:?}");
    }

    #[test]
    fn an_engine_that_drops_sends_nothing() {
        let k = key(b"the right secret");
        let (q, _) = query(false, Some(&k));
        let mut buf = vec![0u8; 65535];
        assert_eq!(signed_query(&q, || vec![k.clone()], &mut buf, NOW, |_, _| None), SignedQuery::Nothing);
    }
}
