//! The node index must never change what parsing produces: the hot path (`parse`, indexed) and
//! the recording path (`parse_dumped`, every node) give the same event.

#![allow(clippy::unwrap_used)]

use parse::{Ctx, Dump, Event, ExpectMode, Line, ParserFile, Parsers};

fn parsers(files: &[(&str, &str)]) -> (tempfile::TempDir, Parsers) {
    let dir = tempfile::tempdir().unwrap();
    let mut list = Vec::new();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        list.push(ParserFile::from_hub_path(&p).unwrap());
    }
    let ctx = Ctx::new(None, None).unwrap();
    let p = Parsers::load(ctx, &list).unwrap();
    (dir, p)
}

fn event(raw: &str, kind: &str) -> Event {
    let line = Line {
        raw: raw.into(),
        labels: [("type".to_owned(), kind.to_owned())].into_iter().collect(),
        process: true,
        ..Line::default()
    };
    Event::from_line(line, ExpectMode::Live)
}

#[test]
fn indexed_and_full_walks_agree_even_when_a_node_rewrites_the_program() {
    let (_d, p) = parsers(&[
        (
            "parsers/s00-raw/t/raw.yaml",
            "name: t/raw\ndescription: d\nfilter: \"evt.Line.Labels.type == 'demo'\"\nonsuccess: next_stage\ngrok:\n  pattern: '^%{WORD:program} %{GREEDYDATA:message}$'\n  apply_on: Line.Raw\n",
        ),
        (
            "parsers/s01-parse/t/a-rename.yaml",
            "name: t/rename\ndescription: d\nfilter: \"evt.Parsed.program == 'old'\"\nstatics:\n  - parsed: program\n    value: new\n",
        ),
        (
            "parsers/s01-parse/t/b-new.yaml",
            "name: t/new\ndescription: d\nfilter: \"evt.Parsed.program == 'new'\"\nonsuccess: next_stage\nstatics:\n  - meta: seen_by\n    value: new-parser\n",
        ),
        (
            "parsers/s01-parse/t/c-other.yaml",
            "name: t/other\ndescription: d\nfilter: \"evt.Parsed.program in ['x', 'y']\"\nonsuccess: next_stage\nstatics:\n  - meta: seen_by\n    value: other\n",
        ),
    ]);
    for raw in ["old hello", "new hello", "x hi", "zzz nothing"] {
        let mut fast = event(raw, "demo");
        let mut slow = event(raw, "demo");
        let a = p.parse(&mut fast);
        let b = p.parse_dumped(&mut slow, &mut Dump::new());
        assert_eq!(a, b, "{raw}");
        assert_eq!(fast.meta, slow.meta, "{raw}");
        assert_eq!(fast.parsed, slow.parsed, "{raw}");
    }
    let mut e = event("old hello", "demo");
    assert!(p.parse(&mut e));
    assert_eq!(
        e.meta.get("seen_by").map(String::as_str),
        Some("new-parser")
    );
}
