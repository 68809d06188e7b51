//! The `nsxdp` command: the edge where errors become messages and exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use nsxdp::snapshot::{self, Snapshot};
use nsxdp::wire::name::Name;
use nsxdp::zone::parse::{self, Loaded};
use nsxdp::zone::text::format_record;

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
            let loaded = load(&file, origin.as_ref())?;
            if !loaded.is_servable() {
                return Ok(ExitCode::FAILURE);
            }
            let parsed = started.elapsed();
            let img = snapshot::compile(&loaded.zone).with_context(|| format!("{}", file.display()))?;
            let size = snapshot::write_snapshot(&output, &img)?;
            let took = started.elapsed();
            eprintln!(
                "{}: wrote {} ({} bytes, {} names, {} RRsets) in {:.3}s (parse {:.3}s)",
                file.display(),
                output.display(),
                size,
                img.nodes.len(),
                img.rrsets.len(),
                took.as_secs_f64(),
                parsed.as_secs_f64()
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
    }
}

fn parse_origin(s: &str) -> anyhow::Result<Name> {
    let abs = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::parse_text(abs.as_bytes(), None).map_err(|e| anyhow::anyhow!("bad --origin '{s}': {e}"))
}

/// Loads and checks a zone file, printing its diagnostics.
fn load(path: &Path, origin: Option<&Name>) -> anyhow::Result<Loaded> {
    let loaded = parse::load_file(path, origin).with_context(|| format!("{}", path.display()))?;
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
    Ok(loaded)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
