//! Memory: what a parsed selector keeps on the heap, and that matching
//! allocates nothing. Counted by a global allocator that tallies the
//! current thread's allocations.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// A global allocator can only be written with `unsafe`: it forwards to the
// system allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tidings_selector::Selector;

struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Number of allocations made by this thread.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.with(|live| live.set(live.get() + size(layout)));
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.with(|live| live.set(live.get() - size(layout)));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = isize::try_from(new_size).unwrap_or(isize::MAX) - size(layout);
        LIVE.with(|live| live.set(live.get() + grown));
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Parses `source`; returns the selector and the heap bytes it holds.
fn parse_counting(source: &str) -> (Selector, isize) {
    let before = LIVE.with(Cell::get);
    let selector = Selector::parse(source);
    (selector, LIVE.with(Cell::get) - before)
}

fn allocations_of(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn compiled_selectors_are_small() {
    for (source, limit) in [
        ("https://example.com/books/1", 128),
        ("https://example.com/books/{id}", 192),
        (
            "https://example.com/books/{id}/reviews/{review}{?page,size}",
            320,
        ),
        (
            "https://example.com{/a,b,c*}{.format}{?q,page}{&sort}{#frag}",
            384,
        ),
    ] {
        let (selector, bytes) = parse_counting(source);
        assert!(bytes <= limit, "{source:?} keeps {bytes} bytes");
        assert!(bytes >= isize::try_from(source.len()).unwrap());
        drop(selector);
    }
}

#[test]
fn matching_allocates_nothing() {
    let cases = [
        ("*", "https://example.com/books/1"),
        ("https://example.com/books/1", "https://example.com/books/1"),
        (
            "https://example.com/books/{id}",
            "https://example.com/books/1",
        ),
        (
            "https://example.com/books/{id}",
            "https://example.com/books/1/x",
        ),
        (
            "https://example.com/books{?page,size}",
            "https://example.com/books?page=1",
        ),
        // The general matcher, on the stack.
        ("{+path}/here/{x}", "/a/b/here/c"),
        ("{+path}/here/{x}", "/a/b/here/c/d"),
        ("{/a}{/b}{.c}", "/1/2.json"),
    ];
    for (source, topic) in cases {
        let selector = Selector::parse(source);
        let mut result = false;
        let count = allocations_of(|| result = selector.matches(topic));
        assert_eq!(count, 0, "{source:?} against {topic:?}");
        assert_eq!(result, !topic.ends_with("/d") && !topic.ends_with("/x"));
    }
}
