//! Zones the configuration file does not list: the member zones of the catalogs this server
//! consumes (RFC 9432) and the zones added with `nsxdp ctl zone-add`.
//!
//! Both become zone entries of the running configuration (the file's, with theirs
//! appended), and the zone set follows that configuration the way a reload of the file
//! does ([`ZoneSet::reconfigure`]): one path adds and removes zones at run time, and NOTIFY
//! in, transfers out and NOTIFY out see a member zone's primaries and ACLs like any other
//! zone's. A member zone takes its settings from its catalog's entry (primaries, key, ACLs,
//! NOTIFY), or, when its `group` property names a `[[template]]`, that template's primaries
//! and ACLs.
//!
//! Nothing extra is kept for catalogs: at start, each consumed catalog's version (snapshot
//! and journal, like any secondary zone's) says which members to serve. The zones added
//! with `ctl` are kept in the data directory's zone list ([`LIST`]), one line each in the
//! form `zone-add` takes. The zone manager thread owns this; it does no I/O but the zone
//! list and what the zone set does.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::zones::ZoneSet;
use crate::catz::{self, Claim};
use crate::config::{CatalogRole, Config, Remote, Role, SharedConfig, ZoneConf};
use crate::wire::name::Name;

/// The zone list in the data directory: the zones `ctl zone-add` added.
pub const LIST: &str = "zonelist";

/// A zone added with `ctl zone-add`: the line that says it (`NAME [acl ACL]... file PATH` or
/// `NAME [acl ACL]... primary ADDRESS[:PORT] [key KEY]`) and what it means.
#[derive(Clone, Debug)]
struct Added {
    line: String,
    conf: ZoneConf,
}

/// The zones beside the configuration file's, and the file as last read.
pub struct Dynamic {
    file: Arc<Config>,
    list: PathBuf,
    /// By consumed catalog (lowercased): the members its served version lists.
    catalogs: HashMap<Name, catz::Catalog>,
    /// Member zone (lowercased) -> the catalog that owns it.
    owner: HashMap<Name, Name>,
    /// `ctl zone-add`, in the order added.
    added: Vec<Added>,
}

fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

impl Dynamic {
    /// Takes in what the zone set already serves of `file`: the zones of the zone list and
    /// the members of each consumed catalog that has a version are added, and `shared`
    /// becomes the running configuration with them.
    pub fn start(file: Arc<Config>, zones: &mut ZoneSet, shared: &SharedConfig) -> Dynamic {
        let mut d = Dynamic {
            file,
            list: zones.data_dir().join(LIST),
            catalogs: HashMap::new(),
            owner: HashMap::new(),
            added: Vec::new(),
        };
        match std::fs::read_to_string(&d.list) {
            Ok(text) => {
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    match parse_added(line, &d.file) {
                        Ok(conf) if d.configured(&conf.name) => log::warn!(
                            "zone list {}: zone {} is in the configuration file, which wins",
                            d.list.display(),
                            conf.name
                        ),
                        Ok(conf) => d.added.push(Added { line: line.to_string(), conf }),
                        Err(e) => log::error!("zone list {}: {line:?} left out: {e}", d.list.display()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("zone list {}: {e}", d.list.display()),
        }
        let mut delete = Vec::new();
        for cat in d.consumed() {
            delete.extend(d.take_in(zones, &cat));
        }
        d.apply(zones, shared, &delete);
        d
    }

    /// The consumed catalogs of the configuration file (lowercased).
    fn consumed(&self) -> Vec<Name> {
        self.file
            .zones
            .iter()
            .filter(|z| z.catalog_role == Some(CatalogRole::Consumer))
            .map(|z| z.name.to_lowercase())
            .collect()
    }

    /// Whether the configuration file lists `name`.
    fn configured(&self, name: &Name) -> bool {
        self.file.zone(name).is_some()
    }

    /// Whether `name` is a catalog this server consumes.
    pub fn is_consumed(&self, name: &Name) -> bool {
        self.file.zone(name).is_some_and(|z| z.catalog_role == Some(CatalogRole::Consumer))
    }

    /// The running configuration: the file's zones, then the added zones and the members.
    fn effective(&self) -> Config {
        let mut c = (*self.file).clone();
        for a in &self.added {
            c.zones.push(a.conf.clone());
        }
        let catalogs: HashMap<Name, &ZoneConf> = self
            .file
            .zones
            .iter()
            .filter(|z| z.catalog_role == Some(CatalogRole::Consumer))
            .map(|z| (z.name.to_lowercase(), z))
            .collect();
        for (member, cat) in &self.owner {
            let (Some(cat_conf), Some(entry)) =
                (catalogs.get(cat), self.catalogs.get(cat).and_then(|c| c.members.get(member.as_wire())))
            else {
                continue;
            };
            c.zones.push(member_conf(cat_conf, entry, &self.file));
        }
        c
    }

    /// Makes the zone set follow the running configuration (zones added and removed as a
    /// reload adds and removes them), then deletes the data of the zones in `delete` that
    /// are no longer served.
    fn apply(&self, zones: &mut ZoneSet, shared: &SharedConfig, delete: &[Name]) -> Vec<String> {
        let old = shared.load();
        let new = self.effective();
        let mut notes = Vec::new();
        zones.reconfigure(&old, &new, unix_now(), &mut notes);
        shared.store(new);
        for n in &notes {
            log::info!("{n}");
        }
        Self::delete_unserved(zones, delete);
        notes
    }

    /// Reads catalog `cat`'s served version and decides its members' fate: new ones are
    /// taken (unless configured, added or owned by another catalog that gives them no
    /// `coo`), gone ones dropped, re-created ones (a new unique id) reset. Zones reset now
    /// are removed from the set here (to be added again by [`Self::apply`]); returns the
    /// zones whose data is to be deleted once they are no longer served.
    fn take_in(&mut self, zones: &mut ZoneSet, cat: &Name) -> Vec<Name> {
        let cat = cat.to_lowercase();
        let max = self.file.zone(&cat).map_or(0, |z| z.catalog_max_members);
        let Some(snap) = zones.index(&cat).and_then(|i| zones.zones[i].snapshot.clone()) else { return Vec::new() };
        let zone = match crate::snapshot::to_zone(snap.zone()) {
            Ok(z) => z,
            Err(e) => {
                log::error!("catalog {cat}: serial {} cannot be read: {e}", snap.serial());
                return Vec::new();
            }
        };
        let (new, ignored) = match catz::read(&zone) {
            Ok(r) => r,
            Err(e) => {
                log::error!("catalog {cat}: serial {}: {e}; its members stay as they were", snap.serial());
                return Vec::new();
            }
        };
        drop(zone);
        for i in ignored.iter().take(10) {
            log::warn!("catalog {cat}: {} ignored: {}", i.owner, i.why);
        }
        if ignored.len() > 10 {
            log::warn!("catalog {cat}: and {} more records ignored", ignored.len() - 10);
        }
        if new.members.len() > max {
            log::error!(
                "catalog {cat}: serial {} lists {} member zones, more than catalog-max-members ({max}): refused; \
                 its members stay as they were",
                snap.serial(),
                new.members.len()
            );
            return Vec::new();
        }
        let old = self.catalogs.remove(&cat).unwrap_or_default();
        let changes = catz::changes(&old, &new);
        let mut delete = Vec::new();
        // Out of the set and its data deleted now: added again (empty) by the apply.
        let reset = |name: &Name, zones: &mut ZoneSet, why: &str| {
            log::info!("zone {name}: {why}: its data dropped, transferred anew");
            zones.remove(name);
            if let Err(e) = zones.delete_data(name) {
                log::error!("zone {name}: deleting its data: {e}");
            }
        };
        // Zones that are not for a catalog to take (looked up once per member).
        let elsewhere: HashSet<Name> = self
            .file
            .zones
            .iter()
            .map(|z| &z.name)
            .chain(self.added.iter().map(|a| &a.conf.name))
            .map(Name::to_lowercase)
            .collect();
        #[derive(PartialEq)]
        enum Kind {
            Added,
            Recreated,
            Changed,
        }
        let listed = changes.added.iter().map(|m| (m, Kind::Added));
        let listed = listed.chain(changes.recreated.iter().map(|m| (m, Kind::Recreated)));
        for (m, kind) in listed.chain(changes.changed.iter().map(|m| (m, Kind::Changed))) {
            let name = m.zone.to_lowercase();
            match self.owner.get(&name).cloned() {
                Some(o) if o == cat => {
                    // Its entry now hands it to another catalog that lists it already.
                    let to = m.coo.as_ref().map(Name::to_lowercase).filter(|to| *to != cat);
                    let theirs =
                        to.as_ref().and_then(|to| Some((to, self.catalogs.get(to)?.members.get(name.as_wire())?)));
                    if let Some((to, theirs)) = theirs {
                        log::info!("zone {name}: moves from catalog {cat} to catalog {to} (coo)");
                        let r = theirs.id != m.id;
                        self.owner.insert(name.clone(), to.clone());
                        if r {
                            reset(&name, zones, "a new unique id in its new catalog (RFC 9432 5.6)");
                        }
                    } else if kind == Kind::Recreated {
                        reset(&name, zones, "listed under a new unique id (RFC 9432 5.5)");
                    }
                }
                Some(o) => {
                    let Some(theirs) = self.catalogs.get(&o).and_then(|c| c.members.get(name.as_wire())) else {
                        continue;
                    };
                    match catz::claim(theirs, &cat, m) {
                        Claim::Refused => {
                            if kind != Kind::Changed {
                                log::warn!(
                                    "zone {name}: listed by catalog {cat} but a member of catalog {o}, which \
                                     names no change of ownership (coo) to it: not taken"
                                );
                            }
                        }
                        Claim::Taken { reset: r } => {
                            log::info!("zone {name}: moves from catalog {o} to catalog {cat} (coo)");
                            self.owner.insert(name.clone(), cat.clone());
                            if r {
                                reset(&name, zones, "a new unique id in its new catalog (RFC 9432 5.6)");
                            }
                        }
                    }
                }
                None if elsewhere.contains(&name) => {
                    if kind != Kind::Changed {
                        log::warn!("zone {name}: listed by catalog {cat} but configured otherwise: not taken");
                    }
                }
                None if name == cat => {
                    log::warn!("zone {name}: listed by catalog {cat} but a catalog itself: not taken");
                }
                None => {
                    self.owner.insert(name, cat.clone());
                }
            }
        }
        for m in &changes.removed {
            let name = m.zone.to_lowercase();
            if self.owner.get(&name) == Some(&cat) {
                log::info!("zone {name}: no longer in catalog {cat}: removed");
                self.owner.remove(&name);
                delete.push(name);
            }
        }
        if !changes.is_empty() {
            log::info!(
                "catalog {cat}: serial {}: {} members ({} added, {} removed, {} re-created, {} changed)",
                snap.serial(),
                new.members.len(),
                changes.added.len(),
                changes.removed.len(),
                changes.recreated.len(),
                changes.changed.len()
            );
        }
        self.catalogs.insert(cat, new);
        delete
    }

    /// A new version of catalog `cat` is served: its members follow it.
    pub fn catalog_updated(&mut self, zones: &mut ZoneSet, shared: &SharedConfig, cat: &Name) {
        if !self.is_consumed(cat) {
            return;
        }
        let delete = self.take_in(zones, cat);
        self.apply(zones, shared, &delete);
    }

    /// The configuration file was read again (`new`): its zones win over added zones and
    /// catalog members of the same name; members of catalogs it no longer consumes go (and
    /// their data); catalogs it newly consumes are read. Applied by the caller's reconfigure:
    /// returns the running configuration to apply and the zones whose data to delete once
    /// they are no longer served.
    pub fn reconfigured(&mut self, new: Config, zones: &mut ZoneSet) -> (Config, Vec<Name>) {
        self.file = Arc::new(new);
        let before = self.added.len();
        let configured: HashSet<Name> = self.file.zones.iter().map(|z| z.name.to_lowercase()).collect();
        self.added.retain(|a| {
            let n = a.conf.name.to_lowercase();
            let keep = !configured.contains(&n);
            if !keep {
                log::warn!("zone {n}: now in the configuration file: dropped from the zone list");
            }
            keep
        });
        if self.added.len() != before {
            if let Err(e) = self.write_list() {
                log::error!("{e}");
            }
        }
        let consumed: HashSet<Name> = self.consumed().into_iter().collect();
        self.catalogs.retain(|c, _| consumed.contains(c));
        let mut delete = Vec::new();
        let owner = std::mem::take(&mut self.owner);
        for (member, cat) in owner {
            if configured.contains(&member) {
                log::warn!("zone {member}: now in the configuration file: no longer a member of catalog {cat}");
            } else if !consumed.contains(&cat) {
                log::info!("zone {member}: catalog {cat} is no longer consumed: removed");
                delete.push(member);
            } else {
                self.owner.insert(member, cat);
            }
        }
        for cat in consumed {
            if !self.catalogs.contains_key(&cat) {
                delete.extend(self.take_in(zones, &cat));
            }
        }
        (self.effective(), delete)
    }

    /// Deletes the data of the zones in `delete` that are no longer served (after a
    /// reconfigure).
    pub fn delete_unserved(zones: &ZoneSet, delete: &[Name]) {
        for name in delete {
            if zones.index(name).is_none() {
                match zones.delete_data(name) {
                    Ok(()) => log::info!("zone {name}: its snapshot and journal deleted"),
                    Err(e) => log::error!("zone {name}: deleting its data: {e}"),
                }
            }
        }
    }

    /// `zone-add NAME [acl ACL]... file PATH` or `zone-add NAME [acl ACL]... primary
    /// ADDRESS[:PORT] [key KEY]` (`args` after the command): the reply.
    pub fn zone_add(&mut self, zones: &mut ZoneSet, shared: &SharedConfig, args: &str) -> String {
        let conf = match parse_added(args, &self.file) {
            Ok(c) => c,
            Err(e) => return format!("error: {e}\n"),
        };
        let name = conf.name.clone();
        if zones.index(&name).is_some() || self.configured(&name) {
            return format!("error: zone {name} is served already\n");
        }
        self.added.push(Added { line: args.trim().to_string(), conf });
        if let Err(e) = self.write_list() {
            self.added.pop();
            return format!("error: {e}\n");
        }
        let notes = self.apply(zones, shared, &[]);
        let Some(i) = zones.index(&name) else {
            self.added.pop();
            let list = self.write_list().err().map_or(String::new(), |e| format!("; {e}"));
            self.apply(zones, shared, &[]);
            let why = notes
                .iter()
                .find(|n| n.contains("not added"))
                .cloned()
                .unwrap_or_else(|| format!("zone {name}: not added"));
            return format!("error: {why}{list}\n");
        };
        let z = &zones.zones[i];
        let mut out = String::new();
        match (&z.secondary, z.serial()) {
            (Some(_), Some(s)) => {
                let _ = writeln!(out, "{name} added, secondary: serial {s} from the last run, a check is due");
            }
            (Some(_), None) => {
                let _ = writeln!(out, "{name} added, secondary: a transfer is due");
            }
            (None, s) => {
                let _ = writeln!(out, "{name} added, serial {}", s.unwrap_or(0));
            }
        }
        log::info!("ctl zone-add: {}", out.trim_end());
        out + "ok\n"
    }

    /// `zone-remove NAME [keep-data]`: the reply.
    pub fn zone_remove(&mut self, zones: &mut ZoneSet, shared: &SharedConfig, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        let (zone, keep) = match words.as_slice() {
            [z] => (*z, false),
            [z, "keep-data"] => (*z, true),
            _ => return "error: zone-remove takes ZONE [keep-data]\n".into(),
        };
        let name = match Name::parse_text(zone.as_bytes(), Some(&Name::root())) {
            Ok(n) => n.to_lowercase(),
            Err(e) => return format!("error: bad zone name {zone:?}: {e}\n"),
        };
        if let Some(cat) = self.owner.get(&name) {
            return format!("error: zone {name} is a member of catalog {cat}: remove it there\n");
        }
        if self.configured(&name) {
            return format!("error: zone {name} is in the configuration file: remove it there and reload\n");
        }
        let Some(at) = self.added.iter().position(|a| a.conf.name.to_lowercase() == name) else {
            return format!("error: no zone {name} was added with zone-add\n");
        };
        let gone = self.added.remove(at);
        if let Err(e) = self.write_list() {
            self.added.insert(at, gone);
            return format!("error: {e}\n");
        }
        let delete = if keep { Vec::new() } else { vec![name.clone()] };
        self.apply(zones, shared, &delete);
        let what = if keep { "its data kept" } else { "its data deleted" };
        log::info!("ctl zone-remove: zone {name} removed, {what}");
        format!("{name} removed, {what}\nok\n")
    }

    /// Brings the catalogs this server generates up to date with the zones served: each
    /// lists the zones whose `catalog` names it (those served), or, when none does, every
    /// zone served that is no catalog itself. Returns the catalogs that got a new version
    /// (to NOTIFY).
    pub fn produce(&self, zones: &mut ZoneSet, shared: &SharedConfig) -> Vec<Name> {
        let config = shared.load();
        let lower = |n: &Name| n.to_lowercase();
        let catalogs: HashSet<Name> =
            config.zones.iter().filter(|z| z.catalog_role.is_some()).map(|z| lower(&z.name)).collect();
        let mut changed = Vec::new();
        for p in config.zones.iter().filter(|z| z.catalog_role == Some(CatalogRole::Producer)) {
            let name = lower(&p.name);
            let Some(i) = zones.index(&name) else { continue };
            let tagged: Vec<&ZoneConf> =
                config.zones.iter().filter(|z| z.catalog.as_ref().map(lower).as_ref() == Some(&name)).collect();
            let members: Vec<(Name, Option<Vec<u8>>)> = if tagged.is_empty() {
                let groups: HashMap<Name, &str> =
                    config.zones.iter().filter_map(|z| Some((lower(&z.name), z.catalog_group.as_deref()?))).collect();
                zones
                    .zones
                    .iter()
                    .map(|z| lower(&z.name))
                    .filter(|n| !catalogs.contains(n))
                    .map(|n| {
                        let g = groups.get(&n).map(|g| g.as_bytes().to_vec());
                        (n, g)
                    })
                    .collect()
            } else {
                tagged
                    .iter()
                    .filter(|z| zones.index(&z.name).is_some())
                    .map(|z| (lower(&z.name), z.catalog_group.as_ref().map(|g| g.as_bytes().to_vec())))
                    .collect()
            };
            match zones.replace_generated(i, members.iter().map(|(n, g)| (n, g.as_deref())), unix_now()) {
                Ok(true) => {
                    log::info!(
                        "catalog {name}: serial {}, {} member zones",
                        zones.zones[i].serial().unwrap_or(0),
                        members.len()
                    );
                    changed.push(name);
                }
                Ok(false) => {}
                Err(e) => log::error!("catalog {name}: not generated: {e}"),
            }
        }
        changed
    }

    /// Writes the zone list (a temporary file renamed over it).
    fn write_list(&self) -> Result<(), String> {
        let mut text =
            String::from("# Zones added with `nsxdp ctl zone-add` (written by nsxdp; use zone-add/zone-remove)\n");
        for a in &self.added {
            text.push_str(&a.line);
            text.push('\n');
        }
        let tmp = self.list.with_extension("tmp");
        let fail = |e: std::io::Error| format!("zone list {}: {e}", self.list.display());
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(fail)?;
        std::fs::rename(&tmp, &self.list).map_err(fail)?;
        if let Some(dir) = self.list.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// A member zone's configuration: its catalog's, or with the primaries and ACLs of the
/// template its first `group` that names one names.
fn member_conf(catalog: &ZoneConf, entry: &catz::Member, file: &Config) -> ZoneConf {
    let mut c = catalog.clone();
    c.name = entry.zone.clone();
    c.catalog_role = None;
    let template = entry.groups.iter().find_map(|g| file.templates.iter().find(|t| t.name.as_bytes() == g.as_slice()));
    if let Some(t) = template {
        if !t.primaries.is_empty() {
            c.primaries = t.primaries.clone();
        }
        if !t.acl.is_empty() {
            c.acl = t.acl.clone();
        }
    }
    c
}

/// Reads `NAME [acl ACL]... file PATH` or `NAME [acl ACL]... primary ADDRESS[:PORT] [key KEY]
/// [acl ACL]...` (the path is the rest of the line).
fn parse_added(line: &str, file: &Config) -> Result<ZoneConf, String> {
    let usage = "zone-add takes ZONE [acl ACL]... file PATH or ZONE [acl ACL]... primary ADDRESS[:PORT] [key KEY]";
    let line = line.trim();
    let (zone, mut rest) = line.split_once(char::is_whitespace).ok_or(usage)?;
    let name =
        Name::parse_text(zone.as_bytes(), Some(&Name::root())).map_err(|e| format!("bad zone name {zone:?}: {e}"))?;
    let mut acl = Vec::new();
    let mut add_acl = |v: &str| match file.acl(v) {
        Some(_) => {
            acl.push(v.to_string());
            Ok(())
        }
        None => Err(format!("no acl named {v:?} in the configuration")),
    };
    loop {
        let (word, args) = rest.trim_start().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
        match word {
            "acl" => {
                let (v, more) = args.trim_start().split_once(char::is_whitespace).unwrap_or((args.trim(), ""));
                add_acl(v)?;
                rest = more;
            }
            "file" => {
                let path = PathBuf::from(args.trim());
                if !path.is_absolute() {
                    return Err(format!("zone file {:?} is not an absolute path", args.trim()));
                }
                let mut c = ZoneConf::with_defaults(name, Role::Primary);
                c.file = Some(path);
                c.acl = acl;
                return Ok(c);
            }
            "primary" => {
                let mut words = args.split_whitespace();
                let addr = words.next().ok_or("primary needs ADDRESS[:PORT]")?;
                let mut remote: Remote = crate::config::parse_remote(addr)
                    .ok_or_else(|| format!("primary {addr:?} is not ADDRESS[:PORT]"))?;
                while let Some(w) = words.next() {
                    let v = words.next().ok_or_else(|| format!("{w} needs a value"))?;
                    match w {
                        "key" if file.key(v).is_some() => remote.key = Some(v.to_string()),
                        "key" => return Err(format!("no key named {v:?} in the configuration")),
                        "acl" => add_acl(v)?,
                        other => return Err(format!("unknown option {other:?} (key KEY, acl ACL)")),
                    }
                }
                let mut c = ZoneConf::with_defaults(name, Role::Secondary);
                c.primaries = vec![remote];
                c.acl = acl;
                c.notify_ns = false;
                return Ok(c);
            }
            "" => return Err(usage.into()),
            other => return Err(format!("{other:?} is neither acl, file nor primary")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> Config {
        let text = "[[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret = \"c2VjcmV0\"\n\
                    [[acl]]\nname = \"a\"\naction = [\"notify\"]\n\
                    [[template]]\nname = \"blue\"\nprimaries = [\"127.0.0.2:53 key k\"]\n\
                    [[zone]]\nname = \"cat.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:5300 key k\"]\n\
                    acl = [\"a\"]\ncatalog-role = \"consumer\"\n";
        Config::parse(std::path::Path::new("/x/c.toml"), text).unwrap()
    }

    #[test]
    fn added_zone_lines() {
        let c = conf();
        let f = parse_added("a.test file /srv/a test.zone", &c).unwrap();
        assert_eq!((f.role, f.file.unwrap()), (Role::Primary, PathBuf::from("/srv/a test.zone")));
        let f = parse_added("a.test acl a file /srv/a.zone", &c).unwrap();
        assert_eq!((f.acl, f.file.unwrap()), (vec!["a".to_string()], PathBuf::from("/srv/a.zone")));
        let s = parse_added("b.test primary 127.0.0.1:5301 key k acl a", &c).unwrap();
        assert_eq!(s.primaries[0].addr, "127.0.0.1:5301".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!((s.primaries[0].key.as_deref(), s.acl.clone()), (Some("k"), vec!["a".to_string()]));
        assert_eq!(parse_added("b.test primary 127.0.0.1", &c).unwrap().primaries[0].addr.port(), 53);
        for bad in [
            "a.test file rel.zone",
            "b.test primary 127.0.0.1 key nope",
            "b.test primary 127.0.0.1 acl nope",
            "b.test primary",
            "b.test secondary 127.0.0.1",
            "b.test",
            "b..test file /a",
            "a.test acl nope file /a",
            "a.test acl",
        ] {
            assert!(parse_added(bad, &c).is_err(), "{bad}");
        }
    }

    #[test]
    fn members_take_the_catalogs_settings_or_their_groups_template() {
        let c = conf();
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        let m = |groups: &[&str]| catz::Member {
            zone: n("m.test."),
            id: b"x".to_vec(),
            groups: groups.iter().map(|g| g.as_bytes().to_vec()).collect(),
            coo: None,
        };
        let plain = member_conf(&c.zones[0], &m(&[]), &c);
        assert_eq!((plain.name.clone(), plain.catalog_role), (n("m.test."), None));
        assert_eq!(plain.primaries, c.zones[0].primaries);
        let blue = member_conf(&c.zones[0], &m(&["red", "blue"]), &c);
        assert_eq!(blue.primaries[0].addr, "127.0.0.2:53".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(blue.acl, ["a"], "the template names no ACL: the catalog's");
        assert_eq!(member_conf(&c.zones[0], &m(&["red"]), &c).primaries, c.zones[0].primaries);
    }

    /// Two consumed catalogs: members taken, re-created, moved by `coo`, refused, removed,
    /// over the limit; the data of re-created and removed members deleted.
    #[test]
    fn catalogs_own_their_members() {
        use crate::zone::parse::load_text;
        let dir = tempfile::tempdir().unwrap();
        let text = "[[zone]]\nname = \"cat1.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:1\"]\n\
                    catalog-role = \"consumer\"\ncatalog-max-members = 3\n\
                    [[zone]]\nname = \"cat2.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.2:1\"]\n\
                    catalog-role = \"consumer\"\n\
                    [[zone]]\nname = \"own.test\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.3:1\"]\n";
        let file = Arc::new(Config::parse(&dir.path().join("c.toml"), text).unwrap());
        let shared = SharedConfig::from(file.clone());
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(crate::answer::Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        for z in &file.zones {
            zs.add_configured(z, &file, 0, &mut Vec::new()).unwrap();
        }
        let n = |s: &str| Name::parse_text(s.as_bytes(), None).unwrap();
        let serial = std::cell::Cell::new(1);
        // Commits a version of zone `origin` with `body`.
        let commit = |zs: &mut ZoneSet, origin: &str, body: &str| {
            serial.set(serial.get() + 1);
            let t = format!(
                "$ORIGIN {origin}\n$TTL 0\n@ SOA invalid. invalid. {} 3600 600 2419200 0\n@ NS invalid.\n\
                             version TXT \"2\"\n{body}",
                serial.get()
            );
            let l = load_text(std::path::Path::new("z"), t.as_bytes(), &n(origin));
            assert!(l.is_servable(), "{:?}", l.diagnostics);
            let i = zs.index(&n(origin)).unwrap();
            zs.commit(i, &l.zone, &[]).unwrap();
        };
        let primary = |zs: &ZoneSet, z: &str| {
            zs.index(&n(z)).map(|i| zs.zones[i].secondary.as_ref().unwrap().primaries[0].addr.to_string())
        };
        commit(&mut zs, "cat1.test.", "m1.zones PTR m.test.\nx1.zones PTR x.test.\no1.zones PTR own.test.\n");
        let mut d = Dynamic::start(file.clone(), &mut zs, &shared);
        assert_eq!(primary(&zs, "m.test."), Some("127.0.0.1:1".into()));
        assert_eq!(primary(&zs, "x.test."), Some("127.0.0.1:1".into()));
        assert_eq!(primary(&zs, "own.test."), Some("127.0.0.3:1".into()), "configured: not taken");
        assert!(shared.load().zones.iter().any(|z| z.name == n("m.test.")), "members are in the running configuration");
        // m.test. has data; listed again under a new id it is dropped and asked for anew.
        commit(&mut zs, "m.test.", "");
        let snap = zs.snapshot_path(&n("m.test."));
        assert!(snap.exists());
        commit(&mut zs, "cat1.test.", "m2.zones PTR m.test.\nx1.zones PTR x.test.\n");
        d.catalog_updated(&mut zs, &shared, &n("cat1.test."));
        let i = zs.index(&n("m.test.")).unwrap();
        assert!(zs.zones[i].snapshot.is_none() && !snap.exists(), "re-created: data dropped");
        // cat2 lists x.test. too: cat1 keeps it, until cat1 hands it over with coo.
        commit(&mut zs, "cat2.test.", "x2.zones PTR x.test.\n");
        d.catalog_updated(&mut zs, &shared, &n("cat2.test."));
        assert_eq!(primary(&zs, "x.test."), Some("127.0.0.1:1".into()));
        commit(&mut zs, "cat1.test.", "m2.zones PTR m.test.\nx1.zones PTR x.test.\ncoo.x1.zones PTR cat2.test.\n");
        d.catalog_updated(&mut zs, &shared, &n("cat1.test."));
        assert_eq!(primary(&zs, "x.test."), Some("127.0.0.2:1".into()), "moved to cat2 by coo");
        // Gone from cat1 now changes nothing for x.test.; m.test. goes, with its data.
        commit(&mut zs, "m.test.", "");
        commit(&mut zs, "cat1.test.", "");
        d.catalog_updated(&mut zs, &shared, &n("cat1.test."));
        assert_eq!(primary(&zs, "x.test."), Some("127.0.0.2:1".into()));
        assert_eq!(primary(&zs, "m.test."), None);
        assert!(!snap.exists());
        // Over the limit: refused whole.
        commit(
            &mut zs,
            "cat1.test.",
            "a.zones PTR a.test.\nb.zones PTR b.test.\nc.zones PTR c.test.\nd.zones PTR d.test.\n",
        );
        d.catalog_updated(&mut zs, &shared, &n("cat1.test."));
        assert_eq!(primary(&zs, "a.test."), None);
        commit(&mut zs, "cat1.test.", "a.zones PTR a.test.\n");
        d.catalog_updated(&mut zs, &shared, &n("cat1.test."));
        assert_eq!(primary(&zs, "a.test."), Some("127.0.0.1:1".into()));
        // A restart reads the catalogs' versions again: the same members.
        let members = |zs: &ZoneSet| {
            let mut v: Vec<String> = zs.zones.iter().map(|z| z.name.to_string()).collect();
            v.sort();
            v
        };
        let before = members(&zs);
        assert_eq!(before, ["a.test.", "cat1.test.", "cat2.test.", "own.test.", "x.test."]);
        drop(zs);
        let catalog = Arc::new(arc_swap::ArcSwap::from_pointee(crate::answer::Catalog::default()));
        let mut zs = ZoneSet::new(dir.path(), catalog);
        for z in &file.zones {
            zs.add_configured(z, &file, 0, &mut Vec::new()).unwrap();
        }
        let shared = SharedConfig::from(file.clone());
        let _d = Dynamic::start(file.clone(), &mut zs, &shared);
        assert_eq!(members(&zs), before);
    }
}
