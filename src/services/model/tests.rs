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

const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","minLength":2}},"required":["city"],"additionalProperties":false}}},
                       {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}},"required":["tz"]}}}]"#;

fn chat_with(messages: Value, extra: Value) -> String {
    let mut req = json!({"model": "m", "messages": messages, "tools": serde_json::from_str::<Value>(TOOLS).expect("tools")});
    if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    req.to_string()
}

fn call_args(v: &Value, i: usize) -> Value {
    let args = v["choices"][0]["message"]["tool_calls"][i]["function"]["arguments"]
        .as_str()
        .expect("arguments");
    serde_json::from_str(args).expect("arguments are JSON")
}

#[tokio::test]
async fn a_tool_loop_ends_with_an_answer_quoting_the_result() {
    let app = router(config(
        "fixtures:\n  - {match: weather, tool_call: {name: get_weather}}\n  - {match: weather, tool_result: sunny, tool_call: {name: get_time}}\n",
    ))
    .expect("router");
    let ask = json!([{"role": "user", "content": "weather in Paris?"}]);
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(ask.clone(), json!({})),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(
        call_args(&v, 0)["city"]
            .as_str()
            .is_some_and(|c| c.len() >= 2),
        "{v}"
    );
    // The result of the first call matches `tool_result`: the scripted second call.
    let mut turn = ask.as_array().cloned().expect("list");
    turn.push(json!({"role": "assistant", "content": null, "tool_calls": v["choices"][0]["message"]["tool_calls"]}));
    turn.push(json!({"role": "tool", "tool_call_id": "x", "content": "sunny, 21 °C"}));
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(json!(turn), json!({})),
    )
    .await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    // Any other result: the final answer, quoting it. The question's fixture does not fire again.
    turn.push(json!({"role": "assistant", "content": null, "tool_calls": v["choices"][0]["message"]["tool_calls"]}));
    turn.push(json!({"role": "tool", "tool_call_id": "y", "content": "12:00 UTC"}));
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(json!(turn), json!({})),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Based on the tool result: 12:00 UTC"
    );
    // Anthropic and Responses end the same way.
    let msg = json!({"model": "m", "max_tokens": 64, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rain"}]}]});
    let (_, _, v) = call(&app, "/v1/messages", None, &msg.to_string()).await;
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["text"], "Based on the tool result: rain");
    let resp = json!({"model": "m", "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "fog"}]});
    let (_, _, v) = call(&app, "/v1/responses", None, &resp.to_string()).await;
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "Based on the tool result: fog"
    );
}

#[tokio::test]
async fn tool_choice_forces_a_call_with_valid_arguments() {
    let app = router(Config::default()).expect("router");
    let ask = json!([{"role": "user", "content": "hello"}]);
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(ask.clone(), json!({"tool_choice": "required"})),
    )
    .await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let named = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}}});
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(ask.clone(), named),
    )
    .await;
    assert!(
        matches!(call_args(&v, 0)["tz"].as_str(), Some("UTC" | "CET")),
        "{v}"
    );
    let (_, _, v) = call(
        &app,
        "/v1/chat/completions",
        None,
        &chat_with(ask.clone(), json!({})),
    )
    .await;
    assert!(
        v["choices"][0]["message"]["tool_calls"].is_null(),
        "auto without a fixture: text"
    );
    let unknown = json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}});
    let (s, _, v) = call(&app, "/v1/chat/completions", None, &chat_with(ask, unknown)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "tool_choice");
    let msg = json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}],
        "tool_choice": {"type": "any"}});
    let (_, _, v) = call(&app, "/v1/messages", None, &msg.to_string()).await;
    assert_eq!(v["stop_reason"], "tool_use");
    assert!(v["content"][0]["input"]["q"].is_string(), "{v}");
}

#[tokio::test]
async fn structured_outputs_in_every_shape() {
    let app = router(config(
        "fixtures: [{match: canned, reply: 'fixture wins'}]\n",
    ))
    .expect("router");
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 20},
                        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}}, "required": ["n", "tags"]});
    let check = |text: &str| {
        let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            doc["n"].as_i64().is_some_and(|n| (10..=20).contains(&n)),
            "{doc}"
        );
        doc
    };
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": true, "schema": schema}}});
    let (_, _, a) = call(&app, "/v1/chat/completions", None, &chat.to_string()).await;
    let (_, _, b) = call(&app, "/v1/chat/completions", None, &chat.to_string()).await;
    let doc = check(
        a["choices"][0]["message"]["content"]
            .as_str()
            .expect("content"),
    );
    assert_eq!(
        a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"],
        "same request, same document"
    );
    let resp = json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "s", "schema": schema}}});
    let (_, _, v) = call(&app, "/v1/responses", None, &resp.to_string()).await;
    assert_eq!(
        check(v["output"][0]["content"][0]["text"].as_str().expect("text")),
        doc
    );
    let msg = json!({"model": "m", "max_tokens": 500, "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}}});
    let (_, _, v) = call(&app, "/v1/messages", None, &msg.to_string()).await;
    check(v["content"][0]["text"].as_str().expect("text"));
    let canned = chat.to_string().replace("\"x\"", "\"canned\"");
    let (_, _, v) = call(&app, "/v1/chat/completions", None, &canned).await;
    assert_eq!(v["choices"][0]["message"]["content"], "fixture wins");
    let impossible = chat.to_string().replace("\"maximum\":20", "\"maximum\":2");
    let (s, _, v) = call(&app, "/v1/chat/completions", None, &impossible).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at `$.n`")),
        "{v}"
    );
}

/// The frames of an SSE body, as JSON `data:` values.
async fn sse(app: &axum::Router, path: &str, body: &str) -> Vec<Value> {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[tokio::test]
async fn streamed_usage_matches_the_plain_answer() {
    let app = router(Config::default()).expect("router");
    let msg = json!({"model": "m", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": "what is a stack?"}]});
    let (_, _, plain) = call(&app, "/v1/messages", None, &msg.to_string()).await;
    let mut streamed = msg.clone();
    streamed["stream"] = json!(true);
    let frames = sse(&app, "/v1/messages", &streamed.to_string()).await;
    let start = &frames[0]["message"]["usage"];
    let last = frames
        .iter()
        .rev()
        .find(|f| f["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(start["input_tokens"], plain["usage"]["input_tokens"]);
    assert_eq!(
        last["usage"]["input_tokens"],
        plain["usage"]["input_tokens"]
    );
    assert_eq!(
        last["usage"]["output_tokens"],
        plain["usage"]["output_tokens"]
    );
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "what is a stack?"}]});
    let (_, _, plain) = call(&app, "/v1/chat/completions", None, &chat.to_string()).await;
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let frames = sse(&app, "/v1/chat/completions", &streamed.to_string()).await;
    assert_eq!(frames.last().expect("usage chunk")["usage"], plain["usage"]);
    let resp = json!({"model": "m", "input": "what is a stack?", "instructions": "be brief"});
    let (_, _, plain) = call(&app, "/v1/responses", None, &resp.to_string()).await;
    let mut streamed = resp.clone();
    streamed["stream"] = json!(true);
    let frames = sse(&app, "/v1/responses", &streamed.to_string()).await;
    let done = frames
        .iter()
        .find(|f| f["type"] == "response.completed")
        .expect("completed");
    assert_eq!(done["response"]["usage"], plain["usage"]);
}

#[test]
fn fixture_problems_are_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fixtures.yaml");
    for (text, at, says) in [
        (
            "- {match: ok, reply: x}\n- {match: '(', reply: y}\n",
            "2:11",
            "invalid regular expression",
        ),
        (
            "- match: ok\n  reply: x\n  colour: red\n",
            "3:3",
            "unknown field `colour`",
        ),
        (
            "- match: ok\n  tool_call: {arguments: {a: 1}}\n",
            "2:14",
            "missing field `name`",
        ),
        (
            "- match: ok\n  tool_result: '[z-a]'\n  tool_call: {name: f}\n",
            "2:16",
            "invalid regular expression",
        ),
    ] {
        std::fs::write(&file, text).expect("write");
        let e = super::config::load_fixtures(&file)
            .expect_err(text)
            .to_string();
        assert!(
            e.contains(&format!("fixtures.yaml:{at}")) && e.contains(says),
            "{text}: {e}"
        );
    }
    let e = Config::load_str("fixtures:\n  - {match: ok, reply: x, error: {status: 500}}\n")
        .expect_err("two answers")
        .to_string();
    assert!(e.contains(":2:5") && e.contains("exactly one"), "{e}");
}

/// `strict: true` refuses, in each API's shape, what the same mock otherwise answers.
#[tokio::test]
async fn strict_refuses_what_the_real_apis_refuse() {
    let lenient = router(Config::default()).expect("router");
    let strict = router(config("strict: true\n")).expect("router");
    let typo = r#"{"model":"m","temprature":0.2,"messages":[{"role":"user","content":"hi"}]}"#;
    let (s, _, _) = call(&lenient, "/v1/chat/completions", None, typo).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = call(&strict, "/v1/chat/completions", None, typo).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["message"],
        "Unrecognized request argument supplied: temprature"
    );
    assert_eq!(v["error"]["param"], "temprature");

    let system_role = r#"{"model":"m","max_tokens":8,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;
    let (s, _, v) = call(&strict, "/v1/messages", None, system_role).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let no_max = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let (s, _, v) = call(&strict, "/v1/messages", None, no_max).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
    for (path, body) in [("/v1/chat/completions", CHAT), ("/v1/messages", MSG)] {
        let (s, _, v) = call(&strict, path, None, body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
}

/// `replay:` answers a recorded request (whatever its `stream`, `user` or key order), in
/// the caller's shape; a request with no recording is a 400 `no_recording` naming the
/// nearest one and the differing field, on both APIs; `/metrics` counts hits and misses,
/// and the notes file has a line for each.
#[tokio::test]
async fn replay_answers_recordings_and_names_the_nearest_on_a_miss() {
    use crate::services::cassette::{self, Cassette, Recorded};
    let dir = tempfile::tempdir().expect("tmp");
    let recorded = r#"{"id":"chatcmpl-r","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"recorded answer","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
    let c = Cassette {
        request: cassette::canonical(CHAT.as_bytes()).expect("json"),
        response: Recorded {
            body: Some(recorded.into()),
            content_type: "application/json".into(),
            frames: Vec::new(),
            latency_ms: 5,
            status: 200,
        },
        route: "/v1/chat/completions".into(),
    };
    cassette::write(&dir.path().join("cassettes"), &c).expect("write");
    let notes = dir.path().join("notes.jsonl");
    let app = router(config(&format!(
        "replay: {{cassettes: \"{}\", speed: 0, notes: \"{}\"}}\n",
        dir.path().join("cassettes").display(),
        notes.display()
    )))
    .expect("router");
    let asked =
        r#"{"messages":[{"content":"hi","role":"user"}],"user":"u-9","model":"m","stream":false}"#;
    let (s, _, v) = call(&app, "/v1/chat/completions", None, asked).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "recorded answer");
    let other = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;
    let (s, _, v) = call(&app, "/v1/chat/completions", None, other).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "no_recording", "{v}");
    let m = v["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("nearest: chat-completions/hi-"), "{m}");
    assert!(
        m.contains(r#"messages[0].content: recorded "hi", asked "hello""#),
        "{m}"
    );
    let (s, _, v) = call(&app, "/v1/messages", None, MSG).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no recording")),
        "{v}"
    );
    let resp = app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let text = String::from_utf8_lossy(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body"),
    )
    .into_owned();
    assert!(
        text.contains(
            r#"stack_model_replay_answers_total{result="hit",route="/v1/chat/completions"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"stack_model_replay_answers_total{result="miss",route="/v1/messages"} 1"#),
        "{text}"
    );
    let notes = cassette::read_notes(&notes);
    assert_eq!(notes.len(), 3, "{notes:?}");
}
