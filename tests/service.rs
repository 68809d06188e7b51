//! nsxdp as a service: `dist/nsxdp.service` passes `systemd-analyze verify`; the server
//! tells systemd READY=1 once it serves and STOPPING=1 when it stops (through a
//! `NOTIFY_SOCKET` of the test's own); SIGUSR1 and SIGUSR2 do not end it; with `user` it
//! serves, reloads and writes its journal as that user, with no capability left.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ctl, free_port, in_ci, kdig_status, soa_serial};

fn zone(serial: u32) -> String {
    format!("$ORIGIN svc.test.\n$TTL 300\n@ SOA ns hm {serial} 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n")
}

fn conf(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("svc.zone"), zone(1)).unwrap();
    let c = dir.join("nsxdp.toml");
    std::fs::write(
        &c,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n{extra}\n\
             [[zone]]\nname = \"svc.test.\"\nfile = \"svc.zone\"\nserial-policy = \"keep\"\n\
             notify-ns = false\n"
        ),
    )
    .unwrap();
    c
}

/// Starts `nsxdp serve --config CONF` with `NOTIFY_SOCKET` set, waits for "ready".
fn start(dir: &Path, conf: &Path, notify: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--cores", "1", "--config"])
        .arg(conf)
        .env("NOTIFY_SOCKET", notify)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut log = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.ends_with(" info: ready") => break,
            Ok(l) => log += &(l + "\n"),
            Err(_) => {
                let _ = child.kill();
                panic!("nsxdp did not start:\n{log}");
            }
        }
    }
    child
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(child: &Child, sig: &str) {
    // Our own child, by PID.
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "nsxdp did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_unit_verifies() {
    if !common::have("systemd-analyze", "systemd") {
        return;
    }
    // The unit names the installed binary; verify checks that it exists, so point it at ours.
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/nsxdp.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nsxdp.service");
    std::fs::write(&path, unit.replace("/usr/bin/nsxdp", env!("CARGO_BIN_EXE_nsxdp"))).unwrap();
    let o = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let out = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.trim().is_empty(), "systemd-analyze verify:\n{out}");
}

#[test]
fn ready_and_stopping_are_told_and_usr_signals_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let c = conf(dir.path(), port, "");
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Stopped by its guard should an assertion fail first.
    let mut child = common::Proc(start(dir.path(), &c, &notify));
    assert_eq!(recv(&sock), "READY=1");
    assert_eq!(soa_serial(port, "svc.test."), Some(1), "READY=1 means serving");
    for sig in ["-USR1", "-USR2"] {
        signal(&child.0, sig);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.0.try_wait().unwrap().is_none(), "SIGUSR1/SIGUSR2 ended the server");
    assert_eq!(kdig_status(port, "svc.test.", "SOA", &[]), "NOERROR");
    signal(&child.0, "-TERM");
    assert_eq!(recv(&sock), "STOPPING=1");
    assert!(wait_exit(&mut child.0).success());
}

#[test]
fn user_switch_after_binding() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!in_ci(), "needs root under CI=true");
        common::skipped("switching users needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // nobody must reach the data directory (and nothing else of ours).
    let nobody = 65534;
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::os::unix::fs::chown(dir.path().join("data"), Some(nobody), Some(nobody)).unwrap();
    let port = free_port();
    let c = conf(dir.path(), port, "user = \"nobody\"");
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    std::os::unix::fs::chown(&notify, Some(nobody), Some(nobody)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Stopped by its guard should an assertion fail first.
    let mut child = common::Proc(start(dir.path(), &c, &notify));
    assert_eq!(recv(&sock), "READY=1", "told after the switch, as nobody");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    let field =
        |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().skip(1).collect::<Vec<_>>();
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");
    assert_eq!(field("CapPrm:"), ["0000000000000000"], "{status}");
    // Still serving, and a reload writes the journal and snapshot as nobody.
    assert_eq!(soa_serial(port, "svc.test."), Some(1));
    std::fs::write(dir.path().join("svc.zone"), zone(2)).unwrap();
    let (ok, out) = ctl(&c, &["reload"]);
    assert!(ok, "{out}");
    assert_eq!(soa_serial(port, "svc.test."), Some(2));
    let (ok, out) = ctl(&c, &["stop"]);
    assert!(ok, "{out}");
    assert!(wait_exit(&mut child.0).success());
    assert_eq!(recv(&sock), "STOPPING=1");

    // The zone file changes while the server is stopped: the next start journals the change
    // as root, before the switch. What it wrote is given to nobody, so that later reloads
    // can still write the journal.
    std::fs::write(dir.path().join("svc.zone"), zone(3)).unwrap();
    // Stopped by its guard should an assertion fail first.
    let mut child = common::Proc(start(dir.path(), &c, &notify));
    assert_eq!(recv(&sock), "READY=1");
    assert_eq!(soa_serial(port, "svc.test."), Some(3));
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (nobody, nobody), "{}", entry.path().display());
    }
    std::fs::write(dir.path().join("svc.zone"), zone(4)).unwrap();
    let (ok, out) = ctl(&c, &["reload"]);
    assert!(ok, "{out}");
    assert_eq!(soa_serial(port, "svc.test."), Some(4));
    let (ok, out) = ctl(&c, &["stop"]);
    assert!(ok, "{out}");
    assert!(wait_exit(&mut child.0).success());
}
