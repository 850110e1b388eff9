//! `stack serve model` through the official OpenAI and Anthropic Python SDKs (current,
//! previous and legacy majors, strict response validation), plus raw HTTP checks.

mod support;

use support::{Sdk, Served, run_python};

const CONFIG: &str = r#"
strict: true
keys:
  - sk-dev
  - {key: sk-limited, faults: [{status: 429, every: 1, retry_after: 1}]}
  - {key: sk-midstream, faults: [{status: 529, every: 1, after_tokens: 2}]}
fixtures:
  - {match: "(?i)weather", tool_call: {name: get_weather, arguments: {city: Paris}}}
  - {match: "overload", error: {status: 529, message: Overloaded}}
"#;

fn sdk_suite(sdk: Sdk) {
    let Some(python) = sdk.python(&format!("model_sdk_{}", sdk.name())) else {
        return;
    };
    let model = Served::start("model", Some(CONFIG));
    let out = run_python(&python, "model_sdk.py", &[("MODEL_URL", &model.url)]);
    let text = String::from_utf8_lossy(&out.stdout);
    for t in [
        "openai_chat",
        "openai_embeddings",
        "openai_responses",
        "openai_errors",
        "anthropic_messages",
        "anthropic_errors",
    ] {
        assert!(
            text.contains(&format!("ok {t}")),
            "{t} did not pass:\n{text}"
        );
    }
}

#[test]
fn current_sdks() {
    sdk_suite(Sdk::Current);
}

#[test]
fn previous_sdks() {
    sdk_suite(Sdk::Previous);
}

#[test]
fn legacy_sdks() {
    sdk_suite(Sdk::Legacy);
}

/// Structured outputs, forced tool choice, and agent loops (OpenAI Agents SDK with both
/// model kinds, LangChain's three structured-output methods, Anthropic's JSON-schema
/// output) run to completion against the mock.
#[test]
fn agent_frameworks_run_to_completion() {
    let model = Served::start("model", Some(&support::agents_model_config()));
    support::agents_suite("agents_sdk_model", &model.url, "sk-dev");
}
