//! The one strict way to apply a changeset to a zone: what a journal replay and an IXFR
//! from a primary both use, so a change that does not belong to this version of the zone is
//! refused the same way wherever it comes from (Knot and BIND refuse such an IXFR too).

use super::{soa_serial, Changeset, InsertError, SrcPos, Zone};
use crate::wire::name::Name;

/// Why a changeset does not apply to a zone (worded to follow "the change" or "IXFR").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("starts at serial {}, the zone is at serial {}", opt(*.from), opt(*.at))]
    WrongStart { from: Option<u32>, at: Option<u32> },
    #[error("removes a record the zone does not have: {owner} type {rtype}")]
    Missing { owner: Name, rtype: u16 },
    #[error("removes {owner} type {rtype} with TTL {ttl}, the zone has TTL {have}")]
    OtherTtl { owner: Name, rtype: u16, ttl: u32, have: u32 },
    #[error("adds a record the zone already has: {owner} type {rtype}")]
    Present { owner: Name, rtype: u16 },
    #[error("adds what a zone cannot hold: {0}")]
    Insert(#[from] InsertError),
    #[error("leaves the zone at serial {}, not {}", opt(*.at), opt(*.to))]
    WrongEnd { to: Option<u32>, at: Option<u32> },
}

fn opt(s: Option<u32>) -> String {
    s.map_or_else(|| "(none)".into(), |s| s.to_string())
}

impl Zone {
    /// Applies `cs` strictly: the zone must be at the serial the change starts from (when it
    /// names one), every record removed must be in the zone with the same TTL, every record
    /// added must not be (nor be added twice), and the zone must end at the new SOA's
    /// serial. On an error the zone is left part-changed: apply to a copy, or throw it away.
    pub fn apply_strict(&mut self, cs: &Changeset) -> Result<(), ApplyError> {
        let from = cs.soa_from.as_ref().and_then(|s| soa_serial(&s.rdata));
        if cs.soa_from.is_some() && self.serial() != from {
            return Err(ApplyError::WrongStart { from, at: self.serial() });
        }
        for r in &cs.removed {
            if !self.contains_record(&r.owner, r.rtype, Some(r.ttl), &r.rdata) {
                let (owner, rtype) = (r.owner.clone(), r.rtype);
                return Err(match self.rrset_ttl(&r.owner, r.rtype, &r.rdata) {
                    Some(have) => ApplyError::OtherTtl { owner, rtype, ttl: r.ttl, have },
                    None => ApplyError::Missing { owner, rtype },
                });
            }
            // Removed at once, so that a record removed twice is missing the second time.
            self.remove(&r.owner, r.rtype, &r.rdata);
        }
        for r in &cs.added {
            if self.contains_record(&r.owner, r.rtype, None, &r.rdata) {
                return Err(ApplyError::Present { owner: r.owner.clone(), rtype: r.rtype });
            }
            self.insert(&r.owner, r.rtype, r.ttl, &r.rdata, SrcPos::default())?;
        }
        if cs.soa_to.is_some() {
            let soa = Changeset { soa_to: cs.soa_to.clone(), ..Default::default() };
            self.apply(&soa)?;
        }
        let to = cs.soa_to.as_ref().and_then(|s| soa_serial(&s.rdata));
        if cs.soa_to.is_some() && self.serial() != to {
            return Err(ApplyError::WrongEnd { to, at: self.serial() });
        }
        Ok(())
    }

    /// The TTL of the RRset that holds this record, if the zone has it.
    fn rrset_ttl(&self, owner: &Name, t: u16, rdata: &[u8]) -> Option<u32> {
        self.contains_record(owner, t, None, rdata).then(|| self.rrset_of(owner, t, rdata).map(|s| s.ttl)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rdata::rtype;
    use crate::zone::Record;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    fn soa(serial: u32) -> Record {
        let mut v = b"\x02ns\x02ex\x00\x02hm\x02ex\x00".to_vec();
        for x in [serial, 3600, 600, 86400, 300] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        Record { owner: n("ex."), rtype: rtype::SOA, ttl: 3600, rdata: v.into() }
    }

    fn a(owner: &str, ttl: u32, last: u8) -> Record {
        Record { owner: n(owner), rtype: rtype::A, ttl, rdata: vec![192, 0, 2, last].into() }
    }

    fn zone() -> Zone {
        let mut z = Zone::new(&n("ex."));
        let s = soa(1);
        z.insert(&s.owner, s.rtype, s.ttl, &s.rdata, SrcPos::default()).unwrap();
        let r = a("www.ex.", 300, 1);
        z.insert(&r.owner, r.rtype, r.ttl, &r.rdata, SrcPos::default()).unwrap();
        z
    }

    fn change(removed: Vec<Record>, added: Vec<Record>) -> Changeset {
        Changeset { soa_from: Some(soa(1)), soa_to: Some(soa(2)), removed, added }
    }

    #[test]
    fn a_change_that_fits_applies() {
        let mut z = zone();
        z.apply_strict(&change(vec![a("www.ex.", 300, 1)], vec![a("www.ex.", 300, 2), a("x.ex.", 60, 3)])).unwrap();
        assert_eq!(z.serial(), Some(2));
        assert!(z.contains_record(&n("www.ex."), rtype::A, Some(300), &[192, 0, 2, 2]));
        assert!(!z.contains_record(&n("www.ex."), rtype::A, None, &[192, 0, 2, 1]));
        assert!(z.contains_record(&n("x.ex."), rtype::A, Some(60), &[192, 0, 2, 3]));
    }

    #[test]
    fn a_change_that_does_not_fit_is_refused() {
        let www = || a("www.ex.", 300, 1);
        let cases: Vec<(Changeset, ApplyError)> = vec![
            (
                Changeset { soa_from: Some(soa(5)), ..change(vec![], vec![]) },
                ApplyError::WrongStart { from: Some(5), at: Some(1) },
            ),
            (change(vec![a("www.ex.", 300, 9)], vec![]), ApplyError::Missing { owner: n("www.ex."), rtype: rtype::A }),
            (
                change(vec![a("www.ex.", 60, 1)], vec![]),
                ApplyError::OtherTtl { owner: n("www.ex."), rtype: rtype::A, ttl: 60, have: 300 },
            ),
            (change(vec![www(), www()], vec![]), ApplyError::Missing { owner: n("www.ex."), rtype: rtype::A }),
            (change(vec![], vec![www()]), ApplyError::Present { owner: n("www.ex."), rtype: rtype::A }),
            (
                change(vec![], vec![a("y.ex.", 300, 7), a("y.ex.", 300, 7)]),
                ApplyError::Present { owner: n("y.ex."), rtype: rtype::A },
            ),
            (
                change(vec![], vec![a("www.example.", 300, 7)]),
                ApplyError::Insert(InsertError::OutOfZone { name: n("www.example."), origin: n("ex.") }),
            ),
        ];
        for (cs, want) in cases {
            let mut z = zone();
            assert_eq!(z.apply_strict(&cs), Err(want));
        }
        assert_eq!(
            ApplyError::OtherTtl { owner: n("www.ex."), rtype: 1, ttl: 60, have: 300 }.to_string(),
            "removes www.ex. type 1 with TTL 60, the zone has TTL 300"
        );
    }
}
