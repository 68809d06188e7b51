//! Helpers for the unit tests' mutation runs (built only for `cargo test`): a seeded
//! generator, edits of a valid input of the kind damaged or hostile bytes carry, and a
//! record of the largest allocation a piece of code makes on this thread, so that a test can
//! tell that no hostile count sized an allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// xorshift64: deterministic, so a failure is reproduced by the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Applies one to four random edits to `b`: a byte set, a bit flipped, the end cut off, a
/// byte inserted or removed, a 16- or 32-bit field set to an extreme (0, 1, all ones, the
/// top bit: counts and lengths), a span copied over another place, four random bytes
/// appended. Positions below `from` are left alone (a header the test keeps).
pub fn mutate(rng: &mut Rng, b: &mut Vec<u8>, from: usize) {
    for _ in 0..1 + rng.below(4) {
        if b.len() <= from {
            b.push(rng.byte());
            continue;
        }
        let at = from + rng.below(b.len() - from);
        match rng.below(9) {
            0 => b[at] = rng.byte(),
            1 | 2 => b[at] ^= 1 << rng.below(8),
            3 => b.truncate(at + rng.below(2)),
            4 => b.insert(at, rng.byte()),
            5 => {
                b.remove(at);
            }
            6 => {
                let extremes: [u32; 6] = [0, 1, 0xffff_ffff, 0x8000_0000, 0xffff, 0x7fff];
                let v = extremes[rng.below(extremes.len())];
                let width = if rng.below(2) == 0 { 2 } else { 4 };
                let bytes = if rng.below(2) == 0 { v.to_be_bytes() } else { v.to_le_bytes() };
                for (i, x) in bytes[4 - width..].iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = *x;
                    }
                }
            }
            7 => {
                let len = 1 + rng.below(16);
                let src = from + rng.below(b.len() - from);
                let span: Vec<u8> = b[src..(src + len).min(b.len())].to_vec();
                for (i, x) in span.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = *x;
                    }
                }
            }
            _ => b.extend_from_slice(&(rng.next() as u32).to_be_bytes()),
        }
    }
}

/// The system allocator, noting on the thread that asked the largest single allocation
/// and the peak of bytes live, while a [`measure`] is under way there.
struct Tracking;

#[global_allocator]
static TRACKING: Tracking = Tracking;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        let live = LIVE.try_with(|l| {
            l.set(l.get() + size as isize);
            l.get()
        });
        if let Ok(live) = live {
            let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
        }
    }
}

fn note_free(size: usize) {
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = LIVE.try_with(|l| l.set(l.get() - size as isize));
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; the bookkeeping
// touches only this thread's const-initialised cells (no allocation, no destructor).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: the caller's pointer, layout and size, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The largest single allocation (or reallocation), in bytes.
    pub largest: usize,
    /// The most bytes allocated and not yet freed at any moment, above what was live
    /// before.
    pub peak: usize,
}

/// Runs `f` and reports the memory it took on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Memory) {
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|o| o.set(true));
    let out = f();
    ON.with(|o| o.set(false));
    let m = Memory { largest: LARGEST.with(Cell::get), peak: PEAK.with(Cell::get).max(0) as usize };
    (out, m)
}

#[test]
fn measure_sees_allocations() {
    let (v, m) = measure(|| vec![0u8; 100_000]);
    assert_eq!(v.len(), 100_000);
    assert_eq!(m.largest, 100_000);
    assert!(m.peak >= 100_000);
    let (_, m) = measure(|| {
        for _ in 0..10 {
            std::hint::black_box(vec![0u8; 1000]);
        }
    });
    assert_eq!((m.largest, m.peak), (1000, 1000));
    let (_, m) = measure(|| 1 + 1);
    assert_eq!(m, Memory { largest: 0, peak: 0 });
}
