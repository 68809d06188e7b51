//! The secondary role as pure protocol logic, free of I/O: when to check the primaries
//! ([`timers`]), and what to send them and accept back ([`xfrin`]). The control side
//! (`control::secondary`) moves the bytes and applies what arrives.

pub mod timers;
pub mod xfrin;

#[cfg(test)]
mod tests;
