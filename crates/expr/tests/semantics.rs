//! Data-driven semantics: every `cases/*.txt` line is `EXPRESSION => EXPECTED`, where EXPECTED is
//! the value's debug rendering, `error: TEXT` (a run-time error containing TEXT) or
//! `compile error: TEXT`. All failures are reported together.

use std::path::Path;

use crate::env::{env, sample_event, vars};

fn check_line(line: &str) -> Result<(), String> {
    let Some((src, want)) = line.rsplit_once(" => ") else {
        return Err(format!("malformed case (no ' => '): {line}"));
    };
    let env = env();
    let evt = sample_event();
    let got = match env.compile(src) {
        Err(e) => format!("compile error: {}", e.message),
        Ok(p) => match p.run(&vars(&evt)) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {}", e.message),
        },
    };
    let ok = if let Some(rest) = want.strip_prefix("compile error: ") {
        got.starts_with("compile error: ") && got.contains(rest)
    } else if let Some(rest) = want.strip_prefix("error: ") {
        got.starts_with("error: ") && got.contains(rest)
    } else {
        got == want
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{src}\n    want: {want}\n    got:  {got}"))
    }
}

#[test]
fn semantics_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            count += 1;
            if let Err(e) = check_line(line) {
                failures.push(format!(
                    "{}:{}: {e}",
                    f.file_name().unwrap().to_string_lossy(),
                    i + 1
                ));
            }
        }
    }
    println!("{count} semantics cases, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count > 100, "too few cases found in {}", dir.display());
}

#[test]
fn compile_errors_point_at_the_problem() {
    let e = env()
        .compile("evt.Meta.log_type == 'x' &&\n  evt.Metaa.y == 'z'")
        .unwrap_err();
    assert_eq!((e.line, e.column), (2, 6));
    let shown = e.to_string();
    assert!(shown.contains("type Event has no field Metaa"), "{shown}");
    assert!(shown.contains("  evt.Metaa.y == 'z'\n |      ^"), "{shown}");
}

#[test]
fn helpers_can_write_into_host_maps() {
    let env = env();
    let evt = sample_event();
    let p = env
        .compile(r#"UnmarshalJSON('{"a": {"b": 1}}', evt.Unmarshaled, "j") in ['', nil] && evt.Unmarshaled.j.a.b == 1"#)
        .unwrap();
    assert_eq!(p.run_bool(&vars(&evt)), Ok(true));
}

#[test]
fn long_chains_compile_and_run_within_the_stack() {
    let env = env();
    let evt = sample_event();
    let src = vec!["evt.Meta.service == 'x'"; 300].join(" || ");
    let p = env.compile(&src).unwrap();
    assert_eq!(p.run_bool(&vars(&evt)), Ok(false));
    let src = vec!["1"; 99].join(" + ");
    assert_eq!(
        env.compile(&src).unwrap().run(&vars(&evt)),
        Ok(expr::Value::Int(99))
    );
    assert!(env.compile(&vec!["1"; 200].join(" + ")).is_err());
}
