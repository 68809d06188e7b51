//! `nsxdp ctl zone-add` and `zone-remove`: zones served without a configuration entry.
//!
//! - `zones_added_and_removed_at_run_time`: a primary zone from a file and a secondary zone
//!   of a knotd primary (TSIG, NOTIFY allowed by an ACL) are added to a running server
//!   beside a configured zone; the secondary follows knotd's NOTIFY; a configuration reload
//!   keeps them; a restart keeps them (the data directory's zone list); zone-remove stops
//!   serving them, deleting the data or, with --keep-data, not; the configured zone
//!   answers throughout. Mistakes are refused with a reason.
//!
//! Needs knotd, knotc and kdig: under `CI=true` a missing one fails the test; otherwise it
//! skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ctl, free_port, have, kdig_status, soa_serial, start_nsxdp, TEST_SECRET};

fn zone_text(zone: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n\
         www A 192.0.2.{serial}\n"
    )
}

fn wait_serial(port: u16, zone: &str, want: Option<u32>, dirs: &[&Path]) {
    let t0 = Instant::now();
    while soa_serial(port, zone) != want {
        if t0.elapsed() > Duration::from_secs(20) {
            let mut text = String::new();
            for d in dirs {
                for f in ["knot.log", "nsxdp.log"] {
                    text.push_str(&std::fs::read_to_string(d.join(f)).unwrap_or_default());
                }
            }
            panic!("{zone}: serial {want:?} not served (got {:?})\n{text}", soa_serial(port, zone));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn zones_added_and_removed_at_run_time() {
    if !have("knotd", "knot") || !have("knotc", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kd, nd) = (dir.path().join("knot"), dir.path().join("nsxdp"));
    for d in [&kd, &nd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (kp, np) = (free_port(), free_port());
    std::fs::create_dir_all(kd.join("knot/zones")).unwrap();
    std::fs::write(kd.join("knot/zones/sec.test.zone"), zone_text("sec.test", 1)).unwrap();
    let kconf = common::knot_conf(
        &kd,
        kp,
        TEST_SECRET,
        &format!("  - id: nsxdp\n    address: 127.0.0.1@{np}\n    key: xfr\n"),
        "  - domain: sec.test\n    file: sec.test.zone\n    notify: nsxdp\n    acl: peers\n",
    );
    let _knot = common::start_knotd(&kd, &kconf);
    wait_serial(kp, "sec.test", Some(1), &[&kd]);

    // One configured zone; new.test's file lies outside the configuration.
    std::fs::write(nd.join("conf.test.zone"), zone_text("conf.test", 7)).unwrap();
    let conf = nd.join("nsxdp.toml");
    let mut text = common::primary_conf(np, "conf.test", "conf.test.zone", &[]);
    text.push_str("[[acl]]\nname = \"from-knot\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"notify\"]\n");
    std::fs::write(&conf, &text).unwrap();
    let new_file = dir.path().join("elsewhere/new.test.zone");
    std::fs::create_dir_all(new_file.parent().unwrap()).unwrap();
    std::fs::write(&new_file, zone_text("new.test", 3)).unwrap();
    let ns = start_nsxdp(&nd, &conf);
    let dirs = [kd.as_path(), nd.as_path()];
    assert_eq!(kdig_status(np, "new.test.", "SOA", &[]), "REFUSED");

    let (ok, out) = ctl(&conf, &["zone-add", "new.test", "--file", new_file.to_str().unwrap()]);
    assert!(ok && out.contains("new.test. added, serial 3"), "{out}");
    assert_eq!(soa_serial(np, "new.test"), Some(3));
    let kp_addr = format!("127.0.0.1:{kp}");
    let (ok, out) = ctl(&conf, &["zone-add", "sec.test", "--primary", &kp_addr, "--key", "xfr", "--acl", "from-knot"]);
    assert!(ok && out.contains("sec.test. added, secondary"), "{out}");
    wait_serial(np, "sec.test", Some(1), &dirs);
    // Mistakes.
    for (args, why) in [
        (vec!["zone-add", "new.test", "--file", new_file.to_str().unwrap()], "served already"),
        (vec!["zone-add", "conf.test", "--primary", &kp_addr], "served already"),
        (vec!["zone-add", "x.test", "--primary", &kp_addr, "--key", "nope"], "no key named"),
        (vec!["zone-add", "y.test", "--file", "/nonexistent/y.test.zone"], "not added"),
        (vec!["zone-remove", "conf.test"], "in the configuration file"),
        (vec!["zone-remove", "x.test"], "no zone x.test. was added"),
    ] {
        let (ok, out) = ctl(&conf, &args);
        assert!(!ok && out.contains(why), "{args:?}: {out}");
    }
    assert_eq!(kdig_status(np, "y.test.", "SOA", &[]), "REFUSED");

    // knotd's NOTIFY for the added secondary is accepted (its ACL) and followed.
    std::fs::write(kd.join("knot/zones/sec.test.zone"), zone_text("sec.test", 2)).unwrap();
    let o = Command::new("knotc").arg("-c").arg(&kconf).args(["zone-reload", "sec.test"]).output().unwrap();
    assert!(o.status.success());
    wait_serial(np, "sec.test", Some(2), &dirs);

    // A configuration reload keeps them; so does a restart.
    common::reload(&conf, None);
    assert_eq!((soa_serial(np, "new.test"), soa_serial(np, "sec.test")), (Some(3), Some(2)));
    drop(ns);
    let list = std::fs::read_to_string(nd.join("data/zonelist")).unwrap();
    assert!(
        list.contains("new.test file /") && list.contains(&format!("sec.test acl from-knot primary {kp_addr} key xfr")),
        "{list}"
    );
    let _ns = start_nsxdp(&nd, &conf);
    wait_serial(np, "new.test", Some(3), &dirs);
    wait_serial(np, "sec.test", Some(2), &dirs);

    // zone-remove: the data deleted, or kept; the configured zone untouched.
    let data = nd.join("data");
    assert!(data.join("new.test.snap").exists() && data.join("sec.test.snap").exists());
    let (ok, out) = ctl(&conf, &["zone-remove", "new.test"]);
    assert!(ok, "{out}");
    assert_eq!(kdig_status(np, "new.test.", "SOA", &[]), "REFUSED");
    assert!(!data.join("new.test.snap").exists());
    let (ok, out) = ctl(&conf, &["zone-remove", "sec.test", "--keep-data"]);
    assert!(ok && out.contains("its data kept"), "{out}");
    assert_eq!(kdig_status(np, "sec.test.", "SOA", &[]), "REFUSED");
    assert!(data.join("sec.test.snap").exists());
    assert_eq!(soa_serial(np, "conf.test"), Some(7));
    let list = std::fs::read_to_string(data.join("zonelist")).unwrap();
    assert!(!list.contains("new.test") && !list.contains("sec.test"), "{list}");
}

/// A configuration without zones starts (its zones come by zone-add, as Knot and NSD start
/// without zones), and after a restart serves what was added.
#[test]
fn a_configuration_without_zones_starts_and_keeps_what_is_added() {
    if !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let conf = d.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!("[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n"),
    )
    .unwrap();
    std::fs::write(d.join("only.test.zone"), zone_text("only.test", 5)).unwrap();
    let server = start_nsxdp(d, &conf);
    let log = std::fs::read_to_string(d.join("nsxdp.log")).unwrap();
    assert!(log.contains("no zones in the configuration"), "{log}");
    assert_eq!(kdig_status(port, "only.test", "SOA", &[]), "REFUSED");
    let file = d.join("only.test.zone");
    let (ok, out) = ctl(&conf, &["zone-add", "only.test", "--file", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    wait_serial(port, "only.test", Some(5), &[d]);
    drop(server);
    let _server = start_nsxdp(d, &conf);
    wait_serial(port, "only.test", Some(5), &[d]);
}
