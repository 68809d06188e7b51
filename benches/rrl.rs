//! Criterion benchmark of the response rate limiter (`nsxdp::rrl::Limiter`: `key`, `warm`
//! and `charge` over batches of 32, as the run loops call them), the cost the loops add to
//! each UDP response when `[rrl]` is on.
//!
//! Groups, each a pass over 10,000 precomputed (source, class, name) triples against a
//! table of the default size (393,241 buckets, 12.6 MB):
//! - `pass`: 1,000 clients in 1,000 /24s, a rate nothing reaches (the common case: every
//!   response passes, the buckets stay in cache);
//! - `limited`: one /24 over its rate (every response dropped or slipped);
//! - `spoofed`: every response to a different /24 of 1,000,000 (a spoofed flood: a cache
//!   miss on the table for nearly every check, and buckets taken over).
//!
//! A plain summary in ns/check (best and median of many passes) is printed at the end.
//!
//! Beside it, `cookie/*`: the DNS cookie work alone (`nsxdp::cookie`), the floor of what a
//! query with a COOKIE option costs: `new` makes a server cookie for a client cookie
//! (one SipHash-2-4 over 20 octets, RFC 9018), `valid` judges a valid one (the same hash).
//! `cargo bench --bench rrl`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsxdp::answer::ResponseClass;
use nsxdp::rrl::{Limiter, Settings};

const CHECKS: usize = 10_000;
const PASSES: usize = 200;

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

type Check = (IpAddr, ResponseClass, u64);

fn v4(prefix: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(prefix << 8) | 7))
}

struct Group {
    name: &'static str,
    settings: Settings,
    checks: Vec<Check>,
}

fn groups() -> Vec<Group> {
    let classes = ResponseClass::ALL;
    let pass = (0..CHECKS as u64)
        .map(|i| {
            let r = mix(i);
            (v4((r % 1000) as u32), classes[(r >> 20) as usize % 3], r % 16)
        })
        .collect();
    let limited = (0..CHECKS as u64).map(|i| (v4(1), ResponseClass::NxDomain, i % 2)).collect();
    let spoofed = (0..CHECKS as u64)
        .map(|i| {
            let r = mix(i ^ 0x5555);
            (v4((r % 1_000_000) as u32), ResponseClass::Positive, 1)
        })
        .collect();
    let big = Settings { rate: 1_000_000, ..Settings::default() };
    vec![
        Group { name: "pass", settings: big, checks: pass },
        Group { name: "limited", settings: Settings::default(), checks: limited },
        Group { name: "spoofed", settings: Settings::default(), checks: spoofed },
    ]
}

/// One pass over a group's checks in batches of 32, as the run loops make them: the keys
/// of the batch worked out and their buckets fetched together, then charged; the clock
/// advances a millisecond a batch.
fn run(l: &mut Limiter, checks: &[Check], clock: &mut u64) -> usize {
    let mut passed = 0;
    for batch in checks.chunks(32) {
        *clock += 1;
        let mut keys = [None; 32];
        for (k, &(addr, class, name)) in keys.iter_mut().zip(batch) {
            *k = Some(l.key(addr, class, name));
        }
        let mut warm = 0;
        for k in keys.iter().flatten() {
            warm ^= l.warm(k);
        }
        black_box(warm);
        for k in keys.iter().flatten() {
            passed += usize::from(l.charge(*clock, k, false) == nsxdp::rrl::Verdict::Pass);
        }
    }
    black_box(passed)
}

fn bench_rrl(c: &mut Criterion) {
    let groups = groups();
    let mut results = Vec::new();
    for g in &groups {
        let mut l = Limiter::new(&g.settings);
        let mut clock = 1000;
        // Warm: the buckets exist (and the limited one is limited).
        run(&mut l, &g.checks, &mut clock);
        let mut cg = c.benchmark_group(format!("rrl/{}", g.name));
        cg.throughput(Throughput::Elements(g.checks.len() as u64));
        cg.bench_function(format!("{} checks", g.checks.len()), |b| b.iter(|| run(&mut l, &g.checks, &mut clock)));
        cg.finish();
        let mut times: Vec<f64> = (0..PASSES)
            .map(|_| {
                let t = Instant::now();
                run(&mut l, &g.checks, &mut clock);
                t.elapsed().as_nanos() as f64 / g.checks.len() as f64
            })
            .collect();
        times.sort_by(f64::total_cmp);
        results.push((g.name, times[0], times[PASSES / 2], l.counters()));
    }
    eprintln!("\nns per check (best and median of {PASSES} passes, target <= 15):");
    for (name, best, median, c) in results {
        eprintln!(
            "  {name:<8} {best:6.1} ns/check, median {median:6.1}  (passed {} dropped {} slipped {})",
            c.passed, c.dropped, c.slipped
        );
    }
}

fn bench_cookie(c: &mut Criterion) {
    use nsxdp::cookie::{check, server_cookie, Secrets};
    let secrets = Secrets::new([7; 16]);
    let now = 1_700_000_000;
    let clients: Vec<(IpAddr, [u8; 8])> = (0..1024u64).map(|i| (v4(i as u32), mix(i).to_le_bytes())).collect();
    let cookies: Vec<Vec<u8>> =
        clients.iter().map(|(ip, cc)| [&cc[..], &server_cookie(cc, *ip, now, &secrets)[..]].concat()).collect();
    let mut g = c.benchmark_group("cookie");
    g.throughput(Throughput::Elements(clients.len() as u64));
    g.bench_function("new", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for (ip, cc) in &clients {
                x ^= server_cookie(black_box(cc), *ip, now, &secrets)[15];
            }
            x
        })
    });
    g.bench_function("valid", |b| {
        b.iter(|| {
            let mut n = 0;
            for ((ip, _), ck) in clients.iter().zip(&cookies) {
                n += usize::from(matches!(
                    check(black_box(ck), *ip, now, &secrets),
                    nsxdp::cookie::Verdict::Valid { .. }
                ));
            }
            assert_eq!(n, clients.len());
            n
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_rrl, bench_cookie
}
criterion_main!(benches);
