#!/usr/bin/env python3
"""DNS cookies of a running nsxdp, from dnspython, over UDP and TCP (tests/cookies.rs).

  check.py PORT SECRET_HEX

Asks www.example.com/A with a client cookie alone, then with the server cookie it got back,
and checks each reply: the client cookie echoed, a 16-octet server cookie of version 1 whose
timestamp is now and whose hash is RFC 9018's SipHash-2-4 over client cookie, the cookie's
first 8 octets and the client address, keyed with SECRET (computed here, independently of
nsxdp). A COOKIE option of 5 octets must get FORMERR. Prints one line per check; exit 1 on
the first failure.
"""

import struct
import sys
import time

import dns.edns
import dns.message
import dns.query
import dns.rcode


def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & 0xFFFFFFFFFFFFFFFF


def siphash24(key, data):
    """SipHash-2-4 (Aumasson and Bernstein), 64-bit result."""
    k0, k1 = struct.unpack("<QQ", key)
    v0, v1, v2, v3 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573
    M = 0xFFFFFFFFFFFFFFFF

    def rounds(n):
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & M; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
            v2 = (v2 + v3) & M; v3 = rotl(v3, 16); v3 ^= v2
            v0 = (v0 + v3) & M; v3 = rotl(v3, 21); v3 ^= v0
            v2 = (v2 + v1) & M; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)

    tail = len(data) % 8
    for i in range(0, len(data) - tail, 8):
        m, = struct.unpack("<Q", data[i:i + 8])
        v3 ^= m; rounds(2); v0 ^= m
    b = (len(data) & 0xFF) << 56
    for i, c in enumerate(data[len(data) - tail:]):
        b |= c << (8 * i)
    v3 ^= b; rounds(2); v0 ^= b
    v2 ^= 0xFF; rounds(4)
    return (v0 ^ v1 ^ v2 ^ v3) & M


# RFC 9018 Appendix A.1, so a mistake here cannot pass for nsxdp's.
assert struct.pack("<Q", siphash24(bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf"),
                                   bytes.fromhex("2464c4abcf10c957010000005cf79f11") + bytes([198, 51, 100, 100]))) \
    == bytes.fromhex("1f8130c3eee29480")


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def ask(port, data, tcp):
    q = dns.message.make_query("www.example.com.", "A", use_edns=0,
                               options=[dns.edns.GenericOption(10, data)])
    f = dns.query.tcp if tcp else dns.query.udp
    return f(q, "127.0.0.1", port=port, timeout=5)


def cookie_of(r):
    for o in r.options:
        if o.otype == 10:
            return bytes(o.to_wire()) if hasattr(o, "to_wire") else bytes(o.data)
    return None


def check_reply(r, client, secret, what):
    if r.rcode() != dns.rcode.NOERROR or not r.answer:
        fail(f"{what}: {dns.rcode.to_text(r.rcode())}, {len(r.answer)} answers")
    c = cookie_of(r)
    if c is None or len(c) != 24:
        fail(f"{what}: COOKIE option {c!r}")
    if c[:8] != client:
        fail(f"{what}: client cookie not echoed")
    server = c[8:]
    stamp, = struct.unpack(">I", server[4:8])
    if server[0] != 1 or server[1:4] != b"\0\0\0" or abs(stamp - int(time.time())) > 5:
        fail(f"{what}: server cookie header {server[:8].hex()}")
    want = struct.pack("<Q", siphash24(secret, client + server[:8] + bytes([127, 0, 0, 1])))
    if server[8:] != want:
        fail(f"{what}: hash {server[8:].hex()}, RFC 9018 gives {want.hex()}")
    print("ok", what, c.hex())
    return c


def main():
    port, secret = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
    client = bytes.fromhex("0123456789abcdef")
    for tcp in (False, True):
        t = "TCP" if tcp else "UDP"
        c = check_reply(ask(port, client, tcp), client, secret, f"{t} client cookie alone")
        check_reply(ask(port, c, tcp), client, secret, f"{t} with the server cookie back")
        # A server cookie made with another secret: answered, with ours.
        check_reply(ask(port, client + bytes(16), tcp), client, secret, f"{t} with a foreign server cookie")
        r = ask(port, b"\x01\x02\x03\x04\x05", tcp)
        if r.rcode() != dns.rcode.FORMERR:
            fail(f"{t} 5-octet COOKIE: {dns.rcode.to_text(r.rcode())}")
        print("ok", t, "5-octet COOKIE: FORMERR")


main()
