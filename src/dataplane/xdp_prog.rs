//! The XDP program (`ebpf/nsxdp.bpf.c`) and its loader: loads the embedded BPF object,
//! writes the configuration map, attaches the program to an interface (native mode, else
//! generic), fills the AF_XDP socket map and reads the verdict counters. Detaches on drop.
//!
//! At attach time an XDP program already on the interface is looked at through rtnetlink
//! and the bpf syscall: one named [`PROGRAM_NAME`] is a stale copy of ours (left by a
//! process that attached it with netlink and died) and is replaced; anything else is
//! someone else's and is only replaced when forced. Our own attachment is a BPF link, so
//! the kernel removes it when the process exits, however it exits.
//!
//! This module does not create AF_XDP sockets or touch packets; it knows nothing of DNS
//! beyond the port number it writes into the configuration.

mod bpf;
mod netlink;

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::maps::{Array, MapError, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, Xdp, XdpFlags};
use aya::{Ebpf, EbpfError};

pub use netlink::AttachMode;

/// The BPF object built by `scripts/build-ebpf.sh` (committed, so building needs no clang).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/nsxdp.bpf.o");

/// The program's name in the kernel (its function name in `nsxdp.bpf.c`), by which a
/// stale copy is recognised.
pub const PROGRAM_NAME: &str = "nsxdp_xdp";
const XSK_MAP: &str = "xsks_map";
const CONFIG_MAP: &str = "nsxdp_config";
const COUNTER_MAP: &str = "nsxdp_counters";

/// Entries of the AF_XDP socket map (`NSXDP_XSKMAP_SIZE`): RX queues 0 to 63.
pub const XSKMAP_SIZE: u32 = 64;

/// XDP actions, as [`XdpProgram::test_run`] returns them (`enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Which frames the program hands to AF_XDP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpConfig {
    /// UDP destination port of the queries (host order). 0 hands nothing over.
    pub port: u16,
    /// Only IPv4 datagrams to this address; `None`: any IPv4 address.
    pub v4: Option<Ipv4Addr>,
    /// Only IPv6 datagrams to this address; `None`: any IPv6 address.
    pub v6: Option<Ipv6Addr>,
}

impl XdpConfig {
    /// Every datagram to `port`, whatever its address.
    pub fn port(port: u16) -> XdpConfig {
        XdpConfig { port, v4: None, v6: None }
    }
}

// `nsxdp_config.flags` (nsxdp.h).
const CFG_V4_ADDR: u16 = 0x1;
const CFG_V6_ADDR: u16 = 0x2;

/// `struct nsxdp_config` of nsxdp.h, field for field; every field in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawConfig {
    port: [u8; 2],
    flags: u16,
    v4_addr: [u8; 4],
    v6_addr: [u8; 16],
}

// SAFETY: `RawConfig` is `repr(C)` with only byte arrays and a u16 at even offsets (24
// bytes, no padding), so every bit pattern is a valid value and it has no pointers.
unsafe impl aya::Pod for RawConfig {}

impl From<&XdpConfig> for RawConfig {
    fn from(c: &XdpConfig) -> RawConfig {
        let mut flags = 0;
        if c.v4.is_some() {
            flags |= CFG_V4_ADDR;
        }
        if c.v6.is_some() {
            flags |= CFG_V6_ADDR;
        }
        RawConfig {
            port: c.port.to_be_bytes(),
            flags,
            v4_addr: c.v4.map_or([0; 4], |a| a.octets()),
            v6_addr: c.v6.map_or([0; 16], |a| a.octets()),
        }
    }
}

/// The program's counters (`enum nsxdp_counter` in nsxdp.h, same order): one per verdict
/// and reason. Counted per CPU in the kernel, summed by [`XdpProgram::counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XdpCounter {
    /// A DNS frame handed to the AF_XDP socket of its queue.
    Redirected = 0,
    /// A DNS frame whose queue has no socket: passed to the kernel.
    NoSocket = 1,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, more than two VLAN tags): passed.
    PassNotIp = 2,
    /// IP but not UDP (TCP, ICMP): passed.
    PassNotUdp = 3,
    /// An IPv4 fragment: passed (the kernel reassembles).
    PassFragment = 4,
    /// IPv6 with an extension header: passed.
    PassIpv6Ext = 5,
    /// UDP to another port or address, or to a multicast/broadcast MAC: passed.
    PassOtherDst = 6,
    /// Cut short before the UDP ports, bad IPv4 IHL or IP version: passed (the kernel
    /// discards it with its own accounting).
    PassMalformed = 7,
    /// Ours, but the UDP header is cut short: dropped.
    DropTruncated = 8,
    /// Ours, but the IP length disagrees with the frame: dropped.
    DropIpLen = 9,
    /// Ours, but the UDP length disagrees with the IP length: dropped.
    DropUdpLen = 10,
    /// Ours, but fewer than 12 bytes of DNS: dropped.
    DropShort = 11,
}

/// Number of counters (`NSXDP_CNT_MAX`).
pub const NUM_COUNTERS: usize = 12;

impl XdpCounter {
    /// Every counter, in index order.
    pub const ALL: [XdpCounter; NUM_COUNTERS] = [
        XdpCounter::Redirected,
        XdpCounter::NoSocket,
        XdpCounter::PassNotIp,
        XdpCounter::PassNotUdp,
        XdpCounter::PassFragment,
        XdpCounter::PassIpv6Ext,
        XdpCounter::PassOtherDst,
        XdpCounter::PassMalformed,
        XdpCounter::DropTruncated,
        XdpCounter::DropIpLen,
        XdpCounter::DropUdpLen,
        XdpCounter::DropShort,
    ];

    /// Lower-case name, the C enumerator without `NSXDP_CNT_` (`drop_short`).
    pub fn name(self) -> &'static str {
        match self {
            XdpCounter::Redirected => "redirected",
            XdpCounter::NoSocket => "no_socket",
            XdpCounter::PassNotIp => "pass_not_ip",
            XdpCounter::PassNotUdp => "pass_not_udp",
            XdpCounter::PassFragment => "pass_fragment",
            XdpCounter::PassIpv6Ext => "pass_ipv6_ext",
            XdpCounter::PassOtherDst => "pass_other_dst",
            XdpCounter::PassMalformed => "pass_malformed",
            XdpCounter::DropTruncated => "drop_truncated",
            XdpCounter::DropIpLen => "drop_ip_len",
            XdpCounter::DropUdpLen => "drop_udp_len",
            XdpCounter::DropShort => "drop_short",
        }
    }

    /// Whether the program drops the frames it counts here.
    pub fn is_drop(self) -> bool {
        matches!(
            self,
            XdpCounter::DropTruncated | XdpCounter::DropIpLen | XdpCounter::DropUdpLen | XdpCounter::DropShort
        )
    }
}

/// One line of the non-zero counters, `name=value` separated by spaces.
pub fn describe_counters(c: &[u64; NUM_COUNTERS]) -> String {
    let parts: Vec<String> = XdpCounter::ALL
        .iter()
        .filter(|k| c[**k as usize] != 0)
        .map(|k| format!("{}={}", k.name(), c[*k as usize]))
        .collect();
    if parts.is_empty() {
        "xdp: no frames".into()
    } else {
        format!("xdp: {}", parts.join(" "))
    }
}

/// An XDP program found on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedXdp {
    /// The kernel's program id.
    pub id: u32,
    /// Its name (at most 15 bytes), empty if it could not be read.
    pub name: String,
    pub mode: AttachMode,
}

/// What can go wrong loading, attaching or talking to the program. Each message is
/// complete (it includes its causes), so none is given as a `source`.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("XDP: no network interface named {0:?}")]
    NoInterface(String),
    #[error("XDP: loading the BPF object: {}", chain(&**.0))]
    Load(Box<EbpfError>),
    #[error("XDP: loading the BPF program: {}", chain(&**.0))]
    Program(Box<ProgramError>),
    #[error(
        "XDP: {ifname} already runs XDP program {name:?} (id {id}, {mode}), which is not nsxdp's; \
         refusing to replace it (force it with --xdp-force)"
    )]
    Foreign { ifname: String, id: u32, name: String, mode: AttachMode },
    #[error("XDP: {ifname}: cannot remove XDP program {name:?} (id {id}, {mode}): {error}")]
    Replace { ifname: String, id: u32, name: String, mode: AttachMode, error: io::Error },
    #[error(
        "XDP: {ifname}: XDP program {name:?} (id {id}, {mode}) is held through a BPF link by a running \
         process (another nsxdp?); stop that process first"
    )]
    InUse { ifname: String, id: u32, name: String, mode: AttachMode },
    #[error("XDP: cannot attach to {ifname}: native mode: {}; generic mode: {}", chain(&**native), chain(&**generic))]
    Attach { ifname: String, native: Box<ProgramError>, generic: Box<ProgramError> },
    #[error("XDP: {ifname}: querying the attached XDP program over netlink: {error}")]
    Query { ifname: String, error: io::Error },
    #[error("XDP: map {map}: {}", chain(&**error))]
    Map { map: &'static str, error: Box<MapError> },
    #[error("XDP: RX queue {queue} is beyond the socket map ({XSKMAP_SIZE} entries)")]
    QueueOutOfRange { queue: u32 },
    #[error("XDP: {what}: {error}")]
    Bpf { what: &'static str, error: io::Error },
}

fn program_err(e: ProgramError) -> XdpError {
    XdpError::Program(Box::new(e))
}

/// An error and its causes on one line (aya's errors keep the OS error as a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn ifindex_of(ifname: &str) -> Result<u32, XdpError> {
    let c = CString::new(ifname).map_err(|_| XdpError::NoInterface(ifname.into()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(XdpError::NoInterface(ifname.into()));
    }
    Ok(index)
}

/// The XDP programs attached to `ifname` in the caller's network namespace, with their
/// names (an empty list if none).
pub fn attached_programs(ifname: &str) -> Result<Vec<AttachedXdp>, XdpError> {
    let ifindex = ifindex_of(ifname)?;
    let query = |error| XdpError::Query { ifname: ifname.into(), error };
    let found = netlink::Socket::open().and_then(|mut s| s.xdp_programs(ifindex)).map_err(query)?;
    Ok(found
        .into_iter()
        .map(|(mode, id)| {
            let name = bpf::prog_fd_by_id(id).and_then(|fd| bpf::prog_name(fd.as_fd())).unwrap_or_default();
            AttachedXdp { id, name, mode }
        })
        .collect())
}

/// The loaded nsxdp XDP program, attached to one interface or (for tests) to none.
/// Dropping it detaches it.
pub struct XdpProgram {
    ebpf: Ebpf,
    attached: Option<Attachment>,
}

struct Attachment {
    ifname: String,
    mode: AttachMode,
    link: XdpLinkId,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("XdpProgram");
        if let Some(a) = &self.attached {
            d.field("ifname", &a.ifname).field("mode", &a.mode);
        }
        d.finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the program with `config`, attaches it to `ifname` (see [`attach_to`]) and
    /// returns it. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (or root).
    ///
    /// [`attach_to`]: XdpProgram::attach_to
    pub fn attach(ifname: &str, config: &XdpConfig, force: bool) -> Result<XdpProgram, XdpError> {
        let mut prog = XdpProgram::load(config)?;
        prog.attach_to(ifname, force)?;
        Ok(prog)
    }

    /// Loads the program into the kernel (through the verifier) with `config`, without
    /// attaching it anywhere.
    pub fn load(config: &XdpConfig) -> Result<XdpProgram, XdpError> {
        let ebpf = Ebpf::load(OBJECT).map_err(|e| XdpError::Load(Box::new(e)))?;
        let mut prog = XdpProgram { ebpf, attached: None };
        prog.xdp_mut()?.load().map_err(program_err)?;
        prog.set_config(config)?;
        Ok(prog)
    }

    fn xdp(&self) -> Result<&Xdp, XdpError> {
        let p = self.ebpf.program(PROGRAM_NAME).expect("the embedded object defines nsxdp_xdp");
        p.try_into().map_err(program_err)
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        let p = self.ebpf.program_mut(PROGRAM_NAME).expect("the embedded object defines nsxdp_xdp");
        p.try_into().map_err(program_err)
    }

    /// Attaches the loaded program to `ifname`, in native mode if the driver has it, else
    /// in generic mode; says which on stderr. A stale nsxdp program already there is
    /// removed first; a foreign one too if `force`, else [`XdpError::Foreign`].
    pub fn attach_to(&mut self, ifname: &str, force: bool) -> Result<(), XdpError> {
        if let Some(a) = &self.attached {
            if a.ifname == ifname {
                return Ok(());
            }
            self.detach_link();
        }
        let ifindex = ifindex_of(ifname)?;
        for old in attached_programs(ifname)? {
            let ours = old.name == PROGRAM_NAME;
            if !ours && !force {
                return Err(XdpError::Foreign { ifname: ifname.into(), id: old.id, name: old.name, mode: old.mode });
            }
            let replace = |error| XdpError::Replace {
                ifname: ifname.into(),
                id: old.id,
                name: old.name.clone(),
                mode: old.mode,
                error,
            };
            // The kernel removes it only if it is still this program (no race with another
            // loader), and refuses (EBUSY) if a live process holds it through a BPF link.
            let fd = bpf::prog_fd_by_id(old.id).map_err(replace)?;
            match netlink::Socket::open().and_then(|mut s| s.detach(ifindex, old.mode, fd.as_raw_fd())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                    return Err(XdpError::InUse { ifname: ifname.into(), id: old.id, name: old.name, mode: old.mode })
                }
                Err(e) => return Err(replace(e)),
            }
            let what = if ours { "stale nsxdp" } else { "foreign (forced)" };
            log::info!("removed {what} XDP program {:?} (id {}, {}) from {ifname}", old.name, old.id, old.mode);
        }

        let xdp = self.xdp_mut()?;
        let (link, mode) = match xdp.attach_to_if_index(ifindex, XdpFlags::DRV_MODE) {
            Ok(link) => (link, AttachMode::Native),
            Err(native) => match xdp.attach_to_if_index(ifindex, XdpFlags::SKB_MODE) {
                Ok(link) => {
                    log::warn!("{ifname}: native XDP unavailable ({}); falling back to generic mode", chain(&native));
                    (link, AttachMode::Generic)
                }
                Err(generic) => {
                    return Err(XdpError::Attach {
                        ifname: ifname.into(),
                        native: Box::new(native),
                        generic: Box::new(generic),
                    })
                }
            },
        };
        log::info!("XDP program attached to {ifname} in {mode}");
        self.attached = Some(Attachment { ifname: ifname.into(), mode, link });
        Ok(())
    }

    /// The interface and mode the program is attached in, if it is.
    pub fn attachment(&self) -> Option<(&str, AttachMode)> {
        self.attached.as_ref().map(|a| (a.ifname.as_str(), a.mode))
    }

    /// The kernel's id of the loaded program.
    pub fn program_id(&self) -> Result<u32, XdpError> {
        Ok(self.xdp()?.info().map_err(program_err)?.id())
    }

    /// Replaces the configuration; frames after this see the new one.
    pub fn set_config(&mut self, config: &XdpConfig) -> Result<(), XdpError> {
        let map_err = |error| XdpError::Map { map: CONFIG_MAP, error: Box::new(error) };
        let map = self.ebpf.map_mut(CONFIG_MAP).expect("the embedded object defines nsxdp_config");
        let mut array: Array<_, RawConfig> = Array::try_from(map).map_err(map_err)?;
        array.set(0, RawConfig::from(config), 0).map_err(map_err)
    }

    /// Hands the frames of RX queue `queue_id` to the AF_XDP socket `xsk_fd`, which must be
    /// bound to that queue of the interface. Closing the socket removes it from the map.
    pub fn register_socket(&mut self, queue_id: u32, xsk_fd: RawFd) -> Result<(), XdpError> {
        if queue_id >= XSKMAP_SIZE {
            return Err(XdpError::QueueOutOfRange { queue: queue_id });
        }
        let map_err = |error| XdpError::Map { map: XSK_MAP, error: Box::new(error) };
        let map = self.ebpf.map_mut(XSK_MAP).expect("the embedded object defines xsks_map");
        let mut xsks = XskMap::try_from(map).map_err(map_err)?;
        xsks.set(queue_id, xsk_fd, 0).map_err(map_err)
    }

    /// The counters, each summed over all CPUs, indexed by [`XdpCounter`].
    pub fn counters(&self) -> Result<[u64; NUM_COUNTERS], XdpError> {
        let map_err = |error| XdpError::Map { map: COUNTER_MAP, error: Box::new(error) };
        let map = self.ebpf.map(COUNTER_MAP).expect("the embedded object defines nsxdp_counters");
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err)?;
        let mut sums = [0u64; NUM_COUNTERS];
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum = array.get(&(i as u32), 0).map_err(map_err)?.iter().sum();
        }
        Ok(sums)
    }

    /// Runs the loaded program once over `frame` in the kernel (`BPF_PROG_TEST_RUN`, as if
    /// received on queue 0) and returns its action (`XDP_PASS`, ...). Counters move as for
    /// a real frame. For tests and diagnostics; needs no interface.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        let fd = self.xdp()?.fd().map_err(program_err)?;
        bpf::test_run_xdp(fd.as_fd(), frame).map_err(|error| XdpError::Bpf { what: "BPF_PROG_TEST_RUN", error })
    }

    /// Detaches the program now (dropping it does the same, reporting errors on stderr).
    pub fn detach(mut self) -> Result<(), XdpError> {
        let Some(a) = self.attached.take() else { return Ok(()) };
        let xdp = self.xdp_mut()?;
        xdp.detach(a.link).map_err(program_err)?;
        log::info!("XDP program detached from {}", a.ifname);
        Ok(())
    }

    fn detach_link(&mut self) {
        if let Some(a) = self.attached.take() {
            match self.xdp_mut().and_then(|x| x.detach(a.link).map_err(program_err)) {
                Ok(()) => log::info!("XDP program detached from {}", a.ifname),
                Err(e) => log::warn!("detaching the XDP program from {}: {e}", a.ifname),
            }
        }
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        self.detach_link();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ebpf/nsxdp.h`, which the program is built with.
    const HEADER: &str = include_str!("../../ebpf/nsxdp.h");

    fn define(name: &str) -> u64 {
        let line = HEADER
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["#define", name]))
            .unwrap_or_else(|| panic!("nsxdp.h has no #define {name}"));
        let v = line.split_whitespace().nth(2).unwrap();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    }

    /// The Rust mirror of nsxdp.h must agree with it: counters (names, order, count),
    /// configuration flags and layout, socket map size.
    #[test]
    fn header_matches_rust() {
        let enumerators: Vec<(String, u64)> = HEADER
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("NSXDP_CNT_"))
            .map(|l| {
                let (name, rest) = l.split_once('=').expect("enumerators have explicit values");
                let value = rest.trim().trim_start_matches(|c: char| !c.is_ascii_digit());
                let value: String = value.chars().take_while(char::is_ascii_digit).collect();
                (name.trim().to_string(), value.parse().unwrap())
            })
            .collect();
        let (max, counters) = enumerators.split_last().unwrap();
        assert_eq!(max, &("NSXDP_CNT_MAX".to_string(), NUM_COUNTERS as u64));
        let rust: Vec<(String, u64)> = XdpCounter::ALL
            .iter()
            .map(|c| (format!("NSXDP_CNT_{}", c.name().to_ascii_uppercase()), *c as u64))
            .collect();
        assert_eq!(counters, rust.as_slice());
        for (i, c) in XdpCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }

        assert_eq!(define("NSXDP_CFG_V4_ADDR"), CFG_V4_ADDR as u64);
        assert_eq!(define("NSXDP_CFG_V6_ADDR"), CFG_V6_ADDR as u64);
        assert_eq!(define("NSXDP_XSKMAP_SIZE"), XSKMAP_SIZE as u64);

        let start = HEADER.find("struct nsxdp_config {").expect("struct nsxdp_config in nsxdp.h");
        let body = &HEADER[start..start + HEADER[start..].find("};").unwrap()];
        let fields: Vec<String> = body
            .lines()
            .skip(1)
            .filter_map(|l| l.split(';').next().filter(|_| l.contains(';')))
            .map(|f| f.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(fields, ["__u16 port", "__u16 flags", "__u32 v4_addr", "__u8 v6_addr[16]"]);
        assert_eq!(std::mem::size_of::<RawConfig>(), 2 + 2 + 4 + 16);
        assert_eq!(std::mem::offset_of!(RawConfig, v4_addr), 4);
        assert_eq!(std::mem::offset_of!(RawConfig, v6_addr), 8);
    }

    #[test]
    fn config_encoding() {
        let any = RawConfig::from(&XdpConfig::port(53));
        assert_eq!(any, RawConfig { port: [0, 53], flags: 0, v4_addr: [0; 4], v6_addr: [0; 16] });
        let both = RawConfig::from(&XdpConfig {
            port: 5353,
            v4: Some(Ipv4Addr::new(198, 18, 0, 1)),
            v6: Some("2001:db8::1".parse().unwrap()),
        });
        assert_eq!(both.port, [0x14, 0xe9]);
        assert_eq!(both.flags, CFG_V4_ADDR | CFG_V6_ADDR);
        assert_eq!(both.v4_addr, [198, 18, 0, 1]);
        assert_eq!(both.v6_addr, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn counter_descriptions() {
        let mut c = [0u64; NUM_COUNTERS];
        assert_eq!(describe_counters(&c), "xdp: no frames");
        c[XdpCounter::Redirected as usize] = 5;
        c[XdpCounter::DropShort as usize] = 1;
        assert_eq!(describe_counters(&c), "xdp: redirected=5 drop_short=1");
        assert!(XdpCounter::ALL.iter().filter(|c| c.is_drop()).all(|c| c.name().starts_with("drop_")));
    }

    /// The embedded object is the program we think it is.
    #[test]
    fn embedded_object() {
        let obj = aya_obj_sections(OBJECT);
        for want in ["xdp", ".maps", "license", ".BTF"] {
            assert!(obj.iter().any(|s| s == want), "section {want} missing from nsxdp.bpf.o: {obj:?}");
        }
        assert!(OBJECT.windows(PROGRAM_NAME.len()).any(|w| w == PROGRAM_NAME.as_bytes()));
        assert!(OBJECT.windows(12).any(|w| w == b"Dual MIT/GPL"));
        assert_eq!(OBJECT.as_ptr() as usize % 8, 0, "aya needs the object 8-aligned");
    }

    /// Section names of a little-endian ELF64 object.
    fn aya_obj_sections(elf: &[u8]) -> Vec<String> {
        let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
        assert_eq!(&elf[..4], b"\x7fELF");
        let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
        let strtab = u64_at(shoff + shstrndx * shentsize + 0x18);
        (0..shnum)
            .map(|i| {
                let name = strtab + u32_at(shoff + i * shentsize);
                let end = elf[name..].iter().position(|&c| c == 0).unwrap();
                String::from_utf8_lossy(&elf[name..name + end]).into_owned()
            })
            .collect()
    }
}
