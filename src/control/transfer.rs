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
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::answer::Catalog;
use crate::config::{Action, Config};
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
pub struct Transfers {
    pub config: Arc<Config>,
    pub keys: Vec<Key>,
    pub journals: SharedJournals,
}

impl Transfers {
    pub fn new(config: Arc<Config>, journals: SharedJournals) -> Transfers {
        let keys = config.keys.iter().map(Key::from).collect();
        Transfers { config, keys, journals }
    }
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
    let req = match xfr::parse_request(msg) {
        Ok(r) => r,
        Err(RequestError::Malformed(why)) => {
            return single(tsig::write_failure(msg, &tsig::TsigFailure::Malformed(why), buf, now))
        }
        Err(_) => return Reply::Nothing,
    };
    let keys: &[Key] = transfers.map_or(&[], |t| &t.keys);
    let verified = match tsig::verify_request(msg, keys, now) {
        Ok(v) => v,
        Err(f) => return single(tsig::write_failure(msg, &f, buf, now)),
    };
    let mut signer = verified.as_ref().map(Signer::response);
    let qname = req.qname.to_lowercase();
    let Some(snap) = catalog.snapshots().iter().find(|s| s.zone().origin[..] == *qname.as_wire()) else {
        return single(xfr::write_error(&req, xfr::rcode::NOTAUTH, signer.as_mut(), buf, now));
    };
    let allowed = transfers.is_some_and(|t| {
        t.config
            .zones
            .iter()
            .find(|z| z.name.to_lowercase() == qname)
            .is_some_and(|z| t.config.allows(z, Action::Transfer, from, verified.as_ref().map(|v| v.key.name())))
    });
    if !allowed {
        return single(xfr::write_error(&req, xfr::rcode::REFUSED, signer.as_mut(), buf, now));
    }
    let mut opts = Options::tcp_transfer();
    if req.edns_udp_size.is_some() {
        opts.edns_udp_size = Some(1232);
    }
    let snap: Arc<Snapshot> = snap.clone();
    // The records come from the snapshot a node at a time, as the messages are made.
    let mut records = SnapshotRecords::new(snap.clone());
    let Some(soa) = records.peek().and_then(|r| r.to_record().ok()) else {
        return single(xfr::write_error(&req, xfr::rcode::SERVFAIL, signer.as_mut(), buf, now));
    };
    if req.is_axfr() {
        // Records lent one at a time from the snapshot's decoder: nothing allocated per record.
        return match Axfr::from_cursor(&req, records, signer, opts) {
            Ok(mut x) => Reply::Stream(Box::new(move |b, now| x.next_message(b, now))),
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
    // `records` still starts with the SOA.
    match Ixfr::new(&req, soa, history, move || records, signer, opts) {
        Ok(mut x) => Reply::Stream(Box::new(move |b, now| x.next_message(b, now))),
        Err(_) => Reply::Nothing,
    }
}

fn single(r: Result<usize, xfr::message::NoRoom>) -> Reply {
    match r {
        Ok(len) => Reply::Single(len),
        Err(_) => Reply::Nothing,
    }
}
