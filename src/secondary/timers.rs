//! When a secondary zone checks its primaries (RFC 1034 §4.3.5, RFC 1996): the SOA's
//! refresh, retry and expire, bounded by the zone's configured limits.
//!
//! A [`Refresh`] is a state machine driven by events and a clock the caller passes in:
//! [`Refresh::due`] says whether a check should start now, [`Refresh::started`] /
//! [`Refresh::succeeded`] / [`Refresh::failed`] report how it went, [`Refresh::notified`]
//! records a NOTIFY, and [`Refresh::expire`] says whether the zone must stop being served.
//!
//! - After a successful check the next is `refresh` later, and the zone is good for
//!   `expire` more.
//! - After a failed one the next is `retry` later; `expire` keeps counting from the last
//!   success.
//! - A NOTIFY makes a check due at once; several NOTIFYs before it starts count as one,
//!   and a NOTIFY during a check makes another follow it (the primary may have changed
//!   again after our query).
//! - A zone never loaded checks again after `retry` (bounded) until it gets one.

use std::time::{Duration, Instant};

/// Timer values from the SOA, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimers {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
}

impl SoaTimers {
    /// The timers of an SOA's rdata (uncompressed): the 2nd, 3rd and 4th of the five
    /// numbers after the two names.
    pub fn from_rdata(rdata: &[u8]) -> Option<SoaTimers> {
        let n = rdata.len().checked_sub(20)?;
        let at = |i: usize| u32::from_be_bytes(rdata[n + 4 * i..n + 4 * i + 4].try_into().expect("4 octets"));
        Some(SoaTimers { refresh: at(1), retry: at(2), expire: at(3) })
    }
}

/// Configured bounds on the SOA's timers, in seconds (`min` wins over `max` when they
/// cross).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub refresh_min: u32,
    pub refresh_max: u32,
    pub retry_min: u32,
    pub retry_max: u32,
    pub expire_min: u32,
    pub expire_max: u32,
}

impl Default for Bounds {
    /// Loose bounds: refresh and retry at least 1 s, at most a day; expire at least 10 s,
    /// at most 8 weeks.
    fn default() -> Bounds {
        Bounds {
            refresh_min: 1,
            refresh_max: 86_400,
            retry_min: 1,
            retry_max: 86_400,
            expire_min: 10,
            expire_max: 8 * 7 * 86_400,
        }
    }
}

impl Bounds {
    /// The timers to use for a zone whose SOA says `t`.
    pub fn apply(&self, t: SoaTimers) -> SoaTimers {
        let clamp = |v: u32, lo: u32, hi: u32| v.min(hi).max(lo);
        SoaTimers {
            refresh: clamp(t.refresh, self.refresh_min, self.refresh_max),
            retry: clamp(t.retry, self.retry_min, self.retry_max),
            expire: clamp(t.expire, self.expire_min, self.expire_max),
        }
    }
}

/// Retry interval while the zone was never loaded: doubling from 1 s up to this.
const BOOTSTRAP_MAX: Duration = Duration::from_secs(60);

/// The refresh state of one secondary zone.
#[derive(Debug, Clone)]
pub struct Refresh {
    bounds: Bounds,
    /// Timers of the version served (bounded); None while nothing was ever loaded.
    timers: Option<SoaTimers>,
    next_check: Instant,
    /// Until when the zone may be served without a successful check; None: not loaded.
    expires_at: Option<Instant>,
    last_check: Option<Instant>,
    last_success: Option<Instant>,
    notify_pending: bool,
    in_flight: bool,
    /// The zone is past `expire` (answers SERVFAIL until the next success).
    expired: bool,
    bootstrap_retry: Duration,
    pub last_error: Option<String>,
}

impl Refresh {
    /// A zone with nothing to serve yet: a check is due at once.
    pub fn empty(bounds: Bounds, now: Instant) -> Refresh {
        Refresh {
            bounds,
            timers: None,
            next_check: now,
            expires_at: None,
            last_check: None,
            last_success: None,
            notify_pending: false,
            in_flight: false,
            expired: false,
            bootstrap_retry: Duration::from_secs(1),
            last_error: None,
        }
    }

    /// A zone loaded from what an earlier run kept, whose last successful check was
    /// `since_success` ago (as far as that run knew): served at once unless that is past
    /// expire; checked `first_check_in` from now (the caller spreads the first checks of a
    /// host's many zones, so its primaries do not get them all at once).
    pub fn loaded(
        bounds: Bounds,
        soa: SoaTimers,
        since_success: Duration,
        now: Instant,
        first_check_in: Duration,
    ) -> Refresh {
        let t = bounds.apply(soa);
        let expire = Duration::from_secs(t.expire as u64);
        let left = expire.saturating_sub(since_success);
        let mut r = Refresh::empty(bounds, now + first_check_in);
        r.timers = Some(t);
        r.expires_at = Some(now + left);
        r.expired = left.is_zero();
        r
    }

    /// New bounds (a reloaded configuration): they apply from the next success.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    /// Whether a check should start now.
    pub fn due(&self, now: Instant) -> bool {
        !self.in_flight && (self.notify_pending || now >= self.next_check)
    }

    /// When the next check or expiry falls due (for the caller's sleep): `now` when a check
    /// is due; None while a check is under way and nothing can expire.
    pub fn next_event(&self, now: Instant) -> Option<Instant> {
        if self.due(now) {
            return Some(now);
        }
        let check = (!self.in_flight).then_some(self.next_check);
        let expiry = self.expires_at.filter(|_| !self.expired);
        match (check, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A check starts.
    pub fn started(&mut self, now: Instant) {
        self.in_flight = true;
        self.notify_pending = false;
        self.last_check = Some(now);
    }

    /// The check found the primary's serial and we now serve it (up to date, or
    /// transferred); `soa` are the timers of the version served.
    pub fn succeeded(&mut self, soa: SoaTimers, now: Instant) {
        let t = self.bounds.apply(soa);
        self.timers = Some(t);
        self.in_flight = false;
        self.last_success = Some(now);
        self.expires_at = Some(now + Duration::from_secs(t.expire as u64));
        self.next_check = now + Duration::from_secs(t.refresh as u64);
        self.expired = false;
        self.bootstrap_retry = Duration::from_secs(1);
        self.last_error = None;
    }

    /// The check failed (no primary answered, or what came was refused).
    pub fn failed(&mut self, error: String, now: Instant) {
        self.in_flight = false;
        self.last_error = Some(error);
        self.next_check = match self.timers {
            Some(t) => now + Duration::from_secs(t.retry as u64),
            None => {
                let wait = self.bootstrap_retry;
                self.bootstrap_retry = (wait * 2).min(BOOTSTRAP_MAX);
                now + wait
            }
        };
    }

    /// A NOTIFY came: check at once (or right after the check under way).
    pub fn notified(&mut self) {
        self.notify_pending = true;
    }

    /// Whether the zone just passed its expire time (true once, at the moment it does).
    pub fn expire(&mut self, now: Instant) -> bool {
        match self.expires_at {
            Some(at) if !self.expired && now >= at => {
                self.expired = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the zone may be served: loaded and not expired.
    pub fn serving(&self) -> bool {
        self.expires_at.is_some() && !self.expired
    }

    pub fn is_expired(&self) -> bool {
        self.expired
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    pub fn timers(&self) -> Option<SoaTimers> {
        self.timers
    }

    pub fn next_check(&self) -> Instant {
        self.next_check
    }

    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    pub fn last_check(&self) -> Option<Instant> {
        self.last_check
    }

    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SoaTimers = SoaTimers { refresh: 100, retry: 10, expire: 300 };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn timers_from_soa_rdata() {
        let mut rd = b"\x02ns\x00\x02hm\x00".to_vec();
        for v in [7u32, 100, 10, 300, 60] {
            rd.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(SoaTimers::from_rdata(&rd), Some(T));
        assert_eq!(SoaTimers::from_rdata(&rd[..19]), None);
    }

    #[test]
    fn refresh_retry_expire_cycle() {
        let t0 = Instant::now();
        let mut r = Refresh::empty(Bounds::default(), t0);
        assert!(r.due(t0) && !r.serving());
        r.started(t0);
        assert!(!r.due(t0));
        r.succeeded(T, t0);
        assert!(r.serving() && !r.due(t0 + secs(99)) && r.due(t0 + secs(100)));
        // Failures from the refresh on: every retry, until expire (from the last success).
        let mut now = t0 + secs(100);
        while now < t0 + secs(300) {
            assert!(r.due(now));
            r.started(now);
            r.failed("no answer".into(), now);
            assert!(!r.due(now + secs(9)) && r.due(now + secs(10)));
            assert!(!r.expire(now));
            now += secs(10);
        }
        assert!(r.expire(t0 + secs(300)));
        assert!(!r.expire(t0 + secs(301)), "expiry is reported once");
        assert!(!r.serving() && r.is_expired());
        assert_eq!(r.last_error.as_deref(), Some("no answer"));
        // The primary is back.
        r.started(now);
        r.succeeded(T, now);
        assert!(r.serving() && r.last_error.is_none());
        assert_eq!(r.expires_at(), Some(now + secs(300)));
    }

    #[test]
    fn notify_coalesces_and_follows_a_check_under_way() {
        let t0 = Instant::now();
        let mut r = Refresh::empty(Bounds::default(), t0);
        r.started(t0);
        r.succeeded(T, t0);
        let t1 = t0 + secs(5);
        assert!(!r.due(t1));
        r.notified();
        r.notified();
        assert!(r.due(t1));
        r.started(t1);
        assert!(!r.due(t1), "two NOTIFYs, one check");
        // A NOTIFY during the check: one more check after it.
        r.notified();
        assert!(!r.due(t1));
        r.succeeded(T, t1 + secs(1));
        assert!(r.due(t1 + secs(1)));
        r.started(t1 + secs(1));
        r.succeeded(T, t1 + secs(2));
        assert!(!r.due(t1 + secs(3)));
    }

    #[test]
    fn bounds_and_bootstrap() {
        let b = Bounds { refresh_max: 50, retry_min: 20, expire_min: 1000, ..Bounds::default() };
        assert_eq!(b.apply(T), SoaTimers { refresh: 50, retry: 20, expire: 1000 });
        let t0 = Instant::now();
        let mut r = Refresh::empty(b, t0);
        // Never loaded: retries back off from 1 s.
        let mut now = t0;
        for wait in [1, 2, 4, 8] {
            r.started(now);
            r.failed("refused".into(), now);
            assert!(!r.due(now + secs(wait) - Duration::from_millis(1)) && r.due(now + secs(wait)));
            now += secs(wait);
        }
        assert!(!r.serving() && !r.expire(now + secs(10_000)), "nothing to expire");
    }

    #[test]
    fn loaded_from_an_earlier_run() {
        let t0 = Instant::now();
        let r = Refresh::loaded(Bounds::default(), T, secs(100), t0, Duration::ZERO);
        assert!(r.serving() && r.due(t0));
        assert_eq!(r.expires_at(), Some(t0 + secs(200)));
        let mut r = Refresh::loaded(Bounds::default(), T, secs(400), t0, Duration::ZERO);
        assert!(!r.serving() && r.is_expired() && !r.expire(t0));
        // A first check put off: served meanwhile, due then (or at once on NOTIFY).
        let mut r = Refresh::loaded(Bounds::default(), T, secs(100), t0, secs(7));
        assert!(r.serving() && !r.due(t0 + secs(6)) && r.due(t0 + secs(7)));
        assert_eq!(r.expires_at(), Some(t0 + secs(200)), "expiry counts from now, not from the check");
        r.notified();
        assert!(r.due(t0));
    }
}
