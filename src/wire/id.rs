//! Message IDs for the requests nsxdp sends (SOA queries, IXFR/AXFR requests, NOTIFY):
//! drawn from the operating system's random source, so an off-path attacker cannot guess
//! the ID an answer must carry (RFC 5452 §9.2). Matching answers to IDs is the caller's.

/// A fresh, unpredictable message ID.
///
/// From `getrandom` (the kernel's CSPRNG). Should the kernel refuse (it does not on any
/// Linux this runs on), the ID comes from the standard library's randomly keyed SipHash
/// over a counter, which is still not guessable from outside.
pub fn random() -> u16 {
    let mut b = [0u8; 2];
    match getrandom::fill(&mut b) {
        Ok(()) => u16::from_ne_bytes(b),
        Err(_) => fallback(),
    }
}

fn fallback() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4,096 IDs: nearly all distinct (a uniform draw repeats about 120 times), every bit
    /// set and clear in roughly half, and no fixed step from one to the next.
    fn check(ids: &[u16]) {
        let mut seen = std::collections::HashSet::new();
        let repeats = ids.iter().filter(|i| !seen.insert(**i)).count();
        assert!(repeats < 250, "{repeats} repeated IDs in {}", ids.len());
        for bit in 0..16 {
            let ones = ids.iter().filter(|i| *i >> bit & 1 == 1).count();
            assert!((1700..2400).contains(&ones), "bit {bit} set in {ones} of {}", ids.len());
        }
        let steps: std::collections::HashSet<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > ids.len() / 2, "only {} different steps between IDs", steps.len());
    }

    #[test]
    fn ids_are_unpredictable() {
        check(&(0..4096).map(|_| random()).collect::<Vec<_>>());
    }

    #[test]
    fn fallback_ids_are_unpredictable_too() {
        check(&(0..4096).map(|_| fallback()).collect::<Vec<_>>());
    }
}
