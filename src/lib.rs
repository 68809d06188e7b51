//! nsxdp: an authoritative DNS server. See ARCHITECTURE.md for how the modules fit.

pub mod answer;
pub mod catz;
pub mod config;
pub mod control;
pub mod cookie;
pub mod dataplane;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod rrl;
pub mod secondary;
pub mod service;
pub mod snapshot;
#[cfg(test)]
mod testing;
pub mod wire;
pub mod xfr;
pub mod zone;
