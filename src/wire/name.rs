//! Domain names in wire form: parsing from presentation text and from messages (with
//! compression), case folding, canonical ordering (RFC 4034 §6.1) and printing.
//!
//! A [`Name`] always holds an absolute, uncompressed name in wire form. The functions that
//! read names out of a message work on byte slices and never allocate.

use std::cmp::Ordering;
use std::fmt;

/// Longest name in wire form, root label included (RFC 1035 §3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("label longer than 63 octets")]
    LongLabel,
    #[error("name longer than 255 octets")]
    LongName,
    #[error("empty label")]
    EmptyLabel,
    #[error("bad escape sequence")]
    BadEscape,
    #[error("relative name without an origin")]
    NoOrigin,
    #[error("name runs past the end of the message")]
    Truncated,
    #[error("bad compression pointer")]
    BadPointer,
    #[error("unsupported label type")]
    BadLabelType,
}

/// An absolute domain name in uncompressed wire form, case preserved.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Box<[u8]>);

impl Name {
    /// The root name.
    pub fn root() -> Name {
        Name(Box::new([0]))
    }

    /// Takes a complete uncompressed wire name (checked).
    pub fn from_wire(wire: &[u8]) -> Result<Name, NameError> {
        let len = uncompressed_len(wire, 0)?;
        if len != wire.len() {
            return Err(NameError::Truncated);
        }
        Ok(Name(wire.into()))
    }

    /// Parses presentation format (`www.example.com.`, `www`, `@`, `a\.b`, `\065`).
    /// Relative names are completed with `origin`.
    pub fn parse_text(text: &[u8], origin: Option<&Name>) -> Result<Name, NameError> {
        let mut out = Vec::with_capacity(text.len() + 2 + origin.map_or(0, Name::len));
        parse_text_into(text, origin.map(Name::as_wire), &mut out)?;
        Ok(Name(out.into_boxed_slice()))
    }

    /// Takes a wire name the caller knows to be well formed (read by this module before).
    pub(crate) fn from_wire_trusted(wire: &[u8]) -> Name {
        debug_assert_eq!(uncompressed_len(wire, 0), Ok(wire.len()));
        Name(wire.into())
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The same name in lower case (RFC 4343 folds ASCII only).
    pub fn to_lowercase(&self) -> Name {
        let mut v = self.0.clone();
        lowercase_in_place(&mut v);
        Name(v)
    }

    /// Number of labels, root excluded.
    pub fn label_count(&self) -> usize {
        labels(&self.0).count()
    }

    /// Iterates over the labels (without length octets), leftmost first, root excluded.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        labels(&self.0)
    }

    /// The name with its leftmost label removed; None for the root.
    pub fn parent(&self) -> Option<Name> {
        if self.is_root() {
            return None;
        }
        let skip = self.0[0] as usize + 1;
        Some(Name(self.0[skip..].into()))
    }

    /// True if `self` equals `ancestor` or lies below it (case-insensitive).
    pub fn ends_with(&self, ancestor: &Name) -> bool {
        is_suffix_wire(&self.0, ancestor.as_wire())
    }

    /// True if the leftmost label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0.len() >= 2 && self.0[0] == 1 && self.0[1] == b'*'
    }

    /// Prepends one label.
    pub fn prepend(&self, label: &[u8]) -> Result<Name, NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LongLabel);
        }
        if self.0.len() + label.len() + 1 > MAX_NAME_LEN {
            return Err(NameError::LongName);
        }
        let mut v = Vec::with_capacity(self.0.len() + label.len() + 1);
        v.push(label.len() as u8);
        v.extend_from_slice(label);
        v.extend_from_slice(&self.0);
        Ok(Name(v.into_boxed_slice()))
    }

    /// Compares in RFC 4034 §6.1 canonical order (case-insensitive, rightmost label first).
    pub fn canonical_cmp(&self, other: &Name) -> Ordering {
        canonical_cmp_wire(&self.0, &other.0)
    }

    /// A byte string whose plain byte order is the canonical order of the (lowercased)
    /// name: labels reversed, each octet widened so that a label ends with the smallest
    /// value. Used as a sort key for large zones, where it turns every comparison into a
    /// `memcmp`.
    pub fn canonical_key(&self) -> Vec<u8> {
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(8);
        let mut i = 0;
        while self.0[i] != 0 {
            let len = self.0[i] as usize;
            spans.push((i + 1, i + 1 + len));
            i += len + 1;
        }
        let mut key = Vec::with_capacity(self.0.len() * 2);
        for &(s, e) in spans.iter().rev() {
            for &b in &self.0[s..e] {
                let b = b.to_ascii_lowercase() as u16 + 1;
                key.extend_from_slice(&b.to_be_bytes());
            }
            key.extend_from_slice(&[0, 0]);
        }
        key
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(&self.0, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Writes a wire name (uncompressed) in presentation format, absolute, with escapes.
pub fn write_text(wire: &[u8], f: &mut impl fmt::Write) -> fmt::Result {
    if wire.len() <= 1 {
        return f.write_char('.');
    }
    for label in labels(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

/// Decodes one backslash escape at the start of `s` (`\X` or `\DDD`): (octet, bytes used).
pub fn unescape(s: &[u8]) -> Result<(u8, usize), NameError> {
    debug_assert_eq!(s.first(), Some(&b'\\'));
    match s.get(1) {
        None => Err(NameError::BadEscape),
        Some(d) if d.is_ascii_digit() => {
            if s.len() < 4 || !s[2].is_ascii_digit() || !s[3].is_ascii_digit() {
                return Err(NameError::BadEscape);
            }
            let v = (s[1] - b'0') as u32 * 100 + (s[2] - b'0') as u32 * 10 + (s[3] - b'0') as u32;
            if v > 255 {
                return Err(NameError::BadEscape);
            }
            Ok((v as u8, 4))
        }
        Some(&c) => Ok((c, 2)),
    }
}

/// [`Name::parse_text`] without allocating: appends the wire form of `text` (completed with
/// the wire name `origin` if relative) to `out`. On error `out` holds a partial name.
pub fn parse_text_into(text: &[u8], origin: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), NameError> {
    if text == b"@" {
        out.extend_from_slice(origin.ok_or(NameError::NoOrigin)?);
        return Ok(());
    }
    if text == b"." {
        out.push(0);
        return Ok(());
    }
    let base = out.len();
    let mut label_start = base;
    out.push(0);
    let mut i = 0;
    let mut absolute = false;
    while i < text.len() {
        // A run of plain octets is copied at once.
        let run = i;
        while i < text.len() && text[i] != b'.' && text[i] != b'\\' {
            i += 1;
        }
        if i > run {
            out.extend_from_slice(&text[run..i]);
            if out.len() - label_start - 1 > MAX_LABEL_LEN {
                return Err(NameError::LongLabel);
            }
            if i == text.len() {
                break;
            }
        }
        if text[i] == b'.' {
            let len = out.len() - label_start - 1;
            if len == 0 {
                return Err(NameError::EmptyLabel);
            }
            out[label_start] = len as u8;
            i += 1;
            if i == text.len() {
                absolute = true;
                break;
            }
            label_start = out.len();
            out.push(0);
        } else {
            let (byte, used) = unescape(&text[i..])?;
            out.push(byte);
            i += used;
            if out.len() - label_start - 1 > MAX_LABEL_LEN {
                return Err(NameError::LongLabel);
            }
        }
    }
    if absolute {
        out.push(0);
    } else {
        let len = out.len() - label_start - 1;
        if len == 0 {
            return Err(NameError::EmptyLabel);
        }
        out[label_start] = len as u8;
        out.extend_from_slice(origin.ok_or(NameError::NoOrigin)?);
    }
    if out.len() - base > MAX_NAME_LEN {
        return Err(NameError::LongName);
    }
    Ok(())
}

/// A wire name (uncompressed, well formed) shown in presentation format.
pub struct Display<'a>(pub &'a [u8]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text(self.0, f)
    }
}

/// Copies a wire name into `buf` in lower case (RFC 4343 folds ASCII only; length octets
/// are below 64, so folding every octet is exact) and returns the copy.
pub fn lowercase_into<'b>(wire: &[u8], buf: &'b mut [u8; 256]) -> &'b [u8] {
    let out = &mut buf[..wire.len()];
    out.copy_from_slice(wire);
    out.make_ascii_lowercase();
    out
}

/// Iterates over the labels of an uncompressed wire name (which must be well formed).
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let len = *wire.get(i)? as usize;
        if len == 0 || i + 1 + len > wire.len() {
            return None;
        }
        let l = &wire[i + 1..i + 1 + len];
        i += len + 1;
        Some(l)
    })
}

/// Whether two octet strings are equal, compared a word at a time (names are short, and a
/// call to `memcmp` costs more than the comparison).
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if load8(a, i) != load8(b, i) {
                return false;
            }
            i += 8;
        }
        load8(a, n - 8) == load8(b, n - 8)
    } else if n >= 4 {
        let l4 = |s: &[u8], at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
        l4(a, 0) == l4(b, 0) && l4(a, n - 4) == l4(b, n - 4)
    } else {
        a == b
    }
}

/// Eight octets at `at`, little-endian.
#[inline(always)]
pub fn load8(b: &[u8], at: usize) -> u64 {
    let w = &b[at..at + 8];
    u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
}

/// ASCII-lowercases a wire name in place. Every byte is treated alike, without branches so
/// that it vectorises: length octets are at most 63, below `A`, so they are left alone.
#[inline]
pub fn lowercase_in_place(wire: &mut [u8]) {
    for c in wire {
        *c |= (c.wrapping_sub(b'A') < 26) as u8 * 0x20;
    }
}

/// Length of the uncompressed name at `buf[start..]`, checked (no pointers allowed).
pub fn uncompressed_len(buf: &[u8], start: usize) -> Result<usize, NameError> {
    let mut i = start;
    loop {
        let len = *buf.get(i).ok_or(NameError::Truncated)? as usize;
        if len & 0xC0 != 0 {
            return Err(NameError::BadLabelType);
        }
        if len == 0 {
            i += 1;
            break;
        }
        i += len + 1;
        if i - start > MAX_NAME_LEN {
            return Err(NameError::LongName);
        }
    }
    if i > buf.len() {
        return Err(NameError::Truncated);
    }
    if i - start > MAX_NAME_LEN {
        return Err(NameError::LongName);
    }
    Ok(i - start)
}

/// Reads a possibly compressed name from a message starting at `start`, appending its
/// uncompressed wire form to `out` (which the caller sizes at 255 bytes). Returns the
/// offset just past the name's bytes at `start`. Pointers must point backwards, which also
/// rules out loops.
pub fn read_compressed(msg: &[u8], start: usize, out: &mut [u8; 256]) -> Result<(usize, usize), NameError> {
    let mut pos = start;
    let mut end = None;
    let mut n = 0usize;
    let mut limit = start; // pointers must go strictly before this
    loop {
        let len = *msg.get(pos).ok_or(NameError::Truncated)? as usize;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    out[n] = 0;
                    n += 1;
                    let next = end.unwrap_or(pos + 1);
                    return Ok((next, n));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(NameError::Truncated)?;
                if n + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(NameError::LongName);
                }
                out[n] = len as u8;
                out[n + 1..n + 1 + len].copy_from_slice(label);
                n += 1 + len;
                pos += 1 + len;
            }
            0xC0 => {
                let lo = *msg.get(pos + 1).ok_or(NameError::Truncated)? as usize;
                let target = ((len & 0x3F) << 8) | lo;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                if target >= limit {
                    return Err(NameError::BadPointer);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(NameError::BadLabelType),
        }
    }
}

/// Case-insensitive test that `name` is `suffix` or lies below it (both uncompressed).
pub fn is_suffix_wire(name: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > name.len() {
        return false;
    }
    let start = name.len() - suffix.len();
    // `start` must fall on a label boundary.
    let mut i = 0;
    while i < start {
        i += name[i] as usize + 1;
    }
    i == start && name[start..].eq_ignore_ascii_case(suffix)
}

/// [`is_suffix_wire`] for names already lowercased: whether `name` is `suffix` or below it.
/// The bytes are compared first, which rejects most names at once, then the label boundary.
#[inline]
pub fn is_suffix_lower(name: &[u8], suffix: &[u8]) -> bool {
    let Some(start) = name.len().checked_sub(suffix.len()) else { return false };
    if !bytes_eq(&name[start..], suffix) {
        return false;
    }
    let mut i = 0;
    while i < start {
        i += name[i] as usize + 1;
    }
    i == start
}

/// RFC 4034 §6.1 canonical order of two lowercased uncompressed wire names, without
/// allocating (what the answer engine's binary search over an NSEC chain compares).
pub fn canonical_cmp_lower(a: &[u8], b: &[u8]) -> Ordering {
    let mut sa = [0u8; 128];
    let mut sb = [0u8; 128];
    let na = label_starts(a, &mut sa);
    let nb = label_starts(b, &mut sb);
    for k in 1..=na.min(nb) {
        let (x, y) = (sa[na - k] as usize, sb[nb - k] as usize);
        let ord = a[x + 1..x + 1 + a[x] as usize].cmp(&b[y + 1..y + 1 + b[y] as usize]);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// The first eight octets of the canonical key of `name` (lowercase wire form) below a
/// zone apex `origin_len` octets long, big-endian: its labels before the apex right to left,
/// each followed by 0x00, with 0x00 and 0x01 inside a label written 01 01 and 01 02; zeros
/// after a shorter key. Keys compare as the names do in canonical order (RFC 4034 §6.1), so
/// these prefixes are in that order too (ties need the names).
pub fn canonical_prefix(name: &[u8], origin_len: usize) -> u64 {
    let mut starts = [0u8; 128];
    let n = label_starts(&name[..name.len().saturating_sub(origin_len)], &mut starts);
    let mut out = [0u8; 8];
    let mut w = 0;
    'labels: for &s in starts[..n].iter().rev() {
        let s = s as usize;
        for &b in name.get(s + 1..s + 1 + name[s] as usize).unwrap_or_default() {
            let esc: &[u8] = match b {
                0 => &[1, 1],
                1 => &[1, 2],
                _ => std::slice::from_ref(&b),
            };
            for &e in esc {
                if w == out.len() {
                    break 'labels;
                }
                out[w] = e;
                w += 1;
            }
        }
        if w == out.len() {
            break;
        }
        out[w] = 0;
        w += 1;
    }
    u64::from_be_bytes(out)
}

/// The offsets of the labels of a wire name (the root's excluded), into `out`; their number.
fn label_starts(w: &[u8], out: &mut [u8; 128]) -> usize {
    let (mut i, mut n) = (0usize, 0usize);
    while i < w.len() && w[i] != 0 && n < out.len() {
        out[n] = i as u8;
        n += 1;
        i += w[i] as usize + 1;
    }
    n
}

/// RFC 4034 §6.1 canonical order of two uncompressed wire names.
pub fn canonical_cmp_wire(a: &[u8], b: &[u8]) -> Ordering {
    let la: Vec<&[u8]> = labels(a).collect();
    let lb: Vec<&[u8]> = labels(b).collect();
    for (x, y) in la.iter().rev().zip(lb.iter().rev()) {
        let ord = x.iter().map(u8::to_ascii_lowercase).cmp(y.iter().map(u8::to_ascii_lowercase));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    la.len().cmp(&lb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    #[test]
    fn canonical_order_without_allocating() {
        // RFC 4034 §6.1's example, in order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "z.a.example.",
            "zabc.a.example.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let w: Vec<Name> = names.iter().map(|s| n(s).to_lowercase()).collect();
        for i in 0..w.len() {
            for j in 0..w.len() {
                assert_eq!(canonical_cmp_lower(w[i].as_wire(), w[j].as_wire()), i.cmp(&j), "{} {}", names[i], names[j]);
                assert_eq!(canonical_cmp_wire(w[i].as_wire(), w[j].as_wire()), i.cmp(&j));
            }
        }
    }

    #[test]
    fn parse_and_print() {
        let origin = n("example.com.");
        assert_eq!(origin.as_wire(), b"\x07example\x03com\x00");
        let www = Name::parse_text(b"www", Some(&origin)).unwrap();
        assert_eq!(www.to_string(), "www.example.com.");
        assert_eq!(Name::parse_text(b"@", Some(&origin)).unwrap(), origin);
        let esc = Name::parse_text(br"a\.b\065.", None).unwrap();
        assert_eq!(esc.as_wire(), b"\x04a.bA\x00");
        assert_eq!(esc.to_string(), r"a\.bA.");
        assert_eq!(Name::parse_text(b"www", None), Err(NameError::NoOrigin));
        assert_eq!(Name::parse_text(b"a..b.", None), Err(NameError::EmptyLabel));
        assert_eq!(Name::parse_text(br"a\256.", None), Err(NameError::BadEscape));
        assert_eq!(Name::parse_text(br"a\25", None), Err(NameError::BadEscape));
        let long = "a".repeat(64) + ".";
        assert_eq!(Name::parse_text(long.as_bytes(), None), Err(NameError::LongLabel));
        let many = "abcdefghi.".repeat(26);
        assert_eq!(Name::parse_text(many.as_bytes(), None), Err(NameError::LongName));
    }

    #[test]
    fn canonical_order_rfc4034_example() {
        // The ordered list from RFC 4034 §6.1.
        let list = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let names: Vec<Name> = list.iter().map(|s| n(s)).collect();
        for w in names.windows(2) {
            assert_eq!(w[0].canonical_cmp(&w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert!(w[0].canonical_key() < w[1].canonical_key(), "key {} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn compressed_names() {
        // header(12) + "\x03www\x07example\x03com\x00" at 12, then "\x04mail" + ptr to 16
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x03www\x07example\x03com\x00");
        let at = msg.len();
        msg.extend_from_slice(b"\x04mail\xc0\x10");
        let mut out = [0u8; 256];
        let (next, len) = read_compressed(&msg, at, &mut out).unwrap();
        assert_eq!(next, msg.len());
        assert_eq!(&out[..len], b"\x04mail\x07example\x03com\x00");
        // a pointer to itself and a forward pointer are refused
        let mut bad = vec![0u8; 12];
        bad.extend_from_slice(b"\xc0\x0c");
        assert_eq!(read_compressed(&bad, 12, &mut out), Err(NameError::BadPointer));
        let mut fwd = vec![0u8; 12];
        fwd.extend_from_slice(b"\xc0\x0e\x00");
        assert_eq!(read_compressed(&fwd, 12, &mut out), Err(NameError::BadPointer));
    }

    #[test]
    fn suffixes() {
        let a = n("www.Example.com.");
        assert!(a.ends_with(&n("example.COM.")));
        assert!(!a.ends_with(&n("le.com.")));
        assert!(a.ends_with(&Name::root()));
        assert!(n("*.x.").is_wildcard());
        assert_eq!(a.parent().unwrap().to_string(), "Example.com.");
    }

    /// The key prefixes never contradict canonical order, on names with octets 0, 1 and 2
    /// in labels, ancestors, long labels and labels that are prefixes of others.
    #[test]
    fn canonical_prefixes_follow_canonical_order() {
        let origin = Name::parse_text(b"example.", None).unwrap();
        let texts = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
            "\\000.a.example.",
            "\\001\\001.a.example.",
            "\\002.a.example.",
            "aaaaaaaaaaaa.example.",
            "aaaaaaaaaaab.example.",
            "b.aaaaaaa.example.",
            "aaaaaaa.example.",
            "aaaaaaa\\000.example.",
            "x.y.z.w.example.",
            "xx.example.",
        ];
        let names: Vec<Vec<u8>> = texts
            .iter()
            .map(|t| Name::parse_text(t.as_bytes(), None).unwrap().to_lowercase().as_wire().to_vec())
            .collect();
        for a in &names {
            for b in &names {
                let (ka, kb) = (canonical_prefix(a, origin.len()), canonical_prefix(b, origin.len()));
                let ord = canonical_cmp_lower(a, b);
                assert!(ka.cmp(&kb) == ord || ka == kb, "{a:?} {b:?}: keys {ka:x} {kb:x}, names {ord:?}");
            }
        }
    }
}
