//! Glob patterns: which files match, which directories to scan and watch.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::RecursiveMode;
use regex::Regex;

/// Deepest directory walk for `**` patterns.
const MAX_DEPTH: usize = 32;

pub(crate) struct Globs {
    set: GlobSet,
    roots: Vec<Root>,
    exclude: Vec<Regex>,
}

struct Root {
    /// Literal directory before the first wildcard.
    base: PathBuf,
    /// Path components below `base` (`None`: `**`, any depth).
    depth: Option<usize>,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Globs {
    pub(crate) fn new(patterns: &[String], exclude: &[String]) -> Result<Globs, String> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut builder = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for pattern in patterns {
            let path = Path::new(pattern);
            let abs = if path.is_absolute() {
                path.to_path_buf()
            } else {
                cwd.join(path)
            };
            let text = abs.to_string_lossy().into_owned();
            let glob = GlobBuilder::new(&text)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
            builder.add(glob);
            let comps: Vec<Component<'_>> = abs.components().collect();
            let first_meta = comps
                .iter()
                .position(|c| has_meta(&c.as_os_str().to_string_lossy()));
            let split = first_meta.unwrap_or(comps.len().saturating_sub(1));
            let base: PathBuf = comps[..split].iter().collect();
            let rest = &comps[split..];
            let depth = if rest
                .iter()
                .any(|c| c.as_os_str().to_string_lossy().contains("**"))
            {
                None
            } else {
                Some(rest.len().max(1))
            };
            roots.push(Root { base, depth });
        }
        let set = builder.build().map_err(|e| format!("invalid globs: {e}"))?;
        let exclude = exclude
            .iter()
            .map(|r| Regex::new(r).map_err(|e| format!("invalid exclude_regexps `{r}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Globs {
            set,
            roots,
            exclude,
        })
    }

    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.set.is_match(path) && !self.excluded(path)
    }

    fn excluded(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        self.exclude.iter().any(|r| r.is_match(&text))
    }

    /// Every existing regular file (symlinks followed) that matches, sorted.
    pub(crate) fn scan(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in &self.roots {
            let max = root.depth.unwrap_or(MAX_DEPTH);
            self.walk(&root.base, max, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    fn walk(&self, dir: &Path, depth_left: usize, out: &mut Vec<PathBuf>) {
        if depth_left == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if depth_left > 1 {
                    self.walk(&path, depth_left - 1, out);
                }
            } else if meta.is_file() && self.matches(&path) {
                out.push(path);
            }
        }
    }

    /// Directories to watch: each pattern's literal base (recursively when wildcards span
    /// directories), or its nearest existing ancestor while it does not exist.
    pub(crate) fn watch_targets(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut out: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for root in &self.roots {
            let target = if root.base.is_dir() {
                let mode = if root.depth == Some(1) {
                    RecursiveMode::NonRecursive
                } else {
                    RecursiveMode::Recursive
                };
                (root.base.clone(), mode)
            } else {
                let mut dir = root.base.as_path();
                while !dir.is_dir() {
                    match dir.parent() {
                        Some(p) => dir = p,
                        None => break,
                    }
                }
                (dir.to_path_buf(), RecursiveMode::NonRecursive)
            };
            if let Some(existing) = out.iter_mut().find(|(p, _)| *p == target.0) {
                if target.1 == RecursiveMode::Recursive {
                    existing.1 = RecursiveMode::Recursive;
                }
            } else {
                out.push(target);
            }
        }
        out
    }

    /// Existing base directories (for the filesystem-type check).
    pub(crate) fn bases(&self) -> Vec<PathBuf> {
        self.watch_targets().into_iter().map(|(p, _)| p).collect()
    }
}

/// Network filesystems, where inotify misses writes made by other hosts.
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "fuse.sshfs",
    "lustre",
    "afs",
    "davfs",
    "fuse.s3fs",
    "fuse.rclone",
    "gpfs",
    "ocfs2",
    "virtiofs",
];

/// The filesystem type of `path` when it is a network filesystem, from `/proc/self/mounts`.
pub(crate) fn network_fs(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(mnt), Some(fstype)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ").replace("\\011", "\t");
        if path.starts_with(&mnt) {
            let len = Path::new(&mnt).components().count();
            if best.as_ref().is_none_or(|(l, _)| len >= *l) {
                best = Some((len, fstype.to_string()));
            }
        }
    }
    best.map(|(_, t)| t)
        .filter(|t| NETWORK_FS.contains(&t.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_depths() {
        let g = Globs::new(
            &[
                "/var/log/nginx/*.log".into(),
                "/srv/**/x.log".into(),
                "/a/b.log".into(),
            ],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.roots[0].base, PathBuf::from("/var/log/nginx"));
        assert_eq!(g.roots[0].depth, Some(1));
        assert_eq!(g.roots[1].base, PathBuf::from("/srv"));
        assert_eq!(g.roots[1].depth, None);
        assert_eq!(g.roots[2].base, PathBuf::from("/a"));
        assert_eq!(g.roots[2].depth, Some(1));
        assert!(g.matches(Path::new("/var/log/nginx/access.log")));
        assert!(!g.matches(Path::new("/var/log/nginx/sub/access.log")));
        assert!(g.matches(Path::new("/srv/a/b/x.log")));
    }
}
