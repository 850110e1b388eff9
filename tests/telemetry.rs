//! Telemetry end to end (SPEC §6): the built-ins' traces through the supervisor's OTLP
//! receiver, a user service's span from the official Python SDK, `stack traces`, the
//! metrics in both Prometheus formats, and the dashboard in a real headless Chromium.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Project, Sdk, eventually, repo_root, run_python, skip_or_fail};

/// The AI stack, a user service reporting a span with the Python SDK, and `echoer`, which
/// prints what the test asks for (a line, or a flood of lines).
fn stack_yaml(python: &std::path::Path) -> String {
    let script = repo_root().join("tests/python/otel_span.py");
    format!(
        r#"
services:
  context:
    builtin: context
    port: auto
  model:
    builtin: model
    port: auto
    config:
      models: [mock-gpt]
      faults: [{{status: 500, every: 3}}]   # the third chat is retried
  gateway:
    builtin: gateway
    port: auto
    depends_on: {{context: healthy, model: healthy}}
    config:
      keys: [dev-key]
      upstreams: {{default: "${{services.model.url}}"}}
      context_url: "${{services.context.url}}"
  reporter:
    command: ["{python}", "{script}"]
    restart: "no"
  echoer:
    command:
      - sh
      - -c
      - |
        echo "echoer up"
        while true; do
          if [ -f say ]; then echo "$(cat say)"; rm -f say; fi
          if [ -f flood ]; then n=$(cat flood); rm -f flood; seq 1 "$n" | sed 's/^/flood /'; fi
          sleep 0.02
        done
"#,
        python = python.display(),
        script = script.display(),
    )
}

fn ps(p: &Project) -> Value {
    let out = p.run(&["ps", "--json"], Duration::from_secs(20));
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("ps --json: {e}: {out:?}"))
}

fn url_of(doc: &Value, service: &str) -> String {
    doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == service))
        .and_then(|s| s["ports"]["main"]["url"].as_str())
        .unwrap_or_else(|| panic!("no URL for {service}: {doc}"))
        .to_string()
}

fn traces(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["traces", "--json"];
    all.extend_from_slice(args);
    let out = p.run(&all, Duration::from_secs(20));
    if out.code != Some(0) {
        // Not there yet (the exporters batch): the caller waits and asks again.
        return Value::Null;
    }
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("traces --json: {e}: {out:?}"))
}

/// `/metrics` of `base`, asked for with `accept`.
async fn metrics(client: &reqwest::Client, base: &str, accept: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .header("accept", accept)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down"], Duration::from_secs(60));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_is_one_trace_across_gateway_context_and_model() {
    let Some(python) = Sdk::Current.python("telemetry") else {
        return;
    };
    let p = Project::new(&stack_yaml(&python));
    let up = p.run(&["up", "-d", "--wait"], Duration::from_secs(120));
    let _down = Down(&p);
    assert_eq!(up.code, Some(0), "{up:?}");
    assert!(up.stdout.contains("dashboard: http://127.0.0.1:"), "{up:?}");
    let doc = ps(&p);
    let gateway = url_of(&doc, "gateway");
    let client = reqwest::Client::new();
    // Every family is there before the first request; the GenAI ones under their
    // conventional names.
    let before = metrics(&client, &gateway, "*/*").await;
    for family in [
        "# TYPE gen_ai_client_token_usage histogram",
        "# TYPE gen_ai_server_request_duration_seconds histogram",
        "# TYPE gen_ai_server_time_to_first_token_seconds histogram",
        "stack_gateway_rate_limited_total{op=\"requests_per_minute\"} 0",
        "stack_gateway_context_failures_total{op=\"retrieve\"} 0",
    ] {
        assert!(before.contains(family), "{family} missing:\n{before}");
    }
    // The caller's trace is continued.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    for text in ["remember the lighthouse", "what did I say?"] {
        let r = client
            .post(format!("{gateway}/v1/chat/completions"))
            .bearer_auth("dev-key")
            .header("x-session-id", "trace-session")
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .expect("chat");
        assert_eq!(r.status(), 200);
    }
    // The exporters batch (up to 5 s).
    let mut found = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            found = traces(&p, &[trace_id]);
            let spans = found["spans"].as_array().map_or(0, Vec::len);
            // Per request: gateway, retrieve, model, two stores.
            spans >= 10
        }),
        "{found:#}"
    );
    let spans = found["spans"].as_array().cloned().unwrap_or_default();
    let by = |service: &str, name: &str| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["service"] == service && s["name"] == name)
            .cloned()
            .collect()
    };
    let chats = by("gateway", "chat mock-gpt");
    assert_eq!(chats.len(), 2, "{found:#}");
    let g = &chats[0]["attributes"];
    assert_eq!(g["gen_ai.operation.name"], "chat");
    assert_eq!(g["gen_ai.provider.name"], "openai");
    assert_eq!(g["gen_ai.request.model"], "mock-gpt");
    assert_eq!(g["gen_ai.response.model"], "mock-gpt");
    assert!(g["gen_ai.usage.input_tokens"].as_i64() > Some(0), "{g}");
    assert!(g["gen_ai.usage.output_tokens"].as_i64() > Some(0), "{g}");
    assert_eq!(g["stack.key"], "key#1");
    // The caller's span is the gateway span's parent.
    assert_eq!(chats[0]["parent_span_id"], "00f067aa0ba902b7");
    // An answered first attempt is the gateway's span itself: the model's span is its
    // child, and it says where the answer came from.
    assert_eq!(g["server.address"], "127.0.0.1");
    assert!(
        by("gateway", "POST /v1/chat/completions").is_empty(),
        "{found:#}"
    );
    let model = by("model", "chat mock-gpt");
    assert_eq!(model.len(), 2, "{found:#}");
    assert!(
        model
            .iter()
            .any(|m| m["parent_span_id"] == chats[0]["span_id"]),
        "{found:#}"
    );
    assert_eq!(model[0]["kind"], "server");
    assert!(model[0]["attributes"]["gen_ai.usage.output_tokens"].as_i64() > Some(0));
    // The second turn's retrieval prepended the first.
    let retrieved = by("context", "retrieve context");
    assert!(
        retrieved
            .iter()
            .any(|r| r["attributes"]["stack.context.entries"].as_i64() == Some(2)),
        "{found:#}"
    );
    assert_eq!(by("context", "store context").len(), 4, "{found:#}");

    // A retried request: its failed first attempt and the retry are child spans, each
    // the parent of the model's span it caused.
    let retried = "5ce0e9a56015fec5aadfa328ae398115";
    let r = client
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth("dev-key")
        .header("traceparent", format!("00-{retried}-00f067aa0ba902b7-01"))
        .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "again"}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);
    let mut t = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            t = traces(&p, &[retried]);
            t["spans"].as_array().map_or(0, Vec::len) >= 5
        }),
        "{t:#}"
    );
    let spans = t["spans"].as_array().cloned().unwrap_or_default();
    let named = |n: &str| spans.iter().find(|s| s["name"] == n).cloned();
    let (Some(first), Some(retry)) = (
        named("POST /v1/chat/completions"),
        named("POST /v1/chat/completions (retry 1)"),
    ) else {
        panic!("no attempt spans: {t:#}");
    };
    assert_eq!(first["kind"], "client");
    assert_eq!(first["error"], true, "{first}");
    assert_eq!(first["attributes"]["http.response.status_code"], 500);
    assert!(retry["error"].is_null(), "{retry}");
    assert_eq!(retry["attributes"]["http.request.resend_count"], 1);
    let models: Vec<&Value> = spans.iter().filter(|s| s["service"] == "model").collect();
    assert_eq!(models.len(), 2, "{t:#}");
    assert!(
        models
            .iter()
            .any(|m| m["parent_span_id"] == retry["span_id"]),
        "{t:#}"
    );
    assert_eq!(
        t["errors"], 2,
        "the failed attempt and the model's 500: {t:#}"
    );

    // The user's service reported with the official SDK, to the injected endpoint.
    let mut user = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            user = traces(&p, &["--service", "reporter"]);
            user.as_array().is_some_and(|t| !t.is_empty())
        }),
        "{user:#}"
    );
    let t = &user[0];
    assert_eq!(t["root"], "user work");
    assert_eq!(t["span_count"], 2);
    assert_eq!(t["spans"][0]["attributes"]["app.items"], 3);
    // `--errors` lists only failed ones; the text list names the trace.
    let errors = traces(&p, &["--errors"]);
    assert!(
        errors
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["trace_id"] == retried),
        "{errors:#}"
    );
    let list = p.run(&["traces"], Duration::from_secs(20));
    assert!(
        list.stdout.contains("4bf92f3577b3") && list.stdout.contains("mock-gpt"),
        "{list:?}"
    );

    // The metrics: a model label, the key's label (never the key), the GenAI histograms,
    // and both formats read by the official Prometheus client's parsers.
    let open = metrics(&client, &gateway, "*/*").await;
    assert!(
        open.contains(r#"stack_gateway_tokens_total{route="/v1/chat/completions",kind="completion",model="mock-gpt",key="key#1"}"#),
        "{open}"
    );
    assert!(
        open.contains(r#"gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="mock-gpt",gen_ai_token_type="output",key="key#1"} 3"#),
        "{open}"
    );
    assert!(!open.contains("dev-key"), "{open}");
    let classic = metrics(&client, &gateway, "text/plain;version=0.0.4").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, o) = (dir.path().join("classic"), dir.path().join("open"));
    std::fs::write(&c, &classic).expect("write");
    std::fs::write(&o, &open).expect("write");
    let parsed = run_python(
        &python,
        "metrics_parse.py",
        &[
            ("CLASSIC_FILE", c.to_str().unwrap_or_default()),
            ("OPENMETRICS_FILE", o.to_str().unwrap_or_default()),
            ("COUNTER", "stack_gateway_requests"),
            ("HISTOGRAM", "gen_ai_client_token_usage"),
        ],
    );
    let text = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        text.contains("ok classic") && text.contains("ok openmetrics"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_takes_otlp_json_and_forwards_to_a_collector() {
    use std::io::{Read, Write};
    // A collector of our own on loopback: it records what it is sent.
    let collector = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = collector.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in collector.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = vec![0u8; 65536];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            if let Ok(mut g) = seen.lock() {
                g.push(head);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}",
            );
        }
    });
    let p = Project::new(&format!(
        "otlp_forward: http://127.0.0.1:{port}\nservices:\n  idle:\n    command: [sleep, '300']\n"
    ));
    let up = p.run(&["up", "-d", "--wait"], Duration::from_secs(60));
    let _down = Down(&p);
    assert_eq!(up.code, Some(0), "{up:?}");
    let doc = ps(&p);
    let otlp = format!(
        "http://127.0.0.1:{}",
        doc["telemetry_port"].as_u64().expect("telemetry port")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let body = json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174", "name": "json work", "kind": 1,
            "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string(),
            "status": {"code": 2, "message": "it broke"}}]}]}]});
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{otlp}/v1/traces"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    // Malformed or of another media type: refused, with why.
    let bad = client
        .post(format!("{otlp}/v1/traces"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap_or_default()
            .contains("not an OTLP JSON document")
    );
    let other = client
        .post(format!("{otlp}/v1/traces"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(other.status(), 415);
    let errors = traces(&p, &["--errors"]);
    assert!(
        errors
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["root"] == "json work")),
        "{errors:#}"
    );
    assert!(
        eventually(Duration::from_secs(10), || got
            .lock()
            .is_ok_and(|g| g.iter().any(|h| h.starts_with("POST /v1/traces")))),
        "the collector got {:?}",
        got.lock().map(|g| g.len())
    );
    // The spans file is the owner's only.
    let file = p.path().join(".stack/telemetry/spans.jsonl");
    let mode = std::fs::metadata(&file).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o600), "{}", file.display());
}

#[test]
fn a_bad_otlp_forward_is_refused_where_it_is_written() {
    let p = Project::new("otlp_forward: collector:4318\nservices:\n  a:\n    command: [true]\n");
    let out = p.run(&["validate"], Duration::from_secs(20));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("otlp_forward") && out.stderr.contains("stack.yaml:1"),
        "{out:?}"
    );
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(python) = Sdk::Current.python("dashboard") else {
        return;
    };
    if !support::provision("chromium.sh", &[]) {
        skip_or_fail(
            "dashboard",
            "no chromium and chromedriver (scripts/chromium.sh)",
        );
        return;
    }
    let p = Project::new(&stack_yaml(&python));
    let up = p.run(&["up", "-d", "--wait"], Duration::from_secs(120));
    let _down = Down(&p);
    assert_eq!(up.code, Some(0), "{up:?}");
    let dash = p.run(&["dashboard"], Duration::from_secs(20));
    assert_eq!(dash.code, Some(0), "{dash:?}");
    let url = dash.stdout.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/d/"),
        "{url}"
    );
    let doc = ps(&p);
    let shots = p.path().join("screenshots");
    std::fs::create_dir_all(&shots).expect("mkdir");
    let out = run_python(
        &python,
        "dashboard_browser.py",
        &[
            ("DASHBOARD_URL", &url),
            ("GATEWAY_URL", &url_of(&doc, "gateway")),
            ("PROJECT_DIR", p.path().to_str().unwrap_or_default()),
            ("SCREENSHOTS", shots.to_str().unwrap_or_default()),
            ("CHROMEDRIVER", "/usr/bin/chromedriver"),
            ("CHROMIUM", "/usr/bin/chromium"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    support::to_terminal(&format!("dashboard timings: {}", text.trim()));
    // Keep the screenshots where the closing note can point at them.
    let kept = repo_root().join("target/dashboard-screenshots");
    let _ = std::fs::create_dir_all(&kept);
    for e in std::fs::read_dir(&shots).into_iter().flatten().flatten() {
        let _ = std::fs::copy(e.path(), kept.join(e.file_name()));
    }
    assert!(
        std::fs::read_dir(&shots).map_or(0, |d| d.count()) >= 5,
        "screenshots missing"
    );
    // Without the token, or from another Host: nothing.
    let base = url.split("/d/").next().unwrap_or_default().to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .get(format!("{base}/d/wrong-token/api/ps"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404);
        let r = c
            .get(format!("{url}api/ps"))
            .header("host", "evil.example:80")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 403);
    });
}

/// The Grafana dashboard of the `ai-stack-observability` template only asks for metric
/// families the built-ins expose (from their start, in the format Prometheus asks for).
#[tokio::test(flavor = "multi_thread")]
async fn the_grafana_dashboard_asks_only_for_families_the_builtins_expose() {
    let path = repo_root()
        .join("templates/ai-stack-observability/observability/grafana/dashboards/stack.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
        .expect("dashboard JSON");
    let exprs: Vec<String> = doc["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 12, "{exprs:?}");
    let model = support::Served::start("model", None);
    let context = support::Served::start("context", None);
    let gateway = support::Served::start(
        "gateway",
        Some(&format!(
            "upstreams: {{default: \"{}\"}}\ncontext_url: \"{}\"\n",
            model.url, context.url
        )),
    );
    let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let client = reqwest::Client::new();
    let mut exposed = String::new();
    for base in [&model.url, &context.url, &gateway.url] {
        exposed.push_str(&metrics(&client, base, prometheus).await);
    }
    let families: std::collections::HashSet<&str> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let name = metric_names(&exprs);
    assert!(!name.is_empty());
    for n in name {
        if n == "up" {
            continue; // Prometheus's own
        }
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| n.strip_suffix(s))
            .unwrap_or(&n);
        assert!(
            families.contains(family) || families.contains(n.as_str()),
            "the dashboard asks for `{n}`, which no built-in exposes; families: {families:?}"
        );
    }
}

/// The metric names in PromQL expressions: identifiers followed by `{` or `[`.
fn metric_names(exprs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for e in exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_alphabetic() || b[i] == b'_' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                if matches!(b.get(i), Some(b'{' | b'[')) {
                    out.push(e[start..i].to_string());
                }
            } else {
                i += 1;
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
