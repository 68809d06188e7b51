#!/usr/bin/python3
"""Differential test of nsxdp's answers against Knot DNS and NSD.

Starts knotd, nsd and (with --nsxdp) nsxdp on 127.0.0.1 with the zones in
tests/differential/zones/, sends every server the same battery of queries
generated from those zones and compares the responses. See
tests/differential/README.md for what is compared and how to run it.

Run with Debian's /usr/bin/python3 (it needs python3-dnspython).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.zone
except ImportError:  # reported by main(); exit status 3 means "missing prerequisite"
    dns = None

HERE = os.path.dirname(os.path.abspath(__file__))
ZONE_DIR = os.path.join(HERE, "zones")
# --dnssec: the signed zones (made by dnssec/sign.sh) and their keys
DNSSEC_DIR = os.path.join(HERE, "dnssec")
HOST = "127.0.0.1"

# Exit statuses: 0 all matched, 1 some query failed, 2 harness error,
# 3 a prerequisite (knotd, nsd, dnspython) is missing.
EXIT_FAIL, EXIT_ERROR, EXIT_MISSING = 1, 2, 3

ALL_TYPES = ["A", "AAAA", "NS", "SOA", "MX", "TXT", "CNAME", "DNAME", "DS", "SRV", "ANY", "TYPE65000"]
SOME_TYPES = ["A", "TXT", "NS", "DS", "CNAME", "ANY", "TYPE65000"]
CASE_TYPES = ["A", "MX", "NS", "DS", "CNAME", "TXT"]
DNSSEC_TYPES = ["RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY"]

# name -> (EDNS version or None, payload, DO, transport)
VARIANTS = OrderedDict(
    [
        ("udp", (None, None, False, "udp")),
        ("edns", (0, 1232, False, "udp")),
        ("do4096", (0, 4096, True, "udp")),
        ("edns512", (0, 512, False, "udp")),
        ("tcp", (0, 1232, False, "tcp")),
        ("tcp-noedns", (None, None, False, "tcp")),
        ("badvers", (1, 1232, False, "udp")),
        ("do1232", (0, 1232, True, "udp")),
        ("tcp-do", (0, 1232, True, "tcp")),
    ]
)
ALL_VARIANTS = ["udp", "edns", "do4096", "edns512", "tcp"]
SOME_VARIANTS = ["udp", "edns", "tcp"]


class Profile:
    """Which types and variants the battery gives each kind of name."""

    def __init__(self, all_types, all_variants, some_types, some_variants, hashed_types=(), hashed_variants=()):
        self.all_types, self.all_variants = all_types, all_variants
        self.some_types, self.some_variants = some_types, some_variants
        # NSEC3 owner names (hashed): only with --dnssec
        self.hashed_types, self.hashed_variants = hashed_types, hashed_variants


PLAIN = Profile(ALL_TYPES, ALL_VARIANTS, SOME_TYPES, SOME_VARIANTS)
# The signed zones: DO=0 and DO=1 over UDP (1232, so that big signed answers truncate) and TCP
# (the apex gets every type of ALL_TYPES and DNSSEC_TYPES in every variant of these and "udp")
DNSSEC = Profile(
    ["A", "NS", "SOA", "MX", "TXT", "CNAME", "DNAME", "DS", "ANY", "RRSIG", "NSEC", "NSEC3"],
    ["edns", "tcp", "do1232", "tcp-do"],
    ["A", "NS", "DS", "ANY", "NSEC"],
    ["edns", "tcp", "do1232", "tcp-do"],
    ["A", "NSEC3", "RRSIG", "ANY"],
    ["edns", "tcp", "do1232", "tcp-do"],
)


def is_do(q):
    return VARIANTS[q.variant][2]


def without_rrsig_ttls(s):
    """A response summary with the TTLs of its RRSIG records set to 0."""
    if "error" in s:
        return s
    out = dict(s)
    for sec in ("an", "ns", "ar"):
        out[sec] = {k[:3] + (0,) + k[4:] if k[1] == 46 else k for k in s[sec]}
    return out


def differs_only_in_rrsig_ttls(q, res, ns_info):
    """nsxdp's response matches Knot's or NSD's once RRSIG TTLs are ignored."""
    got = without_rrsig_ttls(res["nsxdp"])
    for ref in ("knot", "nsd"):
        tcp = res.get(ref + "+tcp")
        if not compare(without_rrsig_ttls(res[ref]), got, q, ns_info, tcp and without_rrsig_ttls(tcp)):
            return True
    return False


def answered_as_data(q, res, ns_info):
    """nsxdp answers NOERROR where Knot and NSD answer NXDOMAIN."""
    return res["nsxdp"].get("rcode") == "NOERROR" and all(res[r].get("rcode") == "NXDOMAIN" for r in ("knot", "nsd"))


# --dnssec: DO=0 queries nsxdp is known to answer unlike Knot and NSD until issue #12's
# zone-model and answer work lands: (answer kind or None, regex on the query text or
# None, test on (query, responses, ns_info) or None, why). Reported with their counts,
# asserted only with --assert-dnssec; remove an entry when its fix lands.
# DO=0 differences known and not asserted yet (kind or None, regex on the query or None,
# test or None, why). Empty: every DO=0 answer is asserted.
PENDING_DO0 = []


def pending_reason(q, kind, res, ns_info):
    for k, rx, test, why in PENDING_DO0:
        if (k is None or k == kind) and (rx is None or rx.search(q.text())) and \
                (test is None or test(q, res, ns_info)):
            return why
    return None


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

_used_ports = set()


def free_port():
    """A port free for both UDP and TCP on HOST (bind test)."""
    for _ in range(200):
        port = random.randint(20000, 60999)
        if port in _used_ports:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket(
                socket.AF_INET, socket.SOCK_STREAM
            ) as t:
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                u.bind((HOST, port))
                t.bind((HOST, port))
        except OSError:
            continue
        _used_ports.add(port)
        return port
    raise HarnessError("no free port found")


class Server:
    def __init__(self, name, argv, port, workdir):
        self.name = name
        self.argv = argv
        self.port = port
        self.workdir = workdir
        self.proc = None
        self.log_path = os.path.join(workdir, name + ".log")

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir
        )

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def wait_ready(self, apex, timeout=20.0):
        deadline = time.monotonic() + timeout
        q = dns.message.make_query(apex, "SOA", flags=0)
        wire = q.to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise HarnessError(
                        "%s exited with status %s before answering:\n%s"
                        % (self.name, self.proc.returncode, self.log_tail())
                    )
                try:
                    s.sendto(wire, (HOST, self.port))
                    s.settimeout(0.25)
                    data, _ = s.recvfrom(65535)
                    r = dns.message.from_wire(data)
                    if r.rcode() == dns.rcode.NOERROR and r.answer:
                        return
                except (OSError, dns.exception.DNSException):
                    pass
                time.sleep(0.1)
        raise HarnessError("%s did not answer SOA %s within %.0f s:\n%s" % (self.name, apex, timeout, self.log_tail()))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        self.log.close()


def zone_files():
    files = sorted(f for f in os.listdir(ZONE_DIR) if f.endswith(".zone"))
    return [(f[: -len(".zone")], os.path.join(ZONE_DIR, f)) for f in files]


def use_zone_dir(path):
    """Serve and query the zones in path instead of zones/ (--dnssec)."""
    global ZONE_DIR
    ZONE_DIR = path


# What every server answers for CH TXT id.server / version.bind (the same, so that the
# answers compare).
IDENTITY = "differential.test"
VERSION = "differential-1"


def make_knot(workdir, zones):
    d = os.path.join(workdir, "knot")
    os.makedirs(os.path.join(d, "db"))
    port = free_port()
    conf = [
        "server:",
        "    rundir: %s" % d,
        "    listen: %s@%d" % (HOST, port),
        "    udp-workers: 1",
        "    tcp-workers: 1",
        "    background-workers: 1",
        '    identity: "%s"' % IDENTITY,
        '    version: "%s"' % VERSION,
        "control:",
        "    listen: %s" % os.path.join(d, "knot.sock"),
        "database:",
        "    storage: %s" % os.path.join(d, "db"),
        "log:",
        "  - target: stderr",
        "    any: warning",
        "template:",
        "  - id: default",
        "    storage: %s" % ZONE_DIR,
        "    semantic-checks: off",
        "    zonefile-sync: -1",
        "    zonefile-load: whole",
        "    journal-content: none",
        "zone:",
    ]
    for apex, path in zones:
        conf += ["  - domain: %s" % apex, "    file: %s" % os.path.basename(path)]
    cfg = os.path.join(d, "knot.conf")
    with open(cfg, "w") as f:
        f.write("\n".join(conf) + "\n")
    return Server("knot", [find_tool("knotd"), "-c", cfg, "-s", os.path.join(d, "knot.sock")], port, d)


def make_nsd(workdir, zones):
    d = os.path.join(workdir, "nsd")
    os.makedirs(d)
    port = free_port()
    conf = [
        "server:",
        "    ip-address: %s@%d" % (HOST, port),
        "    do-ip6: no",
        '    username: ""',
        '    chroot: ""',
        "    zonesdir: %s" % ZONE_DIR,
        "    pidfile: %s" % os.path.join(d, "nsd.pid"),
        "    xfrdfile: %s" % os.path.join(d, "xfrd.state"),
        "    xfrdir: %s" % d,
        "    zonelistfile: %s" % os.path.join(d, "zone.list"),
        '    database: ""',
        "    logfile: %s" % os.path.join(d, "nsd-file.log"),
        "    server-count: 1",
        "    rrl-ratelimit: 0",
        '    identity: "%s"' % IDENTITY,
        '    version: "%s"' % VERSION,
        "    verbosity: 1",
        "remote-control:",
        "    control-enable: no",
    ]
    for apex, path in zones:
        conf += ["zone:", "    name: %s" % apex, "    zonefile: %s" % os.path.basename(path)]
    cfg = os.path.join(d, "nsd.conf")
    with open(cfg, "w") as f:
        f.write("\n".join(conf) + "\n")
    return Server("nsd", [find_tool("nsd"), "-d", "-c", cfg], port, d)


def make_nsxdp(workdir, zones, binary):
    d = os.path.join(workdir, "nsxdp")
    os.makedirs(d)
    port = free_port()
    argv = [binary, "serve"]
    for _, path in zones:
        argv += ["--zone", path]
    argv += ["--listen", "%s:%d" % (HOST, port), "--cores", "1", "--data-dir", d]
    # What it tells about itself (CH TXT), as the peers are told; the zones come by flag.
    conf = os.path.join(d, "nsxdp.toml")
    with open(conf, "w") as f:
        f.write('[server]\nidentity = "%s"\nversion = "%s"\n' % (IDENTITY, VERSION))
    argv += ["--config", conf, "--control", os.path.join(d, "ctl.sock")]
    return Server("nsxdp", argv, port, d)


# ---------------------------------------------------------------------------
# The battery
# ---------------------------------------------------------------------------


class Query:
    __slots__ = ("qname", "qtype", "qclass", "variant", "group", "rd")

    def __init__(self, qname, qtype, variant, group, qclass="IN", rd=False):
        self.qname = qname
        self.qtype = qtype
        self.qclass = qclass
        self.variant = variant
        self.group = group
        self.rd = rd

    def key(self):
        return (self.qname.to_wire(), self.qtype, self.qclass, self.variant, self.rd)

    def text(self):
        return "%s %s %s %s%s" % (
            self.qname.to_text(),
            self.qclass,
            self.qtype,
            self.variant,
            " +rd" if self.rd else "",
        )

    def wire(self, qid):
        ver, payload, do, _ = VARIANTS[self.variant]
        m = dns.message.make_query(
            self.qname,
            dns.rdatatype.from_text(self.qtype),
            dns.rdataclass.from_text(self.qclass),
            use_edns=ver if ver is not None else False,
            want_dnssec=do,
            payload=payload,
            id=qid,
            flags=dns.flags.RD if self.rd else 0,
        )
        return m.to_wire()


def wire_len(name):
    return len(name.to_wire())


def prefix_of_len(n):
    """Relative labels whose wire length (without the root) is exactly n (n >= 2)."""
    labels = []
    while n > 0:
        if n <= 64:
            size = n
        elif n - 64 >= 2:
            size = 64
        else:
            size = n - 2  # leave 2 for a one-octet label
        labels.append(b"p" * (size - 1))
        n -= size
    return labels


def mixed_case(name):
    out = []
    flip = True
    for label in name.labels:
        b = bytearray(label)
        for i, c in enumerate(b):
            if 97 <= c <= 122 or 65 <= c <= 90:
                if flip:
                    b[i] = c ^ 0x20
                flip = not flip
        out.append(bytes(b))
    return dns.name.Name(out)


def try_name(labels_prefix, base):
    try:
        return dns.name.Name(list(labels_prefix) + list(base.labels))
    except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel):
        return None


def load_zones(zones):
    out = OrderedDict()
    for apex, path in zones:
        z = dns.zone.from_file(path, origin=apex + ".", relativize=False)
        out[dns.name.from_text(apex + ".")] = z
    return out


def group_of(name, zones):
    """The label right below the apex of the zone holding name (the
    behaviour the zone files group there), or 'apex' / 'unserved'."""
    best = None
    for apex in zones:
        if name.is_subdomain(apex) and (best is None or len(apex) > len(best)):
            best = apex
    if best is None:
        return "unserved"
    rel = name.relativize(best)
    zone_label = best.labels[0].decode("ascii", "replace")
    if rel == dns.name.empty:
        return zone_label + ":apex"
    return zone_label + ":" + dns.name.Name([rel.labels[-1]]).to_text()


def nsec3_owners(z):
    """The NSEC3 owner names (hashed names) of a zone."""
    return {o for o, node in z.nodes.items() if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3) is not None}


def build_battery(zones, limit=None, profile=PLAIN):
    full = OrderedDict()  # names given every type and every variant
    some = OrderedDict()  # names given some types and some variants
    hashed = OrderedDict()  # NSEC3 owner names and look-alikes (profile.hashed_*)

    def add(d, n):
        if n is not None and n not in full:
            d.setdefault(n, None)

    for apex, z in zones.items():
        skip = set()
        if profile.hashed_types:
            skip = nsec3_owners(z)
            for owner in sorted(skip):
                add(hashed, owner)
                # a name that looks hashed but is no NSEC3 owner (its last character changed)
                label = owner.labels[0]
                add(hashed, try_name([label[:-1] + (b"0" if label[-1:] != b"0" else b"1")], owner.parent()))
        for owner in z.nodes:
            if owner in skip:
                continue
            add(full, owner)
            add(some, try_name([b"x"], owner))
            add(some, try_name([b"a", b"b"], owner))
            if owner != apex:
                add(some, try_name([b"zz-nonexistent"], owner.parent()))
            # ancestors up to and including the zone's parent
            n = owner
            while n != apex and len(n) > 1:
                n = n.parent()
                add(full, n)
                add(some, try_name([b"*"], n))
            if owner.is_wild():
                base = owner.parent()
                add(full, try_name([b"expanded"], base))
                add(full, try_name([b"a", b"b"], base))
                add(some, try_name([b"x", b"sub", b"*"], base))
            node = z.nodes[owner]
            dn = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.DNAME)
            if dn is not None:
                target = dn[0].target
                # every name below the DNAME target that exists in a served zone
                for z2 in zones.values():
                    for o2 in z2.nodes:
                        if o2 != target and o2.is_subdomain(target):
                            add(full, try_name(o2.relativize(target).labels, owner))
                add(full, try_name([b"nothere"], owner))
                # substitution results of exactly 255 and 256 octets, and a much too long one
                for total in (255, 256):
                    p = total - wire_len(target)
                    if p >= 2 and p + wire_len(owner) <= 255:
                        add(full, try_name(prefix_of_len(p), owner))
                p = 255 - wire_len(owner)
                add(some, try_name(prefix_of_len(p), owner) if p >= 2 else None)
        add(full, apex.parent())
    for text in ["www.example.net.", "example.com.", "nonexistent.test.", ".", "diff.test.example.", "xdiff.test."]:
        add(some, dns.name.from_text(text))

    battery = []
    for names, types, variants in (
        (full, profile.all_types, profile.all_variants),
        (some, profile.some_types, profile.some_variants),
        (hashed, profile.hashed_types, profile.hashed_variants),
    ):
        for n in names:
            g = group_of(n, zones) if names is not hashed else n.labels[1].decode() + ":(nsec3 owner)"
            for t in types:
                for v in variants:
                    battery.append(Query(n, t, v, g))
    if profile.hashed_types:
        for apex in zones:
            for t in ALL_TYPES + DNSSEC_TYPES:
                for v in ["udp"] + profile.all_variants:
                    battery.append(Query(apex, t, v, group_of(apex, zones)))
    # mixed case: every owner, a few types, with RD set
    for apex, z in zones.items():
        for owner in z.nodes:
            if owner in hashed:
                continue
            m = mixed_case(owner)
            if m.to_wire() == owner.to_wire():
                m = mixed_case(try_name([b"Xy"], owner)) if try_name([b"Xy"], owner) else None
            if m is None:
                continue
            g = group_of(owner, zones)
            for t in CASE_TYPES:
                for v in ("edns", "udp"):
                    battery.append(Query(m, t, v, g, rd=True))
    # big answers over TCP without EDNS, and the EDNS/class corner cases
    for apex, z in zones.items():
        for owner in z.nodes:
            if len(z.nodes[owner].rdatasets) and any(len(rs) >= 5 for rs in z.nodes[owner].rdatasets):
                for t in ("A", "TXT", "NS", "ANY"):
                    battery.append(Query(owner, t, "tcp-noedns", group_of(owner, zones)))
        www = dns.name.from_text("www", apex)
        for n in (apex, www):
            g = group_of(n, zones)
            for t in ("SOA", "A", "TXT"):
                battery.append(Query(n, t, "badvers", g))
                for c in ("CH", "ANY", "HS", "CLASS42"):
                    for v in ("udp", "edns"):
                        battery.append(Query(n, t, v, g, qclass=c))
    # What the servers tell about themselves (all three configured alike).
    for n in ("version.bind.", "version.server.", "id.server.", "hostname.bind.", "authors.bind."):
        for t in ("TXT", "ANY", "A"):
            for v in ("udp", "edns", "tcp"):
                battery.append(Query(dns.name.from_text(n), t, v, "unserved", qclass="CH"))

    seen = set()
    out = []
    for q in battery:
        k = q.key()
        if k not in seen:
            seen.add(k)
            out.append(q)
    if limit:
        random.Random(1).shuffle(out)
        out = out[:limit]
    return out


# ---------------------------------------------------------------------------
# Answer kinds (--dnssec): RFC 4035 3.1 and RFC 5155 7.2, read off the zone files
# ---------------------------------------------------------------------------

# In the order the report lists them.
KINDS = [
    "positive", "nodata", "ent-nodata", "nxdomain", "wildcard", "wildcard-nodata", "wildcard-cname",
    "cname", "dname", "referral-secure", "referral-insecure", "referral-optout",
    "ds-secure", "ds-insecure", "ds-optout", "nsec3-owner",
    "type-rrsig", "type-nsec", "type-nsec3", "type-nsec3param", "type-dnskey", "type-any", "other",
]


class ZoneFacts:
    """What the answer kinds need to know of one zone."""

    def __init__(self, apex, z):
        self.apex = apex
        self.hashed = nsec3_owners(z)
        self.names = {n for n in z.nodes if n not in self.hashed}
        self.optout = any(rd.flags & 1 for o in self.hashed for rd in z.nodes[o].get_rdataset(1, 50))
        self.z = z

    def has(self, name, rdtype):
        node = self.z.nodes.get(name)
        return node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)) is not None

    def exists(self, name):
        return name in self.names or any(n.is_subdomain(name) for n in self.names)


def zone_facts(zones):
    return OrderedDict((apex, ZoneFacts(apex, z)) for apex, z in zones.items())


def answer_kind(q, facts):
    """The kind of answer (KINDS) q gets from a correct server, from the zone data alone."""
    best = None
    for apex in facts:
        if q.qname.is_subdomain(apex) and (best is None or len(apex) > len(best)):
            best = apex
    if best is None or q.qclass != "IN":
        return "other"
    f = facts[best]
    name, qtype = q.qname.canonicalize(), q.qtype
    if name == best and qtype == "DS":
        # answered from the parent side of the cut when the parent is served too
        for apex, pf in facts.items():
            if apex != best and name.is_subdomain(apex) and pf.has(name, "NS"):
                return "ds-secure" if pf.has(name, "DS") else "ds-insecure"
    # a zone cut or a DNAME above (or at) the name decides first
    labels = name.relativize(best).labels
    for i in range(len(labels) - 1, -1, -1):
        n = dns.name.Name(labels[i:]).derelativize(best)
        if f.has(n, "NS"):
            secure = "secure" if f.has(n, "DS") else "optout" if f.optout else "insecure"
            return ("ds-" if n == name and qtype == "DS" else "referral-") + secure
        if n != name and f.has(n, "DNAME"):
            return "dname"
    if name in f.hashed:
        return "nsec3-owner"
    if qtype in DNSSEC_TYPES or qtype == "ANY":
        return "type-" + qtype.lower()
    if name in f.names:
        if f.has(name, qtype):
            return "positive"
        return "cname" if f.has(name, "CNAME") else "nodata"
    if f.exists(name):
        return "ent-nodata"
    # closest encloser, then its wildcard (RFC 4592)
    ce = name.parent()
    while ce != best and not f.exists(ce):
        ce = ce.parent()
    wild = dns.name.Name([b"*"] + list(ce.labels))
    if wild in f.names:
        if f.has(wild, qtype):
            return "wildcard"
        return "wildcard-cname" if f.has(wild, "CNAME") else "wildcard-nodata"
    return "nxdomain"


# ---------------------------------------------------------------------------
# Validation (--delv): delv with the zones' KSKs as trust anchors
# ---------------------------------------------------------------------------

# Kinds delv cannot ask for: a validator follows no referral to a server that is
# not the child's (the referral's proofs are the ones a DS query gets: ds-*), and
# delv does not answer type RRSIG (it waits for a fetch that never ends).
NO_DELV = {"referral-secure", "referral-insecure", "referral-optout", "type-rrsig", "other"}


# The trust anchor: the parent of the three signed zones, so that chains from one
# into another validate and each zone's DS is checked (delv takes one anchor, +root).
TRUST_ANCHOR = "signed.test."


def write_trust_anchors(path):
    """delv's -a file: a static-key for TRUST_ANCHOR's KSK (flags 257) from dnssec/keys/."""
    lines = ["trust-anchors {"]
    key_dir = os.path.join(DNSSEC_DIR, "keys")
    for f in sorted(os.listdir(key_dir)):
        if not f.endswith(".key"):
            continue
        with open(os.path.join(key_dir, f)) as fh:
            for line in fh:
                w = line.split()
                if line.startswith(";") or len(w) < 8 or w[0] != TRUST_ANCHOR or w[3:5] != ["DNSKEY", "257"]:
                    continue
                lines.append('  %s static-key %s %s %s "%s";' % (w[0], w[4], w[5], w[6], "".join(w[7:])))
    lines.append("};")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if len(lines) < 3:
        raise HarnessError("no KSK found in %s" % key_dir)


def delv_verdict(text):
    """delv's verdict in one line: its 'resolution failed' reasons and '; ...' verdict lines."""
    parts = []
    for line in text.splitlines():
        if line.startswith(";; resolution failed: "):
            parts.append(line[len(";; resolution failed: "):].strip())
        elif line.startswith("; ") and ("validat" in line or "unsigned" in line or line.startswith("; negative")):
            v = line[2:].strip()
            if v not in parts:
                parts.append(v)
    return " / ".join(parts) or "no verdict"


# delv's "resolution failed" reasons that say nothing against the answers: the name or
# type does not exist (proven), or a chain leaves the served zones ("failure": delv asks
# the same server for the target, which refers it elsewhere or refuses it).
BENIGN_FAILURES = ("ncache nxdomain", "ncache nxrrset", "failure")


def verdict_class(v):
    """'secure' (every part validated, or proven not to exist), 'insecure' (some part
    proven unsigned: below an opt-out span) or 'bogus' (a part failed validation, or
    delv has no verdict)."""
    parts = v.split(" / ")
    verdicts = [p for p in parts if p.endswith("fully validated") or p.endswith("unsigned answer")]
    others = [p for p in parts if p not in verdicts]
    if not verdicts or any(p not in BENIGN_FAILURES for p in others):
        return "bogus"
    return "secure" if all(p.endswith("fully validated") for p in verdicts) else "insecure"


def expected_classes(apex, facts):
    """The verdicts a correct server may get: 'secure' everywhere, and in a zone with
    opt-out also 'insecure' (an opt-out NSEC3 covering the next closer name makes an
    answer unsigned, RFC 5155 9.2)."""
    return ("secure", "insecure") if facts[apex].optout else ("secure",)


def delv_queries(battery, facts, per_kind):
    """Up to per_kind (name, type) pairs of every answer kind in every zone, from
    the battery's DO=1 UDP queries, a fixed sample."""
    pools = defaultdict(list)
    seen = set()
    for q in battery:
        if q.variant != "do1232" or q.qclass != "IN" or q.rd:
            continue
        kind = answer_kind(q, facts)
        key = (q.qname, q.qtype)
        # (names over 200 octets: the DNAME substitutions that overflow; delv waits out its timeout)
        # (the anchor's own DS lives above it: no verdict possible)
        if kind in NO_DELV or q.qtype == "RRSIG" or len(q.qname.to_wire()) > 200 or key in seen:
            continue
        if q.qtype == "DS" and q.qname == dns.name.from_text(TRUST_ANCHOR):
            continue
        seen.add(key)
        apex = max((a for a in facts if q.qname.is_subdomain(a)), key=len)
        pools[(apex, kind)].append(q)
    out = []
    rng = random.Random(7)
    for (apex, kind), qs in sorted(pools.items(), key=lambda kv: (kv[0][0], KINDS.index(kv[0][1]))):
        rng.shuffle(qs)
        out += [(apex, kind, q) for q in qs[:per_kind]]
    return out


def delv_once(server, anchors, q, timeout=20):
    argv = [find_tool("delv"), "@" + HOST, "-p", str(server.port), "-a", anchors, "+root=" + TRUST_ANCHOR,
            "+nomultiline", q.qname.to_text(), q.qtype]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "delv timed out"
    return delv_verdict(p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace"))


def run_delv(servers, battery, facts, args, workdir):
    """The validation step: delv against every server for a sample of every answer
    kind. Knot and NSD must get the expected verdict (this proves the signed zones
    and the harness); nsxdp must get Knot's or NSD's verdict (asserted only with
    --assert-dnssec). Returns the report (jsonable) with 'failed' set when the
    exit status must be 1."""
    anchors = os.path.join(workdir, "anchors.conf")
    write_trust_anchors(anchors)
    todo = delv_queries(battery, facts, args.delv_per_kind)
    jobs = [(s, a, k, q) for (a, k, q) in todo for s in servers]
    with ThreadPoolExecutor(max_workers=max(1, min(args.workers, 4))) as ex:
        verdicts = list(ex.map(lambda j: delv_once(j[0], anchors, j[3]), jobs))
    by_query = defaultdict(dict)
    for (s, a, k, q), v in zip(jobs, verdicts):
        by_query[(a, k, q.qname, q.qtype)][s.name] = v
    names = [s.name for s in servers]
    per_kind = defaultdict(lambda: defaultdict(lambda: [0, 0]))  # kind -> server -> [passed, total]
    corpus_failures, nsxdp_failures, disagreements = [], [], []
    for (apex, kind, qname, qtype), v in by_query.items():
        expected = expected_classes(apex, facts)
        rec = {"query": "%s %s" % (qname.to_text(), qtype), "kind": kind, "expected": "/".join(expected),
               "verdicts": v}
        good = []
        for name in ("knot", "nsd"):
            ok = verdict_class(v[name]) in expected
            per_kind[kind][name][0] += ok
            per_kind[kind][name][1] += 1
            good.append(ok)
        if not any(good):
            corpus_failures.append(rec)
        if v["knot"] != v["nsd"]:
            disagreements.append(rec)
        if "nsxdp" in v:
            ok = v["nsxdp"] in (v["knot"], v["nsd"])
            per_kind[kind]["nsxdp"][0] += ok
            per_kind[kind]["nsxdp"][1] += 1
            if not ok:
                nsxdp_failures.append(rec)
    print("differential: delv: %d queries to each of %s; passed/total per answer kind:" % (len(todo), ", ".join(names)))
    print("  %-20s %s" % ("kind", " ".join("%11s" % n for n in names)))
    for kind in KINDS:
        if kind in per_kind:
            print("  %-20s %s" % (kind, " ".join("%5d/%-5d" % tuple(per_kind[kind][n]) for n in names)))
    for title, recs in (("neither knot nor nsd got the expected verdict (the corpus or the harness is wrong)",
                         corpus_failures),
                        ("knot and nsd verdicts differ", disagreements),
                        ("nsxdp verdicts matching neither knot nor nsd%s" % ("" if args.assert_dnssec else
                                                                            " (not asserted)"), nsxdp_failures)):
        if recs:
            print("differential: delv: %s: %d" % (title, len(recs)))
            for rec in recs[: args.show]:
                print("    %-45s %-16s expected %-8s %s" % (shorten(rec["query"]), rec["kind"], rec["expected"],
                                                          "; ".join("%s: %s" % kv for kv in rec["verdicts"].items())))
    failed = bool(corpus_failures) or (args.assert_dnssec and bool(nsxdp_failures))
    return {"queries": len(todo), "per_kind": {k: dict(v) for k, v in per_kind.items()},
            "corpus_failures": corpus_failures, "knot_nsd_disagreements": disagreements,
            "nsxdp_failures": nsxdp_failures, "failed": failed}


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------

_tls = threading.local()


def _udp_sock(server):
    socks = getattr(_tls, "socks", None)
    if socks is None:
        socks = _tls.socks = {}
    s = socks.get(server.name)
    if s is None:
        s = socks[server.name] = socket.socket(getattr(server, "family", socket.AF_INET), socket.SOCK_DGRAM)
        s.connect((getattr(server, "host", HOST), server.port))
    return s


def udp_exchange(server, wire, timeout=1.5, tries=3):
    s = _udp_sock(server)
    for _ in range(tries):
        s.send(wire)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except socket.timeout:
                break
            except ConnectionRefusedError:
                return None
            if data[:2] == wire[:2]:
                return data
    return None


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d octets" % (len(buf), n))
        buf += chunk
    return buf


def tcp_exchange(server, wire, timeout=5.0):
    try:
        with socket.create_connection((getattr(server, "host", HOST), server.port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            (n,) = struct.unpack("!H", _recv_exact(s, 2))
            return _recv_exact(s, n)
    except (OSError, EOFError):
        return None


def read_name(buf, off):
    """(list of labels, offset after the name) of a possibly compressed name."""
    labels = []
    end = None
    hops = 0
    total = 1
    while True:
        n = buf[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | buf[off + 1]
            hops += 1
            if hops > 126:
                raise ValueError("compression loop")
            continue
        if n & 0xC0:
            raise ValueError("bad label type 0x%02x" % n)
        off += 1
        if n == 0:
            break
        label = buf[off : off + n]
        if len(label) != n:
            raise ValueError("name runs past the end")
        labels.append(label)
        total += n + 1
        off += n
    if total > 255:
        raise ValueError("name longer than 255 octets")
    return labels, (end if end is not None else off)


def canon_name(labels):
    return b"".join(bytes([len(l)]) + l.lower() for l in labels) + b"\0"


# rdata layouts with domain names in them (RFC 4034 6.2 canonical form lowercases them):
# type -> (octets before the first name, number of names, octets after)
# RRSIG's signer name and NSEC's next name are never compressed, but may differ in case.
NAME_RDATA = {2: (0, 1), 5: (0, 1), 12: (0, 1), 39: (0, 1), 15: (2, 1), 33: (6, 1), 6: (0, 2), 46: (18, 1), 47: (0, 1)}


def canon_rdata(buf, off, rdlen, rtype):
    layout = NAME_RDATA.get(rtype)
    if layout is None:
        return bytes(buf[off : off + rdlen])
    pre, names = layout
    out = bytes(buf[off : off + pre])
    p = off + pre
    for _ in range(names):
        labels, p = read_name(buf, p)
        out += canon_name(labels)
    out += bytes(buf[p : off + rdlen])
    if p > off + rdlen:
        raise ValueError("rdata of type %d overruns its length" % rtype)
    return out


def question_bytes(wire):
    """The raw question section of a message (first question only), or None."""
    if len(wire) < 12 or struct.unpack("!H", wire[4:6])[0] == 0:
        return None
    try:
        _, off = read_name(wire, 12)
    except (ValueError, IndexError):
        return None
    return bytes(wire[12 : off + 4])


def parse_response(buf):
    _, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", buf, 0)
    off = 12
    for _ in range(qd):
        _, off = read_name(buf, off)
        off += 4
    secs = []
    opt = None
    for count in (an, ns, ar):
        sec = set()
        for _ in range(count):
            labels, off = read_name(buf, off)
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", buf, off)
            off += 10
            if off + rdlen > len(buf):
                raise ValueError("rdata runs past the end")
            if rtype == 41:
                opt = (rclass, ttl)
            else:
                sec.add((canon_name(labels), rtype, rclass, ttl, canon_rdata(buf, off, rdlen, rtype)))
            off += rdlen
        secs.append(sec)
    if off != len(buf):
        raise ValueError("%d octets after the last record" % (len(buf) - off))
    return flags, qd, secs, opt


def summarize(data, query_wire):
    """A comparable summary of a response (dict), or a dict with 'error'."""
    if data is None:
        return {"error": "timeout"}
    try:
        flags, qd, (an, ns, ar), opt = parse_response(data)
    except (ValueError, IndexError, struct.error) as e:
        return {"error": "unparseable: %s" % e, "hex": data.hex()}
    rcode = flags & 0xF
    if opt is not None:
        rcode |= (opt[1] >> 24) << 4
    qd_raw = question_bytes(data) if qd else None
    return {
        "rcode": dns.rcode.to_text(rcode),
        "aa": bool(flags & dns.flags.AA),
        "tc": bool(flags & dns.flags.TC),
        "qdcount": qd,
        "qecho": qd_raw == question_bytes(query_wire) if qd_raw is not None else None,
        "size": len(data),
        "an": an,
        "ns": ns,
        "ar": ar,
        "opt": None if opt is None else {"payload": opt[0], "do": bool(opt[1] & 0x8000), "version": (opt[1] >> 16) & 0xFF},
    }


def rr_text(k):
    owner, rtype, rclass, ttl, rdata = k
    labels, _ = read_name(owner, 0)
    try:
        rd = dns.rdata.from_wire(rclass, rtype, rdata, 0, len(rdata)).to_text()
    except Exception:
        rd = "\\# %d %s" % (len(rdata), rdata.hex())
    return "%s %d %s %s %s" % (
        dns.name.Name(labels + [b""]).to_text(),
        ttl,
        dns.rdataclass.to_text(rclass),
        dns.rdatatype.to_text(rtype),
        rd,
    )


def jsonable(s):
    """The summary with its record sets as sorted lists of text."""
    if s is None or "error" in s:
        return s
    out = dict(s)
    for sec in ("an", "ns", "ar"):
        out[sec] = sorted(rr_text(k) for k in s[sec])
    return out


def run_query(q, servers):
    qid = random.randint(0, 65535)
    wire = q.wire(qid)
    transport = VARIANTS[q.variant][3]
    out = {}
    for srv in servers:
        data = tcp_exchange(srv, wire) if transport == "tcp" else udp_exchange(srv, wire)
        out[srv.name] = summarize(data, wire)
    if transport == "udp":
        ok = [s for s in out.values() if "error" not in s]
        if any(s["tc"] for s in ok) and not all(s["tc"] for s in ok):
            # Some server fitted what another truncated (compression differs):
            # fetch the truncating servers' full answers over TCP to compare with.
            for srv in servers:
                if "error" not in out[srv.name] and out[srv.name]["tc"]:
                    out[srv.name + "+tcp"] = summarize(tcp_exchange(srv, wire), wire)
    return out


# ---------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------


def apex_ns_info(zones):
    """For every zone: (set of record keys of its apex NS RRset, set of the targets' owner keys)."""
    info = []
    for apex, z in zones.items():
        rs = z.get_rdataset(apex, "NS")
        if rs is None:
            continue
        owner = canon_name(apex.labels[:-1])
        keys = set()
        targets = set()
        for rd in rs:
            t = canon_name(rd.target.labels[:-1])
            keys.add((owner, 2, 1, rs.ttl, t))
            targets.add(t)
        info.append((keys, targets))
    return info


def covered(k):
    """The type an RRSIG record key covers (None for other records)."""
    return struct.unpack_from("!H", k[4])[0] if k[1] == 46 and len(k[4]) >= 2 else None


def sections_match(a, b, ns_info):
    """answer/authority/additional equal as sets, allowing one side to add
    the zone's apex NS RRset (and address records of its targets), each with
    its RRSIGs if the response has them."""
    if a["an"] != b["an"]:
        return False, "answer"
    if a["ns"] == b["ns"] and a["ar"] == b["ar"]:
        return True, None
    for keys, targets in ns_info:
        owner = next(iter(keys))[0]
        for x, y in ((a, b), (b, a)):
            if keys <= x["ns"] and not (keys & y["ns"]):
                extra_ns = keys | {k for k in x["ns"] if k[0] == owner and covered(k) == 2}
                if x["ns"] - extra_ns != y["ns"]:
                    continue
                extra = {
                    k for k in x["ar"] - y["ar"] if k[0] in targets and (k[1] in (1, 28) or covered(k) in (1, 28))
                }
                if x["ar"] - extra == y["ar"]:
                    return True, None
    return False, "authority" if a["ns"] != b["ns"] else "additional"


def udp_limit(q):
    """The largest UDP response a server may send to q (all three offer 1232)."""
    ver, payload, _, transport = VARIANTS[q.variant]
    if transport != "udp":
        return 65535
    if ver is None:
        return 512
    return max(512, min(payload, 1232))


def compare(ref, got, q, ns_info, ref_tcp=None):
    """List of differences between a reference response and another one.
    ref_tcp: the reference's answer to the same query over TCP, used when the
    reference truncated over UDP and the other response did not."""
    if "error" in ref or "error" in got:
        if ref.get("error") == got.get("error") == "timeout":
            return []
        return ["error"]
    if ref["tc"] and not got["tc"] and ref_tcp is not None and "error" not in ref_tcp and not ref_tcp["tc"]:
        return compare(ref_tcp, got, q, ns_info)
    diffs = []
    if got["size"] > udp_limit(q):
        diffs.append("size")
    for f in ("rcode", "aa", "tc", "qdcount"):
        if ref[f] != got[f]:
            diffs.append(f)
    if got["qecho"] is False:
        diffs.append("qecho")
    edns_query = VARIANTS[q.variant][0] is not None
    if got["opt"] != ref["opt"]:
        diffs.append("opt")
    elif edns_query != (got["opt"] is not None) and ref["rcode"] != "FORMERR":
        diffs.append("opt-presence")
    if not (ref["tc"] or got["tc"]):
        ok, where = sections_match(ref, got, ns_info)
        if not ok:
            diffs.append(where)
    return diffs


_RUN = re.compile(r"([a-z0-9-])\1{11,}")
_SIG = re.compile(r"( RRSIG \S+ \d+ \d+ \d+ )\d+ \d+ (\d+ \S+) [A-Za-z0-9+/= ]+$")


def shorten(text):
    """Long runs of one character counted; an RRSIG without its times and signature."""
    text = _SIG.sub(lambda m: m.group(1) + m.group(2) + " ...", text)
    return _RUN.sub(lambda m: "%s{%d}" % (m.group(1), len(m.group(0))), text)


def compact(s):
    """One response on a few lines (s: a jsonable summary)."""
    if s is None:
        return "-"
    if "error" in s:
        return s["error"]
    flags = " ".join(f for f in ("aa", "tc") if s[f])
    parts = ["%s%s%s qd=%d%s size=%d" % (
        s["rcode"], " " if flags else "", flags, s["qdcount"],
        "" if s["qecho"] in (True, None) else " QUESTION-NOT-ECHOED", s["size"])]
    if s["opt"] is not None:
        parts.append("OPT(%d%s%s)" % (s["opt"]["payload"], ",do" if s["opt"]["do"] else "",
                                      ",v%d" % s["opt"]["version"] if s["opt"]["version"] else ""))
    for sec in ("an", "ns", "ar"):
        if s[sec]:
            rrs = s[sec]
            shown = rrs if len(rrs) <= 6 else rrs[:5] + ["... (%d more)" % (len(rrs) - 5)]
            parts.append("%s: %s" % (sec.upper(), " | ".join(shorten(r) for r in shown)))
    return "\n          ".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def find_tool(name):
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=path)


def missing_prereqs(with_nsxdp, binary, with_delv=False):
    missing = []
    if with_delv and find_tool("delv") is None:
        missing.append("delv (bind9-dnsutils)")
    if dns is None:
        missing.append("python3-dnspython (import dns failed for %s)" % sys.executable)
    for tool in ("knotd", "nsd"):
        if find_tool(tool) is None:
            missing.append(tool)
    if with_nsxdp and not os.access(binary, os.X_OK):
        missing.append("nsxdp binary %s" % binary)
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nsxdp", help="path of the nsxdp binary; without it, compare Knot with NSD only")
    ap.add_argument("--json", default=None, help="write all failures (or disagreements) here")
    ap.add_argument("--limit", type=int, default=0, help="send only this many queries (a random sample)")
    ap.add_argument("--only", default=None, help="send only queries whose text matches this regex")
    ap.add_argument("--show", type=int, default=30, help="print this many failures in full")
    ap.add_argument("--verbose", action="store_true", help="print every query and its responses")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--time-limit", type=float, default=300.0, help="stop sending after this many seconds")
    ap.add_argument("--pair", nargs=2, metavar="HOST:PORT",
                    help="compare two running servers byte for byte (e.g. nsxdp's AF_XDP and kernel paths) "
                         "instead of starting knotd, nsd and nsxdp; [v6]:PORT for IPv6")
    ap.add_argument("--pair-tcp", action="store_true", help="with --pair: also the TCP variants")
    ap.add_argument("--dnssec", action="store_true",
                    help="the signed zones of dnssec/zones/ and their battery; DO=1 queries are reported per answer "
                         "kind but do not count unless --assert-dnssec")
    ap.add_argument("--assert-dnssec", action="store_true",
                    default=os.environ.get("NSXDP_ASSERT_DNSSEC", "") not in ("", "0"),
                    help="with --dnssec: nsxdp's DO=1 answers and delv verdicts count too "
                         "(default from the environment: NSXDP_ASSERT_DNSSEC=1)")
    ap.add_argument("--delv", action="store_true",
                    help="with --dnssec: validate a sample of every answer kind with delv against every server")
    ap.add_argument("--delv-per-kind", type=int, default=3, help="with --delv: queries per answer kind and zone")
    args = ap.parse_args()
    random.seed(args.seed)
    if args.dnssec:
        use_zone_dir(os.path.join(DNSSEC_DIR, "zones"))
    if args.pair:
        return main_pair(args)

    missing = missing_prereqs(args.nsxdp is not None, args.nsxdp or "", args.dnssec and args.delv)
    if missing:
        print("differential: missing prerequisite(s): " + ", ".join(missing))
        return EXIT_MISSING

    zfiles = zone_files()
    zones = load_zones(zfiles)
    ns_info = apex_ns_info(zones)
    battery = build_battery(zones, args.limit or None, DNSSEC if args.dnssec else PLAIN)
    facts = zone_facts(zones) if args.dnssec else None
    if args.only:
        rx = re.compile(args.only)
        battery = [q for q in battery if rx.search(q.text())]

    workdir = tempfile.mkdtemp(prefix="nsxdp-differential-")
    servers = []
    try:
        servers = [make_knot(workdir, zfiles), make_nsd(workdir, zfiles)]
        if args.nsxdp:
            servers.append(make_nsxdp(workdir, zfiles, os.path.abspath(args.nsxdp)))
        for s in servers:
            s.start()
        for s in servers:
            for apex in zones:
                s.wait_ready(apex)
        print("differential: %s; %d zones, %d queries" % (
            ", ".join("%s on %s:%d (pid %d)" % (s.name, HOST, s.port, s.proc.pid) for s in servers),
            len(zones), len(battery)))

        t0 = time.monotonic()
        results = [None] * len(battery)
        stopped = threading.Event()

        def work(i):
            if stopped.is_set() or time.monotonic() - t0 > args.time_limit:
                stopped.set()
                return
            results[i] = run_query(battery[i], servers)

        with ThreadPoolExecutor(max_workers=args.workers) as ex:
            list(ex.map(work, range(len(battery))))
        elapsed = time.monotonic() - t0
        for s in servers:
            if s.proc.poll() is not None:
                raise HarnessError("%s died during the run (status %s):\n%s" % (s.name, s.proc.returncode, s.log_tail()))
        sent = sum(1 for r in results if r is not None)
        if stopped.is_set():
            raise HarnessError("time limit of %.0f s reached after %d of %d queries" % (args.time_limit, sent, len(battery)))
        print("differential: sent %d queries to each server in %.1f s" % (sent, elapsed))
        delv = None
        if args.dnssec and args.delv:
            t0 = time.monotonic()
            delv = run_delv(servers, battery, facts, args, workdir)
            print("differential: delv took %.1f s" % (time.monotonic() - t0))
            for s in servers:
                if s.proc.poll() is not None:
                    raise HarnessError("%s died during the delv run (status %s):\n%s"
                                       % (s.name, s.proc.returncode, s.log_tail()))
        if args.nsxdp:
            return report_nsxdp(battery, results, ns_info, args, facts, delv)
        return report_knot_nsd(battery, results, ns_info, args, facts, delv)
    except HarnessError as e:
        print("differential: error: %s" % e)
        return EXIT_ERROR
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print("differential: kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


class Remote:
    """A server someone else runs, at HOST:PORT or [V6]:PORT."""

    def __init__(self, name, spec):
        self.name = name
        if spec.startswith("["):
            host, _, port = spec[1:].partition("]:")
            self.family = socket.AF_INET6
        else:
            host, _, port = spec.rpartition(":")
            self.family = socket.AF_INET
        if not host or not port.isdigit():
            raise HarnessError("bad address %r (HOST:PORT or [V6]:PORT)" % spec)
        self.host, self.port = host, int(port)

    def __str__(self):
        return ("[%s]:%d" if self.family == socket.AF_INET6 else "%s:%d") % (self.host, self.port)


def main_pair(args):
    """--pair A B: every query of the battery (UDP variants, and TCP ones with --pair-tcp)
    sent with the same ID to A and to B, whose responses must be identical byte for byte.
    Exit 0 if all are, 1 if not, 2 on a harness error, 3 if dnspython is missing."""
    if dns is None:
        print("differential: missing prerequisite(s): python3-dnspython (import dns failed for %s)" % sys.executable)
        return EXIT_MISSING
    try:
        a, b = Remote("a", args.pair[0]), Remote("b", args.pair[1])
    except HarnessError as e:
        print("differential: error: %s" % e)
        return EXIT_ERROR
    zones = load_zones(zone_files())
    battery = build_battery(zones, args.limit or None, DNSSEC if args.dnssec else PLAIN)
    if not args.pair_tcp:
        battery = [q for q in battery if VARIANTS[q.variant][3] == "udp"]
    if args.only:
        rx = re.compile(args.only)
        battery = [q for q in battery if rx.search(q.text())]
    t0 = time.monotonic()
    stopped = threading.Event()

    def work(q):
        if stopped.is_set() or time.monotonic() - t0 > args.time_limit:
            stopped.set()
            return None
        wire = q.wire(random.randint(0, 65535))
        ex = tcp_exchange if VARIANTS[q.variant][3] == "tcp" else udp_exchange
        return ex(a, wire), ex(b, wire)

    with ThreadPoolExecutor(max_workers=args.workers) as ex:
        results = list(ex.map(work, battery))
    elapsed = time.monotonic() - t0
    if stopped.is_set():
        print("differential: error: time limit of %.0f s reached" % args.time_limit)
        return EXIT_ERROR
    same = silent = 0
    diffs = []
    for q, (ra, rb) in zip(battery, results):
        if ra is not None and ra == rb:
            same += 1
        elif ra is None and rb is None:
            silent += 1
        else:
            diffs.append((q, ra, rb))
    print("differential: pair %s and %s: %d queries in %.1f s: %d identical, %d unanswered by both, %d differ"
          % (a, b, len(battery), elapsed, same, silent, len(diffs)))
    for q, ra, rb in diffs[: args.show]:
        print("  %s" % shorten(q.text()))
        for name, r in (("a", ra), ("b", rb)):
            print("    %s %s" % (name, "no response" if r is None else r.hex()))
    write_json(args.json, {"queries": len(battery), "identical": same, "silent": silent,
                           "differ": [{"query": q.text(), "a": ra and ra.hex(), "b": rb and rb.hex()}
                                      for q, ra, rb in diffs]})
    return EXIT_FAIL if diffs or silent else 0


def record(q, res, diffs):
    return {
        "query": q.text(),
        "group": q.group,
        "diffs": diffs,
        "responses": {name: jsonable(s) for name, s in res.items()},
    }


def print_record(i, rec):
    print("  #%d %s   [%s]" % (i, shorten(rec["query"]), "; ".join("%s: %s" % (k, ",".join(v)) for k, v in rec["diffs"].items())))
    for name, s in rec["responses"].items():
        print("    %-5s %s" % (name, compact(s)))


def print_groups(records):
    groups = defaultdict(list)
    for rec in records:
        kinds = sorted({d for v in rec["diffs"].values() for d in v})
        groups[(rec["group"], ",".join(kinds))].append(rec)
    print("differential: by group (label below the apex) and kind of difference:")
    for (g, kinds), recs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print("  %5d  %-18s %-24s e.g. %s" % (len(recs), g, kinds, shorten(recs[0]["query"])))


def write_json(path, obj):
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        print("differential: wrote %s" % path)


def print_all(battery, results):
    for i, (q, res) in enumerate(zip(battery, results)):
        print_record(i, record(q, res, {}))


def report_nsxdp(battery, results, ns_info, args, facts=None, delv=None):
    """facts (--dnssec): the zones' ZoneFacts; DO=1 queries then count only with
    --assert-dnssec, and pass counts are printed per answer kind. delv: the
    validation step's report (run_delv), or None."""
    n = len(battery)
    if args.verbose:
        print_all(battery, results)
    m_knot = m_nsd = m_either = 0
    failures = []  # these make the exit status 1
    reported = []  # DO=1 failures while DNSSEC is not asserted
    # kind -> [passed, total] for each of COLUMNS
    per_kind = defaultdict(lambda: [[0, 0] for _ in COLUMNS])
    for q, res in zip(battery, results):
        dk = compare(res["knot"], res["nsxdp"], q, ns_info, res.get("knot+tcp"))
        dn = compare(res["nsd"], res["nsxdp"], q, ns_info, res.get("nsd+tcp"))
        m_knot += not dk
        m_nsd += not dn
        ok = not dk or not dn
        m_either += ok
        rec = None if ok else record(q, res, {"vs-knot": dk, "vs-nsd": dn})
        if facts is not None:
            kind = answer_kind(q, facts)
            ref = res["knot"]
            counts = [per_kind[kind]]
            if "error" not in ref and ref["tc"]:
                counts.append(per_kind["(reference has TC)"])
            col = COLUMNS.index((int(is_do(q)), VARIANTS[q.variant][3]))
            for c in counts:
                c[col][0] += ok
                c[col][1] += 1
            if rec is not None:
                rec["kind"] = kind
                why = None if is_do(q) else pending_reason(q, kind, res, ns_info)
                if why is not None:
                    rec["pending"] = why
                if (is_do(q) or why is not None) and not args.assert_dnssec:
                    reported.append(rec)
                    continue
        if rec is not None:
            failures.append(rec)
    print("differential: queries %d, matched knot %d, matched nsd %d, matched either %d, failed %d%s"
          % (n, m_knot, m_nsd, m_either, len(failures) + len(reported),
             " (%d of them DO=1 or pending, not asserted)" % len(reported) if reported else ""))
    out = {"queries": n, "matched_knot": m_knot, "matched_nsd": m_nsd, "matched_either": m_either,
           "failures": failures}
    if facts is not None:
        print_kinds(per_kind, args.assert_dnssec)
        out["kinds"] = {k: {"DO=%d %s" % c: v[i] for i, c in enumerate(COLUMNS)} for k, v in per_kind.items()}
        out["not_asserted"] = reported
        pending = defaultdict(int)
        for rec in reported:
            if "pending" in rec:
                pending[rec["pending"]] += 1
        for why, count in pending.items():
            print("differential: %5d DO=0 failures pending (not asserted): %s" % (count, why))
        if reported:
            print("differential: %d DO=1 failures (not asserted; --assert-dnssec or NSXDP_ASSERT_DNSSEC=1 asserts "
                  "them, every one is in the JSON file)" % (len(reported) - sum(pending.values())))
    if failures:
        print_groups(failures)
        print("differential: first %d failures:" % min(args.show, len(failures)))
        for i, rec in enumerate(failures[: args.show]):
            print_record(i, rec)
    status = EXIT_FAIL if failures else 0
    if delv is not None:
        out["delv"] = delv
        if delv["failed"]:
            status = EXIT_FAIL
    write_json(args.json, out)
    return status


# the columns of the per-kind counts: (DO, transport)
COLUMNS = [(0, "udp"), (0, "tcp"), (1, "udp"), (1, "tcp")]


def print_kinds(per_kind, asserted):
    print("differential: passed/total per answer kind (DO=1 %s):" % ("asserted" if asserted else "not asserted yet"))
    print("  %-20s %s" % ("kind", " ".join("%13s" % ("DO=%d %s" % c) for c in COLUMNS)))
    for kind in KINDS + ["(reference has TC)"]:
        if kind in per_kind:
            print("  %-20s %s" % (kind, " ".join("%6d/%-6d" % tuple(c) for c in per_kind[kind])))


def report_knot_nsd(battery, results, ns_info, args, facts=None, delv=None):
    """Where Knot and NSD disagree (exit status 0), and with --delv whether their
    verdicts are as expected (exit status 1 if not)."""
    n = len(battery)
    if args.verbose:
        print_all(battery, results)
    disagree = []
    for q, res in zip(battery, results):
        if res["nsd"].get("tc") and not res["knot"].get("tc"):
            d = compare(res["nsd"], res["knot"], q, ns_info, res.get("nsd+tcp"))
        else:
            d = compare(res["knot"], res["nsd"], q, ns_info, res.get("knot+tcp"))
        if d:
            rec = record(q, res, {"knot-vs-nsd": d})
            if facts is not None:
                rec["group"] = "%s %s DO=%d" % (rec["group"], answer_kind(q, facts), is_do(q))
            disagree.append(rec)
    print("differential: queries %d, knot and nsd agree on %d, disagree on %d" % (n, n - len(disagree), len(disagree)))
    if disagree:
        print_groups(disagree)
        print("differential: first %d disagreements:" % min(args.show, len(disagree)))
        for i, rec in enumerate(disagree[: args.show]):
            print_record(i, rec)
    out = {"queries": n, "agree": n - len(disagree), "disagreements": disagree}
    if delv is not None:
        out["delv"] = delv
    write_json(args.json, out)
    return EXIT_FAIL if delv is not None and delv["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
