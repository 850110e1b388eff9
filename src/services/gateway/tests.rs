//! Router tests (`oneshot`): authentication and limits in each caller's shape, bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::{Config, router};

fn config(yaml: &str) -> Config {
    let c: Config =
        crate::services::config::parse_yaml(std::path::Path::new("t.yaml"), yaml).expect("yaml");
    let problems = c.problems(std::path::Path::new("."));
    assert!(problems.is_empty(), "{problems:?}");
    c
}

async fn post(
    app: &super::Front,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).expect("req"))
        .await
        .expect("resp");
    let (s, h) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (s, h, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const UP: &str = "upstreams: {default: \"http://127.0.0.1:9\"}\nretries: 0\n";

#[tokio::test]
async fn unauthorized_in_each_shape() {
    let app = router(config(&format!("keys: [a]\n{UP}")));
    let (s, _, v) = post(&app, "/v1/chat/completions", None, "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (s, _, v) = post(&app, "/v1/messages", Some("nope"), "{}").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn limits_answer_429_with_retry_after() {
    let app = router(config(&format!(
        "keys: [{{key: a, rpm: 1}}, {{key: t, tpm: 10}}]\n{UP}"
    )));
    let body = r#"{"model":"m","messages":[]}"#;
    let (s, _, _) = post(&app, "/v1/chat/completions", Some("a"), body).await;
    assert_eq!(
        s,
        StatusCode::BAD_GATEWAY,
        "admitted, then the upstream is down"
    );
    let (s, h, v) = post(&app, "/v1/chat/completions", Some("a"), body).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        h["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            >= Some(1)
    );
    assert!(h.contains_key("retry-after-ms"));
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let big = format!(
        r#"{{"model":"m","max_tokens":100,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(400)
    );
    // One request larger than the whole budget passes on a full bucket (and empties it).
    let (s, _, _) = post(&app, "/v1/messages", Some("t"), &big).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let (s, _, v) = post(&app, "/v1/messages", Some("t"), &big).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn bad_input_and_unroutable_models() {
    let app = router(config(
        "upstreams: {openai: \"http://127.0.0.1:9\"}\nroutes: [{model: \"gpt-*\", upstream: openai}]\nmax_body_bytes: 64\n",
    ));
    let (s, _, v) = post(&app, "/v1/chat/completions", None, "{oops").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON"))
    );
    let (s, _, _) = post(&app, "/v1/chat/completions", None, &"x".repeat(100)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let app = router(config(
        "upstreams: {a: \"http://127.0.0.1:9\", b: \"http://127.0.0.1:9\"}\n",
    ));
    let (s, _, v) = post(&app, "/v1/chat/completions", None, r#"{"model":"x"}"#).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no upstream"))
    );
}

#[test]
fn bad_configurations_are_refused() {
    for bad in [
        "upstreams: {a: \"ws://x\"}\n",
        "upstreams: {a: []}\n",
        "upstreams: {a: {url: \"http://x\", api_key: \"\"}}\n",
        "upstreams: {a: \"http://x\"}\nmodels: {fast: {upstream: b, model: m}}\n",
        "upstreams: {a: \"http://x\"}\nca_file: ./missing.pem\n",
        "upstreams: {a: \"http://x\"}\nroutes: [{model: \"*\", upstream: b}]\n",
        "keys: [a, a]\n",
        "keys: [{key: a, rpm: 0}]\n",
        "context_url: \"ftp://x\"\n",
    ] {
        let c: Config =
            crate::services::config::parse_yaml(std::path::Path::new("t.yaml"), bad).expect("yaml");
        let mut problems = c.problems(std::path::Path::new("."));
        problems.extend(c.mode_problems(crate::services::cassette::Mode::Live));
        assert!(!problems.is_empty(), "accepted: {bad}");
    }
}

#[test]
fn route_table_and_request_ids() {
    for (i, r) in super::proxy::ROUTES.iter().enumerate() {
        assert_eq!(r.index, i, "{} sits at {i}", r.path);
    }
    let (a, b) = (
        super::proxy::next_request_id(),
        super::proxy::next_request_id(),
    );
    assert_ne!(a, b);
    for id in [&a, &b] {
        let text = id.to_str().expect("ascii");
        let (boot, n) = text.split_once('-').expect("boot-counter");
        assert!(u64::from_str_radix(boot, 16).is_ok(), "{text}");
        assert!(u64::from_str_radix(n, 16).is_ok_and(|n| n > 0), "{text}");
    }
    let mut buf = [0u8; 33];
    let end = super::proxy::push_hex(&mut buf, 0, u64::MAX);
    assert_eq!(&buf[..end], b"ffffffffffffffff");
    assert_eq!(super::proxy::push_hex(&mut buf, 0, 0), 1);
    assert_eq!(buf[0], b'0');
}

/// A model request's future is moved (copied) as it is boxed and awaited, every request:
/// rare, large states (a connect with its TLS and HTTP/2 handshakes, context retrieval,
/// translating an answer back) are boxed so it stays small (10.7 KB before, 3.1 KB after).
#[test]
fn a_model_requests_future_stays_small() {
    let gw = std::sync::Arc::new(super::Gateway::new(config(
        "upstreams: {a: \"http://127.0.0.1:9\"}\n",
    )));
    let f = super::proxy::handle(
        gw,
        super::proxy::ROUTES[0],
        axum::http::HeaderMap::new(),
        Body::empty(),
    );
    let size = std::mem::size_of_val(&f);
    assert!(size <= 4096, "the model route's future is {size} bytes");
}

/// `llm: replay` never leaves the machine: a `mock:` off loopback is refused, loopback and
/// a container's service name are not; `mock` and `replay` need a `mock:` URL; `live` and
/// `record` refuse an empty provider key, `mock` does not.
#[test]
fn each_mode_checks_what_it_needs() {
    use crate::services::cassette::Mode;
    let parse = |yaml: &str| -> Config {
        crate::services::config::parse_yaml(std::path::Path::new("t.yaml"), yaml).expect("yaml")
    };
    let problems = |c: &Config, m: Mode| c.mode_problems(m);
    let c = parse("mock: \"https://models.example.com\"\n");
    assert!(
        problems(&c, Mode::Replay)[0]
            .message
            .contains("never leaves the machine")
    );
    assert!(problems(&c, Mode::Mock).is_empty());
    for ok in [
        "http://127.0.0.1:9",
        "http://[::1]:9",
        "http://localhost:9",
        "http://model:8080",
    ] {
        assert!(
            problems(&parse(&format!("mock: \"{ok}\"\n")), Mode::Replay).is_empty(),
            "{ok}"
        );
    }
    assert!(
        problems(&parse("{}\n"), Mode::Mock)[0]
            .message
            .contains("set `mock:`")
    );
    let keyless = parse(
        "upstreams: {a: {url: \"http://x\", provider: openai, api_key: \"\"}}\nmock: \"http://127.0.0.1:9\"\n",
    );
    assert!(!problems(&keyless, Mode::Record).is_empty());
    assert!(problems(&keyless, Mode::Mock).is_empty());
}
