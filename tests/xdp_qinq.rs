//! `nsxdp serve --xdp` answers queries that arrive double-tagged (QinQ) and sends the
//! answers back with both tags.
//!
//! Two network namespaces joined by veth (`common::netns::Testbed`; 198.18.0.0/15 and
//! 2001:db8::/32 only). The client sends DNS queries as raw frames (AF_PACKET) carrying an
//! 802.1ad tag (VLAN 100) over an 802.1Q tag (VLAN 200), or an 802.1Q tag over another,
//! and reads what comes back with an AF_PACKET socket (the client's kernel takes the outer
//! tag off into the packet's metadata, which `PACKET_AUXDATA` gives back). The server's
//! kernel has no VLAN devices (this test's kernel has no 802.1Q support at all): it drops
//! what is tagged, so an answer can only come from nsxdp's AF_XDP path, which the XDP
//! program hands QinQ frames to and `dataplane::packet` must parse and turn around with
//! their tags. A frame with three tags is the kernel's, and goes unanswered.
//!
//! Needs root, ip and ethtool. Without them the test is skipped with a message, except
//! under `CI=true`, where that is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::netns::{checksum, send_raw, Testbed, CLI4, CLI6, CLI_MAC, SRV4, SRV6, SRV_MAC};
use nsxdp::dataplane::packet;

fn prerequisites(test: &str) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let skip = |why: String| {
        assert!(!ci, "{test}: cannot run (CI=true, so this is a failure): {why}");
        common::skipped(&why);
        false
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root (BPF, AF_XDP and network namespaces)".into());
    }
    for tool in ["ip", "ethtool"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(tool).exists());
        if !found {
            return skip(format!("{tool} is not installed"));
        }
    }
    true
}

/// A DNS query (ID `id`, example.com A) from CLI4:40000 to SRV4:53 (or the IPv6 pair),
/// checksums right, with `tags` ((TPID, TCI), outermost first) after the addresses.
fn tagged_query(id: u16, v6: bool, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut dns = id.to_be_bytes().to_vec();
    dns.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    let len = (8 + dns.len()) as u16;
    let mut udp = [&40000u16.to_be_bytes()[..], &53u16.to_be_bytes(), &len.to_be_bytes(), &[0, 0], &dns].concat();
    let (ethertype, ip) = if v6 {
        let pseudo = [&CLI6.octets()[..], &SRV6.octets(), &u32::from(len).to_be_bytes(), &[0, 0, 0, 17]].concat();
        let sum = checksum(&[&pseudo, &udp]);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&[17, 64]);
        ip.extend_from_slice(&CLI6.octets());
        ip.extend_from_slice(&SRV6.octets());
        (0x86ddu16, ip)
    } else {
        let pseudo = [&CLI4.octets()[..], &SRV4.octets(), &[0, 17], &len.to_be_bytes()].concat();
        let sum = checksum(&[&pseudo, &udp]);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + len).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&CLI4.octets());
        ip.extend_from_slice(&SRV4.octets());
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        (0x0800u16, ip)
    };
    let mut f = [&SRV_MAC[..], &CLI_MAC].concat();
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    [f, ip, udp].concat()
}

/// An AF_PACKET socket on `ifname` (in the calling thread's namespace) that reports the
/// VLAN tag the kernel took off a frame.
struct Tap(OwnedFd);

impl Tap {
    fn open(ifname: &str) -> Tap {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call, result checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(all)) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        // SAFETY: we own the new fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex != 0, "no interface {ifname}");
        // SAFETY: all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = all;
        at.sll_ifindex = ifindex as i32;
        // SAFETY: a sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&at as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let on: libc::c_int = 1;
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        // SAFETY: option values of the sizes given.
        unsafe {
            assert_eq!(
                libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, (&on as *const i32).cast(), 4),
                0
            );
            assert_eq!(
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32
                ),
                0
            );
        }
        Tap(fd)
    }

    /// The next frame, with the tag the kernel took off put back in front of the rest;
    /// None after 100 ms of silence.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: all-zero msghdr is valid; the buffers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: msg points at live buffers of the lengths it gives.
        let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return None;
        }
        let mut frame = buf[..n as usize].to_vec();
        // SAFETY: walking the control messages the kernel wrote into `control`.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            // SAFETY: `c` is a control message header within `control`.
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: PACKET_AUXDATA carries a tpacket_auxdata (read unaligned).
                let aux: libc::tpacket_auxdata =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>()) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && frame.len() >= 12 {
                    let tpid =
                        if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    let tag = [tpid.to_be_bytes(), aux.tp_vlan_tci.to_be_bytes()].concat();
                    frame.splice(12..12, tag);
                }
            }
            // SAFETY: the next header after `c` in the same buffer, or null.
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
        Some(frame)
    }
}

#[test]
fn xdp_serve_answers_qinq_with_its_tags() {
    const TEST: &str = "xdp_serve_answers_qinq_with_its_tags";
    if !prerequisites(TEST) {
        return;
    }
    let tb = Testbed::new('q', true);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.srv, env!("CARGO_BIN_EXE_nsxdp"), "serve"])
        .args(["--listen", "198.18.0.1:53", "--listen", "[2001:db8::1]:53", "--xdp", &tb.srv_if, "--cores", "1"])
        .args(["--zone", "examples/example.com.zone", "--data-dir"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.lines().any(|l| l.ends_with(" info: ready")) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => log.push_str(&(line + "\n")),
            Err(_) if Instant::now() > deadline || child.try_wait().unwrap().is_some() => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nsxdp did not start:\n{log}");
            }
            Err(_) => {}
        }
    }

    // (what, tags, IPv6?, answered?)
    type Tags = &'static [(u16, u16)];
    let cases: [(&str, Tags, bool, bool); 6] = [
        ("802.1ad over 802.1Q, IPv4", &[(0x88a8, 100), (0x8100, 200)], false, true),
        ("802.1ad over 802.1Q, IPv6", &[(0x88a8, 100), (0x8100, 0x20c8)], true, true),
        ("802.1Q over 802.1Q, IPv4", &[(0x8100, 0xe005), (0x8100, 7)], false, true),
        ("802.1ad alone, IPv6", &[(0x88a8, 300)], true, true),
        ("802.1Q alone, IPv4", &[(0x8100, 42)], false, true),
        ("three tags, IPv4", &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], false, false),
    ];
    let cli_if = tb.cli_if.clone();
    let replies: Vec<Option<Vec<u8>>> = tb.in_ns(&tb.cli, || {
        let tap = Tap::open(&cli_if);
        let mut out = Vec::new();
        for (i, (_, tags, v6, answered)) in cases.iter().enumerate() {
            let id = 0x5100 + i as u16;
            let query = tagged_query(id, *v6, tags);
            let mut got = None;
            // Three tries a second apart for what must be answered; one for what must not.
            for _ in 0..if *answered { 3 } else { 1 } {
                send_raw(&cli_if, &query);
                let until = Instant::now() + Duration::from_secs(1);
                while got.is_none() && Instant::now() < until {
                    let Some(f) = tap.recv() else { continue };
                    let ours = f.len() > 12 && f[6..12] == SRV_MAC;
                    let dns = packet::parse(&f).ok().map(|d| f[d.payload_range()].to_vec());
                    if ours && dns.is_some_and(|m| m.len() >= 12 && m[..2] == id.to_be_bytes()) {
                        got = Some(f);
                    }
                }
                if got.is_some() {
                    break;
                }
            }
            out.push(got);
        }
        out
    });

    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push_str(&(line + "\n"));
    }
    assert!(status.success(), "nsxdp exit {status}:\n{log}");

    for ((what, tags, _, answered), reply) in cases.iter().zip(&replies) {
        match (answered, reply) {
            (true, Some(f)) => {
                assert_eq!(&f[..6], &CLI_MAC, "{what}");
                let tag_bytes: Vec<u8> =
                    tags.iter().flat_map(|(p, t)| [p.to_be_bytes(), t.to_be_bytes()].concat()).collect();
                assert_eq!(&f[12..12 + tag_bytes.len()], &tag_bytes[..], "{what}: the reply's tags");
                let d = packet::parse(f).unwrap();
                let m = &f[d.payload_range()];
                // QR and AA, NOERROR, one answer: example.com A 192.0.2.1.
                assert_eq!((m[2] & 0x84, m[3] & 0x0f, &m[6..8]), (0x84, 0, &[0u8, 1][..]), "{what}: {m:02x?}");
                assert!(m.ends_with(&[0, 4, 192, 0, 2, 1]), "{what}: {m:02x?}");
            }
            (false, None) => {}
            (true, None) => panic!("{what}: no answer\n{log}"),
            (false, Some(f)) => panic!("{what}: answered: {f:02x?}"),
        }
    }
}
