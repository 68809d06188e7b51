//! Packet sources and the per-core run loops that answer UDP queries.
//!
//! A run loop takes a batch of messages from its source, answers each in place with
//! [`crate::answer::answer`] against the catalog loaded once per batch, and sends the batch
//! back. Counters are per loop (relaxed atomics, never shared between writers) and summed
//! only when read; each loop keeps its own service-time histogram. This module knows nothing
//! of zones beyond handing the catalog to the engine.

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
}

impl LoopStats {
    /// Counts the outcome of one message.
    pub fn record(&self, o: &Outcome) {
        let add = |c: &AtomicU64| c.store(c.load(Relaxed) + 1, Relaxed);
        add(&self.received);
        match o {
            Outcome::Reply { rcode, truncated, .. } => {
                add(&self.rcodes[(*rcode as usize).min(16)]);
                if *truncated {
                    add(&self.truncated);
                }
            }
            Outcome::Drop(DropReason::Short) => add(&self.dropped_short),
            Outcome::Drop(DropReason::Response) => add(&self.dropped_response),
        }
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
        self.limiter.log(self.now_ms, |line| eprintln!("nsxdp: {line}"));
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
