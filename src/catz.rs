//! Catalog zones (RFC 9432, schema version 2): what a catalog zone says, read from the zone
//! model — its member zones with their unique ids, groups and change of ownership — the
//! changes between two versions of one catalog, the rule that decides which catalog owns a
//! member listed by more than one, and a catalog made from a list of zones (the producer's
//! side). Protocol logic only, no I/O: the zone manager acts on what this says.
//!
//! A catalog zone `$CATZ` holds `version.$CATZ TXT "2"` and per member zone
//! `<unique-N>.zones.$CATZ PTR <member>.`, with properties below the member's label:
//! `coo.<unique-N>.zones.$CATZ PTR <other catalog>.` (change of ownership, §5.6) and
//! `group.<unique-N>.zones.$CATZ TXT "<group>"` (§4.4.2). Anything else is ignored (§4.4:
//! unknown properties, records outside `zones`).

use std::collections::BTreeMap;

use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::zone::{SrcPos, Zone};

/// The only schema version this reads (§4.2.1).
pub const VERSION: &[u8] = b"2";

/// One member zone as its catalog lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member zone (lowercased).
    pub zone: Name,
    /// Its unique-N label (lowercased): a new one for the same zone means the zone was
    /// removed and added again, its data and state to be dropped (§5.5).
    pub id: Vec<u8>,
    /// The `group` property's strings (§4.4.2), in canonical rdata order.
    pub groups: Vec<Vec<u8>>,
    /// The `coo` property: the catalog that may take the member over (§5.6).
    pub coo: Option<Name>,
}

/// What one version of a catalog zone lists, by member zone (lowercased wire form).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub members: BTreeMap<Vec<u8>, Member>,
}

/// Why a zone is not processed as a catalog at all (§4.2.1: the version property decides).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotACatalog {
    #[error("no version.{0} TXT record: not a catalog zone")]
    NoVersion(String),
    #[error("version.{0} holds {1} TXT records, not one")]
    SeveralVersions(String, usize),
    #[error("catalog schema version {0:?} is not \"2\"")]
    Version(String),
}

/// A record of the catalog that names no member, said why (the rest is still read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub owner: Name,
    pub why: &'static str,
}

/// Reads a catalog zone: its members, or why it is no catalog; records that make no member
/// (a PTR RRset of several records, a member named twice, the catalog itself) are listed.
pub fn read(zone: &Zone) -> Result<(Catalog, Vec<Ignored>), NotACatalog> {
    let origin = zone.origin().to_lowercase();
    let text = origin.to_string();
    let version = origin.prepend(b"version").expect("a catalog's origin has room for a label");
    let v = zone.rrset(&version, rtype::TXT).ok_or_else(|| NotACatalog::NoVersion(text.clone()))?;
    if v.rdata.len() != 1 {
        return Err(NotACatalog::SeveralVersions(text, v.rdata.len()));
    }
    let rd = v.rdata.first().unwrap_or_default();
    // One character-string, "2".
    if rd.first().map(|&l| l as usize + 1) != Some(rd.len()) || &rd[1..] != VERSION {
        return Err(NotACatalog::Version(String::from_utf8_lossy(rd.get(1..).unwrap_or_default()).into_owned()));
    }
    let zones = origin.prepend(b"zones").expect("a catalog's origin has room for a label");
    let below = |n: &Name| -> Option<Vec<Vec<u8>>> {
        // The labels of `n` above `zones.$CATZ`, leftmost first.
        let (w, z) = (n.as_wire(), zones.as_wire());
        if w.len() <= z.len() || !w.ends_with(z) {
            return None;
        }
        let head = Name::from_wire(&[&w[..w.len() - z.len()], b"\0"].concat()).ok()?;
        Some(head.labels().map(<[u8]>::to_vec).collect())
    };
    let mut ignored = Vec::new();
    // Members by unique id first, then their properties.
    let mut by_id: BTreeMap<Vec<u8>, Member> = BTreeMap::new();
    for node in zone.nodes() {
        let Some(labels) = below(&node.name) else { continue };
        if labels.len() != 1 {
            continue;
        }
        let Some(ptr) = node.rrsets.get(&rtype::PTR) else { continue };
        if ptr.rdata.len() != 1 {
            ignored.push(Ignored { owner: node.name.clone(), why: "a member's PTR RRset must hold one record" });
            continue;
        }
        let Ok(member) = Name::from_wire(ptr.rdata.first().unwrap_or_default()) else { continue };
        let member = member.to_lowercase();
        if member == origin {
            ignored.push(Ignored { owner: node.name.clone(), why: "a catalog cannot list itself" });
            continue;
        }
        by_id.insert(
            labels[0].to_ascii_lowercase(),
            Member { zone: member, id: labels[0].to_ascii_lowercase(), groups: Vec::new(), coo: None },
        );
    }
    for node in zone.nodes() {
        let Some(labels) = below(&node.name) else { continue };
        let [prop, id] = &labels[..] else { continue };
        let Some(m) = by_id.get_mut(&id.to_ascii_lowercase()) else { continue };
        match &prop.to_ascii_lowercase()[..] {
            b"coo" => match node.rrsets.get(&rtype::PTR) {
                Some(p) if p.rdata.len() == 1 => {
                    m.coo = Name::from_wire(p.rdata.first().unwrap_or_default()).ok().map(|n| n.to_lowercase())
                }
                Some(_) => ignored.push(Ignored { owner: node.name.clone(), why: "a coo property must be one PTR" }),
                None => {}
            },
            b"group" => {
                if let Some(t) = node.rrsets.get(&rtype::TXT) {
                    m.groups = t.rdata.iter().map(character_strings).collect();
                }
            }
            _ => {}
        }
    }
    // A zone listed under two ids: the first id in canonical order keeps it.
    let mut catalog = Catalog::default();
    for (_, m) in by_id {
        let key = m.zone.as_wire().to_vec();
        if catalog.members.contains_key(&key) {
            let owner = zones.prepend(&m.id).unwrap_or_else(|_| zones.clone());
            ignored.push(Ignored { owner, why: "member zone listed under another unique id too" });
            continue;
        }
        catalog.members.insert(key, m);
    }
    Ok((catalog, ignored))
}

/// The text of a TXT rdata: its character-strings joined.
fn character_strings(rd: &[u8]) -> Vec<u8> {
    let (mut out, mut i) = (Vec::new(), 0);
    while let Some(&l) = rd.get(i) {
        out.extend_from_slice(rd.get(i + 1..i + 1 + l as usize).unwrap_or_default());
        i += 1 + l as usize;
    }
    out
}

/// What changed from one version of a catalog to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New members: to be added as secondary zones.
    pub added: Vec<Member>,
    /// Members gone: no longer served, their data deleted.
    pub removed: Vec<Member>,
    /// Members listed again under a new unique id: their data and state dropped and the
    /// zone transferred anew (§5.5).
    pub recreated: Vec<Member>,
    /// Members whose properties (group, coo) changed, id kept.
    pub changed: Vec<Member>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.recreated.is_empty() && self.changed.is_empty()
    }
}

/// The changes from `old` to `new` (both versions of one catalog).
pub fn changes(old: &Catalog, new: &Catalog) -> Changes {
    let mut c = Changes::default();
    for (k, m) in &new.members {
        match old.members.get(k) {
            None => c.added.push(m.clone()),
            Some(o) if o.id != m.id => c.recreated.push(m.clone()),
            Some(o) if o != m => c.changed.push(m.clone()),
            Some(_) => {}
        }
    }
    c.removed = old.members.iter().filter(|(k, _)| !new.members.contains_key(*k)).map(|(_, m)| m.clone()).collect();
    c
}

/// Who serves a member zone that a catalog `claimant` lists, when the catalog `owner`
/// (another one) already has it (§5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The owner keeps it: the claimant's entry is ignored.
    Refused,
    /// The claimant takes it over; with `reset`, the zone's data and state are dropped
    /// first (the claimant's unique id differs from the owner's, §5.6).
    Taken { reset: bool },
}

/// The rule of §5.6: a catalog takes over a member of another only if that one's entry
/// points to it with `coo`.
pub fn claim(owner_entry: &Member, claimant: &Name, claimant_entry: &Member) -> Claim {
    if owner_entry.coo.as_ref().is_some_and(|c| c.to_lowercase() == claimant.to_lowercase()) {
        Claim::Taken { reset: owner_entry.id != claimant_entry.id }
    } else {
        Claim::Refused
    }
}

/// The unique id a producer gives a member zone: stable across restarts and hosts (the
/// first eight octets of the SHA-256 of the lowercased wire name, in hex), so that the
/// consumers see no re-creation when nothing changed.
pub fn member_id(zone: &Name) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(zone.to_lowercase().as_wire());
    d[..8].iter().flat_map(|b| [hex(b >> 4), hex(b & 15)]).collect()
}

fn hex(v: u8) -> u8 {
    b"0123456789abcdef"[v as usize]
}

/// A catalog zone (producer) at `origin` with this SOA serial, listing `members` (zone and
/// optional group): SOA, `NS invalid.`, `version TXT "2"` and one PTR (and group TXT) per
/// member, as Knot and BIND make them.
pub fn produce<'a>(
    origin: &Name,
    serial: u32,
    members: impl IntoIterator<Item = (&'a Name, Option<&'a [u8]>)>,
) -> Zone {
    let mut z = Zone::new(origin);
    let src = SrcPos::default();
    let invalid = Name::parse_text(b"invalid.", None).expect("a valid name");
    let mut soa = invalid.as_wire().to_vec();
    soa.extend_from_slice(invalid.as_wire());
    for v in [serial, 3600, 600, 2_419_200, 0] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    let add = |z: &mut Zone, owner: &Name, t: u16, rd: &[u8]| {
        z.insert(owner, t, 0, rd, src).expect("catalog records lie in the catalog zone");
    };
    add(&mut z, origin, rtype::SOA, &soa);
    add(&mut z, origin, rtype::NS, invalid.as_wire());
    let version = origin.prepend(b"version").expect("room for a label");
    add(&mut z, &version, rtype::TXT, &[&[VERSION.len() as u8][..], VERSION].concat());
    let zones = origin.prepend(b"zones").expect("room for a label");
    for (member, group) in members {
        let Ok(owner) = zones.prepend(&member_id(member)) else { continue };
        add(&mut z, &owner, rtype::PTR, member.to_lowercase().as_wire());
        if let (Some(g), Ok(at)) = (group.filter(|g| g.len() <= 255), owner.prepend(b"group")) {
            add(&mut z, &at, rtype::TXT, &[&[g.len() as u8][..], g].concat());
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse::load_text;
    use std::path::Path;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    fn catalog(body: &str) -> Result<(Catalog, Vec<Ignored>), NotACatalog> {
        let text =
            format!("$ORIGIN cat.test.\n$TTL 0\n@ SOA invalid. invalid. 1 3600 600 2419200 0\n@ NS invalid.\n{body}");
        let l = load_text(Path::new("cat.zone"), text.as_bytes(), &n("cat.test."));
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        read(&l.zone)
    }

    fn zones_of(c: &Catalog) -> Vec<String> {
        let mut v: Vec<String> =
            c.members.values().map(|m| format!("{} {}", String::from_utf8_lossy(&m.id), m.zone)).collect();
        v.sort();
        v
    }

    #[test]
    fn members_groups_and_coo() {
        let (c, ignored) = catalog(
            "version TXT \"2\"\nA1.zones PTR Example.COM.\ngroup.a1.zones TXT \"blue\"\ncoo.a1.zones PTR other.test.\n\
             b2.zones PTR example.net.\nunknown.b2.zones TXT \"ignored\"\nx.other PTR not.a.member.\n",
        )
        .unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(zones_of(&c), ["a1 example.com.", "b2 example.net."]);
        let a = &c.members[n("example.com.").as_wire()];
        assert_eq!((a.groups.clone(), a.coo.clone()), (vec![b"blue".to_vec()], Some(n("other.test."))));
    }

    #[test]
    fn the_version_decides_whether_it_is_a_catalog() {
        assert_eq!(catalog("m.zones PTR a.test.\n"), Err(NotACatalog::NoVersion("cat.test.".into())));
        assert_eq!(catalog("version TXT \"1\"\n"), Err(NotACatalog::Version("1".into())));
        assert!(matches!(catalog("version TXT \"2\" \"x\"\n"), Err(NotACatalog::Version(_))));
        assert_eq!(
            catalog("version TXT \"2\"\nversion TXT \"3\"\n"),
            Err(NotACatalog::SeveralVersions("cat.test.".into(), 2))
        );
    }

    #[test]
    fn broken_members_are_ignored_and_said() {
        let (c, ignored) = catalog(
            "version TXT \"2\"\ntwo.zones PTR a.test.\ntwo.zones PTR b.test.\nself.zones PTR cat.test.\n\
             m1.zones PTR dup.test.\nm2.zones PTR DUP.test.\nok.zones PTR ok.test.\ncoo.ok.zones PTR x.\ncoo.ok.zones PTR y.\n",
        )
        .unwrap();
        assert_eq!(zones_of(&c), ["m1 dup.test.", "ok ok.test."]);
        let whys: Vec<&str> = ignored.iter().map(|i| i.why).collect();
        assert_eq!(ignored.len(), 4, "{ignored:?}");
        assert!(whys.contains(&"a member's PTR RRset must hold one record"));
        assert!(whys.contains(&"a catalog cannot list itself"));
        assert!(whys.contains(&"member zone listed under another unique id too"));
        assert!(whys.contains(&"a coo property must be one PTR"));
        assert_eq!(c.members[n("ok.test.").as_wire()].coo, None);
    }

    #[test]
    fn changes_between_versions() {
        let (old, _) =
            catalog("version TXT \"2\"\na.zones PTR a.test.\nb.zones PTR b.test.\nc.zones PTR c.test.\n").unwrap();
        let (new, _) = catalog(
            "version TXT \"2\"\na.zones PTR a.test.\nb2.zones PTR b.test.\ngroup.a.zones TXT \"g\"\nd.zones PTR d.test.\n",
        )
        .unwrap();
        let c = changes(&old, &new);
        let names = |v: &[Member]| v.iter().map(|m| m.zone.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&c.added), ["d.test."]);
        assert_eq!(names(&c.removed), ["c.test."]);
        assert_eq!(names(&c.recreated), ["b.test."]);
        assert_eq!(names(&c.changed), ["a.test."]);
        assert!(changes(&new, &new).is_empty());
    }

    #[test]
    fn ownership_moves_only_where_coo_points() {
        let m =
            |id: &str, coo: Option<&str>| Member { zone: n("z.test."), id: id.into(), groups: vec![], coo: coo.map(n) };
        assert_eq!(claim(&m("a", None), &n("cat2."), &m("a", None)), Claim::Refused);
        assert_eq!(claim(&m("a", Some("cat3.")), &n("cat2."), &m("a", None)), Claim::Refused);
        assert_eq!(claim(&m("a", Some("CAT2.")), &n("cat2."), &m("a", None)), Claim::Taken { reset: false });
        assert_eq!(claim(&m("a", Some("cat2.")), &n("Cat2."), &m("b", None)), Claim::Taken { reset: true });
    }

    /// A catalog as knotd 3.2 generates it (`catalog-role: generate`, one member with
    /// `catalog-group`), as its AXFR gives it.
    #[test]
    fn knots_generated_catalog() {
        let text = "catz. 0 IN SOA invalid. invalid. 1796496623 3600 600 2147483646 0\ncatz. 0 IN NS invalid.\n\
                    version.catz. 0 IN TXT \"2\"\na5b15ab96cd56435.zones.catz. 0 IN PTR b.test.\n\
                    cff504c856d2792f.zones.catz. 0 IN PTR a.test.\ngroup.cff504c856d2792f.zones.catz. 0 IN TXT \"blue\"\n";
        let l = load_text(Path::new("catz.zone"), text.as_bytes(), &n("catz."));
        let (c, ignored) = read(&l.zone).unwrap();
        assert!(ignored.is_empty());
        assert_eq!(zones_of(&c), ["a5b15ab96cd56435 b.test.", "cff504c856d2792f a.test."]);
        assert_eq!(c.members[n("a.test.").as_wire()].groups, [b"blue".to_vec()]);
    }

    #[test]
    fn a_produced_catalog_reads_back() {
        let (a, b) = (n("a.test."), n("B.test."));
        let z = produce(&n("cat.test."), 7, [(&a, None), (&b, Some(&b"blue"[..]))]);
        assert_eq!(z.serial(), Some(7));
        let (c, ignored) = read(&z).unwrap();
        assert!(ignored.is_empty());
        let b_entry = &c.members[n("b.test.").as_wire()];
        assert_eq!(b_entry.groups, [b"blue".to_vec()]);
        assert_eq!(b_entry.id, member_id(&n("b.test.")));
        assert_eq!(member_id(&n("b.test.")), member_id(&n("B.TEST.")));
        assert_eq!(member_id(&a).len(), 16);
        assert_ne!(member_id(&a), member_id(&b));
    }
}
