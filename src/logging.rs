//! The server's log: the `log` facade, written to stderr by `env_logger`, one line per event.
//!
//! A line is `2026-12-05T21:30:00.123Z warning: MESSAGE` (UTC, milliseconds; the level words
//! are Knot's), except when stderr is the systemd journal (`JOURNAL_STREAM` names the
//! descriptor, systemd.exec(5)): the journal stamps lines itself, so there each line starts
//! with its syslog priority instead (`<4>MESSAGE`, sd-daemon(3)) and keeps its level.
//!
//! Warnings and errors are rate-limited per call site ([`Limiter`]): a site that fires more
//! than [`BURST`] times within [`WINDOW`] is silent for the rest of the window, and its next
//! line says how many were left out. Information and debug lines are not limited: they are
//! what an operator asked for with the level.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Warnings or errors one call site may write within [`WINDOW`].
pub const BURST: u32 = 20;
/// The window of [`BURST`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Call sites tracked at most (the binary has far fewer; past it a line is written unlimited).
const MAX_SITES: usize = 4096;

/// `log-level` / `--log-level` values.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warning" | "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// The level a server logs at unless told otherwise.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

/// Installs the logger for the rest of the process, at `level` (changed later with
/// [`set_level`]). A second call does nothing.
pub fn init(level: LevelFilter) {
    let journal = stderr_is_journal();
    let mut builder = env_logger::Builder::new();
    builder.filter_level(LevelFilter::Trace).target(env_logger::Target::Stderr);
    if journal {
        builder.format(|buf, record| writeln!(buf, "<{}>{}", priority(record.level()), record.args()));
    } else {
        builder.format(|buf, record| {
            writeln!(buf, "{} {}: {}", buf.timestamp_millis(), word(record.level()), record.args())
        });
    }
    let logger =
        RateLimited { inner: builder.build(), limiter: Mutex::new(Limiter::new(BURST, WINDOW)), t0: Instant::now() };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] installed the logger (a server runs; other commands print to stderr).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Changes the level of the installed logger (a configuration read after start-up).
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Knot's level words.
fn word(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// syslog(3) priorities.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is
/// `DEVICE:INODE` of it, and stderr's own device and inode must match (a child whose stderr
/// was redirected keeps the variable but not the stream).
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    meta.dev() == dev && meta.ino() == ino
}

struct RateLimited {
    inner: env_logger::Logger,
    limiter: Mutex<Limiter>,
    t0: Instant,
}

impl Log for RateLimited {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let site = match (record.level(), record.file_static(), record.line()) {
            (Level::Error | Level::Warn, Some(file), Some(line)) => (file, line),
            _ => return self.inner.log(record),
        };
        let now_ms = self.t0.elapsed().as_millis() as u64;
        let admit = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).admit(site, now_ms);
        match admit {
            Admit::Write { suppressed: 0 } => self.inner.log(record),
            Admit::Write { suppressed } => self.inner.log(
                &Record::builder()
                    .args(format_args!("{} ({suppressed} more like this left out before)", record.args()))
                    .level(record.level())
                    .target(record.target())
                    .file_static(record.file_static())
                    .line(record.line())
                    .module_path_static(record.module_path_static())
                    .build(),
            ),
            Admit::Drop => {}
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

/// What [`Limiter::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `suppressed` lines of the same site were left out since the last one.
    Write {
        suppressed: u64,
    },
    Drop,
}

/// Per call site, at most `burst` lines per `window`; the clock is passed in.
pub struct Limiter {
    burst: u32,
    window_ms: u64,
    sites: HashMap<(&'static str, u32), Site>,
}

struct Site {
    window_start_ms: u64,
    written: u32,
    suppressed: u64,
}

impl Limiter {
    pub fn new(burst: u32, window: Duration) -> Limiter {
        Limiter { burst, window_ms: window.as_millis() as u64, sites: HashMap::new() }
    }

    pub fn admit(&mut self, site: (&'static str, u32), now_ms: u64) -> Admit {
        if !self.sites.contains_key(&site) && self.sites.len() >= MAX_SITES {
            return Admit::Write { suppressed: 0 };
        }
        let s = self.sites.entry(site).or_insert(Site { window_start_ms: now_ms, written: 0, suppressed: 0 });
        if now_ms.saturating_sub(s.window_start_ms) >= self.window_ms {
            s.window_start_ms = now_ms;
            s.written = 0;
        }
        if s.written >= self.burst {
            s.suppressed += 1;
            return Admit::Drop;
        }
        s.written += 1;
        Admit::Write { suppressed: std::mem::take(&mut s.suppressed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("WARN"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("loud"), None);
    }

    #[test]
    fn a_site_is_limited_per_window_and_says_how_many_it_left_out() {
        let mut l = Limiter::new(3, Duration::from_secs(10));
        let a = ("a.rs", 1);
        for t in 0..3 {
            assert_eq!(l.admit(a, t), Admit::Write { suppressed: 0 });
        }
        assert_eq!(l.admit(a, 5), Admit::Drop);
        assert_eq!(l.admit(a, 9_999), Admit::Drop);
        // Another site is not affected.
        assert_eq!(l.admit(("a.rs", 2), 9_999), Admit::Write { suppressed: 0 });
        // The window ends ten seconds after its first line.
        assert_eq!(l.admit(a, 10_000), Admit::Write { suppressed: 2 });
        assert_eq!(l.admit(a, 10_001), Admit::Write { suppressed: 0 });
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = Limiter::new(1, Duration::from_secs(10));
        for i in 0..MAX_SITES as u32 + 10 {
            assert_eq!(l.admit(("f.rs", i), 0), Admit::Write { suppressed: 0 });
        }
        assert_eq!(l.sites.len(), MAX_SITES);
        // Untracked sites are written unlimited.
        assert_eq!(l.admit(("f.rs", MAX_SITES as u32 + 5), 1), Admit::Write { suppressed: 0 });
    }
}
