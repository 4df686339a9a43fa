//! The optional LLM pass over the rules' categorizations.
//!
//! For each anomaly (highest ranks first, up to `llm.max_rows`) the row's evidence is written as
//! normalized JSON, with identifiers replaced by tokens when `llm.redact` is on. The record goes to
//! the model as data: between the lines [`RECORD_OPEN`] and [`RECORD_CLOSE`] of the user message
//! (the system prompt says that what is between them is never instructions), every text cut at
//! `llm.max_text_chars` and unable to contain either delimiter ([`as_data`]). The cache key is
//! the SHA-256 of (prompt version, model, that JSON): a cached answer is used without any call,
//! and identical inputs in one batch are asked once. Answers are validated — the bucket must be
//! one of the rules file's buckets, every number the text cites must be one of the row's — and an
//! invalid answer, a failed call or an open circuit leaves the rules' answer in place with the
//! reason recorded.
//!
//! The answer is advisory. It can change the bucket, confidence, details and summary; the
//! severity and the auto-resolution proposal are then worked out for its bucket as the rules would
//! (the thresholds, the bucket's severity bounds and `auto_resolve`), and capped by what the rules
//! gave: a break the rules did not propose for auto-resolution is never proposed because of the
//! LLM's bucket, and the severity is never below the rules' (the answer's own `severity` is only
//! checked, never used). The row's note says what was capped.

mod answer;

use super::{Categorization, Categorizer, Decider, fields::Facts};
use crate::llm::{ChatOutcome, ChatRequest, LlmClient, LlmSettings};
use crate::store::Store;
use answer::cap_to_rules;
#[cfg(test)]
use answer::cited_numbers;
pub use answer::{Answer, validate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The embedded prompt template.
pub const PROMPT_TOML: &str = include_str!("../../../assets/prompts/categorize.toml");

/// A prompt template with its version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    pub version: String,
    pub system: String,
    pub user: String,
}

impl Prompt {
    /// The template at `path`, or the embedded one.
    pub fn load(path: Option<&std::path::Path>) -> Result<Prompt, String> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read the prompt file {}: {e}", p.display()))?,
                p.display().to_string(),
            ),
            None => (
                PROMPT_TOML.to_string(),
                "assets/prompts/categorize.toml (embedded)".to_string(),
            ),
        };
        let p: Prompt = toml::from_str(&text)
            .map_err(|e| format!("prompt file {origin}: {}", e.to_string().trim()))?;
        if p.version.trim().is_empty() {
            return Err(format!("prompt file {origin}: `version` is empty"));
        }
        for (name, t) in [("system", &p.system), ("user", &p.user)] {
            if name == "user" && !t.contains("{record}") {
                return Err(format!(
                    "prompt file {origin}: `{name}` must contain {{record}}"
                ));
            }
        }
        Ok(p)
    }
}

/// What the LLM pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LlmReport {
    /// Anomalies considered.
    pub rows: usize,
    /// Distinct inputs among them.
    pub distinct: usize,
    /// Distinct inputs answered from the cache.
    pub cache_hits: usize,
    /// Distinct inputs sent to the LLM.
    pub asked: usize,
    /// HTTP requests made (retries included).
    pub http_requests: u64,
    /// Rows whose categorization now comes from the LLM (fresh or cached).
    pub used: usize,
    /// Rows that kept the rules' answer, by reason.
    pub fallbacks: BTreeMap<String, usize>,
    /// Whether the circuit opened (calls stopped) during the run.
    pub circuit_open: bool,
}

impl LlmReport {
    /// Share of distinct inputs answered from the cache.
    pub fn hit_rate(&self) -> f64 {
        if self.distinct == 0 {
            0.0
        } else {
            self.cache_hits as f64 / self.distinct as f64
        }
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "LLM: {} anomalies, {} distinct, {} from the cache (hit rate {:.0}%), {} asked in {} requests, {} answers used",
            self.rows,
            self.distinct,
            self.cache_hits,
            self.hit_rate() * 100.0,
            self.asked,
            self.http_requests,
            self.used
        );
        if !self.fallbacks.is_empty() {
            let f: Vec<String> = self
                .fallbacks
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            s.push_str(&format!("; kept the rules' answer for {}", f.join(", ")));
        }
        if self.circuit_open {
            s.push_str("; calls stopped after repeated failures");
        }
        s
    }
}

/// What the LLM pass needs (`[llm]`, parsed).
#[derive(Debug, Clone)]
pub struct LlmOptions {
    /// Whether the pass runs at all.
    pub enabled: bool,
    /// The client's settings, without the API key (read from the environment when a client is
    /// made: [`LlmOptions::client_settings`]).
    pub client: LlmSettings,
    /// The environment variable holding the API key; None: no key.
    pub api_key_env: Option<String>,
    /// The prompt template file; None: the embedded one.
    pub prompt: Option<std::path::PathBuf>,
    /// Identifiers are replaced by tokens in what is sent.
    pub redact: bool,
    /// Most anomalies asked about in a run; 0: all.
    pub max_rows: usize,
    /// Every text sent is cut at this many characters.
    pub max_text_chars: usize,
}

impl Default for LlmOptions {
    /// As `config/default.toml` sets `[llm]`.
    fn default() -> Self {
        let mut client = LlmSettings::new("http://127.0.0.1:11434/v1", "llama3.1");
        client.timeout = Duration::from_secs(30);
        client.requests_per_minute = 60;
        client.tokens_per_minute = 100_000;
        client.concurrency = 8;
        LlmOptions {
            enabled: false,
            client,
            api_key_env: Some("BREAKDESK_LLM_API_KEY".into()),
            prompt: None,
            redact: true,
            max_rows: 500,
            max_text_chars: 500,
        }
    }
}

impl LlmOptions {
    /// The client's settings, with the API key from the environment (a blank key is none).
    pub fn client_settings(&self) -> LlmSettings {
        let mut s = self.client.clone();
        s.api_key = self
            .api_key_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.trim().is_empty());
        s
    }
}

/// One row's question: its inputs (redacted), the cache key and the tokens to restore.
struct Question {
    record: Value,
    key: [u8; 32],
    tokens: Vec<(String, String)>,
}

/// The JSON schema of an answer.
pub fn answer_schema(buckets: &[String]) -> Value {
    json!({
        "type": "object",
        "properties": {
            "bucket": {"type": "string", "enum": buckets},
            "severity": {"type": "string", "enum": ["Low", "Medium", "High", "Critical"]},
            "confidence": {"type": "number"},
            "summary": {"type": "string"},
            "details": {"type": "string"}
        },
        "required": ["bucket", "severity", "confidence", "summary", "details"],
        "additionalProperties": false
    })
}

fn round6(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    let r = (v * 1e6).round() / 1e6;
    if r.fract() == 0.0 && r.abs() < 9e15 {
        json!(r as i64)
    } else {
        json!(r)
    }
}

/// Collapses whitespace so that spacing differences do not make new cache keys.
fn norm_text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The line before the record in the user message.
pub const RECORD_OPEN: &str = "<<<RECORD";
/// The line after the record in the user message.
pub const RECORD_CLOSE: &str = "RECORD>>>";
/// Ends a text cut at `llm.max_text_chars`.
pub const TRUNCATED: &str = "… [truncated]";

/// A text from the file as it goes to the model: no run of three `<` or `>` (so neither
/// delimiter can appear in it and close the block early: `RECORD>>>` becomes `RECORD>> >`), and
/// at most `max_chars` characters, then [`TRUNCATED`].
pub fn as_data(text: &str, max_chars: usize) -> String {
    let mut safe = String::with_capacity(text.len());
    let mut run = 0usize;
    let mut prev = '\0';
    for c in text.chars() {
        run = if (c == '<' || c == '>') && c == prev {
            run + 1
        } else {
            1
        };
        if run == 3 {
            safe.push(' ');
            run = 1;
        }
        safe.push(c);
        prev = c;
    }
    match safe.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}{TRUNCATED}", safe[..cut].trim_end()),
        None => safe,
    }
}

/// [`as_data`] on every text of a record.
fn texts_as_data(v: &mut Value, max_chars: usize) {
    match v {
        Value::String(s) => *s = as_data(s, max_chars),
        Value::Array(a) => a.iter_mut().for_each(|x| texts_as_data(x, max_chars)),
        Value::Object(m) => m.values_mut().for_each(|x| texts_as_data(x, max_chars)),
        _ => {}
    }
}

impl Categorizer<'_> {
    /// The evidence of row `k` as JSON (sorted keys), and the identifier tokens when redacting.
    /// Every text is [`as_data`], cut at `max_chars` after the identifiers are replaced.
    fn record(
        &self,
        facts: &Facts,
        k: usize,
        c: &Categorization,
        redact: bool,
        max_chars: usize,
    ) -> (Value, Vec<(String, String)>) {
        let f = &self.f;
        let mut m = Map::new();
        let mut tokens: Vec<(String, String)> = Vec::new();
        let key = f.key.map(|i| facts.text(i, k)).unwrap_or_default();
        let mut redact_text = |s: &str| -> String {
            let mut out = s.to_string();
            if redact {
                for part in key.split('|').map(str::trim).filter(|p| !p.is_empty()) {
                    let tok = match tokens.iter().find(|(_, v)| v == part) {
                        Some((t, _)) => t.clone(),
                        None => {
                            let t = format!("KEY{}", tokens.len() + 1);
                            tokens.push((t.clone(), part.to_string()));
                            t
                        }
                    };
                    out = out.replace(part, &tok);
                }
            }
            out
        };
        m.insert("key".into(), json!(redact_text(&key)));
        let comment = norm_text(&facts.text(f.comment, k));
        m.insert("comment".into(), json!(redact_text(&comment)));
        if let Some(d) = f.date {
            m.insert("date".into(), json!(facts.text(d, k)));
        }
        m.insert("status".into(), json!(norm_text(&facts.text(f.status, k))));
        m.insert(
            "data_quality_findings".into(),
            json!(norm_text(&facts.text(f.dq, k))),
        );
        m.insert("left_side".into(), json!(self.lhs_name));
        m.insert("right_side".into(), json!(self.rhs_name));
        let mut num = |name: &str, field: usize| {
            m.insert(name.into(), round6(facts.num(field, k)));
        };
        num("left_value", f.lhs);
        num("right_value", f.rhs);
        num("difference", f.difference);
        num("tolerance", f.tolerance);
        num("relative_difference", f.rel_difference);
        num("days_since_previous_record", f.days_since_last);
        num("break_age_days", f.break_age);
        num("records_out_of_tolerance_in_run", f.run_len);
        num("run_days", f.run_days);
        num("run_cleared", f.run_closed);
        if let Some(ch) = f.change {
            num("change_of_difference", ch);
        }
        for (name, field) in &f.run_extra {
            num(name, *field);
        }
        if let Some(cur) = f.currency {
            m.insert("currency".into(), json!(facts.text(cur, k)));
        }
        if let Some(t) = f.top_features {
            let names: Vec<String> = facts
                .text(t, k)
                .split("; ")
                .filter_map(|p| p.split_whitespace().next().map(str::to_string))
                .collect();
            m.insert("features_driving_the_score".into(), json!(names));
        }
        m.insert("profile".into(), json!(self.profile));
        m.insert("rules_bucket".into(), json!(c.bucket));
        m.insert("rules_rule".into(), json!(c.rule));
        let mut record = Value::Object(m);
        texts_as_data(&mut record, max_chars);
        (record, tokens)
    }
}

fn restore(text: &str, tokens: &[(String, String)]) -> String {
    let mut out = text.to_string();
    // Longest tokens first so that KEY12 is not restored as KEY1 + "2".
    let mut t: Vec<&(String, String)> = tokens.iter().collect();
    t.sort_by_key(|(tok, _)| std::cmp::Reverse(tok.len()));
    for (tok, v) in t {
        out = out.replace(tok, v);
    }
    out
}

/// The template with its `{name}` placeholders replaced in one pass: a value is never read as
/// a template, so a record that contains `{rules_bucket}` keeps it as written.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template.trim();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hit = vars.iter().find(|(k, _)| {
            after
                .strip_prefix(k)
                .is_some_and(|tail| tail.starts_with('}'))
        });
        match hit {
            Some((k, v)) => {
                out.push_str(v);
                rest = &after[k.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn cache_key(version: &str, model: &str, record: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update([0]);
    h.update(model.as_bytes());
    h.update([0]);
    // serde_json maps keep sorted keys: the same inputs give the same bytes.
    h.update(record.to_string().as_bytes());
    h.finalize().into()
}

fn reason_kind(reason: &str) -> String {
    // Group fallback reasons for the report by their leading words.
    let r = reason.split(['(', '"']).next().unwrap_or(reason).trim();
    r.to_string()
}

/// Sends `requests` with `client`, telling `on_answer` (when given) `(answers received, requests)`
/// first with 0 and then after each answer, on the caller's thread. The client reports answers
/// from its own tasks, so with `on_answer` the batch runs on a scoped thread while this one
/// relays its answers.
fn ask_all(
    client: &LlmClient,
    requests: &[ChatRequest],
    on_answer: Option<&mut dyn FnMut(usize, usize)>,
) -> Vec<ChatOutcome> {
    let Some(on_answer) = on_answer else {
        return client.complete_all(requests, |_, _| {});
    };
    let total = requests.len();
    on_answer(0, total);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let batch = scope.spawn(move || {
            client.complete_all(requests, move |_, _| {
                let _ = tx.send(());
            })
        });
        // Ends when the batch is over and its callback (the sender) is dropped.
        for (done, ()) in rx.iter().enumerate() {
            on_answer(done + 1, total);
        }
        match batch.join() {
            Ok(outcomes) => outcomes,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Asks the LLM about `order` (indices into `cats`, highest priority first) and replaces the
/// rules' answers where the LLM gives a valid one. `client` is built by the caller (from
/// [`LlmOptions::client_settings`]); nothing is sent when every answer is in the cache. `on_answer`, when given,
/// follows the calls: `(answers received, questions sent)` — 0 first, then after each answer;
/// identical inputs are asked once and cached answers not at all, so the count can be lower
/// than the rows.
#[allow(clippy::too_many_arguments)]
pub fn refine(
    cfg: &LlmOptions,
    prompt: &Prompt,
    client: &LlmClient,
    store: &Store,
    categorizer: &Categorizer<'_>,
    facts: &Facts,
    cats: &mut [Categorization],
    order: &[usize],
    on_answer: Option<&mut dyn FnMut(usize, usize)>,
) -> LlmReport {
    let mut report = LlmReport::default();
    let rows = rows_to_ask(cfg, cats, order);
    report.rows = rows.len();
    let buckets: Vec<String> = categorizer
        .file
        .buckets
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let bucket_text: String = categorizer
        .file
        .buckets
        .iter()
        .map(|b| format!("- {}: {}", b.name, b.signature))
        .collect::<Vec<_>>()
        .join("\n");
    let system = fill(&prompt.system, &[("buckets", bucket_text)]);
    let model = client.settings().model.clone();
    let questions: Vec<Question> = rows
        .iter()
        .map(|&k| {
            let (record, tokens) =
                categorizer.record(facts, k, &cats[k], cfg.redact, cfg.max_text_chars);
            let key = cache_key(&prompt.version, &model, &record);
            Question {
                record,
                key,
                tokens,
            }
        })
        .collect();
    let distinct = distinct_questions(&questions);
    report.distinct = distinct.len();
    let (mut contents, misses) = read_cache(store, &questions, &distinct, &mut report);
    if !misses.is_empty() {
        let requests = chat_requests(prompt, &system, &buckets, &questions, &misses, &rows, cats);
        report.asked = requests.len();
        let outcomes: Vec<ChatOutcome> = ask_all(client, &requests, on_answer);
        take_answers(store, &questions, &misses, outcomes, &mut contents);
        let stats = client.stats();
        report.http_requests = stats.http_requests;
        report.circuit_open = stats.circuit_open;
    }
    for (q, question) in questions.iter().enumerate() {
        let k = rows[q];
        let Some((content, decider)) = contents.get(&question.key) else {
            continue;
        };
        let outcome = content
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|c| validate(c, &buckets, &categorizer.file.fallback, &question.record));
        match outcome {
            Ok(a) => {
                cats[k] = use_answer(
                    categorizer,
                    facts,
                    k,
                    &cats[k],
                    a,
                    *decider,
                    &model,
                    question,
                );
                report.used += 1;
            }
            Err(reason) => {
                *report.fallbacks.entry(reason_kind(&reason)).or_default() += 1;
                cats[k].note = format!("LLM answer not used: {reason}");
            }
        }
    }
    report
}

/// The rows to ask about: `order` without the breaks their own comment explains, at most
/// `llm.max_rows` of them.
fn rows_to_ask(cfg: &LlmOptions, cats: &[Categorization], order: &[usize]) -> Vec<usize> {
    // A break its own comment explains keeps the explanation's bucket: it is not asked about.
    let mut order: Vec<usize> = order
        .iter()
        .copied()
        .filter(|k| !cats.get(*k).is_some_and(|c| c.explained))
        .collect();
    let take = if cfg.max_rows == 0 {
        order.len()
    } else {
        cfg.max_rows.min(order.len())
    };
    order.truncate(take);
    order
}

/// Indices into `questions` of the distinct inputs.
fn distinct_questions(questions: &[Question]) -> Vec<usize> {
    // Distinct inputs, first occurrence wins.
    let mut distinct: Vec<usize> = Vec::new();
    let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
    for (q, question) in questions.iter().enumerate() {
        seen.entry(question.key).or_insert_with(|| {
            distinct.push(q);
            distinct.len() - 1
        });
    }
    distinct
}

/// Each answer's content (or why there is none) and who gave it, by cache key.
type Contents = HashMap<[u8; 32], (Result<String, String>, Decider)>;

/// The cached answers of the `distinct` questions, and the questions not in the cache.
fn read_cache(
    store: &Store,
    questions: &[Question],
    distinct: &[usize],
    report: &mut LlmReport,
) -> (Contents, Vec<usize>) {
    let mut contents: Contents = HashMap::new();
    let mut misses: Vec<usize> = Vec::new();
    for &q in distinct {
        match store.get_llm_answer(&questions[q].key) {
            Ok(Some(bytes)) => {
                report.cache_hits += 1;
                contents.insert(
                    questions[q].key,
                    (
                        Ok(String::from_utf8_lossy(&bytes).to_string()),
                        Decider::Cache,
                    ),
                );
            }
            Ok(None) => misses.push(q),
            Err(e) => {
                tracing::warn!(error = %e, "LLM cache read failed; asking again");
                misses.push(q);
            }
        }
    }
    (contents, misses)
}

/// The chat requests of the `misses` (the record as data, and the rules' answer).
fn chat_requests(
    prompt: &Prompt,
    system: &str,
    buckets: &[String],
    questions: &[Question],
    misses: &[usize],
    rows: &[usize],
    cats: &[Categorization],
) -> Vec<ChatRequest> {
    let schema = answer_schema(buckets);
    misses
        .iter()
        .map(|&q| {
            let qn = &questions[q];
            let k = rows[q];
            let user = fill(
                &prompt.user,
                &[
                    (
                        "record",
                        format!(
                            "{RECORD_OPEN}\n{}\n{RECORD_CLOSE}",
                            serde_json::to_string_pretty(&qn.record).unwrap_or_default()
                        ),
                    ),
                    ("rules_bucket", cats[k].bucket.clone()),
                    ("rules_rule", cats[k].rule.clone()),
                    ("rules_confidence", format!("{:.2}", cats[k].confidence)),
                ],
            );
            ChatRequest {
                system: system.to_string(),
                user,
                schema_name: "break_category".into(),
                schema: schema.clone(),
            }
        })
        .collect()
}

/// Records the `outcomes` of the `misses` in `contents` and caches the answers received.
fn take_answers(
    store: &Store,
    questions: &[Question],
    misses: &[usize],
    outcomes: Vec<ChatOutcome>,
    contents: &mut Contents,
) {
    let mut to_cache: Vec<([u8; 32], Vec<u8>)> = Vec::new();
    for (&q, o) in misses.iter().zip(outcomes) {
        let key = questions[q].key;
        match o.result {
            Ok(content) => {
                to_cache.push((key, content.clone().into_bytes()));
                contents.insert(key, (Ok(content), Decider::Llm));
            }
            Err(e) => {
                contents.insert(key, (Err(format!("LLM call failed: {e}")), Decider::Llm));
            }
        }
    }
    // Answers are durable before they count: a failed write only costs a repeated call later.
    if let Err(e) = store.put_llm_answers(&to_cache) {
        tracing::warn!(error = %e, "LLM cache write failed");
    }
}

/// Row `k`'s categorization from a valid answer `a`, within what the `rules` gave.
#[allow(clippy::too_many_arguments)]
fn use_answer(
    categorizer: &Categorizer<'_>,
    facts: &Facts,
    k: usize,
    rules: &Categorization,
    a: Answer,
    decider: Decider,
    model: &str,
    question: &Question,
) -> Categorization {
    let rules = rules.clone();
    let mut c = categorizer.finish(
        facts,
        k,
        a.bucket,
        a.confidence,
        format!("llm:{model}"),
        restore(&a.details, &question.tokens),
    );
    c.decided_by = decider;
    let next = categorizer
        .file
        .bucket(&c.bucket)
        .map(|b| format!(" Next step: {}", b.next_step))
        .unwrap_or_default();
    let summary = restore(&a.summary, &question.tokens);
    c.summary = if summary.contains("Next step") {
        summary
    } else {
        format!("{summary}{next}")
    };
    let mut notes = Vec::new();
    if c.bucket != rules.bucket {
        notes.push(format!("rules chose {} ({})", rules.bucket, rules.rule));
    }
    notes.extend(cap_to_rules(&mut c, &rules));
    c.note = notes.join("; ");
    c
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::*;

    fn buckets() -> Vec<String> {
        ["Timing Issue", "Rounding Error", "New Issue"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn numbers_cited_skip_dates_identifiers_and_small_counts() {
        let n = cited_numbers(
            "On 2024-01-05 KEY1 moved by -1,234.50 (GL 20,000.00) for 3 days; 12/31/2024 at 10:30, +250 and 0.5%",
        );
        assert_eq!(n, vec![-1234.5, 20000.0, 250.0, 0.5]);
    }

    #[test]
    fn validation_accepts_row_numbers_and_rejects_invented_ones() {
        let record = json!({"difference": -1234.5, "left_value": 20000, "relative_difference": 0.005, "key": "KEY1|KEY2"});
        let ok = r#"{"bucket":"timing issue","severity":"Low","confidence":0.9,"summary":"GL 20,000.00 differs by 1,234.50 (0.5%) on KEY2.","details":"moved"}"#;
        let a = validate(ok, &buckets(), "New Issue", &record).unwrap();
        assert_eq!(a.bucket, "Timing Issue");
        assert_eq!(a.confidence, 0.9);
        let bad = ok.replace("1,234.50", "1,243.50");
        assert_eq!(
            validate(&bad, &buckets(), "New Issue", &record).unwrap_err(),
            "cites 1243.5 which is not in the row"
        );
        let other = ok.replace("timing issue", "Cosmic Rays");
        assert!(
            validate(&other, &buckets(), "New Issue", &record)
                .unwrap_err()
                .contains("\"Cosmic Rays\" is not in the list")
        );
        assert!(
            validate("{not json", &buckets(), "New Issue", &record)
                .unwrap_err()
                .starts_with("answer is not JSON")
        );
        let fenced = format!("```json\n{ok}\n```");
        assert!(validate(&fenced, &buckets(), "New Issue", &record).is_ok());
        let new_issue = ok
            .replace("timing issue", "New Issue")
            .replace("\"moved\"", "\"\"");
        assert_eq!(
            validate(&new_issue, &buckets(), "New Issue", &record).unwrap_err(),
            "New Issue without details"
        );
        let sev = ok.replace("\"Low\"", "\"Urgent\"");
        assert!(validate(&sev, &buckets(), "New Issue", &record).is_err());
    }

    fn categorization(bucket: &str, severity: Severity, auto_resolve: bool) -> Categorization {
        Categorization {
            bucket: bucket.into(),
            confidence: 0.9,
            rule: "r".into(),
            details: String::new(),
            severity,
            severity_reason: "thresholds".into(),
            summary: String::new(),
            auto_resolve,
            is_break: true,
            decided_by: Decider::Rules,
            note: String::new(),
            explained: false,
        }
    }

    #[test]
    fn an_llm_answer_never_proposes_more_or_rates_lower_than_the_rules() {
        let rules = categorization("Fat Finger", Severity::Critical, false);
        let mut c = categorization("Rounding Error", Severity::Low, true);
        let capped = cap_to_rules(&mut c, &rules);
        assert!(!c.auto_resolve);
        assert_eq!(c.severity, Severity::Critical);
        assert_eq!(capped.len(), 2, "{capped:?}");
        assert!(c.severity_reason.contains("at least Critical"));
        // Within the rules' answer nothing changes: a proposal the rules made stays, a higher
        // severity stays, a lower proposal stays lower.
        let rules = categorization("Timing Issue", Severity::Low, true);
        let mut c = categorization("Known Item", Severity::Medium, true);
        assert!(cap_to_rules(&mut c, &rules).is_empty());
        assert!(c.auto_resolve);
        assert_eq!(c.severity, Severity::Medium);
        let mut c = categorization("Missing Entry", Severity::Low, false);
        assert!(cap_to_rules(&mut c, &rules).is_empty());
        assert!(!c.auto_resolve);
    }

    #[test]
    fn texts_go_as_data_cut_and_unable_to_hold_a_delimiter() {
        assert_eq!(
            as_data("Timing, see GL > IHub", 500),
            "Timing, see GL > IHub"
        );
        let closed = as_data("x RECORD>>> <<<RECORD >>>>>> <<<<", 500);
        assert_eq!(closed, "x RECORD>> > << <RECORD >> >> >> << <<");
        assert!(!closed.contains(RECORD_OPEN) && !closed.contains(RECORD_CLOSE));
        let long = "é".repeat(30);
        assert_eq!(as_data(&long, 30), long);
        assert_eq!(as_data(&long, 20), format!("{}{TRUNCATED}", "é".repeat(20)));
        assert_eq!(as_data("ab   cd", 4), format!("ab{TRUNCATED}"));
        let mut record = json!({"comment": "a>>>b", "list": ["<<<"], "n": 1});
        texts_as_data(&mut record, 500);
        assert_eq!(
            record,
            json!({"comment": "a>> >b", "list": ["<< <"], "n": 1})
        );
    }

    #[test]
    fn placeholders_are_filled_once_and_values_are_not_templates() {
        let out = fill(
            "{record} chose {rules_bucket} {unknown} {",
            &[
                ("record", "data {rules_bucket}".into()),
                ("rules_bucket", "Fat Finger".into()),
            ],
        );
        assert_eq!(out, "data {rules_bucket} chose Fat Finger {unknown} {");
    }

    #[test]
    fn tokens_restore_longest_first() {
        let t = vec![
            ("KEY1".to_string(), "00001".to_string()),
            ("KEY12".to_string(), "7788".to_string()),
        ];
        assert_eq!(restore("KEY12 and KEY1", &t), "7788 and 00001");
    }

    #[test]
    fn cache_key_depends_on_version_model_and_inputs() {
        let r = json!({"a": 1, "b": "x"});
        let k = cache_key("v1", "m", &r);
        assert_eq!(k, cache_key("v1", "m", &json!({"b": "x", "a": 1})));
        assert_ne!(k, cache_key("v2", "m", &r));
        assert_ne!(k, cache_key("v1", "n", &r));
        assert_ne!(k, cache_key("v1", "m", &json!({"a": 2, "b": "x"})));
    }

    #[test]
    fn embedded_prompt_loads() {
        let p = Prompt::load(None).unwrap();
        assert_eq!(p.version, "categorize-v2");
        assert!(p.system.contains("{buckets}"));
    }
}
