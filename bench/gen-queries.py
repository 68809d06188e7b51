#!/usr/bin/env python3
"""Query file for the benchmarks: owner/type pairs sampled from a gen-zone.py zone, plus a
share of NXDOMAIN names, one "NAME TYPE" a line (the format of dnsperf and kxdpgun).

Usage: gen-queries.py ZONE OUT ORIGIN LINES NX_PERCENT
The output depends only on the arguments and the zone (fixed seed).
"""
import random, sys
zone, out, origin, lines, nx_pct = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
cur_origin = origin + "."
owner = None
pairs = set()
groups = set()
with open(zone) as f:
    for line in f:
        if line.startswith("$ORIGIN"):
            cur_origin = line.split()[1]
            if cur_origin.startswith("grp"):
                groups.add(cur_origin.split(".")[0])
            continue
        # gen-zone.py writes every RR line with "<TAB>IN<TAB>"; SOA continuations have none.
        if "\tIN\t" not in line or line.startswith(";"):
            continue
        toks = line.split()
        if not line[0].isspace():
            o = toks[0]
            owner = cur_origin if o == "@" else (o if o.endswith(".") else o + "." + cur_origin)
        i = toks.index("IN")
        pairs.add((owner.rstrip("."), toks[i + 1]))
pairs = sorted(pairs)
groups = sorted(groups) or ["grp0"]
rng = random.Random(1)
with open(out, "w") as f:
    for _ in range(lines):
        if rng.randrange(100) < nx_pct:
            f.write("nx%d.%s.%s A\n" % (rng.randrange(1 << 30), rng.choice(groups), origin))
        else:
            f.write("%s %s\n" % pairs[rng.randrange(len(pairs))])
sys.stderr.write("queries: %d lines from %d owner/type pairs, %d%% NXDOMAIN\n" % (lines, len(pairs), nx_pct))
