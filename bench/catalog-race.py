#!/usr/bin/env python3
"""Catalog zones at scale: how long a consumer takes from its start until it answers every
member zone of a catalog that knotd generates, nsxdp against knotd as the consumer, in the
same run, from the same knotd primary.

knotd (the producer) serves N small member zones (bench/gen-many-zones.py) and the catalog
`catz.` it generates from them (`catalog-role: generate`), transfers allowed with an
hmac-sha256 key. Then, one after the other on an empty data directory each:
  - nsxdp with `catz.` as a secondary zone of `catalog-role = "consumer"`;
  - knotd with `catz.` of `catalog-role: interpret` and a template for the members, with
    8 background workers (nsxdp's transfer-workers default).
Each consumer is timed from its start until every member's SOA is answered (NOERROR with
the member's serial), polled over UDP by this script (all members not yet answered, again
and again); also its CPU time and RSS at that point.

Usage: bench/catalog-race.py [--zones N] [--keep]     (default N = 10000)
  NSXDP_BIN=PATH  the nsxdp binary (default target/release/nsxdp; built first when absent)

Needs knotd and python3. Only 127.0.0.1 is used, on free ports; every process started is
stopped by its PID at the end (SIGTERM, SIGKILL after 10 s).
"""

import argparse
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SECRET = "Y2F0YWxvZy1yYWNlLWJlbmNoLWtleS1mb3ItbnN4ZHA="
LIMIT_S = 600


def free_port():
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit("catalog-race: no free port")


def wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def soa_query(qid, name):
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire(name) + struct.pack(">HH", 6, 1)


def answered(port, names, rounds_timeout=0.5):
    """The names among `names` whose SOA query gets NOERROR with an answer (one UDP pass,
    a window of queries in flight)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect(("127.0.0.1", port))
    s.settimeout(rounds_timeout)
    ok = set()
    by_id = {}
    pending = list(names)
    window = 256
    inflight = 0
    i = 0
    while i < len(pending) or inflight:
        while i < len(pending) and inflight < window:
            qid = i & 0xFFFF
            by_id[qid] = pending[i]
            try:
                s.send(soa_query(qid, pending[i]))
            except ConnectionRefusedError:
                # Nothing listens yet (an ICMP error from an earlier datagram).
                s.close()
                return ok
            i += 1
            inflight += 1
        try:
            m = s.recv(4096)
        except (socket.timeout, ConnectionRefusedError):
            break
        inflight -= 1
        if len(m) < 12:
            continue
        qid, flags, _, an = struct.unpack(">HHHH", m[:8])
        if flags & 0x000F == 0 and an > 0 and qid in by_id:
            ok.add(by_id[qid])
    s.close()
    return ok


def cpu_and_rss(pid):
    try:
        f = open("/proc/%d/stat" % pid).read()
        fields = f[f.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = int(open("/proc/%d/statm" % pid).read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        return cpu, rss
    except (OSError, ValueError):
        return float("nan"), float("nan")


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def knot_conf(d, port, zones_dir, members, role, primary_port=None, workers=1):
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    os.makedirs(os.path.join(d, "storage"), exist_ok=True)
    t = [
        "server:\n    rundir: \"%s/run\"\n    listen: 127.0.0.1@%d\n    background-workers: %d\n" % (d, port, workers),
        "log:\n  - target: stderr\n    any: notice\n",
        "database:\n    storage: \"%s/db\"\n" % d,
        "key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: %s\n" % SECRET,
        "acl:\n  - id: peers\n    address: 127.0.0.1\n    key: xfr\n    action: [transfer, notify]\n",
    ]
    if role == "generate":
        t.append("template:\n  - id: default\n    storage: \"%s\"\n    zonefile-sync: -1\n    journal-content: none\n"
                 "    semantic-checks: off\n    acl: peers\n" % zones_dir)
        z = ["zone:\n  - domain: catz.\n    catalog-role: generate\n    acl: peers\n"]
        for m in members:
            z.append("  - domain: %s\n    file: %szone\n    catalog-role: member\n    catalog-zone: catz.\n"
                     % (m, m))
        t.append("".join(z))
    else:
        t.append("remote:\n  - id: producer\n    address: 127.0.0.1@%d\n    key: xfr\n" % primary_port)
        t.append("template:\n  - id: default\n    storage: \"%s/storage\"\n    zonefile-sync: -1\n"
                 "    zonefile-load: none\n    journal-content: all\n    acl: peers\n"
                 "  - id: members\n    storage: \"%s/storage\"\n    zonefile-sync: -1\n"
                 "    zonefile-load: none\n    journal-content: all\n    master: producer\n    acl: peers\n" % (d, d))
        t.append("zone:\n  - domain: catz.\n    master: producer\n    acl: peers\n    catalog-role: interpret\n"
                 "    catalog-template: members\n")
    path = os.path.join(d, "knot.conf")
    open(path, "w").write("\n".join(t))
    return path


def race(name, argv, port, members, log):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    left = set(members)
    try:
        while left:
            if p.poll() is not None:
                sys.exit("catalog-race: %s exited (%s); see %s" % (name, p.returncode, log))
            if time.monotonic() - t0 > LIMIT_S:
                sys.exit("catalog-race: %s served %d of %d after %d s" % (name, len(members) - len(left),
                                                                         len(members), LIMIT_S))
            left -= answered(port, sorted(left))
            if left:
                time.sleep(0.05)
        took = time.monotonic() - t0
        cpu, rss = cpu_and_rss(p.pid)
        return took, cpu, rss
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", type=int, default=10000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not shutil.which("knotd"):
        sys.exit("catalog-race: needs knotd (apt-get install knot)")
    nsxdp = os.environ.get("NSXDP_BIN", os.path.join(REPO, "target/release/nsxdp"))
    if not os.path.exists(nsxdp):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    zdir = "/tmp/nsxdp-many-zones-%d" % a.zones
    if not os.path.exists(os.path.join(zdir, "zones.list")):
        subprocess.run([sys.executable, os.path.join(HERE, "gen-many-zones.py"), str(a.zones), zdir, "1000"],
                       check=True)
    members = [l.split()[0].rstrip(".") + "." for l in open(os.path.join(zdir, "zones.list")) if l.strip()]
    tmp = tempfile.mkdtemp(prefix="nsxdp-catalog-race.")
    procs = []
    try:
        pp = free_port()
        kp = os.path.join(tmp, "producer")
        conf = knot_conf(kp, pp, os.path.join(zdir, "zones"), members, "generate", workers=2)
        prod = subprocess.Popen(["knotd", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(kp, "knotd.log"), "w"))
        procs.append(prod)
        t0 = time.monotonic()
        while len(answered(pp, random.sample(members, min(200, len(members))))) < min(200, len(members)):
            if time.monotonic() - t0 > LIMIT_S or prod.poll() is not None:
                sys.exit("catalog-race: the knotd producer did not start; see %s/knotd.log" % kp)
            time.sleep(0.2)
        print("== producer knotd on 127.0.0.1:%d: %d members, catz. generated (%.1f s)"
              % (pp, len(members), time.monotonic() - t0), file=sys.stderr)
        results = []
        # nsxdp consumer.
        nd = os.path.join(tmp, "nsxdp")
        os.makedirs(nd)
        np_ = free_port()
        open(os.path.join(nd, "nsxdp.toml"), "w").write(
            "[server]\nlisten = [\"127.0.0.1:%d\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n"
            "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"%s\"\n"
            "[[acl]]\nname = \"producer\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"notify\"]\n"
            "[[zone]]\nname = \"catz.\"\nrole = \"secondary\"\ncatalog-role = \"consumer\"\n"
            "primaries = [\"127.0.0.1:%d key xfr\"]\nacl = [\"producer\"]\nnotify-ns = false\n" % (np_, SECRET, pp))
        took, cpu, rss = race("nsxdp", ["taskset", "-c", "1", nsxdp, "serve", "--cores", "1", "--config",
                                        os.path.join(nd, "nsxdp.toml")], np_, members,
                              os.path.join(nd, "nsxdp.log"))
        results.append(("nsxdp", took, cpu, rss))
        print("== nsxdp consumer: every member served %.2f s after its start" % took, file=sys.stderr)
        # knotd consumer.
        kd = os.path.join(tmp, "knot-consumer")
        kcp = free_port()
        # As many transfers at once as nsxdp's transfer-workers (8).
        kconf = knot_conf(kd, kcp, None, members, "interpret", primary_port=pp, workers=8)
        took, cpu, rss = race("knotd", ["taskset", "-c", "1", "knotd", "-c", kconf], kcp, members,
                              os.path.join(kd, "knotd.log"))
        results.append(("knotd", took, cpu, rss))
        print("== knotd consumer: every member served %.2f s after its start" % took, file=sys.stderr)
        print("catalog-race: %s, %d members, knotd %s; each consumer on CPU 1, from an empty data directory"
              % (time.strftime("%Y-%m-%d %H:%M"), len(members),
                 subprocess.run(["knotd", "-V"], capture_output=True, text=True).stdout.split()[-1]))
        print("%-8s %12s %10s %9s" % ("consumer", "all served s", "CPU s", "RSS MiB"))
        for r in results:
            print("%-8s %12.2f %10.2f %9.1f" % r)
        print("ratio nsxdp/knotd (time to all served): %.2f (target < 1)" % (results[0][1] / results[1][1]))
    finally:
        for p in procs:
            stop(p)
        if a.keep:
            print("catalog-race: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
