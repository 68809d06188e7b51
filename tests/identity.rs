//! What a server tells about itself, side by side with knotd and NSD configured alike: the
//! CHAOS-class TXT names `version.bind`, `version.server`, `id.server`, `hostname.bind`
//! (RFC 4892), other CHAOS names and types, and the NSID option (RFC 5001) on answers,
//! negative answers and refusals, over UDP and TCP. Each of nsxdp's answers (rcode, flags,
//! answer section, NSID) must be knotd's or NSD's; where the two differ (ANY at
//! `version.bind`: Knot refuses it, NSD answers the TXT) either passes.
//!
//! Then the defaults: without `identity`, `version` and `nsid` in the file, `id.server` is
//! the host name, `version.bind` is refused and no NSID is sent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, have, start_knotd, start_nsxdp, Proc};

const ZONE_TEXT: &str = "$ORIGIN example.\n$TTL 300\n@ SOA ns hm 1 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n";
const IDENTITY: &str = "ns1.example";
const VERSION: &str = "9.9-test";
const NSID: &str = "ns1-nsid";

/// kdig's view of one answer: status, flags, answer records (TTL kept), NSID.
fn look(port: u16, args: &[&str]) -> String {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+retry=1"])
        .args(args)
        .output()
        .expect("kdig runs");
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out = Vec::new();
    let mut in_answer = false;
    for l in text.lines() {
        if let Some(s) = l.split("status: ").nth(1) {
            out.push(format!("status {}", s.split(';').next().unwrap_or("").trim()));
        } else if let Some(f) = l.strip_prefix(";; Flags: ") {
            out.push(format!("flags {}", f.split(';').next().unwrap_or("").trim()));
        } else if l.starts_with(";; NSID:") {
            out.push(l.trim_start_matches(";; ").to_string());
        } else if l.starts_with(";; ANSWER SECTION:") {
            in_answer = true;
        } else if l.starts_with(";;") || l.is_empty() {
            in_answer = false;
        } else if in_answer {
            out.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    out.join(" | ")
}

fn wait_answers(port: u16, what: &str) {
    let t0 = Instant::now();
    while !look(port, &["example.", "SOA"]).contains("status NOERROR") {
        assert!(t0.elapsed() < Duration::from_secs(20), "{what} does not answer on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn knotd(dir: &Path, port: u16) -> Proc {
    let kd = dir.join("knot");
    std::fs::create_dir_all(&kd).unwrap();
    std::fs::write(kd.join("example.zone"), ZONE_TEXT).unwrap();
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{k}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n\
             \x20   identity: \"{IDENTITY}\"\n    version: \"{VERSION}\"\n    nsid: \"{NSID}\"\n\
             \ndatabase:\n    storage: \"{k}\"\n\
             \nzone:\n  - domain: example.\n    file: \"{k}/example.zone\"\n",
            k = kd.display()
        ),
    )
    .unwrap();
    start_knotd(dir, &conf)
}

fn nsd(dir: &Path, port: u16) -> Proc {
    let sd = dir.join("nsd");
    std::fs::create_dir_all(&sd).unwrap();
    std::fs::write(sd.join("example.zone"), ZONE_TEXT).unwrap();
    let conf = dir.join("nsd.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    port: {port}\n    do-ip6: no\n    server-count: 1\n\
             \x20   username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n\
             \x20   pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n\
             \x20   identity: \"{IDENTITY}\"\n    version: \"{VERSION}\"\n    nsid: \"ascii_{NSID}\"\n\
             \nremote-control:\n    control-enable: no\n\
             \nzone:\n    name: example.\n    zonefile: \"example.zone\"\n",
            d = sd.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("nsd");
    cmd.args(["-d", "-c"]).arg(&conf);
    Proc::spawn(cmd, &dir.join("nsd.log"))
}

fn nsxdp_conf(dir: &Path, port: u16, about: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("example.zone"), ZONE_TEXT).unwrap();
    let conf = dir.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"ctl.sock\"\n{about}\n\
             [[zone]]\nname = \"example.\"\nfile = \"example.zone\"\nnotify-ns = false\n"
        ),
    )
    .unwrap();
    conf
}

#[test]
fn chaos_names_and_nsid_as_knot_or_nsd() {
    if !have("kdig", "knot-dnsutils") || !have("knotd", "knot") || !have("nsd", "nsd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kp, np, xp) = (free_port(), free_port(), free_port());
    let (kdir, ndir, xdir) = (dir.path().join("k"), dir.path().join("n"), dir.path().join("x"));
    for d in [&kdir, &ndir, &xdir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let _k = knotd(&kdir, kp);
    let _n = nsd(&ndir, np);
    let about = format!("identity = \"{IDENTITY}\"\nversion = \"{VERSION}\"\nnsid = \"{NSID}\"\n");
    let _x = start_nsxdp(&xdir, &nsxdp_conf(&xdir, xp, &about));
    wait_answers(kp, "knotd");
    wait_answers(np, "nsd");

    let mut cases: Vec<Vec<&str>> = Vec::new();
    for name in [
        "version.bind",
        "VERSION.Bind",
        "version.server",
        "id.server",
        "hostname.bind",
        "authors.bind",
        "bind",
        "example",
    ] {
        for t in ["TXT", "A", "ANY"] {
            cases.push(vec!["-c", "CH", name, t]);
        }
    }
    cases.push(vec!["-c", "CH", "+tcp", "id.server", "TXT"]);
    cases.push(vec!["-c", "CH", "+nsid", "version.bind", "TXT"]);
    cases.push(vec!["-c", "CLASS4", "version.bind", "TXT"]);
    for q in [["example.", "SOA"], ["ns.example.", "A"], ["nx.example.", "A"], ["other.", "A"]] {
        cases.push(vec!["+nsid", q[0], q[1]]);
        cases.push(vec!["+nsid", "+tcp", q[0], q[1]]);
        cases.push(vec!["+nsid", "+bufsize=512", q[0], q[1]]);
        cases.push(vec!["+noedns", q[0], q[1]]);
    }
    let mut either = 0;
    for args in &cases {
        let (x, k, n) = (look(xp, args), look(kp, args), look(np, args));
        assert!(x.starts_with("status "), "{args:?}: no answer from nsxdp: {x}");
        assert!(x == k || x == n, "{args:?}\n  nsxdp: {x}\n  knotd: {k}\n    nsd: {n}");
        either += usize::from(k != n);
    }
    // A run where the peers never differ would not show that "either" is needed.
    eprintln!("{} cases, {either} where knotd and nsd differ", cases.len());
    let nsid = look(xp, &["+nsid", "nx.example.", "A"]);
    assert!(nsid.contains("status NXDOMAIN") && nsid.contains(&format!("\"{NSID}\"")), "{nsid}");
}

#[test]
fn defaults_tell_the_host_name_and_no_version() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _x = start_nsxdp(dir.path(), &nsxdp_conf(dir.path(), port, ""));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let id = look(port, &["-c", "CH", "id.server", "TXT"]);
    assert_eq!(id, format!("status NOERROR | flags qr rd | id.server. 0 CH TXT \"{}\"", host.trim()));
    assert_eq!(look(port, &["-c", "CH", "version.bind", "TXT"]), "status REFUSED | flags qr rd");
    assert!(!look(port, &["+nsid", "example.", "SOA"]).contains("NSID"));
    // Turned off by an empty string.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _x = start_nsxdp(dir.path(), &nsxdp_conf(dir.path(), port, "identity = \"\"\nnsid = \"0x6e7331\"\n"));
    assert_eq!(look(port, &["-c", "CH", "id.server", "TXT"]), "status REFUSED | flags qr rd");
    assert!(look(port, &["+nsid", "example.", "SOA"]).contains("NSID: 6E7331 \"ns1\""));
}
