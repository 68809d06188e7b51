//! DNS wire format: names, record types and rdata layouts. Views over byte slices; the
//! functions used on the query path do not allocate.

pub mod id;
pub mod name;
pub mod rdata;
