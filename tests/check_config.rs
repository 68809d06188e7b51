//! `nsxdp check --config FILE` (and `nsxdp check FILE.toml`): a configuration is checked as
//! `serve --config` reads it, errors named by file and line, then each primary zone's file
//! with the zone checks; the exit status says whether all of it can be served.

use std::path::Path;
use std::process::Command;

/// Runs `nsxdp check ARGS` in `dir`: exit success and stderr.
fn check(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_nsxdp")).arg("check").args(args).current_dir(dir).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

const ZONE: &str = "$ORIGIN a.test.\n$TTL 300\n@ SOA ns hm 1 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n";

fn conf(zone_file: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:5399\"]\n{extra}\n[[zone]]\nname = \"a.test.\"\nfile = \"{zone_file}\"\n\n\
         [[zone]]\nname = \"b.test.\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:5400\"]\n"
    )
}

#[test]
fn a_good_configuration_and_its_zones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.zone"), ZONE).unwrap();
    std::fs::write(dir.path().join("n.toml"), conf("a.zone", "")).unwrap();
    for args in [&["--config", "n.toml"][..], &["n.toml"]] {
        let (ok, err) = check(dir.path(), args);
        assert!(ok, "{err}");
        assert!(err.contains("n.toml: configuration OK: 2 zones (1 primary, 1 secondary)"), "{err}");
        assert!(err.contains("zone a.test. serial 1: 3 RRs, OK"), "{err}");
        assert!(err.contains("zone b.test.: secondary"), "{err}");
    }
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.zone"), ZONE).unwrap();
    // The configuration: an unknown key on line 3.
    std::fs::write(dir.path().join("bad.toml"), conf("a.zone", "bogus = 1")).unwrap();
    let (ok, err) = check(dir.path(), &["--config", "bad.toml"]);
    assert!(!ok && err.contains("bad.toml:3: unknown field `bogus`"), "{err}");
    // A zone file of the configuration with a bad record on line 5.
    std::fs::write(dir.path().join("broken.zone"), format!("{ZONE}www A 300.1.2.3\n")).unwrap();
    std::fs::write(dir.path().join("z.toml"), conf("broken.zone", "")).unwrap();
    let (ok, err) = check(dir.path(), &["z.toml"]);
    assert!(!ok && err.contains("configuration OK") && err.contains("broken.zone:6"), "{err}");
    // A missing zone file.
    std::fs::write(dir.path().join("m.toml"), conf("missing.zone", "")).unwrap();
    let (ok, err) = check(dir.path(), &["--config", "m.toml"]);
    assert!(!ok && err.contains("missing.zone"), "{err}");
}
