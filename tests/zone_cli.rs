//! End-to-end tests of the zone tooling of the `nsxdp` binary:
//! `nsxdp check`, `nsxdp compile` and `nsxdp dump`, run against the zone
//! corpus in `tests/data/` (see `tests/data/README.md`).
//!
//! * good zones: check, compile, dump, re-check and re-compile the dump and
//!   compare the record sets with each other and with what BIND's
//!   `named-checkzone` reads from the same file;
//! * good zones and their dumps must also be accepted by the peer tools
//!   `named-checkzone` and `kzonecheck`;
//! * bad zones: rejected with the diagnostic named on their first line
//!   (`; expect: LINE KEYWORD`), and `compile` creates no snapshot;
//! * warn zones: accepted, with the warning named on their first line
//!   (`; expect-warning: LINE KEYWORD`);
//! * truncated and bit-flipped snapshots are refused, never a panic.
//!
//! A peer tool that is not installed makes its part of a test fail when the
//! environment has `CI=true`, and is skipped with a message otherwise.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---------------------------------------------------------------------------
// Running things
// ---------------------------------------------------------------------------

fn nsxdp_path() -> &'static str {
    env!("CARGO_BIN_EXE_nsxdp")
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data")
}

/// Runs nsxdp with the given arguments. A panic (exit status 101) or a
/// death by signal is never acceptable, whatever the input.
fn nsxdp(args: &[&str]) -> Output {
    let out = Command::new(nsxdp_path()).args(args).output().expect("cannot start the nsxdp binary");
    let status = out.status.code();
    assert!(
        status.is_some() && status != Some(101),
        "nsxdp {args:?} crashed (status {:?})\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        truncate_for_report(&stdout_of(out)),
        truncate_for_report(&stderr_of(out))
    )
}

fn truncate_for_report(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}\n... ({} more bytes)", &s[..end], s.len() - end)
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Finds an executable on PATH (and in the sbin directories, where Debian
/// puts some DNS tools). When it is missing: a failure under `CI=true`,
/// otherwise a note on stderr and `None`, so the caller skips that part.
fn peer_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    for extra in ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|c| c.is_file()) {
        return Some(found);
    }
    let why = format!(
        "peer tool `{name}` is not installed (Debian: bind9-utils provides named-checkzone, \
         knot-dnssecutils provides kzonecheck)"
    );
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{why}; CI=true, so this is a failure");
    }
    common::skipped_part(&why);
    None
}

/// Regular files directly inside `tests/data/<sub>` (not in sub-folders),
/// sorted by name.
fn zone_files(sub: &str) -> Vec<PathBuf> {
    let dir = data_dir().join(sub);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no zone files in {}", dir.display());
    files
}

/// The zone apex, by the same rule as `nsxdp check` without `--origin`: the
/// argument of a `$ORIGIN` that comes before the first record, else the
/// file name less a trailing `.zone`. Returned without the trailing dot.
fn origin_of(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("zone file readable");
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some(d) if d.eq_ignore_ascii_case("$ORIGIN") => {
                let name = words.next().expect("$ORIGIN has an argument");
                return name.trim_end_matches('.').to_string();
            }
            Some(d) if d.eq_ignore_ascii_case("$TTL") => continue,
            _ => break,
        }
    }
    let file = path.file_name().unwrap().to_str().unwrap();
    file.strip_suffix(".zone").unwrap_or(file).to_string()
}

/// Reads the expectation on the first line of a bad or warn zone:
/// `; expect: LINE KEYWORD` or `; expect-warning: LINE KEYWORD`.
fn expectation(path: &Path, marker: &str) -> (usize, String) {
    let text = fs::read_to_string(path).expect("zone file readable");
    let first = text.lines().next().unwrap_or("");
    let rest = first
        .strip_prefix(';')
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix(marker))
        .unwrap_or_else(|| panic!("{}: first line must be `; {marker} LINE KEYWORD`", path.display()))
        .trim();
    let (line, keyword) = rest.split_once(' ').expect("LINE KEYWORD");
    let line = line.parse().expect("LINE is a number");
    (line, keyword.trim().to_ascii_lowercase())
}

/// Is there a diagnostic line `PATH:LINE: SEVERITY: ...KEYWORD...`?
fn has_diagnostic(stderr: &str, path: &str, line: usize, severity: &str, keyword: &str) -> bool {
    let prefix = format!("{path}:{line}: {severity}:");
    stderr.lines().any(|l| l.starts_with(&prefix) && l.to_ascii_lowercase().contains(keyword))
}

fn has_severity(stderr: &str, severity: &str) -> bool {
    let needle = format!(": {severity}:");
    stderr.lines().any(|l| l.contains(&needle))
}

/// Fails the test with every collected problem at once.
fn report(problems: Vec<String>) {
    if !problems.is_empty() {
        panic!("{} problem(s):\n\n{}", problems.len(), problems.join("\n\n==========\n\n"));
    }
}

// ---------------------------------------------------------------------------
// Normalising master-file lines so that two presentations of the same RR
// compare equal
// ---------------------------------------------------------------------------

/// One presentation-format token, split into octets; `escaped` marks octets
/// written with a backslash (only `\.` inside a name changes meaning).
struct Token {
    octets: Vec<(u8, bool)>,
}

/// Splits an RR line into tokens: runs of non-blank characters, where a
/// quoted part (possibly inside a token, as in `alpn="h2,h3"`) may contain
/// blanks. Quotes are dropped; `\DDD` and `\X` escapes are decoded.
fn tokenize(line: &str) -> Vec<Token> {
    let b = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut octets = Vec::new();
        let mut quoted = false;
        while i < b.len() && (quoted || !b[i].is_ascii_whitespace()) {
            match b[i] {
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b'\\'
                    if i + 3 < b.len()
                        && b[i + 1].is_ascii_digit()
                        && b[i + 2].is_ascii_digit()
                        && b[i + 3].is_ascii_digit() =>
                {
                    let v = (b[i + 1] - b'0') as u32 * 100 + (b[i + 2] - b'0') as u32 * 10 + (b[i + 3] - b'0') as u32;
                    octets.push((v.min(255) as u8, true));
                    i += 4;
                }
                b'\\' if i + 1 < b.len() => {
                    octets.push((b[i + 1], true));
                    i += 2;
                }
                c => {
                    octets.push((c, false));
                    i += 1;
                }
            }
        }
        tokens.push(Token { octets });
    }
    tokens
}

/// Renders a token canonically: printable ASCII as itself, everything else
/// (and the characters special in master files) as `\DDD`. An escaped dot
/// stays escaped so that label boundaries survive.
fn render(token: &Token, lowercase: bool) -> String {
    let mut s = String::new();
    for &(c, escaped) in &token.octets {
        let c = if lowercase { c.to_ascii_lowercase() } else { c };
        let special = matches!(c, b'"' | b'\\' | b';' | b'(' | b')') || (c == b'.' && escaped);
        if (0x21..=0x7e).contains(&c) && !special {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\{c:03}"));
        }
    }
    s
}

/// Types whose rdata holds no case-sensitive text: names, numbers, hex,
/// base32hex, addresses and type mnemonics. Their rdata is compared
/// case-insensitively (named prints hex in upper case, for instance).
const CASE_INSENSITIVE_RDATA: &[&str] = &[
    "A",
    "AAAA",
    "NS",
    "CNAME",
    "DNAME",
    "PTR",
    "MX",
    "SOA",
    "SRV",
    "DS",
    "SSHFP",
    "TLSA",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
];

/// For types that end in a hex or base64 field, the index (within the rdata)
/// of that field: its tokens are joined, since blanks inside it carry no
/// meaning and tools split it differently.
fn blob_start(rtype: &str) -> Option<usize> {
    match rtype {
        "DS" | "CDS" | "TLSA" | "DNSKEY" | "CDNSKEY" => Some(3),
        "SSHFP" => Some(2),
        "RRSIG" => Some(8),
        _ => None,
    }
}

/// Types whose rdata presentation legitimately differs between BIND and
/// nsxdp beyond what `normalise_rr` evens out; for these only owner, TTL,
/// class and type are compared with named's view. Keep this list minimal.
const LOOSE_RDATA_TYPES: &[&str] = &[];

/// Normalises one RR line (`OWNER TTL CLASS TYPE RDATA...`, absolute owner):
/// canonical escapes, lower-case owner, collapsed blanks, SVCB parameters in
/// key order with their values unquoted, hex and base64 blobs joined.
/// Returns None for blank and comment lines.
fn normalise_rr(line: &str) -> Option<String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with(';') {
        return None;
    }
    // Drop a trailing comment (a `;` outside quotes), if any.
    let line = strip_comment(trimmed);
    let tokens = tokenize(line);
    assert!(tokens.len() >= 4, "not an RR line: {line:?}");
    let owner = render(&tokens[0], true);
    let ttl = render(&tokens[1], false);
    let class = render(&tokens[2], false).to_ascii_uppercase();
    let rtype = render(&tokens[3], false).to_ascii_uppercase();
    let rdata_tokens = &tokens[4..];
    let mut out = format!("{owner} {ttl} {class} {rtype}");
    if LOOSE_RDATA_TYPES.contains(&rtype.as_str()) {
        return Some(out);
    }
    // RFC 3597 generic rdata: `\# LENGTH HEX...`
    let generic = rdata_tokens.first().is_some_and(|t| t.octets == [(b'#', true)]);
    let lower = generic || CASE_INSENSITIVE_RDATA.contains(&rtype.as_str());
    let mut fields: Vec<String> = rdata_tokens.iter().map(|t| render(t, lower)).collect();
    let join_from = if generic { Some(2) } else { blob_start(&rtype) };
    if let Some(start) = join_from {
        if fields.len() > start {
            let blob: String = fields[start..].concat();
            fields.truncate(start);
            fields.push(blob);
        }
    }
    if rtype == "RRSIG" {
        // RFC 4034 §3.2: signature expiration and inception may be written
        // as YYYYMMDDHHmmSS or as seconds since the epoch; compare seconds.
        for field in fields.iter_mut().skip(4).take(2) {
            if let Some(secs) = rrsig_time_to_epoch(field) {
                *field = secs.to_string();
            }
        }
    }
    if (rtype == "SVCB" || rtype == "HTTPS") && fields.len() > 2 {
        let mut params: Vec<String> = fields.split_off(2);
        for param in params.iter_mut() {
            // `key=` with an empty value is the same as a bare `key`.
            if let Some(k) = param.strip_suffix('=') {
                *param = k.to_string();
            }
        }
        params.sort_by_key(|param| svc_key_number(param.split('=').next().unwrap()));
        fields.extend(params);
    }
    for f in fields {
        out.push(' ');
        out.push_str(&f);
    }
    Some(out)
}

/// `YYYYMMDDHHmmSS` (UTC) to seconds since 1970; None for other text.
fn rrsig_time_to_epoch(text: &str) -> Option<i64> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, mo, d) = (num(0..4), num(4..6), num(6..8));
    let (h, mi, s) = (num(8..10), num(10..12), num(12..14));
    // Days from the civil date (proleptic Gregorian calendar).
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + s)
}

fn svc_key_number(key: &str) -> u32 {
    match key.to_ascii_lowercase().as_str() {
        "mandatory" => 0,
        "alpn" => 1,
        "no-default-alpn" => 2,
        "port" => 3,
        "ipv4hint" => 4,
        "ech" => 5,
        "ipv6hint" => 6,
        other => other.strip_prefix("key").and_then(|n| n.parse().ok()).unwrap_or(u32::MAX),
    }
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

fn rr_set(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(normalise_rr).collect()
}

/// Describes the difference between two RR sets, for failure messages.
fn set_diff(left_name: &str, left: &BTreeSet<String>, right_name: &str, right: &BTreeSet<String>) -> String {
    let only_left: Vec<_> = left.difference(right).take(30).cloned().collect();
    let only_right: Vec<_> = right.difference(left).take(30).cloned().collect();
    format!(
        "only in {left_name} ({}):\n  {}\nonly in {right_name} ({}):\n  {}",
        left.difference(right).count(),
        only_left.join("\n  "),
        right.difference(left).count(),
        only_right.join("\n  ")
    )
}

// ---------------------------------------------------------------------------
// Peer tools
// ---------------------------------------------------------------------------

/// `named-checkzone` with integrity checks limited to in-zone names
/// (`-i local`), so that it never looks names up on the network. It is run
/// in the zone file's folder because BIND resolves `$INCLUDE` paths against
/// its working directory.
fn named_checkzone(tool: &Path, origin: &str, file: &Path, dump: bool) -> Output {
    let dir = file.parent().unwrap();
    let mut cmd = Command::new(tool);
    cmd.current_dir(dir).args(["-i", "local"]);
    if dump {
        cmd.args(["-D", "-o", "-"]);
    }
    cmd.arg(origin).arg(file.file_name().unwrap());
    cmd.output().expect("cannot run named-checkzone")
}

/// `kzonecheck` with DNSSEC checks off (`-d off`): the test zones carry
/// made-up keys and signatures, which it would otherwise try to validate.
fn kzonecheck(tool: &Path, origin: &str, file: &Path) -> Output {
    Command::new(tool).args(["-d", "off", "-o", origin]).arg(file).output().expect("cannot run kzonecheck")
}

// ---------------------------------------------------------------------------
// nsxdp steps
// ---------------------------------------------------------------------------

/// Compiles `zone` into `snap` and dumps it; returns the dump text, or a
/// problem description.
fn compile_and_dump(zone: &Path, origin: Option<&str>, snap: &Path) -> Result<String, String> {
    let mut args = vec!["compile"];
    if let Some(o) = origin {
        args.extend(["--origin", o]);
    }
    args.extend([p(zone), "-o", p(snap)]);
    let out = nsxdp(&args);
    if out.status.code() != Some(0) || !snap.is_file() {
        return Err(describe(&format!("nsxdp {}", args.join(" ")), &out));
    }
    let out = nsxdp(&["dump", p(snap)]);
    if out.status.code() != Some(0) {
        return Err(describe(&format!("nsxdp dump {}", snap.display()), &out));
    }
    Ok(stdout_of(&out))
}

/// Checks the shape of a dump: one RR per line, `OWNER TTL IN TYPE RDATA`,
/// absolute owners inside the zone, SOA first and at the apex.
fn check_dump_shape(dump: &str, origin: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let apex = format!("{}.", origin.to_ascii_lowercase());
    let suffix = format!(".{apex}");
    let lines: Vec<&str> = dump.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return vec!["dump is empty".to_string()];
    }
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    if distinct.len() != lines.len() {
        problems.push(format!("dump repeats {} line(s) (duplicate RRs must be dropped)", lines.len() - distinct.len()));
    }
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ok = fields.len() >= 5 && fields[0].ends_with('.') && fields[1].parse::<u32>().is_ok() && fields[2] == "IN";
        if !ok {
            problems.push(format!("dump line {} is not `OWNER TTL IN TYPE RDATA`: {line:?}", i + 1));
            continue;
        }
        let owner = fields[0].to_ascii_lowercase();
        if owner != apex && !owner.ends_with(&suffix) {
            problems.push(format!("dump line {} has an owner outside {apex}: {line:?}", i + 1));
        }
        if (i == 0) != (fields[3] == "SOA") || (i == 0 && owner != apex) {
            problems.push(format!("dump line {}: the apex SOA must be first and only first: {line:?}", i + 1));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn good_zones_round_trip() {
    let named = peer_tool("named-checkzone");
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for zone in zone_files("good") {
        let name = zone.file_name().unwrap().to_str().unwrap().to_string();
        let origin = origin_of(&zone);
        let mut fail = |what: String| problems.push(format!("[{name}] {what}"));

        // Without the checks of signed zones, as kzonecheck runs here (-d off): the good
        // zones carry made-up keys and signatures (tests/data/signed has real ones).
        let out = nsxdp(&["check", "--no-dnssec", p(&zone)]);
        if out.status.code() != Some(0) || has_severity(&stderr_of(&out), "error") {
            fail(describe("nsxdp check", &out));
            continue;
        }
        if has_severity(&stderr_of(&out), "warning") {
            fail(describe("nsxdp check warns about a clean zone", &out));
        }
        let snap1 = tmp.path().join(format!("{name}.1.snap"));
        let dump1 = match compile_and_dump(&zone, None, &snap1) {
            Ok(d) => d,
            Err(e) => {
                fail(e);
                continue;
            }
        };
        for shape in check_dump_shape(&dump1, &origin) {
            fail(shape);
        }
        let dump1_file = tmp.path().join(format!("{name}.dump1"));
        fs::write(&dump1_file, &dump1).unwrap();

        let out = nsxdp(&["check", "--no-dnssec", "--origin", &origin, p(&dump1_file)]);
        if out.status.code() != Some(0) || has_severity(&stderr_of(&out), "error") {
            fail(describe("nsxdp check --origin of the dump", &out));
            continue;
        }
        let snap2 = tmp.path().join(format!("{name}.2.snap"));
        let dump2 = match compile_and_dump(&dump1_file, Some(&origin), &snap2) {
            Ok(d) => d,
            Err(e) => {
                fail(format!("re-compiling the dump: {e}"));
                continue;
            }
        };
        let set1 = rr_set(&dump1);
        let set2 = rr_set(&dump2);
        if set1 != set2 {
            fail(format!("dump of the dump differs:\n{}", set_diff("dump1", &set1, "dump2", &set2)));
        } else if dump1 != dump2 {
            fail("dump of the dump has the same RRs but not the same text (order not canonical?)".into());
        }

        let Some(named) = &named else { continue };
        // The original file as BIND reads it, against nsxdp's dump.
        let out = named_checkzone(named, &origin, &zone, true);
        if out.status.code() != Some(0) {
            fail(describe("named-checkzone -D (original)", &out));
            continue;
        }
        let named_orig = stdout_of(&out);
        let named_set = rr_set(&named_orig);
        if named_set != set1 {
            fail(format!(
                "nsxdp's dump and named's reading of the zone differ:\n{}",
                set_diff("named", &named_set, "nsxdp", &set1)
            ));
        }
        // nsxdp's dump as BIND reads it, against the original as BIND reads it:
        // the same RRs, whatever the presentation.
        let out = named_checkzone(named, &origin, &dump1_file, true);
        if out.status.code() != Some(0) {
            fail(describe("named-checkzone -D (nsxdp dump)", &out));
            continue;
        }
        let named_dump_set = rr_set(&stdout_of(&out));
        if named_dump_set != named_set {
            fail(format!(
                "named reads nsxdp's dump differently from the original:\n{}",
                set_diff("original", &named_set, "dump", &named_dump_set)
            ));
        }
    }
    report(problems);
}

#[test]
fn good_zones_and_their_dumps_pass_peer_tools() {
    let named = peer_tool("named-checkzone");
    let knot = peer_tool("kzonecheck");
    if named.is_none() && knot.is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for zone in zone_files("good") {
        let name = zone.file_name().unwrap().to_str().unwrap().to_string();
        let origin = origin_of(&zone);
        let mut files = vec![zone.clone()];
        let snap = tmp.path().join(format!("{name}.snap"));
        match compile_and_dump(&zone, None, &snap) {
            Ok(dump) => {
                let dump_file = tmp.path().join(format!("{name}.dump"));
                fs::write(&dump_file, dump).unwrap();
                files.push(dump_file);
            }
            Err(e) => problems.push(format!("[{name}] {e}")),
        }
        for file in &files {
            if let Some(named) = &named {
                let out = named_checkzone(named, &origin, file, false);
                if out.status.code() != Some(0) {
                    problems.push(describe(&format!("named-checkzone {origin} {}", file.display()), &out));
                }
            }
            if let Some(knot) = &knot {
                let out = kzonecheck(knot, &origin, file);
                if out.status.code() != Some(0) {
                    problems.push(describe(&format!("kzonecheck -o {origin} {}", file.display()), &out));
                }
            }
        }
    }
    report(problems);
}

#[test]
fn bad_zones_are_rejected_at_the_right_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for zone in zone_files("bad") {
        let name = zone.file_name().unwrap().to_str().unwrap().to_string();
        let (line, keyword) = expectation(&zone, "expect:");
        let path = p(&zone);

        let out = nsxdp(&["check", path]);
        let stderr = stderr_of(&out);
        if out.status.code() != Some(1) {
            problems.push(format!("[{name}] check must exit 1\n{}", describe("nsxdp check", &out)));
        } else if !has_diagnostic(&stderr, path, line, "error", &keyword) {
            problems.push(format!(
                "[{name}] expected `{path}:{line}: error: ...{keyword}...`\n{}",
                describe("nsxdp check", &out)
            ));
        }

        // compile must fail without creating the snapshot...
        let snap = tmp.path().join(format!("{name}.snap"));
        let out = nsxdp(&["compile", path, "-o", p(&snap)]);
        if out.status.code() != Some(1) {
            problems.push(format!("[{name}] compile must exit 1\n{}", describe("nsxdp compile", &out)));
        }
        if snap.exists() {
            problems.push(format!("[{name}] failed compile created {}", snap.display()));
        }
        // ...and without replacing an existing one.
        let old = tmp.path().join(format!("{name}.old.snap"));
        fs::write(&old, b"previous snapshot").unwrap();
        let out = nsxdp(&["compile", path, "-o", p(&old)]);
        if out.status.code() != Some(1) || fs::read(&old).unwrap() != b"previous snapshot" {
            problems.push(format!(
                "[{name}] failed compile must leave an existing output alone\n{}",
                describe("nsxdp compile", &out)
            ));
        }
    }
    report(problems);
}

#[test]
fn warn_zones_are_accepted_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for zone in zone_files("warn") {
        let name = zone.file_name().unwrap().to_str().unwrap().to_string();
        let (line, keyword) = expectation(&zone, "expect-warning:");
        let path = p(&zone);
        let out = nsxdp(&["check", path]);
        let stderr = stderr_of(&out);
        if out.status.code() != Some(0) || has_severity(&stderr, "error") {
            problems.push(format!("[{name}] check must exit 0 without errors\n{}", describe("nsxdp check", &out)));
        }
        if !has_diagnostic(&stderr, path, line, "warning", &keyword) {
            problems.push(format!(
                "[{name}] expected `{path}:{line}: warning: ...{keyword}...`\n{}",
                describe("nsxdp check", &out)
            ));
        }
        let snap = tmp.path().join(format!("{name}.snap"));
        match compile_and_dump(&zone, None, &snap) {
            Err(e) => problems.push(format!("[{name}] {e}")),
            Ok(dump) => problems.extend(
                rrsets_with_mixed_ttls(&dump)
                    .into_iter()
                    .map(|s| format!("[{name}] dump has an RRset with differing TTLs: {s}")),
            ),
        }
    }
    report(problems);
}

/// RRsets (owner, class, type) of a dump whose records do not share one TTL.
fn rrsets_with_mixed_ttls(dump: &str) -> Vec<String> {
    let mut ttls: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for line in dump.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            let key = format!("{} {} {}", f[0].to_ascii_lowercase(), f[2], f[3]);
            ttls.entry(key).or_default().insert(f[1].to_string());
        }
    }
    ttls.into_iter().filter(|(_, t)| t.len() > 1).map(|(k, t)| format!("{k} {t:?}")).collect()
}

#[test]
fn check_accepts_several_files_and_fails_if_any_is_bad() {
    let good = zone_files("good");
    let mut args: Vec<&str> = vec!["check", "--no-dnssec"];
    args.extend(good.iter().map(|z| p(z)));
    let out = nsxdp(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe("check of all good zones", &out));

    let bad = data_dir().join("bad").join("two-cnames.zone");
    args.push(p(&bad));
    let out = nsxdp(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe("check of good zones plus a bad one", &out));
    assert!(stderr_of(&out).contains(p(&bad)), "{}", describe("the bad file must be named", &out));

    // --origin only makes sense with a single file.
    let out = nsxdp(&["check", "--origin", "example.com", p(&good[0]), p(&good[1])]);
    assert_ne!(out.status.code(), Some(0), "{}", describe("--origin with two files", &out));
}

/// A valid snapshot of the biggest good zone, and a scratch directory.
fn reference_snapshot() -> (tempfile::TempDir, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let zone = data_dir().join("good").join("example.com.zone");
    let snap = tmp.path().join("reference.snap");
    let dump = compile_and_dump(&zone, None, &snap).unwrap_or_else(|e| panic!("{e}"));
    assert!(!dump.is_empty());
    let bytes = fs::read(&snap).unwrap();
    assert!(bytes.len() > 16, "snapshot is suspiciously small: {} bytes", bytes.len());
    (tmp, bytes)
}

/// Dumps `bytes` written to `file`; the dump must be refused cleanly.
fn expect_refused(file: &Path, bytes: &[u8], what: &str, problems: &mut Vec<String>) {
    fs::write(file, bytes).unwrap();
    let out = nsxdp(&["dump", p(file)]);
    let stderr = stderr_of(&out);
    let file_name = file.file_name().unwrap().to_str().unwrap();
    if out.status.code() != Some(1) || !stderr.contains("snapshot refused") || !stderr.contains(file_name) {
        problems.push(format!(
            "{what}: expected exit 1 and `snapshot refused` naming the file\n{}",
            describe("nsxdp dump", &out)
        ));
    }
}

#[test]
fn truncated_snapshots_are_refused() {
    let (tmp, bytes) = reference_snapshot();
    let len = bytes.len();
    let mut problems = Vec::new();
    let mut lengths = vec![0, 1, 7, 8, 16, len / 4, len / 2, len - 8, len - 1];
    lengths.sort();
    lengths.dedup();
    for cut in lengths {
        let file = tmp.path().join(format!("truncated-{cut}.snap"));
        expect_refused(&file, &bytes[..cut], &format!("snapshot truncated to {cut} of {len} bytes"), &mut problems);
    }
    // Extra bytes after a complete snapshot are corruption too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"trailing garbage");
    expect_refused(&tmp.path().join("extended.snap"), &longer, "snapshot with trailing bytes", &mut problems);
    report(problems);
}

#[test]
fn bit_flipped_snapshots_are_refused() {
    let (tmp, bytes) = reference_snapshot();
    let len = bytes.len();
    let mut problems = Vec::new();
    const FLIPS: usize = 50;
    let mut positions: Vec<usize> = (0..FLIPS).map(|i| i * len / FLIPS).collect();
    // Make sure the very first and last bytes (header, trailer) are covered.
    positions.push(len - 1);
    positions.sort();
    positions.dedup();
    for (i, &pos) in positions.iter().enumerate() {
        let bit = (i * 3) % 8;
        let mut corrupt = bytes.clone();
        corrupt[pos] ^= 1 << bit;
        let file = tmp.path().join(format!("flip-{pos}-{bit}.snap"));
        expect_refused(&file, &corrupt, &format!("bit {bit} of byte {pos} (of {len}) flipped"), &mut problems);
    }
    report(problems);
}

#[test]
fn dump_of_a_missing_or_non_snapshot_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let zone_text = fs::read(data_dir().join("good").join("example.com.zone")).unwrap();
    expect_refused(&tmp.path().join("zone-text.snap"), &zone_text, "a zone file given to dump", &mut problems);
    let missing = tmp.path().join("missing.snap");
    let out = nsxdp(&["dump", p(&missing)]);
    if out.status.code() != Some(1) || !stderr_of(&out).contains("missing.snap") {
        problems.push(describe("dump of a missing file must exit 1 and name it", &out));
    }
    report(problems);
}

/// `check` must never panic, whatever the input: feed it every prefix of a
/// good zone at a spread of cut points (most are syntax errors, some are
/// valid zones).
#[test]
fn check_never_panics_on_truncated_zone_text() {
    let tmp = tempfile::tempdir().unwrap();
    let good = data_dir().join("good");
    let include_dir = tmp.path().join("include");
    fs::create_dir(&include_dir).unwrap();
    for inc in fs::read_dir(good.join("include")).unwrap() {
        let inc = inc.unwrap().path();
        fs::copy(&inc, include_dir.join(inc.file_name().unwrap())).unwrap();
    }
    let mut problems = Vec::new();
    for source in ["example.com.zone", "example.net.zone", "svcb-https.db"] {
        let text = fs::read(good.join(source)).unwrap();
        const CUTS: usize = 40;
        for i in 1..CUTS {
            let cut = i * text.len() / CUTS;
            let file = tmp.path().join(source);
            fs::write(&file, &text[..cut]).unwrap();
            let out = nsxdp(&["check", "--origin", &origin_of(&good.join(source)), p(&file)]);
            if !matches!(out.status.code(), Some(0) | Some(1)) {
                problems.push(describe(&format!("check of {source} cut at byte {cut}"), &out));
            }
        }
    }
    report(problems);
}

/// `$INCLUDE` paths are relative to the directory of the file that holds
/// the directive (not the working directory), an origin argument may be
/// relative, includes nest, and a loop through differently spelled paths
/// is caught at the directive that closes it. Built in a scratch tree,
/// since BIND resolves such paths differently and cannot cross-check it.
#[test]
fn includes_nest_relative_to_the_including_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir(root.join("sub")).unwrap();
    let main = root.join("main.zone");
    fs::write(
        &main,
        "$ORIGIN example.com.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
         \tNS ns1\nns1 A 192.0.2.1\n$INCLUDE sub/a.inc lab\nafter A 192.0.2.9\n",
    )
    .unwrap();
    fs::write(root.join("sub/a.inc"), "one A 192.0.2.2\n$INCLUDE b.inc\n").unwrap();
    fs::write(root.join("sub/b.inc"), "two A 192.0.2.3\n").unwrap();

    let snap = root.join("main.snap");
    let dump = compile_and_dump(&main, None, &snap).unwrap_or_else(|e| panic!("{e}"));
    let got = rr_set(&dump);
    let want = rr_set(
        "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300\n\
         example.com. 3600 IN NS ns1.example.com.\n\
         ns1.example.com. 3600 IN A 192.0.2.1\n\
         one.lab.example.com. 3600 IN A 192.0.2.2\n\
         two.lab.example.com. 3600 IN A 192.0.2.3\n\
         after.example.com. 3600 IN A 192.0.2.9\n",
    );
    assert_eq!(got, want, "{}", set_diff("expected", &want, "nsxdp", &got));

    // sub/b.inc -> ../loop.inc -> sub/b.inc again.
    fs::write(root.join("sub/b.inc"), "two A 192.0.2.3\n$INCLUDE ../loop.inc\n").unwrap();
    fs::write(root.join("loop.inc"), "; loops back\n$INCLUDE sub/b.inc\n").unwrap();
    let out = nsxdp(&["check", p(&main)]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{}", describe("include loop", &out));
    let at_directive =
        stderr.lines().any(|l| l.contains("loop.inc:2: error:") && l.to_ascii_lowercase().contains("include"));
    assert!(at_directive, "{}", describe("the loop must be reported at loop.inc:2", &out));
}
