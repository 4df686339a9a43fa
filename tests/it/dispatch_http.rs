//! Jira and webhook dispatch against loopback HTTP servers (tests/it/support/http_server.rs): a fake
//! Jira that creates issues and searches them by label, and a task API that honours
//! Idempotency-Key. Creation, duplicate suppression after a timeout, 429 with Retry-After, 500,
//! 400, and what the cases and the store record.

use crate::support::dispatch_fixtures as fixtures;
use crate::support::http_server;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use breakdesk::cases::{Case, Cases, Channel, DispatchState, EventAction};
use breakdesk::dispatch::{
    self, DispatchOptions, Dispatcher, ItemOutcome, ItemStatus, Outbox, Payload,
};
use breakdesk::store::Store;
use breakdesk::wiring::dispatch::options;
use chrono::Utc;
use fixtures::{FAST_OUTBOX, SECRET, SECRET_ENV, accepted_cases, alice, config};
use http_server::{HttpServer, Reply, Request};
use serde_json::{Value, json};

/// What the fake servers do with the next create request.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Create and answer at once.
    Ok,
    /// Create, but answer only after this long (the client times out first).
    Slow(Duration),
    /// Create, and answer 201 without a key.
    NoKey,
    /// 429 with `Retry-After` in seconds; nothing created.
    TooMany(u64),
    /// 500; nothing created.
    ServerError,
    /// 400; nothing created.
    BadRequest,
}

// ----- a fake Jira -------------------------------------------------------------------------------

#[derive(Default)]
struct JiraState {
    /// (key, labels, fields) of the issues created.
    issues: Vec<(String, Vec<String>, Value)>,
    script: VecDeque<Step>,
}

fn fake_jira(script: &[Step]) -> (HttpServer, Arc<Mutex<JiraState>>) {
    let state = Arc::new(Mutex::new(JiraState {
        script: script.iter().copied().collect(),
        ..Default::default()
    }));
    let s = Arc::clone(&state);
    let server = HttpServer::start(move |r: &Request| {
        let mut st = s.lock().unwrap();
        if r.method == "GET" && (r.path.ends_with("/search") || r.path.ends_with("/search/jql")) {
            let jql = r.param("jql").unwrap_or("");
            let label = jql
                .strip_prefix("labels = \"")
                .and_then(|rest| rest.split_once('"'))
                .map(|(l, _)| l.to_string())
                .unwrap_or_default();
            let issues: Vec<Value> = st
                .issues
                .iter()
                .filter(|(_, labels, _)| labels.contains(&label))
                .map(|(k, _, _)| json!({"id": "1", "key": k}))
                .collect();
            return Reply::json(200, json!({"issues": issues}));
        }
        if r.method == "POST" && r.path.ends_with("/issue") {
            let step = st.script.pop_front().unwrap_or(Step::Ok);
            let create = |st: &mut JiraState| {
                let key = format!("RECON-{}", 100 + st.issues.len() + 1);
                let fields = r.body["fields"].clone();
                let labels = fields["labels"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                st.issues.push((key.clone(), labels, fields));
                key
            };
            return match step {
                Step::Ok => {
                    let key = create(&mut st);
                    Reply::json(201, json!({"id": "10001", "key": key, "self": "x"}))
                }
                Step::Slow(d) => {
                    let key = create(&mut st);
                    Reply::json(201, json!({"id": "10001", "key": key})).delay(d)
                }
                Step::NoKey => {
                    create(&mut st);
                    Reply::json(201, json!({}))
                }
                Step::TooMany(secs) => Reply::json(429, json!({"errorMessages": ["rate limited"]}))
                    .header("Retry-After", &secs.to_string()),
                Step::ServerError => Reply::json(500, json!({"errorMessages": ["internal"]})),
                Step::BadRequest => Reply::json(
                    400,
                    json!({"errorMessages": [], "errors": {"project": "valid project is required"}}),
                ),
            };
        }
        Reply::json(404, json!({"errorMessages": ["no such resource"]}))
    });
    (server, state)
}

/// `timeout_secs = 5` unless `extra` sets its own.
fn default_timeout(extra: &str) -> &'static str {
    if extra.contains("timeout_secs") {
        ""
    } else {
        "timeout_secs = 5\n"
    }
}

fn jira_config(server: &HttpServer, extra: &str) -> DispatchOptions {
    options(&config(&format!(
        "[jira]\nenabled = true\nbase_url = \"{}\"\nemail = \"robot@example.com\"\ntoken_env = \"{SECRET_ENV}\"\n\
         project = \"RECON\"\nissue_type = \"Task\"\n{}{extra}\n{FAST_OUTBOX}",
        server.url(),
        default_timeout(extra)
    )))
}

fn creates(server: &HttpServer) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

fn flush_all(store: &Store, cfg: &DispatchOptions) -> dispatch::FlushReport {
    let dispatcher = Dispatcher::new(cfg).unwrap();
    Outbox::new(store)
        .flush(&dispatcher, Duration::from_secs(15), |_, _| {})
        .unwrap()
}

fn reload(store: &Store, c: &Case) -> Case {
    Cases::new(store).get(&c.id).unwrap().unwrap()
}

#[test]
fn jira_v3_opens_one_issue_per_case_after_searching_its_label() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_jira(&[]);
    let cfg = jira_config(
        &server,
        "api_version = 3\nlabels = [\"breakdesk\", \"recon-team\"]",
    );
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 2);
    let q = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    assert_eq!(q.ids.len(), 2, "one item per case");
    let report = flush_all(&store, &cfg);
    assert!(report.is_complete(), "{report:?}");

    let requests = server.requests();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("robot@example.com:{SECRET}"))
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(basic.as_str()))
    );
    // Each case: a search by its label, then a create.
    assert_eq!(requests.len(), 4);
    for (pair, case) in requests.chunks(2).zip(&cases) {
        let label = format!("breakdesk-{}", case.id);
        assert_eq!(pair[0].path, "/rest/api/3/search/jql");
        assert_eq!(
            pair[0].param("jql"),
            Some(format!("labels = \"{label}\" ORDER BY created ASC").as_str())
        );
        assert_eq!(pair[1].path, "/rest/api/3/issue");
        let fields = &pair[1].body["fields"];
        assert_eq!(fields["project"]["key"], "RECON");
        assert_eq!(fields["issuetype"]["name"], "Task");
        assert_eq!(fields["labels"], json!([label, "breakdesk", "recon-team"]));
        assert_eq!(fields["description"]["type"], "doc", "v3 sends ADF");
        let adf = fields["description"].to_string();
        assert!(
            adf.contains(&case.ticket) && adf.contains(&case.summary),
            "{adf}"
        );
        assert!(fields["summary"].as_str().unwrap().contains(&case.ticket));
    }
    let st = state.lock().unwrap();
    assert_eq!(st.issues.len(), 2);
    for (case, (key, labels, _)) in cases.iter().zip(&st.issues) {
        let now = reload(&store, case);
        // The key is the one Jira returned.
        assert_eq!(now.jira_key.as_deref(), Some(key.as_str()));
        assert!(now.dispatched);
        let d = now.dispatch(Channel::Jira).unwrap();
        assert_eq!(
            (d.state, d.reference.as_deref()),
            (DispatchState::Sent, Some(key.as_str()))
        );
        let ev = Cases::new(&store).events_for(&case.id).unwrap();
        let actions: Vec<EventAction> = ev.iter().rev().take(3).map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                EventAction::Dispatched,
                EventAction::LinkJira,
                EventAction::DispatchQueued
            ]
        );
        // The label → key map is in the store.
        assert_eq!(
            Outbox::new(&store).jira_key(&labels[0]).unwrap().as_deref(),
            Some(key.as_str())
        );
    }
}

#[test]
fn jira_v2_per_batch_opens_one_issue_with_a_plain_text_description() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_jira(&[]);
    let cfg = jira_config(&server, "api_version = 2\nmode = \"per_batch\"");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 3);
    let q = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    assert_eq!(q.ids.len(), 1);
    assert!(flush_all(&store, &cfg).is_complete());
    let requests = server.requests();
    assert_eq!(requests[0].path, "/rest/api/2/search");
    assert_eq!(requests[1].path, "/rest/api/2/issue");
    let description = requests[1].body["fields"]["description"]
        .as_str()
        .expect("v2: text");
    for c in &cases {
        assert!(description.contains(&c.ticket), "{description}");
    }
    let label = requests[1].body["fields"]["labels"][0].as_str().unwrap();
    assert!(label.starts_with("breakdesk-batch-"), "{label}");
    let key = state.lock().unwrap().issues[0].0.clone();
    for c in &cases {
        assert_eq!(reload(&store, c).jira_key.as_deref(), Some(key.as_str()));
    }
}

#[test]
fn a_create_that_times_out_is_found_by_label_and_never_created_twice() {
    let dir = tempfile::tempdir().unwrap();
    // Jira creates the issue but answers after the client gave up (1 s).
    let (server, state) = fake_jira(&[Step::Slow(Duration::from_secs(3))]);
    let cfg = jira_config(&server, "timeout_secs = 1");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let id = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice())
        .unwrap()
        .ids[0];
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let outbox = Outbox::new(&store);
    let first = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    match &first.outcomes[..] {
        [(_, _, ItemOutcome::Retrying { error, .. })] => {
            assert!(error.contains("no answer within"), "{error}");
            assert!(error.contains("searches label"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state.lock().unwrap().issues.len(), 1, "Jira did create it");
    let report = outbox
        .flush(&dispatcher, Duration::from_secs(10), |_, _| {})
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let st = state.lock().unwrap();
    assert_eq!(st.issues.len(), 1, "no second issue");
    assert_eq!(creates(&server).len(), 1, "the retry did not create");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/rest/api/3/search/jql",
            "/rest/api/3/issue",
            "/rest/api/3/search/jql"
        ]
    );
    let item = outbox.get(id).unwrap().unwrap();
    assert_eq!(item.result.as_deref(), Some(st.issues[0].0.as_str()));
    assert!(
        item.response.as_deref().unwrap().contains("found"),
        "{:?}",
        item.response
    );
    assert_eq!(
        reload(&store, &cases[0]).jira_key.as_deref(),
        Some(st.issues[0].0.as_str())
    );
}

#[test]
fn an_answer_without_a_key_is_never_turned_into_an_invented_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_jira(&[Step::NoKey]);
    let cfg = jira_config(&server, "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let outbox = Outbox::new(&store);
    let first = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    assert!(
        matches!(&first.outcomes[0].2, ItemOutcome::Retrying { error, .. } if error.contains("without an issue key")),
        "{first:?}"
    );
    assert_eq!(reload(&store, &cases[0]).jira_key, None);
    assert!(
        outbox
            .flush(&dispatcher, Duration::from_secs(10), |_, _| {})
            .unwrap()
            .is_complete()
    );
    let key = state.lock().unwrap().issues[0].0.clone();
    assert_eq!(reload(&store, &cases[0]).jira_key, Some(key));
    assert_eq!(creates(&server).len(), 1);
}

#[test]
fn jira_429_waits_for_retry_after_and_500_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_jira(&[Step::TooMany(1), Step::ServerError]);
    let cfg = jira_config(&server, "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 2);
    dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let outbox = Outbox::new(&store);
    let before = Utc::now();
    let first = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    let next = |i: usize| match &first.outcomes[i].2 {
        ItemOutcome::Retrying {
            next_attempt_at,
            error,
        } => (*next_attempt_at, error.clone()),
        other => panic!("{other:?}"),
    };
    let (after_429, e429) = next(0);
    let (after_500, e500) = next(1);
    assert!(e429.contains("429"), "{e429}");
    assert!(e500.contains("500"), "{e500}");
    // Retry-After: 1 is honoured; the 500 gets the short backoff.
    assert!(
        after_429 >= before + chrono::Duration::seconds(1),
        "{after_429} vs {before}"
    );
    assert!(after_500 < after_429);
    let report = outbox
        .flush(&dispatcher, Duration::from_secs(10), |_, _| {})
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let posts = creates(&server);
    assert_eq!(posts.len(), 4);
    // The 429'd case was created no sooner than a second after it was refused.
    let label0 = format!("breakdesk-{}", cases[0].id);
    let for0: Vec<&Request> = posts
        .iter()
        .filter(|r| r.body["fields"]["labels"][0] == label0.as_str())
        .collect();
    assert_eq!(for0.len(), 2);
    assert!(for0[1].at.duration_since(for0[0].at) >= Duration::from_millis(990));
    assert_eq!(state.lock().unwrap().issues.len(), 2);
    for c in &cases {
        assert!(reload(&store, c).jira_key.is_some());
    }
}

#[test]
fn jira_400_is_parked_with_jiras_reason_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_jira(&[Step::BadRequest]);
    let cfg = jira_config(&server, "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let id = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice())
        .unwrap()
        .ids[0];
    let report = flush_all(&store, &cfg);
    assert_eq!(report.parked(), 1);
    assert!(!report.is_complete());
    let item = Outbox::new(&store).get(id).unwrap().unwrap();
    let ItemStatus::Parked { reason, .. } = &item.status else {
        panic!("{:?}", item.status)
    };
    assert!(
        reason.contains("HTTP 400") && reason.contains("valid project is required"),
        "{reason}"
    );
    assert_eq!(creates(&server).len(), 1);
    assert!(state.lock().unwrap().issues.is_empty());
    let c = reload(&store, &cases[0]);
    assert_eq!(c.jira_key, None);
    assert!(!c.dispatched);
    assert_eq!(
        c.dispatch(Channel::Jira).unwrap().state,
        DispatchState::Parked
    );
    // A new dispatch skips the parked case instead of duplicating it.
    let q = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    assert!(q.ids.is_empty() && q.skipped.len() == 1);
    // Cancelled, it may be dispatched again.
    Outbox::new(&store).cancel(id, &alice()).unwrap();
    assert_eq!(
        reload(&store, &cases[0])
            .dispatch(Channel::Jira)
            .unwrap()
            .state,
        DispatchState::Cancelled
    );
    let q = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap();
    assert_eq!(q.ids.len(), 1);
    assert!(flush_all(&store, &cfg).is_complete());
    assert_eq!(state.lock().unwrap().issues.len(), 1);
}

// ----- a task webhook ----------------------------------------------------------------------------

#[derive(Default)]
struct Tasks {
    /// Idempotency-Key → (task id, body).
    by_key: BTreeMap<String, (String, Value)>,
    script: VecDeque<Step>,
}

fn fake_tasks(script: &[Step]) -> (HttpServer, Arc<Mutex<Tasks>>) {
    let state = Arc::new(Mutex::new(Tasks {
        script: script.iter().copied().collect(),
        ..Default::default()
    }));
    let s = Arc::clone(&state);
    let server = HttpServer::start(move |r: &Request| {
        let mut st = s.lock().unwrap();
        if r.header("authorization") != Some(format!("Bearer {SECRET}").as_str()) {
            return Reply::json(401, json!({"error": "unauthorized"}));
        }
        let Some(key) = r.header("idempotency-key").map(str::to_string) else {
            return Reply::json(400, json!({"error": "Idempotency-Key required"}));
        };
        // A key seen before gets the original task (whatever the script says).
        if let Some((id, _)) = st.by_key.get(&key) {
            return Reply::json(200, json!({"id": id, "status": "duplicate"}));
        }
        let step = st.script.pop_front().unwrap_or(Step::Ok);
        let create = |st: &mut Tasks| {
            let id = format!("task-{}", st.by_key.len() + 1);
            st.by_key.insert(key.clone(), (id.clone(), r.body.clone()));
            id
        };
        match step {
            Step::Ok => Reply::json(201, json!({"id": create(&mut st)})),
            Step::Slow(d) => Reply::json(201, json!({"id": create(&mut st)})).delay(d),
            Step::NoKey => {
                create(&mut st);
                Reply::json(202, json!({}))
            }
            Step::TooMany(secs) => Reply::json(429, json!({"error": "slow down"}))
                .header("Retry-After", &secs.to_string()),
            Step::ServerError => Reply::json(500, json!({"error": "boom"})),
            Step::BadRequest => Reply::json(400, json!({"error": {"message": "severity unknown"}})),
        }
    });
    (server, state)
}

fn webhook_config(server: &HttpServer, extra: &str) -> DispatchOptions {
    options(&config(&format!(
        "[webhook]\nenabled = true\nurl = \"{}/v1/tasks\"\ntoken_env = \"{SECRET_ENV}\"\n{}{extra}\n\
         [webhook.sla_days]\nlow = 9\nmedium = 4\nhigh = 2\ncritical = 1\n{FAST_OUTBOX}",
        server.url(),
        default_timeout(extra)
    )))
}

#[test]
fn a_webhook_task_carries_the_bearer_token_an_idempotency_key_and_the_sla_due_date() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_tasks(&[]);
    let cfg = webhook_config(&server, "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 5);
    let q = dispatch::queue_webhook(&store, &cfg.webhook, &cases, &alice()).unwrap();
    assert_eq!(q.ids.len(), 5);
    assert!(flush_all(&store, &cfg).is_complete());
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    let today = Utc::now().date_naive();
    for ((r, c), id) in requests.iter().zip(&cases).zip(&q.ids) {
        assert_eq!(r.path, "/v1/tasks");
        assert_eq!(
            r.header("idempotency-key"),
            Some(format!("breakdesk-{}-{id}", c.id).as_str())
        );
        assert_eq!(r.body["severity"], c.severity.as_str());
        assert_eq!(r.body["case_id"], c.id.as_str());
        assert_eq!(r.body["ticket"], c.ticket.as_str());
        assert!(r.body["task_name"].as_str().unwrap().contains(&c.ticket));
        assert!(r.body["description"].as_str().unwrap().contains(&c.summary));
        let days = match c.severity.as_str() {
            "Critical" => 1,
            "High" => 2,
            "Medium" => 4,
            _ => 9,
        };
        assert_eq!(
            r.body["due_date"],
            (today + chrono::Days::new(days)).to_string(),
            "{}",
            c.severity
        );
        let now = reload(&store, c);
        let d = now.dispatch(Channel::Webhook).unwrap();
        let (task, _) = &state.lock().unwrap().by_key[r.header("idempotency-key").unwrap()];
        assert_eq!(d.reference.as_deref(), Some(task.as_str()));
        assert!(now.dispatched);
    }
}

#[test]
fn a_timed_out_task_is_retried_with_the_same_key_and_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_tasks(&[Step::Slow(Duration::from_secs(3))]);
    let cfg = webhook_config(&server, "timeout_secs = 1");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let id = dispatch::queue_webhook(&store, &cfg.webhook, &cases, &alice())
        .unwrap()
        .ids[0];
    let report = flush_all(&store, &cfg);
    assert!(report.is_complete(), "{report:?}");
    assert!(
        matches!(report.outcomes[0].2, ItemOutcome::Retrying { .. }),
        "{report:?}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    assert_eq!(state.lock().unwrap().by_key.len(), 1, "one task");
    let item = Outbox::new(&store).get(id).unwrap().unwrap();
    assert_eq!(item.result.as_deref(), Some("task-1"));
    let Payload::Webhook(p) = &item.payload else {
        panic!()
    };
    assert_eq!(
        requests[0].header("idempotency-key"),
        Some(p.idempotency_key.as_str())
    );
}

#[test]
fn webhook_429_and_500_are_retried_and_400_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let (server, state) = fake_tasks(&[Step::TooMany(1), Step::ServerError, Step::BadRequest]);
    let cfg = webhook_config(&server, "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 3);
    let q = dispatch::queue_webhook(&store, &cfg.webhook, &cases, &alice()).unwrap();
    let report = flush_all(&store, &cfg);
    assert_eq!(report.sent(), 2, "{report:?}");
    assert_eq!(report.parked(), 1, "{report:?}");
    let outbox = Outbox::new(&store);
    let status = |i: usize| outbox.get(q.ids[i]).unwrap().unwrap();
    assert!(matches!(status(0).status, ItemStatus::Sent { .. }));
    assert_eq!(status(0).attempts, 2);
    assert!(matches!(status(1).status, ItemStatus::Sent { .. }));
    assert_eq!(status(1).attempts, 2);
    let ItemStatus::Parked { reason, .. } = status(2).status else {
        panic!()
    };
    assert!(
        reason.contains("HTTP 400") && reason.contains("severity unknown"),
        "{reason}"
    );
    assert_eq!(state.lock().unwrap().by_key.len(), 2);
    assert_eq!(
        reload(&store, &cases[2])
            .dispatch(Channel::Webhook)
            .unwrap()
            .state,
        DispatchState::Parked
    );
    // The 429'd task waited at least the second it was asked to.
    let first_key = format!("breakdesk-{}-{}", cases[0].id, q.ids[0]);
    let for0: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.header("idempotency-key") == Some(first_key.as_str()))
        .collect();
    assert_eq!(for0.len(), 2);
    assert!(for0[1].at.duration_since(for0[0].at) >= Duration::from_millis(990));
}
