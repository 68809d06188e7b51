#!/usr/bin/env python3
"""Many small hosted zones, for bench/many-zones.sh.

Usage: gen-many-zones.py N DIR QUERY_LINES

Writes into DIR:
  zones/zNNNNNN.test.zone   N zones of 12 RRs each (zone i is zI.test, I zero-padded to 6):
                            SOA, two NS (in-zone, with A glue), apex A, AAAA and MX, mail A,
                            www CNAME to the apex, a wildcard *.dyn A and a TXT at info;
  zones.list                the zone names, one a line, in order;
  queries.txt               QUERY_LINES dnsperf lines spread uniformly over all zones: each
                            line picks a zone at random, then one of the existing names and
                            types (apex SOA/A/AAAA/MX/NS, www via the CNAME, mail, a name under
                            the wildcard) or a name or type that does not exist (NXDOMAIN,
                            NODATA), about one query in four of those.

Deterministic (seed 1). Only the Python standard library is used.
"""

import os
import random
import sys

SERIAL = 2026010101


def zone_text(name, i):
    a, b = (i >> 8) & 0xFF, i & 0xFF
    return (
        f"$ORIGIN {name}.\n$TTL 3600\n"
        f"@ SOA ns1 hostmaster {SERIAL} 3600 600 86400 300\n"
        "@ NS ns1\n@ NS ns2\n"
        f"@ A 10.{a}.{b}.1\n@ AAAA 2001:db8:{a:x}:{b:x}::1\n@ MX 10 mail\n"
        f"ns1 A 10.{a}.{b}.2\nns2 A 10.{a}.{b}.3\nmail A 10.{a}.{b}.4\n"
        "www CNAME @\n"
        f"*.dyn A 10.{a}.{b}.5\n"
        f'info TXT "zone {i}"\n'
    )


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    n, out, lines = int(argv[1]), argv[2], int(argv[3])
    zdir = os.path.join(out, "zones")
    os.makedirs(zdir, exist_ok=True)
    names = [f"z{i:06d}.test" for i in range(n)]
    for i, name in enumerate(names):
        with open(os.path.join(zdir, name + ".zone"), "w") as f:
            f.write(zone_text(name, i))
    with open(os.path.join(out, "zones.list"), "w") as f:
        f.write("".join(z + "\n" for z in names))
    rnd = random.Random(1)
    kinds = [
        ("", "SOA"), ("", "A"), ("", "AAAA"), ("", "MX"), ("", "NS"),
        ("www.", "A"), ("mail.", "A"), ("h{r}.dyn.", "A"), ("info.", "TXT"),
        # not there: NXDOMAIN (two kinds) and NODATA
        ("nx{r}.", "A"), ("nx{r}.mail.", "AAAA"), ("", "TXT"),
    ]
    with open(os.path.join(out, "queries.txt"), "w") as f:
        for _ in range(lines):
            z = names[rnd.randrange(n)]
            pre, t = kinds[rnd.randrange(len(kinds))]
            f.write(pre.format(r=rnd.randrange(1000)) + z + " " + t + "\n")


if __name__ == "__main__":
    main(sys.argv)
