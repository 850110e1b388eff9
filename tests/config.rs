//! The stack file: every bad input is refused with exit 2, its file, line and column, the
//! field, what is wrong and a hint (snapshots of the exact messages); interpolation,
//! `env_file`, `stack config` and `stack schema`.

mod support;

use std::time::Duration;

use support::Project;

const T: Duration = Duration::from_secs(20);

/// Runs `stack validate` on `yaml`; asserts exit 2 and returns stderr.
fn refused(yaml: &str) -> String {
    let p = Project::new(yaml);
    let run = p.run(&["validate"], T);
    assert_eq!(run.code, Some(2), "expected exit 2:\n{}", run.stderr);
    run.stderr
}

#[test]
fn unknown_fields_suggest_the_right_name() {
    insta::assert_snapshot!(refused(
        r#"
name: demo
servces: {}
services:
  api:
    comand: [python3, -m, http.server]
    health: {htp: /health}
"#
    ));
}

#[test]
fn a_port_out_of_range() {
    insta::assert_snapshot!(refused(
        "services:\n  api:\n    command: [python3, -m, http.server]\n    port: 619009\n"
    ));
}

#[test]
fn a_dependency_cycle_is_shown_as_a_path() {
    insta::assert_snapshot!(refused(
        r#"
services:
  a:
    command: "true"
    depends_on: [b]
  b:
    command: "true"
    depends_on: [c]
  c:
    command: "true"
    depends_on: [a]
"#
    ));
}

#[test]
fn unknown_dependencies_and_duplicate_ports() {
    insta::assert_snapshot!(refused(
        r#"
services:
  api:
    command: "true"
    port: 8000
    depends_on: {gatewy: healthy}
  gateway:
    builtin: gateway
    port: 8000
"#
    ));
}

#[test]
fn health_naming_an_undeclared_port() {
    insta::assert_snapshot!(refused(
        r#"
services:
  api:
    command: "true"
    ports: {http: auto}
    health: {http: {path: /health, port: admin}}
  worker:
    command: "true"
    health: {tcp: main}
"#
    ));
}

#[test]
fn required_variables_and_bad_references() {
    insta::assert_snapshot!(refused(
        r#"
services:
  api:
    command: "serve --root ${WEB_ROOT:?set WEB_ROOT to the folder to serve}"
    env:
      DB: "${services.db.url}"
      OTHER: "${services.api.ports.admin}"
  web:
    command: "echo ${PORT}"
"#
    ));
}

#[test]
fn invalid_yaml_points_at_the_problem() {
    insta::assert_snapshot!(refused(
        "services:\n  api:\n    command: [python3, -m\n    port: 80\n"
    ));
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = refused(
        r#"
services:
  a:
    command: "true"
    port: 70000
    restart: sometimes
    stop_timeout: soon
    depends_on: [nope]
  b:
    command: "true"
    ports: {web: {host: 8080, container: 80}}
"#,
    );
    for needle in [
        "70000 is not a TCP port (1–65535)",
        "`sometimes` is not allowed here",
        "`soon` is not a duration",
        "depends on `nope`",
        "only applies to containers",
        "has 5 errors",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in:\n{err}");
    }
}

#[test]
fn interpolation_env_file_and_config_output() {
    let p = Project::new(
        r#"
name: shop
env_file: .env
services:
  api:
    command: ["${BIN:-python3}", -m, http.server, "$${NOT_INTERPOLATED}", "cost: 5$"]
    port: "${API_PORT}"
    env: {GREETING: "${GREETING}", FROM_SHELL: "${SHELL_ONLY:-fallback}"}
"#,
    );
    p.write(
        ".env",
        "# settings\nAPI_PORT=8123\nexport GREETING=\"hello world\"\n",
    );
    let run = p.run(&["config", "--format", "json"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let api = &v["services"]["api"];
    assert_eq!(v["name"], "shop");
    assert_eq!(api["ports"]["main"], 8123);
    assert_eq!(api["command"][0], "python3");
    // `$$` stays escaped: the output is itself a valid stack file.
    assert_eq!(api["command"][3], "$${NOT_INTERPOLATED}");
    assert_eq!(api["env"]["GREETING"], "hello world");
    assert_eq!(api["env"]["FROM_SHELL"], "fallback");
    assert_eq!(api["restart"], "no");
    assert_eq!(api["stop_timeout"], "10s");
    // Round trip: what `config` prints validates and prints the same again.
    let yaml = p.run(&["config"], T).stdout;
    p.write("resolved.yaml", &yaml);
    let again = p.run(&["-f", "resolved.yaml", "config"], T);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, yaml);
    let missing = Project::new("env_file: nope.env\nservices:\n  a:\n    command: \"true\"\n");
    let run = missing.run(&["validate"], T);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("cannot read env file"),
        "{}",
        run.stderr
    );
}

#[test]
fn schema_is_generated_from_the_types() {
    let p = Project::new("services: {}\n");
    let run = p.run(&["schema"], T);
    assert_eq!(run.code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json schema");
    let props = &v["$defs"]["RawService"]["properties"];
    for field in [
        "builtin",
        "command",
        "ports",
        "health",
        "depends_on",
        "restart",
    ] {
        assert!(
            props.get(field).is_some(),
            "{field} missing from the schema"
        );
    }
    assert_eq!(v["additionalProperties"], false);
    let run = p.run(&["schema", "-o", "stack.schema.json"], T);
    assert_eq!(run.code, Some(0));
    assert!(p.read("stack.schema.json").contains("\"services\""));
}

/// The schema and the parser agree: every shape the parser takes, the schema accepts
/// (the short and long forms of `build`, `http` and ports, every template), and a long
/// form the parser refuses, the schema refuses too.
#[test]
fn the_schema_accepts_what_the_parser_accepts_and_refuses_what_it_refuses() {
    let p = Project::new("services: {}\n");
    let run = p.run(&["schema"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("json schema");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let as_json = |yaml: &str| -> serde_json::Value { serde_yaml::from_str(yaml).expect("yaml") };
    let accepted = [
        "services:\n  a:\n    image: busybox\n    build: ./dir\n",
        "services:\n  a:\n    build: {context: ./dir, dockerfile: Dockerfile.dev}\n",
        "services:\n  a:\n    command: [x]\n    port: auto\n    health: {http: /health}\n",
        "services:\n  a:\n    command: [x]\n    port: 8080\n    health: {http: {path: /h, port: main, status: 204}}\n",
        "services:\n  a:\n    image: x\n    ports: {web: {host: auto, container: 80}, api: {container: 81}}\n",
    ];
    for yaml in accepted {
        let errors: Vec<String> = validator
            .iter_errors(&as_json(yaml))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "schema refused {yaml}: {errors:?}");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for template in [
        "minimal",
        "ai-stack",
        "ai-stack-containers",
        "ai-stack-postgres",
        "ai-stack-observability",
    ] {
        let text = std::fs::read_to_string(root.join(template).join("stack.yaml"))
            .expect("template stack file");
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "schema refused template {template}: {errors:?}"
        );
    }
    let refused = [
        ("build: {contxt: ./dir}", "unknown field `contxt`"),
        (
            "command: [x]\n    port: auto\n    health: {http: {path: /h, code: 200}}",
            "unknown field `code`",
        ),
        (
            "image: x\n    ports: {web: {host: 80}}",
            "missing field `container`",
        ),
        (
            "image: x\n    ports: {web: {container: auto}}",
            "needs a port number",
        ),
    ];
    for (fields, parser_says) in refused {
        let yaml = format!("services:\n  a:\n    {fields}\n");
        assert!(
            !validator.is_valid(&as_json(&yaml)),
            "schema accepted {yaml}"
        );
        let p = Project::new(&yaml);
        let run = p.run(&["validate"], T);
        assert_ne!(run.code, Some(0), "{yaml}");
        assert!(run.stderr.contains(parser_says), "{yaml}: {}", run.stderr);
    }
}

#[test]
fn a_built_in_models_config_and_fixtures_are_checked_at_their_lines() {
    let p = Project::new(
        r#"
services:
  typo:
    builtin: model
    config:
      latency: {first_tokn_ms: 5}
  rules:
    builtin: model
    config:
      faults: [{status: 200, every: 1}]
      fixtures:
        - {match: "(", reply: x}
        - {match: ok, reply: x, tool_call: {name: f}}
  nameless:
    builtin: model
    config:
      fixtures: [{match: ok, tool_call: {arguments: {}}}]
  from_file:
    builtin: model
    config: {fixtures: ./fixtures.yaml}
"#,
    );
    p.write(
        "fixtures.yaml",
        "- {match: fine, reply: ok}\n- {match: ok, reply: x, colour: red}\n",
    );
    let run = p.run(&["validate"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let dir = p.path().display().to_string();
    insta::assert_snapshot!(run.stderr.replace(&dir, "[DIR]"));
}

/// A built-in gateway's and context server's `config:` are checked with the stack file,
/// each problem at its line: an unknown provider, a `ca_file` that does not exist, an
/// `api_key` left empty by an unset variable (named), a route or alias naming no upstream,
/// a URL that is not http(s), an empty context token.
#[test]
fn built_in_gateway_and_context_configs_are_checked_at_their_lines() {
    let out = refused(
        r#"services:
  model: {builtin: model}
  context:
    builtin: context
    config: {token: ""}
  gateway:
    builtin: gateway
    config:
      upstreams:
        default: "${services.model.url}"
        claude: {url: "https://127.0.0.1:9", provider: anthropic, api_key: "${STACK_TEST_UNSET_KEY}"}
        ftp: "ftp://127.0.0.1/"
      models:
        fast: {upstream: nowhere, model: claude-haiku-4-5}
      routes: [{model: "gpt-*", upstream: missing}]
      ca_file: ./no-such-ca.pem
"#,
    );
    for (line, what) in [
        (5, "`token` is empty"),
        (12, "must be an http:// or https:// URL"),
        (14, "names upstream `nowhere`"),
        (15, "names upstream `missing`"),
        (16, "`./no-such-ca.pem` does not exist"),
    ] {
        let at = format!("stack.yaml:{line}:");
        assert!(
            out.contains(what) && out.contains(&at),
            "expected `{what}` at line {line}:\n{out}"
        );
    }
    let out = refused(
        "services:\n  gateway:\n    builtin: gateway\n    config:\n      upstreams:\n        odd: {url: \"http://127.0.0.1:9\", provider: bedrock}\n",
    );
    assert!(
        out.contains("stack.yaml:6:") && out.contains("`bedrock` is not allowed here"),
        "{out}"
    );
    assert!(
        out.contains("openai-compatible, openai, anthropic"),
        "{out}"
    );
}

/// `stack config` masks keys, tokens and secret-looking variables unless `--show-secrets`;
/// the masked document still validates.
#[test]
fn config_masks_secrets_unless_asked() {
    let p = Project::new(
        r#"services:
  model: {builtin: model, config: {keys: [sk-model-secret]}}
  gateway:
    builtin: gateway
    config:
      keys: [gw-secret-1, {key: gw-secret-2, rpm: 5}]
      upstreams:
        claude: {url: "https://127.0.0.1:9", provider: anthropic, api_key: sk-ant-secret}
  app:
    command: [sleep, "1"]
    env: {OPENAI_API_KEY: sk-env-secret, DB_PASSWORD: hunter2, LOG_LEVEL: debug}
"#,
    );
    let run = p.run(&["config"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for secret in [
        "sk-model-secret",
        "gw-secret-1",
        "gw-secret-2",
        "sk-ant-secret",
        "sk-env-secret",
        "hunter2",
    ] {
        assert!(
            !run.stdout.contains(secret),
            "{secret} printed:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("debug") && run.stdout.contains("******"),
        "{}",
        run.stdout
    );
    std::fs::write(p.path().join("resolved.yaml"), &run.stdout).expect("write");
    assert_eq!(p.run(&["-f", "resolved.yaml", "validate"], T).code, Some(0));
    let shown = p.run(&["config", "--show-secrets"], T);
    for secret in ["sk-model-secret", "gw-secret-2", "sk-ant-secret", "hunter2"] {
        assert!(
            shown.stdout.contains(secret),
            "{secret} hidden with --show-secrets"
        );
    }
}

/// Every file of the corpus `tests/fixtures/bad/` is refused with exit 2, its message
/// snapshot-tested: bad tags, a second document, nesting, a file that is not UTF-8, a
/// health check that can never pass, durations without units, an over-long project name,
/// malformed or misspelt commands (without a cascaded "nothing to run"), serde's jargon in
/// plain words, long lines cut, and at most 50 errors shown.
#[test]
fn the_bad_file_corpus_is_refused_and_located() {
    let dir = support::repo_root().join("tests/fixtures/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let out = std::process::Command::new(support::stack_bin())
            .args(["-f", name, "validate"])
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("validate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        insta::assert_snapshot!(format!("bad__{}", name.trim_end_matches(".yaml")), stderr);
    }
}
