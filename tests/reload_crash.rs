//! Crash safety of reloads, through the real binary: 50 runs on one data directory (so the
//! journal grows, and is compacted past its depth limit) in which nsxdp is killed with
//! SIGKILL at a random moment while it reloads a new version of the zone (`nsxdp ctl reload`,
//! or SIGHUP one run in five), then restarted. After each restart the zone served — the SOA
//! serial, the version markers and the whole zone by AXFR, compared with what that version's
//! file held — is the last version announced (a `reloaded` reply, or the log line for
//! SIGHUP) or the one being reloaded, never a mix; the log says when the journal was
//! replayed; `nsxdp ctl status` agrees; and IXFR (kdig, TSIG) from older serials gives a
//! history that, applied to those versions, leads exactly to the zone served.
//!
//! Every other restart hides the zone file, so the server can only serve what it had made
//! durable (its snapshot plus journal): that shows directly whether the kill left the old
//! version or the new one. With the file in place the server compares the file with what it
//! recovered, as after any restart, and the log says which it had recovered.
//!
//! Needs kdig: under `CI=true` a missing one fails the test; otherwise it skips. The seed of
//! the random kill delays is printed; `NSXDP_CRASH_SEED=N` repeats a run.

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{axfr_lines, ctl, dns_query, free_port, have, ixfr_lines, parse_dns, qtype, start_nsxdp};

const ZONE: &str = "crash.test.";
const NAMES: u32 = 1500;
const RUNS: u32 = 50;
/// Journal depth limit: compaction happens a few times over the test's ~100 versions.
const MAX_DEPTH: u32 = 40;
/// UDP queries of `served_version` asked again after a timeout.
static RETRIES: AtomicU32 = AtomicU32::new(0);
const SECRET: &str = "Y3Jhc2gtdGVzdC1rZXktZm9yLW5zeGRwLXJlbG9hZHM=";

fn addr(k: u32) -> String {
    format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)
}

/// Version `k` of the zone (serial `k`): markers at `ver` (TXT, A), `cur` (CNAME to `vK`,
/// which owns TXT and A) and the names h0.. of which those ≡ k (mod 300) carry the
/// version's address.
fn zone_text(k: u32) -> String {
    let mut t = format!(
        "$ORIGIN crash.test.\n$TTL 300\n@ SOA ns hostmaster {k} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n\
         ver TXT \"v={k}\"\nver A {a}\ncur CNAME v{k}\nv{k} TXT \"v={k}\"\nv{k} A {a}\n",
        a = addr(k)
    );
    for i in 0..NAMES {
        t.push_str(&format!("h{i} A {}\n", h_addr(i, k)));
    }
    t
}

fn h_addr(i: u32, k: u32) -> String {
    if i % 300 == k % 300 {
        addr(k)
    } else {
        format!("198.18.{}.{}", i / 250, i % 250)
    }
}

/// Version `k` as kdig prints a transfer (see `common::axfr_lines`): normalised, lowercased.
fn soa_line(k: u32) -> String {
    format!("crash.test. 300 in soa ns.crash.test. hostmaster.crash.test. {k} 3600 600 86400 60")
}

fn expected(k: u32) -> BTreeSet<String> {
    let a = addr(k);
    let mut s: BTreeSet<String> = [
        soa_line(k),
        "crash.test. 300 in ns ns.crash.test.".into(),
        "ns.crash.test. 300 in a 127.0.0.1".into(),
        format!("ver.crash.test. 300 in txt \"v={k}\""),
        format!("ver.crash.test. 300 in a {a}"),
        format!("cur.crash.test. 300 in cname v{k}.crash.test."),
        format!("v{k}.crash.test. 300 in txt \"v={k}\""),
        format!("v{k}.crash.test. 300 in a {a}"),
    ]
    .into_iter()
    .collect();
    for i in 0..NAMES {
        s.insert(format!("h{i}.crash.test. 300 in a {}", h_addr(i, k)));
    }
    s
}

/// A small xorshift generator: the kill delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The version a UDP answer set shows: SOA serial, `ver` TXT and A, and `cur` TXT (CNAME to
/// vK and vK's TXT). Panics unless they all name the same version.
fn served_version(port: u16, dir: &Path) -> u32 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // Up to three tries, as a resolver would: a machine this busy can stall a process for
    // seconds. Each retry is counted and reported.
    let ask = |id: u16, name: &str, t: u16| {
        let mut buf = [0u8; 4096];
        for attempt in 0..3u16 {
            let id = id.wrapping_add(attempt << 8);
            s.send(&dns_query(id, name, t)).unwrap();
            let t0 = Instant::now();
            loop {
                match s.recv(&mut buf) {
                    Ok(n) => {
                        let m = parse_dns(&buf[..n]).unwrap_or_else(|e| panic!("{name} {t}: {e}"));
                        if m.id != id {
                            continue; // a late answer to an earlier try
                        }
                        assert!(m.rcode() == 0 && m.authoritative(), "{name} {t}: {m:?}");
                        return m;
                    }
                    Err(e) if attempt < 2 => {
                        RETRIES.fetch_add(1, Ordering::Relaxed);
                        eprintln!("{name} {t}: no answer after {:?} ({e}); asking again", t0.elapsed());
                        break;
                    }
                    Err(e) => {
                        let log = std::fs::read_to_string(dir.join("nsxdp.log")).unwrap_or_default();
                        let tail: Vec<&str> =
                            log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                        panic!("{name} {t}: no answer to three tries: {e}\nlog:\n{}", tail.join("\n"))
                    }
                }
            }
        }
        unreachable!()
    };
    let serial = ask(1, ZONE, qtype::SOA).answer[0].soa_serial().unwrap();
    let m = ask(2, "ver.crash.test.", qtype::TXT);
    assert_eq!(m.answer[0].data, format!("\"v={serial}\""), "ver TXT beside serial {serial}");
    let m = ask(3, "ver.crash.test.", qtype::A);
    assert_eq!(m.answer[0].data, addr(serial), "ver A beside serial {serial}");
    let m = ask(4, "cur.crash.test.", qtype::TXT);
    let want = [format!("v{serial}.crash.test."), format!("\"v={serial}\"")];
    let got: Vec<&str> = m.answer.iter().map(|r| r.data.as_str()).collect();
    assert_eq!(got, want, "cur TXT beside serial {serial}");
    serial
}

/// Checks an IXFR from `from` (lines in order) against the versions' contents: applying
/// its changes to version `from` must give version `now`, every removed record present and
/// every added one new; a condensed whole zone (AXFR style) must be version `now`. Returns
/// how it came ("incremental, N changes", "whole zone", "up to date").
fn check_ixfr(lines: &[String], from: u32, now: u32) -> String {
    let ctx = || format!("IXFR from {from} at {now}:\n{}", lines.join("\n"));
    assert!(!lines.is_empty(), "{}", ctx());
    assert_eq!(lines[0], soa_line(now), "{}", ctx());
    if lines.len() == 1 {
        assert!(from >= now, "{}", ctx());
        return "up to date".into();
    }
    assert_eq!(lines[lines.len() - 1], soa_line(now), "{}", ctx());
    let is_soa = |l: &str| l.starts_with("crash.test. 300 in soa ");
    if !is_soa(&lines[1]) {
        let got: BTreeSet<String> = lines[..lines.len() - 1].iter().cloned().collect();
        assert_eq!(got, expected(now), "{}", ctx());
        return "whole zone".into();
    }
    let mut zone = expected(from);
    let body = &lines[1..lines.len() - 1];
    let mut i = 0;
    let mut changes = 0;
    let mut serial = from;
    while i < body.len() {
        // SOA(old), removed..., SOA(new), added...
        assert_eq!(body[i], soa_line(serial), "changeset {changes}: {}", ctx());
        assert!(zone.remove(&body[i]));
        i += 1;
        while i < body.len() && !is_soa(&body[i]) {
            assert!(zone.remove(&body[i]), "removes {} which version {serial} lacks: {}", body[i], ctx());
            i += 1;
        }
        assert!(i < body.len(), "{}", ctx());
        let to: u32 = body[i].split(' ').nth(6).and_then(|s| s.parse().ok()).unwrap();
        assert!(to > serial, "{}", ctx());
        zone.insert(body[i].clone());
        i += 1;
        while i < body.len() && !is_soa(&body[i]) {
            assert!(zone.insert(body[i].clone()), "adds {} which version {serial} had: {}", body[i], ctx());
            i += 1;
        }
        assert_eq!(zone, expected(to), "version {to} after changeset {changes}: {}", ctx());
        serial = to;
        changes += 1;
    }
    assert_eq!(serial, now, "{}", ctx());
    format!("incremental, {changes} changes")
}

fn log_from(dir: &Path, offset: usize) -> String {
    let log = std::fs::read_to_string(dir.join("nsxdp.log")).unwrap_or_default();
    log.get(offset..).unwrap_or("").to_string()
}

fn log_len(dir: &Path) -> usize {
    std::fs::metadata(dir.join("nsxdp.log")).map_or(0, |m| m.len() as usize)
}

/// `nsxdp ctl reload` that must succeed and report `from -> to`: the server-reported
/// time in ms, and how long the command took.
fn reload_ok(conf: &Path, from: u32, to: u32) -> (f64, Duration) {
    let t0 = Instant::now();
    let (ok, out) = ctl(conf, &["reload", "crash.test"]);
    let took = t0.elapsed();
    let want = format!("crash.test. reloaded, serial {from} -> {to} (");
    let line = out.lines().find(|l| l.starts_with(&want));
    assert!(ok && line.is_some(), "reload {from} -> {to}: {out}");
    let ms = line.unwrap().rsplit(" in ").next().and_then(|t| t.strip_suffix(" ms")?.parse().ok()).unwrap();
    (ms, took)
}

#[derive(Default, Debug)]
struct Tally {
    /// Restarted at the old version: the kill came before the journal append was durable.
    old: u32,
    /// At the new version from the journal (replayed onto the old snapshot): the kill came
    /// between the journal append and the new snapshot.
    new_replayed: u32,
    /// At the new version from its snapshot: the kill came after the snapshot was renamed
    /// into place.
    new_snapshot: u32,
    /// Of the runs ending at the new version, those whose reload had been announced.
    announced: u32,
    torn_tails: u32,
    compactions: u32,
    sighup: u32,
}

#[test]
fn kill_during_reload_restarts_at_one_version() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let t_start = Instant::now();
    let seed = std::env::var("NSXDP_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("seed {seed} (NSXDP_CRASH_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let zone = d.join("crash.test.zone");
    let hidden = d.join("crash.test.zone.hidden");
    std::fs::write(&zone, zone_text(1)).unwrap();
    let conf = d.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
             [[acl]]\nname = \"xfr\"\naddress = [\"127.0.0.0/8\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             [[zone]]\nname = \"crash.test\"\nfile = \"crash.test.zone\"\nacl = [\"xfr\"]\nnotify-ns = false\n\
             journal-max-depth = {MAX_DEPTH}\n"
        ),
    )
    .unwrap();
    let key = format!("hmac-sha256:xfr:{SECRET}");
    let mut server = start_nsxdp(d, &conf);
    let mut cur = 1;

    // Calibration: how long a reload takes here, from `nsxdp ctl` started to its reply.
    // The kills land from 0 to 1.3 times the median of the last few (so from before the
    // server has the command until after it replied, however busy the machine is).
    let mut round_trips = Vec::new();
    let mut reload_ms = Vec::new();
    for _ in 0..3 {
        std::fs::write(&zone, zone_text(cur + 1)).unwrap();
        let (ms, took) = reload_ok(&conf, cur, cur + 1);
        reload_ms.push(ms);
        round_trips.push(took);
        cur += 1;
    }
    let window = |round_trips: &[Duration]| {
        let mut last: Vec<Duration> = round_trips.iter().rev().take(9).copied().collect();
        last.sort();
        (last[last.len() / 2].as_millis() as u64 * 13 / 10).max(20)
    };
    eprintln!(
        "reload: {reload_ms:?} ms at the server, {round_trips:?} for `nsxdp ctl`; kills 0..{} ms after, to begin with",
        window(&round_trips)
    );

    let mut tally = Tally::default();
    let mut kill_at = Vec::new();
    for run in 0..RUNS {
        // A step or two that completes: the announced version.
        for _ in 0..1 + rng.below(2) {
            std::fs::write(&zone, zone_text(cur + 1)).unwrap();
            let (ms, took) = reload_ok(&conf, cur, cur + 1);
            reload_ms.push(ms);
            round_trips.push(took);
            cur += 1;
        }
        let (old, new) = (cur, cur + 1);
        std::fs::write(&zone, zone_text(new)).unwrap();

        // The reload that gets killed.
        let sighup = run % 5 == 4;
        let delay = Duration::from_millis(rng.below(window(&round_trips) + if sighup { 100 } else { 0 }));
        kill_at.push(delay.as_millis() as u64);
        let offset = log_len(d);
        let ctl_child = if sighup {
            tally.sighup += 1;
            // Our own child, by PID. The manager looks at the flag every 100 ms.
            Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
            None
        } else {
            Some(
                Command::new(env!("CARGO_BIN_EXE_nsxdp"))
                    .args(["ctl", "--config"])
                    .arg(&conf)
                    .args(["reload", "crash.test"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        };
        std::thread::sleep(delay);
        server.kill9();
        let announced_line = format!("crash.test. reloaded, serial {old} -> {new} (");
        let announced = match ctl_child {
            Some(c) => {
                let o = c.wait_with_output().unwrap();
                String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with(&announced_line))
            }
            None => {
                // The log's reader thread takes the server's last lines after it died.
                std::thread::sleep(Duration::from_millis(100));
                log_from(d, offset).contains(&announced_line)
            }
        };

        // Restart, every other time without the zone file.
        let hide = run % 2 == 0;
        if hide {
            std::fs::rename(&zone, &hidden).unwrap();
        }
        let offset = log_len(d);
        server = start_nsxdp(d, &conf);
        let log = log_from(d, offset);
        let served = served_version(port, d);
        let replayed = log.contains(&format!("journal replayed onto the snapshot: serial {old} -> {new} ("));
        if log.contains("torn tail") || log.contains("cut off") {
            tally.torn_tails += 1;
        }
        // What the server had made durable.
        let durable = if hide {
            assert!(
                log.contains(&format!("zone crash.test.: serving serial {served} from the last run")),
                "run {run}: {log}"
            );
            served
        } else {
            assert_eq!(served, new, "run {run}: the zone file holds {new}: {log}");
            if log.contains(&format!("zone file differs from the last run: serial {old} -> {new}")) {
                old
            } else {
                new
            }
        };
        assert!(
            durable == old || durable == new,
            "run {run}: restarted at {durable}, neither the announced {old} nor the reloaded {new}\n{log}"
        );
        if announced {
            tally.announced += 1;
            assert_eq!(durable, new, "run {run}: {new} was announced, the restart came back at {old}\n{log}");
        }
        match (durable == new, replayed) {
            (false, false) => tally.old += 1,
            (false, true) => panic!("run {run}: a replay to {new}, yet {old} served\n{log}"),
            (true, true) => tally.new_replayed += 1,
            (true, false) => tally.new_snapshot += 1,
        }

        // The whole zone is that version's, and its history leads there.
        let axfr: BTreeSet<String> = axfr_lines(port, ZONE, Some(&key)).into_iter().collect();
        assert_eq!(axfr, expected(served), "run {run}: AXFR of version {served}");
        for from in [served - 1, served.saturating_sub(4).max(1), 1] {
            let lines = ixfr_lines(port, ZONE, from, Some(&key)).unwrap_or_else(|| panic!("run {run}: IXFR={from}"));
            check_ixfr(&lines, from, served);
        }
        let (ok, status) = ctl(&conf, &["status", "crash.test"]);
        assert!(ok && status.contains(&format!("crash.test. serial {served} ")), "run {run}: {status}");
        assert_eq!(status.contains("last-error"), hide, "run {run}: {status}");

        // The file back: the reload brings the server to the new version.
        if hide {
            std::fs::rename(&hidden, &zone).unwrap();
            if served == old {
                reload_ms.push(reload_ok(&conf, old, new).0);
            } else {
                let (ok, out) = ctl(&conf, &["reload", "crash.test"]);
                assert!(ok && out.contains(&format!("crash.test. unchanged, serial {new}")), "run {run}: {out}");
            }
        }
        cur = new;
    }
    // One more version, whose snapshot write removes the temporary files of the killed
    // writers; then the history as the last server holds it, from the first version and
    // from one close by.
    std::fs::write(&zone, zone_text(cur + 1)).unwrap();
    reload_ms.push(reload_ok(&conf, cur, cur + 1).0);
    cur += 1;
    let served = served_version(port, d);
    assert_eq!(served, cur);
    let ixfr_first = check_ixfr(&ixfr_lines(port, ZONE, 1, Some(&key)).unwrap(), 1, cur);
    let ixfr_recent = check_ixfr(&ixfr_lines(port, ZONE, cur - 10, Some(&key)).unwrap(), cur - 10, cur);
    let log = std::fs::read_to_string(d.join("nsxdp.log")).unwrap_or_default();
    tally.compactions = log.matches("journal compacted").count() as u32;
    let journal = std::fs::metadata(d.join("data/crash.test.journal")).map_or(0, |m| m.len());
    let leftovers: Vec<String> = std::fs::read_dir(d.join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp."))
        .collect();
    drop(server);

    kill_at.sort();
    reload_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "{RUNS} runs ({} by SIGHUP), versions 1..={cur}: restarted at the old version {}, at the new one {} \
         ({} from the journal replayed onto the old snapshot, {} from the new snapshot; {} of them announced); \
         torn tails cut off {}; journal compactions {}; journal {journal} bytes",
        tally.sighup,
        tally.old,
        tally.new_replayed + tally.new_snapshot,
        tally.new_replayed,
        tally.new_snapshot,
        tally.announced,
        tally.torn_tails,
        tally.compactions,
    );
    eprintln!(
        "kill delays (ms): min {} median {} max {}; reload time at the server: median {:.1} ms, max {:.1} ms; \
         IXFR from 1: {ixfr_first}; from {}: {ixfr_recent}; temporary files left: {leftovers:?}; UDP queries asked again: {}; wall time {:.1} s",
        kill_at[0],
        kill_at[kill_at.len() / 2],
        kill_at[kill_at.len() - 1],
        reload_ms[reload_ms.len() / 2],
        reload_ms[reload_ms.len() - 1],
        cur - 10,
        RETRIES.load(Ordering::Relaxed),
        t_start.elapsed().as_secs_f64()
    );
    // The kills must have hit both sides of the journal append, or the loop tested little.
    assert!(tally.old > 0 && tally.new_replayed + tally.new_snapshot > 0, "{tally:?}");
    assert!(leftovers.is_empty(), "temporary files the killed servers left: {leftovers:?}");
}
