//! The control thread: everything that is not the UDP fast path. Today that is DNS over TCP
//! and the messages the AF_XDP loops hand over (`handoff`, on a thread of its own for now);
//! zone transfers, NOTIFY, the secondary timers and the control socket come here next. It
//! owns sockets and timers and wires them to the pure parts (`answer`, later `xfr`).

pub mod ctl;
pub mod dispatch;
pub mod dynamic;
pub mod handoff;
pub mod notify;
pub mod schedule;
pub mod secondary;
pub mod tcp;
pub mod tls;
pub mod transfer;
pub mod zones;

/// Gives the heap pages that parsing zones, building snapshots or serving a crowd of TCP
/// clients freed back to the kernel. mimalloc (the binary's allocator) keeps freed pages
/// for reuse and returns them only when the thread that freed them allocates again after a
/// delay; the control side may not allocate again for hours, and a large zone's build
/// leaves tens of MiB resident (a 200,000-record zone: about 70 MiB).
pub fn release_freed_memory() {
    // SAFETY: mi_collect has no preconditions: any thread may call it at any time. Where the
    // binary has another allocator (the tests), it tidies mimalloc's own unused heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
