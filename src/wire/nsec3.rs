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
///
/// The iterations hash 20 + salt octets each: with a salt of at most 35 octets that is one
/// padded block, built once, whose first 20 octets are the previous digest — straight
/// through the compression function, with no hasher state to set up and finish per round.
pub fn hash(lower_wire: &[u8], salt: &[u8], iterations: u16) -> [u8; HASH_LEN] {
    let mut digest = sha1_of(lower_wire, salt);
    if iterations == 0 {
        return digest;
    }
    let len = HASH_LEN + salt.len();
    if len > ONE_BLOCK {
        for _ in 0..iterations {
            digest = sha1_of(&digest, salt);
        }
        return digest;
    }
    let mut block = [[0u8; 64]; 1];
    pad(block.as_flattened_mut(), salt, len);
    for _ in 0..iterations {
        block[0][..HASH_LEN].copy_from_slice(&digest);
        digest = finish(&block);
    }
    digest
}

/// Most message octets one padded SHA-1 block holds (64 less the 0x80 marker and the
/// 8-octet length).
const ONE_BLOCK: usize = 55;

/// The initial SHA-1 state (FIPS 180-4 §5.3.1).
const IV: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

/// SHA-1 of `a` then `b`: up to two blocks padded here, longer input through the hasher.
fn sha1_of(a: &[u8], b: &[u8]) -> [u8; HASH_LEN] {
    let len = a.len() + b.len();
    if len > 64 + ONE_BLOCK {
        return Sha1::new().chain_update(a).chain_update(b).finalize().into();
    }
    let mut blocks = [[0u8; 64]; 2];
    let n = if len > ONE_BLOCK { 2 } else { 1 };
    let flat = &mut blocks.as_flattened_mut()[..n * 64];
    flat[..a.len()].copy_from_slice(a);
    pad(flat, b, len);
    finish(&blocks[..n])
}

/// Writes `tail` to end at `len`, then the padding and the bit length (FIPS 180-4 §5.1.1).
fn pad(blocks: &mut [u8], tail: &[u8], len: usize) {
    blocks[len - tail.len()..len].copy_from_slice(tail);
    blocks[len] = 0x80;
    let end = blocks.len();
    blocks[end - 8..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
}

fn finish(blocks: &[[u8; 64]]) -> [u8; HASH_LEN] {
    let mut state = IV;
    sha1::block_api::compress(&mut state, blocks);
    let mut out = [0u8; HASH_LEN];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
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

    /// The hasher's answer, the slow way, for every length around the block edges.
    fn reference(name: &[u8], salt: &[u8], iterations: u16) -> [u8; HASH_LEN] {
        let mut d: [u8; HASH_LEN] = Sha1::new().chain_update(name).chain_update(salt).finalize().into();
        for _ in 0..iterations {
            d = Sha1::new().chain_update(d).chain_update(salt).finalize().into();
        }
        d
    }

    #[test]
    fn padded_blocks_agree_with_the_hasher_at_every_length() {
        let bytes: Vec<u8> = (0..=255u8).map(|b| b.wrapping_mul(37).wrapping_add(11)).collect();
        for name_len in [0, 1, 20, 54, 55, 56, 63, 64, 65, 100, 118, 119, 120, 128, 200, 255] {
            for salt_len in [0, 1, 8, 34, 35, 36, 44, 99, 100, 255] {
                for iterations in [0, 1, 3] {
                    let (name, salt) = (&bytes[..name_len], &bytes[..salt_len]);
                    assert_eq!(
                        hash(name, salt, iterations),
                        reference(name, salt, iterations),
                        "{name_len} {salt_len}"
                    );
                }
            }
        }
    }
}
