//! Compiles arbitrary UTF-8, then runs it on a fixed event: errors are fine, panics are not.
//! Inputs are kept short, and numbers in them below 100000, to bound the work one expression can
//! ask for (ranges, `repeat`, `Sprintf` widths): run with `-fork=1 -ignore_timeouts=1
//! -ignore_ooms=1` so that what still gets through (products of numbers) does not stop the run.

#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 || data.windows(6).any(|w| w.iter().all(u8::is_ascii_digit)) {
        return;
    }
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    common::note_input(data);
    let Ok(program) = common::env().compile(src) else {
        return;
    };
    // A fresh event per input: helpers such as `UnmarshalJSON` write into it.
    let evt = common::event();
    let vars = common::vars(&evt);
    if let Ok(v) = program.run(&vars) {
        // Exercise rendering of whatever came out.
        let _ = format!("{v} {v:?}");
        let _ = expr::to_json(&v);
    }
    let _ = program.run_bool(&vars);
});
