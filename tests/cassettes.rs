//! `--llm mock|live|record|replay` (SPEC §4.4) end to end: the official OpenAI and
//! Anthropic SDKs record a session through `stack run --llm record` against the mock over
//! TLS standing in for both providers (with latency, so stream timing means something),
//! then replay it with the provider gone; cassettes without keys; misses reported with a
//! diff; `stack cassettes`; a hermetic context store per `stack run`; the mode refused when
//! the stack cannot run in it, and shown by `ps`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Project, Sdk, Served, finish, repo_root};

const T: Duration = Duration::from_secs(180);

/// The stack: a gateway whose `openai` and `claude` upstreams are the provider at `https`
/// (trusted through `ca`), a built-in model (the mock and the replayer) and a context
/// server.
fn stack(https: &str, ca: &std::path::Path) -> String {
    format!(
        r#"services:
  model: {{builtin: model}}
  context: {{builtin: context}}
  gateway:
    builtin: gateway
    config:
      keys: [gw-key-rec]
      upstreams:
        openai: {{url: "{https}", provider: openai, api_key: "${{REC_OPENAI_KEY}}"}}
        claude: {{url: "{https}", provider: anthropic, api_key: "${{REC_ANTHROPIC_KEY}}"}}
      routes: [{{model: "claude-*", upstream: claude}}, {{model: "gpt-*", upstream: openai}}]
      ca_file: "{}"
"#,
        ca.display()
    )
}

/// `stack run --llm MODE ARGS… -- python cassette_sdk.py` with `env`.
fn run_sdk(
    p: &Project,
    python: &std::path::Path,
    mode: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> support::Run {
    let script = repo_root().join("tests/python/cassette_sdk.py");
    let mut args = vec!["run", "--llm", mode];
    args.extend_from_slice(extra);
    args.push("--");
    let python = python.display().to_string();
    let script = script.display().to_string();
    args.push(&python);
    args.push(&script);
    let mut cmd = p.command(&args);
    cmd.env_remove("REC_OPENAI_KEY")
        .env_remove("REC_ANTHROPIC_KEY")
        .env_remove("STACK_LLM")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(cmd.spawn().expect("stack run"), T)
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("answers")).expect("json")
}

#[test]
fn record_once_then_replay_without_the_provider() {
    let Some(python) = Sdk::Current.python("record_once_then_replay") else {
        return;
    };
    let certs = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = support::private_ca(certs.path());
    let provider = Served::start(
        "model",
        Some(&format!(
            "strict: true\nlatency: {{first_token_ms: 80, tokens_per_second: 120}}\ntls: {{cert: \"{}\", key: \"{}\"}}\n",
            cert.display(),
            key.display()
        )),
    );
    let https = provider.url.replace("http://", "https://");
    let p = Project::new(&stack(&https, &ca));
    let out = p.path().join("recorded.json");
    let keys = [
        ("REC_OPENAI_KEY", "sk-oa-never-written-1234"),
        ("REC_ANTHROPIC_KEY", "sk-ant-never-written-5678"),
    ];
    let mut env = keys.to_vec();
    let out_s = out.display().to_string();
    env.push(("OUT", &out_s));
    let run = run_sdk(&p, &python, "record", &[], &env);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let recorded = read_json(&out);

    // One file per exchange, by route; no key anywhere in them.
    let dir = p.path().join("cassettes");
    let list = p.run(&["cassettes", "list"], T);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let files: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(files.len(), 9, "{}", list.stdout);
    assert!(
        files.iter().any(
            |l| l.starts_with("chat-completions/hello-there-tell-me-about-the-")
                && l.contains("document")
        ),
        "{}",
        list.stdout
    );
    assert!(
        files.iter().any(
            |l| l.starts_with("messages/now-stream-me-a-few-words-") && l.contains("stream of")
        ),
        "{}",
        list.stdout
    );
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).expect("read");
        for secret in [keys[0].1, keys[1].1, "gw-key-rec"] {
            assert!(!text.contains(secret), "{secret} in {}", entry.display());
        }
    }
    let check = p.run(&["cassettes", "check"], T);
    assert_eq!(check.code, Some(0), "{}", check.stderr);

    // The provider is gone: replay answers everything, byte for byte, at its pace.
    drop(provider);
    let replayed_out = p.path().join("replayed.json");
    let rep_s = replayed_out.display().to_string();
    let run = run_sdk(
        &p,
        &python,
        "replay",
        &[],
        &[("OUT", &rep_s), ("CROSS", "1")],
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("llm replay: 13 answered from cassettes, 0 missing"),
        "{}",
        run.stderr
    );
    let replayed = read_json(&replayed_out);
    let rec = recorded.as_object().expect("object");
    assert_eq!(rec.len(), 9);
    for (name, a) in rec {
        let b = &replayed[name];
        match a["kind"].as_str() {
            Some("plain") => assert_eq!(a["body"], b["body"], "{name}"),
            _ => {
                assert_eq!(a["events"], b["events"], "{name}: frames differ");
                let last = |v: &Value| {
                    v["times"]
                        .as_array()
                        .and_then(|t| t.last())
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                };
                let (ta, tb) = (last(a), last(b));
                assert!(
                    ta > 150.0,
                    "{name}: a recorded stream of {ta} ms is too quick to time"
                );
                assert!(
                    (tb - ta).abs() <= ta * 0.1,
                    "{name}: recorded over {ta} ms, replayed over {tb} ms"
                );
            }
        }
    }
    let prune = p.run(&["cassettes", "prune", "--dry-run"], T);
    assert_eq!(prune.code, Some(0), "{}", prune.stderr);
    assert!(
        prune.stderr.contains("0 unused, 9 used"),
        "{}",
        prune.stderr
    );

    // A changed prompt has no recording: the SDK gets a 400 `no_recording` naming the
    // nearest recording and what differs, and `stack run` fails although the command
    // passed…
    let probe = r#"
import openai
c = openai.OpenAI(max_retries=0)
try:
    c.chat.completions.create(model="gpt-4o-mini", max_tokens=64, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there, tell me about the lake"}])
    raise SystemExit("answered")
except openai.BadRequestError as e:
    assert e.status_code == 400 and e.body["code"] == "no_recording", e.body
    assert "nearest: chat-completions/hello-there-tell-me-about-the-" in e.body["message"], e.body
    assert 'messages[1].content: recorded "Hello there, tell me about the sea", asked "Hello there, tell me about the lake"' in e.body["message"], e.body
print("refused as expected")
"#;
    let python_s = python.display().to_string();
    let miss = |extra: &[&str]| {
        let mut args = vec!["run", "--llm", "replay"];
        args.extend_from_slice(extra);
        args.extend(["--", &python_s, "-c", probe]);
        p.run(&args, T)
    };
    let run = miss(&[]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("refused as expected"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("llm replay: 0 answered from cassettes, 1 missing"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("messages[1].content: recorded"),
        "{}",
        run.stderr
    );
    // …unless misses are allowed.
    let run = miss(&["--allow-misses"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let metrics = std::fs::read_to_string(p.path().join(".stack/replay.jsonl")).expect("notes");
    assert!(metrics.contains("\"miss\""), "{metrics}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `--llm live` with a provider key whose variable is unset is refused before anything
/// starts, naming the variable; `--llm mock` needs no key (it is the default with a
/// built-in model) and `ps` shows it; `--llm mock` without a model to mock is refused.
#[test]
fn each_mode_is_refused_where_it_cannot_run_and_shown_where_it_runs() {
    let p = Project::new(
        r#"services:
  model: {builtin: model}
  gateway:
    builtin: gateway
    config:
      upstreams:
        openai: {url: "https://api.openai.com", provider: openai, api_key: "${STACK_TEST_NO_SUCH_KEY}"}
      routes: [{model: "gpt-*", upstream: openai}]
"#,
    );
    let run = p.run(&["up", "-d", "--llm", "live"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("`STACK_TEST_NO_SUCH_KEY` is not set"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("upstream `openai`"), "{}", run.stderr);
    assert!(!p.path().join(".stack/state.json").exists());

    // The default here is mock: no key needed, and every call answered by the mock.
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("llm: mock"), "{}", run.stdout);
    let ps = p.run(&["ps", "--json"], T);
    let doc: Value = serde_json::from_str(&ps.stdout).expect("ps");
    assert_eq!(doc["llm"], "mock", "{doc}");
    let gw = doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "gateway"))
        .and_then(|s| s["ports"]["main"]["url"].as_str())
        .expect("gateway url")
        .to_string();
    let answer = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys,urllib.request as u; print(u.urlopen(u.Request(sys.argv[1], data=json.dumps({'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'hi'}]}).encode(), headers={'content-type': 'application/json'})).read().decode())",
            &format!("{gw}/v1/chat/completions"),
        ])
        .output()
        .expect("python3");
    let v: Value = serde_json::from_slice(&answer.stdout).expect("json");
    assert_eq!(v["system_fingerprint"], "fp_stack_mock", "{v}");
    assert!(p.run(&["ps"], T).stdout.contains("llm: mock"));
    assert_eq!(p.run(&["down"], T).code, Some(0));

    let q = Project::new(
        "services:\n  gateway:\n    builtin: gateway\n    config: {upstreams: {default: \"http://127.0.0.1:9\"}}\n",
    );
    let run = q.run(&["up", "-d", "--llm", "mock"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no `builtin: model` service"),
        "{}",
        run.stderr
    );
    let run = q.run(&["up", "-d", "--llm", "fake"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

/// Every `stack run` starts from an empty context store (the second run does not see the
/// first's entries, and the project's own store is untouched), seeded from
/// `--context-snapshot` when given: a line as `GET /v1/sessions/{id}` answers.
#[test]
fn each_stack_run_has_a_context_store_of_its_own() {
    let p = Project::new("services:\n  context: {builtin: context}\n");
    let script = r#"
import json, os, sys, urllib.request
base = os.environ["STACK_CONTEXT_URL"]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
print("sessions:", sorted(s["id"] for s in call("GET", "/v1/sessions")["sessions"]))
call("POST", "/v1/sessions/run-" + sys.argv[1] + "/entries", {"role": "user", "content": "hello " + sys.argv[1]})
if len(sys.argv) > 2:
    print("dump:", json.dumps(call("GET", "/v1/sessions/" + sys.argv[2])))
"#;
    let first = p.run(&["run", "--", "python3", "-c", script, "one", "run-one"], T);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(first.stdout.contains("sessions: []"), "{}", first.stdout);
    let dump = first
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("dump: "))
        .expect("dump")
        .to_string();
    let second = p.run(&["run", "--", "python3", "-c", script, "two"], T);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(second.stdout.contains("sessions: []"), "{}", second.stdout);
    // The snapshot seeds it.
    p.write("snapshot.jsonl", &format!("{dump}\n"));
    let third = p.run(
        &[
            "run",
            "--context-snapshot",
            "snapshot.jsonl",
            "--",
            "python3",
            "-c",
            script,
            "three",
            "run-one",
        ],
        T,
    );
    assert_eq!(third.code, Some(0), "{}", third.stderr);
    assert!(
        third.stdout.contains("sessions: ['run-one']"),
        "{}",
        third.stdout
    );
    assert!(third.stdout.contains("hello one"), "{}", third.stdout);
    let run = p.run(
        &["run", "--context-snapshot", "missing.jsonl", "--", "true"],
        T,
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    // `up` keeps using the project's own store.
    assert!(!p.path().join(".stack/data/context.db").exists());
}
