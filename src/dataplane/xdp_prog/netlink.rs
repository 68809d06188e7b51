//! rtnetlink, only as far as XDP needs it: which program an interface runs (`RTM_GETLINK`,
//! the `IFLA_XDP` attributes) and removing one (`RTM_SETLINK` with `IFLA_XDP_FD = -1`).
//!
//! Messages are built and parsed over plain byte buffers (unit-tested below without a
//! kernel); [`Socket`] only moves them. The socket belongs to the network namespace of the
//! thread that opens it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// From linux/netlink.h and linux/rtnetlink.h.
const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const IFINFO_LEN: usize = 16;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

// From linux/if_link.h.
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_ATTACHED_NONE: u8 = 0;
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const XDP_ATTACHED_MULTI: u8 = 4;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// Where an attached XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before an skb exists (`xdpdrv`).
    Native,
    /// After the skb is built, for drivers without XDP support (`xdpgeneric`).
    Generic,
    /// On the NIC itself (`xdpoffload`).
    Offloaded,
}

impl AttachMode {
    /// The `XDP_FLAGS_*_MODE` bit of this mode.
    pub fn flag(self) -> u32 {
        match self {
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XDP_FLAGS_SKB_MODE,
            AttachMode::Offloaded => XDP_FLAGS_HW_MODE,
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native (driver) mode",
            AttachMode::Generic => "generic (skb) mode",
            AttachMode::Offloaded => "offloaded (hardware) mode",
        })
    }
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn get_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink header and an `ifinfomsg` for interface `ifindex`; the caller appends
/// attributes and [`finish`] writes the total length.
fn link_message(msg_type: u16, flags: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    put_u32(&mut m, 0); // nlmsg_len, set by finish()
    put_u16(&mut m, msg_type);
    put_u16(&mut m, flags);
    put_u32(&mut m, seq);
    put_u32(&mut m, 0); // nlmsg_pid: the kernel fills in ours
    m.push(libc::AF_UNSPEC as u8); // ifi_family
    m.push(0); // padding
    put_u16(&mut m, 0); // ifi_type
    put_u32(&mut m, ifindex); // ifi_index
    put_u32(&mut m, 0); // ifi_flags
    put_u32(&mut m, 0); // ifi_change
    m
}

fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// The request for interface `ifindex`'s attributes.
pub fn get_link_request(seq: u32, ifindex: u32) -> Vec<u8> {
    finish(link_message(RTM_GETLINK, NLM_F_REQUEST, seq, ifindex))
}

/// The request that removes the program `expected_fd` refers to from `ifindex` in the
/// mode of `mode_flag`; the kernel refuses it if another program has taken its place.
pub fn detach_request(seq: u32, ifindex: u32, mode_flag: u32, expected_fd: RawFd) -> Vec<u8> {
    let mut m = link_message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifindex);
    let nest_at = m.len();
    put_u16(&mut m, 0); // nested attribute length, set below
    put_u16(&mut m, IFLA_XDP | NLA_F_NESTED);
    for (kind, value) in [
        (IFLA_XDP_FD, -1i32 as u32),
        (IFLA_XDP_FLAGS, mode_flag | XDP_FLAGS_REPLACE),
        (IFLA_XDP_EXPECTED_FD, expected_fd as u32),
    ] {
        put_u16(&mut m, 8);
        put_u16(&mut m, kind);
        put_u32(&mut m, value);
    }
    let nest_len = (m.len() - nest_at) as u16;
    m[nest_at..nest_at + 2].copy_from_slice(&nest_len.to_ne_bytes());
    finish(m)
}

/// Attributes in `b` (already past their container's header) as (type, payload).
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = get_u16(b, 0)? as usize;
        let kind = get_u16(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// The XDP programs attached to an interface, by mode, parsed from the `IFLA_XDP` nest.
fn parse_xdp_nest(nest: &[u8]) -> Vec<(AttachMode, u32)> {
    let mut attached = XDP_ATTACHED_NONE;
    let (mut any, mut drv, mut skb, mut hw) = (0, 0, 0, 0);
    for (kind, payload) in attributes(nest) {
        let id = get_u32(payload, 0).unwrap_or(0);
        match kind {
            IFLA_XDP_ATTACHED => attached = payload.first().copied().unwrap_or(XDP_ATTACHED_NONE),
            IFLA_XDP_PROG_ID => any = id,
            IFLA_XDP_DRV_PROG_ID => drv = id,
            IFLA_XDP_SKB_PROG_ID => skb = id,
            IFLA_XDP_HW_PROG_ID => hw = id,
            _ => {}
        }
    }
    match attached {
        XDP_ATTACHED_DRV => vec![(AttachMode::Native, any)],
        XDP_ATTACHED_SKB => vec![(AttachMode::Generic, any)],
        XDP_ATTACHED_HW => vec![(AttachMode::Offloaded, any)],
        XDP_ATTACHED_MULTI => [(AttachMode::Native, drv), (AttachMode::Generic, skb), (AttachMode::Offloaded, hw)]
            .into_iter()
            .filter(|&(_, id)| id != 0)
            .collect(),
        _ => Vec::new(),
    }
}

/// What came back for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// `RTM_NEWLINK`: the interface's XDP programs.
    Link(Vec<(AttachMode, u32)>),
    /// `NLMSG_ERROR` with 0: the request was carried out.
    Ack,
    /// `NLMSG_ERROR` with an errno, and the kernel's extended message if it gave one.
    Error(i32, Option<String>),
}

/// Finds the answer to request `seq` among the messages in `buf` (one `recv`).
pub fn parse_reply(mut buf: &[u8], seq: u32) -> Option<Reply> {
    while buf.len() >= NLMSG_HDR_LEN {
        let len = get_u32(buf, 0)? as usize;
        if len < NLMSG_HDR_LEN || len > buf.len() {
            return None;
        }
        let (msg, rest) = (&buf[..len], buf.get(align4(len)..).unwrap_or(&[]));
        buf = rest;
        let (kind, flags, msg_seq) = (get_u16(msg, 4)?, get_u16(msg, 6)?, get_u32(msg, 8)?);
        if msg_seq != seq {
            continue;
        }
        let body = &msg[NLMSG_HDR_LEN..];
        match kind {
            RTM_NEWLINK => {
                let attrs = body.get(IFINFO_LEN..)?;
                let xdp = attributes(attrs).find(|&(k, _)| k == IFLA_XDP).map(|(_, nest)| parse_xdp_nest(nest));
                return Some(Reply::Link(xdp.unwrap_or_default()));
            }
            NLMSG_ERROR => {
                let errno = -(get_u32(body, 0)? as i32);
                if errno == 0 {
                    return Some(Reply::Ack);
                }
                // With NETLINK_CAP_ACK only the request's header is echoed, then the TLVs.
                let text = if flags & NLM_F_ACK_TLVS != 0 {
                    body.get(4 + NLMSG_HDR_LEN..).and_then(|tlvs| {
                        attributes(tlvs).find(|&(k, _)| k == NLMSGERR_ATTR_MSG).map(|(_, s)| {
                            let s = s.split(|&c| c == 0).next().unwrap_or(&[]);
                            String::from_utf8_lossy(s).into_owned()
                        })
                    })
                } else {
                    None
                };
                return Some(Reply::Error(errno, text));
            }
            _ => continue,
        }
    }
    None
}

/// An `AF_NETLINK`/`NETLINK_ROUTE` socket.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a socket we just created and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            let one: libc::c_int = 1;
            // SAFETY: `one` outlives the call and its size is passed. Failure only means an
            // older kernel without extended acks, so it is ignored.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Socket { fd, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request and returns the kernel's answer to it.
    fn round_trip(&mut self, request: &[u8], seq: u32) -> io::Result<Reply> {
        // SAFETY: zeroed sockaddr_nl is valid; family set below; pid 0 addresses the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `request` and `to` are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if let Some(reply) = parse_reply(&buf[..n as usize], seq) {
                return Ok(reply);
            }
        }
    }

    /// The XDP programs attached to `ifindex` (empty if none), with their modes.
    pub fn xdp_programs(&mut self, ifindex: u32) -> io::Result<Vec<(AttachMode, u32)>> {
        let seq = self.next_seq();
        match self.round_trip(&get_link_request(seq, ifindex), seq)? {
            Reply::Link(progs) => Ok(progs),
            Reply::Ack => Ok(Vec::new()),
            Reply::Error(errno, msg) => Err(with_message(errno, msg)),
        }
    }

    /// Removes the program `expected_fd` refers to from `ifindex` (attached in `mode`).
    pub fn detach(&mut self, ifindex: u32, mode: AttachMode, expected_fd: RawFd) -> io::Result<()> {
        let seq = self.next_seq();
        match self.round_trip(&detach_request(seq, ifindex, mode.flag(), expected_fd), seq)? {
            Reply::Ack => Ok(()),
            Reply::Link(_) => Err(io::Error::other("unexpected RTM_NEWLINK answer to RTM_SETLINK")),
            Reply::Error(errno, msg) => Err(with_message(errno, msg)),
        }
    }
}

fn with_message(errno: i32, msg: Option<String>) -> io::Error {
    let e = io::Error::from_raw_os_error(errno);
    match msg {
        Some(m) if !m.is_empty() => io::Error::new(e.kind(), format!("{e}: {m}")),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_link_request_layout() {
        let m = get_link_request(7, 3);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &32u32.to_ne_bytes()[..], &18u16.to_ne_bytes(), &1u16.to_ne_bytes(), &7u32.to_ne_bytes(), &[0; 4],
            &[0, 0], &[0, 0], &3u32.to_ne_bytes(), &[0; 4], &[0; 4],
        ].concat();
        assert_eq!(m, want);
    }

    #[test]
    fn detach_request_layout() {
        let m = detach_request(9, 4, XDP_FLAGS_DRV_MODE, 11);
        assert_eq!(m.len(), 32 + 4 + 3 * 8);
        assert_eq!(get_u32(&m, 0), Some(m.len() as u32));
        assert_eq!(get_u16(&m, 4), Some(RTM_SETLINK));
        assert_eq!(get_u16(&m, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(get_u16(&m, 32), Some(28)); // the nest: its header and three u32 attributes
        assert_eq!(get_u16(&m, 34), Some(IFLA_XDP | NLA_F_NESTED));
        let attrs: Vec<_> = attributes(&m[36..]).map(|(k, p)| (k, get_u32(p, 0).unwrap())).collect();
        assert_eq!(
            attrs,
            [
                (IFLA_XDP_FD, u32::MAX),
                (IFLA_XDP_FLAGS, XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE),
                (IFLA_XDP_EXPECTED_FD, 11)
            ]
        );
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        put_u16(&mut a, (4 + payload.len()) as u16);
        put_u16(&mut a, kind);
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        put_u32(&mut m, (16 + body.len()) as u32);
        put_u16(&mut m, kind);
        put_u16(&mut m, flags);
        put_u32(&mut m, seq);
        put_u32(&mut m, 0);
        m.extend_from_slice(body);
        m
    }

    fn newlink(seq: u32, xdp: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; IFINFO_LEN];
        body.extend(attr(3, b"veth0\0")); // IFLA_IFNAME, before the nest
        body.extend(attr(IFLA_XDP | NLA_F_NESTED, &xdp.concat()));
        body.extend(attr(4, &1500u32.to_ne_bytes())); // IFLA_MTU, after it
        message(RTM_NEWLINK, 0, seq, &body)
    }

    #[test]
    fn parses_attached_programs() {
        let none = newlink(1, &[attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_NONE])]);
        assert_eq!(parse_reply(&none, 1), Some(Reply::Link(vec![])));

        let drv =
            newlink(2, &[attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_DRV]), attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes())]);
        assert_eq!(parse_reply(&drv, 2), Some(Reply::Link(vec![(AttachMode::Native, 42)])));

        let skb =
            newlink(3, &[attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_SKB]), attr(IFLA_XDP_PROG_ID, &7u32.to_ne_bytes())]);
        assert_eq!(parse_reply(&skb, 3), Some(Reply::Link(vec![(AttachMode::Generic, 7)])));

        let multi = newlink(
            4,
            &[
                attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_MULTI]),
                attr(IFLA_XDP_DRV_PROG_ID, &5u32.to_ne_bytes()),
                attr(IFLA_XDP_HW_PROG_ID, &6u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            parse_reply(&multi, 4),
            Some(Reply::Link(vec![(AttachMode::Native, 5), (AttachMode::Offloaded, 6)]))
        );

        // No IFLA_XDP at all (a kernel without XDP): nothing attached.
        let bare = message(RTM_NEWLINK, 0, 5, &[0u8; IFINFO_LEN]);
        assert_eq!(parse_reply(&bare, 5), Some(Reply::Link(vec![])));
    }

    #[test]
    fn parses_acks_and_errors() {
        let ack = message(NLMSG_ERROR, 0, 8, &[&0u32.to_ne_bytes()[..], &[0u8; 16]].concat());
        assert_eq!(parse_reply(&ack, 8), Some(Reply::Ack));
        // A reply to another request is skipped.
        assert_eq!(parse_reply(&ack, 9), None);

        let mut body = (-16i32).to_ne_bytes().to_vec(); // EBUSY
        body.extend_from_slice(&[0u8; 16]);
        body.extend(attr(NLMSGERR_ATTR_MSG, b"Can't replace active BPF XDP link\0"));
        let err = message(NLMSG_ERROR, NLM_F_ACK_TLVS, 10, &body);
        assert_eq!(parse_reply(&err, 10), Some(Reply::Error(16, Some("Can't replace active BPF XDP link".into()))));

        let two = [ack.clone(), err.clone()].concat();
        assert_eq!(parse_reply(&two, 10), Some(Reply::Error(16, Some("Can't replace active BPF XDP link".into()))));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse_reply(&[], 1), None);
        assert_eq!(parse_reply(&[0xff; 15], 1), None);
        let mut m = message(RTM_NEWLINK, 0, 1, &[0u8; IFINFO_LEN]);
        m[0..4].copy_from_slice(&1000u32.to_ne_bytes()); // longer than the buffer
        assert_eq!(parse_reply(&m, 1), None);
        let short = message(RTM_NEWLINK, 0, 1, &[0u8; 4]); // ifinfomsg cut short
        assert_eq!(parse_reply(&short, 1), None);
        // A bad attribute length ends the walk instead of reading past the nest.
        let bad = newlink(2, &[vec![0xff, 0x00, 2, 0, 1]]);
        assert_eq!(parse_reply(&bad, 2), Some(Reply::Link(vec![])));
    }
}
