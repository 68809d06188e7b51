//! Record types and where domain names sit inside their rdata.
//!
//! The snapshot compiler needs this to compress names against the zone apex (only for the
//! RFC 1035 types, RFC 3597 §4), to pick additional-section targets, and the zone model
//! needs it to compare rdata in canonical form (RFC 4034 §6.2, RFC 6840 §5.1).

use super::name;

pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const MD: u16 = 3;
    pub const MF: u16 = 4;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MB: u16 = 7;
    pub const MG: u16 = 8;
    pub const MR: u16 = 9;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MINFO: u16 = 14;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const RP: u16 = 17;
    pub const AFSDB: u16 = 18;
    pub const X25: u16 = 19;
    pub const ISDN: u16 = 20;
    pub const RT: u16 = 21;
    pub const NSAP: u16 = 22;
    pub const SIG: u16 = 24;
    pub const KEY: u16 = 25;
    pub const PX: u16 = 26;
    pub const AAAA: u16 = 28;
    pub const LOC: u16 = 29;
    pub const NXT: u16 = 30;
    pub const SRV: u16 = 33;
    pub const NAPTR: u16 = 35;
    pub const KX: u16 = 36;
    pub const CERT: u16 = 37;
    pub const A6: u16 = 38;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const APL: u16 = 42;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const DHCID: u16 = 49;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
    pub const SMIMEA: u16 = 53;
    pub const CSYNC: u16 = 62;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    pub const SPF: u16 = 99;
    pub const NID: u16 = 104;
    pub const L32: u16 = 105;
    pub const L64: u16 = 106;
    pub const LP: u16 = 107;
    pub const EUI48: u16 = 108;
    pub const EUI64: u16 = 109;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
    pub const URI: u16 = 256;
    pub const AVC: u16 = 258;
    pub const DLV: u16 = 32769;
}

/// True for meta and query-only types that can never be stored in a zone.
pub fn is_meta(t: u16) -> bool {
    t == rtype::OPT || (128..=255).contains(&t) || t == 0
}

/// One piece of an rdata layout, as far as names are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// A domain name; `compress` says whether RFC 3597 allows compressing it.
    Name { compress: bool },
    /// Fixed number of octets.
    Fixed(usize),
    /// A <character-string>.
    CharStr,
}

fn layout(t: u16) -> &'static [Field] {
    use rtype::*;
    const C: Field = Field::Name { compress: true };
    const N: Field = Field::Name { compress: false };
    match t {
        NS | MD | MF | CNAME | MB | MG | MR | PTR => &[C],
        SOA => &[C, C, Field::Fixed(20)],
        MINFO => &[C, C],
        MX => &[Field::Fixed(2), C],
        DNAME => &[N],
        RP => &[N, N],
        AFSDB | RT | KX | LP => &[Field::Fixed(2), N],
        PX => &[Field::Fixed(2), N, N],
        SRV => &[Field::Fixed(6), N],
        NAPTR => &[Field::Fixed(4), Field::CharStr, Field::CharStr, Field::CharStr, N],
        SIG | RRSIG => &[Field::Fixed(18), N],
        NXT | NSEC => &[N],
        SVCB | HTTPS => &[Field::Fixed(2), N],
        _ => &[],
    }
}

/// A domain name found inside rdata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdataName {
    /// Offset of the name within the rdata.
    pub offset: usize,
    /// Length of the (uncompressed) name.
    pub len: usize,
    /// RFC 3597 §4: may be compressed in a response.
    pub compress: bool,
}

/// Calls `f` for each domain name in uncompressed rdata of type `t`, in order. Fails if the
/// rdata does not hold the names its type promises.
pub fn for_each_name(t: u16, rdata: &[u8], mut f: impl FnMut(RdataName)) -> Result<(), name::NameError> {
    let mut pos = 0usize;
    for field in layout(t) {
        match *field {
            Field::Fixed(n) => pos += n,
            Field::CharStr => pos += 1 + *rdata.get(pos).ok_or(name::NameError::Truncated)? as usize,
            Field::Name { compress } => {
                if pos > rdata.len() {
                    return Err(name::NameError::Truncated);
                }
                let len = name::uncompressed_len(rdata, pos)?;
                f(RdataName { offset: pos, len, compress });
                pos += len;
            }
        }
    }
    if pos > rdata.len() {
        return Err(name::NameError::Truncated);
    }
    Ok(())
}

/// The domain names in uncompressed rdata of type `t`, in order.
pub fn names_in(t: u16, rdata: &[u8]) -> Result<Vec<RdataName>, name::NameError> {
    let mut out = Vec::new();
    for_each_name(t, rdata, |n| out.push(n))?;
    Ok(out)
}

/// True if two rdata of type `t` are equal in canonical form (names compared
/// case-insensitively where RFC 4034 §6.2 lowercases them). Does not allocate.
pub fn canonical_eq(t: u16, a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    if !lowercase_in_canonical_form(t) {
        return false;
    }
    // Length octets are below 64, so folding ASCII case over a whole name region is exact.
    let mut pos = 0;
    let mut same = true;
    let ok = for_each_name(t, a, |n| {
        same &= a[pos..n.offset] == b[pos..n.offset]
            && a[n.offset..n.offset + n.len].eq_ignore_ascii_case(&b[n.offset..n.offset + n.len]);
        pos = n.offset + n.len;
    });
    ok.is_ok() && same && a[pos..] == b[pos..]
}

/// RFC 4034 §6.2 as amended by RFC 6840 §5.1: types whose rdata names are lowercased in
/// canonical form.
pub fn lowercase_in_canonical_form(t: u16) -> bool {
    use rtype::*;
    matches!(
        t,
        NS | MD
            | MF
            | CNAME
            | SOA
            | MB
            | MG
            | MR
            | PTR
            | MINFO
            | MX
            | RP
            | AFSDB
            | RT
            | SIG
            | PX
            | NXT
            | NAPTR
            | KX
            | SRV
            | DNAME
            | A6
    )
}

/// Canonical form of rdata (RFC 4034 §6.2): names lowercased where the type says so.
pub fn canonical_rdata(t: u16, rdata: &[u8]) -> Vec<u8> {
    let mut v = rdata.to_vec();
    if lowercase_in_canonical_form(t) {
        if let Ok(names) = names_in(t, rdata) {
            for n in names {
                name::lowercase_in_place(&mut v[n.offset..n.offset + n.len]);
            }
        }
    }
    v
}

/// Target names that call for additional-section A/AAAA records (RFC 1035 §3.3,
/// RFC 2782): NS, MX and SRV.
pub fn additional_target(t: u16, rdata: &[u8]) -> Option<RdataName> {
    match t {
        rtype::NS | rtype::MX | rtype::SRV => names_in(t, rdata).ok()?.into_iter().last(),
        _ => None,
    }
}

/// Reads rdata of type `t` at `msg[start..start + rdlen]`, expanding compressed names
/// (which only RFC 1035 types may contain), into uncompressed wire form.
pub fn decompress(t: u16, msg: &[u8], start: usize, rdlen: usize) -> Result<Vec<u8>, name::NameError> {
    let end = start + rdlen;
    let rdata = msg.get(start..end).ok_or(name::NameError::Truncated)?;
    let mut out = Vec::with_capacity(rdlen + 16);
    let mut pos = start;
    for f in layout(t) {
        match *f {
            Field::Fixed(n) => {
                out.extend_from_slice(
                    msg.get(pos..pos + n).filter(|_| pos + n <= end).ok_or(name::NameError::Truncated)?,
                );
                pos += n;
            }
            Field::CharStr => {
                let n = 1 + *rdata.get(pos - start).ok_or(name::NameError::Truncated)? as usize;
                out.extend_from_slice(
                    msg.get(pos..pos + n).filter(|_| pos + n <= end).ok_or(name::NameError::Truncated)?,
                );
                pos += n;
            }
            Field::Name { compress } => {
                let mut buf = [0u8; 256];
                let (next, len) = if compress {
                    name::read_compressed(&msg[..end], pos, &mut buf)?
                } else {
                    let len = name::uncompressed_len(&msg[..end], pos)?;
                    buf[..len].copy_from_slice(&msg[pos..pos + len]);
                    (pos + len, len)
                };
                out.extend_from_slice(&buf[..len]);
                pos = next;
            }
        }
    }
    if pos > end {
        return Err(name::NameError::Truncated);
    }
    out.extend_from_slice(&msg[pos..end]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soa_and_mx_names() {
        let soa =
            b"\x02ns\x00\x02hm\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05";
        let n = names_in(rtype::SOA, soa).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].offset, n[0].len), (0, 4));
        assert_eq!((n[1].offset, n[1].len), (4, 4));
        let mx = b"\x00\x0a\x04MAIL\x00";
        let t = additional_target(rtype::MX, mx).unwrap();
        assert_eq!((t.offset, t.len, t.compress), (2, 6, true));
        assert_eq!(canonical_rdata(rtype::MX, mx), b"\x00\x0a\x04mail\x00");
        // RRSIG signer names keep their case in canonical form (RFC 6840 §5.1).
        assert!(!lowercase_in_canonical_form(rtype::RRSIG));
        assert!(names_in(rtype::MX, b"\x00\x0a\x04MA").is_err());
        assert!(canonical_eq(rtype::MX, mx, b"\x00\x0a\x04mail\x00"));
        assert!(!canonical_eq(rtype::MX, mx, b"\x00\x0b\x04mail\x00"));
        assert!(!canonical_eq(rtype::TXT, b"\x01A", b"\x01a"));
    }
}
