//! Tests of breakdesk's LLM client against a loopback chat-completions server.

use crate::support::llm_server;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use breakdesk::llm::{
    ChatRequest, LlmClient, LlmError, LlmSettings, ResponseFormat, TokenLimitField,
};
use llm_server::{LlmServer, Reply, chat_body_with_usage, user_message};
use serde_json::{Value, json};

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"bucket": {"type": "string"}},
        "required": ["bucket"],
        "additionalProperties": false,
    })
}

fn request(user: &str) -> ChatRequest {
    ChatRequest::new("Sort the break.", user, "root_cause", schema())
}

/// Settings for tests: short timeout, quick backoff, no circuit breaker.
fn settings(base_url: &str) -> LlmSettings {
    LlmSettings {
        max_tokens: 256,
        timeout: Duration::from_secs(2),
        max_retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        failure_threshold: 0,
        ..LlmSettings::new(base_url, "test-model")
    }
}

fn client(settings: LlmSettings) -> LlmClient {
    LlmClient::new(settings).expect("valid test settings")
}

/// A base URL on which nothing listens.
fn unused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn valid_answer_returns_content_and_sends_the_expected_request() {
    let server = LlmServer::start(|_, _| {
        Reply::status(
            200,
            chat_body_with_usage(r#"{"bucket":"timing"}"#, "stop", 42, 7),
        )
    });
    let client = client(LlmSettings {
        api_key: Some("sk-test-123".into()),
        ..settings(&server.base_url())
    });

    let outcome = client
        .complete(&request("Break #17: cash 100.00 vs ledger 99.00"))
        .await;

    assert_eq!(outcome.result, Ok(r#"{"bucket":"timing"}"#.to_string()));
    assert_eq!(outcome.content(), Some(r#"{"bucket":"timing"}"#));
    assert_eq!(outcome.attempts, 1);
    assert_eq!((outcome.prompt_tokens, outcome.completion_tokens), (42, 7));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.query, None);
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(sent.header("api-key"), None);
    assert_eq!(sent.header("content-type"), Some("application/json"));

    let body = &sent.body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["temperature"].as_f64(), Some(0.0));
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Sort the break."})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Break #17: cash 100.00 vs ledger 99.00"})
    );
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body["response_format"],
        json!({
            "type": "json_schema",
            "json_schema": {"name": "root_cause", "strict": true, "schema": schema()},
        })
    );

    let stats = client.stats();
    assert_eq!(stats.http_requests, 1);
    assert_eq!(stats.successes, 1);
    assert_eq!(stats.failures, 0);
    assert_eq!(stats.retries, 0);
    assert_eq!((stats.prompt_tokens, stats.completion_tokens), (42, 7));
    assert!(!stats.circuit_open);
}

#[tokio::test]
async fn other_response_formats_and_token_field() {
    let server = LlmServer::always(Reply::ok("{}"));
    let object = client(LlmSettings {
        response_format: ResponseFormat::JsonObject,
        token_limit_field: TokenLimitField::MaxCompletionTokens,
        ..settings(&server.base_url())
    });
    let plain = client(LlmSettings {
        response_format: ResponseFormat::None,
        ..settings(&server.base_url())
    });

    assert!(object.complete(&request("a")).await.is_ok());
    assert!(plain.complete(&request("b")).await.is_ok());

    let bodies = server.bodies();
    assert_eq!(bodies[0]["response_format"], json!({"type": "json_object"}));
    assert_eq!(bodies[0]["max_completion_tokens"], 256);
    assert!(bodies[0].get("max_tokens").is_none());
    assert!(bodies[1].get("response_format").is_none());
    assert_eq!(bodies[1]["max_tokens"], 256);
}

#[tokio::test]
async fn azure_style_uses_api_key_header_and_api_version_query() {
    let server = LlmServer::always(Reply::ok("azure answer"));
    let base = format!("{}/openai/deployments/breakdesk-gpt/", server.base_url());
    let client = client(LlmSettings {
        api_key: Some("azure-key-456".into()),
        azure_api_version: Some("2024-10-21".into()),
        ..settings(&base)
    });

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.content(), Some("azure answer"));
    let sent = &server.requests()[0];
    assert_eq!(
        sent.path,
        "/v1/openai/deployments/breakdesk-gpt/chat/completions"
    );
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("azure-key-456"));
    assert_eq!(sent.header("authorization"), None);
}

#[tokio::test]
async fn without_api_key_no_authorization_is_sent() {
    let server = LlmServer::always(Reply::ok("local"));
    let client = client(LlmSettings {
        api_key: Some("   ".into()),
        ..settings(&server.base_url())
    });

    assert_eq!(
        client.complete(&request("x")).await.content(),
        Some("local")
    );
    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("api-key"), None);
}

#[tokio::test]
async fn body_that_is_not_json_is_a_bad_response_without_retries() {
    let server = LlmServer::always(Reply::status(200, "<html>proxy login</html>"));
    let client = client(settings(&server.base_url()));

    let outcome = client.complete(&request("x")).await;

    match &outcome.result {
        Err(LlmError::BadResponse(message)) => assert!(message.contains("not JSON"), "{message}"),
        other => panic!("expected BadResponse, got {other:?}"),
    }
    assert_eq!(outcome.attempts, 1);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn json_without_choices_is_a_bad_response_without_retries() {
    let server = LlmServer::always(Reply::status(200, r#"{"object":"list","data":[]}"#));
    let client = client(settings(&server.base_url()));

    let first = client.complete(&request("x")).await;
    let second = client.complete(&request("y")).await;

    assert!(
        matches!(first.result, Err(LlmError::BadResponse(_))),
        "{first:?}"
    );
    assert!(
        matches!(second.result, Err(LlmError::BadResponse(_))),
        "{second:?}"
    );
    assert_eq!(first.attempts + second.attempts, 2);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn strange_answers_never_panic() {
    let bodies = [
        "",
        "null",
        "[]",
        "42",
        r#"{"choices": null}"#,
        r#"{"choices": "nope"}"#,
        r#"{"choices": []}"#,
        r#"{"choices": [null]}"#,
        r#"{"choices": [{"message": null}]}"#,
        r#"{"choices": [{"message": {"content": 17}}]}"#,
        r#"{"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}"#,
        r#"{"choices": [{"message": {"content": "ok"}, "finish_reason": 3}], "usage": {"prompt_tokens": "many", "completion_tokens": -1}}"#,
        r#"{"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 99999999999}}"#,
        r#"{"error": {"message": "model overloaded"}}"#,
        "\u{0}\u{1}\u{2}binary",
    ];
    let server = LlmServer::start(move |_, n| Reply::status(200, bodies[n % bodies.len()]));
    let client = client(settings(&server.base_url()));

    let mut results = Vec::new();
    for i in 0..bodies.len() {
        results.push(client.complete(&request(&i.to_string())).await);
    }

    for (i, outcome) in results.iter().enumerate() {
        assert_eq!(outcome.attempts, 1, "answer {i} must not be retried");
        if i == 11 || i == 12 {
            assert_eq!(outcome.content(), Some("ok"), "answer {i}");
        } else {
            assert!(
                matches!(outcome.result, Err(LlmError::BadResponse(_))),
                "answer {i}: {:?}",
                outcome.result
            );
        }
    }
    assert_eq!(results[12].prompt_tokens, u32::MAX);
    assert_eq!(server.request_count(), bodies.len());
}

#[tokio::test]
async fn finish_reason_length_is_truncated() {
    let server = LlmServer::always(Reply::chat(r#"{"bucket":"tim"#, "length"));
    let client = client(settings(&server.base_url()));

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.result, Err(LlmError::Truncated));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.completion_tokens, 5);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn rate_limited_answer_honours_retry_after() {
    let server = LlmServer::start(|_, n| {
        if n == 0 {
            Reply::error(429, "Rate limit reached").header("retry-after", "1")
        } else {
            Reply::ok("after the wait")
        }
    });
    let client = client(settings(&server.base_url()));

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.content(), Some("after the wait"));
    assert_eq!(outcome.attempts, 2);
    assert!(
        outcome.elapsed >= Duration::from_millis(980),
        "{:?}",
        outcome.elapsed
    );
    let requests = server.requests();
    let gap = requests[1].received_at - requests[0].received_at;
    assert!(
        gap >= Duration::from_millis(980),
        "second request after {gap:?}"
    );
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn service_unavailable_honours_retry_after_as_http_date() {
    // An HTTP date two seconds ahead; with its one-second resolution the wait
    // is between one and two seconds.
    let server = LlmServer::start(|_, n| {
        if n == 0 {
            let at = chrono::Utc::now() + chrono::Duration::seconds(2);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            Reply::error(503, "busy").header("retry-after", &date)
        } else {
            Reply::ok("ok")
        }
    });
    let client = client(settings(&server.base_url()));

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.content(), Some("ok"));
    assert_eq!(outcome.attempts, 2);
    assert!(
        outcome.elapsed >= Duration::from_millis(900),
        "{:?}",
        outcome.elapsed
    );
    assert!(
        outcome.elapsed < Duration::from_secs(4),
        "{:?}",
        outcome.elapsed
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = LlmServer::start(|_, n| {
        if n < 2 {
            Reply::error(500, "internal")
        } else {
            Reply::ok("third time")
        }
    });
    let client = client(settings(&server.base_url()));

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.content(), Some("third time"));
    assert_eq!(outcome.attempts, 3);
    assert_eq!(server.request_count(), 3);
    let stats = client.stats();
    assert_eq!(
        (stats.http_requests, stats.retries, stats.successes),
        (3, 2, 1)
    );
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_max_retries() {
    let server = LlmServer::always(Reply::error(502, "bad gateway"));
    let client = client(LlmSettings {
        max_retries: 3,
        ..settings(&server.base_url())
    });

    let outcome = client.complete(&request("x")).await;

    assert_eq!(
        outcome.result,
        Err(LlmError::Http {
            status: 502,
            message: "bad gateway".into()
        })
    );
    assert_eq!(outcome.attempts, 4);
    assert_eq!(server.request_count(), 4);
    let stats = client.stats();
    assert_eq!((stats.retries, stats.failures), (3, 1));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = LlmServer::start(|_, n| {
        if n == 0 {
            Reply::error(400, "Invalid schema for response_format")
        } else {
            Reply::status(401, "")
        }
    });
    let client = client(LlmSettings {
        max_retries: 5,
        ..settings(&server.base_url())
    });

    let bad_request = client.complete(&request("x")).await;
    let unauthorized = client.complete(&request("y")).await;

    assert_eq!(
        bad_request.result,
        Err(LlmError::Http {
            status: 400,
            message: "Invalid schema for response_format".into()
        })
    );
    assert_eq!(bad_request.attempts, 1);
    assert!(
        matches!(&unauthorized.result, Err(LlmError::Http { status: 401, message }) if message == "Unauthorized"),
        "{unauthorized:?}"
    );
    assert_eq!(unauthorized.attempts, 1);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = LlmServer::always(Reply::ok("too late").delay(Duration::from_secs(3)));
    let client = client(LlmSettings {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..settings(&server.base_url())
    });

    let started = Instant::now();
    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.result, Err(LlmError::Timeout));
    assert_eq!(outcome.attempts, 2);
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn slow_answers_within_the_timeout_succeed() {
    let server = LlmServer::always(Reply::ok("took a while").delay(Duration::from_millis(400)));
    let client = client(LlmSettings {
        timeout: Duration::from_secs(2),
        ..settings(&server.base_url())
    });

    let outcome = client.complete(&request("x")).await;

    assert_eq!(outcome.content(), Some("took a while"));
    assert_eq!(outcome.attempts, 1);
    assert!(outcome.elapsed >= Duration::from_millis(400));
}

#[test]
fn batch_respects_concurrency_and_keeps_input_order() {
    let server = LlmServer::start(|body, _| {
        Reply::ok(&format!("answer to {}", user_message(body))).delay(Duration::from_millis(100))
    });
    let client = client(LlmSettings {
        concurrency: 4,
        ..settings(&server.base_url())
    });
    let reqs: Vec<ChatRequest> = (0..40).map(|i| request(&format!("break {i}"))).collect();
    let done = Mutex::new(Vec::new());

    let started = Instant::now();
    let outcomes = client.complete_all(&reqs, |index, outcome| {
        assert!(outcome.is_ok());
        done.lock().expect("progress list").push(index);
    });
    let elapsed = started.elapsed();

    assert_eq!(outcomes.len(), 40);
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(
            outcome.content(),
            Some(format!("answer to break {i}").as_str())
        );
    }
    let mut done = done.into_inner().expect("progress list");
    done.sort_unstable();
    assert_eq!(done, (0..40).collect::<Vec<_>>());
    assert_eq!(server.request_count(), 40);
    let max = server.max_in_flight();
    assert!(max <= 4, "{max} requests in flight");
    assert!(max > 1, "requests were not run concurrently");
    // 40 requests of 100 ms, 4 at a time: at least 1 s, far less than 4 s.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
}

#[tokio::test]
async fn concurrency_limit_also_covers_separate_calls() {
    let server = LlmServer::always(Reply::ok("ok").delay(Duration::from_millis(100)));
    let client = std::sync::Arc::new(client(LlmSettings {
        concurrency: 2,
        ..settings(&server.base_url())
    }));

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = std::sync::Arc::clone(&client);
        tasks.spawn(async move { client.complete(&request(&i.to_string())).await });
    }
    let mut ok = 0;
    while let Some(outcome) = tasks.join_next().await {
        if outcome.expect("task").is_ok() {
            ok += 1;
        }
    }

    assert_eq!(ok, 8);
    assert_eq!(server.max_in_flight(), 2);
}

#[tokio::test]
async fn batch_inside_a_runtime_works_both_ways() {
    let server = LlmServer::start(|body, _| Reply::ok(&user_message(body)));
    let client = client(LlmSettings {
        concurrency: 3,
        ..settings(&server.base_url())
    });
    let reqs: Vec<ChatRequest> = (0..6).map(|i| request(&format!("r{i}"))).collect();

    let blocking = client.complete_all(&reqs, |_, _| {});
    let asynchronous = client.complete_all_async(&reqs, |_, _| {}).await;

    for outcomes in [&blocking, &asynchronous] {
        let contents: Vec<Option<&str>> = outcomes.iter().map(|o| o.content()).collect();
        assert_eq!(
            contents,
            vec![
                Some("r0"),
                Some("r1"),
                Some("r2"),
                Some("r3"),
                Some("r4"),
                Some("r5")
            ]
        );
    }
    assert_eq!(server.request_count(), 12);
    assert!(client.complete_all(&[], |_, _| {}).is_empty());
}

#[test]
fn requests_per_minute_spaces_out_calls() {
    let server = LlmServer::always(Reply::ok("ok"));
    // 600 per minute = one every 100 ms; the bucket holds a single request.
    let client = client(LlmSettings {
        requests_per_minute: 600,
        rate_burst_window: Duration::from_millis(100),
        concurrency: 4,
        ..settings(&server.base_url())
    });
    let reqs: Vec<ChatRequest> = (0..8).map(|i| request(&i.to_string())).collect();

    let outcomes = client.complete_all(&reqs, |_, _| {});

    assert!(outcomes.iter().all(|o| o.is_ok()));
    let arrivals: Vec<Instant> = server.requests().iter().map(|r| r.received_at).collect();
    assert_eq!(arrivals.len(), 8);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let smallest = gaps.iter().min().copied().unwrap_or_default();
    assert!(smallest >= Duration::from_millis(80), "gaps {gaps:?}");
    let span = arrivals[7] - arrivals[0];
    assert!(span >= Duration::from_millis(680), "span {span:?}");
    assert!(client.stats().rate_limit_wait >= Duration::from_millis(600));
}

#[test]
fn tokens_per_minute_spaces_out_calls_and_counts_reported_usage() {
    // 60 000 tokens per minute = 1 000 per second; bucket of 100 tokens.
    // Each request is estimated at 100 completion tokens plus a few prompt
    // tokens, so requests go out about 110 ms apart. The server reports 400
    // tokens per answer, and the extra is charged too.
    let run = |reported: u64| {
        let server = LlmServer::start(move |_, _| {
            Reply::status(
                200,
                chat_body_with_usage("ok", "stop", reported / 2, reported / 2),
            )
        });
        let client = client(LlmSettings {
            tokens_per_minute: 60_000,
            rate_burst_window: Duration::from_millis(100),
            max_tokens: 100,
            response_format: ResponseFormat::JsonObject,
            concurrency: 1,
            ..settings(&server.base_url())
        });
        let reqs: Vec<ChatRequest> = (0..5).map(|i| request(&i.to_string())).collect();
        let outcomes = client.complete_all(&reqs, |_, _| {});
        assert!(outcomes.iter().all(|o| o.is_ok()));
        let arrivals: Vec<Instant> = server.requests().iter().map(|r| r.received_at).collect();
        arrivals
            .windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or_default()
    };

    let estimated_only = run(20);
    let with_usage = run(400);

    assert!(
        estimated_only >= Duration::from_millis(90),
        "{estimated_only:?}"
    );
    assert!(
        estimated_only < Duration::from_millis(300),
        "{estimated_only:?}"
    );
    assert!(with_usage >= Duration::from_millis(350), "{with_usage:?}");
}

#[tokio::test]
async fn circuit_opens_after_consecutive_failures_and_stops_all_http() {
    let server = LlmServer::always(Reply::error(500, "down"));
    let client = client(LlmSettings {
        failure_threshold: 3,
        max_retries: 1,
        ..settings(&server.base_url())
    });

    let mut outcomes = Vec::new();
    for i in 0..6 {
        outcomes.push(client.complete(&request(&i.to_string())).await);
    }

    for outcome in &outcomes[..3] {
        assert!(matches!(
            outcome.result,
            Err(LlmError::Http { status: 500, .. })
        ));
        assert_eq!(outcome.attempts, 2);
    }
    for outcome in &outcomes[3..] {
        assert_eq!(outcome.result, Err(LlmError::CircuitOpen));
        assert_eq!(outcome.attempts, 0);
    }
    assert_eq!(server.request_count(), 6);

    // A later batch sends nothing either.
    let reqs: Vec<ChatRequest> = (0..5).map(|i| request(&i.to_string())).collect();
    let batch = client.complete_all_async(&reqs, |_, _| {}).await;
    assert!(batch.iter().all(|o| o.result == Err(LlmError::CircuitOpen)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.request_count(), 6);

    let stats = client.stats();
    assert!(stats.circuit_open);
    assert_eq!(stats.http_requests, 6);
    assert_eq!(stats.failures, 3);
    assert_eq!(stats.rejected_by_circuit, 8);
}

#[test]
fn circuit_in_a_concurrent_batch_stops_quickly() {
    let server = LlmServer::always(Reply::error(503, "down"));
    let client = client(LlmSettings {
        failure_threshold: 3,
        max_retries: 0,
        concurrency: 4,
        ..settings(&server.base_url())
    });
    let reqs: Vec<ChatRequest> = (0..50).map(|i| request(&i.to_string())).collect();

    let outcomes = client.complete_all(&reqs, |_, _| {});

    let sent = server.request_count();
    // Three failures open the circuit; at most the other in-flight slots add to it.
    assert!((3..=3 + 4).contains(&sent), "{sent} requests sent");
    let open = outcomes
        .iter()
        .filter(|o| o.result == Err(LlmError::CircuitOpen))
        .count();
    assert_eq!(open, 50 - sent);
    assert!(client.stats().circuit_open);
}

#[tokio::test]
async fn a_success_resets_the_failure_streak() {
    let server = LlmServer::start(|_, n| {
        if n % 2 == 0 {
            Reply::error(500, "flaky")
        } else {
            Reply::ok("fine")
        }
    });
    let client = client(LlmSettings {
        failure_threshold: 2,
        max_retries: 0,
        ..settings(&server.base_url())
    });

    let mut ok = 0;
    for i in 0..6 {
        if client.complete(&request(&i.to_string())).await.is_ok() {
            ok += 1;
        }
    }

    assert_eq!(ok, 3);
    assert_eq!(server.request_count(), 6);
    assert!(!client.stats().circuit_open);
}

#[tokio::test]
async fn truncated_answers_do_not_open_the_circuit() {
    let server = LlmServer::always(Reply::chat("{", "length"));
    let client = client(LlmSettings {
        failure_threshold: 2,
        ..settings(&server.base_url())
    });

    for i in 0..4 {
        let outcome = client.complete(&request(&i.to_string())).await;
        assert_eq!(outcome.result, Err(LlmError::Truncated));
    }

    assert_eq!(server.request_count(), 4);
    assert!(!client.stats().circuit_open);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let client = client(LlmSettings {
        max_retries: 1,
        ..settings(&unused_base_url())
    });

    let outcome = client.complete(&request("x")).await;

    match &outcome.result {
        Err(LlmError::Transport(message)) => {
            assert!(message.contains("connection failed"), "{message}")
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert_eq!(outcome.attempts, 2);
    assert!(outcome.elapsed < Duration::from_secs(2));
    assert_eq!(client.stats().failures, 1);
}

#[test]
fn invalid_settings_are_rejected() {
    let base = "http://127.0.0.1:9/v1";
    let cases = [
        LlmSettings::new("", "m"),
        LlmSettings::new("not a url", "m"),
        LlmSettings::new("ftp://example.com/v1", "m"),
        LlmSettings::new("http://127.0.0.1:9/v1?x=1", "m"),
        LlmSettings::new(base, " "),
        LlmSettings {
            concurrency: 0,
            ..LlmSettings::new(base, "m")
        },
        LlmSettings {
            max_tokens: 0,
            ..LlmSettings::new(base, "m")
        },
        LlmSettings {
            timeout: Duration::ZERO,
            ..LlmSettings::new(base, "m")
        },
        LlmSettings {
            temperature: f32::NAN,
            ..LlmSettings::new(base, "m")
        },
        LlmSettings {
            api_key: Some("line\nbreak".into()),
            ..LlmSettings::new(base, "m")
        },
        LlmSettings {
            azure_api_version: Some(String::new()),
            ..LlmSettings::new(base, "m")
        },
    ];
    for (i, settings) in cases.into_iter().enumerate() {
        let result = LlmClient::new(settings);
        assert!(
            matches!(result, Err(LlmError::Config(_))),
            "case {i}: {result:?}"
        );
    }

    let ok = LlmClient::new(LlmSettings::new(
        "https://api.openai.com/v1/",
        "gpt-4o-mini",
    ))
    .expect("valid settings");
    assert_eq!(ok.endpoint(), "https://api.openai.com/v1/chat/completions");
}

#[tokio::test]
async fn api_key_never_shows_in_debug_output_or_errors() {
    let key = "sk-very-secret-987";
    let server = LlmServer::always(Reply::error(
        401,
        &format!("Incorrect API key provided: {key}"),
    ));
    let settings = LlmSettings {
        api_key: Some(key.into()),
        ..settings(&server.base_url())
    };
    assert!(!format!("{settings:?}").contains(key));
    let client = client(settings);
    assert!(!format!("{client:?}").contains(key));

    let outcome = client.complete(&request("x")).await;

    let error = outcome.result.expect_err("401 must fail");
    assert!(matches!(error, LlmError::Http { status: 401, .. }));
    assert!(!error.to_string().contains(key), "{error}");
    assert!(error.to_string().contains("[redacted]"), "{error}");
}
