//! The `nsxdp` command: the edge where errors become messages and exit codes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use nsxdp::answer::{Catalog, Config};
use nsxdp::control::ctl::{self, Notifier};
use nsxdp::control::handoff;
use nsxdp::control::tcp::{TcpLimits, TcpServer};
use nsxdp::control::transfer::Transfers;
use nsxdp::control::zones::ZoneSet;
use nsxdp::dataplane::xdp_prog::XdpConfig;
use nsxdp::dataplane::{self, udp, xdp, StatsSnapshot};
use nsxdp::journal::Limits;
use nsxdp::metrics::{HttpLimits, Metrics, MetricsServer};
use nsxdp::snapshot::{self, Snapshot};
use nsxdp::wire::name::Name;
use nsxdp::zone::check;
use nsxdp::zone::parse::{self, Loaded};
use nsxdp::zone::text::format_record;

mod generate;

// Building a zone of millions of records makes millions of small allocations; mimalloc
// does them much faster than glibc's allocator. The query path allocates nothing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "nsxdp", version, about = "Authoritative DNS server with AF_XDP kernel bypass")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse and check zone files, or a configuration file and its zones (`--config`, or a
    /// file ending in `.toml`); exit 0 only if everything is valid and every zone can be served.
    Check {
        /// A configuration file: checked as `serve --config` reads it (errors name file and
        /// line), then each primary zone's file as a zone file given here would be.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Zone apex (default: a leading $ORIGIN, else the file name without `.zone`).
        #[arg(long)]
        origin: Option<String>,
        /// Signed zones: warn about signatures that expire within this many days.
        #[arg(long, value_name = "DAYS", default_value_t = nsxdp::zone::check::dnssec::DEFAULT_SIG_WARN_DAYS)]
        sig_warn_days: u32,
        /// Signed zones: a zone whose signatures have all expired is a warning, not an error.
        #[arg(long)]
        force: bool,
        /// Judge signature times at this time, YYYYMMDDHHmmSS (UTC) or Unix seconds
        /// (default: now).
        #[arg(long, value_parser = parse_check_time)]
        time: Option<u64>,
        /// Skip the checks of signed zones (NSEC/NSEC3 chains, signatures), as
        /// `kzonecheck -d off` does; they run for every zone with DNSKEY records at its apex.
        #[arg(long)]
        no_dnssec: bool,
        /// Zone files (and configuration files, by their `.toml` ending).
        #[arg(required_unless_present = "config")]
        files: Vec<PathBuf>,
    },
    /// Compile a zone file into a snapshot.
    Compile {
        /// Zone apex (default: a leading $ORIGIN, else the file name without `.zone`).
        #[arg(long)]
        origin: Option<String>,
        /// The zone file.
        file: PathBuf,
        /// The snapshot file to write (replaced if it exists).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print a snapshot's zone in master-file format, one RR a line, canonical order.
    Dump {
        /// The snapshot file (written by `compile` or by `serve` in its data directory).
        snapshot: PathBuf,
    },
    /// Load a snapshot (map and validate) and print figures about it, as key=value lines.
    Stat {
        /// The snapshot file (written by `compile` or by `serve` in its data directory).
        snapshot: PathBuf,
    },
    /// Serve zones over UDP (one pinned loop per core, kernel sockets) and TCP.
    Serve(Box<ServeArgs>),
    /// Talk to a running server through its control socket.
    Ctl {
        /// The server's control socket (default: the configuration's, else
        /// /var/tmp/nsxdp/control.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Read the socket path from this configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: CtlCmd,
    },
    /// Write the manual pages or the shell completions (for packaging: scripts/build-deb.sh).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: GenerateCmd,
    },
}

/// What `nsxdp generate` writes.
#[derive(Subcommand)]
enum GenerateCmd {
    /// Manual pages: nsxdp.1 and one page per subcommand (nsxdp-serve.1, nsxdp-ctl-status.1, ...).
    Man {
        /// The directory to write them to (made if missing).
        dir: PathBuf,
    },
    /// The completion script of SHELL: nsxdp.bash, _nsxdp (zsh) or nsxdp.fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// The directory to write it to (made if missing).
        dir: PathBuf,
    },
}

/// The commands of `nsxdp ctl`; each becomes one line on the control socket.
#[derive(Subcommand)]
enum CtlCmd {
    /// Version, process id, start time and uptime, then each zone (or ZONE): serial, when
    /// it was loaded, its file or secondary state, the last error.
    Status {
        /// Only this zone (default: every zone).
        zone: Option<String>,
    },
    /// Live counters, the same figures as the metrics endpoint: one `name{labels} value`
    /// line each.
    Stats {
        /// Print them as one JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// Re-read the zone file of every primary zone (or ZONE) and the configuration file.
    Reload {
        /// Only this zone's file (default: every primary zone and the configuration file).
        zone: Option<String>,
    },
    /// A zone's role, serial, timers, last check, last transfer and counters.
    ZoneStatus {
        /// The zone.
        zone: String,
    },
    /// Secondary zone: check the primaries for a new serial now.
    Refresh {
        /// The secondary zone.
        zone: String,
    },
    /// Secondary zone: transfer the whole zone (AXFR) now, whatever the serials.
    Retransfer {
        /// The secondary zone.
        zone: String,
    },
    /// Send NOTIFY for ZONE to its targets now (its `notify` list and, with `notify-ns`,
    /// its name servers), as after a new version.
    ZoneNotify {
        /// The zone.
        zone: String,
    },
    /// Serve a zone that the configuration file does not list, at once and across restarts
    /// (kept in the data directory's zone list): a primary zone read from --file, or a
    /// secondary zone of --primary.
    ZoneAdd {
        /// The zone.
        zone: String,
        /// The zone file (primary zone).
        #[arg(long, conflicts_with = "primary", required_unless_present = "primary")]
        file: Option<PathBuf>,
        /// ADDRESS[:PORT] of the primary (secondary zone; port 53 when left out).
        #[arg(long)]
        primary: Option<String>,
        /// A `[[key]]` of the configuration to sign the requests to the primary with.
        #[arg(long, requires = "primary")]
        key: Option<String>,
        /// An `[[acl]]` of the configuration for transfers out and NOTIFY in (repeatable).
        #[arg(long)]
        acl: Vec<String>,
    },
    /// Stop serving a zone added with zone-add and delete its snapshot and journal.
    ZoneRemove {
        /// The zone (added with zone-add).
        zone: String,
        /// Keep the zone's snapshot and journal in the data directory.
        #[arg(long)]
        keep_data: bool,
    },
    /// Stop the server cleanly (as SIGTERM does).
    Stop,
}

impl CtlCmd {
    /// The command line sent to the server.
    fn line(&self) -> String {
        let with = |cmd: &str, zone: Option<&String>| match zone {
            Some(z) => format!("{cmd} {z}"),
            None => cmd.to_string(),
        };
        match self {
            CtlCmd::Status { zone } => with("status", zone.as_ref()),
            CtlCmd::Stats { json: false } => "stats".into(),
            CtlCmd::Stats { json: true } => "stats --json".into(),
            CtlCmd::Reload { zone } => with("reload", zone.as_ref()),
            CtlCmd::ZoneStatus { zone } => with("zone-status", Some(zone)),
            CtlCmd::Refresh { zone } => with("refresh", Some(zone)),
            CtlCmd::Retransfer { zone } => with("retransfer", Some(zone)),
            CtlCmd::ZoneNotify { zone } => with("zone-notify", Some(zone)),
            CtlCmd::ZoneAdd { zone, file, primary, key, acl } => {
                let mut line = format!("zone-add {zone}");
                for a in acl {
                    line.push_str(&format!(" acl {a}"));
                }
                match file {
                    // The server's working directory is not ours.
                    Some(f) => {
                        let f = std::path::absolute(f).unwrap_or_else(|_| f.clone());
                        line.push_str(&format!(" file {}", f.display()));
                    }
                    None => line.push_str(&format!(" primary {}", primary.as_deref().unwrap_or_default())),
                }
                if let Some(k) = key {
                    line.push_str(&format!(" key {k}"));
                }
                line
            }
            CtlCmd::ZoneRemove { zone, keep_data } => {
                format!("zone-remove {zone}{}", if *keep_data { " keep-data" } else { "" })
            }
            CtlCmd::Stop => "stop".into(),
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML): listen addresses, data directory, control socket, TSIG
    /// keys, ACLs and zones. Flags given as well add zones or override the addresses.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The control socket for `nsxdp ctl` (default: the configuration's, else
    /// DATA_DIR/control.sock).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Zone file to serve (compiled to a snapshot in --data-dir, with a journal beside it;
    /// reloaded by `nsxdp ctl reload` and SIGHUP); repeatable.
    #[arg(long = "zone")]
    zones: Vec<PathBuf>,
    /// Snapshot file to serve as it is; repeatable.
    #[arg(long = "snapshot")]
    snapshots: Vec<PathBuf>,
    /// Address to answer on, UDP and TCP; repeatable (default 127.0.0.1:5353 and [::1]:5353;
    /// with --xdp, 0.0.0.0:53 and [::]:53).
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
    /// Kernel sockets: the number of UDP run loops, pinned to the cores in turn (default:
    /// one per core). With --xdp: the cores of the queues' loops, a list (`1`, `0,1`, `2-3`),
    /// the i-th queue on the i-th core (default: queue i on the i-th allowed core, cycling).
    #[arg(long)]
    cores: Option<String>,
    /// Answer UDP through AF_XDP on this interface (TCP stays with the kernel). The listen
    /// addresses must share one port: the XDP program hands over UDP to that port.
    #[arg(long, value_name = "IFACE")]
    xdp: Option<String>,
    /// With --xdp: the RX queues to serve, a list like `0,2-3` (default: all of IFACE's).
    #[arg(long, value_name = "LIST", requires = "xdp")]
    queues: Option<String>,
    /// With --xdp: replace an XDP program on IFACE that is not nsxdp's.
    #[arg(long, requires = "xdp")]
    xdp_force: bool,
    /// Where snapshots and journals are kept (default: the configuration's, else
    /// /var/tmp/nsxdp).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// EDNS UDP payload size we offer (RFC 6891; default 1232, over the configuration's).
    #[arg(long, value_parser = clap::value_parser!(u16).range(512..=4096))]
    edns_size: Option<u16>,
    /// Seconds without a complete message before a TCP connection is closed (default 10;
    /// over the configuration's `tcp-idle-timeout`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_idle_timeout: Option<u64>,
    /// Milliseconds a TCP message may take to arrive whole once it started (default 2000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_message_timeout: Option<u64>,
    /// TCP connections open at once (default 1024); when all are taken, the longest idle
    /// one is closed for a newcomer.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_max_clients: Option<u64>,
    /// TCP connections open at once from one address, or IPv6 /64 (default 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_max_clients_per_address: Option<u64>,
    /// Octets of unsent TCP output per client above which it is not read (default 65536).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_max_pending_output: Option<u64>,
    /// Octets of unsent TCP output of all clients above which none is read (default 32 MiB).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tcp_output_budget: Option<u64>,
    /// Serve Prometheus metrics over HTTP at ADDR:PORT/metrics (over the configuration's
    /// `metrics`; off unless one of them is given).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// Switch to this user (and its groups) once every socket is bound and the XDP program
    /// attached, for good (over the configuration's `user`; default: stay as started).
    #[arg(long)]
    user: Option<String>,
    /// Answer DNS cookies (RFC 7873, RFC 9018 server cookies) with a random secret; a
    /// configuration file's `[cookies]` section turns them on too, and may give the secret.
    #[arg(long)]
    cookies: bool,
    /// The log's level: error, warning, info, debug or trace (over the configuration's
    /// `log-level`; default info). Lines go to stderr, stamped with the UTC time unless
    /// stderr is the systemd journal.
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    log_level: Option<log::LevelFilter>,
    /// Refuse to start when any zone does not load (by default the others are served and
    /// the broken one answers SERVFAIL until a reload finds its file good).
    #[arg(long)]
    strict: bool,
}

fn parse_log_level(s: &str) -> Result<log::LevelFilter, String> {
    nsxdp::logging::parse_level(s).ok_or_else(|| format!("{s:?} is not one of error, warning, info, debug, trace"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(code) => code,
        // A server's last line goes to its log; a command's error to stderr as it is.
        Err(e) if nsxdp::logging::installed() => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("nsxdp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check { config, origin, sig_warn_days, force, time, no_dnssec, files } => {
            let (configs, files): (Vec<PathBuf>, Vec<PathBuf>) =
                files.into_iter().partition(|f| f.extension().is_some_and(|e| e == "toml"));
            let configs: Vec<PathBuf> = config.into_iter().chain(configs).collect();
            if origin.is_some() && files.len() > 1 {
                bail!("--origin applies to one zone file only");
            }
            let origin = origin.as_deref().map(parse_origin).transpose()?;
            let now = time.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
            });
            let dnssec = (!no_dnssec).then_some(check::dnssec::Options { now, sig_warn_days, force });
            let mut ok = true;
            for c in &configs {
                ok &= check_config(c, dnssec.as_ref());
            }
            for f in &files {
                let loaded = load(f, origin.as_ref(), dnssec.as_ref())?;
                ok &= loaded.is_servable();
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Cmd::Compile { origin, file, output } => {
            let origin = origin.as_deref().map(parse_origin).transpose()?;
            let started = Instant::now();
            let mut loaded =
                parse::parse_file(&file, origin.as_ref()).with_context(|| format!("{}", file.display()))?;
            let parsed = started.elapsed();
            if !loaded.is_servable() {
                // Errors already: no image is needed, only the rest of the diagnostics.
                check::check(&mut loaded);
                report(&file, &loaded);
                return Ok(ExitCode::FAILURE);
            }
            // The checks only read the zone: they run beside the compiler, whose image is
            // thrown away if they find an error.
            let ((problems, check_took), img) = std::thread::scope(|scope| {
                let checking = scope.spawn(|| {
                    let t = Instant::now();
                    (check::problems(&loaded.zone), t.elapsed())
                });
                let img = snapshot::compile(&loaded.zone);
                match checking.join() {
                    Ok(checked) => (checked, img),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
            check::add(&mut loaded, problems);
            report(&file, &loaded);
            if !loaded.is_servable() {
                return Ok(ExitCode::FAILURE);
            }
            let img = img.with_context(|| format!("{}", file.display()))?;
            let compiled = started.elapsed();
            let size = snapshot::write_snapshot(&output, &img)?;
            let took = started.elapsed();
            eprintln!(
                "{}: wrote {} ({} bytes, {} names, {} RRs) in {:.3}s (parse {:.3}s, check {:.3}s beside compile {:.3}s, write {:.3}s)",
                file.display(),
                output.display(),
                size,
                img.node_count,
                loaded.zone.rr_count(),
                took.as_secs_f64(),
                parsed.as_secs_f64(),
                check_took.as_secs_f64(),
                (compiled - parsed).as_secs_f64(),
                (took - compiled).as_secs_f64()
            );
            // Freeing millions of small allocations one by one would take longer than the
            // process has left to live.
            std::mem::forget(loaded);
            std::mem::forget(img);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dump { snapshot: path } => {
            let snap = Snapshot::open(&path)?;
            let records = snapshot::records(snap.zone()).with_context(|| format!("{}", path.display()))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in &records {
                writeln!(out, "{}", format_record(r))?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stat { snapshot: path } => {
            let started = Instant::now();
            let snap = Snapshot::open(&path)?;
            let load = started.elapsed();
            let z = snap.zone();
            println!("file={}", path.display());
            println!("size_bytes={}", snap.file_len());
            println!("origin={}", snap.origin());
            println!("serial={}", snap.serial());
            println!("nodes={}", z.node_count);
            println!("rrsets={}", z.node_ids().map(|n| z.node_rrsets(n).len()).sum::<usize>());
            println!("load_ms={:.3}", load.as_secs_f64() * 1000.0);
            println!("rss_kib={}", rss_kib().unwrap_or(0));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve(args) => serve(*args),
        Cmd::Generate { what } => generate::run(what),
        Cmd::Ctl { socket, config, command } => {
            let socket = match (socket, config) {
                (Some(s), _) => s,
                (None, Some(c)) => nsxdp::config::Config::control_socket(&c)?,
                (None, None) => nsxdp::config::default_control(Path::new(DEFAULT_DATA_DIR)),
            };
            let ok = nsxdp::control::ctl::client(&socket, &command.line())?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

use nsxdp::config::DEFAULT_DATA_DIR;

/// The zone manager, its control socket and the metrics endpoint, running beside the DNS
/// threads.
struct Control {
    socket: std::thread::JoinHandle<()>,
    manager: std::thread::JoinHandle<ZoneSet>,
    metrics: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    fn stop(self) {
        let _ = self.socket.join();
        let _ = self.manager.join();
        if let Some(m) = self.metrics {
            let _ = m.join();
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    nsxdp::logging::init(args.log_level.unwrap_or(nsxdp::logging::DEFAULT_LEVEL));
    let config = match &args.config {
        Some(p) => Some(Arc::new(nsxdp::config::Config::load(p)?)),
        None => None,
    };
    if let (None, Some(level)) = (args.log_level, config.as_ref().and_then(|c| c.server.log_level)) {
        nsxdp::logging::set_level(level);
    }
    // Every TCP client is a descriptor: take what the hard limit allows (systemd's soft
    // default of 1024 would stop accepting below our own connection limit).
    let limits = tcp_limits(&args, config.as_deref());
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < limits.max_clients as u64 + 64 => {
            log::warn!("{n} file descriptors allowed, fewer than tcp-max-clients ({}) needs", limits.max_clients)
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let zone_confs = config.as_ref().map_or(&[][..], |c| &c.zones[..]);
    if args.zones.is_empty() && args.snapshots.is_empty() && zone_confs.is_empty() {
        // A configuration may start empty: its zones come from the data directory's zone
        // list (`ctl zone-add`) or from catalogs, as Knot and NSD start without zones.
        if config.is_none() {
            bail!("nothing to serve: give --zone FILE, --snapshot FILE or --config FILE");
        }
        log::warn!("no zones in the configuration: only those of `ctl zone-add` will be served");
    }
    let data_dir = match (&args.data_dir, &config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => c.server.data_dir.clone(),
        (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("data directory {}", data_dir.display()))?;
    let catalog: dataplane::SharedCatalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::default()));
    let mut zone_set = ZoneSet::new(&data_dir, catalog.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let mut notes = Vec::new();
    // The zone files' warnings come back in `notes` (a file is read once, or not at all
    // when its snapshot is current).
    // A zone that does not load is reported and, where its name is known, kept without a
    // version (SERVFAIL, `status`, the metrics; a reload serves it once its file is good):
    // the others are served all the same, unless --strict.
    let mut failed = Vec::new();
    for file in &args.zones {
        let policy = nsxdp::config::SerialPolicy::Increment;
        if let Err(e) = zone_set.add(None, file, policy, Limits::default(), now, &mut notes) {
            log::error!("{e}");
            let text = std::fs::read(file).unwrap_or_default();
            if let Some(name) = nsxdp::zone::parse::guess_origin(file, &text) {
                let _ = zone_set.add_unloaded(&name, file, policy, Limits::default(), e.clone());
            }
            failed.push(e);
        }
    }
    for z in zone_confs {
        let config = config.as_ref().expect("zones come from a configuration");
        if let Err(e) = zone_set.add_configured(z, config, now, &mut notes) {
            log::error!("zone {}: {e}", z.name);
            if let (nsxdp::config::Role::Primary, Some(file)) = (&z.role, &z.file) {
                let limits = Limits { max_bytes: z.journal_max_bytes, max_depth: z.journal_max_depth };
                let _ = zone_set.add_unloaded(&z.name, file, z.serial_policy, limits, e.clone());
            }
            failed.push(e);
        }
    }
    for path in &args.snapshots {
        if let Err(e) = zone_set.add_snapshot(path) {
            log::error!("{}: {e}", path.display());
            failed.push(e);
        }
    }
    for n in &notes {
        log::warn!("{n}");
    }
    if !failed.is_empty() {
        let serving = zone_set.zones.iter().filter(|z| z.serving()).count();
        let secondaries = zone_set.zones.iter().filter(|z| z.secondary.is_some()).count();
        let n = failed.len();
        let zones = if n == 1 { "zone" } else { "zones" };
        if args.strict {
            bail!("{n} {zones} did not load (--strict): not starting");
        }
        if serving + secondaries == 0 {
            bail!("no zone can be served ({n} did not load)");
        }
        log::error!("{n} {zones} did not load; serving the other {}", serving + secondaries);
    }
    zone_set.publish();
    // Ten zones by name at most: a host of 10^5 zones would write a line of megabytes.
    let shown = 10;
    let mut zones: Vec<String> = zone_set
        .zones
        .iter()
        .take(shown)
        .map(|z| match z.serial() {
            Some(s) if z.serving() => format!("{} (serial {s})", z.name),
            Some(s) => format!("{} (serial {s}, expired)", z.name),
            None if z.secondary.is_some() => format!("{} (secondary, not transferred yet)", z.name),
            None => format!("{} (not loaded: SERVFAIL)", z.name),
        })
        .collect();
    if zone_set.zones.len() > shown {
        zones.push(format!(
            "and {} more zones ({} zone files read, the others served from current snapshots)",
            zone_set.zones.len() - shown,
            zone_set.files_read
        ));
    }
    // A flag wins over the file, the file over the default.
    let edns_size = args.edns_size.or(config.as_ref().map(|c| c.server.edns_size)).unwrap_or(1232);
    let cookies = cookie_secrets(args.cookies, config.as_deref())?;
    // The secrets in use, for the life of the process: a reload of the configuration may
    // rotate them, and every loop reads them from here.
    let shared_secrets: Option<&'static nsxdp::cookie::SharedSecrets> =
        cookies.map(|s| &*Box::leak(Box::new(nsxdp::cookie::SharedSecrets::from_pointee(s))));
    // What CH TXT and NSID tell: from the file, or the same defaults without one.
    let about = config.as_ref().map_or_else(nsxdp::config::default_identity, |c| c.server.about.clone());
    let identity: Option<&'static nsxdp::answer::Identity> = Some(Box::leak(Box::new(about)));
    let cfg = Config { edns_size, cookies, now: 0, shared_secrets, identity };
    let rrl = config.as_ref().and_then(|c| c.rrl.clone());
    let mut listen = args.listen.clone();
    if listen.is_empty() {
        if let Some(c) = &config {
            listen = c.server.listen.clone();
        }
    }
    if listen.is_empty() {
        listen = nsxdp::config::default_listen(args.xdp.is_some());
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, shutdown.clone())?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    // SIGUSR1 and SIGUSR2 mean nothing here; without a handler they would end the process.
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGUSR1, signal_hook::consts::SIGUSR2] {
        signal_hook::flag::register(sig, ignored.clone())?;
    }
    let user = args.user.clone().or_else(|| config.as_ref().and_then(|c| c.server.user.clone()));
    // Transfers (TSIG keys, ACLs, journals) and NOTIFY need the configuration.
    // One shared copy of the configuration, replaced by reloads, read by every thread.
    let shared = config.clone().map(nsxdp::config::SharedConfig::from);
    let transfers = shared.as_ref().map(|c| Transfers::new(c.clone(), zone_set.journals()));
    if config.is_some() {
        zone_set.set_own_addresses(listen.iter().map(|a| a.ip()).collect());
        for i in 0..zone_set.zones.len() {
            zone_set.refresh_ns_targets(i);
        }
    }
    let control_path = match (&args.control, &config) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.server.control.clone(),
        (None, None) => data_dir.join("control.sock"),
    };
    let (to_manager, events) = std::sync::mpsc::channel();
    // NOTIFY in (and the rest the run loops hand over) needs the configuration.
    let control_side = shared.clone().map(|c| {
        let mut side = handoff::ControlSide::new(c, to_manager.clone());
        side.transfers = transfers.clone();
        side
    });
    // The metrics endpoint: bound now, so that a taken port stops the start.
    let metrics = Arc::new(Metrics::new());
    let metrics_http = match args.metrics.or(config.as_ref().and_then(|c| c.server.metrics)) {
        Some(addr) => {
            let server = MetricsServer::bind(addr)?;
            log::info!("metrics on http://{}/metrics", server.addr);
            Some(server.spawn(metrics.clone(), HttpLimits::default(), shutdown.clone())?)
        }
        None => None,
    };
    if let Some(t) = &transfers {
        metrics.set_transfers(t.stats.clone());
    }
    let control = Control {
        metrics: metrics_http,
        socket: ctl::spawn_socket(&control_path, to_manager.clone(), shutdown.clone(), metrics.clone())
            .with_context(|| format!("control socket {}", control_path.display()))?,
        manager: ctl::spawn_manager(
            zone_set,
            events,
            to_manager,
            hup,
            shutdown.clone(),
            shared.clone().map(Notifier::new),
            args.config.clone().zip(shared.clone()).map(|(path, shared)| ctl::ConfigSource {
                path,
                shared,
                secrets: shared_secrets,
            }),
            Some(metrics.clone()),
        )?,
    };
    log::info!("control socket {}", control_path.display());
    // The XDP side is checked before anything is bound: interface, queues, cores, MTU.
    let xdp_opts = match &args.xdp {
        Some(ifname) => Some(xdp_options(&args, ifname, &listen)?),
        None => None,
    };
    let server = Server {
        args: &args,
        listen,
        zones,
        catalog,
        cfg,
        shutdown: shutdown.clone(),
        transfers,
        control_side,
        rrl,
        metrics: metrics.clone(),
        user,
        data_dir,
    };
    let r = server.run(xdp_opts);
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    control.stop();
    r
}

/// Everything `serve` set up that the data plane and TCP need: one way to start a server,
/// whichever UDP data plane it has.
struct Server<'a> {
    args: &'a ServeArgs,
    listen: Vec<SocketAddr>,
    /// How the served zones are described in the log.
    zones: Vec<String>,
    catalog: dataplane::SharedCatalog,
    cfg: Config,
    shutdown: Arc<AtomicBool>,
    transfers: Option<Transfers>,
    control_side: Option<handoff::ControlSide>,
    rrl: Option<nsxdp::rrl::Settings>,
    metrics: Arc<Metrics>,
    user: Option<String>,
    data_dir: PathBuf,
}

impl Server<'_> {
    /// Starts the UDP data plane (kernel sockets, or AF_XDP with `xdp`), the handoff thread
    /// and TCP, serves until SIGINT/SIGTERM or `ctl stop`, stops them and logs their counters.
    ///
    /// Kernel sockets: one loop per core, pinned, all of the UDP. AF_XDP: a loop per queue
    /// (`xdp`), and beside it one unpinned kernel loop on the listen addresses for what the
    /// XDP program passes to the kernel (fragments, IPv6 extension headers, queues without a
    /// socket, other interfaces). Either way TCP runs on this thread and NOTIFY, UPDATE, IXFR
    /// and signed queries go from the loops to the handoff thread.
    fn run(self, xdp: Option<xdp::XdpOptions>) -> anyhow::Result<ExitCode> {
        let Server {
            args,
            listen,
            zones,
            catalog,
            cfg,
            shutdown,
            transfers,
            control_side,
            rrl,
            metrics,
            user,
            data_dir,
        } = self;
        let rrl = rrl.as_ref();
        let (threads, cores) = match (&xdp, &args.cores) {
            (Some(_), _) => (1, Vec::new()),
            (None, Some(n)) => (
                n.parse::<usize>().map_err(|_| anyhow::anyhow!("--cores {n:?}: a number of loops (without --xdp)"))?,
                core_affinity::get_core_ids().unwrap_or_default(),
            ),
            (None, None) => {
                let cores = core_affinity::get_core_ids().unwrap_or_default();
                (cores.len().max(1), cores)
            }
        };
        let (handoff_tx, handoff_rx) = handoff::channel();
        // Also without a configuration: a signed query gets NOTAUTH/BADKEY there.
        let udp_loops =
            udp::spawn(&listen, threads, &cores, catalog.clone(), cfg, shutdown.clone(), Some(handoff_tx.clone()), rrl)
                .with_context(|| format!("binding UDP {listen:?}"))?;
        let senders = udp_loops.senders.iter().map(|s| s.try_clone()).collect::<std::io::Result<Vec<_>>>()?;
        let tcp_notify = control_side.clone();
        let (handoff_stats, handoff_thread) =
            handoff::spawn(handoff_rx, senders, catalog.clone(), cfg, control_side, shutdown.clone())
                .context("handoff thread")?;
        let config = tcp_notify.as_ref().map(|c| c.config.load());
        let mut tcp = TcpServer::bind(&udp_loops.bound, catalog.clone(), cfg, tcp_limits(args, config.as_deref()))
            .with_context(|| format!("binding TCP {:?}", udp_loops.bound))?;
        nsxdp::control::tls::listen(&mut tcp, config.as_deref())?;
        if let Some(t) = transfers {
            tcp.set_transfers(t);
        }
        if let Some(c) = tcp_notify {
            tcp.set_notify(c);
        }
        let plane = match &xdp {
            Some(opts) => match xdp::XdpPlane::start(opts, catalog, cfg, handoff_tx, shutdown.clone(), rrl) {
                Ok(p) => Some(p),
                Err(e) => {
                    // Stop the kernel-side threads before reporting.
                    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e).with_context(|| format!("starting AF_XDP on {}", opts.ifname));
                }
            },
            None => {
                drop(handoff_tx);
                None
            }
        };
        metrics.add_udp_loops(&udp_loops.stats);
        metrics.add_handoff(handoff_stats.clone());
        metrics.set_tcp(tcp.stats.clone(), tcp.tcp_stats.clone());
        for l in plane.iter().flat_map(|p| &p.loops) {
            let source = nsxdp::metrics::XdpSource {
                queue: l.queue,
                frames: l.frames.clone(),
                socket: l.socket.clone(),
                kernel: l.kernel_fd.clone(),
            };
            metrics.add_xdp_queue(l.queue, l.dns.clone(), source);
        }
        let addrs: Vec<String> = udp_loops.bound.iter().map(|a| a.to_string()).collect();
        let how = match (&plane, &xdp) {
            (Some(p), Some(o)) => {
                let qs: Vec<String> = p
                    .loops
                    .iter()
                    .map(|l| format!("{}@{}", l.queue, l.core.map_or("-".to_string(), |c| c.to_string())))
                    .collect();
                format!(
                    "UDP: AF_XDP on {} queues {} (queue@core), {} mode, MTU {}; TCP and the rest through the kernel",
                    o.ifname,
                    qs.join(","),
                    p.loops.first().map_or("?".to_string(), |l| l.mode.to_string()),
                    o.mtu
                )
            }
            _ => format!("UDP: {} loops, kernel sockets; TCP on the control thread", udp_loops.handles.len()),
        };
        log::info!("serving {} on {} ({how})", zones.join(", "), addrs.join(" "));
        // Whatever starting took (zone files parsed, snapshots built) goes back to the kernel.
        nsxdp::control::release_freed_memory();
        if let Some(u) = &user {
            // What the start-up wrote as root (a journal, a first snapshot, the lock) becomes
            // the user's, or its next write would be refused.
            let given = nsxdp::service::give_data_dir(&data_dir, u)?;
            if given > 0 {
                log::info!("gave {given} entries of {} to user {u}", data_dir.display());
            }
            if plane.is_some() {
                // The program is detached at exit, from this thread: it keeps CAP_NET_ADMIN.
                nsxdp::service::drop_privileges(u, &[caps::Capability::CAP_NET_ADMIN])?;
                log::info!("running as user {u} (keeping CAP_NET_ADMIN to detach the XDP program)");
            } else {
                nsxdp::service::drop_privileges(u, &[])?;
                log::info!("running as user {u}");
            }
        }
        log::info!("ready");
        nsxdp::service::notify("READY=1");
        let tcp_result = tcp.run(&shutdown);
        nsxdp::service::notify("STOPPING=1");
        // However the TCP loop ended, stop everything (the plane detaches the program when it
        // goes out of scope, also on an error return).
        shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
        let per_queue: Vec<_> =
            plane.iter().flat_map(|p| &p.loops).map(|l| (l.queue, l.dns.clone(), l.frames.clone())).collect();
        let report = plane.map(|p| p.stop());
        let mut hist = dataplane::new_histogram();
        for h in udp_loops.handles {
            if let Ok(part) = h.join() {
                let _ = hist.add(&part);
            }
        }
        let _ = handoff_thread.join();
        match &report {
            None => {
                log::info!("stopping; UDP {}", StatsSnapshot::sum(&udp_loops.stats));
                log::info!("UDP {}", dataplane::describe_histogram(&hist));
                log::info!("handed to the control side (NOTIFY, IXFR, signed queries over UDP) {handoff_stats}");
            }
            Some(report) => {
                log::info!("stopping");
                for (q, (queue, dns, frames)) in report.queues.iter().zip(&per_queue) {
                    debug_assert_eq!(q.queue, *queue);
                    log::info!("XDP {}", xdp::describe_queue(q));
                    log::info!(
                        "XDP queue {queue} frames: dropped={} ({}) build_errors={} handed_off={} handoff_dropped={} \
                         idle_polls={}",
                        frames.dropped(),
                        frames.describe_drops(),
                        frames.build_errors.load(std::sync::atomic::Ordering::Relaxed),
                        frames.handed_off.load(std::sync::atomic::Ordering::Relaxed),
                        frames.handoff_dropped.load(std::sync::atomic::Ordering::Relaxed),
                        frames.idle_polls.load(std::sync::atomic::Ordering::Relaxed),
                    );
                    log::info!("XDP queue {queue} DNS: {}", StatsSnapshot::sum([dns]));
                }
                log::info!("XDP program {}", report.describe_program());
                log::info!("XDP DNS: {}", StatsSnapshot::sum(per_queue.iter().map(|p| &p.1)));
                log::info!("XDP {}", dataplane::describe_histogram(&report.hist));
                log::info!("UDP (kernel) {}", StatsSnapshot::sum(&udp_loops.stats));
                log::info!("handoff {}", handoff_stats);
            }
        }
        log::info!("TCP {}", StatsSnapshot::sum([&tcp.stats]));
        log::info!("TCP connections {}", tcp.tcp_stats);
        if let Some(s) = tcp.transfer_stats() {
            log::info!("transfers out {s}");
        }
        tcp_result?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The cookie secrets, when cookies are on: the configured secret (and the previous one),
/// else a random one.
fn cookie_secrets(
    flag: bool,
    config: Option<&nsxdp::config::Config>,
) -> anyhow::Result<Option<nsxdp::cookie::Secrets>> {
    let conf = config.and_then(|c| c.cookies);
    if !flag && conf.is_none() {
        return Ok(None);
    }
    let current = match conf.and_then(|c| c.secret) {
        Some(s) => s,
        None => {
            let mut s = [0u8; 16];
            getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("a random cookie secret: {e}"))?;
            s
        }
    };
    Ok(Some(nsxdp::cookie::Secrets { current, previous: conf.and_then(|c| c.previous) }))
}

/// The TCP limits: a flag, else the configuration file, else the default (one set of
/// defaults, [`TcpLimits::default`]).
fn tcp_limits(args: &ServeArgs, config: Option<&nsxdp::config::Config>) -> TcpLimits {
    let mut l = config.map_or_else(TcpLimits::default, |c| c.server.tcp);
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = args.tcp_idle_timeout {
        l.idle_timeout = Duration::from_secs(v);
    }
    if let Some(v) = args.tcp_message_timeout {
        l.message_timeout = Duration::from_millis(v);
    }
    if let Some(v) = args.tcp_max_clients {
        l.max_clients = size(v);
    }
    if let Some(v) = args.tcp_max_clients_per_address {
        l.max_clients_per_address = size(v);
    }
    if let Some(v) = args.tcp_max_pending_output {
        l.max_pending_output = size(v);
    }
    if let Some(v) = args.tcp_output_budget {
        l.output_budget = size(v);
    }
    l
}

/// What the XDP program should hand over, from the listen addresses: their one port; per
/// family, the address if exactly one specific address of it is listened on, any address
/// if the unspecified one is (or several), and none (0.0.0.0 or ::, which no query is sent
/// to) if no address of that family is.
fn xdp_program_config(listen: &[SocketAddr]) -> anyhow::Result<XdpConfig> {
    let port = listen[0].port();
    if port == 0 || listen.iter().any(|a| a.port() != port) {
        bail!("with --xdp, every --listen address must have the same port, not 0 ({listen:?})");
    }
    let v4: Vec<Ipv4Addr> = listen
        .iter()
        .filter_map(|a| match a.ip() {
            IpAddr::V4(i) => Some(i),
            _ => None,
        })
        .collect();
    let v6: Vec<Ipv6Addr> = listen
        .iter()
        .filter_map(|a| match a.ip() {
            IpAddr::V6(i) => Some(i),
            _ => None,
        })
        .collect();
    let pick4 = match v4.as_slice() {
        [] => Some(Ipv4Addr::UNSPECIFIED),
        [one] if !one.is_unspecified() => Some(*one),
        _ => None,
    };
    let pick6 = match v6.as_slice() {
        [] => Some(Ipv6Addr::UNSPECIFIED),
        [one] if !one.is_unspecified() => Some(*one),
        _ => None,
    };
    Ok(XdpConfig { port, v4: pick4, v6: pick6 })
}

/// `serve --xdp IFACE`: the AF_XDP plane's options, checked before anything is bound — the
/// XDP program's port and addresses from the listen addresses, the queues (`--queues`, else
/// every RX queue of IFACE), their cores (`--cores`, else queue i on the i-th core this
/// process may run on), the MTU.
fn xdp_options(args: &ServeArgs, ifname: &str, listen: &[SocketAddr]) -> anyhow::Result<xdp::XdpOptions> {
    let program = xdp_program_config(listen)?;
    let queues = match &args.queues {
        Some(l) => xdp::parse_list(l).map_err(|e| anyhow::anyhow!("--queues: {e}"))?,
        None => xdp::rx_queues(ifname).with_context(|| format!("{ifname}: reading its RX queues from /sys"))?,
    };
    // The cores this process may run on (taskset narrows them), by id.
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    let cores: Vec<usize> = match &args.cores {
        Some(l) => {
            xdp::parse_list(l).map_err(|e| anyhow::anyhow!("--cores: {e}"))?.into_iter().map(|c| c as usize).collect()
        }
        None if allowed.is_empty() => Vec::new(),
        None => queues.iter().map(|q| allowed[*q as usize % allowed.len()]).collect(),
    };
    if let Some(c) = cores.iter().find(|c| !allowed.is_empty() && !allowed.contains(c)) {
        bail!("--cores: core {c} is not one this process may run on ({allowed:?})");
    }
    let mtu = match xdp::interface_mtu(ifname) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("{ifname}: MTU unknown ({e}); assuming {}", xdp::DEFAULT_MTU);
            xdp::DEFAULT_MTU
        }
    };
    Ok(xdp::XdpOptions {
        ifname: ifname.to_string(),
        queues,
        cores,
        force: args.xdp_force,
        program,
        mtu,
        socket: xdp::socket_config(mtu),
    })
}

fn parse_origin(s: &str) -> anyhow::Result<Name> {
    let abs = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::parse_text(abs.as_bytes(), None).map_err(|e| anyhow::anyhow!("bad --origin '{s}': {e}"))
}

/// `--time`: YYYYMMDDHHmmSS or Unix seconds.
fn parse_check_time(s: &str) -> Result<u64, String> {
    check::dnssec::parse_time(s).ok_or_else(|| format!("'{s}' is neither YYYYMMDDHHmmSS nor Unix seconds"))
}

/// Loads and checks a zone file (with the DNSSEC checks, if options for them are given),
/// printing its diagnostics.
/// `check --config FILE`: the configuration as `serve --config` reads it, then each primary
/// zone's file (its own diagnostics, file:line). True if all is well.
fn check_config(path: &Path, dnssec: Option<&check::dnssec::Options>) -> bool {
    let config = match nsxdp::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let primaries = config.zones.iter().filter(|z| z.role == nsxdp::config::Role::Primary).count();
    eprintln!(
        "{}: configuration OK: {} zones ({primaries} primary, {} secondary), {} keys, {} ACLs",
        path.display(),
        config.zones.len(),
        config.zones.len() - primaries,
        config.keys.len(),
        config.acls.len()
    );
    let mut ok = true;
    for z in &config.zones {
        match (&z.role, &z.file) {
            (nsxdp::config::Role::Primary, Some(file)) => match load(file, Some(&z.name), dnssec) {
                Ok(loaded) => ok &= loaded.is_servable(),
                Err(e) => {
                    eprintln!("{}: zone {}: {e:#}", path.display(), z.name);
                    ok = false;
                }
            },
            (nsxdp::config::Role::Primary, None) => {}
            (_, _) => eprintln!("{}: zone {}: secondary, transferred from its primaries", path.display(), z.name),
        }
    }
    ok
}

fn load(path: &Path, origin: Option<&Name>, dnssec: Option<&check::dnssec::Options>) -> anyhow::Result<Loaded> {
    let mut loaded = parse::parse_file(path, origin).with_context(|| format!("{}", path.display()))?;
    match dnssec {
        Some(opts) => check::check_signed(&mut loaded, opts),
        None => check::check(&mut loaded),
    }
    report(path, &loaded);
    Ok(loaded)
}

/// Prints the diagnostics of a loaded zone and whether it can be served.
fn report(path: &Path, loaded: &Loaded) {
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let z = &loaded.zone;
    if loaded.is_servable() {
        eprintln!(
            "{}: zone {} serial {}: {} RRs, OK",
            path.display(),
            z.origin(),
            z.serial().unwrap_or(0),
            z.rr_count()
        );
    } else {
        eprintln!("{}: zone {}: NOT servable ({} errors)", path.display(), z.origin(), loaded.errors().count());
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod cli_tests {
    use clap::CommandFactory;

    /// Every argument and subcommand, hidden ones too, says what it is: in `--help`, in the
    /// manual pages and in the completions.
    #[test]
    fn every_argument_and_subcommand_is_described() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut Vec<String>, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let name = format!("{path} {}", arg.get_id());
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(name.clone());
                }
                seen.push(name);
            }
            // clap's own `help` subcommand is clap's to describe.
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, seen, missing);
                seen.push(name);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let (mut seen, mut missing) = (Vec::new(), Vec::new());
        walk(&cmd, "nsxdp", &mut seen, &mut missing);
        assert!(missing.is_empty(), "without a help text: {missing:?}");
        // The walk reached the leaves, hidden ones included.
        for leaf in ["nsxdp compile origin", "nsxdp ctl zone-notify zone", "nsxdp generate completions shell"] {
            assert!(seen.iter().any(|s| s == leaf), "{leaf} not seen in {seen:?}");
        }
    }

    #[test]
    fn clap_accepts_the_definition() {
        super::Cli::command().debug_assert();
    }
}
