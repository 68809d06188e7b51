//! Live figures of a running server: what `GET /metrics` (Prometheus text exposition) and
//! `nsxdp ctl stats [--json]` show.
//!
//! The run loops own their counters ([`LoopStats`], [`FrameStats`], [`XskStats`]: relaxed
//! atomics with one writer each); this module only keeps `Arc`s to them, registered once
//! when the server starts, and sums them when asked. The zone manager publishes each zone's
//! state here ([`Metrics::publish_zones`]) after it acts. Nothing here runs on a run loop: the
//! one lock is taken by the scrape and by those registrations, never by a loop.
//!
//! [`Figures`] is one reading of everything, as plain values; the Prometheus text (through
//! `prometheus-client`'s encoder), the JSON of `ctl stats --json` and the lines of
//! `ctl stats` are all made from it, so the three always agree. The HTTP side is
//! [`serve_http`]: a small bounded HTTP/1.x server on std (see ARCHITECTURE.md for why no
//! crate).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::control::handoff::HandoffStats;
use crate::control::tcp::TcpStats;
use crate::control::transfer::TransferStats;
use crate::control::zones::{SecondaryCounters, ZoneSet};
use crate::dataplane::packet::DropReason as FrameDrop;
use crate::dataplane::xdp::FrameStats;
use crate::dataplane::xsk::{kernel_stats_of, XskStats};
use crate::dataplane::{LoopStats, ServiceSnapshot, StatsSnapshot, QTYPES, SERVICE_BOUNDS_NS};
use crate::wire::name::Name;

/// The names of rcodes 0..=15 and of 16 (BADVERS, where extended rcodes are counted).
const RCODES: [&str; 17] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
    "NOTZONE", "rcode11", "rcode12", "rcode13", "rcode14", "rcode15", "BADVERS",
];

/// One run loop's counters, as registered.
pub struct LoopSource {
    /// `udp` (kernel sockets), `xdp` or `tcp`.
    pub transport: &'static str,
    /// The loop's name in the metrics (`udp0`, `xdp-q1`, `tcp`).
    pub name: String,
    pub stats: Arc<LoopStats>,
}

/// One AF_XDP queue's frame and socket counters.
pub struct XdpSource {
    pub queue: u32,
    pub frames: Arc<FrameStats>,
    pub socket: Arc<XskStats>,
    /// A descriptor of the queue's socket: the kernel's XDP_STATISTICS are read through it
    /// (one getsockopt per queue and scrape, on the scraping thread).
    pub kernel: Option<Arc<OwnedFd>>,
}

/// A zone's state as the manager last published it.
#[derive(Debug, Clone)]
pub struct ZoneState {
    pub name: Name,
    pub secondary: bool,
    pub serial: Option<u32>,
    pub serving: bool,
    pub expired: bool,
    /// The last reload or check failed (the message is in `ctl status`).
    pub failed: bool,
    pub last_success: Option<Instant>,
    pub counters: Option<SecondaryCounters>,
    /// Sizes of the files served from and kept: the snapshot and the journal.
    pub snapshot_bytes: Option<u64>,
    pub journal_bytes: Option<u64>,
}

/// What the scrape reads: registered once at start, zones replaced by the manager.
#[derive(Default)]
struct Sources {
    loops: Vec<LoopSource>,
    xdp: Vec<XdpSource>,
    tcp: Option<Arc<TcpStats>>,
    transfers: Option<Arc<TransferStats>>,
    handoff: Vec<Arc<HandoffStats>>,
    zones: Vec<ZoneState>,
}

/// The metrics endpoint's own counters.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub served: AtomicU64,
    /// Connections closed at once because [`HttpLimits::max_connections`] were open.
    pub refused_busy: AtomicU64,
    /// Requests too long, malformed, or not a GET.
    pub bad_requests: AtomicU64,
    /// Requests that did not arrive whole in time.
    pub timed_out: AtomicU64,
}

/// The registry of live figures, shared by the server's threads.
pub struct Metrics {
    started: SystemTime,
    started_at: Instant,
    sources: Mutex<Sources>,
    pub http: HttpStats,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            started: SystemTime::now(),
            started_at: Instant::now(),
            sources: Mutex::new(Sources::default()),
            http: HttpStats::default(),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        // A panic elsewhere while holding the lock leaves plain data behind: read it anyway.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds run loops: `udp` loops are named `udp0`, `udp1`, … in the order given (after any
    /// registered before), the others by `name(i)`.
    pub fn add_loops(&self, transport: &'static str, stats: &[Arc<LoopStats>], name: impl Fn(usize) -> String) {
        let mut s = self.sources();
        for (i, l) in stats.iter().enumerate() {
            s.loops.push(LoopSource { transport, name: name(i), stats: l.clone() });
        }
    }

    /// Adds kernel-socket UDP loops, named on from the ones already there.
    pub fn add_udp_loops(&self, stats: &[Arc<LoopStats>]) {
        let first = self.sources().loops.iter().filter(|l| l.transport == "udp").count();
        self.add_loops("udp", stats, |i| format!("udp{}", first + i));
    }

    pub fn add_xdp_queue(&self, queue: u32, dns: Arc<LoopStats>, source: XdpSource) {
        debug_assert_eq!(queue, source.queue);
        self.add_loops("xdp", &[dns], |_| format!("xdp-q{queue}"));
        self.sources().xdp.push(source);
    }

    pub fn set_tcp(&self, dns: Arc<LoopStats>, connections: Arc<TcpStats>) {
        self.add_loops("tcp", &[dns], |_| "tcp".into());
        self.sources().tcp = Some(connections);
    }

    pub fn set_transfers(&self, t: Arc<TransferStats>) {
        self.sources().transfers = Some(t);
    }

    pub fn add_handoff(&self, h: Arc<HandoffStats>) {
        self.sources().handoff.push(h);
    }

    /// Publishes the state of every zone of `zones` (the manager calls it after it acts).
    /// The list is updated in place: a zone's name is copied only when the zone at its
    /// position changed, and nothing is formatted until a scrape asks. False when a
    /// journal's size was left out (a transfer out held it): the caller asks again later.
    pub fn publish_zones(&self, zones: &ZoneSet) -> bool {
        let mut complete = true;
        let mut sources = self.sources();
        let list = &mut sources.zones;
        list.truncate(zones.zones.len());
        for (i, z) in zones.zones.iter().enumerate() {
            let mut fill = |st: &mut ZoneState| {
                st.secondary = z.secondary.is_some();
                st.serial = z.serial();
                st.serving = z.serving();
                st.expired = z.secondary.as_ref().is_some_and(|s| s.refresh.is_expired());
                st.failed = z.last_error.is_some();
                st.last_success = z.secondary.as_ref().and_then(|s| s.refresh.last_success());
                st.counters = z.secondary.as_ref().map(|s| s.counters);
                st.snapshot_bytes = z.snapshot.as_ref().map(|s| s.file_len() as u64);
                // Not waiting for a transfer out that holds the journal: its size is then
                // left out of this reading.
                st.journal_bytes = match z.journal.as_ref().map(|j| j.try_lock()) {
                    Some(Ok(j)) => Some(j.file_len()),
                    Some(Err(_)) => {
                        complete = false;
                        None
                    }
                    None => None,
                };
            };
            match list.get_mut(i) {
                Some(old) => {
                    if old.name != z.name {
                        old.name = z.name.clone();
                    }
                    fill(old);
                }
                None => {
                    let mut st = ZoneState {
                        name: z.name.clone(),
                        secondary: false,
                        serial: None,
                        serving: false,
                        expired: false,
                        failed: false,
                        last_success: None,
                        counters: None,
                        snapshot_bytes: None,
                        journal_bytes: None,
                    };
                    fill(&mut st);
                    list.push(st);
                }
            }
        }
        complete
    }

    /// When the server started.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }

    /// One reading of everything.
    pub fn figures(&self) -> Figures {
        let now = Instant::now();
        let s = self.sources();
        let mut by_transport: BTreeMap<&'static str, StatsSnapshot> = BTreeMap::new();
        let mut loops = Vec::new();
        for l in &s.loops {
            let sum = by_transport.entry(l.transport).or_default();
            add_stats(sum, &StatsSnapshot::sum([&l.stats]));
            let service = l.stats.service.snapshot();
            // TCP is answered on the control thread, which keeps no service time.
            if l.transport != "tcp" {
                loops.push(LoopFigures { name: l.name.clone(), transport: l.transport, service: service.into() });
            }
        }
        let transports = by_transport.into_iter().map(|(t, s)| TransportFigures::new(t, &s)).collect();
        let load = |c: &AtomicU64| c.load(Relaxed);
        let xdp = s
            .xdp
            .iter()
            .map(|q| XdpFigures {
                queue: q.queue,
                frames_dropped: FrameDrop::ALL
                    .iter()
                    .map(|r| (drop_name(*r), load(&q.frames.drops[r.index()])))
                    .collect(),
                build_errors: load(&q.frames.build_errors),
                handed_off: load(&q.frames.handed_off),
                handoff_dropped: load(&q.frames.handoff_dropped),
                idle_polls: load(&q.frames.idle_polls),
                socket: BTreeMap::from([
                    ("rx", load(&q.socket.rx)),
                    ("tx", load(&q.socket.tx)),
                    ("tx_completed", load(&q.socket.tx_completed)),
                    ("tx_ring_full", load(&q.socket.tx_ring_full)),
                    ("tx_invalid", load(&q.socket.tx_invalid)),
                    ("rx_invalid", load(&q.socket.rx_invalid)),
                    ("fill_empty", load(&q.socket.fill_empty)),
                    ("rx_wakeups", load(&q.socket.rx_wakeups)),
                    ("tx_kicks", load(&q.socket.tx_kicks)),
                    ("wakeup_errors", load(&q.socket.wakeup_errors)),
                ]),
                kernel: q.kernel.as_ref().and_then(|fd| kernel_stats_of(fd.as_fd()).ok()).map(|k| {
                    BTreeMap::from([
                        ("rx_dropped", k.rx_dropped),
                        ("rx_invalid_descs", k.rx_invalid_descs),
                        ("tx_invalid_descs", k.tx_invalid_descs),
                        ("rx_ring_full", k.rx_ring_full),
                        ("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
                        ("tx_ring_empty_descs", k.tx_ring_empty_descs),
                    ])
                }),
            })
            .collect();
        let tcp_connections = s.tcp.as_ref().map(|t| {
            BTreeMap::from([
                ("accepted", load(&t.accepted)),
                ("evicted_full", load(&t.evicted_full)),
                ("evicted_per_address", load(&t.evicted_per_address)),
                ("closed_idle", load(&t.closed_idle)),
                ("closed_stalled", load(&t.closed_stalled)),
                ("closed_slow_message", load(&t.closed_slow_message)),
                ("paused_output", load(&t.paused_output)),
                ("paused_budget", load(&t.paused_budget)),
                ("tls_accepted", load(&t.tls_accepted)),
                ("closed_slow_handshake", load(&t.closed_slow_handshake)),
                ("tls_failed", load(&t.tls_failed)),
            ])
        });
        let transfers_out = s.transfers.as_ref().map(|t| TransfersOut {
            requests: BTreeMap::from([
                ("axfr", load(&t.axfr)),
                ("ixfr_incremental", load(&t.ixfr_incremental)),
                ("ixfr_full", load(&t.ixfr_full)),
                ("ixfr_current", load(&t.ixfr_current)),
            ]),
            ixfr_udp: load(&t.ixfr_udp),
            outcomes: BTreeMap::from([
                ("completed", load(&t.completed)),
                ("refused", load(&t.refused)),
                ("notauth", load(&t.notauth)),
                ("tsig_failure", load(&t.tsig_failures)),
            ]),
            messages: load(&t.messages),
        });
        let mut handoff: BTreeMap<&'static str, u64> = BTreeMap::new();
        for h in &s.handoff {
            for (k, v) in [
                ("received", load(&h.received)),
                ("answered", load(&h.answered)),
                ("notify_accepted", load(&h.notify_accepted)),
                ("notify_refused", load(&h.notify_refused)),
                ("ixfr_udp", load(&h.ixfr_udp)),
                ("signed", load(&h.signed)),
                ("dropped", load(&h.dropped)),
                ("send_errors", load(&h.send_errors)),
            ] {
                *handoff.entry(k).or_default() += v;
            }
        }
        let mut transfers_in: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut zones = ZonesFigures::default();
        for z in &s.zones {
            zones.configured += 1;
            zones.serving += u64::from(z.serving);
            zones.failed += u64::from(z.failed);
            if let Some(c) = &z.counters {
                for (k, v) in [
                    ("checks", c.checks),
                    ("up_to_date", c.up_to_date),
                    ("ixfr", c.ixfr),
                    ("axfr", c.axfr),
                    ("ixfr_fallback", c.fallbacks),
                    ("ixfr_udp", c.ixfr_udp),
                    ("ixfr_udp_to_tcp", c.udp_to_tcp),
                    ("failed", c.failures),
                    ("notify", c.notifies),
                    ("expired", c.expired),
                ] {
                    *transfers_in.entry(k).or_default() += v;
                }
            }
            zones.list.push(ZoneFigures {
                zone: z.name.to_string(),
                role: if z.secondary { "secondary" } else { "primary" },
                serial: z.serial,
                serving: z.serving,
                expired: z.expired,
                seconds_since_success: z.last_success.map(|t| now.saturating_duration_since(t).as_secs_f64()),
                snapshot_bytes: z.snapshot_bytes,
                journal_bytes: z.journal_bytes,
            });
        }
        let http = BTreeMap::from([
            ("served", load(&self.http.served)),
            ("refused_busy", load(&self.http.refused_busy)),
            ("bad_request", load(&self.http.bad_requests)),
            ("timed_out", load(&self.http.timed_out)),
        ]);
        Figures {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(self.started).to_string(),
            started_unix: self.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            uptime_seconds: self.started_at.elapsed().as_secs_f64(),
            transports,
            loops,
            xdp,
            tcp_connections,
            transfers_out,
            transfers_in,
            handoff,
            zones,
            http,
        }
    }
}

fn add_stats(a: &mut StatsSnapshot, b: &StatsSnapshot) {
    a.received += b.received;
    a.sent += b.sent;
    for (x, y) in a.rcodes.iter_mut().zip(&b.rcodes) {
        *x += y;
    }
    a.truncated += b.truncated;
    a.dropped_short += b.dropped_short;
    a.dropped_response += b.dropped_response;
    a.send_errors += b.send_errors;
    a.batches += b.batches;
    a.handoff_dropped += b.handoff_dropped;
    a.rrl_passed += b.rrl_passed;
    a.rrl_dropped += b.rrl_dropped;
    a.rrl_slipped += b.rrl_slipped;
    for (x, y) in a.qtypes.iter_mut().zip(&b.qtypes) {
        *x += y;
    }
    a.cookies_valid += b.cookies_valid;
    a.cookies_unproven += b.cookies_unproven;
}

/// A frame drop reason as a label value (lower case, `_` between words).
fn drop_name(r: FrameDrop) -> String {
    let s = format!("{r:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// One reading of the server's figures.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub version: &'static str,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    pub started_unix: u64,
    pub uptime_seconds: f64,
    pub transports: Vec<TransportFigures>,
    pub loops: Vec<LoopFigures>,
    pub xdp: Vec<XdpFigures>,
    pub tcp_connections: Option<BTreeMap<&'static str, u64>>,
    pub transfers_out: Option<TransfersOut>,
    /// Summed over the secondary zones: checks and their outcomes.
    pub transfers_in: BTreeMap<&'static str, u64>,
    pub handoff: BTreeMap<&'static str, u64>,
    pub zones: ZonesFigures,
    pub http: BTreeMap<&'static str, u64>,
}

/// The DNS counters of every loop of one transport, summed.
#[derive(Debug, Serialize)]
pub struct TransportFigures {
    pub transport: &'static str,
    pub queries: u64,
    pub responses: u64,
    pub truncated: u64,
    pub rcodes: BTreeMap<&'static str, u64>,
    pub qtypes: BTreeMap<&'static str, u64>,
    pub dropped: BTreeMap<&'static str, u64>,
    pub rrl: BTreeMap<&'static str, u64>,
    pub cookies: BTreeMap<&'static str, u64>,
    pub batches: u64,
}

impl TransportFigures {
    fn new(transport: &'static str, s: &StatsSnapshot) -> TransportFigures {
        TransportFigures {
            transport,
            queries: s.received,
            responses: s.sent,
            truncated: s.truncated,
            rcodes: RCODES.iter().zip(&s.rcodes).map(|(n, v)| (*n, *v)).collect(),
            qtypes: QTYPES.iter().map(|(_, n)| *n).chain(["other"]).zip(s.qtypes).collect(),
            dropped: BTreeMap::from([
                ("short", s.dropped_short),
                ("response", s.dropped_response),
                ("send_error", s.send_errors),
                ("handoff_full", s.handoff_dropped),
                ("rrl", s.rrl_dropped),
            ]),
            rrl: BTreeMap::from([("pass", s.rrl_passed), ("drop", s.rrl_dropped), ("slip", s.rrl_slipped)]),
            cookies: BTreeMap::from([("valid", s.cookies_valid), ("unproven", s.cookies_unproven)]),
            batches: s.batches,
        }
    }
}

/// One loop's service time.
#[derive(Debug, Serialize)]
pub struct LoopFigures {
    pub name: String,
    pub transport: &'static str,
    pub service: ServiceFigures,
}

/// A service-time histogram: per bucket (not cumulative) with its upper bound in
/// nanoseconds, the last bucket unbounded (`null`).
#[derive(Debug, Serialize)]
pub struct ServiceFigures {
    pub buckets: Vec<(Option<u64>, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl From<ServiceSnapshot> for ServiceFigures {
    fn from(s: ServiceSnapshot) -> ServiceFigures {
        let bounds = SERVICE_BOUNDS_NS.iter().map(|b| Some(*b)).chain([None]);
        ServiceFigures { buckets: bounds.zip(s.counts).collect(), count: s.count, sum_seconds: s.sum_ns as f64 / 1e9 }
    }
}

#[derive(Debug, Serialize)]
pub struct XdpFigures {
    pub queue: u32,
    pub frames_dropped: BTreeMap<String, u64>,
    pub build_errors: u64,
    pub handed_off: u64,
    pub handoff_dropped: u64,
    pub idle_polls: u64,
    pub socket: BTreeMap<&'static str, u64>,
    /// The kernel's XDP_STATISTICS of the queue's socket.
    pub kernel: Option<BTreeMap<&'static str, u64>>,
}

#[derive(Debug, Serialize)]
pub struct TransfersOut {
    /// By kind: AXFR, IXFR answered with changesets, with the whole zone, with our SOA.
    pub requests: BTreeMap<&'static str, u64>,
    pub ixfr_udp: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub messages: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ZonesFigures {
    pub configured: u64,
    pub serving: u64,
    /// Zones whose last reload or check failed.
    pub failed: u64,
    pub list: Vec<ZoneFigures>,
}

#[derive(Debug, Serialize)]
pub struct ZoneFigures {
    pub zone: String,
    pub role: &'static str,
    pub serial: Option<u32>,
    pub serving: bool,
    /// Secondary zones: expired, and seconds since the last successful check.
    pub expired: bool,
    pub seconds_since_success: Option<f64>,
    pub snapshot_bytes: Option<u64>,
    pub journal_bytes: Option<u64>,
}

impl Figures {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn prometheus(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(self)));
        let mut out = String::new();
        // Writing to a String cannot fail, and every name and label is ours.
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encoding into a String");
        out
    }

    /// The samples of [`Figures::prometheus`] without the comments: what `ctl stats` prints.
    pub fn lines(self) -> String {
        let mut out = String::new();
        for l in self.prometheus().lines().filter(|l| !l.starts_with('#')) {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// [`Figures`] as a `prometheus-client` collector, encoded once.
#[derive(Debug)]
struct Exposition(Figures);

type Labels = Vec<(&'static str, String)>;

fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let mut f = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => f.encode_counter::<NoLabelSet, _, u64>(&(v as u64), None)?,
            _ => f.encode_gauge(&v)?,
        }
    }
    Ok(())
}

fn l(k: &'static str, v: impl ToString) -> (&'static str, String) {
    (k, v.to_string())
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let f = &self.0;
        let e = &mut enc;
        family(
            e,
            "nsxdp_build_info",
            "Version of the running server (always 1)",
            Gauge,
            [(vec![l("version", f.version)], 1.0)],
        )?;
        family(
            e,
            "nsxdp_start_time_seconds",
            "Start of the process, Unix seconds",
            Gauge,
            [(vec![], f.started_unix as f64)],
        )?;
        family(e, "nsxdp_uptime_seconds", "Seconds since the process started", Gauge, [(vec![], f.uptime_seconds)])?;
        let t = &f.transports;
        let per = |get: fn(&TransportFigures) -> u64| {
            t.iter().map(move |x| (vec![l("transport", x.transport)], get(x) as f64)).collect::<Vec<_>>()
        };
        family(e, "nsxdp_queries", "DNS messages received by the answering loops", Counter, per(|x| x.queries))?;
        family(e, "nsxdp_responses", "Responses sent", Counter, per(|x| x.responses))?;
        family(e, "nsxdp_truncated", "Responses sent with TC=1", Counter, per(|x| x.truncated))?;
        family(
            e,
            "nsxdp_responses_by_rcode",
            "Responses by rcode (extended rcodes counted as BADVERS)",
            Counter,
            t.iter().flat_map(|x| {
                x.rcodes.iter().map(|(r, v)| (vec![l("transport", x.transport), l("rcode", r)], *v as f64))
            }),
        )?;
        family(
            e,
            "nsxdp_queries_by_type",
            "Answered queries by the type asked (the common types, then other)",
            Counter,
            t.iter().flat_map(|x| {
                x.qtypes.iter().map(|(q, v)| (vec![l("transport", x.transport), l("qtype", q)], *v as f64))
            }),
        )?;
        family(
            e,
            "nsxdp_dropped",
            "Messages not answered or responses not sent, by reason",
            Counter,
            t.iter().flat_map(|x| {
                x.dropped.iter().map(|(r, v)| (vec![l("transport", x.transport), l("reason", r)], *v as f64))
            }),
        )?;
        family(
            e,
            "nsxdp_rrl_actions",
            "Response rate limiting: responses passed, dropped, slipped",
            Counter,
            t.iter().flat_map(|x| {
                x.rrl.iter().map(|(a, v)| (vec![l("transport", x.transport), l("action", a)], *v as f64))
            }),
        )?;
        family(
            e,
            "nsxdp_cookies",
            "Queries with a DNS cookie, by whether it carried a valid server cookie",
            Counter,
            t.iter().flat_map(|x| {
                x.cookies.iter().map(|(s, v)| (vec![l("transport", x.transport), l("state", s)], *v as f64))
            }),
        )?;
        family(e, "nsxdp_batches", "Receive batches", Counter, per(|x| x.batches))?;
        if !f.loops.is_empty() {
            let mut m = e.encode_descriptor(
                "nsxdp_service_time_seconds",
                "Time to answer a query, per run loop (a batch's time shared out)",
                None,
                MetricType::Histogram,
            )?;
            for lp in &f.loops {
                let labels = vec![l("transport", lp.transport), l("loop", &lp.name)];
                let buckets: Vec<(f64, u64)> = lp
                    .service
                    .buckets
                    .iter()
                    .map(|(b, c)| (b.map_or(f64::INFINITY, |ns| ns as f64 / 1e9), *c))
                    .collect();
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    lp.service.sum_seconds,
                    lp.service.count,
                    &buckets,
                    None,
                )?;
            }
        }
        let q = &f.xdp;
        family(
            e,
            "nsxdp_xdp_frames_dropped",
            "AF_XDP frames dropped before the DNS message, by reason",
            Counter,
            q.iter().flat_map(|x| {
                x.frames_dropped.iter().map(|(r, v)| (vec![l("queue", x.queue), l("reason", r)], *v as f64))
            }),
        )?;
        let per_q = |get: fn(&XdpFigures) -> u64| {
            q.iter().map(move |x| (vec![l("queue", x.queue)], get(x) as f64)).collect::<Vec<_>>()
        };
        family(e, "nsxdp_xdp_build_errors", "Replies that could not be framed", Counter, per_q(|x| x.build_errors))?;
        family(e, "nsxdp_xdp_handed_off", "Messages sent to the control side", Counter, per_q(|x| x.handed_off))?;
        family(
            e,
            "nsxdp_xdp_handoff_dropped",
            "Messages for the control side dropped (channel full)",
            Counter,
            per_q(|x| x.handoff_dropped),
        )?;
        family(e, "nsxdp_xdp_idle_polls", "Times an idle queue loop slept in poll", Counter, per_q(|x| x.idle_polls))?;
        family(
            e,
            "nsxdp_xdp_socket_events",
            "AF_XDP socket ring events by kind",
            Counter,
            q.iter().flat_map(|x| x.socket.iter().map(|(k, v)| (vec![l("queue", x.queue), l("event", k)], *v as f64))),
        )?;
        family(
            e,
            "nsxdp_xdp_kernel",
            "The kernel's AF_XDP statistics (XDP_STATISTICS) per queue socket",
            Counter,
            q.iter().flat_map(|x| {
                x.kernel.iter().flatten().map(|(k, v)| (vec![l("queue", x.queue), l("counter", k)], *v as f64))
            }),
        )?;
        if let Some(c) = &f.tcp_connections {
            family(
                e,
                "nsxdp_tcp_connections",
                "TCP connections accepted, and closed or paused, by reason",
                Counter,
                c.iter().map(|(k, v)| (vec![l("event", k)], *v as f64)),
            )?;
        }
        if let Some(x) = &f.transfers_out {
            family(
                e,
                "nsxdp_transfers_out",
                "Zone transfer requests answered, by kind",
                Counter,
                x.requests.iter().map(|(k, v)| (vec![l("kind", k)], *v as f64)),
            )?;
            family(
                e,
                "nsxdp_transfers_out_outcomes",
                "Zone transfers out by outcome",
                Counter,
                x.outcomes.iter().map(|(k, v)| (vec![l("outcome", k)], *v as f64)),
            )?;
            family(
                e,
                "nsxdp_transfers_out_ixfr_udp",
                "IXFR answered over UDP",
                Counter,
                [(vec![], x.ixfr_udp as f64)],
            )?;
            family(
                e,
                "nsxdp_transfers_out_messages",
                "Transfer messages sent",
                Counter,
                [(vec![], x.messages as f64)],
            )?;
        }
        family(
            e,
            "nsxdp_transfers_in",
            "Checks of secondary zones and their outcomes, summed over the zones",
            Counter,
            f.transfers_in.iter().map(|(k, v)| (vec![l("event", k)], *v as f64)),
        )?;
        family(
            e,
            "nsxdp_handoff",
            "Messages the run loops handed to the control side (NOTIFY, IXFR, signed), by outcome",
            Counter,
            f.handoff.iter().map(|(k, v)| (vec![l("event", k)], *v as f64)),
        )?;
        let z = &f.zones;
        family(
            e,
            "nsxdp_zones",
            "Zones by state: configured, serving, failed (last reload or check)",
            Gauge,
            [("configured", z.configured), ("serving", z.serving), ("failed", z.failed)]
                .map(|(s, v)| (vec![l("state", s)], v as f64)),
        )?;
        let zl = &z.list;
        let per_zone = |get: fn(&ZoneFigures) -> Option<f64>| {
            zl.iter().filter_map(move |x| get(x).map(|v| (vec![l("zone", &x.zone), l("role", x.role)], v)))
        };
        family(e, "nsxdp_zone_serial", "Serial served by each zone", Gauge, per_zone(|x| x.serial.map(f64::from)))?;
        family(
            e,
            "nsxdp_zone_serving",
            "1 while a zone is answered from (0: not loaded, or expired: SERVFAIL)",
            Gauge,
            per_zone(|x| Some(f64::from(u8::from(x.serving)))),
        )?;
        family(
            e,
            "nsxdp_zone_seconds_since_success",
            "Seconds since the last successful check of each secondary zone",
            Gauge,
            per_zone(|x| x.seconds_since_success),
        )?;
        family(
            e,
            "nsxdp_zone_expired",
            "1 while a secondary zone has expired (answered SERVFAIL)",
            Gauge,
            per_zone(|x| (x.role == "secondary").then_some(f64::from(u8::from(x.expired)))),
        )?;
        family(
            e,
            "nsxdp_zone_snapshot_bytes",
            "Size of each zone's snapshot file",
            Gauge,
            per_zone(|x| x.snapshot_bytes.map(|b| b as f64)),
        )?;
        family(
            e,
            "nsxdp_zone_journal_bytes",
            "Size of each zone's journal file",
            Gauge,
            per_zone(|x| x.journal_bytes.map(|b| b as f64)),
        )?;
        family(
            e,
            "nsxdp_metrics_http",
            "Requests to this endpoint by outcome",
            Counter,
            f.http.iter().map(|(k, v)| (vec![l("outcome", k)], *v as f64)),
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP endpoint

/// Bounds of the metrics endpoint: a peer can hold at most `max_connections` handler
/// threads, each for at most `request_timeout`, with at most `max_request` octets read.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_request: usize,
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { max_connections: 8, max_request: 8192, request_timeout: Duration::from_secs(5) }
    }
}

/// The metrics endpoint, bound: call [`MetricsServer::spawn`] to serve it.
pub struct MetricsServer {
    listener: TcpListener,
    pub addr: SocketAddr,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("metrics {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer { listener, addr })
    }

    /// Serves `GET /metrics` on a thread of its own until `shutdown`.
    pub fn spawn(
        self,
        metrics: Arc<Metrics>,
        limits: HttpLimits,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("nsxdp-metrics".into())
            .spawn(move || serve_http(self.listener, &metrics, limits, &shutdown))
    }
}

/// Accepts connections until `shutdown`; each gets a thread of its own while fewer than
/// `limits.max_connections` are open, else an immediate 503 and close.
pub fn serve_http(listener: TcpListener, metrics: &Arc<Metrics>, limits: HttpLimits, shutdown: &AtomicBool) {
    let open = Arc::new(AtomicUsize::new(0));
    while !shutdown.load(Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if open.load(Relaxed) >= limits.max_connections {
                    metrics.http.refused_busy.fetch_add(1, Relaxed);
                    let _ = stream.set_nonblocking(true);
                    let _ = (&stream).write_all(&response(503, "text/plain", b"busy\n"));
                    continue;
                }
                open.fetch_add(1, Relaxed);
                let (m, o) = (metrics.clone(), open.clone());
                let spawned = std::thread::Builder::new().name("nsxdp-metrics-conn".into()).spawn(move || {
                    handle(stream, &m, limits);
                    o.fetch_sub(1, Relaxed);
                });
                if spawned.is_err() {
                    open.fetch_sub(1, Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    /// Another path.
    NotFound,
    /// A method other than GET or HEAD.
    BadMethod,
    Malformed,
}

/// Reads the request line of a request head (up to the blank line).
fn parse_request(head: &[u8]) -> Request {
    let Some(line) = head.split(|b| *b == b'\n').next() else { return Request::Malformed };
    let line = std::str::from_utf8(line).unwrap_or("").trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Request::Malformed;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    if method != "GET" && method != "HEAD" {
        return Request::BadMethod;
    }
    match target.split('?').next() {
        Some("/metrics") => Request::Metrics,
        _ => Request::NotFound,
    }
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// One connection: a request head of at most `max_request` octets within `request_timeout`,
/// one response, close.
fn handle(mut stream: TcpStream, metrics: &Metrics, limits: HttpLimits) {
    let _ = stream.set_nonblocking(false);
    let deadline = Instant::now() + limits.request_timeout;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let outcome = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break Ok(());
        }
        if head.len() > limits.max_request {
            break Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break Err(408);
        }
        match stream.read(&mut buf) {
            Ok(0) => break Err(400),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break Err(408),
        }
    };
    let _ = stream.set_write_timeout(Some(limits.request_timeout));
    let reply = match outcome {
        Err(408) => {
            metrics.http.timed_out.fetch_add(1, Relaxed);
            response(408, "text/plain", b"request timeout\n")
        }
        Err(code) => {
            metrics.http.bad_requests.fetch_add(1, Relaxed);
            response(code, "text/plain", b"bad request\n")
        }
        Ok(()) => match parse_request(&head) {
            Request::Metrics => {
                metrics.http.served.fetch_add(1, Relaxed);
                let body = metrics.figures().prometheus();
                let mut r = response(200, prometheus_client::encoding::prometheus_text::CONTENT_TYPE, body.as_bytes());
                if head.starts_with(b"HEAD ") {
                    r.truncate(r.len() - body.len());
                }
                r
            }
            Request::NotFound => response(404, "text/plain", b"not found: the metrics are at /metrics\n"),
            Request::BadMethod => {
                metrics.http.bad_requests.fetch_add(1, Relaxed);
                response(405, "text/plain", b"only GET\n")
            }
            Request::Malformed => {
                metrics.http.bad_requests.fetch_add(1, Relaxed);
                response(400, "text/plain", b"bad request\n")
            }
        },
    };
    let _ = stream.write_all(&reply);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{CookieSeen, Outcome, ResponseClass};

    fn reply(rcode: u16, qtype: u16) -> Outcome {
        Outcome::Reply {
            len: 30,
            rcode,
            truncated: false,
            cookie: CookieSeen::None,
            class: ResponseClass::ALL[0],
            class_name: 0,
            qtype,
        }
    }

    #[test]
    fn figures_sum_loops_by_transport() {
        let m = Metrics::new();
        let a = Arc::new(LoopStats::default());
        let b = Arc::new(LoopStats::default());
        let t = Arc::new(LoopStats::default());
        // Replies to A queries, and one whose question could not be read (type 0).
        for _ in 0..3 {
            a.record(&reply(0, 1));
        }
        b.record(&reply(3, 1));
        t.record(&reply(0, 0));
        a.service.record_n(300, 3);
        m.add_udp_loops(&[a, b]);
        m.set_tcp(t, Arc::new(TcpStats::default()));
        let f = m.figures();
        let udp = f.transports.iter().find(|x| x.transport == "udp").unwrap();
        assert_eq!(udp.queries, 4);
        assert_eq!(udp.rcodes["NOERROR"], 3);
        assert_eq!(udp.rcodes["NXDOMAIN"], 1);
        assert_eq!(udp.qtypes["A"], 4);
        let tcp = f.transports.iter().find(|x| x.transport == "tcp").unwrap();
        assert_eq!((tcp.queries, tcp.qtypes["other"]), (1, 1));
        assert_eq!(f.loops.len(), 2);
        let text = f.prometheus();
        assert!(text.contains("nsxdp_queries_total{transport=\"udp\"} 4\n"), "{text}");
        assert!(text.contains("nsxdp_queries_by_type_total{transport=\"udp\",qtype=\"A\"} 4\n"), "{text}");
        assert!(
            text.contains("nsxdp_service_time_seconds_bucket{transport=\"udp\",loop=\"udp0\",le=\"5.12e-07\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("nsxdp_service_time_seconds_count{transport=\"udp\",loop=\"udp1\"} 0\n"), "{text}");
        // The JSON of `ctl stats --json` has the same figures.
        let json: serde_json::Value = serde_json::to_value(m.figures()).unwrap();
        assert_eq!(json["transports"][1]["queries"], 4);
    }

    #[test]
    fn requests_are_read_within_bounds() {
        assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Request::Metrics);
        assert_eq!(parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Request::Metrics);
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request(b"GET /metrics SPDY/3 x\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n"), Request::Malformed);
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn endpoint_serves_and_bounds_its_peers() {
        let m = Arc::new(Metrics::new());
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.addr;
        let shutdown = Arc::new(AtomicBool::new(false));
        let limits = HttpLimits { max_connections: 2, max_request: 1024, request_timeout: Duration::from_millis(600) };
        let t = server.spawn(m.clone(), limits, shutdown.clone()).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("nsxdp_uptime_seconds "), "{ok}");
        assert!(get(addr, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        // A request head past the bound: 431, and only the bound (plus a read) was taken.
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100_000));
        assert!(get(addr, big.as_bytes()).starts_with("HTTP/1.1 431"));
        // Two silent peers take both handler slots: a third connection is told 503 at once.
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(150));
        let t0 = Instant::now();
        assert!(get(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        assert!(t0.elapsed() < Duration::from_millis(500));
        // Their time runs out (408), and the endpoint serves again.
        for mut s in idle {
            let mut out = String::new();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.read_to_string(&mut out);
            assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        let f = m.figures();
        assert_eq!(f.http["refused_busy"], 1);
        assert_eq!(f.http["timed_out"], 2);
        assert_eq!(f.http["bad_request"], 1);
        assert_eq!(f.http["served"], 2);
        shutdown.store(true, Relaxed);
        t.join().unwrap();
    }
}
