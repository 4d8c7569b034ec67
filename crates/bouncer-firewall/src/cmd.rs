//! Running the firewall tools (`nft`, `ipset`, `iptables*`): one process per batch, the batch
//! written to its standard input while its output is collected.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A firewall tool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FwError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// It ran and refused the batch.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// Its output was not what it promises.
    #[error("{command}: unexpected output: {reason}")]
    Output { command: String, reason: String },
}

/// Finds `name` in `PATH`, then in the sbin directories `PATH` often lacks for non-root users.
pub(crate) fn find(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Writes a batch to a tool's standard input.
pub(crate) type Feed<'a> = &'a mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>;

/// Runs `program args`, feeding `input` (if any) to its stdin; returns stdout.
pub(crate) fn run(
    program: &Path,
    args: &[&str],
    input: Option<Feed<'_>>,
) -> Result<String, FwError> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FwError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // The batch is written while the tool's output is drained: a tool that reports many errors
    // must not block on a full stderr pipe while this side blocks on a full stdin pipe.
    let (write_res, out, err) = std::thread::scope(|s| {
        let out = s.spawn(move || {
            let mut buf = String::new();
            if let Some(o) = stdout.as_mut() {
                let _ = o.read_to_string(&mut buf);
            }
            buf
        });
        let err = s.spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let write_res = match (input, stdin) {
            (Some(f), Some(pipe)) => {
                let mut w = BufWriter::with_capacity(1 << 16, pipe);
                f(&mut w).and_then(|()| w.flush())
            }
            _ => Ok(()),
        };
        (
            write_res,
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        )
    });
    let status = child.wait().map_err(|source| FwError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&err);
    if !status.success() {
        return Err(FwError::Failed {
            command,
            status: status.to_string(),
            stderr: tail(&stderr),
        });
    }
    if let Err(e) = write_res {
        return Err(FwError::Failed {
            command,
            status: format!("writing its input: {e}"),
            stderr: tail(&stderr),
        });
    }
    Ok(out)
}

/// The last lines of an error output (a failed million-element batch can echo a lot).
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim().lines().collect();
    let from = lines.len().saturating_sub(6);
    let mut t = lines[from..].join(" | ");
    if t.len() > 2000 {
        let mut cut = 2000;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_stdin_and_reports_failures() {
        let cat = find("cat");
        let out = run(
            &cat,
            &[],
            Some(&mut |w: &mut dyn Write| w.write_all(b"hello\n")),
        );
        assert_eq!(out.ok().as_deref(), Some("hello\n"));
        let sh = find("sh");
        let e = run(&sh, &["-c", "echo nope >&2; exit 3"], None);
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("nope") && msg.contains('3'), "{msg}");
        let e = run(Path::new("/nonexistent/tool"), &[], None);
        assert!(matches!(e, Err(FwError::Spawn { .. })));
    }
}
