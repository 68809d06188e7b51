//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018): reading the COOKIE
//! option of a query, judging its server cookie, and making the server cookie of a reply.
//! Pure: the client's address, the time and the secrets are given; no allocation, so the
//! run loops can call it per packet.
//!
//! A server cookie of ours is `version 1 | reserved (3, sent as 0) | timestamp (4) | hash
//! (8)`, the hash SipHash-2-4 keyed with the server secret over the client cookie, the
//! first eight octets of the server cookie and the client's address (RFC 9018 §4), so
//! every server of an anycast set that shares the secret accepts what another made. One
//! is valid for an hour and up to five minutes ahead of our clock (§4.3), under the current
//! secret or the previous one (a rotation, §5).

use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// The COOKIE EDNS option code (RFC 7873 §4).
pub const OPTION_CODE: u16 = 10;
/// Client cookie length; a server cookie is 8 to 32 octets, ours 16.
pub const CLIENT_LEN: usize = 8;
pub const SERVER_LEN: usize = 16;
/// The COOKIE option a reply carries: client and server cookie.
pub const REPLY_LEN: usize = CLIENT_LEN + SERVER_LEN;
/// How long a server cookie is accepted, and how far ahead of our clock (RFC 9018 §4.3).
pub const LIFETIME: u32 = 3600;
pub const AHEAD: u32 = 300;

/// The server secrets: the one cookies are made with, and the one before it, still accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    pub current: [u8; 16],
    pub previous: Option<[u8; 16]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        write!(f, "Secrets {{ previous: {} }}", self.previous.is_some())
    }
}

impl Secrets {
    pub fn new(current: [u8; 16]) -> Secrets {
        Secrets { current, previous: None }
    }

    /// `next` becomes the secret cookies are made with; the current one is still accepted.
    pub fn rotate(&mut self, next: [u8; 16]) {
        if next != self.current {
            self.previous = Some(self.current);
            self.current = next;
        }
    }
}

/// The secrets in use, replaced whole when a configuration reload rotates them: the run
/// loops copy them out once per batch ([`crate::answer::Config::refresh`]), without a lock.
/// One per server, made at start and kept for the life of the process.
pub type SharedSecrets = arc_swap::ArcSwap<Secrets>;

/// What a query's COOKIE option says (RFC 7873 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The option's length is not 8 or 16 to 40: FORMERR (§5.2.2).
    Malformed,
    /// A client cookie alone (§5.2.3): answered, with a server cookie.
    ClientOnly { client: [u8; CLIENT_LEN] },
    /// A server cookie we did not make, made for another client, expired or from a secret
    /// we no longer have (§5.2.4): answered as if it were not there (or BADCOOKIE, where the
    /// server insists on cookies), with a fresh one.
    Invalid { client: [u8; CLIENT_LEN] },
    /// A server cookie of ours (§5.2.5): the client has shown it receives our replies at its
    /// address, so rate limiting may let it through. `current`: made with the current
    /// secret (not the previous one).
    Valid { client: [u8; CLIENT_LEN], current: bool },
}

impl Verdict {
    /// The client cookie to answer with, unless the option was malformed.
    pub fn client(&self) -> Option<&[u8; CLIENT_LEN]> {
        match self {
            Verdict::Malformed => None,
            Verdict::ClientOnly { client } | Verdict::Invalid { client } | Verdict::Valid { client, .. } => {
                Some(client)
            }
        }
    }
}

/// Judges the data of a COOKIE option from `client_ip`, at Unix time `now` (its low 32 bits,
/// compared in serial number arithmetic as RFC 9018 §4.3 says).
pub fn check(data: &[u8], client_ip: IpAddr, now: u32, secrets: &Secrets) -> Verdict {
    let len = data.len();
    if len != CLIENT_LEN && !(CLIENT_LEN + 8..=CLIENT_LEN + 32).contains(&len) {
        return Verdict::Malformed;
    }
    let mut client = [0u8; CLIENT_LEN];
    client.copy_from_slice(&data[..CLIENT_LEN]);
    if len == CLIENT_LEN {
        return Verdict::ClientOnly { client };
    }
    let server = &data[CLIENT_LEN..];
    if server.len() != SERVER_LEN || server[0] != 1 {
        return Verdict::Invalid { client };
    }
    let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
    // Serial arithmetic: age in (-2^31, 2^31).
    let age = now.wrapping_sub(stamp) as i32;
    if age > LIFETIME as i32 || age < -(AHEAD as i32) {
        return Verdict::Invalid { client };
    }
    let head: [u8; 8] = server[..8].try_into().unwrap_or_default();
    let ours = |secret: &[u8; 16]| hash(secret, &client, &head, client_ip) == server[8..];
    if ours(&secrets.current) {
        Verdict::Valid { client, current: true }
    } else if secrets.previous.as_ref().is_some_and(ours) {
        Verdict::Valid { client, current: false }
    } else {
        Verdict::Invalid { client }
    }
}

/// Whether a valid server cookie of ours was made less than half an hour ago, so that a reply
/// may carry it again instead of a new one (RFC 9018 §4.3).
pub fn fresh(server: &[u8], now: u32) -> bool {
    let Some(stamp) = server.get(4..8) else { return false };
    let stamp = u32::from_be_bytes([stamp[0], stamp[1], stamp[2], stamp[3]]);
    (now.wrapping_sub(stamp) as i32) < (LIFETIME / 2) as i32
}

/// Our server cookie for `client` at `client_ip`, made now with the current secret.
pub fn server_cookie(client: &[u8; CLIENT_LEN], client_ip: IpAddr, now: u32, secrets: &Secrets) -> [u8; SERVER_LEN] {
    let mut out = [0u8; SERVER_LEN];
    out[0] = 1;
    out[4..8].copy_from_slice(&now.to_be_bytes());
    let head: [u8; 8] = out[..8].try_into().unwrap_or_default();
    out[8..].copy_from_slice(&hash(&secrets.current, client, &head, client_ip));
    out
}

/// RFC 9018 §4.4: SipHash-2-4 over client cookie | version | reserved | timestamp | address,
/// its 64-bit result in little-endian order.
fn hash(secret: &[u8; 16], client: &[u8; CLIENT_LEN], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
    // One contiguous input, hashed in one call (the streaming `Hasher` buffers each piece).
    let mut input = [0u8; CLIENT_LEN + 8 + 16];
    input[..8].copy_from_slice(client);
    input[8..16].copy_from_slice(head);
    let len = match ip {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => {
            input[16..32].copy_from_slice(&a.octets());
            32
        }
        IpAddr::V6(a) => {
            input[16..20].copy_from_slice(&a.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).octets());
            20
        }
        IpAddr::V4(a) => {
            input[16..20].copy_from_slice(&a.octets());
            20
        }
    };
    SipHasher24::new_with_key(secret).hash(&input[..len]).to_le_bytes()
}

/// The low 32 bits of the Unix time, as server cookies carry it (one clock read; the run
/// loops take it once per batch).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// A secret from its configuration form: 32 hex digits.
pub fn parse_secret(hex: &str) -> Option<[u8; 16]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 32 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        unhex(s).try_into().unwrap()
    }

    const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

    /// RFC 9018 Appendix A.1: a client cookie alone gets a new server cookie.
    #[test]
    fn rfc9018_a1_a_new_server_cookie() {
        let s = Secrets::new(arr(SECRET));
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let client = arr("2464c4abcf10c957");
        assert_eq!(check(&client, ip, 1559731985, &s), Verdict::ClientOnly { client });
        assert_eq!(server_cookie(&client, ip, 1559731985, &s).to_vec(), unhex("010000005cf79f111f8130c3eee29480"));
    }

    /// A.2: the same client comes back with it (valid), and gets a renewed one.
    #[test]
    fn rfc9018_a2_renewed() {
        let s = Secrets::new(arr(SECRET));
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let opt = unhex("2464c4abcf10c957010000005cf79f111f8130c3eee29480");
        let client = arr("2464c4abcf10c957");
        assert_eq!(check(&opt, ip, 1559734385, &s), Verdict::Valid { client, current: true });
        assert_eq!(server_cookie(&client, ip, 1559734385, &s).to_vec(), unhex("010000005cf7a871d4a564a1442aca77"));
        // The same cookie from another address, or too late, or too early, is not valid.
        assert_eq!(check(&opt, "198.51.100.101".parse().unwrap(), 1559734385, &s), Verdict::Invalid { client });
        assert_eq!(check(&opt, ip, 1559731985 + LIFETIME + 1, &s), Verdict::Invalid { client });
        assert_eq!(check(&opt, ip, 1559731985 + LIFETIME, &s), Verdict::Valid { client, current: true });
        assert_eq!(check(&opt, ip, 1559731985 - AHEAD - 1, &s), Verdict::Invalid { client });
        assert_eq!(check(&opt, ip, 1559731985 - AHEAD, &s), Verdict::Valid { client, current: true });
    }

    /// A.3: reserved octets that are not zero are hashed as they came.
    #[test]
    fn rfc9018_a3_reserved_octets() {
        let s = Secrets::new(arr(SECRET));
        let ip: IpAddr = "203.0.113.203".parse().unwrap();
        let opt = unhex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
        let client = arr("fc93fc62807ddb86");
        // (Made at 1559727985: valid within the hour after; the example renews it later.)
        assert_eq!(check(&opt, ip, 1559727985 + 60, &s), Verdict::Valid { client, current: true });
        assert_eq!(check(&opt, ip, 1559734700, &s), Verdict::Invalid { client }, "older than an hour");
        assert_eq!(server_cookie(&client, ip, 1559734700, &s).to_vec(), unhex("010000005cf7a9acf73a7810aca2381e"));
    }

    /// A.4: IPv6, a cookie made with the secret before a rotation.
    #[test]
    fn rfc9018_a4_rotated_secret() {
        let ip: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        let opt = unhex("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
        let client = arr("22681ab97d52c298");
        let old = arr("dd3bdf9344b678b185a6f5cb60fca715");
        let new = arr("445536bcd2513298075a5d379663c962");
        assert_eq!(check(&opt, ip, 1559741961, &Secrets::new(new)), Verdict::Invalid { client });
        let mut s = Secrets::new(old);
        assert_eq!(check(&opt, ip, 1559741961, &s), Verdict::Valid { client, current: true });
        s.rotate(new);
        assert_eq!(
            check(&opt, ip, 1559741961, &s),
            Verdict::Valid { client, current: false },
            "the previous secret still counts"
        );
        assert_eq!(server_cookie(&client, ip, 1559741961, &s).to_vec(), unhex("010000005cf7c609a6bb79d16625507a"));
        s.rotate(arr("00000000000000000000000000000001"));
        assert_eq!(check(&opt, ip, 1559741961, &s), Verdict::Invalid { client }, "two rotations later");
    }

    #[test]
    fn lengths() {
        let s = Secrets::new(arr(SECRET));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for len in [0, 1, 7, 9, 15, 41, 64] {
            assert_eq!(check(&vec![1u8; len], ip, 0, &s), Verdict::Malformed, "{len}");
        }
        for len in [16, 23, 25, 40] {
            assert!(matches!(check(&vec![1u8; len], ip, 0, &s), Verdict::Invalid { .. }), "{len}");
        }
        // Our own cookie, around the wrap of the 32-bit clock.
        let client = [7u8; 8];
        let sc = server_cookie(&client, ip, u32::MAX - 10, &s);
        let opt: Vec<u8> = client.iter().chain(sc.iter()).copied().collect();
        assert_eq!(check(&opt, ip, 20, &s), Verdict::Valid { client, current: true });
        assert_eq!(check(&opt, "::ffff:192.0.2.1".parse().unwrap(), 20, &s), Verdict::Valid { client, current: true });
    }

    #[test]
    fn secrets_from_hex() {
        assert_eq!(parse_secret(SECRET), Some(arr(SECRET)));
        assert_eq!(parse_secret(&SECRET.to_uppercase()), Some(arr(SECRET)));
        assert_eq!(parse_secret("e5e9"), None);
        assert_eq!(parse_secret("g5e973e5a6b2a43f48e7dc849e37bfcf"), None);
        assert!(!format!("{:?}", Secrets::new(arr(SECRET))).contains("e5"), "Debug shows no secret");
    }
}
