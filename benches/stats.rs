//! Criterion benchmark of what the run loops' counters cost per response
//! (`nsxdp::dataplane::LoopStats::record`, `ServiceBuckets::record_n`), over batches of 32
//! replies, as a loop counts them after `answer_batch`:
//! - `record/reply`: the counters of a reply (rcode, truncation, cookie, the question's
//!   type, which the engine hands over in the outcome) — what the loops do;
//! - `service/batch`: one batch's service time into the live buckets.
//!
//! `cargo bench --bench stats`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsxdp::answer::{CookieSeen, Outcome, ResponseClass};
use nsxdp::dataplane::LoopStats;

/// 32 outcomes of replies to queries of four types, as `answer_batch` gives them.
fn outcomes() -> Vec<Outcome> {
    (0..32)
        .map(|i| Outcome::Reply {
            len: 40,
            rcode: 0,
            truncated: false,
            cookie: CookieSeen::None,
            class: ResponseClass::ALL[0],
            class_name: 0,
            qtype: [1, 28, 15, 33][i % 4],
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let outcomes = outcomes();
    let stats = LoopStats::default();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(outcomes.len() as u64));
    g.bench_function("reply", |b| {
        b.iter(|| {
            for o in &outcomes {
                stats.record(black_box(o));
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
