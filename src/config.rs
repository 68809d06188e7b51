//! The configuration file (`nsxdp serve --config FILE`): TOML, read into checked types.
//!
//! ```toml
//! [server]
//! listen = ["127.0.0.1:5300"]          # UDP and TCP; ADDRESS:PORT, the port is required
//! # tls-listen = ["192.0.2.1:853"]     # zone transfers over TLS (XoT, RFC 9103)
//! # tls-certificate = "cert.pem"       # PEM chain, the server's first; with tls-listen
//! # tls-key = "key.pem"                # PEM private key
//! data-dir = "/var/lib/nsxdp"
//! control = "/run/nsxdp/control.sock"
//! # transfer-workers = 8                # checks and transfers in at once
//! # transfers-per-primary = 8           # of them asking one primary at once
//!
//! [[key]]
//! name = "xfr"
//! algorithm = "hmac-sha256"
//! secret = "<base64>"
//!
//! [[acl]]
//! name = "secondaries"
//! address = ["127.0.0.0/8", "::1"]     # any address when left out
//! key = "xfr"                        # no key needed when left out
//! action = ["transfer"]
//! # transfer-format = "one-answer"   # one record per transfer message; default many-answers
//! # transport = "tls"                # only over TLS (tls-listen); default any
//!
//! [[zone]]
//! name = "example.test"
//! file = "example.test.zone"           # relative to the config file's directory
//! role = "primary"
//! notify = ["127.0.0.1:5302 key xfr"]
//! acl = ["secondaries"]
//!
//! [[zone]]
//! name = "other.test"
//! role = "secondary"
//! primaries = ["192.0.2.1:53 key xfr ixfr-udp", "192.0.2.2 ixfr false"]   # tried in order
//! acl = ["from-primaries"]             # who may NOTIFY (action "notify") and transfer
//! # a primary "ADDRESS:853 key NAME tls" is reached over TLS (XoT), its certificate
//! # checked against tls-ca = "ca.pem" (for tls-hostname = "NAME", default its address)
//! # or tls-pin = ["<base64 SHA-256 of its SubjectPublicKeyInfo>"], or not at all with
//! # tls-opportunistic = true (encrypted, not authenticated)
//! # refresh-min, refresh-max, retry-min, retry-max, expire-min, expire-max (seconds)
//! # bound the SOA's timers; transfer-timeout = 10 (seconds)
//!
//! [[zone]]
//! name = "catalog.test"                # a catalog zone (RFC 9432) whose member zones
//! role = "secondary"                   # become secondary zones of its primaries, with
//! primaries = ["192.0.2.1 key xfr"]     # its key, ACLs and NOTIFY settings
//! catalog-role = "consumer"            # Knot: catalog-role interpret; BIND: catalog-zones
//! # catalog-max-members = 1000000      # a version listing more is refused
//!
//! [[zone]]
//! name = "produced.catalog.test"       # a catalog generated of the zones whose `catalog`
//! catalog-role = "producer"            # names it (of every zone when none does); no file
//! acl = ["secondaries"]                # (zones: catalog = "produced.catalog.test",
//! notify = ["192.0.2.3 key xfr"]       #  catalog-group = "blue")
//!
//! [[template]]                         # members whose `group` property is "blue"
//! name = "blue"
//! primaries = ["192.0.2.9 key xfr"]    # instead of the catalog's (left out: the catalog's)
//! acl = ["from-primaries"]             # instead of the catalog's (left out: the catalog's)
//!
//! [rrl]                                # response rate limiting; off when left out
//! rate = 20                            # responses a second per prefix, class and name
//! slip = 2                             # every 2nd limited response sent truncated; 0: none
//! window = 15                          # seconds of debt
//! ipv4-prefix = 24
//! ipv6-prefix = 56
//! exempt = ["127.0.0.1/32"]
//! table-size = 393241                  # buckets per run loop
//! ```
//!
//! Everything is checked when the file is read: unknown keys, wrong types and bad values are
//! errors that name the file, the line and the key; names referring to other sections
//! (a zone's ACLs, an ACL's key, a notify target's key) must exist. Reading has no side
//! effects, so a reload that finds a bad file keeps the running configuration.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::wire::name::Name;

/// A configuration that was read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub keys: Vec<Key>,
    pub acls: Vec<Acl>,
    pub zones: Vec<ZoneConf>,
    /// `[[template]]`: settings for catalog member zones by `group` property.
    pub templates: Vec<Template>,
    /// Response rate limiting on the UDP paths (`[rrl]`); None: off.
    pub rrl: Option<crate::rrl::Settings>,
    /// DNS cookies (RFC 7873), on when the file has a `[cookies]` section.
    pub cookies: Option<Cookies>,
    /// `zones` by name, for [`Config::zone`].
    zone_index: ZoneIndex,
}

/// The positions of a [`Config`]'s zones by lowercased name, made at the first lookup: a
/// NOTIFY, a transfer request or a finished check finds its zone's settings among 10^5
/// without a walk. A clone starts without one (it may be changed before it is looked in),
/// and a lookup in a configuration whose zones were added or removed since its index was
/// made walks them.
#[derive(Default)]
struct ZoneIndex(std::sync::OnceLock<(usize, std::collections::HashMap<Name, usize>)>);

impl Clone for ZoneIndex {
    fn clone(&self) -> ZoneIndex {
        ZoneIndex::default()
    }
}

/// Derived from the zones: never what makes two configurations differ.
impl PartialEq for ZoneIndex {
    fn eq(&self, _: &ZoneIndex) -> bool {
        true
    }
}

impl std::fmt::Debug for ZoneIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZoneIndex")
    }
}

/// `[cookies]`: the server secret (RFC 9018; none: a random one at start) and the one it
/// replaced, still accepted (a rotation: set `secret-previous` to the old `secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookies {
    pub secret: Option<[u8; 16]>,
    pub previous: Option<[u8; 16]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Addresses for UDP and TCP; empty: [`default_listen`] (as on the command line).
    pub listen: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    /// The Unix socket of `nsxdp ctl`.
    pub control: PathBuf,
    /// Cores for the run loops (default: all).
    pub cores: Option<Vec<usize>>,
    pub edns_size: u16,
    /// What one TCP client, and all of them together, may hold.
    pub tcp: TcpLimits,
    /// Where Prometheus scrapes `/metrics` (off unless given; the port is required).
    pub metrics: Option<SocketAddr>,
    /// CH TXT `id.server`/`version.bind` and NSID (`identity`, `version`, `nsid`).
    pub about: crate::answer::Identity,
    /// The user the server switches to once its sockets are bound (`user`); None: it
    /// keeps the one it was started as.
    pub user: Option<String>,
    /// Threads that check secondary zones and transfer them in (`transfer-workers`): at
    /// most this many checks run at once, however many zones are due.
    pub transfer_workers: usize,
    /// At most this many of them ask the same primary at once (`transfers-per-primary`,
    /// as BIND's `transfers-per-ns`); by default as many as there are workers.
    pub transfers_per_primary: usize,
    /// The log's level (`log-level`); None: the command line's, else info.
    pub log_level: Option<log::LevelFilter>,
    /// Zone transfers over TLS (XoT): `tls-listen`, `tls-certificate`, `tls-key`.
    pub tls: Option<TlsListen>,
}

/// Where DNS over TLS is served (for transfers: RFC 9103), and with what certificate. The
/// files are read when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    pub listen: Vec<SocketAddr>,
    /// PEM certificates, the server's first, then the chain.
    pub certificate: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// `transfer-workers` when not given.
pub const DEFAULT_TRANSFER_WORKERS: usize = 8;

/// The limits of DNS over TCP (RFC 7766 §6.2), the same defaults from the command line and
/// the configuration file. Every one is at least 1: none of them turns TCP off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// A connection that has sent no complete message and been sent nothing for this long
    /// is closed (Knot's `tcp-idle-timeout`, 10 s). A byte that does not finish a message
    /// does not restart it.
    pub idle_timeout: Duration,
    /// Once a message's first octet has arrived, the whole message must follow within this
    /// (Knot's `tcp-io-timeout` is 500 ms): a client that trickles bytes is closed.
    pub message_timeout: Duration,
    /// Connections open at once; when all are taken, the longest idle one is closed for a
    /// newcomer.
    pub max_clients: usize,
    /// Connections open at once from one address (IPv6: one /64); past it, that address's
    /// longest idle connection is closed for its newcomer.
    pub max_clients_per_address: usize,
    /// Output waiting for one client: above it nothing more is read from it (its queries
    /// wait in its socket) and its transfer is not advanced.
    pub max_pending_output: usize,
    /// Output waiting for all clients together: above it no connection is read and no
    /// transfer advanced until readers catch up.
    pub output_budget: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            idle_timeout: Duration::from_secs(10),
            message_timeout: Duration::from_millis(2000),
            max_clients: 1024,
            max_clients_per_address: 64,
            max_pending_output: 64 * 1024,
            output_budget: 32 << 20,
        }
    }
}

/// TSIG algorithms (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    pub const ALL: [(&'static str, TsigAlgorithm); 4] = [
        ("hmac-sha1", TsigAlgorithm::HmacSha1),
        ("hmac-sha256", TsigAlgorithm::HmacSha256),
        ("hmac-sha384", TsigAlgorithm::HmacSha384),
        ("hmac-sha512", TsigAlgorithm::HmacSha512),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).map_or("?", |(n, _)| n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's name as a domain name (as TSIG carries it).
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

/// What an ACL can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// AXFR and IXFR out.
    Transfer,
    /// NOTIFY in (secondary zones).
    Notify,
}

/// An address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, a: IpAddr) -> bool {
        fn masked(bytes: &[u8], len: u8) -> impl Iterator<Item = u8> + '_ {
            bytes.iter().enumerate().map(move |(i, b)| {
                let bits = (len as usize).saturating_sub(i * 8).min(8);
                b & (0xFFu16 << (8 - bits)) as u8
            })
        }
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => masked(&p.octets(), self.len).eq(masked(&a.octets(), self.len)),
            (IpAddr::V6(p), IpAddr::V6(a)) => masked(&p.octets(), self.len).eq(masked(&a.octets(), self.len)),
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Allows `actions` to clients whose address is in `addresses` (any address when empty) and
/// whose request is signed with `key` (no key needed when none). Both must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Acl {
    pub name: String,
    pub addresses: Vec<Prefix>,
    /// Name of a `[[key]]` section.
    pub key: Option<String>,
    pub actions: Vec<Action>,
    /// How transfers allowed by this ACL are split into messages.
    pub transfer_format: TransferFormat,
    /// Allows only requests that came over TLS (`transport = "tls"`).
    pub tls_only: bool,
}

/// How a transfer out is split into messages (BIND's `transfer-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferFormat {
    /// As many records per message as fit.
    #[default]
    ManyAnswers,
    /// One record per message, for old secondaries that accept nothing else.
    OneAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// What to do when a reloaded zone file changed its data but not its SOA serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialPolicy {
    /// serial + 1 (RFC 1982).
    Increment,
    /// The current Unix time, or serial + 1 when that is not larger.
    Unixtime,
    /// Keep the serial and warn (secondaries will not see the change).
    Keep,
}

/// A remote server: NOTIFY target or primary.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub addr: SocketAddr,
    /// Name of a `[[key]]` to sign with.
    pub key: Option<String>,
    /// For primaries: ask for IXFR first (`ixfr false` turns it off).
    pub ixfr: bool,
    /// For primaries: ask for IXFR over UDP first, then over TCP (`ixfr-udp`).
    pub ixfr_udp: bool,
    /// For primaries: reached over TLS (`tls`), the certificate checked as the zone's
    /// `tls-ca`, `tls-pin`, `tls-opportunistic` say.
    pub tls: Option<crate::secondary::check::TlsAuth>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConf {
    pub name: Name,
    /// The master file (primary zones).
    pub file: Option<PathBuf>,
    pub role: Role,
    /// NOTIFY targets besides the zone's own name servers.
    pub notify: Vec<Remote>,
    /// Also NOTIFY the addresses of the zone's NS names (except our own).
    pub notify_ns: bool,
    /// Names of `[[acl]]` sections.
    pub acl: Vec<String>,
    /// Primaries of a secondary zone, tried in order.
    pub primaries: Vec<Remote>,
    pub serial_policy: SerialPolicy,
    /// Journal limits: compaction starts past either.
    pub journal_max_bytes: u64,
    pub journal_max_depth: usize,
    /// Secondary zones: bounds on the SOA's refresh, retry and expire.
    pub timers: crate::secondary::timers::Bounds,
    /// Secondary zones: longest wait for a primary's answer or the next message of a
    /// transfer, in seconds.
    pub transfer_timeout_secs: u64,
    /// The zone is a catalog (RFC 9432) of this role.
    pub catalog_role: Option<CatalogRole>,
    /// A catalog consumer: a version listing more member zones than this is refused.
    pub catalog_max_members: usize,
    /// The producer catalog that lists this zone (Knot's `catalog-zone`); a producer that no
    /// zone names lists every zone.
    pub catalog: Option<Name>,
    /// The `group` property of this zone in that catalog (Knot's `catalog-group`).
    pub catalog_group: Option<String>,
    /// Where `catalog` stands in the file (its errors name the line).
    pub catalog_span: Option<std::ops::Range<usize>>,
}

impl ZoneConf {
    /// A zone of `role` with every setting at the configuration file's default (no file,
    /// primaries, NOTIFY targets or ACLs).
    pub fn with_defaults(name: Name, role: Role) -> ZoneConf {
        ZoneConf {
            name,
            file: None,
            role,
            notify: Vec::new(),
            notify_ns: true,
            acl: Vec::new(),
            primaries: Vec::new(),
            serial_policy: SerialPolicy::Increment,
            journal_max_bytes: 64 << 20,
            journal_max_depth: 100,
            timers: crate::secondary::timers::Bounds::default(),
            transfer_timeout_secs: 10,
            catalog_role: None,
            catalog_max_members: DEFAULT_CATALOG_MAX_MEMBERS,
            catalog: None,
            catalog_group: None,
            catalog_span: None,
        }
    }
}

/// What nsxdp does with a catalog zone (RFC 9432). Knot: `catalog-role: interpret`;
/// BIND: a zone named in `catalog-zones`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogRole {
    /// A secondary zone whose member zones become secondary zones of its primaries (or of
    /// the template its `group` property names).
    Consumer,
    /// A primary zone generated from the zones served (those whose `catalog` names it, or
    /// all when none does). Knot: `catalog-role: generate`.
    Producer,
}

/// The default bound on a consumed catalog's member zones.
pub const DEFAULT_CATALOG_MAX_MEMBERS: usize = 1_000_000;

/// `[[template]]`: the primaries and ACLs for the member zones of a catalog whose `group`
/// property names it (Knot's `catalog-group` mapped to a template).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    /// Primaries (their keys in the strings, as a zone's); none: the catalog's.
    pub primaries: Vec<Remote>,
    /// Names of `[[acl]]` sections; none: the catalog's.
    pub acl: Vec<String>,
}

/// The running configuration, shared by the threads that read it (transfers, NOTIFY in and
/// out) and replaced whole when a reload reads a good file.
#[derive(Clone, Debug)]
pub struct SharedConfig(Arc<arc_swap::ArcSwap<Config>>);

impl SharedConfig {
    /// The configuration now (cheap; hold it for one request).
    pub fn load(&self) -> Arc<Config> {
        self.0.load_full()
    }

    /// Replaces the configuration every holder sees from its next `load`.
    pub fn store(&self, c: Config) {
        self.0.store(Arc::new(c));
    }
}

impl From<Arc<Config>> for SharedConfig {
    fn from(c: Arc<Config>) -> SharedConfig {
        SharedConfig(Arc::new(arc_swap::ArcSwap::new(c)))
    }
}

impl From<Config> for SharedConfig {
    fn from(c: Config) -> SharedConfig {
        SharedConfig::from(Arc::new(c))
    }
}

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------
// The file as TOML sees it.
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    key: Vec<toml::Spanned<RawKey>>,
    #[serde(default)]
    acl: Vec<toml::Spanned<RawAcl>>,
    #[serde(default)]
    zone: Vec<toml::Spanned<RawZone>>,
    #[serde(default)]
    template: Vec<toml::Spanned<RawTemplate>>,
    rrl: Option<toml::Spanned<RawRrl>>,
    cookies: Option<RawCookies>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRrl {
    rate: Option<toml::Spanned<u32>>,
    slip: Option<toml::Spanned<u32>>,
    window: Option<toml::Spanned<u32>>,
    ipv4_prefix: Option<toml::Spanned<u8>>,
    ipv6_prefix: Option<toml::Spanned<u8>>,
    #[serde(default)]
    exempt: Vec<toml::Spanned<String>>,
    table_size: Option<toml::Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCookies {
    secret: Option<toml::Spanned<String>>,
    secret_previous: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServer {
    #[serde(default)]
    listen: Vec<toml::Spanned<String>>,
    data_dir: Option<PathBuf>,
    control: Option<PathBuf>,
    cores: Option<Vec<usize>>,
    edns_size: Option<toml::Spanned<u16>>,
    identity: Option<toml::Spanned<String>>,
    version: Option<toml::Spanned<String>>,
    nsid: Option<toml::Spanned<String>>,
    tcp_idle_timeout: Option<toml::Spanned<u64>>,
    tcp_message_timeout: Option<toml::Spanned<u64>>,
    tcp_max_clients: Option<toml::Spanned<u64>>,
    tcp_max_clients_per_address: Option<toml::Spanned<u64>>,
    tcp_max_pending_output: Option<toml::Spanned<u64>>,
    tcp_output_budget: Option<toml::Spanned<u64>>,
    metrics: Option<toml::Spanned<String>>,
    user: Option<String>,
    transfer_workers: Option<toml::Spanned<u64>>,
    transfers_per_primary: Option<toml::Spanned<u64>>,
    log_level: Option<toml::Spanned<String>>,
    #[serde(default)]
    tls_listen: Vec<toml::Spanned<String>>,
    tls_certificate: Option<toml::Spanned<PathBuf>>,
    tls_key: Option<toml::Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    algorithm: toml::Spanned<String>,
    secret: toml::Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAcl {
    name: String,
    #[serde(default)]
    address: Vec<toml::Spanned<String>>,
    key: Option<toml::Spanned<String>>,
    action: Vec<toml::Spanned<String>>,
    transfer_format: Option<toml::Spanned<String>>,
    transport: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawZone {
    name: toml::Spanned<String>,
    file: Option<PathBuf>,
    role: Option<toml::Spanned<String>>,
    #[serde(default)]
    notify: Vec<toml::Spanned<String>>,
    notify_ns: Option<bool>,
    #[serde(default)]
    acl: Vec<toml::Spanned<String>>,
    #[serde(default)]
    primaries: Vec<toml::Spanned<String>>,
    serial_policy: Option<toml::Spanned<String>>,
    journal_max_bytes: Option<u64>,
    journal_max_depth: Option<usize>,
    refresh_min: Option<u32>,
    refresh_max: Option<u32>,
    retry_min: Option<u32>,
    retry_max: Option<u32>,
    expire_min: Option<u32>,
    expire_max: Option<u32>,
    transfer_timeout: Option<u64>,
    catalog_role: Option<toml::Spanned<String>>,
    catalog_max_members: Option<usize>,
    catalog: Option<toml::Spanned<String>>,
    catalog_group: Option<toml::Spanned<String>>,
    tls_ca: Option<toml::Spanned<PathBuf>>,
    tls_hostname: Option<toml::Spanned<String>>,
    tls_pin: Option<toml::Spanned<Pins>>,
    tls_opportunistic: Option<toml::Spanned<bool>>,
}

/// `tls-pin`: one pin or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Pins {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    #[serde(default)]
    primaries: Vec<toml::Spanned<String>>,
    #[serde(default)]
    acl: Vec<toml::Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// Reading and checking.
// ---------------------------------------------------------------------------------------

// The one set of defaults, for the command line and the configuration file alike. They let
// `nsxdp serve` run unprivileged out of the box; a production configuration (the packaged
// `dist/nsxdp.toml`) names its port-53 addresses and its directories itself.

/// The port of the default listen addresses with kernel sockets.
pub const DEFAULT_PORT: u16 = 5353;

/// Where snapshots and journals are kept unless `data-dir` / `--data-dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/tmp/nsxdp";

/// The addresses served when neither `listen` nor `--listen` gives any: 127.0.0.1 and ::1
/// on [`DEFAULT_PORT`] (::1 only where the host has IPv6 loopback); with AF_XDP, port 53 on
/// any address (the XDP program matches the port, the NIC's own addresses come to it).
pub fn default_listen(xdp: bool) -> Vec<SocketAddr> {
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let (v4, v6addr, port) = if xdp {
        (IpAddr::from([0, 0, 0, 0]), IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED), 53)
    } else {
        (IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST), DEFAULT_PORT)
    };
    let mut l = vec![SocketAddr::new(v4, port)];
    if v6 {
        l.push(SocketAddr::new(v6addr, port));
    }
    l
}

/// The control socket unless `control` / `--control` says otherwise: in the data directory.
pub fn default_control(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// What the server tells about itself, by default: its host name as `id.server` (as Knot
/// and NSD), no version (Knot and NSD tell theirs; the issue asks for it off), no NSID.
pub fn default_identity() -> crate::answer::Identity {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    crate::answer::Identity {
        identity: (!host.is_empty() && host.len() <= 255).then(|| host.as_bytes().to_vec()),
        version: None,
        nsid: None,
    }
}

/// `identity`, `version`, `nsid` of `[server]`: text of at most 255 octets, an empty
/// string turns one off; `nsid` may be hex after `0x` (as Knot writes it).
fn about(
    s: &RawServer,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<crate::answer::Identity, ConfigError> {
    let mut about = default_identity();
    let text = |key: &str, v: &toml::Spanned<String>| -> Result<Option<Vec<u8>>, ConfigError> {
        let t = v.get_ref();
        let bytes = match t.strip_prefix("0x").filter(|_| key == "nsid") {
            Some(hex) => (hex.len() % 2 == 0)
                .then(|| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect())
                .flatten()
                .ok_or_else(|| err(Some(v.span()), format!("server.{key}: {t:?} is not hex after 0x")))?,
            None => t.as_bytes().to_vec(),
        };
        if bytes.len() > 255 {
            return Err(err(Some(v.span()), format!("server.{key}: longer than 255 octets")));
        }
        Ok((!bytes.is_empty()).then_some(bytes))
    };
    if let Some(v) = &s.identity {
        about.identity = text("identity", v)?;
    }
    if let Some(v) = &s.version {
        about.version = text("version", v)?;
    }
    if let Some(v) = &s.nsid {
        about.nsid = text("nsid", v)?;
    }
    Ok(about)
}

impl Config {
    /// The settings of zone `name` (any case).
    pub fn zone(&self, name: &Name) -> Option<&ZoneConf> {
        let same = |z: &&ZoneConf| z.name.as_wire().eq_ignore_ascii_case(name.as_wire());
        let (len, index) = self.zone_index.0.get_or_init(|| {
            let mut index = std::collections::HashMap::with_capacity(self.zones.len());
            for (i, z) in self.zones.iter().enumerate() {
                index.entry(z.name.to_lowercase()).or_insert(i);
            }
            (self.zones.len(), index)
        });
        if *len == self.zones.len() {
            match index.get(&name.to_lowercase()).map(|&i| &self.zones[i]) {
                Some(z) if same(&z) => return Some(z),
                None => return None,
                Some(_) => {}
            }
        }
        // Zones added or removed since the index was made: they are walked.
        self.zones.iter().find(same)
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Checks configuration text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let err = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            file: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        let server = server_section(raw.server, base, &err)?;
        let (keys, key_names) = key_section(raw.key, &err)?;
        let (acls, acl_names) = acl_section(raw.acl, &key_names, &err)?;
        let mut zone_names = HashSet::new();
        let zones = raw
            .zone
            .into_iter()
            .map(|z| zone_section(z, base, &key_names, &acl_names, &mut zone_names, &err))
            .collect::<Result<Vec<_>, _>>()?;
        catalog_tags(&zones, &err)?;
        let templates = template_section(raw.template, &key_names, &acl_names, &err)?;
        let cookies = cookies_section(raw.cookies.as_ref(), &err)?;
        let rrl = raw.rrl.map(|r| rrl_section(r, &err)).transpose()?;
        Ok(Config { server, keys, acls, zones, templates, cookies, rrl, zone_index: ZoneIndex::default() })
    }

    /// The control socket a configuration file names, read leniently: only `[server]`
    /// `control` counts (resolved like `Config::load` does), so `nsxdp ctl` reaches a
    /// running server even while the file holds a mistake that a reload should report.
    pub fn control_socket(path: &Path) -> Result<PathBuf, ConfigError> {
        let fail = |message: String| ConfigError { file: path.to_path_buf(), line: None, message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        if let Ok(c) = Config::parse(path, &text) {
            return Ok(c.server.control);
        }
        let value: toml::Table = toml::from_str(&text).map_err(|e| fail(e.message().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let server = value.get("server");
        let get = |k: &str| server.and_then(|s| s.get(k)).and_then(|c| c.as_str()).map(|p| base.join(p));
        Ok(get("control").unwrap_or_else(|| default_control(&get("data-dir").unwrap_or(DEFAULT_DATA_DIR.into()))))
    }

    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys
            .iter()
            .find(|k| k.name.to_string().trim_end_matches('.').eq_ignore_ascii_case(name.trim_end_matches('.')))
    }

    pub fn acl(&self, name: &str) -> Option<&Acl> {
        self.acls.iter().find(|a| a.name == name)
    }

    /// Whether `zone`'s ACLs allow `action` to a client at `from` whose request was signed
    /// (and verified) with the key named `key`. Denied unless one of the zone's ACLs allows
    /// it; an ACL allows when the address matches (or it lists none) and the key matches (or
    /// it names none).
    pub fn allows(&self, zone: &ZoneConf, action: Action, from: IpAddr, key: Option<&Name>) -> bool {
        self.allowed_by(zone, action, from, key).is_some()
    }

    /// The first of `zone`'s ACLs that allows `action` to `from` with `key` (see
    /// [`Config::allows`]): for transfers, its `transfer-format` applies.
    pub fn allowed_by(&self, zone: &ZoneConf, action: Action, from: IpAddr, key: Option<&Name>) -> Option<&Acl> {
        self.allowed_over(zone, action, from, key, false)
    }

    /// [`Config::allowed_by`] for a request that came over TLS (`tls`) or not: ACLs with
    /// `transport = "tls"` allow only the former.
    pub fn allowed_over(
        &self,
        zone: &ZoneConf,
        action: Action,
        from: IpAddr,
        key: Option<&Name>,
        tls: bool,
    ) -> Option<&Acl> {
        let from = match from {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(from, IpAddr::V4),
            v4 => v4,
        };
        zone.acl.iter().filter_map(|n| self.acl(n)).find(|a| {
            a.actions.contains(&action)
                && (tls || !a.tls_only)
                && (a.addresses.is_empty() || a.addresses.iter().any(|p| p.contains(from)))
                && match &a.key {
                    None => true,
                    Some(k) => key.is_some_and(|used| {
                        self.key(k).is_some_and(|k| k.name.as_wire().eq_ignore_ascii_case(used.as_wire()))
                    }),
                }
        })
    }
}

/// `[server]`'s `tls-listen` with its certificate and key (relative to `base`).
fn tls_listen(
    s: &RawServer,
    base: &Path,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Option<TlsListen>, ConfigError> {
    let mut listen = Vec::new();
    for a in &s.tls_listen {
        listen.push(a.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
            err(Some(a.span()), format!("server.tls-listen: {:?} is not ADDRESS:PORT (192.0.2.1:853)", a.get_ref()))
        })?);
    }
    match (listen.first(), &s.tls_certificate, &s.tls_key) {
        (None, None, None) => Ok(None),
        (None, Some(f), _) | (None, None, Some(f)) => {
            Err(err(Some(f.span()), "server: tls-certificate and tls-key go with tls-listen".into()))
        }
        (Some(_), Some(c), Some(k)) => {
            Ok(Some(TlsListen { listen, certificate: base.join(c.get_ref()), key: base.join(k.get_ref()) }))
        }
        (Some(_), c, _) => Err(err(
            Some(s.tls_listen[0].span()),
            format!("server.tls-listen needs {}", if c.is_none() { "tls-certificate" } else { "tls-key" }),
        )),
    }
}

/// A secondary zone's TLS settings, given to its primaries marked `tls`: each needs a way
/// to check the certificate (or to be told not to), and the settings need such a primary.
fn zone_tls(
    z: &RawZone,
    zn: &str,
    primaries: &mut [Remote],
    base: &Path,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut auth = crate::secondary::check::TlsAuth {
        ca_file: z.tls_ca.as_ref().map(|f| base.join(f.get_ref())),
        hostname: z.tls_hostname.as_ref().map(|h| h.get_ref().clone()),
        pins: Vec::new(),
    };
    if let Some(p) = &z.tls_pin {
        let list = match p.get_ref() {
            Pins::One(s) => std::slice::from_ref(s),
            Pins::Many(v) => &v[..],
        };
        for pin in list {
            let digest = base64::engine::general_purpose::STANDARD
                .decode(pin.trim())
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .ok_or_else(|| {
                    err(Some(p.span()), format!("zone {zn:?}: tls-pin {pin:?} is not the base64 of a SHA-256 digest"))
                })?;
            auth.pins.push(digest);
        }
    }
    let opportunistic = z.tls_opportunistic.as_ref().is_some_and(|o| *o.get_ref());
    if let (true, Some(o)) = (opportunistic && !auth.opportunistic(), &z.tls_opportunistic) {
        return Err(err(Some(o.span()), format!("zone {zn:?}: tls-opportunistic with tls-ca or tls-pin")));
    }
    let set = [
        z.tls_ca.as_ref().map(|v| v.span()),
        z.tls_hostname.as_ref().map(|v| v.span()),
        z.tls_pin.as_ref().map(|v| v.span()),
        z.tls_opportunistic.as_ref().map(|v| v.span()),
    ];
    let mut any_tls = false;
    for (r, raw) in primaries.iter_mut().zip(&z.primaries) {
        if r.tls.is_none() {
            continue;
        }
        any_tls = true;
        if auth.opportunistic() && !opportunistic {
            return Err(err(
                Some(raw.span()),
                format!(
                    "zone {zn:?}: primary {:?} is reached over TLS: set tls-ca or tls-pin (or tls-opportunistic = true)",
                    raw.get_ref()
                ),
            ));
        }
        r.tls = Some(auth.clone());
    }
    if let (false, Some(span)) = (any_tls, set.into_iter().flatten().next()) {
        return Err(err(Some(span), format!("zone {zn:?}: TLS settings but no primary marked tls")));
    }
    Ok(())
}

/// An optional setting's value, or its default.
fn value<T: Copy>(v: &Option<toml::Spanned<T>>, default: T) -> T {
    v.as_ref().map_or(default, |v| *v.get_ref())
}

/// `[server]`.
fn server_section(
    s: RawServer,
    base: &Path,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Server, ConfigError> {
    let tcp = tcp_limits(&s, err)?;
    let about = about(&s, err)?;
    let tls = tls_listen(&s, base, err)?;
    let mut listen = Vec::new();
    for a in &s.listen {
        // The port is not implied: "192.0.2.1" meaning port 53 surprised people who
        // meant something else (`serve`'s own default is 5353).
        let addr = a.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
            let why = if a.get_ref().trim().parse::<IpAddr>().is_ok() { "has no port" } else { "is not an address" };
            err(
                Some(a.span()),
                format!("server.listen: {:?} {why}: write ADDRESS:PORT (192.0.2.1:53, [2001:db8::1]:53)", a.get_ref()),
            )
        })?;
        listen.push(addr);
    }
    let edns_size = match s.edns_size {
        Some(v) if *v.get_ref() < 512 => {
            return Err(err(Some(v.span()), format!("server.edns-size: {} is below 512", v.get_ref())))
        }
        Some(v) => *v.get_ref(),
        None => 1232,
    };
    let metrics = match &s.metrics {
        Some(a) => Some(
            a.get_ref()
                .parse::<SocketAddr>()
                .map_err(|_| err(Some(a.span()), format!("server.metrics: {:?} is not ADDRESS:PORT", a.get_ref())))?,
        ),
        None => None,
    };
    let transfer_workers = match &s.transfer_workers {
        Some(v) if !(1..=1024).contains(v.get_ref()) => {
            return Err(err(Some(v.span()), "server.transfer-workers: must be 1 to 1024".into()))
        }
        Some(v) => *v.get_ref() as usize,
        None => DEFAULT_TRANSFER_WORKERS,
    };
    Ok(Server {
        tls,
        about,
        listen,
        metrics,
        user: s.user.clone().filter(|u| !u.is_empty()),
        transfer_workers,
        transfers_per_primary: match &s.transfers_per_primary {
            Some(v) if !(1..=1024).contains(v.get_ref()) => {
                return Err(err(Some(v.span()), "server.transfers-per-primary: must be 1 to 1024".into()))
            }
            Some(v) => *v.get_ref() as usize,
            None => transfer_workers,
        },
        log_level: match &s.log_level {
            Some(v) => Some(crate::logging::parse_level(v.get_ref()).ok_or_else(|| {
                err(
                    Some(v.span()),
                    format!("server.log-level: {:?} is not one of error, warning, info, debug, trace", v.get_ref()),
                )
            })?),
            None => None,
        },
        control: match (&s.control, &s.data_dir) {
            (Some(p), _) => base.join(p),
            (None, Some(d)) => default_control(&base.join(d)),
            (None, None) => default_control(Path::new(DEFAULT_DATA_DIR)),
        },
        data_dir: s.data_dir.map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |p| base.join(p)),
        cores: s.cores,
        edns_size,
        tcp,
    })
}

/// `[[key]]`: the keys, and their names as written.
fn key_section(
    raw: Vec<toml::Spanned<RawKey>>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<(Vec<Key>, HashSet<String>), ConfigError> {
    let mut keys = Vec::new();
    let mut key_names = HashSet::new();
    for k in raw {
        let span = k.span();
        let k = k.into_inner();
        let name = Name::parse_text(k.name.as_bytes(), Some(&Name::root()))
            .map_err(|e| err(Some(span.clone()), format!("key {:?}: bad name: {e}", k.name)))?;
        if !key_names.insert(k.name.clone()) {
            return Err(err(Some(span), format!("key {:?} is defined twice", k.name)));
        }
        let algorithm = TsigAlgorithm::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k.algorithm.get_ref()))
            .map(|&(_, a)| a)
            .ok_or_else(|| {
                err(
                    Some(k.algorithm.span()),
                    format!(
                        "key {:?}: algorithm {:?} is not one of {}",
                        k.name,
                        k.algorithm.get_ref(),
                        TsigAlgorithm::ALL.map(|(n, _)| n).join(", ")
                    ),
                )
            })?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(k.secret.get_ref().trim())
            .map_err(|e| err(Some(k.secret.span()), format!("key {:?}: secret is not base64: {e}", k.name)))?;
        if secret.is_empty() {
            return Err(err(Some(k.secret.span()), format!("key {:?}: empty secret", k.name)));
        }
        keys.push(Key { name, algorithm, secret });
    }
    Ok((keys, key_names))
}

/// `[[acl]]`: the ACLs, and their names.
fn acl_section(
    raw: Vec<toml::Spanned<RawAcl>>,
    key_names: &HashSet<String>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<(Vec<Acl>, HashSet<String>), ConfigError> {
    let mut acls = Vec::new();
    let mut acl_names = HashSet::new();
    for a in raw {
        let span = a.span();
        let a = a.into_inner();
        if !acl_names.insert(a.name.clone()) {
            return Err(err(Some(span), format!("acl {:?} is defined twice", a.name)));
        }
        let mut addresses = Vec::new();
        for p in a.address {
            let prefix = parse_prefix(p.get_ref()).ok_or_else(|| {
                err(Some(p.span()), format!("acl {:?}: address {:?} is not ADDRESS[/LENGTH]", a.name, p.get_ref()))
            })?;
            addresses.push(prefix);
        }
        if let Some(k) = &a.key {
            if !key_names.contains(k.get_ref()) {
                return Err(err(Some(k.span()), format!("acl {:?}: no key named {:?}", a.name, k.get_ref())));
            }
        }
        let mut actions = Vec::new();
        for act in a.action {
            actions.push(match act.get_ref().as_str() {
                "transfer" => Action::Transfer,
                "notify" => Action::Notify,
                other => {
                    return Err(err(
                        Some(act.span()),
                        format!("acl {:?}: action {other:?} is not transfer or notify", a.name),
                    ))
                }
            });
        }
        let transfer_format = match a.transfer_format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("many-answers") => TransferFormat::ManyAnswers,
            Some("one-answer") => TransferFormat::OneAnswer,
            Some(other) => {
                let s = a.transfer_format.as_ref().map(|f| f.span());
                return Err(err(
                    s,
                    format!("acl {:?}: transfer-format {other:?} is not one-answer or many-answers", a.name),
                ));
            }
        };
        let tls_only = match a.transport.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("any") => false,
            Some("tls") => true,
            Some(other) => {
                let s = a.transport.as_ref().map(|t| t.span());
                return Err(err(s, format!("acl {:?}: transport {other:?} is not tls or any", a.name)));
            }
        };
        acls.push(Acl {
            name: a.name,
            addresses,
            key: a.key.map(|k| k.into_inner()),
            actions,
            transfer_format,
            tls_only,
        });
    }
    Ok((acls, acl_names))
}

/// One `[[zone]]`; `zone_names` (lowercased) catches a zone defined twice.
fn zone_section(
    z: toml::Spanned<RawZone>,
    base: &Path,
    key_names: &HashSet<String>,
    acl_names: &HashSet<String>,
    zone_names: &mut HashSet<Name>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<ZoneConf, ConfigError> {
    let span = z.span();
    let z = z.into_inner();
    let zn = z.name.get_ref().clone();
    let name = Name::parse_text(zn.as_bytes(), Some(&Name::root()))
        .map_err(|e| err(Some(z.name.span()), format!("zone {zn:?}: bad name: {e}")))?;
    if !zone_names.insert(name.to_lowercase()) {
        return Err(err(Some(z.name.span()), format!("zone {zn:?} is defined twice")));
    }
    let role = match z.role.as_ref().map(|r| r.get_ref().as_str()) {
        None | Some("primary") => Role::Primary,
        Some("secondary") => Role::Secondary,
        Some(other) => {
            let s = z.role.as_ref().map(|r| r.span());
            return Err(err(s, format!("zone {zn:?}: role {other:?} is not primary or secondary")));
        }
    };
    let remote = |r: &toml::Spanned<String>, what: &str| -> Result<Remote, ConfigError> {
        let remote = parse_remote(r.get_ref()).ok_or_else(|| {
            err(
                Some(r.span()),
                format!(
                    "zone {zn:?}: {what} {:?} is not \"ADDRESS[:PORT] [key NAME] [ixfr false] [ixfr-udp | tls]\"",
                    r.get_ref()
                ),
            )
        })?;
        if let Some(k) = &remote.key {
            if !key_names.contains(k) {
                return Err(err(Some(r.span()), format!("zone {zn:?}: {what} {:?}: no key named {k:?}", r.get_ref())));
            }
        }
        Ok(remote)
    };
    let notify = z.notify.iter().map(|r| remote(r, "notify")).collect::<Result<Vec<_>, _>>()?;
    if let Some((r, _)) = z.notify.iter().zip(&notify).find(|(_, n)| n.tls.is_some()) {
        return Err(err(Some(r.span()), format!("zone {zn:?}: notify {:?}: NOTIFY goes without TLS", r.get_ref())));
    }
    let mut primaries = z.primaries.iter().map(|r| remote(r, "primary")).collect::<Result<Vec<_>, _>>()?;
    zone_tls(&z, &zn, &mut primaries, base, err)?;
    let mut acl = Vec::new();
    for a in &z.acl {
        if !acl_names.contains(a.get_ref()) {
            return Err(err(Some(a.span()), format!("zone {zn:?}: no acl named {:?}", a.get_ref())));
        }
        acl.push(a.get_ref().clone());
    }
    let catalog_role = match z.catalog_role.as_ref().map(|r| r.get_ref().as_str()) {
        None => None,
        Some("consumer") if role == Role::Secondary => Some(CatalogRole::Consumer),
        Some("producer") if role == Role::Primary && z.file.is_none() => Some(CatalogRole::Producer),
        Some(other) => {
            let s = z.catalog_role.as_ref().map(|r| r.span());
            return Err(err(
                s,
                format!(
                    "zone {zn:?}: catalog-role {other:?} is not consumer (of a secondary zone) or producer (of a \
                     primary zone without a file)"
                ),
            ));
        }
    };
    let catalog = match &z.catalog {
        None => None,
        Some(c) => Some(
            Name::parse_text(c.get_ref().as_bytes(), Some(&Name::root()))
                .map_err(|e| err(Some(c.span()), format!("zone {zn:?}: catalog {:?}: bad name: {e}", c.get_ref())))?,
        ),
    };
    let catalog_group = match &z.catalog_group {
        Some(g) if g.get_ref().is_empty() || g.get_ref().len() > 255 => {
            return Err(err(Some(g.span()), format!("zone {zn:?}: catalog-group must be 1 to 255 octets")))
        }
        g => g.as_ref().map(|g| g.get_ref().clone()),
    };
    match role {
        Role::Primary if z.file.is_none() && catalog_role != Some(CatalogRole::Producer) => {
            return Err(err(Some(span), format!("zone {zn:?}: a primary zone needs a file")))
        }
        Role::Secondary if primaries.is_empty() => {
            return Err(err(Some(span), format!("zone {zn:?}: a secondary zone needs primaries")))
        }
        _ => {}
    }
    let serial_policy = match z.serial_policy.as_ref().map(|p| p.get_ref().as_str()) {
        None | Some("increment") => SerialPolicy::Increment,
        Some("unixtime") => SerialPolicy::Unixtime,
        Some("keep") => SerialPolicy::Keep,
        Some(other) => {
            let s = z.serial_policy.as_ref().map(|p| p.span());
            return Err(err(s, format!("zone {zn:?}: serial-policy {other:?} is not increment, unixtime or keep")));
        }
    };
    let d = crate::secondary::timers::Bounds::default();
    let timers = crate::secondary::timers::Bounds {
        refresh_min: z.refresh_min.unwrap_or(d.refresh_min),
        refresh_max: z.refresh_max.unwrap_or(d.refresh_max),
        retry_min: z.retry_min.unwrap_or(d.retry_min),
        retry_max: z.retry_max.unwrap_or(d.retry_max),
        expire_min: z.expire_min.unwrap_or(d.expire_min),
        expire_max: z.expire_max.unwrap_or(d.expire_max),
    };
    Ok(ZoneConf {
        name,
        file: z.file.map(|f| base.join(f)),
        role,
        notify,
        notify_ns: z.notify_ns.unwrap_or(true),
        acl,
        primaries,
        serial_policy,
        journal_max_bytes: z.journal_max_bytes.unwrap_or(64 << 20),
        journal_max_depth: z.journal_max_depth.unwrap_or(100),
        timers,
        transfer_timeout_secs: z.transfer_timeout.unwrap_or(10).max(1),
        catalog_role,
        catalog_max_members: z.catalog_max_members.unwrap_or(DEFAULT_CATALOG_MAX_MEMBERS),
        catalog_span: z.catalog.as_ref().map(|c| c.span()),
        catalog,
        catalog_group,
    })
}

/// Each zone's `catalog` must name a zone of the file with `catalog-role = "producer"`.
fn catalog_tags(
    zones: &[ZoneConf],
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let producers: HashSet<Name> =
        zones.iter().filter(|p| p.catalog_role == Some(CatalogRole::Producer)).map(|p| p.name.to_lowercase()).collect();
    for z in zones {
        let Some(c) = &z.catalog else { continue };
        if !producers.contains(&c.to_lowercase()) {
            return Err(err(
                z.catalog_span.clone(),
                format!("zone {}: catalog {c} is not a zone with catalog-role = \"producer\"", z.name),
            ));
        }
    }
    Ok(())
}

/// `[[template]]`.
fn template_section(
    raw: Vec<toml::Spanned<RawTemplate>>,
    key_names: &HashSet<String>,
    acl_names: &HashSet<String>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Vec<Template>, ConfigError> {
    let mut templates: Vec<Template> = Vec::new();
    for t in raw {
        let span = t.span();
        let t = t.into_inner();
        if templates.iter().any(|o| o.name == t.name) {
            return Err(err(Some(span), format!("template {:?} is defined twice", t.name)));
        }
        let mut primaries = Vec::new();
        for r in &t.primaries {
            // TLS settings are a zone's: not in templates (yet).
            let remote = parse_remote(r.get_ref())
                .filter(|p| p.key.as_ref().is_none_or(|k| key_names.contains(k)) && p.tls.is_none())
                .ok_or_else(|| {
                    err(
                        Some(r.span()),
                        format!(
                            "template {:?}: primary {:?} is not \"ADDRESS[:PORT] [key NAME] [ixfr false] \
                                 [ixfr-udp]\" with a defined key",
                            t.name,
                            r.get_ref()
                        ),
                    )
                })?;
            primaries.push(remote);
        }
        let mut acl = Vec::new();
        for a in &t.acl {
            if !acl_names.contains(a.get_ref()) {
                return Err(err(Some(a.span()), format!("template {:?}: no acl named {:?}", t.name, a.get_ref())));
            }
            acl.push(a.get_ref().clone());
        }
        templates.push(Template { name: t.name, primaries, acl });
    }
    Ok(templates)
}

/// `[cookies]`.
fn cookies_section(
    c: Option<&RawCookies>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Option<Cookies>, ConfigError> {
    let hex = |v: &Option<toml::Spanned<String>>, key: &str| -> Result<Option<[u8; 16]>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) => crate::cookie::parse_secret(v.get_ref())
                .map(Some)
                .ok_or_else(|| err(Some(v.span()), format!("cookies.{key}: not 32 hexadecimal digits"))),
        }
    };
    Ok(match c {
        None => None,
        Some(c) => {
            Some(Cookies { secret: hex(&c.secret, "secret")?, previous: hex(&c.secret_previous, "secret-previous")? })
        }
    })
}

/// The `[rrl]` section, checked; `err` makes an error at a span of the file.
fn rrl_section(
    raw: toml::Spanned<RawRrl>,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<crate::rrl::Settings, ConfigError> {
    let section = raw.span();
    let r = raw.into_inner();
    let d = crate::rrl::Settings::default();
    let mut exempt = Vec::new();
    for p in &r.exempt {
        let prefix = parse_prefix(p.get_ref())
            .ok_or_else(|| err(Some(p.span()), format!("rrl.exempt: {:?} is not ADDRESS[/LENGTH]", p.get_ref())))?;
        exempt.push((prefix.addr, prefix.len));
    }
    let s = crate::rrl::Settings {
        rate: value(&r.rate, d.rate),
        slip: value(&r.slip, d.slip),
        window: value(&r.window, d.window),
        ipv4_prefix: value(&r.ipv4_prefix, d.ipv4_prefix),
        ipv6_prefix: value(&r.ipv6_prefix, d.ipv6_prefix),
        exempt,
        table_size: value(&r.table_size, d.table_size),
    };
    match s.problem() {
        None => Ok(s),
        Some((key, what)) => {
            let span = match key {
                "rate" => r.rate.map(|v| v.span()),
                "slip" => r.slip.map(|v| v.span()),
                "window" => r.window.map(|v| v.span()),
                "ipv4-prefix" => r.ipv4_prefix.map(|v| v.span()),
                "ipv6-prefix" => r.ipv6_prefix.map(|v| v.span()),
                _ => r.table_size.map(|v| v.span()),
            };
            Err(err(span.or(Some(section)), format!("rrl.{key}: {what}")))
        }
    }
}

/// 1-based line of a byte offset.
/// `[server]`'s TCP limits over the defaults; a 0 is refused where it stands.
fn tcp_limits(
    s: &RawServer,
    err: &impl Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<TcpLimits, ConfigError> {
    let positive = |v: &Option<toml::Spanned<u64>>, key: &str| -> Result<Option<u64>, ConfigError> {
        match v {
            Some(v) if *v.get_ref() == 0 => Err(err(Some(v.span()), format!("server.{key}: must be at least 1"))),
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        }
    };
    let d = TcpLimits::default();
    let size = |v: Option<u64>, d: usize| v.map_or(d, |v| usize::try_from(v).unwrap_or(usize::MAX));
    Ok(TcpLimits {
        idle_timeout: positive(&s.tcp_idle_timeout, "tcp-idle-timeout")?.map_or(d.idle_timeout, Duration::from_secs),
        message_timeout: positive(&s.tcp_message_timeout, "tcp-message-timeout")?
            .map_or(d.message_timeout, Duration::from_millis),
        max_clients: size(positive(&s.tcp_max_clients, "tcp-max-clients")?, d.max_clients),
        max_clients_per_address: size(
            positive(&s.tcp_max_clients_per_address, "tcp-max-clients-per-address")?,
            d.max_clients_per_address,
        ),
        max_pending_output: size(positive(&s.tcp_max_pending_output, "tcp-max-pending-output")?, d.max_pending_output),
        output_budget: size(positive(&s.tcp_output_budget, "tcp-output-budget")?, d.output_budget),
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn parse_socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, default_port))
}

/// `ADDR` or `ADDR/LEN`.
fn parse_prefix(s: &str) -> Option<Prefix> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: IpAddr = a.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some(Prefix { addr, len })
}

/// A remote as a zone's `primaries` and `notify` strings give it:
/// `ADDRESS[:PORT] [key NAME] [ixfr false] [ixfr-udp | tls]` (port 53 when left out). A
/// `tls` remote's checks come from its zone's settings ([`Remote::tls`] is the default,
/// opportunistic, until then): other callers refuse `tls`.
pub fn parse_remote(s: &str) -> Option<Remote> {
    let mut words = s.split_whitespace();
    let addr = parse_socket_addr(words.next()?, 53)?;
    let mut r = Remote { addr, key: None, ixfr: true, ixfr_udp: false, tls: None };
    while let Some(w) = words.next() {
        match w {
            "key" if r.key.is_none() => r.key = Some(words.next()?.to_string()),
            "ixfr" => {
                r.ixfr = match words.next()? {
                    "true" | "yes" => true,
                    "false" | "no" => false,
                    _ => return None,
                }
            }
            "ixfr-udp" => r.ixfr_udp = true,
            "tls" => r.tls = Some(Default::default()),
            _ => return None,
        }
    }
    // IXFR over UDP is a way to ask for IXFR: not with IXFR turned off, nor in the clear
    // from a primary reached over TLS.
    (r.ixfr || !r.ixfr_udp).then_some(r).filter(|r| !(r.ixfr_udp && r.tls.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:5300", "[::1]:53"]
data-dir = "data"
control = "/run/x/control.sock"
edns-size = 1400

[[key]]
name = "xfr"
algorithm = "hmac-sha256"
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="

[[acl]]
name = "secondaries"
address = ["127.0.0.0/8", "2001:db8::/32"]
key = "xfr"
action = ["transfer"]

[[acl]]
name = "anyone-notify"
action = ["notify"]

[[zone]]
name = "example.test"
file = "example.test.zone"
role = "primary"
notify = ["127.0.0.1:5302 key xfr", "[::1]:5303"]
acl = ["secondaries"]
serial-policy = "unixtime"

[[zone]]
name = "copy.test."
role = "secondary"
primaries = ["127.0.0.1:5400 key xfr ixfr false", "127.0.0.2"]
acl = ["anyone-notify"]
refresh-max = 300
expire-min = 3600
transfer-timeout = 3
"#;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/nsxdp/nsxdp.toml"), text)
    }

    #[test]
    fn a_full_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.server.listen, vec![sa("127.0.0.1:5300"), sa("[::1]:53")]);
        assert_eq!(c.server.data_dir, PathBuf::from("/etc/nsxdp/data"));
        assert_eq!(c.server.control, PathBuf::from("/run/x/control.sock"));
        assert_eq!(c.server.edns_size, 1400);
        let k = c.key("xfr").unwrap();
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(k.secret, b"secret-secret-secret");
        let acl = c.acl("secondaries").unwrap();
        assert!(acl.addresses.iter().any(|p| p.contains("127.9.9.9".parse().unwrap())));
        assert!(!acl.addresses.iter().any(|p| p.contains("10.0.0.1".parse().unwrap())));
        assert!(acl.addresses.iter().any(|p| p.contains("2001:db8:1::5".parse().unwrap())));
        assert_eq!(acl.actions, vec![Action::Transfer]);
        assert_eq!(c.acl("anyone-notify").unwrap().actions, vec![Action::Notify]);
        let z = &c.zones[0];
        assert_eq!(z.name.to_string(), "example.test.");
        assert_eq!(z.file.as_deref(), Some(Path::new("/etc/nsxdp/example.test.zone")));
        assert_eq!(z.role, Role::Primary);
        assert_eq!(
            z.notify[0],
            Remote { addr: sa("127.0.0.1:5302"), key: Some("xfr".into()), ixfr: true, ixfr_udp: false, tls: None }
        );
        assert_eq!(z.notify[1].addr, sa("[::1]:5303"));
        assert!(z.notify_ns);
        assert_eq!(z.serial_policy, SerialPolicy::Unixtime);
        let s = &c.zones[1];
        assert_eq!(s.role, Role::Secondary);
        assert!(!s.primaries[0].ixfr);
        assert_eq!(s.primaries[1].addr, sa("127.0.0.2:53"));
    }

    #[test]
    fn ixfr_udp_and_transfer_format() {
        let text = "[[acl]]\nname = \"old\"\naddress = [\"127.2.0.0/16\"]\naction = [\"transfer\"]\n\
                    transfer-format = \"one-answer\"\n\
                    [[acl]]\nname = \"new\"\naction = [\"transfer\"]\ntransfer-format = \"many-answers\"\n\
                    [[zone]]\nname = \"s.test\"\nrole = \"secondary\"\nacl = [\"old\", \"new\"]\n\
                    primaries = [\"127.0.0.1:5400 key k ixfr-udp\", \"127.0.0.2 ixfr-udp ixfr true\", \"127.0.0.3\"]\n\
                    [[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n";
        let c = parse(text).unwrap();
        let z = &c.zones[0];
        let p: Vec<(bool, bool)> = z.primaries.iter().map(|r| (r.ixfr, r.ixfr_udp)).collect();
        assert_eq!(p, vec![(true, true), (true, true), (true, false)]);
        assert_eq!(z.primaries[0].key.as_deref(), Some("k"));
        let format = |ip: &str| c.allowed_by(z, Action::Transfer, ip.parse().unwrap(), None).map(|a| a.transfer_format);
        assert_eq!(format("127.2.0.9"), Some(TransferFormat::OneAnswer), "the first ACL that allows decides");
        assert_eq!(format("127.0.0.1"), Some(TransferFormat::ManyAnswers));
        assert_eq!(c.allowed_by(z, Action::Notify, "127.2.0.9".parse().unwrap(), None), None);
        assert_eq!(
            parse("[[acl]]\nname = \"a\"\naction = [\"transfer\"]\n").unwrap().acls[0].transfer_format,
            TransferFormat::ManyAnswers,
            "the default"
        );
        let bad = [
            ("[[acl]]\nname = \"a\"\naction = [\"transfer\"]\ntransfer-format = \"one\"\n", "transfer-format \"one\""),
            (
                "[[zone]]\nname = \"s.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1 ixfr false ixfr-udp\"]\n",
                "ixfr-udp",
            ),
            ("[[zone]]\nname = \"s.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1 ixfr-tcp\"]\n", "ixfr-udp"),
        ];
        for (text, want) in bad {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn xot_settings() {
        let pin = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
        let text = format!(
            "[server]\ntls-listen = [\"127.0.0.1:8853\"]\ntls-certificate = \"c.pem\"\ntls-key = \"k.pem\"\n\
             [[acl]]\nname = \"xot\"\naction = [\"transfer\"]\ntransport = \"tls\"\n\
             [[zone]]\nname = \"a.test\"\nrole = \"secondary\"\nacl = [\"xot\"]\n\
             primaries = [\"127.0.0.1:853 tls\", \"127.0.0.2\"]\ntls-ca = \"ca.pem\"\ntls-hostname = \"p.test\"\n\
             [[zone]]\nname = \"b.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:853 tls\"]\ntls-pin = \"{pin}\"\n\
             [[zone]]\nname = \"c.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:853 tls\"]\n\
             tls-opportunistic = true\n"
        );
        let c = parse(&text).unwrap();
        let t = c.server.tls.as_ref().unwrap();
        assert_eq!(t.listen, vec![sa("127.0.0.1:8853")]);
        assert_eq!((t.certificate.to_str(), t.key.to_str()), (Some("/etc/nsxdp/c.pem"), Some("/etc/nsxdp/k.pem")));
        let a = &c.zones[0].primaries;
        let auth = a[0].tls.as_ref().unwrap();
        assert_eq!(auth.ca_file.as_deref(), Some(Path::new("/etc/nsxdp/ca.pem")));
        assert_eq!(auth.hostname.as_deref(), Some("p.test"));
        assert!(a[1].tls.is_none(), "only the primary marked tls");
        let b = c.zones[1].primaries[0].tls.as_ref().unwrap();
        assert_eq!(b.pins.len(), 1);
        assert_eq!(b.pins[0][..3], [0x9f, 0x86, 0xd0]);
        assert!(c.zones[2].primaries[0].tls.as_ref().unwrap().opportunistic());
        // The ACL allows over TLS only.
        let lo = "127.0.0.1".parse().unwrap();
        assert!(c.allowed_over(&c.zones[0], Action::Transfer, lo, None, true).is_some());
        assert!(c.allowed_over(&c.zones[0], Action::Transfer, lo, None, false).is_none());
        assert!(!c.allows(&c.zones[0], Action::Transfer, lo, None));
        let sec = |extra: &str| format!("[[zone]]\nname = \"z.test\"\nrole = \"secondary\"\n{extra}");
        let cases: &[(String, usize, &str)] = &[
            ("[server]\ntls-listen = [\"127.0.0.1:853\"]\ntls-key = \"k\"\n".into(), 2, "needs tls-certificate"),
            ("[server]\ntls-listen = [\"127.0.0.1:853\"]\ntls-certificate = \"c\"\n".into(), 2, "needs tls-key"),
            ("[server]\n\ntls-certificate = \"c\"\n".into(), 3, "go with tls-listen"),
            ("[server]\ntls-listen = [\"127.0.0.1\"]\n".into(), 2, "server.tls-listen"),
            ("[[acl]]\nname = \"a\"\naction = [\"transfer\"]\ntransport = \"quic\"\n".into(), 4, "transport \"quic\""),
            (sec("primaries = [\"127.0.0.1:853 tls\"]\n"), 4, "set tls-ca or tls-pin"),
            (sec("primaries = [\"127.0.0.1:853\"]\ntls-ca = \"ca.pem\"\n"), 5, "no primary marked tls"),
            (sec("primaries = [\"127.0.0.1:853 tls ixfr-udp\"]\ntls-ca = \"ca.pem\"\n"), 4, "tls]"),
            (sec("primaries = [\"127.0.0.1:853 tls\"]\ntls-pin = [\"AAAA\"]\n"), 5, "not the base64 of a SHA-256"),
            (
                sec("primaries = [\"127.0.0.1:853 tls\"]\ntls-ca = \"c\"\ntls-opportunistic = true\n"),
                6,
                "tls-opportunistic with",
            ),
            (sec("primaries = [\"127.0.0.1\"]\nnotify = [\"127.0.0.1 tls\"]\n"), 5, "without TLS"),
        ];
        for (text, line, want) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn metrics_address() {
        assert_eq!(parse("").unwrap().server.metrics, None, "off unless configured");
        let c = parse("[server]\nmetrics = \"127.0.0.1:9153\"\n").unwrap();
        assert_eq!(c.server.metrics, Some(sa("127.0.0.1:9153")));
        let e = parse("[server]\n\nmetrics = \"127.0.0.1\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("ADDRESS:PORT"), "{}", e.message);
    }

    #[test]
    fn rrl_section() {
        assert_eq!(parse("").unwrap().rrl, None, "off unless configured");
        assert_eq!(parse("[rrl]\n").unwrap().rrl, Some(crate::rrl::Settings::default()));
        let c = parse(
            "[rrl]\nrate = 5\nslip = 0\nwindow = 3\nipv4-prefix = 32\nipv6-prefix = 64\n\
             exempt = [\"127.0.0.1/32\", \"::1\"]\ntable-size = 1000\n",
        )
        .unwrap();
        let r = c.rrl.unwrap();
        assert_eq!((r.rate, r.slip, r.window, r.ipv4_prefix, r.ipv6_prefix, r.table_size), (5, 0, 3, 32, 64, 1000));
        assert_eq!(r.exempt, vec![("127.0.0.1".parse().unwrap(), 32), ("::1".parse().unwrap(), 128)]);
        let cases: &[(&str, usize, &str)] = &[
            ("[rrl]\nrate = 0\n", 2, "rrl.rate: 0 is not between"),
            ("[rrl]\nrate = -3\n", 2, "invalid value"),
            ("[rrl]\nslip = 1000\n", 2, "rrl.slip"),
            ("[rrl]\nwindow = 0\n", 2, "rrl.window"),
            ("\n[rrl]\nipv4-prefix = 33\n", 3, "rrl.ipv4-prefix"),
            ("[rrl]\nipv6-prefix = 0\n", 2, "rrl.ipv6-prefix"),
            ("[rrl]\ntable-size = 0\n", 2, "rrl.table-size"),
            ("[rrl]\nrate = 5\nexempt = [\"10.0.0.0/40\"]\n", 3, "rrl.exempt"),
            ("[rrl]\nburst = 5\n", 2, "unknown field `burst`"),
        ];
        for (text, line, want) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        // No listen address: the command line's defaults apply (`default_listen`).
        assert!(c.server.listen.is_empty());
        assert_eq!(c.server.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert_eq!(c.server.control, Path::new(DEFAULT_DATA_DIR).join("control.sock"));
        let c = parse("[server]\ndata-dir = \"/srv/dns\"\n").unwrap();
        assert_eq!(c.server.control, Path::new("/srv/dns/control.sock"), "beside the data");
        assert_eq!(default_listen(false)[0], sa("127.0.0.1:5353"));
        assert_eq!(default_listen(true)[0], sa("0.0.0.0:53"));
        assert_eq!(c.server.edns_size, 1232);
        assert_eq!(c.server.tcp, TcpLimits::default());
        assert_eq!(c.cookies, None);
        let c = parse("[cookies]\nsecret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n").unwrap();
        let want = crate::cookie::parse_secret("e5e973e5a6b2a43f48e7dc849e37bfcf");
        assert_eq!(c.cookies, Some(Cookies { secret: want, previous: None }));
        assert_eq!(parse("[cookies]\n").unwrap().cookies, Some(Cookies { secret: None, previous: None }));
        assert!(c.zones.is_empty());
    }

    #[test]
    fn tcp_limits() {
        let c = parse(
            "[server]\ntcp-idle-timeout = 3\ntcp-message-timeout = 250\ntcp-max-clients = 5\n\
             tcp-max-clients-per-address = 2\ntcp-max-pending-output = 4096\ntcp-output-budget = 65536\n",
        )
        .unwrap();
        let t = c.server.tcp;
        assert_eq!(t.idle_timeout, Duration::from_secs(3));
        assert_eq!(t.message_timeout, Duration::from_millis(250));
        assert_eq!((t.max_clients, t.max_clients_per_address), (5, 2));
        assert_eq!((t.max_pending_output, t.output_budget), (4096, 65536));
    }

    #[test]
    fn zones_found_by_name_in_any_case_and_after_a_change() {
        let text: String = (0..50).map(|i| format!("[[zone]]\nname = \"z{i}.Test\"\nfile = \"f{i}\"\n")).collect();
        let c = parse(&text).unwrap();
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        assert!(c.zone(&n("Z7.TEST.")).and_then(|z| z.file.as_ref()).is_some_and(|f| f.ends_with("f7")));
        assert!(c.zone(&n("z50.test.")).is_none());
        // A clone gets zones added after the original was looked in: its own lookups see them.
        let mut d = c.clone();
        let mut extra = c.zones[3].clone();
        extra.name = n("added.test.");
        d.zones.push(extra);
        assert!(d.zone(&n("ADDED.test.")).is_some());
        assert!(c.zone(&n("added.test.")).is_none());
        // Looked in, then changed: still right.
        d.zones.remove(0);
        assert!(d.zone(&n("z0.test.")).is_none());
        assert!(d.zone(&n("z49.test.")).is_some());
    }

    /// Each broken file gives an error naming its line and what is wrong.
    #[test]
    fn catalog_zones_and_templates() {
        let c = parse(
            "[[acl]]\nname = \"a\"\naction = [\"notify\"]\n\
             [[template]]\nname = \"blue\"\nprimaries = [\"127.0.0.2\"]\nacl = [\"a\"]\n\
             [[zone]]\nname = \"in.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1\"]\ncatalog-role = \"consumer\"\n\
             catalog-max-members = 5\n\
             [[zone]]\nname = \"out.test\"\ncatalog-role = \"producer\"\n\
             [[zone]]\nname = \"m.test\"\nfile = \"f\"\ncatalog = \"OUT.test\"\ncatalog-group = \"blue\"\n",
        )
        .unwrap();
        assert_eq!((c.zones[0].catalog_role, c.zones[0].catalog_max_members), (Some(CatalogRole::Consumer), 5));
        assert_eq!((c.zones[1].catalog_role, c.zones[1].file.as_ref()), (Some(CatalogRole::Producer), None));
        assert_eq!(c.zones[1].catalog_max_members, DEFAULT_CATALOG_MAX_MEMBERS);
        assert_eq!(c.zones[2].catalog.as_ref().map(|n| n.to_string()), Some("OUT.test.".into()));
        assert_eq!(c.zones[2].catalog_group.as_deref(), Some("blue"));
        assert_eq!(
            c.templates,
            [Template {
                name: "blue".into(),
                primaries: vec![Remote { addr: sa("127.0.0.2:53"), key: None, ixfr: true, ixfr_udp: false, tls: None }],
                acl: vec!["a".into()]
            }]
        );
        let cases: &[(&str, usize, &str)] = &[
            (
                "[[zone]]\nname = \"z.test\"\nfile = \"f\"\ncatalog-role = \"consumer\"\n",
                4,
                "catalog-role \"consumer\"",
            ),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\ncatalog-role = \"producer\"\n", 4, "without a file"),
            ("[[zone]]\nname = \"z.test\"\ncatalog-role = \"interpret\"\n", 3, "is not consumer"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\ncatalog = \"c.test\"\n", 4, "is not a zone with catalog-role"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\ncatalog-group = \"\"\n", 4, "catalog-group"),
            ("[[template]]\nname = \"t\"\nacl = [\"none\"]\n", 3, "no acl named"),
            ("[[template]]\nname = \"t\"\nprimaries = [\"127.0.0.1 key none\"]\n", 3, "with a defined key"),
            ("[[template]]\nname = \"t\"\n[[template]]\nname = \"t\"\n", 3, "defined twice"),
        ];
        for (text, line, want) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let cases: &[(&str, usize, &str)] = &[
            ("[server]\nlisten = [\"127.0.0.1:5300\"]\nbogus = 1\n", 3, "unknown field `bogus`"),
            ("[server]\nlisten = [\"nowhere:53\"]\n", 2, "server.listen"),
            ("[server]\nedns-size = 100\n", 2, "below 512"),
            ("[server]\nedns-size = \"big\"\n", 2, "invalid type"),
            ("[server]\nlisten = []\ntcp-max-clients = 0\n", 3, "server.tcp-max-clients: must be at least 1"),
            ("[server]\nlisten = [\"192.0.2.1\"]\n", 2, "server.listen: \"192.0.2.1\" has no port"),
            ("[server]\nlisten = [\"localhost:53\"]\n", 2, "server.listen: \"localhost:53\" is not an address"),
            ("[server]\ntcp-idle-timeout = 0\n", 2, "server.tcp-idle-timeout: must be at least 1"),
            ("[server]\ntcp-message-timeout = 0\n", 2, "tcp-message-timeout"),
            ("[server]\ntcp-max-clients-per-address = 0\n", 2, "tcp-max-clients-per-address"),
            ("[server]\ntcp-max-pending-output = 0\n", 2, "tcp-max-pending-output"),
            ("[server]\ntcp-output-budget = 0\n", 2, "tcp-output-budget"),
            ("[server]\ntcp-max-clients = -1\n", 2, ""),
            ("[[key]]\nname = \"k\"\nalgorithm = \"md5\"\nsecret = \"AAAA\"\n", 3, "algorithm \"md5\""),
            ("[[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"!!\"\n", 4, "not base64"),
            ("[[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\n", 1, "missing field `secret`"),
            ("[[acl]]\nname = \"a\"\naddress = [\"10.0.0.0/33\"]\naction = [\"transfer\"]\n", 3, "not ADDRESS"),
            ("[[acl]]\nname = \"a\"\nkey = \"nokey\"\naction = [\"transfer\"]\n", 3, "no key named"),
            ("[[acl]]\nname = \"a\"\naction = [\"update\"]\n", 3, "action \"update\""),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\nacl = [\"none\"]\n", 4, "no acl named"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\nnotify = [\"127.0.0.1 key k\"]\n", 4, "no key named"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\nnotify = [\"127.0.0.1 psk k\"]\n", 4, "is not"),
            ("[[zone]]\nname = \"z.test\"\nrole = \"master\"\nfile = \"f\"\n", 3, "role \"master\""),
            ("[[zone]]\nname = \"z.test\"\n", 1, "needs a file"),
            ("[[zone]]\nname = \"z.test\"\nrole = \"secondary\"\n", 1, "needs primaries"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\n[[zone]]\nname = \"Z.TEST.\"\nfile = \"g\"\n", 5, "twice"),
            ("[[zone]]\nname = \"z.test\"\nfile = \"f\"\nserial-policy = \"date\"\n", 4, "serial-policy"),
            ("[[zone]]\nname = \"a..b\"\nfile = \"f\"\n", 2, "bad name"),
            ("[server\n", 1, ""),
            ("[cookies]\nsecret = \"00\"\n", 2, "cookies.secret: not 32 hexadecimal digits"),
            ("[cookies]\nsecret-previous = \"zz0000000000000000000000000000zz\"\n", 2, "cookies.secret-previous"),
        ];
        for (text, line, want) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("/etc/nsxdp/nsxdp.toml:{line}: ")), "{e}");
        }
    }

    #[test]
    fn acls_need_address_and_key() {
        let c = parse(GOOD).unwrap();
        let z = &c.zones[0];
        let xfr = Name::parse_text(b"XFR.", None).unwrap();
        let other = Name::parse_text(b"other.", None).unwrap();
        let lo = "127.0.0.1".parse().unwrap();
        assert!(c.allows(z, Action::Transfer, lo, Some(&xfr)));
        assert!(c.allows(z, Action::Transfer, "::ffff:127.0.0.1".parse().unwrap(), Some(&xfr)));
        assert!(!c.allows(z, Action::Transfer, lo, None), "unsigned");
        assert!(!c.allows(z, Action::Transfer, lo, Some(&other)), "another key");
        assert!(!c.allows(z, Action::Transfer, "192.0.2.1".parse().unwrap(), Some(&xfr)), "outside");
        assert!(!c.allows(z, Action::Notify, lo, Some(&xfr)), "not this action");
        // The secondary zone's ACL allows NOTIFY from anyone, unsigned.
        assert!(c.allows(&c.zones[1], Action::Notify, "192.0.2.1".parse().unwrap(), None));
        let t = c.zones[1].timers;
        assert_eq!((t.refresh_max, t.expire_min, t.retry_min), (300, 3600, 1));
        assert_eq!(c.zones[1].transfer_timeout_secs, 3);
        assert_eq!(c.zones[0].transfer_timeout_secs, 10);
        assert!(!c.allows(&c.zones[1], Action::Transfer, lo, Some(&xfr)));
    }

    #[test]
    fn prefixes() {
        let p = parse_prefix("192.0.2.128/25").unwrap();
        assert!(p.contains("192.0.2.200".parse().unwrap()));
        assert!(!p.contains("192.0.2.100".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        assert!(parse_prefix("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
        assert!(parse_prefix("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!parse_prefix("::1").unwrap().contains("::2".parse().unwrap()));
        assert!(parse_prefix("::/129").is_none());
        assert!(parse_prefix("1.2.3.4/x").is_none());
    }
}
