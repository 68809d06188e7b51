//! `nsxdp serve --xdp` between two network namespaces joined by veth (names carry the
//! test's PID; addresses 198.18.0.0/15 and 2001:db8::/32 only), the server started with
//! `ip netns exec` on one side, clients on the other:
//!
//! - `xdp_serve_answers_through_af_xdp`: (serving as `--user nobody` once attached and
//!   bound) kdig over IPv4 and IPv6 answered through AF_XDP
//!   (the XDP program's `redirected` counter and the queue loop's counters account for
//!   every UDP query, the kernel UDP socket for none), TCP through the kernel; ping and a
//!   non-DNS UDP port still reach the kernel; malformed frames (sent raw through AF_PACKET)
//!   dropped and counted by the XDP program or by the loop, by reason; NOTIFY handed to the
//!   control side and answered NOTIMP; the whole differential battery
//!   (`tests/differential/run.py --pair`) answered byte for byte as the kernel-socket path
//!   answers it (a second nsxdp without --xdp in the server namespace, on another port),
//!   over IPv4 and IPv6; the program detached after SIGTERM.
//! - `xdp_serve_restarts_after_kill_9`: after kill -9 nothing is left attached; a stale
//!   nsxdp program (attached with `ip`, as a crashed older loader would leave it) is
//!   replaced at start and the server answers; a foreign program is refused without
//!   --xdp-force and replaced with it.
//!
//! veth offloads UDP checksums to the receiver, so a kernel-sent datagram arrives at XDP
//! with its checksum unfinished; nsxdp verifies checksums, so the client side turns the
//! offload off (`ethtool -K IF tx off`), as a real NIC would have finished the checksum.
//!
//! Needs root, ip, ethtool, ping and kdig (the differential part also Debian's python3 with
//! dnspython). Without them the tests are skipped with a message, except under `CI=true`,
//! where that is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::{checksum, dns_query, send_raw, Testbed, CLI4, CLI6, CLI_MAC, SRV4, SRV6, SRV_MAC};

const PYTHON: &str = "/usr/bin/python3";

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip_or_fail(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: cannot run (CI=true, so this is a failure): {why}");
    common::skipped(why);
}

fn skip_part_or_fail(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: cannot run (CI=true, so this is a failure): {why}");
    common::skipped_part(why);
}

fn which(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

/// Whether the test can run: root and the tools.
fn prerequisites(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip_or_fail(test, "needs root (BPF, AF_XDP and network namespaces)");
        return false;
    }
    for tool in ["ip", "ethtool", "ping", "kdig"] {
        if !which(tool) {
            skip_or_fail(test, &format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Two namespaces joined by veth

// ---------------------------------------------------------------------------------------
// The server

const EXAMPLE_ZONE: &str = "examples/example.com.zone";
const DIFF_ZONES: [&str; 3] = [
    "tests/differential/zones/diff.test.zone",
    "tests/differential/zones/other.test.zone",
    "tests/differential/zones/hosted.diff.test.zone",
];

/// `nsxdp serve` in the server namespace (started with `ip netns exec`, which execs it:
/// the child's PID is nsxdp's).
struct Server {
    child: Child,
    stderr: mpsc::Receiver<String>,
    /// Everything read from stderr so far.
    log: String,
}

impl Server {
    /// Starts nsxdp with `args` after `serve`; waits for "info: ready", or returns the
    /// output if it exits first.
    fn start(tb: &Testbed, data_dir: &Path, args: &[&str]) -> Result<Server, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &tb.srv, env!("CARGO_BIN_EXE_nsxdp"), "serve"]);
        cmd.args(args).arg("--data-dir").arg(data_dir).current_dir(env!("CARGO_MANIFEST_DIR"));
        for z in [EXAMPLE_ZONE].iter().chain(&DIFF_ZONES) {
            cmd.args(["--zone", z]);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut s = Server { child, stderr: rx, log: String::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match s.stderr.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    s.log.push_str(&line);
                    s.log.push('\n');
                    if line.ends_with(" info: ready") {
                        return Ok(s);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = s.child.try_wait() {
                        s.drain();
                        return Err(format!("nsxdp exited ({status}) before it was ready:\n{}", s.log));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = s.child.wait().unwrap();
                    return Err(format!("nsxdp exited ({status}) before it was ready:\n{}", s.log));
                }
            }
        }
        Err(format!("nsxdp not ready within 60 s:\n{}", s.log))
    }

    fn drain(&mut self) {
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            self.log.push_str(&l);
            self.log.push('\n');
        }
    }

    /// SIGTERM (to our own child, by PID); the full output once it has exited, which it
    /// must do cleanly.
    fn stop(mut self) -> String {
        // SAFETY: kill on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        self.drain();
        assert!(status.success(), "nsxdp exit {status}:\n{}", self.log);
        std::mem::take(&mut self.log)
    }

    /// SIGKILL, to our own child.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` on the first line of `log` that starts with `prefix`.
fn counter(log: &str, prefix: &str, key: &str) -> u64 {
    let line = log.lines().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in:\n{log}"));
    line.split_whitespace()
        .find_map(|w| {
            w.trim_start_matches('(').strip_prefix(key)?.strip_prefix('=')?.trim_end_matches(')').parse().ok()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Frames (for the malformed ones, sent raw)

fn udp4(dns: &[u8]) -> Vec<u8> {
    let len = (8 + dns.len()) as u16;
    let mut d = [&40000u16.to_be_bytes()[..], &53u16.to_be_bytes(), &len.to_be_bytes(), &[0, 0], dns].concat();
    let pseudo = [&CLI4.octets()[..], &SRV4.octets(), &[0, 17], &len.to_be_bytes()].concat();
    let sum = checksum(&[&pseudo, &d]);
    d[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + len).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&CLI4.octets());
    ip.extend_from_slice(&SRV4.octets());
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    [&SRV_MAC[..], &CLI_MAC, &[0x08, 0x00], &ip, &d].concat()
}

/// An IPv6 UDP datagram to port 53 with checksum `sum` (None: computed).
fn udp6(dns: &[u8], sum: Option<u16>) -> Vec<u8> {
    let len = (8 + dns.len()) as u16;
    let mut d = [&40000u16.to_be_bytes()[..], &53u16.to_be_bytes(), &len.to_be_bytes(), &[0, 0], dns].concat();
    let pseudo = [&CLI6.octets()[..], &SRV6.octets(), &u32::from(len).to_be_bytes(), &[0, 0, 0, 17]].concat();
    let sum = sum.unwrap_or_else(|| checksum(&[&pseudo, &d]));
    d[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&CLI6.octets());
    ip.extend_from_slice(&SRV6.octets());
    [&SRV_MAC[..], &CLI_MAC, &[0x86, 0xdd], &ip, &d].concat()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn xdp_serve_answers_through_af_xdp() {
    const TEST: &str = "xdp_serve_answers_through_af_xdp";
    if !prerequisites(TEST) {
        return;
    }
    let tb = Testbed::new('s', true);
    let dir = tempfile::tempdir().unwrap();
    let (xdp_dir, kernel_dir) = (dir.path().join("xdp"), dir.path().join("kernel"));
    let listen = ["--listen", "198.18.0.1:53", "--listen", "[2001:db8::1]:53"];
    // It serves as nobody once the program is attached and the sockets bound; it keeps
    // CAP_NET_ADMIN in the thread that detaches the program at exit.
    let xdp_args = [&listen[..], &["--xdp", &tb.srv_if, "--cores", "1", "--user", "nobody"]].concat();
    let srv = Server::start(&tb, &xdp_dir, &xdp_args).unwrap_or_else(|e| panic!("{e}"));
    assert!(srv.log.contains("AF_XDP on"), "{}", srv.log);
    assert!(srv.log.contains("running as user nobody"), "{}", srv.log);
    let prog_id = tb.ip_sees().map(|(_, id)| id).expect("an XDP program is attached while nsxdp runs");

    // kdig over UDP, IPv4 and IPv6, and over TCP (the kernel's).
    let mut udp_queries = 0;
    for at in ["@198.18.0.1", "@2001:db8::1"] {
        assert_eq!(tb.kdig(&[at, "example.com", "A", "+short"]).trim(), "192.0.2.1");
        assert_eq!(tb.kdig(&[at, "www.example.com", "AAAA", "+short"]).trim(), "example.com.\n2001:db8::1");
        let mx = tb.kdig(&[at, "example.com", "MX"]);
        assert!(mx.contains("status: NOERROR") && mx.contains("192.0.2.25") && mx.contains("(UDP)"), "{mx}");
        let nx = tb.kdig(&[at, "nothere.example.com", "A"]);
        assert!(nx.contains("status: NXDOMAIN"), "{nx}");
        udp_queries += 4;
        let tcp = tb.kdig(&["+tcp", at, "example.com", "SOA"]);
        assert!(tcp.contains("status: NOERROR") && tcp.contains("(TCP)") && tcp.contains("2026112301"), "{tcp}");
    }
    // NOTIFY is handed to the control side, which answers NOTIMP (for now) from the
    // address it was sent to.
    let notify = tb.kdig(&["@198.18.0.1", "example.com", "NOTIFY"]);
    assert!(notify.contains("opcode: NOTIFY") && notify.contains("status: NOTIMP"), "{notify}");
    udp_queries += 1;
    // A query signed with a key nobody has is handed over too, and gets NOTAUTH with the
    // TSIG error BADKEY (RFC 8945 §5.2.1), though this server runs without keys.
    let badkey = tb.kdig(&[
        "@198.18.0.1",
        "-y",
        "hmac-sha256:nokey:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "example.com",
        "SOA",
    ]);
    assert!(badkey.contains("status: BADKEY") && badkey.contains("TSIG PSEUDOSECTION"), "{badkey}");
    udp_queries += 1;

    // ping and a UDP port that is not DNS still reach the kernel.
    tb.client(&["ping", "-c", "1", "-W", "2", "198.18.0.1"]);
    tb.client(&["ping", "-6", "-c", "1", "-W", "2", "2001:db8::1"]);
    let other = tb.in_ns(&tb.srv, || UdpSocket::bind("198.18.0.1:9999").unwrap());
    other.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tb.in_ns(&tb.cli, || UdpSocket::bind("198.18.0.2:0").unwrap().send_to(b"not dns", "198.18.0.1:9999").unwrap());
    let mut buf = [0u8; 64];
    let (n, _) = other.recv_from(&mut buf).expect("a datagram to port 9999 reaches the kernel");
    assert_eq!(&buf[..n], b"not dns");

    // Malformed frames: dropped by the XDP program (4 octets of DNS) or by the loop (bad
    // IPv4 header checksum, bad UDP checksum, IPv6 without a UDP checksum), and a DNS
    // response, which the engine drops; each counted. Then a good one by the same route.
    let cli_if = tb.cli_if.clone();
    tb.in_ns(&tb.cli, || {
        send_raw(&cli_if, &udp4(&dns_query(4)));
        let mut bad_ip = udp4(&dns_query(33));
        bad_ip[14 + 10] ^= 0x01;
        send_raw(&cli_if, &bad_ip);
        let mut bad_udp = udp4(&dns_query(33));
        bad_udp[14 + 20 + 6] ^= 0x01;
        send_raw(&cli_if, &bad_udp);
        send_raw(&cli_if, &udp6(&dns_query(33), Some(0)));
        let mut response = dns_query(33);
        response[2] |= 0x80;
        send_raw(&cli_if, &udp4(&response));
        send_raw(&cli_if, &udp6(&dns_query(33), None));
    });
    udp_queries += 5;
    assert_eq!(tb.kdig(&["@198.18.0.1", "a.b.c.example.com", "A", "+short"]).trim(), "192.0.2.3");
    udp_queries += 1;

    // The whole differential battery, byte for byte against the kernel-socket path: a
    // second nsxdp without --xdp in the server namespace, on port 5300 (which the XDP
    // program passes to the kernel), over IPv4 and IPv6.
    let mut battery = 0;
    if !Path::new(PYTHON).exists() {
        skip_part_or_fail(TEST, &format!("differential part: {PYTHON} is not installed"));
    } else {
        let kargs = ["--listen", "198.18.0.1:5300", "--listen", "[2001:db8::1]:5300", "--cores", "1"];
        let kernel = Server::start(&tb, &kernel_dir, &kargs).unwrap_or_else(|e| panic!("{e}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/run.py");
        for (xdp_at, kernel_at) in [("198.18.0.1:53", "198.18.0.1:5300"), ("[2001:db8::1]:53", "[2001:db8::1]:5300")] {
            let out = Command::new("ip")
                .args(["netns", "exec", &tb.cli, PYTHON])
                .arg(&script)
                .args(["--pair", xdp_at, kernel_at, "--time-limit", "60"])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            match out.status.code() {
                Some(0) => {
                    println!("{}", stdout.trim());
                    let n: u64 = stdout.split(": ").nth(2).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
                    assert!(n > 10_000, "{stdout}");
                    battery += n;
                }
                Some(3) => {
                    skip_part_or_fail(TEST, &format!("differential part: {}", stdout.trim()));
                    break;
                }
                status => panic!(
                    "XDP and kernel paths differ (run.py exit {status:?}):\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        let klog = kernel.stop();
        assert!(counter(&klog, " info: stopping; UDP", "received") >= battery, "{klog}");
    }

    // SIGTERM: a clean exit, counters that account for every UDP query, nothing attached.
    let log = srv.stop();
    eprintln!("{log}");
    assert_eq!(tb.ip_sees().map(|(_, id)| id), None, "the XDP program (id {prog_id}) is still attached after SIGTERM");
    assert!(log.contains("XDP program detached from"), "{log}");
    // Every query sent over UDP to port 53 went to the AF_XDP socket (kdig and run.py may
    // have repeated some after a timeout on this busy machine, hence at least).
    let redirected = counter(&log, " info: XDP program xdp:", "redirected");
    assert!(redirected >= udp_queries + battery, "{redirected} < {udp_queries} + {battery}:\n{log}");
    assert_eq!(counter(&log, " info: XDP program xdp:", "drop_short"), 1, "{log}");
    assert_eq!(counter(&log, " info: XDP queue 0 (", "rx"), redirected, "{log}");
    assert_eq!(counter(&log, " info: XDP queue 0 (", "tx"), counter(&log, " info: XDP queue 0 DNS", "sent"), "{log}");
    let frames = " info: XDP queue 0 frames";
    assert_eq!(counter(&log, frames, "dropped"), 3, "{log}");
    assert_eq!(counter(&log, frames, "bad_ip_checksum"), 1, "{log}");
    assert_eq!(counter(&log, frames, "bad_udp_checksum"), 1, "{log}");
    assert_eq!(counter(&log, frames, "missing_udp_checksum"), 1, "{log}");
    let handed_off = counter(&log, frames, "handed_off");
    assert!(handed_off >= 1, "{log}");
    assert_eq!(counter(&log, " info: handoff", "answered"), handed_off, "{log}");
    // What the loop received is what it dropped, handed off or gave the engine, which
    // answered all but the response.
    let dns = " info: XDP queue 0 DNS";
    let received = counter(&log, dns, "received");
    assert_eq!(received, redirected - 3 - handed_off, "{log}");
    assert_eq!(counter(&log, dns, "dropped_response"), 1, "{log}");
    assert_eq!(counter(&log, dns, "sent"), received - 1, "{log}");
    // The kernel's UDP sockets on the listen addresses saw none of it; TCP went there.
    assert_eq!(counter(&log, " info: UDP (kernel)", "received"), 0, "{log}");
    assert_eq!(counter(&log, " info: TCP", "received"), 2, "{log}");
}

#[test]
fn xdp_serve_restarts_after_kill_9() {
    const TEST: &str = "xdp_serve_restarts_after_kill_9";
    if !prerequisites(TEST) {
        return;
    }
    let tb = Testbed::new('s', true);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "198.18.0.1:53", "--xdp", &tb.srv_if, "--queues", "0", "--cores", "0"];
    let answers = |what: &str| {
        let a = tb.kdig(&["@198.18.0.1", "example.com", "A", "+short"]);
        assert_eq!(a.trim(), "192.0.2.1", "{what}");
    };

    let srv = Server::start(&tb, dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    answers("first start");
    assert!(tb.ip_sees().map(|(_, id)| id).is_some());
    srv.kill_9();
    // Our attachment is a BPF link: the kernel removes it with the process.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tb.ip_sees().map(|(_, id)| id).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tb.ip_sees().map(|(_, id)| id), None, "kill -9 left the program attached");

    // A stale nsxdp program attached the old way (netlink), which survives its loader.
    let stale = tb.ip_attach("xdpdrv", "nsxdp.bpf.o");
    let srv = Server::start(&tb, dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    assert!(srv.log.contains("removed stale nsxdp XDP program"), "{}", srv.log);
    let now = tb.ip_sees().map(|(_, id)| id).expect("attached");
    assert_ne!(now, stale);
    answers("after replacing a stale program");
    let log = srv.stop();
    assert_eq!(tb.ip_sees().map(|(_, id)| id), None, "{log}");
    assert!(counter(&log, " info: XDP program xdp:", "redirected") >= 1, "{log}");

    // Someone else's program: refused, left in place; replaced with --xdp-force.
    let foreign = tb.ip_attach("xdpdrv", "foreign_pass.bpf.o");
    let err = Server::start(&tb, dir.path(), &args).err().expect("a foreign program is refused");
    assert!(err.contains("--xdp-force"), "{err}");
    assert_eq!(tb.ip_sees().map(|(_, id)| id), Some(foreign));
    let forced = [&args[..], &["--xdp-force"]].concat();
    let srv = Server::start(&tb, dir.path(), &forced).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(tb.ip_sees().map(|(_, id)| id), Some(foreign));
    answers("after forcing out a foreign program");
    let log = srv.stop();
    assert_eq!(tb.ip_sees().map(|(_, id)| id), None, "{log}");
}
