//! Criterion benchmark of what the run loops' counters cost per response
//! (`nsxdp::dataplane::LoopStats::record`, `ServiceBuckets::record_n`), over batches of 32
//! replies to questions of 2 to 5 labels, as a loop counts them after `answer_batch`:
//! - `record/qtype`: the counters of a reply, its question's type read from the reply
//!   (`question_type`, a walk over the name's labels) — what the loops do;
//! - `record/no_qtype`: the same counters with an empty message (no walk: the type slot is
//!   "other"), the floor before query types were counted;
//! - `service/batch`: one batch's service time into the live buckets.
//!
//! `cargo bench --bench stats`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsxdp::answer::{CookieSeen, Outcome, ResponseClass};
use nsxdp::dataplane::LoopStats;

/// 32 replies: header, one question, a few answer octets.
fn replies() -> Vec<Vec<u8>> {
    let names: [&[&str]; 4] = [
        &["example", "com"],
        &["www", "example", "com"],
        &["a", "b", "example", "net"],
        &["_sip", "_udp", "x", "example", "org"],
    ];
    (0..32)
        .map(|i| {
            let mut m = vec![0, i as u8, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
            for l in names[i % names.len()] {
                m.push(l.len() as u8);
                m.extend_from_slice(l.as_bytes());
            }
            m.extend_from_slice(&[0, 0, [1, 28, 15, 33][i % 4], 0, 1]);
            m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            m
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let msgs = replies();
    let o = Outcome::Reply {
        len: 40,
        rcode: 0,
        truncated: false,
        cookie: CookieSeen::None,
        class: ResponseClass::ALL[0],
        class_name: 0,
    };
    let stats = LoopStats::default();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("qtype", |b| {
        b.iter(|| {
            for m in &msgs {
                stats.record(black_box(&o), black_box(m));
            }
        })
    });
    g.bench_function("no_qtype", |b| {
        b.iter(|| {
            for _ in &msgs {
                stats.record(black_box(&o), black_box(&[]));
            }
        })
    });
    g.finish();
    let mut g = c.benchmark_group("service");
    g.bench_function("batch", |b| b.iter(|| stats.service.record_n(black_box(417), black_box(32))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
