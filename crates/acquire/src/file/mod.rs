//! The file datasource: globs, rotation, truncation, compressed files, persisted positions.
//!
//! Each file source runs on its own thread with blocking reads; lines go out through the
//! bounded channel (the thread waits when it is full). inotify events (directories of the
//! patterns) only wake the thread up: every pass re-checks each open file with `stat`, so a
//! missed event costs latency, never a line. Without inotify the same passes run on a timer.
//!
//! A *stream* is one file content, identified by (device, inode) and a fingerprint of its first
//! bytes; its position is the end of the last processed line. Streams outlive the open file:
//! after copytruncate the truncated content stays known by fingerprint, so when its copy
//! (`app.log.1`, or `app.log.1.gz`) is matched by the globs it is read from where the original
//! stopped, and lines lost by the truncation are recovered without reading any twice.

mod fingerprint;
mod globs;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Line;
use crate::ack::{Ack, Tracker};
use crate::config::{FileSpec, Mode};
use crate::error::AcquireError;
use crate::split::{Piece, Splitter, to_text};
use crate::state::{FileEntry, Persist, SourceState};

use fingerprint::{Fingerprint, MIN_CONTENT_FP, read_gz_prefix, read_prefix};
use globs::{Globs, network_fs};

/// Stat-polling period without inotify.
const POLL_TICK: Duration = Duration::from_secs(1);
/// Safety-net pass period with inotify (symlink targets, missed events).
const SAFETY_TICK: Duration = Duration::from_secs(2);
/// A rotated-away file is closed after it has been at its end, unchanged, for this long.
const ROTATE_GRACE: Duration = Duration::from_secs(5);
/// Bytes read per system call.
const CHUNK: usize = 64 * 1024;
/// Chunks read from one file per pass before the next file gets its turn.
const BUDGET: usize = 16;
/// Streams whose file has not been seen for this long are forgotten.
const FORGET_AFTER_DAYS: i64 = 7;
/// Most streams remembered per source.
const MAX_STREAMS: usize = 10_000;

/// Messages to a file source thread.
pub(crate) enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// What a started file source hands back to the acquisition.
pub(crate) struct Spawned {
    pub(crate) thread: std::thread::JoinHandle<()>,
    /// Resolves once the files present at start have been looked at (tail mode).
    pub(crate) ready: Option<tokio::sync::oneshot::Receiver<()>>,
    pub(crate) wake: SyncSender<Msg>,
    pub(crate) persist: Option<Arc<dyn Persist>>,
}

/// Sending side shared by the reading code.
pub(crate) struct Out {
    pub(crate) tx: mpsc::Sender<Line>,
    pub(crate) cancel: CancellationToken,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) labels: Arc<HashMap<String, String>>,
}

/// The consumer is gone or the acquisition is stopping.
#[derive(Debug)]
pub(crate) struct Stopped;

impl Out {
    fn send(&self, raw: String, src: &str, ack: Ack) -> Result<(), Stopped> {
        let line = Line {
            raw,
            src: src.to_string(),
            module: "file",
            labels: self.labels.clone(),
            time: Utc::now(),
            ack,
        };
        match self.tx.try_send(line) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stopped),
            Err(mpsc::error::TrySendError::Full(line)) => {
                let (tx, cancel) = (&self.tx, &self.cancel);
                self.rt.block_on(async move {
                    tokio::select! {
                        r = tx.send(line) => r.map_err(|_| Stopped),
                        () = cancel.cancelled() => Err(Stopped),
                    }
                })
            }
        }
    }
}

pub(crate) struct StartArgs {
    pub(crate) spec: FileSpec,
    pub(crate) mode: Mode,
    pub(crate) key: String,
    pub(crate) origin: String,
    pub(crate) prior: Option<SourceState>,
    pub(crate) dirty: Arc<AtomicBool>,
    pub(crate) out: Out,
}

/// Starts a file source thread.
pub(crate) fn spawn(args: StartArgs) -> Result<Spawned, AcquireError> {
    let globs =
        Globs::new(&args.spec.filenames, &args.spec.exclude_regexps).map_err(|message| {
            AcquireError::Source {
                origin: args.origin.clone(),
                message,
            }
        })?;
    let (wake, rx) = std::sync::mpsc::sync_channel::<Msg>(1024);
    let name = format!(
        "acquire-file-{}",
        args.key.chars().take(40).collect::<String>()
    );
    if args.mode == Mode::Cat {
        let max = args.spec.max_buffer_size;
        let out = args.out;
        let origin = args.origin;
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run_cat(&globs, max, &out, &origin))
            .map_err(|e| AcquireError::Source {
                origin: String::from("file source"),
                message: format!("cannot start a thread: {e}"),
            })?;
        return Ok(Spawned {
            thread,
            ready: None,
            wake,
            persist: None,
        });
    }
    let persist = Arc::new(FilePersist {
        key: args.key.clone(),
        published: Mutex::new(Vec::new()),
    });
    let mut poll = args.spec.poll_without_inotify.unwrap_or(false);
    if args.spec.poll_without_inotify.is_none() && !args.spec.force_inotify {
        for base in globs.bases() {
            if let Some(fstype) = network_fs(&base) {
                tracing::info!(
                    source = %args.origin,
                    dir = %base.display(),
                    "{fstype} is a network filesystem: polling instead of inotify"
                );
                poll = true;
            }
        }
    }
    let first_start = args.prior.is_none();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut tail = Tail {
        ready: Some(ready_tx),
        origin: args.origin,
        globs,
        max_line: args.spec.max_buffer_size,
        streams: HashMap::new(),
        next_id: 0,
        tailers: Vec::new(),
        parked: Vec::new(),
        ignored: HashMap::new(),
        gz_wait: HashMap::new(),
        gz_queue: Vec::new(),
        warned: HashSet::new(),
        first_start,
        out: args.out,
        persist: persist.clone(),
        changed: true,
        dirty: args.dirty,
        rx,
        events_tx: wake.clone(),
        overflow: Arc::new(AtomicBool::new(false)),
        watcher: None,
        watched: HashMap::new(),
        poll,
        discovery_every: args.spec.discovery_poll_interval,
        want_discovery: false,
        chunk: vec![0u8; CHUNK],
    };
    if let Some(prior) = &args.prior {
        tail.load(prior);
    }
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || tail.run())
        .map_err(|e| AcquireError::Source {
            origin: String::from("file source"),
            message: format!("cannot start a thread: {e}"),
        })?;
    Ok(Spawned {
        thread,
        ready: Some(ready),
        wake,
        persist: Some(persist),
    })
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// (device, inode).
type FileKey = (u64, u64);

fn key_of(meta: &std::fs::Metadata) -> FileKey {
    (meta.dev(), meta.ino())
}

/// Reads every matching file once, from the start (`mode: cat`, replays).
fn run_cat(globs: &Globs, max_line: usize, out: &Out, origin: &str) {
    let paths = globs.scan();
    if paths.is_empty() {
        tracing::warn!(source = %origin, "no file matches the patterns");
    }
    let mut chunk = vec![0u8; CHUNK];
    for path in paths {
        let src = path.to_string_lossy().into_owned();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = %src, "cannot open: {e}");
                continue;
            }
        };
        let mut split = Splitter::new(0, max_line);
        let mut reader: Box<dyn std::io::Read> = if is_gz(&path) {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                file,
            )))
        } else {
            Box::new(file)
        };
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    split.feed(&chunk[..n]);
                    while let Some(piece) = split.next_piece() {
                        if send_untracked(out, &src, piece).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(file = %src, "read error: {e}");
                    break;
                }
            }
        }
        if let Some(piece) = split.finish()
            && send_untracked(out, &src, piece).is_err()
        {
            return;
        }
    }
}

fn send_untracked(out: &Out, src: &str, piece: Piece) -> Result<(), Stopped> {
    match piece {
        Piece::Line { bytes, cut, .. } => {
            if cut {
                tracing::warn!(file = %src, "line longer than max_buffer_size, cut");
            }
            out.send(to_text(bytes), src, Ack::noop())
        }
        Piece::Skip { .. } => Ok(()),
    }
}

/// One file content.
struct Stream {
    path: PathBuf,
    dev_ino: Option<FileKey>,
    fp: Fingerprint,
    /// The fingerprinted bytes, while known (not after a restart).
    head: Option<Vec<u8>>,
    /// End of the last line handed out.
    read_off: u64,
    tracker: Arc<Tracker<u64>>,
    /// A compressed file read to its end.
    done: bool,
    /// An open file is reading this stream.
    attached: bool,
    seen: DateTime<Utc>,
    warned_cut: bool,
}

/// An open file being followed.
struct Tailer {
    path: PathBuf,
    file: File,
    key: FileKey,
    stream: u64,
    split: Splitter,
    last_len: u64,
    last_mtime: Option<SystemTime>,
    last_growth: Instant,
    rotated_at: Option<Instant>,
    /// Found outside the globs at start (rotated away while Rampart was stopped): read to the
    /// end, then closed.
    orphan: bool,
}

/// A file whose content is a copy of a stream that is still being read from another file.
struct Parked {
    path: PathBuf,
    file: File,
    key: FileKey,
    stream: u64,
    len: u64,
}

/// What a file's identity matched.
enum Found {
    /// Same inode and fingerprint: the same file.
    Inode(u64),
    /// Another inode with the same first bytes: a copy (copytruncate, compression).
    Content(u64),
    /// Nothing known.
    New,
}

/// A compressed file to read in the next pass.
struct GzJob {
    id: u64,
    path: PathBuf,
    key: FileKey,
}

struct Ignored {
    path: PathBuf,
    len: u64,
    mtime: Option<SystemTime>,
    stream: Option<u64>,
}

struct Tail {
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    origin: String,
    globs: Globs,
    max_line: usize,
    streams: HashMap<u64, Stream>,
    next_id: u64,
    tailers: Vec<Tailer>,
    parked: Vec<Parked>,
    /// Files known and not to be read unless they change: compressed files read to the end,
    /// copies of content already read.
    ignored: HashMap<FileKey, Ignored>,
    /// Compressed files that could not be decompressed yet (still being written), or are
    /// queued, by size.
    gz_wait: HashMap<FileKey, (u64, PathBuf)>,
    gz_queue: Vec<GzJob>,
    warned: HashSet<PathBuf>,
    first_start: bool,
    out: Out,
    persist: Arc<FilePersist>,
    changed: bool,
    dirty: Arc<AtomicBool>,
    rx: Receiver<Msg>,
    events_tx: SyncSender<Msg>,
    overflow: Arc<AtomicBool>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashMap<PathBuf, RecursiveMode>,
    poll: bool,
    discovery_every: Duration,
    want_discovery: bool,
    chunk: Vec<u8>,
}

/// What a batch of filesystem events asks for: a full re-scan (names changed), or a look at
/// the paths written to (a file waiting for content, a rotated name's new file).
#[derive(Default)]
struct Wanted {
    discover: bool,
    paths: HashSet<PathBuf>,
}

impl Wanted {
    fn note(&mut self, event: notify::Result<notify::Event>, globs: &Globs) {
        match event {
            Err(_) => self.discover = true,
            Ok(ev) => {
                if ev.need_rescan()
                    || !matches!(
                        ev.kind,
                        EventKind::Access(_)
                            | EventKind::Modify(notify::event::ModifyKind::Data(_))
                            | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    )
                {
                    self.discover = true;
                }
                if !self.discover {
                    self.paths
                        .extend(ev.paths.into_iter().filter(|p| globs.matches(p)));
                }
            }
        }
    }
}

fn path_has_inode(path: &Path, key: FileKey) -> bool {
    std::fs::metadata(path).is_ok_and(|m| key_of(&m) == key)
}

/// Where to start in a file first seen at the first start of a tail source: its end, or the
/// start of its unterminated last line.
fn end_offset(file: &File, len: u64) -> u64 {
    let back = len.min(CHUNK as u64);
    let mut buf = vec![0u8; usize::try_from(back).unwrap_or(0)];
    if buf.is_empty() || file.read_exact_at(&mut buf, len - back).is_err() {
        return len;
    }
    if buf.last() == Some(&b'\n') {
        return len;
    }
    match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - back + i as u64 + 1,
        None if back == len => 0,
        None => len,
    }
}

impl Tail {
    fn load(&mut self, prior: &SourceState) {
        for entry in &prior.files {
            let Some(fp) = Fingerprint::from_hex(entry.fp_len, &entry.fp) else {
                continue;
            };
            let dev_ino = entry.dev.zip(entry.ino);
            let id = self.add_stream(PathBuf::from(&entry.path), dev_ino, fp, None, entry.offset);
            if let Some(s) = self.streams.get_mut(&id) {
                s.done = entry.done;
                s.seen = entry.seen;
            }
        }
    }

    fn add_stream(
        &mut self,
        path: PathBuf,
        dev_ino: Option<FileKey>,
        fp: Fingerprint,
        head: Option<Vec<u8>>,
        offset: u64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let tracker = Tracker::new(offset, self.dirty.clone(), path.display().to_string());
        self.streams.insert(
            id,
            Stream {
                path,
                dev_ino,
                fp,
                head,
                read_off: offset,
                tracker,
                done: false,
                attached: false,
                seen: Utc::now(),
                warned_cut: false,
            },
        );
        self.changed = true;
        id
    }

    fn run(mut self) {
        self.setup_watcher();
        let initial_first = self.first_start;
        if self.discover(true).is_err() {
            return;
        }
        if !initial_first {
            self.recover_orphans();
        }
        self.first_start = false;
        self.publish();
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
        let mut last_discovery = Instant::now();
        let mut last_recheck = Instant::now();
        loop {
            if self.out.cancel.is_cancelled() {
                break;
            }
            let busy = match self.pass() {
                Ok(busy) => busy,
                Err(Stopped) => break,
            };
            self.publish();
            let tick = if self.poll { POLL_TICK } else { SAFETY_TICK };
            let wait = if busy || self.want_discovery {
                Duration::ZERO
            } else {
                tick
            };
            let mut wanted = Wanted {
                discover: std::mem::take(&mut self.want_discovery),
                paths: HashSet::new(),
            };
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Stop) => break,
                Ok(Msg::Fs(ev)) => {
                    wanted.note(ev, &self.globs);
                    loop {
                        match self.rx.try_recv() {
                            Ok(Msg::Stop) => return,
                            Ok(Msg::Fs(ev)) => wanted.note(ev, &self.globs),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.overflow.swap(false, Ordering::Relaxed) {
                wanted.discover = true;
            }
            let every = if self.poll {
                POLL_TICK
            } else {
                self.discovery_every
            };
            let result = if wanted.discover || last_discovery.elapsed() >= every {
                last_discovery = Instant::now();
                last_recheck = Instant::now();
                self.discover(false)
            } else if last_recheck.elapsed() >= tick {
                last_recheck = Instant::now();
                self.recheck_waiting()
            } else {
                let mut paths: Vec<PathBuf> = wanted.paths.into_iter().collect();
                paths.sort();
                paths.into_iter().try_for_each(|p| self.consider(p, false))
            };
            if result.is_err() {
                break;
            }
        }
    }

    fn setup_watcher(&mut self) {
        if self.poll {
            return;
        }
        let tx = self.events_tx.clone();
        let overflow = self.overflow.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            if let Err(TrySendError::Full(_)) = tx.try_send(Msg::Fs(res)) {
                overflow.store(true, Ordering::Relaxed);
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => self.fall_back_to_polling(&e.to_string()),
        }
    }

    fn fall_back_to_polling(&mut self, why: &str) {
        tracing::warn!(
            source = %self.origin,
            "inotify unavailable ({why}); polling files every {}s instead",
            POLL_TICK.as_secs()
        );
        self.watcher = None;
        self.watched.clear();
        self.poll = true;
    }

    fn update_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let targets = self.globs.watch_targets();
        let mut failure = None;
        for (path, mode) in &targets {
            if self.watched.get(path) == Some(mode) {
                continue;
            }
            if self.watched.contains_key(path) {
                let _ = watcher.unwatch(path);
                self.watched.remove(path);
            }
            match watcher.watch(path, *mode) {
                Ok(()) => {
                    self.watched.insert(path.clone(), *mode);
                }
                Err(e) => {
                    failure = Some(format!("{}: {e}", path.display()));
                    break;
                }
            }
        }
        if let Some(why) = failure {
            self.fall_back_to_polling(&why);
            return;
        }
        let stale: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| !targets.iter().any(|(t, _)| t == *p))
            .cloned()
            .collect();
        for p in stale {
            let _ = watcher.unwatch(&p);
            self.watched.remove(&p);
        }
    }

    fn warn_once(&mut self, path: &Path, msg: &str) {
        if self.warned.insert(path.to_path_buf()) {
            tracing::warn!(source = %self.origin, file = %path.display(), "{msg}");
        }
    }

    /// Re-scans the globs and takes up files not followed yet.
    fn discover(&mut self, initial: bool) -> Result<(), Stopped> {
        self.update_watches();
        let paths = self.globs.scan();
        if initial && paths.is_empty() {
            tracing::warn!(
                source = %self.origin,
                "no file matches the patterns yet; waiting for one to appear"
            );
        }
        let present: HashSet<FileKey> = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| key_of(&m))
            .collect();
        // Forget files that are gone (and close parked copies of them).
        self.ignored.retain(|k, _| present.contains(k));
        self.gz_wait.retain(|k, _| present.contains(k));
        self.parked.retain(|p| present.contains(&p.key));
        for path in paths {
            self.consider(path, initial)?;
        }
        Ok(())
    }

    /// Files set aside (waiting for content, incomplete gzip, copies) are looked at again
    /// when they change, also where no directory event tells (symlink targets).
    fn recheck_waiting(&mut self) -> Result<(), Stopped> {
        let stat = |path: &Path| std::fs::metadata(path).ok().map(|m| (key_of(&m), m));
        let mut again: Vec<PathBuf> = Vec::new();
        for (key, ig) in &self.ignored {
            if let Some((k, m)) = stat(&ig.path)
                && k == *key
                && (m.len() != ig.len || m.modified().ok() != ig.mtime)
            {
                again.push(ig.path.clone());
            }
        }
        for (key, (len, path)) in &self.gz_wait {
            if let Some((k, m)) = stat(path)
                && k == *key
                && m.len() != *len
            {
                again.push(path.clone());
            }
        }
        again.sort();
        again.dedup();
        for path in again {
            if self.globs.matches(&path) {
                self.consider(path, false)?;
            }
        }
        Ok(())
    }

    fn ignore(&mut self, key: FileKey, path: &Path, meta: &std::fs::Metadata, stream: Option<u64>) {
        self.ignored.insert(
            key,
            Ignored {
                path: path.to_path_buf(),
                len: meta.len(),
                mtime: meta.modified().ok(),
                stream,
            },
        );
    }

    /// One path matched by the globs.
    fn consider(&mut self, path: PathBuf, initial: bool) -> Result<(), Stopped> {
        let Ok(meta) = std::fs::metadata(&path) else {
            return Ok(());
        };
        if !meta.is_file() {
            return Ok(());
        }
        let key = key_of(&meta);
        if let Some(t) = self.tailers.iter_mut().find(|t| t.key == key) {
            if t.orphan || (t.path != path && !path_has_inode(&t.path, key)) {
                t.path = path;
                t.orphan = false;
                t.rotated_at = None;
            }
            return Ok(());
        }
        if let Some(p) = self.parked.iter().find(|p| p.key == key) {
            if p.len == meta.len() {
                return Ok(());
            }
            // A parked copy that keeps changing may be a different file after all.
            self.parked.retain(|p| p.key != key);
        }
        if let Some(ig) = self.ignored.get(&key) {
            if ig.len == meta.len() && ig.mtime == meta.modified().ok() {
                if let Some(id) = ig.stream {
                    self.touch(id);
                }
                return Ok(());
            }
            self.ignored.remove(&key);
        }
        if is_gz(&path) {
            return self.consider_gz(path, &meta, key, initial);
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.warn_once(&path, &format!("cannot open: {e}"));
                return Ok(());
            }
        };
        // The name may point to another file by now: trust the open file.
        let Ok(meta) = file.metadata() else {
            return Ok(());
        };
        let key = key_of(&meta);
        if self.tailers.iter().any(|t| t.key == key) {
            return Ok(());
        }
        let len = meta.len();
        let prefix = match read_prefix(&file, len) {
            Ok(p) => p,
            Err(e) => {
                self.warn_once(&path, &format!("cannot read: {e}"));
                return Ok(());
            }
        };
        let start = match self.find_stream(key, &prefix) {
            Found::Inode(id) => {
                let Some(s) = self.streams.get_mut(&id) else {
                    return Ok(());
                };
                if s.read_off <= len {
                    s.path = path.clone();
                    Some((id, s.read_off))
                } else {
                    // Shorter than what was read: truncated while not followed.
                    s.dev_ino = None;
                    None
                }
            }
            Found::Content(id) => {
                let Some(s) = self.streams.get_mut(&id) else {
                    return Ok(());
                };
                if s.attached {
                    tracing::debug!(
                        source = %self.origin,
                        file = %path.display(),
                        "copy of a file being read; waiting until the original is truncated or closed"
                    );
                    self.parked.push(Parked {
                        path,
                        file,
                        key,
                        stream: id,
                        len,
                    });
                    return Ok(());
                }
                if len <= s.read_off {
                    self.ignore(key, &path, &meta, Some(id));
                    return Ok(());
                }
                tracing::info!(
                    source = %self.origin,
                    file = %path.display(),
                    offset = s.read_off,
                    "copy of a file read before: reading the rest"
                );
                s.dev_ino = Some(key);
                s.path = path.clone();
                self.changed = true;
                Some((id, s.read_off))
            }
            Found::New if prefix.is_empty() => {
                // Nothing to identify it by yet (a new log, or a copy just created): wait for
                // content.
                self.ignore(key, &path, &meta, None);
                return Ok(());
            }
            Found::New => None,
        };
        let (id, offset) = match start {
            Some(found) => found,
            None => {
                let offset = if initial && self.first_start {
                    end_offset(&file, len)
                } else {
                    0
                };
                let id = self.add_stream(
                    path.clone(),
                    Some(key),
                    Fingerprint::of(&prefix),
                    Some(prefix),
                    offset,
                );
                (id, offset)
            }
        };
        if let Some(s) = self.streams.get_mut(&id) {
            s.attached = true;
            s.dev_ino = Some(key);
            s.seen = Utc::now();
        }
        self.changed = true;
        tracing::debug!(source = %self.origin, file = %path.display(), offset, "following");
        self.tailers.push(Tailer {
            path,
            file,
            key,
            stream: id,
            split: Splitter::new(offset, self.max_line),
            last_len: 0,
            last_mtime: None,
            last_growth: Instant::now(),
            rotated_at: None,
            orphan: false,
        });
        Ok(())
    }

    /// The stream a file with this identity and these first bytes belongs to.
    fn find_stream(&mut self, key: FileKey, prefix: &[u8]) -> Found {
        let mut stale = Vec::new();
        let mut by_inode = None;
        for (id, s) in &self.streams {
            if s.dev_ino == Some(key) && !s.attached {
                if s.fp.matches(prefix) && by_inode.is_none() {
                    by_inode = Some(*id);
                } else {
                    stale.push(*id);
                }
            }
        }
        for id in stale {
            // The inode now holds other content (reused, or rewritten in place).
            if let Some(s) = self.streams.get_mut(&id) {
                s.dev_ino = None;
                self.changed = true;
            }
        }
        if let Some(id) = by_inode {
            self.touch(id);
            return Found::Inode(id);
        }
        if prefix.is_empty() {
            return Found::New;
        }
        // Content: a full enough fingerprint, or (for a copy still being written, or a copy
        // of a short file that grew since) the known first bytes of a stream.
        let mut best: Option<(bool, u64, u64)> = None;
        for (id, s) in &self.streams {
            // The fingerprint must be long enough to mean something, or cover everything
            // read from the stream (then skipping to its position skips identical bytes).
            let by_fp = s.fp.len > 0
                && (s.fp.len >= MIN_CONTENT_FP
                    || (s.read_off > 0 && u64::from(s.fp.len) >= s.read_off))
                && s.fp.matches(prefix);
            let by_head = s
                .head
                .as_ref()
                .is_some_and(|h| h.len() > prefix.len() && h.starts_with(prefix));
            if by_fp || by_head {
                let rank = (s.attached, s.read_off, *id);
                if best.is_none_or(|b| (rank.0, rank.1) > (b.0, b.1)) {
                    best = Some(rank);
                }
            }
        }
        match best {
            Some((_, _, id)) => {
                self.touch(id);
                Found::Content(id)
            }
            None => Found::New,
        }
    }

    /// The stream's file was seen: keep remembering it (and save that now and then).
    fn touch(&mut self, id: u64) {
        if let Some(s) = self.streams.get_mut(&id) {
            let now = Utc::now();
            if now.signed_duration_since(s.seen).num_hours() >= 24 {
                self.changed = true;
            }
            s.seen = now;
        }
    }

    fn consider_gz(
        &mut self,
        path: PathBuf,
        meta: &std::fs::Metadata,
        key: FileKey,
        initial: bool,
    ) -> Result<(), Stopped> {
        if self.gz_wait.get(&key).is_some_and(|w| w.0 == meta.len())
            || self.gz_queue.iter().any(|j| j.key == key)
        {
            return Ok(());
        }
        let prefix = match read_gz_prefix(&path) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(source = %self.origin, file = %path.display(), "not readable as gzip yet: {e}");
                self.gz_wait.insert(key, (meta.len(), path.to_path_buf()));
                return Ok(());
            }
        };
        let id = match self.find_stream(key, &prefix) {
            Found::Inode(id) | Found::Content(id) => {
                let Some(s) = self.streams.get_mut(&id) else {
                    return Ok(());
                };
                if s.done || s.attached {
                    // Read already, or a compressed copy of a file still being read.
                    self.ignore(key, &path, meta, Some(id));
                    return Ok(());
                }
                s.dev_ino = Some(key);
                s.path = path.clone();
                id
            }
            Found::New => {
                let fp = Fingerprint::of(&prefix);
                let id = self.add_stream(path.clone(), Some(key), fp, Some(prefix), 0);
                if initial && self.first_start {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.done = true;
                    }
                    self.ignore(key, &path, meta, Some(id));
                    return Ok(());
                }
                id
            }
        };
        self.changed = true;
        // Read from the next pass, never during discovery: `start` waits for the first
        // discovery, and reading may wait for the consumer.
        self.gz_wait.insert(key, (meta.len(), path.to_path_buf()));
        self.gz_queue.push(GzJob { id, path, key });
        Ok(())
    }

    /// Reads a compressed file from its stream's position (decompressed bytes) to its end.
    fn read_gz(&mut self, job: GzJob) -> Result<(), Stopped> {
        use std::io::Read;
        let GzJob { id, path, key } = job;
        let path = path.as_path();
        let Ok(meta) = std::fs::metadata(path) else {
            self.gz_wait.remove(&key);
            return Ok(());
        };
        let meta = &meta;
        if key_of(meta) != key {
            self.gz_wait.remove(&key);
            return Ok(());
        }
        let Some(skip) = self
            .streams
            .get(&id)
            .filter(|s| !s.attached)
            .map(|s| s.read_off)
        else {
            // Gone, or its content is being read from a plain file meanwhile.
            self.gz_wait.remove(&key);
            self.ignore(key, path, meta, Some(id));
            return Ok(());
        };
        let src = path.to_string_lossy().into_owned();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.warn_once(path, &format!("cannot open: {e}"));
                return Ok(());
            }
        };
        let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        let skipped = std::io::copy(&mut (&mut dec).take(skip), &mut std::io::sink());
        match skipped {
            Ok(n) if n == skip => {}
            Ok(_) => {
                // Shorter than what was read from this content already.
                if let Some(s) = self.streams.get_mut(&id) {
                    s.done = true;
                }
                self.gz_wait.remove(&key);
                self.ignore(key, path, meta, Some(id));
                return Ok(());
            }
            Err(e) => {
                tracing::debug!(file = %src, "gzip not complete yet: {e}");
                self.gz_wait.insert(key, (meta.len(), path.to_path_buf()));
                return Ok(());
            }
        }
        tracing::info!(source = %self.origin, file = %src, offset = skip, "reading compressed file");
        let mut split = Splitter::new(skip, self.max_line);
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        loop {
            match dec.read(&mut self.chunk) {
                Ok(0) => {
                    if let Some(piece) = split.finish() {
                        deliver(&self.out, stream, &src, piece)?;
                    }
                    stream.done = true;
                    self.changed = true;
                    self.gz_wait.remove(&key);
                    self.ignore(key, path, meta, Some(id));
                    return Ok(());
                }
                Ok(n) => {
                    split.feed(&self.chunk[..n]);
                    while let Some(piece) = split.next_piece() {
                        deliver(&self.out, stream, &src, piece)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::warn!(file = %src, "gzip read error: {e}");
                    }
                    // Retried from the last line when the file changes.
                    self.gz_wait.insert(key, (meta.len(), path.to_path_buf()));
                    return Ok(());
                }
            }
        }
    }

    /// After a restart: a stream whose file is no longer matched by the globs may have been
    /// rotated away (renamed in its directory) while Rampart was stopped; read its rest.
    fn recover_orphans(&mut self) {
        let candidates: Vec<(u64, PathBuf, FileKey)> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.attached && !s.done && !is_gz(&s.path))
            .filter_map(|(id, s)| s.dev_ino.map(|k| (*id, s.path.clone(), k)))
            .collect();
        let mut listings: HashMap<PathBuf, Vec<(PathBuf, FileKey)>> = HashMap::new();
        for (id, old_path, key) in candidates {
            let Some(dir) = old_path.parent() else {
                continue;
            };
            let listing = listings.entry(dir.to_path_buf()).or_insert_with(|| {
                std::fs::read_dir(dir)
                    .map(|entries| {
                        entries
                            .flatten()
                            .filter_map(|e| {
                                let p = e.path();
                                let m = std::fs::metadata(&p).ok()?;
                                m.is_file().then(|| (p, key_of(&m)))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
            let Some((path, _)) = listing.iter().find(|(_, k)| *k == key) else {
                continue;
            };
            let Ok(file) = File::open(path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if key_of(&meta) != key {
                continue;
            }
            let Ok(prefix) = read_prefix(&file, meta.len()) else {
                continue;
            };
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            if !s.fp.matches(&prefix) || meta.len() <= s.read_off {
                continue;
            }
            tracing::info!(
                source = %self.origin,
                file = %path.display(),
                offset = s.read_off,
                "rotated while stopped: reading the rest"
            );
            s.attached = true;
            s.path = path.clone();
            self.tailers.push(Tailer {
                path: path.clone(),
                file,
                key,
                stream: id,
                split: Splitter::new(s.read_off, self.max_line),
                last_len: 0,
                last_mtime: None,
                last_growth: Instant::now(),
                rotated_at: Some(Instant::now()),
                orphan: true,
            });
            self.changed = true;
        }
    }

    /// Checks and reads every open file once; true when one still has data to read.
    fn pass(&mut self) -> Result<bool, Stopped> {
        for job in std::mem::take(&mut self.gz_queue) {
            self.read_gz(job)?;
        }
        let mut busy = false;
        let mut i = 0;
        while i < self.tailers.len() {
            let (keep, more) = self.check(i)?;
            busy |= more;
            if keep {
                i += 1;
            } else {
                let t = self.tailers.remove(i);
                if let Some(s) = self.streams.get_mut(&t.stream) {
                    s.attached = false;
                }
                self.changed = true;
            }
        }
        self.activate_parked();
        Ok(busy)
    }

    /// One open file: truncation, identity, new data, rotation. Returns (keep open, more data).
    fn check(&mut self, i: usize) -> Result<(bool, bool), Stopped> {
        let now = Instant::now();
        let (len, mtime) = match self.tailers[i].file.metadata() {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(e) => {
                let path = self.tailers[i].path.clone();
                self.warn_once(&path, &format!("cannot stat the open file: {e}"));
                return Ok((false, false));
            }
        };
        let t = &self.tailers[i];
        let mut rewritten = len < t.split.fed_to();
        // Same size but written to: it may have been truncated and regrown in between.
        if !rewritten && (len != t.last_len || mtime != t.last_mtime) {
            rewritten = !self.verify_fingerprint(i, len);
        }
        if rewritten {
            self.restart_truncated(i, len);
        }
        let busy = self.read(i)?;
        let t = &mut self.tailers[i];
        t.last_len = len;
        t.last_mtime = mtime;
        let in_place = !t.orphan && path_has_inode(&t.path, t.key);
        if in_place {
            t.rotated_at = None;
            return Ok((true, busy));
        }
        let since = *t.rotated_at.get_or_insert_with(|| {
            tracing::debug!(file = %t.path.display(), "rotated: reading the old file to its end");
            now
        });
        self.want_discovery |= since == now;
        let quiet_since = since.max(t.last_growth);
        if busy || now.duration_since(quiet_since) < ROTATE_GRACE {
            return Ok((true, busy));
        }
        // Rotated, at its end and quiet: close, handing out an unterminated last line.
        let t = &mut self.tailers[i];
        let src = t.path.to_string_lossy().into_owned();
        if let Some(piece) = t.split.finish()
            && let Some(stream) = self.streams.get_mut(&t.stream)
        {
            deliver(&self.out, stream, &src, piece)?;
        }
        tracing::debug!(file = %src, "closed after rotation");
        Ok((false, false))
    }

    /// Whether the open file still starts with its stream's first bytes; extends a short
    /// fingerprint as the file grows.
    fn verify_fingerprint(&mut self, i: usize, len: u64) -> bool {
        let t = &self.tailers[i];
        let Some(s) = self.streams.get_mut(&t.stream) else {
            return true;
        };
        let Ok(prefix) = read_prefix(&t.file, len) else {
            return true;
        };
        if prefix.len() < s.fp.len as usize {
            // A copy still shorter than the content it copies (or a file that shrank and
            // regrew): compare with the known first bytes.
            return s.head.as_ref().is_some_and(|h| h.starts_with(&prefix));
        }
        if !s.fp.matches(&prefix) {
            return false;
        }
        if prefix.len() > s.fp.len as usize {
            s.fp = Fingerprint::of(&prefix);
            s.head = Some(prefix);
            self.changed = true;
        } else if s.head.is_none() {
            s.head = Some(prefix[..s.fp.len as usize].to_vec());
        }
        true
    }

    /// The file shrank or its first bytes changed: its old content becomes a detached stream
    /// (its copy may still turn up) and reading starts over at 0.
    fn restart_truncated(&mut self, i: usize, len: u64) {
        let t = &self.tailers[i];
        let (path, key, old) = (t.path.clone(), t.key, t.stream);
        if let Some(s) = self.streams.get_mut(&old) {
            s.attached = false;
            s.dev_ino = None;
        }
        let prefix = read_prefix(&self.tailers[i].file, len).unwrap_or_default();
        tracing::info!(source = %self.origin, file = %path.display(), "truncated: reading from the start");
        let id = self.add_stream(path, Some(key), Fingerprint::of(&prefix), Some(prefix), 0);
        if let Some(s) = self.streams.get_mut(&id) {
            s.attached = true;
        }
        let t = &mut self.tailers[i];
        t.stream = id;
        t.split.reset(0);
        t.last_len = 0;
    }

    /// Reads up to the budget from one open file; true when there is more.
    fn read(&mut self, i: usize) -> Result<bool, Stopped> {
        let Tail {
            tailers,
            streams,
            out,
            chunk,
            warned,
            ..
        } = self;
        let t = &mut tailers[i];
        let Some(stream) = streams.get_mut(&t.stream) else {
            return Ok(false);
        };
        let src = t.path.to_string_lossy().into_owned();
        for _ in 0..BUDGET {
            let pos = t.split.fed_to();
            let n = match t.file.read_at(chunk, pos) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if warned.insert(t.path.clone()) {
                        tracing::warn!(file = %src, "read error: {e}");
                    }
                    return Ok(false);
                }
            };
            if n == 0 {
                return Ok(false);
            }
            t.last_growth = Instant::now();
            t.split.feed(&chunk[..n]);
            while let Some(piece) = t.split.next_piece() {
                deliver(out, stream, &src, piece)?;
            }
        }
        Ok(true)
    }

    /// Copies waiting for their original: read them once the original is no longer followed.
    fn activate_parked(&mut self) {
        let mut i = 0;
        while i < self.parked.len() {
            let stream_id = self.parked[i].stream;
            let Some(s) = self.streams.get_mut(&stream_id) else {
                self.parked.remove(i);
                continue;
            };
            if s.attached {
                i += 1;
                continue;
            }
            let p = self.parked.remove(i);
            let Ok(meta) = p.file.metadata() else {
                continue;
            };
            if meta.len() <= s.read_off {
                self.ignore(p.key, &p.path, &meta, Some(stream_id));
                continue;
            }
            tracing::info!(
                source = %self.origin,
                file = %p.path.display(),
                offset = s.read_off,
                "reading the copy of a truncated file from where the original stopped"
            );
            s.attached = true;
            s.dev_ino = Some(p.key);
            s.path = p.path.clone();
            let offset = s.read_off;
            self.tailers.push(Tailer {
                path: p.path,
                file: p.file,
                key: p.key,
                stream: stream_id,
                split: Splitter::new(offset, self.max_line),
                last_len: 0,
                last_mtime: None,
                last_growth: Instant::now(),
                rotated_at: None,
                orphan: false,
            });
            self.changed = true;
        }
    }

    /// Hands the streams to the saver when they changed; forgets long-gone files.
    fn publish(&mut self) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        let now = Utc::now();
        let referenced: HashSet<u64> = self
            .parked
            .iter()
            .map(|p| p.stream)
            .chain(self.ignored.values().filter_map(|i| i.stream))
            .collect();
        self.streams.retain(|id, s| {
            s.attached
                || referenced.contains(id)
                || now.signed_duration_since(s.seen).num_days() < FORGET_AFTER_DAYS
        });
        if self.streams.len() > MAX_STREAMS {
            let mut old: Vec<(DateTime<Utc>, u64)> = self
                .streams
                .iter()
                .filter(|(id, s)| !s.attached && !referenced.contains(id))
                .map(|(id, s)| (s.seen, *id))
                .collect();
            old.sort();
            let excess = self.streams.len() - MAX_STREAMS;
            for (_, id) in old.into_iter().take(excess) {
                self.streams.remove(&id);
            }
        }
        let published: Vec<Published> = self
            .streams
            .values()
            .map(|s| Published {
                entry: FileEntry {
                    path: s.path.to_string_lossy().into_owned(),
                    dev: s.dev_ino.map(|k| k.0),
                    ino: s.dev_ino.map(|k| k.1),
                    fp_len: s.fp.len,
                    fp: s.fp.to_hex(),
                    offset: 0,
                    done: s.done,
                    seen: s.seen,
                },
                attached: s.attached,
                tracker: s.tracker.clone(),
            })
            .collect();
        *self
            .persist
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = published;
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// Hands one piece of a stream out (or just moves its position).
fn deliver(out: &Out, stream: &mut Stream, src: &str, piece: Piece) -> Result<(), Stopped> {
    match piece {
        Piece::Line { bytes, end, cut } => {
            if cut {
                if stream.warned_cut {
                    tracing::debug!(file = %src, offset = end, "line longer than max_buffer_size, cut");
                } else {
                    stream.warned_cut = true;
                    tracing::warn!(
                        file = %src,
                        offset = end,
                        "line longer than max_buffer_size, cut (further ones in this file are logged at debug level)"
                    );
                }
            }
            let ack = stream.tracker.push(end);
            stream.read_off = end;
            out.send(to_text(bytes), src, ack)
        }
        Piece::Skip { end } => {
            stream.tracker.advance(end);
            stream.read_off = end;
            Ok(())
        }
    }
}

struct Published {
    entry: FileEntry,
    attached: bool,
    tracker: Arc<Tracker<u64>>,
}

/// The saver's view of a file source.
struct FilePersist {
    key: String,
    published: Mutex<Vec<Published>>,
}

impl Persist for FilePersist {
    fn key(&self) -> &str {
        &self.key
    }

    fn snapshot(&self) -> SourceState {
        let now = Utc::now();
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = SourceState::new();
        state.files = published
            .iter()
            .map(|p| {
                let mut e = p.entry.clone();
                e.offset = p.tracker.committed();
                if p.attached {
                    e.seen = now;
                }
                e
            })
            .collect();
        state
            .files
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        state
    }

    fn live_acks(&self) -> usize {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.tracker.live())
            .sum()
    }
}
