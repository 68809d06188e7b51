//! A 12-octet header may claim 65,535 records in each section. The readers of requests on
//! the control side (`xfr::parse_request`, TSIG's `locate` and `verify_request`, which walk
//! every record) must not reserve memory for what the header claims, only for what the
//! message's length can hold: a record takes at least 11 octets. Measured with an
//! allocator that notes the largest single allocation made while the readers run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use nsxdp::xfr::{self, tsig, RequestError};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    LARGEST.load(Ordering::Relaxed)
}

#[test]
fn a_header_that_claims_every_record_reserves_nothing_for_them() {
    // SOA example.com, then an OPT: 40 octets. The header then claims 3 x 65,535 records.
    let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    m.extend_from_slice(b"\x07example\x03com\x00\x00\x06\x00\x01");
    m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    // The same message, longer by octets that look like records of the root (11 octets
    // each, all zero): a walk goes far before it fails.
    let mut long = m.clone();
    long.extend_from_slice(&[0u8; 11 * 1000]);
    for msg in [&m, &long] {
        let n = largest_allocation(|| {
            assert!(matches!(xfr::parse_request(msg), Err(RequestError::Malformed(_))));
            assert!(tsig::locate(msg).is_err());
            assert!(tsig::verify_request(msg, &[], 0).is_err());
        });
        // What the length allows (at most len / 11 records of a few dozen octets each),
        // not 196,605 records.
        let allowed = msg.len() / 11 * 96;
        assert!(n <= allowed.max(4096), "{} octets of message: an allocation of {n} octets", msg.len());
    }
}
