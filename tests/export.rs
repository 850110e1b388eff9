//! `stack export compose|kubernetes` (SPEC §7): snapshots of both exports, the Kubernetes
//! output rendered by `kubectl kustomize` and validated by `kubernetes-validate`, secrets
//! kept out of every file, refusals by name, and the compose export run by the machine's
//! docker compose until healthy, with the SDKs through its published gateway.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{Project, Sdk, run_python, skip_or_fail, stack_bin};

const T: Duration = Duration::from_secs(60);

/// Every file under `dir`, relative, sorted, with its text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The files as one text, for a snapshot.
fn joined(files: &[(String, String)]) -> String {
    files
        .iter()
        .map(|(name, text)| format!("=== {name}\n{text}"))
        .collect()
}

/// Snapshot settings: the built-in image's tag (the executable's hash) filtered.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"stack-builtin:[0-9.]+-[0-9a-f]{12}", "stack-builtin:[TAG]");
    s.set_prepend_module_to_snapshot(true);
    s
}

/// A project made by `stack new TEMPLATE`, or the repository's own stack file.
fn project_of(template: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    match template {
        Some(t) => {
            let out = Command::new(stack_bin())
                .args(["new", t, "app"])
                .current_dir(dir.path())
                .output()
                .expect("new");
            assert!(out.status.success(), "{out:?}");
        }
        None => {
            std::fs::create_dir_all(dir.path().join("app")).expect("mkdir");
            std::fs::copy(
                support::repo_root().join("stack.yaml"),
                dir.path().join("app/stack.yaml"),
            )
            .expect("copy");
        }
    }
    let app = dir.path().join("app");
    (dir, app)
}

fn export(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(stack_bin())
        .arg("export")
        .args(args)
        .arg("--no-build")
        .current_dir(dir)
        .env_remove("GATEWAY_KEY")
        .env_remove("POSTGRES_PASSWORD")
        .env_remove("POSTGRES_IMAGE")
        .output()
        .expect("export")
}

/// `kubectl`, or a skip (a failure in CI).
fn kubectl(test: &str) -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail(test, "no kubectl (apt-get install kubernetes-client)");
    }
    ok
}

/// The default stack and every template but `minimal` (a process: refused, below) export
/// for Kubernetes and compose; the outputs are snapshots; `kubectl kustomize` renders the
/// kustomization and `kubernetes-validate` accepts every object.
#[test]
fn the_default_stack_and_the_templates_export() {
    let validate = Sdk::Current.python("export_validate");
    let kubectl = kubectl("export_kustomize");
    for template in [
        None,
        Some("ai-stack"),
        Some("ai-stack-containers"),
        Some("ai-stack-postgres"),
    ] {
        let name = template.unwrap_or("default");
        let (_tmp, app) = project_of(template);
        let out = export(&app, &["kubernetes"]);
        assert!(out.status.success(), "{name}: {out:?}");
        let k8s = files(&app.join("k8s"));
        settings().bind(|| insta::assert_snapshot!(format!("{name}_kubernetes"), joined(&k8s)));
        let out = export(&app, &["compose"]);
        assert!(out.status.success(), "{name}: {out:?}");
        let mut compose = files(&app);
        compose.retain(|(f, _)| f == "docker-compose.yml" || f.starts_with("stack-config/"));
        settings().bind(|| insta::assert_snapshot!(format!("{name}_compose"), joined(&compose)));
        if kubectl {
            let rendered = Command::new("kubectl")
                .args(["kustomize"])
                .arg(app.join("k8s"))
                .output()
                .expect("kubectl");
            assert!(rendered.status.success(), "{name}: {rendered:?}");
            let all = app.join("rendered.yaml");
            std::fs::write(&all, &rendered.stdout).expect("write");
            let text = String::from_utf8_lossy(&rendered.stdout);
            for kind in ["kind: Deployment", "kind: Service", "kind: ConfigMap"] {
                assert!(text.contains(kind), "{name}: no {kind}:\n{text}");
            }
            if let Some(python) = &validate {
                let v = Command::new(python.parent().expect("bin").join("kubernetes-validate"))
                    .args(["--strict", "--kubernetes-version", "1.34.0"])
                    .arg(&all)
                    .output()
                    .expect("kubernetes-validate");
                assert!(
                    v.status.success(),
                    "{name}: {}\n{}",
                    String::from_utf8_lossy(&v.stdout),
                    String::from_utf8_lossy(&v.stderr)
                );
            }
        }
    }
}

/// A service that runs only as a process is refused by name, with the fix; so are several
/// replicas of a context server on SQLite; `replicas: 0` is an error at its line, and more
/// than one is a note of `stack validate`.
#[test]
fn export_refuses_what_it_cannot_run() {
    let (_tmp, app) = project_of(Some("minimal"));
    let out = export(&app, &["compose"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`services.web` runs only as a process"),
        "{err}"
    );
    assert!(err.contains("give it `image:`"), "{err}");
    assert!(!app.join("docker-compose.yml").exists());

    let p = Project::new(
        "services:
  context:
    builtin: context
    port: auto
    replicas: 2
",
    );
    let out = p.run(&["export", "kubernetes", "--no-build"], T);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`services.context.replicas`: 2 replicas of a context server"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("PostgreSQL"), "{}", out.stderr);
    let v = p.run(&["validate"], T);
    assert_eq!(v.code, Some(0), "{}", v.stderr);
    assert!(
        v.stderr
            .contains("2 replicas are for `stack export`; `stack up` runs one instance"),
        "{}",
        v.stderr
    );

    let p = Project::new(
        "services:
  web:
    image: busybox
    replicas: 0
",
    );
    let out = p.run(&["validate"], T);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("stack.yaml:4:15"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`replicas` must be at least 1"),
        "{}",
        out.stderr
    );

    let out = p.run(&["export", "compose", "--namespace", "x"], T);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

/// Keys stay references: a `${VAR}` key is an environment variable in compose (its own
/// `${…}` text) and a `secretKeyRef` in Kubernetes; the configuration files read it back as
/// `${NAME}`; its value is in no file, except the 0600 Secret `--with-secret-values` writes.
/// Limits are divided among the gateway's replicas, with a comment saying so.
#[test]
fn secrets_stay_references_and_limits_are_per_replica() {
    let p = Project::new(
        "services:
  model:
    builtin: model
    port: auto
  gateway:
    builtin: gateway
    port: 8000
    replicas: 3
    depends_on: {model: healthy}
    env:
      OPENAI_API_KEY: ${OPENAI_API_KEY}
    config:
      keys: [\"${GW_KEY:-dev-key}\", {key: team-key, rpm: 600}]
      upstreams: {default: \"${services.model.url}\"}
",
    );
    let secret = "sk-very-secret-4242";
    let run = |args: &[&str]| {
        let out = p
            .command(args)
            .env("GW_KEY", secret)
            .env("OPENAI_API_KEY", secret)
            .output()
            .expect("export");
        assert!(out.status.success(), "{out:?}");
    };
    run(&["export", "compose", "--no-build"]);
    run(&["export", "kubernetes", "--no-build", "--namespace", "dev"]);
    for (name, text) in files(p.path()) {
        assert!(!text.contains(secret), "{name} holds the key:\n{text}");
    }
    let compose = p.read("docker-compose.yml");
    assert!(compose.contains("GW_KEY: ${GW_KEY:-dev-key}"), "{compose}");
    assert!(
        compose.contains("OPENAI_API_KEY: ${OPENAI_API_KEY}"),
        "{compose}"
    );
    assert!(compose.contains("- \"127.0.0.1:8000:8000\""), "{compose}");
    assert!(
        !compose.contains("8080:"),
        "only the gateway is published:\n{compose}"
    );
    let config = p.read("stack-config/gateway.yaml");
    assert!(config.contains("- ${GW_KEY}"), "{config}");
    assert!(config.contains("key: ${GATEWAY_KEYS_1_KEY}"), "{config}");
    assert!(config.contains("rpm: 200"), "{config}");
    assert!(config.contains("divided by its 3 replicas"), "{config}");
    let k8s = p.read("k8s/gateway.yaml");
    assert!(k8s.contains("secretKeyRef"), "{k8s}");
    assert!(k8s.contains("name: stack-"), "{k8s}");
    assert!(k8s.contains("replicas: 3"), "{k8s}");
    let kustomization = p.read("k8s/kustomization.yaml");
    assert!(kustomization.contains("namespace: dev"), "{kustomization}");
    assert!(
        kustomization.contains("kubectl create secret generic"),
        "{kustomization}"
    );
    assert!(!p.path().join("k8s/secret.yaml").exists());

    run(&["export", "kubernetes", "--no-build", "--with-secret-values"]);
    let secret_file = p.path().join("k8s/secret.yaml");
    let text = std::fs::read_to_string(&secret_file).expect("secret.yaml");
    assert!(text.contains(secret), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `docker-compose` (v1 or the v2 plugin), or a skip (a failure in CI).
fn compose_command(test: &str) -> Option<Vec<&'static str>> {
    for cmd in [vec!["docker", "compose"], vec!["docker-compose"]] {
        let ok = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(cmd);
        }
    }
    skip_or_fail(test, "no docker compose (apt-get install docker-compose)");
    None
}

fn docker(args: &[&str]) -> String {
    support::docker(args).trim().to_string()
}

/// Runs compose for `project` in `dir`.
struct Compose {
    cmd: Vec<&'static str>,
    dir: PathBuf,
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.cmd[0])
            .args(&self.cmd[1..])
            .args(["-p", &self.project, "-f", "docker-compose.yml"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .output()
            .expect("compose")
    }

    /// The project's containers (by compose's label).
    fn containers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        docker(&["ps", "-aq", "--filter", &label])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--timeout", "2"]);
    }
}

/// The containerised default stack, exported, runs under docker compose until every
/// container is healthy; the OpenAI and Anthropic SDKs work through its published gateway
/// (the key from the environment compose runs in); `down -v` leaves nothing.
#[test]
fn the_compose_export_runs_healthy_under_docker_compose() {
    if !support::engine("compose_export") {
        return;
    }
    let Some(cmd) = compose_command("compose_export") else {
        return;
    };
    let Some(python) = Sdk::Current.python("compose_export_sdk") else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let p = Project::new(&format!(
        "runtime: container
services:
  context:
    builtin: context
    port: auto
  model:
    builtin: model
    port: auto
    config: {{models: [mock-gpt, mock-claude, mock-embed]}}
  gateway:
    builtin: gateway
    port: {port}
    depends_on: {{context: healthy, model: healthy}}
    config:
      keys: [\"${{GW_KEY}}\", {{key: gw-two, rpm: 2}}]
      upstreams: {{default: \"${{services.model.url}}\"}}
      context_url: \"${{services.context.url}}\"
"
    ));
    // The export builds the built-in image when the engine lacks it.
    let out = p
        .command(&["export", "compose"])
        .env("GW_KEY", "not-the-key")
        .output()
        .expect("export");
    assert!(out.status.success(), "{out:?}");
    let project = format!("export-{}", p.name());
    let compose = Compose {
        cmd,
        dir: p.path().to_path_buf(),
        project: project.clone(),
        env: vec![("GW_KEY".into(), "gw-key".into())],
    };
    let up = compose.run(&["up", "-d"]);
    assert!(up.status.success(), "{up:?}");
    let healthy = support::eventually(Duration::from_secs(90), || {
        let ids = compose.containers();
        ids.len() == 3
            && ids
                .iter()
                .all(|id| docker(&["inspect", "-f", "{{.State.Health.Status}}", id]) == "healthy")
    });
    assert!(
        healthy,
        "not healthy: {}",
        String::from_utf8_lossy(&compose.run(&["logs"]).stdout)
    );
    // Only the gateway is published, and only on 127.0.0.1.
    let published = docker(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Ports}}",
    ]);
    assert_eq!(published.matches("->").count(), 1, "published: {published}");
    assert!(
        published.contains(&format!("127.0.0.1:{port}->{port}/tcp")),
        "{published}"
    );
    let gateway = format!("http://127.0.0.1:{port}");
    run_python(&python, "gateway_sdk.py", &[("GATEWAY_URL", &gateway)]);

    let down = compose.run(&["down", "-v", "--timeout", "5"]);
    assert!(down.status.success(), "{down:?}");
    assert!(compose.containers().is_empty(), "containers left");
    let label = format!("label=com.docker.compose.project={project}");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &label]), "");
}

/// The `ai-stack-postgres` template, exported, runs under docker compose with two context
/// replicas behind the compose name `context` and one PostgreSQL: 1,000 writes to one
/// session spread over both, with a `kill -9` of one replica midway (its writes then go to
/// the other), lose no acknowledged write and keep each writer's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_export_runs_two_context_replicas_under_compose() {
    const TEST: &str = "compose_export_postgres";
    if !support::engine(TEST) {
        return;
    }
    let Some(cmd) = compose_command(TEST) else {
        return;
    };
    if !support::provision("postgres-image.sh", &[]) {
        skip_or_fail(
            TEST,
            "cannot build the PostgreSQL test image (scripts/postgres-image.sh)",
        );
        return;
    }
    let (_tmp, app) = project_of(Some("ai-stack-postgres"));
    let out = Command::new(stack_bin())
        .args(["export", "compose"])
        .current_dir(&app)
        .env("POSTGRES_IMAGE", "stack-test-postgres:15")
        .env("POSTGRES_PASSWORD", "export-test-pw")
        .output()
        .expect("export");
    assert!(out.status.success(), "{out:?}");
    let compose_file = std::fs::read_to_string(app.join("docker-compose.yml")).expect("compose");
    assert!(!compose_file.contains("export-test-pw"), "{compose_file}");
    let project = format!("pg{}", std::process::id());
    let compose = Compose {
        cmd,
        dir: app.clone(),
        project: project.clone(),
        env: vec![("POSTGRES_PASSWORD".into(), "export-test-pw".into())],
    };
    let up = compose.run(&["up", "-d", "--scale", "context=2"]);
    assert!(up.status.success(), "{up:?}");
    let healthy = support::eventually(Duration::from_secs(120), || {
        let ids = compose.containers();
        ids.len() == 5
            && ids
                .iter()
                .all(|id| docker(&["inspect", "-f", "{{.State.Health.Status}}", id]) == "healthy")
    });
    assert!(
        healthy,
        "not healthy: {}",
        String::from_utf8_lossy(&compose.run(&["logs"]).stdout)
    );
    let replicas: Vec<(String, String)> = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=context",
    ])
    .lines()
    .map(|id| {
        let ip = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            id,
        ]);
        (id.to_string(), format!("http://{ip}:8080"))
    })
    .collect();
    assert_eq!(replicas.len(), 2, "{replicas:?}");

    let client = reqwest::Client::new();
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = std::sync::Arc::new(tokio::sync::OnceCell::<()>::new());
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, replicas) = (client.clone(), replicas.clone());
        let (acknowledged, killed) = (acknowledged.clone(), killed.clone());
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..250 {
                let content = format!("w{w} {i}");
                let mut target = (w + i) % 2;
                loop {
                    let sent = client
                        .post(format!(
                            "{}/v1/sessions/replicated/entries",
                            replicas[target].1
                        ))
                        // The server answers the names it is reached by.
                        .header("host", "context:8080")
                        .header("content-type", "application/json")
                        .body(json!({"role": "user", "content": content}).to_string())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => break,
                        // Killed under it: the write was not acknowledged; the other
                        // replica takes it.
                        _ => target = 0,
                    }
                }
                mine.push(content);
                if acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 500 {
                    let id = replicas[1].0.clone();
                    killed
                        .get_or_init(|| async move {
                            docker(&["kill", "-s", "KILL", &id]);
                        })
                        .await;
                }
            }
            mine
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.expect("writer"));
    }
    assert!(killed.initialized(), "the kill happened");
    let v: serde_json::Value = client
        .get(format!("{}/v1/sessions/replicated", replicas[0].1))
        .header("host", "context:8080")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let stored: Vec<String> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stored.len(), 1000, "every acknowledged write, once");
    for (w, mine) in written.iter().enumerate() {
        let order: Vec<&String> = stored
            .iter()
            .filter(|c| c.starts_with(&format!("w{w} ")))
            .collect();
        assert_eq!(order, mine.iter().collect::<Vec<_>>(), "writer {w}'s order");
    }
    let down = compose.run(&["down", "-v", "--timeout", "5"]);
    assert!(down.status.success(), "{down:?}");
    assert!(compose.containers().is_empty(), "containers left");
}
