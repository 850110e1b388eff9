//! `stack up` in the foreground, black-box: the real binary, real processes, ports from
//! the OS.

mod support;

use std::time::Duration;

use support::{Project, alive, eventually, pids_with_env};

const T: Duration = Duration::from_secs(30);

/// A python HTTP server on `$PORT`, bound to loopback.
const HTTP: &str = "[python3, -m, http.server, '${PORT}', --bind, 127.0.0.1]";

#[test]
fn starts_in_dependency_order_with_injected_env() {
    let p = Project::new(&format!(
        r#"
services:
  db:
    command: {HTTP}
    port: auto
    health: {{http: /}}
  api:
    # Fails unless db answers when api starts: depends_on healthy must hold.
    command: >-
      sh -c 'python3 -c "import os,urllib.request; urllib.request.urlopen(os.environ[\"DB\"])" &&
      env | grep -E "^(PORT|STACK_|DB=)" | sort > env.txt &&
      exec python3 -m http.server $$PORT --bind 127.0.0.1'
    port: auto
    env: {{DB: "${{services.db.url}}"}}
    depends_on: {{db: healthy}}
    health: {{tcp: main}}
  web:
    command: {HTTP}
    ports: {{http: auto, admin: auto}}
    depends_on: [api]
"#
    ));
    let mut up = p.spawn(&["up"]);
    up.wait_for("SERVICE", T);
    let env = p.read("env.txt");
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in\n{env}"))
            .to_string()
    };
    let db_url = get("STACK_DB_URL");
    assert!(db_url.starts_with("http://127.0.0.1:"), "{db_url}");
    assert_eq!(get("DB"), db_url);
    assert_eq!(get("STACK_SERVICE"), "api");
    assert_eq!(get("STACK_PROJECT"), p.name());
    assert_eq!(
        get("STACK_API_URL"),
        format!("http://127.0.0.1:{}", get("PORT"))
    );
    assert_eq!(get("STACK_API_HOST"), "127.0.0.1");
    let web_port = get("STACK_WEB_PORT");
    assert_eq!(get("STACK_WEB_URL"), format!("http://127.0.0.1:{web_port}"));
    up.signal(libc::SIGINT);
    let run = up.finish(T);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    // Stopped in reverse order: web, then api, then db.
    let order: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.ends_with("  stopped"))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(order, ["web", "api", "db"], "{}", run.stderr);
}

#[test]
fn every_health_kind_gates_readiness() {
    let p = Project::new(&format!(
        r#"
services:
  http:
    command: {HTTP}
    port: auto
    health: {{http: {{path: /nope, status: 404}}}}
  tcp:
    command: {HTTP}
    ports: {{web: auto}}
    health: {{tcp: web}}
  exec:
    command: sh -c 'sleep 0.3; touch ready; exec sleep 600'
    health: {{exec: [test, -f, ready], interval: 100ms}}
  log:
    command: sh -c 'echo warming up; sleep 0.2; echo "ready to serve"; exec sleep 600'
    health: {{log: "^ready to \\w+"}}
"#
    ));
    let mut up = p.spawn(&["up"]);
    up.wait_for("SERVICE", T);
    up.signal(libc::SIGINT);
    let run = up.finish(T);
    assert_eq!(run.code, Some(130));
    for s in ["http", "tcp", "exec", "log"] {
        assert!(
            run.stderr.contains(&format!("{s:<4}  healthy after")),
            "{s} not healthy:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_hundred_thousand_lines_arrive_complete() {
    let p = Project::new(
        r#"
services:
  burst:
    command: [python3, -c, "import sys\nfor i in range(100000): sys.stdout.write(f'line {i}\\n')"]
"#,
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let log = p.read(".stack/logs/burst.log");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" out ")).collect();
    assert_eq!(lines.len(), 100_000);
    for (i, l) in lines.iter().enumerate() {
        assert!(l.ends_with(&format!(" out line {i}")), "line {i}: {l}");
    }
    let shown = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("burst | line "))
        .count();
    assert_eq!(shown, 100_000, "every line reaches the screen too");
}

#[test]
fn sigint_during_startup_leaves_nothing_behind() {
    let p = Project::new(
        r#"
services:
  slow:
    command: sh -c 'sleep 600 & echo $! > child.pid; wait'
    health: {exec: "false", interval: 1s, retries: 100}
  after:
    command: sleep 600
    depends_on: {slow: healthy}
"#,
    );
    let mut up = p.spawn(&["up"]);
    up.wait_for("running (pid", T);
    // The file exists a moment before the shell has written the pid into it.
    let written = || {
        std::fs::read_to_string(p.path().join("child.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
    };
    assert!(eventually(T, || written().is_some()));
    let child: u32 = written().expect("pid");
    assert!(alive(child));
    up.signal(libc::SIGINT);
    let run = up.finish(T);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    assert!(
        eventually(Duration::from_secs(5), || !alive(child)),
        "grandchild {child} survived"
    );
    assert!(pids_with_env("STACK_PROJECT", &p.name()).is_empty());
}

#[test]
fn sigint_after_startup_leaves_nothing_behind() {
    let p = Project::new(&format!(
        r#"
services:
  a:
    command: {HTTP}
    port: auto
    health: {{http: /}}
  b:
    command: sh -c 'trap "" TERM; sleep 600 & wait'
    stop_timeout: 300ms
    depends_on: {{a: healthy}}
"#
    ));
    let mut up = p.spawn(&["up"]);
    up.wait_for("SERVICE", T);
    let pids = pids_with_env("STACK_PROJECT", &p.name());
    assert!(pids.len() >= 3, "{pids:?}");
    up.signal(libc::SIGINT);
    let run = up.finish(T);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
}

#[test]
fn a_crash_during_startup_fails_with_the_log_tail() {
    let p = Project::new(
        r#"
services:
  broken:
    command: "sh -c 'echo connecting to db; echo fatal - no database >&2; exit 3'"
    port: auto
    health: {tcp: main}
  waiting:
    command: sleep 600
    depends_on: {broken: healthy}
"#,
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("`broken` failed: exited with exit code 3"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("err fatal - no database"),
        "{}",
        run.stderr
    );
    assert!(pids_with_env("STACK_PROJECT", &p.name()).is_empty());
}

#[test]
fn a_health_timeout_exits_4() {
    let p = Project::new(
        r#"
services:
  never:
    command: sleep 600
    health: {exec: "false", interval: 50ms, retries: 4}
"#,
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("`never` did not become healthy"),
        "{}",
        run.stderr
    );
    let run =
        Project::new("services:\n  s:\n    command: sleep 600\n    health: {exec: \"false\"}\n")
            .run(&["up", "--timeout", "300ms"], T);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("not healthy within 300ms: `s`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_fixed_port_in_use_names_its_holder() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let p = Project::new(&format!(
        "services:\n  web:\n    command: sleep 600\n    port: {port}\n"
    ));
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let me = std::process::id();
    assert!(
        run.stderr.contains(&format!(
            "port {port} of `web` is already in use by pid {me}"
        )),
        "{}",
        run.stderr
    );
    let exe = std::env::current_exe().expect("exe");
    assert!(
        run.stderr.contains(&*exe.to_string_lossy()),
        "{}",
        run.stderr
    );
    assert!(pids_with_env("STACK_PROJECT", &p.name()).is_empty());
}

#[test]
fn selection_profiles_and_one_shot_jobs() {
    let p = Project::new(
        r#"
services:
  migrate:
    command: sh -c 'echo migrated > migrated.txt'
  api:
    command: sh -c 'cat migrated.txt'
    depends_on: {migrate: completed}
  extra:
    command: sh -c 'touch extra.txt'
    profiles: [full]
"#,
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("api     | migrated"), "{}", run.stdout);
    assert!(!p.path().join("extra.txt").exists());
    let run = p.run(&["up", "--profile", "full", "extra"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(p.path().join("extra.txt").exists());
    let run = p.run(&["up", "nope"], T);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no service `nope`"), "{}", run.stderr);
}

#[test]
fn finds_the_stack_file_upward_and_with_f() {
    let p = Project::new("name: found-it\nservices:\n  s:\n    command: \"true\"\n");
    p.write("deep/er/.keep", "");
    let run = p
        .command(&["validate"])
        .current_dir(p.path().join("deep/er"))
        .output()
        .expect("run");
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("project `found-it`"));
    let other = tempfile::tempdir().expect("tmp");
    let run = p
        .command(&[
            "-f",
            &p.path().join("stack.yaml").to_string_lossy(),
            "-p",
            "custom",
            "validate",
        ])
        .current_dir(other.path())
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("project `custom`"),
        "{run:?}"
    );
    let run = p
        .command(&["validate"])
        .current_dir(other.path())
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no stack.yaml in"));
}

/// On a terminal (a pty from `script`), one line per fact, in order: each service's last
/// spinner state comes before the URL table and is not drawn again after it; a built-in
/// says "listening on" once; the supervisor's "started (pid N)" note does not repeat the
/// progress's "running (pid N)".
#[test]
fn terminal_output_says_each_fact_once_in_order() {
    let p = Project::new(&format!(
        "services:\n  model: {{builtin: model, port: auto}}\n  web:\n    command: {HTTP}\n    port: auto\n    health: {{http: /}}\n    depends_on: {{model: healthy}}\n"
    ));
    let line = format!("timeout -s INT 4 '{}' up", support::stack_bin());
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(p.path())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux)");
    let raw = String::from_utf8_lossy(&out.stdout);
    // The screen as lines: escape sequences out, `\r` redraws as line breaks.
    let ansi = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("regex");
    let text = ansi.replace_all(&raw, "");
    let lines: Vec<&str> = text
        .split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let table = lines
        .iter()
        .position(|l| l.starts_with("SERVICE"))
        .unwrap_or_else(|| panic!("no table:\n{}", lines.join("\n")));
    let after: Vec<&&str> = lines[table..]
        .iter()
        .take_while(|l| !l.contains("stopping"))
        .filter(|l| l.contains("healthy after"))
        .collect();
    assert!(
        after.is_empty(),
        "spinners drawn after the table: {after:?}\n{}",
        lines.join("\n")
    );
    for name in ["model", "web"] {
        assert!(
            lines[..table]
                .iter()
                .any(|l| l.contains(name) && l.contains("healthy after")),
            "{name}'s last state is not above the table:\n{}",
            lines.join("\n")
        );
    }
    let listening = lines.iter().filter(|l| l.contains("listening")).count();
    assert_eq!(listening, 1, "{}", lines.join("\n"));
    assert!(!text.contains("[stack] started"), "{}", lines.join("\n"));
}

/// A dependency whose profiles are all off is refused (exit 2) naming it and the fix, as
/// docker compose does, unless it is named on the command line or its profile is active.
#[test]
fn a_dependency_whose_profile_is_off_is_refused() {
    let p = Project::new(
        r#"
services:
  db:
    command: sh -c 'echo db ran'
    profiles: [data]
  api:
    command: sh -c 'echo api ran'
    depends_on: {db: completed}
"#,
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("`services.api.depends_on.db`")
            && run.stderr.contains("profile `data`")
            && run.stderr.contains("--profile data"),
        "{}",
        run.stderr
    );
    for args in [&["up", "--profile", "data"][..], &["up", "api", "db"][..]] {
        let run = p.run(args, T);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(run.stdout.contains("api ran"), "{}", run.stdout);
    }
}
