//! The `nsxdp` command: the edge where errors become messages and exit codes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use nsxdp::answer::{Catalog, Config};
use nsxdp::control::tcp::{TcpConfig, TcpServer};
use nsxdp::dataplane::{self, udp, StatsSnapshot};
use nsxdp::snapshot::{self, Snapshot};
use nsxdp::wire::name::Name;
use nsxdp::zone::check;
use nsxdp::zone::parse::{self, Loaded};
use nsxdp::zone::text::format_record;

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
    /// Parse and check zone files; exit 0 only if every zone can be served.
    Check {
        /// Zone apex (default: a leading $ORIGIN, else the file name without `.zone`).
        #[arg(long)]
        origin: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compile a zone file into a snapshot.
    Compile {
        #[arg(long)]
        origin: Option<String>,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print a snapshot's zone in master-file format, one RR a line, canonical order.
    Dump { snapshot: PathBuf },
    /// Load a snapshot (map and validate) and print figures about it, as key=value lines.
    Stat { snapshot: PathBuf },
    /// Serve zones over UDP (one pinned loop per core, kernel sockets) and TCP.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Zone file to serve (compiled to a snapshot in --data-dir); repeatable.
    #[arg(long = "zone")]
    zones: Vec<PathBuf>,
    /// Snapshot file to serve as it is; repeatable.
    #[arg(long = "snapshot")]
    snapshots: Vec<PathBuf>,
    /// Address to answer on, UDP and TCP; repeatable (default 127.0.0.1:5353 and [::1]:5353).
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
    /// UDP run loops, one pinned to each core in turn (default: one per core).
    #[arg(long)]
    cores: Option<usize>,
    /// Where compiled snapshots are written.
    #[arg(long, default_value = "/var/tmp/nsxdp")]
    data_dir: PathBuf,
    /// EDNS UDP payload size we offer (RFC 6891).
    #[arg(long, default_value_t = 1232, value_parser = clap::value_parser!(u16).range(512..=4096))]
    edns_size: u16,
    /// Seconds before an idle TCP connection is closed.
    #[arg(long, default_value_t = 10)]
    tcp_idle_timeout: u64,
    /// TCP connections open at once.
    #[arg(long, default_value_t = 256)]
    tcp_max_clients: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nsxdp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check { origin, files } => {
            if origin.is_some() && files.len() > 1 {
                bail!("--origin applies to one zone file only");
            }
            let origin = origin.as_deref().map(parse_origin).transpose()?;
            let mut ok = true;
            for f in &files {
                let loaded = load(f, origin.as_ref())?;
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
                "{}: wrote {} ({} bytes, {} names, {} RRsets) in {:.3}s (parse {:.3}s, check {:.3}s beside compile {:.3}s, write {:.3}s)",
                file.display(),
                output.display(),
                size,
                img.nodes.len(),
                img.rrsets.len(),
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
            println!("nodes={}", z.nodes.len());
            println!("rrsets={}", z.rrsets.len());
            println!("load_ms={:.3}", load.as_secs_f64() * 1000.0);
            println!("rss_kib={}", rss_kib().unwrap_or(0));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.zones.is_empty() && args.snapshots.is_empty() {
        bail!("nothing to serve: give --zone FILE or --snapshot FILE");
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("data directory {}", args.data_dir.display()))?;
    let mut snaps: Vec<Arc<Snapshot>> = Vec::new();
    for file in &args.zones {
        let loaded = load(file, None)?;
        if !loaded.is_servable() {
            bail!("{}: zone not loaded", file.display());
        }
        let img = snapshot::compile(&loaded.zone).with_context(|| format!("{}", file.display()))?;
        let origin = loaded.zone.origin().to_string();
        let stem = origin.trim_end_matches('.');
        let path = args.data_dir.join(format!("{}.snap", if stem.is_empty() { "root" } else { stem }));
        snapshot::write_snapshot(&path, &img)?;
        snaps.push(Arc::new(Snapshot::open(&path)?));
    }
    for path in &args.snapshots {
        snaps.push(Arc::new(Snapshot::open(path)?));
    }
    let mut seen = std::collections::HashSet::new();
    for s in &snaps {
        if !seen.insert(s.origin()) {
            bail!("zone {} given twice", s.origin());
        }
    }
    let zones: Vec<String> = snaps.iter().map(|s| format!("{} (serial {})", s.origin(), s.serial())).collect();
    let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(Catalog::new(snaps)));
    let cfg = Config { edns_size: args.edns_size };
    let defaults = args.listen.is_empty();
    let mut listen = args.listen.clone();
    if defaults {
        listen.push("127.0.0.1:5353".parse()?);
        // Only where IPv6 loopback exists.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            listen.push("[::1]:5353".parse()?);
        }
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, shutdown.clone())?;
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads = args.cores.unwrap_or(cores.len().max(1));
    let loops = udp::spawn(&listen, threads, &cores, catalog.clone(), cfg, shutdown.clone())
        .with_context(|| format!("binding UDP {listen:?}"))?;
    let tcp_cfg = TcpConfig {
        idle_timeout: Duration::from_secs(args.tcp_idle_timeout),
        max_connections: args.tcp_max_clients,
        ..TcpConfig::default()
    };
    let mut tcp = TcpServer::bind(&loops.bound, catalog, cfg, tcp_cfg).context("binding TCP")?;
    let addrs: Vec<String> = loops.bound.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "nsxdp: serving {} on {} (UDP: {} loops, kernel sockets; TCP on the control thread)",
        zones.join(", "),
        addrs.join(" "),
        loops.handles.len()
    );
    eprintln!("nsxdp: ready");
    tcp.run(&shutdown)?;
    let mut hist = dataplane::new_histogram();
    for h in loops.handles {
        if let Ok(part) = h.join() {
            let _ = hist.add(&part);
        }
    }
    eprintln!("nsxdp: stopping; UDP {}", StatsSnapshot::sum(&loops.stats));
    eprintln!("nsxdp: UDP {}", dataplane::describe_histogram(&hist));
    eprintln!("nsxdp: TCP {}", StatsSnapshot::sum([&tcp.stats]));
    Ok(ExitCode::SUCCESS)
}

fn parse_origin(s: &str) -> anyhow::Result<Name> {
    let abs = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::parse_text(abs.as_bytes(), None).map_err(|e| anyhow::anyhow!("bad --origin '{s}': {e}"))
}

/// Loads and checks a zone file, printing its diagnostics.
fn load(path: &Path, origin: Option<&Name>) -> anyhow::Result<Loaded> {
    let loaded = parse::load_file(path, origin).with_context(|| format!("{}", path.display()))?;
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
