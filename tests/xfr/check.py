#!/usr/bin/python3
"""dnspython as a transfer client of the test server in tests/xfr.rs.

Usage: check.py PORT V1.zone V2.zone V3.zone
The server at 127.0.0.1:PORT serves example.com at version 3 and holds the changesets
1→2 and 2→3. Every check is printed as `NAME ok` or `NAME FAIL: reason`; the exit status
is 0 when all pass, 1 otherwise, 3 when dnspython is missing.

Checks: AXFR with each TSIG algorithm (dnspython verifies every message of the transfer)
gives exactly the zone file's records; IXFR over TCP from versions 1 and 2, applied to
those versions, gives version 3; IXFR from version 3 changes nothing; IXFR over UDP (the
whole answer in one datagram, or our SOA alone and a retry over TCP); refused requests
(unknown key, wrong secret, clock outside the fudge, unsigned) give the errors RFC 8945
prescribes, as dnspython reads them.
"""

import base64
import socket
import struct
import sys
import time
import traceback
from unittest import mock

try:
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.tsig
    import dns.versioned
    import dns.xfr
    import dns.zone
except ImportError:
    print("python3-dnspython is not installed for", sys.executable)
    sys.exit(3)

ORIGIN = "example.com."
SECRET = base64.b64encode(bytes(range(32))).decode()
KEYS = {
    "hmac-sha1": "sha1-key.",
    "hmac-sha256": "xfr-key.",
    "hmac-sha384": "sha384-key.",
    "hmac-sha512": "sha512-key.",
}

port = int(sys.argv[1])
files = sys.argv[2:5]
failures = 0


def check(name, fn):
    global failures
    try:
        fn()
        print(name, "ok")
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failures += 1
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        print(name, "FAIL:", detail.replace("\n", " | "))


def key(alg="hmac-sha256", name=None, secret=SECRET):
    return dns.tsig.Key(name or KEYS[alg], secret, alg)


def keyring(k):
    return {k.name: k}


def load(i, versioned=False):
    factory = dns.versioned.Zone if versioned else dns.zone.Zone
    return dns.zone.from_file(files[i], ORIGIN, relativize=False, zone_factory=factory)


def contents(z):
    """Every record: owner and rdata in wire form, as sent (case kept), with TTL and type."""
    return sorted((n.to_wire(), ttl, rd.rdtype, rd.to_wire()) for n, ttl, rd in z.iterate_rdatas())


def same(got, want):
    g, w = contents(got), contents(want)
    if g != w:
        missing = [x for x in w if x not in g][:3]
        extra = [x for x in g if x not in w][:3]
        raise AssertionError(f"{len(g)} records, want {len(w)}; missing {missing}; extra {extra}")


def axfr(alg):
    def run():
        k = key(alg)
        messages = list(
            dns.query.xfr("127.0.0.1", ORIGIN, port=port, keyring=keyring(k), keyname=k.name,
                          keyalgorithm=alg, relativize=False, lifetime=30)
        )
        assert len(messages) > 1, f"{len(messages)} message(s): the zone should take several"
        for m in messages:
            assert m.had_tsig, "an unsigned message"
            assert m.flags & dns.flags.AA, "AA not set"
        z = dns.zone.from_xfr(iter(messages), relativize=False)
        same(z, load(2))
    return run


def ixfr(version, udp_mode=dns.query.UDPMode.NEVER, payload=None):
    def run():
        z = load(version - 1, versioned=True)
        k = key()
        q, serial = dns.xfr.make_query(z, keyring=keyring(k), keyname=k.name, keyalgorithm=k.algorithm,
                                       use_edns=payload is not None, payload=payload)
        assert serial == version, serial
        dns.query.inbound_xfr("127.0.0.1", z, query=q, port=port, lifetime=30, udp_mode=udp_mode)
        same(z, load(2))
    return run


def refused(expected, sign_key=None, clock=None):
    """An AXFR the server refuses: dnspython must raise `expected` reading the reply (or,
    for an unsigned request, find that rcode)."""
    def run():
        q = dns.message.make_query(ORIGIN, "AXFR")
        if sign_key is not None:
            q.use_tsig(sign_key)
        if clock is not None:
            with mock.patch("time.time", return_value=clock):
                wire = q.to_wire()
        else:
            wire = q.to_wire()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(struct.pack("!H", len(wire)) + wire)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = s.recv(65535)
            if not chunk:
                break
            data += chunk
        s.close()
        reply = data[2:]
        if sign_key is None:
            rc = dns.rcode.to_text(dns.message.from_wire(reply).rcode())
            assert rc == expected, f"rcode {rc}, want {expected}"
            return
        try:
            r = dns.message.from_wire(reply, keyring=keyring(sign_key), request_mac=q.mac, xfr=True)
        except expected:
            return
        raise AssertionError(f"no {expected.__name__}: rcode {dns.rcode.to_text(r.rcode())}")
    return run


for alg in KEYS:
    check(f"axfr_{alg}", axfr(alg))
check("ixfr_tcp_from_1", ixfr(1))
check("ixfr_tcp_from_2", ixfr(2))
check("ixfr_tcp_current", ixfr(3))
check("ixfr_udp_from_2_fits", ixfr(2, dns.query.UDPMode.ONLY, payload=1232))
check("ixfr_udp_from_1_retries_tcp", ixfr(1, dns.query.UDPMode.TRY_FIRST))
check("badkey", refused(dns.tsig.PeerBadKey, sign_key=key(name="no-such-key.")))
check("badsig", refused(dns.tsig.PeerBadSignature, sign_key=key(secret=base64.b64encode(b"wrong").decode())))
check("badtime", refused(dns.tsig.PeerBadTime, sign_key=key(), clock=time.time() - 3600))
check("unsigned_refused", refused("REFUSED"))
sys.exit(1 if failures else 0)
