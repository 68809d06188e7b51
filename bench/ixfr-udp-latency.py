#!/usr/bin/env python3
"""IXFR over UDP vs over TCP at an nsxdp secondary: a one-record change on an nsxdp
primary, its NOTIFY, and the time until the secondary serves the new serial.

Two pairs run side by side: primary A -> secondary A (`ixfr-udp`: IXFR over UDP first)
and primary B -> secondary B (IXFR over TCP after an SOA query over UDP, the default),
each primary NOTIFYing its own secondary with an hmac-sha256 key. The reloads alternate
between the pairs, one at a time. Per reload: the primary's zone file gets the next
serial and one A record changed (1 removed, 1 added); t0; `nsxdp ctl reload`; the
secondary's SOA is polled over UDP every millisecond until it has the new serial. The
secondaries' stderr is timestamped line by line as it is read, which gives NOTIFY (the
secondary logs it) -> the new version committed ("serial A -> B by ..."), and each
commit line says how the change came (IXFR over UDP, or IXFR) and how long the transfer
itself took (from sending the IXFR request; the SOA query before an IXFR over TCP is not
in it, but is in NOTIFY -> committed).

Usage: bench/ixfr-udp-latency.py [--runs R] [--hosts H] [--keep]
  NSXDP_BIN=PATH  the nsxdp binary (default target/release/nsxdp, built first)

Only 127.0.0.1 is used, on free ports; every process started is stopped by its PID.
"""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("xfr_util", os.path.join(HERE, "xfr-util.py"))
xfr_util = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(xfr_util)

SECRET = "aXhmci11ZHAtYmVuY2gta2V5LWZvci1uc3hkcC0wMDE="
ORIGIN = "bench.test."


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port")


def zone_text(serial, hosts):
    lines = [
        "$ORIGIN %s" % ORIGIN,
        "$TTL 300",
        "@ SOA ns hostmaster %d 3600 600 86400 60" % serial,
        "@ NS ns",
        "ns A 127.0.0.1",
        # The one record that changes.
        "changed A 198.19.%d.%d" % (serial // 250 % 250, serial % 250),
    ]
    lines += ["h%d A 198.18.%d.%d" % (i, i // 250 % 250, i % 250) for i in range(hosts)]
    return "\n".join(lines) + "\n"


class Server:
    """nsxdp serve, its stderr read into timestamped lines."""

    def __init__(self, nsxdp, d, conf):
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(
            [nsxdp, "serve", "--cores", "1", "--config", conf], cwd=d, stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL, text=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(120):
            self.stop()
            raise SystemExit("nsxdp did not start in %s:\n%s" % (d, self.text()))

    def _read(self):
        for line in self.p.stderr:
            t = time.monotonic()
            with self.lock:
                self.lines.append((t, line.rstrip("\n")))
            if line.strip().endswith(" info: ready"):
                self.ready.set()

    def find(self, pattern, after):
        with self.lock:
            for t, line in self.lines:
                if t >= after and re.search(pattern, line):
                    return t, line
        return None

    def text(self):
        with self.lock:
            return "\n".join(line for _, line in self.lines)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def config(port, zone_section):
    return (
        '[server]\nlisten = ["127.0.0.1:%d"]\ndata-dir = "data"\ncontrol = "data/ctl.sock"\n'
        '[[key]]\nname = "xfr"\nalgorithm = "hmac-sha256"\nsecret = "%s"\n'
        '[[acl]]\nname = "peers"\naddress = ["127.0.0.1"]\nkey = "xfr"\naction = ["notify", "transfer"]\n'
        '%s' % (port, SECRET, zone_section))


def main():
    runs, hosts, keep = 20, 1000, False
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--hosts":
            hosts = int(args.pop(0))
        elif a == "--keep":
            keep = True
        else:
            raise SystemExit(__doc__)
    if not 1 <= runs <= 200 or not 1 <= hosts <= 200000:
        raise SystemExit("--runs 1..200, --hosts 1..200000")
    nsxdp = os.environ.get("NSXDP_BIN")
    nsxdp = os.path.abspath(nsxdp) if nsxdp else None
    if not nsxdp:
        nsxdp = os.path.join(REPO, "target", "release", "nsxdp")
        print("== cargo build --release", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    top = tempfile.mkdtemp(prefix="nsxdp-ixfr-udp-")
    servers = []
    pairs = {}
    try:
        for name, extra in (("udp", " ixfr-udp"), ("tcp", "")):
            pp, sp = free_port(), free_port()
            pd, sd = os.path.join(top, name + "-primary"), os.path.join(top, name + "-secondary")
            os.makedirs(pd)
            os.makedirs(sd)
            with open(os.path.join(pd, "bench.test.zone"), "w") as f:
                f.write(zone_text(1, hosts))
            pconf = os.path.join(pd, "nsxdp.toml")
            with open(pconf, "w") as f:
                f.write(config(pp, '[[zone]]\nname = "bench.test"\nfile = "bench.test.zone"\nacl = ["peers"]\n'
                                   'notify-ns = false\nnotify = ["127.0.0.1:%d key xfr"]\n' % sp))
            sconf = os.path.join(sd, "nsxdp.toml")
            with open(sconf, "w") as f:
                f.write(config(sp, '[[zone]]\nname = "bench.test"\nrole = "secondary"\nacl = ["peers"]\n'
                                   'notify-ns = false\nprimaries = ["127.0.0.1:%d key xfr%s"]\n' % (pp, extra)))
            primary = Server(nsxdp, pd, pconf)
            servers.append(primary)
            secondary = Server(nsxdp, sd, sconf)
            servers.append(secondary)
            if xfr_util.poll_soa(sp, ORIGIN, 1, 0.01, 60) is None:
                raise SystemExit("%s: the secondary did not load serial 1:\n%s" % (name, secondary.text()))
            pairs[name] = (pd, pconf, sp, secondary)
        results = {"udp": [], "tcp": []}
        for v in range(2, runs + 2):
            for name in ("udp", "tcp"):
                pd, pconf, sp, secondary = pairs[name]
                tmp = os.path.join(pd, "bench.test.zone.new")
                with open(tmp, "w") as f:
                    f.write(zone_text(v, hosts))
                os.replace(tmp, os.path.join(pd, "bench.test.zone"))
                t0 = time.monotonic()
                r = subprocess.run([nsxdp, "ctl", "--config", pconf, "reload", "bench.test"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit("reload: %s%s" % (r.stdout, r.stderr))
                t_reload = time.monotonic()
                if xfr_util.poll_soa(sp, ORIGIN, v, 0.001, 30) is None:
                    raise SystemExit("%s: serial %d not served:\n%s" % (name, v, secondary.text()))
                t_served = time.monotonic()
                time.sleep(0.05)  # let the log lines arrive
                notify = secondary.find(r"NOTIFY from", t0)
                commit = secondary.find(r"serial %d -> %d by " % (v - 1, v), t0)
                if notify is None or commit is None:
                    raise SystemExit("%s: no NOTIFY or commit line:\n%s" % (name, secondary.text()))
                how = commit[1].split(" by ", 1)[1].split(" from ")[0]
                took = re.search(r" in ([0-9.]+) ms", commit[1])
                results[name].append({
                    "total": (t_served - t0) * 1000,
                    "reload": (t_reload - t0) * 1000,
                    "notify_commit": (commit[0] - notify[0]) * 1000,
                    "notify_served": (t_served - notify[0]) * 1000,
                    "how": how,
                    "transfer": float(took.group(1)) if took else float("nan"),
                })
        print("%d reloads of each pair, %d hosts, one A record changed per reload" % (runs, hosts))
        print("| secondary | transfer | the transfer ms median (its log) | NOTIFY -> committed ms median | max "
              "| NOTIFY -> served ms median | max | reload -> served ms median |")
        print("|---|---|---|---|---|---|---|---|")
        med = {}
        for name in ("udp", "tcp"):
            rs = results[name]
            kinds = sorted(set(r["how"] for r in rs))
            nc = [r["notify_commit"] for r in rs]
            ns = [r["notify_served"] for r in rs]
            tot = [r["total"] for r in rs]
            med[name] = statistics.median(ns)
            print("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f |" % (
                "ixfr-udp" if name == "udp" else "default (TCP)", ", ".join(kinds),
                statistics.median(r["transfer"] for r in rs),
                statistics.median(nc), max(nc), statistics.median(ns), max(ns), statistics.median(tot)))
        print("NOTIFY -> served, median UDP / TCP: %.2f" % (med["udp"] / med["tcp"]))
    finally:
        for s in servers:
            s.stop()
        if keep:
            print("kept %s" % top, file=sys.stderr)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
