//! NOTIFY out (RFC 1996): after a zone changes, tell every secondary, and retry until each
//! answers or the attempts run out.
//!
//! The protocol part is pure: [`Outbox`] holds one pending notification per (zone, target),
//! says which messages are due at a given instant, and matches responses. The caller (the
//! zone manager thread) owns the UDP socket and the clock, and signs messages when the
//! target has a key.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::wire::name::Name;
use crate::wire::rdata::rtype;
use crate::zone::Zone;

/// NOTIFY opcode.
pub const OPCODE_NOTIFY: u8 = 4;

/// How often and how long to try.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts per target (the first included).
    pub attempts: u32,
    /// Wait for a response before trying again; doubled after each attempt.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { attempts: 5, timeout: Duration::from_secs(2) }
    }
}

/// A NOTIFY query for `zone` (lowercased or not, written as given) with the SOA in the answer
/// section (RFC 1996 §3.7: a hint the secondary may use), AA set.
pub fn message(id: u16, zone: &Name, soa: Option<(u32, &[u8])>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    // QR=0, opcode NOTIFY, AA.
    m.extend_from_slice(&[(OPCODE_NOTIFY << 3) | 0x04, 0]);
    m.extend_from_slice(&[0, 1, 0, u8::from(soa.is_some()), 0, 0, 0, 0]);
    m.extend_from_slice(zone.as_wire());
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some((ttl, rdata)) = soa {
        m.extend_from_slice(&[0xC0, 12]);
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

/// Whether `resp` answers the NOTIFY `id` for `zone`: QR set, opcode NOTIFY, same ID and
/// question. Its rcode is returned (NOERROR = acknowledged; anything else is also an answer,
/// and retrying would not change it).
pub fn response_rcode(resp: &[u8], id: u16, zone: &Name) -> Option<u8> {
    if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
        return None;
    }
    if resp[2] & 0x80 == 0 || (resp[2] >> 3) & 0xF != OPCODE_NOTIFY {
        return None;
    }
    let q = zone.as_wire();
    let qd = u16::from_be_bytes([resp[4], resp[5]]);
    if qd == 1 {
        let name = resp.get(12..12 + q.len())?;
        if !name.eq_ignore_ascii_case(q) {
            return None;
        }
    }
    Some(resp[3] & 0x0F)
}

/// The addresses of the zone's apex NS names that the zone itself holds (glue or in-zone
/// addresses), except `ours`: where classic primaries send NOTIFY besides their list.
pub fn ns_addresses(zone: &Zone, port: u16, ours: &[IpAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let Some(ns) = zone.rrset(zone.origin(), rtype::NS) else { return out };
    for rd in ns.rdata.iter() {
        let Ok(target) = Name::from_wire(rd) else { continue };
        for (t, len) in [(rtype::A, 4), (rtype::AAAA, 16)] {
            let Some(set) = zone.rrset(&target.to_lowercase(), t) else { continue };
            for a in set.rdata.iter() {
                let ip = match (len, a.len()) {
                    (4, 4) => IpAddr::from(<[u8; 4]>::try_from(a).expect("length checked")),
                    (16, 16) => IpAddr::from(<[u8; 16]>::try_from(a).expect("length checked")),
                    _ => continue,
                };
                let sa = SocketAddr::new(ip, port);
                if !ours.contains(&ip) && !out.contains(&sa) {
                    out.push(sa);
                }
            }
        }
    }
    out
}

/// One pending notification.
#[derive(Debug, Clone)]
pub struct Pending {
    pub zone: Name,
    pub serial: u32,
    pub target: SocketAddr,
    /// Name of the key to sign with.
    pub key: Option<String>,
    pub id: u16,
    pub sent: u32,
    pub next: Instant,
    timeout: Duration,
    /// The zone's SOA (TTL, rdata), sent in the answer section (RFC 1996 §3.7) so that a
    /// secondary already at this serial can skip its SOA query.
    pub soa: Option<(u32, std::sync::Arc<[u8]>)>,
}

/// What became of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Answered { zone: Name, target: SocketAddr, rcode: u8 },
    GaveUp { zone: Name, target: SocketAddr, attempts: u32 },
}

/// The notifications in flight.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Vec<Pending>,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox { pending: Vec::new() }
    }

    /// Queues a NOTIFY for a new version of `zone` to `target`, due at once, with a random
    /// message ID ([`crate::wire::id::random`]; its retries keep it, so a late answer to an
    /// earlier attempt still counts). A notification of the same zone to the same target
    /// still pending is replaced (the newer serial is what matters).
    pub fn notify(
        &mut self,
        zone: &Name,
        serial: u32,
        target: SocketAddr,
        key: Option<String>,
        now: Instant,
        p: &Policy,
    ) {
        self.pending.retain(|q| !(q.zone == *zone && q.target == target));
        self.pending.push(Pending {
            zone: zone.clone(),
            serial,
            target,
            key,
            id: crate::wire::id::random(),
            sent: 0,
            next: now,
            timeout: p.timeout,
            soa: None,
        });
    }

    /// Attaches the SOA of `zone`'s version to its pending notifications.
    pub fn attach_soa(&mut self, zone: &Name, ttl: u32, rdata: &[u8]) {
        let rdata: std::sync::Arc<[u8]> = rdata.into();
        for q in self.pending.iter_mut().filter(|q| q.zone == *zone) {
            q.soa = Some((ttl, rdata.clone()));
        }
    }

    /// The notifications to (re)send now; each is marked as sent. Those out of attempts are
    /// dropped and reported in `gave_up`.
    pub fn due(&mut self, now: Instant, p: &Policy, gave_up: &mut Vec<Done>) -> Vec<Pending> {
        let mut out = Vec::new();
        self.pending.retain_mut(|q| {
            if q.next > now {
                return true;
            }
            if q.sent >= p.attempts {
                gave_up.push(Done::GaveUp { zone: q.zone.clone(), target: q.target, attempts: q.sent });
                return false;
            }
            q.sent += 1;
            q.next = now + q.timeout;
            q.timeout *= 2;
            out.push(q.clone());
            true
        });
        out
    }

    /// A datagram from `from`: if it answers a pending notification, that one is done.
    pub fn response(&mut self, from: SocketAddr, msg: &[u8]) -> Option<Done> {
        let i = self
            .pending
            .iter()
            .position(|q| same_host(q.target, from) && response_rcode(msg, q.id, &q.zone).is_some() && q.sent > 0)?;
        let q = self.pending.remove(i);
        let rcode = response_rcode(msg, q.id, &q.zone).unwrap_or(0);
        Some(Done::Answered { zone: q.zone, target: q.target, rcode })
    }

    /// When the next message is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|q| q.next).min()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Same address and port (an IPv4-mapped IPv6 source counts as its IPv4 address).
fn same_host(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |s: SocketAddr| match s.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(s.ip(), IpAddr::V4),
        ip => ip,
    };
    a.port() == b.port() && canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse::load_text;
    use std::path::Path;

    fn n(s: &str) -> Name {
        Name::parse_text(s.as_bytes(), None).unwrap()
    }

    #[test]
    fn message_and_response() {
        let z = n("Example.test.");
        let m = message(
            0x1234,
            &z,
            Some((
                3600,
                b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05",
            )),
        );
        assert_eq!(&m[..4], &[0x12, 0x34, 0x24, 0x00]);
        assert_eq!(&m[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        // A response is the query with QR set (and an rcode).
        let mut r = m[..12 + z.len() + 4].to_vec();
        r[2] |= 0x80;
        r[7] = 0;
        assert_eq!(response_rcode(&r, 0x1234, &n("example.TEST.")), Some(0));
        assert_eq!(response_rcode(&r, 0x1235, &z), None);
        r[3] = 5;
        assert_eq!(response_rcode(&r, 0x1234, &z), Some(5));
        assert_eq!(response_rcode(&m, 0x1234, &z), None, "a query is no response");
        assert_eq!(response_rcode(&r[..11], 0x1234, &z), None);
    }

    #[test]
    fn retries_back_off_and_give_up() {
        let p = Policy { attempts: 3, timeout: Duration::from_secs(1) };
        let mut o = Outbox::new();
        let t0 = Instant::now();
        let z = n("z.test.");
        let target: SocketAddr = "192.0.2.9:53".parse().unwrap();
        o.notify(&z, 5, target, None, t0, &p);
        let mut gave_up = Vec::new();
        assert_eq!(o.due(t0, &p, &mut gave_up).len(), 1);
        assert!(o.due(t0 + Duration::from_millis(999), &p, &mut gave_up).is_empty());
        assert_eq!(o.due(t0 + Duration::from_secs(1), &p, &mut gave_up).len(), 1);
        // Backed off: 2 s after the second attempt.
        assert!(o.due(t0 + Duration::from_secs(2), &p, &mut gave_up).is_empty());
        assert_eq!(o.due(t0 + Duration::from_secs(3), &p, &mut gave_up).len(), 1);
        assert!(o.due(t0 + Duration::from_secs(100), &p, &mut gave_up).is_empty());
        assert_eq!(gave_up, vec![Done::GaveUp { zone: z, target, attempts: 3 }]);
        assert!(o.is_empty());
    }

    #[test]
    fn an_answer_ends_it_and_a_newer_serial_replaces_it() {
        let p = Policy::default();
        let mut o = Outbox::new();
        let t0 = Instant::now();
        let z = n("z.test.");
        let a: SocketAddr = "127.0.0.1:5302".parse().unwrap();
        let b: SocketAddr = "[::1]:5302".parse().unwrap();
        o.notify(&z, 1, a, None, t0, &p);
        o.notify(&z, 2, a, None, t0, &p);
        o.notify(&z, 2, b, Some("k".into()), t0, &p);
        assert_eq!(o.len(), 2);
        let sent = o.due(t0, &p, &mut Vec::new());
        assert_eq!(sent.iter().map(|q| q.serial).collect::<Vec<_>>(), vec![2, 2]);
        let qa = sent.iter().find(|q| q.target == a).unwrap();
        let mut resp = message(qa.id, &z, None);
        resp[2] |= 0x80;
        // From the wrong port: not it.
        assert_eq!(o.response("127.0.0.1:9".parse().unwrap(), &resp), None);
        // From the target, as an IPv4-mapped address: done.
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5302".parse().unwrap();
        assert_eq!(o.response(mapped, &resp), Some(Done::Answered { zone: z.clone(), target: a, rcode: 0 }));
        assert_eq!(o.len(), 1);
        assert_eq!(o.next_due(), Some(t0 + p.timeout));
    }

    #[test]
    fn ids_are_random_and_an_answer_must_carry_its_own() {
        let p = Policy::default();
        let mut o = Outbox::new();
        let t0 = Instant::now();
        let z = n("z.test.");
        let targets: Vec<SocketAddr> = (0..64).map(|i| SocketAddr::from(([127, 0, 0, 1], 5300 + i))).collect();
        for t in &targets {
            o.notify(&z, 1, *t, None, t0, &p);
        }
        let sent = o.due(t0, &p, &mut Vec::new());
        let mut ids: Vec<u16> = sent.iter().map(|q| q.id).collect();
        // Not a counter or a fixed step: consecutive notifications differ by varying steps.
        let steps: std::collections::HashSet<u16> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 50, "{ids:04x?}");
        ids.sort_unstable();
        ids.dedup();
        assert!(ids.len() >= 58, "{ids:04x?}");
        // A retry keeps its ID.
        let again = o.due(t0 + p.timeout, &p, &mut Vec::new());
        assert_eq!(again.iter().map(|q| q.id).collect::<Vec<_>>(), sent.iter().map(|q| q.id).collect::<Vec<_>>());
        // An answer from the right target with any other ID is not taken.
        let q = &sent[0];
        for wrong in [q.id ^ 1, q.id.wrapping_add(0x9E37), !q.id] {
            let mut resp = message(wrong, &z, None);
            resp[2] |= 0x80;
            assert_eq!(o.response(q.target, &resp), None);
        }
        let mut resp = message(q.id, &z, None);
        resp[2] |= 0x80;
        assert_eq!(o.response(q.target, &resp), Some(Done::Answered { zone: z, target: q.target, rcode: 0 }));
        assert_eq!(o.len(), 63);
    }

    #[test]
    fn ns_addresses_skip_our_own() {
        let origin = n("z.test.");
        let text = "$ORIGIN z.test.\n$TTL 60\n@ SOA ns1 hm 1 2 3 4 5\n@ NS ns1\n@ NS ns2\n@ NS ns.elsewhere.example.\n\
                    ns1 A 198.18.0.1\nns2 A 198.18.0.2\nns2 AAAA 2001:db8::2\n";
        let l = load_text(Path::new("z"), text.as_bytes(), &origin);
        let ours = ["198.18.0.1".parse().unwrap()];
        let got = ns_addresses(&l.zone, 53, &ours);
        let want: Vec<SocketAddr> = vec!["198.18.0.2:53".parse().unwrap(), "[2001:db8::2]:53".parse().unwrap()];
        assert_eq!(got, want);
    }
}
