//! Serial number arithmetic (RFC 1982, SERIAL_BITS = 32): SOA serials wrap around, so
//! "newer" is decided by the shorter way round the circle, and two serials exactly 2^31
//! apart are not comparable.

use std::cmp::Ordering;

/// Half the serial space: serials this far apart (or farther) are not comparable.
const HALF: u32 = 1 << 31;

/// Compares two serials (RFC 1982 §3.2). `None` when they are exactly 2^31 apart, where the
/// RFC leaves the comparison undefined.
pub fn compare(a: u32, b: u32) -> Option<Ordering> {
    match b.wrapping_sub(a) {
        0 => Some(Ordering::Equal),
        HALF => None,
        d if d < HALF => Some(Ordering::Less),
        _ => Some(Ordering::Greater),
    }
}

/// `a` is older than `b`.
pub fn lt(a: u32, b: u32) -> bool {
    compare(a, b) == Some(Ordering::Less)
}

/// `a` is newer than `b`.
pub fn gt(a: u32, b: u32) -> bool {
    compare(a, b) == Some(Ordering::Greater)
}

/// Serial addition (RFC 1982 §3.1): `n` must be below 2^31, otherwise the result would not
/// compare as newer. `None` for such an `n`.
pub fn add(s: u32, n: u32) -> Option<u32> {
    (n < HALF).then(|| s.wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_examples() {
        // RFC 1982 §5.2 uses SERIAL_BITS = 8; the same shapes at 32 bits:
        assert!(lt(1, 2));
        assert!(lt(u32::MAX, 0));
        assert!(lt(u32::MAX - 5, 10));
        assert!(gt(10, u32::MAX - 5));
        assert!(lt(0, HALF - 1));
        assert!(gt(0, HALF + 1));
        assert_eq!(compare(0, HALF), None);
        assert_eq!(compare(HALF, 0), None);
        assert_eq!(compare(123, 123), Some(Ordering::Equal));
        assert!(!lt(5, 5) && !gt(5, 5));
        assert_eq!(add(u32::MAX, 1), Some(0));
        assert_eq!(add(7, HALF - 1), Some(7 + HALF - 1));
        assert_eq!(add(7, HALF), None);
    }
}
