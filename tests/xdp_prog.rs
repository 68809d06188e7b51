//! The XDP program and its loader (`nsxdp::dataplane::xdp_prog`), in the kernel.
//!
//! - `parser_*`: the program run over crafted frames with `BPF_PROG_TEST_RUN` (no
//!   interface): each frame's action and the one counter it moves.
//! - `veth_*`: two network namespaces joined by veth (names carry the test's PID; addresses
//!   198.18.0.0/15 and 2001:db8::/32 only), the program attached on the server side from a
//!   thread that entered the namespace: ping and other ports reach the kernel, DNS reaches
//!   the kernel while no AF_XDP socket is registered and an AF_XDP socket (`dataplane::xsk`) once
//!   one is, malformed frames sent through an AF_PACKET socket are dropped and counted; stale,
//!   foreign and live programs already on the interface; nothing left after drop or kill -9.
//!   `ip` is used as an independent witness of what is attached.
//!
//! All need root (CAP_SYS_ADMIN, CAP_NET_ADMIN). Without it they are skipped with a
//! message, except under `CI=true`, where that is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{
    checksum, dns_query, enter_netns, run, send_raw, Testbed, CLI4, CLI6, CLI_MAC, SRV4, SRV6, SRV_MAC,
};
use nsxdp::dataplane::xdp_prog::{
    attached_programs, AttachMode, AttachedXdp, XdpConfig, XdpCounter, XdpError, XdpProgram, NUM_COUNTERS,
    PROGRAM_NAME, XDP_DROP, XDP_PASS,
};
use nsxdp::dataplane::xsk::{BindMode, XskConfig, XskSocket};

// ---------------------------------------------------------------------------------------
// Prerequisites

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether the test can run: root is needed. Under CI=true its absence is a failure.
fn have_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(!in_ci(), "{test}: needs root (BPF and network namespaces); CI=true, so this is a failure");
    common::skipped("needs root (BPF and network namespaces)");
    false
}

/// Whether `tool` (from `package`) runs (`tool -V`). Under CI=true its absence is a failure.
fn have_tool(test: &str, tool: &str, package: &str) -> bool {
    if std::process::Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(!in_ci(), "{test}: needs {tool} (apt-get install {package}); CI=true, so this is a failure");
    common::skipped(&format!("{tool} not found (apt-get install {package})"));
    false
}

// ---------------------------------------------------------------------------------------
// Frames

const L3: usize = 14;

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&SRV_MAC[..], &CLI_MAC, &ethertype.to_be_bytes(), payload].concat()
}

fn udp(src: IpAddr, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut d = [&40000u16.to_be_bytes()[..], &dport.to_be_bytes(), &len.to_be_bytes(), &[0, 0], payload].concat();
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [&s.octets()[..], &d.octets(), &[0, 17], &len.to_be_bytes()].concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            [&s.octets()[..], &d.octets(), &u32::from(len).to_be_bytes(), &[0, 0, 0, 17]].concat()
        }
        _ => unreachable!(),
    };
    let sum = match checksum(&[&pseudo, &d]) {
        0 => 0xffff,
        s => s,
    };
    d[6..8].copy_from_slice(&sum.to_be_bytes());
    d
}

/// An IPv4 packet (DF set, as Linux sends them) with `options` (a multiple of 4 octets).
fn ipv4(dst: Ipv4Addr, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = (hlen + payload.len()) as u16;
    let mut h = vec![0x40 | (hlen / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x00, 0x01, 0x40, 0x00, 64, proto, 0, 0]);
    h.extend_from_slice(&CLI4.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let sum = checksum(&[&h]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    [h, payload.to_vec()].concat()
}

fn ipv6(dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&CLI6.octets());
    h.extend_from_slice(&dst.octets());
    [h, payload.to_vec()].concat()
}

fn v4_udp(dst: Ipv4Addr, dport: u16, options: &[u8], dns: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(dst, 17, options, &udp(CLI4.into(), dst.into(), dport, dns)))
}

fn v4_query(dport: u16) -> Vec<u8> {
    v4_udp(SRV4, dport, &[], &dns_query(33))
}

fn v6_udp(dst: Ipv6Addr, dport: u16, dns: &[u8]) -> Vec<u8> {
    eth(0x86dd, &ipv6(dst, 17, &udp(CLI6.into(), dst.into(), dport, dns)))
}

fn v6_query(dport: u16) -> Vec<u8> {
    v6_udp(SRV6, dport, &dns_query(33))
}

/// `frame` with a VLAN tag (`tpid`, VLAN id `vid`) inserted after the MAC addresses.
fn tagged(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
    [&frame[..12], &tpid.to_be_bytes(), &vid.to_be_bytes(), &frame[12..]].concat()
}

fn set_u16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get_u16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

// ---------------------------------------------------------------------------------------
// Counters

/// The counters that moved between two readings, by name.
fn moved(before: &[u64; NUM_COUNTERS], after: &[u64; NUM_COUNTERS]) -> Vec<(&'static str, u64)> {
    XdpCounter::ALL
        .iter()
        .filter(|c| after[**c as usize] != before[**c as usize])
        .map(|c| (c.name(), after[*c as usize] - before[*c as usize]))
        .collect()
}

fn delta(prog: &XdpProgram, before: &[u64; NUM_COUNTERS], c: XdpCounter) -> u64 {
    prog.counters().unwrap()[c as usize] - before[c as usize]
}

// ---------------------------------------------------------------------------------------
// BPF_PROG_TEST_RUN over crafted frames

/// Runs `frame` through `prog`; it must give `action` and move `counter` by one and no other.
#[track_caller]
fn expect(prog: &XdpProgram, what: &str, frame: &[u8], action: u32, counter: XdpCounter) {
    let before = prog.counters().unwrap();
    let got = prog.test_run(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
    let after = prog.counters().unwrap();
    let name = |a: u32| ["ABORTED", "DROP", "PASS", "TX", "REDIRECT"].get(a as usize).copied().unwrap_or("?");
    assert_eq!((got, name(got)), (action, name(action)), "{what}: action");
    assert_eq!(moved(&before, &after), [(counter.name(), 1)], "{what}: counters");
}

#[test]
fn parser_hands_over_well_formed_dns() {
    if !have_root("parser_hands_over_well_formed_dns") {
        return;
    }
    let prog = XdpProgram::load(&XdpConfig::port(53)).unwrap();
    assert!(prog.attachment().is_none());
    // No AF_XDP socket on queue 0: a DNS frame is ours, but goes on to the kernel.
    use XdpCounter::NoSocket;
    expect(&prog, "IPv4", &v4_query(53), XDP_PASS, NoSocket);
    // Router alert (4 octets) and end of options, padded: IHL 7.
    expect(
        &prog,
        "IPv4 with options",
        &v4_udp(SRV4, 53, &[0x94, 4, 0, 0, 1, 1, 1, 0], &dns_query(33)),
        XDP_PASS,
        NoSocket,
    );
    expect(&prog, "IPv6", &v6_query(53), XDP_PASS, NoSocket);
    expect(&prog, "802.1Q IPv4", &tagged(&v4_query(53), 0x8100, 7), XDP_PASS, NoSocket);
    expect(&prog, "802.1Q IPv6", &tagged(&v6_query(53), 0x8100, 7), XDP_PASS, NoSocket);
    expect(&prog, "802.1ad+802.1Q IPv4", &tagged(&tagged(&v4_query(53), 0x8100, 7), 0x88a8, 9), XDP_PASS, NoSocket);
    expect(&prog, "802.1ad+802.1Q IPv6", &tagged(&tagged(&v6_query(53), 0x8100, 7), 0x88a8, 9), XDP_PASS, NoSocket);
    // Exactly a DNS header is enough.
    expect(&prog, "12 octets of DNS", &v4_udp(SRV4, 53, &[], &dns_query(12)), XDP_PASS, NoSocket);
    // Ethernet pads a short frame to 60 octets: the IP length, not the frame, counts.
    let mut padded = v4_udp(SRV4, 53, &[], &dns_query(12));
    padded.resize(60, 0);
    expect(&prog, "padded IPv4", &padded, XDP_PASS, NoSocket);
    let mut padded6 = v6_udp(SRV6, 53, &dns_query(12));
    padded6.resize(padded6.len() + 6, 0);
    expect(&prog, "padded IPv6", &padded6, XDP_PASS, NoSocket);
}

#[test]
fn parser_passes_what_is_not_ours() {
    if !have_root("parser_passes_what_is_not_ours") {
        return;
    }
    let prog = XdpProgram::load(&XdpConfig::port(53)).unwrap();
    use XdpCounter::*;
    let arp =
        eth(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0x18, 0, 2, 198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1]);
    expect(&prog, "ARP", &arp, XDP_PASS, PassNotIp);
    expect(
        &prog,
        "three VLAN tags",
        &tagged(&tagged(&tagged(&v4_query(53), 0x8100, 1), 0x8100, 2), 0x88a8, 3),
        XDP_PASS,
        PassNotIp,
    );
    let tcp =
        [&40000u16.to_be_bytes()[..], &53u16.to_be_bytes(), &[0; 8], &[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]].concat();
    expect(&prog, "TCP/53", &eth(0x0800, &ipv4(SRV4, 6, &[], &tcp)), XDP_PASS, PassNotUdp);
    expect(&prog, "TCP/53 over IPv6", &eth(0x86dd, &ipv6(SRV6, 6, &tcp)), XDP_PASS, PassNotUdp);
    let echo = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    expect(&prog, "ICMP echo", &eth(0x0800, &ipv4(SRV4, 1, &[], &echo)), XDP_PASS, PassNotUdp);
    expect(&prog, "IPv6 no next header", &eth(0x86dd, &ipv6(SRV6, 59, &[])), XDP_PASS, PassNotUdp);
    expect(&prog, "UDP/5353", &v4_query(5353), XDP_PASS, PassOtherDst);
    expect(&prog, "UDP/5353 over IPv6", &v6_query(5353), XDP_PASS, PassOtherDst);
    // The port in the source, not the destination.
    let mut reply = v4_query(1053);
    set_u16(&mut reply, L3 + 20, 53);
    expect(&prog, "from port 53", &reply, XDP_PASS, PassOtherDst);
    let mut multicast = v4_query(53);
    multicast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0xfb]);
    expect(&prog, "multicast MAC", &multicast, XDP_PASS, PassOtherDst);
    let mut broadcast = v6_query(53);
    broadcast[..6].copy_from_slice(&[0xff; 6]);
    expect(&prog, "broadcast MAC", &broadcast, XDP_PASS, PassOtherDst);

    // Fragments go to the kernel, which reassembles them: more fragments, or an offset.
    let mut first = v4_query(53);
    set_u16(&mut first, L3 + 6, 0x2000);
    expect(&prog, "IPv4 first fragment", &first, XDP_PASS, PassFragment);
    let mut later = v4_query(53);
    set_u16(&mut later, L3 + 6, 0x0003);
    expect(&prog, "IPv4 later fragment", &later, XDP_PASS, PassFragment);
    let mut last = v4_query(53);
    set_u16(&mut last, L3 + 6, 0x4000 | 0x0010);
    expect(&prog, "IPv4 last fragment (DF, offset)", &last, XDP_PASS, PassFragment);

    // IPv6 extension headers: hop-by-hop (8 octets of padding options) before UDP, and a
    // fragment header.
    let udp6 = udp(CLI6.into(), SRV6.into(), 53, &dns_query(33));
    let hbh = [&[17u8, 0, 1, 4, 0, 0, 0, 0][..], &udp6].concat();
    expect(&prog, "IPv6 hop-by-hop", &eth(0x86dd, &ipv6(SRV6, 0, &hbh)), XDP_PASS, PassIpv6Ext);
    let frag = [&[17u8, 0, 0, 1, 0, 0, 0, 9][..], &udp6].concat();
    expect(&prog, "IPv6 fragment header", &eth(0x86dd, &ipv6(SRV6, 44, &frag)), XDP_PASS, PassIpv6Ext);
    expect(&prog, "IPv6 destination options", &eth(0x86dd, &ipv6(SRV6, 60, &hbh)), XDP_PASS, PassIpv6Ext);

    // Too broken to tell whether it is ours: the kernel decides (and discards).
    let q = v4_query(53);
    expect(&prog, "IPv4 header cut short", &q[..L3 + 19], XDP_PASS, PassMalformed);
    expect(&prog, "IPv4 cut before the destination port", &q[..L3 + 20 + 3], XDP_PASS, PassMalformed);
    let mut ihl4 = v4_query(53);
    ihl4[L3] = 0x44;
    expect(&prog, "IPv4 IHL 4", &ihl4, XDP_PASS, PassMalformed);
    let mut v6_in_v4 = v4_query(53);
    v6_in_v4[L3] = 0x65;
    expect(&prog, "version 6 in an IPv4 frame", &v6_in_v4, XDP_PASS, PassMalformed);
    let q6 = v6_query(53);
    expect(&prog, "IPv6 header cut short", &q6[..L3 + 39], XDP_PASS, PassMalformed);
    let mut v4_in_v6 = v6_query(53);
    v4_in_v6[L3] = 0x40;
    expect(&prog, "version 4 in an IPv6 frame", &v4_in_v6, XDP_PASS, PassMalformed);
    expect(&prog, "VLAN tag cut short", &tagged(&q, 0x8100, 1)[..16], XDP_PASS, PassMalformed);
}

#[test]
fn parser_drops_malformed_dns() {
    if !have_root("parser_drops_malformed_dns") {
        return;
    }
    let prog = XdpProgram::load(&XdpConfig::port(53)).unwrap();
    use XdpCounter::*;
    let q = v4_query(53);
    let q6 = v6_query(53);
    let udp4 = L3 + 20;
    let udp6 = L3 + 40;

    expect(&prog, "IPv4, UDP header cut short", &q[..udp4 + 6], XDP_DROP, DropTruncated);
    expect(&prog, "IPv6, UDP header cut short", &q6[..udp6 + 7], XDP_DROP, DropTruncated);
    expect(&prog, "11 octets of DNS", &v4_udp(SRV4, 53, &[], &dns_query(11)), XDP_DROP, DropShort);
    expect(&prog, "no DNS at all", &v4_udp(SRV4, 53, &[], &[]), XDP_DROP, DropShort);
    expect(&prog, "11 octets of DNS over IPv6", &v6_udp(SRV6, 53, &dns_query(11)), XDP_DROP, DropShort);
    // ... even when Ethernet padding makes the frame long enough.
    let mut padded = v4_udp(SRV4, 53, &[], &dns_query(4));
    padded.resize(60, 0);
    expect(&prog, "padded 4 octets of DNS", &padded, XDP_DROP, DropShort);

    // The IP length claims more than the frame holds.
    expect(&prog, "IPv4 frame cut inside DNS", &q[..q.len() - 1], XDP_DROP, DropIpLen);
    let mut long = q.clone();
    set_u16(&mut long, L3 + 2, get_u16(&q, L3 + 2) + 1);
    expect(&prog, "IPv4 total length too long", &long, XDP_DROP, DropIpLen);
    let mut tiny = q.clone();
    set_u16(&mut tiny, L3 + 2, 20 + 7);
    expect(&prog, "IPv4 total length shorter than IP+UDP", &tiny, XDP_DROP, DropIpLen);
    expect(&prog, "IPv6 frame cut inside DNS", &q6[..q6.len() - 1], XDP_DROP, DropIpLen);
    let mut long6 = q6.clone();
    set_u16(&mut long6, L3 + 4, get_u16(&q6, L3 + 4) + 2);
    expect(&prog, "IPv6 payload length too long", &long6, XDP_DROP, DropIpLen);
    let mut jumbo = q6.clone();
    set_u16(&mut jumbo, L3 + 4, 0);
    expect(&prog, "IPv6 payload length 0", &jumbo, XDP_DROP, DropIpLen);

    // The UDP length disagrees with what the IP header says follows it.
    for (what, frame, at) in [("IPv4", &q, udp4), ("IPv6", &q6, udp6)] {
        let len = get_u16(frame, at + 4);
        for bad in [len - 1, len + 1, 8, 0, 0xffff] {
            let mut f = frame.clone();
            set_u16(&mut f, at + 4, bad);
            expect(&prog, &format!("{what} UDP length {bad} for {len}"), &f, XDP_DROP, DropUdpLen);
        }
    }
    // With IPv4 options, the header length comes from IHL.
    let mut opt = v4_udp(SRV4, 53, &[1, 1, 1, 1], &dns_query(33));
    let len = get_u16(&opt, L3 + 24 + 4);
    set_u16(&mut opt, L3 + 24 + 4, len + 4);
    expect(&prog, "IPv4 options, UDP length counting them", &opt, XDP_DROP, DropUdpLen);
    // Inside VLAN tags too.
    expect(
        &prog,
        "802.1Q, 11 octets of DNS",
        &tagged(&v4_udp(SRV4, 53, &[], &dns_query(11)), 0x8100, 5),
        XDP_DROP,
        DropShort,
    );
    let cut = tagged(&tagged(&q6, 0x8100, 5), 0x88a8, 6);
    expect(&prog, "802.1ad, IPv6 cut", &cut[..cut.len() - 3], XDP_DROP, DropIpLen);
}

/// What the XDP program made of `frame`: the one counter it moved.
fn xdp_verdict(prog: &XdpProgram, frame: &[u8]) -> XdpCounter {
    let before = prog.counters().unwrap();
    prog.test_run(frame).unwrap();
    let after = prog.counters().unwrap();
    let moved: Vec<XdpCounter> =
        XdpCounter::ALL.iter().copied().filter(|c| after[*c as usize] != before[*c as usize]).collect();
    assert_eq!(moved.len(), 1, "{moved:?} for {frame:02x?}");
    moved[0]
}

/// `frame` (untagged) with `tags` ((TPID, TCI), outermost first) after the MAC addresses.
fn with_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    tags.iter().rev().fold(frame.to_vec(), |f, (tpid, tci)| tagged(&f, *tpid, *tci))
}

/// The frame parser the AF_XDP run loop uses (`dataplane::packet::parse`) and the XDP
/// program, over the same frames: the program hands over exactly what the parser reads
/// (untagged, one tag, QinQ with an 802.1ad or 802.1Q outer tag), and both leave alone
/// what has a third tag or a second tag that is not 802.1Q. Then 3,000 frames with their
/// tags and ethertypes mutated (TPIDs swapped, tags added and removed, cut inside the
/// tags), where the two must agree in both directions.
#[test]
fn parser_and_frame_parser_agree_on_vlan_tags() {
    if !have_root("parser_and_frame_parser_agree_on_vlan_tags") {
        return;
    }
    use nsxdp::dataplane::packet::{self, DropReason, Vlan, VlanTag};
    use XdpCounter::*;
    let prog = XdpProgram::load(&XdpConfig::port(53)).unwrap();
    let dns = dns_query(33);
    let t = |tpid, tci| VlanTag { tpid, tci };
    // (what, tags as (TPID, TCI) outermost first, what the parser must make of them)
    type Tags = &'static [(u16, u16)];
    let cases: [(&str, Tags, Option<Vlan>); 8] = [
        ("untagged", &[], Some(Vlan::Untagged)),
        ("802.1Q", &[(0x8100, 7)], Some(Vlan::Single(t(0x8100, 7)))),
        ("802.1ad alone", &[(0x88a8, 9)], Some(Vlan::Single(t(0x88a8, 9)))),
        ("802.1ad over 802.1Q", &[(0x88a8, 9), (0x8100, 7)], Some(Vlan::Double { outer: t(0x88a8, 9), inner_tci: 7 })),
        (
            "802.1Q over 802.1Q",
            &[(0x8100, 0xe009), (0x8100, 7)],
            Some(Vlan::Double { outer: t(0x8100, 0xe009), inner_tci: 7 }),
        ),
        ("three tags", &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)], None),
        ("802.1ad under 802.1ad", &[(0x88a8, 1), (0x88a8, 2)], None),
        ("802.1ad under 802.1Q", &[(0x8100, 1), (0x88a8, 2)], None),
    ];
    for (base_name, base) in [("IPv4", v4_query(53)), ("IPv6", v6_query(53))] {
        for (what, tags, vlan) in &cases {
            let f = with_tags(&base, tags);
            let what = format!("{base_name}, {what}");
            let xdp = xdp_verdict(&prog, &f);
            let parsed = packet::parse(&f);
            match vlan {
                Some(vlan) => {
                    assert_eq!(xdp, NoSocket, "{what}: the XDP program does not hand it over");
                    let d = parsed.unwrap_or_else(|e| panic!("{what}: the frame parser refuses it: {e}"));
                    assert_eq!(d.vlan(), *vlan, "{what}");
                    assert_eq!(&f[d.payload_range()], &dns[..], "{what}");
                    // The reply keeps the tags.
                    let mut r = f.clone();
                    let range = packet::build_reply(&mut r, &d, d.payload_len()).unwrap();
                    assert_eq!(&r[range.start + 12..range.start + 12 + 4 * tags.len()], &f[12..12 + 4 * tags.len()]);
                    assert_eq!(packet::parse(&r[range]).map(|d| d.vlan()), Ok(*vlan), "{what}: reply");
                }
                None => {
                    assert_eq!(xdp, PassNotIp, "{what}: the XDP program takes it");
                    assert_eq!(parsed, Err(DropReason::NotIp), "{what}");
                }
            }
        }
    }

    // Mutated tag stacks. For frames to port 53 with a unicast MAC and 12+ octets of DNS:
    // - parsed ⇒ handed over;
    // - handed over ⇒ parsed, or refused only for what the program does not check
    //   (checksums, source port 0);
    // - passed as not IP ⇔ not IP to the parser.
    let tpids = [0x8100u16, 0x88a8, 0x9100, 0x0800, 0x86dd, 0x0806, 0xffff];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut seen = std::collections::HashMap::new();
    for i in 0..3000 {
        let base = if i % 2 == 0 { v4_query(53) } else { v6_query(53) };
        let tags: Vec<(u16, u16)> = (0..next(4)).map(|_| (tpids[next(3)], next(0x10000) as u16)).collect();
        let mut f = with_tags(&base, &tags);
        // One ethertype or TPID slot replaced by anything from the list.
        if next(3) == 0 {
            let slot = 12 + 4 * next(tags.len() + 1);
            set_u16(&mut f, slot, tpids[next(tpids.len())]);
        }
        if next(5) == 0 {
            f.truncate(14 + next(4 * tags.len() + 4));
        }
        let xdp = xdp_verdict(&prog, &f);
        let parsed = packet::parse(&f);
        *seen.entry((xdp.name(), parsed.map(|d| d.vlan().len()).map_err(|e| e.as_str()))).or_insert(0) += 1;
        let what = format!("frame {i} {f:02x?}: XDP {xdp:?}, parser {parsed:?}");
        match parsed {
            Ok(d) if d.payload_len() >= 12 => assert_eq!(xdp, NoSocket, "{what}"),
            Ok(_) => assert_eq!(xdp, DropShort, "{what}"),
            Err(DropReason::NotIp) => assert_eq!(xdp, PassNotIp, "{what}"),
            Err(
                DropReason::BadUdpChecksum
                | DropReason::BadIpChecksum
                | DropReason::MissingUdpChecksum
                | DropReason::SourcePortZero,
            ) => {}
            Err(_) => assert_ne!(xdp, NoSocket, "{what}"),
        }
        if xdp == PassNotIp {
            assert_eq!(parsed, Err(DropReason::NotIp), "{what}");
        }
    }
    eprintln!("(XDP verdict, parser: tag octets or drop reason) -> frames: {seen:?}");
    // The mutations reached every kind of stack: none, one and two tags parsed, and frames
    // left to the kernel as not IP.
    for key in [(NoSocket.name(), Ok(0)), (NoSocket.name(), Ok(4)), (NoSocket.name(), Ok(8))] {
        assert!(seen.get(&key).copied().unwrap_or(0) >= 50, "{key:?}: {seen:?}");
    }
    assert!(seen.get(&(PassNotIp.name(), Err("not_ip"))).copied().unwrap_or(0) >= 200, "{seen:?}");
}

#[test]
fn parser_follows_configuration() {
    if !have_root("parser_follows_configuration") {
        return;
    }
    use XdpCounter::*;
    let mut prog = XdpProgram::load(&XdpConfig::port(0)).unwrap();
    // Port 0: not configured, everything goes to the kernel untouched, even broken DNS.
    expect(&prog, "unconfigured", &v4_query(53), XDP_PASS, PassOtherDst);
    expect(&prog, "unconfigured, short", &v4_udp(SRV4, 53, &[], &[]), XDP_PASS, PassOtherDst);

    prog.set_config(&XdpConfig::port(5353)).unwrap();
    expect(&prog, "port 5353", &v4_query(5353), XDP_PASS, NoSocket);
    expect(&prog, "port 53 when 5353", &v4_query(53), XDP_PASS, PassOtherDst);
    expect(&prog, "short DNS to another port", &v4_udp(SRV4, 53, &[], &[]), XDP_PASS, PassOtherDst);

    let other4 = Ipv4Addr::new(198, 18, 0, 3);
    let other6: Ipv6Addr = "2001:db8::3".parse().unwrap();
    prog.set_config(&XdpConfig { port: 53, v4: Some(SRV4), v6: None }).unwrap();
    expect(&prog, "v4 address", &v4_query(53), XDP_PASS, NoSocket);
    expect(&prog, "other v4 address", &v4_udp(other4, 53, &[], &dns_query(33)), XDP_PASS, PassOtherDst);
    expect(&prog, "broken DNS to another v4 address", &v4_udp(other4, 53, &[], &[]), XDP_PASS, PassOtherDst);
    expect(&prog, "any v6 address", &v6_udp(other6, 53, &dns_query(33)), XDP_PASS, NoSocket);

    prog.set_config(&XdpConfig { port: 53, v4: None, v6: Some(SRV6) }).unwrap();
    expect(&prog, "v6 address", &v6_query(53), XDP_PASS, NoSocket);
    // Differs from SRV6 in each 32-bit word in turn.
    for word in 0..4 {
        let mut o = SRV6.octets();
        o[word * 4 + 3] ^= 0x40;
        let dst = Ipv6Addr::from(o);
        expect(&prog, &format!("other v6 address {dst}"), &v6_udp(dst, 53, &dns_query(33)), XDP_PASS, PassOtherDst);
    }
    expect(&prog, "any v4 address", &v4_udp(other4, 53, &[], &dns_query(33)), XDP_PASS, NoSocket);

    prog.set_config(&XdpConfig { port: 53, v4: Some(SRV4), v6: Some(SRV6) }).unwrap();
    expect(&prog, "both, v4", &v4_query(53), XDP_PASS, NoSocket);
    expect(&prog, "both, v6", &v6_query(53), XDP_PASS, NoSocket);
    expect(&prog, "both, other v6", &v6_udp(other6, 53, &dns_query(33)), XDP_PASS, PassOtherDst);
}

// ---------------------------------------------------------------------------------------
// Two namespaces joined by veth (common::netns::Testbed)

impl Testbed {
    fn attached(&self) -> Vec<AttachedXdp> {
        let srv_if = self.srv_if.clone();
        self.in_ns(&self.srv, move || attached_programs(&srv_if).unwrap())
    }

    fn attach(&self, config: &XdpConfig, force: bool) -> Result<XdpProgram, XdpError> {
        self.in_ns(&self.srv, || XdpProgram::attach(&self.srv_if, config, force))
    }
}

/// A UDP socket in the server namespace: whatever reaches it went through the kernel.
fn kernel_listener(tb: &Testbed, addr: SocketAddr) -> UdpSocket {
    let s = tb.in_ns(&tb.srv, || UdpSocket::bind(addr).unwrap());
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

/// Every datagram waiting on `s` (until 300 ms of silence).
fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

fn small_xsk_config() -> XskConfig {
    XskConfig {
        frame_size: 2048,
        frame_count: 64,
        rx_size: 32,
        tx_size: 32,
        fill_size: 64,
        comp_size: 32,
        huge_pages: false,
        mode: BindMode::Copy,
    }
}

/// The first frame received on `xsk`, waiting up to `timeout`.
fn receive(xsk: &mut XskSocket, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::with_capacity(8);
    while Instant::now() < deadline {
        xsk.wakeup_rx();
        if xsk.rx_burst(&mut frames) > 0 {
            let first = xsk.frame(&frames[0]).to_vec();
            for f in frames.drain(..) {
                xsk.recycle(f);
            }
            xsk.refill();
            return Some(first);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Sends one datagram from the client namespace with a kernel socket.
fn client_send(tb: &Testbed, to: SocketAddr, payload: &[u8]) {
    tb.in_ns(&tb.cli, || {
        let from: SocketAddr = if to.is_ipv4() { "198.18.0.2:0" } else { "[2001:db8::2]:0" }.parse().unwrap();
        UdpSocket::bind(from).unwrap().send_to(payload, to).unwrap();
    });
}

#[test]
fn veth_attach_pass_drop_and_detach() {
    let test = "veth_attach_pass_drop_and_detach";
    if !have_root(test) || !have_tool(test, "ping", "iputils-ping") {
        return;
    }
    let tb = Testbed::new('x', false);
    let mut prog = tb.attach(&XdpConfig::port(53), false).unwrap();
    let id = prog.program_id().unwrap();

    // Attached in native mode, as we say, as netlink says and as ip says.
    assert_eq!(prog.attachment(), Some((tb.srv_if.as_str(), AttachMode::Native)));
    assert_eq!(tb.attached(), [AttachedXdp { id, name: PROGRAM_NAME.into(), mode: AttachMode::Native }]);
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), id)));
    let c0 = prog.counters().unwrap();

    // ping (ARP/ND, ICMP) still reaches the kernel.
    run(&["ip", "netns", "exec", &tb.cli, "ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.1"]);
    run(&["ip", "netns", "exec", &tb.cli, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8::1"]);
    assert!(delta(&prog, &c0, XdpCounter::PassNotIp) >= 1, "ARP was seen and passed");
    assert!(delta(&prog, &c0, XdpCounter::PassNotUdp) >= 4, "ICMP echo and ICMPv6 were seen and passed");

    // A UDP port that is not ours reaches the kernel.
    let other = kernel_listener(&tb, "198.18.0.1:5300".parse().unwrap());
    let c1 = prog.counters().unwrap();
    client_send(&tb, "198.18.0.1:5300".parse().unwrap(), b"not dns");
    assert_eq!(drain(&other), [b"not dns".to_vec()]);
    assert_eq!(delta(&prog, &c1, XdpCounter::PassOtherDst), 1);

    // DNS with no AF_XDP socket registered: ours, counted, and passed to the kernel.
    let dns4 = kernel_listener(&tb, "198.18.0.1:53".parse().unwrap());
    let dns6 = kernel_listener(&tb, "[2001:db8::1]:53".parse().unwrap());
    let c2 = prog.counters().unwrap();
    client_send(&tb, "198.18.0.1:53".parse().unwrap(), &dns_query(33));
    client_send(&tb, "[2001:db8::1]:53".parse().unwrap(), &dns_query(33));
    assert_eq!(drain(&dns4), [dns_query(33)]);
    assert_eq!(drain(&dns6), [dns_query(33)]);
    assert_eq!(delta(&prog, &c2, XdpCounter::NoSocket), 2);

    // Malformed frames to port 53 are dropped before the kernel (which would deliver the
    // short ones: their checksums and lengths are consistent) and counted.
    let c3 = prog.counters().unwrap();
    let cli_if = tb.cli_if.clone();
    tb.in_ns(&tb.cli, || {
        send_raw(&cli_if, &v4_udp(SRV4, 53, &[], &dns_query(5)));
        send_raw(&cli_if, &v6_udp(SRV6, 53, &dns_query(11)));
        let mut bad_len = v4_query(53);
        set_u16(&mut bad_len, L3 + 24, 33 + 8 - 4);
        send_raw(&cli_if, &bad_len);
        // A well-formed one by the same route, which must arrive.
        send_raw(&cli_if, &v4_query(53));
    });
    assert_eq!(drain(&dns4), [dns_query(33)]);
    assert!(drain(&dns6).is_empty());
    assert_eq!(delta(&prog, &c3, XdpCounter::DropShort), 2);
    assert_eq!(delta(&prog, &c3, XdpCounter::DropUdpLen), 1);
    assert_eq!(delta(&prog, &c3, XdpCounter::NoSocket), 1);

    // With an AF_XDP socket (dataplane::xsk, copy mode) on queue 0, queries go to it and no
    // longer reach the kernel.
    let srv_if = tb.srv_if.clone();
    let mut xsk = tb.in_ns(&tb.srv, || XskSocket::open(&srv_if, 0, &small_xsk_config()).unwrap());
    prog.register_socket(0, xsk.fd()).unwrap();
    let c4 = prog.counters().unwrap();
    client_send(&tb, "198.18.0.1:53".parse().unwrap(), &dns_query(33));
    let frame = receive(&mut xsk, Duration::from_secs(3)).expect("the query arrived on the AF_XDP socket");
    assert_eq!(&frame[..6], SRV_MAC);
    assert_eq!(get_u16(&frame, 12), 0x0800);
    assert_eq!(&frame[L3 + 28..], dns_query(33));
    assert!(drain(&dns4).is_empty(), "a redirected query also reached the kernel");
    assert_eq!(delta(&prog, &c4, XdpCounter::Redirected), 1);
    // Other traffic is not affected.
    client_send(&tb, "198.18.0.1:5300".parse().unwrap(), b"still kernel");
    assert_eq!(drain(&other), [b"still kernel".to_vec()]);
    // Closing the socket takes it out of the map: back to the kernel.
    drop(xsk);
    let c5 = prog.counters().unwrap();
    client_send(&tb, "198.18.0.1:53".parse().unwrap(), &dns_query(33));
    assert_eq!(drain(&dns4), [dns_query(33)]);
    assert_eq!(delta(&prog, &c5, XdpCounter::NoSocket), 1);
    assert!(matches!(prog.register_socket(64, 0), Err(XdpError::QueueOutOfRange { queue: 64 })));

    // Dropping the handle detaches the program.
    drop(prog);
    assert_eq!(tb.attached(), []);
    assert_eq!(tb.ip_sees(), None);
    client_send(&tb, "198.18.0.1:53".parse().unwrap(), &dns_query(33));
    assert_eq!(drain(&dns4), [dns_query(33)]);
}

#[test]
fn veth_replaces_stale_refuses_foreign() {
    if !have_root("veth_replaces_stale_refuses_foreign") {
        return;
    }
    let tb = Testbed::new('x', false);
    let config = XdpConfig { port: 53, v4: Some(SRV4), v6: Some(SRV6) };

    // A stale nsxdp program, attached with netlink by a process that is gone (in generic
    // mode, so replacing it also means changing mode): replaced without force.
    let stale = tb.ip_attach("xdpgeneric", "nsxdp.bpf.o");
    assert_eq!(tb.attached(), [AttachedXdp { id: stale, name: PROGRAM_NAME.into(), mode: AttachMode::Generic }]);
    let prog = tb.attach(&config, false).unwrap();
    let id = prog.program_id().unwrap();
    assert_ne!(id, stale);
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), id)));
    drop(prog);
    assert_eq!(tb.ip_sees(), None);

    // A stale one in native mode.
    let stale = tb.ip_attach("xdpdrv", "nsxdp.bpf.o");
    let prog = tb.attach(&config, false).unwrap();
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), prog.program_id().unwrap())));
    assert_ne!(prog.program_id().unwrap(), stale);
    drop(prog);

    // Someone else's program: refused without force, and left in place.
    let foreign = tb.ip_attach("xdpdrv", "foreign_pass.bpf.o");
    let err = tb.attach(&config, false).unwrap_err();
    match &err {
        XdpError::Foreign { id, name, mode, .. } => {
            assert_eq!((*id, name.as_str(), *mode), (foreign, "foreign_pass", AttachMode::Native))
        }
        e => panic!("expected a refusal, got {e}"),
    }
    assert!(err.to_string().contains("--xdp-force"), "{err}");
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), foreign)));
    // Replaced with force.
    let prog = tb.attach(&config, true).unwrap();
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), prog.program_id().unwrap())));
    drop(prog);
    assert_eq!(tb.ip_sees(), None);

    // The same in generic mode.
    let foreign = tb.ip_attach("xdpgeneric", "foreign_pass.bpf.o");
    assert!(matches!(tb.attach(&config, false), Err(XdpError::Foreign { mode: AttachMode::Generic, .. })));
    assert_eq!(tb.ip_sees(), Some(("xdpgeneric".to_string(), foreign)));
    let prog = tb.attach(&config, true).unwrap();
    assert_eq!(prog.attachment().map(|a| a.1), Some(AttachMode::Native));
    drop(prog);
    assert_eq!(tb.ip_sees(), None);

    // A live nsxdp (its BPF link held by a running process, here our first handle) cannot
    // be replaced, even with force; the first keeps running.
    let first = tb.attach(&config, false).unwrap();
    for force in [false, true] {
        match tb.attach(&config, force) {
            Err(e @ XdpError::InUse { .. }) => {
                eprintln!("refused as expected: {e}");
                let XdpError::InUse { name, .. } = e else { unreachable!() };
                assert_eq!(name, PROGRAM_NAME);
            }
            other => panic!("replacing a live program: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), first.program_id().unwrap())));
    first.detach().unwrap();
    assert_eq!(tb.ip_sees(), None);
}

#[test]
fn loopback_falls_back_to_generic_mode() {
    if !have_root("loopback_falls_back_to_generic_mode") {
        return;
    }
    let tb = Testbed::new('x', false);
    // Loopback has no native XDP (this one is the server namespace's own).
    let lo_if = "lo".to_string();
    let prog = tb.in_ns(&tb.srv, || XdpProgram::attach(&lo_if, &XdpConfig::port(53), false)).unwrap();
    assert_eq!(prog.attachment(), Some((lo_if.as_str(), AttachMode::Generic)));
    let id = prog.program_id().unwrap();
    let seen = tb.in_ns(&tb.srv, || attached_programs(&lo_if).unwrap());
    assert_eq!(seen, [AttachedXdp { id, name: PROGRAM_NAME.into(), mode: AttachMode::Generic }]);
    drop(prog);
    assert_eq!(tb.in_ns(&tb.srv, || attached_programs(&lo_if).unwrap()), []);
    // No such interface.
    let missing = tb.in_ns(&tb.srv, || XdpProgram::attach("nsxdp-none0", &XdpConfig::port(53), false));
    assert!(matches!(missing, Err(XdpError::NoInterface(ref n)) if n == "nsxdp-none0"), "{missing:?}");
}

/// Run as a child by `veth_kill_9_leaves_nothing`: attaches, says so, and waits to be killed.
#[test]
#[ignore = "helper: run by veth_kill_9_leaves_nothing in a child process"]
fn xdp_child_holds_program() {
    let (Ok(ns), Ok(ifname)) = (std::env::var("NSXDP_TEST_NETNS"), std::env::var("NSXDP_TEST_IF")) else {
        return;
    };
    enter_netns(&format!("/run/netns/{ns}"));
    let prog = XdpProgram::attach(&ifname, &XdpConfig::port(53), false).unwrap();
    println!("ATTACHED {}", prog.program_id().unwrap());
    std::thread::sleep(Duration::from_secs(60));
    panic!("not killed within 60 s");
}

#[test]
fn veth_kill_9_leaves_nothing() {
    if !have_root("veth_kill_9_leaves_nothing") {
        return;
    }
    let tb = Testbed::new('x', false);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["xdp_child_holds_program", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("NSXDP_TEST_NETNS", &tb.srv)
        .env("NSXDP_TEST_IF", &tb.srv_if)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let id = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        // libtest may print "test NAME ... " before it on the same line.
        .find_map(|l| l.split("ATTACHED ").nth(1).map(|i| i.trim().parse::<u32>().unwrap()));
    let id = id.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the child did not attach: {:?}", child.wait())
    });
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), id)));
    child.kill().unwrap(); // SIGKILL, to our own child
    child.wait().unwrap();
    // The kernel drops the link with the process's last fd; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tb.ip_sees().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tb.ip_sees(), None, "a killed nsxdp left its program attached");
    // And a new one attaches without ado.
    let prog = tb.attach(&XdpConfig::port(53), false).unwrap();
    assert_eq!(tb.ip_sees(), Some(("xdp".to_string(), prog.program_id().unwrap())));
}
