#!/usr/bin/env python3
"""Small helpers for the transfer benchmarks (axfr-compare.sh, reload-latency.sh).
Python standard library only; every query goes to 127.0.0.1.

  xfr-util.py ts
      Copies stdin to stdout line by line, each line prefixed with the Unix time (µs) at
      which it arrived. knotd's own log timestamps have one-second resolution; its stderr
      piped through this gives the breakdown of a reload in milliseconds.

  xfr-util.py soa PORT ORIGIN [--want SERIAL] [--poll S] [--limit S] [--pid PID]
      Polls ORIGIN/SOA over UDP until an authoritative answer (with serial SERIAL, when
      given) comes back; prints "UNIXTIME SERIAL". Exit 1 on timeout, 2 if PID exited.

  xfr-util.py reload PORT ORIGIN SERIAL [--poll S] [--limit S] -- CMD...
      t0; runs CMD (a reload command); t1 when it returns; then polls as `soa` until the
      server on PORT serves SERIAL: t2. Prints "t0 t1 t2 RC" on the first line, CMD's
      output after it. One process, so nothing is started between t0 and t2 but CMD.

  xfr-util.py cpu PID
      User + system CPU seconds of process PID so far (all its threads).

  xfr-util.py edit BASE OUT VERSION HALF
      Writes version VERSION of a zone made by gen-zone.py: BASE with its SOA serial raised
      by VERSION, plus HALF A records at new names chg<VERSION>-<j>.<origin> (one per name).
      From version V-1 to V: HALF RRs removed, HALF added, the SOA changed. OUT is written
      beside itself and renamed into place.
"""

import os
import random
import socket
import struct
import subprocess
import sys
import time


def qname_wire(origin):
    labels = [l for l in origin.strip(".").split(".") if l]
    return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"


def skip_name(m, o):
    while True:
        c = m[o]
        if c == 0:
            return o + 1
        if c & 0xC0 == 0xC0:
            return o + 2
        o += 1 + c


def soa_serial(m, qid):
    """The serial of the first SOA in the answer section of response m, or None."""
    if len(m) < 12:
        return None
    rid, flags, qd, an = struct.unpack("!HHHH", m[:8])
    if rid != qid or not flags & 0x8000 or flags & 0x000F or an < 1:
        return None
    o = 12
    for _ in range(qd):
        o = skip_name(m, o) + 4
    for _ in range(an):
        o = skip_name(m, o)
        t, _c, _ttl, rdlen = struct.unpack("!HHIH", m[o:o + 10])
        o += 10
        if t == 6:
            p = skip_name(m, skip_name(m, o))
            return struct.unpack("!I", m[p:p + 4])[0]
        o += rdlen
    return None


def poll_soa(port, origin, want, poll, limit, pid=None):
    """Returns (unix time, serial) of the first answer with serial `want` (any when None)."""
    q = qname_wire(origin)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(poll)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pid is not None and not os.path.exists("/proc/%d" % pid):
            sys.exit(2)
        qid = random.randrange(65536)
        try:
            s.send(struct.pack("!6H", qid, 0, 1, 0, 0, 0) + q + struct.pack("!HH", 6, 1))
            t_end = time.monotonic() + poll
            while time.monotonic() < t_end:
                serial = soa_serial(s.recv(4096), qid)
                if serial is not None:
                    if want is None or serial == want:
                        return time.time(), serial
                    # A different serial: ask again after the poll interval.
                    time.sleep(max(0.0, t_end - time.monotonic()))
                    break
        except socket.timeout:
            continue
        except (OSError, IndexError, struct.error):  # ICMP unreachable before bind, junk
            time.sleep(poll)
    return None


def opts(args, names):
    """--name VALUE pairs from args; returns (dict, rest)."""
    out, rest, i = {}, [], 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i:])
            break
        if a.startswith("--") and a[2:] in names:
            out[a[2:]] = args[i + 1]
            i += 2
        else:
            rest.append(a)
            i += 1
    return out, rest


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "ts":
        out = sys.stdout
        for line in sys.stdin.buffer:
            out.write("%.6f %s" % (time.time(), line.decode("utf-8", "replace")))
            out.flush()
        return 0
    if cmd == "cpu":
        f = open("/proc/%s/stat" % args[0]).read().rsplit(")", 1)[1].split()
        print("%.3f" % ((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")))
        return 0
    if cmd == "edit":
        base, out, version, half = args[0], args[1], int(args[2]), int(args[3])
        text = open(base).read()
        serial = None
        for line in text.splitlines()[:20]:
            if line.strip().endswith("; serial"):
                serial = int(line.split()[0])
                break
        if serial is None:
            sys.exit("edit: no '; serial' line in %s" % base)
        origin = None
        for line in text.splitlines()[:5]:
            if line.startswith("$ORIGIN"):
                origin = line.split()[1]
                break
        new = (serial + version) % (1 << 32)
        text = text.replace("\t%d ; serial" % serial, "\t%d ; serial" % new, 1)
        block = "".join("chg%d-%d.%s\t3600\tIN\tA\t10.%d.%d.%d\n"
                        % (version, j, origin, version % 256, j // 256 % 256, j % 256)
                        for j in range(half))
        tmp = "%s.tmp.%d" % (out, os.getpid())
        with open(tmp, "w") as f:
            f.write(text)
            f.write("$ORIGIN %s\n" % origin)
            f.write(block)
        os.rename(tmp, out)
        print(new)
        return 0
    if cmd == "soa":
        o, rest = opts(args, ("want", "poll", "limit", "pid"))
        port, origin = int(rest[0]), rest[1]
        r = poll_soa(port, origin, int(o["want"]) if "want" in o else None, float(o.get("poll", 0.05)),
                     float(o.get("limit", 60)), int(o["pid"]) if "pid" in o else None)
        if r is None:
            return 1
        print("%.6f %d" % r)
        return 0
    if cmd == "reload":
        o, rest = opts(args, ("poll", "limit"))
        if "--" not in rest:
            sys.exit("reload: no command after --")
        k = rest.index("--")
        port, origin, want = int(rest[0]), rest[1], int(rest[2])
        command = rest[k + 1:]
        t0 = time.time()
        p = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t1 = time.time()
        r = poll_soa(port, origin, want, float(o.get("poll", 0.002)), float(o.get("limit", 30)))
        t2 = r[0] if r else float("nan")
        print("%.6f %.6f %.6f %d" % (t0, t1, t2, p.returncode))
        sys.stdout.write(p.stdout.decode("utf-8", "replace"))
        return 0 if r else 1
    sys.exit("unknown command %r\n%s" % (cmd, __doc__))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
