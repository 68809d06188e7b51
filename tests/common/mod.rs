//! Helpers shared by the tests that run the `nsxdp` binary beside real peers (knotd, named,
//! nsd) and clients (kdig, dig): processes killed when dropped, free ports, the server's
//! start and control commands, SOA serials and whole-zone transfers as seen by kdig.
//!
//! Each test binary uses its own subset; the rest is dead code there.
#![allow(dead_code)]

pub mod dnssec;
pub mod netns;

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
        skipped(&format!("{tool} not found (apt-get install {package})"));
    }
    ok
}

/// Like [`have`], for a tool that only answers `probe` successfully (dnsperf knows no
/// `--version`: `have_probe("dnsperf", "-h", "dnsperf")`).
pub fn have_probe(tool: &str, probe: &str, package: &str) -> bool {
    let ok = Command::new(tool).arg(probe).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "{tool} is required under CI=true (apt-get install {package})");
        skipped(&format!("{tool} not found (apt-get install {package})"));
    }
    ok
}

/// Says that the running test is skipped because `why` (the caller returns next): one line
/// on stderr and one in the skip list, `target/skipped.txt`, which `scripts/test-summary.sh`
/// prints after the run (cargo counts a skipped test as passed). Under `CI=true` the caller
/// fails instead of calling this.
pub fn skipped(why: &str) {
    let test = running_test();
    eprintln!("{test}: skipped: {why}");
    record_skip(&format!("{test}: {why}"));
}

/// Like [`skipped`], for a part of the running test that is left out while the rest runs.
pub fn skipped_part(why: &str) {
    let test = running_test();
    eprintln!("{test}: part skipped: {why}");
    record_skip(&format!("{test} (part): {why}"));
}

/// `binary::test`: the test binary and the test (the harness names each test's thread after
/// it; "?" on a thread of the test's own).
fn running_test() -> String {
    format!("{}::{}", env!("CARGO_CRATE_NAME"), std::thread::current().name().unwrap_or("?"))
}

/// The skip list: `skipped.txt` in `CARGO_TARGET_DIR`, else in the package's `target`.
pub fn skip_list() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), |d| manifest.join(d));
    target.join("skipped.txt")
}

/// Appends `line` to the skip list: one `write` of the whole line to a file opened for
/// appending, so the lines of tests running at once (threads, test binaries) do not mix.
fn record_skip(line: &str) {
    use std::io::Write;
    let path = skip_list();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("(not added to {}: {e})", path.display());
    }
}

/// A port free for both UDP and TCP on 127.0.0.1. Taken below the kernel's ephemeral range
/// (32768–60999 by default), which is where the peers draw their own source ports from: a
/// free port there can be taken by a named or knotd of a test running beside this one
/// before the server it was meant for binds it. Each call in a process tries the next port
/// of a sequence that starts at a place set by the process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let p = (LOW + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", p));
        if udp.is_ok() && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
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

    /// SIGKILL (our own child, by PID), then reaps it. Consumes the handle so that no later
    /// signal can reach a process that reused the PID.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        let _ = self.0.kill();
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Gone already (and waited for): its PID may be another process's by now.
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
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
/// configuration resolve against the file's directory) and waits for `info: ready`. Its
/// log goes to `dir/nsxdp.log`.
pub fn start_nsxdp(dir: &Path, conf: &Path) -> Proc {
    start_nsxdp_args(dir, &["--config".as_ref(), conf.as_os_str()])
}

/// Starts `nsxdp serve --cores 1 ARGS...`, logging to `dir/nsxdp.log` (appended across
/// restarts), and waits for `info: ready`.
pub fn start_nsxdp_args(dir: &Path, args: &[&std::ffi::OsStr]) -> Proc {
    start_nsxdp_cores(dir, 1, args)
}

/// Starts `nsxdp serve --cores CORES ARGS...`, logging to `dir/nsxdp.log` (appended across
/// restarts), and waits for `info: ready`.
pub fn start_nsxdp_cores(dir: &Path, cores: usize, args: &[&std::ffi::OsStr]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--cores", &cores.to_string()])
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
            Ok(l) if l.ends_with(" info: ready") => break,
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

/// Record types the tests' own DNS client reads.
pub mod qtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
}

/// A query for `name` (absolute, dotted) and `qtype`, with ID `id`, RD off, no EDNS.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// One record of a response, its rdata in presentation form for the types the tests use
/// (A, CNAME, NS, SOA, MX, TXT; others as hex). Names are lowercased and absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRr {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub data: String,
}

impl DnsRr {
    /// The serial of an SOA record.
    pub fn soa_serial(&self) -> Option<u32> {
        if self.rtype != qtype::SOA {
            return None;
        }
        self.data.split(' ').nth(2)?.parse().ok()
    }
}

/// A response, parsed strictly: every count honoured, no trailing bytes, compression
/// pointers only backwards.
#[derive(Debug, Clone)]
pub struct DnsMsg {
    pub id: u16,
    /// The header's flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE).
    pub flags: u16,
    pub qname: String,
    pub qtype: u16,
    pub answer: Vec<DnsRr>,
    pub authority: Vec<DnsRr>,
    pub additional: Vec<DnsRr>,
}

impl DnsMsg {
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
}

fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(pos).ok_or("name runs past the end")? as usize;
        match len & 0xc0 {
            0 if len == 0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Ok((out, end.unwrap_or(pos + 1)));
            }
            0 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or("label runs past the end")?;
                for &b in label {
                    out.push(b.to_ascii_lowercase() as char);
                }
                out.push('.');
                if out.len() > 255 {
                    return Err("name longer than 255".into());
                }
                pos += 1 + len;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or("pointer runs past the end")? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                if target >= pos {
                    return Err(format!("compression pointer at {pos} to {target} is not backwards"));
                }
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 64 {
                    return Err("too many compression pointers".into());
                }
                pos = target;
            }
            _ => return Err(format!("label type {len:#x}")),
        }
    }
}

fn read_rr(msg: &[u8], pos: usize) -> Result<(DnsRr, usize), String> {
    let (name, mut p) = read_name(msg, pos)?;
    let fixed = msg.get(p..p + 10).ok_or("record header runs past the end")?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    p += 10;
    let rd = msg.get(p..p + rdlen).ok_or("rdata runs past the end")?;
    if class != 1 && rtype != 41 {
        return Err(format!("{name} type {rtype}: class {class}"));
    }
    let data = match rtype {
        qtype::A if rdlen == 4 => format!("{}.{}.{}.{}", rd[0], rd[1], rd[2], rd[3]),
        qtype::A => return Err(format!("{name} A with {rdlen} octets")),
        qtype::CNAME | qtype::NS => {
            let (n, e) = read_name(msg, p)?;
            if e != p + rdlen {
                return Err(format!("{name} type {rtype}: rdata length {rdlen} does not fit its name"));
            }
            n
        }
        qtype::MX => {
            if rdlen < 3 {
                return Err(format!("{name} MX too short"));
            }
            let (n, e) = read_name(msg, p + 2)?;
            if e != p + rdlen {
                return Err(format!("{name} MX: rdata length {rdlen} does not fit its name"));
            }
            format!("{} {n}", u16::from_be_bytes([rd[0], rd[1]]))
        }
        qtype::SOA => {
            let (m, e) = read_name(msg, p)?;
            let (r, e) = read_name(msg, e)?;
            if e + 20 != p + rdlen {
                return Err(format!("{name} SOA: rdata length {rdlen} does not fit"));
            }
            let nums: Vec<String> = (0..5)
                .map(|i| {
                    u32::from_be_bytes([msg[e + 4 * i], msg[e + 4 * i + 1], msg[e + 4 * i + 2], msg[e + 4 * i + 3]])
                })
                .map(|v| v.to_string())
                .collect();
            format!("{m} {r} {}", nums.join(" "))
        }
        qtype::TXT => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < rdlen {
                let l = rd[i] as usize;
                let s = rd.get(i + 1..i + 1 + l).ok_or_else(|| format!("{name} TXT string runs past its rdata"))?;
                parts.push(format!("\"{}\"", String::from_utf8_lossy(s)));
                i += 1 + l;
            }
            parts.join(" ")
        }
        _ => rd.iter().map(|b| format!("{b:02x}")).collect(),
    };
    Ok((DnsRr { name, rtype, ttl, data }, p + rdlen))
}

/// Parses a response (see [`DnsMsg`]).
pub fn parse_dns(msg: &[u8]) -> Result<DnsMsg, String> {
    if msg.len() < 12 {
        return Err(format!("{} octets: shorter than a header", msg.len()));
    }
    let word = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let (id, flags) = (word(0), word(2));
    let counts = [word(4), word(6), word(8), word(10)];
    if counts[0] != 1 {
        return Err(format!("QDCOUNT {}", counts[0]));
    }
    let (qname, mut p) = read_name(msg, 12)?;
    let q = msg.get(p..p + 4).ok_or("question runs past the end")?;
    let qtype = u16::from_be_bytes([q[0], q[1]]);
    p += 4;
    let mut sections = [Vec::new(), Vec::new(), Vec::new()];
    for (s, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            let (rr, e) = read_rr(msg, p)?;
            s.push(rr);
            p = e;
        }
    }
    if p != msg.len() {
        return Err(format!("{} trailing octets", msg.len() - p));
    }
    let [answer, authority, mut additional] = sections;
    additional.retain(|r| r.rtype != 41);
    Ok(DnsMsg { id, flags, qname, qtype, answer, authority, additional })
}

/// The records of an IXFR (kdig over TCP, signed with `key` as kdig's `-y` wants it) from
/// `serial`, in the order they came, as normalised lowercased lines (TSIG left out). None
/// when the transfer failed.
pub fn ixfr_lines(port: u16, zone: &str, serial: u32, key: Option<&str>) -> Option<Vec<String>> {
    let mut cmd = Command::new("kdig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+tcp", "+nocomments", "+nostats", "+time=10"]);
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let o = cmd.arg(format!("IXFR={serial}")).arg(zone).output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || err.contains("ERROR") || text.contains(";; ERROR") {
        return None;
    }
    Some(
        text.lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
            .collect(),
    )
}

/// Percentile `p` (0..=100) of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The hmac-sha256 secret the interop tests share (made up for them, base64).
pub const TEST_SECRET: &str = "a25vdC1pbnRlcm9wLWtleS1mb3ItbnN4ZHAtdGVzdHM=";

/// `TEST_SECRET` as kdig's `-y` wants it, under the key name `xfr`.
pub fn test_key() -> String {
    format!("hmac-sha256:xfr:{TEST_SECRET}")
}

/// An nsxdp configuration serving `zone` from `file` (relative to the configuration) on
/// 127.0.0.1:`port`, data and control socket in `data/`, transfers allowed to 127.0.0.1
/// with the key `xfr` (`TEST_SECRET`, hmac-sha256), NOTIFY to each of `notify`
/// (`ADDR:PORT`, signed with `xfr`) and not to the NS addresses.
pub fn primary_conf(port: u16, zone: &str, file: &str, notify: &[String]) -> String {
    let notify: Vec<String> = notify.iter().map(|t| format!("\"{t} key xfr\"")).collect();
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"secondaries\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
         [[zone]]\nname = \"{zone}\"\nfile = \"{file}\"\nacl = [\"secondaries\"]\n\
         notify = [{}]\nnotify-ns = false\n",
        notify.join(", ")
    )
}

/// A zone of `origin` (absolute, with the final dot) with the given serial and about
/// 200,000 records: 36,000 hosts with A, AAAA, MX and TXT each, and 14,000 delegations of
/// two NS with glue (an A and an AAAA). Returns the text and its record count.
pub fn big_zone_text(origin: &str, serial: u32) -> (String, usize) {
    use std::fmt::Write;
    let mut t = String::with_capacity(12 << 20);
    let _ = write!(
        t,
        "$ORIGIN {origin}\n$TTL 3600\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    );
    let mut n = 3;
    for i in 0u32..36_000 {
        let _ = write!(
            t,
            "h{i} A 198.18.{}.{}\nh{i} AAAA 2001:db8::{:x}\nh{i} MX {} mx{}\nh{i} TXT \"host {i}\" \"of the big zone\"\n",
            i / 250,
            i % 250,
            i,
            i % 50,
            i % 100
        );
        n += 4;
    }
    for j in 0u32..14_000 {
        let _ = write!(
            t,
            "d{j} NS ns1.d{j}\nd{j} NS ns2.d{j}\nns1.d{j} A 198.19.{}.{}\nns2.d{j} AAAA 2001:db8:1::{:x}\n",
            j / 250,
            j % 250,
            j
        );
        n += 4;
    }
    (t, n)
}

/// What kdig reports for a `qtype` query of `zone` to 127.0.0.1:`port` over TCP, with
/// `extra` arguments (a key, a source address): the response's status (`NOERROR`,
/// `REFUSED`, ...; kdig shows a TSIG error such as `BADSIG` in place of the NOTAUTH that
/// carries it), or the error a transfer ended with; `UNVERIFIED` when a signed request got
/// an answer that is not signed or does not verify. Empty when kdig printed none of these.
pub fn kdig_status(port: u16, zone: &str, qtype: &str, extra: &[&str]) -> String {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tcp", "+time=5", "+retry=0"])
        .args(extra)
        .args([qtype, zone])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let word = |s: &str| s.split([',', ';', ' ', '\n', '\'']).find(|w| !w.is_empty()).unwrap_or("").to_string();
    if text.contains("WARNING: reply verification") {
        return "UNVERIFIED".into();
    }
    if let Some(rest) = text.split("server replied with error '").nth(1) {
        return word(rest);
    }
    text.split("status: ").nth(1).map(word).unwrap_or_default()
}

/// Writes `dir/knot.conf` for a knotd listening on 127.0.0.1:`port`, its files under
/// `dir/knot`: the key `xfr` (hmac-sha256, `secret`), an ACL `peers` (127.0.0.1 with that
/// key may NOTIFY and transfer), the `remote:` entries given (YAML list items, indented two
/// spaces) and the `zone:` entries given. Returns the configuration's path.
pub fn knot_conf(dir: &Path, port: u16, secret: &str, remotes: &str, zones: &str) -> PathBuf {
    knot_conf_with(dir, port, secret, remotes, "", zones)
}

/// [`knot_conf`] with `sections` (whole top-level sections such as `policy:`, which the
/// zones may name) placed after the remotes and before the ACL, template and zones.
pub fn knot_conf_with(dir: &Path, port: u16, secret: &str, remotes: &str, sections: &str, zones: &str) -> PathBuf {
    let kd = dir.join("knot");
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(kd.join(sub)).unwrap();
    }
    let remotes = if remotes.is_empty() { String::new() } else { format!("\nremote:\n{remotes}") };
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{k}/run\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n\
             \nlog:\n  - target: stderr\n    any: info\n\
             \ndatabase:\n    storage: \"{k}/db\"\n\
             \nkey:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {secret}\n{remotes}{sections}\
             \nacl:\n  - id: peers\n    address: 127.0.0.1\n    key: xfr\n    action: [notify, transfer]\n\
             \ntemplate:\n  - id: default\n    storage: \"{k}/zones\"\n    zonefile-sync: -1\n\
             \nzone:\n{zones}",
            k = kd.display()
        ),
    )
    .unwrap();
    conf
}

/// Starts knotd with `conf`, logging to `dir/knot.log`.
pub fn start_knotd(dir: &Path, conf: &Path) -> Proc {
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(conf);
    Proc::spawn(cmd, &dir.join("knot.log"))
}

/// `nsxdp ctl --config CONF reload [ZONE]`, which must succeed.
pub fn reload(conf: &Path, zone: Option<&str>) {
    let mut args = vec!["reload"];
    args.extend(zone);
    let (ok, out) = ctl(conf, &args);
    assert!(ok, "nsxdp ctl reload: {out}");
}

/// Writes `dir/nsxdp.toml` for nsxdp on 127.0.0.1:`port` as a TSIG secondary of `zone`
/// from the primary on 127.0.0.1:`primary` (key `xfr` with `secret`; the ACL `peers` lets
/// 127.0.0.1 with that key NOTIFY and transfer); `extra` is appended to the zone's section.
pub fn secondary_conf(dir: &Path, port: u16, zone: &str, primary: u16, secret: &str, extra: &str) -> PathBuf {
    let conf = dir.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n\
             [[acl]]\nname = \"peers\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"notify\", \"transfer\"]\n\
             [[zone]]\nname = \"{zone}\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{primary} key xfr\"]\n\
             acl = [\"peers\"]\nnotify-ns = false\n{extra}"
        ),
    )
    .unwrap();
    conf
}
