//! Entry points for fuzzing: each takes arbitrary bytes or text, runs it through one reader of
//! untrusted input exactly as the product does, and returns. None of them may panic, abort or
//! hang, whatever the input; an `Err` is the right answer to bad input.
//!
//! The `fuzz/` crate (cargo-fuzz, nightly) calls these from its targets, and
//! `tests/it/fuzz_corpus.rs` replays the committed corpus and a short seeded mutation run through
//! them on stable. Inputs that carry options (CSV and workbook ingest) start with one option
//! byte; see each function.

use crate::config::Config;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

/// The outcome of one input: `Ok` when it was read, `Err` with the product's message otherwise.
pub type Outcome = Result<(), String>;

fn defaults() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(Config::defaults)
}

thread_local! {
    /// One scratch directory per thread, for readers that take a path.
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// Writes `bytes` to `name` in this thread's scratch directory and returns its path.
fn scratch_file(name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Some(tempfile::tempdir().map_err(|e| e.to_string())?);
        }
        let dir: &Path = s.as_ref().map(|d| d.path()).ok_or("no scratch directory")?;
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        Ok(path)
    })
}

/// Ingest and features over one file, as `breakdesk run` does (profile detected).
fn ingest_file(cfg: &Config, path: PathBuf) -> Outcome {
    let opts = crate::pipeline::RunOptions {
        input: path,
        history: None,
        profile: None,
        columns: Vec::new(),
        sheet: None,
        preset: None,
    };
    let settings = crate::wiring::run::settings(cfg)?;
    crate::pipeline::run(&settings, &opts, "", &mut |_| {}, &AtomicBool::new(false))
        .map(|_| ())
        .map_err(|e| match e {
            crate::pipeline::PipelineError::TooManyRejects { error, rejects } => {
                let first = rejects
                    .first()
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_default();
                format!("{error}; first: {first}")
            }
            e => e.to_string(),
        })
}

/// CSV ingest: reads the file, detects the profile, types every row (rejects report) and
/// computes the features. The first byte chooses the options, the rest is the file:
/// bits 0–2 the encoding (`utf8`, `lossy`, `windows-1252`, `utf-16le`, `utf-16be`; 5–7 `utf8`),
/// bits 3–4 the delimiter (`auto`, `;`, tab, `|`), bits 5–6 the decimal separator (`auto`, `.`,
/// `,`), bit 7 day-first dates.
pub fn csv_ingest(bytes: &[u8]) -> Outcome {
    let Some((&sel, file)) = bytes.split_first() else {
        return Ok(());
    };
    let mut cfg = defaults().clone();
    let enc = crate::ingest::csv::ENCODINGS;
    cfg.ingest.encoding = enc.get(usize::from(sel & 7)).unwrap_or(&enc[0]).to_string();
    cfg.ingest.delimiter = ["auto", ";", "\t", "|"][usize::from((sel >> 3) & 3)].to_string();
    cfg.ingest.decimal = ["auto", ".", ",", "auto"][usize::from((sel >> 5) & 3)].to_string();
    cfg.ingest.day_first = sel & 0x80 != 0;
    // Rows that do not read are reported and left out; the rest go on to the features.
    cfg.ingest.max_reject_share = 0.99;
    let path = scratch_file("input.csv", file)?;
    ingest_file(&cfg, path)
}

/// Workbook ingest: as [`csv_ingest`], for a workbook. The first byte's bits 0–1 choose the
/// extension the file is read as (`.xlsx`, `.xls`, `.ods`, `.xlsb`), the rest is the file.
pub fn workbook_ingest(bytes: &[u8]) -> Outcome {
    let Some((&sel, file)) = bytes.split_first() else {
        return Ok(());
    };
    let ext = ["xlsx", "xls", "ods", "xlsb"][usize::from(sel & 3)];
    let mut cfg = defaults().clone();
    // A sheet larger than this is refused before it is read (the product's default is larger).
    cfg.ingest.max_cells = cfg.ingest.max_cells.min(1_000_000);
    cfg.ingest.max_reject_share = 0.99;
    let path = scratch_file(&format!("input.{ext}"), file)?;
    ingest_file(&cfg, path)
}

/// The fields an expression may name, and the rows it is evaluated on.
const EXPR_FIELDS: [&str; 6] = [
    "difference",
    "comment",
    "status",
    "tolerance",
    "amount",
    "desk",
];

struct ExprRow(Vec<crate::expr::Value<'static>>);

impl crate::expr::Row for ExprRow {
    fn get(&self, field: usize) -> crate::expr::Value<'_> {
        self.0
            .get(field)
            .cloned()
            .unwrap_or(crate::expr::Value::Missing)
    }
}

fn expr_rows() -> Vec<ExprRow> {
    use crate::expr::Value::{Bool, Missing, Num, Str};
    use std::borrow::Cow::Borrowed;
    vec![
        ExprRow(vec![
            Num(1500.25),
            Str(Borrowed("FX revaluation, in line with previous months")),
            Str(Borrowed("pending")),
            Num(0.01),
            Num(-2.5e9),
            Str(Borrowed("RATES")),
        ]),
        ExprRow(vec![
            Num(f64::NAN),
            Str(Borrowed("")),
            Missing,
            Num(f64::INFINITY),
            Num(-0.0),
            Bool(true),
        ]),
        ExprRow(vec![
            Num(f64::MIN_POSITIVE / 4.0),
            Str(Borrowed("ÄÖ ß 日本 \u{feff}")),
            Num(f64::MAX),
            Num(f64::NEG_INFINITY),
            Num(1e-300),
            Str(Borrowed("1e308")),
        ]),
    ]
}

/// The rules' expression language: compiles `text` against a fixed set of fields
/// (`difference`, `comment`, `status`, `tolerance`, `amount`, `desk`, and other lower-case names)
/// and evaluates it on rows
/// holding ordinary values, NaN, infinities, -0.0, subnormals and missing cells.
pub fn rules_expression(text: &str) -> Outcome {
    // The named fields, and any other lower-case name (so the rules' own field names compile
    // too); a name with a capital or a dot is an unknown field.
    let schema = |name: &str| {
        EXPR_FIELDS
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
            .or_else(|| {
                (!name.contains(|c: char| c.is_ascii_uppercase() || c == '.'))
                    .then_some(name.len() % EXPR_FIELDS.len())
            })
    };
    let e = crate::expr::Expr::compile(text, &schema).map_err(|e| e.to_string())?;
    for row in expr_rows() {
        let _ = e.eval(&row);
        let _ = e.matches(&row);
    }
    Ok(())
}

/// The cases a feedback file is imported against: one open break per profile.
pub const FEEDBACK_CASES: [(&str, &str, &str); 3] = [
    ("gl_ihub", "00000|201000|1750|USD", "2024-05-01"),
    ("gl_ihub", "00000|201000|1750|EUR", "2024-05-02"),
    ("trades", "RATES|T-1001", "2024-05-01"),
];

/// A scratch store holding [`FEEDBACK_CASES`], all pending review.
struct FeedbackStore {
    store: crate::store::Store,
    _dir: tempfile::TempDir,
}

fn feedback_store() -> Result<FeedbackStore, String> {
    use crate::cases::{BreakInput, Cases};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = crate::store::Store::open(dir.path()).map_err(|e| e.to_string())?;
    let inputs: Vec<BreakInput> = FEEDBACK_CASES
        .iter()
        .map(|(profile, key, date)| {
            let date = date.parse().map_err(|e| format!("{e}"))?;
            Ok(BreakInput {
                profile: profile.to_string(),
                key: key.to_string(),
                start_date: date,
                date,
                bucket: "Timing".into(),
                bucket_rule: "timing_cutoff".into(),
                confidence: 0.75,
                severity: "medium".into(),
                summary: format!("{key}: GL ahead of sub-ledger by 250.50"),
                score: 0.5,
                rank: 1,
                difference: 250.5,
                model_version: "iforest-v1".into(),
                row: serde_json::Map::new(),
            })
        })
        .collect::<Result<_, String>>()?;
    Cases::new(&store)
        .upsert_batch(&inputs, &vec![false; inputs.len()])
        .map_err(|e| e.to_string())?;
    Ok(FeedbackStore { store, _dir: dir })
}

thread_local! {
    static FEEDBACK_STORE: RefCell<Option<FeedbackStore>> = const { RefCell::new(None) };
}

/// The feedback file: read as `breakdesk feedback import` does (with no profile given, and with
/// the `gl_ihub` and `trades` profiles telling which key columns to look for), then imported by
/// an analyst into a scratch store holding [`FEEDBACK_CASES`]. A store an import changed is
/// replaced before the next input, so every input meets the same cases.
pub fn feedback_file(bytes: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(bytes);
    let actor = crate::cases::Actor::analyst("fuzz");
    let mut outcomes = Vec::new();
    for profile in [None, Some("gl_ihub"), Some("trades")] {
        let rows = match crate::feedback_file::parse(&text, "feedback.csv", profile) {
            Ok(rows) => rows,
            Err(e) => {
                outcomes.push(Err(e.to_string()));
                continue;
            }
        };
        outcomes.push(FEEDBACK_STORE.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(feedback_store()?);
            }
            let fs = slot.as_ref().ok_or("no scratch store")?;
            let out = crate::cases::Cases::new(&fs.store).import_feedback(&rows, &actor);
            if matches!(out, Ok(r) if r.applied > 0) {
                *slot = None;
            }
            out.map(|_| ()).map_err(|e| e.to_string())
        }));
    }
    any_ok(outcomes)
}

/// `Ok` when any way of reading the input succeeded, else the last error.
fn any_ok(outcomes: Vec<Outcome>) -> Outcome {
    let mut last = Ok(());
    for o in outcomes {
        if o.is_ok() {
            return o;
        }
        last = o;
    }
    last
}

fn record_readers() -> &'static [crate::realtime::record::RecordReader] {
    static READERS: OnceLock<Vec<crate::realtime::record::RecordReader>> = OnceLock::new();
    READERS.get_or_init(|| {
        let Ok(settings) = crate::wiring::run::settings(defaults()) else {
            return Vec::new();
        };
        ["gl_ihub", "trades"]
            .iter()
            .filter_map(|name| {
                let p = crate::profile::Profile::builtin(name)?;
                let resolved = p.resolve(&p.canonical_header(), "records", &[]).ok()?;
                Some(
                    crate::realtime::record::RecordReader::new(resolved, &settings.ingest.prepare)
                        .with_limits(settings.record_limits),
                )
            })
            .collect()
    })
}

/// A service record: the body of `POST /records` (JSON), read by the service's record reader
/// for the `gl_ihub` and `trades` profiles, then turned into the account state the stream keeps.
pub fn service_record(bytes: &[u8]) -> Outcome {
    let body: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(record) = body else {
        return Err("the body must be a JSON object".into());
    };
    let readers = record_readers();
    if readers.len() != 2 {
        return Err("the gl_ihub and trades profiles do not resolve their own header".into());
    }
    let outcomes = readers
        .iter()
        .map(|reader| {
            reader
                .read(&record)
                .map(|rec| {
                    let past = crate::realtime::features::Past::of(&rec);
                    let _ =
                        crate::realtime::features::run_context(&past, std::slice::from_ref(&past));
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    any_ok(outcomes)
}

/// A config file: the user's TOML merged over the embedded defaults and checked, then converted
/// into each layer's options as a run does.
pub fn config_file(text: &str) -> Outcome {
    let cfg = crate::wiring::check::from_user_toml(text, Path::new("config.toml"))
        .map_err(|e| e.to_string())?;
    let settings = crate::wiring::run::settings(&cfg)?;
    let _ = crate::pipeline::train_spec(&settings, &crate::pipeline::DetectOptions::default());
    Ok(())
}
