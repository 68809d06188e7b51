//! Packet sources and the per-core run loops that answer UDP queries.
//!
//! A run loop takes a batch of messages from its source, answers each in place with
//! [`crate::answer::answer`] against the catalog loaded once per batch, and sends the batch
//! back. Counters are per loop (relaxed atomics, never shared between writers) and summed
//! only when read (`crate::metrics` reads them live); each loop keeps its own service-time
//! histogram, an hdrhistogram handed back at exit and fixed log-scale buckets in its
//! [`LoopStats`] that a scrape reads while it runs. This module knows nothing of zones
//! beyond handing the catalog to the engine.

pub mod packet;
pub mod udp;
pub mod xdp;
pub mod xdp_prog;
pub mod xsk;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::answer::{Catalog, CookieSeen, DropReason, Outcome};
use crate::rrl::{self, Key, Limiter, Verdict};

/// The published set of zones: swapped whole, loaded once per batch.
pub type SharedCatalog = Arc<ArcSwap<Catalog>>;

/// Counters of one run loop.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Messages received.
    pub received: AtomicU64,
    /// Responses sent.
    pub sent: AtomicU64,
    /// Responses by rcode (extended rcodes above 15 counted at 16).
    pub rcodes: [AtomicU64; 17],
    pub truncated: AtomicU64,
    pub dropped_short: AtomicU64,
    pub dropped_response: AtomicU64,
    pub send_errors: AtomicU64,
    /// Batches received (one receive call each).
    pub batches: AtomicU64,
    /// Messages for the control side that did not fit its channel.
    pub handoff_dropped: AtomicU64,
    /// Response rate limiting: responses let through, dropped, sent truncated (slipped).
    pub rrl_passed: AtomicU64,
    pub rrl_dropped: AtomicU64,
    pub rrl_slipped: AtomicU64,
    /// Answered queries by the type asked, by [`qtype_index`] (the common types, then
    /// "other" for the rest and for replies without a readable question).
    pub qtypes: [AtomicU64; QTYPES.len() + 1],
    /// Queries with a COOKIE option (cookies on): with a valid server cookie of ours, and
    /// without one (a client cookie alone, or a server cookie that is not ours or expired).
    pub cookies_valid: AtomicU64,
    pub cookies_unproven: AtomicU64,
    /// Service time per query, live.
    pub service: ServiceBuckets,
}

/// Query types counted on their own by [`LoopStats::qtypes`], with their names.
pub const QTYPES: [(u16, &str); 23] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (35, "NAPTR"),
    (43, "DS"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (251, "IXFR"),
    (252, "AXFR"),
    (255, "ANY"),
    (257, "CAA"),
];

/// The slot of a query type in [`LoopStats::qtypes`]: its place in [`QTYPES`], else the
/// last ("other"). One table load (a search of [`QTYPES`] cost three times the counting).
#[inline]
pub fn qtype_index(qtype: u16) -> usize {
    match QTYPE_SLOTS.get(qtype as usize) {
        Some(slot) => *slot as usize,
        None => QTYPES.len(),
    }
}

/// [`qtype_index`] of every type up to the highest in [`QTYPES`].
const QTYPE_SLOTS: [u8; 258] = {
    let mut t = [QTYPES.len() as u8; 258];
    let mut i = 0;
    while i < QTYPES.len() {
        t[QTYPES[i].0 as usize] = i as u8;
        i += 1;
    }
    t
};

impl LoopStats {
    /// Counts the outcome of one message (a reply's question type comes with it: nothing of
    /// the message is read).
    #[inline]
    pub fn record(&self, o: &Outcome) {
        let add = |c: &AtomicU64| c.store(c.load(Relaxed) + 1, Relaxed);
        add(&self.received);
        match o {
            Outcome::Reply { rcode, truncated, cookie, qtype, .. } => {
                add(&self.rcodes[(*rcode as usize).min(16)]);
                if *truncated {
                    add(&self.truncated);
                }
                add(&self.qtypes[qtype_index(*qtype)]);
                match cookie {
                    CookieSeen::None => {}
                    CookieSeen::Valid => add(&self.cookies_valid),
                    CookieSeen::Unproven => add(&self.cookies_unproven),
                }
            }
            Outcome::Drop(DropReason::Short) => add(&self.dropped_short),
            Outcome::Drop(DropReason::Response) => add(&self.dropped_response),
        }
    }
}

/// Upper bounds of the service-time buckets, in nanoseconds: powers of two from 128 ns to
/// about 1 ms (a query never takes longer unless the loop was descheduled); one more bucket
/// holds the rest.
pub const SERVICE_BOUNDS_NS: [u64; 14] = [
    1 << 7,
    1 << 8,
    1 << 9,
    1 << 10,
    1 << 11,
    1 << 12,
    1 << 13,
    1 << 14,
    1 << 15,
    1 << 16,
    1 << 17,
    1 << 18,
    1 << 19,
    1 << 20,
];

/// A loop's service-time histogram that can be read while the loop writes it: a count per
/// fixed bucket, their sum and the total time, each a relaxed atomic with one writer (the
/// loop). No allocation and no lock: a batch adds to one bucket.
#[derive(Debug, Default)]
pub struct ServiceBuckets {
    counts: [AtomicU64; SERVICE_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// What a [`ServiceBuckets`] held when read (or several added up).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSnapshot {
    /// Per bucket, not cumulative; the last is above every bound.
    pub counts: [u64; SERVICE_BOUNDS_NS.len() + 1],
    pub count: u64,
    pub sum_ns: u64,
}

impl ServiceBuckets {
    /// Adds `n` queries that took `ns` nanoseconds each.
    #[inline]
    pub fn record_n(&self, ns: u64, n: u64) {
        // The first bound at or above ns: 128 ns and less → bucket 0, (2^k/2, 2^k] → k - 7.
        let log = 64 - ns.saturating_sub(1).leading_zeros() as usize;
        let i = log.saturating_sub(7).min(SERVICE_BOUNDS_NS.len());
        let add = |c: &AtomicU64, v: u64| c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
        add(&self.counts[i], n);
        add(&self.sum_ns, ns.saturating_mul(n));
    }

    pub fn snapshot(&self) -> ServiceSnapshot {
        // The count is the buckets' sum, so the two always agree; the time may be off by a
        // batch recorded while they are read.
        let mut s = ServiceSnapshot { sum_ns: self.sum_ns.load(Relaxed), ..ServiceSnapshot::default() };
        for (a, b) in s.counts.iter_mut().zip(&self.counts) {
            *a = b.load(Relaxed);
        }
        s.count = s.counts.iter().sum();
        s
    }
}

impl ServiceSnapshot {
    pub fn add(&mut self, o: &ServiceSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.count += o.count;
        self.sum_ns += o.sum_ns;
    }
}

/// A sum of loop counters, taken when someone asks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub received: u64,
    pub sent: u64,
    pub rcodes: [u64; 17],
    pub truncated: u64,
    pub dropped_short: u64,
    pub dropped_response: u64,
    pub send_errors: u64,
    pub batches: u64,
    pub handoff_dropped: u64,
    pub rrl_passed: u64,
    pub rrl_dropped: u64,
    pub rrl_slipped: u64,
    pub qtypes: [u64; QTYPES.len() + 1],
    pub cookies_valid: u64,
    pub cookies_unproven: u64,
}

impl StatsSnapshot {
    pub fn sum<'a>(loops: impl IntoIterator<Item = &'a Arc<LoopStats>>) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for l in loops {
            s.received += l.received.load(Relaxed);
            s.sent += l.sent.load(Relaxed);
            for (a, b) in s.rcodes.iter_mut().zip(l.rcodes.iter()) {
                *a += b.load(Relaxed);
            }
            s.truncated += l.truncated.load(Relaxed);
            s.dropped_short += l.dropped_short.load(Relaxed);
            s.dropped_response += l.dropped_response.load(Relaxed);
            s.send_errors += l.send_errors.load(Relaxed);
            s.batches += l.batches.load(Relaxed);
            s.handoff_dropped += l.handoff_dropped.load(Relaxed);
            s.rrl_passed += l.rrl_passed.load(Relaxed);
            s.rrl_dropped += l.rrl_dropped.load(Relaxed);
            s.rrl_slipped += l.rrl_slipped.load(Relaxed);
            for (a, b) in s.qtypes.iter_mut().zip(l.qtypes.iter()) {
                *a += b.load(Relaxed);
            }
            s.cookies_valid += l.cookies_valid.load(Relaxed);
            s.cookies_unproven += l.cookies_unproven.load(Relaxed);
        }
        s
    }
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN"];
        write!(f, "received={} sent={} batches={}", self.received, self.sent, self.batches)?;
        for (i, n) in self.rcodes.iter().enumerate() {
            if *n > 0 {
                match names.get(i) {
                    Some(name) => write!(f, " {name}={n}")?,
                    None if i == 16 => write!(f, " BADVERS={n}")?,
                    None => write!(f, " rcode{i}={n}")?,
                }
            }
        }
        write!(
            f,
            " truncated={} dropped_short={} dropped_response={} send_errors={}",
            self.truncated, self.dropped_short, self.dropped_response, self.send_errors
        )?;
        if self.handoff_dropped > 0 {
            write!(f, " handoff_dropped={}", self.handoff_dropped)?;
        }
        if self.rrl_passed + self.rrl_dropped + self.rrl_slipped > 0 {
            write!(
                f,
                " rrl_passed={} rrl_dropped={} rrl_slipped={}",
                self.rrl_passed, self.rrl_dropped, self.rrl_slipped
            )?;
        }
        Ok(())
    }
}

/// Responses of one batch that [`LoopRrl`] handles (the run loops' batches are no larger).
pub const RRL_BATCH: usize = crate::answer::BATCH;

/// A run loop's response rate limiter, the clock it reads (once per batch) and the keys of
/// the batch's responses.
pub struct LoopRrl {
    limiter: Limiter,
    epoch: Instant,
    now_ms: u64,
    keys: [Option<Key>; RRL_BATCH],
}

impl LoopRrl {
    /// Allocates the loop's table (the only allocation).
    pub fn new(s: &rrl::Settings) -> LoopRrl {
        LoopRrl { limiter: Limiter::new(s), epoch: Instant::now(), now_ms: 0, keys: [None; RRL_BATCH] }
    }

    /// Before [`LoopRrl::apply`] on a batch (at most [`RRL_BATCH`] outcomes): reads the
    /// clock, works out the bucket of each response `outcomes[i]` to `client(i)` and starts
    /// fetching them all from memory. A response without a client address is not limited.
    #[inline]
    pub fn prepare(&mut self, outcomes: &[Outcome], mut client: impl FnMut(usize) -> Option<IpAddr>) {
        self.now_ms = self.epoch.elapsed().as_millis() as u64;
        for (i, (o, k)) in outcomes.iter().zip(self.keys.iter_mut()).enumerate() {
            *k = match (*o, client(i)) {
                (Outcome::Reply { class, class_name, .. }, Some(ip)) => Some(self.limiter.key(ip, class, class_name)),
                _ => None,
            };
        }
        // The loads in a loop of their own, short enough for all of them to be in flight
        // at once.
        let mut warm = 0;
        for k in self.keys[..outcomes.len().min(RRL_BATCH)].iter().flatten() {
            warm ^= self.limiter.warm(k);
        }
        std::hint::black_box(warm);
    }

    /// What goes out for the outcome `o` (the `i`-th given to [`LoopRrl::prepare`]): the
    /// length to send from `msg` (the response, rewritten in place into its slip when
    /// limited with a slip: BADCOOKIE for a client that sent a cookie, else TC), or None.
    #[inline]
    pub fn apply(&mut self, i: usize, o: &Outcome, msg: &mut [u8]) -> Option<usize> {
        let Outcome::Reply { len, cookie, .. } = *o else { return None };
        let Some(k) = self.keys.get(i).copied().flatten() else { return Some(len) };
        // A query with our server cookie proves its source: never limited.
        match self.limiter.charge(self.now_ms, &k, cookie == CookieSeen::Valid) {
            Verdict::Pass => Some(len),
            Verdict::Drop => None,
            Verdict::Slip if cookie == CookieSeen::Unproven => {
                Some(rrl::badcookie_reply(msg, len).unwrap_or_else(|| rrl::slip_reply(msg, len)))
            }
            Verdict::Slip => Some(rrl::slip_reply(msg, len)),
        }
    }

    /// After a batch: the counters into `stats`.
    #[inline]
    pub fn publish(&self, stats: &LoopStats) {
        let c = self.limiter.counters();
        stats.rrl_passed.store(c.passed, Relaxed);
        stats.rrl_dropped.store(c.dropped, Relaxed);
        stats.rrl_slipped.store(c.slipped, Relaxed);
    }

    /// The log lines that are due (newly limited prefixes, at most once a second), to
    /// standard error.
    #[inline]
    pub fn log(&mut self) {
        self.limiter.log(self.now_ms, |line| log::info!("{line}"));
    }
}

/// Service time per query, in nanoseconds.
pub type ServiceHistogram = hdrhistogram::Histogram<u64>;

pub fn new_histogram() -> ServiceHistogram {
    // 1 ns to 10 ms, 3 significant figures.
    hdrhistogram::Histogram::new_with_bounds(1, 10_000_000, 3).expect("static histogram bounds are valid")
}

/// One line about a merged histogram.
pub fn describe_histogram(h: &ServiceHistogram) -> String {
    if h.is_empty() {
        return "service time: no queries".into();
    }
    format!(
        "service time ns: p50={} p90={} p99={} p99.9={} max={} (n={})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_slots() {
        assert_eq!(qtype_index(28), QTYPES.iter().position(|t| t.1 == "AAAA").unwrap());
        assert_eq!(qtype_index(999), QTYPES.len());
        for (i, (t, _)) in QTYPES.iter().enumerate() {
            assert_eq!(qtype_index(*t), i);
        }
        assert_eq!(qtype_index(0), QTYPES.len());
        assert_eq!(qtype_index(258), QTYPES.len());
    }

    #[test]
    fn service_buckets_by_powers_of_two() {
        let b = ServiceBuckets::default();
        b.record_n(1, 1);
        b.record_n(128, 2);
        b.record_n(129, 3);
        b.record_n(1 << 20, 4);
        b.record_n((1 << 20) + 1, 5);
        b.record_n(u64::MAX, 1);
        let s = b.snapshot();
        assert_eq!(s.counts[0], 3);
        assert_eq!(s.counts[1], 3);
        assert_eq!(s.counts[SERVICE_BOUNDS_NS.len() - 1], 4);
        assert_eq!(s.counts[SERVICE_BOUNDS_NS.len()], 6);
        assert_eq!(s.count, 16);
        let mut sum = s;
        sum.add(&s);
        assert_eq!(sum.count, 32);
    }
}
