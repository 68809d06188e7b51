//! `transfer-format = "one-answer"` on an ACL: transfers that ACL allows go out one record
//! per message (for old secondaries), others as many as fit (many-answers, the default).
//!
//! - `one_answer_message_by_message`: dnspython reads AXFR and IXFR message by message
//!   (TSIG checked on each) from two source addresses: the one whose ACL says one-answer
//!   gets exactly one record in every message, the other a few full messages; both get the
//!   same records.
//! - `named_secondary_accepts_one_answer`: BIND named as a secondary of an nsxdp primary
//!   whose ACL says one-answer takes the first AXFR and an IXFR after a NOTIFY, and serves
//!   the same zone; nsxdp's log shows one message per record.
//!
//! Needs /usr/bin/python3 with dnspython, named and kdig: under `CI=true` a missing one
//! fails the test; otherwise it skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_same_zone, axfr_lines, free_port, have, start_nsxdp, test_key, Proc, TEST_SECRET};

const PYTHON: &str = "/usr/bin/python3";

fn have_dnspython() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import dns.query, dns.tsigkeyring"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !common::in_ci(),
            "{PYTHON} with dnspython is required under CI=true (apt-get install python3-dnspython)"
        );
        common::skipped(&format!("{PYTHON} with dnspython not found (apt-get install python3-dnspython)"));
    }
    ok
}

fn zone_text(serial: u32, hosts: usize) -> String {
    let mut t = format!(
        "$ORIGIN fmt.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n\
         txt TXT \"one answer\"\n"
    );
    for i in 0..hosts {
        t.push_str(&format!("h{i} A 198.18.{}.{}\n", i / 250, i % 250));
    }
    t
}

/// nsxdp on `port` serving fmt.test: transfers one-answer to 127.2.0.1 (ACL `old`) and
/// many-answers to 127.0.0.1 (ACL `new`), or one-answer to both when `all_one`; NOTIFY to
/// `notify` when given.
fn conf(dir: &Path, port: u16, all_one: bool, notify: Option<u16>) -> std::path::PathBuf {
    let new_format = if all_one { "one-answer" } else { "many-answers" };
    let notify = notify.map_or(String::new(), |p| format!("notify = [\"127.0.0.1:{p} key xfr\"]\n"));
    let path = dir.join("nsxdp.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
             [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n\
             [[acl]]\nname = \"old\"\naddress = [\"127.2.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             transfer-format = \"one-answer\"\n\
             [[acl]]\nname = \"new\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n\
             transfer-format = \"{new_format}\"\n\
             [[zone]]\nname = \"fmt.test\"\nfile = \"fmt.test.zone\"\nacl = [\"old\", \"new\"]\nnotify-ns = false\n{notify}"
        ),
    )
    .unwrap();
    path
}

/// Reads a transfer with dnspython from `source`: the number of records in each message.
const READER: &str = r#"
import sys, dns.query, dns.tsigkeyring, dns.rdatatype, dns.name
port, source, kind, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
keyring = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", secret)})
args = dict(port=port, keyring=keyring, keyname="xfr.", source=source, relativize=False, lifetime=20)
if kind == "AXFR":
    msgs = dns.query.xfr("127.0.0.1", "fmt.test.", **args)
else:
    msgs = dns.query.xfr("127.0.0.1", "fmt.test.", rdtype=dns.rdatatype.IXFR, serial=int(kind[5:]), **args)
print(" ".join(str(sum(len(rrset) for rrset in m.answer)) for m in msgs))
"#;

fn per_message(port: u16, source: &str, kind: &str) -> Vec<usize> {
    let o = Command::new(PYTHON).args(["-c", READER, &port.to_string(), source, kind, TEST_SECRET]).output().unwrap();
    assert!(o.status.success(), "dnspython {kind} from {source}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).split_whitespace().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn one_answer_message_by_message() {
    if !have_dnspython() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("fmt.test.zone"), zone_text(1, 300)).unwrap();
    let conf = conf(d, port, false, None);
    let _ns = start_nsxdp(d, &conf);
    // 300 hosts, SOA, NS, ns A, TXT, and the closing SOA.
    let records = 300 + 4 + 1;
    let one = per_message(port, "127.2.0.1", "AXFR");
    assert_eq!(one.len(), records, "one message per record: {one:?}");
    assert!(one.iter().all(|&n| n == 1), "{one:?}");
    let many = per_message(port, "127.0.0.1", "AXFR");
    assert!(many.len() < 5, "many-answers: {many:?}");
    assert_eq!(many.iter().sum::<usize>(), records);

    // IXFR too: serial 1 → 2 changes one host.
    std::fs::write(d.join("fmt.test.zone"), zone_text(2, 301)).unwrap();
    let (ok, out) = common::ctl(&conf, &["reload"]);
    assert!(ok, "{out}");
    let one = per_message(port, "127.2.0.1", "IXFR=1");
    // SOA 2, SOA 1, SOA 2, h300, SOA 2.
    assert_eq!(one, vec![1; 5]);
    assert_eq!(per_message(port, "127.0.0.1", "IXFR=1"), vec![5]);
}

/// named as a secondary of fmt.test from nsxdp on `primary`, on `port`.
fn start_named(dir: &Path, port: u16, primary: u16) -> Proc {
    common::dnssec::start_named_secondary(dir, port, primary, "fmt.test").0
}

#[test]
fn named_secondary_accepts_one_answer() {
    if !have("named", "bind9") || !have("kdig", "knot-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (np, bp) = (free_port(), free_port());
    std::fs::write(d.join("fmt.test.zone"), zone_text(1, 500)).unwrap();
    let conf = conf(d, np, true, Some(bp));
    let _ns = start_nsxdp(d, &conf);
    let _named = start_named(d, bp, np);
    let logs = [d.join("named.log"), d.join("nsxdp.log")];
    common::wait_serial(bp, "fmt.test.", 1, Duration::from_secs(30), "named's AXFR, one answer each", &logs);
    std::fs::write(d.join("fmt.test.zone"), zone_text(2, 520)).unwrap();
    let (ok, out) = common::ctl(&conf, &["reload"]);
    assert!(ok, "{out}");
    common::wait_serial(bp, "fmt.test.", 2, Duration::from_secs(30), "named's IXFR, one answer each", &logs);
    let key = test_key();
    let (b, n) = (axfr_lines(bp, "fmt.test.", Some(&key)), axfr_lines(np, "fmt.test.", Some(&key)));
    assert!(n.len() > 520, "{} records", n.len());
    assert_same_zone(&b, &n, "named", "nsxdp");

    let nlog = std::fs::read_to_string(d.join("nsxdp.log")).unwrap();
    let blog = std::fs::read_to_string(d.join("named.log")).unwrap();
    // 500 hosts, SOA, NS, ns A, TXT, closing SOA; then SOA 2, SOA 1, SOA 2, 20 hosts, SOA 2.
    let axfr = "AXFR of fmt.test. serial 1 to 127.0.0.1: 505 messages";
    let ixfr = "IXFR (Incremental { changesets: 1 }) of fmt.test. serial 1 -> 2 to 127.0.0.1: 24 messages";
    assert!(nlog.contains(axfr) && nlog.contains(ixfr), "{nlog}");
    assert_eq!(blog.matches("Transfer completed").count(), 2, "{blog}");
    assert!(blog.contains("got incremental response"), "{blog}");
}
