//! Criterion benchmark of the AF_XDP path's framing (`nsxdp::dataplane::packet`) on one
//! core: `parse` of a received query frame (lengths, IPv4 header checksum, UDP checksum)
//! and `build_reply` turning it around in place, for the frames of
//! `tests/data/packet/vectors.txt`: IPv4 untagged, IPv4 with one 802.1Q tag and options,
//! IPv4 with two tags (QinQ), IPv6 untagged, IPv6 with two tags.
//!
//! Each iteration copies the frame into a 2048-byte buffer (as a UMEM frame would hold
//! it), parses it and builds the reply with the same payload length. Throughput is
//! frames/s.
//!
//! `cargo bench --bench frame`; `cargo bench --bench frame -- qinq` for the QinQ frames.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nsxdp::dataplane::packet::{build_reply, parse};

const VECTORS: &str = include_str!("../tests/data/packet/vectors.txt");

fn vector(name: &str) -> Vec<u8> {
    let line = VECTORS.lines().find(|l| l.split(' ').next() == Some(name)).expect("vector present");
    let hex = line.split(' ').nth(1).expect("hex");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

fn frames(c: &mut Criterion) {
    for (label, name) in [
        ("ipv4", "q4"),
        ("ipv4_dot1q_options", "q4_vlan_opts"),
        ("ipv4_qinq", "q4_qinq"),
        ("ipv6", "q6"),
        ("ipv6_qinq", "q6_qinq"),
    ] {
        let frame = vector(name);
        let mut buf = [0u8; 2048];
        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse", |b| {
            buf[..frame.len()].copy_from_slice(&frame);
            b.iter(|| black_box(parse(black_box(&buf[..frame.len()])).expect("parses")))
        });
        g.bench_function("parse_and_reply", |b| {
            b.iter(|| {
                buf[..frame.len()].copy_from_slice(&frame);
                let d = parse(&buf[..frame.len()]).expect("parses");
                black_box(build_reply(&mut buf, &d, d.payload_len()).expect("reply"))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, frames);
criterion_main!(benches);
