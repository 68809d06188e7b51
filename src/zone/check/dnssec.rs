//! Checks of a signed zone as it was signed upstream: the NSEC chain, the NSEC3 chain and
//! its parameters, signature presence and validity times.
//!
//! Nothing is verified cryptographically (a validator does that); what is checked is that
//! the proof material is complete and consistent, so that every answer can carry what a
//! validator needs. Time is a parameter ([`Options::now`]); nothing here reads a clock.
//! Each kind of problem is reported for at most [`MAX_PER_KIND`] places, then counted.

use super::Problem;
use crate::wire::name;
#[cfg(test)]
use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::zone::parse::{type_name, Severity};
use crate::zone::{flags, Node, SrcPos, Tree, Zone};

/// NSEC3PARAM (RFC 5155 §4); not among `rtype`'s constants yet.
const NSEC3PARAM: u16 = 51;
/// Places reported for one kind of problem before the rest are only counted.
pub const MAX_PER_KIND: usize = 10;
/// NSEC3 iterations above which validators treat the zone as insecure (RFC 9276 §3.2,
/// BIND and Unbound use 150).
const NSEC3_ITERATIONS_LIMIT: u16 = 150;
/// Iterations above which the owner hashes are not computed (RFC 5155 §10.3 allows at
/// most 2,500, for 4096-bit keys): the check's work stays bounded.
const NSEC3_ITERATIONS_HASHED: u16 = 2500;
/// Default for [`Options::sig_warn_days`].
pub const DEFAULT_SIG_WARN_DAYS: u32 = 7;

/// How the DNSSEC checks judge signature times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The time to judge against, Unix seconds.
    pub now: u64,
    /// Signatures that expire within this many days are reported (warning).
    pub sig_warn_days: u32,
    /// A zone whose signatures have all expired is a warning, not an error.
    pub force: bool,
}

impl Options {
    /// Defaults at time `now`.
    pub fn at(now: u64) -> Options {
        Options { now, sig_warn_days: DEFAULT_SIG_WARN_DAYS, force: false }
    }
}

/// True if the zone's keys are at its apex: a zone signed as a whole, whose proof material
/// these checks judge (RRSIGs alone, as in a zone being signed, are not enough).
pub fn has_apex_dnskey(zone: &Zone) -> bool {
    zone.get(zone.origin()).is_some_and(|apex| apex.rrsets.has(rtype::DNSKEY))
}

/// Problems of a kind, reported up to [`MAX_PER_KIND`] times, then summed up in one line.
struct Kind<'a> {
    found: &'a mut Vec<Problem>,
    severity: Severity,
    count: usize,
    first: SrcPos,
    what: &'static str,
}

impl<'a> Kind<'a> {
    fn new(found: &'a mut Vec<Problem>, severity: Severity, what: &'static str) -> Kind<'a> {
        Kind { found, severity, count: 0, first: SrcPos::default(), what }
    }

    fn report(&mut self, at: SrcPos, message: impl FnOnce() -> String) {
        if self.count == 0 {
            self.first = at;
        }
        self.count += 1;
        if self.count <= MAX_PER_KIND {
            self.found.push((self.severity, at, message()));
        }
    }
}

impl Drop for Kind<'_> {
    fn drop(&mut self) {
        if self.count > MAX_PER_KIND {
            let more = self.count - MAX_PER_KIND;
            self.found.push((self.severity, self.first, format!("{more} more {} not listed", self.what)));
        }
    }
}

/// Every DNSSEC problem of a signed zone ([`has_apex_dnskey`]); nothing for another.
pub fn problems(zone: &Zone, opts: &Options) -> Vec<Problem> {
    let mut found = Vec::new();
    if !has_apex_dnskey(zone) {
        return found;
    }
    let tree = zone.tree();
    let apex = zone.get(zone.origin()).expect("a signed zone has an apex");
    let nsec3param = nsec3param(apex, &mut found);
    let has_nsec3 = zone.nodes().any(|n| n.rrsets.has(rtype::NSEC3));
    let has_nsec = zone.nodes().any(|n| n.rrsets.has(rtype::NSEC));
    if has_nsec && (has_nsec3 || nsec3param.is_some()) {
        let at = apex.rrsets.values().map(|s| s.src).min().unwrap_or_default();
        found.push((Severity::Warning, at, format!("{} has both NSEC and NSEC3 records", zone.origin())));
    }
    ds_placement(zone, &mut found);
    unsigned_rrsets(&tree, &mut found);
    signatures_match_their_rrsets(zone, &mut found);
    signature_times(zone, opts, &mut found);
    if nsec3param.is_some() || has_nsec3 {
        nsec3_chain(zone, &tree, nsec3param, &mut found);
    } else {
        nsec_chain(zone, &tree, &mut found);
    }
    found
}

/// Whether the RRsets at a name of the tree are ours to sign, and which: every RRset at an
/// authoritative name; at a delegation only DS and NSEC (RFC 4035 §2.2); nothing below a
/// cut (glue, occluded data) or below a DNAME.
fn signed_here(flags: u8, t: u16) -> bool {
    if flags & (flags::BELOW_CUT | flags::BELOW_DNAME) != 0 || t == rtype::RRSIG {
        return false;
    }
    flags & flags::CUT == 0 || t == rtype::DS || t == rtype::NSEC
}

/// True for a name the NSEC or NSEC3 chain must cover: authoritative, or a delegation
/// point (RFC 4035 §2.3, RFC 5155 §7.1).
fn in_chain(flags: u8) -> bool {
    flags & (flags::BELOW_CUT | flags::BELOW_DNAME) == 0
}

/// DS records are the parent's side of a delegation (RFC 4035 §2.4): not data of a name of
/// ours, nor of the apex (whose DS the parent zone holds).
fn ds_placement(zone: &Zone, found: &mut Vec<Problem>) {
    let origin = zone.origin();
    let mut kind = Kind::new(found, Severity::Error, "DS RRsets away from a delegation");
    for node in zone.nodes() {
        let Some(ds) = node.get(rtype::DS) else { continue };
        let why = if node.name == *origin {
            "at the zone apex: the parent zone holds it"
        } else if !node.rrsets.has(rtype::NS) {
            "not at a delegation (no NS records beside it)"
        } else {
            continue;
        };
        kind.report(ds.src, || format!("DS record at {} {why} (RFC 4035 §2.4)", node.name));
    }
}

/// Authoritative RRsets without a signature (warning: a validator finds them bogus).
fn unsigned_rrsets(tree: &Tree<'_>, found: &mut Vec<Problem>) {
    let mut kind = Kind::new(found, Severity::Warning, "unsigned RRsets");
    for t in tree.iter() {
        let Some(node) = t.node else { continue };
        for (ty, set) in &node.rrsets {
            if signed_here(t.flags, ty) && node.signatures(ty).is_none() {
                kind.report(set.src, || format!("the {} RRset at {} has no RRSIG", type_name(ty), node.name));
            }
        }
    }
}

/// Signatures whose TTL is not their RRset's (RFC 4035 §2.2: they must be equal), and
/// signatures over a type the name does not have (warnings: both are served as they are).
fn signatures_match_their_rrsets(zone: &Zone, found: &mut Vec<Problem>) {
    let mut ttl = Kind::new(found, Severity::Warning, "RRSIG RRsets with another TTL than their RRset");
    for node in zone.nodes() {
        for (covered, sigs) in node.rrsets.all_signatures() {
            if let Some(set) = node.get(covered).filter(|set| set.ttl != sigs.ttl) {
                ttl.report(sigs.src, || {
                    format!(
                        "the RRSIGs over {} at {} have TTL {}, the RRset {} (RFC 4035 §2.2: the same)",
                        type_name(covered),
                        node.name,
                        sigs.ttl,
                        set.ttl
                    )
                });
            }
        }
    }
    drop(ttl);
    let mut orphan = Kind::new(found, Severity::Warning, "RRSIG RRsets over a type the name does not have");
    for node in zone.nodes() {
        for (covered, sigs) in node.rrsets.all_signatures() {
            if covered == rtype::RRSIG || node.get(covered).is_none() {
                orphan.report(sigs.src, || {
                    format!("RRSIG over {} at {}, which has no {0} RRset", type_name(covered), node.name)
                });
            }
        }
    }
}

/// Expired signatures, signatures expiring soon, signatures not yet valid; an error if
/// every signature has expired (unless forced). Times are RFC 1982 serial numbers
/// (RFC 4034 §3.1.5), compared with `now` as such.
fn signature_times(zone: &Zone, opts: &Options, found: &mut Vec<Problem>) {
    let now = opts.now as u32;
    let soon = now.wrapping_add(opts.sig_warn_days.saturating_mul(86400).min(i32::MAX as u32));
    let (mut total, mut expired) = (0usize, 0usize);
    let mut first_expired = None;
    {
        let mut exp_kind = Kind::new(found, Severity::Warning, "RRsets with expired signatures");
        for node in zone.nodes() {
            for (covered, set) in node.rrsets.all_signatures() {
                let mut worst: Option<(u32, bool)> = None;
                for rd in &set.rdata {
                    let Some(times) = rd.get(8..16) else { continue };
                    let expiration = u32::from_be_bytes(times[0..4].try_into().unwrap());
                    total += 1;
                    let gone = (expiration.wrapping_sub(now) as i32) < 0;
                    if gone {
                        expired += 1;
                        first_expired.get_or_insert(set.src);
                    }
                    let ending = (expiration.wrapping_sub(soon) as i32) < 0;
                    if ending && worst.is_none_or(|(e, _)| (expiration.wrapping_sub(e) as i32) < 0) {
                        worst = Some((expiration, gone));
                    }
                }
                if let Some((expiration, gone)) = worst {
                    let when = rrsig_time(expiration);
                    let what = if gone { "expired" } else { "expires" };
                    exp_kind.report(set.src, || {
                        format!(
                            "the RRSIG over {} at {} {what} at {when} (checked at {}, warning {} days ahead)",
                            type_name(covered),
                            node.name,
                            rrsig_time(now),
                            opts.sig_warn_days
                        )
                    });
                }
            }
        }
    }
    {
        let mut inc_kind = Kind::new(found, Severity::Warning, "RRsets with signatures not yet valid");
        for node in zone.nodes() {
            for (covered, set) in node.rrsets.all_signatures() {
                let future = set.rdata.iter().filter_map(|rd| rd.get(12..16)).find_map(|t| {
                    let inception = u32::from_be_bytes(t.try_into().unwrap());
                    ((now.wrapping_sub(inception) as i32) < 0).then_some(inception)
                });
                if let Some(inception) = future {
                    inc_kind.report(set.src, || {
                        format!(
                            "the RRSIG over {} at {} is valid only from {} (checked at {})",
                            type_name(covered),
                            node.name,
                            rrsig_time(inception),
                            rrsig_time(now)
                        )
                    });
                }
            }
        }
    }
    if total > 0 && expired == total {
        let (severity, tail) = if opts.force {
            (Severity::Warning, "; served anyway (forced)")
        } else {
            (Severity::Error, "; re-sign the zone upstream (or --force)")
        };
        found.push((
            severity,
            first_expired.unwrap_or_default(),
            format!("every signature of {} has expired ({total} RRSIG records){tail}", zone.origin()),
        ));
    }
}

/// An RRSIG time as YYYYMMDDHHmmSS (RFC 4034 §3.2), taken to be the one within 68 years
/// of 1970 + 2^31 s either way: the Unix time the 32-bit value stands for, read the way
/// [`signature_times`] compares it.
pub fn rrsig_time(t: u32) -> String {
    let secs = t as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A time given as YYYYMMDDHHmmSS (as RRSIG times are written, RFC 4034 §3.2) or as Unix
/// seconds (up to 10 digits), in Unix seconds.
pub fn parse_time(text: &str) -> Option<u64> {
    if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
        return None;
    }
    if text.len() <= 10 {
        return text.parse().ok();
    }
    if text.len() != 14 {
        return None;
    }
    let field = |r: std::ops::Range<usize>| text[r].parse::<i64>().ok();
    let (y, m, d) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hh, mm, ss) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60
    {
        return None;
    }
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Where a name of the tree was read: its first record, or for an empty non-terminal the
/// first record below it.
fn line_of(zone: &Zone, tree: &Tree<'_>, i: usize) -> SrcPos {
    let t = tree.get(i);
    if let Some(node) = t.node {
        return node.rrsets.values().map(|s| s.src).min().unwrap_or_default();
    }
    zone.nodes()
        .filter(|n| name::is_suffix_lower(n.name.as_wire(), t.name))
        .flat_map(|n| n.rrsets.values().map(|s| s.src))
        .min()
        .unwrap_or_default()
}

/// The NSEC chain (RFC 4034 §4, RFC 4035 §2.3): every name in the chain has an NSEC, no
/// other name has one, and each names the next in canonical order (RFC 4034 §6.1), the
/// last the apex.
fn nsec_chain(zone: &Zone, tree: &Tree<'_>, found: &mut Vec<Problem>) {
    // The names that must own an NSEC: authoritative names and delegations, not empty
    // non-terminals (RFC 4035 §2.3), in canonical order.
    let members: Vec<usize> = (0..tree.len())
        .filter(|&i| {
            let t = tree.get(i);
            in_chain(t.flags) && t.node.is_some_and(|n| !is_nsec3_owner(n))
        })
        .collect();
    let order = crate::zone::canonical_order(members.iter().map(|&i| tree.get(i).name));
    let chain: Vec<usize> = order.into_iter().map(|k| members[k]).collect();
    let mut missing = Kind::new(found, Severity::Error, "names without NSEC");
    for &i in &chain {
        let t = tree.get(i);
        if !t.node.is_some_and(|n| n.rrsets.has(rtype::NSEC)) {
            missing.report(line_of(zone, tree, i), || {
                format!("{} has no NSEC record: the NSEC chain is not closed", name::Display(t.name))
            });
        }
    }
    drop(missing);
    let mut stray = Kind::new(found, Severity::Error, "NSEC records below a zone cut");
    for t in tree.iter() {
        if in_chain(t.flags) {
            continue;
        }
        if let Some(set) = t.node.and_then(|n| n.get(rtype::NSEC)) {
            stray.report(set.src, || {
                format!("NSEC record at {}, which is below a zone cut (glue or occluded)", name::Display(t.name))
            });
        }
    }
    drop(stray);
    // Each NSEC names the next owner of the chain (the next that has one; missing ones are
    // reported above), the last the apex.
    let with_nsec: Vec<usize> =
        chain.iter().copied().filter(|&i| tree.get(i).node.is_some_and(|n| n.rrsets.has(rtype::NSEC))).collect();
    let mut bitmap_found = Vec::new();
    let mut wrong = Kind::new(found, Severity::Error, "NSEC records out of order");
    let mut bitmap = Kind::new(&mut bitmap_found, Severity::Error, "NSEC type bitmaps that differ from their names");
    for (k, &i) in with_nsec.iter().enumerate() {
        let t = tree.get(i);
        let node = t.node.expect("owns an NSEC");
        let set = node.get(rtype::NSEC).expect("owns an NSEC");
        let expected = with_nsec.get(k + 1).map_or(zone.origin().as_wire(), |&j| tree.get(j).name);
        for rd in &set.rdata {
            let Ok(len) = name::uncompressed_len(rd, 0) else { continue };
            let (listed, expected_types) = (bitmap_types(&rd[len..]), chain_types(t.flags, Some(node)));
            if listed != expected_types {
                bitmap.report(set.src, || {
                    format!(
                        "the NSEC at {} lists {}, the name has {}",
                        node.name,
                        type_list(&listed),
                        type_list(&expected_types)
                    )
                });
            }
            let mut buf = [0u8; 256];
            let next = name::lowercase_into(&rd[..len], &mut buf);
            if next != expected {
                wrong.report(set.src, || {
                    format!(
                        "the NSEC at {} names {} as the next name, but the next in canonical order is {}",
                        node.name,
                        name::Display(&rd[..len]),
                        name::Display(expected)
                    )
                });
            }
        }
        if set.rdata.len() > 1 {
            wrong.report(set.src, || format!("{} has {} NSEC records (RFC 4034 §4: one)", node.name, set.rdata.len()));
        }
    }
    drop((wrong, bitmap));
    found.append(&mut bitmap_found);
}

/// NSEC3 parameters: hash algorithm, iterations, salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params<'a> {
    alg: u8,
    iterations: u16,
    salt: &'a [u8],
}

impl std::fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "algorithm {} iterations {} salt ", self.alg, self.iterations)?;
        if self.salt.is_empty() {
            return f.write_str("-");
        }
        self.salt.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// The parameters of NSEC3 or NSEC3PARAM rdata, and where the rest starts.
fn params(rd: &[u8]) -> Option<(Params<'_>, u8, usize)> {
    let salt_len = *rd.get(4)? as usize;
    let salt = rd.get(5..5 + salt_len)?;
    Some((Params { alg: rd[0], iterations: u16::from_be_bytes([rd[2], rd[3]]), salt }, rd[1], 5 + salt_len))
}

/// The apex's NSEC3PARAM (one record, RFC 5155 §4), reporting what is wrong with it.
fn nsec3param<'a>(apex: &'a Node, found: &mut Vec<Problem>) -> Option<(Params<'a>, SrcPos)> {
    let set = apex.get(NSEC3PARAM)?;
    if set.rdata.len() > 1 {
        found.push((
            Severity::Error,
            set.src,
            format!("{} has {} NSEC3PARAM records: serving needs one NSEC3 chain", apex.name, set.rdata.len()),
        ));
    }
    let (p, flags, _) = params(set.rdata.first()?)?;
    if p.alg != 1 {
        found.push((Severity::Error, set.src, format!("NSEC3PARAM hash algorithm {} is not SHA-1 (1)", p.alg)));
    }
    if flags != 0 {
        found.push((
            Severity::Warning,
            set.src,
            format!("NSEC3PARAM flags {flags} are not 0 (RFC 5155 §4.1.2: the opt-out flag belongs in NSEC3)"),
        ));
    }
    if p.iterations > NSEC3_ITERATIONS_LIMIT {
        found.push((
            Severity::Warning,
            set.src,
            format!(
                "NSEC3 iterations {} above {NSEC3_ITERATIONS_LIMIT}: validators treat the zone as insecure (RFC 9276 §3.2)",
                p.iterations
            ),
        ));
    }
    Some((p, set.src))
}

/// True for a node that holds only NSEC3 records and their signatures: a hashed owner
/// name, not a name of the zone's data.
fn is_nsec3_owner(node: &Node) -> bool {
    node.rrsets.has(rtype::NSEC3)
        && node.rrsets.iter().all(|(t, s)| t == rtype::NSEC3 || (t == rtype::RRSIG && s.covered == rtype::NSEC3))
}

/// IH(salt, name, iterations) of RFC 5155 §5 (the engine's, one implementation).
pub fn nsec3_hash(lower_wire: &[u8], salt: &[u8], iterations: u16) -> [u8; 20] {
    crate::wire::nsec3::hash(lower_wire, salt, iterations)
}

/// Base32 with the extended hex alphabet, lowercase, without padding (RFC 4648 §7), as
/// NSEC3 owner labels and next-hashed-owner fields are written (RFC 5155 §3.3).
pub fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let v = block.iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[(v >> (35 - 5 * i) & 31) as usize] as char);
        }
    }
    out
}

/// One NSEC3 record as the chain checks see it.
struct Nsec3Rec {
    /// The owner's hash label, lowercased.
    owner: String,
    /// The next hashed owner, in base32hex.
    next: String,
    opt_out: bool,
    /// The types of its bitmap, in order.
    types: Vec<u16>,
    at: SrcPos,
}

/// The types of an NSEC/NSEC3 type bitmap field (RFC 4034 §4.1.2), in order; what can be
/// read of a malformed one.
fn bitmap_types(b: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut i = 0;
    while let (Some(&window), Some(&len)) = (b.get(i), b.get(i + 1)) {
        let Some(bits) = b.get(i + 2..i + 2 + len as usize) else { break };
        for (j, &byte) in bits.iter().enumerate() {
            for k in 0..8 {
                if byte & (0x80 >> k) != 0 {
                    out.push(u16::from(window) << 8 | (j * 8 + k) as u16);
                }
            }
        }
        i += 2 + len as usize;
    }
    out
}

/// The types the NSEC or NSEC3 of a name lists (RFC 4034 §4.1.2, RFC 5155 §3.2.1): all
/// of its types; at a delegation only NS, DS, RRSIG and NSEC (the rest there is not ours);
/// none for an empty non-terminal.
fn chain_types(flags: u8, node: Option<&Node>) -> Vec<u16> {
    let Some(node) = node else { return Vec::new() };
    let at_cut = flags & flags::CUT != 0;
    node.rrsets
        .types()
        .filter(|&t| !at_cut || matches!(t, rtype::NS | rtype::DS | rtype::RRSIG | rtype::NSEC))
        .collect()
}

/// Types as a bitmap is written: `A NS RRSIG`.
fn type_list(types: &[u16]) -> String {
    if types.is_empty() {
        return "no types".into();
    }
    types.iter().map(|&t| type_name(t)).collect::<Vec<_>>().join(" ")
}

/// The NSEC3 chain (RFC 5155 §7.1): one set of parameters, the NSEC3PARAM's; each owner
/// the hash of a name of the zone; every name that needs one has one; each record's next
/// hashed owner the next owner in hash order, the last the first.
fn nsec3_chain(zone: &Zone, tree: &Tree<'_>, param: Option<(Params<'_>, SrcPos)>, found: &mut Vec<Problem>) {
    let origin = zone.origin();
    let Some((param, _)) = param else {
        let at = zone.nodes().filter_map(|n| n.get(rtype::NSEC3)).map(|s| s.src).min().unwrap_or_default();
        found.push((
            Severity::Error,
            at,
            format!("NSEC3 records but no NSEC3PARAM at {origin}: the chain to answer from is unknown"),
        ));
        return;
    };
    let mut owners: Vec<Nsec3Rec> = Vec::new();
    {
        let mut other = Kind::new(found, Severity::Error, "NSEC3 records of another chain");
        for node in zone.nodes() {
            let Some(set) = node.get(rtype::NSEC3) else { continue };
            for rd in &set.rdata {
                let Some((p, flags, at)) = params(rd) else { continue };
                if p != param {
                    other.report(set.src, || {
                        format!("the NSEC3 at {} has {p}, the NSEC3PARAM {param}: a second chain", node.name)
                    });
                    continue;
                }
                let Some(&hash_len) = rd.get(at) else { continue };
                let Some(next) = rd.get(at + 1..at + 1 + hash_len as usize) else { continue };
                let label = node.name.labels().next().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase());
                owners.push(Nsec3Rec {
                    owner: label.unwrap_or_default(),
                    next: base32hex(next),
                    opt_out: flags & 1 != 0,
                    types: bitmap_types(&rd[at + 1 + hash_len as usize..]),
                    at: set.src,
                });
            }
        }
    }
    // Owners must be one label of a hash directly below the apex.
    {
        let mut bad = Kind::new(found, Severity::Error, "misplaced NSEC3 records");
        for node in zone.nodes() {
            let Some(set) = node.get(rtype::NSEC3) else { continue };
            let below_apex = node.name.parent().is_some_and(|p| p == *origin);
            let label_ok = node.name.labels().next().is_some_and(|l| l.len() == 32);
            if !below_apex || !label_ok {
                bad.report(set.src, || {
                    format!("NSEC3 owner {} is not a 32-character hash label directly below {origin}", node.name)
                });
            }
        }
    }
    owners.sort_by(|a, b| a.owner.cmp(&b.owner));
    // The chain closes: each record's next hashed owner is the next owner, the last's the
    // first (RFC 5155 §3.1.7).
    {
        let mut wrong = Kind::new(found, Severity::Error, "NSEC3 records out of order");
        for (k, Nsec3Rec { owner, next, at, .. }) in owners.iter().enumerate() {
            let expected = &owners[(k + 1) % owners.len()].owner;
            if next != expected {
                wrong.report(*at, || {
                    format!(
                        "the NSEC3 at {owner}.{origin} names {next} as the next hashed owner, but the next in the chain is {expected}"
                    )
                });
            }
        }
    }
    if param.iterations > NSEC3_ITERATIONS_HASHED || param.alg != 1 {
        return;
    }
    // The names the chain must cover, and their hashes.
    let opt_out = owners.iter().any(|o| o.opt_out);
    let mut hashes: Vec<(String, usize)> = Vec::new();
    for i in 0..tree.len() {
        let t = tree.get(i);
        if !in_chain(t.flags) || t.node.is_some_and(is_nsec3_owner) {
            continue;
        }
        hashes.push((base32hex(&nsec3_hash(t.name, param.salt, param.iterations)), i));
    }
    hashes.sort();
    // Each NSEC3 that stands for a name, with the name's position in the tree.
    let mut bitmaps: Vec<(usize, &Nsec3Rec)> = Vec::new();
    {
        let mut stray = Kind::new(found, Severity::Error, "NSEC3 records that match no name");
        for rec in &owners {
            match hashes.binary_search_by(|(h, _)| h.as_str().cmp(rec.owner.as_str())) {
                Err(_) => stray.report(rec.at, || {
                    format!("the NSEC3 owner {}.{origin} is the hash of no name in the zone ({param})", rec.owner)
                }),
                Ok(k) => bitmaps.push((hashes[k].1, rec)),
            }
        }
    }
    {
        let mut wrong = Kind::new(found, Severity::Error, "NSEC3 type bitmaps that differ from their names");
        for (i, rec) in bitmaps {
            let t = tree.get(i);
            let expected = chain_types(t.flags, t.node);
            if rec.types != expected {
                wrong.report(rec.at, || {
                    format!(
                        "the NSEC3 at {}.{origin} (for {}) lists {}, the name has {}",
                        rec.owner,
                        name::Display(t.name),
                        type_list(&rec.types),
                        type_list(&expected)
                    )
                });
            }
        }
    }
    let mut missing = Kind::new(found, Severity::Error, "names without NSEC3");
    for (hash, i) in &hashes {
        if owners.binary_search_by(|o| o.owner.as_str().cmp(hash.as_str())).is_ok() {
            continue;
        }
        let t = tree.get(*i);
        // Opt-out (RFC 5155 §6): insecure delegations may go without, and so may the
        // empty non-terminals above them (not told apart here).
        let insecure_cut = t.flags & flags::CUT != 0 && !t.node.is_some_and(|n| n.rrsets.has(rtype::DS));
        if opt_out && (insecure_cut || t.flags & flags::EMPTY_NON_TERMINAL != 0) {
            continue;
        }
        missing.report(line_of(zone, tree, *i), || {
            format!("{} has no NSEC3 record (its hash {hash}): the NSEC3 chain is not closed", name::Display(t.name))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse::load_text;
    use std::path::Path;

    /// Signed with dnssec-signzone, valid from 2026-12-01 to 2046-12-01 (tests/data/signed).
    const NSEC: &str = include_str!("../../../tests/data/signed/nsec.test.zone");
    const NSEC3: &str = include_str!("../../../tests/data/signed/nsec3.test.zone");
    /// 2026-12-05 00:00:00 UTC.
    const NOW: u64 = 1_796_428_800;

    /// Loads zone text (with the structural checks) and runs the DNSSEC checks at `opts`:
    /// (severity, line, message) of each problem.
    fn run(text: &str, origin: &str, opts: &Options) -> Vec<(Severity, u32, String)> {
        let origin = Name::parse_text(origin.as_bytes(), None).unwrap();
        let loaded = load_text(Path::new("t.zone"), text.as_bytes(), &origin);
        let mut out: Vec<_> = loaded.diagnostics.iter().map(|d| (d.severity, d.line, d.message.clone())).collect();
        out.extend(problems(&loaded.zone, opts).into_iter().map(|(s, at, m)| (s, at.line, m)));
        out
    }

    /// The line (1-based) of the first line of `text` that contains every one of `parts`.
    fn line_with(text: &str, parts: &[&str]) -> u32 {
        text.lines().position(|l| parts.iter().all(|p| l.contains(p))).expect("line in the test zone") as u32 + 1
    }

    /// `text` without the lines that start with `parts[0]` and contain the others.
    fn without(text: &str, parts: &[&str]) -> String {
        let hit = |l: &str| l.starts_with(parts[0]) && parts[1..].iter().all(|p| l.contains(p));
        text.lines().filter(|l| !hit(l)).map(|l| format!("{l}\n")).collect()
    }

    fn has(found: &[(Severity, u32, String)], sev: Severity, line: u32, words: &str) -> bool {
        found.iter().any(|(s, l, m)| *s == sev && *l == line && m.contains(words))
    }

    #[test]
    fn zones_signed_by_bind_have_no_problems() {
        for (text, origin) in [(NSEC, "nsec.test."), (NSEC3, "nsec3.test.")] {
            let found = run(text, origin, &Options::at(NOW));
            assert!(found.is_empty(), "{origin}: {found:#?}");
        }
    }

    #[test]
    fn nsec_chain_with_a_name_missing() {
        // www loses its NSEC: it is reported, and so is the NSEC before it, which names it.
        let text = without(NSEC, &["www.nsec.test.", "IN NSEC\t"]);
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        assert!(has(&found, Severity::Error, line_with(&text, &["www.nsec.test.", "IN A"]), "no NSEC"), "{found:#?}");
        let before = line_with(&text, &["IN NSEC", "www.nsec.test. "]);
        assert!(has(&found, Severity::Error, before, "but the next in canonical order is nsec.test."), "{found:#?}");
    }

    #[test]
    fn nsec_chain_out_of_order() {
        // The apex's NSEC skips a name.
        let apex_nsec = NSEC.lines().find(|l| l.starts_with("nsec.test.") && l.contains("IN NSEC")).unwrap();
        let text = NSEC.replace(apex_nsec, &apex_nsec.replace("alias.nsec.test.", "mail.nsec.test."));
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        let line = line_with(&text, &["nsec.test.", "IN NSEC", "mail.nsec.test."]);
        assert!(has(&found, Severity::Error, line, "names mail.nsec.test. as the next name"), "{found:#?}");
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    #[test]
    fn nsec_below_a_cut_and_ds_away_from_a_delegation() {
        let text = format!(
            "{NSEC}ns.insecure.nsec.test. 3600 IN NSEC nsec.test. A\n\
             www.nsec.test. 300 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n"
        );
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        let glue = line_with(&text, &["ns.insecure.nsec.test. 3600 IN NSEC"]);
        assert!(has(&found, Severity::Error, glue, "below a zone cut"), "{found:#?}");
        let ds = line_with(&text, &["www.nsec.test. 300 IN DS"]);
        assert!(has(&found, Severity::Error, ds, "not at a delegation"), "{found:#?}");
        assert!(has(&found, Severity::Warning, ds, "the DS RRset at www.nsec.test. has no RRSIG"), "{found:#?}");
    }

    #[test]
    fn unsigned_rrsets_are_warnings_and_glue_needs_no_signature() {
        let text = without(NSEC, &["nsec.test.", "RRSIG\tMX "]);
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        let mx = line_with(&text, &["IN MX"]);
        assert!(has(&found, Severity::Warning, mx, "the MX RRset at nsec.test. has no RRSIG"), "{found:#?}");
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    #[test]
    fn signatures_keep_to_their_rrsets() {
        // The AAAA signatures of www with another TTL than the AAAA's, and a signature over
        // a type www does not have.
        let sig = NSEC.lines().find(|l| l.starts_with("www.nsec.test.") && l.contains("RRSIG\tAAAA ")).unwrap();
        let text = NSEC.replace(sig, &sig.replace("3600 IN RRSIG", "60 IN RRSIG"));
        let text = format!("{text}{}\n", sig.replace("RRSIG\tAAAA ", "RRSIG\tTXT "));
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        let at = line_with(&text, &["www.nsec.test.", "60 IN RRSIG\tAAAA "]);
        assert!(has(&found, Severity::Warning, at, "have TTL 60, the RRset 3600"), "{found:#?}");
        let at = line_with(&text, &["www.nsec.test.", "RRSIG\tTXT "]);
        assert!(has(&found, Severity::Warning, at, "RRSIG over TXT at www.nsec.test., which has no TXT"), "{found:#?}");
        assert_eq!(found.len(), 2, "{found:#?}");
    }

    #[test]
    fn type_bitmaps_must_match_their_names() {
        // www's NSEC loses AAAA from its bitmap.
        let nsec = NSEC.lines().find(|l| l.starts_with("www.nsec.test.") && l.contains("IN NSEC\t")).unwrap();
        let text = NSEC.replace(nsec, &nsec.replace(" AAAA ", " "));
        let found = run(&text, "nsec.test.", &Options::at(NOW));
        let at = line_with(&text, &["www.nsec.test.\t", "IN NSEC\t"]);
        assert!(has(&found, Severity::Error, at, "lists A RRSIG NSEC, the name has A AAAA RRSIG NSEC"), "{found:#?}");
        assert_eq!(found.len(), 1, "{found:#?}");
        // www's NSEC3 gains TXT.
        let nsec3 = NSEC3.lines().find(|l| l.contains("IN NSEC3\t") && l.ends_with(" A AAAA RRSIG")).unwrap();
        let text = NSEC3.replace(nsec3, &format!("{nsec3} TXT").replace("A AAAA RRSIG TXT", "A TXT AAAA RRSIG"));
        let found = run(&text, "nsec3.test.", &Options::at(NOW));
        let at = line_with(&text, &["IN NSEC3\t", " A TXT AAAA RRSIG"]);
        assert!(has(&found, Severity::Error, at, "(for www.nsec3.test.) lists A TXT AAAA RRSIG"), "{found:#?}");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(bitmap_types(&[0, 6, 0x40, 0x01, 0, 0, 0, 0x03, 1, 1, 0x40]), [1, 15, 46, 47, 257]);
    }

    #[test]
    fn signature_times() {
        // Expiring within the warning window: warnings, the zone is still servable.
        let soon = parse_time("20461125000000").unwrap();
        let found = run(NSEC, "nsec.test.", &Options { now: soon, sig_warn_days: 7, force: false });
        let soa_sig = line_with(NSEC, &["RRSIG\tSOA "]);
        assert!(has(&found, Severity::Warning, soa_sig, "expires at 20461201000000"), "{found:#?}");
        assert!(found.iter().all(|f| f.0 == Severity::Warning));
        // Ten RRsets listed, the rest counted.
        assert!(found.iter().any(|f| f.2.contains("more RRsets with expired signatures not listed")), "{found:#?}");
        let quiet = run(NSEC, "nsec.test.", &Options { now: soon, sig_warn_days: 1, force: false });
        assert!(quiet.is_empty(), "{quiet:#?}");
        // All expired: an error unless forced.
        let late = parse_time("20470101000000").unwrap();
        let found = run(NSEC, "nsec.test.", &Options::at(late));
        assert!(found
            .iter()
            .any(|f| f.0 == Severity::Error && f.2.contains("every signature of nsec.test. has expired")));
        let forced = run(NSEC, "nsec.test.", &Options { force: true, ..Options::at(late) });
        assert!(forced.iter().all(|f| f.0 == Severity::Warning) && forced.iter().any(|f| f.2.contains("forced")));
        // Before the inception.
        let early = parse_time("20261130000000").unwrap();
        let found = run(NSEC, "nsec.test.", &Options::at(early));
        assert!(has(&found, Severity::Warning, soa_sig, "valid only from 20261201000000"), "{found:#?}");
    }

    #[test]
    fn nsec3_chain_with_a_record_missing() {
        // The NSEC3 of x.y.ent goes: the name is reported, and the record before it.
        let hash = base32hex(&nsec3_hash(b"\x01x\x01y\x03ent\x05nsec3\x04test\x00", &[0xaa, 0xbb, 0xcc, 0xdd], 5));
        let upper = hash.to_ascii_uppercase();
        let text = without(NSEC3, &[&format!("{upper}.nsec3.test."), "IN NSEC3"]);
        let found = run(&text, "nsec3.test.", &Options::at(NOW));
        let a = line_with(&text, &["x.y.ent.nsec3.test.", "IN A"]);
        assert!(has(&found, Severity::Error, a, "x.y.ent.nsec3.test. has no NSEC3 record"), "{found:#?}");
        let before = line_with(&text, &["IN NSEC3", &format!(" {upper}")]);
        assert!(has(&found, Severity::Error, before, &format!("names {hash} as the next hashed owner")), "{found:#?}");
    }

    #[test]
    fn nsec3_owner_that_is_no_name_and_a_second_chain() {
        let first = NSEC3.lines().find(|l| l.contains("IN NSEC3\t")).unwrap();
        let owner = &first[..32];
        // The same record under a hash of nothing in the zone, and one with another salt.
        let stray = first.replacen(owner, "00000000000000000000000000000000", 1);
        let salted = first.replacen(owner, "11111111111111111111111111111111", 1).replace("AABBCCDD", "AABB");
        let text = format!("{NSEC3}{stray}\n{salted}\n");
        let found = run(&text, "nsec3.test.", &Options::at(NOW));
        let stray_at = line_with(&text, &["00000000000000000000000000000000.nsec3"]);
        assert!(has(&found, Severity::Error, stray_at, "is the hash of no name"), "{found:#?}");
        let salted_at = line_with(&text, &["11111111111111111111111111111111.nsec3"]);
        assert!(has(&found, Severity::Error, salted_at, "salt AABB, the NSEC3PARAM"), "{found:#?}");
    }

    #[test]
    fn nsec3_without_nsec3param() {
        let text = without(NSEC3, &["nsec3.test.", "IN NSEC3PARAM"]);
        let found = run(&text, "nsec3.test.", &Options::at(NOW));
        assert!(found.iter().any(|f| f.0 == Severity::Error && f.2.contains("no NSEC3PARAM")), "{found:#?}");
    }

    #[test]
    fn nsec3_hash_and_base32hex_vectors() {
        // RFC 5155 Appendix A: H(example) with salt aabbccdd and 12 iterations.
        let h = nsec3_hash(b"\x07example\x00", &[0xaa, 0xbb, 0xcc, 0xdd], 12);
        assert_eq!(base32hex(&h), "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom");
        let h = nsec3_hash(b"\x01a\x07example\x00", &[0xaa, 0xbb, 0xcc, 0xdd], 12);
        assert_eq!(base32hex(&h), "35mthgpgcu1qg68fab165klnsnk3dpvl");
        // RFC 4648 §10, lowercase and without padding.
        for (raw, enc) in
            [("", ""), ("f", "co"), ("fo", "cpng"), ("foo", "cpnmu"), ("foob", "cpnmuog"), ("foobar", "cpnmuoj1e8")]
        {
            assert_eq!(base32hex(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn times_both_ways() {
        assert_eq!(parse_time("19700101000000"), Some(0));
        assert_eq!(parse_time("20261205000000"), Some(NOW));
        assert_eq!(parse_time("1796428800"), Some(NOW));
        for bad in ["", "2026120500000", "20261305000000", "2026-12-05", "20261232000000"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(rrsig_time(NOW as u32), "20261205000000");
        assert_eq!(rrsig_time(parse_time("20461201000000").unwrap() as u32), "20461201000000");
    }
}
