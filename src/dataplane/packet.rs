//! Ethernet, VLAN tags (802.1Q, 802.1ad QinQ), IPv4, IPv6 and UDP framing of DNS messages on the AF_XDP path.
//!
//! [`parse`] checks a received frame in place (lengths, the IPv4 header checksum, the UDP
//! checksum) and says where its DNS message lies; the answer engine then writes its response
//! over the query, in the same buffer, and [`build_reply`] turns the headers around (MACs,
//! addresses and ports swapped, lengths, TTL, checksums). [`UdpFrameRepr::emit`] builds a
//! frame from scratch (tests, and anything that must originate a datagram).
//!
//! Pure: no I/O, no allocation, no clock. It knows nothing of DNS beyond "the UDP payload",
//! and nothing of where the frame lives (UMEM or a plain array). Every length is checked
//! before it is used; a frame that fails a check is reported with a [`DropReason`], never a
//! panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

/// Field positions, relative to the start of each header.
mod field {
    pub mod eth {
        use std::ops::Range;
        pub const DST: Range<usize> = 0..6;
        pub const SRC: Range<usize> = 6..12;
        pub const ETHERTYPE: Range<usize> = 12..14;
        pub const LEN: usize = 14;
    }
    /// A VLAN tag, from the ethertype slot of what precedes it (which holds its TPID).
    pub mod tag {
        use std::ops::Range;
        pub const TCI: Range<usize> = 0..2;
        /// The ethertype (or the next tag's TPID) after the tag.
        pub const ETHERTYPE: Range<usize> = 2..4;
        pub const LEN: usize = 4;
    }
    pub mod ipv4 {
        use std::ops::Range;
        pub const VER_IHL: usize = 0;
        pub const TOS: usize = 1;
        pub const TOTAL_LEN: Range<usize> = 2..4;
        pub const IDENT: Range<usize> = 4..6;
        pub const FLAGS_FRAG: Range<usize> = 6..8;
        pub const TTL: usize = 8;
        pub const PROTOCOL: usize = 9;
        pub const CHECKSUM: Range<usize> = 10..12;
        pub const SRC: Range<usize> = 12..16;
        pub const DST: Range<usize> = 16..20;
        pub const MIN_LEN: usize = 20;
    }
    pub mod ipv6 {
        use std::ops::Range;
        pub const VER_TC_FLOW: Range<usize> = 0..4;
        pub const PAYLOAD_LEN: Range<usize> = 4..6;
        pub const NEXT_HEADER: usize = 6;
        pub const HOP_LIMIT: usize = 7;
        pub const SRC: Range<usize> = 8..24;
        pub const DST: Range<usize> = 24..40;
        pub const LEN: usize = 40;
    }
    pub mod udp {
        use std::ops::Range;
        pub const SRC_PORT: Range<usize> = 0..2;
        pub const DST_PORT: Range<usize> = 2..4;
        pub const LENGTH: Range<usize> = 4..6;
        pub const CHECKSUM: Range<usize> = 6..8;
        pub const LEN: usize = 8;
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag, and 802.1ad service tag (the outer tag of QinQ).
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const PROTO_UDP: u8 = 17;
/// IPv4 flags/fragment word: DF set, MF clear, offset 0.
const IPV4_DF: u16 = 0x4000;
const IPV4_MF_OR_OFFSET: u16 = 0x3fff;
/// TTL / hop limit of what we send.
pub const REPLY_TTL: u8 = 64;

/// Why a frame is not answered. One counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the headers it announces.
    Truncated,
    /// Not IPv4 or IPv6 (after at most two VLAN tags, as [`Vlan`] says).
    NotIp,
    /// IPv4 version/IHL or IPv6 version wrong.
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// An IPv4 fragment (MF set or a non-zero offset).
    Fragment,
    /// Not UDP (for IPv6: any extension header too).
    NotUdp,
    /// IP and UDP lengths disagree, or exceed the frame.
    BadLength,
    /// UDP checksum present and wrong.
    BadUdpChecksum,
    /// UDP over IPv6 without a checksum (RFC 8200 §8.1: mandatory).
    MissingUdpChecksum,
    /// Source port 0: nowhere to answer.
    SourcePortZero,
}

impl DropReason {
    pub const ALL: [DropReason; 10] = [
        DropReason::Truncated,
        DropReason::NotIp,
        DropReason::BadIpHeader,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::NotUdp,
        DropReason::BadLength,
        DropReason::BadUdpChecksum,
        DropReason::MissingUdpChecksum,
        DropReason::SourcePortZero,
    ];
    /// Number of reasons, for counter arrays indexed by [`DropReason::index`].
    pub const COUNT: usize = DropReason::ALL.len();

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NotIp => "not_ip",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::Fragment => "fragment",
            DropReason::NotUdp => "not_udp",
            DropReason::BadLength => "bad_length",
            DropReason::BadUdpChecksum => "bad_udp_checksum",
            DropReason::MissingUdpChecksum => "missing_udp_checksum",
            DropReason::SourcePortZero => "source_port_zero",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a frame could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the frame buffer is too small for the headers and {0} bytes of payload")]
    TooSmall(usize),
    #[error("a UDP payload of {0} bytes does not fit an IP datagram")]
    TooLong(usize),
    #[error("source and destination are of different address families")]
    FamilyMismatch,
}

/// One VLAN tag: its TPID (0x8100 for 802.1Q, 0x88a8 for 802.1ad) and tag control
/// information (priority, DEI, VLAN id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

/// The VLAN tags of a frame: those the XDP program (`ebpf/nsxdp.bpf.c`) hands to the
/// AF_XDP sockets, and no others. A frame with a third tag, or with a second tag that is
/// not 802.1Q, goes to the kernel there and is [`DropReason::NotIp`] here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vlan {
    #[default]
    Untagged,
    /// One tag: 802.1Q, or an 802.1ad service tag alone.
    Single(VlanTag),
    /// QinQ: an outer tag (802.1ad, or 802.1Q as some switches stack them), then an 802.1Q
    /// tag with this TCI.
    Double { outer: VlanTag, inner_tci: u16 },
}

impl Vlan {
    /// One 802.1Q tag with this TCI.
    pub fn dot1q(tci: u16) -> Vlan {
        Vlan::Single(VlanTag { tpid: TPID_8021Q, tci })
    }

    /// QinQ: an 802.1ad tag with `outer_tci` over an 802.1Q tag with `inner_tci`.
    pub fn qinq(outer_tci: u16, inner_tci: u16) -> Vlan {
        Vlan::Double { outer: VlanTag { tpid: TPID_8021AD, tci: outer_tci }, inner_tci }
    }

    /// Octets the tags take in the frame: 0, 4 or 8.
    pub fn len(&self) -> usize {
        match self {
            Vlan::Untagged => 0,
            Vlan::Single(_) => field::tag::LEN,
            Vlan::Double { .. } => 2 * field::tag::LEN,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Vlan::Untagged)
    }

    /// The tags as they follow each other, outermost first.
    fn tags(&self) -> impl Iterator<Item = VlanTag> {
        let (a, b) = match *self {
            Vlan::Untagged => (None, None),
            Vlan::Single(t) => (Some(t), None),
            Vlan::Double { outer, inner_tci } => (Some(outer), Some(VlanTag { tpid: TPID_8021Q, tci: inner_tci })),
        };
        a.into_iter().chain(b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Where a parsed UDP datagram sits in its frame, and what the reply needs. Made only by
/// [`parse`], so its offsets are consistent with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    vlan: Vlan,
    family: Family,
    ip_offset: usize,
    ip_header_len: usize,
    src_port: u16,
    dst_port: u16,
    payload_offset: usize,
    payload_len: usize,
}

impl Datagram {
    /// The frame's VLAN tags (kept in the reply).
    pub fn vlan(&self) -> Vlan {
        self.vlan
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Offset of the IP header: 14, 18 with a VLAN tag, 22 with two.
    pub fn ip_offset(&self) -> usize {
        self.ip_offset
    }

    /// IP header length: 20 plus options for IPv4, 40 for IPv6.
    pub fn ip_header_len(&self) -> usize {
        self.ip_header_len
    }

    pub fn src_port(&self) -> u16 {
        self.src_port
    }

    pub fn dst_port(&self) -> u16 {
        self.dst_port
    }

    /// Offset of the UDP payload (the DNS message).
    pub fn payload_offset(&self) -> usize {
        self.payload_offset
    }

    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    pub fn udp_offset(&self) -> usize {
        self.payload_offset - field::udp::LEN
    }

    /// The UDP payload's bytes in the frame.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_offset..self.payload_offset + self.payload_len
    }

    /// The source address (for rate limiting). `frame` must be the frame this was parsed
    /// from.
    #[inline]
    pub fn src_ip(&self, frame: &[u8]) -> IpAddr {
        let ip = &frame[self.ip_offset..];
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(array::<4>(&ip[field::ipv4::SRC]))),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(array::<16>(&ip[field::ipv6::SRC]))),
        }
    }

    /// The frame's addresses in high-level form (tests and the control side).
    ///
    /// `frame` must be the frame this was parsed from.
    pub fn repr(&self, frame: &[u8]) -> UdpFrameRepr {
        let ip = &frame[self.ip_offset..];
        let (src, dst) = match self.family {
            Family::V4 => (
                IpAddr::V4(Ipv4Addr::from(array::<4>(&ip[field::ipv4::SRC]))),
                IpAddr::V4(Ipv4Addr::from(array::<4>(&ip[field::ipv4::DST]))),
            ),
            Family::V6 => (
                IpAddr::V6(Ipv6Addr::from(array::<16>(&ip[field::ipv6::SRC]))),
                IpAddr::V6(Ipv6Addr::from(array::<16>(&ip[field::ipv6::DST]))),
            ),
        };
        UdpFrameRepr {
            dst_mac: array(&frame[field::eth::DST]),
            src_mac: array(&frame[field::eth::SRC]),
            vlan: self.vlan,
            src: SocketAddr::new(src, self.src_port),
            dst: SocketAddr::new(dst, self.dst_port),
        }
    }
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(b);
    a
}

fn be16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn put16(b: &mut [u8], r: Range<usize>, v: u16) {
    b[r].copy_from_slice(&v.to_be_bytes());
}

/// Checks a received Ethernet frame and locates its UDP payload.
///
/// Accepts the tags [`Vlan`] describes (none; one 802.1Q or 802.1ad; 802.1ad or 802.1Q
/// over 802.1Q), the same as the XDP program; IPv4 with options (header checksum verified, fragments
/// refused); IPv6 with UDP as the next header (no extension headers). The UDP length must
/// match the IP length; bytes after the IP datagram (Ethernet padding) are ignored. A non-zero
/// UDP checksum is verified; over IPv6 a zero one is refused.
pub fn parse(frame: &[u8]) -> Result<Datagram, DropReason> {
    if frame.len() < field::eth::LEN {
        return Err(DropReason::Truncated);
    }
    let mut ethertype = be16(frame, field::eth::ETHERTYPE);
    let mut vlan = Vlan::Untagged;
    let mut ip_offset = field::eth::LEN;
    // `ip_offset` is where the tag after the ethertype slot holding `ethertype` starts.
    let tag = |tpid: u16, at: &mut usize| -> Result<(VlanTag, u16), DropReason> {
        let t = frame.get(*at..*at + field::tag::LEN).ok_or(DropReason::Truncated)?;
        *at += field::tag::LEN;
        Ok((VlanTag { tpid, tci: be16(t, field::tag::TCI) }, be16(t, field::tag::ETHERTYPE)))
    };
    if ethertype == TPID_8021AD || ethertype == TPID_8021Q {
        let (outer, next) = tag(ethertype, &mut ip_offset)?;
        ethertype = next;
        vlan = Vlan::Single(outer);
        if ethertype == TPID_8021Q {
            let (inner, next) = tag(ethertype, &mut ip_offset)?;
            ethertype = next;
            vlan = Vlan::Double { outer, inner_tci: inner.tci };
        }
    }
    let ip = &frame[ip_offset..];
    // (family, ip header length, IP payload = UDP datagram length, pseudo-header sum)
    let (family, ip_header_len, udp_len, pseudo) = match ethertype {
        ETHERTYPE_IPV4 => {
            if ip.len() < field::ipv4::MIN_LEN {
                return Err(DropReason::Truncated);
            }
            let ver_ihl = ip[field::ipv4::VER_IHL];
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            if ver_ihl >> 4 != 4 || ihl < field::ipv4::MIN_LEN {
                return Err(DropReason::BadIpHeader);
            }
            if ip.len() < ihl {
                return Err(DropReason::Truncated);
            }
            if fold(sum_ne(&ip[..ihl], 0)) != 0xffff {
                return Err(DropReason::BadIpChecksum);
            }
            if be16(ip, field::ipv4::FLAGS_FRAG) & IPV4_MF_OR_OFFSET != 0 {
                return Err(DropReason::Fragment);
            }
            if ip[field::ipv4::PROTOCOL] != PROTO_UDP {
                return Err(DropReason::NotUdp);
            }
            let total = usize::from(be16(ip, field::ipv4::TOTAL_LEN));
            if total < ihl || total > ip.len() {
                return Err(DropReason::BadLength);
            }
            let pseudo = sum_ne(&ip[field::ipv4::SRC.start..field::ipv4::DST.end], 0);
            (Family::V4, ihl, total - ihl, pseudo)
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < field::ipv6::LEN {
                return Err(DropReason::Truncated);
            }
            if ip[0] >> 4 != 6 {
                return Err(DropReason::BadIpHeader);
            }
            if ip[field::ipv6::NEXT_HEADER] != PROTO_UDP {
                return Err(DropReason::NotUdp);
            }
            let payload = usize::from(be16(ip, field::ipv6::PAYLOAD_LEN));
            if payload > ip.len() - field::ipv6::LEN {
                return Err(DropReason::BadLength);
            }
            let pseudo = sum_ne(&ip[field::ipv6::SRC.start..field::ipv6::DST.end], 0);
            (Family::V6, field::ipv6::LEN, payload, pseudo)
        }
        _ => return Err(DropReason::NotIp),
    };
    if udp_len < field::udp::LEN {
        return Err(DropReason::BadLength);
    }
    let udp_offset = ip_offset + ip_header_len;
    let seg = &frame[udp_offset..udp_offset + udp_len];
    if usize::from(be16(seg, field::udp::LENGTH)) != udp_len {
        return Err(DropReason::BadLength);
    }
    let checksum = be16(seg, field::udp::CHECKSUM);
    if checksum == 0 {
        if family == Family::V6 {
            return Err(DropReason::MissingUdpChecksum);
        }
    } else if fold(sum_ne(seg, pseudo + pseudo_tail(udp_len))) != 0xffff {
        return Err(DropReason::BadUdpChecksum);
    }
    let src_port = be16(seg, field::udp::SRC_PORT);
    if src_port == 0 {
        return Err(DropReason::SourcePortZero);
    }
    Ok(Datagram {
        vlan,
        family,
        ip_offset,
        ip_header_len,
        src_port,
        dst_port: be16(seg, field::udp::DST_PORT),
        payload_offset: udp_offset + field::udp::LEN,
        payload_len: udp_len - field::udp::LEN,
    })
}

/// Turns a parsed query frame into its reply, in place.
///
/// The new UDP payload (`payload_len` bytes) must already be at `d.payload_offset`. MACs,
/// IP addresses and ports are swapped; lengths, TTL/hop limit ([`REPLY_TTL`]) and both
/// checksums set. IPv4: IHL 5 (options are not reflected: the Ethernet and IP headers move
/// forward over them, so the frame then starts later), DF, identification 0, DSCP kept and
/// ECN cleared. IPv6: DSCP and flow label kept, ECN cleared. VLAN tags are kept as they
/// were (they lie between the MACs and the IP header, which is all this moves).
///
/// Returns the reply's bytes within `frame`; its start is 0 unless IPv4 options were dropped.
pub fn build_reply(frame: &mut [u8], d: &Datagram, payload_len: usize) -> Result<Range<usize>, BuildError> {
    let udp_len = field::udp::LEN + payload_len;
    let ip_payload_max = match d.family {
        Family::V4 => usize::from(u16::MAX) - field::ipv4::MIN_LEN,
        Family::V6 => usize::from(u16::MAX),
    };
    if udp_len > ip_payload_max {
        return Err(BuildError::TooLong(payload_len));
    }
    let end = d.payload_offset + payload_len;
    if end > frame.len() {
        return Err(BuildError::TooSmall(payload_len));
    }
    swap_ranges(frame, field::eth::DST, field::eth::SRC);
    let (start, pseudo) = match d.family {
        Family::V4 => {
            let ip = d.ip_offset;
            swap_ranges(frame, shift(field::ipv4::SRC, ip), shift(field::ipv4::DST, ip));
            let start = d.ip_header_len - field::ipv4::MIN_LEN;
            if start > 0 {
                frame.copy_within(0..ip + field::ipv4::MIN_LEN, start);
            }
            let h = &mut frame[start + ip..start + ip + field::ipv4::MIN_LEN];
            h[field::ipv4::VER_IHL] = 0x45;
            h[field::ipv4::TOS] &= 0xfc;
            put16(h, field::ipv4::TOTAL_LEN, (field::ipv4::MIN_LEN + udp_len) as u16);
            put16(h, field::ipv4::IDENT, 0);
            put16(h, field::ipv4::FLAGS_FRAG, IPV4_DF);
            h[field::ipv4::TTL] = REPLY_TTL;
            h[field::ipv4::PROTOCOL] = PROTO_UDP;
            put16(h, field::ipv4::CHECKSUM, 0);
            let c = !fold(sum_ne(h, 0));
            h[field::ipv4::CHECKSUM].copy_from_slice(&c.to_ne_bytes());
            (start, sum_ne(&h[field::ipv4::SRC.start..field::ipv4::DST.end], 0))
        }
        Family::V6 => {
            let h = &mut frame[d.ip_offset..d.ip_offset + field::ipv6::LEN];
            h[1] &= !0x30; // ECN: the low two bits of the traffic class
            put16(h, field::ipv6::PAYLOAD_LEN, udp_len as u16);
            h[field::ipv6::NEXT_HEADER] = PROTO_UDP;
            h[field::ipv6::HOP_LIMIT] = REPLY_TTL;
            swap_ranges(h, field::ipv6::SRC, field::ipv6::DST);
            (0, sum_ne(&h[field::ipv6::SRC.start..field::ipv6::DST.end], 0))
        }
    };
    finish_udp(&mut frame[d.udp_offset()..end], d.dst_port, d.src_port, pseudo);
    Ok(start..end)
}

/// Writes a UDP header (ports, length, checksum) at the start of `seg`, whose payload
/// follows it.
fn finish_udp(seg: &mut [u8], src_port: u16, dst_port: u16, pseudo: u64) {
    let len = seg.len();
    put16(seg, field::udp::SRC_PORT, src_port);
    put16(seg, field::udp::DST_PORT, dst_port);
    put16(seg, field::udp::LENGTH, len as u16);
    put16(seg, field::udp::CHECKSUM, 0);
    let mut c = !fold(sum_ne(seg, pseudo + pseudo_tail(len)));
    if c == 0 {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        c = 0xffff;
    }
    seg[field::udp::CHECKSUM].copy_from_slice(&c.to_ne_bytes());
}

/// The protocol and length words of the UDP pseudo-header, for both IPv4 and IPv6: the
/// one's-complement sum is the same whether they sit in 16- or 32-bit fields, as the extra
/// bytes are zero.
fn pseudo_tail(udp_len: usize) -> u64 {
    sum_ne(&[0, PROTO_UDP, (udp_len >> 8) as u8, udp_len as u8], 0)
}

fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

/// Swaps two equally long, disjoint ranges of `b`, `a` before `c`.
fn swap_ranges(b: &mut [u8], a: Range<usize>, c: Range<usize>) {
    let (x, y) = b.split_at_mut(c.start);
    x[a].swap_with_slice(&mut y[..c.end - c.start]);
}

/// The high-level form of an Ethernet/IP/UDP frame's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameRepr {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Vlan,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl UdpFrameRepr {
    /// Bytes of headers before the payload.
    pub fn header_len(&self) -> usize {
        let l2 = field::eth::LEN + self.vlan.len();
        let l3 = if self.src.is_ipv4() { field::ipv4::MIN_LEN } else { field::ipv6::LEN };
        l2 + l3 + field::udp::LEN
    }

    /// Writes the headers for a payload of `payload_len` bytes already placed at
    /// `frame[self.header_len()..]`; returns the frame length. IPv4 gets DF, TTL 64 and
    /// identification 0; both families get a UDP checksum.
    pub fn emit(&self, frame: &mut [u8], payload_len: usize) -> Result<usize, BuildError> {
        let end = self.header_len() + payload_len;
        if end > frame.len() {
            return Err(BuildError::TooSmall(payload_len));
        }
        let udp_len = field::udp::LEN + payload_len;
        if udp_len + field::ipv4::MIN_LEN > usize::from(u16::MAX) {
            return Err(BuildError::TooLong(payload_len));
        }
        frame[field::eth::DST].copy_from_slice(&self.dst_mac);
        frame[field::eth::SRC].copy_from_slice(&self.src_mac);
        let ethertype = if self.src.is_ipv4() { ETHERTYPE_IPV4 } else { ETHERTYPE_IPV6 };
        // Each tag's TPID goes in the ethertype slot before it.
        let mut slot = field::eth::ETHERTYPE;
        for t in self.vlan.tags() {
            put16(frame, slot.clone(), t.tpid);
            put16(frame, shift(field::tag::TCI, slot.end), t.tci);
            slot = shift(field::tag::ETHERTYPE, slot.end);
        }
        put16(frame, slot.clone(), ethertype);
        let ip_offset = slot.end;
        let pseudo = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let h = &mut frame[ip_offset..ip_offset + field::ipv4::MIN_LEN];
                h[field::ipv4::VER_IHL] = 0x45;
                h[field::ipv4::TOS] = 0;
                put16(h, field::ipv4::TOTAL_LEN, (field::ipv4::MIN_LEN + udp_len) as u16);
                put16(h, field::ipv4::IDENT, 0);
                put16(h, field::ipv4::FLAGS_FRAG, IPV4_DF);
                h[field::ipv4::TTL] = REPLY_TTL;
                h[field::ipv4::PROTOCOL] = PROTO_UDP;
                put16(h, field::ipv4::CHECKSUM, 0);
                h[field::ipv4::SRC].copy_from_slice(&s.octets());
                h[field::ipv4::DST].copy_from_slice(&d.octets());
                let c = !fold(sum_ne(h, 0));
                h[field::ipv4::CHECKSUM].copy_from_slice(&c.to_ne_bytes());
                sum_ne(&h[field::ipv4::SRC.start..field::ipv4::DST.end], 0)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let h = &mut frame[ip_offset..ip_offset + field::ipv6::LEN];
                h[field::ipv6::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
                put16(h, field::ipv6::PAYLOAD_LEN, udp_len as u16);
                h[field::ipv6::NEXT_HEADER] = PROTO_UDP;
                h[field::ipv6::HOP_LIMIT] = REPLY_TTL;
                h[field::ipv6::SRC].copy_from_slice(&s.octets());
                h[field::ipv6::DST].copy_from_slice(&d.octets());
                sum_ne(&h[field::ipv6::SRC.start..field::ipv6::DST.end], 0)
            }
            _ => return Err(BuildError::FamilyMismatch),
        };
        let udp_offset = end - udp_len;
        finish_udp(&mut frame[udp_offset..end], self.src.port(), self.dst.port(), pseudo);
        Ok(end)
    }
}

/// Adds `data` to a one's-complement accumulator, read as native-endian words.
///
/// RFC 1071 §2(B): the one's-complement sum does not depend on byte order, so the words are
/// loaded as they lie in memory, eight bytes at a time, and each 32-bit half added to a 64-bit
/// accumulator (which cannot overflow for any IP datagram). The result, folded by [`fold`], is
/// written back with `to_ne_bytes`. Every call after the first must start at an even offset
/// of the checksummed stream; only the last piece may have an odd length.
fn sum_ne(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for w in c.chunks_exact(8) {
            let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            acc += (v & 0xffff_ffff) + (v >> 32);
        }
    }
    let mut rest = chunks.remainder();
    while rest.len() >= 4 {
        acc += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        // An odd last byte is the high-order byte of a word padded with zero.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    acc
}

/// Folds an accumulator to 16 bits with end-around carries.
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../tests/data/packet/vectors.txt");

    fn vector(name: &str) -> Vec<u8> {
        let line = VECTORS.lines().find(|l| l.split(' ').next() == Some(name)).expect("vector present");
        let hex = line.split(' ').nth(1).unwrap();
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 1071-style reference: a plain loop over big-endian 16-bit words.
    fn reference_checksum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            s += (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn checksum(data: &[u8]) -> u16 {
        u16::from_be_bytes((!fold(sum_ne(data, 0))).to_ne_bytes())
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn checksum_known_vector() {
        // The IPv4 header from the usual worked example (checksum field zeroed): 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        assert_eq!(reference_checksum(&h), 0xb861);
        // RFC 1071 §3 example bytes: sum ddf2, checksum 220d.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }

    #[test]
    fn checksum_matches_reference_at_every_length() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in 0..data.len() {
            assert_eq!(checksum(&data[..len]), reference_checksum(&data[..len]), "length {len}");
        }
        assert_eq!(checksum(&[0xff; 64]), reference_checksum(&[0xff; 64]));
    }

    #[test]
    fn parse_ipv4() {
        let f = vector("q4");
        let d = parse(&f).unwrap();
        assert_eq!(d.family, Family::V4);
        assert_eq!(d.vlan, Vlan::Untagged);
        assert_eq!((d.ip_offset, d.ip_header_len, d.payload_offset), (14, 20, 42));
        assert_eq!((d.src_port, d.dst_port), (40000, 53));
        assert_eq!(d.payload_len, f.len() - 42);
        assert_eq!(&f[d.payload_range()][..2], &[0x12, 0x34]);
        let r = d.repr(&f);
        assert_eq!(r.src, sa("198.18.0.2:40000"));
        assert_eq!(r.dst, sa("198.18.0.1:53"));
        assert_eq!(r.dst_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(r.src_mac, [2, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn parse_vlan_and_ipv4_options() {
        let f = vector("q4_vlan_opts");
        let d = parse(&f).unwrap();
        assert_eq!(d.vlan, Vlan::dot1q(0x6064));
        assert_eq!((d.ip_offset, d.ip_header_len, d.payload_offset), (18, 28, 54));
        assert_eq!(d.payload_len, f.len() - 54);
    }

    /// A QinQ query: an 802.1ad tag (VLAN 100) over an 802.1Q tag (priority 1, VLAN 200),
    /// IPv4 (ECN 11) from 198.18.0.2:40000 to 198.18.0.1:53, a 17-octet SOA query for the
    /// root. Checksums from `tests/data/packet/vectors.py`'s arithmetic.
    #[rustfmt::skip]
    static QINQ_QUERY: [u8; 67] = [
        // Ethernet: destination, source, TPID 802.1ad
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x88, 0xa8,
        // outer TCI, TPID 802.1Q, inner TCI, ethertype IPv4
        0x00, 0x64, 0x81, 0x00, 0x20, 0xc8, 0x08, 0x00,
        // IPv4
        0x45, 0x03, 0x00, 0x2d, 0x01, 0x02, 0x00, 0x00, 0x39, 0x11, 0xf4, 0x93,
        0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12, 0x00, 0x01,
        // UDP
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x19, 0x11, 0x2e,
        // DNS
        0xbe, 0xef, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01,
    ];

    /// Its reply (QR and AA set): both tags kept as they were, the rest turned around.
    #[rustfmt::skip]
    static QINQ_REPLY: [u8; 67] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xa8,
        0x00, 0x64, 0x81, 0x00, 0x20, 0xc8, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x2d, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xae, 0x98,
        0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02,
        0x00, 0x35, 0x9c, 0x40, 0x00, 0x19, 0x8d, 0x2d,
        0xbe, 0xef, 0x84, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01,
    ];

    #[test]
    fn qinq_deconstruct() {
        let d = parse(&QINQ_QUERY).unwrap();
        assert_eq!(d.vlan(), Vlan::Double { outer: VlanTag { tpid: 0x88a8, tci: 0x0064 }, inner_tci: 0x20c8 });
        assert_eq!(d.vlan().len(), 8);
        assert_eq!((d.family(), d.ip_offset(), d.ip_header_len()), (Family::V4, 22, 20));
        assert_eq!((d.udp_offset(), d.payload_offset(), d.payload_len()), (42, 50, 17));
        assert_eq!((d.src_port(), d.dst_port()), (40000, 53));
        assert_eq!(&QINQ_QUERY[d.payload_range()][..2], &[0xbe, 0xef]);
    }

    #[test]
    fn qinq_parse_repr() {
        let d = parse(&QINQ_QUERY).unwrap();
        assert_eq!(
            d.repr(&QINQ_QUERY),
            UdpFrameRepr {
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_mac: [2, 0, 0, 0, 0, 2],
                vlan: Vlan::qinq(0x0064, 0x20c8),
                src: sa("198.18.0.2:40000"),
                dst: sa("198.18.0.1:53"),
            }
        );
    }

    #[test]
    fn qinq_construct_reply() {
        let mut f = QINQ_QUERY;
        let d = parse(&f).unwrap();
        f[d.payload_offset() + 2] = 0x84;
        assert_eq!(build_reply(&mut f, &d, d.payload_len()), Ok(0..67));
        assert_eq!(f, QINQ_REPLY);
    }

    #[test]
    fn qinq_emit() {
        let repr = parse(&QINQ_REPLY).unwrap().repr(&QINQ_REPLY);
        assert_eq!(repr.header_len(), 50);
        let mut f = [0u8; 67];
        f[50..].copy_from_slice(&QINQ_REPLY[50..]);
        assert_eq!(repr.emit(&mut f, 17), Ok(67));
        // emit writes TOS 0, TTL 64, DF, identification 0: what the reply has.
        assert_eq!(f, QINQ_REPLY);
    }

    #[test]
    fn qinq_tags_as_the_xdp_program_takes_them() {
        let tagged = |tags: &[(u16, u16)]| {
            let mut f = QINQ_QUERY[..12].to_vec();
            for (tpid, tci) in tags {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            f.extend_from_slice(&QINQ_QUERY[20..]);
            f
        };
        let t = |tpid, tci| VlanTag { tpid, tci };
        // One tag of either kind; 802.1Q under 802.1ad or under 802.1Q.
        assert_eq!(parse(&tagged(&[])).map(|d| d.vlan()), Ok(Vlan::Untagged));
        assert_eq!(parse(&tagged(&[(0x8100, 1)])).map(|d| d.vlan()), Ok(Vlan::Single(t(0x8100, 1))));
        assert_eq!(parse(&tagged(&[(0x88a8, 2)])).map(|d| d.vlan()), Ok(Vlan::Single(t(0x88a8, 2))));
        assert_eq!(
            parse(&tagged(&[(0x8100, 3), (0x8100, 4)])).map(|d| d.vlan()),
            Ok(Vlan::Double { outer: t(0x8100, 3), inner_tci: 4 })
        );
        // Not handed over by the XDP program, and not parsed: a third tag, 802.1ad inside,
        // 802.1ad inside 802.1Q.
        assert_eq!(parse(&tagged(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)])), Err(DropReason::NotIp));
        assert_eq!(parse(&tagged(&[(0x88a8, 1), (0x88a8, 2)])), Err(DropReason::NotIp));
        assert_eq!(parse(&tagged(&[(0x8100, 1), (0x88a8, 2)])), Err(DropReason::NotIp));
        // Cut inside either tag.
        for len in 14..22 {
            assert_eq!(parse(&QINQ_QUERY[..len]), Err(DropReason::Truncated), "cut at {len}");
        }
    }

    #[test]
    fn parse_ipv6_and_odd_payload() {
        let f = vector("q6");
        let d = parse(&f).unwrap();
        assert_eq!(d.family, Family::V6);
        assert_eq!((d.ip_header_len, d.payload_offset), (40, 62));
        assert_eq!(d.repr(&f).src, sa("[2001:db8::2]:40000"));
        let f = vector("q6_odd_vlan");
        let d = parse(&f).unwrap();
        assert_eq!(d.vlan, Vlan::dot1q(5));
        assert_eq!(d.payload_len % 2, 1);
    }

    #[test]
    fn parse_padding_and_missing_ipv4_checksum() {
        let f = vector("q4_odd_padded");
        assert_eq!(f.len(), 60);
        let d = parse(&f).unwrap();
        assert_eq!(d.payload_len, 13);
        assert!(parse(&vector("q4_nocsum")).is_ok());
    }

    #[test]
    fn parse_rejects() {
        assert_eq!(parse(&vector("q4_bad_udp")), Err(DropReason::BadUdpChecksum));
        assert_eq!(parse(&vector("q4_bad_ip")), Err(DropReason::BadIpChecksum));
        assert_eq!(parse(&vector("q4_frag")), Err(DropReason::Fragment));
        assert_eq!(parse(&vector("q6_nocsum")), Err(DropReason::MissingUdpChecksum));
        assert_eq!(parse(&vector("q6_bad_udp")), Err(DropReason::BadUdpChecksum));

        let mut f = vector("q4");
        f[12] = 0x08;
        f[13] = 0x06; // ARP
        assert_eq!(parse(&f), Err(DropReason::NotIp));

        let mut f = vector("q6");
        f[14 + 6] = 0; // hop-by-hop options header
        assert_eq!(parse(&f), Err(DropReason::NotUdp));

        // UDP length one more than the IP length says.
        let mut f = vector("q6");
        let l = be16(&f, 58..60);
        put16(&mut f, 58..60, l + 1);
        assert_eq!(parse(&f), Err(DropReason::BadLength));

        // IPv6 payload length past the frame.
        let mut f = vector("q6");
        let l = be16(&f, 18..20);
        put16(&mut f, 18..20, l + 1);
        assert_eq!(parse(&f), Err(DropReason::BadLength));

        // IPv4 IHL below 5.
        let mut f = vector("q4");
        f[14] = 0x44;
        assert_eq!(parse(&f), Err(DropReason::BadIpHeader));

        // Source port 0, checksum fixed up by clearing it (allowed over IPv4).
        let mut f = vector("q4_nocsum");
        put16(&mut f, 34..36, 0);
        assert_eq!(parse(&f), Err(DropReason::SourcePortZero));
    }

    #[test]
    fn truncated_at_every_length() {
        for name in ["q4", "q4_vlan_opts", "q6", "q6_odd_vlan", "q4_qinq", "q6_qinq"] {
            let f = vector(name);
            for len in 0..f.len() {
                let r = parse(&f[..len]);
                assert!(r.is_err(), "{name} cut at {len} parsed as {r:?}");
            }
        }
    }

    /// Writes `payload` over the query's payload and builds the reply.
    fn reply(query: &str, payload: &[u8]) -> Vec<u8> {
        let mut f = vector(query);
        f.resize(2048, 0xee);
        let d = parse(&f).unwrap();
        f[d.payload_offset..d.payload_offset + payload.len()].copy_from_slice(payload);
        let r = build_reply(&mut f, &d, payload.len()).unwrap();
        f[r].to_vec()
    }

    #[test]
    fn reply_ipv4() {
        let out = reply("q4", &vector("r4_payload"));
        assert_eq!(out, vector("r4"));
        assert!(parse(&out).is_ok());
    }

    #[test]
    fn reply_drops_ipv4_options_keeps_vlan() {
        let out = reply("q4_vlan_opts", &vector("r4_payload"));
        assert_eq!(out, vector("r4_vlan"));
    }

    #[test]
    fn reply_keeps_both_tags() {
        let out = reply("q4_qinq", &vector("r4_payload"));
        assert_eq!(out, vector("r4_qinq"));
        let d = parse(&vector("q6_qinq")).unwrap();
        assert_eq!(d.vlan(), Vlan::Double { outer: VlanTag { tpid: 0x8100, tci: 7 }, inner_tci: 9 });
        assert_eq!(d.ip_offset(), 22);
    }

    #[test]
    fn reply_ipv6() {
        let out = reply("q6", &vector("r4_payload"));
        assert_eq!(out, vector("r6"));
        assert!(parse(&out).is_ok());
    }

    #[test]
    fn reply_twice_is_the_query_again() {
        // Reflecting a reply gives back the addresses and ports of the query.
        for name in ["q4", "q6", "q6_odd_vlan", "q4_odd_padded", "q4_qinq", "q6_qinq"] {
            let q = vector(name);
            let mut f = q.clone();
            let d = parse(&f).unwrap();
            let r = build_reply(&mut f, &d, d.payload_len).unwrap();
            let mut f2 = f[r].to_vec();
            let d2 = parse(&f2).unwrap();
            assert_eq!(d2.repr(&f2).src, d.repr(&q).dst);
            assert_eq!(d2.repr(&f2).dst, d.repr(&q).src);
            let r2 = build_reply(&mut f2, &d2, d2.payload_len).unwrap();
            let back = parse(&f2[r2.clone()]).unwrap();
            assert_eq!(back.repr(&f2[r2]), d.repr(&q));
        }
    }

    #[test]
    fn reply_length_checked() {
        let mut f = vector("q4");
        let d = parse(&f).unwrap();
        let room = f.len() - d.payload_offset;
        assert_eq!(build_reply(&mut f, &d, room + 1), Err(BuildError::TooSmall(room + 1)));
        assert!(build_reply(&mut f, &d, room).is_ok());
    }

    #[test]
    fn emit_and_parse() {
        for (src, dst, vlan) in [
            ("198.18.0.1:53", "198.18.0.2:40000", Vlan::Untagged),
            ("[2001:db8::1]:53", "[2001:db8::2]:5353", Vlan::dot1q(7)),
            ("198.18.0.1:1", "198.18.0.2:2", Vlan::dot1q(0xe00a)),
            ("198.18.0.1:53", "198.18.0.2:40000", Vlan::qinq(100, 200)),
            ("[2001:db8::1]:53", "[2001:db8::2]:5353", Vlan::Single(VlanTag { tpid: 0x88a8, tci: 3 })),
            (
                "[2001:db8::1]:53",
                "[2001:db8::2]:5353",
                Vlan::Double { outer: VlanTag { tpid: 0x8100, tci: 0xffff }, inner_tci: 0 },
            ),
        ] {
            let repr = UdpFrameRepr {
                dst_mac: [2, 0, 0, 0, 0, 2],
                src_mac: [2, 0, 0, 0, 0, 1],
                vlan,
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
            };
            for payload_len in [0usize, 1, 12, 13, 511] {
                let mut f = vec![0u8; 1024];
                for (i, b) in f[repr.header_len()..repr.header_len() + payload_len].iter_mut().enumerate() {
                    *b = (i * 7) as u8;
                }
                let n = repr.emit(&mut f, payload_len).unwrap();
                let d = parse(&f[..n]).unwrap();
                assert_eq!(d.repr(&f), repr);
                assert_eq!(d.payload_len, payload_len);
                assert_eq!(d.payload_offset, repr.header_len());
            }
        }
        let bad = UdpFrameRepr {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            vlan: Vlan::Untagged,
            src: "198.18.0.1:53".parse().unwrap(),
            dst: "[2001:db8::2]:53".parse().unwrap(),
        };
        assert_eq!(bad.emit(&mut [0u8; 100], 0), Err(BuildError::FamilyMismatch));
        assert_eq!(bad.emit(&mut [0u8; 10], 0), Err(BuildError::TooSmall(0)));
    }

    #[test]
    fn emit_matches_python_reply() {
        // The Python reply frame, rebuilt from its repr, is byte-identical (IPv4 TOS 0 case).
        let want = vector("r4_vlan");
        let d = parse(&want).unwrap();
        let repr = d.repr(&want);
        let mut f = want.clone();
        f[..d.payload_offset].fill(0);
        assert_eq!(repr.emit(&mut f, d.payload_len), Ok(want.len()));
        assert_eq!(f, want);
    }

    /// Where an independent reading of `f` finds the parts of a UDP datagram, written plainly
    /// from the RFCs (big-endian fields, [`reference_checksum`]) to check [`parse`] against:
    /// (IP header offset, IP header length, UDP length, IPv6?), before any checksum or
    /// port check.
    fn reference_layout(f: &[u8]) -> Option<(usize, usize, usize, bool)> {
        let be = |at: usize| Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]));
        // The ethertype slot; tags as the XDP program takes them.
        let mut at = 12;
        let mut ethertype = be(at)?;
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            at += 4;
            ethertype = be(at)?;
            if ethertype == 0x8100 {
                at += 4;
                ethertype = be(at)?;
            }
        }
        let ip = at + 2;
        match ethertype {
            0x0800 => {
                let first = *f.get(ip)?;
                let hlen = usize::from(first & 0x0f) * 4;
                f.get(ip..ip + 20)?;
                if first >> 4 != 4 || hlen < 20 || f.len() < ip + hlen {
                    return None;
                }
                let total = usize::from(be(ip + 2)?);
                if be(ip + 6)? & 0x3fff != 0 || f[ip + 9] != 17 || total < hlen + 8 || ip + total > f.len() {
                    return None;
                }
                Some((ip, hlen, total - hlen, false))
            }
            0x86dd => {
                let payload = usize::from(be(ip + 4)?);
                f.get(ip..ip + 40)?;
                if f[ip] >> 4 != 6 || f[ip + 6] != 17 || payload < 8 || ip + 40 + payload > f.len() {
                    return None;
                }
                Some((ip, 40, payload, true))
            }
            _ => None,
        }
    }

    /// The UDP pseudo-header and segment of a laid-out frame, to be checksummed together.
    fn reference_pseudo_and_segment(f: &[u8], (ip, hlen, udp_len, v6): (usize, usize, usize, bool)) -> Vec<u8> {
        let addrs = if v6 { &f[ip + 8..ip + 40] } else { &f[ip + 12..ip + 20] };
        let mut p = addrs.to_vec();
        p.extend_from_slice(&[0, 17]);
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&f[ip + hlen..ip + hlen + udp_len]);
        p
    }

    /// The payload an independent reading accepts in `f`, or None.
    fn reference_parse(f: &[u8]) -> Option<Range<usize>> {
        let layout @ (ip, hlen, udp_len, v6) = reference_layout(f)?;
        let udp = ip + hlen;
        if !v6 && reference_checksum(&f[ip..ip + hlen]) != 0 {
            return None;
        }
        if usize::from(u16::from_be_bytes([f[udp + 4], f[udp + 5]])) != udp_len {
            return None;
        }
        let checksum = u16::from_be_bytes([f[udp + 6], f[udp + 7]]);
        if (checksum == 0 && v6) || (checksum != 0 && reference_checksum(&reference_pseudo_and_segment(f, layout)) != 0)
        {
            return None;
        }
        if f[udp..udp + 2] == [0, 0] {
            return None;
        }
        Some(udp + 8..udp + udp_len)
    }

    /// Sets the IPv4 header and UDP checksums of `f` right (as far as it can be laid out),
    /// so that a mutation reaches the checks behind them.
    fn fix_checksums(f: &mut [u8]) {
        let Some(layout @ (ip, hlen, _, v6)) = reference_layout(f) else { return };
        if !v6 {
            f[ip + 10..ip + 12].fill(0);
            let c = reference_checksum(&f[ip..ip + hlen]);
            f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        }
        let udp = ip + hlen;
        if f[udp + 6..udp + 8] == [0, 0] {
            return; // no UDP checksum: left so
        }
        f[udp + 6..udp + 8].fill(0);
        let c = match reference_checksum(&reference_pseudo_and_segment(f, layout)) {
            0 => 0xffff,
            c => c,
        };
        f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
    }

    /// 30,000 frames (untagged, one tag, QinQ; IPv4 with and without options, IPv6; odd
    /// lengths, padding) mutated — bytes and bits anywhere, mostly in the headers, tags
    /// inserted and removed, cut, grown — and half of them given right checksums again so
    /// that the length, tag and version checks are reached. [`parse`] must accept exactly
    /// what the independent reading above accepts, with the same payload; every drop
    /// reason must come up; nothing is allocated; a reply built from an accepted frame
    /// parses back with its payload length and tags.
    #[test]
    fn random_mutations_parse_as_the_reference_reads() {
        use crate::testing::{measure, mutate, Rng};
        let seeds: Vec<(Vec<u8>, usize)> =
            ["q4", "q4_vlan_opts", "q6", "q6_odd_vlan", "q4_odd_padded", "q4_qinq", "q6_qinq"]
                .iter()
                .map(|n| {
                    let f = vector(n);
                    let d = parse(&f).unwrap();
                    assert_eq!(Some(d.payload_range()), reference_parse(&f));
                    (f, d.ip_offset())
                })
                .collect();
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        let mut drops = [0usize; DropReason::COUNT];
        for i in 0..30_000 {
            let (seed, ip_offset) = &seeds[i % seeds.len()];
            let mut f = seed.clone();
            match rng.below(10) {
                // A tag added or taken away after the addresses.
                0 => {
                    let tpid: u16 = [0x8100, 0x88a8, 0x9100][rng.below(3)];
                    let tag = [(tpid >> 8) as u8, tpid as u8, rng.byte(), rng.byte()];
                    f.splice(12..12, tag);
                }
                1 if f.len() > 20 => {
                    f.drain(12..16);
                }
                // Mostly the headers, where the checks are.
                2..=5 => {
                    let end = 70.min(f.len());
                    let mut head = f[..end].to_vec();
                    mutate(&mut rng, &mut head, 12);
                    f.splice(..end, head);
                }
                // A 16-bit field of the IP or UDP header: flags and offset, lengths, a
                // checksum, a port.
                6 | 7 => {
                    let at = ip_offset + 2 * rng.below(24);
                    let v: u16 = [0, 0x2000, 0x0001, 0xffff][rng.below(4)];
                    if at + 2 <= f.len() {
                        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
                _ => mutate(&mut rng, &mut f, 0),
            }
            if rng.below(2) == 0 {
                fix_checksums(&mut f);
            }
            let (got, mem) = measure(|| parse(&f));
            assert_eq!(mem.largest, 0, "parse allocated");
            assert_eq!(got.map(|d| d.payload_range()).ok(), reference_parse(&f), "round {i}: {got:?} for {f:02x?}");
            match got {
                Err(r) => drops[r.index()] += 1,
                Ok(d) => {
                    accepted += 1;
                    let mut buf = f.clone();
                    buf.resize(f.len() + rng.below(64), 0);
                    let len = rng.below(buf.len() + 8);
                    if let Ok(r) = build_reply(&mut buf, &d, len) {
                        assert!(r.end <= buf.len());
                        if d.dst_port() == 0 {
                            // (Only here: the XDP program hands over queries to our port.)
                            assert_eq!(parse(&buf[r]), Err(DropReason::SourcePortZero));
                            continue;
                        }
                        let again = parse(&buf[r.clone()]).expect("a built reply parses");
                        assert_eq!(again.payload_len(), len);
                        assert_eq!(again.vlan(), d.vlan());
                        assert_eq!(reference_parse(&buf[r]), Some(again.payload_range()));
                    }
                }
            }
        }
        let counts: Vec<_> = DropReason::ALL.iter().map(|r| (r.as_str(), drops[r.index()])).collect();
        eprintln!("accepted {accepted}; dropped {counts:?}");
        for (reason, n) in counts {
            assert!(n >= 20, "{reason}: {n}");
        }
        assert!((3_000..27_000).contains(&accepted), "{accepted} accepted");
    }
}
