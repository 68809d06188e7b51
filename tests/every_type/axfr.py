#!/usr/bin/python3
"""AXFR of ZONE from 127.0.0.1:PORT, TSIG-signed with the hmac-sha256 key `xfr` (SECRET,
base64); prints each record once in DNSSEC canonical order (RFC 4034 §6: owner, type,
canonical rdata), one a line: owner, type, TTL, the rdata's octets in canonical form in
hex (uncompressed, names lowercased in the types RFC 4034 §6.2 lists: Knot lowercases
them when it loads a zone, nsxdp keeps their case as BIND and NSD do), and the rdata in
presentation form (for reading a difference; not compared by the caller). The closing SOA
is left out.

With `answers`, it then asks the server for each owner and type of the transfer over UDP
(no EDNS, so DO=0; TCP when truncated; not the DNSSEC types RRSIG, NSEC, NSEC3, whose answers are the DNSSEC
work's) and prints, per question, `? OWNER TYPE RCODE` and the answer section's records in
the same form, sorted.

usage: axfr.py PORT ZONE SECRET [answers]"""

import sys
import types

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdtypes.ANY.RP
from dns.rdtypes.nsbase import NSBase
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring


def register_rfc1035_types():
    """dnspython has no MINFO, MB, MG, MR, whose names may come compressed: they are read
    as RP (two names) and NS (one name), which have their layouts."""
    for name, base in (("MINFO", dns.rdtypes.ANY.RP.RP), ("MB", NSBase), ("MG", NSBase), ("MR", NSBase)):
        module = types.ModuleType(name.lower())
        setattr(module, name, type(name, (base,), {}))
        dns.rdata.register_type(module, dns.rdatatype.from_text(name), name)


def main():
    register_rfc1035_types()
    port, zone, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    keyring = dns.tsigkeyring.from_text({"xfr": secret})
    origin = dns.name.from_text(zone)
    rrs = []
    for msg in dns.query.xfr(
        "127.0.0.1",
        origin,
        port=port,
        keyring=keyring,
        keyname="xfr",
        keyalgorithm=dns.tsig.HMAC_SHA256,
        relativize=False,
        lifetime=30,
    ):
        for rrset in msg.answer:
            for rd in rrset:
                rrs.append((rrset.name, rrset.rdtype, rrset.ttl, rd))
    if len(rrs) < 2 or rrs[0][1] != dns.rdatatype.SOA or rrs[-1][1] != dns.rdatatype.SOA:
        sys.exit(f"not a whole AXFR: {len(rrs)} records")
    rrs.pop()
    if sys.argv[4:] == ["answers"]:
        questions = sorted({(r[0], r[1]) for r in rrs if r[1] not in SKIPPED})
        for name, rdtype in questions:
            q = dns.message.make_query(name, rdtype, use_edns=False)
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
            if r.flags & dns.flags.TC:
                r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
            print(f"? {name.to_text().lower()} {dns.rdatatype.to_text(rdtype)} {dns.rcode.to_text(r.rcode())}")
            print_sorted([(rrset.name, rrset.rdtype, rrset.ttl, rd) for rrset in r.answer for rd in rrset], origin)
    else:
        print_sorted(rrs, origin)


SKIPPED = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}


def print_sorted(rrs, origin):
    rrs.sort(key=lambda r: (r[0], r[1], r[3].to_digestable(origin)))
    for name, rdtype, ttl, rd in rrs:
        text = rd.to_text(origin=None, relativize=False)
        print(f"{name.to_text().lower()}\t{dns.rdatatype.to_text(rdtype)}\t{ttl}\t{rd.to_digestable(origin).hex()}\t{text}")


if __name__ == "__main__":
    main()
