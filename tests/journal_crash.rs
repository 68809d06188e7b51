//! Crash test of the journal: a child process (this test binary, re-run with an environment
//! variable) appends changesets in a loop, compacting onto a base snapshot when the limits
//! say so, and prints `durable K` after each append returns. The parent kills it with SIGKILL
//! at random moments, 50 times, and after each kill checks a copy of the files: the journal
//! opens (a torn tail is cut), replays onto the base, and ends at version K (the last one
//! reported) or K + 1 (durable, but killed before saying so) — never earlier, and the zone is
//! exactly that version, never a mix. The next child then recovers from the real files.
//!
//! A SIGKILL does not tear a write of a few kilobytes (the page cache keeps what the write
//! call copied), so when the kill left an unreported entry, the parent sometimes tears it
//! itself — cuts the file inside that entry, as a power loss during the append would — and
//! checks that the next child cuts the torn tail and carries on from the version before.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nsxdp::journal::{self, Journal, JournalError, Limits};
use nsxdp::snapshot;
use nsxdp::wire::name::Name;
use nsxdp::wire::rdata::rtype;
use nsxdp::zone::{SrcPos, Zone};

const CHILD_ENV: &str = "NSXDP_JOURNAL_CRASH_CHILD";
const JOURNAL: &str = "crash.test.journal";
const BASE: &str = "crash.test.snap";
const KILLS: usize = 50;
/// Serial of version 0: versions step by 1000 and wrap around after 65.
const START: u32 = 0xFFFF_0000;
const LIMITS: Limits = Limits { max_bytes: 256 << 10, max_depth: 16 };

fn origin() -> Name {
    Name::parse_text(b"crash.test.", None).unwrap()
}

fn serial_of(k: u64) -> u32 {
    START.wrapping_add((k as u32).wrapping_mul(1000))
}

fn version_of(serial: u32) -> u64 {
    (serial.wrapping_sub(START) / 1000) as u64
}

/// Version `k` of the zone: SOA, NS, the 20 address records of each of the last 10
/// versions, and a TXT record of 1 to 3000 octets (in 255-octet strings) that changes with
/// every version. A changeset is a few kilobytes.
fn zone_v(k: u64) -> Zone {
    let p = SrcPos::default();
    let o = origin();
    let name = |s: String| Name::parse_text(s.as_bytes(), Some(&o)).unwrap();
    let mut z = Zone::new(&o);
    let mut soa = b"\x02ns\x05crash\x04test\x00\x02hm\x05crash\x04test\x00".to_vec();
    for x in [serial_of(k), 7200, 900, 1209600, 300] {
        soa.extend_from_slice(&x.to_be_bytes());
    }
    z.insert(&o, rtype::SOA, 3600, &soa, p).unwrap();
    z.insert(&o, rtype::NS, 3600, b"\x02ns\x05crash\x04test\x00", p).unwrap();
    z.insert(&name("ns".into()), rtype::A, 3600, &[192, 0, 2, 53], p).unwrap();
    for v in k.saturating_sub(9)..=k {
        for i in 0..20u8 {
            let addr = [10, (v >> 8) as u8, v as u8, i];
            z.insert(&name(format!("h{i}.v{v}")), rtype::A, 300, &addr, p).unwrap();
        }
    }
    let len = 1 + (k as usize * 7919) % 3000;
    let text: Vec<u8> = (0..len).map(|i| b'a' + ((i as u64 + k) % 26) as u8).collect();
    let mut txt = Vec::new();
    for chunk in text.chunks(255) {
        txt.push(chunk.len() as u8);
        txt.extend_from_slice(chunk);
    }
    z.insert(&name("txt".into()), rtype::TXT, 60, &txt, p).unwrap();
    z
}

/// The base on disk: the snapshot written at the last compaction, else version 0 (the
/// "zone file" the journal was started from).
fn load_base(dir: &Path) -> Zone {
    let path = dir.join(BASE);
    if !path.exists() {
        return zone_v(0);
    }
    let snap = snapshot::Snapshot::open(&path).unwrap_or_else(|e| panic!("base snapshot: {e}"));
    snapshot::to_zone(snap.zone()).unwrap()
}

/// Opens and replays the journal in `dir`: the version it holds, and whether a torn tail
/// was cut.
fn recover(dir: &Path) -> Result<(u64, Zone, Journal, bool), JournalError> {
    let (j, torn) = Journal::open_or_create(&dir.join(JOURNAL), &origin(), serial_of(0), LIMITS)?;
    let r = journal::replay(load_base(dir), &j)?;
    Ok((version_of(r.serial), r.zone, j, torn.is_some()))
}

/// The child: recover, then append versions until killed.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = Path::new(&dir);
    let (mut k, mut zone, mut j, torn) = recover(dir).unwrap_or_else(|e| panic!("child recovery: {e}"));
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {k} torn {torn}").unwrap();
    out.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let next = zone_v(k + 1);
        j.append(&zone.diff(&next)).unwrap_or_else(|e| panic!("append {}: {e}", k + 1));
        k += 1;
        writeln!(out, "durable {k}").unwrap();
        out.flush().unwrap();
        zone = next;
        if j.needs_compaction() {
            let c = journal::compact_onto_base(&mut j, &zone, &dir.join(BASE)).unwrap();
            writeln!(out, "compacted {k} dropped {}", c.dropped).unwrap();
            out.flush().unwrap();
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_during_append_and_compaction() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let check = dir.path().join("check");
    std::fs::create_dir(&check).unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut known = 0u64;
    let mut expect_torn = false;
    let (mut torn_seen, mut beyond, mut compactions, mut appends, mut torn_made) = (0, 0, 0, 0, 0);
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_appender", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("child.err")).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Let it start (exec, recovery) and append for a while.
        let wait = 30 + rng.next() % 120;
        std::thread::sleep(Duration::from_millis(wait));
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.path().join("child.err")).unwrap_or_default();
            panic!("round {round}: child exited by itself ({status}):\n{err}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut reported = None;
        for line in rx.try_iter() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|w| w.parse::<u64>().ok())) {
                (Some("durable"), Some(k)) => {
                    reported = Some(k);
                    appends += 1;
                }
                (Some("start"), Some(k)) => {
                    assert_eq!(k, known, "round {round}: the child recovered another version");
                    let torn = line.ends_with("torn true");
                    assert_eq!(torn, expect_torn, "round {round}: torn tail at the child's start");
                }
                (Some("compacted"), _) => compactions += 1,
                _ => {}
            }
        }
        // Check a copy, so that the next child recovers the real files itself.
        for f in [JOURNAL, BASE] {
            let _ = std::fs::remove_file(check.join(f));
            if dir.path().join(f).exists() {
                std::fs::copy(dir.path().join(f), check.join(f)).unwrap();
            }
        }
        let (k, zone, j, torn) = recover(&check).unwrap_or_else(|e| panic!("round {round}: recovery: {e}"));
        let last_entry = j.entries().last().copied();
        drop(j);
        let last = reported.unwrap_or(known);
        assert!(
            k == last || k == last + 1,
            "round {round}: journal at version {k}, the child last reported {reported:?} (before: {known})"
        );
        assert_eq!(zone.records_canonical(), zone_v(k).records_canonical(), "round {round}: version {k} is a mix");
        beyond += usize::from(k == last + 1);
        torn_seen += usize::from(torn);
        known = k;
        // A tail found torn here was not cut by a child yet: the next one will.
        expect_torn = torn;
        // A torn entry is never a reported version: tear the unreported entry half the time.
        if let (true, Some(e), 0) = (k == last + 1, last_entry, rng.next() % 2) {
            let cut = e.offset + 1 + rng.next() % (e.len - 1);
            let f = std::fs::OpenOptions::new().write(true).open(dir.path().join(JOURNAL)).unwrap();
            f.set_len(cut).unwrap();
            known = last;
            expect_torn = true;
            torn_made += 1;
        }
    }
    eprintln!(
        "{KILLS} kills: {appends} appends reported, last version {known}, {compactions} compactions, \
         {beyond} times one version beyond the last reported, {torn_made} of those torn by the \
         parent, {torn_seen} torn tails found"
    );
    assert!(known > KILLS as u64, "too little progress to test anything ({known} versions)");
    assert!(compactions > 0, "no compaction happened");
}
