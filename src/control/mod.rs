//! The control thread: everything that is not the UDP fast path. Today that is DNS over TCP
//! and the messages the AF_XDP loops hand over (`handoff`, on a thread of its own for now);
//! zone transfers, NOTIFY, the secondary timers and the control socket come here next. It
//! owns sockets and timers and wires them to the pure parts (`answer`, later `xfr`).

pub mod ctl;
pub mod handoff;
pub mod notify;
pub mod secondary;
pub mod tcp;
pub mod transfer;
pub mod zones;
