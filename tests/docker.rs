//! The container runtime against the real Docker engine: the built-in services in the
//! image `stack` builds from itself (and the official SDKs through the containerised
//! gateway), a user image with a fixed container port, a mixed stack, `down` after a
//! SIGKILLed supervisor, and ports published on 127.0.0.1 only.
//!
//! Without an engine these tests say SKIPPED; with `CI` set they fail instead.

mod support;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use support::{Moments, Project, Sdk, docker, engine, eventually, run_python, skip_or_fail};

const T: Duration = Duration::from_secs(180);

/// A tiny local image: busybox-static (apt) imported as a tar, serving /www on 8080.
/// Says SKIPPED (fails in CI) without busybox-static.
fn busybox_image(test: &str) -> Option<&'static str> {
    if !std::path::Path::new("/bin/busybox").exists() {
        skip_or_fail(
            test,
            "/bin/busybox is missing (apt-get install busybox-static)",
        );
        return None;
    }
    static IMAGE: OnceLock<()> = OnceLock::new();
    IMAGE.get_or_init(|| import_busybox("stack-test-busybox:1", "hello from busybox\n"));
    Some("stack-test-busybox:1")
}

/// Imports busybox-static as `tag`, serving `page` as /www/index.html on 8080.
fn import_busybox(tag: &str, page: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("www")).expect("mkdir");
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static is needed (apt-get install busybox-static)");
    std::fs::write(root.join("www/index.html"), page).expect("write");
    let tar = dir.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .args([
            "-C",
            &root.to_string_lossy(),
            "-cf",
            &tar.to_string_lossy(),
            ".",
        ])
        .status()
        .expect("tar");
    assert!(ok.success());
    let out = Command::new("docker")
        .args([
            "import",
            "--change",
            r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
            &tar.to_string_lossy(),
            tag,
        ])
        .output()
        .expect("docker import");
    assert!(out.status.success(), "{out:?}");
}

/// Brings the project down when a test ends.
struct Down<'a>(&'a Project);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "--timeout", "2s"], T);
    }
}

/// No container and no network of `p` is left in the engine.
fn assert_nothing_left(p: &Project) {
    let label = format!("label=dev.stack.project={}", p.name());
    let containers = docker(&["ps", "-aq", "--filter", &label]);
    assert_eq!(containers.trim(), "", "containers left");
    let networks = docker(&["network", "ls", "-q", "--filter", &label]);
    assert_eq!(networks.trim(), "", "networks left");
}

fn ps(p: &Project) -> serde_json::Value {
    serde_json::from_str(&p.run(&["ps", "--json"], T).stdout).expect("ps --json")
}

#[test]
fn builtins_in_containers_and_the_sdks_through_the_gateway() {
    if !engine("builtins_in_containers") {
        return;
    }
    let p = Project::new(
        r#"
runtime: container
services:
  context: {builtin: context, port: auto}
  model: {builtin: model, port: auto}
  gateway:
    builtin: gateway
    port: auto
    depends_on: {context: healthy, model: healthy}
    config:
      keys: [gw-key, {key: gw-two, rpm: 2}]
      upstreams: {default: "${services.model.url}"}
      context_url: "${services.context.url}"
"#,
    );
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = ps(&p);
    for s in doc["services"].as_array().expect("services") {
        assert_eq!(s["runtime"], "container", "{s}");
        assert_eq!(s["health"], "healthy", "{s}");
        assert!(
            s["container_id"].as_str().is_some_and(|c| c.len() >= 12),
            "{s}"
        );
        // Published on 127.0.0.1 only.
        let id = s["container_id"].as_str().unwrap_or_default();
        let bindings = docker(&[
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}}",
            id,
        ]);
        assert!(bindings.contains("\"HostIp\":\"127.0.0.1\""), "{bindings}");
        assert!(
            !bindings.contains("\"HostIp\":\"\"") && !bindings.contains("0.0.0.0"),
            "{bindings}"
        );
    }
    let gateway = doc["services"][2]["ports"]["main"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    // The gateway reaches the model and the context server by their names.
    let config = p.read(".stack/run/gateway.yaml");
    assert!(
        config.contains("http://model:") && config.contains("http://context:"),
        "{config}"
    );
    if let Some(python) = Sdk::Current.python("builtins_in_containers_sdk") {
        let out = run_python(&python, "gateway_sdk.py", &[("GATEWAY_URL", &gateway)]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok errors"));
    }
    let image = docker(&[
        "inspect",
        "--format",
        "{{.Config.Image}}",
        doc["services"][0]["container_id"]
            .as_str()
            .unwrap_or_default(),
    ]);
    assert!(image.trim().starts_with("stack-builtin:"), "{image}");
    // The image is built once: a second project reuses it.
    let before = docker(&["images", "-q", "stack-builtin"]);
    let q = Project::new("runtime: container\nservices:\n  model: {builtin: model, port: auto}\n");
    let _down_q = Down(&q);
    let run = q.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stderr.contains("building image"),
        "rebuilt: {}",
        run.stderr
    );
    assert_eq!(before, docker(&["images", "-q", "stack-builtin"]));
}

#[test]
fn a_user_image_with_a_fixed_container_port_and_a_mixed_stack() {
    if !engine("user_image_mixed") {
        return;
    }
    let Some(image) = busybox_image("user_image_mixed") else {
        return;
    };
    let p = Project::new(&format!(
        r#"
services:
  web:
    image: {image}
    ports: {{http: {{host: auto, container: 8080}}}}
    health: {{http: {{path: /index.html, port: http}}}}
  api:
    # A process on the host, reachable from containers through the host gateway.
    command: [python3, -m, http.server, "${{PORT}}", --bind, 0.0.0.0]
    port: auto
    health: {{tcp: main}}
  fetch:
    # A process reaching the container through its published port…
    command: [python3, -c, "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())", "${{services.web.ports.http}}"]
    depends_on: {{web: healthy}}
  probe:
    # …and a container reaching the process (host.docker.internal) and the other container (by name).
    image: {image}
    runtime: container  # image + command: the runtime picks which one runs
    command: [/bin/busybox, sh, -c, "wget -q -O - ${{services.api.url}}/ >/dev/null && wget -q -O - http://web:8080/index.html"]
    depends_on: {{api: healthy, web: healthy}}
    restart: "no"
"#
    ));
    // `fetch` gets the port number; make it a URL.
    let yaml = p.read("stack.yaml").replace(
        "\"${services.web.ports.http}\"",
        "\"http://127.0.0.1:${services.web.ports.http}/index.html\"",
    );
    p.write("stack.yaml", &yaml);
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        eventually(T, || p
            .run(&["logs", "fetch"], T)
            .stdout
            .contains("hello from busybox")),
        "{}",
        p.run(&["logs"], T).stdout
    );
    assert!(
        eventually(T, || p
            .run(&["logs", "probe"], T)
            .stdout
            .contains("hello from busybox")),
        "{}",
        p.run(&["logs", "probe"], T).stdout
    );
    let service = |name: &str| {
        ps(&p)["services"]
            .as_array()
            .expect("services")
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .expect("service")
    };
    // The one-shot container exits on its own and is seen as exited (code 0).
    assert!(
        eventually(T, || service("probe")["state"] == "exited"),
        "{}",
        service("probe")
    );
    let doc = ps(&p);
    let web = doc["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == "web")
        .expect("web");
    assert_eq!(web["runtime"], "container");
}

#[test]
fn down_after_a_sigkilled_supervisor_leaves_no_container_or_network() {
    if !engine("down_after_sigkill") {
        return;
    }
    let Some(image) = busybox_image("down_after_sigkill") else {
        return;
    };
    let p = Project::new(&format!(
        "services:\n  web:\n    image: {image}\n    ports: {{http: {{host: auto, container: 8080}}}}\n    health: {{tcp: http}}\n"
    ));
    let _down = Down(&p);
    assert_eq!(p.run(&["up", "-d"], T).code, Some(0));
    let label = format!("label=dev.stack.project={}", p.name());
    assert_eq!(docker(&["ps", "-q", "--filter", &label]).lines().count(), 1);
    let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid");
    let _ = Command::new("kill").args(["-9", &sup.to_string()]).status();
    std::thread::sleep(Duration::from_millis(200));
    let run = p.run(&["down"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_nothing_left(&p);
}

#[test]
fn an_unknown_image_is_an_environment_error() {
    if !engine("unknown_image") {
        return;
    }
    let p = Project::new("services:\n  x:\n    image: stack-test-no-such-image:never\n");
    for args in [&["up"][..], &["up", "-d"], &["run", "--", "true"]] {
        let run = p.run(args, T);
        // An image that cannot be had is an environment problem, found before anything starts.
        assert_eq!(run.code, Some(3), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("service `x`: image `stack-test-no-such-image:never`"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("docker load"),
            "no hint: {}",
            run.stderr
        );
        assert!(
            !p.path().join(".stack/state.json").exists(),
            "{args:?} left state"
        );
    }
}

#[test]
fn a_dependent_builtin_waits_for_its_dependencies_and_ctrl_c_leaves_nothing() {
    if !engine("gated_builtin_ctrl_c") {
        return;
    }
    let p = Project::new(
        r#"
runtime: container
services:
  model: {builtin: model, port: auto}
  gateway:
    builtin: gateway
    port: auto
    depends_on: {model: healthy}
    config: {upstreams: {default: "${services.model.url}"}}
"#,
    );
    let _down = Down(&p);
    let mut up = p.spawn(&["up"]);
    up.wait_for("gateway  healthy", T);
    // The gateway's container was started ahead, held at its gate: the service itself
    // started only once the model was healthy.
    let model = p.read(".stack/logs/model.log");
    let gateway = p.read(".stack/logs/gateway.log");
    let at = |log: &str, needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no `{needle}` in\n{log}"))
    };
    assert!(
        at(&model, "listening on") < at(&gateway, "listening on"),
        "{model}\n{gateway}"
    );
    // `stop` and `start` of one container service: removed, then created anew.
    assert_eq!(p.run(&["stop", "gateway"], T).code, Some(0));
    let label = format!("label=dev.stack.project={}", p.name());
    assert!(eventually(T, || docker(&["ps", "-aq", "--filter", &label])
        .lines()
        .count()
        == 1));
    assert_eq!(p.run(&["start", "gateway"], T).code, Some(0));
    assert!(
        eventually(T, || ps(&p)["services"][1]["health"] == "healthy"),
        "{}",
        ps(&p)
    );
    // Ctrl-C on a foreground `up`: containers and network are gone when it returns.
    up.signal(libc::SIGINT);
    let run = up.finish(T);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    assert_nothing_left(&p);
}

#[test]
fn the_probe_inside_the_builtin_image() {
    // `stack __probe URL` is the HEALTHCHECK command for the built-in image (no curl in it).
    let model = support::Served::start("model", None);
    let url = model.url.clone();
    let probe = |u: &str| {
        Command::new(support::stack_bin())
            .args(["__probe", u])
            .output()
            .expect("probe")
    };
    assert_eq!(probe(&format!("{url}/health")).status.code(), Some(0));
    let missing = probe(&format!("{url}/no-such-path"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"),
        "{missing:?}"
    );
    let refused = probe("http://127.0.0.1:1/health");
    assert_eq!(refused.status.code(), Some(1));
}

#[test]
fn the_ai_stack_containers_template_runs_its_client() {
    if !engine("ai_stack_containers_template") {
        return;
    }
    support::template_runs_its_client("ai-stack-containers");
}

/// A registry on loopback (Debian's `docker-registry`), ended when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(test: &str) -> Option<Registry> {
        let bin = "/usr/bin/docker-registry";
        if !std::path::Path::new(bin).exists() {
            skip_or_fail(test, "no registry (apt-get install docker-registry)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            "version: 0.1\nstorage: {filesystem: {}}\nhttp: {}\n",
        )
        .expect("config");
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["serve", &config.to_string_lossy()])
            .env("REGISTRY_HTTP_ADDR", &addr)
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("data"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        assert!(
            eventually(Duration::from_secs(20), || std::net::TcpStream::connect(
                &registry.addr
            )
            .is_ok()),
            "the registry did not listen"
        );
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_image_missing_locally_is_pulled_before_anything_starts() {
    if !engine("image_pull") {
        return;
    }
    if busybox_image("image_pull").is_none() {
        return;
    }
    // An image of its own, so its layer is nowhere in the engine once pushed and removed.
    let local = "stack-test-pull:1";
    import_busybox(local, "pulled\n");
    let Some(registry) = Registry::start("image_pull") else {
        return;
    };
    let remote = format!("{}/stack-test/busybox:1", registry.addr);
    docker(&["tag", local, &remote]);
    let push = Command::new("docker")
        .args(["push", &remote])
        .output()
        .expect("push");
    assert!(push.status.success(), "{push:?}");
    docker(&["rmi", &remote, local]);
    assert_eq!(docker(&["images", "-q", &remote]).trim(), "");
    let p = Project::new(&format!(
        "services:\n  web:\n    image: {remote}\n    ports: {{http: {{host: auto, container: 8080}}}}\n    health: {{http: {{path: /index.html, port: http}}}}\n"
    ));
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("web  pulling {remote}\n")),
        "{}",
        run.stderr
    );
    // One line per layer step; the layer counted once.
    assert!(run.stderr.contains("1/1 layers"), "{}", run.stderr);
    assert!(
        !docker(&["images", "-q", &remote]).trim().is_empty(),
        "not pulled"
    );
    assert_eq!(ps(&p)["services"][0]["health"], "healthy");
    assert_eq!(p.run(&["down"], T).code, Some(0));
    docker(&["rmi", &remote]);
}

#[test]
fn a_service_built_from_a_dockerfile_logs_its_build() {
    if !engine("dockerfile_build") || busybox_image("dockerfile_build").is_none() {
        return;
    }
    let p = Project::new(
        "services:\n  web:\n    build: ./web\n    ports: {http: {host: auto, container: 8080}}\n    health: {http: {path: /index.html, port: http}}\n",
    );
    p.write(
        "web/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    );
    std::fs::copy("/bin/busybox", p.path().join("web/busybox")).expect("copy busybox");
    p.write("web/index.html", "built here\n");
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let log = p.read(".stack/logs/web.log");
    assert!(
        log.contains("Step 2/4 : COPY busybox /bin/busybox"),
        "{log}"
    );
    let url = ps(&p)["services"][0]["ports"]["http"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let page = Command::new("python3")
        .args([
            "-c",
            "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
        ])
        .arg(format!("{url}/index.html"))
        .output()
        .expect("fetch");
    assert!(
        String::from_utf8_lossy(&page.stdout).contains("built here"),
        "{page:?}"
    );
    let image = format!("stack-{}-web:latest", p.name());
    assert!(
        !docker(&["images", "-q", &image]).trim().is_empty(),
        "no {image}"
    );
    assert_eq!(p.run(&["down"], T).code, Some(0));
    docker(&["rmi", &image]);
}

#[test]
fn the_gate_inside_the_builtin_image() {
    // `stack __gate CMD…` becomes `stack CMD…` once "open" arrives on stdin…
    let gate = |input: &[u8]| {
        let mut child = Command::new(support::stack_bin())
            .args(["__gate", "--version"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gate");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input).expect("write");
        child.wait_with_output().expect("wait")
    };
    let opened = gate(b"open\n");
    assert_eq!(opened.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&opened.stdout).starts_with("stack "),
        "{opened:?}"
    );
    // …and stands down with 75 (not a clean exit) when its input closes or says anything else.
    for input in [&b""[..], b"nope\n"] {
        let closed = gate(input);
        assert_eq!(closed.status.code(), Some(75), "{closed:?}");
        assert!(closed.stdout.is_empty());
    }
}

/// The processes whose command line starts with `stack __reaper <project>`.
fn reapers(project: &str) -> Vec<u32> {
    let needle = format!("__reaper\0{project}\0");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// A SIGKILLed supervisor's containers do not outlive it: its reaper removes them and the
/// project network within 2 s, whether the kill comes once the stack is up (`up -d`) or at a random moment of a
/// foreground `up`'s start (a container's creation may be under way); 16 trials.
#[test]
fn a_killed_supervisors_containers_are_reaped_within_2s() {
    if !engine("containers_are_reaped") {
        return;
    }
    let Some(image) = busybox_image("containers_are_reaped") else {
        return;
    };
    let p = Project::new(&format!(
        "services:\n  web:\n    image: {image}\n    ports: {{http: {{host: auto, container: 8080}}}}\n    health: {{tcp: http}}\n  job:\n    command: sleep 600\n"
    ));
    let _down = Down(&p);
    let label = format!("label=dev.stack.project={}", p.name());
    let count = || docker(&["ps", "-aq", "--filter", &label]).lines().count();
    let networks = || {
        docker(&["network", "ls", "-q", "--filter", &label])
            .lines()
            .count()
    };
    let mut moments = Moments::new("a_killed_supervisors_containers_are_reaped_within_2s");
    let trials = 16;
    let mut left = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..trials {
        let killed_at = if i % 2 == 0 {
            let run = p.run(&["up", "-d"], T);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            assert_eq!(count(), 1);
            let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid");
            let _ = Command::new("kill").args(["-9", &sup.to_string()]).status();
            std::time::Instant::now()
        } else {
            let mut up = p
                .command(&["up"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("up");
            std::thread::sleep(moments.next(Duration::from_millis(1500)));
            let _ = up.kill();
            let _ = up.wait();
            std::time::Instant::now()
        };
        // Containers and the network, by the reaper alone.
        let gone = eventually(Duration::from_secs(2), || count() == 0 && networks() == 0);
        slowest = slowest.max(killed_at.elapsed());
        if !gone {
            left.push((i, killed_at.elapsed(), count(), networks()));
        }
        // The reaper's last passes catch what was still being created at the kill.
        assert!(
            eventually(Duration::from_secs(8), || reapers(&p.name()).is_empty()),
            "the reaper did not end"
        );
        assert_eq!(
            (count(), networks()),
            (0, 0),
            "trial {i}: left after the reaper"
        );
        let run = p.run(&["down", "--timeout", "2s"], T);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_nothing_left(&p);
    }
    assert!(
        left.is_empty(),
        "{} of {trials} kills left containers after 2 s: {left:?}",
        left.len()
    );
    eprintln!("{trials} kills, every container gone within {slowest:?}");
    // Each reaper ends after a few quiet passes.
    assert!(
        eventually(Duration::from_secs(5), || reapers(&p.name()).is_empty()),
        "reapers left running: {:?}",
        reapers(&p.name())
    );
    let log = p.read(".stack/reaper.log");
    assert!(log.contains("ended without a goodbye"), "{log}");
}

/// With its reaper gone too, a killed supervisor's container keeps running: `ps` says so
/// ("running, no supervisor"), told apart from one that exited; `down` removes it.
#[test]
fn ps_tells_a_container_running_without_supervisor_from_an_exited_one() {
    if !engine("running_no_supervisor") {
        return;
    }
    let Some(image) = busybox_image("running_no_supervisor") else {
        return;
    };
    let p = Project::new(&format!(
        "services:\n  web:\n    image: {image}\n    ports: {{http: {{host: auto, container: 8080}}}}\n    health: {{tcp: http}}\n  once:\n    command: sleep 600\n"
    ));
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let sup = ps(&p)["supervisor_pid"].as_u64().expect("pid");
    let reaper = reapers(&p.name());
    assert_eq!(reaper.len(), 1, "{reaper:?}");
    let _ = Command::new("kill")
        .args(["-9", &reaper[0].to_string()])
        .status();
    let _ = Command::new("kill").args(["-9", &sup.to_string()]).status();
    assert!(eventually(Duration::from_secs(5), || {
        p.run(&["ps"], T).stderr.contains("supervisor")
    }));
    let table = p.run(&["ps"], T).stdout;
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("web").contains("running, no supervisor"), "{table}");
    assert!(row("once").contains("exited"), "{table}");
    assert_eq!(service_state(&ps(&p), "web"), "running");
    let run = p.run(&["down", "--timeout", "2s"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_nothing_left(&p);
}

fn service_state(doc: &serde_json::Value, name: &str) -> String {
    doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .map(|s| s["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// `watch:` on a container: `sync` copies changed files into the running container and
/// removes deleted ones there, through the Engine API, without a restart; `rebuild`
/// rebuilds the image from the changed context and recreates the container.
#[test]
fn watch_syncs_files_into_a_container_and_rebuilds_its_image() {
    if !engine("watch_containers") || busybox_image("watch_containers").is_none() {
        return;
    }
    let p = Project::new(
        "services:
  web:
    build: ./web
    ports: {http: {host: auto, container: 8080}}
    health: {http: {path: /index.html, port: http}}
    watch:
      - path: ./web/site
        action: sync
        target: /www
      - path: ./web/conf
        action: sync+restart
        target: /www/conf
      - path: ./web/Dockerfile
        action: rebuild
",
    );
    // `rm` (busybox by another name) removes deleted files inside.
    p.write(
        "web/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/rm\nCOPY site /www\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    );
    std::fs::copy("/bin/busybox", p.path().join("web/busybox")).expect("copy busybox");
    p.write("web/site/index.html", "first\n");
    p.write("web/site/old.html", "old\n");
    p.write("web/conf/app.conf", "one\n");
    let _down = Down(&p);
    let run = p.run(&["up", "-d"], T);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let container = || {
        ps(&p)["services"][0]["container_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = container();
    let inside = |path: &str| docker(&["exec", &container(), "/bin/busybox", "cat", path]);

    // sync: a changed file and a new one appear, a deleted one goes; the same container.
    p.write("web/site/index.html", "second\n");
    p.write("web/site/sub/new.html", "new\n");
    std::fs::remove_file(p.path().join("web/site/old.html")).expect("rm");
    assert!(
        eventually(T, || inside("/www/index.html") == "second\n"
            && inside("/www/sub/new.html") == "new\n"
            && inside("/www/old.html").is_empty()),
        "{}",
        p.run(&["logs", "web"], T).stdout
    );
    assert_eq!(container(), first, "sync recreated the container");
    let logs = p.run(&["logs", "web"], T).stdout;
    assert!(logs.contains("synced ("), "{logs}");

    // sync+restart: the file is copied in and the service restarts in the same container,
    // which keeps everything synced so far.
    p.write("web/conf/app.conf", "two\n");
    assert!(
        eventually(T, || ps(&p)["services"][0]["start_reason"]
            == "watch: web/conf/app.conf"
            && service_state(&ps(&p), "web") == "running"),
        "{}",
        p.run(&["logs", "web"], T).stdout
    );
    assert_eq!(container(), first, "sync+restart recreated the container");
    assert_eq!(inside("/www/conf/app.conf"), "two\n");
    assert_eq!(inside("/www/index.html"), "second\n");

    // rebuild: a Dockerfile change builds a new image and recreates the container.
    p.write(
        "web/Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/rm\nCOPY site /www\nCOPY site/index.html /www/rebuilt.html\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    );
    assert!(
        eventually(T, || {
            let c = container();
            !c.is_empty() && c != first && inside("/www/rebuilt.html") == "second\n"
        }),
        "{}",
        p.run(&["logs", "web"], T).stdout
    );
    assert_eq!(
        ps(&p)["services"][0]["start_reason"],
        "watch: web/Dockerfile"
    );
    assert_eq!(p.run(&["down"], T).code, Some(0));
    assert_nothing_left(&p);
}
