//! Helpers shared by the tests that run the `nsxdp` binary beside real peers (knotd, named,
//! nsd) and clients (kdig, dig): processes killed when dropped, free ports, the server's
//! start and control commands, SOA serials and whole-zone transfers as seen by kdig.
//!
//! Each test binary uses its own subset; the rest is dead code there.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether the test runs under CI, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether `tool` runs (`tool --version`, or `-v` for those without it). Under `CI=true` a
/// missing tool fails the test; otherwise the caller skips, and this says why.
pub fn have(tool: &str, package: &str) -> bool {
    let runs = |flag: &str| Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success());
    let ok = runs("--version") || runs("-v") || runs("-V");
    if !ok {
        assert!(!in_ci(), "{tool} is required under CI=true (apt-get install {package})");
        eprintln!("skipping: {tool} not found (apt-get install {package})");
    }
    ok
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// Starts `cmd` with its stderr (and stdout) appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let f = std::fs::File::create(log).unwrap();
        let out = f.try_clone().unwrap();
        let child = cmd.stderr(Stdio::from(f)).stdout(Stdio::from(out)).spawn().unwrap();
        Proc(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nsxdp serve --cores 1 --config CONF` (in `dir`, relative paths in the
/// configuration resolve against the file's directory) and waits for `nsxdp: ready`. Its
/// log goes to `dir/nsxdp.log`.
pub fn start_nsxdp(dir: &Path, conf: &Path) -> Proc {
    start_nsxdp_args(dir, &["--config".as_ref(), conf.as_os_str()])
}

/// Starts `nsxdp serve --cores 1 ARGS...`, logging to `dir/nsxdp.log` (appended across
/// restarts), and waits for `nsxdp: ready`.
pub fn start_nsxdp_args(dir: &Path, args: &[&std::ffi::OsStr]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--cores", "1"])
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let log = dir.join("nsxdp.log");
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(f, "{line}");
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "nsxdp: ready" => break,
            Ok(_) => {}
            Err(_) => {
                let log = std::fs::read_to_string(dir.join("nsxdp.log")).unwrap_or_default();
                let _ = child.kill();
                let _ = child.wait();
                panic!("nsxdp did not start:\n{log}");
            }
        }
    }
    Proc(child)
}

/// `nsxdp ctl --config CONF ARGS...`: whether it ended with `ok`, and its output.
pub fn ctl(conf: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_nsxdp")).args(["ctl", "--config"]).arg(conf).args(args).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// The SOA serial a server on 127.0.0.1:`port` answers for `zone` over UDP, if any.
pub fn soa_serial(port: u16, zone: &str) -> Option<u32> {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=1", "+retry=0", zone, "SOA"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).split_whitespace().nth(2)?.parse().ok()
}

/// Waits up to `limit` until the server on `port` answers `zone`'s SOA with serial `want`;
/// on timeout, panics with `what` and the logs. Returns how long it took.
pub fn wait_serial(port: u16, zone: &str, want: u32, limit: Duration, what: &str, logs: &[PathBuf]) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = soa_serial(port, zone);
        if got == Some(want) {
            return t0.elapsed();
        }
        if t0.elapsed() > limit {
            let mut text = String::new();
            for l in logs {
                text.push_str(&format!("--- {}:\n{}\n", l.display(), std::fs::read_to_string(l).unwrap_or_default()));
            }
            panic!("{what}: serial {want} not served within {limit:?} (got {got:?})\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `zone` as the server on `port` transfers it (kdig AXFR over TCP, signed with `key` as
/// kdig's `-y` wants it, when given): the records as normalised, lowercased, sorted lines,
/// each once (the closing SOA folds into the first). Empty when the transfer failed.
pub fn axfr_lines(port: u16, zone: &str, key: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("kdig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+tcp", "+nocomments", "+nostats", "+time=10"]);
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let o = cmd.args(["AXFR", zone]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || err.contains("ERROR") || text.contains(";; ERROR") {
        return Vec::new();
    }
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Panics unless both sides transfer the same records (showing a few differences).
pub fn assert_same_zone(a: &[String], b: &[String], a_name: &str, b_name: &str) {
    let sa: std::collections::HashSet<&String> = a.iter().collect();
    let sb: std::collections::HashSet<&String> = b.iter().collect();
    let only_a: Vec<_> = a.iter().filter(|l| !sb.contains(l)).take(5).collect();
    let only_b: Vec<_> = b.iter().filter(|l| !sa.contains(l)).take(5).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{a_name} has {} records, {b_name} {}; only at {a_name}: {only_a:?}; only at {b_name}: {only_b:?}",
        a.len(),
        b.len()
    );
}
