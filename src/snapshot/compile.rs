//! Zone → [`ZoneImage`]: the tree flattened, RRsets rendered to wire fragments.

use super::layout::{pack, Draft};
use super::{rr_starts, NodeRec, RrsetRec, ZoneImage, NONE};
use crate::wire::name::{is_suffix_wire, lowercase_into, Name};
use crate::wire::rdata::{self, rtype};
use crate::zone::parse::type_name;
use crate::zone::{soa_minimum, Tree, Zone};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("zone {0} has no SOA record at its apex")]
    NoSoa(Name),
    #[error("the {rtype} RRset at {owner} is {len} octets in wire form, more than a DNS message can carry")]
    RrsetTooLarge { owner: Name, rtype: String, len: usize },
    #[error("zone {0} is too large for the snapshot format")]
    TooLarge(Name),
    #[error("bad rdata in the {rtype} RRset at {owner}")]
    BadRdata { owner: Name, rtype: String },
}

/// Trees with at least this many names are rendered on two threads.
const PARALLEL_MIN_NAMES: usize = 100_000;

/// Builds the answer-ready image of a zone.
pub fn compile(zone: &Zone) -> Result<ZoneImage, CompileError> {
    let two =
        zone.node_count() >= PARALLEL_MIN_NAMES && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    pack(compile_in(zone, two)?).ok_or_else(|| CompileError::TooLarge(zone.origin().clone()))
}

/// [`compile`] up to the draft (flat lists; `layout::pack` lays them out as node blocks),
/// rendering on one thread or two.
fn compile_in(zone: &Zone, two: bool) -> Result<Draft, CompileError> {
    let origin = zone.origin();
    let soa = zone.soa().ok_or_else(|| CompileError::NoSoa(origin.clone()))?;
    let tree = zone.tree();
    if tree.len() >= NONE as usize / 2 {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    // Fragments are rendered into a buffer sized for the worst case (every RR's header, its
    // rdata, and one more octet for each of at most two names a pointer may replace). With
    // two threads, the tree is cut in two parts of about the same worst case, each with its
    // stretch of the buffer; the second part is moved down to close the gap afterwards.
    let bound = |i: usize| tree.get(i).node.map_or(0, |n| n.rrsets.rdata_octets() + 14 * n.rrsets.records());
    // One fragment per RRset: the RRSIGs of a name make one per type they cover (what a
    // DO=1 answer copies after the RRset it signs).
    let rrsets_of = |i: usize| tree.get(i).node.map_or(0, |n| n.rrsets.len());
    let total = zone.rdata_octets() + 14 * zone.rr_count();
    let rrset_count: usize = zone.nodes().map(|n| n.rrsets.len()).sum();
    let names_len: usize = (0..tree.len()).map(|i| tree.get(i).name.len()).sum();
    if names_len >= u32::MAX as usize {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    // Where the second part starts: position, fragment buffer, RRset and name octets.
    let (split, first_bound, first_rrsets, first_names) = if two {
        let (mut acc, mut rrsets, mut names) = (0, 0, 0);
        let mut at = tree.len();
        for i in 0..tree.len() {
            acc += bound(i);
            rrsets += rrsets_of(i);
            names += tree.get(i).name.len();
            if acc >= total / 2 {
                at = i + 1;
                break;
            }
        }
        (at, acc, rrsets, names)
    } else {
        (tree.len(), total, rrset_count, names_len)
    };
    // The node whose addresses go with a target name (lowercased wire): the name itself if
    // it exists, else the wildcard below its closest encloser (RFC 4592), whose records then
    // answer for the target (their owner is the target name in the fragment).
    let address_node = |w: &[u8]| -> Option<u32> {
        if !is_suffix_wire(w, origin.as_wire()) {
            return None;
        }
        if let Some(p) = tree.find(w) {
            return tree.has_address(p).then_some(p as u32);
        }
        let mut off = 0;
        while w[off] != 0 {
            off += w[off] as usize + 1;
            if tree.find(&w[off..]).is_some() {
                let mut wild = [0u8; 2 + 256];
                wild[..2].copy_from_slice(b"\x01*");
                wild[2..2 + w.len() - off].copy_from_slice(&w[off..]);
                return tree.find(&wild[..2 + w.len() - off]).filter(|&p| tree.has_address(p)).map(|p| p as u32);
            }
        }
        None
    };
    let mut data = vec![0u8; total];
    // One more for the negative-answer SOA.
    let mut rrsets = Vec::with_capacity(rrset_count + 1);
    rrsets.resize(rrset_count, RrsetRec { data_off: 0, data_len: 0, rtype: 0, extra: NONE, count: 0 });
    let mut nodes =
        vec![NodeRec { name_off: 0, name_len: 0, flags: 0, rrset_count: 0, rrset_start: 0, parent: NONE }; tree.len()];
    let mut names = vec![0u8; names_len];
    let (data1, data2) = data.split_at_mut(first_bound);
    let (rrsets1, rrsets2) = rrsets.split_at_mut(first_rrsets);
    let (nodes1, nodes2) = nodes.split_at_mut(split);
    let (names1, names2) = names.split_at_mut(first_names);
    let render_part = |part: std::ops::Range<usize>, out: Out<'_>, lists: Lists<'_>| {
        render_names(&tree, part, out, lists, origin, &address_node)
    };
    let (first, second) = if split < tree.len() {
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let lists = Lists {
                    rrsets: rrsets2,
                    rrset_base: first_rrsets,
                    nodes: nodes2,
                    names: names2,
                    name_base: first_names,
                };
                render_part(split..tree.len(), Out { buf: data2, len: 0 }, lists)
            });
            let lists = Lists { rrsets: rrsets1, rrset_base: 0, nodes: nodes1, names: names1, name_base: 0 };
            let first = render_part(0..split, Out { buf: data1, len: 0 }, lists);
            match second.join() {
                Ok(second) => (first, second),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    } else {
        let lists = Lists { rrsets: rrsets1, rrset_base: 0, nodes: nodes1, names: names1, name_base: 0 };
        (render_part(0..tree.len(), Out { buf: data1, len: 0 }, lists), Ok(Part::default()))
    };
    // The first error in tree order is the one reported.
    let mut first = first?;
    let second = second?;
    let used1 = first.used;
    if used1 + second.used >= u32::MAX as usize - 65536 || first.extras.len() + second.extras.len() >= u32::MAX as usize
    {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    data.copy_within(first_bound..first_bound + second.used, used1);
    data.truncate(used1 + second.used);
    let extras1 = first.extras.len() as u32;
    for r in &mut rrsets[first_rrsets..] {
        r.data_off += used1 as u32;
        if r.extra != NONE {
            r.extra += extras1;
        }
    }
    first.extras.reserve_exact(second.extras.len() + 16);
    first.extras.extend_from_slice(&second.extras);
    let mut img = Draft {
        origin: origin.as_wire().to_vec(),
        serial: zone.serial().unwrap_or(0),
        apex: tree.find(origin.as_wire()).map_or(0, |p| p as u32),
        neg_soa: RrsetRec::default(),
        neg_soa_sig: RrsetRec::default(),
        nsec_chain: Vec::new(),
        nsec_keys: Vec::new(),
        nsec3_keys: Vec::new(),
        nsec3_chain: Vec::new(),
        nsec3_of: Vec::new(),
        nsec3_wild: Vec::new(),
        nsec3_salt: Vec::new(),
        nsec3_iterations: 0,
        nodes,
        rrsets,
        extras: first.extras,
        names,
        data,
    };
    // RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, MINIMUM).
    let min = soa.rdata.first().and_then(soa_minimum).unwrap_or(soa.ttl);
    let ttl = soa.ttl.min(min);
    let start = img.data.len();
    img.data.resize(start + soa.rdata.octets() + 14 * soa.rdata.len(), 0);
    let mut out = Out { buf: &mut img.data[start..], len: 0 };
    let mut scratch = Scratch::default();
    scratch.rdatas.extend(soa.rdata.iter().map(|r| (r, ttl)));
    let mut neg = render(&mut out, &mut img.extras, &mut scratch, origin, origin.as_wire(), rtype::SOA, &|_| None)?;
    let used = out.len;
    img.data.truncate(start + used);
    neg.data_off += start as u32;
    img.neg_soa = neg;
    // Its signatures, with the same TTL (what Knot gives), for DO=1 negative answers.
    if let Some(sig) = zone.signatures(origin, rtype::SOA) {
        let start = img.data.len();
        img.data.resize(start + sig.rdata.octets() + 14 * sig.rdata.len(), 0);
        let mut out = Out { buf: &mut img.data[start..], len: 0 };
        scratch.rdatas.clear();
        scratch.rdatas.extend(sig.rdata.iter().map(|r| (r, ttl.min(sig.ttl))));
        let mut rec =
            render(&mut out, &mut img.extras, &mut scratch, origin, origin.as_wire(), rtype::RRSIG, &|_| None)?;
        let used = out.len;
        img.data.truncate(start + used);
        rec.data_off += start as u32;
        img.neg_soa_sig = rec;
    }
    denial_chains(zone, &tree, &mut img);
    if img.data.len() >= u32::MAX as usize || img.names.len() >= u32::MAX as usize {
        return Err(CompileError::TooLarge(origin.clone()));
    }
    Ok(img)
}

/// The denial-of-existence material of a signed zone: the names that own NSEC in canonical
/// order, and (with an NSEC3PARAM at the apex) the names that own NSEC3 in hash order with
/// the chain's parameters. Nodes by tree position (`layout::pack` makes them blocks).
fn denial_chains(zone: &Zone, tree: &Tree<'_>, img: &mut Draft) {
    let with = |t: u16| -> Vec<usize> {
        (0..tree.len()).filter(|&i| tree.get(i).node.is_some_and(|n| n.rrsets.has(t))).collect()
    };
    let nsec = with(rtype::NSEC);
    let order = crate::zone::canonical_order(nsec.iter().map(|&i| tree.get(i).name));
    img.nsec_chain = order.iter().map(|&k| nsec[k] as u32).collect();
    let origin_len = zone.origin().len();
    img.nsec_keys = order
        .iter()
        .map(|&k| crate::wire::name::canonical_prefix(&tree.get(nsec[k]).name.to_ascii_lowercase(), origin_len))
        .collect();
    let param = zone.rrset(zone.origin(), rtype::NSEC3PARAM).and_then(|p| p.rdata.first().map(<[u8]>::to_vec));
    // Algorithm 1 (SHA-1), the only one defined; salt length within the rdata.
    let Some(p) = param.filter(|p| p.len() >= 5 && p[0] == 1 && p.len() == 5 + p[4] as usize) else {
        return;
    };
    img.nsec3_iterations = u16::from_be_bytes([p[2], p[3]]);
    img.nsec3_salt = p[5..].to_vec();
    // Owners are one base32hex label of the hash above the apex; base32hex keeps the
    // order of what it encodes, so the labels sort as the hashes do.
    let mut nsec3: Vec<usize> = with(rtype::NSEC3)
        .into_iter()
        .filter(|&i| {
            let n = tree.get(i).name;
            n[0] == 32 && n.len() == 33 + zone.origin().len()
        })
        .collect();
    nsec3.sort_by(|&a, &b| tree.get(a).name[1..33].cmp(&tree.get(b).name[1..33]));
    // The NSEC3 matching each name of the zone (empty non-terminals included), hashed
    // once here so that NODATA, ENT and closest-encloser proofs hash nothing at query time.
    let salt = img.nsec3_salt.clone();
    let iterations = img.nsec3_iterations;
    let label = |i: usize| &tree.get(i).name[1..33];
    let covering = |name: &[u8]| {
        let h = crate::wire::nsec3::owner_label(name, &salt, iterations);
        let at = nsec3.partition_point(|&n| label(n) <= &h[..]);
        // The last owner at or before the hash; before the first is the last (the chain wraps).
        (nsec3[at.checked_sub(1).unwrap_or(nsec3.len() - 1)], at > 0 && label(nsec3[at - 1]) == h)
    };
    let mut wild = Vec::with_capacity(2 + crate::wire::name::MAX_NAME_LEN);
    let names = if nsec3.is_empty() { 0 } else { tree.len() };
    for i in 0..names {
        let name = tree.get(i).name;
        let (n, matches) = covering(name);
        if !matches {
            continue;
        }
        // And the NSEC3 covering `*.name`, should the name be an NXDOMAIN's closest encloser
        // (NONE where the wildcard name would be too long: no such query exists).
        wild.clear();
        wild.extend_from_slice(b"\x01*");
        wild.extend_from_slice(name);
        let w = if wild.len() <= crate::wire::name::MAX_NAME_LEN { covering(&wild).0 as u32 } else { NONE };
        img.nsec3_of.push((i as u32, n as u32));
        img.nsec3_wild.push(w);
    }
    img.nsec3_keys = nsec3.iter().map(|&i| nsec3_key(label(i))).collect();
    img.nsec3_chain = nsec3.into_iter().map(|i| i as u32).collect();
}

/// The first eight octets of an NSEC3 owner label (base32hex), big-endian: in hash order.
pub(crate) fn nsec3_key(label: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    let n = label.len().min(8);
    k[..n].copy_from_slice(&label[..n]);
    u64::from_be_bytes(k)
}

/// What rendering part of the tree gives, besides what it writes in place.
#[derive(Default)]
struct Part {
    /// Octets of the part's fragment buffer used.
    used: usize,
    /// `extras` entries (offsets from the start of this list).
    extras: Vec<u16>,
}

/// The stretches of the image's lists a part of the tree fills (one entry per RRset, per
/// node, and the names of its nodes) and where they start in the whole lists.
struct Lists<'a> {
    rrsets: &'a mut [RrsetRec],
    rrset_base: usize,
    nodes: &'a mut [NodeRec],
    names: &'a mut [u8],
    name_base: usize,
}

/// Renders the names at positions `part` of the tree: their RRsets into `out` (from its
/// start; fragment offsets from there) and the part's `lists`.
fn render_names(
    tree: &Tree<'_>,
    part: std::ops::Range<usize>,
    mut out: Out<'_>,
    lists: Lists<'_>,
    origin: &Name,
    address_node: &(dyn Fn(&[u8]) -> Option<u32> + Sync),
) -> Result<Part, CompileError> {
    let Lists { rrsets, mut rrset_base, nodes, names, name_base } = lists;
    let mut extras = Vec::new();
    let mut scratch = Scratch::default();
    let mut recs = rrsets.iter_mut();
    let mut name_at = 0;
    for (i, slot) in part.zip(nodes.iter_mut()) {
        let t = tree.get(i);
        let count = t.node.map_or(0, |n| n.rrsets.len());
        *slot = NodeRec {
            name_off: (name_base + name_at) as u32,
            name_len: t.name.len() as u8,
            flags: t.flags,
            rrset_count: count as u16,
            rrset_start: rrset_base as u32,
            parent: t.parent.unwrap_or(NONE),
        };
        names[name_at..name_at + t.name.len()].copy_from_slice(t.name);
        name_at += t.name.len();
        rrset_base += count;
        let Some(node) = t.node else { continue };
        // In key order: by type, the RRSIG sets (each with its TTL) by the type they cover.
        for (ty, set) in node.rrsets.iter() {
            scratch.rdatas.clear();
            scratch.rdatas.extend(set.rdata.iter().map(|r| (r, set.ttl)));
            let rec = render(&mut out, &mut extras, &mut scratch, origin, node.name.as_wire(), ty, address_node)?;
            if let Some(slot) = recs.next() {
                *slot = rec;
            }
        }
    }
    Ok(Part { used: out.len, extras })
}

/// Fragments being written into a buffer sized in advance.
struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

/// Buffers reused from one RRset to the next.
#[derive(Default)]
struct Scratch<'z> {
    /// The records to render: rdata and TTL.
    rdatas: Vec<(&'z [u8], u32)>,
    apex_ptrs: Vec<u16>,
    owner_ptrs: Vec<u16>,
    adds: Vec<(u16, u32)>,
    key_a: Vec<u8>,
    key_b: Vec<u8>,
}

/// Sorts the rdata of an RRset into canonical order (RFC 4034 §6.3: canonical forms
/// compared as octet strings) without allocating per record.
fn sort_canonical(ty: u16, rdatas: &mut [(&[u8], u32)], key_a: &mut Vec<u8>, key_b: &mut Vec<u8>) {
    if rdatas.len() < 2 {
        return;
    }
    if !rdata::lowercase_in_canonical_form(ty) {
        rdatas.sort_unstable_by(|a, b| a.0.cmp(b.0));
        return;
    }
    let canonical = |r: &[u8], key: &mut Vec<u8>| {
        key.clear();
        key.extend_from_slice(r);
        // Length octets are below 64, so folding ASCII case over a whole name is exact.
        let _ = rdata::for_each_name(ty, r, |n| key[n.offset..n.offset + n.len].make_ascii_lowercase());
    };
    rdatas.sort_unstable_by(|a, b| {
        canonical(a.0, key_a);
        canonical(b.0, key_b);
        key_a.as_slice().cmp(key_b.as_slice())
    });
}

/// Renders the records in `scratch.rdatas` (rdata and TTL; of type `ty` at `owner`) as one
/// fragment into `out`, returning its record (fragment offset from the start of `out`'s
/// buffer, extras offset in `extras`).
fn render<'z>(
    out: &mut Out<'_>,
    extras: &mut Vec<u16>,
    scratch: &mut Scratch<'z>,
    origin: &Name,
    owner: &[u8],
    ty: u16,
    additional_node: &dyn Fn(&[u8]) -> Option<u32>,
) -> Result<RrsetRec, CompileError> {
    let Scratch { rdatas, apex_ptrs, owner_ptrs, adds, key_a, key_b } = scratch;
    apex_ptrs.clear();
    owner_ptrs.clear();
    adds.clear();
    let origin = origin.as_wire();
    // Names below the owner point at it (it is in the message, as the question or a name
    // in it), except for a wildcard, whose owner in the message is the expanded name.
    let owner_compress = owner.len() > origin.len() && !owner.starts_with(b"\x01*");
    // NS, MX and SRV name one target each, which calls for additional A/AAAA records.
    let has_target = matches!(ty, rtype::NS | rtype::MX | rtype::SRV);
    sort_canonical(ty, rdatas, key_a, key_b);
    let bad = || CompileError::BadRdata { owner: Name::from_wire_trusted(owner), rtype: type_name(ty) };
    let data = out;
    let start = data.len;
    for &(rd, ttl) in rdatas.iter() {
        // The owner pointer (C0 00) is filled in at answer time.
        let mut header = [0xC0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        header[2..4].copy_from_slice(&ty.to_be_bytes());
        header[6..10].copy_from_slice(&ttl.to_be_bytes());
        data.put(&header);
        let rdlen_at = data.len - 2;
        let rdata_start = data.len;
        let mut pos = 0;
        rdata::for_each_name(ty, rd, |n| {
            data.put(&rd[pos..n.offset]);
            let name_at = data.len - start;
            let wire = &rd[n.offset..n.offset + n.len];
            if n.compress && owner_compress && is_suffix_wire(wire, owner) {
                let head = wire.len() - owner.len();
                data.put(&wire[..head]);
                owner_ptrs.push((data.len - start).min(u16::MAX as usize) as u16);
                data.put(&[0xC0, 0]);
            } else if n.compress && is_suffix_wire(wire, origin) {
                let head = wire.len() - origin.len();
                data.put(&wire[..head]);
                apex_ptrs.push((data.len - start).min(u16::MAX as usize) as u16);
                data.put(&[0xC0, 0]);
            } else {
                data.put(wire);
            }
            if has_target && name_at <= u16::MAX as usize {
                let mut buf = [0u8; 256];
                if let Some(node) = additional_node(lowercase_into(wire, &mut buf)) {
                    adds.push((name_at as u16, node));
                }
            }
            pos = n.offset + n.len;
        })
        .map_err(|_| bad())?;
        data.put(&rd[pos..]);
        let rdlen = data.len - rdata_start;
        let frag_len = data.len - start;
        if rdlen > u16::MAX as usize || frag_len > u16::MAX as usize {
            return Err(too_large(owner, ty, frag_len));
        }
        data.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    }
    let frag_len = data.len - start;
    let extra = if apex_ptrs.is_empty() && owner_ptrs.is_empty() && adds.is_empty() {
        NONE
    } else {
        let at = extras.len() as u32;
        extras.push(apex_ptrs.len() as u16);
        extras.extend_from_slice(apex_ptrs);
        extras.push(owner_ptrs.len() as u16);
        extras.extend_from_slice(owner_ptrs);
        extras.push(adds.len() as u16);
        for &(name_at, node) in adds.iter() {
            extras.extend_from_slice(&[name_at, (node >> 16) as u16, node as u16]);
        }
        at
    };
    let count = rr_starts(&data.buf[start..start + frag_len]).count() as u16;
    Ok(RrsetRec { data_off: start as u32, data_len: frag_len as u16, rtype: ty, extra, count })
}

fn too_large(owner: &[u8], ty: u16, len: usize) -> CompileError {
    CompileError::RrsetTooLarge { owner: Name::from_wire_trusted(owner), rtype: type_name(ty), len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse::load_text;
    use std::path::Path;

    #[test]
    fn signatures_keep_their_ttls_through_a_snapshot() {
        for (text, origin) in [
            (include_str!("../../tests/data/signed/nsec.test.zone"), "nsec.test."),
            (include_str!("../../tests/data/signed/nsec3.test.zone"), "nsec3.test."),
        ] {
            let origin = Name::parse_text(origin.as_bytes(), None).unwrap();
            let l = load_text(Path::new("t.zone"), text.as_bytes(), &origin);
            assert!(l.is_servable() && l.diagnostics.is_empty(), "{:?}", l.diagnostics);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("z.snap");
            crate::snapshot::write_snapshot(&path, &compile(&l.zone).unwrap()).unwrap();
            let snap = crate::snapshot::Snapshot::open(&path).unwrap();
            let back = crate::snapshot::to_zone(snap.zone()).unwrap();
            assert!(l.zone.diff(&back).is_empty(), "{:?}", l.zone.diff(&back));
            assert_eq!(back.records_canonical(), l.zone.records_canonical());
            // www has A of TTL 300 and AAAA of 3600: so have their signatures.
            let www = back.get(&origin.prepend(b"www").unwrap()).unwrap();
            assert_eq!(www.signatures(rtype::A).map(|s| s.ttl), Some(300));
            assert_eq!(www.signatures(rtype::AAAA).map(|s| s.ttl), Some(3600));
        }
    }

    #[test]
    fn two_threads_render_the_same() {
        let mut text = String::from(
            "$ORIGIN example.com.\n$TTL 3600\n@ SOA ns1 hostmaster 7 7200 900 1209600 300\n@ NS ns1\n\
             ns1 A 192.0.2.1\n*.w A 192.0.2.7\n",
        );
        for i in 0..500 {
            text.push_str(&format!("h{i}.g{} A 192.0.2.{}\n MX 10 h{}.g1\n", i % 7, i % 250, (i * 7) % 500));
            if i % 50 == 0 {
                text.push_str(&format!("d{i} NS ns.d{i}\nns.d{i} A 192.0.2.2\nx{i} MX 5 q.w\n"));
            }
        }
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        let l = load_text(Path::new("t.zone"), text.as_bytes(), &origin);
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        let one = compile_in(&l.zone, false).unwrap();
        let two = compile_in(&l.zone, true).unwrap();
        assert_eq!(format!("{one:?}"), format!("{two:?}"));
        assert!(!one.extras.is_empty());
    }
}
