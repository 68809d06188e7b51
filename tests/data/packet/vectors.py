#!/usr/bin/env python3
"""Known-good Ethernet frames for the unit tests of src/dataplane/packet.rs.

Built with the Python standard library only, with a plain 16-bit one's-complement
checksum written out below (independent of the Rust code under test). Run it to
regenerate vectors.txt:  python3 tests/data/packet/vectors.py > tests/data/packet/vectors.txt

Each output line is `NAME HEX`. Addresses are from 198.18.0.0/15 and 2001:db8::/32.
"""
import ipaddress
import struct

CLI_MAC = bytes.fromhex("020000000002")
SRV_MAC = bytes.fromhex("020000000001")
CLI4, SRV4 = ipaddress.ip_address("198.18.0.2").packed, ipaddress.ip_address("198.18.0.1").packed
CLI6, SRV6 = ipaddress.ip_address("2001:db8::2").packed, ipaddress.ip_address("2001:db8::1").packed
CPORT, SPORT = 40000, 53


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def dns_query(qid: int, name: str, qtype: int) -> bytes:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)


def dns_reply(query: bytes, extra: bytes) -> bytes:
    # QR=1 AA=1, ANCOUNT=1, then the answer bytes (any bytes will do for framing tests).
    qid = query[:2]
    return qid + struct.pack("!HHHHH", 0x8500, 1, 1, 0, 0) + query[12:] + extra


def udp(src_ip, dst_ip, sport, dport, payload, v6, zero_csum=False, bad_csum=False):
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    if v6:
        pseudo = src_ip + dst_ip + struct.pack("!IxxxB", length, 17)
    else:
        pseudo = src_ip + dst_ip + struct.pack("!xBH", 17, length)
    c = csum(pseudo + hdr + payload)
    if c == 0:
        c = 0xFFFF
    if zero_csum:
        c = 0
    if bad_csum:
        c ^= 0x0101
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def ipv4(src, dst, seg, options=b"", ident=0x1c46, flags_frag=0x0000, tos=0, ttl=57, bad_csum=False):
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(seg), ident, flags_frag, ttl, 17, 0, src, dst)
    hdr += options
    c = csum(hdr)
    if bad_csum:
        c ^= 0x0001
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + seg


def ipv6(src, dst, seg, first_word=0x60000000, hop=57):
    return struct.pack("!IHBB", first_word, len(seg), 17, hop) + src + dst + seg


def eth(dst, src, ethertype, payload, vlan=None, tags=()):
    """`vlan`: one 802.1Q tag's TCI; `tags`: (TPID, TCI) pairs, outermost first."""
    if vlan is not None:
        tags = ((0x8100, vlan),)
    head = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags)
    return dst + src + head + struct.pack("!H", ethertype) + payload


out = []
q = dns_query(0x1234, "www.example.com", 1)
answer = bytes.fromhex("c00c000100010000012c0004c6120064")  # www A 198.18.0.100
r = dns_reply(q, answer)

# Plain IPv4 query and the reply nsxdp must build from it.
out.append(("q4", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False), tos=0x11))))
out.append(("r4_payload", r))
out.append(("r4", eth(CLI_MAC, SRV_MAC, 0x0800,
                       ipv4(SRV4, CLI4, udp(SRV4, CLI4, SPORT, CPORT, r, False), ident=0, flags_frag=0x4000, ttl=64, tos=0x10))))
# VLAN 100 (priority 3) and 8 bytes of IPv4 options (router alert, then NOP x3, EOL); the reply
# keeps the tag and drops the options.
opts = bytes.fromhex("94040000" "01010100")
out.append(("q4_vlan_opts", eth(SRV_MAC, CLI_MAC, 0x0800,
                                 ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False), options=opts), vlan=0x6064)))
out.append(("r4_vlan", eth(CLI_MAC, SRV_MAC, 0x0800,
                            ipv4(SRV4, CLI4, udp(SRV4, CLI4, SPORT, CPORT, r, False), ident=0, flags_frag=0x4000, ttl=64),
                            vlan=0x6064)))
# IPv4 without a UDP checksum (allowed), with a bad one, with a bad header checksum,
# a fragment (MF set), padded to the Ethernet minimum.
out.append(("q4_nocsum", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False, zero_csum=True)))))
out.append(("q4_bad_udp", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False, bad_csum=True)))))
out.append(("q4_bad_ip", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False), bad_csum=True))))
out.append(("q4_frag", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False), flags_frag=0x2000))))
small = b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # 13 bytes: odd length
f = eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, small, False)))
out.append(("q4_odd_padded", f + b"\0" * (60 - len(f))))

# IPv6: traffic class 0x2d (ECN 01) and flow label 0x12345; the reply keeps DSCP and the
# flow label, clears ECN.
out.append(("q6", eth(SRV_MAC, CLI_MAC, 0x86DD, ipv6(CLI6, SRV6, udp(CLI6, SRV6, CPORT, SPORT, q, True), 0x62D12345))))
out.append(("r6", eth(CLI_MAC, SRV_MAC, 0x86DD, ipv6(SRV6, CLI6, udp(SRV6, CLI6, SPORT, CPORT, r, True), 0x62C12345, hop=64))))
out.append(("q6_nocsum", eth(SRV_MAC, CLI_MAC, 0x86DD, ipv6(CLI6, SRV6, udp(CLI6, SRV6, CPORT, SPORT, q, True, zero_csum=True)))))
out.append(("q6_bad_udp", eth(SRV_MAC, CLI_MAC, 0x86DD, ipv6(CLI6, SRV6, udp(CLI6, SRV6, CPORT, SPORT, q, True, bad_csum=True)))))
odd = dns_query(0x4321, "a.example.com", 28)
out.append(("q6_odd_vlan", eth(SRV_MAC, CLI_MAC, 0x86DD, ipv6(CLI6, SRV6, udp(CLI6, SRV6, CPORT, SPORT, odd, True)), vlan=5)))

# QinQ: an 802.1ad service tag (VLAN 100) over an 802.1Q one (VLAN 200, priority 1), and
# two stacked 802.1Q tags over IPv6; replies keep both tags.
qinq = ((0x88A8, 0x0064), (0x8100, 0x20C8))
out.append(("q4_qinq", eth(SRV_MAC, CLI_MAC, 0x0800, ipv4(CLI4, SRV4, udp(CLI4, SRV4, CPORT, SPORT, q, False)), tags=qinq)))
out.append(("r4_qinq", eth(CLI_MAC, SRV_MAC, 0x0800,
                            ipv4(SRV4, CLI4, udp(SRV4, CLI4, SPORT, CPORT, r, False), ident=0, flags_frag=0x4000, ttl=64),
                            tags=qinq)))
q6_tags = ((0x8100, 0x0007), (0x8100, 0x0009))
out.append(("q6_qinq", eth(SRV_MAC, CLI_MAC, 0x86DD, ipv6(CLI6, SRV6, udp(CLI6, SRV6, CPORT, SPORT, odd, True)), tags=q6_tags)))

for name, data in out:
    print(name, data.hex())
