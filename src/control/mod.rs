//! The control thread: everything that is not the UDP fast path. Today that is DNS over TCP;
//! zone transfers, NOTIFY, the secondary timers and the control socket come here next. It
//! owns sockets and timers and wires them to the pure parts (`answer`, later `xfr`).

pub mod ctl;
pub mod notify;
pub mod tcp;
pub mod transfer;
pub mod zones;
