use std::sync::atomic::{AtomicU64, Ordering};

use regex_automata::nfa::thompson::{self, backtrack, pikevm};
use regex_automata::util::captures::Captures as RaCaptures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID, meta};
use regex_syntax::hir::Hir;

use crate::error::GrokError;
use crate::expand::Expansion;

/// Bytes of visited-set memory for the bounded backtracker. With the default 256 KiB the
/// regex crate drops to the PikeVM at ~1.3 KB for NGINXACCESS, which is 8× slower on long web
/// log lines; 8 MiB keeps lines of tens of KB on the backtracker.
const VISITED_CAPACITY: usize = 8 << 20;
/// The expanded hub patterns are large (SSHD_LOG is a few hundred alternatives deep).
const NFA_SIZE_LIMIT: usize = 64 << 20;
/// Keeps error messages readable when the expanded regex is hundreds of KB long.
const SNIPPET_CHARS: usize = 60;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Debug)]
struct Field {
    name: Box<str>,
    group: usize,
}

/// A compiled grok pattern. Immutable, cheap to clone, `Send + Sync`; per-search scratch
/// space lives in [`Captures`], which each thread owns.
#[derive(Clone, Debug)]
pub struct Grok {
    id: u64,
    pattern: Box<str>,
    regex: Box<str>,
    /// Finds the overall match (lazy DFA + prefilters); narrows the capture search to it.
    finder: meta::Regex,
    backtrack: backtrack::BoundedBacktracker,
    pikevm: pikevm::PikeVM,
    fields: Box<[Field]>,
}

/// Reusable per-thread capture storage for one [`Grok`] (it re-initialises itself if handed
/// to another one). After the first match nothing is allocated except when a longer line
/// than ever before grows the backtracker's visited set.
#[derive(Debug, Default)]
pub struct Captures {
    owner: u64,
    state: Option<State>,
    matched: bool,
}

#[derive(Debug)]
struct State {
    caps: RaCaptures,
    finder: meta::Cache,
    backtrack: backtrack::Cache,
    pikevm: pikevm::Cache,
}

impl Captures {
    /// Empty storage; caches are created on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last [`Grok::captures`] call with this storage matched.
    pub fn matched(&self) -> bool {
        self.matched
    }

    fn prepare(&mut self, grok: &Grok) -> &mut State {
        if self.owner != grok.id {
            self.state = None;
            self.owner = grok.id;
        }
        self.state.get_or_insert_with(|| State {
            caps: grok.pikevm.create_captures(),
            finder: grok.finder.create_cache(),
            backtrack: grok.backtrack.create_cache(),
            pikevm: grok.pikevm.create_cache(),
        })
    }
}

impl Grok {
    pub(crate) fn build(pattern: &str, exp: Expansion) -> Result<Grok, GrokError> {
        let regex_err = |message: String| GrokError::Regex {
            pattern: pattern.to_owned(),
            message,
        };
        let hir = parse_hir(&exp.regex).map_err(regex_err)?;

        let finder = meta::Builder::new()
            .configure(
                meta::Config::new()
                    .which_captures(thompson::WhichCaptures::Implicit)
                    .nfa_size_limit(Some(NFA_SIZE_LIMIT)),
            )
            .build_from_hir(&hir)
            .map_err(|e| regex_err(e.to_string()))?;
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build_from_hir(&hir)
            .map_err(|e| regex_err(e.to_string()))?;
        let backtrack = backtrack::Builder::new()
            .configure(backtrack::Config::new().visited_capacity(VISITED_CAPACITY))
            .build_from_nfa(nfa.clone())
            .map_err(|e| regex_err(e.to_string()))?;
        let pikevm = pikevm::Builder::new()
            .build_from_nfa(nfa.clone())
            .map_err(|e| regex_err(e.to_string()))?;

        let info = nfa.group_info();
        let mut fields: Vec<Field> = Vec::with_capacity(exp.fields.len());
        // grok fields first; plain named groups only fill names grok did not define, so a
        // pattern yields the same values for its `%{…:field}` names as under grokky (which
        // ignores plain named groups altogether).
        for (name, internal) in exp.fields.iter().chain(exp.named_groups.iter()) {
            if fields.iter().any(|f| *f.name == **name) {
                continue;
            }
            if let Some(group) = info.to_index(PatternID::ZERO, internal) {
                fields.push(Field {
                    name: name.as_str().into(),
                    group,
                });
            }
        }

        Ok(Grok {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pattern: pattern.into(),
            regex: exp.regex.into(),
            finder,
            backtrack,
            pikevm,
            fields: fields.into(),
        })
    }

    /// Process-unique identity of this compiled pattern (clones share it), for callers that
    /// keep one [`Captures`] per pattern.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The grok pattern this was compiled from.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The expanded, translated regex.
    pub fn regex(&self) -> &str {
        &self.regex
    }

    /// Field names this pattern can yield, each once, in definition order.
    pub fn field_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.fields.iter().map(|f| &*f.name)
    }

    /// Whether the pattern matches anywhere in `line`, without computing captures.
    pub fn is_match(&self, line: &str) -> bool {
        self.finder.is_match(line)
    }

    /// Matches `line` (leftmost-first, unanchored unless the pattern anchors itself) and
    /// records group spans in `caps`. Read them back with [`Grok::fields`] or [`Grok::get`]
    /// passing the same `line`.
    pub fn captures(&self, line: &str, caps: &mut Captures) -> bool {
        caps.matched = false;
        // The DFA pass is far cheaper than any capture engine, rejects most lines, and gives
        // the exact span, so the capture engine runs anchored on just the matched part.
        // Our own cache instead of the meta regex's internal pool: no shared state on the
        // hot path, even under many threads.
        let state = caps.prepare(self);
        let Some(m) = self
            .finder
            .search_with(&mut state.finder, &Input::new(line))
        else {
            return false;
        };
        let input = Input::new(line).span(m.range()).anchored(Anchored::Yes);
        let done = m.len() <= self.backtrack.max_haystack_len()
            && self
                .backtrack
                .try_search(&mut state.backtrack, &input, &mut state.caps)
                .is_ok();
        if !done {
            self.pikevm
                .search(&mut state.pikevm, &input, &mut state.caps);
        }
        caps.matched = state.caps.is_match();
        caps.matched
    }

    /// `(field, value)` for the last match recorded in `caps` (nothing if it did not match).
    /// Fields whose group did not participate yield `""`.
    pub fn fields<'a>(&'a self, line: &'a str, caps: &'a Captures) -> Fields<'a> {
        let state = caps
            .state
            .as_ref()
            .filter(|_| caps.matched && caps.owner == self.id);
        let fields = if state.is_some() {
            &self.fields[..]
        } else {
            &[]
        };
        Fields {
            fields: fields.iter(),
            caps: state.map(|s| &s.caps),
            line,
        }
    }

    /// Convenience: [`Grok::captures`] then [`Grok::fields`] on the same line.
    pub fn match_fields<'a>(&'a self, line: &'a str, caps: &'a mut Captures) -> Option<Fields<'a>> {
        if self.captures(line, caps) {
            Some(self.fields(line, caps))
        } else {
            None
        }
    }

    /// Value of one field from the last match recorded in `caps`.
    pub fn get<'a>(&self, name: &str, line: &'a str, caps: &Captures) -> Option<&'a str> {
        let state = caps
            .state
            .as_ref()
            .filter(|_| caps.matched && caps.owner == self.id)?;
        let field = self.fields.iter().find(|f| &*f.name == name)?;
        Some(group_text(&state.caps, field.group, line))
    }

    /// Allocating convenience for cold paths and tests: all fields of a match, owned.
    pub fn parse(&self, line: &str) -> Option<Vec<(String, String)>> {
        let mut caps = Captures::new();
        let fields = self.match_fields(line, &mut caps)?;
        Some(fields.map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

fn group_text<'a>(caps: &RaCaptures, group: usize, line: &'a str) -> &'a str {
    caps.get_group(group)
        .and_then(|span| line.get(span.range()))
        .unwrap_or("")
}

/// Iterator over `(field, value)` of a match; see [`Grok::fields`].
#[derive(Debug)]
pub struct Fields<'a> {
    fields: std::slice::Iter<'a, Field>,
    caps: Option<&'a RaCaptures>,
    line: &'a str,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let field = self.fields.next()?;
        let value = self
            .caps
            .map_or("", |c| group_text(c, field.group, self.line));
        Some((&*field.name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl ExactSizeIterator for Fields<'_> {}

fn parse_hir(regex: &str) -> Result<Hir, String> {
    let config = syntax::Config::new()
        .unicode(true)
        .utf8(true)
        .nest_limit(1000);
    syntax::parse_with(regex, &config).map_err(|e| describe_syntax_error(regex, &e))
}

/// regex-syntax's `Display` reprints the whole pattern, which for an expanded hub pattern is
/// tens of KB; report the error kind and a short excerpt around the offending position.
fn describe_syntax_error(regex: &str, err: &regex_syntax::Error) -> String {
    let (kind, offset) = match err {
        regex_syntax::Error::Parse(e) => (e.kind().to_string(), e.span().start.offset),
        regex_syntax::Error::Translate(e) => (e.kind().to_string(), e.span().start.offset),
        other => return other.to_string(),
    };
    let start = floor_char_boundary(regex, offset.saturating_sub(SNIPPET_CHARS));
    let end = floor_char_boundary(regex, offset.saturating_add(SNIPPET_CHARS).min(regex.len()));
    let (before, after) = (
        regex
            .get(start..floor_char_boundary(regex, offset.min(regex.len())))
            .unwrap_or(""),
        regex
            .get(floor_char_boundary(regex, offset.min(regex.len()))..end)
            .unwrap_or(""),
    );
    format!("{kind} at offset {offset} of the expanded regex: …{before}⟨HERE⟩{after}…")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
