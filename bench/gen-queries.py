#!/usr/bin/env python3
"""Query file for the benchmarks: owner/type pairs sampled from a gen-zone.py zone, plus a
share of NXDOMAIN names, one "NAME TYPE" a line (the format of dnsperf and kxdpgun).

Usage: gen-queries.py ZONE OUT ORIGIN LINES NX_PERCENT [--signed-mix] [--format F]
The output depends only on the arguments and the zone (fixed seed).

--signed-mix (for a `gen-zone.py --dnssec` zone, the signed-zone benchmarks): of the queries,
  NX_PERCENT % NXDOMAIN, 5 % NODATA (an existing name, type SRV), 10 % wildcard
  (w<n>.wild.ORIGIN, A or TXT), 10 % referral (www.<delegation>, A; the delegations with DS
  and those without in the share the zone has them), the rest owner/type pairs sampled from
  the zone as without the option (which includes DS queries at the secure delegations).
--format text (default): "NAME TYPE" lines for dnsperf; kxdpgun-do: "NAME TYPE D" lines, the
  D flag of kxdpgun (EDNS with the DO bit); wire-do: dnsperf -B's binary format (each query a
  two-octet length and the message: RD, an OPT with UDP size 1232 and DO set).
"""
import random, struct, sys
args = [a for a in sys.argv[1:] if not a.startswith("--")]
signed_mix = "--signed-mix" in sys.argv[1:]
fmt = "text"
if "--format" in sys.argv[1:]:
    fmt = sys.argv[sys.argv.index("--format") + 1]
    args.remove(fmt)
if len(args) != 5 or fmt not in ("text", "kxdpgun-do", "wire-do"):
    sys.exit(__doc__)
zone, out, origin, lines, nx_pct = args[0], args[1], args[2], int(args[3]), int(args[4])
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
# Wildcard owners are not queried literally (gen-zone.py writes them only with --dnssec).
pairs = sorted(p for p in pairs if not p[0].startswith("*"))
groups = sorted(groups) or ["grp0"]
rng = random.Random(1)

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "DS": 43}


def wire(name, qtype):
    """dnsperf -B record: length, then the query (id 0: dnsperf sets it), RD, OPT 1232 DO."""
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    m = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 1) + q + struct.pack(">HH", TYPES[qtype], 1)
    m += struct.pack(">BHHBBHH", 0, 41, 1232, 0, 0, 0x8000, 0)
    return struct.pack(">H", len(m)) + m


def choose():
    """One query as (name, type): the plain mix, or the signed-zone mix."""
    if not signed_mix:
        if rng.randrange(100) < nx_pct:
            return "nx%d.%s.%s" % (rng.randrange(1 << 30), rng.choice(groups), origin), "A"
        return pairs[rng.randrange(len(pairs))]
    r = rng.randrange(100)
    if r < nx_pct:
        return "nx%d.%s.%s" % (rng.randrange(1 << 30), rng.choice(groups), origin), "A"
    r -= nx_pct
    if r < 5 and data_owners:
        return rng.choice(data_owners), "SRV"
    if r < 15 and wild:
        return "w%d.%s" % (rng.randrange(1 << 30), rng.choice(wild)), rng.choice(("A", "TXT"))
    if r < 25 and delegs:
        return "www.%s" % rng.choice(delegs), "A"
    return pairs[rng.randrange(len(pairs))]


if signed_mix:
    types_at = {}
    for o, t in pairs:
        types_at.setdefault(o, set()).add(t)
    apex = origin.rstrip(".")
    delegs = sorted(o for o, ts in types_at.items() if "NS" in ts and o != apex)
    # Names at or below a delegation are not authoritative data.
    cut = set(delegs)


    def below(o):
        labels = o.split(".")
        return any(".".join(labels[i:]) in cut for i in range(len(labels)))

    data_owners = sorted(o for o, ts in types_at.items()
                         if o != apex and "CNAME" not in ts and "SRV" not in ts and not below(o))
    with open(zone) as f:
        cur_origin = origin + "."
        wild = []
        for line in f:
            if line.startswith("$ORIGIN"):
                cur_origin = line.split()[1]
            elif line.startswith("*"):
                o = line.split()[0]
                o = o if o.endswith(".") else o + "." + cur_origin
                if o[2:].rstrip(".") not in wild:
                    wild.append(o[2:].rstrip("."))
    secure = sum(1 for d in delegs if "DS" in types_at[d])
    sys.stderr.write("queries: signed mix over %d delegations (%d with DS), %d wildcards, %d data names\n"
                     % (len(delegs), secure, len(wild), len(data_owners)))

with open(out, "wb" if fmt == "wire-do" else "w") as f:
    for _ in range(lines):
        name, qtype = choose()
        if fmt == "wire-do":
            f.write(wire(name, qtype))
        elif fmt == "kxdpgun-do":
            f.write("%s %s D\n" % (name, qtype))
        else:
            f.write("%s %s\n" % (name, qtype))
sys.stderr.write("queries: %d lines from %d owner/type pairs, %d%% NXDOMAIN%s\n"
                 % (lines, len(pairs), nx_pct, ", signed mix" if signed_mix else ""))
