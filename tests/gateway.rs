//! `stack serve gateway` in front of the real mock model and context server: the official
//! SDKs through it, the MCP SDK through `/mcp`, context enrichment, retries and fallback,
//! a dead context server, and streams that are not held back.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Sdk, Served, run_python};

fn context_server() -> Served {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!("db: {}\n", dir.path().join("ctx.db").display());
    Served::start_in("context", Some(&yaml), dir)
}

fn gateway(yaml: &str) -> Served {
    Served::start("gateway", Some(yaml))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A loopback port nothing listens on (bound, then let go).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn chat(text: &str) -> Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]})
}

fn sdk_suite(sdk: Sdk) {
    let Some(python) = sdk.python(&format!("gateway_sdk_{}", sdk.name())) else {
        return;
    };
    let model = Served::start("model", None);
    let gw = gateway(&format!(
        "keys: [gw-key, {{key: gw-two, rpm: 2}}]\nupstreams: {{default: \"{}\"}}\n",
        model.url
    ));
    let out = run_python(&python, "gateway_sdk.py", &[("GATEWAY_URL", &gw.url)]);
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ["ok openai", "ok anthropic", "ok errors"] {
        assert!(text.contains(t), "{t}:\n{text}");
    }
}

#[test]
fn official_sdks_current() {
    sdk_suite(Sdk::Current);
}

#[test]
fn official_sdks_legacy() {
    sdk_suite(Sdk::Legacy);
}

#[test]
fn mcp_sdk_through_the_gateway() {
    let Some(python) = Sdk::Current.python("gateway_mcp") else {
        return;
    };
    let ctx = context_server();
    let model = Served::start("model", None);
    let gw = gateway(&format!(
        "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
        model.url, ctx.url
    ));
    let out = run_python(
        &python,
        "context_mcp.py",
        &[("MCP_URL", &format!("{}/mcp", gw.url))],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok 2026-07-28") && text.contains("ok 2025-11-25"),
        "{text}"
    );
}

#[tokio::test]
async fn keys_guard_the_proxied_routes() {
    let ctx = context_server();
    let gw = gateway(&format!("keys: [k1]\ncontext_url: \"{}\"\n", ctx.url));
    let c = client();
    let r = c
        .get(format!("{}/v1/sessions", gw.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{}/mcp", gw.url))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/v1/sessions", gw.url))
        .bearer_auth("k1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_second_turn_carries_the_first() {
    let ctx = context_server();
    // Strict, so the context the gateway prepends must be what the real APIs accept.
    let model = Served::start("model", Some("strict: true\n"));
    let gw = gateway(&format!(
        "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
        model.url, ctx.url
    ));
    let c = client();
    let first = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-session-id", "ada")
        .json(&chat("My name is Ada Lovelace"))
        .send()
        .await
        .expect("first");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-stack-context-entries"], "0");
    // Straight away: the store is off the critical path yet ordered before this turn.
    let second = c
        .post(format!("{}/v1/messages", gw.url))
        .header("x-session-id", "ada")
        .json(&json!({"model": "mock-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "What is my name?"}]}))
        .send()
        .await
        .expect("second");
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-stack-context-entries"], "2");
    assert!(
        second.headers()["x-stack-context-tokens"]
            .to_str()
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            > Some(0)
    );
    // A streamed third turn is assembled and stored too.
    let third = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-session-id", "ada")
        .json(&json!({"model": "mock-gpt", "stream": true, "messages": [{"role": "user", "content": "Tell me more"}]}))
        .send()
        .await
        .expect("third");
    assert_eq!(third.headers()["x-stack-context-entries"], "4");
    let streamed = third.text().await.expect("stream");
    assert!(streamed.contains("[DONE]"));
    // The next turn waits for the streamed one to be stored: the gateway orders them.
    let after = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-session-id", "ada")
        .json(&chat("and now?"))
        .send()
        .await
        .expect("fourth");
    assert_eq!(after.headers()["x-stack-context-entries"], "6");
    let stored: Value = c
        .get(format!(
            "{}/v1/sessions/ada/context?max_tokens=10000",
            ctx.url
        ))
        .send()
        .await
        .expect("context")
        .json()
        .await
        .expect("json");
    let texts: Vec<&str> = stored["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(texts[0], "My name is Ada Lovelace");
    assert!(
        texts[1].starts_with("Mock reply to \"My name is Ada Lovelace\""),
        "{texts:?}"
    );
    assert_eq!(texts[2], "What is my name?");
    assert_eq!(texts[4], "Tell me more");
    assert!(
        texts[5].starts_with("Mock reply to \"Tell me more\""),
        "the streamed reply is stored whole: {texts:?}"
    );
}

#[tokio::test]
async fn a_faulted_upstream_falls_back_and_exhaustion_says_do_not_retry() {
    let broken = Served::start("model", Some("faults: [{status: 500, every: 1}]\n"));
    let good = Served::start("model", None);
    let gw = gateway(&format!(
        "upstreams: {{default: [\"{}\", \"{}\"], dead: [\"{}\"]}}\nroutes: [{{model: \"dead-*\", upstream: dead}}]\nretries: 1\nretry_backoff_ms: 1\n",
        broken.url, good.url, broken.url
    ));
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat("hi"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "served by the second URL");
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "dead-model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let metrics = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("stack_gateway_upstream_fallbacks_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("stack_gateway_upstream_retries_total") >= 2.0,
        "{metrics}"
    );
    // An unreachable upstream: 502 in the caller's shape, do not retry.
    let gw2 = gateway("upstreams: {default: \"http://127.0.0.1:9\"}\nretries: 0\n");
    let r = c
        .post(format!("{}/v1/messages", gw2.url))
        .json(
            &json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["type"], "error",
        "Anthropic shape on /v1/messages: {body}"
    );
}

#[tokio::test]
async fn a_dead_context_server_does_not_fail_requests() {
    let mut ctx = context_server();
    let model = Served::start("model", None);
    let gw = gateway(&format!(
        "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
        model.url, ctx.url
    ));
    ctx.kill();
    let c = client();
    for _ in 0..2 {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .header("x-session-id", "lost")
            .json(&chat("still there?"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-stack-context-entries"], "0");
    }
    let metrics = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Counted (the family is there from the start, at 0).
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("stack_gateway_context_failures_total{op=\"retrieve\"} ")
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= 1.0)),
        "{metrics}"
    );
}

#[tokio::test]
async fn streams_are_not_held_back() {
    // 12 tokens at 8 a second: the whole answer takes ~1.4 s; the first byte must not wait.
    let model = Served::start(
        "model",
        Some("latency: {first_token_ms: 0, tokens_per_second: 8}\n"),
    );
    let gw = gateway(&format!("upstreams: {{default: \"{}\"}}\n", model.url));
    let started = Instant::now();
    let mut r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "mock-gpt", "stream": true, "max_tokens": 12, "messages": [{"role": "user", "content": "go"}]}))
        .send()
        .await
        .expect("post");
    let first = r.chunk().await.expect("chunk").expect("a first frame");
    let to_first = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    while r.chunk().await.expect("chunk").is_some() {}
    let total = started.elapsed();
    assert!(
        total > Duration::from_millis(1000),
        "the mock paced the stream: {total:?}"
    );
    assert!(
        to_first < Duration::from_millis(400),
        "first byte after {to_first:?} of {total:?}"
    );
}

/// Connections an upstream accepted, and how many of them the gateway closed.
#[derive(Default)]
struct Connections {
    accepted: std::sync::atomic::AtomicUsize,
    closed_by_gateway: std::sync::atomic::AtomicUsize,
}

/// A bare HTTP/1.1 upstream on loopback that counts its connections; with `close_each`
/// it closes every connection right after its first answer, without saying so (as an
/// upstream whose keep-alive timeout ran out would).
fn counting_upstream(close_each: bool) -> (String, std::sync::Arc<Connections>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = std::sync::Arc::new(Connections::default());
    let count = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            count.accepted.fetch_add(1, Ordering::SeqCst);
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            count.closed_by_gateway.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = r#"{"choices":[],"usage":{"completion_tokens":1}}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    let out = reader.get_mut();
                    if out.write_all(head.as_bytes()).is_err()
                        || out.write_all(answer.as_bytes()).is_err()
                        || close_each
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, connections)
}

/// Sends `n` chat requests one after another through the gateway at `url`; each must be 200.
async fn chats_in_turn(c: &reqwest::Client, url: &str, n: usize) {
    for i in 0..n {
        let r = c
            .post(format!("{url}/v1/chat/completions"))
            .json(&chat("hi"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200, "request {i}");
        r.bytes().await.expect("body");
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_replaced_and_closed_when_idle() {
    use std::sync::atomic::Ordering;
    let c = client();
    let (url, upstream) = counting_upstream(false);
    let gw = gateway(&format!(
        "upstreams: {{default: \"{url}\"}}\nretries: 0\npool_idle_timeout_ms: 300\n"
    ));
    chats_in_turn(&c, &gw.url, 20).await;
    assert_eq!(
        upstream.accepted.load(Ordering::SeqCst),
        1,
        "20 requests one after another share one upstream connection"
    );
    assert_eq!(upstream.closed_by_gateway.load(Ordering::SeqCst), 0);
    // Idle past `pool_idle_timeout_ms`: the gateway closes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.closed_by_gateway.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the idle connection is still open after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every connection is closed after one answer: each request still succeeds, on a new
    // connection (`retries: 1` covers a request written just as the close arrives).
    let (url, upstream) = counting_upstream(true);
    let gw = gateway(&format!(
        "upstreams: {{default: \"{url}\"}}\nretries: 1\nretry_backoff_ms: 1\n"
    ));
    chats_in_turn(&c, &gw.url, 20).await;
    assert!(upstream.accepted.load(Ordering::SeqCst) >= 20);
}

/// The same agent frameworks through the gateway (its key, the mock behind it).
#[test]
fn agent_frameworks_through_the_gateway() {
    let model = Served::start("model", Some(&support::agents_model_config()));
    let gw = gateway(&format!(
        "keys: [gw-key]\nupstreams: {{default: \"{}\"}}\n",
        model.url
    ));
    support::agents_suite("agents_sdk_gateway", &gw.url, "gw-key");
}

/// What a recording upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Value,
}

/// An upstream that records each request's head and body, and answers JSON or (when the
/// request asks to stream) SSE naming `model` as the model that answered.
fn recording_upstream(
    model: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let stream = body["stream"] == json!(true);
                    if let Ok(mut l) = log.lock() {
                        l.push(Seen { head, body });
                    }
                    let (kind, answer) = if stream {
                        (
                            "text/event-stream",
                            format!(
                                "data: {{\"id\":\"c1\",\"model\": \"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"hi\"}}}}]}}\n\ndata: [DONE]\n\n"
                            ),
                        )
                    } else {
                        (
                            "application/json",
                            format!(
                                "{{\"id\":\"c1\",\"model\":\"{model}\",\"choices\":[],\"usage\":{{\"completion_tokens\":1}}}}"
                            ),
                        )
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    let out = reader.get_mut();
                    if out.write_all(head.as_bytes()).is_err()
                        || out.write_all(answer.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// The header `name` (lowercase) of a recorded request head.
fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
    })
}

/// Each upstream gets its provider's key in its provider's header, never the caller's
/// gateway key; `headers:` are added; an alias goes out as the model it stands for and
/// comes back as the alias (JSON and SSE); provider keys appear in no log line and not in
/// `/metrics`.
#[tokio::test]
async fn provider_keys_go_in_their_header_and_aliases_come_back_as_asked() {
    let (claude_url, claude) = recording_upstream("claude-haiku-4-5-20251001");
    let (openai_url, openai) = recording_upstream("gpt-4o-mini");
    let gw = Served::start_captured(
        "gateway",
        Some(&format!(
            r#"keys: [gw-key-123]
upstreams:
  claude: {{url: "{claude_url}", provider: anthropic, api_key: sk-ant-provider-secret}}
  openai: {{url: "{openai_url}", provider: openai, api_key: sk-oa-provider-secret, headers: {{openai-organization: org-1}}}}
routes: [{{model: "claude-*", upstream: claude}}, {{model: "gpt-*", upstream: openai}}]
models:
  fast: {{upstream: claude, model: claude-haiku-4-5}}
"#
        )),
    );
    let c = client();
    // An Anthropic call, the caller's key in x-api-key.
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "gw-key-123")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    // An OpenAI call, the caller's key as a bearer token.
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("gw-key-123")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    // The alias, plain and streamed (on its provider's own API: nothing to translate).
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "gw-key-123")
        .json(&json!({"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["model"], "fast", "{v}");
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "gw-key-123")
        .json(&json!({"model": "fast", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    let text = r.text().await.expect("sse");
    assert!(
        text.contains("\"model\":\"fast\"") && !text.contains("claude-haiku"),
        "{text}"
    );

    let claude = claude.lock().expect("seen").clone();
    let openai = openai.lock().expect("seen").clone();
    assert_eq!(claude.len(), 3, "{claude:?}");
    for s in &claude {
        assert_eq!(
            header_of(&s.head, "x-api-key").as_deref(),
            Some("sk-ant-provider-secret")
        );
        assert_eq!(
            header_of(&s.head, "anthropic-version").as_deref(),
            Some("2023-06-01")
        );
        assert_eq!(header_of(&s.head, "authorization"), None, "{}", s.head);
        assert!(!s.head.contains("gw-key-123"), "{}", s.head);
    }
    assert_eq!(claude[1].body["model"], "claude-haiku-4-5");
    assert_eq!(claude[2].body["model"], "claude-haiku-4-5");
    assert_eq!(openai.len(), 1);
    let head = &openai[0].head;
    assert_eq!(
        header_of(head, "authorization").as_deref(),
        Some("Bearer sk-oa-provider-secret")
    );
    assert_eq!(
        header_of(head, "openai-organization").as_deref(),
        Some("org-1")
    );
    assert_eq!(header_of(head, "x-api-key"), None);

    let metrics = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut gw = gw;
    gw.stop(Duration::from_secs(5));
    let output = gw.output.lock().expect("output").clone();
    for secret in [
        "sk-ant-provider-secret",
        "sk-oa-provider-secret",
        "gw-key-123",
    ] {
        assert!(
            !output.contains(secret),
            "{secret} in the gateway's output:\n{output}"
        );
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
    assert!(
        output.contains("/v1/messages"),
        "the access log is captured:\n{output}"
    );
}

/// Bring your own key: behind a gateway without `keys`, an upstream without `api_key`
/// gets the caller's own credentials; one with `api_key` gets its own instead.
#[tokio::test]
async fn without_gateway_keys_the_callers_own_key_passes_through() {
    let (byok_url, byok) = recording_upstream("gpt-4o");
    let (keyed_url, keyed) = recording_upstream("gpt-4o");
    let gw = gateway(&format!(
        "upstreams:\n  byok: \"{byok_url}\"\n  keyed: {{url: \"{keyed_url}\", provider: openai, api_key: sk-own}}\nroutes: [{{model: \"keyed-*\", upstream: keyed}}, {{model: \"*\", upstream: byok}}]\n"
    ));
    let c = client();
    for model in ["gpt-4o", "keyed-1"] {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-callers-own")
            .header("x-api-key", "sk-callers-own")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let byok = byok.lock().expect("seen").clone();
    assert_eq!(
        header_of(&byok[0].head, "authorization").as_deref(),
        Some("Bearer sk-callers-own")
    );
    assert_eq!(
        header_of(&byok[0].head, "x-api-key").as_deref(),
        Some("sk-callers-own")
    );
    let keyed = keyed.lock().expect("seen").clone();
    assert_eq!(
        header_of(&keyed[0].head, "authorization").as_deref(),
        Some("Bearer sk-own")
    );
    assert_eq!(header_of(&keyed[0].head, "x-api-key"), None);
}

/// The mock serving TLS with a certificate of a private CA: the server, its `https://`
/// URL, the CA's PEM file, and the folder holding them (kept while it lives).
fn tls_model() -> (Served, String, std::path::PathBuf, tempfile::TempDir) {
    let certs = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = support::private_ca(certs.path());
    let model = Served::start(
        "model",
        Some(&format!(
            "strict: true\ntls: {{cert: \"{}\", key: \"{}\"}}\n",
            cert.display(),
            key.display()
        )),
    );
    let https = model.url.replace("http://", "https://");
    (model, https, ca, certs)
}

/// The mock over real TLS on loopback stands in for a provider: the gateway reaches it at
/// `https://` trusting a private CA through `ca_file` (HTTP/2 by ALPN), plain and
/// streamed; with the wrong CA the caller gets a clear TLS error in its API's shape, at
/// once, not a hang.
#[tokio::test]
async fn https_upstreams_with_a_private_ca() {
    let (model, https, ca, _certs) = tls_model();
    let gw = gateway(&format!(
        "upstreams: {{default: {{url: \"{https}\", provider: openai, api_key: sk-x}}}}\nca_file: \"{}\"\nretries: 0\n",
        ca.display()
    ));
    let c = client();
    for _ in 0..3 {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&chat("over tls"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    }
    let mut streamed = chat("streamed over tls");
    streamed["stream"] = json!(true);
    let text = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&streamed)
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("sse");
    assert!(text.contains("data: [DONE]"), "{text}");
    // The mock still answers plain HTTP on the same port (its health check).
    let h = c
        .get(format!("{}/health", model.url))
        .send()
        .await
        .expect("health");
    assert_eq!(h.status(), 200);

    // Another CA: the handshake fails, and the caller hears why in its own shape.
    let other = tempfile::tempdir().expect("tmp");
    let (wrong_ca, _, _) = support::private_ca(other.path());
    let gw = gateway(&format!(
        "upstreams: {{default: \"{https}\"}}\nca_file: \"{}\"\nretries: 0\n",
        wrong_ca.display()
    ));
    let started = Instant::now();
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .json(&json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(5));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "error", "Anthropic's shape: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("TLS handshake failed") && message.contains("certificate"),
        "{message}"
    );
}

/// `/v1/models` in both shapes and `/v1/models/{id}` (aliases included) on the gateway;
/// an unknown route is a JSON 404 in the API's shape with the base-URL hint, on the
/// gateway and on the mock.
#[tokio::test]
async fn models_in_both_shapes_and_unknown_routes_with_the_base_url_hint() {
    let model = Served::start("model", None);
    let gw = gateway(&format!(
        "upstreams: {{default: \"{}\"}}\nmodels: {{fast: {{upstream: default, model: mock-claude}}}}\n",
        model.url
    ));
    let c = client();
    let get = |path: String, anthropic: bool| {
        let mut r = c.get(path);
        if anthropic {
            r = r.header("anthropic-version", "2023-06-01");
        }
        r.send()
    };
    let v: Value = get(format!("{}/v1/models", gw.url), false)
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"mock-gpt") && ids.contains(&"fast"), "{v}");
    let v: Value = get(format!("{}/v1/models", gw.url), true)
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"][0]["type"], "model", "{v}");
    assert_eq!(v["has_more"], false);
    let v: Value = get(format!("{}/v1/models/fast", gw.url), false)
        .await
        .expect("model")
        .json()
        .await
        .expect("json");
    assert_eq!(v["id"], "fast");
    let r = get(format!("{}/v1/models/nope", gw.url), true)
        .await
        .expect("model");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "error", "{v}");

    for base in [&gw.url, &model.url] {
        let r = c
            .post(format!("{base}/chat/completions"))
            .json(&chat("hi"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.expect("a JSON 404");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("did you mean /v1/chat/completions?")
                && message.contains("OpenAI SDKs want the base URL with /v1"),
            "{v}"
        );
        let r = c
            .post(format!("{base}/v1/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .body("{}")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.expect("a JSON 404");
        assert_eq!(v["type"], "error", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("did you mean /v1/messages?"),
            "{v}"
        );
    }
}

/// Translation both ways, streaming included, with the official SDKs (strict response
/// validation): the OpenAI SDK calls `claude-*` on an `anthropic` provider and the
/// Anthropic SDK `gpt-*` on an `openai` one; both providers are the mock over TLS.
#[test]
fn official_sdks_through_translation() {
    let Some(python) = Sdk::Current.python("official_sdks_through_translation") else {
        return;
    };
    let (_model, https, ca, _certs) = tls_model();
    let gw = gateway(&format!(
        "keys: [gw-key]\nupstreams:\n  claude: {{url: \"{https}\", provider: anthropic, api_key: sk-ant}}\n  openai: {{url: \"{https}\", provider: openai, api_key: sk-oa}}\nroutes: [{{model: \"claude-*\", upstream: claude}}, {{model: \"gpt-*\", upstream: openai}}]\nca_file: \"{}\"\n",
        ca.display()
    ));
    let out = run_python(&python, "translate_sdk.py", &[("GATEWAY_URL", &gw.url)]);
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ["ok openai to anthropic", "ok anthropic to openai"] {
        assert!(text.contains(t), "{t}:\n{text}");
    }
}

/// A Claude route falls back across providers: its Anthropic URL is down, so the request
/// goes to its OpenAI URL translated, and the caller still gets an Anthropic message. An
/// embeddings request to a route with only an Anthropic provider is a clear 400.
#[tokio::test]
async fn fallback_across_providers_is_translated() {
    let model = Served::start("model", None);
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let gw = gateway(&format!(
        "upstreams:\n  claude:\n    - {{url: \"{dead}\", provider: anthropic, api_key: sk-a}}\n    - {{url: \"{}\", provider: openai, api_key: sk-o}}\n  only_claude: {{url: \"{dead}\", provider: anthropic}}\nroutes: [{{model: \"claude-*\", upstream: claude}}, {{model: \"embed-*\", upstream: only_claude}}]\nretries: 0\n",
        model.url
    ));
    let c = client();
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .json(&json!({"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "message", "{v}");
    assert!(v["content"][0]["text"].is_string(), "{v}");
    let r = c
        .post(format!("{}/v1/embeddings", gw.url))
        .json(&json!({"model": "embed-1", "input": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no counterpart in Anthropic's API"),
        "{v}"
    );
}

/// DNS rebinding: a page whose name was rebound to 127.0.0.1 reaches the services with its
/// own name in `Host`, and a foreign page posts with its `Origin`. All three services
/// refuse both on every route (health included) with a JSON 403 naming the fix, serve
/// loopback names and addresses, and serve a name once it is in `allowed_hosts:`.
#[tokio::test]
async fn every_service_refuses_rebound_hosts_and_foreign_origins() {
    let ctx_dir = tempfile::tempdir().expect("tmp");
    let ctx = Served::start_in(
        "context",
        Some(&format!("db: {}\n", ctx_dir.path().join("c.db").display())),
        ctx_dir,
    );
    let model = Served::start("model", Some("allowed_hosts: [\"*.corp.example\"]\n"));
    let gw = gateway(&format!(
        "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
        model.url, ctx.url
    ));
    let c = client();
    let port = |url: &str| url.rsplit(':').next().unwrap_or_default().to_string();
    let cases = [
        (&ctx.url, "GET", "/v1/sessions"),
        (&ctx.url, "GET", "/health"),
        (&ctx.url, "POST", "/mcp"),
        (&model.url, "GET", "/v1/models"),
        (&model.url, "GET", "/health"),
        (&gw.url, "POST", "/v1/chat/completions"),
        (&gw.url, "GET", "/v1/sessions"),
        (&gw.url, "GET", "/health"),
    ];
    for (url, method, path) in cases {
        let send = |host: String, origin: Option<&str>| {
            let mut r = c
                .request(method.parse().expect("method"), format!("{url}{path}"))
                .header("host", host);
            if method == "POST" {
                r = r
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(serde_json::to_vec(&chat("hi")).expect("json"));
            }
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            r.send()
        };
        let p = port(url);
        let r = send(format!("evil.example:{p}"), None).await.expect("send");
        assert_eq!(r.status(), 403, "{method} {url}{path} with a rebound host");
        let v: Value = r.json().await.expect("a JSON refusal");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("evil.example") && message.contains("allowed_hosts"),
            "{v}"
        );
        let r = send(format!("localhost:{p}"), Some("https://evil.example"))
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            403,
            "{method} {url}{path} with a foreign origin"
        );
        for host in [format!("localhost:{p}"), format!("127.0.0.1:{p}")] {
            let r = send(host.clone(), Some("http://localhost:3000"))
                .await
                .expect("send");
            assert_ne!(r.status(), 403, "{method} {url}{path} refused {host}");
        }
    }
    // A name of one's own, once allowed.
    let r = c
        .get(format!("{}/v1/models", model.url))
        .header("host", "dev.corp.example")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

/// An upstream that answers every request with `status` and a body by path:
/// `/v1/messages` an OpenAI-shaped error, anything else plain text.
fn erring_upstream(status: u16) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let (mut path, mut length) = (String::new(), 0usize);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if path.is_empty() {
                            path = line.split(' ').nth(1).unwrap_or_default().to_string();
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (kind, text) = if path == "/v1/messages" {
                        (
                            "application/json",
                            r#"{"error": {"message": "quota gone"}}"#,
                        )
                    } else {
                        ("text/plain", "upstream says no")
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} Nope\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A password in an upstream URL is sent as `Authorization: Basic` and shows nowhere:
/// not in `/health`, not in a 502's body, not in the access log. An upstream error in
/// another shape (plain text, or OpenAI's on an Anthropic route) reaches the caller in
/// its own API's shape, its message kept.
#[tokio::test]
async fn upstream_credentials_never_show_and_errors_keep_the_callers_shape() {
    let (up, seen) = recording_upstream("m");
    let dead = dead_port();
    let erring = erring_upstream(400);
    let with_user = up.replace("http://", "http://bob:s3cret%2Dpw@");
    let gw = Served::start_captured(
        "gateway",
        Some(&format!(
            "upstreams: {{default: \"{with_user}\", dead: \"http://eve:dead-pw@127.0.0.1:{dead}\", erring: \"{erring}\"}}\nroutes: [{{model: \"dead-*\", upstream: dead}}, {{model: \"err-*\", upstream: erring}}]\nretries: 0\n"
        )),
    );
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat("hi"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let head = seen.lock().expect("seen")[0].head.to_ascii_lowercase();
    // base64("bob:s3cret-pw")
    assert!(
        head.contains("authorization: basic ym9ionmzy3jldc1wdw=="),
        "{head}"
    );
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "dead-1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 502);
    let body = r.text().await.expect("body");
    let health = c
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .expect("health")
        .text()
        .await
        .expect("body");
    assert!(health.contains(&format!("127.0.0.1:{dead}")), "{health}");

    let r = c
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "err-1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("an OpenAI error");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream says no"),
        "{v}"
    );
    let r = c
        .post(format!("{}/v1/messages", gw.url))
        .json(&json!({"model": "err-1", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("an Anthropic error");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["message"], "quota gone", "{v}");

    let log = gw.output.lock().expect("log").clone();
    for secret in ["s3cret", "dead-pw", "eve:", "bob:"] {
        for (what, text) in [("502 body", &body), ("/health", &health), ("log", &log)] {
            assert!(!text.contains(secret), "{secret} in the {what}: {text}");
        }
    }
}
