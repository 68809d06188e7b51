//! The few bpf(2) commands aya 0.13 does not offer for a program we did not load:
//! an fd from a program id, the program's name, and `BPF_PROG_TEST_RUN`.
//!
//! `union bpf_attr` is built as a zeroed, 8-aligned byte array with each command's fields
//! written at their offsets from linux/bpf.h (stable UAPI).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Enough for every field used here; the kernel reads only what the command needs and
/// checks that anything it does not know is zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(&mut self, at: usize, v: u32) -> &mut Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(&mut self, at: usize, v: u64) -> &mut Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn get_u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable buffer of the size passed; any pointers written
    // into it by the callers point at live buffers of the lengths written beside them.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An fd for the loaded program with id `id` (needs CAP_SYS_ADMIN).
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, id); // prog_id
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The program's name as the kernel keeps it (at most 15 bytes, from its ELF symbol).
pub fn prog_name(fd: BorrowedFd<'_>) -> io::Result<String> {
    // struct bpf_prog_info up to and including `name` (offset 64, 16 bytes).
    const NAME_AT: usize = 64;
    let mut info = [0u64; (NAME_AT + 16) / 8];
    let mut attr = Attr::new();
    attr.u32(0, fd.as_raw_fd() as u32) // bpf_fd
        .u32(4, std::mem::size_of_val(&info) as u32) // info_len
        .u64(8, info.as_mut_ptr() as u64); // info
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name = &bytes[NAME_AT..NAME_AT + 16];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Runs XDP program `fd` once over `frame` (as if received on queue 0 of the loopback
/// device of the caller's network namespace) and returns its action.
pub fn test_run_xdp(fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    let mut attr = Attr::new();
    attr.u32(0, fd.as_raw_fd() as u32) // prog_fd
        .u32(8, frame.len() as u32) // data_size_in
        .u64(16, frame.as_ptr() as u64) // data_in (only read by the kernel)
        .u32(32, 1); // repeat
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.get_u32(4)) // retval
}
