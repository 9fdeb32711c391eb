//! The hot path allocates nothing: a counting global allocator proves it (a count, not a timing).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, dead_code, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sessionkit_core::TokenState;

#[path = "session/harness.rs"]
mod harness;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn access_token_allocates_nothing_in_any_state() {
    let mut h = harness::Harness::signed_in(harness::policy());
    h.drain();
    let fresh = h.clock.now();
    h.clock.advance(Duration::from_secs(250));
    let renewable = h.clock.now();
    h.clock.advance(Duration::from_secs(3600));
    let dead = h.clock.now();

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut seen = [0usize; 3];
    for _ in 0..10_000 {
        for now in [fresh, renewable, dead] {
            match std::hint::black_box(&h.session).access_token(std::hint::black_box(now)) {
                TokenState::Fresh(_) => seen[0] += 1,
                TokenState::Renewable => seen[1] += 1,
                TokenState::Dead(_) => seen[2] += 1,
            }
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(seen, [10_000; 3], "each state was exercised");
    assert_eq!(after - before, 0, "access_token allocated");

    // The counter itself works: a status snapshot (which clones strings) is counted.
    let status = std::hint::black_box(h.session.status());
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > after, "{status:?}");
}
