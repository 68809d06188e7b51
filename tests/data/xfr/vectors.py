#!/usr/bin/python3
"""TSIG test vectors for src/xfr (RFC 8945), made by real implementations.

Prints `NAME HEX` lines: requests signed by dnspython (each algorithm), by kdig and by dig
(captured on a loopback TCP listener this script opens), and a three-message response
signed by dnspython as a multi-message transfer. Regenerate with
    /usr/bin/python3 tests/data/xfr/vectors.py > tests/data/xfr/vectors.txt
Needs python3-dnspython, kdig (knot-dnsutils) and dig (bind9-dnsutils).
"""

import base64
import socket
import struct
import subprocess
import threading

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring

SECRET = base64.b64encode(bytes(range(32))).decode()
KEYS = {
    "hmac-sha1": "sha1-key.",
    "hmac-sha256": "xfr-key.",
    "hmac-sha384": "sha384-key.",
    "hmac-sha512": "sha512-key.",
}
SOA = "ns.example.com. hostmaster.example.com. 2 7200 900 1209600 300"


def emit(name, wire):
    print(name, wire.hex())


def key(alg):
    return dns.tsig.Key(KEYS[alg], SECRET, alg)


def dnspython_requests():
    for alg in KEYS:
        q = dns.message.make_query("example.com.", "AXFR")
        q.id = 0x1234
        q.flags = 0
        q.use_tsig(key(alg))
        emit("dnspython_axfr_" + alg, q.to_wire())
    q = dns.message.make_query("example.com.", "IXFR")
    q.id = 0x2345
    q.flags = 0
    q.authority.append(dns.rrset.from_text("example.com.", 0, "IN", "SOA", SOA))
    q.use_tsig(key("hmac-sha256"))
    emit("dnspython_ixfr_hmac-sha256", q.to_wire())


def dnspython_multi_response():
    """A signed AXFR request and a three-message response signed in sequence."""
    k = key("hmac-sha256")
    q = dns.message.make_query("example.com.", "AXFR")
    q.id = 0x3456
    q.use_tsig(k)
    wire = q.to_wire()
    emit("multi_request", wire)
    q = dns.message.from_wire(wire, keyring={k.name: k})
    ctx = None
    records = [
        ("example.com.", "SOA", SOA),
        ("www.example.com.", "A", "192.0.2.1"),
        ("example.com.", "SOA", SOA),
    ]
    for i, (owner, t, rd) in enumerate(records):
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        r.answer.append(dns.rrset.from_text(owner, 3600, "IN", t, rd))
        # make_response copies the request's key and MAC for the first message.
        r.use_tsig(k, original_id=r.id)
        if i == 0:
            r.request_mac = q.mac
        out = r.to_wire(multi=True, tsig_ctx=ctx)
        ctx = r.tsig_ctx
        emit("multi_response_%d" % i, out)


def capture(argv_for_port):
    """Runs a client against a loopback TCP listener and returns its first request."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    got = {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(10)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = c.recv(65535)
            if not chunk:
                break
            data += chunk
        got["wire"] = data[2 : 2 + struct.unpack("!H", data[:2])[0]]
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    subprocess.run(argv_for_port(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    t.join()
    srv.close()
    return got["wire"]


def tool_requests():
    y = "hmac-sha256:xfr-key:" + SECRET
    emit(
        "kdig_axfr_hmac-sha256",
        capture(lambda p: ["kdig", "-y", y, "+tcp", "+retry=0", "+timeout=2", "@127.0.0.1", "-p", str(p), "AXFR", "example.com."]),
    )
    emit(
        "dig_ixfr_hmac-sha256",
        capture(lambda p: ["dig", "-y", y, "+tcp", "+tries=1", "+time=2", "@127.0.0.1", "-p", str(p), "IXFR=2", "example.com."]),
    )


dnspython_requests()
dnspython_multi_response()
tool_requests()
