#!/usr/bin/env python3
"""One zone changed and reloaded among many, for bench/many-zones.sh --reloads K.

Usage: reload-one.py PORT ZONE FILE K -- RELOAD-COMMAND...

K times: the SOA serial in FILE (the zone's file, the server's own copy) is raised by one and
a record `reloadK A 192.0.2.K` added; then RELOAD-COMMAND is run (`nsxdp ctl reload ZONE`,
`knotc zone-reload ZONE`) and 127.0.0.1@PORT is asked the zone's SOA every millisecond
until the new serial is answered. Prints one line: the K times from the start of the
command to the new serial answered, in milliseconds, then their median and maximum.

Only the Python standard library; traffic to 127.0.0.1 only; each wait bounded
(RELOAD_LIMIT_S, default 120 s: Knot takes seconds per reload among 10^5 zones and more
among 10^6). A reload not answered in time ends the series: the line then says
"timeout after N s" in place of the figures, and the exit status is still 0 (the other
figures of the run stand).
"""

import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time

LIMIT_S = float(os.environ.get("RELOAD_LIMIT_S", "120"))


def soa_serial(sock, port, qname, qid):
    """The serial of the SOA answer to one query, or None (no answer within about 1 ms)."""
    sock.sendto(struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", 6, 1),
                ("127.0.0.1", port))
    # Answers to earlier queries that came late are read and passed over.
    end = time.monotonic() + 0.001
    while True:
        try:
            m = sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None
        if struct.unpack("!H", m[:2])[0] == qid:
            break
        if time.monotonic() > end:
            return None
    _, flags, _, an = struct.unpack("!HHHH", m[:8])
    if flags & 0xF != 0 or an < 1:
        return None
    # The answer's SOA: after the question, a compressed owner (2), type, class, TTL,
    # rdlength, two names, then the serial; the names are walked.
    pos = 12 + len(qname) + 4 + 2 + 10
    for _ in range(2):
        while True:
            n = m[pos]
            if n >= 0xC0:
                pos += 2
                break
            pos += n + 1
            if n == 0:
                break
    return struct.unpack("!I", m[pos:pos + 4])[0]


def main():
    if len(sys.argv) < 7 or sys.argv[5] != "--":
        sys.exit(__doc__)
    port, zone, path, k = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    command = sys.argv[6:]
    qname = b"".join(bytes([len(l)]) + l.encode() for l in zone.strip(".").split(".")) + b"\0"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.001)
    times = []
    qid = 0
    for r in range(1, k + 1):
        text = open(path).read()
        m = re.search(r"SOA (\S+) (\S+) (\d+)", text)
        serial = int(m.group(3)) + 1
        text = text[:m.start(3)] + str(serial) + text[m.end(3):] + "reload%d A 192.0.2.%d\n" % (r, r % 250 + 1)
        with open(path, "w") as f:
            f.write(text)
        # A file's stamp is its modification time: one in the same second as the last
        # reload is not trusted by nsxdp (nor by Knot), so every change comes a second later.
        time.sleep(1.1)
        t0 = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        while True:
            qid = (qid + 1) & 0xFFFF
            if soa_serial(sock, port, qname, qid) == serial:
                times.append((time.monotonic() - t0) * 1000)
                break
            if time.monotonic() - t0 > LIMIT_S:
                print("reload-one: serial %d of %s not answered within %.0f s" % (serial, zone, LIMIT_S),
                      file=sys.stderr)
                print(" ".join("%.1f" % t for t in times), "timeout after %.0f s" % LIMIT_S)
                return
    print(" ".join("%.1f" % t for t in times), "median %.1f max %.1f" % (statistics.median(times), max(times)))


if __name__ == "__main__":
    main()
