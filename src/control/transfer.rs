//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995) on the control thread: the request's
//! TSIG checked, the zone found, the zone's ACL asked, then a stream of messages built one at
//! a time as the connection drains, from records read out of the snapshot a node at a time
//! (so a large zone never sits in memory or in the output buffer whole).
//!
//! Denied by default: a zone without a configuration entry, or whose ACLs do not allow
//! `transfer` to the client's address and key, gets REFUSED. The protocol itself (message
//! layout, TSIG chaining, IXFR sequences) is `crate::xfr`; this module picks the data: the
//! zone's published snapshot (one consistent version, even while a reload swaps in the next)
//! and, for IXFR, its journal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::answer::Catalog;
use crate::config::{Action, SharedConfig};
use crate::journal::Journal;
use crate::snapshot::{Snapshot, SnapshotRecords};
use crate::wire::name::Name;
use crate::xfr::message::Options;
use crate::xfr::tsig::{self, Key, Signer};
use crate::xfr::{self, Axfr, Ixfr, RequestError};
use crate::zone::Changeset;

/// Each zone's journal, by lowercased origin; republished with the catalog.
pub type SharedJournals = Arc<ArcSwap<HashMap<Name, Arc<Mutex<Journal>>>>>;

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
                eprintln!("nsxdp: {what}: {messages} messages in {:.1} ms", t0.elapsed().as_secs_f64() * 1000.0);
            }
            Err(e) => eprintln!("nsxdp: {what}: failed after {messages} messages: {e}"),
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

/// Handles an AXFR or IXFR request over TCP from `from`. `buf` receives a single reply.
pub fn request(
    msg: &[u8],
    from: IpAddr,
    catalog: &Catalog,
    transfers: Option<&Transfers>,
    buf: &mut [u8],
    now: u64,
) -> Reply {
    respond(msg, from, catalog, transfers, buf, now, None)
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
    match respond(msg, from, catalog, transfers, buf, now, Some(max)) {
        Reply::Single(n) => Some(n),
        _ => None,
    }
}

fn respond(
    msg: &[u8],
    from: IpAddr,
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
            eprintln!("nsxdp: transfer of {} to {from} refused: TSIG: {f}", req.qname);
            return single(tsig::write_failure(msg, &f, buf, now));
        }
    };
    let mut signer = verified.as_ref().map(Signer::response);
    let qname = req.qname.to_lowercase();
    let Some(snap) = catalog.snapshots().iter().find(|s| s.zone().origin[..] == *qname.as_wire()) else {
        count(|s| &s.notauth);
        return single(xfr::write_error(&req, xfr::rcode::NOTAUTH, signer.as_mut(), buf, now));
    };
    let allowed = config.as_ref().is_some_and(|c| {
        c.zones
            .iter()
            .find(|z| z.name.to_lowercase() == qname)
            .is_some_and(|z| c.allows(z, Action::Transfer, from, verified.as_ref().map(|v| v.key.name())))
    });
    if !allowed {
        count(|s| &s.refused);
        eprintln!("nsxdp: transfer of {} to {from} refused by the zone's ACL", req.qname);
        return single(xfr::write_error(&req, xfr::rcode::REFUSED, signer.as_mut(), buf, now));
    }
    let mut opts = Options::tcp();
    if req.edns_udp_size.is_some() {
        opts.edns_udp_size = Some(1232);
    }
    let snap: Arc<Snapshot> = snap.clone();
    // The records come from the snapshot a node at a time, as the messages are made.
    let mut records = SnapshotRecords::new(snap.clone());
    let Some(soa) = records.next() else {
        return single(xfr::write_error(&req, xfr::rcode::SERVFAIL, signer.as_mut(), buf, now));
    };
    let serial = snap.serial();
    if req.is_axfr() {
        count(|s| &s.axfr);
        let what = format!("AXFR of {} serial {serial} to {from}", req.qname);
        return match Axfr::new(&req, std::iter::once(soa).chain(records), signer, opts) {
            Ok(mut x) => Reply::Stream(counted(stats, what, move |b, now| x.next_message(b, now))),
            Err(_) => Reply::Nothing,
        };
    }
    // IXFR: the journal's changes since the client's serial, or the whole zone.
    let history: Option<Vec<Changeset>> = match (req.ixfr_serial, transfers) {
        (Some(serial), Some(t)) => t
            .journals
            .load()
            .get(&qname)
            .and_then(|j| j.lock().ok().and_then(|j| j.changes_since(serial).ok().flatten())),
        _ => None,
    };
    let full = std::iter::once(soa.clone()).chain(records);
    if let Some(max) = udp {
        let mut opts = Options::udp(max);
        if req.edns_udp_size.is_some() {
            opts.edns_udp_size = Some(max as u16);
        }
        count(|s| &s.ixfr_udp);
        return match Ixfr::new(&req, soa, history, move || full, signer, opts) {
            Ok(x) => {
                count_ixfr(&stats, x.kind());
                single(x.udp_message(&mut buf[..max], now).map_err(|_| xfr::message::NoRoom))
            }
            Err(_) => Reply::Nothing,
        };
    }
    match Ixfr::new(&req, soa, history, move || full, signer, opts) {
        Ok(mut x) => {
            count_ixfr(&stats, x.kind());
            let what = format!(
                "IXFR ({:?}) of {} serial {} -> {serial} to {from}",
                x.kind(),
                req.qname,
                req.ixfr_serial.unwrap_or(0)
            );
            Reply::Stream(counted(stats, what, move |b, now| x.next_message(b, now)))
        }
        Err(_) => Reply::Nothing,
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

fn single(r: Result<usize, xfr::message::NoRoom>) -> Reply {
    match r {
        Ok(len) => Reply::Single(len),
        Err(_) => Reply::Nothing,
    }
}
