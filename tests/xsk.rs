//! AF_XDP sockets against the real kernel, on a veth pair between two network namespaces
//! made for this test (names carry the test's PID; addresses in 198.18.0.0/15 and
//! 2001:db8::/32 only). No XDP program is attached: this checks binding (copy mode on veth),
//! the fill ring, and the whole TX path — frames built with `dataplane::packet` in UMEM, the
//! TX ring, kicks (copy mode sends at most 32 frames a kick), the completion ring — by
//! receiving them with ordinary UDP sockets in the peer namespace, whose stack verifies the
//! checksums.
//!
//! Needs root and `ip`. Under `CI=true` a missing prerequisite fails the test; otherwise the
//! test is skipped with a message. The namespaces are removed even when the test fails.

mod common;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use nsxdp::dataplane::packet::{self, UdpFrameRepr, Vlan};
use nsxdp::dataplane::xsk::{BindMode, XdpMode, XskConfig, XskSocket};

const SRV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLI_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Whether the test can run; if not, fails under CI and says why otherwise.
fn prerequisites() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false);
    let why = if !root {
        "not running as root (effective uid is not 0)"
    } else if Command::new("ip").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        "`ip` (iproute2) is not installed"
    } else {
        return true;
    };
    assert!(!in_ci(), "the AF_XDP test cannot run (CI=true): {why}");
    common::skipped(why);
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Testbed {
    srv_ns: String,
    cli_ns: String,
    srv_if: String,
    created: Vec<String>,
}

impl Testbed {
    fn new() -> Testbed {
        let pid = std::process::id();
        let mut t = Testbed {
            srv_ns: format!("nsxk-{pid}-srv"),
            cli_ns: format!("nsxk-{pid}-cli"),
            srv_if: format!("xk{pid}s"),
            created: Vec::new(),
        };
        let cli_if = format!("xk{pid}c");
        for ns in [t.srv_ns.clone(), t.cli_ns.clone()] {
            ip(&["netns", "add", &ns]);
            t.created.push(ns);
        }
        let (s, c) = (&t.srv_ns, &t.cli_ns);
        // Created inside the server namespace, the peer straight in the client's: nothing
        // is left in the caller's namespace even if a later step fails.
        ip(&[
            "-n",
            s,
            "link",
            "add",
            &t.srv_if,
            "address",
            "02:00:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            &cli_if,
            "address",
            "02:00:00:00:00:02",
            "netns",
            c,
        ]);
        ip(&["-n", s, "addr", "add", "198.18.0.1/24", "dev", &t.srv_if]);
        ip(&["-n", s, "addr", "add", "2001:db8::1/64", "dev", &t.srv_if, "nodad"]);
        ip(&["-n", c, "addr", "add", "198.18.0.2/24", "dev", &cli_if]);
        ip(&["-n", c, "addr", "add", "2001:db8::2/64", "dev", &cli_if, "nodad"]);
        for (ns, dev) in [(s, "lo"), (c, "lo"), (s, t.srv_if.as_str()), (c, cli_if.as_str())] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        t
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let h = std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns with a namespace file descriptor we own, for a network namespace;
        // it changes only this thread's namespace, which ends with the thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn small_config(mode: BindMode) -> XskConfig {
    XskConfig {
        frame_size: 2048,
        frame_count: 256,
        rx_size: 64,
        tx_size: 64,
        fill_size: 128,
        comp_size: 64,
        huge_pages: false,
        mode,
    }
}

/// Builds one frame from `src` to `dst` carrying `payload` in a free UMEM frame.
fn build(xsk: &mut XskSocket, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> nsxdp::dataplane::xsk::Frame {
    let repr = UdpFrameRepr { dst_mac: CLI_MAC, src_mac: SRV_MAC, vlan: Vlan::Untagged, src, dst };
    let mut f = xsk.alloc_frame().expect("a free frame");
    let buf = xsk.frame_mut(&f);
    let h = repr.header_len();
    buf[h..h + payload.len()].copy_from_slice(payload);
    let n = repr.emit(buf, payload.len()).expect("frame fits");
    f.set_data(0..n);
    f
}

/// Waits until every frame put on the TX ring has come back through the completion ring.
fn drain(xsk: &mut XskSocket) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while xsk.tx_in_flight() > 0 {
        xsk.flush_tx(64);
        assert!(Instant::now() < deadline, "TX not completed: {} in flight", xsk.tx_in_flight());
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn xsk_binds_on_veth_and_transmits() {
    if !prerequisites() {
        return;
    }
    let bed = Testbed::new();

    // Receivers in the client namespace.
    let (u4, u6) = in_netns(&bed.cli_ns, || {
        let u4 = UdpSocket::bind("198.18.0.2:0").unwrap();
        let u6 = UdpSocket::bind("[2001:db8::2]:0").unwrap();
        for u in [&u4, &u6] {
            u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        (u4, u6)
    });
    let dst4 = u4.local_addr().unwrap();
    let dst6 = u6.local_addr().unwrap();
    let src4: SocketAddr = "198.18.0.1:5300".parse().unwrap();
    let src6: SocketAddr = "[2001:db8::1]:5300".parse().unwrap();

    let srv_if = bed.srv_if.clone();
    let counters = in_netns(&bed.srv_ns, move || {
        // Auto: veth has no zero-copy, so the fallback to copy mode must happen.
        let auto = XskSocket::open(&srv_if, 0, &small_config(BindMode::Auto)).expect("bind (auto)");
        eprintln!("AF_XDP on {srv_if} queue 0: {} mode", auto.mode());
        assert_eq!(auto.mode(), XdpMode::Copy);
        drop(auto);
        // A queue that veth does not have is refused with the step named.
        let err = XskSocket::open(&srv_if, 7, &small_config(BindMode::Copy)).unwrap_err();
        assert!(err.to_string().contains("bind"), "{err}");

        let mut xsk = XskSocket::open(&srv_if, 0, &small_config(BindMode::Copy)).expect("bind (copy)");
        assert_eq!(xsk.mode(), XdpMode::Copy);
        assert!(xsk.fd() >= 0);
        assert!(!xsk.huge_pages());
        // The fill ring was populated at open and the kernel has not consumed it (no XDP
        // program redirects anything to us).
        assert_eq!(xsk.fill_level(), 128);
        assert_eq!(xsk.free_frames(), 256 - 128);
        xsk.wakeup_rx();

        // One frame with a broken UDP checksum first: the receiving stack must drop it, so
        // the datagrams that arrive prove our checksums right.
        let bad = build(&mut xsk, src4, dst4, b"bad checksum");
        xsk.frame_mut(&bad)[14 + 20 + 6] ^= 0x55; // the UDP checksum
        let mut batch = Vec::with_capacity(64);
        batch.push(bad);
        batch.push(build(&mut xsk, src4, dst4, b"hello over IPv4"));
        batch.push(build(&mut xsk, src6, dst6, b"hello over IPv6, odd!"));
        assert_eq!(xsk.tx_submit(&mut batch), 3);
        assert!(xsk.kick_tx(), "copy mode always asks for a TX kick");
        drain(&mut xsk);

        // 100 frames in two batches of 50: more than one kick's worth each.
        for round in 0..2 {
            for i in 0..50 {
                let msg = format!("datagram {}", round * 50 + i);
                let f = build(&mut xsk, src4, dst4, msg.as_bytes());
                batch.push(f);
            }
            assert_eq!(xsk.tx_submit(&mut batch), 50);
            let left = xsk.flush_tx(16);
            assert_eq!(left, 0, "TX ring not drained");
            drain(&mut xsk);
        }
        assert_eq!(xsk.free_frames(), 256 - 128, "every sent frame came back");
        let ks = xsk.kernel_stats().expect("XDP_STATISTICS");
        assert_eq!(ks.tx_invalid_descs, 0);
        xsk.stats().snapshot()
    });
    eprintln!("counters: {counters}");
    assert_eq!(counters.tx, 103);
    assert_eq!(counters.tx_completed, 103);
    assert_eq!(counters.tx_ring_full + counters.tx_invalid + counters.wakeup_errors, 0);
    assert!(counters.tx_kicks >= 4, "expected several kicks, got {}", counters.tx_kicks);

    let mut buf = [0u8; 2048];
    let (n, from) = u4.recv_from(&mut buf).expect("IPv4 datagram");
    assert_eq!(from, src4);
    assert_eq!(&buf[..n], b"hello over IPv4", "the bad-checksum frame must have been dropped");
    let (n, from) = u6.recv_from(&mut buf).expect("IPv6 datagram");
    assert_eq!(from, src6);
    assert_eq!(&buf[..n], b"hello over IPv6, odd!");
    for i in 0..100 {
        let (n, _) = u4.recv_from(&mut buf).unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
    }

    // And a frame the peer sends back is a valid query for packet::parse — the same
    // functions build and check frames.
    let mut f = vec![0u8; 128];
    let repr = UdpFrameRepr { dst_mac: SRV_MAC, src_mac: CLI_MAC, vlan: Vlan::Untagged, src: dst4, dst: src4 };
    let n = repr.emit(&mut f, 0).unwrap();
    assert!(packet::parse(&f[..n]).is_ok());
    drop(bed);
}
