//! Zone transfers over TLS (XoT, RFC 9103), both ways, with certificates made at test time
//! (rcgen: a CA and a server certificate for 127.0.0.1 and `primary.test`).
//!
//! - nsxdp primary → nsxdp secondary over TLS, the primary's certificate checked against a
//!   CA file (for its address, or for `tls-hostname`), by its pinned SPKI, or not at all
//!   (opportunistic); a wrong CA, a wrong pin and a wrong name fail the transfer and the
//!   zone is not served. The secondary's refresh asks over TLS (SOA and
//!   IXFR: its primary has no UDP on the TLS port).
//! - A transfer request over plain TCP to a zone whose ACL says `transport = "tls"` is
//!   REFUSED; `kdig +tls` transfers it.
//! - BIND's named 9.18 as XoT secondary of nsxdp (which shows that named asks its SOA
//!   query over TLS too: nsxdp sees no UDP query), and as XoT primary of nsxdp.
//! - A client that stalls the handshake, and one that asks for a transfer and reads
//!   nothing, are closed within the TCP limits (and counted).
//!
//! Needs kdig (and named for its tests): under `CI=true` a missing one fails the test;
//! otherwise it skips.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{assert_same_zone, axfr_lines, ctl, free_port, have, start_nsxdp, test_key, Proc, TEST_SECRET};
use sha2::Digest;

/// A CA and a server certificate it signed (for 127.0.0.1 and `primary.test`), as PEM
/// files, and the server key's SPKI pin (base64 of its SHA-256).
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    pin: String,
}

fn pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["primary.test".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(DnType::CommonName, "primary.test");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let p = Pki { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem"), pin: spki_pin(&key) };
    std::fs::write(&p.ca, ca.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

fn spki_pin(key: &rcgen::KeyPair) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(key.public_key_der()))
}

fn zone_text(origin: &str, serial: u32, hosts: usize) -> String {
    let mut t = format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    );
    for i in 0..hosts {
        t.push_str(&format!("h{i} A 10.{}.{}.{}\nh{i} TXT \"serial {serial}\"\n", i >> 16, (i >> 8) & 255, i & 255));
    }
    t
}

const KEY: &str = "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\n";

/// nsxdp as a primary of `zones` (files `ZONE.zone` in `dir`, serial 1), on 127.0.0.1:`port`
/// and over TLS on 127.0.0.1:`tls`; transfers only over TLS with the key `xfr`. `server`
/// is added to `[server]`.
fn primary(dir: &Path, port: u16, tls: u16, pki: &Pki, zones: &[&str], server: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut conf = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ntls-listen = [\"127.0.0.1:{tls}\"]\n\
         tls-certificate = \"{}\"\ntls-key = \"{}\"\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n{server}\
         {KEY}secret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"xot\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\ntransport = \"tls\"\n",
        pki.cert.display(),
        pki.key.display()
    );
    for z in zones {
        std::fs::write(dir.join(format!("{z}.zone")), zone_text(z, 1, 500)).unwrap();
        conf.push_str(&format!("[[zone]]\nname = \"{z}\"\nfile = \"{z}.zone\"\nacl = [\"xot\"]\nnotify-ns = false\n"));
    }
    let path = dir.join("nsxdp.toml");
    std::fs::write(&path, conf).unwrap();
    path
}

/// nsxdp as a secondary on 127.0.0.1:`port` of each zone from the primary over TLS on
/// 127.0.0.1:`tls`, with that zone's TLS settings (TOML lines); transfers out allowed to
/// 127.0.0.1 with the key (over TCP, for comparing).
fn secondary(dir: &Path, port: u16, tls: u16, zones: &[(&str, String)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut conf = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         {KEY}secret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"peers\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n"
    );
    for (z, settings) in zones {
        conf.push_str(&format!(
            "[[zone]]\nname = \"{z}\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{tls} key xfr tls\"]\n\
             acl = [\"peers\"]\nnotify-ns = false\ntransfer-timeout = 3\nretry-min = 1\nretry-max = 2\n{settings}\n"
        ));
    }
    let path = dir.join("nsxdp.toml");
    std::fs::write(&path, conf).unwrap();
    path
}

fn logs(dirs: &[&Path]) -> Vec<PathBuf> {
    dirs.iter().flat_map(|d| [d.join("nsxdp.log"), d.join("named.log")]).collect()
}

fn zone_status(conf: &Path, zone: &str) -> String {
    let (ok, out) = ctl(conf, &["zone-status", zone]);
    assert!(ok, "zone-status {zone}: {out}");
    out
}

/// A counter of `ctl stats` (`nsxdp_tcp_connections_total{event="EVENT"}`).
fn tcp_event(conf: &Path, event: &str) -> u64 {
    let (ok, out) = ctl(conf, &["stats"]);
    assert!(ok, "{out}");
    let want = format!("nsxdp_tcp_connections_total{{event=\"{event}\"}} ");
    out.lines().find_map(|l| l.strip_prefix(&want)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The records of an AXFR over TLS by kdig (`tls` the kdig options that say how to check
/// the certificate), as `axfr_lines` gives them; empty when it failed.
fn kdig_tls_axfr(port: u16, zone: &str, tls: &[String]) -> (Vec<String>, String) {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tls", "+nocomments", "+nostats", "+time=10", "+retry=0"])
        .args(tls)
        .args(["-y", &test_key(), "AXFR", zone])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    if !o.status.success() || err.contains("ERROR") || text.contains(";; ERROR") || text.contains("WARNING") {
        return (Vec::new(), format!("{text}{err}"));
    }
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect();
    lines.sort();
    lines.dedup();
    (lines, format!("{text}{err}"))
}

/// The SOA serial nsxdp (or named) serves for `zone` on `port`; None when it does not (SERVFAIL).
fn serial(port: u16, zone: &str) -> Option<u32> {
    common::soa_serial(port, zone)
}

#[test]
fn nsxdp_to_nsxdp_over_tls_with_ca_and_pin_and_wrong_ones_fail() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = pki(&d.join("pki"), "good");
    let wrong = pki(&d.join("wrong"), "wrong");
    let (pd, sd) = (d.join("primary"), d.join("secondary"));
    let (np, tp, sp) = (free_port(), free_port(), free_port());
    let zones = ["ca.test", "pin.test", "name.test", "opp.test", "badca.test", "badpin.test", "badname.test"];
    let pconf = primary(&pd, np, tp, &good, &zones, "");
    let _p = start_nsxdp(&pd, &pconf);
    let ca = |p: &Pki| format!("tls-ca = \"{}\"", p.ca.display());
    let sconf = secondary(
        &sd,
        sp,
        tp,
        &[
            ("ca.test", ca(&good)),
            ("pin.test", format!("tls-pin = \"{}\"", good.pin)),
            ("name.test", format!("{}\ntls-hostname = \"primary.test\"", ca(&good))),
            ("opp.test", "tls-opportunistic = true".into()),
            ("badca.test", ca(&wrong)),
            ("badpin.test", format!("tls-pin = [\"{}\"]", wrong.pin)),
            ("badname.test", format!("{}\ntls-hostname = \"other.test\"", ca(&good))),
        ],
    );
    let _s = start_nsxdp(&sd, &sconf);
    let l = logs(&[&pd, &sd]);
    for z in ["ca.test", "pin.test", "name.test", "opp.test"] {
        common::wait_serial(sp, z, 1, Duration::from_secs(30), z, &l);
        let st = zone_status(&sconf, z);
        assert!(st.contains("by AXFR over TLS from 127.0.0.1:"), "{st}");
        assert!(st.contains(&format!("primaries 127.0.0.1:{tp} (tls)")), "{st}");
        // The same records as the primary has (kdig over TLS, checked with the CA).
        let (theirs, out) = kdig_tls_axfr(tp, z, &[format!("+tls-ca={}", good.ca.display())]);
        assert!(theirs.len() > 1000, "kdig +tls: {out}");
        assert_same_zone(&theirs, &axfr_lines(sp, z, Some(&test_key())), "the primary", "the secondary");
    }
    // A wrong CA, a wrong pin: the transfer fails on the certificate, nothing is served.
    for (z, why) in [("badca.test", "UnknownIssuer"), ("badpin.test", "tls-pin"), ("badname.test", "certificate")] {
        let t0 = Instant::now();
        let st = loop {
            let st = zone_status(&sconf, z);
            if !st.contains("last-error none") || t0.elapsed() > Duration::from_secs(20) {
                break st;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(st.contains(why) && st.contains("not loaded (SERVFAIL)"), "{z}: {st}");
        assert_eq!(serial(sp, z), None, "{z} is not served");
    }
    // A new serial at the primary: the refresh asks over TLS (the TLS port has no UDP) and
    // gets it by IXFR over TLS.
    std::fs::write(pd.join("ca.test.zone"), zone_text("ca.test", 2, 501)).unwrap();
    common::reload(&pconf, Some("ca.test"));
    let (ok, out) = ctl(&sconf, &["refresh", "ca.test"]);
    assert!(ok, "{out}");
    common::wait_serial(sp, "ca.test", 2, Duration::from_secs(30), "refresh over TLS", &l);
    let st = zone_status(&sconf, "ca.test");
    assert!(st.contains("serial 1 -> 2 by IXFR over TLS"), "{st}");
}

#[test]
fn plain_tcp_to_a_tls_only_acl_is_refused_and_kdig_transfers_over_tls() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = pki(&d.join("pki"), "good");
    let (np, tp) = (free_port(), free_port());
    let conf = primary(d, np, tp, &good, &["acl.test"], "");
    let _p = start_nsxdp(d, &conf);
    // Over TCP with the right key: the ACL wants TLS.
    assert_eq!(common::kdig_status(np, "acl.test", "AXFR", &["-y", &test_key()]), "REFUSED");
    // Over TLS: the zone, with the certificate checked by CA and name, or by pin.
    let ca = format!("+tls-ca={}", good.ca.display());
    for how in [vec![ca.clone()], vec![ca, "+tls-hostname=primary.test".into()], vec![format!("+tls-pin={}", good.pin)]]
    {
        let (lines, out) = kdig_tls_axfr(tp, "acl.test", &how);
        assert_eq!(lines.len(), 3 + 2 * 500, "kdig {how:?}: {out}");
    }
    // Over TLS without the key: the ACL wants it too.
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &tp.to_string(), "+tls", "+time=5", "+retry=0", "AXFR", "acl.test"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("REFUSED"), "{text}");
    // Queries other than transfers are answered over TLS as over TCP.
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &tp.to_string(), "+tls", "+short", "+time=5", "SOA", "acl.test"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("hostmaster.acl.test. 1 "), "{o:?}");
}

/// BIND's named with `args` (its configuration in `dir/named.conf`), logging to
/// `dir/named.log`.
fn start_named(dir: &Path, conf: &str) -> Proc {
    let nd = dir.join("named");
    std::fs::create_dir_all(&nd).unwrap();
    let path = dir.join("named.conf");
    std::fs::write(&path, conf).unwrap();
    let check = Command::new("named-checkconf").arg(&path).output();
    if let Ok(o) = check {
        assert!(
            o.status.success(),
            "named-checkconf: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut cmd = Command::new("named");
    cmd.args(["-g", "-d", "3", "-n", "1", "-c"]).arg(&path);
    Proc::spawn(cmd, &dir.join("named.log"))
}

fn named_options(dir: &Path, listen: &str) -> String {
    format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
         {listen}\n  listen-on-v6 {{ none; }};\n  recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n\
         controls {{ }};\nkey \"xfr\" {{ algorithm hmac-sha256; secret \"{TEST_SECRET}\"; }};\n",
        d = dir.join("named").display()
    )
}

#[test]
fn named_as_xot_secondary_of_nsxdp() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = pki(&d.join("pki"), "good");
    let (np, tp, bp) = (free_port(), free_port(), free_port());
    let pd = d.join("primary");
    let pconf = primary(&pd, np, tp, &good, &["bind.test"], "");
    // NOTIFY (over UDP, signed) to named after a change; the zone's section is the last.
    let mut text = std::fs::read_to_string(&pconf).unwrap();
    text.push_str(&format!("notify = [\"127.0.0.1:{bp} key xfr\"]\n"));
    std::fs::write(&pconf, text).unwrap();
    let _p = start_nsxdp(&pd, &pconf);
    let conf = format!(
        "{}tls \"to-nsxdp\" {{ ca-file \"{}\"; remote-hostname \"primary.test\"; }};\n\
         zone \"bind.test\" {{\n  type secondary;\n  primaries {{ 127.0.0.1 port {tp} key xfr tls to-nsxdp; }};\n\
         \x20 file \"secondary.db\";\n  masterfile-format text;\n}};\n",
        named_options(d, &format!("  listen-on port {bp} {{ 127.0.0.1; }};\n  allow-transfer {{ key xfr; }};")),
        good.ca.display()
    );
    let _named = start_named(d, &conf);
    let l = logs(&[&pd, d]);
    common::wait_serial(bp, "bind.test", 1, Duration::from_secs(30), "named over TLS", &l);
    // named asked its SOA query over TLS too (its log: "soa_query", then "TLS client
    // session created" for the TLS port): nsxdp saw no UDP query.
    let (ok, stats) = ctl(&pconf, &["stats"]);
    assert!(ok && stats.contains("nsxdp_queries_total{transport=\"udp\"} 0\n"), "{stats}");
    assert!(tcp_event(&pconf, "tls_accepted") >= 1, "over TLS");
    let (theirs, out) = kdig_tls_axfr(tp, "bind.test", &[format!("+tls-ca={}", good.ca.display())]);
    assert!(theirs.len() > 1000, "{out}");
    assert_same_zone(&theirs, &axfr_lines(bp, "bind.test", Some(&test_key())), "nsxdp", "named");
    let log = std::fs::read_to_string(pd.join("nsxdp.log")).unwrap();
    assert!(log.contains("AXFR of bind.test. serial 1 to 127.0.0.1 over TLS"), "{log}");
    // A change: NOTIFY, then named's SOA query and IXFR, both over TLS.
    std::fs::write(pd.join("bind.test.zone"), zone_text("bind.test", 2, 502)).unwrap();
    common::reload(&pconf, Some("bind.test"));
    common::wait_serial(bp, "bind.test", 2, Duration::from_secs(30), "named by IXFR over TLS", &l);
    let log = std::fs::read_to_string(pd.join("nsxdp.log")).unwrap();
    assert!(log.contains("of bind.test. serial 1 -> 2 to 127.0.0.1 over TLS"), "{log}");
    let (theirs, _) = kdig_tls_axfr(tp, "bind.test", &[format!("+tls-ca={}", good.ca.display())]);
    assert_same_zone(&theirs, &axfr_lines(bp, "bind.test", Some(&test_key())), "nsxdp", "named");
}

#[test]
fn nsxdp_as_xot_secondary_of_named() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = pki(&d.join("pki"), "good");
    let (bp, btp, sp) = (free_port(), free_port(), free_port());
    std::fs::create_dir_all(d.join("named")).unwrap();
    std::fs::write(d.join("named").join("named.test.db"), zone_text("named.test", 7, 800)).unwrap();
    let conf = format!(
        "{}tls \"named-tls\" {{ key-file \"{}\"; cert-file \"{}\"; }};\n\
         zone \"named.test\" {{\n  type primary;\n  file \"named.test.db\";\n}};\n",
        named_options(
            d,
            &format!(
                "  listen-on port {bp} {{ 127.0.0.1; }};\n  listen-on port {btp} tls named-tls {{ 127.0.0.1; }};\n\
                 \x20 allow-transfer port {btp} transport tls {{ key xfr; }};"
            )
        ),
        good.key.display(),
        good.cert.display()
    );
    let _named = start_named(d, &conf);
    let sd = d.join("secondary");
    let sconf = secondary(&sd, sp, btp, &[("named.test", format!("tls-ca = \"{}\"", good.ca.display()))]);
    // named takes a moment to listen.
    let t0 = Instant::now();
    while serial(bp, "named.test") != Some(7) && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _s = start_nsxdp(&sd, &sconf);
    let l = logs(&[&sd, d]);
    common::wait_serial(sp, "named.test", 7, Duration::from_secs(30), "nsxdp from named over TLS", &l);
    let st = zone_status(&sconf, "named.test");
    assert!(st.contains("by AXFR over TLS from 127.0.0.1:"), "{st}");
    // named refuses the transfer over plain TCP: it was over TLS.
    assert_eq!(common::kdig_status(bp, "named.test", "AXFR", &["-y", &test_key()]), "REFUSED");
    let (theirs, out) = kdig_tls_axfr(btp, "named.test", &[format!("+tls-ca={}", good.ca.display())]);
    assert!(theirs.len() > 1500, "{out}");
    assert_same_zone(&theirs, &axfr_lines(sp, "named.test", Some(&test_key())), "named", "nsxdp");
    // A refresh: the SOA query over TLS, up to date.
    let (ok, out) = ctl(&sconf, &["refresh", "named.test"]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    let st = zone_status(&sconf, "named.test");
    assert!(st.contains("last-error none"), "{st}");
}

/// A TLS client (rustls, ALPN "dot", the CA of `pki`) connected to 127.0.0.1:`port`.
#[allow(deprecated)] // ring: see src/control/tls.rs
fn tls_client(port: u16, pki: &Pki) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("primary.test").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    // A small receive buffer: what the server sends is not all taken by the kernel.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    rustls::StreamOwned::new(conn, s.into())
}

/// An AXFR request for `zone`, signed with the test key, framed for TCP.
fn axfr_request(zone: &str) -> Vec<u8> {
    let mut m = common::dns_query(0x5151, zone, 252);
    let name = nsxdp::wire::name::Name::parse_text(b"xfr.", None).unwrap();
    let secret = base64::engine::general_purpose::STANDARD.decode(TEST_SECRET).unwrap();
    let key = nsxdp::xfr::tsig::Key::new(&name, nsxdp::xfr::tsig::Algorithm::HmacSha256, &secret);
    let len = m.len();
    m.resize(1024, 0);
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let len = nsxdp::xfr::tsig::Signer::request(&key).sign(&mut m, len, unix).unwrap();
    m.truncate(len);
    let mut framed = (len as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&m);
    framed
}

/// Reads until the server closes (or `limit` passes): how long that took.
fn closed_within(s: &mut impl Read, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return Some(t0.elapsed()),
            Ok(_) => {}
        }
    }
    None
}

#[test]
fn a_stalled_handshake_and_a_client_that_reads_nothing_are_closed() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = pki(&d.join("pki"), "good");
    let (np, tp) = (free_port(), free_port());
    let limits = "tcp-message-timeout = 500\ntcp-idle-timeout = 2\ntcp-max-pending-output = 16384\n";
    let conf = primary(d, np, tp, &good, &["limits.test"], limits);
    // A zone whose transfer (about 12 MB) does not fit in the socket buffers.
    std::fs::write(d.join("limits.test.zone"), zone_text("limits.test", 1, HOSTS)).unwrap();
    let _p = start_nsxdp(d, &conf);
    // Connects and says nothing: closed after the message timeout, as a slow handshake.
    let mut silent = TcpStream::connect(("127.0.0.1", tp)).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5)).expect("the silent client was closed");
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    // Half a ClientHello, then nothing: the same.
    let mut half = TcpStream::connect(("127.0.0.1", tp)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let took = closed_within(&mut half, Duration::from_secs(5)).expect("the half handshake was closed");
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert_eq!(tcp_event(&conf, "closed_slow_handshake"), 2);
    // A client that asks for the transfer and reads nothing: closed after the idle timeout
    // without taking output, as over TCP.
    let mut lazy = tls_client(tp, &good);
    lazy.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    lazy.write_all(&axfr_request("limits.test")).unwrap();
    lazy.flush().unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(tcp_event(&conf, "closed_stalled"), 1, "the non-reading client was closed");
    // What it can still read ends before the whole transfer (the rest was never made).
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while t0.elapsed() < Duration::from_secs(15) {
        match lazy.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 4 << 20, "{got} octets came");
    // A client that reads gets it all, over TLS, meanwhile.
    let (lines, out) = kdig_tls_axfr(tp, "limits.test", &[format!("+tls-ca={}", good.ca.display())]);
    assert_eq!(lines.len(), 3 + 2 * HOSTS, "{}", &out[..out.len().min(2000)]);
}

const HOSTS: usize = 250_000;
