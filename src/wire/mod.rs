//! DNS wire format: messages (header, question, record walker, rcodes and opcodes), names,
//! record types and rdata layouts, and serial number arithmetic. Views over byte slices; the
//! functions used on the query path do not allocate.

pub mod message;
pub mod name;
pub mod rdata;
pub mod serial;
