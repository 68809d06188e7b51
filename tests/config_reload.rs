//! `nsxdp ctl reload` (and SIGHUP) read the configuration file again: a good file's zones,
//! keys and ACLs take effect (a zone added is served, one removed is not, a changed ACL
//! decides the next transfer); a bad file is refused with its file:line and the running
//! configuration stays.
//!
//! Needs kdig: under `CI=true` a missing one fails the test; otherwise it skips.

mod common;

use std::path::Path;
use std::process::Command;

use common::{axfr_lines, ctl, free_port, have, soa_serial, start_nsxdp};

const SECRET: &str = "Y29uZmlnLXJlbG9hZC10ZXN0LWtleS1mb3ItbnN4ZHA=";

fn zone(dir: &Path, name: &str, serial: u32) {
    std::fs::write(
        dir.join(format!("{name}.zone")),
        format!("$ORIGIN {name}.\n$TTL 300\n@ SOA ns hm {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.2\n"),
    )
    .unwrap();
}

/// The configuration: `zones` served, transfers allowed to `allow` (a prefix).
fn conf(dir: &Path, port: u16, zones: &[&str], allow: &str) -> String {
    let mut t = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\
         [[acl]]\nname = \"sec\"\naddress = [\"{allow}\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n"
    );
    for z in zones {
        t.push_str(&format!("[[zone]]\nname = \"{z}\"\nfile = \"{z}.zone\"\nacl = [\"sec\"]\nnotify-ns = false\n"));
    }
    std::fs::write(dir.join("nsxdp.toml"), &t).unwrap();
    t
}

#[test]
fn reload_reads_the_configuration_again() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    zone(d, "one.test", 1);
    zone(d, "two.test", 5);
    conf(d, port, &["one.test"], "127.0.0.0/8");
    let path = d.join("nsxdp.toml");
    let _ns = start_nsxdp(d, &path);
    let key = format!("hmac-sha256:xfr:{SECRET}");
    assert_eq!(soa_serial(port, "one.test."), Some(1));
    assert_eq!(soa_serial(port, "two.test."), None, "not served yet (REFUSED)");
    assert!(!axfr_lines(port, "one.test.", Some(&key)).is_empty());

    // A zone added, the ACL narrowed to an address the client is not.
    conf(d, port, &["one.test", "two.test"], "127.0.0.9");
    let (ok, out) = ctl(&path, &["reload"]);
    assert!(ok, "{out}");
    assert!(out.contains("zone two.test.: added") && out.contains("configuration"), "{out}");
    assert_eq!(soa_serial(port, "two.test."), Some(5));
    assert!(axfr_lines(port, "one.test.", Some(&key)).is_empty(), "the narrowed ACL still allows the transfer");

    // A bad file: refused with file and line, everything stays.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("acl = [\"sec\"]", "acl = [\"nosuch\"]")).unwrap();
    let (ok, out) = ctl(&path, &["reload"]);
    assert!(!ok, "{out}");
    assert!(out.contains("NOT reloaded") && out.contains("nsxdp.toml:"), "{out}");
    assert!(out.contains("no acl named"), "{out}");
    assert_eq!(soa_serial(port, "two.test."), Some(5));
    assert_eq!(soa_serial(port, "one.test."), Some(1));

    // The zone removed and the ACL widened again, by SIGHUP.
    conf(d, port, &["one.test"], "127.0.0.0/8");
    let pid = _ns.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let t0 = std::time::Instant::now();
    while soa_serial(port, "two.test.").is_some() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "two.test still served after SIGHUP");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!axfr_lines(port, "one.test.", Some(&key)).is_empty(), "the widened ACL does not allow the transfer");
    let (ok, status) = ctl(&path, &["status"]);
    assert!(ok && !status.contains("two.test"), "{status}");
}
