//! The metrics endpoint and `nsxdp ctl stats`/`status`/`stop` of a running `nsxdp serve`,
//! over real sockets: queries from kdig and dnspython move the counters by exactly their
//! number, over UDP and TCP; `promtool check metrics` accepts the exposition; a real
//! Prometheus (the Debian `prometheus` package) scrapes the endpoint and answers queries
//! about it through its HTTP API; `ctl stop` ends the server cleanly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

fn have_dnspython() -> bool {
    let ok = Command::new(PYTHON).args(["-c", "import dns.message"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !common::in_ci(),
            "{PYTHON} with dnspython is required under CI=true (apt-get install python3-dnspython)"
        );
        common::skipped(&format!("{PYTHON} with dnspython not found (apt-get install python3-dnspython)"));
    }
    ok
}

/// A running server with its metrics endpoint.
struct Served {
    proc: common::Proc,
    conf: PathBuf,
    port: u16,
    metrics_port: u16,
}

fn start(dir: &Path) -> Served {
    let port = common::free_port();
    let metrics_port = common::free_port();
    let zone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let conf = dir.join("nsxdp.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             metrics = \"127.0.0.1:{metrics_port}\"\n\
             [[zone]]\nname = \"example.com\"\nfile = \"{}\"\nnotify-ns = false\n",
            zone.display()
        ),
    )
    .unwrap();
    let proc = common::start_nsxdp(dir, &conf);
    Served { proc, conf, port, metrics_port }
}

/// GET `path` from 127.0.0.1:`port`: the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    // Prometheus answers with chunks when the length is not known: their sizes are lines of
    // hex, and the JSON has none of those lines alone.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split("\r\n").enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, p)| p).collect()
    } else {
        body.to_string()
    };
    (code, body)
}

/// The value of the sample `name{labels}` exactly as written (labels in our order), 0 when
/// absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// `nsxdp ctl --config CONF ARGS...`: the exit status's success and stdout.
fn ctl(conf: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_nsxdp")).args(["ctl", "--config"]).arg(conf).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// kdig with several questions on one command line, over UDP or TCP; the number of replies
/// it printed.
fn kdig(port: u16, tcp: bool, questions: &[(&str, &str)]) -> usize {
    let mut cmd = Command::new("kdig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+time=5", "+retry=0"]);
    if tcp {
        cmd.arg("+tcp");
    }
    for (name, qtype) in questions {
        cmd.args([*name, *qtype]);
    }
    let o = cmd.output().unwrap();
    String::from_utf8_lossy(&o.stdout).matches(";; ->>HEADER<<-").count()
}

/// dnspython: `n` queries for `name`/`qtype` over UDP and `n` over TCP (one connection
/// each); the number of answers it got.
fn dnspython(port: u16, name: &str, qtype: &str, n: usize) -> usize {
    let script = format!(
        "import dns.message, dns.query\n\
         got = 0\n\
         for i in range({n}):\n\
         \x20   q = dns.message.make_query('{name}', '{qtype}')\n\
         \x20   got += dns.query.udp(q, '127.0.0.1', port={port}, timeout=5) is not None\n\
         for i in range({n}):\n\
         \x20   q = dns.message.make_query('{name}', '{qtype}')\n\
         \x20   got += dns.query.tcp(q, '127.0.0.1', port={port}, timeout=5) is not None\n\
         print(got)\n"
    );
    let o = Command::new(PYTHON).args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

#[test]
fn counters_are_exact_and_ctl_shows_them_then_stops_the_server() {
    if !common::have("kdig", "knot-dnsutils") || !have_dnspython() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    let (code, before) = http_get(s.metrics_port, "/metrics");
    assert_eq!(code, 200, "{before}");
    let series = [
        "nsxdp_queries_total{transport=\"udp\"}",
        "nsxdp_queries_total{transport=\"tcp\"}",
        "nsxdp_responses_total{transport=\"udp\"}",
        "nsxdp_queries_by_type_total{transport=\"udp\",qtype=\"AAAA\"}",
        "nsxdp_queries_by_type_total{transport=\"udp\",qtype=\"MX\"}",
        "nsxdp_queries_by_type_total{transport=\"tcp\",qtype=\"MX\"}",
        "nsxdp_responses_by_rcode_total{transport=\"udp\",rcode=\"NXDOMAIN\"}",
        "nsxdp_responses_by_rcode_total{transport=\"tcp\",rcode=\"NXDOMAIN\"}",
        "nsxdp_service_time_seconds_count{transport=\"udp\",loop=\"udp0\"}",
    ];
    let was: Vec<f64> = series.iter().map(|x| sample(&before, x)).collect();

    // kdig: 3 over UDP (one NXDOMAIN AAAA), 2 over TCP (NXDOMAIN MX).
    let udp = [("www.example.com", "A"), ("nope.example.com", "AAAA"), ("example.com", "MX")];
    assert_eq!(kdig(s.port, false, &udp), 3);
    assert_eq!(kdig(s.port, true, &[("x.example.com", "MX"), ("y.example.com", "MX")]), 2);
    // dnspython: 150 MX over UDP and 150 over TCP.
    let n = 150;
    assert_eq!(dnspython(s.port, "example.com", "MX", n), 2 * n);

    let (_, after) = http_get(s.metrics_port, "/metrics");
    let now: Vec<f64> = series.iter().map(|x| sample(&after, x)).collect();
    let rose: Vec<u64> = now.iter().zip(&was).map(|(a, b)| (a - b) as u64).collect();
    let n = n as u64;
    let want = [3 + n, 2 + n, 3 + n, 1, 1 + n, 2 + n, 1, 2, 3 + n];
    assert_eq!(rose, want, "{series:?}\n{after}");
    // The zone: its serial, that it serves, its files.
    let zone = "{zone=\"example.com.\",role=\"primary\"}";
    assert_eq!(sample(&after, &format!("nsxdp_zone_serial{zone}")), 2026112301.0, "{after}");
    assert_eq!(sample(&after, &format!("nsxdp_zone_serving{zone}")), 1.0, "{after}");
    assert!(sample(&after, &format!("nsxdp_zone_snapshot_bytes{zone}")) > 0.0, "{after}");
    assert!(after.contains(&format!("nsxdp_zone_journal_bytes{zone} ")), "{after}");

    // ctl stats: the same figures (nothing was asked since).
    let (ok, stats) = ctl(&s.conf, &["stats"]);
    assert!(ok, "{stats}");
    for (x, v) in series.iter().zip(&now) {
        assert_eq!(sample(&stats, x), *v, "{x}\n{stats}");
    }
    assert!(stats.trim_end().ends_with("ok"), "{stats}");
    let (ok, json) = ctl(&s.conf, &["stats", "--json"]);
    assert!(ok, "{json}");
    let py = "import json, sys\nd = json.load(sys.stdin)\n\
              t = {x['transport']: x for x in d['transports']}\n\
              print(t['udp']['queries'], t['tcp']['qtypes']['MX'], d['zones']['serving'], d['pid'])";
    let mut child = Command::new(PYTHON).args(["-c", py]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(json.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "not JSON: {json}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("{} {} 1 {}", now[0], now[5], s.proc.pid()),
        "{json}"
    );

    // status: version, pid, RFC 3339 times.
    let (ok, status) = ctl(&s.conf, &["status"]);
    assert!(ok, "{status}");
    assert!(status.starts_with(&format!("version {}\npid {}\nstarted 20", env!("CARGO_PKG_VERSION"), s.proc.pid())));
    let loaded = status.lines().find(|l| l.starts_with("example.com.")).unwrap();
    let at = loaded.split_whitespace().nth(4).unwrap();
    assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{status}");

    // stop: the server ends by itself, successfully, as after SIGTERM.
    let (ok, out) = ctl(&s.conf, &["stop"]);
    assert!(ok, "{out}");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.proc.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "still running after ctl stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("nsxdp.log")).unwrap();
    assert!(log.contains(" info: stopping; UDP received="), "{log}");
    assert!(TcpStream::connect(("127.0.0.1", s.metrics_port)).is_err(), "the endpoint outlived the server");
}

/// `promtool check metrics` accepts `text` without a remark.
fn promtool_check(text: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "promtool check metrics: {}\n{text}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn promtool_accepts_and_prometheus_scrapes() {
    if !common::have("promtool", "prometheus") || !common::have("prometheus", "prometheus") {
        return;
    }
    if !common::have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    assert_eq!(kdig(s.port, false, &[("www.example.com", "A"), ("example.com", "SOA")]), 2);
    assert_eq!(kdig(s.port, true, &[("www.example.com", "AAAA")]), 1);
    let (code, text) = http_get(s.metrics_port, "/metrics");
    assert_eq!(code, 200);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "promtool check metrics: {}\n{text}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Prometheus scraping us every second; its API answers once it has.
    let web = common::free_port();
    let pconf = dir.path().join("prometheus.yml");
    std::fs::write(
        &pconf,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: nsxdp\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            s.metrics_port
        ),
    )
    .unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", pconf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .current_dir(dir.path());
    let _prometheus = common::Proc::spawn(cmd, &dir.path().join("prometheus.log"));
    let query = |q: &str| -> Option<String> {
        let (code, body) = std::panic::catch_unwind(|| http_get(web, &format!("/api/v1/query?query={q}"))).ok()?;
        (code == 200).then_some(body)
    };
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{..},"value":[t,"1"]}]}}
    let value = |body: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["data"]["result"][0]["value"][1].as_str().map(str::to_string)
    };
    let t0 = Instant::now();
    let (up, udp) = loop {
        let up = query("up%7Bjob%3D%22nsxdp%22%7D").and_then(|b| value(&b));
        let udp = query("nsxdp_queries_total%7Btransport%3D%22udp%22%7D").and_then(|b| value(&b));
        if let (Some(u), Some(q)) = (&up, &udp) {
            break (u.clone(), q.clone());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus has not scraped nsxdp in 60 s (up {up:?}, queries {udp:?}):\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(up, "1");
    assert_eq!(udp, "2");
    // And the TCP query, by type.
    let body = query("nsxdp_queries_by_type_total%7Btransport%3D%22tcp%22%2Cqtype%3D%22AAAA%22%7D").unwrap();
    assert_eq!(value(&body).as_deref(), Some("1"), "{body}");
}

#[test]
fn a_taken_metrics_port_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let zone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let port = common::free_port();
    let o = Command::new(env!("CARGO_BIN_EXE_nsxdp"))
        .args(["serve", "--cores", "1", "--listen", &format!("127.0.0.1:{port}"), "--metrics", &addr, "--zone"])
        .arg(&zone)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("metrics {addr}")), "{err}");
}

/// Whether the AF_XDP test can run here: root, and `ip`, `ethtool` and kdig (a failure
/// under CI=true).
fn xdp_prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!common::in_ci(), "xdp metrics: needs root under CI=true");
        common::skipped("needs root (BPF, AF_XDP and network namespaces)");
        return false;
    }
    common::have("ip", "iproute2") && common::have("ethtool", "ethtool") && common::have("kdig", "knot-dnsutils")
}

#[test]
fn xdp_counters_are_exact_and_the_kernel_statistics_are_read() {
    if !xdp_prerequisites() {
        return;
    }
    let tb = common::netns::Testbed::new('m', true);
    let dir = tempfile::tempdir().unwrap();
    let zone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/example.com.zone");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &tb.srv, env!("CARGO_BIN_EXE_nsxdp"), "serve", "--listen", "198.18.0.1:53"])
        .args(["--xdp", &tb.srv_if, "--cores", "0", "--metrics", "127.0.0.1:9153", "--zone"])
        .arg(&zone)
        .arg("--data-dir")
        .arg(dir.path());
    let log = dir.path().join("nsxdp.log");
    let _server = common::Proc::spawn(cmd, &log);
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains(" info: ready") {
        assert!(t0.elapsed() < Duration::from_secs(60), "{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let scrape = || tb.in_ns(&tb.srv, || http_get(9153, "/metrics"));
    let (code, before) = scrape();
    assert_eq!(code, 200, "{before}");
    let series = [
        "nsxdp_queries_total{transport=\"xdp\"}",
        "nsxdp_queries_by_type_total{transport=\"xdp\",qtype=\"TXT\"}",
        "nsxdp_service_time_seconds_count{transport=\"xdp\",loop=\"xdp-q0\"}",
    ];
    let was: Vec<f64> = series.iter().map(|x| sample(&before, x)).collect();
    // One try each, so that the count is exact.
    let n = 20;
    let mut args = vec!["kdig", "@198.18.0.1", "+time=5", "+retry=0"];
    for _ in 0..n {
        args.extend(["example.com", "TXT"]);
    }
    let out = tb.client(&args);
    assert_eq!(out.matches(";; ->>HEADER<<-").count(), n, "{out}");
    let (_, after) = scrape();
    let rose: Vec<u64> = series.iter().zip(&was).map(|(x, b)| (sample(&after, x) - b) as u64).collect();
    assert_eq!(rose, [n as u64; 3], "{after}");
    assert!(sample(&after, "nsxdp_xdp_socket_events_total{queue=\"0\",event=\"rx\"}") >= n as f64, "{after}");
    assert!(after.contains("nsxdp_xdp_kernel_total{queue=\"0\",counter=\"rx_ring_full\"} "), "{after}");
    assert!(after.contains("nsxdp_xdp_frames_dropped_total{queue=\"0\",reason="), "{after}");
    // The AF_XDP families pass promtool too.
    if common::have("promtool", "prometheus") {
        promtool_check(&after);
    }
}
