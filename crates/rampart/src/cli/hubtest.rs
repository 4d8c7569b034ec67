//! `rampart hubtest run`.

use std::path::Path;
use std::process::ExitCode;

use ::hubtest::Half;
use anyhow::Context;
use hub::Hub;

use super::Output;

pub(crate) fn run(
    hub_dir: &Path,
    tests: &Path,
    names: &[String],
    output: Output,
) -> anyhow::Result<ExitCode> {
    let hub = Hub::open(hub_dir)
        .map_err(anyhow::Error::msg)
        .context("cannot open the hub")?;
    let cases = ::hubtest::list_cases(tests, names).map_err(anyhow::Error::msg)?;
    if cases.is_empty() {
        anyhow::bail!(
            "no test case found in {} (a case is a folder with config.yaml)",
            tests.display()
        );
    }
    let mut results = Vec::with_capacity(cases.len());
    for dir in &cases {
        let r = ::hubtest::run_case(&hub, dir);
        if output == Output::Human {
            let mark = |h: Half| match h {
                Half::Pass => "pass",
                Half::Fail => "FAIL",
                Half::Absent => "-",
            };
            println!(
                "{:<50} parser: {:<5} scenario: {}",
                r.name,
                mark(r.parser),
                mark(r.scenario)
            );
            for f in r.failures.iter().take(5) {
                println!("    {f}");
            }
            if r.failures.len() > 5 {
                println!("    ... and {} more", r.failures.len() - 5);
            }
        }
        results.push(r);
    }
    let failed = results
        .iter()
        .filter(|r| r.parser == Half::Fail || r.scenario == Half::Fail)
        .count();
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        Output::Human | Output::Raw => {
            let asserted = results.iter().filter(|r| r.parser != Half::Absent).count();
            let passed = results.iter().filter(|r| r.parser == Half::Pass).count();
            println!(
                "\n{} cases, {} passed, {failed} failed; parser asserts: {passed}/{asserted} passed",
                results.len(),
                results.len() - failed
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
