#!/usr/bin/env python3
"""A spoofed-source flood on loopback, as response rate limiting sees it: one socket bound
in each of PREFIXES /24s (127.10.i.1, i = 0..PREFIXES-1; the whole 127/8 answers on
loopback) sends the same query, round robin, at RATE queries a second in all, for SECONDS;
a client of its own prefix (127.200.0.1) asks at 10 queries a second meanwhile. Every
response is read and counted: answers (TC clear), slips (TC set) and bytes.

Usage: rrl-flood.py PORT QNAME QTYPE PREFIXES RATE SECONDS
Prints one line of key=value: flood_sent flood_answers flood_slips flood_bytes_out
flood_bytes_in legit_sent legit_answered seconds. Bounded: at most RATE x SECONDS queries
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

c = dict(flood_sent=0, flood_answers=0, flood_slips=0, flood_bytes_out=0, flood_bytes_in=0,
         legit_sent=0, legit_answered=0)
legit_ids = set()
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
        next_legit += 0.1
    drain(0)
elapsed = time.monotonic() - t0
end = time.monotonic() + 1.0
while time.monotonic() < end:
    drain(0.05)
c["seconds"] = "%.2f" % elapsed
print(" ".join("%s=%s" % kv for kv in c.items()))
