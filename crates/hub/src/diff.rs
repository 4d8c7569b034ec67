//! A line diff in unified format, to show what was edited in a tainted item.

/// Unified diff of `old` → `new` with three lines of context; empty when they are equal.
pub fn unified(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|o| matches!(o, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let mut i = 0;
    while i < ops.len() {
        if matches!(ops[i], Op::Same(..)) {
            i += 1;
            continue;
        }
        // A hunk: from CONTEXT lines before this change to CONTEXT lines after the last change
        // that is at most 2*CONTEXT equal lines away.
        let start = i.saturating_sub(CONTEXT);
        let mut end = i;
        let mut j = i;
        while j < ops.len() {
            if !matches!(ops[j], Op::Same(..)) {
                end = j;
                j += 1;
                continue;
            }
            let run = ops[j..]
                .iter()
                .take_while(|o| matches!(o, Op::Same(..)))
                .count();
            if j + run < ops.len() && run <= 2 * CONTEXT {
                j += run;
            } else {
                break;
            }
        }
        let stop = (end + 1 + CONTEXT).min(ops.len());
        let (mut a0, mut b0) = (None, None);
        let (mut na, mut nb) = (0, 0);
        let mut body = String::new();
        for op in &ops[start..stop] {
            match *op {
                Op::Same(x, y) => {
                    a0.get_or_insert(x);
                    b0.get_or_insert(y);
                    na += 1;
                    nb += 1;
                    body.push_str(&format!(" {}\n", a[x]));
                }
                Op::Del(x, y) => {
                    a0.get_or_insert(x);
                    b0.get_or_insert(y);
                    na += 1;
                    body.push_str(&format!("-{}\n", a[x]));
                }
                Op::Ins(x, y) => {
                    a0.get_or_insert(x);
                    b0.get_or_insert(y);
                    nb += 1;
                    body.push_str(&format!("+{}\n", b[y]));
                }
            }
        }
        let line = |s: Option<usize>, n: usize| match (s, n) {
            (Some(s), 0) => s,
            (Some(s), _) => s + 1,
            (None, _) => 0,
        };
        out.push_str(&format!(
            "@@ -{},{na} +{},{nb} @@\n{body}",
            line(a0, na),
            line(b0, nb)
        ));
        i = stop;
    }
    out
}

/// One step of the edit script; indexes are positions in the old and new text.
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize, usize),
    Del(usize, usize),
    Ins(usize, usize),
}

/// Longest-common-subsequence edit script. Item files are a few hundred lines, so the
/// quadratic table is small; very large inputs fall back to "all removed, all added".
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 25_000_000 {
        let mut ops: Vec<Op> = (0..n).map(|i| Op::Del(i, 0)).collect();
        ops.extend((0..m).map(|j| Op::Ins(n, j)));
        return ops;
    }
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            // Deletions first, as diff(1) prints them.
            ops.push(Op::Del(i, j));
            i += 1;
        } else {
            ops.push(Op::Ins(i, j));
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a", "b", "x\ny\n", "x\ny\n"), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        let d = unified("old", "new", old, new);
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new = old.replace("2\n", "two\n").replace("19\n", "nineteen\n");
        let d = unified("o", "n", &old, &new);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
    }
}
