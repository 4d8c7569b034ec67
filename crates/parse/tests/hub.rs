//! CrowdSec hub conformance: the parser half of every hub test case that asserts parsers.

use std::path::Path;

use parse::hubtest::{self, Half, Hub};

#[test]
fn hub_parser_asserts_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/crowdsec-hub");
    if !root.is_dir() {
        println!("skipped: ../shared/compat/crowdsec-hub not found (the hub conformance data)");
        return;
    }
    let hub = Hub::open(&root).unwrap();
    let cases = hubtest::list_cases(&root.join("tests"), &[]).unwrap();
    let mut asserted = 0;
    let mut passed = 0;
    let mut failing = Vec::new();
    for dir in &cases {
        let r = hubtest::run_case(&hub, dir);
        match r.parser {
            Half::Absent => continue,
            Half::Pass => passed += 1,
            Half::Fail => {
                let first = r.failures.first().cloned().unwrap_or_default();
                failing.push(format!(
                    "{}: {} ({} failures)",
                    r.name,
                    first,
                    r.failures.len()
                ));
            }
        }
        asserted += 1;
    }
    println!("{passed}/{asserted} hub cases pass their parser.assert");
    for f in &failing {
        println!("  FAIL {f}");
    }
    assert!(
        asserted > 100,
        "only {asserted} cases assert parsers: the walk is broken"
    );
    let rate = passed as f64 / asserted as f64;
    assert!(
        rate >= 0.95,
        "{passed}/{asserted} ({:.1}%) < 95%",
        rate * 100.0
    );
}
