//! What the Debian package carries, and the package itself.
//!
//! * `man_pages_render_without_warnings`: `nsxdp generate man` writes nsxdp.1 and a page per
//!   subcommand (none for the hidden `generate`, none for clap's `help`); groff and man
//!   render each without a warning, with the arguments' help texts in them.
//! * `completions_load_and_complete`: `nsxdp generate completions` for bash, zsh and fish;
//!   bash sources its file without an error and completes subcommands with it.
//! * `the_package_holds_its_files_and_serves`: the .deb that `scripts/build-deb.sh` makes
//!   (here, from the binary under test, or the one named by `NSXDP_DEB`, which `.ci/run`
//!   builds in release): its control data (dependencies, conffiles, maintainer scripts), its
//!   files (binary, unit, configuration, example zone, manual pages, completions), its unit
//!   verified by `systemd-analyze` with its own binary, and that binary, run out of the
//!   extracted package with the packaged configuration moved to a free loopback port and a
//!   temporary data directory, answering for the example zone (kdig).
//!
//! Needs groff (groff-base), man (man-db), bash, dpkg-deb (dpkg), kdig (knot-dnsutils),
//! systemd-analyze (systemd) and, without `NSXDP_DEB`, cargo-deb: under `CI=true` a missing
//! one fails the test; otherwise it skips with a line saying what is missing.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_port, have, in_ci, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_nsxdp");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file names in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// The pages `generate man` must write: the command, each subcommand, each ctl command.
fn expected_pages() -> BTreeSet<String> {
    let mut pages: BTreeSet<String> = ["nsxdp", "check", "compile", "dump", "stat", "serve", "ctl"]
        .iter()
        .map(|c| if *c == "nsxdp" { "nsxdp.1".to_string() } else { format!("nsxdp-{c}.1") })
        .collect();
    for c in [
        "status",
        "stats",
        "reload",
        "zone-status",
        "refresh",
        "retransfer",
        "zone-notify",
        "stop",
        "zone-add",
        "zone-remove",
    ] {
        pages.insert(format!("nsxdp-ctl-{c}.1"));
    }
    pages
}

#[test]
fn man_pages_render_without_warnings() {
    if !have("groff", "groff-base") || !have("man", "man-db") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(BIN).args(["generate", "man"]).arg(dir.path().join("man1")));
    let written: BTreeSet<String> =
        stdout(&out).lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().into_owned()).collect();
    let on_disk = names(&dir.path().join("man1"));
    assert_eq!(written, on_disk, "what generate printed and what it wrote");
    assert_eq!(on_disk, expected_pages());
    for page in &on_disk {
        let path = dir.path().join("man1").join(page);
        // -ww: every warning; -z: format, print nothing.
        let o = run(Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path));
        assert!(o.stderr.is_empty(), "groff warns about {page}:\n{}", String::from_utf8_lossy(&o.stderr));
        let o = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8"));
        assert!(o.stderr.is_empty(), "man warns about {page}:\n{}", String::from_utf8_lossy(&o.stderr));
        let text = stdout(&o);
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{page}:\n{text}");
    }
    // The help texts are what the pages say: as plain text in lines that do not end (LL),
    // without hyphenation (HY) or overstriking, spaces folded.
    let man = |page: &str| {
        let o = run(Command::new("groff")
            .args(["-man", "-Tascii", "-rLL=2000n", "-rHY=0", "-P-c", "-P-b", "-P-u"])
            .arg(dir.path().join("man1").join(page)));
        stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let compile = man("nsxdp-compile.1");
    for said in ["--origin", "Zone apex", "-o, --output", "The snapshot file to write"] {
        assert!(compile.contains(said), "nsxdp-compile.1 lacks {said:?}:\n{compile}");
    }
    let ctl = man("nsxdp-ctl.1");
    assert!(ctl.contains("nsxdp-ctl-zone-notify(1)") && ctl.contains("Send NOTIFY"), "{ctl}");
}

#[test]
fn completions_load_and_complete() {
    if !have("bash", "bash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (shell, file) in [("bash", "nsxdp.bash"), ("zsh", "_nsxdp"), ("fish", "nsxdp.fish")] {
        let out = run(Command::new(BIN).args(["generate", "completions", shell]).arg(dir.path()));
        assert_eq!(stdout(&out).trim(), dir.path().join(file).to_str().unwrap());
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(text.contains("zone-notify") && text.contains("--data-dir"), "{file}:\n{text}");
    }
    // Sourced by a plain bash (no bash-completion needed), then asked as readline would ask.
    let complete = |words: &[&str]| -> BTreeSet<String> {
        let script = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
             COMP_POINT=${{#COMP_LINE}}\n_nsxdp nsxdp \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            dir.path().join("nsxdp.bash").display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1
        );
        let o = run(Command::new("bash").arg("--norc").arg("--noprofile").arg("-c").arg(script));
        assert!(o.stderr.is_empty(), "bash: {}", String::from_utf8_lossy(&o.stderr));
        stdout(&o).lines().map(str::to_owned).collect()
    };
    assert_eq!(complete(&["nsxdp", "ct"]), BTreeSet::from(["ctl".to_string()]));
    assert_eq!(
        complete(&["nsxdp", "ctl", "zone-"]),
        BTreeSet::from(["zone-add", "zone-notify", "zone-remove", "zone-status"].map(String::from))
    );
    assert!(complete(&["nsxdp", "serve", "--data"]).contains("--data-dir"));
}

/// The .deb to test: `NSXDP_DEB`, else one built by scripts/build-deb.sh into `dir` from the
/// binary under test (None, after saying so, when cargo-deb is missing).
fn package(dir: &Path) -> Option<PathBuf> {
    if let Some(deb) = std::env::var_os("NSXDP_DEB") {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "NSXDP_DEB={} is not a file", deb.display());
        return Some(deb);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !Command::new(&cargo).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "cargo-deb is required under CI=true (cargo install cargo-deb --locked), or NSXDP_DEB");
        common::skipped("cargo-deb not found (cargo install cargo-deb --locked), and no NSXDP_DEB");
        return None;
    }
    // The binary under test, packed as a release build would be: from a target directory
    // of the test's own (cargo-deb reads the binary from TARGET/release).
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(BIN, target.join("release/nsxdp")).unwrap();
    let out = run(Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb.sh"))
        .args(["--no-build", "--output"])
        .arg(dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO", &cargo));
    let deb = PathBuf::from(stdout(&out).lines().last().unwrap_or_default().trim());
    assert!(deb.is_file() && deb.starts_with(dir), "build-deb.sh printed {deb:?}");
    Some(deb)
}

#[test]
fn the_package_holds_its_files_and_serves() {
    if !have("dpkg-deb", "dpkg") || !have("kdig", "knot-dnsutils") || !have("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(deb) = package(dir.path()) else { return };

    // Control data.
    let field = |f: &str| stdout(&run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))).trim().to_string();
    assert_eq!(field("Package"), "nsxdp");
    assert!(field("Depends").split(", ").any(|d| d.starts_with("adduser")), "Depends: {}", field("Depends"));
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    let conffiles: BTreeSet<&str> = conffiles.lines().collect();
    assert_eq!(conffiles, BTreeSet::from(["/etc/nsxdp/nsxdp.toml", "/etc/nsxdp/zones/example.com.zone"]));
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group") && postinst.contains("install -d -o nsxdp -g nsxdp"));

    // Files, with their modes.
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let files: std::collections::BTreeMap<String, String> = listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mode = f.next()?.to_string();
            Some((f.last()?.trim_start_matches('.').to_string(), mode))
        })
        .collect();
    let mut want: Vec<(String, &str)> = vec![
        ("/usr/bin/nsxdp".into(), "-rwxr-xr-x"),
        ("/lib/systemd/system/nsxdp.service".into(), "-rw-r--r--"),
        ("/etc/nsxdp/nsxdp.toml".into(), "-rw-r--r--"),
        ("/etc/nsxdp/zones/example.com.zone".into(), "-rw-r--r--"),
        ("/usr/share/bash-completion/completions/nsxdp".into(), "-rw-r--r--"),
        ("/usr/share/zsh/vendor-completions/_nsxdp".into(), "-rw-r--r--"),
        ("/usr/share/fish/vendor_completions.d/nsxdp.fish".into(), "-rw-r--r--"),
    ];
    want.extend(expected_pages().into_iter().map(|p| (format!("/usr/share/man/man1/{p}.gz"), "-rw-r--r--")));
    for (path, mode) in &want {
        assert_eq!(files.get(path).map(String::as_str), Some(*mode), "{path} in the package:\n{listing}");
    }

    // The unit as packaged, with the packaged binary.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let nsxdp = root.join("usr/bin/nsxdp");
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/nsxdp.service")).unwrap();
    assert!(
        !unit.lines().any(|l| l.starts_with("StateDirectory=")) && unit.contains("\nReadWritePaths=/var/lib/nsxdp\n"),
        "without User=, StateDirectory= would give /var/lib/nsxdp to root at every start:\n{unit}"
    );
    let unit_path = dir.path().join("nsxdp.service");
    std::fs::write(&unit_path, unit.replace("/usr/bin/nsxdp", nsxdp.to_str().unwrap())).unwrap();
    let o = Command::new("systemd-analyze").arg("verify").arg(&unit_path).output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");

    // The packaged configuration, as the unit would run it, moved to a free port, a data
    // directory and control socket of the test's own, and no switch of user.
    let conf_path = root.join("etc/nsxdp/nsxdp.toml");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let mut moved = String::new();
    for line in conf.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        let line = match key {
            "listen" => {
                assert!(line.starts_with(r#"listen = ["127.0.0.1:53", "[::1]:53"]"#), "{line}");
                format!("listen = [\"127.0.0.1:{port}\"]")
            }
            "data-dir" => {
                assert!(line.starts_with(r#"data-dir = "/var/lib/nsxdp""#), "{line}");
                format!("data-dir = {:?}", data.to_str().unwrap())
            }
            "control" => {
                assert!(line.starts_with(r#"control = "/run/nsxdp/control.sock""#), "{line}");
                format!("control = {:?}", data.join("control.sock").to_str().unwrap())
            }
            "user" => {
                assert!(line.starts_with(r#"user = "nsxdp""#), "{line}");
                continue;
            }
            _ => line.to_string(),
        };
        moved.push_str(&line);
        moved.push('\n');
    }
    std::fs::write(&conf_path, moved).unwrap();
    run(Command::new(&nsxdp).args(["check", "--config"]).arg(&conf_path));
    let server = serve(&nsxdp, &conf_path);
    let kdig = |name: &str, qtype: &str| {
        stdout(&run(Command::new("kdig").args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+time=2",
            "+retry=1",
            name,
            qtype,
        ])))
    };
    assert_eq!(kdig("example.com.", "SOA").split_whitespace().nth(2), Some("2026112301"));
    assert_eq!(kdig("example.com.", "A").trim(), "192.0.2.1");
    let (ok, status) = common::ctl(&conf_path, &["status"]);
    assert!(ok && status.contains("example.com"), "{status}");
    drop(server);
}

/// `NSXDP serve --cores 1 --config CONF`, once it says it is ready.
fn serve(nsxdp: &Path, conf: &Path) -> Proc {
    let mut child = Command::new(nsxdp)
        .args(["serve", "--cores", "1", "--config"])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let server = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.ends_with("ready") => return server,
            Ok(l) => log += &(l + "\n"),
            Err(_) => panic!("the packaged nsxdp did not start:\n{log}"),
        }
    }
}
