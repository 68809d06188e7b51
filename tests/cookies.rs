//! DNS cookies (RFC 7873, RFC 9018 server cookies) of `nsxdp serve`, over real sockets:
//! dnspython (`tests/cookies/check.py`) checks each reply's cookie against its own SipHash-2-4
//! with the configured secret, over UDP and TCP, and FORMERR for a malformed option; kdig
//! `+cookie` sees its cookie echoed and a server cookie; a server without `[cookies]`
//! ignores the option, as Knot and NSD do by default.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PYTHON: &str = "/usr/bin/python3";
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

fn have_dnspython() -> bool {
    let ok = Command::new(PYTHON).args(["-c", "import dns.message"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !common::in_ci(),
            "{PYTHON} with dnspython is required under CI=true (apt-get install python3-dnspython)"
        );
        common::skipped(&format!("{PYTHON} with dnspython not found (apt-get install python3-dnspython)"));
    }
    ok
}

fn zone() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone")
}

/// nsxdp with `[cookies]` (the test secret, or none: a random one) on a free port.
fn start(dir: &Path, cookies: Option<&str>) -> (common::Proc, u16) {
    let port = common::free_port();
    let cookies = match cookies {
        Some(s) => format!("[cookies]\nsecret = \"{s}\"\n"),
        None => "[cookies]\n".to_string(),
    };
    let conf = dir.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n{cookies}\
             [[zone]]\nname = \"example.com\"\nfile = \"{}\"\nnotify-ns = false\n",
            zone().display()
        ),
    )
    .unwrap();
    (common::start_nsxdp(dir, &conf), port)
}

fn kdig(port: u16, cookie: &str) -> String {
    let o = Command::new("kdig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=5", "+retry=0", cookie, "www.example.com", "A"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn server_cookies_are_rfc9018_over_udp_and_tcp() {
    if !have_dnspython() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, port) = start(dir.path(), Some(SECRET));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cookies/check.py");
    let out = Command::new(PYTHON).arg(script).arg(port.to_string()).arg(SECRET).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    drop(p);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), 8, "{text}");
}

#[test]
fn kdig_gets_its_cookie_back_and_a_server_cookie() {
    if !common::have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, port) = start(dir.path(), None);
    let out = kdig(port, "+cookie=0123456789abcdef");
    // kdig prints the option as `;; COOKIE: CLIENTSERVER` in hex.
    let cookie = |out: &str| -> String {
        let line = out.lines().find(|l| l.contains("COOKIE:")).unwrap_or_else(|| panic!("no COOKIE in\n{out}"));
        line.split_whitespace().nth(2).unwrap_or_default().to_ascii_lowercase()
    };
    let c = cookie(&out);
    assert_eq!(c.len(), 48, "client and a 16-octet server cookie: {c}");
    assert!(c.starts_with("0123456789abcdef01000000"), "client echoed, server cookie version 1: {c}");
    assert!(out.contains("status: NOERROR"), "{out}");
    // Back with that server cookie: answered, the client part echoed, a server cookie again.
    let again = kdig(port, &format!("+cookie={c}"));
    assert!(again.contains("status: NOERROR"), "{again}");
    let c2 = cookie(&again);
    assert_eq!((c2.len(), &c2[..16]), (48, "0123456789abcdef"), "{again}");
    drop(p);
}

#[test]
fn without_cookies_the_option_is_ignored() {
    if !common::have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let zone = zone();
    let listen = format!("127.0.0.1:{port}");
    let p = common::start_nsxdp_args(
        dir.path(),
        &[
            "--zone".as_ref(),
            zone.as_os_str(),
            "--listen".as_ref(),
            listen.as_ref(),
            "--data-dir".as_ref(),
            dir.path().as_os_str(),
        ],
    );
    let out = kdig(port, "+cookie=0123456789abcdef");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(!out.contains("COOKIE:"), "{out}");
    drop(p);
}

/// Rotation: a reload with a new `secret` (the old one moved to `secret-previous`) makes new
/// cookies with the new secret at once; a cookie made with the old one gets a fresh one made
/// with the new.
#[test]
fn a_reload_rotates_the_secret() {
    if !common::have("kdig", "knot-dnsutils") {
        return;
    }
    const NEXT: &str = "00112233445566778899aabbccddeeff";
    let dir = tempfile::tempdir().unwrap();
    let (p, port) = start(dir.path(), Some(SECRET));
    let cookie = |out: &str| -> String {
        let line = out.lines().find(|l| l.contains("COOKIE:")).unwrap_or_else(|| panic!("no COOKIE in\n{out}"));
        line.split_whitespace().nth(2).unwrap_or_default().to_ascii_lowercase()
    };
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    };
    // Made with `secret` at the reply's own timestamp, for 127.0.0.1?
    let made_with = |c: &str, secret: &str| -> bool {
        let c = unhex(c);
        let client: [u8; 8] = c[..8].try_into().unwrap();
        let stamp = u32::from_be_bytes(c[12..16].try_into().unwrap());
        let s = nsxdp::cookie::Secrets::new(nsxdp::cookie::parse_secret(secret).unwrap());
        nsxdp::cookie::server_cookie(&client, "127.0.0.1".parse().unwrap(), stamp, &s)[..] == c[8..]
    };
    let old = cookie(&kdig(port, "+cookie=0123456789abcdef"));
    assert!(made_with(&old, SECRET), "{old}");

    let conf = dir.path().join("nsxdp.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    let rotated = text
        .replace(&format!("secret = \"{SECRET}\""), &format!("secret = \"{NEXT}\"\nsecret-previous = \"{SECRET}\""));
    assert_ne!(text, rotated);
    std::fs::write(&conf, rotated).unwrap();
    let (ok, out) = common::ctl(&conf, &["reload"]);
    assert!(ok && out.contains("cookie secret rotated (the previous one still accepted)"), "{out}");

    let new = cookie(&kdig(port, "+cookie=fedcba9876543210"));
    assert!(made_with(&new, NEXT) && !made_with(&new, SECRET), "{new}");
    // The old cookie, still fresh, is not echoed any more: a new one replaces it.
    let renewed = cookie(&kdig(port, &format!("+cookie={old}")));
    assert_ne!(renewed, old);
    assert!(made_with(&renewed, NEXT), "{renewed}");
    drop(p);
}
