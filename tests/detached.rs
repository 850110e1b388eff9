//! The detached supervisor: `up -d`, `ps`, `logs`, `down` from anywhere, restarts,
//! liveness, no orphans, the project lock, and pid reuse. Black-box, real processes.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Moments, Project, alive, eventually, pids_with_env};

const T: Duration = Duration::from_secs(30);

const HTTP: &str = "[python3, -m, http.server, '${PORT}', --bind, 127.0.0.1]";

fn ps(p: &Project) -> serde_json::Value {
    let run = p.run(&["ps", "--json"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn service<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

/// Brings the project down when a test ends, whatever happened.
struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "--timeout", "1s"], T);
    }
}

#[test]
fn up_detached_then_ps_logs_and_down_from_elsewhere() {
    let p = Project::new(&format!(
        r#"
services:
  api:
    command: {HTTP}
    port: auto
    health: {{http: /}}
  worker:
    command: sh -c 'echo worker ready; exec sleep 600'
    depends_on: {{api: healthy}}
"#
    ));
    let _down = Down(&p);
    let run = p.run(&["up", "-d", "--json"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let printed: serde_json::Value = serde_json::from_str(&run.stdout).expect("up -d --json");
    let doc = ps(&p);
    assert_eq!(doc["project"], p.name());
    assert_eq!(doc["supervisor_pid"], printed["supervisor_pid"]);
    let sup = doc["supervisor_pid"].as_u64().expect("supervisor pid") as u32;
    assert!(alive(sup));
    let api = service(&doc, "api");
    assert_eq!(api["runtime"], "process");
    assert_eq!(api["state"], "running");
    assert_eq!(api["health"], "healthy");
    assert_eq!(api["restarts"], 0);
    assert!(api["container_id"].is_null());
    assert!(alive(api["pid"].as_u64().expect("pid") as u32));
    let port = api["ports"]["main"]["port"].as_u64().expect("port");
    assert_eq!(
        api["ports"]["main"]["url"],
        format!("http://127.0.0.1:{port}")
    );
    assert!(api["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(service(&doc, "worker")["health"], "none");

    // Logs after detaching, from the files.
    assert!(eventually(T, || p
        .run(&["logs", "-n", "5", "worker"], T)
        .stdout
        .contains("worker | worker ready")));
    let json = p.run(&["logs", "--json", "worker"], T);
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().expect("a line")).expect("json line");
    assert_eq!(first["service"], "worker");

    // `down` from another folder, by -f.
    let elsewhere = tempfile::tempdir().expect("tmp");
    let file = p.path().join("stack.yaml");
    let out = Command::new(support::stack_bin())
        .args(["-f", &file.to_string_lossy(), "down"])
        .current_dir(elsewhere.path())
        .stdin(Stdio::null())
        .output()
        .expect("down");
    assert!(out.status.success(), "{out:?}");
    assert!(!alive(sup), "the supervisor survived down");
    assert!(pids_with_env("STACK_PROJECT", &p.name()).is_empty());
    assert!(!p.path().join(".stack/state.json").exists());
    let after = ps(&p);
    assert!(
        after["services"].as_array().is_some_and(Vec::is_empty),
        "{after}"
    );
    // Logs outlive the stack.
    assert!(
        p.run(&["logs", "worker"], T)
            .stdout
            .contains("worker ready")
    );
}

#[test]
fn a_killed_always_service_comes_back_healthy() {
    let p = Project::new(&format!(
        r#"
services:
  api:
    command: {HTTP}
    port: auto
    restart: always
    health: {{http: /, interval: 200ms}}
"#
    ));
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let before = service(&ps(&p), "api")["pid"].as_u64().expect("pid") as u32;
    let port = service(&ps(&p), "api")["ports"]["main"]["port"].clone();
    // SIGKILL the service itself (the command under the group leader).
    let victims = pids_with_env("STACK_SERVICE", "api");
    assert!(!victims.is_empty());
    for v in &victims {
        let _ = Command::new("kill").args(["-9", &v.to_string()]).status();
    }
    let back = eventually(T, || {
        let doc = ps(&p);
        let api = service(&doc, "api");
        api["health"] == "healthy" && api["pid"].as_u64().is_some_and(|pid| pid as u32 != before)
    });
    assert!(back, "not healthy again: {}", ps(&p));
    let api = ps(&p);
    let api = service(&api, "api");
    assert!(api["restarts"].as_u64() >= Some(1));
    assert!(
        api["start_reason"]
            .as_str()
            .is_some_and(|w| w.starts_with("restart policy: exited with ")),
        "ps says why it last started: {api}"
    );
    let table = p.run(&["ps"], T).stdout;
    assert!(table.contains("(restart policy: exited with "), "{table}");
    assert_eq!(
        api["ports"]["main"]["port"], port,
        "same port after a restart"
    );
    let logs = p.run(&["logs", "api"], T).stdout;
    assert!(
        logs.contains("restarting in"),
        "the restart and its reason are logged:\n{logs}"
    );
}

#[test]
fn liveness_failures_restart_and_max_restarts_gives_up() {
    let p = Project::new(
        r#"
services:
  live:
    command: sh -c 'touch alive; exec sleep 600'
    restart: on-failure
    health: {exec: [test, -f, alive], interval: 100ms, retries: 2}
  flaky:
    command: sh -c 'exit 1'
    port: auto
    health: {tcp: main}
    restart: on-failure
    max_restarts: 2
  steady:
    command: sleep 600
"#,
    );
    let _down = Down(&p);
    // `flaky` gives up after two restarts while `up` waits: the stack fails to come up.
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("gave up after 2 restarts"),
        "{}",
        run.stderr
    );
    assert!(
        pids_with_env("STACK_PROJECT", &p.name()).is_empty(),
        "a failed up -d leaves nothing"
    );

    let p2 = Project::new(
        r#"
services:
  live:
    command: sh -c 'touch alive; exec sleep 600'
    restart: on-failure
    health: {exec: [test, -f, alive], interval: 100ms, retries: 2}
"#,
    );
    let _down2 = Down(&p2);
    assert_eq!(p2.run(&["up", "-d"], T).code, Some(0));
    let first = service(&ps(&p2), "live")["pid"].clone();
    std::fs::remove_file(p2.path().join("alive")).expect("rm alive");
    let restarted = eventually(T, || {
        let doc = ps(&p2);
        let s = service(&doc, "live");
        s["restarts"].as_u64() >= Some(1) && s["health"] == "healthy" && s["pid"] != first
    });
    assert!(restarted, "{}", ps(&p2));
    let why = service(&ps(&p2), "live")["start_reason"].clone();
    assert!(
        why.as_str()
            .is_some_and(|w| w.starts_with("restart policy: ") && w.contains("health check failed")),
        "{why}"
    );
    assert!(
        p2.run(&["logs", "live"], T)
            .stdout
            .contains("health check failed")
    );
}

#[test]
fn a_sigkilled_supervisor_leaves_no_service() {
    let p = Project::new(
        r#"
services:
  a:
    command: sh -c 'sleep 600 & sleep 600 & wait'
  b:
    command: sleep 600
    depends_on: [a]
"#,
    );
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid") as u32;
    let services = pids_with_env("STACK_PROJECT", &p.name());
    assert!(services.len() >= 4, "{services:?}");
    let _ = Command::new("kill").args(["-9", &sup.to_string()]).status();
    assert!(
        eventually(Duration::from_secs(5), || pids_with_env(
            "STACK_PROJECT",
            &p.name()
        )
        .is_empty()),
        "survivors: {:?}",
        pids_with_env("STACK_PROJECT", &p.name())
    );
    // `down` afterwards cleans what state still names.
    let run = p.run(&["down"], T);
    assert_eq!(run.code, Some(0));
    assert!(!p.path().join(".stack/state.json").exists());
}

#[test]
fn a_second_up_applies_the_file_to_the_running_stack_and_keeps_its_supervisor() {
    let p = Project::new("services:\n  s:\n    command: sleep 600\n");
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid");
    let pid = ps(&p)["services"][0]["pid"].as_u64().expect("pid");
    for args in [&["up", "-d"][..], &["up"][..]] {
        let run = p.run(args, T);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stderr.contains("nothing to change"), "{}", run.stderr);
        assert_eq!(run.stdout, "= s\n");
    }
    let doc = ps(&p);
    assert_eq!(doc["supervisor_pid"].as_u64(), Some(sup));
    assert_eq!(doc["services"][0]["pid"].as_u64(), Some(pid));
    // Another project name is another copy.
    let run = p.run(&["-p", "second", "up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(p.run(&["-p", "second", "down"], T).code, Some(0));
}

#[test]
fn a_stale_state_with_a_reused_pid_does_not_kill_the_stranger() {
    let p = Project::new("services:\n  s:\n    command: sleep 600\n");
    // Strangers: processes that now hold the pids the state file names.
    let mut stranger = Command::new("sleep").arg("600").spawn().expect("sleep");
    let mut stranger_sup = Command::new("sleep").arg("600").spawn().expect("sleep");
    let state = serde_json::json!({
        "project": p.name(),
        "file": p.path().join("stack.yaml"),
        "supervisor": {"pid": stranger_sup.id(), "start_time": 1},
        "started_at": "2026-11-24T10:00:00Z",
        "services": {"s": {"runtime": "process", "process": {"pid": stranger.id(), "start_time": 1},
                            "container_id": null, "ports": {}}}
    });
    p.write(".stack/state.json", &state.to_string());
    let run = p.run(&["down"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        alive(stranger.id()),
        "down killed a stranger with a reused pid"
    );
    assert!(
        alive(stranger_sup.id()),
        "down killed a stranger with the supervisor's old pid"
    );
    let _ = stranger.kill();
    let _ = stranger_sup.kill();
    let _ = stranger.wait();
    let _ = stranger_sup.wait();
}

#[test]
fn stop_start_restart_and_stable_ports() {
    let p = Project::new(&format!(
        r#"
services:
  web:
    command: {HTTP}
    port: auto
    health: {{tcp: main}}
"#
    ));
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let port = service(&ps(&p), "web")["ports"]["main"]["port"].clone();
    assert_eq!(p.run(&["stop", "web"], T).code, Some(0));
    assert_eq!(service(&ps(&p), "web")["state"], "stopped");
    let run = p.run(&["start", "web"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(service(&ps(&p), "web")["health"], "healthy");
    assert_eq!(service(&ps(&p), "web")["start_reason"], "start requested");
    let pid = service(&ps(&p), "web")["pid"].clone();
    let run = p.run(&["restart", "web"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_ne!(service(&ps(&p), "web")["pid"], pid);
    assert_eq!(service(&ps(&p), "web")["start_reason"], "restart requested");
    assert_eq!(p.run(&["restart", "nope"], T).code, Some(2));
    // The next `up` reuses the auto port.
    assert_eq!(p.run(&["down"], T).code, Some(0));
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    assert_eq!(service(&ps(&p), "web")["ports"]["main"]["port"], port);
}

/// Runs `stack ARGS` in the project as the user `nobody`.
fn as_nobody(p: &Project, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::stack_bin())
        .args(args)
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv")
}

/// Every folder under `.stack/` is 0700 and every file and the socket 0600, even under
/// umask 000; another user cannot read the keys, and `down` as that user says it may not
/// act and exits non-zero instead of "is down"; a connection from another uid is refused
/// by the supervisor itself (SO_PEERCRED) even when the folder is opened up.
#[test]
fn a_stacks_files_and_socket_are_its_owners_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !nix::unistd::geteuid().is_root() {
        support::skip_or_fail(
            "a_stacks_files_and_socket_are_its_owners_only",
            "needs root to run a second uid",
        );
        return;
    }
    let p = Project::new(
        r#"
services:
  context: {builtin: context, port: auto, config: {db: .stack/data/context.db}}
  gateway:
    builtin: gateway
    port: auto
    depends_on: {context: healthy}
    config: {keys: [sk-very-secret-1], upstreams: {default: "http://127.0.0.1:9"}, context_url: "${services.context.url}"}
  app:
    command: sh -c 'echo started; exec sleep 600'
    env: {API_TOKEN: tok-very-secret-2}
    depends_on: {gateway: healthy}
"#,
    );
    // Others may read the project folder and its stack file, as in a shared checkout.
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        p.path().join("stack.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let _down = Down(&p);
    let up = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" up -d", support::stack_bin()])
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("up -d");
    assert!(up.status.success(), "{up:?}");

    let mut seen = 0;
    let mut stack = vec![p.path().join(".stack")];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = meta.mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            stack.extend(
                std::fs::read_dir(&path)
                    .expect("read_dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            seen += 1;
            // The gateway's key is in its own config file only, not in the plan, the
            // state or a log.
            let own_config = path.ends_with("run/gateway.yaml");
            let bytes = std::fs::read(&path).unwrap_or_default();
            let holds_key = String::from_utf8_lossy(&bytes).contains("sk-very-secret-1");
            assert_eq!(holds_key, own_config, "{}", path.display());
        }
    }
    assert!(seen >= 8, "only {seen} files under .stack/");
    let ps = p.run(&["ps", "--json"], T);
    assert!(!ps.stdout.contains("very-secret"), "{}", ps.stdout);
    assert!(p.path().join(".stack/supervisor.sock").exists());
    assert!(p.path().join(".stack/data/context.db").exists());

    let down = as_nobody(&p, &["down"]);
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(3), "{down:?}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!stderr.contains("is down"), "{stderr}");
    let ps = as_nobody(&p, &["ps"]);
    assert_ne!(ps.status.code(), Some(0), "{ps:?}");

    // Opened up by mistake: the supervisor still refuses another uid.
    let dot = p.path().join(".stack");
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dot.join("supervisor.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // Perl is part of every Debian base system, reachable by any user (unlike a pyenv).
    let probe = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "perl",
        ])
        .args(["-MIO::Socket::UNIX", "-e"])
        .arg(
            "$SIG{PIPE} = 'IGNORE'; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die \"connect: $!\"; \
             print $s qq({\"cmd\":\"down\"}\\n); print scalar <$s>;",
        )
        .arg(&socket)
        .output()
        .expect("probe");
    let answer = String::from_utf8_lossy(&probe.stdout);
    assert!(answer.contains("permission denied"), "{probe:?}");
    assert!(
        p.run(&["ps"], T).stdout.contains("running"),
        "the stack did not survive another user's down"
    );
}

/// `up -d` never fails silently: a stack that must time out exits 4 (SPEC §2) and says
/// why, every time (a trial of 100), whether the failure reaches it as an event or only as
/// the supervisor's exit; a service without a health check that exits non-zero at once
/// either fails `up -d` (exit 1, saying so) or stays in `ps` as failed with its exit code
/// (a trial of 20).
#[test]
fn up_detached_failures_always_say_what_happened() {
    let p = Project::new(
        "services:\n  slow:\n    command: sleep 600\n    health: {exec: \"false\", interval: 10ms}\n",
    );
    let _down = Down(&p);
    let trials = 100;
    let mut silent = 0;
    for _ in 0..trials {
        let run = p.run(&["up", "-d", "--timeout", "150ms"], T);
        assert_eq!(run.code, Some(4), "{}", run.stderr);
        if !run.stderr.contains("slow") || run.stderr.trim().is_empty() {
            silent += 1;
        }
    }
    assert_eq!(
        silent, 0,
        "{silent} of {trials} timeouts did not say what happened"
    );
    let q =
        Project::new("services:\n  bad:\n    command: sh -c 'echo broken config >&2; exit 3'\n");
    let _down_q = Down(&q);
    let (mut refused, mut kept) = (0, 0);
    for _ in 0..20 {
        let run = q.run(&["up", "-d"], T);
        if run.code == Some(0) {
            // Detached before the exit: the supervisor keeps the failed service for ps.
            let failed = eventually(Duration::from_secs(5), || {
                service(&ps(&q), "bad")["state"] == "failed"
            });
            let doc = ps(&q);
            assert!(failed, "{doc}");
            assert_eq!(service(&doc, "bad")["exit_code"], 3, "{doc}");
            let table = q.run(&["ps"], T).stdout;
            assert!(table.contains("failed (3)"), "{table}");
            assert!(q.run(&["logs", "bad"], T).stdout.contains("broken config"));
            kept += 1;
        } else {
            assert_eq!(run.code, Some(1), "{}", run.stderr);
            assert!(run.stderr.contains("bad"), "{}", run.stderr);
            assert!(run.stderr.contains("broken config"), "{}", run.stderr);
            refused += 1;
        }
        let down = q.run(&["down"], T);
        assert_eq!(down.code, Some(0), "{}", down.stderr);
    }
    eprintln!("failing service: up -d refused {refused}, ps kept it failed {kept}");
}

/// A supervisor SIGKILLed at a random moment of its first 100 ms — before, while and after
/// it starts services and their health probes (each with children of its own) — leaves
/// no process behind, 300 times out of 300.
#[test]
fn startup_kills_leave_no_process_tree() {
    let p = Project::new(
        r#"
services:
  a:
    command: sh -c 'sleep 600 & sleep 600 & wait'
    health: {exec: "sh -c 'sleep 30 & sleep 30'", interval: 5ms, timeout: 60s}
  b:
    command: sh -c 'sleep 600 & wait'
  c:
    command: sleep 600
    depends_on: [b]
"#,
    );
    let _down = Down(&p);
    let name = p.name();
    let mut moments = Moments::new("startup_kills_leave_no_process_tree");
    let trials = 300;
    let mut failed = Vec::new();
    for i in 0..trials {
        let mut up = p
            .command(&["up"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn up");
        let at = moments.next(Duration::from_millis(100));
        std::thread::sleep(at);
        let _ = up.kill();
        let _ = up.wait();
        // The shims notice within 100 ms; allow for a loaded machine.
        if !eventually(Duration::from_secs(2), || {
            pids_with_env("STACK_PROJECT", &name).is_empty()
        }) {
            failed.push((i, at, pids_with_env("STACK_PROJECT", &name)));
        }
        let down = p.run(&["down", "--timeout", "1s"], T);
        assert_eq!(down.code, Some(0), "{}", down.stderr);
        assert!(pids_with_env("STACK_PROJECT", &name).is_empty());
    }
    assert!(
        failed.is_empty(),
        "{} of {trials} kills left processes (trial, moment, pids): {failed:?}",
        failed.len()
    );
}

/// `down` finds what no state names by the marker every service process carries: here a
/// process that left its service's group (and so outlived the shim's cleanup after a
/// SIGKILLed supervisor), with the state file gone too.
#[test]
fn down_finds_processes_that_state_does_not_name() {
    let p =
        Project::new("services:\n  s:\n    command: sh -c 'setsid sleep 600 & sleep 600 & wait'\n");
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid") as u32;
    // Both sleeps run (one of them in its own session).
    let cmdlines = || -> Vec<String> {
        pids_with_env("STACK_PROJECT", &p.name())
            .iter()
            .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default())
            .collect()
    };
    let started = eventually(Duration::from_secs(5), || {
        cmdlines()
            .iter()
            .filter(|c| c.starts_with("sleep\0"))
            .count()
            == 2
    });
    let cmdlines = cmdlines();
    assert!(started, "{cmdlines:?}");
    let _ = Command::new("kill").args(["-9", &sup.to_string()]).status();
    // The shim takes its group down; the process that left it stays.
    assert!(eventually(Duration::from_secs(5), || pids_with_env(
        "STACK_PROJECT",
        &p.name()
    )
    .len()
        == 1));
    let _ = std::fs::remove_file(p.path().join(".stack/state.json"));
    let run = p.run(&["down", "--timeout", "1s"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("is down"), "{}", run.stderr);
    assert!(
        eventually(Duration::from_secs(3), || pids_with_env(
            "STACK_PROJECT",
            &p.name()
        )
        .is_empty()),
        "left: {:?}",
        pids_with_env("STACK_PROJECT", &p.name())
    );
}
