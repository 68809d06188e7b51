//! Whole-zone checks: what makes a zone unservable (errors) or suspicious (warnings).
//!
//! Record-level problems (syntax, out-of-zone owners, a second SOA or CNAME, differing
//! TTLs) are found while parsing; this pass looks at the zone as a tree. The checks of a
//! signed zone's proof material and signature times are in [`dnssec`] (they depend on the
//! time, which the caller gives).

pub mod dnssec;

use super::parse::{type_name, Loaded, Severity};
use super::{SrcPos, Zone};
use crate::wire::name::Name;
use crate::wire::rdata::{self, rtype};

/// Types that may sit beside a CNAME (RFC 4035 §2.5, RFC 2181 §10.1).
fn allowed_beside_cname(t: u16) -> bool {
    matches!(t, rtype::CNAME | rtype::RRSIG | rtype::NSEC)
}

/// The proper ancestors of a wire name that lie below the apex (whose length is `apex_len`).
fn ancestors(w: &[u8], apex_len: usize) -> impl Iterator<Item = &[u8]> {
    let mut i = 0usize;
    std::iter::from_fn(move || {
        if w.len() - i <= apex_len {
            return None;
        }
        i += w[i] as usize + 1;
        (w.len() - i > apex_len).then(|| &w[i..])
    })
}

/// Runs every check, adding diagnostics to `loaded`.
pub fn check(loaded: &mut Loaded) {
    let found = problems(&loaded.zone);
    add(loaded, found);
}

/// [`check`], and for a signed zone the DNSSEC checks ([`dnssec::problems`]) judged with
/// `opts` (the time among them).
pub fn check_signed(loaded: &mut Loaded, opts: &dnssec::Options) {
    let mut found = problems(&loaded.zone);
    found.extend(dnssec::problems(&loaded.zone, opts));
    add(loaded, found);
}

/// A problem found by [`problems`]: severity, where, message.
pub type Problem = (Severity, SrcPos, String);

/// Adds what [`problems`] found to the diagnostics of `loaded`, which it keeps in file and
/// line order.
pub fn add(loaded: &mut Loaded, found: Vec<Problem>) {
    for (sev, at, msg) in found {
        loaded.report(sev, at, msg);
    }
    loaded.diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
}

/// Every whole-zone rule the zone breaks (it only reads the zone, so it can run beside
/// something else that does).
pub fn problems(zone: &Zone) -> Vec<Problem> {
    let mut found: Vec<Problem> = Vec::new();
    let origin = zone.origin().clone();
    let first_line = SrcPos { file: 0, line: 1 };
    match zone.get(&origin) {
        None => found.push((Severity::Error, first_line, format!("no SOA record at the zone apex {origin}"))),
        Some(apex) => {
            let soa_at = apex.get(rtype::SOA).map(|s| s.src);
            if soa_at.is_none() {
                found.push((Severity::Error, first_line, format!("no SOA record at the zone apex {origin}")));
            }
            if apex.get(rtype::NS).is_none() {
                found.push((
                    Severity::Error,
                    soa_at.unwrap_or(first_line),
                    format!("no NS records at the zone apex {origin}"),
                ));
            }
        }
    }
    let has_dname = zone.nodes().any(|n| n.rrsets.has(rtype::DNAME));
    for node in zone.nodes() {
        let sets = &node.rrsets;
        let (soa, cname, ns) = (sets.has(rtype::SOA), sets.has(rtype::CNAME), sets.has(rtype::NS));
        if soa && node.name != origin {
            if let Some(soa) = node.get(rtype::SOA) {
                found.push((
                    Severity::Error,
                    soa.src,
                    format!("SOA record at {} is not at the zone apex {origin}", node.name),
                ));
            }
        }
        if let Some(cname) = node.get(rtype::CNAME).filter(|_| cname) {
            for (other_t, other) in &node.rrsets {
                if !allowed_beside_cname(other_t) {
                    let at = cname.src.max(other.src);
                    found.push((
                        Severity::Error,
                        at,
                        format!("CNAME and other data ({}) at {} (RFC 2181 §10.1)", type_name(other_t), node.name),
                    ));
                }
            }
        }
        let below_dname = has_dname
            && ancestors(node.name.as_wire(), origin.len())
                .any(|a| zone.get_wire(a).is_some_and(|n| n.rrsets.has(rtype::DNAME)));
        if below_dname {
            if let Some(set) = node.rrsets.values().min_by_key(|s| s.src) {
                found.push((
                    Severity::Error,
                    set.src,
                    format!("{} lies below a DNAME (RFC 6672 §2.3: no data below a DNAME)", node.name),
                ));
            }
        }
        // NS targets inside the zone need address records: glue if below a cut.
        if let Some(ns) = node.get(rtype::NS).filter(|_| ns) {
            if ancestors(node.name.as_wire(), origin.len())
                .any(|a| zone.get_wire(a).is_some_and(|n| n.rrsets.has(rtype::NS)))
            {
                continue;
            }
            for r in &ns.rdata {
                let Some(target) = rdata::additional_target(rtype::NS, r) else { continue };
                let Ok(target) = Name::from_wire(&r[target.offset..target.offset + target.len]) else { continue };
                if !target.ends_with(&origin) {
                    continue;
                }
                let has_addr =
                    zone.get(&target).is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
                if !has_addr {
                    let below_cut =
                        (target != origin && zone.rrset(&target, rtype::NS).is_some()) || cut_above(zone, &target);
                    let what = if below_cut { "missing glue: " } else { "" };
                    found.push((
                        Severity::Warning,
                        ns.src,
                        format!("{what}NS target {target} of {} has no A or AAAA record in the zone", node.name),
                    ));
                }
            }
        }
    }
    found
}

/// True if a delegation lies on the path from the apex down to `name` (for names that do
/// not exist, whose flags the tree cannot give).
fn cut_above(zone: &Zone, name: &Name) -> bool {
    let mut cur = name.parent();
    while let Some(p) = cur {
        if p.len() <= zone.origin().len() {
            return false;
        }
        if zone.rrset(&p, rtype::NS).is_some() {
            return true;
        }
        cur = p.parent();
    }
    false
}
