//! Records in master-file (presentation) format, one per line.

use std::fmt::Write;

use domain::base::iana::Rtype;
use domain::base::zonefile_fmt::{DisplayKind, ZonefileFmt};
use domain::base::{ParseRecordData, ParsedName};
use domain::dep::octseq::Parser;
use domain::rdata::ZoneRecordData;

use super::parse::type_name;
use super::{rdata_text, Record};
use crate::wire::name;
use crate::wire::rdata::{self, rtype};

/// `OWNER TTL IN TYPE RDATA`, names absolute.
pub fn format_record(r: &Record) -> String {
    let mut s = String::with_capacity(64 + r.rdata.len() * 2);
    let _ = write!(s, "{}\t{}\tIN\t{}\t", r.owner, r.ttl, type_name(r.rtype));
    format_rdata(&mut s, r.rtype, &r.rdata);
    s
}

/// Rdata in presentation format; RFC 3597 `\#` form for types we cannot print.
pub fn format_rdata(s: &mut String, t: u16, rd: &[u8]) {
    if t == rtype::TXT || t == rtype::SPF {
        if write_charstrs(s, rd).is_some() {
            return;
        }
    } else if rdata_text::knows(t) {
        if rdata_text::format(t, rd, s) {
            return;
        }
    } else if t == rtype::SVCB || t == rtype::HTTPS {
        if rdata_text::format_svcb(rd, s) {
            return;
        }
    } else if let Some(text) = names_only(t, rd) {
        s.push_str(&text);
        return;
    } else {
        let mut p = Parser::from_ref(rd);
        if let Ok(Some(data)) = ZoneRecordData::<&[u8], ParsedName<&[u8]>>::parse_rdata(Rtype::from_int(t), &mut p) {
            if p.remaining() == 0 && !matches!(data, ZoneRecordData::Unknown(_)) {
                let text = data.display_zonefile(DisplayKind::Simple).to_string();
                if let Some(text) = with_our_names(t, rd, &text) {
                    escape_unprintable(s, &text);
                    return;
                }
            }
        }
    }
    let _ = write!(s, "\\# {}", rd.len());
    if !rd.is_empty() {
        s.push(' ');
        for b in rd {
            let _ = write!(s, "{b:02x}");
        }
    }
}

fn name_text(rd: &[u8], n: &rdata::RdataName) -> String {
    let mut out = String::new();
    let _ = name::write_text(&rd[n.offset..n.offset + n.len], &mut out);
    out
}

/// Types made only of names and fixed-size integers, printed entirely here (so that every
/// name gets its escapes).
fn names_only(t: u16, rd: &[u8]) -> Option<String> {
    let names = rdata::names_in(t, rd).ok()?;
    let u16_at = |o: usize| rd.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let u32_at = |o: usize| rd.get(o..o + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let end = names.last().map(|n| n.offset + n.len)?;
    let text = match t {
        rtype::NS
        | rtype::MD
        | rtype::MF
        | rtype::CNAME
        | rtype::MB
        | rtype::MG
        | rtype::MR
        | rtype::PTR
        | rtype::DNAME => name_text(rd, &names[0]),
        rtype::MINFO | rtype::RP => format!("{} {}", name_text(rd, &names[0]), name_text(rd, &names[1])),
        rtype::MX | rtype::AFSDB | rtype::RT | rtype::KX => format!("{} {}", u16_at(0)?, name_text(rd, &names[0])),
        rtype::PX => format!("{} {} {}", u16_at(0)?, name_text(rd, &names[0]), name_text(rd, &names[1])),
        rtype::SRV => format!("{} {} {} {}", u16_at(0)?, u16_at(2)?, u16_at(4)?, name_text(rd, &names[0])),
        rtype::SOA => {
            if rd.len() != end + 20 {
                return None;
            }
            let f: Vec<u32> = (0..5).map(|i| u32_at(end + 4 * i)).collect::<Option<_>>()?;
            format!(
                "{} {} {} {} {} {} {}",
                name_text(rd, &names[0]),
                name_text(rd, &names[1]),
                f[0],
                f[1],
                f[2],
                f[3],
                f[4]
            )
        }
        _ => return None,
    };
    (end == rd.len()).then_some(text)
}

/// Replaces the name tokens in `domain`'s presentation of the mixed types (whose names it
/// does not escape) with ours.
fn with_our_names(t: u16, rd: &[u8], text: &str) -> Option<String> {
    let names = rdata::names_in(t, rd).ok()?;
    let Some(n) = names.first() else { return Some(text.to_string()) };
    let ours = name_text(rd, n);
    let mut toks: Vec<String> = text.split(' ').map(str::to_string).collect();
    let idx = match t {
        rtype::NSEC => 0,
        rtype::RRSIG => 7,
        rtype::NAPTR => {
            let (head, _) = text.rsplit_once(' ')?;
            return Some(format!("{head} {ours}"));
        }
        _ => return Some(text.to_string()),
    };
    *toks.get_mut(idx)? = ours;
    if t == rtype::RRSIG {
        // Expiration and inception as YYYYMMDDHHmmSS (RFC 4034 §3.2), which NSD requires;
        // `domain` prints seconds.
        for (tok, at) in [(4, 8), (5, 12)] {
            let secs = u32::from_be_bytes(rd.get(at..at + 4)?.try_into().ok()?);
            *toks.get_mut(tok)? = rrsig_time(secs);
        }
    }
    Some(toks.join(" "))
}

/// Seconds since 1970 (a 32-bit RRSIG time) as `YYYYMMDDHHmmSS` in UTC.
fn rrsig_time(secs: u32) -> String {
    let (days, rem) = (secs as u64 / 86400, secs as u64 % 86400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar, eras of 400
    // years counted from 0000-03-01).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Escapes control and non-ASCII octets as `\DDD`.
fn escape_unprintable(s: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            s.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
}

/// <character-string>s, each quoted, space-separated; None (and `s` as it was) if `rd` is
/// not a sequence of at least one.
pub(super) fn write_charstrs(s: &mut String, rd: &[u8]) -> Option<()> {
    let start = s.len();
    let mut i = 0;
    while i < rd.len() {
        let len = rd[i] as usize;
        let Some(cs) = rd.get(i + 1..i + 1 + len) else {
            s.truncate(start);
            return None;
        };
        if i > 0 {
            s.push(' ');
        }
        write_quoted(s, cs);
        i += 1 + len;
    }
    (i > 0).then_some(())
}

/// Octets as a quoted string: `"` and `\` escaped, the unprintable as `\DDD`.
pub(super) fn write_quoted(s: &mut String, b: &[u8]) {
    s.push('"');
    for &c in b {
        match c {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\{c:03}");
            }
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name::Name;

    fn rec(t: u16, rd: &[u8]) -> String {
        let owner = Name::parse_text(b"x.example.", None).unwrap();
        format_record(&Record { owner, rtype: t, ttl: 60, rdata: rd.into() })
    }

    #[test]
    fn rrsig_times() {
        assert_eq!(rrsig_time(0), "19700101000000");
        assert_eq!(rrsig_time(951_782_400), "20000229000000");
        assert_eq!(rrsig_time(1_767_225_600), "20260101000000");
        assert_eq!(rrsig_time(2_082_758_400), "20360101000000");
        assert_eq!(rrsig_time(u32::MAX), "21060207062815");
        let rd = b"\x00\x01\x08\x03\x00\x00\x01\x2c\x7c\x24\x5f\x00\x69\x55\xb9\x00\x30\x39\x00\x01\x02";
        assert_eq!(
            rec(rtype::RRSIG, rd),
            "x.example.\t60\tIN\tRRSIG\tA 8 3 300 20360101000000 20260101000000 12345 . AQI="
        );
    }

    #[test]
    fn formats() {
        assert_eq!(rec(rtype::A, &[192, 0, 2, 1]), "x.example.\t60\tIN\tA\t192.0.2.1");
        assert_eq!(rec(rtype::MX, b"\x00\x0a\x02mx\x07example\x00"), "x.example.\t60\tIN\tMX\t10 mx.example.");
        assert_eq!(rec(rtype::TXT, b"\x03a\"b\x01\x07"), "x.example.\t60\tIN\tTXT\t\"a\\\"b\" \"\\007\"");
        assert_eq!(rec(65400, &[10, 0, 0, 1]), "x.example.\t60\tIN\tTYPE65400\t\\# 4 0a000001");
        assert_eq!(rec(rtype::SPF, b"\x04v=sp"), "x.example.\t60\tIN\tSPF\t\"v=sp\"");
    }

    /// The zones of every type Knot and BIND both read, and of those only BIND and NSD read
    /// (`tests/data/types`), printed and read again: the same records.
    #[test]
    fn every_type_zone_round_trips() {
        for (apex, src) in [
            ("every-type.test.", include_str!("../../tests/data/types/every-type.test.zone")),
            ("bind-nsd-types.test.", include_str!("../../tests/data/types/bind-nsd-types.test.zone")),
        ] {
            round_trip(apex, src);
        }
    }

    fn round_trip(apex: &str, src: &str) {
        let origin = Name::parse_text(apex.as_bytes(), None).unwrap();
        let l = crate::zone::parse::load_text(std::path::Path::new("types.zone"), src.as_bytes(), &origin);
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        let text: String = l.zone.records_canonical().iter().map(|r| format_record(&r.to_owned()) + "\n").collect();
        // Only private types and NULL (which has no other form) in RFC 3597 form.
        let generic: Vec<&str> =
            text.lines().filter(|l| l.contains("\\#") && !l.contains("\tTYPE") && !l.contains("\tNULL\t")).collect();
        assert!(generic.is_empty(), "known types printed in RFC 3597 form: {generic:?}");
        let again = crate::zone::parse::load_text(std::path::Path::new("dump.zone"), text.as_bytes(), &origin);
        assert!(again.is_servable(), "{:?}\n{text}", again.diagnostics);
        assert!(l.zone.diff(&again.zone).is_empty(), "{:?}\n{text}", l.zone.diff(&again.zone));
    }

    #[test]
    fn every_type_round_trips() {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        let src = r#"$TTL 300
@ SOA ns1 host\.master 1 2 3 4 5
@ NS ns1
ns1 A 192.0.2.1
ns1 AAAA 2001:db8::1
@ MX 10 mail
mail CNAME ns1
t TXT "a b" "c\"d" "\200"
t SPF "v=spf1 -all"
_s._tcp SRV 1 2 3 ns1
_s2._tcp SRV 1 2 3 .
p PTR ns1
@ CAA 0 issue "ca.example.net"
h HINFO "PC" "Linux"
n NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:x@example.com!" .
n2 NAPTR 100 10 "" "" "" next
s SSHFP 1 1 123456789abcdef67890123456789abcdef67890
_443._tcp TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
d DNAME example.net.
sec DS 12345 8 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
@ DNSKEY 257 3 8 AwEAAcFgy8HVRtI1gcEb1xLv2H0mXSDwnDFCIO0nqWHa3ACePQs8 aJfEO1FkJjUkCmzBGGzHpa3oJpTCclOIw8QRBPQ=
@ RRSIG SOA 8 2 300 20270101000000 20261101000000 12345 example.com. c2lnbmF0dXJl
@ NSEC ns1 A NS SOA MX RRSIG NSEC DNSKEY CAA
abc NSEC3 1 0 10 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
@ NSEC3PARAM 1 0 10 aabbccdd
sv SVCB 1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1 mandatory=alpn,port
@ HTTPS 0 sv
h2 HTTPS 1 . alpn="h3,h2" ech=AEX+DQBB
cn CNAME x\"y\;z.example.com.
pp PTR a\(b\)c
ss SRV 0 0 1 a\032b
nn NAPTR 1 1 "" "" "" a\;b
h3 HTTPS 1 x\"y alpn=h2 no-default-alpn
sig RRSIG A 8 3 300 20270101000000 20261101000000 1 s\(x\). c2ln
nsec NSEC a\"b A
u TYPE65400 \# 4 0a000001
u2 TYPE65401 \# 0
"#;
        let l = crate::zone::parse::load_text(std::path::Path::new("t.zone"), src.as_bytes(), &origin);
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        assert_eq!(l.zone.rr_count(), 36);
        let text: String = l.zone.records_canonical().iter().map(|r| format_record(&r.to_owned()) + "\n").collect();
        let again = crate::zone::parse::load_text(std::path::Path::new("dump.zone"), text.as_bytes(), &origin);
        assert!(again.is_servable(), "{:?}\n{text}", again.diagnostics);
        assert!(l.zone.diff(&again.zone).is_empty(), "{:?}\n{text}", l.zone.diff(&again.zone));
    }
}
