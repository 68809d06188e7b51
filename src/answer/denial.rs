//! Which NSEC or NSEC3 records prove a denial (RFC 4035 §3.1.3, RFC 5155 §7.2): the
//! covering NSEC found by binary search of the snapshot's chain in canonical order, the
//! NSEC3 of a name found by hashing it and searching the chain in hash order. Selection
//! only: the records are written by `Responder::flush_proofs`. No allocation.

use std::cmp::Ordering;

use super::{Responder, MAX_PROOFS};
use crate::snapshot::{ArchivedZoneImage, NONE};
use crate::wire::name::{canonical_cmp_lower, lowercase_into, MAX_NAME_LEN};
use crate::wire::nsec3::{owner_label, LABEL_LEN};
use crate::wire::rdata::rtype;

impl Responder<'_, '_> {
    /// True if node `n` is an NSEC3 owner and nothing else: such names are not names of
    /// the zone (RFC 5155 §7.2.8 — Knot and NSD answer them as nonexistent).
    #[inline]
    pub(super) fn hashed_owner(&self, n: u32) -> bool {
        let z = self.z;
        let name = z.node_name(n);
        name.len() == z.origin.len() + 1 + LABEL_LEN
            && name[0] as usize == LABEL_LEN
            && z.rrset(n, rtype::NSEC3).is_some()
            && z.node_rrsets(n).all(|r| r.rtype == rtype::NSEC3 || r.rtype == rtype::RRSIG)
    }

    /// Adds a node to the proofs (once).
    fn prove(&mut self, node: Option<u32>) {
        let Some(n) = node else { return };
        if !self.proofs[..self.n_proofs].contains(&n) && self.n_proofs < MAX_PROOFS {
            self.proofs[self.n_proofs] = n;
            self.n_proofs += 1;
        }
    }

    fn nsec3(&self) -> bool {
        !self.z.nsec3_chain.is_empty()
    }

    /// NXDOMAIN for `name` (lowercased, in the zone): NSEC covering the name and NSEC
    /// covering the wildcard at its closest encloser (RFC 4035 §3.1.3.2); NSEC3: the closest
    /// encloser proof and the NSEC3 covering the wildcard (RFC 5155 §7.2.2).
    pub(super) fn deny_name(&mut self, name: &[u8]) {
        let z = self.z;
        let Some((ce, nc, ce_node)) = self.closest_encloser(name) else { return };
        let mut wild = [0u8; 2 + MAX_NAME_LEN];
        let wlen = 2 + name.len() - ce;
        if wlen > MAX_NAME_LEN {
            return;
        }
        wild[..2].copy_from_slice(b"\x01*");
        wild[2..wlen].copy_from_slice(&name[ce..]);
        if self.nsec3() {
            // The closest encloser's NSEC3 and the one covering its wildcard are
            // precomputed; only the next closer name is hashed now.
            match z.nsec3_proofs(ce_node) {
                Some((m, w)) if w != NONE => {
                    self.prove(Some(m));
                    self.prove(nsec3_cover(z, &name[nc..]));
                    self.prove(Some(w));
                }
                m => {
                    self.prove(m.map(|(m, _)| m));
                    self.prove(nsec3_cover(z, &name[nc..]));
                    self.prove(nsec3_cover(z, &wild[..wlen]));
                }
            }
        } else {
            self.prove(nsec_cover(z, name));
            let wild = &wild[..wlen];
            // The wildcard follows its closest encloser in canonical order, so where the
            // encloser owns an NSEC (not an empty non-terminal) that NSEC nearly always
            // covers it: read, not searched for.
            self.prove(Some(ce_node).filter(|&n| own_nsec_covers(z, n, wild)).or_else(|| nsec_cover(z, wild)));
        }
    }

    /// A wildcard answer for `name` from the wildcard node `wild`: no closer match exists
    /// (RFC 4035 §3.1.3.3; RFC 5155 §7.2.6: the NSEC3 covering the next closer name).
    pub(super) fn deny_closer_match(&mut self, name: &[u8], wild: u32) {
        let z = self.z;
        if self.nsec3() {
            let ce_labels = labels(z.node_name(wild)) - 1;
            if let Some(nc) = suffix_with(name, ce_labels + 1) {
                self.prove(nsec3_cover(z, &name[nc..]));
            }
        } else {
            self.prove(nsec_cover(z, name));
        }
    }

    /// NODATA at `node` for `name` (the node's name, or a name its wildcard answers): the
    /// NSEC of the node, or for an empty non-terminal the NSEC covering it (RFC 4035
    /// §3.1.3.1); NSEC3: the NSEC3 matching the name, for a wildcard the closest encloser's
    /// and the wildcard's (RFC 5155 §7.2.3, §7.2.5), and where no NSEC3 matches (an
    /// opt-out span, DS questions and insecure referrals) the closest provable encloser
    /// proof (§7.2.4, §7.2.7).
    pub(super) fn deny_type(&mut self, name: &[u8], node: u32) {
        let z = self.z;
        let own = z.node_name(node);
        let wildcard = own.starts_with(b"\x01*") && own != name;
        if !self.nsec3() {
            if z.rrset(node, rtype::NSEC).is_some() {
                self.prove(Some(node));
            } else {
                self.prove(nsec_cover(z, name));
            }
            return;
        }
        if wildcard {
            self.prove(z.nsec3_of(z.node_parent(node)));
            self.prove(z.nsec3_of(node));
            return;
        }
        if let Some(m) = z.nsec3_of(node) {
            self.prove(Some(m));
            return;
        }
        // The closest provable encloser: the nearest ancestor with an NSEC3, and the NSEC3
        // covering the name one label below it on the way to `node` (every ancestor is a
        // node: the walk is by parent links).
        let (mut below, mut cur) = (node, z.node_parent(node));
        while cur != NONE {
            if let Some(m) = z.nsec3_of(cur) {
                self.prove(Some(m));
                self.prove(nsec3_cover(z, z.node_name(below)));
                return;
            }
            (below, cur) = (cur, z.node_parent(cur));
        }
    }

    /// The closest encloser of a name that does not exist (offset of that suffix), the
    /// next closer name (offset of the suffix one label longer) and the encloser's node.
    fn closest_encloser(&self, name: &[u8]) -> Option<(usize, usize, u32)> {
        let z = self.z;
        let mut off = 0;
        while name[off] != 0 {
            let prev = off;
            off += name[off] as usize + 1;
            if let Some(n) = z.find(&name[off..]).filter(|&n| !self.hashed_owner(n)) {
                return Some((off, prev, n));
            }
        }
        None
    }
}

fn labels(w: &[u8]) -> usize {
    crate::wire::name::labels(w).count()
}

/// Offset of the suffix of `name` with `keep` labels.
fn suffix_with(name: &[u8], keep: usize) -> Option<usize> {
    let mut skip = labels(name).checked_sub(keep)?;
    let mut off = 0;
    while skip > 0 {
        off += name[off] as usize + 1;
        skip -= 1;
    }
    Some(off)
}

/// True if the NSEC owned by `node` covers `below`, a name below it (so after it in
/// canonical order): its next owner comes after `below`, or it is the chain's last NSEC
/// (its next owner is the apex). What `nsec_cover(below)` finds, without the search.
pub(super) fn own_nsec_covers(z: &ArchivedZoneImage, node: u32, below: &[u8]) -> bool {
    let Some(r) = z.rrset(node, rtype::NSEC) else { return false };
    // One RR: owner pointer, type, class, TTL, rdlength, then the next owner name, whole.
    let Some(rdata) = z.fragment(&r).get(12..) else { return false };
    let mut end = 0;
    loop {
        match rdata.get(end) {
            Some(0) => break,
            Some(&l) if l < 64 && end + 1 + (l as usize) < MAX_NAME_LEN => end += 1 + l as usize,
            _ => return false,
        }
    }
    let mut buf = [0u8; 256];
    let next = lowercase_into(&rdata[..=end], &mut buf);
    next == &z.origin[..] || canonical_cmp_lower(next, below) == Ordering::Greater
}

/// The NSEC that matches or covers `name`: the last owner of the chain at or before it in
/// canonical order (the chain wraps: before the first owner is the last).
pub(crate) fn nsec_cover(z: &ArchivedZoneImage, name: &[u8]) -> Option<u32> {
    let chain = &z.nsec_chain;
    let last = chain.last()?.to_native();
    // The first owner after `name`: by the keys' prefixes, the names only where they tie.
    let key = crate::wire::name::canonical_prefix(name, z.origin.len());
    let (mut lo, mut hi) = (0, chain.len().min(z.nsec_keys.len()));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at_or_before = match z.nsec_keys[mid].to_native().cmp(&key) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => canonical_cmp_lower(z.node_name(chain[mid].to_native()), name) != Ordering::Greater,
        };
        if at_or_before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(if lo == 0 { last } else { chain[lo - 1].to_native() })
}

/// Position in the NSEC3 chain after the last owner whose hash is at most the hash of
/// `name`, and that hash's label.
fn nsec3_position(z: &ArchivedZoneImage, name: &[u8]) -> (usize, [u8; LABEL_LEN]) {
    let label = owner_label(name, &z.nsec3_salt, z.nsec3_iterations.to_native());
    // By the owners' first eight octets (contiguous), their labels only where those tie.
    let key = crate::snapshot::nsec3_key(&label);
    let chain = &z.nsec3_chain;
    let (mut lo, mut hi) = (0, chain.len().min(z.nsec3_keys.len()));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at_or_before = match z.nsec3_keys[mid].to_native().cmp(&key) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => z.node_name(chain[mid].to_native())[1..1 + LABEL_LEN] <= label[..],
        };
        if at_or_before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo, label)
}

/// The NSEC3 whose owner is the hash of `name`, hashed now (what the snapshot's
/// precomputed `nsec3_of` must agree with).
#[cfg(test)]
pub(crate) fn nsec3_match(z: &ArchivedZoneImage, name: &[u8]) -> Option<u32> {
    let (i, label) = nsec3_position(z, name);
    let n = z.nsec3_chain.get(i.checked_sub(1)?)?.to_native();
    (z.node_name(n)[1..1 + LABEL_LEN] == label).then_some(n)
}

/// The NSEC3 whose span covers the hash of `name` (RFC 5155 §3.1.7; the chain wraps).
pub(crate) fn nsec3_cover(z: &ArchivedZoneImage, name: &[u8]) -> Option<u32> {
    let chain = &z.nsec3_chain;
    let last = chain.last()?.to_native();
    let (i, _) = nsec3_position(z, name);
    Some(if i == 0 { last } else { chain[i - 1].to_native() })
}
