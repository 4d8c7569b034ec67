//! Verifies the "no heap allocation per match in the steady state" promise by counting
//! allocations around a matching loop.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use grok::{Captures, PatternSet};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_matching_does_not_allocate() {
    let set = PatternSet::new();
    let grok = set
        .compile(r#"%{IPORHOST:ip} - %{USER:user} \[%{HTTPDATE:ts}\] "%{WORD:verb} %{URIPATHPARAM:req} HTTP/%{NUMBER:v}" %{INT:status} %{INT:bytes} %{QS:referrer} %{QS:agent}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let long_agent = "x".repeat(6000);
    let lines = [
        r#"10.0.0.1 - bob [28/Jan/2016:14:19:36 +0300] "GET /a?b=c HTTP/1.1" 200 12 "-" "curl/8""#
            .to_owned(),
        format!(
            r#"10.0.0.2 - - [28/Jan/2016:14:19:36 +0300] "POST /x HTTP/2.0" 404 0 "-" "{long_agent}""#
        ),
        "garbage that does not match".to_owned(),
    ];
    let mut caps = Captures::new();
    // Warm up: caches are created and the visited set grows to the longest line.
    for line in &lines {
        grok.captures(line, &mut caps);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut total = 0;
    for _ in 0..100 {
        for line in &lines {
            if grok.captures(line, &mut caps) {
                total += grok
                    .fields(line, &caps)
                    .map(|(_, v)| v.len())
                    .sum::<usize>();
            }
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(total > 0);
    assert_eq!(
        after - before,
        0,
        "allocations during 300 steady-state matches"
    );
}
