//! Response rate limiting (RRL) for the UDP paths: how many responses per second a source
//! prefix gets, in each response class, as operators know it from BIND's `rate-limit` and
//! Knot's `mod-rrl`. Without it, a flood of queries with a spoofed source turns the server
//! into a reflector aimed at the spoofed address.
//!
//! One [`Limiter`] per run loop (no lock, nothing shared), with a fixed table of buckets
//! allocated once from [`Settings::table_size`]: a flood of any number of sources never
//! grows it. A bucket is keyed by the source prefix (IPv4 /24 and IPv6 /56 by default), the
//! [`ResponseClass`] and the name the class counts against (the question name for positive
//! answers, the zone for the others; see [`crate::answer::Outcome`]), hashed with a per-loop
//! random seed so that nobody outside can aim collisions.
//!
//! Accounting (BIND's): a bucket holds credit for at most `rate` responses (one second's
//! worth) and gains `rate` per second; every response costs one, whether it is sent or not,
//! and a response is limited when the credit is below zero. The debt is bounded by `window`
//! seconds of rate, so a source that stops is answered again at most `window` seconds
//! later. A limited response is dropped, except every `slip`-th one, which is sent with TC
//! set and nothing but the question ([`slip_reply`]) so that a real client behind the
//! prefix retries over TCP (a spoofer gets nothing to amplify: the slip is smaller than the
//! query).
//!
//! Collisions (Knot's rule): a key looks for its bucket in a few consecutive slots from its
//! hash; if it is not there it takes a slot that is empty or whose credit is back to full
//! (forgetting it loses nothing), else the least recently used one if that was idle for a
//! second; failing that, it shares the bucket it collides with (counted against its
//! credit), so that a flood of more keys than buckets limits more, never less.
//!
//! Pure: the clock is passed in (milliseconds), nothing here does I/O or allocates after
//! [`Limiter::new`]. The prefixes that become limited are queued (bounded) for the caller
//! to log, at most once a second ([`Limiter::log`]).

use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::answer::ResponseClass;

/// Knot's default table size (a prime).
pub const DEFAULT_TABLE_SIZE: usize = 393_241;
/// The largest table accepted: 16 Mi buckets, 512 MiB per run loop.
pub const MAX_TABLE_SIZE: usize = 1 << 24;
/// The highest rate accepted (responses per second per bucket).
pub const MAX_RATE: u32 = 1_000_000;
/// The longest window accepted, in seconds (BIND's bound).
pub const MAX_WINDOW: u32 = 3600;
/// The highest slip accepted (Knot's bound).
pub const MAX_SLIP: u32 = 100;

/// Slots looked at for a key, from the one its hash picks.
const PROBE: usize = 4;
/// A bucket idle for this long may be taken over by a colliding key.
const TAKEOVER_MS: u64 = 1000;
/// One response, in the credit's unit (thousandths of a response: with the clock in
/// milliseconds, a rate of R per second adds R units a millisecond).
const UNIT: i64 = 1000;
/// Newly limited prefixes remembered between two log calls; more are only counted.
const LOG_QUEUE: usize = 16;
/// Time between two batches of log lines.
const LOG_EVERY_MS: u64 = 1000;

/// What the configuration says (`[rrl]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Responses per second per bucket.
    pub rate: u32,
    /// Every `slip`-th limited response is sent truncated; 0: all dropped; 1: none dropped.
    pub slip: u32,
    /// Seconds of debt a bucket may run up.
    pub window: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Sources never limited: (network, prefix length).
    pub exempt: Vec<(IpAddr, u8)>,
    /// Buckets per run loop.
    pub table_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate: 20,
            slip: 2,
            window: 15,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
            table_size: DEFAULT_TABLE_SIZE,
        }
    }
}

impl Settings {
    /// Why these settings make no sense, if they do not: (the key, what is wrong).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=MAX_RATE).contains(&self.rate) {
            return Some(("rate", format!("{} is not between 1 and {MAX_RATE}", self.rate)));
        }
        if self.slip > MAX_SLIP {
            return Some(("slip", format!("{} is above {MAX_SLIP}", self.slip)));
        }
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Some(("window", format!("{} is not between 1 and {MAX_WINDOW}", self.window)));
        }
        if !(1..=32).contains(&self.ipv4_prefix) {
            return Some(("ipv4-prefix", format!("{} is not between 1 and 32", self.ipv4_prefix)));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Some(("ipv6-prefix", format!("{} is not between 1 and 128", self.ipv6_prefix)));
        }
        if !(1..=MAX_TABLE_SIZE).contains(&self.table_size) {
            return Some(("table-size", format!("{} is not between 1 and {MAX_TABLE_SIZE}", self.table_size)));
        }
        None
    }
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Pass,
    /// Send nothing.
    Drop,
    /// Send it truncated ([`slip_reply`]).
    Slip,
}

/// What a limiter did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub passed: u64,
    pub dropped: u64,
    pub slipped: u64,
    /// Times a bucket went from answered to limited.
    pub newly_limited: u64,
}

/// A prefix whose responses of one class started being limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub network: IpAddr,
    pub len: u8,
    pub class: ResponseClass,
}

/// A line for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLine {
    Limited(Limited),
    /// Newly limited prefixes that did not fit the queue since the last lines.
    More(u64),
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogLine::Limited(l) => {
                write!(f, "rrl: {}/{} {} responses limited", l.network, l.len, l.class.name())
            }
            LogLine::More(n) => write!(f, "rrl: {n} more prefixes limited"),
        }
    }
}

/// The bucket a response counts against, worked out ahead of [`Limiter::charge`] so that
/// the buckets of a batch can be fetched from memory together ([`Limiter::warm`]).
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// Never 0.
    hash: u64,
    /// The source's prefix, as 128 bits.
    network: u128,
    v4: bool,
    class: ResponseClass,
    /// The source is in an exempt prefix.
    exempt: bool,
}

/// A network to compare masked addresses with.
#[derive(Clone, Copy, Debug)]
struct Net {
    /// The address as 128 bits (IPv4 as ::ffff:a.b.c.d), masked.
    bits: u128,
    mask: u128,
}

/// One source prefix, class and name.
#[derive(Clone, Copy, Default)]
struct Bucket {
    /// The key's hash, never 0 (0: empty).
    key: u64,
    /// When it was last charged (ms).
    stamp: u64,
    /// In thousandths of a response; between `-window × rate` and `rate` responses.
    credit: i64,
    /// Limited responses since it became limited.
    slips: u32,
    /// Whether it is limited (so that becoming limited is reported once).
    limited: bool,
}

/// The rate limiter of one run loop.
pub struct Limiter {
    buckets: Box<[Bucket]>,
    hasher: foldhash::fast::RandomState,
    /// Credit added per millisecond (the rate); the cap is `rate × UNIT`.
    rate: i64,
    cap: i64,
    floor: i64,
    /// Idle time after which a bucket is back to full credit from any debt.
    full_after_ms: u64,
    slip: u32,
    v4_mask: u128,
    v6_mask: u128,
    v4_len: u8,
    v6_len: u8,
    exempt: Box<[Net]>,
    counters: Counters,
    log: [Option<Limited>; LOG_QUEUE],
    logged: usize,
    unlogged: u64,
    next_log_ms: u64,
}

/// The top `len` bits of 128.
fn mask128(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128))
    }
}

/// An address as 128 bits, IPv4 as ::ffff:a.b.c.d (the key keeps the families apart).
#[inline]
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Limiter {
    /// A limiter with every bucket empty. Panics on settings that [`Settings::problem`]
    /// refuses (the configuration checks them first).
    pub fn new(s: &Settings) -> Limiter {
        assert!(s.problem().is_none(), "rrl settings: {:?}", s.problem());
        let rate = i64::from(s.rate);
        let exempt = s
            .exempt
            .iter()
            .map(|&(a, len)| {
                let mask = match a {
                    IpAddr::V4(_) => mask128(96 + u32::from(len.min(32))),
                    IpAddr::V6(_) => mask128(u32::from(len.min(128))),
                };
                Net { bits: bits(a) & mask, mask }
            })
            .collect();
        Limiter {
            buckets: vec![Bucket::default(); s.table_size].into_boxed_slice(),
            hasher: foldhash::fast::RandomState::default(),
            rate,
            cap: rate * UNIT,
            floor: -(i64::from(s.window) * rate * UNIT),
            full_after_ms: (u64::from(s.window) + 1) * 1000,
            slip: s.slip,
            v4_mask: mask128(96 + u32::from(s.ipv4_prefix)),
            v6_mask: mask128(u32::from(s.ipv6_prefix)),
            v4_len: s.ipv4_prefix,
            v6_len: s.ipv6_prefix,
            exempt,
            counters: Counters::default(),
            log: [None; LOG_QUEUE],
            logged: 0,
            unlogged: 0,
            next_log_ms: 0,
        }
    }

    /// Whether the response of class `class` about `class_name` (as the engine's
    /// [`crate::answer::Outcome`] gives them) to `client` may be sent, at `now_ms` (a
    /// monotonic clock in milliseconds). `valid_cookie`: the client proved with a DNS
    /// server cookie (RFC 7873) that its address is not spoofed, which exempts it, as in
    /// Knot (the engine's `Outcome::Reply::cookie` is `CookieSeen::Valid`).
    #[inline]
    pub fn check(
        &mut self,
        now_ms: u64,
        client: IpAddr,
        class: ResponseClass,
        class_name: u64,
        valid_cookie: bool,
    ) -> Verdict {
        let k = self.key(client, class, class_name);
        self.charge(now_ms, &k, valid_cookie)
    }

    /// The bucket of a response, as for [`Limiter::check`].
    #[inline]
    pub fn key(&self, client: IpAddr, class: ResponseClass, class_name: u64) -> Key {
        let addr = bits(client);
        let v4 = client.is_ipv4();
        let exempt = self.exempt.iter().any(|n| addr & n.mask == n.bits);
        let network = addr & if v4 { self.v4_mask } else { self.v6_mask };
        // The family too: an IPv6 prefix of ::ffff:0:0/96 is not an IPv4 one. Class and
        // family go in the name hash's top byte (three words hashed, not four).
        let kind = u64::from(class as u8 | u8::from(v4) << 7);
        let hash = self.hasher.hash_one(((network >> 64) as u64, network as u64, class_name ^ kind << 56)) | 1;
        Key { hash, network, v4, class, exempt }
    }

    /// Reads the first slot of `k`'s bucket, so that it is in the cache by the time
    /// [`Limiter::charge`] needs it: called for a whole batch first, the reads overlap
    /// instead of waiting one after another. The value means nothing (give it to
    /// `std::hint::black_box`).
    #[inline]
    pub fn warm(&self, k: &Key) -> u64 {
        self.buckets[self.home(k.hash)].key
    }

    /// The slot a hash picks: the hash scaled to the table (multiply-shift, no division).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    /// [`Limiter::check`] with the key worked out.
    #[inline]
    pub fn charge(&mut self, now_ms: u64, k: &Key, valid_cookie: bool) -> Verdict {
        if valid_cookie || k.exempt {
            self.counters.passed += 1;
            return Verdict::Pass;
        }
        let (key, network, class) = (k.hash, k.network, k.class);
        let b = self.bucket(key, now_ms);
        let b = &mut self.buckets[b];
        let elapsed = now_ms.saturating_sub(b.stamp).min(self.full_after_ms) as i64;
        b.stamp = b.stamp.max(now_ms);
        b.credit = ((b.credit + elapsed * self.rate).min(self.cap) - UNIT).max(self.floor);
        if b.credit >= 0 {
            b.limited = false;
            self.counters.passed += 1;
            return Verdict::Pass;
        }
        let newly = !b.limited;
        if newly {
            b.limited = true;
            b.slips = 0;
        }
        b.slips = b.slips.wrapping_add(1);
        let slip = self.slip != 0 && b.slips % self.slip == 0;
        if newly {
            self.counters.newly_limited += 1;
            let (network, len) = match k.v4 {
                true => (IpAddr::V4(Ipv4Addr::from(network as u32)), self.v4_len),
                false => (IpAddr::V6(Ipv6Addr::from(network)), self.v6_len),
            };
            self.queue_log(Limited { network, len, class });
        }
        if slip {
            self.counters.slipped += 1;
            Verdict::Slip
        } else {
            self.counters.dropped += 1;
            Verdict::Drop
        }
    }

    /// The slot of `key`'s bucket, made for it if it has none (see the module comment).
    #[inline]
    fn bucket(&mut self, key: u64, now_ms: u64) -> usize {
        let n = self.buckets.len();
        let home = self.home(key);
        let mut free = None;
        let mut oldest = home;
        for i in 0..PROBE.min(n) {
            let j = if home + i >= n { home + i - n } else { home + i };
            let b = &self.buckets[j];
            if b.key == key {
                return j;
            }
            if free.is_none() && self.is_free(b, now_ms) {
                free = Some(j);
            }
            if b.stamp < self.buckets[oldest].stamp {
                oldest = j;
            }
        }
        let (j, take) = match free {
            Some(j) => (j, true),
            None => (oldest, now_ms.saturating_sub(self.buckets[oldest].stamp) >= TAKEOVER_MS),
        };
        if take {
            self.buckets[j] = Bucket { key, stamp: now_ms, credit: self.cap, slips: 0, limited: false };
        }
        j
    }

    /// Whether a bucket is empty or back to full credit by now (nothing lost by reusing it).
    #[inline]
    fn is_free(&self, b: &Bucket, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(b.stamp).min(self.full_after_ms) as i64;
        b.key == 0 || b.credit + elapsed * self.rate >= self.cap
    }

    fn queue_log(&mut self, l: Limited) {
        match self.log.get_mut(self.logged) {
            Some(slot) => {
                *slot = Some(l);
                self.logged += 1;
            }
            None => self.unlogged += 1,
        }
    }

    /// Gives the prefixes that became limited since the last lines to `line`, one each
    /// (at most [`LOG_QUEUE`], then a count of the others), if a second has passed since
    /// the last lines; otherwise keeps them for later. Cheap when there is nothing to say.
    #[inline]
    pub fn log(&mut self, now_ms: u64, mut line: impl FnMut(LogLine)) {
        if self.logged == 0 || now_ms < self.next_log_ms {
            return;
        }
        for l in self.log[..self.logged].iter_mut().filter_map(Option::take) {
            line(LogLine::Limited(l));
        }
        if self.unlogged > 0 {
            line(LogLine::More(self.unlogged));
        }
        self.logged = 0;
        self.unlogged = 0;
        self.next_log_ms = now_ms + LOG_EVERY_MS;
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Buckets in the table (fixed at creation).
    pub fn table_len(&self) -> usize {
        self.buckets.len()
    }
}

/// Turns the response in `msg[..len]` into the slip of a limited one: the header with TC
/// set and no records, and the question. Returns the new length. A response whose
/// question cannot be read keeps the header only (question count 0).
pub fn slip_reply(msg: &mut [u8], len: usize) -> usize {
    let len = len.min(msg.len());
    if len < 12 {
        return len;
    }
    msg[2] |= 0x02;
    msg[6..12].fill(0);
    let end = (u16::from_be_bytes([msg[4], msg[5]]) == 1).then(|| question_end(&msg[..len])).flatten();
    match end {
        Some(end) => end,
        None => {
            msg[4..6].fill(0);
            12
        }
    }
}

/// Turns the response in `msg[..len]` to a query that carried a client cookie but no valid
/// server cookie into the slip BIND sends such clients (RFC 7873 §5.2.3–4): BADCOOKIE with
/// the question and the OPT record that carries the client cookie and our fresh server
/// cookie, with which the client's retry proves its address and passes. The engine puts that
/// OPT last (`answer::CookieSeen::Unproven`); a response that does not end with it is left
/// alone and None returned.
pub fn badcookie_reply(msg: &mut [u8], len: usize) -> Option<usize> {
    use crate::cookie::{OPTION_CODE, REPLY_LEN};
    let len = len.min(msg.len());
    // Root owner, TYPE, CLASS, TTL (ext rcode, version, flags), RDLEN; option code and length.
    const OPT: usize = 11 + 4 + REPLY_LEN;
    let opt_at = len.checked_sub(OPT).filter(|&at| at >= 12)?;
    let opt = &msg[opt_at..len];
    let be = |i: usize| u16::from_be_bytes([opt[i], opt[i + 1]]);
    if opt[0] != 0 || be(1) != crate::wire::rdata::rtype::OPT || usize::from(be(9)) != 4 + REPLY_LEN {
        return None;
    }
    if be(11) != OPTION_CODE || usize::from(be(13)) != REPLY_LEN {
        return None;
    }
    let end = (u16::from_be_bytes([msg[4], msg[5]]) == 1).then(|| question_end(&msg[..opt_at])).flatten()?;
    msg.copy_within(opt_at..len, end);
    // BADCOOKIE is 23: 7 in the header, 1 in the OPT's extended rcode. AA and TC clear.
    let badcookie = crate::wire::message::rcode::BADCOOKIE;
    msg[2] &= !0x06;
    msg[3] = msg[3] & 0xF0 | (badcookie & 0xF) as u8;
    msg[6..10].fill(0);
    msg[10..12].copy_from_slice(&1u16.to_be_bytes());
    msg[end + 5] = (badcookie >> 4) as u8;
    Some(end + OPT)
}

/// Where the question of a message ends (an uncompressed name, as questions are).
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut p = 12;
    loop {
        let l = usize::from(*msg.get(p)?);
        if l == 0 {
            p += 1;
            break;
        }
        if l & 0xC0 != 0 {
            return None;
        }
        p += 1 + l;
    }
    (p + 4 <= msg.len()).then_some(p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResponseClass::*;

    fn settings(rate: u32, slip: u32, window: u32) -> Settings {
        Settings { rate, slip, window, table_size: 1024, ..Settings::default() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Sends `n` responses at `now`; how many of each verdict.
    fn burst(l: &mut Limiter, now: u64, client: &str, class: ResponseClass, name: u64, n: usize) -> [usize; 3] {
        let mut v = [0; 3];
        for _ in 0..n {
            match l.check(now, ip(client), class, name, false) {
                Verdict::Pass => v[0] += 1,
                Verdict::Drop => v[1] += 1,
                Verdict::Slip => v[2] += 1,
            }
        }
        v
    }

    #[test]
    fn the_rate_passes_and_the_excess_is_limited() {
        let mut l = Limiter::new(&settings(10, 0, 15));
        assert_eq!(burst(&mut l, 5000, "192.0.2.1", Positive, 7, 25), [10, 15, 0]);
        // A client at exactly the rate, every 100 ms, is always answered (a fresh name).
        for t in 0..1000 {
            assert_eq!(l.check(10_000 + t * 100, ip("198.51.100.1"), Positive, 7, false), Verdict::Pass, "{t}");
        }
        assert_eq!(l.counters(), Counters { passed: 1010, dropped: 15, slipped: 0, newly_limited: 1 });
    }

    #[test]
    fn a_flood_gets_no_more_than_the_rate_over_time() {
        let (rate, window) = (20, 5);
        let mut l = Limiter::new(&settings(rate, 0, window));
        // 1,000 queries a second for 30 s.
        let mut passed = 0;
        for ms in 0..30_000u64 {
            passed += burst(&mut l, ms, "192.0.2.1", NxDomain, 1, 1)[0];
        }
        assert!(passed <= rate as usize * 31, "{passed}");
        // Every response counts, so a source that stays above the rate is held at the
        // limit: only the first second's credit goes out.
        assert_eq!(passed, rate as usize);
    }

    #[test]
    fn the_window_bounds_the_debt() {
        let mut l = Limiter::new(&settings(10, 0, 15));
        // Deep into debt: far more than 15 s worth of rate.
        burst(&mut l, 1000, "192.0.2.1", Positive, 1, 10_000);
        // Answered again once the debt (15 × 10 responses) is paid back, not before.
        assert_eq!(l.check(1000 + 15_000, ip("192.0.2.1"), Positive, 1, false), Verdict::Drop);
        assert_eq!(l.check(1000 + 15_000 + 300, ip("192.0.2.1"), Positive, 1, false), Verdict::Pass);
        // A window of one second forgives sooner.
        let mut l = Limiter::new(&settings(10, 0, 1));
        burst(&mut l, 1000, "192.0.2.1", Positive, 1, 10_000);
        assert_eq!(l.check(1000 + 1100, ip("192.0.2.1"), Positive, 1, false), Verdict::Pass);
    }

    #[test]
    fn credit_builds_up_to_one_second_only() {
        let mut l = Limiter::new(&settings(10, 0, 15));
        assert_eq!(burst(&mut l, 1000, "192.0.2.1", Positive, 1, 1)[0], 1);
        // An hour idle: still one second's worth, not more.
        assert_eq!(burst(&mut l, 3_600_000, "192.0.2.1", Positive, 1, 30), [10, 20, 0]);
    }

    #[test]
    fn slip_counts_every_nth_limited_response() {
        let verdicts = |slip| {
            let mut l = Limiter::new(&settings(2, slip, 15));
            (0..8).map(|_| l.check(1, ip("192.0.2.1"), Positive, 1, false)).collect::<Vec<_>>()
        };
        use Verdict::{Drop as D, Pass as P, Slip as S};
        assert_eq!(verdicts(0), [P, P, D, D, D, D, D, D]);
        assert_eq!(verdicts(1), [P, P, S, S, S, S, S, S]);
        assert_eq!(verdicts(2), [P, P, D, S, D, S, D, S]);
        assert_eq!(verdicts(3), [P, P, D, D, S, D, D, S]);
        let mut l = Limiter::new(&settings(2, 2, 15));
        burst(&mut l, 1, "192.0.2.1", Positive, 1, 8);
        assert_eq!(l.counters(), Counters { passed: 2, dropped: 3, slipped: 3, newly_limited: 1 });
    }

    #[test]
    fn ipv4_prefixes_share_a_bucket() {
        let mut l = Limiter::new(&settings(5, 0, 15));
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 1, 3)[0], 3);
        assert_eq!(burst(&mut l, 1, "192.0.2.250", Positive, 1, 3)[0], 2, "same /24");
        assert_eq!(burst(&mut l, 1, "192.0.3.1", Positive, 1, 5)[0], 5, "next /24");
        let mut l = Limiter::new(&Settings { ipv4_prefix: 32, ..settings(5, 0, 15) });
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 1, 5)[0], 5);
        assert_eq!(burst(&mut l, 1, "192.0.2.2", Positive, 1, 5)[0], 5, "/32: each address alone");
        let mut l = Limiter::new(&Settings { ipv4_prefix: 8, ..settings(5, 0, 15) });
        assert_eq!(burst(&mut l, 1, "10.1.2.3", Positive, 1, 3)[0], 3);
        assert_eq!(burst(&mut l, 1, "10.200.0.1", Positive, 1, 5)[0], 2, "/8");
    }

    #[test]
    fn ipv6_prefixes_share_a_bucket() {
        let mut l = Limiter::new(&settings(5, 0, 15));
        assert_eq!(burst(&mut l, 1, "2001:db8:0:100::1", Positive, 1, 3)[0], 3);
        assert_eq!(burst(&mut l, 1, "2001:db8:0:1ff:ffff::2", Positive, 1, 5)[0], 2, "same /56");
        assert_eq!(burst(&mut l, 1, "2001:db8:0:200::1", Positive, 1, 5)[0], 5, "next /56");
        // IPv4 and IPv6 never share, whatever the bits.
        assert_eq!(burst(&mut l, 1, "::ffff:192.0.2.1", Positive, 1, 5)[0], 5);
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 1, 5)[0], 5);
        let mut l = Limiter::new(&Settings { ipv6_prefix: 128, ..settings(5, 0, 15) });
        assert_eq!(burst(&mut l, 1, "2001:db8::1", Positive, 1, 5)[0], 5);
        assert_eq!(burst(&mut l, 1, "2001:db8::2", Positive, 1, 5)[0], 5);
    }

    #[test]
    fn the_limited_prefix_is_logged_once_and_at_most_once_a_second() {
        let mut l = Limiter::new(&settings(1, 0, 15));
        burst(&mut l, 1, "192.0.2.77", Error, 0, 100);
        burst(&mut l, 1, "2001:db8:1:2ff::1", NxDomain, 9, 100);
        let mut lines = Vec::new();
        l.log(1, |line| lines.push(line.to_string()));
        assert_eq!(
            lines,
            ["rrl: 192.0.2.0/24 error responses limited", "rrl: 2001:db8:1:200::/56 nxdomain responses limited"]
        );
        // More limited within the second: kept until a second has passed.
        for i in 0..40 {
            burst(&mut l, 2, &format!("10.0.{i}.1"), Positive, 1, 3);
        }
        lines.clear();
        l.log(500, |line| lines.push(line.to_string()));
        assert!(lines.is_empty());
        l.log(1001, |line| lines.push(line.to_string()));
        assert_eq!(lines.len(), LOG_QUEUE + 1);
        assert_eq!(lines[LOG_QUEUE], format!("rrl: {} more prefixes limited", 40 - LOG_QUEUE));
        // Still limited: nothing new to say.
        burst(&mut l, 3000, "192.0.2.77", Error, 0, 100);
        lines.clear();
        l.log(3000, |line| lines.push(line.to_string()));
        assert!(lines.is_empty());
        assert_eq!(l.counters().newly_limited, 42);
    }

    #[test]
    fn exempt_prefixes_are_never_limited_nor_charged() {
        let s = Settings { exempt: vec![(ip("192.0.2.7"), 32), (ip("2001:db8::"), 48)], ..settings(5, 1, 15) };
        let mut l = Limiter::new(&s);
        assert_eq!(burst(&mut l, 1, "192.0.2.7", Positive, 1, 1000), [1000, 0, 0]);
        assert_eq!(burst(&mut l, 1, "2001:db8:0:ffff::1", Positive, 1, 1000), [1000, 0, 0]);
        // Its neighbours in the /24 still have their whole credit.
        assert_eq!(burst(&mut l, 1, "192.0.2.8", Positive, 1, 10), [5, 0, 5]);
        assert_eq!(burst(&mut l, 1, "2001:db8:1::1", Positive, 1, 10), [5, 0, 5]);
    }

    #[test]
    fn a_valid_cookie_exempts() {
        let mut l = Limiter::new(&settings(1, 0, 15));
        for _ in 0..100 {
            assert_eq!(l.check(1, ip("192.0.2.1"), Positive, 1, true), Verdict::Pass);
        }
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 1, 2), [1, 1, 0]);
    }

    #[test]
    fn classes_and_names_are_limited_apart() {
        let mut l = Limiter::new(&settings(3, 0, 15));
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 1, 10)[0], 3);
        for class in [NxDomain, NoData, Referral, Wildcard, Error] {
            assert_eq!(burst(&mut l, 1, "192.0.2.1", class, 1, 10)[0], 3, "{class:?}");
        }
        // Another name in the same class: its own bucket.
        assert_eq!(burst(&mut l, 1, "192.0.2.1", Positive, 2, 10)[0], 3);
        assert_eq!(burst(&mut l, 1, "192.0.2.1", NxDomain, 2, 10)[0], 3);
    }

    #[test]
    fn more_keys_than_buckets_stay_within_the_table() {
        let rate = 5;
        let s = Settings { table_size: 64, ..settings(rate, 0, 15) };
        let mut l = Limiter::new(&s);
        // 100,000 prefixes in one second, each once: the table does not grow, and all of
        // them together get no more than the table's worth of credit.
        let mut passed = 0;
        for i in 0..100_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8)));
            passed += usize::from(l.check(1000 + u64::from(i) / 200, a, Positive, 1, false) == Verdict::Pass);
        }
        assert_eq!(l.table_len(), 64);
        assert!(passed <= 64 * rate as usize, "{passed}");
        // A second later the old buckets are idle: a new prefix gets a bucket of its own.
        assert_eq!(burst(&mut l, 3000, "192.0.2.1", Positive, 1, 10)[0], rate as usize);
    }

    #[test]
    fn churn_does_not_free_a_flooder() {
        let rate = 10;
        let s = Settings { table_size: 16, ..settings(rate, 0, 15) };
        let mut l = Limiter::new(&s);
        let mut flooder = 0;
        let mut k = 0u32;
        // For 10 s, the flooder every millisecond and 20 new prefixes each millisecond.
        for ms in 0..10_000u64 {
            flooder += burst(&mut l, ms, "192.0.2.1", Positive, 1, 1)[0];
            for _ in 0..20 {
                k += 1;
                let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (k << 8)));
                l.check(ms, a, Positive, 1, false);
            }
        }
        assert!(flooder <= 2 * rate as usize, "{flooder}");
    }

    #[test]
    fn wrong_settings_are_named() {
        let bad = [
            (Settings { rate: 0, ..Settings::default() }, "rate"),
            (Settings { rate: MAX_RATE + 1, ..Settings::default() }, "rate"),
            (Settings { slip: 101, ..Settings::default() }, "slip"),
            (Settings { window: 0, ..Settings::default() }, "window"),
            (Settings { window: 3601, ..Settings::default() }, "window"),
            (Settings { ipv4_prefix: 0, ..Settings::default() }, "ipv4-prefix"),
            (Settings { ipv4_prefix: 33, ..Settings::default() }, "ipv4-prefix"),
            (Settings { ipv6_prefix: 129, ..Settings::default() }, "ipv6-prefix"),
            (Settings { table_size: 0, ..Settings::default() }, "table-size"),
            (Settings { table_size: MAX_TABLE_SIZE + 1, ..Settings::default() }, "table-size"),
        ];
        for (s, key) in bad {
            assert_eq!(s.problem().map(|p| p.0), Some(key), "{s:?}");
        }
        assert_eq!(Settings::default().problem(), None);
        // The extremes work: the highest rate over the longest window does not overflow.
        let mut l =
            Limiter::new(&Settings { rate: MAX_RATE, window: MAX_WINDOW, table_size: 1, ..Settings::default() });
        assert_eq!(burst(&mut l, u64::MAX / 2, "192.0.2.1", Positive, 1, 100)[0], 100);
    }

    #[test]
    fn slip_replies_keep_the_question_only() {
        // A response: header (AN 1, AR 1), question www.example A IN, an A record, OPT.
        let mut m = vec![0xab, 0xcd, 0x85, 0x03, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        let q_end = m.len();
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        let len = m.len();
        let n = slip_reply(&mut m, len);
        assert_eq!(n, q_end);
        assert_eq!(&m[..12], &[0xab, 0xcd, 0x87, 0x03, 0, 1, 0, 0, 0, 0, 0, 0], "TC set, rcode kept, no records");
        // No readable question: the header alone.
        let mut short = vec![0xab, 0xcd, 0x81, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w'];
        assert_eq!(slip_reply(&mut short, 14), 12);
        assert_eq!(&short[2..6], &[0x83, 0x01, 0, 0]);
        let mut compressed = vec![0xab, 0xcd, 0x81, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1];
        assert_eq!(slip_reply(&mut compressed, 18), 12);
        let mut tiny = vec![0u8; 5];
        assert_eq!(slip_reply(&mut tiny, 5), 5);
    }

    #[test]
    fn badcookie_replies_keep_the_question_and_the_cookie() {
        // A response: header (AA, AN 1, AR 1), question, an A record, OPT with a COOKIE.
        let cookie: Vec<u8> = (1..=24).collect();
        let mut m = vec![0xab, 0xcd, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        let q_end = m.len();
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
        let opt_at = m.len();
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 28, 0, 10, 0, 24]);
        m.extend_from_slice(&cookie);
        let opt = m[opt_at..].to_vec();
        let len = m.len();
        let n = badcookie_reply(&mut m, len).expect("a BADCOOKIE");
        assert_eq!(n, q_end + opt.len());
        assert_eq!(&m[..12], &[0xab, 0xcd, 0x81, 0x07, 0, 1, 0, 0, 0, 0, 0, 1], "rcode 7, AA clear, OPT only");
        assert_eq!(&m[q_end..q_end + 5], &opt[..5]);
        assert_eq!(m[q_end + 5], 1, "extended rcode: 1 × 16 + 7 = 23");
        assert_eq!(&m[q_end + 6..n], &opt[6..], "DO, the option and the cookie kept");
        // A response that does not end with our cookie is left alone.
        for cut in [1, 4, 24] {
            let mut other = m[..n - cut].to_vec();
            let before = other.clone();
            assert_eq!(badcookie_reply(&mut other, n - cut), None, "{cut}");
            assert_eq!(other, before);
        }
        let mut no_question = m[..n].to_vec();
        no_question[5] = 0;
        assert_eq!(badcookie_reply(&mut no_question, n), None);
        let mut tiny = vec![0u8; 5];
        assert_eq!(badcookie_reply(&mut tiny, 5), None);
    }
}
