//! The secondary role as pure protocol logic, free of I/O: when to check the primaries
//! ([`timers`]), what a check sends next and what the answers mean ([`check`]), and the
//! requests and the checks on each response message ([`xfrin`]). The control side
//! (`control::secondary`) moves the bytes and applies what arrives.

pub mod check;
pub mod timers;
pub mod xfrin;

#[cfg(test)]
mod tests;
