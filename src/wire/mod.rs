//! DNS wire format: messages (header, question, record walker, rcodes and opcodes), names,
//! record types and rdata layouts, and serial number arithmetic. Views over byte slices; the
//! functions used on the query path do not allocate.

pub mod id;
pub mod message;
pub mod name;
pub mod nsec3;
pub mod rdata;
pub mod serial;

/// Octets of a DNS message header.
const HEADER_LEN: usize = 12;

/// Whether the four section counts of a message's header can be true of its length: a
/// question takes at least 5 octets (root name, type, class) and a record 11. A walk over
/// the sections that would size anything by the counts checks this first, so a 12-octet
/// header claiming 65,535 records of each kind costs nothing.
pub fn counts_fit(msg: &[u8]) -> bool {
    let Some(h) = msg.get(..HEADER_LEN) else { return false };
    let count = |i: usize| usize::from(u16::from_be_bytes([h[4 + 2 * i], h[5 + 2 * i]]));
    HEADER_LEN + 5 * count(0) + 11 * (count(1) + count(2) + count(3)) <= msg.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_fit() {
        let header = |qd: u16, an: u16, ns: u16, ar: u16| {
            let mut m = vec![0u8; 4];
            for c in [qd, an, ns, ar] {
                m.extend_from_slice(&c.to_be_bytes());
            }
            m
        };
        assert!(super::counts_fit(&header(0, 0, 0, 0)));
        assert!(!super::counts_fit(&header(0, 0, 0, 0)[..11]));
        // One question for the root: 5 octets.
        let mut m = header(1, 0, 0, 0);
        m.extend_from_slice(&[0, 0, 6, 0, 1]);
        assert!(super::counts_fit(&m));
        assert!(!super::counts_fit(&m[..16]));
        // One root record with empty rdata: 11 octets.
        let mut m = header(0, 0, 0, 1);
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(super::counts_fit(&m));
        assert!(!super::counts_fit(&m[..22]));
        assert!(!super::counts_fit(&header(0xffff, 0xffff, 0xffff, 0xffff)));
        let mut big = header(0, 0xffff, 0xffff, 0xffff);
        big.resize(12 + 11 * 3 * 0xffff, 0);
        assert!(super::counts_fit(&big));
    }
}
