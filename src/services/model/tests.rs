//! Router tests (`oneshot`): every error path, in each API's shape.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Config, router};

fn config(yaml: &str) -> Config {
    crate::services::config::parse_yaml(std::path::Path::new("test.yaml"), yaml).expect("config")
}

async fn call(
    app: &axum::Router,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, v)
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const MSG: &str = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn malformed_json_and_missing_fields_are_400_in_each_shape() {
    let app = router(Config::default()).expect("router");
    let (s, _, v) = call(&app, "/v1/chat/completions", None, "{nope").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON"))
    );
    let (s, _, v) = call(&app, "/v1/chat/completions", None, r#"{"model":"m"}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "messages");
    let (s, _, v) = call(&app, "/v1/messages", None, "[1,").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (s, _, v) = call(
        &app,
        "/v1/messages",
        None,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_tokens"))
    );
    let (s, _, v) = call(
        &app,
        "/v1/embeddings",
        None,
        r#"{"model":"m","input":{"x":1}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "input");
    let (s, _, _) = call(
        &app,
        "/v1/embeddings",
        None,
        r#"{"model":"m","input":"x","encoding_format":"hex"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(&app, "/v1/responses", None, r#"{"model":"m","input":5}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(
        &app,
        "/v1/chat/completions",
        None,
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = router(config("max_body_bytes: 100\n")).expect("router");
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(200)
    );
    let (s, _, v) = call(&app, "/v1/chat/completions", None, &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (s, _, v) = call(&app, "/v1/messages", None, &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["type"], "request_too_large");
}

#[tokio::test]
async fn keys_are_required_when_configured() {
    let app = router(config("keys: [sk-dev]\n")).expect("router");
    let (s, _, v) = call(&app, "/v1/chat/completions", None, CHAT).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (s, _, v) = call(&app, "/v1/messages", Some("sk-nope"), MSG).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["type"], "authentication_error");
    let (s, _, _) = call(&app, "/v1/chat/completions", Some("sk-dev"), CHAT).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn every_nth_request_faults_with_retry_after() {
    let app = router(config(
        "faults: [{status: 429, every: 3, retry_after: 2.5}]\n",
    ))
    .expect("router");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (s, h, v) = call(&app, "/v1/chat/completions", None, CHAT).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(h["retry-after"], "3");
            assert_eq!(h["retry-after-ms"], "2500");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        }
        statuses.push(s.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
}

#[tokio::test]
async fn seeded_rates_are_reproducible_and_per_key() {
    let yaml = "seed: 7\nfaults: [{status: 500, rate: 0.3}]\nkeys: [a, {key: b, faults: [{status: 529, every: 1}]}]\n";
    let mut runs = Vec::new();
    for _ in 0..2 {
        let app = router(config(yaml)).expect("router");
        let mut seq = Vec::new();
        for _ in 0..40 {
            seq.push(
                call(&app, "/v1/chat/completions", Some("a"), CHAT)
                    .await
                    .0
                    .as_u16(),
            );
        }
        runs.push(seq);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let fails = runs[0].iter().filter(|s| **s == 500).count();
    assert!((4..=20).contains(&fails), "about 30% of 40: {fails}");
    let app = router(config(yaml)).expect("router");
    let (s, _, v) = call(&app, "/v1/messages", Some("b"), MSG).await;
    assert_eq!(s.as_u16(), 529);
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn fixtures_answer_errors_and_tool_calls() {
    let app = router(config(
        "fixtures: [{match: boom, error: {status: 503, message: down}}, {match: tool, tool_call: {name: f, arguments: {a: 1}}}]\n",
    ))
    .expect("router");
    let boom = json!({"model":"m","messages":[{"role":"user","content":"boom"}]}).to_string();
    let (s, h, v) = call(&app, "/v1/chat/completions", None, &boom).await;
    assert_eq!(s.as_u16(), 503);
    assert_eq!(v["error"]["message"], "down");
    assert!(h.contains_key("retry-after"));
    let tool = json!({"model":"m","messages":[{"role":"user","content":"use a tool"}]}).to_string();
    let (_, _, v) = call(&app, "/v1/chat/completions", None, &tool).await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"a":1}"#
    );
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    for bad in [
        "faults: [{status: 500}]\n",
        "faults: [{status: 500, rate: 2}]\n",
        "faults: [{status: 200, every: 1}]\n",
        "fixtures: [{match: '(', reply: x}]\n",
        "fixtures: [{match: x}]\n",
        "nope: 1\n",
    ] {
        assert!(Config::load_str(bad).is_err(), "accepted: {bad}");
    }
}
