//! The secondary's checks run on a fixed set of threads (`transfer-workers`): 24 secondary
//! zones of one nsxdp primary, all due at once at start, all transferred by 2 workers — and
//! the server never has more than 2 transfer threads. `transfers-per-primary` bounds how
//! many of them one primary gets: a primary that hangs holds only its share.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, soa_serial, start_nsxdp, TEST_SECRET};

const ZONES: usize = 24;

fn zone_text(i: usize) -> String {
    format!("$ORIGIN z{i}.test.\n$TTL 300\n@ SOA ns hm {} 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n", 100 + i)
}

/// Threads of `pid` named `name`.
fn threads(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn many_due_zones_share_a_few_workers() {
    let (pd, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pp, sp) = (free_port(), free_port());
    let mut primary = format!(
        "[server]\nlisten = [\"127.0.0.1:{pp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"secondaries\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n"
    );
    let mut secondary = format!(
        "[server]\nlisten = [\"127.0.0.1:{sp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\ntransfer-workers = 2\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n"
    );
    for i in 0..ZONES {
        std::fs::write(pd.path().join(format!("z{i}.zone")), zone_text(i)).unwrap();
        primary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nfile = \"z{i}.zone\"\nacl = [\"secondaries\"]\nnotify-ns = false\n"
        );
        secondary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{pp} key xfr\"]\nnotify-ns = false\n"
        );
    }
    let (pc, sc) = (pd.path().join("nsxdp.toml"), sd.path().join("nsxdp.toml"));
    std::fs::write(&pc, primary).unwrap();
    std::fs::write(&sc, secondary).unwrap();
    let _p = start_nsxdp(pd.path(), &pc);
    let s = start_nsxdp(sd.path(), &sc);
    let (t0, mut most) = (Instant::now(), 0);
    let mut missing: Vec<usize> = (0..ZONES).collect();
    while !missing.is_empty() {
        most = most.max(threads(s.pid(), "nsxdp-xfrin"));
        missing.retain(|&i| soa_serial(sp, &format!("z{i}.test.")) != Some(100 + i as u32));
        assert!(t0.elapsed() < Duration::from_secs(60), "not transferred: {missing:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(most, 2, "transfer threads seen");
    assert_eq!(threads(s.pid(), "nsxdp-xfrin"), 2);
}

/// A primary that answers the SOA query with a newer serial and then accepts the transfer's
/// TCP connections without ever answering them; the most connections it held at once.
struct Hanging {
    port: u16,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hanging {
    fn start() -> Hanging {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        use std::sync::Arc;
        let port = free_port();
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let (most, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (m, s) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut open: Vec<std::net::TcpStream> = Vec::new();
            let mut buf = [0u8; 512];
            while !s.load(Relaxed) {
                // SOA queries: answered with serial 999 (the question copied, an SOA with
                // root names after it).
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    if n > 12 {
                        let mut m = buf[..n].to_vec();
                        m[2] = 0x84; // QR, AA
                        m[3] = 0;
                        m[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
                        m.truncate(12 + m[12..].iter().position(|&b| b == 0).unwrap() + 5);
                        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 1, 0, 0, 22, 0, 0]);
                        for v in [999u32, 3600, 600, 86400, 300] {
                            m.extend_from_slice(&v.to_be_bytes());
                        }
                        let _ = udp.send_to(&m, from);
                    }
                }
                while let Ok((c, _)) = tcp.accept() {
                    c.set_nonblocking(true).unwrap();
                    open.push(c);
                }
                // A connection the secondary gave up on is closed.
                open.retain(|mut c| !matches!(std::io::Read::read(&mut c, &mut buf), Ok(0)));
                m.fetch_max(open.len(), Relaxed);
            }
        });
        Hanging { port, most, stop }
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `transfers-per-primary = 1` with 3 workers: six zones of a primary that hangs in every
/// transfer are asked one at a time (never two connections to it at once), and the zones
/// of a working primary are transferred all the same on the other workers.
#[test]
fn a_hanging_primary_holds_only_its_share_of_the_workers() {
    let hang = Hanging::start();
    let (pd, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pp, sp) = (free_port(), free_port());
    let mut primary = format!(
        "[server]\nlisten = [\"127.0.0.1:{pp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[acl]]\nname = \"secondaries\"\naddress = [\"127.0.0.1\"]\naction = [\"transfer\"]\n"
    );
    let mut secondary = format!(
        "[server]\nlisten = [\"127.0.0.1:{sp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         transfer-workers = 3\ntransfers-per-primary = 1\n"
    );
    // The hanging primary's zones first: they fall due first.
    for i in 0..6 {
        secondary += &format!(
            "[[zone]]\nname = \"h{i}.test.\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{}\"]\n\
             transfer-timeout = 2\nnotify-ns = false\n",
            hang.port
        );
    }
    for i in 0..8 {
        std::fs::write(pd.path().join(format!("z{i}.zone")), zone_text(i)).unwrap();
        primary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nfile = \"z{i}.zone\"\nacl = [\"secondaries\"]\nnotify-ns = false\n"
        );
        secondary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{pp}\"]\nnotify-ns = false\n"
        );
    }
    let (pc, sc) = (pd.path().join("nsxdp.toml"), sd.path().join("nsxdp.toml"));
    std::fs::write(&pc, primary).unwrap();
    std::fs::write(&sc, secondary).unwrap();
    let _p = start_nsxdp(pd.path(), &pc);
    let _s = start_nsxdp(sd.path(), &sc);
    let t0 = Instant::now();
    let mut missing: Vec<usize> = (0..8).collect();
    while !missing.is_empty() {
        missing.retain(|&i| soa_serial(sp, &format!("z{i}.test.")) != Some(100 + i as u32));
        assert!(t0.elapsed() < Duration::from_secs(30), "not transferred: {missing:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Long enough for several transfers from the hanging primary to have been tried.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    assert_eq!(hang.most.load(std::sync::atomic::Ordering::Relaxed), 1, "transfers open at once to one primary");
}
