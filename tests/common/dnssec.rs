//! Helpers for tests that validate signed answers with a real validator and run signed
//! zones through real peers: a delv trust-anchor file made from a server's KSK, delv's
//! verdict on one query, the sections of a DO=1 answer as kdig shows them, and BIND's named
//! as a TSIG secondary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Proc, TEST_SECRET};

/// The lines of `kdig +short` for `zone`'s DNSKEY RRset at 127.0.0.1:`port`, sorted.
pub fn dnskeys(port: u16, zone: &str) -> Vec<String> {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=2", "+retry=1", zone, "DNSKEY"])
        .output()
        .unwrap();
    let mut keys: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    keys.sort();
    keys
}

/// Writes `path`, a delv `-a` file holding the KSK (DNSKEY flags 257) that the server on
/// 127.0.0.1:`port` serves for `zone` (absolute, with the final dot) as a static key.
/// Panics when the server serves no KSK (or more than one: a KSK rollover is under way,
/// and the caller picks with [`write_static_keys`]).
pub fn write_trust_anchor(port: u16, zone: &str, path: &Path) {
    let ksks: Vec<String> = dnskeys(port, zone).into_iter().filter(|k| k.starts_with("257 ")).collect();
    assert_eq!(ksks.len(), 1, "not one KSK (DNSKEY 257) for {zone} at port {port}: {ksks:?}");
    write_static_keys(path, zone, &ksks);
}

/// Writes `path`, a delv `-a` file with each of `keys` (DNSKEY rdata as [`dnskeys`] gives
/// it) as a static key of `zone`.
pub fn write_static_keys(path: &Path, zone: &str, keys: &[String]) {
    let mut lines = vec!["trust-anchors {".to_string()];
    for key in keys {
        let w: Vec<&str> = key.split_whitespace().collect();
        assert!(w.len() >= 4, "not DNSKEY rdata: {key}");
        lines.push(format!("  {zone} static-key {} {} {} \"{}\";", w[0], w[1], w[2], w[3..].concat()));
    }
    lines.push("};".into());
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// What a validated answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Data, validated ("; fully validated").
    Positive,
    /// NXDOMAIN, its proof validated.
    NxDomain,
    /// NODATA, its proof validated.
    NoData,
}

/// delv's output for `name` `qtype` asked of 127.0.0.1:`port`, with `anchors` as the only
/// trust anchor and `root` as its root (`+root`), every query sent to that server, and
/// `extra` options (`+tcp`). None when delv did not end within 15 s.
pub fn delv(port: u16, anchors: &Path, root: &str, name: &str, qtype: &str, extra: &[&str]) -> Option<String> {
    let mut child = Command::new("delv")
        .args(["@127.0.0.1", "-p", &port.to_string(), "-a"])
        .arg(anchors)
        .arg(format!("+root={root}"))
        .args(extra)
        .args(["+nomultiline", name, qtype])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            return Some(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
        }
        if t0.elapsed() > Duration::from_secs(15) {
            // Our own child, by PID.
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether delv's output `text` is the validated answer `expect` asks for; the reason when
/// it is not. A positive answer must be "fully validated" with no failure; a negative one
/// "negative response, fully validated" with delv's failure reason for that kind
/// (`ncache nxdomain` / `ncache nxrrset`) and no other.
pub fn verdict(text: &str, expect: Expect) -> Result<(), String> {
    let failures: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix(";; resolution failed: ")).map(str::trim).collect();
    let (wanted_line, wanted_failure) = match expect {
        Expect::Positive => ("; fully validated", None),
        Expect::NxDomain => ("; negative response, fully validated", Some("ncache nxdomain")),
        Expect::NoData => ("; negative response, fully validated", Some("ncache nxrrset")),
    };
    let has_line = text.lines().any(|l| l.trim_end() == wanted_line);
    let failures_ok = match wanted_failure {
        None => failures.is_empty(),
        Some(f) => failures == [f],
    };
    if has_line && failures_ok {
        Ok(())
    } else {
        Err(format!("expected {expect:?} ({wanted_line}), delv said:\n{text}"))
    }
}

/// The answer of 127.0.0.1:`port` to `name` `qtype` with DO=1 and RD=0 over UDP, as kdig
/// prints it: the status and the answer and authority sections, each as normalised,
/// lowercased, sorted lines.
pub fn do_sections(port: u16, name: &str, qtype: &str) -> (String, Vec<String>, Vec<String>) {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+dnssec", "+norec", "+time=2", "+retry=1", name, qtype])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let status =
        text.split("status: ").nth(1).and_then(|r| r.split([',', ';', ' ', '\n']).next()).unwrap_or("none").to_string();
    let (mut answer, mut authority) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(";; ") {
            section = rest.trim_end_matches(':');
            continue;
        }
        if line.trim().is_empty() || line.starts_with(';') {
            continue;
        }
        let norm = line.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
        match section {
            "ANSWER SECTION" => answer.push(norm),
            "AUTHORITY SECTION" => authority.push(norm),
            _ => {}
        }
    }
    answer.sort();
    authority.sort();
    (status, answer, authority)
}

/// Starts BIND's named as a secondary of `zone` from the primary on 127.0.0.1:`primary`
/// (TSIG key `xfr` with [`TEST_SECRET`], hmac-sha256), listening on 127.0.0.1:`port` only,
/// its files under `dir/named`, its log (debug level 3, where named says whether a transfer
/// was incremental) in `dir/named.log`. It allows NOTIFY from 127.0.0.1 and transfers with
/// the key, sends no NOTIFY and validates nothing. Returns the process and the log's path.
pub fn start_named_secondary(dir: &Path, port: u16, primary: u16, zone: &str) -> (Proc, PathBuf) {
    let nd = dir.join("named");
    std::fs::create_dir_all(&nd).unwrap();
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
             \x20 listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n\
             \x20 dnssec-validation no;\n  notify no;\n  allow-transfer {{ key xfr; }};\n}};\n\
             controls {{ }};\n\
             key \"xfr\" {{ algorithm hmac-sha256; secret \"{TEST_SECRET}\"; }};\n\
             zone \"{zone}\" {{\n  type secondary;\n  primaries port {primary} {{ 127.0.0.1 key xfr; }};\n\
             \x20 file \"secondary.db\";\n  masterfile-format text;\n  allow-notify {{ 127.0.0.1; }};\n}};\n",
            d = nd.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("named");
    // Foreground, logging to stderr, one worker thread; stays root (no -u).
    cmd.args(["-g", "-d", "3", "-n", "1", "-c"]).arg(&conf);
    let log = dir.join("named.log");
    (Proc::spawn(cmd, &log), log)
}
