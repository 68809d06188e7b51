//! The signed-zone chain of issue #12, end to end: knotd signs (`dnssec-signing: on`,
//! automatic ECDSA keys) → nsxdp, a TSIG secondary of it → knotd and named, TSIG
//! secondaries of nsxdp. Every hop moves by NOTIFY and IXFR.
//!
//! `knot_signer_nsxdp_knotd_named`:
//! 1. The chain starts on loopback; all four serve the first signed serial. The KSK that
//!    knotd made is delv's trust anchor (with the ZSK as the anchor nothing validates: the
//!    checks can fail).
//! 2. delv validates, against nsxdp, the downstream knotd and named (and the signer, with
//!    each new battery, which proves it): a positive answer, the apex DNSKEY, NXDOMAIN,
//!    NODATA, NODATA at an empty non-terminal, a wildcard answer and wildcard NODATA, the
//!    DS of a secure delegation and the proven absence of DS at an insecure one; against
//!    nsxdp also over TCP, once with NSEC and once with NSEC3. delv follows no referral to
//!    a server that is not the child's, so each referral (secure and insecure) is compared
//!    with the signer's instead: the same NS, DS, NSEC/NSEC3 and RRSIG records.
//! 3. Rounds of change on the signer, each followed through the chain and checked as in 2,
//!    with the AXFR of nsxdp and its secondaries compared with the signer's:
//!    1. data: a changed A record and a new name (`knotc zone-set`), re-signed by knotd;
//!    2. signature churn only (`knotc zone-sign`): the changeset nsxdp serves by IXFR holds
//!       nothing but RRSIGs and the SOA (some 2,500 records in 17 messages);
//!    3. a ZSK rollover (`knotc zone-key-rollover zsk`): a new DNSKEY published, everything
//!       re-signed with it, the old one removed (three serials in about two seconds);
//!    4. a KSK rollover: while both KSKs sign the DNSKEY RRset either one alone validates;
//!       once the new one is submitted (`knotc zone-ksk-submitted`) the old one goes and
//!       validates nothing any more;
//!    5. NSEC → NSEC3 (the policy's `nsec3: on` and `knotc reload`): the NSEC chain removed
//!       and an NSEC3 chain with NSEC3PARAM added in one changeset; NXDOMAIN and NODATA
//!       must then be proven with NSEC3;
//!    6. named, stopped for rounds 3 to 5, starts again and catches up from nsxdp's journal
//!       by one IXFR over several changesets; then the NSEC3-signed zone is re-signed.
//!
//!    nsxdp takes every round by IXFR after a NOTIFY (its zone-status counters: one AXFR,
//!    the first; no IXFR fallback) and so do the downstream knotd and named (their logs).
//! 4. nsxdp stops; the signer re-signs and changes a record; nsxdp starts again from its
//!    snapshot and journal and catches up by one IXFR of both changesets.
//!
//! Every wait is bounded (a few seconds; the test takes about 30 s); servers are stopped
//! by PID when dropped. Needs knotd, knotc, kdig, named and delv: under `CI=true` a missing
//! one fails the test; otherwise it skips with one line saying what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dnssec::{
    delv, dnskeys, do_sections, start_named_secondary, verdict, write_static_keys, write_trust_anchor, Expect,
};
use common::{assert_same_zone, axfr_lines, ctl, free_port, have, soa_serial, start_nsxdp, test_key, TEST_SECRET};

const ZONE: &str = "chain.test.";

/// The unsigned zone the signer starts from (see [`zone_text`]): a wildcard, an empty non-terminal (`b.ent`),
/// an insecure delegation (`sub`) and a secure one (`secure`, with a DS).
const ZONE_HEAD: &str = "$ORIGIN chain.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\n\
ns A 127.0.0.1\nwww A 192.0.2.1\nwww AAAA 2001:db8::1\nmail MX 10 www\n*.wild TXT \"wildcard\"\n\
a.b.ent A 192.0.2.7\nsub NS ns.sub\nns.sub A 198.51.100.53\nsecure NS ns.secure\nns.secure A 198.51.100.54\n\
secure DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";

/// [`ZONE_HEAD`] and `HOSTS` more names with an A record each: enough that a re-signing's
/// changeset spans many IXFR messages.
fn zone_text() -> String {
    let mut t = ZONE_HEAD.to_string();
    for i in 0..HOSTS {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

const HOSTS: usize = 600;

/// knotd's signing policy: automatic ECDSA P-256 keys that never roll by themselves, and
/// TTL and delays short enough that a ZSK rollover asked for takes seconds.
fn policy(nsec3: bool) -> String {
    let nsec3 = if nsec3 { "on\n    nsec3-iterations: 0\n    nsec3-salt-length: 8" } else { "off" };
    format!(
        "\npolicy:\n  - id: chain\n    algorithm: ecdsap256sha256\n    ksk-lifetime: 0\n    zsk-lifetime: 0\n\
         \x20   propagation-delay: 0\n    dnskey-ttl: 1\n    zone-max-ttl: 1\n    nsec3: {nsec3}\n"
    )
}

/// The four servers, their ports and directories.
struct Chain {
    signer: u16,
    nsxdp: u16,
    knot: u16,
    named: u16,
    signer_conf: PathBuf,
    nsxdp_conf: PathBuf,
    anchors: PathBuf,
    logs: Vec<PathBuf>,
    /// Whether the downstream named runs (it is stopped for three rounds).
    named_up: std::cell::Cell<bool>,
    /// The AXFRs nsxdp's zone-status must count: 1 (the first transfer), 0 after a restart.
    axfrs: std::cell::Cell<u64>,
}

impl Chain {
    /// nsxdp and those of its secondaries that run.
    fn servers(&self) -> Vec<(&'static str, u16)> {
        let mut v = vec![("nsxdp", self.nsxdp), ("downstream knotd", self.knot)];
        if self.named_up.get() {
            v.push(("downstream named", self.named));
        }
        v
    }

    fn logs_text(&self) -> String {
        let mut text = String::new();
        for l in &self.logs {
            text.push_str(&format!("--- {}:\n{}\n", l.display(), std::fs::read_to_string(l).unwrap_or_default()));
        }
        text
    }

    fn wait_serial(&self, port: u16, want: u32, limit: Duration, what: &str) -> Duration {
        common::wait_serial(port, ZONE, want, limit, what, &self.logs)
    }

    /// Waits up to `limit` until the signer serves a serial other than `old`; returns it.
    fn signer_serial_after(&self, old: u32, limit: Duration, what: &str) -> u32 {
        let t0 = Instant::now();
        loop {
            match soa_serial(self.signer, ZONE) {
                Some(s) if s != old => return s,
                _ if t0.elapsed() > limit => panic!("{what}: the signer still serves {old}\n{}", self.logs_text()),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Waits up to `limit` until the signer's serial has stood still for 1.5 s; returns it.
    fn signer_settled(&self, limit: Duration, what: &str) -> u32 {
        let t0 = Instant::now();
        let (mut last, mut since) = (soa_serial(self.signer, ZONE), Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = soa_serial(self.signer, ZONE);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if let Some(s) = now.filter(|_| since.elapsed() >= Duration::from_millis(1500)) {
                return s;
            }
            assert!(t0.elapsed() < limit, "{what}: the signer's serial does not settle\n{}", self.logs_text());
        }
    }

    /// `knotc ARGS` on the signer: whether it succeeded.
    fn knotc_ok(&self, args: &[&str]) -> bool {
        let o = Command::new("knotc").arg("-c").arg(&self.signer_conf).args(args).output().unwrap();
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("error")
    }

    fn knotc(&self, args: &[&str]) {
        let o = Command::new("knotc").arg("-c").arg(&self.signer_conf).args(args).output().unwrap();
        assert!(
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("error"),
            "knotc {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// nsxdp's zone-status counter `name`.
    fn counter(&self, name: &str) -> u64 {
        let (ok, status) = ctl(&self.nsxdp_conf, &["zone-status", "chain.test"]);
        assert!(ok, "{status}");
        status
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {name} in {status}"))
    }
}

/// One delv query and what it must give; `contains`: text the answer must hold (the
/// record's data, or the kind of denial proof).
struct Check {
    name: &'static str,
    qtype: &'static str,
    expect: Expect,
    contains: Option<String>,
}

fn check(name: &'static str, qtype: &'static str, expect: Expect, contains: Option<&str>) -> Check {
    Check { name, qtype, expect, contains: contains.map(str::to_string) }
}

/// The battery for a zone whose `www` A is `www`, with NSEC3 or NSEC denial, and
/// `new1.chain.test` present or not.
fn battery(www: &str, nsec3: bool, new1: bool) -> Vec<Check> {
    let denial = if nsec3 { "\tNSEC3\t" } else { "\tNSEC\t" };
    let mut v = vec![
        check("www.chain.test", "A", Expect::Positive, Some(www)),
        check("chain.test", "DNSKEY", Expect::Positive, Some("DNSKEY\t257 3 13")),
        check("nx.chain.test", "A", Expect::NxDomain, Some(denial)),
        check("www.chain.test", "TXT", Expect::NoData, Some(denial)),
        check("b.ent.chain.test", "A", Expect::NoData, None),
        check("x.wild.chain.test", "TXT", Expect::Positive, Some("\"wildcard\"")),
        check("x.wild.chain.test", "A", Expect::NoData, None),
        check("secure.chain.test", "DS", Expect::Positive, Some("12345 13 2")),
        check("sub.chain.test", "DS", Expect::NoData, None),
    ];
    if new1 {
        v.push(check("new1.chain.test", "A", Expect::Positive, Some("192.0.2.101")));
    } else {
        v.push(check("new1.chain.test", "A", Expect::NxDomain, None));
    }
    v
}

/// delv with its `-a`/`+root` and delv's default output puts the record's fields apart
/// with tabs after the owner; `contains` is looked for in that form (the proof lines are
/// comments: "; NAME NSEC3 ..." with spaces, so both are tried).
fn holds(text: &str, needle: &str) -> bool {
    text.contains(needle) || text.contains(&needle.replace('\t', " "))
}

/// Runs the battery against every server of `servers`, four delv at a time; panics with
/// every failure.
/// `extra`: delv's options (`+tcp`).
fn validate(servers: &[(&str, u16)], anchors: &Path, checks: &[Check], extra: &[&str], round: &str) {
    let jobs: Vec<(&str, u16, &Check)> =
        servers.iter().flat_map(|&(s, p)| checks.iter().map(move |c| (s, p, c))).collect();
    let mut failures = Vec::new();
    for group in jobs.chunks(4) {
        let results: Vec<Option<String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = group
                .iter()
                .map(|&(_, port, c)| sc.spawn(move || delv(port, anchors, ZONE, c.name, c.qtype, extra)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (&(server, _, c), text) in group.iter().zip(results) {
            let what = format!("{round}: {server}: delv {} {}", c.name, c.qtype);
            let Some(text) = text else {
                failures.push(format!("{what}: delv timed out"));
                continue;
            };
            if let Err(e) = verdict(&text, c.expect) {
                failures.push(format!("{what}: {e}"));
            } else if let Some(want) = &c.contains {
                if !holds(&text, want) {
                    failures.push(format!("{what}: validated, but without {want:?}:\n{text}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} validations failed:\n{}", failures.len(), jobs.len(), failures.join("\n"));
}

/// The referrals (secure: NS, DS and its RRSIG; insecure: NS and the signed proof that
/// there is no DS) that each of `servers` gives, compared with the signer's own.
fn compare_referrals(chain: &Chain, servers: &[(&str, u16)], nsec3: bool, round: &str) {
    for (name, proof) in
        [("host.secure.chain.test", "ds"), ("host.sub.chain.test", if nsec3 { "nsec3" } else { "nsec" })]
    {
        let (status, answer, authority) = do_sections(chain.signer, name, "A");
        assert_eq!(status, "NOERROR", "{round}: the signer's referral for {name}");
        assert!(answer.is_empty(), "{round}: the signer answered {name}: {answer:?}");
        assert!(
            authority.iter().any(|l| l.split(' ').nth(3) == Some(proof)),
            "{round}: the signer's referral for {name} has no {proof}: {authority:?}"
        );
        for &(server, port) in servers {
            let got = do_sections(port, name, "A");
            assert_eq!(
                got,
                (status.clone(), answer.clone(), authority.clone()),
                "{round}: {server}'s referral for {name} differs from the signer's"
            );
        }
    }
}

/// Every downstream server transfers the signer's zone, record for record.
fn compare_zones(chain: &Chain, round: &str) -> usize {
    let key = &test_key();
    let mut servers = vec![("signer knotd", chain.signer)];
    servers.extend(chain.servers());
    let zones: Vec<Vec<String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = servers.iter().map(|&(_, port)| sc.spawn(move || axfr_lines(port, ZONE, Some(key)))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let signer = &zones[0];
    assert!(signer.len() > HOSTS, "{round}: the signer sent {} records", signer.len());
    for ((server, _), got) in servers.iter().zip(&zones).skip(1) {
        assert_same_zone(signer, got, "signer knotd", &format!("{round}: {server}"));
    }
    signer.len()
}

/// A round: waits for `serial` to reach nsxdp and then the downstream servers, checks that
/// nsxdp took it by IXFR (`ixfr_before`: its IXFR count before the round; None for the
/// start, which must be nsxdp's one AXFR), then compares the zones and validates. Returns
/// nsxdp's IXFR count.
fn follow(chain: &Chain, serial: u32, ixfr_before: Option<u64>, checks: &[Check], nsec3: bool, round: &str) -> u64 {
    let took = chain.wait_serial(chain.nsxdp, serial, Duration::from_secs(5), &format!("{round}: nsxdp"));
    let t1 = Instant::now();
    for (server, port) in chain.servers().into_iter().skip(1) {
        chain.wait_serial(port, serial, Duration::from_secs(5), &format!("{round}: {server}"));
    }
    let downstream = t1.elapsed();
    let ixfr = chain.counter("ixfr");
    match ixfr_before {
        Some(n) => assert!(ixfr > n, "{round}: nsxdp's ixfr counter stayed at {ixfr}\n{}", chain.logs_text()),
        None => assert_eq!(ixfr, 0, "{round}: nsxdp's first transfer"),
    }
    assert_eq!(chain.counter("axfr"), chain.axfrs.get(), "{round}: nsxdp made an AXFR\n{}", chain.logs_text());
    assert_eq!(chain.counter("ixfr-fallbacks"), 0, "{round}: nsxdp fell back to AXFR\n{}", chain.logs_text());
    let records = compare_zones(chain, round);
    let t2 = Instant::now();
    let servers = chain.servers();
    validate(&servers, &chain.anchors, checks, &[], round);
    compare_referrals(chain, &chain.servers(), nsec3, round);
    eprintln!(
        "signer chain: {round}: serial {serial} at nsxdp {took:?} after the signer had it, downstream {downstream:?} later; \
         {records} records alike; {} validations and 2 referrals checked in {:?}",
        checks.len() * servers.len(),
        t2.elapsed()
    );
    ixfr
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn knot_signer_nsxdp_knotd_named() {
    let tools = [
        ("knotd", "knot"),
        ("knotc", "knot"),
        ("kdig", "knot-dnsutils"),
        ("named", "bind9"),
        ("delv", "bind9-dnsutils"),
    ];
    if !tools.iter().all(|(t, p)| have(t, p)) {
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (gd, nd, kd, bd) =
        (dir.path().join("signer"), dir.path().join("nsxdp"), dir.path().join("knot"), dir.path().join("named"));
    for d in [&gd, &nd, &kd, &bd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (gp, np, kp, bp) = (free_port(), free_port(), free_port(), free_port());

    // The signer.
    std::fs::create_dir_all(gd.join("knot/zones")).unwrap();
    std::fs::write(gd.join("knot/zones/chain.test.zone"), zone_text()).unwrap();
    let remote = format!("  - id: nsxdp\n    address: 127.0.0.1@{np}\n    key: xfr\n");
    let signer_zone = "  - domain: chain.test\n    file: chain.test.zone\n    dnssec-signing: on\n    dnssec-policy: chain\n\
                       \x20   zonefile-load: difference-no-serial\n    journal-content: all\n    notify: nsxdp\n    acl: peers\n";
    let signer_conf = common::knot_conf_with(&gd, gp, TEST_SECRET, &remote, &policy(false), signer_zone);
    let _signer = common::start_knotd(&gd, &signer_conf);
    let nsxdp_conf = common::secondary_conf(
        &nd,
        np,
        "chain.test",
        gp,
        TEST_SECRET,
        &format!("notify = [\"127.0.0.1:{kp} key xfr\", \"127.0.0.1:{bp} key xfr\"]\n"),
    );
    let chain = Chain {
        signer: gp,
        nsxdp: np,
        knot: kp,
        named: bp,
        signer_conf,
        nsxdp_conf,
        anchors: dir.path().join("anchors.conf"),
        logs: vec![gd.join("knot.log"), nd.join("nsxdp.log"), kd.join("knot.log"), bd.join("named.log")],
        named_up: std::cell::Cell::new(true),
        axfrs: std::cell::Cell::new(1),
    };
    let t_signer = Instant::now();
    let mut serial = loop {
        match soa_serial(gp, ZONE) {
            Some(s) => break s,
            None if t_signer.elapsed() > Duration::from_secs(10) => {
                panic!("the signer serves no SOA\n{}", chain.logs_text())
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    // The KSK's DS is "in the parent" (there is none): knotd may roll it later, and stops
    // publishing CDS and CDNSKEY (a new serial).
    chain.knotc(&["zone-ksk-submitted", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "the KSK submitted");
    write_trust_anchor(gp, ZONE, &chain.anchors);

    // nsxdp, then its secondaries.
    let ns = start_nsxdp(&nd, &chain.nsxdp_conf);
    let _knot = common::start_knotd(
        &kd,
        &common::knot_conf(
            &kd,
            kp,
            TEST_SECRET,
            &remote,
            "  - domain: chain.test\n    master: nsxdp\n    acl: peers\n    zonefile-sync: -1\n",
        ),
    );
    let (named, named_log) = start_named_secondary(&bd, bp, np, "chain.test");
    for (what, port) in chain.servers() {
        chain.wait_serial(port, serial, Duration::from_secs(10), &format!("{what}: the first signed serial"));
    }
    eprintln!("signer chain: serial {serial} served by all four after {:?}", t0.elapsed());
    // The signer itself passes each battery (which proves the battery) before nsxdp and
    // its secondaries are held to it.
    let first = battery("192.0.2.1", false, false);
    validate(&[("signer knotd", gp)], &chain.anchors, &first, &[], "start");
    let mut ixfr = follow(&chain, serial, None, &first, false, "start");

    // The validations can fail: with the ZSK as the only trust anchor (knotd signs the
    // DNSKEY RRset with the KSK alone) nothing validates.
    let zsk_anchor = dir.path().join("zsk-anchor.conf");
    let zsk: Vec<String> = dnskeys(gp, ZONE).into_iter().filter(|k| k.starts_with("256 ")).collect();
    write_static_keys(&zsk_anchor, ZONE, &zsk);
    for (server, port) in chain.servers() {
        let text = delv(port, &zsk_anchor, ZONE, "www.chain.test", "A", &[]).expect("delv ended");
        assert!(verdict(&text, Expect::Positive).is_err(), "{server}: validated with the ZSK as anchor:\n{text}");
    }

    // Round 1: data. knotd re-signs what changed (www's A, the new name and the NSEC chain).
    chain.knotc(&["zone-begin", "chain.test"]);
    chain.knotc(&["zone-unset", "chain.test", "www", "A"]);
    chain.knotc(&["zone-set", "chain.test", "www", "300", "A", "192.0.2.2"]);
    chain.knotc(&["zone-set", "chain.test", "new1", "300", "A", "192.0.2.101"]);
    chain.knotc(&["zone-commit", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "round 1");
    let nsec = battery("192.0.2.2", false, true);
    validate(&[("signer knotd", gp)], &chain.anchors, &nsec, &[], "round 1");
    ixfr = follow(&chain, serial, Some(ixfr), &nsec, false, "round 1 (data)");
    validate(&[("nsxdp", np)], &chain.anchors, &nsec, &["+tcp"], "round 1, over TCP");

    // Round 2: signature churn only. The changeset nsxdp took (and serves onward) holds
    // nothing but RRSIGs and the SOA.
    let before = serial;
    let keys = dnskeys(gp, ZONE);
    chain.knotc(&["zone-sign", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "round 2");
    ixfr = follow(&chain, serial, Some(ixfr), &nsec, false, "round 2 (re-signed)");
    assert_eq!(dnskeys(gp, ZONE), keys, "round 2 changed the keys");
    let changes = common::ixfr_lines(np, ZONE, before, Some(&test_key())).expect("nsxdp's IXFR of round 2");
    let types: Vec<&str> = changes.iter().filter_map(|l| l.split(' ').nth(3)).collect();
    let rrsigs = types.iter().filter(|t| **t == "rrsig").count();
    assert!(
        types.iter().all(|t| *t == "rrsig" || *t == "soa") && rrsigs >= 2 * HOSTS,
        "round 2's changeset is not signatures only ({rrsigs} RRSIG): {changes:?}"
    );
    // It came from the signer in several messages.
    let nlog = log_of(&nd.join("nsxdp.log"));
    let took = nlog.lines().find(|l| l.contains(&format!("serial {before} -> {serial} by IXFR"))).unwrap_or_default();
    let messages: u32 = took
        .split(" messages,")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(messages >= 2, "round 2's IXFR in one message or not found: {took:?}\n{nlog}");
    eprintln!("signer chain: round 2: {rrsigs} RRSIG lines (removed and added) in nsxdp's IXFR out; in: {took}");

    // Rounds 3 to 5 without named: it catches up on them in round 6, by one IXFR that
    // spans several of nsxdp's journalled changesets.
    let named_behind = serial;
    let named_before = log_of(&named_log);
    drop(named);
    chain.named_up.set(false);

    // Round 3: a ZSK rollover, through as many serials as knotd takes.
    let old_zsk: Vec<&String> = keys.iter().filter(|k| k.starts_with("256 ")).collect();
    assert_eq!(old_zsk.len(), 1, "{keys:?}");
    chain.knotc(&["zone-key-rollover", "chain.test", "zsk"]);
    let t_roll = Instant::now();
    let new_keys = loop {
        let k = dnskeys(gp, ZONE);
        let zsks: Vec<&String> = k.iter().filter(|l| l.starts_with("256 ")).collect();
        if zsks.len() == 1 && zsks[0] != old_zsk[0] {
            break k;
        }
        assert!(
            t_roll.elapsed() < Duration::from_secs(10),
            "the ZSK rollover did not end: {k:?}\n{}",
            chain.logs_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    serial = soa_serial(gp, ZONE).unwrap();
    eprintln!("signer chain: round 3: the signer rolled its ZSK in {:?}, serial {serial}", t_roll.elapsed());
    ixfr = follow(&chain, serial, Some(ixfr), &nsec, false, "round 3 (ZSK rollover)");
    assert_eq!(dnskeys(np, ZONE), new_keys, "nsxdp's DNSKEY RRset after the ZSK rollover");

    // Round 4: a KSK rollover. First both KSKs sign the DNSKEY RRset, and either alone is
    // a trust anchor that validates; once the new one is "submitted" (there is no parent
    // here) the old one goes, and validates nothing any more.
    let old_ksk: Vec<String> = new_keys.iter().filter(|k| k.starts_with("257 ")).cloned().collect();
    chain.knotc(&["zone-key-rollover", "chain.test", "ksk"]);
    let t_roll = Instant::now();
    let both = loop {
        let k = dnskeys(gp, ZONE);
        let (_, answer, _) = do_sections(gp, ZONE, "DNSKEY");
        let sigs = answer.iter().filter(|l| l.contains(" rrsig dnskey ")).count();
        if k.iter().filter(|l| l.starts_with("257 ")).count() == 2 && sigs == 2 {
            break k;
        }
        assert!(t_roll.elapsed() < Duration::from_secs(10), "no second KSK: {k:?}\n{}", chain.logs_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    // (knotd re-signs once more when the new KSK becomes ready, then waits for it to be
    // submitted: the serial stands still.)
    serial = chain.signer_settled(Duration::from_secs(10), "round 4 (both KSKs)");
    ixfr = follow(&chain, serial, Some(ixfr), &nsec, false, "round 4 (KSK rollover, both KSKs)");
    let new_ksk: Vec<String> = both.iter().filter(|k| k.starts_with("257 ") && !old_ksk.contains(k)).cloned().collect();
    let new_anchor = dir.path().join("new-ksk.conf");
    write_static_keys(&new_anchor, ZONE, &new_ksk);
    validate(&chain.servers(), &new_anchor, &nsec, &[], "round 4 (KSK rollover, the new KSK as anchor)");
    while !chain.knotc_ok(&["zone-ksk-submitted", "chain.test"]) {
        assert!(t_roll.elapsed() < Duration::from_secs(15), "the new KSK never became ready\n{}", chain.logs_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let ksks: Vec<String> = dnskeys(gp, ZONE).into_iter().filter(|k| k.starts_with("257 ")).collect();
        if ksks == new_ksk {
            break;
        }
        assert!(t_roll.elapsed() < Duration::from_secs(15), "the old KSK stays: {ksks:?}\n{}", chain.logs_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    serial = soa_serial(gp, ZONE).unwrap();
    eprintln!("signer chain: round 4: the signer rolled its KSK in {:?}, serial {serial}", t_roll.elapsed());
    let old_anchor = dir.path().join("old-ksk.conf");
    std::fs::copy(&chain.anchors, &old_anchor).unwrap();
    write_trust_anchor(gp, ZONE, &chain.anchors);
    ixfr = follow(&chain, serial, Some(ixfr), &nsec, false, "round 4 (KSK rollover, done)");
    for (server, port) in chain.servers() {
        let text = delv(port, &old_anchor, ZONE, "www.chain.test", "A", &[]).expect("delv ended");
        assert!(verdict(&text, Expect::Positive).is_err(), "{server}: validated with the old KSK:\n{text}");
    }

    // Round 5: NSEC -> NSEC3 by a policy change and a configuration reload.
    let conf_text = std::fs::read_to_string(&chain.signer_conf).unwrap();
    std::fs::write(&chain.signer_conf, conf_text.replace(&policy(false), &policy(true))).unwrap();
    chain.knotc(&["reload"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "round 5");
    let nsec3 = battery("192.0.2.2", true, true);
    validate(&[("signer knotd", gp)], &chain.anchors, &nsec3, &[], "round 5");
    ixfr = follow(&chain, serial, Some(ixfr), &nsec3, true, "round 5 (NSEC -> NSEC3)");

    // Round 6: named is back and asks nsxdp for the changes since round 2 (several
    // journalled changesets in one IXFR); then signature churn over the NSEC3 chain.
    let (_named, _) = start_named_secondary(&bd, bp, np, "chain.test");
    chain.named_up.set(true);
    // named checks its primary when it starts.
    chain.wait_serial(bp, serial, Duration::from_secs(10), "named, restarted, catching up");
    let caught_up = log_of(&named_log);
    assert!(
        caught_up.contains(&format!("serial {named_behind}")) && caught_up.contains("got incremental response"),
        "named did not catch up from serial {named_behind} by IXFR:\n{caught_up}"
    );
    let key = test_key();
    assert_same_zone(&axfr_lines(gp, ZONE, Some(&key)), &axfr_lines(bp, ZONE, Some(&key)), "signer", "named caught up");
    chain.knotc(&["zone-sign", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "round 6");
    ixfr = follow(&chain, serial, Some(ixfr), &nsec3, true, "round 6 (named caught up; NSEC3 re-signed)");
    let notifies = chain.counter("notifies");
    assert!(notifies >= 8, "nsxdp took {notifies} NOTIFY from the signer for {ixfr} changes\n{}", chain.logs_text());

    // nsxdp stops; the signer re-signs and changes a record; nsxdp, started again, serves
    // its last serial from its snapshot and journal, then catches up by one IXFR of two
    // changesets.
    drop(ns);
    let stopped_at = serial;
    chain.knotc(&["zone-sign", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "re-signed while nsxdp is down");
    chain.knotc(&["zone-begin", "chain.test"]);
    chain.knotc(&["zone-set", "chain.test", "new2", "300", "A", "192.0.2.102"]);
    chain.knotc(&["zone-commit", "chain.test"]);
    serial = chain.signer_serial_after(serial, Duration::from_secs(5), "changed while nsxdp is down");
    let _ns = start_nsxdp(&nd, &chain.nsxdp_conf);
    chain.axfrs.set(0);
    let first = soa_serial(np, ZONE);
    assert!(first == Some(stopped_at) || first == Some(serial), "nsxdp after a restart: {first:?}");
    let mut last = battery("192.0.2.2", true, true);
    last.push(check("new2.chain.test", "A", Expect::Positive, Some("192.0.2.102")));
    validate(&[("signer knotd", gp)], &chain.anchors, &last, &[], "restart");
    let after_restart = follow(&chain, serial, Some(0), &last, true, "restart (two changesets missed)");
    validate(&[("nsxdp", np)], &chain.anchors, &last, &["+tcp"], "restart, over TCP");
    let nlog = log_of(&nd.join("nsxdp.log"));
    assert!(nlog.contains(&format!("serial {stopped_at} -> {serial} by IXFR")), "nsxdp's log:\n{nlog}");

    // Every hop was incremental after the first transfer.
    let by_ixfr = nlog.lines().filter(|l| l.contains(" by IXFR from ")).count() as u64;
    assert_eq!(by_ixfr, ixfr + after_restart, "nsxdp's log and counters disagree:\n{nlog}");
    assert_eq!(nlog.matches(" by AXFR from ").count(), 1, "nsxdp's log:\n{nlog}");
    let klog = log_of(&kd.join("knot.log"));
    assert!(klog.contains("IXFR, incoming") && !klog.contains("fallback to AXFR"), "the downstream knotd:\n{klog}");
    let blog = named_before + &log_of(&named_log);
    assert_eq!(blog.matches("got nonincremental response").count(), 1, "named made more than one AXFR:\n{blog}");
    assert!(blog.matches("got incremental response").count() >= 5, "named's IXFRs:\n{blog}");
    eprintln!("signer chain: {} IXFR into nsxdp after its first AXFR; {:?} in all", ixfr + after_restart, t0.elapsed());
}
