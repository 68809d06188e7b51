#!/usr/bin/env python3
"""A spoofed-source flood on loopback, as response rate limiting sees it: one socket bound
in each of PREFIXES /24s (127.10.i.1, i = 0..PREFIXES-1; the whole 127/8 answers on
loopback) sends the same query, round robin, at RATE queries a second in all, for SECONDS;
a client of its own prefix (127.200.0.1) asks at 10 queries a second meanwhile, and so does
a client inside the first flooded prefix (127.10.0.2) that sends a DNS cookie (RFC 7873):
it starts with a client cookie alone and, once a response (an answer or a BADCOOKIE slip)
gives it a server cookie, sends that too. Every response is read and counted: answers (TC
clear), slips (TC set) and bytes.

Usage: rrl-flood.py PORT QNAME QTYPE PREFIXES RATE SECONDS
Prints one line of key=value: flood_sent flood_answers flood_slips flood_bytes_out
flood_bytes_in legit_sent legit_answered cookie_sent cookie_answered cookie_badcookie
cookie_tc seconds. Bounded: at most RATE x SECONDS queries
(and SECONDS is at most 600).
"""
import os
import selectors
import socket
import struct
import sys
import time

port, qname, qtype = int(sys.argv[1]), sys.argv[2], sys.argv[3]
prefixes, rate, seconds = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
if not (1 <= prefixes <= 250 and 1 <= rate <= 200000 and 0 < seconds <= 600):
    sys.exit("rrl-flood.py: PREFIXES 1-250, RATE 1-200000, SECONDS up to 600")
TYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}


def query(qid):
    q = struct.pack("!HHHHHH", qid & 0xFFFF, 0, 1, 0, 0, 0)
    for label in qname.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", TYPES[qtype], 1)


server = ("127.0.0.1", port)
sel = selectors.DefaultSelector()
flood = []
for i in range(prefixes):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.10.%d.1" % i, 0))
    s.connect(server)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "flood")
    flood.append(s)
legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
legit.bind(("127.200.0.1", 0))
legit.connect(server)
legit.setblocking(False)
sel.register(legit, selectors.EVENT_READ, "legit")
cookie_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cookie_sock.bind(("127.10.0.2", 0))
cookie_sock.connect(server)
cookie_sock.setblocking(False)
sel.register(cookie_sock, selectors.EVENT_READ, "cookie")
cookie = os.urandom(8)  # the client cookie, then with the server's


def cookie_query(qid):
    opt = struct.pack("!HH", 10, len(cookie)) + cookie
    q = bytearray(query(qid))
    q[11] = 1  # ARCOUNT
    return bytes(q) + b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(opt)) + opt


def skip_name(m, p):
    while True:
        n = m[p]
        if n & 0xC0 == 0xC0:
            return p + 2
        if n == 0:
            return p + 1
        p += 1 + n


def server_cookie(m):
    """The client and server cookie of the response's OPT, if it has one."""
    try:
        qd, an, ns, ar = struct.unpack("!HHHH", m[4:12])
        p = 12
        for _ in range(qd):
            p = skip_name(m, p) + 4
        for i in range(an + ns + ar):
            p = skip_name(m, p)
            t, _, _, rdlen = struct.unpack("!HHIH", m[p:p + 10])
            p += 10
            if t == 41 and i >= an + ns:
                o = p
                while o + 4 <= p + rdlen:
                    code, olen = struct.unpack("!HH", m[o:o + 4])
                    if code == 10 and olen > 8:
                        return bytes(m[o + 4:o + 4 + olen])
                    o += 4 + olen
            p += rdlen
    except (IndexError, struct.error):
        pass
    return None

c = dict(flood_sent=0, flood_answers=0, flood_slips=0, flood_bytes_out=0, flood_bytes_in=0,
         legit_sent=0, legit_answered=0, cookie_sent=0, cookie_answered=0, cookie_badcookie=0, cookie_tc=0)
legit_ids = set()
cookie_ids = set()
msg = query(0)


def drain(timeout):
    for key, _ in sel.select(timeout):
        while True:
            try:
                m = key.fileobj.recv(4096)
            except BlockingIOError:
                break
            if len(m) < 12 or not m[2] & 0x80:
                continue
            if key.data == "legit":
                qid = struct.unpack("!H", m[:2])[0]
                if qid in legit_ids and not m[2] & 0x02:
                    legit_ids.discard(qid)
                    c["legit_answered"] += 1
                continue
            if key.data == "cookie":
                global cookie
                qid = struct.unpack("!H", m[:2])[0]
                if qid not in cookie_ids:
                    continue
                cookie_ids.discard(qid)
                got = server_cookie(m)
                if got and got[:8] == cookie[:8]:
                    cookie = got
                if m[2] & 0x02:
                    c["cookie_tc"] += 1
                elif m[3] & 0x0F == 7:  # 23: 7 here and 1 in the OPT
                    c["cookie_badcookie"] += 1
                else:
                    c["cookie_answered"] += 1
                continue
            c["flood_bytes_in"] += len(m)
            if m[2] & 0x02:
                c["flood_slips"] += 1
            else:
                c["flood_answers"] += 1


t0 = time.monotonic()
next_legit = t0
total = int(rate * seconds)
i = 0
while c["flood_sent"] < total:
    now = time.monotonic()
    if now - t0 > seconds + 5:
        break
    due = min(total, int((now - t0) * rate) + 1)
    while c["flood_sent"] < due:
        s = flood[i % prefixes]
        i += 1
        try:
            s.send(msg)
            c["flood_sent"] += 1
            c["flood_bytes_out"] += len(msg)
        except (BlockingIOError, ConnectionRefusedError):
            c["flood_sent"] += 1
    if now >= next_legit:
        qid = (c["legit_sent"] + 1) & 0xFFFF
        legit_ids.add(qid)
        legit.send(query(qid))
        c["legit_sent"] += 1
        cookie_ids.add(qid)
        cookie_sock.send(cookie_query(qid))
        c["cookie_sent"] += 1
        next_legit += 0.1
    drain(0)
elapsed = time.monotonic() - t0
end = time.monotonic() + 1.0
while time.monotonic() < end:
    drain(0.05)
c["seconds"] = "%.2f" % elapsed
print(" ".join("%s=%s" % kv for kv in c.items()))
