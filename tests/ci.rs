//! CI features: `stack run` (always down), side-by-side copies with `-p`, `stack env`,
//! `stack new` templates, `stack doctor`, completions. Black-box, real processes.

mod support;

use std::time::Duration;

use support::{Project, alive, eventually, pids_with_env};

const T: Duration = Duration::from_secs(60);

const WEB: &str = r#"
services:
  web:
    command: [python3, -m, http.server, "${PORT}", --bind, 127.0.0.1]
    port: auto
    health: {http: /}
"#;

#[test]
fn run_passes_the_exit_code_and_leaves_nothing() {
    let p = Project::new(WEB);
    let run = p.run(
        &[
            "run",
            "--",
            "sh",
            "-c",
            r#"curl -fsS "$STACK_WEB_URL" >/dev/null && echo "port=$STACK_WEB_PORT" && exit 7"#,
        ],
        T,
    );
    assert_eq!(run.code, Some(7), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("port="),
        "CMD owns stdout: {}",
        run.stdout
    );
    assert!(pids_with_env("STACK_PROJECT", &p.name()).is_empty());
    assert!(!p.path().join(".stack/state.json").exists());
    // A stack that cannot come up: SPEC's exit code, CMD never runs.
    let bad = Project::new(
        "services:\n  s:\n    command: sh -c 'exit 3'\n    port: auto\n    health: {tcp: main}\n",
    );
    let run = bad.run(&["run", "--", "touch", "ran"], T);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(!bad.path().join("ran").exists());
    assert!(pids_with_env("STACK_PROJECT", &bad.name()).is_empty());
}

#[test]
fn back_to_back_runs_never_find_the_project_still_up() {
    // `stack run` returns only once its supervisor has exited and released the project.
    let p = Project::new("services:\n  s:\n    command: sleep 30\n");
    for i in 0..25 {
        let run = p.run(&["run", "--", "true"], T);
        assert_eq!(run.code, Some(0), "run {i}: {}", run.stderr);
    }
}

#[test]
fn sigterm_to_run_midway_leaves_nothing() {
    let p = Project::new(WEB);
    let mut run = p.spawn(&["run", "--", "sh", "-c", "echo started; sleep 600"]);
    run.wait_for("started", T);
    let services = pids_with_env("STACK_PROJECT", &p.name());
    assert!(!services.is_empty());
    run.signal(libc::SIGTERM);
    let out = run.finish(T);
    assert_eq!(out.code, Some(128 + libc::SIGTERM), "{}", out.stderr);
    for pid in services {
        assert!(!alive(pid), "pid {pid} survived");
    }
    // SIGKILL of `stack run` itself: its supervisor notices the owner is gone.
    let mut run = p.spawn(&["run", "--", "sh", "-c", "echo started; sleep 600"]);
    run.wait_for("started", T);
    let services = pids_with_env("STACK_PROJECT", &p.name());
    let _ = run.child.kill();
    assert!(
        eventually(Duration::from_secs(10), || services
            .iter()
            .all(|p| !alive(*p))),
        "services survived a SIGKILLed `stack run`"
    );
}

#[test]
fn copies_with_different_project_names_run_side_by_side() {
    let p = Project::new(WEB);
    let a = p.spawn(&[
        "-p",
        "job-a",
        "run",
        "--",
        "sh",
        "-c",
        "echo $STACK_PROJECT $STACK_WEB_PORT; sleep 1",
    ]);
    let b = p.spawn(&[
        "-p",
        "job-b",
        "run",
        "--",
        "sh",
        "-c",
        "echo $STACK_PROJECT $STACK_WEB_PORT; sleep 1",
    ]);
    let (a, b) = (a.finish(T), b.finish(T));
    assert_eq!(
        (a.code, b.code),
        (Some(0), Some(0)),
        "{}\n{}",
        a.stderr,
        b.stderr
    );
    let (pa, pb) = (a.stdout.trim(), b.stdout.trim());
    assert!(
        pa.starts_with("job-a ") && pb.starts_with("job-b "),
        "{pa} / {pb}"
    );
    assert_ne!(
        pa.split(' ').nth(1),
        pb.split(' ').nth(1),
        "each copy has its own port"
    );
    assert!(p.path().join(".stack/projects/job-a/logs/web.log").exists());
    assert!(p.path().join(".stack/projects/job-b/logs/web.log").exists());
}

#[test]
fn env_in_every_format() {
    let p = Project::new(WEB);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let port = {
        let ps: serde_json::Value =
            serde_json::from_str(&p.run(&["ps", "--json"], T).stdout).expect("ps");
        ps["services"][0]["ports"]["main"]["port"]
            .as_u64()
            .expect("port")
    };
    let url = format!("http://127.0.0.1:{port}");
    let dotenv = p.run(&["env"], T).stdout;
    assert!(
        dotenv.contains(&format!("STACK_WEB_URL={url}\n")),
        "{dotenv}"
    );
    assert!(dotenv.contains(&format!("STACK_PROJECT={}\n", p.name())));
    let shell = p.run(&["env", "--format", "shell"], T).stdout;
    assert!(
        shell.contains(&format!("export STACK_WEB_URL='{url}'\n")),
        "{shell}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["env", "--format", "json"], T).stdout).expect("json");
    assert_eq!(json["STACK_WEB_URL"], url);
    assert_eq!(json["STACK_WEB_PORT"], port.to_string());
    let gh = p.path().join("github.env");
    std::fs::write(&gh, "EXISTING=1\n").expect("write");
    let run = p
        .command(&["env", "--format", "github"])
        .env("GITHUB_ENV", &gh)
        .output()
        .expect("env");
    assert!(run.status.success());
    let appended = std::fs::read_to_string(&gh).expect("read");
    assert!(
        appended.starts_with("EXISTING=1\n")
            && appended.contains(&format!("STACK_WEB_URL={url}\n"))
    );
    let no_gh = p
        .command(&["env", "--format", "github"])
        .env_remove("GITHUB_ENV")
        .output()
        .expect("env");
    assert_eq!(no_gh.status.code(), Some(2));
    assert_eq!(p.run(&["down"], T).code, Some(0));
    assert_eq!(p.run(&["env"], T).code, Some(3), "no running stack");
}

#[test]
fn new_makes_a_project_that_runs_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    let list = support::finish(
        std::process::Command::new(support::stack_bin())
            .args(["new", "--list"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
        T,
    );
    for t in [
        "ai-stack",
        "ai-stack-containers",
        "ai-stack-postgres",
        "ai-stack-observability",
        "minimal",
    ] {
        assert!(list.stdout.contains(t), "{}", list.stdout);
    }
    let new = |args: &[&str]| {
        std::process::Command::new(support::stack_bin())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("new")
    };
    for t in [
        "ai-stack",
        "ai-stack-containers",
        "ai-stack-postgres",
        "ai-stack-observability",
        "minimal",
    ] {
        let out = new(&["new", t, t]);
        assert!(out.status.success(), "{out:?}");
        let yaml =
            std::fs::read_to_string(dir.path().join(t).join("stack.yaml")).expect("stack.yaml");
        assert!(
            yaml.starts_with("# yaml-language-server: $schema=./stack.schema.json"),
            "{yaml}"
        );
        assert!(dir.path().join(t).join("stack.schema.json").exists());
        assert!(
            std::fs::read_to_string(dir.path().join(t).join(".gitignore"))
                .expect("gitignore")
                .contains(".stack/")
        );
        let valid = std::process::Command::new(support::stack_bin())
            .arg("validate")
            .current_dir(dir.path().join(t))
            .output()
            .expect("validate");
        assert!(valid.status.success(), "{t}: {valid:?}");
    }
    assert!(dir.path().join("ai-stack/client.py").exists());
    // Never overwrites without --force; unknown templates get a suggestion.
    assert_eq!(new(&["new", "minimal", "minimal"]).status.code(), Some(2));
    let typo = new(&["new", "minimall"]);
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean `minimal`?"));
    let run = support::finish(
        std::process::Command::new(support::stack_bin())
            .args([
                "run",
                "--",
                "sh",
                "-c",
                r#"curl -fsS "$STACK_WEB_URL" >/dev/null && echo ok"#,
            ])
            .current_dir(dir.path().join("minimal"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
        T,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "ok");
}

#[test]
fn doctor_finds_holders_stopped_services_and_wrong_addresses() {
    // Not running: a fixed port held by someone else is named with its pid.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let p = Project::new(&format!(
        "services:\n  api:\n    command: sleep 600\n    port: {port}\n"
    ));
    let run = p.run(&["doctor"], T);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "port {port} is already in use by pid {}",
            std::process::id()
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("is not running"), "{}", run.stdout);
    drop(holder);

    // Running: one service on 0.0.0.0, one on ::1 only, one stopped.
    let p = Project::new(
        r#"
services:
  wide:
    command: [python3, -m, http.server, "${PORT}", --bind, 0.0.0.0]
    port: auto
    health: {tcp: main}
  six:
    command: [python3, -m, http.server, "${PORT}", --bind, "::1"]
    port: auto
  idle:
    command: sleep 600
"#,
    );
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    assert_eq!(p.run(&["stop", "idle"], T).code, Some(0));
    // ::1 takes a moment to listen (no health check on it).
    assert!(eventually(T, || p
        .run(&["doctor", "six"], T)
        .stdout
        .contains("at [::1] only")));
    let json = p.run(&["doctor", "--json"], T);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("doctor --json");
    let about = |svc: &str| -> Vec<String> {
        doc["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["service"] == svc)
            .map(|f| {
                format!(
                    "{} {}",
                    f["level"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert!(
        about("wide")
            .iter()
            .any(|f| f.starts_with("warning") && f.contains("0.0.0.0")),
        "{:?}",
        about("wide")
    );
    assert!(
        about("six")
            .iter()
            .any(|f| f.starts_with("error") && f.contains("[::1] only")),
        "{:?}",
        about("six")
    );
    assert!(
        about("idle")
            .iter()
            .any(|f| f.starts_with("error") && f.contains("not running")),
        "{:?}",
        about("idle")
    );
    assert_eq!(json.code, Some(1));
    assert_eq!(p.run(&["down"], T).code, Some(0));
}

#[test]
fn completions_for_each_shell() {
    let p = Project::new(WEB);
    for shell in ["bash", "zsh", "fish"] {
        let run = p.run(&["completions", shell], T);
        assert_eq!(run.code, Some(0));
        assert!(
            run.stdout.contains("stack") && run.stdout.contains("doctor"),
            "{shell}"
        );
    }
}

#[test]
fn the_ai_stack_template_runs_its_client() {
    support::template_runs_its_client("ai-stack");
}

/// With a gateway in the stack, `stack env` and `stack run` give what the official SDKs
/// read (`OPENAI_BASE_URL` with `/v1`, `ANTHROPIC_BASE_URL` without, both keys the
/// gateway's first), so an unchanged SDK client talks to the stack.
#[test]
fn env_and_run_give_the_sdks_their_variables() {
    let p = Project::new(
        "services:\n  model: {builtin: model}\n  gateway:\n    builtin: gateway\n    depends_on: {model: healthy}\n    config:\n      keys: [gw-first, gw-second]\n      upstreams: {default: \"${services.model.url}\"}\n",
    );
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["env", "--format", "json"], T).stdout).expect("json");
    let gw = json["STACK_GATEWAY_URL"]
        .as_str()
        .expect("gateway url")
        .to_string();
    assert_eq!(json["OPENAI_BASE_URL"], format!("{gw}/v1"));
    assert_eq!(json["ANTHROPIC_BASE_URL"], gw);
    assert_eq!(json["OPENAI_API_KEY"], "gw-first");
    assert_eq!(json["ANTHROPIC_API_KEY"], "gw-first");
    assert_eq!(p.run(&["down"], T).code, Some(0));

    let run = p.run(
        &[
            "run",
            "--",
            "sh",
            "-c",
            "echo \"$OPENAI_BASE_URL $ANTHROPIC_BASE_URL $OPENAI_API_KEY\"",
        ],
        T,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let line = run.stdout.trim();
    assert!(
        line.ends_with(" gw-first") && line.contains("/v1 http://127.0.0.1:"),
        "{line}"
    );
    // The official OpenAI SDK, configured by nothing but the environment.
    let Some(python) = support::Sdk::Current.python("env_and_run_give_the_sdks_their_variables")
    else {
        return;
    };
    let script = "from openai import OpenAI\nr = OpenAI().chat.completions.create(model='mock-gpt', messages=[{'role': 'user', 'content': 'hi'}])\nprint('answered', r.choices[0].message.content is not None)\n";
    let run = p.run(
        &["run", "--", python.to_str().expect("path"), "-c", script],
        T,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("answered True"), "{}", run.stdout);
}

/// An unreachable Docker engine is a ✘ with the fix when a service needs it, and a neutral
/// note (exit 0) when none does; its message is said once.
#[test]
fn doctor_on_an_unreachable_engine() {
    for (yaml, code, mark) in [
        ("services:\n  a: {command: sleep 600}\n", 0, "·"),
        ("services:\n  a: {image: alpine}\n", 1, "✘"),
    ] {
        let p = Project::new(yaml);
        let out = p
            .command(&["doctor"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("doctor");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{text}");
        let line = text
            .lines()
            .find(|l| l.contains("Docker engine"))
            .unwrap_or_else(|| panic!("no Docker finding: {text}"));
        assert!(line.trim_start().starts_with(mark), "{line}");
        assert_eq!(line.matches("not reachable").count(), 1, "{line}");
        assert_eq!(text.contains("`dockerd &`"), code == 1, "{text}");
    }
}
