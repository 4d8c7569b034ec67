//! Arbitrary UTF-8 compiled against the CrowdSec environment: compile errors are fine, panics are
//! not. Pure calls with constant arguments run while compiling, so inputs are kept short; run
//! with `-fork=1 -ignore_timeouts=1 -ignore_ooms=1` so that a constant expression asking for
//! gigabytes (`Sprintf('%999999d', 1..9999)`, as Go would) does not stop the run.

#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() > 512 {
        return;
    }
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    common::note_input(data);
    let _ = common::env().compile(src);
});
