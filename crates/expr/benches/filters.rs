//! Cost of typical hub filters on a realistic HTTP event: this crate against the crates.io
//! `expr-lang` crate (a tree-walking expr implementation over owned values), side by side in one
//! criterion group per expression, plus the compile time of one filter and the heap allocations
//! one evaluation makes.
//!
//! `cargo bench -p expr --bench filters` prints criterion's report, then a summary table.

// A counting global allocator needs `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use expr::crowdsec::{DataKind, HelperContext};
use expr::{Env, FieldDesc, FieldType, Functions, Object, TypeDesc, Value};

// ---------------------------------------------------------------------------------------------
// Allocation counting

/// The system allocator, counting allocations while [`COUNTING`] is set.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap allocations (including reallocations) per call of `f`, averaged over `n` calls.
fn allocs_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    f(); // first call may fill lazy caches
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..n {
        f();
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst) as f64 / n as f64
}

// ---------------------------------------------------------------------------------------------
// The event, as this crate sees it

static EVENT: TypeDesc = TypeDesc {
    name: "Event",
    fields: &[
        FieldDesc {
            name: "Meta",
            slot: 0,
            ty: FieldType::StrMap,
        },
        FieldDesc {
            name: "Parsed",
            slot: 1,
            ty: FieldType::StrMap,
        },
        FieldDesc {
            name: "Type",
            slot: 2,
            ty: FieldType::Int,
        },
    ],
    methods: &[],
};

#[derive(Debug)]
struct Event {
    meta: HashMap<String, String>,
    parsed: HashMap<String, String>,
}

impl Object for Event {
    fn type_name(&self) -> &'static str {
        "Event"
    }
    fn desc(&self) -> Option<&'static TypeDesc> {
        Some(&EVENT)
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        EVENT.field(key).map(|f| self.get_slot(f.slot))
    }
    fn get_slot(&self, slot: u16) -> Value<'_> {
        match slot {
            0 => Value::Obj(&self.meta),
            1 => Value::Obj(&self.parsed),
            _ => Value::Int(0),
        }
    }
}

const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// What crowdsecurity/nginx-logs makes of an nginx access-log line for a 404 on a PHP page.
const META: &[(&str, &str)] = &[
    ("datasource_path", "/var/log/nginx/access.log"),
    ("datasource_type", "file"),
    (
        "http_path",
        "/wp-content/plugins/revslider/temp/update_extract/shell.php",
    ),
    ("http_status", "404"),
    ("http_user_agent", USER_AGENT),
    ("http_verb", "GET"),
    ("log_type", "http_access-log"),
    ("machine", "web-01"),
    ("service", "http"),
    ("source_ip", "203.0.113.57"),
    ("target_fqdn", "www.example.com"),
];

const PARSED: &[(&str, &str)] = &[
    ("body_bytes_sent", "153"),
    ("http_referer", "-"),
    ("http_user_agent", USER_AGENT),
    ("http_version", "1.1"),
    ("program", "nginx"),
    ("remote_addr", "203.0.113.57"),
    ("remote_user", "-"),
    (
        "request",
        "/wp-content/plugins/revslider/temp/update_extract/shell.php",
    ),
    ("status", "404"),
    ("target_fqdn", "www.example.com"),
    ("time_local", "08/May/2026:10:21:07 +0000"),
    ("verb", "GET"),
];

fn strmap(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The same event for expr-lang: nested maps of owned values.
fn expr_lang_context() -> expr_lang::Context {
    let map = |kv: &[(&str, &str)]| -> expr_lang::Value {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), expr_lang::Value::from(*v)))
            .collect()
    };
    let evt: expr_lang::Value = [
        ("Meta".to_owned(), map(META)),
        ("Parsed".to_owned(), map(PARSED)),
        ("Type".to_owned(), expr_lang::Value::from(0i64)),
    ]
    .into_iter()
    .collect();
    [("evt", evt)].into_iter().collect()
}

/// ~100 user-agent fragments in the shape of crowdsecurity/http-bad-user-agent's data file; none
/// is in [`USER_AGENT`], so `any()` scans the whole list (the common case: a clean request).
fn bad_user_agents() -> Vec<String> {
    let named = [
        "sqlmap",
        "nikto",
        "masscan",
        "zgrab",
        "nmap",
        "dirbuster",
        "gobuster",
        "wfuzz",
        "ffuf",
        "nuclei",
        "acunetix",
        "netsparker",
        "w3af",
        "whatweb",
        "wpscan",
        "joomscan",
        "havij",
        "hydra",
        "medusa",
        "zmeu",
        "morfeus",
        "jorgee",
        "blackwidow",
        "webshag",
        "skipfish",
        "arachni",
        "openvas",
        "nessus",
        "qualys",
        "burpcollaborator",
        "commix",
        "xsser",
        "fimap",
        "grabber",
        "paros",
        "webinspect",
        "appscan",
        "httrack",
        "libwww-perl",
        "python-requests/2.",
        "go-http-client/1.1",
        "curl/7.",
        "wget/1.",
        "masscan-ng",
        "l9explore",
        "l9tcpid",
        "censysinspect",
        "expanse",
        "internetmeasurement",
        "zmap",
    ];
    let mut v: Vec<String> = named.iter().map(|s| (*s).to_owned()).collect();
    let mut i = 0;
    while v.len() < 100 {
        v.push(format!("badbot-{i:03}"));
        i += 1;
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The filters

struct Filter {
    name: &'static str,
    src: &'static str,
}

const FILTERS: &[Filter] = &[
    Filter {
        name: "eq",
        src: "evt.Meta.log_type == 'ssh_failed-auth'",
    },
    Filter {
        name: "in_list",
        src: "evt.Meta.log_type in ['http_access-log', 'http_error-log']",
    },
    Filter {
        name: "matches",
        src: r"evt.Meta.http_path matches '\\.(php|asp|jsp)$'",
    },
    Filter {
        name: "any_file",
        src: "any(File('bad_user_agents.txt'), {evt.Parsed.http_user_agent contains #})",
    },
    Filter {
        name: "combined",
        src: COMPILE_SRC,
    },
];

/// A typical combined filter; also the one compiled for the compile-time comparison.
const COMPILE_SRC: &str = "evt.Meta.service == 'http' && evt.Meta.http_status in ['404','403'] \
                           && evt.Parsed.verb in ['GET','HEAD']";

// ---------------------------------------------------------------------------------------------
// Timing records for the summary table

/// `(iterations, elapsed)` of each `iter_custom` call, by benchmark id.
type Records = Mutex<HashMap<String, Vec<(u64, Duration)>>>;

fn records() -> &'static Records {
    static R: std::sync::OnceLock<Records> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

fn record(id: &str, iters: u64, d: Duration) {
    records()
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default()
        .push((iters, d));
}

/// Mean ns per iteration over the measured samples (the last `SAMPLES` calls; earlier ones are
/// warm-up), `None` if the benchmark did not run.
fn ns_per_iter(id: &str) -> Option<f64> {
    let r = records().lock().unwrap();
    let calls = r.get(id)?;
    let measured = &calls[calls.len().saturating_sub(SAMPLES)..];
    let iters: u64 = measured.iter().map(|c| c.0).sum();
    let ns: f64 = measured.iter().map(|c| c.1.as_nanos() as f64).sum();
    (iters > 0).then(|| ns / iters as f64)
}

/// Times `iters` calls of `f`, records them under `id` and returns the elapsed time.
fn timed(id: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let d = start.elapsed();
    record(id, iters, d);
    d
}

const SAMPLES: usize = 20;

// ---------------------------------------------------------------------------------------------

struct Setup {
    env: Env,
    event: Event,
    el_env: expr_lang::Environment<'static>,
    el_ctx: expr_lang::Context,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad_user_agents.txt");
    let agents = bad_user_agents();
    std::fs::write(&path, agents.join("\n") + "\n").unwrap();

    let helpers = Arc::new(HelperContext::new());
    helpers
        .load_data_file(Path::new(&path), DataKind::String)
        .unwrap();
    let mut funcs = Functions::new();
    expr::crowdsec::register(&mut funcs, helpers);
    let env = Env::new(funcs).var("evt", FieldType::Obj(&EVENT));

    // expr-lang has no data-file helpers: `File` hands out the list, as CrowdSec's does. Its
    // values are owned, so every call clones the 100 strings.
    let mut el_env = expr_lang::Environment::new();
    let list = expr_lang::Value::Array(agents.into_iter().map(expr_lang::Value::from).collect());
    el_env.add_function("File", move |c| {
        if c.args.len() != 1 {
            return Err(expr_lang::Error::ExprError("File: one argument".into()));
        }
        Ok(list.clone())
    });

    Setup {
        env,
        event: Event {
            meta: strmap(META),
            parsed: strmap(PARSED),
        },
        el_env,
        el_ctx: expr_lang_context(),
        _dir: dir,
    }
}

struct Row {
    name: &'static str,
    ours_allocs: f64,
    theirs: Result<f64, String>,
}

fn bench(c: &mut Criterion, s: &Setup, rows: &mut Vec<Row>) {
    let vars = [Value::Obj(&s.event)];
    for f in FILTERS {
        let ours = s.env.compile(f.src).expect(f.src);
        let want = ours.run_bool(&vars).expect(f.src);
        // expr-lang must compile the filter and agree with us on this event to be compared.
        let theirs = expr_lang::compile(f.src)
            .map_err(|e| format!("compile: {e}"))
            .and_then(|p| match s.el_env.run(&p, &s.el_ctx) {
                Ok(expr_lang::Value::Bool(b)) if b == want => Ok(p),
                Ok(v) => Err(format!("returned {v:?}, expected {want}")),
                Err(e) => Err(format!("run: {e}")),
            });

        let ours_allocs = allocs_per_call(1000, || {
            black_box(ours.run_bool(black_box(&vars)).unwrap());
        });
        let theirs_allocs = theirs.as_ref().map(|p| {
            allocs_per_call(1000, || {
                black_box(s.el_env.run(p, black_box(&s.el_ctx)).unwrap());
            })
        });

        println!("{}: {}", f.name, f.src);
        let mut g = c.benchmark_group(f.name);
        let id_ours = format!("{}/rampart", f.name);
        g.bench_function("rampart", |b| {
            b.iter_custom(|iters| {
                timed(&id_ours, iters, || {
                    black_box(ours.run_bool(black_box(&vars)).unwrap());
                })
            })
        });
        if let Ok(p) = &theirs {
            let id_theirs = format!("{}/expr-lang", f.name);
            g.bench_function("expr-lang", |b| {
                b.iter_custom(|iters| {
                    timed(&id_theirs, iters, || {
                        black_box(s.el_env.run(p, black_box(&s.el_ctx)).unwrap());
                    })
                })
            });
        }
        g.finish();
        rows.push(Row {
            name: f.name,
            ours_allocs,
            theirs: theirs_allocs.map_err(Clone::clone),
        });
    }

    println!("compile: {COMPILE_SRC}");
    let mut g = c.benchmark_group("compile");
    g.bench_function("rampart", |b| {
        b.iter_custom(|iters| {
            timed("compile/rampart", iters, || {
                black_box(s.env.compile(black_box(COMPILE_SRC)).unwrap());
            })
        })
    });
    g.bench_function("expr-lang", |b| {
        b.iter_custom(|iters| {
            timed("compile/expr-lang", iters, || {
                black_box(expr_lang::compile(black_box(COMPILE_SRC)).unwrap());
            })
        })
    });
    g.finish();
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.1}"))
}

fn print_table(rows: &[Row]) {
    let w = FILTERS
        .iter()
        .map(|f| f.src.len())
        .chain([COMPILE_SRC.len()])
        .max()
        .unwrap_or(10);
    println!();
    println!("Summary (mean ns per evaluation over criterion's measured samples)");
    println!(
        "| {:<10} | {:<w$} | {:>10} | {:>12} | {:>6} | {:>16} | {:>18} |",
        "bench",
        "expression",
        "rampart ns",
        "expr-lang ns",
        "ratio",
        "allocs (rampart)",
        "allocs (expr-lang)"
    );
    println!(
        "|{:-<12}|{:-<w2$}|{:-<12}|{:-<14}|{:-<8}|{:-<18}|{:-<20}|",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        w2 = w + 2
    );
    let line = |name: &str, src: &str, ours: Option<f64>, theirs: Option<f64>, a: String, b| {
        let ratio = match (ours, theirs) {
            (Some(o), Some(t)) if o > 0.0 => format!("{:.1}x", t / o),
            _ => "n/a".to_owned(),
        };
        println!(
            "| {name:<10} | {src:<w$} | {:>10} | {:>12} | {ratio:>6} | {a:>16} | {b:>18} |",
            fmt_ns(ours),
            fmt_ns(theirs),
        );
    };
    for (f, r) in FILTERS.iter().zip(rows) {
        let (theirs_allocs, theirs_ns) = match &r.theirs {
            Ok(a) => (
                format!("{a:.1}"),
                ns_per_iter(&format!("{}/expr-lang", r.name)),
            ),
            Err(e) => (format!("N/A: {e}"), None),
        };
        line(
            r.name,
            f.src,
            ns_per_iter(&format!("{}/rampart", r.name)),
            theirs_ns,
            format!("{:.1}", r.ours_allocs),
            theirs_allocs,
        );
    }
    line(
        "compile",
        COMPILE_SRC,
        ns_per_iter("compile/rampart"),
        ns_per_iter("compile/expr-lang"),
        "-".to_owned(),
        "-".to_owned(),
    );
    println!("ratio = expr-lang ns / rampart ns (higher: rampart faster)");
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    let s = setup();
    let mut rows = Vec::new();
    bench(&mut c, &s, &mut rows);
    c.final_summary();
    print_table(&rows);
}
