//! The root-only testbed of the XDP tests (../shared/testbed.md): a server and a client
//! network namespace joined by a veth pair, with 198.18.0.1/.2 and 2001:db8::1/::2; and raw
//! frames sent out of an interface.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const SRV_MAC: [u8; 6] = [0x02, 0, 0, 0x18, 0, 0x01];
pub const CLI_MAC: [u8; 6] = [0x02, 0, 0, 0x18, 0, 0x02];
pub const SRV4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLI4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SRV6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLI6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command that must succeed; its stdout.
pub fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server and a client namespace joined by a veth pair; deleted (with the pair) on drop.
pub struct Testbed {
    pub srv: String,
    pub cli: String,
    pub srv_if: String,
    pub cli_if: String,
}

impl Testbed {
    /// A new testbed; `tag` (one letter per test file) keeps the names of concurrent test
    /// binaries apart. With `client_tx_off`, the client's kernel finishes its own UDP
    /// checksums (veth leaves them to "hardware" otherwise, and nsxdp checks them).
    pub fn new(tag: char, client_tx_off: bool) -> Testbed {
        let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let tb = Testbed {
            srv: format!("nsxdp-{tag}{pid}-{n}-srv"),
            cli: format!("nsxdp-{tag}{pid}-{n}-cli"),
            srv_if: format!("{tag}s{pid}_{n}"),
            cli_if: format!("{tag}c{pid}_{n}"),
        };
        assert!(tb.srv_if.len() <= 15);
        let (srv, cli, s, c) = (&tb.srv[..], &tb.cli[..], &tb.srv_if[..], &tb.cli_if[..]);
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let (smac, cmac) = (mac(SRV_MAC), mac(CLI_MAC));
        run(&["ip", "netns", "add", srv]);
        run(&["ip", "netns", "add", cli]);
        // From here on, drop cleans up whatever happens.
        run(&[
            "ip", "link", "add", s, "address", &smac, "netns", srv, "type", "veth", "peer", "name", c, "address",
            &cmac, "netns", cli,
        ]);
        run(&["ip", "-n", srv, "addr", "add", "198.18.0.1/24", "dev", s]);
        run(&["ip", "-n", srv, "addr", "add", "2001:db8::1/64", "dev", s, "nodad"]);
        run(&["ip", "-n", cli, "addr", "add", "198.18.0.2/24", "dev", c]);
        run(&["ip", "-n", cli, "addr", "add", "2001:db8::2/64", "dev", c, "nodad"]);
        for (ns, dev) in [(srv, s), (cli, c)] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        if client_tx_off {
            run(&["ip", "netns", "exec", cli, "ethtool", "-K", c, "tx", "off"]);
        }
        tb
    }

    /// Runs `f` on a thread that has entered network namespace `ns`.
    pub fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(&path);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// What `ip` says about the server interface's XDP program: (mode flag, prog id).
    pub fn ip_sees(&self) -> Option<(String, u32)> {
        let out = run(&["ip", "-n", &self.srv, "-d", "link", "show", "dev", &self.srv_if]);
        let first = out.lines().next().unwrap_or("");
        let flags = first.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(_, r)| r).unwrap_or("");
        let mode = flags.split_whitespace().find(|w| w.starts_with("xdp")).map(str::to_string);
        let id = out.split("prog/xdp id ").nth(1).and_then(|r| r.split_whitespace().next()).map(|i| i.parse().unwrap());
        match (mode, id) {
            (Some(m), Some(i)) => Some((m, i)),
            (None, None) => None,
            other => panic!("cannot read ip's output ({other:?}): {out}"),
        }
    }

    /// Attaches a program from a BPF object file with `ip` (netlink, no BPF link: what Knot,
    /// an older loader that crashed, or someone else leaves behind), in `mode` (`xdpdrv` or
    /// `xdpgeneric`); returns its id.
    pub fn ip_attach(&self, mode: &str, object: &str) -> u32 {
        let path = format!("{}/ebpf/{object}", env!("CARGO_MANIFEST_DIR"));
        run(&["ip", "-n", &self.srv, "link", "set", "dev", &self.srv_if, mode, "obj", &path, "sec", "xdp"]);
        self.ip_sees().expect("ip attached a program").1
    }

    /// Runs a command in the client namespace; its stdout.
    pub fn client(&self, cmd: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.cli];
        full.extend_from_slice(cmd);
        run(&full)
    }

    /// kdig from the client namespace (two tries, one second each).
    pub fn kdig(&self, args: &[&str]) -> String {
        let mut cmd = vec!["kdig", "+timeout=1", "+retry=1"];
        cmd.extend_from_slice(args);
        self.client(&cmd)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_netns(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns on an fd we hold; CLONE_NEWNET affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Sends `frame` as it is out of interface `ifname` (in the calling thread's namespace).
pub fn send_raw(ifname: &str, frame: &[u8]) {
    // SAFETY: plain socket call, result checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // SAFETY: we own the new fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex != 0, "no interface {ifname}");
    // SAFETY: all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: frame and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(n, frame.len() as isize, "AF_PACKET send: {}", std::io::Error::last_os_error());
}

/// The Internet checksum (RFC 1071) over the chunks, each padded to an even length.
pub fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A DNS query for www.example.com A, id 0x1234, cut to `len` if shorter.
pub fn dns_query(len: usize) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    q.truncate(len);
    q
}
