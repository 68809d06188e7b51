//! The answer path allocates nothing: 10,000 `answer()` calls over a mixed query set (hits,
//! misses, referrals, wildcards, CNAME and DNAME chains, truncation, EDNS, errors, garbage)
//! under a counting global allocator; and the AF_XDP frame path (`packet::parse`, `answer`
//! in place, `packet::build_reply`) over the same queries in Ethernet frames, one by one and
//! as the run loop does it, in batches of 32 (`dataplane::xdp::answer_frames`: parse, hand
//! NOTIFY over to the control side's channel, `answer_batch`, replies), bad frames included,
//! with and without response rate limiting; and signed zones (NSEC, NSEC3) asked with DO=1.
//!
//! This is its own test binary because a `#[global_allocator]` applies to every test in a
//! binary. Only allocations made on the measuring thread while measuring are counted, so
//! the test harness's own threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nsxdp::answer::{
    answer, answer_batch, BatchScratch, Catalog, Config, DropReason, Outcome, Transport, Zones, BATCH,
};
use nsxdp::dataplane::packet::{self, UdpFrameRepr, Vlan};
use nsxdp::dataplane::xdp::{self, FrameCtx, FrameStats};
use nsxdp::dataplane::{LoopRrl, LoopStats};
use nsxdp::snapshot::{compile, write_snapshot, ArchivedZoneImage, Snapshot};
use nsxdp::wire::name::Name;
use nsxdp::zone::parse::load_text;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn zone_text() -> String {
    let mut t = String::from(
        r#"$ORIGIN example.com.
$TTL 3600
@         SOA   ns1 hostmaster 1 7200 900 1209600 300
@         NS    ns1
@         NS    ns2
@         MX    10 mail
ns1       A     192.0.2.1
ns2       AAAA  2001:db8::2
mail      A     192.0.2.3
www       A     192.0.2.10
_sip._tcp SRV   0 5 5060 www
a.b.c     A     192.0.2.4
c1        CNAME c2
c2        CNAME www
loop1     CNAME loop2
loop2     CNAME loop1
cout      CNAME www.example.net.
sub       NS    ns.sub
ns.sub    A     192.0.2.53
*.w       TXT   "wild"
d         DNAME example.net.
dn        DNAME inner.example.com.
host.inner A    192.0.2.40
"#,
    );
    for i in 0..30 {
        t.push_str(&format!("big TXT \"{i:03}{}\"\n", "x".repeat(97)));
    }
    t
}

fn build(origin: &str, text: &str) -> nsxdp::snapshot::ZoneImage {
    let origin = Name::parse_text(origin.as_bytes(), None).unwrap();
    let loaded = load_text(Path::new("t.zone"), text.as_bytes(), &origin);
    assert!(loaded.is_servable(), "{:?}", loaded.diagnostics);
    compile(&loaded.zone).unwrap()
}

fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    m.extend_from_slice(Name::parse_text(name.as_bytes(), None).unwrap().as_wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
    }
    m
}

fn queries() -> Vec<(Vec<u8>, Transport)> {
    let names = [
        "www.example.com.",
        "WWW.Example.COM.",
        "example.com.",
        "nothere.example.com.",
        "c.example.com.",
        "c1.example.com.",
        "loop1.example.com.",
        "cout.example.com.",
        "host.sub.example.com.",
        "x.y.w.example.com.",
        "a.b.d.example.com.",
        "host.dn.example.com.",
        "big.example.com.",
        "_sip._tcp.example.com.",
        "www.example.org.",
        "host.other.test.",
    ];
    let types = [1u16, 28, 2, 15, 16, 33, 255, 43, 5, 39, 6];
    let mut v = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (j, &t) in types.iter().enumerate() {
            let edns = match (i + j) % 3 {
                0 => None,
                1 => Some(1232),
                _ => Some(4096),
            };
            let transport = if (i + j) % 4 == 0 { Transport::Tcp } else { Transport::Udp };
            v.push((query(n, t, edns), transport));
        }
    }
    // Errors: class CH, opcode 2, qdcount 0, EDNS version 1, truncated, trailing garbage,
    // a pointer in the question.
    let mut ch = query("www.example.com.", 16, None);
    let l = ch.len();
    ch[l - 1] = 3;
    v.push((ch, Transport::Udp));
    let mut op = query("www.example.com.", 1, None);
    op[2] = 0x10;
    v.push((op, Transport::Udp));
    v.push((vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Transport::Udp));
    let mut badvers = query("www.example.com.", 1, Some(1232));
    let l = badvers.len();
    badvers[l - 5] = 1;
    v.push((badvers, Transport::Udp));
    v.push((query("www.example.com.", 1, None)[..20].to_vec(), Transport::Udp));
    let mut trailing = query("www.example.com.", 1, None);
    trailing.extend_from_slice(b"junk");
    v.push((trailing, Transport::Tcp));
    v.push((b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01".to_vec(), Transport::Udp));
    v.push((vec![0; 5], Transport::Udp));
    v
}

/// Runs `rounds` answers over the query set; returns (allocations, replies).
fn measure(zones: &impl Zones, qs: &[(Vec<u8>, Transport)], buf: &mut [u8], rounds: usize) -> (usize, usize) {
    let cfg = Config::default();
    let mut replies = 0;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    for i in 0..rounds {
        let (q, t) = &qs[i % qs.len()];
        buf[..q.len()].copy_from_slice(q);
        let o = answer(zones, std::hint::black_box(&mut *buf), q.len(), *t, &cfg);
        if let Outcome::Reply { len, .. } = std::hint::black_box(o) {
            assert!(len <= buf.len());
            replies += 1;
        }
    }
    MEASURING.with(|m| m.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed), replies)
}

#[test]
fn answering_allocates_nothing() {
    let img = build("example.com.", &zone_text());
    let other = build("other.test.", "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nhost A 192.0.2.2\n");
    let qs = queries();
    let mut buf = vec![0u8; 65535];

    // One archived zone, accessed in memory.
    let bytes = rkyv::to_bytes::<rkyv::rancor::BoxedError>(&img).unwrap();
    let z = rkyv::access::<ArchivedZoneImage, rkyv::rancor::BoxedError>(&bytes).unwrap();
    let (allocs, replies) = measure(z, &qs, &mut buf, 10_000);
    assert_eq!(allocs, 0, "allocations while answering from one zone");
    assert!(replies > 9_000, "{replies} replies");

    // The catalog over snapshot files, as the server uses it.
    let dir = tempfile::tempdir().unwrap();
    let mut snaps = Vec::new();
    for (i, img) in [&img, &other].into_iter().enumerate() {
        let path = dir.path().join(format!("{i}.snap"));
        write_snapshot(&path, img).unwrap();
        snaps.push(Arc::new(Snapshot::open(&path).unwrap()));
    }
    let catalog = Catalog::new(snaps);
    let (allocs, replies) = measure(&catalog, &qs, &mut buf, 10_000);
    assert_eq!(allocs, 0, "allocations while answering from the catalog");
    assert!(replies > 9_000, "{replies} replies");

    batches_allocate_nothing(&catalog, &qs);
    frame_path_allocates_nothing(z);
    batch_frame_path_allocates_nothing(&catalog);

    // The counter works.
    MEASURING.with(|m| m.set(true));
    let v = std::hint::black_box(vec![1u8; 16]);
    MEASURING.with(|m| m.set(false));
    drop(v);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) >= 1);
}

/// `answer_batch` over the whole query set, 32 at a time, as the run loops call it. Part of
/// the one test above, as the allocation counter is shared.
fn batches_allocate_nothing(zones: &impl Zones, qs: &[(Vec<u8>, Transport)]) {
    // Cookies on, as the run loops have them with `[cookies]`.
    let cfg = Config { cookies: Some(nsxdp::cookie::Secrets::new([7; 16])), now: 1_700_000_000, ..Config::default() };
    let clients = ["192.0.2.1".parse().unwrap(); BATCH];
    let mut scratch = BatchScratch::new();
    let mut bufs = vec![vec![0u8; 4096]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut out = [Outcome::Drop(DropReason::Short); BATCH];
    let mut replies = 0;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    for round in 0..300 {
        for i in 0..BATCH {
            let (q, _) = &qs[(round * BATCH + i) % qs.len()];
            bufs[i][..q.len()].copy_from_slice(q);
            lens[i] = q.len();
        }
        let bufs = std::hint::black_box(&mut bufs[..]);
        answer_batch(zones, bufs, &lens, &clients, Transport::Udp, &cfg, &mut out, &mut scratch);
        replies += out.iter().filter(|o| matches!(o, Outcome::Reply { .. })).count();
    }
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations while answering in batches");
    assert!(replies > 8_000, "{replies} replies");
}

/// The AF_XDP frame path over one zone: parse, answer in place, build the reply.
/// Part of the one test above, as the allocation counter is shared.
fn frame_path_allocates_nothing(z: &impl Zones) {
    let cfg = Config::default();
    // Every UDP query in an Ethernet frame, over IPv4 and IPv6 (the IPv6 ones VLAN-tagged).
    let mut frames = Vec::new();
    for (i, (q, _)) in queries().iter().enumerate() {
        let (src, dst, vlan) = if i % 2 == 0 {
            ("198.18.0.2:40000", "198.18.0.1:53", Vlan::Untagged)
        } else {
            ("[2001:db8::2]:40000", "[2001:db8::1]:53", Vlan::dot1q(10))
        };
        let repr = UdpFrameRepr {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            vlan,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        };
        let mut f = vec![0u8; repr.header_len() + q.len()];
        f[repr.header_len()..].copy_from_slice(q);
        repr.emit(&mut f, q.len()).unwrap();
        frames.push(f);
    }
    let mut buf = vec![0u8; 4096 - 256];
    let mut replies = 0;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    for i in 0..10_000 {
        let f = &frames[i % frames.len()];
        buf[..f.len()].copy_from_slice(f);
        let Ok(d) = packet::parse(&buf[..f.len()]) else { continue };
        let o = answer(z, &mut buf[d.payload_offset()..], d.payload_len(), Transport::Udp, &cfg);
        if let Outcome::Reply { len, .. } = o {
            let r = packet::build_reply(&mut buf, &d, len).unwrap();
            std::hint::black_box(&buf[r]);
            replies += 1;
        }
    }
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations on the frame path");
    assert!(replies > 9_000, "{replies} replies");
}

/// The run loop's frame work (`xdp::answer_frames`) in batches of 32 frames: queries, a
/// NOTIFY for the control side (its channel fills up and drops, as when the control side
/// lags), and frames with a bad checksum; then the same with response rate limiting on,
/// limiting (and logging) for most of the run. Part of the one test above.
fn batch_frame_path_allocates_nothing(z: &impl Zones) {
    batch_frame_path(z, None);
    let settings = nsxdp::rrl::Settings { rate: 50, slip: 2, table_size: 1024, ..Default::default() };
    let mut rrl = LoopRrl::new(&settings);
    let dns = batch_frame_path(z, Some(&mut rrl));
    let (dropped, slipped) = (dns.rrl_dropped.load(Ordering::Relaxed), dns.rrl_slipped.load(Ordering::Relaxed));
    assert!(dropped > 1000 && slipped > 1000, "rrl dropped {dropped}, slipped {slipped}");
}

fn batch_frame_path(z: &impl Zones, mut rrl: Option<&mut LoopRrl>) -> LoopStats {
    let mut msgs: Vec<Vec<u8>> = queries().into_iter().filter(|(_, t)| *t == Transport::Udp).map(|(q, _)| q).collect();
    let mut notify = query("example.com.", 6, None);
    notify[2] = 4 << 3;
    msgs.push(notify);
    let mut frames = Vec::new();
    for (i, q) in msgs.iter().enumerate() {
        let (src, dst) = if i % 2 == 0 {
            ("198.18.0.2:40000", "198.18.0.1:53")
        } else {
            ("[2001:db8::2]:40000", "[2001:db8::1]:53")
        };
        let repr = UdpFrameRepr {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            vlan: Vlan::Untagged,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
        };
        let mut f = vec![0u8; repr.header_len() + q.len()];
        f[repr.header_len()..].copy_from_slice(q);
        repr.emit(&mut f, q.len()).unwrap();
        if i % 7 == 3 {
            let last = f.len() - 1;
            f[last] ^= 0x40; // the UDP checksum no longer matches
        }
        frames.push(f);
    }
    let (tx, rx) = crossbeam_channel::bounded(4);
    let (dns, fstats) = (LoopStats::default(), FrameStats::default());
    let ctx = FrameCtx { cfg: Config::default(), mtu: 1500, dns: &dns, frames: &fstats, handoff: &tx };
    let mut scratch = BatchScratch::new();
    let mut store = vec![vec![0u8; 4096 - 256]; xdp::BATCH];
    let mut lens = [0usize; xdp::BATCH];
    let mut replies = [const { None }; xdp::BATCH];
    let mut n_replies = 0;
    // The hand-over buffers are allocated once, at start-up (the handoff thread's spawn).
    xdp::reserve_handoff_buffers();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    for round in 0..400 {
        for (j, (buf, len)) in store.iter_mut().zip(lens.iter_mut()).enumerate() {
            let f = &frames[(round * xdp::BATCH + j) % frames.len()];
            buf[..f.len()].copy_from_slice(f);
            *len = f.len();
        }
        let mut bufs: [&mut [u8]; xdp::BATCH] = Default::default();
        for (b, s) in bufs.iter_mut().zip(store.iter_mut()) {
            *b = &mut s[..];
        }
        xdp::answer_frames(z, &ctx, &mut bufs, &lens, &mut replies, &mut scratch, rrl.as_deref_mut());
        n_replies += replies.iter().filter(|r| r.is_some()).count();
    }
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations on the batched frame path");
    let handed = fstats.handed_off.load(Ordering::Relaxed) + fstats.handoff_dropped.load(Ordering::Relaxed);
    assert!(handed >= 50 && rx.len() == 4, "NOTIFY frames handed over: {handed}");
    assert!(fstats.drops[packet::DropReason::BadUdpChecksum.index()].load(Ordering::Relaxed) > 100);
    assert!(n_replies > 400 * 20 || rrl.is_some(), "{n_replies} replies");
    dns
}

/// Signed zones (NSEC and NSEC3 with salt and iterations) asked with DO=1: RRSIGs, denial
/// proofs and NSEC3 hashing of the query name at query time, still without allocating.
#[test]
fn signed_answers_allocate_nothing() {
    let zones = [
        ("nsec.test.", include_str!("data/signed/nsec.test.zone")),
        ("nsec3.test.", include_str!("data/signed/nsec3.test.zone")),
    ];
    let mut buf = vec![0u8; 65535];
    for (origin, text) in zones {
        let img = build(origin, text);
        let bytes = rkyv::to_bytes::<rkyv::rancor::BoxedError>(&img).unwrap();
        let z = rkyv::access::<ArchivedZoneImage, rkyv::rancor::BoxedError>(&bytes).unwrap();
        assert!(z.is_signed());
        let labels = [
            "",
            "www.",
            "WWW.",
            "nothere.",
            "a.b.nothere.",
            "alias.",
            "ent.",
            "y.ent.",
            "x.y.ent.",
            "q.ent.",
            "host.wild.",
            "a.b.wild.",
            "wild.",
            "*.wild.",
            "secure.",
            "ns.secure.",
            "insecure.",
            "x.insecure.",
            "mail.",
            "zzzz.",
        ];
        let types = [1u16, 28, 2, 6, 15, 16, 43, 46, 47, 50, 255, 65000];
        let mut qs = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            for (j, &t) in types.iter().enumerate() {
                let name = format!("{l}{origin}");
                // The helper's EDNS queries carry DO; 512 makes some of them truncate.
                let edns = [Some(1232), Some(4096), Some(512), None][(i + j) % 4];
                let transport = if (i + j) % 5 == 0 { Transport::Tcp } else { Transport::Udp };
                qs.push((query(&name, t, edns), transport));
            }
        }
        let (allocs, replies) = measure(z, &qs, &mut buf, 10_000);
        assert_eq!(allocs, 0, "allocations while answering from {origin} with DO=1");
        assert_eq!(replies, 10_000);
    }
}
