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
