//! How admin commands print: aligned tables for people (bold headers only on a terminal), JSON
//! with cscli's field names, and `raw` CSV for scripts.

use std::io::IsTerminal;

use comfy_table::{Cell, ContentArrangement, Table, presets};

/// Output format, as cscli's `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Tables and text for people.
    Human,
    /// JSON for scripts.
    Json,
    /// CSV with a header line, for scripts and spreadsheets.
    Raw,
}

/// Prints rows under headers in the chosen format (`Json` is the caller's business: it has
/// richer data than cells).
pub(crate) fn rows(output: Output, headers: &[&str], rows: &[Vec<String>]) {
    match output {
        Output::Raw => print!("{}", csv_text(headers, rows)),
        Output::Human | Output::Json => println!("{}", table_text(headers, rows)),
    }
}

/// The table as text: no colours or bold when stdout is not a terminal (or NO_COLOR is set), so
/// pipes and snapshots see plain text.
pub(crate) fn table_text(headers: &[&str], rows: &[Vec<String>]) -> String {
    let styled = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut t = Table::new();
    // cscli's ASCII grid, so habits (and `grep`/`awk` one-liners over it) carry over.
    t.load_style(presets::ASCII_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if styled {
        t.set_header(
            headers
                .iter()
                .map(|h| Cell::new(h).add_attribute(comfy_table::Attribute::Bold)),
        );
    } else {
        t.set_header(headers.iter().map(Cell::new));
        t.force_no_tty();
    }
    for r in rows {
        t.add_row(r.iter().map(Cell::new));
    }
    if rows.is_empty() {
        return format!("{t}\n(none)");
    }
    t.to_string()
}

/// CSV with a header line.
pub(crate) fn csv_text(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(headers);
    for r in rows {
        let _ = w.write_record(r);
    }
    let _ = w.flush();
    String::from_utf8_lossy(&w.into_inner().unwrap_or_default()).into_owned()
}

/// Pretty JSON on stdout.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
