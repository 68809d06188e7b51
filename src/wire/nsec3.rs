//! NSEC3 owner hashing (RFC 5155 §5): the iterated SHA-1 of a name and its base32hex form
//! (RFC 4648 §7, lowercase, no padding), into fixed buffers: what the answer engine computes
//! for a query name at query time, so nothing here allocates.

use sha1::{Digest, Sha1};

/// Octets of a SHA-1 NSEC3 hash.
pub const HASH_LEN: usize = 20;
/// Characters of its base32hex form: the first label of an NSEC3 owner.
pub const LABEL_LEN: usize = 32;

/// IH(salt, name, iterations): SHA-1 of the lowercased wire name and salt, then again of the
/// digest and salt `iterations` more times.
pub fn hash(lower_wire: &[u8], salt: &[u8], iterations: u16) -> [u8; HASH_LEN] {
    let mut h = Sha1::new();
    h.update(lower_wire);
    h.update(salt);
    let mut digest: [u8; HASH_LEN] = h.finalize().into();
    for _ in 0..iterations {
        let mut h = Sha1::new();
        h.update(digest);
        h.update(salt);
        digest = h.finalize().into();
    }
    digest
}

/// The base32hex form of a hash, lowercase: an NSEC3 owner's first label. The encoding
/// keeps order, so labels compare as the hashes do.
pub fn base32hex(hash: &[u8; HASH_LEN]) -> [u8; LABEL_LEN] {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = [0u8; LABEL_LEN];
    for (chunk, o) in hash.chunks_exact(5).zip(out.chunks_exact_mut(8)) {
        let v = chunk.iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
        for (i, c) in o.iter_mut().enumerate() {
            *c = ALPHABET[(v >> (35 - 5 * i) & 31) as usize];
        }
    }
    out
}

/// The owner label of `lower_wire` in a chain with these parameters.
pub fn owner_label(lower_wire: &[u8], salt: &[u8], iterations: u16) -> [u8; LABEL_LEN] {
    base32hex(&hash(lower_wire, salt, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5155 Appendix A: "example" with salt aabbccdd and 12 iterations.
    #[test]
    fn rfc5155_examples() {
        let salt = [0xaa, 0xbb, 0xcc, 0xdd];
        assert_eq!(&owner_label(b"\x07example\x00", &salt, 12), b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom");
        assert_eq!(&owner_label(b"\x01a\x07example\x00", &salt, 12), b"35mthgpgcu1qg68fab165klnsnk3dpvl");
        assert_eq!(&owner_label(b"\x01*\x01w\x07example\x00", &salt, 12), b"r53bq7cc2uvmubfu5ocmm6pers9tk9en");
    }
}
