#!/usr/bin/python3
"""Writes every-type.test.zone: one record (or a few variants) of every record type,
kept only if both kzonecheck (Knot) and named-checkzone (BIND) accept it; the types one of
them refuses are listed in the file's comments. The whole zone must then pass both, and
nsd-checkzone (NSD) too. Also writes bind-nsd-types.test.zone: the records Knot refuses
that BIND and NSD both read, of the types nsxdp reads (BIND_NSD). Run from anywhere:
    /usr/bin/python3 tests/data/types/gen.py
Each candidate is checked alone in a minimal zone (the header below plus the record)."""

import os
import subprocess
import sys
import tempfile

ORIGIN = "every-type.test."
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "every-type.test.zone")

HEADER = """$ORIGIN every-type.test.
$TTL 3600
@ SOA ns hostmaster 2026120501 3600 600 86400 300
@ NS ns
ns A 192.0.2.1
ns AAAA 2001:db8::1
sec NS ns.sec
ns.sec A 192.0.2.2
@ DNSKEY 257 3 8 AwEAAcFgy8HVRtI1gcEb1xLv2H0mXSDwnDFCIO0nqWHa3ACePQs8aJfEO1FkJjUkCmzBGGzHpa3oJpTCclOIw8QRBPQ=
"""

# Made-up key material (not a real key); the apex DNSKEY above is KEY, and BIND wants the
# apex CDS/CDNSKEY to match it: CDS_OF_KEY is its SHA-256 DS (dnspython's make_ds).
KEY = "AwEAAcFgy8HVRtI1gcEb1xLv2H0mXSDwnDFCIO0nqWHa3ACePQs8aJfEO1FkJjUkCmzBGGzHpa3oJpTCclOIw8QRBPQ="
CDS_OF_KEY = "24871 8 2 66cd53e6aff510cb447f5cc34a0f8acca30c7767399c583c269986fc04186c15"
HEX32 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

# (type, owner, rdata); several lines of one type test variants of its presentation form.
# The RRSIG's TTL is its original TTL: Knot 3.2 serves an RRSIG with that TTL, whatever
# the file says, and that is not what this zone tests.
CANDIDATES = [
    ("A", "a", "192.0.2.10"),
    ("NS", "sec", "ns2.example.net."),
    ("MD", "md", "mail.example.net."),
    ("MF", "mf", "mail.example.net."),
    ("CNAME", "cname", "target.example.net."),
    ("MB", "mb", "mail.example.net."),
    ("MG", "mg", "mail.example.net."),
    ("MR", "mr", "mail.example.net."),
    ("NULL", "null", "\\# 4 01020304"),
    ("WKS", "wks", "192.0.2.1 6 25 80"),
    ("PTR", "ptr", "target.example.net."),
    ("HINFO", "hinfo", '"PC-Intel-700mhz" "Linux 6.1"'),
    ("MINFO", "minfo", "rmail.example.net. errors.example.net."),
    ("MX", "mx", "10 mail.Example.NET."),
    ("TXT", "txt", '"hello world" "\\"quoted\\"" "\\200\\000"'),
    ("RP", "rp", "mbox.example.net. txt"),
    ("AFSDB", "afsdb", "1 afs.example.net."),
    ("AFSDB", "afsdb", "2 Afs2"),
    ("X25", "x25", "311061700956"),
    ("X25", "x25-2", '"3110 617"'),
    ("ISDN", "isdn", "150862028003217 004"),
    ("ISDN", "isdn2", "150862028003217"),
    ("RT", "rt", "10 relay.example.net."),
    ("NSAP", "nsap", "0x47.0005.80.005a00.0000.0001.e133.ffffff000162.00"),
    ("NSAP", "nsap2", "0x.47"),
    ("NSAP-PTR", "nsap-ptr", "host.example.net."),
    ("SIG", "sig", "A 8 3 300 20360101000000 20260101000000 12345 every-type.test. c2lnbmF0dXJl"),
    ("KEY", "key", "256 3 8 " + KEY),
    ("KEY", "key2", "512 3 RSASHA256 " + KEY[:40] + " " + KEY[40:]),
    ("PX", "px", "10 map822.example.net. mapx400.example.net."),
    ("PX", "px2", "0 Map822 x400"),
    ("GPOS", "gpos", "-32.6882 116.8652 10.0"),
    ("AAAA", "aaaa", "2001:db8::10"),
    ("LOC", "loc", "52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m"),
    ("LOC", "loc2", "42 21 54 N 71 06 18 W -24m 30m"),
    ("LOC", "loc3", "60 9 S 120 E 1000.5"),
    ("LOC", "loc4", "0 S 0 W 42849672.95m 90000000m 90000000m 90000000m"),
    ("LOC", "loc5", "90 0 0.001 N 180 0 0 W -100000.00 0.01 0m 25m"),
    ("LOC", "loc6", "1 2 3.5 N 4 5 6.25 E 12.34m 1.5m 25m 0.15m"),
    ("LOC", "loc7", "89 59 59.999 S 179 59 59.999 W -100000m 0.09 99999.99m 123456.78m"),
    ("NXT", "nxt", "next.every-type.test. A NS"),
    ("EID", "eid", "\\# 2 0102"),
    ("NIMLOC", "nimloc", "\\# 2 0102"),
    ("SRV", "_sip._tcp", "1 2 5060 sip.example.net."),
    ("ATMA", "atma", "39246f00e7c9c0312000100100001234567800"),
    ("NAPTR", "naptr", '100 10 "u" "E2U+sip" "!^.*$!sip:x@example.net!" .'),
    ("KX", "kx", "10 kx.example.net."),
    ("CERT", "cert", "PGP 0 0 " + KEY),
    ("CERT", "cert2", "1 65535 RSASHA256 " + KEY),
    ("A6", "a6", "0 2001:db8::1"),
    ("DNAME", "dname", "target.example.net."),
    ("SINK", "sink", "\\# 2 0102"),
    ("APL", "apl", "1:192.168.32.0/21 !1:192.168.38.0/28"),
    ("APL", "apl2", "1:224.0.0.0/4 2:FF00:0:0:0:0:0:0:0/8 !2:2001:db8::/32 1:0.0.0.0/0"),
    ("APL", "apl3", ""),
    ("DS", "sec", "12345 8 2 " + HEX32),
    ("SSHFP", "sshfp", "1 1 123456789abcdef67890123456789abcdef67890"),
    ("IPSECKEY", "ipseckey", "10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ=="),
    ("IPSECKEY", "ipseckey2", "10 3 2 gw.example.net. AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ=="),
    ("RRSIG", "rrsig 300", "A 8 3 300 20360101000000 20260101000000 12345 every-type.test. c2lnbmF0dXJl"),
    ("NSEC", "nsec", "next.every-type.test. A NS RRSIG NSEC TYPE1234"),
    ("DNSKEY", "dnskey", "256 3 13 " + KEY[:88]),
    ("DHCID", "dhcid", "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="),
    ("NSEC3", "2vptu5timamqttgl4luu9kg21e0aor3s", "1 1 10 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3t A RRSIG"),
    ("NSEC3PARAM", "@", "1 0 10 aabbccdd"),
    ("TLSA", "_443._tcp", "3 1 1 " + HEX32),
    ("SMIMEA", "smimea", "3 1 1 " + HEX32),
    ("HIP", "hip", "2 200100107B1A74DF365639CC39F1D578 AwEAAbdxyhNuSutc5EMzxTs9LBPCIkOFH8cIvM4p9+LrV4e19WzK00+CI6zBCQTdtWsuxKbWIy87UOoJTwkUs7lBu+Upr1gsNrut79ryra+bSRGQb1slImA8YVJyuIDsj7kwzG7jnERNqnWxZ48AWkskmdHaVDP4BcelrTI3rMXdXF5D rvs.example.net."),
    ("NINFO", "ninfo", '"info"'),
    ("RKEY", "rkey", "0 3 5 " + KEY),
    ("TALINK", "talink", "prev.example.net. next.example.net."),
    ("CDS", "@", CDS_OF_KEY),
    ("CDNSKEY", "@", "257 3 8 " + KEY),
    ("OPENPGPKEY", "openpgpkey", KEY),
    ("CSYNC", "csync", "66 3 A NS AAAA"),
    ("CSYNC", "csync2", "2026120501 0"),
    ("ZONEMD", "@", "2026120501 1 1 " + HEX32 + HEX32[:32]),
    ("SVCB", "svcb", "1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1 mandatory=alpn,port"),
    ("SVCB", "svcb-keys", "1 svc.example.net. key9=a key99=bb key999=\"c c\" key9999 key65279=z key10=d key100=e key1000=f"),
    ("SVCB", "svcb-alias", "0 svc.example.net."),
    ("SVCB", "svcb-escapes", '16 . alpn="f\\\\\\\\oo\\\\,bar,h2" key65280="\\000\\255x"'),
    ("SVCB", "svcb-mandatory", "2 . mandatory=key9 key9=x"),
    ("HTTPS", "https", "1 . alpn=h3 no-default-alpn ech=AEX+DQBB"),
    ("HTTPS", "https-alias", "0 www.example.net."),
    ("HTTPS", "https-order", "3 . port=53 key7=/dns-query{?dns} key8 alpn=h2 key123=\\001 ipv6hint=2001:db8::1,::ffff:192.0.2.1"),
    ("DSYNC", "dsync", "CDS 1 5359 cds-scanner.example.net."),
    ("SPF", "spf", '"v=spf1 -all"'),
    ("UINFO", "uinfo", '"info"'),
    ("UID", "uid", "\\# 4 00000001"),
    ("GID", "gid", "\\# 4 00000001"),
    ("UNSPEC", "unspec", "\\# 2 0102"),
    ("NID", "nid", "10 0014:4fff:ff20:ee64"),
    ("NID", "nid2", "20 0:0:0:1"),
    ("L32", "l32", "10 10.1.2.0"),
    ("L64", "l64", "10 2001:0DB8:1140:1000"),
    ("LP", "lp", "10 l64-subnet1.example.net."),
    ("EUI48", "eui48", "00-00-5e-00-53-2a"),
    ("EUI48", "eui48-upper", "FF-FF-FF-FF-FF-FF"),
    ("EUI64", "eui64", "00-00-5E-EF-10-00-00-2A"),
    ("URI", "_ftp._tcp", '10 1 "ftp://ftp1.example.com/public"'),
    ("URI", "_http._tcp", '10 1 "http://www.example.com/path;x=\\"y\\""'),
    ("CAA", "caa", '0 issue "ca.example.net; account=230123"'),
    ("CAA", "caa", '128 tbs "Unknown"'),
    ("AVC", "avc", '"app-name:WOLFGANG|app-class:OAM"'),
    ("AVC", "avc2", '"a" "b\\"c" "\\255"'),
    ("DOA", "doa", '0 1 2 "" aGVsbG8='),
    ("AMTRELAY", "amtrelay", "10 0 3 amtrelays.example.net."),
    ("RESINFO", "resinfo", "qnamemin exterr=15,16,17"),
    ("WALLET", "wallet", '"BTC" "addr"'),
    ("TA", "ta", "30795 1 1 0123456789abcdef0123456789abcdef01234567"),
    ("DLV", "dlv", "30795 1 1 0123456789abcdef0123456789abcdef01234567"),
    ("TYPE65280", "private", "\\# 4 0a000001"),
    ("TYPE65281", "private", "\\# 0"),
    ("A", "generic-a", "\\# 4 c0000263"),
]


def accepted(tool_args, zone_text):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "z.zone")
        with open(path, "w") as f:
            f.write(zone_text)
        r = subprocess.run(tool_args + [path], capture_output=True, text=True, cwd=d)
        return r.returncode == 0, (r.stdout + r.stderr).strip().splitlines()


# Types Knot refuses but BIND and NSD read, which nsxdp reads too: their records (those
# both BIND and NSD accept) go to a second zone, which tests/every_type.rs compares with
# named's AXFR of it.
BIND_NSD = {"MB", "MG", "MR", "NULL", "X25", "ISDN", "NSAP", "PX", "AVC", "DLV"}
BIND_NSD_ORIGIN = "bind-nsd-types.test."
BIND_NSD_OUT = os.path.join(HERE, "bind-nsd-types.test.zone")

KNOT = ["kzonecheck", "-d", "off", "-o", ORIGIN]
BIND = ["named-checkzone", "-q", "-i", "local", ORIGIN]
NSD = ["nsd-checkzone", ORIGIN]


def write(path, origin, title, kept, left_out, checkers, header=HEADER):
    header = header.replace(ORIGIN, origin)
    out = title + [
        "; Written by gen.py (do not edit: change gen.py and run it again).\n",
        ";\n; Left out:\n",
    ] + left_out + [";\n", header] + kept
    whole = "".join(out)
    for args in checkers:
        args = [origin if a == ORIGIN else a for a in args]
        ok, msg = accepted(args, whole)
        if not ok:
            sys.exit(f"{args[0]} refuses the whole of {path}: {msg}")
    with open(path, "w") as f:
        f.write(whole)
    print(f"{path}: {len(kept)} records kept, {len(left_out)} left out")


def main():
    kept, refused = [], []
    legacy, legacy_out = [], []
    for t, owner, rdata in CANDIDATES:
        line = f"{owner} {t} {rdata}".rstrip() + "\n"
        text = HEADER + line
        k, _ = accepted(KNOT, text)
        b, _ = accepted(BIND, text)
        if k and b:
            kept.append(line)
            continue
        who = " and ".join(n for n, ok in (("Knot", k), ("BIND", b)) if not ok)
        refused.append(f";   {line.strip()}    -- refused by {who}\n")
        if k:
            continue
        n, _ = accepted(NSD, text)
        if b and n and t in BIND_NSD:
            legacy.append(line)
        else:
            why = "not read by nsxdp" if b and n else "refused by " + " and ".join(
                x for x, ok in (("BIND", b), ("NSD", n)) if not ok
            )
            legacy_out.append(f";   {line.strip()}    -- {why}\n")
    write(
        OUT,
        ORIGIN,
        [
            "; Every record type that both kzonecheck (Knot 3.2) and named-checkzone (BIND 9.18)\n",
            "; accept, with variants of their presentation forms; NSD (nsd-checkzone) reads it too.\n",
            "; tests/every_type.rs loads it into nsxdp and knotd and compares their AXFRs record by\n",
            "; record. Left out below: the records one of the two peers refuses.\n",
        ],
        kept,
        refused,
        (KNOT, BIND, NSD),
    )
    write(
        BIND_NSD_OUT,
        BIND_NSD_ORIGIN,
        [
            "; The record types Knot refuses but BIND 9.18 and NSD read (and nsxdp too).\n",
            "; tests/every_type.rs loads it into nsxdp and named and compares their AXFRs record by\n",
            "; record. Left out below: the other records Knot refuses, and why.\n",
        ],
        legacy,
        legacy_out,
        (BIND, NSD),
        # Unsigned: without the apex DNSKEY, which only the CDS and CDNSKEY need.
        "".join(line for line in HEADER.splitlines(True) if " DNSKEY " not in line),
    )


if __name__ == "__main__":
    main()
