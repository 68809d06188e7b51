#!/usr/bin/env python3
"""Deterministic synthetic zone generator for the nsxdp zone-load benchmark.

Usage: gen-zone.py [--names N] [--seed S] [--dnssec] [ORIGIN] [OUT]

Writes a master file (RFC 1035 syntax) with N generated owner names below
ORIGIN (default bench.test), about 2.5 RRs per name on average:

  * apex: SOA, two in-zone NS (ns1/ns2) with A glue;
  * names h<i>.grp<g> (and, for about a quarter of them, h<i>.s<k>.grp<g>),
    so grp<g> and s<k>.grp<g> are empty non-terminals;
  * per name one of:
      - delegation (~2%): two NS below the child, with A and AAAA glue;
      - CNAME (~8%) to another ordinary generated name (alone at its owner);
      - ordinary data: A / AAAA / MX (in-zone target with an address) / TXT.

With --dnssec (input for the signed-zone benchmarks, to be signed with dnssec-signzone) the
zone also has a wildcard *.wild (A and TXT; wild is an empty non-terminal) and a DS RRset at
about half of the delegations (secure delegations; the others stay insecure). Without it
the output is the same as before the option existed, byte for byte after the first line.

The output depends only on (ORIGIN, N, seed, --dnssec, this file).  The first line is
a comment carrying the sha256 of this script so callers can cache the output.
Only the Python standard library is used.
"""

import argparse
import hashlib
import os
import random
import sys

# Kinds of generated names.
K_PLAIN = 0      # ordinary data without address records
K_ADDR = 1       # ordinary data with at least one A or AAAA
K_CNAME = 2
K_DELEG = 3

SERIAL = 2026010101


def self_hash():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_args(argv):
    p = argparse.ArgumentParser(description="generate a synthetic benchmark zone")
    p.add_argument("--names", type=int, default=1_000_000,
                   help="number of generated owner names (default 1000000)")
    p.add_argument("--seed", type=int, default=1, help="PRNG seed (default 1)")
    p.add_argument("--dnssec", action="store_true",
                   help="add a wildcard and DS at about half the delegations (for signing)")
    p.add_argument("origin", nargs="?", default="bench.test", help="zone origin")
    p.add_argument("out", nargs="?", default="-", help="output file ('-' = stdout)")
    a = p.parse_args(argv)
    if a.names < 1:
        p.error("--names must be >= 1")
    a.origin = a.origin.rstrip(".").lower()
    if not a.origin:
        p.error("origin must not be the root")
    return a


class Layout:
    """Where generated name i lives: group g = i % G, optional sub-label."""

    def __init__(self, n):
        self.n = n
        # Roughly 500 names per group; at least one group.
        self.groups = max(1, n // 500)

    def group(self, i):
        return i % self.groups

    def sub(self, i):
        # About a quarter of the names sit one level deeper (s0..s7).
        h = (i * 2654435761) & 0xFFFFFFFF
        if (h >> 7) % 4 == 0:
            return (h >> 12) % 8
        return None

    def rel(self, i):
        """Name relative to $ORIGIN grp<g>.<origin>."""
        s = self.sub(i)
        return "h%d" % i if s is None else "h%d.s%d" % (i, s)

    def fq(self, i, origin):
        return "%s.grp%d.%s." % (self.rel(i), self.group(i), origin)

    def ref(self, i, cur_group, origin):
        """How to write name i while $ORIGIN is grp<cur_group>.<origin>."""
        if self.group(i) == cur_group:
            return self.rel(i)
        return self.fq(i, origin)


def pick_kinds(n, rng):
    kinds = bytearray(n)
    for i in range(n):
        r = rng.random()
        if r < 0.02:
            kinds[i] = K_DELEG
        elif r < 0.10:
            kinds[i] = K_CNAME
        elif r < 0.10 + 0.90 * 0.93:
            kinds[i] = K_ADDR
        else:
            kinds[i] = K_PLAIN
    # Guarantee at least one address-bearing name to be used as a target.
    if K_ADDR not in kinds:
        kinds[0] = K_ADDR
    return kinds


WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliett", "kilo", "lima", "mike", "november",
         "oscar", "papa", "quebec", "romeo", "sierra", "tango")


def txt_rdata(rng):
    parts = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        r = rng.random()
        if r < 0.35:
            # unquoted single token
            parts.append("tok%x" % rng.getrandbits(32))
        elif r < 0.55:
            parts.append('"v=spf1 ip4:10.%d.%d.0/24 -all"' % (rng.randrange(256), rng.randrange(256)))
        elif r < 0.80:
            # quoted, with spaces
            k = rng.randrange(2, 5)
            parts.append('"%s"' % " ".join(rng.choice(WORDS) for _ in range(k)))
        else:
            # quoted token without spaces
            parts.append('"site-verification=%016x"' % rng.getrandbits(64))
    return " ".join(parts)


def v4(rng):
    return "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))


def v6(rng):
    return "2001:db8:%x:%x::%x" % (rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16) or 1)


def count_choice(rng, weights):
    """weights[k] = relative weight of k+1 records."""
    r = rng.random() * sum(weights)
    for k, w in enumerate(weights):
        if r < w:
            return k + 1
        r -= w
    return len(weights)


def distinct(rng, count, make):
    """count distinct values from make(rng): an RRset holds no duplicate RRs."""
    seen = []
    while len(seen) < count:
        v = make(rng)
        if v not in seen:
            seen.append(v)
    return seen


def main(argv):
    a = parse_args(argv)
    n, origin = a.names, a.origin
    lay = Layout(n)

    rng_kind = random.Random(a.seed * 1_000_003 + 17)
    kinds = pick_kinds(n, rng_kind)
    addr_idx = [i for i in range(n) if kinds[i] == K_ADDR]
    ordinary_idx = [i for i in range(n) if kinds[i] in (K_ADDR, K_PLAIN)]

    rng = random.Random(a.seed)
    # The --dnssec additions draw from their own generator, so that the rest of the zone is
    # the same with and without them.
    rng_sec = random.Random(a.seed * 7_919 + 5) if a.dnssec else None
    out = sys.stdout if a.out == "-" else open(a.out, "w", buffering=1 << 20)
    w = out.write
    rrs = 0
    owners = 0

    w("; gen-zone.py sha256=%s names=%d seed=%d origin=%s%s\n"
      % (self_hash(), n, a.seed, origin, " dnssec" if a.dnssec else ""))
    w("$ORIGIN %s.\n$TTL 3600\n" % origin)
    w("@\tIN\tSOA\tns1 hostmaster (\n\t\t%d ; serial\n\t\t7200 ; refresh\n"
      "\t\t1800 ; retry\n\t\t1209600 ; expire\n\t\t300 ) ; minimum\n" % SERIAL)
    w("\t86400\tIN\tNS\tns1\n\t86400\tIN\tNS\tns2.%s.\n" % origin)
    w("ns1\t86400\tIN\tA\t192.0.2.1\nns2\t86400\tIN\tA\t192.0.2.2\n")
    w("ns2\t86400\tIN\tAAAA\t2001:db8::2\n")
    rrs += 6
    owners += 3
    if a.dnssec:
        w("*.wild\tIN\tA\t192.0.2.80\n\tIN\tTXT\t\"wildcard answer\"\n")
        rrs += 2
        owners += 1

    for g in range(lay.groups):
        w("$ORIGIN grp%d.%s.\n" % (g, origin))
        for i in range(g, n, lay.groups):
            owner = lay.rel(i)
            k = kinds[i]
            lines = []
            if k == K_DELEG:
                ns_ttl = 86400 if rng.random() < 0.5 else 172800
                lines.append("%s\t%d\tIN\tNS\tns1.%s" % (owner, ns_ttl, owner))
                lines.append("\t%d\tIN\tNS\tns2.%s" % (ns_ttl, owner))
                if rng_sec is not None and rng_sec.random() < 0.5:
                    # A secure delegation: the child's DS (ECDSAP256SHA256, SHA-256).
                    lines.append("\t%d\tIN\tDS\t%d 13 2 %064X" % (
                        ns_ttl, rng_sec.randrange(65536), rng_sec.getrandbits(256)))
                lines.append("ns1.%s\t%d\tIN\tA\t%s" % (owner, ns_ttl, v4(rng)))
                lines.append("ns2.%s\t%d\tIN\tA\t%s" % (owner, ns_ttl, v4(rng)))
                lines.append("\t%d\tIN\tAAAA\t%s" % (ns_ttl, v6(rng)))
                owners += 3
            elif k == K_CNAME:
                j = ordinary_idx[rng.randrange(len(ordinary_idx))]
                ttl = "\t300" if rng.random() < 0.3 else ""
                lines.append("%s%s\tIN\tCNAME\t%s" % (owner, ttl, lay.ref(j, g, origin)))
                owners += 1
            else:
                if k == K_ADDR:
                    has_a = rng.random() < 0.88
                    has_aaaa = (not has_a) or rng.random() < 0.45
                    if has_a:
                        ttl = "300\t" if rng.random() < 0.2 else ""
                        for a4 in distinct(rng, count_choice(rng, (6, 3, 1)), v4):
                            lines.append("\t%sIN\tA\t%s" % (ttl, a4))
                    if has_aaaa:
                        for a6 in distinct(rng, count_choice(rng, (8, 2)), v6):
                            lines.append("\tIN\tAAAA\t%s" % a6)
                if rng.random() < 0.22:
                    for pref in (10, 20)[:count_choice(rng, (1, 1))]:
                        j = addr_idx[rng.randrange(len(addr_idx))]
                        lines.append("\tIN\tMX\t%d %s" % (pref, lay.ref(j, g, origin)))
                if k == K_PLAIN or rng.random() < 0.33:
                    # One TTL per RRset (all records of the set share it).
                    ttl = "86400\t" if rng.random() < 0.1 else ""
                    for txt in distinct(rng, count_choice(rng, (7, 3)), txt_rdata):
                        lines.append("\t%sIN\tTXT\t%s" % (ttl, txt))
                # The first line carries the owner; following lines inherit it.
                lines[0] = owner + lines[0]
                owners += 1
            rrs += len(lines)
            w("\n".join(lines))
            w("\n")

    if out is not sys.stdout:
        out.close()
        size = os.path.getsize(a.out)
    else:
        out.flush()
        size = -1
    sys.stderr.write("gen-zone: origin=%s. names=%d owners=%d rrs=%d rrs_per_name=%.2f "
                     "bytes=%s\n" % (origin, n, owners, rrs, rrs / n,
                                     size if size >= 0 else "n/a(stdout)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
