//! Catalog zones (RFC 9432) with real peers.
//!
//! - `knot_catalog_to_nsxdp_consumer`: knotd generates a catalog (`catalog-role: generate`)
//!   of three member zones, one of them with a `catalog-group` that nsxdp maps to a
//!   `[[template]]` naming knotd's second address as its primary. nsxdp consumes the
//!   catalog and serves every member (kdig); a member added and one removed on knotd (its
//!   configuration reloaded) reach nsxdp by NOTIFY and IXFR of the catalog: the new member
//!   served, the removed one refused and its snapshot deleted. nsxdp restarted with knotd
//!   stopped still serves the members from what the catalog's snapshot lists.
//! - `nsxdp_catalog_to_knot_and_named_consumers`: nsxdp generates a catalog of its zones
//!   (`catalog-role = "producer"`); knotd (`catalog-role: interpret`) and named 9.18
//!   (`catalog-zones`) consume it and serve its members; a zone added to nsxdp with
//!   `ctl zone-add` joins the catalog (new serial, NOTIFY) and both serve it; removed, both
//!   drop it.
//!
//! - `a_catalog_over_the_member_limit_is_refused`: `catalog-max-members` bounds what a
//!   consumed catalog may list.
//!
//! Needs knotd, knotc, kdig and (the producer test) named: under `CI=true` a missing one fails the test; otherwise it
//! skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ctl, free_port, have, kdig_status, soa_serial, start_nsxdp, TEST_SECRET};

fn member_text(zone: &str, serial: u32) -> String {
    format!(
        "$ORIGIN {zone}.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n\
         www A 192.0.2.{serial}\n"
    )
}

/// knotd's configuration: listening on both ports, the catalog `catz.` generated from
/// `members` (name, group), each a zone of its own file, NOTIFY of everything to nsxdp.
fn knot_conf(dir: &Path, ports: (u16, u16), nsxdp: u16, members: &[(&str, Option<&str>)]) -> PathBuf {
    let k = dir.join("knot");
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(k.join(sub)).unwrap();
    }
    let mut zones = String::from("  - domain: catz.\n    catalog-role: generate\n    notify: nsxdp\n    acl: peers\n");
    for (m, group) in members {
        let file = k.join("zones").join(format!("{m}.zone"));
        if !file.exists() {
            std::fs::write(&file, member_text(m, 1)).unwrap();
        }
        zones.push_str(&format!(
            "  - domain: {m}.\n    file: {m}.zone\n    catalog-role: member\n    catalog-zone: catz.\n\
             \x20   notify: nsxdp\n    acl: peers\n"
        ));
        if let Some(g) = group {
            zones.push_str(&format!("    catalog-group: {g}\n"));
        }
    }
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{k}/run\"\n    listen: [ 127.0.0.1@{p1}, 127.0.0.1@{p2} ]\n    udp-workers: 1\n\
             \x20   tcp-workers: 1\n\
             \nlog:\n  - target: stderr\n    any: info\n\
             \ndatabase:\n    storage: \"{k}/db\"\n\
             \nkey:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {TEST_SECRET}\n\
             \nremote:\n  - id: nsxdp\n    address: 127.0.0.1@{nsxdp}\n    key: xfr\n\
             \nacl:\n  - id: peers\n    address: 127.0.0.1\n    key: xfr\n    action: [notify, transfer]\n\
             \ntemplate:\n  - id: default\n    storage: \"{k}/zones\"\n    zonefile-sync: -1\n\
             \nzone:\n{zones}",
            k = k.display(),
            p1 = ports.0,
            p2 = ports.1,
        ),
    )
    .unwrap();
    conf
}

fn knotc(conf: &Path, args: &[&str]) {
    let o = Command::new("knotc").arg("-c").arg(conf).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "knotc {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn logs(dirs: &[&Path]) -> String {
    let mut text = String::new();
    for d in dirs {
        for f in ["knot.log", "nsxdp.log"] {
            if let Ok(t) = std::fs::read_to_string(d.join(f)) {
                text.push_str(&format!("--- {}:\n{t}\n", d.join(f).display()));
            }
        }
    }
    text
}

/// Waits until `ok` holds, or panics with `what` and the logs.
fn wait_for(what: &str, limit: Duration, dirs: &[&Path], mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}\n{}", logs(dirs));
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

#[test]
fn knot_catalog_to_nsxdp_consumer() {
    if !have("knotd", "knot") || !have("knotc", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kd, nd) = (dir.path().join("knot"), dir.path().join("nsxdp"));
    for d in [&kd, &nd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (kp, kp2, np) = (free_port(), free_port(), free_port());
    let members = [("a.test", Some("blue")), ("b.test", None), ("c.test", None)];
    let kconf = knot_conf(&kd, (kp, kp2), np, &members);
    let knot = common::start_knotd(&kd, &kconf);
    for (m, _) in &members {
        wait_for(&format!("knotd serves {m}"), Duration::from_secs(20), &[&kd], || soa_serial(kp, m) == Some(1));
    }

    let conf = common::secondary_conf(
        &nd,
        np,
        "catz",
        kp,
        TEST_SECRET,
        &format!(
            "catalog-role = \"consumer\"\n\
             [[template]]\nname = \"blue\"\nprimaries = [\"127.0.0.1:{kp2} key xfr\"]\n"
        ),
    );
    let ns = start_nsxdp(&nd, &conf);
    let dirs = [kd.as_path(), nd.as_path()];
    for (m, _) in &members {
        wait_for(&format!("nsxdp serves member {m}"), Duration::from_secs(20), &dirs, || soa_serial(np, m) == Some(1));
    }
    // The group's template names the primary.
    let (ok, status) = ctl(&conf, &["zone-status", "a.test"]);
    assert!(ok && status.contains(&format!("primaries 127.0.0.1:{kp2}\n")), "{status}");
    let (ok, status) = ctl(&conf, &["zone-status", "b.test"]);
    assert!(ok && status.contains(&format!("primaries 127.0.0.1:{kp}\n")), "{status}");
    // A member's change comes by the member's own NOTIFY.
    std::fs::write(kd.join("knot/zones/b.test.zone"), member_text("b.test", 2)).unwrap();
    knotc(&kconf, &["zone-reload", "b.test"]);
    wait_for("b.test serial 2 after knotd's NOTIFY", Duration::from_secs(10), &dirs, || {
        soa_serial(np, "b.test") == Some(2)
    });

    // d.test added, c.test removed on knotd: its catalog changes, NOTIFY, nsxdp follows.
    let members2 = [("a.test", Some("blue")), ("b.test", None), ("d.test", None)];
    knot_conf(&kd, (kp, kp2), np, &members2);
    knotc(&kconf, &["reload"]);
    let took =
        wait_for("the new member d.test", Duration::from_secs(20), &dirs, || soa_serial(np, "d.test") == Some(1));
    eprintln!("d.test served {took:?} after knotd's reload");
    wait_for("c.test no longer served", Duration::from_secs(10), &dirs, || {
        kdig_status(np, "c.test.", "SOA", &[]) == "REFUSED"
    });
    let data = nd.join("data");
    wait_for("c.test's data deleted", Duration::from_secs(5), &dirs, || !data.join("c.test.snap").exists());
    assert!(data.join("d.test.snap").exists() && data.join("a.test.snap").exists());
    let (_, status) = ctl(&conf, &["status"]);
    assert!(!status.contains("c.test"), "{status}");

    // Restart without the primary: the members come back from the catalog's snapshot.
    drop(ns);
    drop(knot);
    let _ns = start_nsxdp(&nd, &conf);
    for m in ["a.test", "b.test", "d.test"] {
        let want = if m == "b.test" { 2 } else { 1 };
        wait_for(&format!("{m} after the restart"), Duration::from_secs(10), &dirs, || soa_serial(np, m) == Some(want));
    }
    assert_eq!(kdig_status(np, "c.test.", "SOA", &[]), "REFUSED");
}

/// A catalog too large for `catalog-max-members` is refused whole; the members stay as they
/// were. knotd generates it.
#[test]
fn a_catalog_over_the_member_limit_is_refused() {
    if !have("knotd", "knot") || !have("knotc", "knot") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kd, nd) = (dir.path().join("knot"), dir.path().join("nsxdp"));
    for d in [&kd, &nd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (kp, kp2, np) = (free_port(), free_port(), free_port());
    let kconf = knot_conf(&kd, (kp, kp2), np, &[("a.test", None), ("b.test", None)]);
    let _knot = common::start_knotd(&kd, &kconf);
    wait_for("knotd serves b.test", Duration::from_secs(20), &[&kd], || soa_serial(kp, "b.test") == Some(1));
    let conf = common::secondary_conf(
        &nd,
        np,
        "catz",
        kp,
        TEST_SECRET,
        "catalog-role = \"consumer\"\ncatalog-max-members = 2\n",
    );
    let _ns = start_nsxdp(&nd, &conf);
    let dirs = [kd.as_path(), nd.as_path()];
    for m in ["a.test", "b.test"] {
        wait_for(&format!("member {m}"), Duration::from_secs(20), &dirs, || soa_serial(np, m) == Some(1));
    }
    let serial = soa_serial(np, "catz").unwrap();
    knot_conf(&kd, (kp, kp2), np, &[("a.test", None), ("b.test", None), ("c.test", None)]);
    knotc(&kconf, &["reload"]);
    wait_for("knotd serves c.test", Duration::from_secs(20), &dirs, || soa_serial(kp, "c.test") == Some(1));
    // The catalog's new version is served (it is a zone like any other), its members not.
    wait_for("the new catalog", Duration::from_secs(20), &dirs, || soa_serial(np, "catz") != Some(serial));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(kdig_status(np, "c.test.", "SOA", &[]), "REFUSED");
    assert_eq!(soa_serial(np, "a.test"), Some(1));
}

/// named 9.18 as a consumer of the catalog `catz.` from the primary on 127.0.0.1:`primary`
/// (key `xfr`), its members from the same primary; listening on 127.0.0.1:`port`.
fn start_named_consumer(dir: &Path, port: u16, primary: u16) -> common::Proc {
    let nd = dir.join("named");
    std::fs::create_dir_all(&nd).unwrap();
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n\
             \x20 listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n\
             \x20 dnssec-validation no;\n  notify no;\n  allow-new-zones yes;\n\
             \x20 catalog-zones {{\n    zone \"catz.\" default-primaries {{ 127.0.0.1 port {primary} key xfr; }} \
             in-memory yes;\n  }};\n}};\n\
             controls {{ }};\n\
             key \"xfr\" {{ algorithm hmac-sha256; secret \"{TEST_SECRET}\"; }};\n\
             zone \"catz.\" {{\n  type secondary;\n  primaries port {primary} {{ 127.0.0.1 key xfr; }};\n\
             \x20 file \"catz.db\";\n  allow-notify {{ 127.0.0.1; }};\n}};\n",
            d = nd.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("named");
    cmd.args(["-g", "-d", "1", "-n", "1", "-c"]).arg(&conf);
    common::Proc::spawn(cmd, &dir.join("named.log"))
}

/// knotd as a consumer (`catalog-role: interpret`) of `catz.` from nsxdp on `primary`,
/// its members by the template `members` from the same primary.
fn knot_consumer_conf(dir: &Path, port: u16, primary: u16) -> PathBuf {
    let k = dir.join("knot");
    for sub in ["run", "db", "zones"] {
        std::fs::create_dir_all(k.join(sub)).unwrap();
    }
    let conf = dir.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{k}/run\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n\
             \nlog:\n  - target: stderr\n    any: info\n\
             \ndatabase:\n    storage: \"{k}/db\"\n\
             \nkey:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {TEST_SECRET}\n\
             \nremote:\n  - id: nsxdp\n    address: 127.0.0.1@{primary}\n    key: xfr\n\
             \nacl:\n  - id: peers\n    address: 127.0.0.1\n    key: xfr\n    action: [notify, transfer]\n\
             \ntemplate:\n  - id: default\n    storage: \"{k}/zones\"\n    zonefile-sync: -1\n\
             \x20 - id: members\n    storage: \"{k}/zones\"\n    zonefile-sync: -1\n    master: nsxdp\n    acl: peers\n\
             \nzone:\n  - domain: catz.\n    master: nsxdp\n    acl: peers\n    catalog-role: interpret\n\
             \x20   catalog-template: members\n",
            k = k.display(),
        ),
    )
    .unwrap();
    conf
}

#[test]
fn nsxdp_catalog_to_knot_and_named_consumers() {
    if !have("knotd", "knot") || !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kd, bd, nd) = (dir.path().join("knot"), dir.path().join("named"), dir.path().join("nsxdp"));
    for d in [&kd, &bd, &nd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (kp, bp, np) = (free_port(), free_port(), free_port());
    for z in ["a.test", "b.test", "c.test"] {
        std::fs::write(nd.join(format!("{z}.zone")), member_text(z, 4)).unwrap();
    }
    let conf = nd.join("nsxdp.toml");
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:{np}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"secondaries\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
         [[zone]]\nname = \"catz\"\ncatalog-role = \"producer\"\nacl = [\"secondaries\"]\nnotify-ns = false\n\
         notify = [\"127.0.0.1:{kp} key xfr\", \"127.0.0.1:{bp} key xfr\"]\n"
    );
    for z in ["a.test", "b.test"] {
        text.push_str(&format!(
            "[[zone]]\nname = \"{z}\"\nfile = \"{z}.zone\"\nacl = [\"secondaries\"]\nnotify-ns = false\n"
        ));
    }
    std::fs::write(&conf, &text).unwrap();
    let _ns = start_nsxdp(&nd, &conf);
    let kconf = knot_consumer_conf(&kd, kp, np);
    let _knot = common::start_knotd(&kd, &kconf);
    let _named = start_named_consumer(&bd, bp, np);
    let dirs = [kd.as_path(), bd.as_path(), nd.as_path()];
    let all_logs = || {
        let mut t = logs(&dirs);
        t.push_str(&std::fs::read_to_string(bd.join("named.log")).unwrap_or_default());
        t
    };
    let wait = |what: &str, ok: &mut dyn FnMut() -> bool| {
        let t0 = Instant::now();
        while !ok() {
            assert!(t0.elapsed() < Duration::from_secs(30), "{what}: not within 30 s\n{}", all_logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for (who, port) in [("knotd", kp), ("named", bp)] {
        for z in ["a.test", "b.test"] {
            wait(&format!("{who} serves {z} from nsxdp's catalog"), &mut || soa_serial(port, z) == Some(4));
        }
    }
    // A zone added to nsxdp joins its catalog: a new serial, NOTIFY, both consumers follow.
    let serial = soa_serial(np, "catz").unwrap();
    let c_file = nd.join("c.test.zone");
    let (ok, out) = ctl(&conf, &["zone-add", "c.test", "--acl", "secondaries", "--file", c_file.to_str().unwrap()]);
    assert!(ok, "{out}");
    wait("a new serial of nsxdp's catalog", &mut || soa_serial(np, "catz").is_some_and(|s| s != serial));
    for (who, port) in [("knotd", kp), ("named", bp)] {
        wait(&format!("{who} serves the added c.test"), &mut || soa_serial(port, "c.test") == Some(4));
    }
    // And leaves it when removed.
    let (ok, out) = ctl(&conf, &["zone-remove", "c.test"]);
    assert!(ok, "{out}");
    for (who, port) in [("knotd", kp), ("named", bp)] {
        wait(&format!("{who} no longer serves c.test"), &mut || {
            let s = kdig_status(port, "c.test.", "SOA", &[]);
            s == "REFUSED" || s == "NOTAUTH"
        });
        assert_eq!(soa_serial(port, "a.test"), Some(4), "{who}");
    }
}
