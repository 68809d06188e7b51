//! `nsxdp ctl`: the control socket and the zone manager thread behind it.
//!
//! The socket is a Unix stream socket. A client sends one command line (see [`COMMANDS`])
//! and reads the reply until the server closes: text lines, the last of which is `ok` or
//! `error: ...`. The socket thread answers `stats` (from [`Metrics`]) and `stop` (the
//! shutdown flag SIGTERM sets) itself, so that neither waits behind a long reload; it
//! passes the rest to the manager thread, which owns the [`ZoneSet`] and also reloads every
//! zone on SIGHUP. Reloading runs there, never on a DNS thread, so a long reload delays no
//! answer. Times in replies are RFC 3339, UTC.
//!
//! The manager also runs the secondary zones: it starts each check when its timer (or a
//! NOTIFY, passed in as an [`Event::Notify`]) says so, on a worker thread of its own
//! (`control::secondary::fetch`), and commits what comes back ([`Event::Fetched`]) the way
//! a reload commits a zone file: journal, snapshot, swap, NOTIFY onward.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dynamic::Dynamic;
use super::notify::{self, Done, Outbox, Policy};
use super::secondary::{self, Fetched, Job};
use super::zones::{Reloaded, ZoneSet};
use crate::config::SharedConfig;
use crate::metrics::Metrics;
use crate::wire::name::Name;
use crate::xfr::tsig::{Key, Signer};

/// A command for the manager, with where to send the reply.
pub struct Request {
    pub line: String,
    pub reply: Sender<String>,
}

/// What the manager thread acts on.
pub enum Event {
    /// A control-socket command.
    Command(Request),
    /// An accepted NOTIFY for a secondary zone (ACL and TSIG already checked).
    Notify { zone: Name, from: std::net::SocketAddr },
    /// A check of a secondary zone ended.
    Fetched { zone: Name, result: Result<Fetched, String> },
}

/// Most events the manager takes in one turn.
const MAX_BATCH: usize = 1024;

/// Shortest time between two publishes of new versions (and two metrics updates) while
/// they keep coming: an isolated change is published at once.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// Longest a client waits for a reply (a reload of a large zone takes seconds).
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// How often the control socket's thread looks at the shutdown flag while no one connects.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(100);

/// Binds the control socket (replacing a stale one left by a crash, refusing one a running
/// server answers on) and serves it on a thread. `stop` sets `shutdown`; `stats` and the
/// server lines of `status` come from `metrics`.
pub fn spawn_socket(
    path: &Path,
    to_manager: Sender<Event>,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> io::Result<JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another server answers on this control socket", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    // A connection is taken as soon as it comes (the socket polled, not the clock); the
    // shutdown flag is looked at every SHUTDOWN_CHECK.
    let mut listener = mio::net::UnixListener::from_std(listener);
    let mut poll = mio::Poll::new()?;
    poll.registry().register(&mut listener, mio::Token(0), mio::Interest::READABLE)?;
    let path = path.to_path_buf();
    std::thread::Builder::new().name("nsxdp-ctl".into()).spawn(move || {
        let mut events = mio::Events::with_capacity(4);
        while !shutdown.load(Ordering::Relaxed) {
            if let Err(e) = poll.poll(&mut events, Some(SHUTDOWN_CHECK)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("control socket: {e}");
                    std::thread::sleep(SHUTDOWN_CHECK);
                }
                continue;
            }
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stream = UnixStream::from(std::os::fd::OwnedFd::from(stream));
                        if let Err(e) = handle(stream, &to_manager, &shutdown, &metrics) {
                            log::error!("control socket: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::error!("control socket: {e}");
                        std::thread::sleep(SHUTDOWN_CHECK);
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    })
}

fn handle(stream: UnixStream, to_manager: &Sender<Event>, shutdown: &AtomicBool, metrics: &Metrics) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let answer = match words.as_slice() {
        ["stats"] => metrics.figures().lines() + "ok\n",
        ["stats", "--json"] => match serde_json::to_string_pretty(&metrics.figures()) {
            Ok(j) => j + "\nok\n",
            Err(e) => format!("error: {e}\n"),
        },
        ["stats", ..] => "error: stats takes only --json\n".to_string(),
        ["stop"] => {
            log::info!("ctl stop: stopping");
            shutdown.store(true, Ordering::Relaxed);
            "stopping\nok\n".to_string()
        }
        ["stop", ..] => "error: stop takes no argument\n".to_string(),
        _ => {
            let (reply, from_manager) = mpsc::channel();
            let from_zones =
                if to_manager.send(Event::Command(Request { line: line.trim().to_string(), reply })).is_err() {
                    "error: the server is stopping\n".to_string()
                } else {
                    from_manager.recv_timeout(REPLY_TIMEOUT).unwrap_or_else(|_| "error: no reply\n".to_string())
                };
            match words.first() {
                Some(&"status") => server_status(metrics) + &from_zones,
                _ => from_zones,
            }
        }
    };
    (&stream).write_all(answer.as_bytes())
}

/// The first lines of `status`: the server's version, process id, start and uptime.
fn server_status(metrics: &Metrics) -> String {
    let up = metrics.uptime().as_secs();
    format!(
        "version {}\npid {}\nstarted {}\nuptime {} ({up} s)\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        rfc3339(metrics.started()),
        humantime::format_duration(Duration::from_secs(up)),
    )
}

/// A time as RFC 3339, UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

trait TakeLine {
    fn take_line(self, out: &mut String) -> io::Result<()>;
}

impl<R: BufRead> TakeLine for R {
    /// One line of at most 4 KiB.
    fn take_line(self, out: &mut String) -> io::Result<()> {
        self.take(4096).read_line(out).map(|_| ())
    }
}

/// NOTIFY out: the configuration (targets and keys per zone) and a socket per family.
pub struct Notifier {
    pub config: SharedConfig,
    pub v4: Option<std::net::UdpSocket>,
    pub v6: Option<std::net::UdpSocket>,
    pub policy: Policy,
}

impl Notifier {
    /// Unbound-port sockets for both families (a family without a working socket is left
    /// out).
    pub fn new(config: impl Into<SharedConfig>) -> Notifier {
        let open = |a: &str| std::net::UdpSocket::bind(a).ok().filter(|s| s.set_nonblocking(true).is_ok());
        Notifier { config: config.into(), v4: open("0.0.0.0:0"), v6: open("[::]:0"), policy: Policy::default() }
    }

    /// Queues NOTIFY for a new version of zone `i` to its configured targets and its NS
    /// addresses.
    fn changed(&self, zones: &ZoneSet, i: usize, outbox: &mut Outbox) {
        let z = &zones.zones[i];
        let Some(serial) = z.serial() else { return };
        let now = std::time::Instant::now();
        let config = self.config.load();
        // Found by the configuration's index: 10^4 zones changed at once must not walk the
        // zone list 10^4 times.
        let conf = config.zone(&z.name);
        let mut targets: Vec<(std::net::SocketAddr, Option<String>)> = Vec::new();
        if let Some(c) = conf {
            targets.extend(c.notify.iter().map(|r| (r.addr, r.key.clone())));
            if c.notify_ns {
                targets.extend(z.ns_targets.iter().map(|a| (*a, None)));
            }
        }
        for (addr, key) in targets {
            outbox.notify(&z.name, serial, addr, key, now, &self.policy);
        }
        let soa = match (&z.secondary, &z.snapshot) {
            (Some(s), _) => s.soa.clone(),
            (None, Some(snap)) => {
                crate::snapshot::SnapshotRecords::new(snap.clone()).peek().and_then(|r| r.to_record().ok())
            }
            _ => None,
        };
        if let Some(soa) = soa {
            outbox.attach_soa(&z.name, soa.ttl, &soa.rdata);
        }
    }

    /// Sends what is due and reads responses.
    fn run(&self, outbox: &mut Outbox) {
        let now = std::time::Instant::now();
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut done = Vec::new();
        for p in outbox.due(now, &self.policy, &mut done) {
            let mut buf = [0u8; 2048];
            let m = notify::message(p.id, &p.zone, p.soa.as_ref().map(|(ttl, rdata)| (*ttl, &rdata[..])));
            buf[..m.len()].copy_from_slice(&m);
            let mut len = m.len();
            if let Some(k) = &p.key {
                match self.config.load().key(k) {
                    Some(k) => match Signer::request(&Key::from(k)).sign(&mut buf, len, unix) {
                        Ok(l) => len = l,
                        Err(_) => continue,
                    },
                    None => continue,
                }
            }
            let sock = if p.target.is_ipv4() { &self.v4 } else { &self.v6 };
            if let Some(s) = sock {
                if let Err(e) = s.send_to(&buf[..len], p.target) {
                    log::warn!("NOTIFY {} serial {} to {}: {e}", p.zone, p.serial, p.target);
                }
            }
        }
        let mut buf = [0u8; 4096];
        for s in [&self.v4, &self.v6].into_iter().flatten() {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                if let Some(d) = outbox.response(from, &buf[..n]) {
                    done.push(d);
                }
            }
        }
        for d in done {
            match d {
                Done::Answered { zone, target, rcode } => {
                    log::warn!("NOTIFY {zone} to {target}: answered (rcode {rcode})")
                }
                Done::GaveUp { zone, target, attempts } => {
                    log::warn!("NOTIFY {zone} to {target}: no answer after {attempts} attempts")
                }
            }
        }
    }
}

/// Where the configuration came from, and the shared copy every thread reads: `reload`
/// (all zones) and SIGHUP read the file again first.
pub struct ConfigSource {
    pub path: PathBuf,
    pub shared: SharedConfig,
    /// The cookie secrets in use (with cookies on): a reload rotates them.
    pub secrets: Option<&'static crate::cookie::SharedSecrets>,
}

/// Re-reads the configuration file: a good one replaces the running configuration and its
/// zone changes are applied; a bad one is reported and the running one stays. Lines for
/// the reply go to `out`; false when the file was refused.
fn reread_config(zones: &mut ZoneSet, src: &ConfigSource, dynamic: Option<&mut Dynamic>, out: &mut String) -> bool {
    let new = match crate::config::Config::load(&src.path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "configuration NOT reloaded, the running one stays: {e}");
            return false;
        }
    };
    let old = src.shared.load();
    if new.server != old.server {
        let _ = writeln!(out, "warning: changes to [server] take effect at the next start");
    }
    if new.rrl != old.rrl {
        let _ = writeln!(out, "warning: changes to [rrl] take effect at the next start");
    }
    rotate_cookie_secrets(&old, &new, src.secrets, out);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let mut notes = Vec::new();
    // Catalog members and zones added with zone-add stay beside the file's zones.
    let (new, delete) = match dynamic {
        Some(d) => d.reconfigured(new, zones),
        None => (new, Vec::new()),
    };
    zones.reconfigure(&old, &new, now, &mut notes);
    src.shared.store(new);
    Dynamic::delete_unserved(zones, &delete);
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    let _ = writeln!(out, "configuration {} reloaded", src.path.display());
    true
}

/// DNS cookies: a new `secret` (and `secret-previous`) in the file replace the ones in use at
/// once — the usual rotation moves the old secret to `secret-previous`, so that cookies made
/// with it stay valid. Turning cookies on or off, or to a random secret, waits for a
/// restart.
fn rotate_cookie_secrets(
    old: &crate::config::Config,
    new: &crate::config::Config,
    shared: Option<&crate::cookie::SharedSecrets>,
    out: &mut String,
) {
    if old.cookies == new.cookies {
        return;
    }
    let (Some(shared), Some(c)) = (shared, new.cookies) else {
        let _ = writeln!(out, "warning: turning [cookies] on or off takes effect at the next start");
        return;
    };
    let Some(current) = c.secret else {
        let _ = writeln!(out, "warning: [cookies] without a secret: the running secret stays till the next start");
        return;
    };
    shared.store(std::sync::Arc::new(crate::cookie::Secrets { current, previous: c.previous }));
    let _ = writeln!(
        out,
        "cookie secret rotated{}",
        if c.previous.is_some() { " (the previous one still accepted)" } else { "" }
    );
}

/// A command line, with the configuration re-read first for `reload` of every zone;
/// `zone-add` and `zone-remove` go to the zones beside the configuration file's.
fn handle_line(
    zones: &mut ZoneSet,
    line: &str,
    src: Option<&ConfigSource>,
    dynamic: Option<&mut Dynamic>,
) -> (String, Vec<usize>) {
    let (cmd, args) = line.trim().split_once(char::is_whitespace).unwrap_or((line.trim(), ""));
    if cmd == "zone-add" || cmd == "zone-remove" {
        let (Some(d), Some(src)) = (dynamic, src) else {
            return (format!("error: {cmd} needs a server started with --config\n"), Vec::new());
        };
        if cmd == "zone-remove" {
            return (d.zone_remove(zones, &src.shared, args), Vec::new());
        }
        let out = d.zone_add(zones, &src.shared, args);
        // A new primary zone is announced to its secondaries.
        let name =
            args.split_whitespace().next().and_then(|z| Name::parse_text(z.as_bytes(), Some(&Name::root())).ok());
        let added =
            name.and_then(|n| zones.index(&n)).filter(|&i| out.ends_with("ok\n") && zones.zones[i].secondary.is_none());
        return (out, added.into_iter().collect());
    }
    let mut pre = String::new();
    let config_ok = match src.filter(|_| line.trim() == "reload") {
        Some(src) => reread_config(zones, src, dynamic, &mut pre),
        None => true,
    };
    let (out, changed) = command(zones, line);
    let mut text = pre + &out;
    if !config_ok && text.ends_with("ok\n") {
        text.truncate(text.len() - 3);
        text.push_str("error: the configuration file was not reloaded\n");
    }
    (text, changed)
}

/// Runs the manager on a thread: commands from the socket, reload-all on `hup`, the
/// secondary zones' checks, NOTIFY out after every change (with a notifier), until
/// `shutdown`. `events` must be the receiving end of `to_self` (workers report through it).
/// Gives the zone set back when it stops.
#[allow(clippy::too_many_arguments)]
pub fn spawn_manager(
    mut zones: ZoneSet,
    events: Receiver<Event>,
    to_self: Sender<Event>,
    hup: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    notifier: Option<Notifier>,
    config: Option<ConfigSource>,
    metrics: Option<Arc<Metrics>>,
) -> io::Result<JoinHandle<ZoneSet>> {
    let (n, per_primary) = config.as_ref().map_or(
        (crate::config::DEFAULT_TRANSFER_WORKERS, crate::config::DEFAULT_TRANSFER_WORKERS),
        |c| {
            let s = &c.shared.load().server;
            (s.transfer_workers, s.transfers_per_primary)
        },
    );
    let mut workers = Workers::spawn(n, per_primary, &to_self)?;
    std::thread::Builder::new().name("nsxdp-zones".into()).spawn(move || {
        // The members of consumed catalogs and the zones of the zone list (a configuration
        // is needed for either).
        let mut dynamic = config.as_ref().map(|c| Dynamic::start(c.shared.load(), &mut zones, &c.shared));
        // What the generated catalogs were last made from: the zone set and configuration.
        let mut produced: Option<(u64, Arc<crate::config::Config>)> = None;
        let mut outbox = Outbox::new();
        let mut published: Option<std::time::Instant> = None;
        let mut acted = true;
        // Whether the last publish of the metrics had every zone's figures (a journal held
        // by a transfer out is left out, and asked again a second later).
        let mut complete = true;
        // New versions committed and not yet published (at most every PUBLISH_EVERY: a
        // publish costs time in proportion to the zone count), and the zones changed since,
        // whose NOTIFY waits for it.
        let mut last_publish: Option<std::time::Instant> = None;
        let mut pending_publish = false;
        let mut unannounced: Vec<Name> = Vec::new();
        while !shutdown.load(Ordering::Relaxed) {
            // The zones' state for the metrics: soon after anything happened (nothing in it
            // changes on its own: expiry is an event of the timers). It walks every zone: a
            // burst of events (10^4 catalog members arriving, a NOTIFY for each of 10^5
            // zones) must not walk them all once per event, so at most every 50 ms; and
            // when nothing happens, not at all (10^5 zones: 14 ms of a core per walk).
            if let Some(m) = &metrics {
                let since = published.map(|t| t.elapsed());
                if (acted && since.is_none_or(|t| t >= Duration::from_millis(50)))
                    || (!complete && since.is_none_or(|t| t >= Duration::from_secs(1)))
                {
                    complete = m.publish_zones(&zones);
                    published = Some(std::time::Instant::now());
                    acted = false;
                }
            }
            let mut changed = Vec::new();
            if hup.swap(false, Ordering::Relaxed) {
                log::info!("SIGHUP: reloading every zone");
                let (out, c) = handle_line(&mut zones, "reload", config.as_ref(), dynamic.as_mut());
                // The reload logged its lines; its verdict (and a configuration error) here.
                for l in out.lines().filter(|l| *l == "ok" || l.starts_with("error")) {
                    log::info!("SIGHUP: {l}");
                }
                changed.extend(c);
            }
            let consumed = |n: &Name| dynamic.as_ref().is_some_and(|d| d.is_consumed(n));
            acted |= start_checks(&mut zones, &mut workers, &consumed);
            let now = std::time::Instant::now();
            let mut wait = Duration::from_millis(if outbox.is_empty() { 100 } else { 20 });
            if pending_publish {
                wait = wait.min(PUBLISH_EVERY.saturating_sub(last_publish.map_or(PUBLISH_EVERY, |t| t.elapsed())));
            }
            if let Some(at) = zones.next_timer(workers.free()) {
                wait = wait.min(at.saturating_duration_since(now));
            }
            // The events waiting are taken together (up to a bound): the work of a turn that
            // grows with the zone count (publishing, the timers, the metrics) is then done
            // once for all of them, so 10^4 transfers ending at once cost 10^4 commits and
            // a few turns, not 10^4 turns.
            let mut batch = Vec::new();
            match events.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(e) => batch.push(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < MAX_BATCH {
                match events.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            acted |= !batch.is_empty() || !changed.is_empty();
            // Changed zones by name: commands may move zones in the set.
            let mut changed: Vec<Name> = changed.into_iter().map(|i| zones.zones[i].name.clone()).collect();
            // Consumed catalogs with a new version: their members follow once the rest of
            // this turn is done (adding and removing zones moves them in the set).
            let mut catalogs: Vec<Name> = Vec::new();
            let mut republish = false;
            for event in batch {
                match event {
                    Event::Command(r) => {
                        if republish || pending_publish {
                            // What the command does or tells starts from what is served.
                            zones.publish();
                            last_publish = Some(std::time::Instant::now());
                            (republish, pending_publish) = (false, false);
                        }
                        let (out, c) = handle_line(&mut zones, &r.line, config.as_ref(), dynamic.as_mut());
                        changed.extend(c.into_iter().map(|i| zones.zones[i].name.clone()));
                        let _ = r.reply.send(out);
                    }
                    Event::Notify { zone, from } => {
                        if let Some(i) = zones.index(&zone) {
                            if let Some(s) = zones.zones[i].secondary.as_mut() {
                                s.counters.notifies += 1;
                                s.refresh.notified();
                                log::info!("zone {zone}: NOTIFY from {from}: checking the primaries");
                                zones.schedule(i, std::time::Instant::now());
                            }
                        }
                    }
                    Event::Fetched { zone, result } => {
                        workers.done(&zone);
                        if let Some(i) = zones.index(&zone) {
                            let new = fetched(&mut zones, i, result, &mut republish);
                            zones.schedule(i, std::time::Instant::now());
                            if new {
                                if dynamic.as_ref().is_some_and(|d| d.is_consumed(&zone)) && !catalogs.contains(&zone) {
                                    catalogs.push(zone.clone());
                                }
                                changed.push(zone);
                            }
                        }
                    }
                }
            }
            // Published before anything is announced: at once after a quiet spell, else
            // once PUBLISH_EVERY has passed since the last publish.
            pending_publish |= republish;
            if pending_publish && last_publish.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
                zones.publish();
                last_publish = Some(std::time::Instant::now());
                pending_publish = false;
            }
            // The generated catalogs follow the zones served.
            if let (Some(d), Some(c)) = (dynamic.as_ref(), config.as_ref()) {
                let now = (zones.generation, c.shared.load());
                if produced.as_ref().is_none_or(|(g, cfg)| *g != now.0 || !Arc::ptr_eq(cfg, &now.1)) {
                    changed.extend(d.produce(&mut zones, &c.shared));
                    produced = Some(now);
                }
            }
            unannounced.append(&mut changed);
            let changed = if pending_publish { Vec::new() } else { std::mem::take(&mut unannounced) };
            if let Some(n) = &notifier {
                for i in changed.iter().filter_map(|z| zones.index(z)) {
                    n.changed(&zones, i, &mut outbox);
                }
                n.run(&mut outbox);
            }
            if let (Some(d), Some(c)) = (dynamic.as_mut(), config.as_ref()) {
                for cat in &catalogs {
                    d.catalog_updated(&mut zones, &c.shared, cat);
                }
            }
        }
        zones
    })
}

/// Starts the checks that are due (each on a worker thread) and notes zones that expired.
/// The checks of secondary zones (SOA query, transfer) run on a fixed set of threads: however
/// many zones are due at once (every one at start-up), at most `max` primaries are asked at a
/// time and no thread is started per check. A due zone waits, still due, for a free worker.
/// At most `per_primary_max` of the checks ask the same primary (the first of a zone's list,
/// by address): a zone whose primary has that many waits in that primary's queue, and a
/// primary that hangs holds that many workers, not all of them.
pub struct Workers {
    jobs: crossbeam_channel::Sender<Job>,
    /// Checks handed out and not yet reported back (`Event::Fetched`).
    busy: usize,
    max: usize,
    per_primary_max: usize,
    /// Checks under way by the address of the primary each asks first, and that address by
    /// zone.
    per_primary: HashMap<IpAddr, usize>,
    running: HashMap<Name, IpAddr>,
    /// Due zones held back for their primary, in the order they fell due (each at most
    /// once: `held_names`).
    held: HashMap<IpAddr, VecDeque<Name>>,
    held_names: HashSet<Name>,
}

impl Workers {
    /// Starts `n` (at least 1) worker threads that report to `to_self`; they end when the
    /// `Workers` is dropped. At most `per_primary` (at least 1) checks ask one primary.
    pub fn spawn(n: usize, per_primary: usize, to_self: &Sender<Event>) -> io::Result<Workers> {
        let n = n.max(1);
        // Never full: a job is sent only while fewer than `n` are out.
        let (jobs, rx) = crossbeam_channel::bounded::<Job>(n);
        for _ in 0..n {
            let (rx, tx) = (rx.clone(), to_self.clone());
            std::thread::Builder::new().name("nsxdp-xfrin".into()).spawn(move || {
                for job in rx.iter() {
                    let result = secondary::fetch(&job).map_err(|e| e.to_string());
                    if tx.send(Event::Fetched { zone: job.zone, result }).is_err() {
                        break;
                    }
                }
            })?;
        }
        Ok(Workers {
            jobs,
            busy: 0,
            max: n,
            per_primary_max: per_primary.max(1),
            per_primary: HashMap::new(),
            running: HashMap::new(),
            held: HashMap::new(),
            held_names: HashSet::new(),
        })
    }

    fn free(&self) -> bool {
        self.busy < self.max
    }

    /// Whether a check of `zone`, whose first primary is `primary`, may start now; if not,
    /// the zone is held in that primary's queue.
    fn admit(&mut self, zone: &Name, primary: IpAddr) -> bool {
        if self.per_primary.get(&primary).copied().unwrap_or(0) < self.per_primary_max {
            return true;
        }
        if self.held_names.insert(zone.clone()) {
            self.held.entry(primary).or_default().push_back(zone.clone());
        }
        false
    }

    /// A check of `zone` was handed to a worker.
    fn started(&mut self, zone: &Name, primary: Option<IpAddr>) {
        self.busy += 1;
        if let Some(p) = primary {
            *self.per_primary.entry(p).or_default() += 1;
            self.running.insert(zone.clone(), p);
        }
    }

    /// The check of `zone` reported back.
    fn done(&mut self, zone: &Name) {
        self.busy = self.busy.saturating_sub(1);
        if let Some(p) = self.running.remove(zone) {
            if let Some(n) = self.per_primary.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.per_primary.remove(&p);
                }
            }
        }
    }

    /// Held zones whose primary has room again (to be made due once more), as many per
    /// primary as it has room for.
    fn release(&mut self) -> Vec<Name> {
        let mut out = Vec::new();
        let (max, per_primary) = (self.per_primary_max, &self.per_primary);
        self.held.retain(|p, queue| {
            let room = max.saturating_sub(per_primary.get(p).copied().unwrap_or(0));
            for name in queue.drain(..room.min(queue.len())) {
                out.push(name);
            }
            !queue.is_empty()
        });
        for n in &out {
            self.held_names.remove(n);
        }
        out
    }
}

/// Consumed catalogs (`catalog`) are checked with IXFR over UDP in place of the SOA query:
/// Knot refuses (unsigned) SOA queries to the catalogs it generates, and answers IXFR.
/// True when it changed a zone's state (a zone expired, a check started).
fn start_checks(zones: &mut ZoneSet, workers: &mut Workers, catalog: &dyn Fn(&Name) -> bool) -> bool {
    let now = std::time::Instant::now();
    let mut republish = false;
    let mut started = false;
    // Only the zones whose time has come are looked at (the set's timer heaps).
    while let Some(i) = zones.take_expired(now) {
        let z = &mut zones.zones[i];
        if let Some(s) = z.secondary.as_mut() {
            s.counters.expired += 1;
        }
        log::error!("zone {}: expired: no primary answered within the SOA expire time; SERVFAIL", z.name);
        republish = true;
    }
    // Zones held for a primary that has room again are due once more.
    for name in workers.release() {
        if let Some(i) = zones.index(&name) {
            zones.schedule(i, now);
        }
    }
    while workers.free() {
        let Some(i) = zones.take_due_check(now) else { break };
        let z = &mut zones.zones[i];
        let Some(s) = z.secondary.as_mut() else { continue };
        let primary = s.primaries.first().map(|p| p.addr.ip());
        if primary.is_some_and(|p| !workers.admit(&z.name, p)) {
            continue;
        }
        let (name, current) = (z.name.clone(), z.snapshot.clone());
        s.refresh.started(now);
        s.counters.checks += 1;
        let mut primaries = s.primaries.clone();
        if catalog(&name) {
            for p in primaries.iter_mut().filter(|p| p.ixfr) {
                p.ixfr_udp = true;
            }
        }
        let job = Job {
            zone: name.clone(),
            primaries,
            current: current.zip(s.soa.clone()),
            force_axfr: std::mem::take(&mut s.force_axfr),
            limits: s.limits,
            timeout: s.timeout,
        };
        match workers.jobs.try_send(job) {
            Ok(()) => workers.started(&name, primary),
            Err(e) => s.refresh.failed(format!("no transfer worker took the check: {e}"), now),
        }
        zones.schedule(i, now);
        started = true;
    }
    if republish {
        zones.publish();
    }
    republish || started
}

/// Acts on the end of a check of secondary zone `i`; true when a new version is to be served
/// (`republish` set: the caller publishes).
fn fetched(zones: &mut ZoneSet, i: usize, result: Result<Fetched, String>, republish: &mut bool) -> bool {
    let now = std::time::Instant::now();
    let name = zones.zones[i].name.clone();
    let was_serving = zones.zones[i].serving();
    let outcome = match result {
        Ok(Fetched::UpToDate { from, their_serial }) => {
            let z = &mut zones.zones[i];
            let s = z.secondary.as_mut().expect("a secondary zone");
            s.counters.up_to_date += 1;
            match s.soa.as_ref().and_then(|soa| crate::secondary::timers::SoaTimers::from_rdata(&soa.rdata)) {
                Some(t) => {
                    s.refresh.succeeded(t, now);
                    if !was_serving {
                        log::info!("zone {name}: {from} answers again (serial {their_serial}); serving");
                    }
                    Ok(false)
                }
                None => Err(format!("{from} has serial {their_serial} but we have no version")),
            }
        }
        Ok(Fetched::New { zone, changes, report }) => {
            let from = zones.zones[i].serial();
            match zones.commit(i, &zone, &changes) {
                Ok(()) => {
                    let to = zones.zones[i].serial().unwrap_or(0);
                    let s = zones.zones[i].secondary.as_mut().expect("a secondary zone");
                    match report.how {
                        crate::secondary::check::How::Ixfr => s.counters.ixfr += 1,
                        _ => s.counters.axfr += 1,
                    }
                    if report.fallback.is_some() {
                        s.counters.fallbacks += 1;
                    }
                    s.counters.count_udp(&report);
                    let timers = crate::secondary::timers::SoaTimers::from_rdata(
                        s.soa.as_ref().map_or(&[][..], |r| &r.rdata[..]),
                    );
                    if let Some(t) = timers {
                        s.refresh.succeeded(t, now);
                    }
                    let line = match from {
                        Some(f) => format!("serial {f} -> {to} by {report}"),
                        None => format!("serial {to} by {report}"),
                    };
                    log::info!("zone {name}: {line}");
                    s.last_transfer = Some(line);
                    Ok(true)
                }
                Err(e) => Err(format!("storing the transfer: {e}")),
            }
        }
        Err(e) => Err(e),
    };
    let s = zones.zones[i].secondary.as_mut().expect("a secondary zone");
    match outcome {
        Ok(new) => {
            zones.note_success(i);
            if new || !was_serving {
                *republish = true;
            }
            new
        }
        Err(e) => {
            s.counters.failures += 1;
            log::warn!("zone {name}: check failed: {e}");
            s.refresh.failed(e.clone(), now);
            zones.zones[i].last_error = Some(e);
            false
        }
    }
}

/// Runs one command line; the reply text (its last line `ok` or `error: ...`) and the zones
/// that changed.
pub fn command(zones: &mut ZoneSet, line: &str) -> (String, Vec<usize>) {
    let mut changed = Vec::new();
    let out = run_command(zones, line, &mut changed);
    (out, changed)
}

fn run_command(zones: &mut ZoneSet, line: &str, changed: &mut Vec<usize>) -> String {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return "error: too many arguments\n".into();
    }
    let targets = match arg {
        None => Ok((0..zones.zones.len()).collect::<Vec<_>>()),
        Some(z) => Name::parse_text(z.as_bytes(), Some(&Name::root()))
            .map_err(|e| format!("bad zone name {z:?}: {e}"))
            .and_then(|n| zones.index(&n).map(|i| vec![i]).ok_or_else(|| format!("no zone {n}"))),
    };
    let targets = match targets {
        Ok(t) => t,
        Err(e) => return format!("error: {e}\n"),
    };
    let mut out = String::new();
    match cmd {
        "reload" => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
            let mut failed = 0;
            for i in targets {
                let t0 = std::time::Instant::now();
                let r = zones.reload(i, now);
                let took = t0.elapsed().as_secs_f64() * 1000.0;
                let name = &zones.zones[i].name;
                match r {
                    Reloaded::Unchanged { serial } => {
                        let _ = writeln!(out, "{name} unchanged, serial {serial}");
                    }
                    Reloaded::Updated { from, to, changes, warnings } => {
                        changed.push(i);
                        for w in warnings {
                            let _ = writeln!(out, "warning: {w}");
                        }
                        let _ = writeln!(
                            out,
                            "{name} reloaded, serial {from} -> {to} ({} RRs removed, {} added) in {took:.1} ms",
                            changes.removed.len(),
                            changes.added.len()
                        );
                    }
                    Reloaded::Loaded { serial, warnings } => {
                        changed.push(i);
                        for w in warnings {
                            let _ = writeln!(out, "warning: {w}");
                        }
                        let _ = writeln!(out, "{name} loaded, serving serial {serial} (in {took:.1} ms)");
                    }
                    Reloaded::Secondary { serial } => {
                        let serial = serial.map_or_else(|| "none yet".into(), |s| s.to_string());
                        let _ = writeln!(out, "{name} is a secondary (serial {serial}): transferred, not reloaded");
                    }
                    Reloaded::Failed { error } => {
                        failed += 1;
                        let serial = zones.zones[i].serial().map_or_else(|| "none".into(), |s| s.to_string());
                        let _ = writeln!(out, "{name} NOT reloaded, still serving serial {serial}: {error}");
                    }
                }
            }
            // The server's log gets the same lines.
            for l in out.lines() {
                if l.contains(" NOT reloaded") {
                    log::warn!("{l}");
                } else {
                    log::info!("{l}");
                }
            }
            out.push_str(if failed == 0 { "ok\n" } else { "error: some zones were not reloaded\n" });
        }
        "status" => {
            for i in targets {
                let z = &zones.zones[i];
                let at = rfc3339(z.loaded_at);
                let serial = z.serial().map_or_else(|| "none".to_string(), |s| s.to_string());
                match &z.secondary {
                    None if z.generated => {
                        let _ = write!(out, "{} serial {serial} loaded-at {at} generated catalog", z.name);
                    }
                    None if z.snapshot.is_none() => {
                        let _ = write!(out, "{} serial none not-loaded (SERVFAIL) file {}", z.name, z.file.display());
                    }
                    None => {
                        let _ = write!(out, "{} serial {serial} loaded-at {at} file {}", z.name, z.file.display());
                    }
                    Some(_) => {
                        let state = if z.serving() { "serving" } else { "SERVFAIL" };
                        let _ = write!(out, "{} serial {serial} loaded-at {at} secondary {state}", z.name);
                    }
                }
                match &z.last_error {
                    Some(e) => {
                        let _ = writeln!(out, " last-error {e}");
                    }
                    None => out.push('\n'),
                }
            }
            out.push_str("ok\n");
        }
        "zone-status" | "refresh" | "retransfer" | "zone-notify" if arg.is_none() => {
            let _ = writeln!(out, "error: {cmd} needs a zone");
        }
        "zone-status" => {
            for i in targets {
                zone_status(zones, i, &mut out);
            }
        }
        "refresh" | "retransfer" => {
            for i in targets {
                let z = &mut zones.zones[i];
                let Some(s) = z.secondary.as_mut() else {
                    let _ = writeln!(out, "error: zone {} is not a secondary (reload reads its file)", z.name);
                    return out;
                };
                s.refresh.notified();
                if cmd == "retransfer" {
                    s.force_axfr = true;
                }
                let _ = writeln!(out, "{} {cmd} started", z.name);
                zones.schedule(i, std::time::Instant::now());
            }
            out.push_str("ok\n");
        }
        "zone-notify" => {
            // NOTIFY to the zone's targets now, as after a new version (the caller sends them).
            for i in targets {
                changed.push(i);
                let _ = writeln!(out, "{} NOTIFY queued to its targets", zones.zones[i].name);
            }
            out.push_str("ok\n");
        }
        "" => out.push_str(&format!("error: no command ({COMMANDS})\n")),
        other => {
            let _ = writeln!(out, "error: unknown command {other:?} ({COMMANDS})");
        }
    }
    out
}

/// The commands, as an error names them.
pub const COMMANDS: &str =
    "reload [ZONE], status [ZONE], zone-status ZONE, refresh ZONE, retransfer ZONE, zone-notify ZONE, \
     zone-add ZONE [acl ACL]... file PATH | primary ADDRESS[:PORT] [key KEY], zone-remove ZONE [keep-data], \
     stats [--json], stop";

/// `zone-status`: a zone's serial, role, timers, last check and error, counters. Times are
/// RFC 3339, UTC.
fn zone_status(zones: &ZoneSet, i: usize, out: &mut String) {
    let z = &zones.zones[i];
    let serial = z.serial().map_or_else(|| "none".to_string(), |s| s.to_string());
    let _ = writeln!(out, "zone {}", z.name);
    let _ = writeln!(out, "serial {serial}");
    let unix = |t: std::time::Instant| {
        let now = std::time::Instant::now();
        let wall = SystemTime::now();
        rfc3339(if t >= now {
            wall + t.duration_since(now)
        } else {
            wall.checked_sub(now.duration_since(t)).unwrap_or(UNIX_EPOCH)
        })
    };
    match &z.secondary {
        None if z.generated => {
            let _ = writeln!(out, "role primary\ngenerated catalog");
        }
        None => {
            let _ = writeln!(out, "role primary\nfile {}", z.file.display());
            if z.snapshot.is_none() {
                let _ = writeln!(out, "state not loaded (SERVFAIL)");
            }
        }
        Some(s) => {
            let r = &s.refresh;
            let _ = writeln!(out, "role secondary");
            let _ = writeln!(
                out,
                "state {}",
                if z.serving() {
                    "serving"
                } else if r.is_expired() {
                    "expired (SERVFAIL)"
                } else {
                    "not loaded (SERVFAIL)"
                }
            );
            let primaries: Vec<String> = s
                .primaries
                .iter()
                .map(|p| format!("{}{}", p.addr, if p.tls.is_some() { " (tls)" } else { "" }))
                .collect();
            let _ = writeln!(out, "primaries {}", primaries.join(" "));
            if let Some(t) = r.timers() {
                let _ = writeln!(out, "timers refresh={} retry={} expire={}", t.refresh, t.retry, t.expire);
            }
            let when = |t: Option<std::time::Instant>| t.map_or_else(|| "never".to_string(), |t| unix(t).to_string());
            let _ = writeln!(out, "last-check {}", when(r.last_check()));
            let _ = writeln!(out, "last-success {}", when(r.last_success()));
            let next = if r.in_flight() { "under way".to_string() } else { unix(r.next_check()).to_string() };
            let _ = writeln!(out, "next-check {next}");
            let _ = writeln!(out, "expires-at {}", when(r.expires_at()));
            if let Some(t) = &s.last_transfer {
                let _ = writeln!(out, "last-transfer {t}");
            }
            let _ = writeln!(out, "counters {}", s.counters);
        }
    }
    let _ = writeln!(out, "last-error {}", z.last_error.as_deref().unwrap_or("none"));
    out.push_str("ok\n");
}

/// The client side: sends a command, prints the reply; Ok(true) when it ends with `ok`.
/// The `ok` after the JSON of `stats --json` is not printed, so that the output is JSON.
pub fn client(socket: &PathBuf, line: &str) -> io::Result<bool> {
    let reply = request(socket, line)?;
    let ok = reply.lines().last() == Some("ok");
    match reply.strip_suffix("ok\n").filter(|_| ok && line.split_whitespace().eq(["stats", "--json"])) {
        Some(json) => print!("{json}"),
        None => print!("{reply}"),
    }
    Ok(ok)
}

/// Sends a command and reads the whole reply.
pub fn request(socket: &PathBuf, line: &str) -> io::Result<String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", socket.display())))?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    io::Read::read_to_string(&mut s, &mut reply)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Catalog;
    use crate::config::SerialPolicy;

    #[test]
    fn a_primary_gets_at_most_its_share_of_the_workers() {
        let (tx, _rx) = mpsc::channel();
        let mut w = Workers::spawn(4, 2, &tx).unwrap();
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        // Two checks ask a; the third of a's zones is held, b's are not.
        for z in ["a1.", "a2."] {
            assert!(w.admit(&n(z), a));
            w.started(&n(z), Some(a));
        }
        assert!(!w.admit(&n("a3."), a));
        assert!(!w.admit(&n("a3."), a), "held once");
        assert!(!w.admit(&n("a4."), a));
        assert!(w.admit(&n("b1."), b));
        w.started(&n("b1."), Some(b));
        assert!(w.free());
        assert_eq!(w.release(), Vec::<Name>::new());
        // One of a's checks ends: its first held zone is released (as many as a has room
        // for), and started.
        w.done(&n("a1."));
        assert_eq!(w.release(), vec![n("a3.")]);
        assert!(w.admit(&n("a3."), a));
        w.started(&n("a3."), Some(a));
        assert_eq!(w.release(), Vec::<Name>::new());
        w.done(&n("a2."));
        w.done(&n("a3."));
        assert_eq!(w.release(), vec![n("a4.")]);
        assert_eq!((w.busy, w.per_primary.get(&a), w.held.len()), (1, None, 0));
    }

    #[test]
    fn socket_manager_and_client() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.test.zone");
        std::fs::write(&file, "$ORIGIN c.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n").unwrap();
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog.clone());
        zs.add(None, &file, SerialPolicy::Increment, crate::journal::Limits::default(), 0, &mut Vec::new()).unwrap();
        zs.publish();
        let shutdown = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let sock = dir.path().join("run/ctl.sock");
        let metrics = Arc::new(Metrics::new());
        let t1 = spawn_socket(&sock, tx.clone(), shutdown.clone(), metrics.clone()).unwrap();
        let t2 = spawn_manager(zs, rx, tx, hup.clone(), shutdown.clone(), None, None, Some(metrics.clone())).unwrap();
        // A second server on the same socket is refused.
        let (tx2, _rx2) = mpsc::channel();
        assert!(spawn_socket(&sock, tx2, shutdown.clone(), metrics.clone()).is_err());

        assert!(client(&sock, "status").unwrap());
        let status = request(&sock, "status").unwrap();
        assert!(
            status.starts_with(&format!(
                "version {}\npid {}\nstarted 20",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            )),
            "{status}"
        );
        // c.test. serial 1 loaded-at 2026-12-05T18:00:00Z file ...
        let loaded_at = status.lines().find(|l| l.starts_with("c.test.")).unwrap().split(' ').nth(4).unwrap();
        assert!(humantime::parse_rfc3339(loaded_at).is_ok(), "{status}");
        // The manager published the zone for the metrics.
        let stats = request(&sock, "stats").unwrap();
        assert!(stats.contains("nsxdp_zones{state=\"serving\"} 1"), "{stats}");
        let json = request(&sock, "stats --json").unwrap();
        let v: serde_json::Value = serde_json::from_str(json.strip_suffix("ok\n").unwrap()).unwrap();
        assert_eq!(v["zones"]["configured"], 1);
        assert!(request(&sock, "stats --yaml").unwrap().starts_with("error:"));
        assert!(client(&sock, "reload c.test").unwrap());
        assert!(!client(&sock, "reload nope.test").unwrap());
        assert!(!client(&sock, "frobnicate").unwrap());
        std::fs::write(&file, "$ORIGIN c.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.7\n").unwrap();
        assert!(client(&sock, "reload").unwrap());
        assert_eq!(catalog.load().snapshots().next().unwrap().serial(), 2);
        // SIGHUP's flag reloads everything.
        std::fs::write(&file, "$ORIGIN c.test.\n$TTL 60\n@ SOA ns hm 9 2 3 4 5\n@ NS ns\nns A 192.0.2.8\n").unwrap();
        hup.store(true, Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        while catalog.load().snapshots().next().unwrap().serial() != 9 {
            assert!(t0.elapsed() < Duration::from_secs(10), "SIGHUP reload did not happen");
            std::thread::sleep(Duration::from_millis(20));
        }
        shutdown.store(true, Ordering::Relaxed);
        t1.join().unwrap();
        let zs = t2.join().unwrap();
        assert_eq!(zs.zones[0].serial(), Some(9));
        assert!(!sock.exists());
    }

    #[test]
    fn stop_sets_the_shutdown_flag() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ctl.sock");
        let (tx, _rx) = mpsc::channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let t = spawn_socket(&sock, tx, shutdown.clone(), Arc::new(Metrics::new())).unwrap();
        assert!(!client(&sock, "stop now").unwrap());
        assert!(!shutdown.load(Ordering::Relaxed));
        assert_eq!(request(&sock, "stop").unwrap(), "stopping\nok\n");
        t.join().unwrap();
        assert!(shutdown.load(Ordering::Relaxed));
    }
}
