//! The inner loop (SPEC §3.1), black-box with real processes: `watch:` rules restart what
//! their files touch (once per burst, once per rename-over save, never for ignored files),
//! `cascade`, `--no-watch`; `stack up` on a running project applies the edit (only the
//! changed service restarts, added start, removed stop, `--dry-run`, a completed one-shot
//! stays done); the running stack reloads its own stack file, and an invalid edit changes
//! nothing and is reported with its line.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Project, eventually};

const T: Duration = Duration::from_secs(60);

struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "--timeout", "2s"], T);
    }
}

/// Per service: (pid, restarts, start_reason).
fn services(p: &Project) -> BTreeMap<String, (Option<u64>, u64, String)> {
    let run = p.run(&["ps", "--json"], T);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("ps --json: {e}: {}", run.stderr));
    doc["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        (
                            s["pid"].as_u64(),
                            s["restarts"].as_u64().unwrap_or_default(),
                            s["start_reason"].as_str().unwrap_or_default().to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pid(p: &Project, service: &str) -> Option<u64> {
    services(p).get(service).and_then(|s| s.0)
}

fn restarts(p: &Project, service: &str) -> u64 {
    services(p).get(service).map_or(0, |s| s.1)
}

/// Waits until `service` has been restarted `n` times and runs again; then that it stays
/// at `n` for a while (nothing more was queued).
fn settles_at(p: &Project, service: &str, n: u64) {
    assert!(
        eventually(T, || restarts(p, service) >= n && pid(p, service).is_some()),
        "{service} did not reach {n} restarts: {:?}",
        services(p)
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(restarts(p, service), n, "{:?}", services(p));
}

const SERVER: &str = "[python3, -m, http.server, \"${PORT}\"]";

fn watched_stack() -> Project {
    // A debounce wider than the default: a loaded CI machine may pause a burst's writes.
    let p = Project::new(&format!(
        "watch_debounce: 300ms
services:
  api:
    command: {SERVER}
    cwd: ./api
    port: auto
    health: {{http: /}}
    watch:
      - path: ./api
        ignore: [\"*.tmp\"]
  web:
    command: {SERVER}
    cwd: ./web
    port: auto
    health: {{http: /}}
    watch:
      - path: ./web
  other:
    command: [sleep, \"600\"]
"
    ));
    p.write("api/index.html", "v1\n");
    p.write("web/index.html", "web\n");
    p.write(".gitignore", "generated/\n");
    p
}

#[test]
fn an_edit_restarts_only_its_service_once_and_ignored_files_do_nothing() {
    let p = watched_stack();
    std::fs::create_dir_all(p.path().join("api/generated")).expect("mkdir");
    let _down = Down(&p);
    let up = p.run(&["up", "-d"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let before = services(&p);

    // Ignored by the rule, by .gitignore, and editors' swap files: nothing restarts.
    p.write("api/notes.tmp", "x");
    p.write("api/generated/out.js", "x");
    p.write("api/.index.html.swp", "x");
    p.write("api/index.html~", "x");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(services(&p), before, "an ignored file restarted something");

    // One edit: `api` restarts, and says why; `web` and `other` keep their pids.
    p.write("api/index.html", "v2\n");
    settles_at(&p, "api", 1);
    let now = services(&p);
    assert_ne!(now["api"].0, before["api"].0);
    assert_eq!(now["api"].2, "watch: api/index.html");
    assert_eq!(now["web"], before["web"]);
    assert_eq!(now["other"], before["other"]);
    let logs = p.run(&["logs", "api"], T).stdout;
    assert!(
        logs.contains("restarting (watch: api/index.html)"),
        "{logs}"
    );
    let table = p.run(&["ps"], T).stdout;
    assert!(table.contains("1 (watch: api/index.html)"), "{table}");

    // 200 writes in a burst (about 50 ms here; the debounce leaves room for a loaded
    // machine's pauses): one restart.
    let page = p.path().join("api/index.html");
    for i in 0..200 {
        std::fs::write(&page, format!("burst {i}\n")).expect("write");
    }
    settles_at(&p, "api", 2);

    // A save that writes a temporary file and renames it over the real one: one restart,
    // naming the real file.
    p.write("api/.index.html.3f2a", "renamed\n");
    std::fs::rename(
        p.path().join("api/.index.html.3f2a"),
        p.path().join("api/index.html"),
    )
    .expect("rename");
    settles_at(&p, "api", 3);
    assert_eq!(services(&p)["api"].2, "watch: api/index.html");
    // JetBrains' safe write: a `___jb_tmp___` file renamed over, the old one kept aside.
    p.write("api/index.html___jb_tmp___", "jb\n");
    std::fs::rename(
        p.path().join("api/index.html"),
        p.path().join("api/index.html___jb_old___"),
    )
    .expect("rename");
    std::fs::rename(
        p.path().join("api/index.html___jb_tmp___"),
        p.path().join("api/index.html"),
    )
    .expect("rename");
    let _ = std::fs::remove_file(p.path().join("api/index.html___jb_old___"));
    settles_at(&p, "api", 4);
    assert_eq!(services(&p)["web"], before["web"]);
}

#[test]
fn changes_during_an_action_make_exactly_one_more() {
    // A service slow to come back: changes keep coming while it restarts.
    let p = Project::new(
        "watch_debounce: 50ms
services:
  slow:
    command: sh -c 'sleep 1; exec python3 -m http.server $PORT'
    port: auto
    health: {http: /}
    watch:
      - path: ./src
",
    );
    p.write("src/a.txt", "0");
    let _down = Down(&p);
    let up = p.run(&["up", "-d"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    p.write("src/a.txt", "1");
    assert!(eventually(T, || restarts(&p, "slow") == 1));
    // Three more changes, each its own batch, all while the restart is under way.
    for i in 2..5 {
        std::thread::sleep(Duration::from_millis(150));
        p.write("src/a.txt", &i.to_string());
    }
    assert!(
        eventually(T, || restarts(&p, "slow") == 2),
        "{:?}",
        services(&p)
    );
    // The second restart takes another second and more; nothing is queued after it.
    assert!(eventually(T, || pid(&p, "slow").is_some()
        && p.run(&["ps"], T).stdout.contains("healthy")));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(restarts(&p, "slow"), 2, "{:?}", services(&p));
}

#[test]
fn cascade_restarts_the_dependents_after_the_service() {
    let p = Project::new(&format!(
        "services:
  api:
    command: {SERVER}
    cwd: ./api
    port: auto
    health: {{http: /}}
    watch:
      - path: ./api/*.html
        cascade: true
  web:
    command: [sleep, \"600\"]
    depends_on: {{api: healthy}}
  other:
    command: [sleep, \"600\"]
"
    ));
    p.write("api/index.html", "v1\n");
    let _down = Down(&p);
    let up = p.run(&["up", "-d"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let before = services(&p);
    // Not matched by the glob: nothing.
    p.write("api/notes.txt", "x");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(services(&p), before);
    p.write("api/index.html", "v2\n");
    settles_at(&p, "web", 1);
    let now = services(&p);
    assert_eq!(now["api"].1, 1);
    assert_eq!(now["web"].2, "watch: api/index.html (cascade from api)");
    assert_eq!(now["other"], before["other"]);
}

#[test]
fn no_watch_turns_file_watching_off() {
    let p = watched_stack();
    let _down = Down(&p);
    let up = p.run(&["up", "-d", "--no-watch"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let before = services(&p);
    p.write("api/index.html", "v2\n");
    let edited = p.read("stack.yaml").replace("600", "601");
    p.write("stack.yaml", &edited);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(services(&p), before);
}

/// Ten `sleep` services, each with `LEVEL`.
fn ten(level_of_s4: &str, extra: &str) -> String {
    let mut yaml = String::from("services:\n");
    for i in 0..10 {
        let level = if i == 4 { level_of_s4 } else { "1" };
        yaml.push_str(&format!(
            "  s{i}:\n    command: [sleep, \"600\"]\n    env: {{LEVEL: \"{level}\"}}\n"
        ));
    }
    yaml.push_str(extra);
    yaml
}

#[test]
fn up_on_a_running_stack_applies_only_what_changed() {
    let job = "  job:\n    command: \"echo ran >> runs.txt\"\n";
    let p = Project::new(&ten("1", job));
    let _down = Down(&p);
    let up = p.run(&["up", "-d", "--no-watch"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    // A job without a health check is ready once started: wait for it to be done.
    assert!(eventually(T, || services(&p)["job"].0.is_none()));
    let before = services(&p);
    assert_eq!(p.read("runs.txt"), "ran\n");

    // Nothing changed: nothing happens.
    let again = p.run(&["up"], T);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert_eq!(services(&p), before);

    // One env value changed, one service added, one removed.
    let edited = ten("2", job).replace(
        "  s9:\n    command: [sleep, \"600\"]\n    env: {LEVEL: \"1\"}\n",
        "",
    ) + "  added:\n    command: [sleep, \"600\"]\n";
    p.write("stack.yaml", &edited);
    let dry = p.run(&["up", "--dry-run"], T);
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    insta::assert_snapshot!(dry.stdout);
    assert_eq!(services(&p), before, "--dry-run changed something");

    let applied = p.run(&["up"], T);
    assert_eq!(applied.code, Some(0), "{}", applied.stderr);
    assert!(
        applied.stdout.contains("~ s4 (env.LEVEL)"),
        "{}",
        applied.stdout
    );
    let now = services(&p);
    assert_ne!(now["s4"].0, before["s4"].0);
    assert_eq!(now["s4"].2, "reconcile: env.LEVEL changed");
    for i in [0, 1, 2, 3, 5, 6, 7, 8] {
        let s = format!("s{i}");
        assert_eq!(now[&s], before[&s], "{s} was touched");
    }
    assert!(now["added"].0.is_some());
    assert!(!now.contains_key("s9"), "{now:?}");
    // The one-shot that completed was not run again.
    assert_eq!(p.read("runs.txt"), "ran\n");

    // --force-recreate restarts what stays, changed or not.
    let forced = p.run(&["up", "--force-recreate", "s0"], T);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let after = services(&p);
    assert_ne!(after["s0"].0, now["s0"].0);
    assert_eq!(after["s1"], now["s1"]);
}

#[test]
fn the_running_stack_follows_its_stack_file_and_refuses_an_invalid_edit() {
    let yaml = "env_file: .env\nservices:\n  a:\n    command: [sleep, \"600\"]\n    env: {LEVEL: \"${LEVEL}\"}\n  b:\n    command: [python3, -m, http.server, \"${PORT}\"]\n    port: auto\n";
    let p = Project::new(yaml);
    p.write(".env", "LEVEL=1\n");
    let _down = Down(&p);
    let up = p.run(&["up", "-d"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let before = services(&p);
    let port = |p: &Project| -> serde_json::Value {
        let doc: serde_json::Value =
            serde_json::from_str(&p.run(&["ps", "--json"], T).stdout).expect("ps");
        doc["services"][1]["ports"]["main"]["port"].clone()
    };
    let b_port = port(&p);

    // An edit that does not validate: reported at its line, nothing changes.
    p.write("stack.yaml", &format!("{yaml}    stop_timeout: 5\n"));
    assert!(
        eventually(T, || p
            .run(&["logs", "_stack"], T)
            .stdout
            .contains("stack.yaml:9:19")),
        "{}",
        p.run(&["logs"], T).stdout
    );
    let logs = p.run(&["logs", "_stack"], T).stdout;
    assert!(logs.contains("`5` has no unit: write `5s`"), "{logs}");
    assert!(logs.contains("nothing was changed"), "{logs}");
    assert_eq!(services(&p), before);

    // A valid save: applied as `stack up` would; `b` keeps its pid and its auto port.
    p.write(
        "stack.yaml",
        &yaml.replace("command: [sleep, \"600\"]", "command: [sleep, \"601\"]"),
    );
    assert!(
        eventually(T, || services(&p)["a"].2 == "reconcile: command changed"),
        "{:?}",
        services(&p)
    );
    assert_eq!(services(&p)["b"], before["b"]);
    assert_eq!(port(&p), b_port);
    let logs = p.run(&["logs", "_stack"], T).stdout;
    assert!(logs.contains("stack.yaml saved: ~ a (command)"), "{logs}");

    // The env_file is followed too.
    p.write(".env", "LEVEL=2\n");
    assert!(
        eventually(T, || services(&p)["a"].2 == "reconcile: env.LEVEL changed"),
        "{:?}",
        services(&p)
    );
    assert_eq!(services(&p)["b"], before["b"]);
}

#[test]
fn a_reconcile_removes_only_what_the_stack_file_no_longer_has() {
    let yaml = "services:\n  base:\n    command: [sleep, \"600\"]\n  extra:\n    command: [sleep, \"600\"]\n    profiles: [full]\n";
    let p = Project::new(yaml);
    let _down = Down(&p);
    let up = p.run(&["up", "-d", "--no-watch", "--profile", "full"], T);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let before = services(&p);
    // Without the profile (or naming one service), `extra` is still in the file: it stays.
    for args in [&["up"][..], &["up", "base"][..]] {
        let run = p.run(args, T);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("= extra"), "{}", run.stdout);
        assert_eq!(services(&p), before);
    }
    // Gone from the file: removed.
    p.write(
        "stack.yaml",
        "services:\n  base:\n    command: [sleep, \"600\"]\n",
    );
    let run = p.run(&["up"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("- extra"), "{}", run.stdout);
    let now = services(&p);
    assert!(!now.contains_key("extra"), "{now:?}");
    assert_eq!(now["base"], before["base"]);
}
