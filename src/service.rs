//! Running as a service: readiness and stopping told to systemd (`sd_notify`, the
//! datagram protocol of `$NOTIFY_SOCKET`), and the switch from root to an unprivileged
//! user once the sockets are bound and the XDP program attached.

use std::ffi::CString;

/// Tells the service manager `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...`)
/// if it asked to be told (`NOTIFY_SOCKET` set); otherwise nothing. Errors are reported, not
/// fatal: a server that runs without systemd is not broken.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&path, state) {
        log::warn!("sd_notify {state:?} to {}: {e}", path.to_string_lossy());
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    // '@' names a socket in the abstract namespace.
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// Why the switch to another user failed.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("user {0:?}: no such user")]
    NoUser(String),
    #[error("user {0:?}: {1}")]
    Lookup(String, std::io::Error),
    #[error("switching to user {0:?}: {1}: {2}")]
    Switch(String, &'static str, std::io::Error),
}

/// Switches the whole process (every thread: glibc applies set*id to all of them) to
/// `user`, its primary group and its supplementary groups, for good: no way back to root,
/// and no capabilities left — except `keep` in the calling thread (the XDP plane keeps
/// CAP_NET_ADMIN in the thread that detaches its program at exit). Does nothing if the
/// process already runs as that user.
pub fn drop_privileges(user: &str, keep: &[caps::Capability]) -> Result<(), DropError> {
    let (name, uid, gid) = lookup(user)?;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == uid {
        return Ok(());
    }
    let fail = |what| DropError::Switch(user.into(), what, std::io::Error::last_os_error());
    let keep: caps::CapsHashSet = keep.iter().copied().collect();
    // SAFETY: prctl with integer arguments; PR_SET_KEEPCAPS keeps this thread's permitted
    // capabilities across setuid (cut down to `keep` below).
    if !keep.is_empty() && unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(fail("prctl(PR_SET_KEEPCAPS)"));
    }
    // Groups first (they need the privilege that setuid gives up), the user last.
    // SAFETY: `name` is NUL-terminated; initgroups reads the group database.
    if unsafe { libc::initgroups(name.as_ptr(), gid) } != 0 {
        return Err(fail("initgroups"));
    }
    // SAFETY: plain system calls on integers.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(fail("setuid"));
    }
    if !keep.is_empty() {
        let set = |which| {
            caps::set(None, which, &keep)
                .map_err(|e| DropError::Switch(user.into(), "keeping capabilities", std::io::Error::other(e)))
        };
        set(caps::CapSet::Permitted)?;
        set(caps::CapSet::Effective)?;
        // SAFETY: as above, turning the flag off again.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    }
    // Root must not be reachable again.
    // SAFETY: as above; this call must fail.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(DropError::Switch(user.into(), "setuid(0) still succeeds", std::io::Error::other("not dropped")));
    }
    Ok(())
}

/// Gives the data directory and what is directly in it (snapshots, journals, the lock, the
/// secondaries' refresh stamps) to `user` and its group, before the switch: what the
/// start-up wrote as root — a journal begun because a zone file changed while the server
/// was stopped, a first snapshot — must stay writable by the server, or every later reload
/// of that zone fails. Entries that are the user's already are left alone; symbolic links
/// are not followed. Returns how many changed owner.
pub fn give_data_dir(dir: &std::path::Path, user: &str) -> Result<usize, DropError> {
    use std::os::unix::fs::MetadataExt;
    let (_, uid, gid) = lookup(user)?;
    let fail = |what, e| DropError::Switch(user.into(), what, e);
    let mut changed = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| fail("reading the data directory", e))?;
    for path in std::iter::once(Ok(dir.to_path_buf())).chain(entries.map(|e| e.map(|e| e.path()))) {
        let path = path.map_err(|e| fail("reading the data directory", e))?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail("reading the data directory", e))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| fail("giving it the data directory", e))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// The user's name (for initgroups), uid and primary gid.
fn lookup(user: &str) -> Result<(CString, libc::uid_t, libc::gid_t), DropError> {
    let name = CString::new(user).map_err(|_| DropError::NoUser(user.into()))?;
    let mut pw: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `name` is NUL-terminated, `pw` and
    // `found` are ours, `buf` is writable for its length.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(DropError::Lookup(user.into(), std::io::Error::from_raw_os_error(rc)));
    }
    if found.is_null() {
        return Err(DropError::NoUser(user.into()));
    }
    Ok((name, pw.pw_uid, pw.pw_gid))
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: `passwd` is a plain C struct of integers and pointers, for which all zeroes
    // is a valid (empty) value; getpwnam_r fills it.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The datagram arrives as sent, at a path socket and at an abstract one.
    #[test]
    fn notify_reaches_the_socket() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nsxdp-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn an_unknown_user_is_an_error() {
        assert!(matches!(drop_privileges("no-such-user-nsxdp-test", &[]), Err(DropError::NoUser(_))));
    }
}
