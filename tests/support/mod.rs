//! Helpers shared by the black-box tests: the real binary, real processes, ports from the
//! OS, and the official client SDKs in the venvs that `.ci/run` creates.
//!
//! A test that needs something missing on a laptop (the SDK venvs, Docker) says it was
//! skipped; with `CI` set it fails instead, so nothing skips in CI.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `stack` binary under test.
pub(crate) fn stack_bin() -> &'static str {
    env!("CARGO_BIN_EXE_stack")
}

/// The repository root.
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is in CI, where nothing may skip.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reports a missing prerequisite: a skip on a laptop, a failure in CI.
/// Returns normally only when the test should return early (skipped). The line goes to
/// the terminal itself, past the test harness's capture, so a skip is never silent.
pub(crate) fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why} (CI is set, so this test may not skip)");
    }
    to_terminal(&format!("SKIPPED {test}: {why}"));
}

/// Writes a line to the process's real stderr (`eprintln!` in a test is captured).
pub(crate) fn to_terminal(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs a setup script of `scripts/` (idempotent: it keeps what is up to date) once per
/// test process, under a lock shared by every test binary, so the README's `cargo test`
/// creates what the tests need on first use, once, even with tests in parallel. Whether
/// it succeeded (its output goes to the terminal either way).
pub(crate) fn provision(script: &str, args: &[&str]) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let key = format!("{script} {}", args.join(" "));
    let done = DONE.get_or_init(Default::default);
    // Held while the script runs: a second test of this binary waits for the first.
    let Ok(mut done) = done.lock() else {
        return false;
    };
    if let Some(ok) = done.get(&key) {
        return *ok;
    }
    let lock_path = repo_root().join("target/.provision.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
    let status = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    drop(lock);
    let ok = status.as_ref().is_ok_and(|s| s.success());
    if !ok {
        to_terminal(&format!("provisioning: scripts/{key} failed: {status:?}"));
    }
    done.insert(key, ok);
    ok
}

/// The SDK venvs `.ci/run` creates (`scripts/sdk-venv.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sdk {
    /// openai 3.x, anthropic 2.x, mcp 2.x (the current majors).
    Current,
    /// openai 2.x, anthropic 1.x, mcp 1.x (the previous majors).
    Previous,
    /// openai 1.x, anthropic 0.x.
    Legacy,
}

impl Sdk {
    /// Every venv, newest first.
    pub(crate) const ALL: [Sdk; 3] = [Sdk::Current, Sdk::Previous, Sdk::Legacy];

    /// The venv's folder name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sdk::Current => "current",
            Sdk::Previous => "previous",
            Sdk::Legacy => "legacy",
        }
    }

    /// The venv's python, created on first use (`scripts/sdk-venv.sh`), or `None` after
    /// [`skip_or_fail`] when it cannot be had.
    pub(crate) fn python(self, test: &str) -> Option<PathBuf> {
        let base = std::env::var_os("STACK_SDK_VENVS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv"));
        let python = base.join(self.name()).join("bin/python");
        if provision("sdk-venv.sh", &[self.name()]) && python.exists() {
            Some(python)
        } else {
            skip_or_fail(
                test,
                &format!(
                    "no SDK venv at {} (create it with `scripts/sdk-venv.sh`)",
                    python.display()
                ),
            );
            None
        }
    }
}

/// Runs a Python test script from `tests/python/` with `python`, passing `env`; panics
/// with its output when it fails.
pub(crate) fn run_python(python: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let path = repo_root().join("tests/python").join(script);
    let out = Command::new(python)
        .arg(&path)
        .envs(env.iter().copied())
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{script} with {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        python.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `stack serve <kind>` child on a port the OS chose; stopped (SIGTERM, then SIGKILL)
/// when dropped.
pub(crate) struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The port.
    pub port: u16,
    /// A scratch folder the service runs in (its config file lives here).
    pub dir: tempfile::TempDir,
    /// Everything it wrote after its readiness line, when started with
    /// [`Served::start_captured`] (else its stderr goes to the test's).
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `stack serve <kind>` with `config` (YAML) written to a file, and waits for its
    /// readiness line.
    pub(crate) fn start(kind: &str, config: Option<&str>) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(kind, config, dir)
    }

    /// Like [`Served::start`], in a given folder (relative paths in `config` resolve there).
    pub(crate) fn start_in(kind: &str, config: Option<&str>, dir: tempfile::TempDir) -> Served {
        Self::launch(kind, config, dir, false)
    }

    /// Like [`Served::start`], keeping what it writes (stdout and stderr) in `output`.
    pub(crate) fn start_captured(kind: &str, config: Option<&str>) -> Served {
        Self::launch(kind, config, tempfile::tempdir().expect("tempdir"), true)
    }

    fn launch(kind: &str, config: Option<&str>, dir: tempfile::TempDir, capture: bool) -> Served {
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut cmd = Command::new(stack_bin());
        cmd.args(["serve", kind, "--port", "0"])
            .current_dir(dir.path())
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        if let Some(config) = config {
            let path = dir.path().join(format!("{kind}.yaml"));
            std::fs::write(&path, config).expect("write config");
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd.spawn().expect("spawn stack serve");
        if let Some(stderr) = child.stderr.take() {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&line);
                        o.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    panic!("stack serve {kind} exited before listening: {status}");
                }
            }
        };
        // Keep draining stdout so the service never blocks on a full pipe.
        let out = output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if capture && let Ok(mut o) = out.lock() {
                    o.push_str(&line);
                    o.push('\n');
                }
            }
        });
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in readiness line");
        Served {
            child,
            url,
            port,
            dir,
            output,
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns whether it exited 0.
    pub(crate) fn stop(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGKILLs the child and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(Duration::from_secs(5));
        }
    }
}

/// A scratch project: a temp folder with a `stack.yaml`, and `stack` run inside it.
pub(crate) struct Project {
    /// The folder.
    pub dir: tempfile::TempDir,
}

/// The output of a finished `stack` command.
#[derive(Debug)]
pub(crate) struct Run {
    /// The exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Project {
    /// A project whose `stack.yaml` is `yaml`.
    pub(crate) fn new(yaml: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("stack-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("stack.yaml"), yaml).expect("write stack.yaml");
        Project { dir }
    }

    /// The folder's path.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the project.
    pub(crate) fn write(&self, name: &str, contents: &str) {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, contents).expect("write");
    }

    /// Reads a file of the project.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
    }

    /// A `stack` command in the project folder, with no colour.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(stack_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("STACK_PROJECT_NAME")
            .env_remove("STACK_PROFILES")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `stack ARGS` to completion (at most `timeout`).
    pub(crate) fn run(&self, args: &[&str], timeout: Duration) -> Run {
        self.spawn(args).finish(timeout)
    }

    /// Starts `stack ARGS` in the background.
    pub(crate) fn spawn(&self, args: &[&str]) -> Background {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stack");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send((false, line));
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx2.send((true, line));
                }
            }),
        ];
        Background {
            child,
            rx,
            stdout: String::new(),
            stderr: String::new(),
            readers,
        }
    }
}

/// Waits for a child (killing it after `timeout`) and collects its output.
pub(crate) fn finish(mut child: Child, timeout: Duration) -> Run {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("wait: {e}"),
        }
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `stack` command running in the background, its output collected line by line.
pub(crate) struct Background {
    /// The process.
    pub child: Child,
    rx: std::sync::mpsc::Receiver<(bool, String)>,
    /// Standard output so far.
    pub stdout: String,
    /// Standard error so far.
    pub stderr: String,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Waits until a line (stdout or stderr) contains `needle`; panics after `timeout`.
    pub(crate) fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((is_err, line)) => {
                    let buf = if is_err {
                        &mut self.stderr
                    } else {
                        &mut self.stdout
                    };
                    buf.push_str(&line);
                    buf.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.stdout, self.stderr
                ),
            }
        }
    }

    /// Sends a signal (e.g. `libc::SIGINT`) to the process.
    pub(crate) fn signal(&self, sig: i32) {
        let _ = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status();
    }

    /// Waits for exit (killing after `timeout`); returns the code and all output.
    pub(crate) fn finish(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!(
                        "stack did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                        self.stdout, self.stderr
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("wait: {e}"),
            }
        };
        // Read what is left; a grandchild holding the pipes open must not hang the test.
        let drained = Instant::now() + Duration::from_secs(5);
        while let Ok((is_err, line)) = self
            .rx
            .recv_timeout(drained.saturating_duration_since(Instant::now()))
        {
            let buf = if is_err {
                &mut self.stderr
            } else {
                &mut self.stdout
            };
            buf.push_str(&line);
            buf.push('\n');
        }
        self.readers.clear();
        Run {
            code: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether process `pid` is alive (not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("X");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Pids of live processes whose environment has `KEY=VALUE`.
pub(crate) fn pids_with_env(key: &str, value: &str) -> Vec<u32> {
    let needle = format!("{key}={value}");
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ"))
            && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
            && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Polls `f` until it returns true, at most `timeout`.
pub(crate) fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

impl Project {
    /// The project name `stack` derives from the folder (used as `STACK_PROJECT`).
    pub(crate) fn name(&self) -> String {
        let folder = self
            .dir
            .path()
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        folder
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }
}

/// `stack new TEMPLATE` then `stack run` of a command calling the gateway (the template's
/// client: two chat turns, remembered by the context server) and the model directly.
pub(crate) fn template_runs_its_client(template: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let new = std::process::Command::new(stack_bin())
        .args(["new", template, "app"])
        .current_dir(dir.path())
        .output()
        .expect("new");
    assert!(new.status.success(), "{new:?}");
    let model_check = "import os, json, urllib.request; \
        r = urllib.request.urlopen(os.environ['STACK_MODEL_URL'] + '/v1/models'); \
        print('models', len(json.load(r)['data']))";
    let run = finish(
        std::process::Command::new(stack_bin())
            .args(["run", "--timeout", "120s", "--", "sh", "-c"])
            .arg(format!("python3 client.py && python3 -c \"{model_check}\""))
            .current_dir(dir.path().join("app"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
        std::time::Duration::from_secs(300),
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("< "), "no reply: {}", run.stdout);
    assert!(
        run.stdout.contains("the context server keeps 4 entries"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("models "), "{}", run.stdout);
    // Nothing is left: no supervisor, no state.
    assert!(!dir.path().join("app/.stack/state.json").exists());
}

/// The mock model's config for `tests/python/agents_sdk.py` (its fixtures script the
/// agents' tool calls).
pub(crate) fn agents_model_config() -> String {
    format!(
        "strict: true\nfixtures: {}\n",
        repo_root()
            .join("tests/python/agents_fixtures.yaml")
            .display()
    )
}

/// Runs `tests/python/agents_sdk.py` (structured outputs, the OpenAI Agents SDK,
/// LangChain) against `base_url` and checks every part passed.
pub(crate) fn agents_suite(test: &str, base_url: &str, key: &str) {
    let Some(python) = Sdk::Current.python(test) else {
        return;
    };
    let out = run_python(
        &python,
        "agents_sdk.py",
        &[("BASE_URL", base_url), ("API_KEY", key)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "openai_parse",
        "anthropic_structured",
        "agents_sdk",
        "langchain",
    ] {
        assert!(
            text.contains(&format!("ok {part}")),
            "{part} did not pass:\n{text}"
        );
    }
}

/// A private CA and a server certificate it signed for `localhost` and 127.0.0.1, written
/// as PEM files into `dir`: `(ca.pem, server.pem, server.key)`.
pub(crate) fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stack test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write ca");
    std::fs::write(&paths.1, cert.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

/// A small deterministic generator for the trials' random moments (seeded from the clock;
/// the seed is printed so a failure can be replayed).
pub(crate) struct Moments(u64);

impl Moments {
    pub(crate) fn new(test: &str) -> Moments {
        let seed = std::env::var("STACK_TRIAL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: STACK_TRIAL_SEED={seed}");
        Moments(seed)
    }

    /// A moment in `0..max`.
    pub(crate) fn next(&mut self, max: Duration) -> Duration {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        max.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Whether a Docker engine answers; a skip (a failure in CI) when none does.
pub(crate) fn engine(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail(
            test,
            "no Docker engine answers (`.ci/run` installs and starts one)",
        );
    }
    ok
}

/// What `docker ARGS…` prints.
pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A new, empty PostgreSQL database for one test: its URL (`scripts/postgres.sh` starts
/// the server on first use; `STACK_TEST_POSTGRES` names another), or `None` after
/// [`skip_or_fail`] when there is no server.
pub(crate) fn postgres_db(test: &str) -> Option<String> {
    let base = std::env::var("STACK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres:stack@127.0.0.1:5432/postgres".into());
    if !provision("postgres.sh", &[]) {
        skip_or_fail(
            test,
            "no PostgreSQL server (`scripts/postgres.sh` starts one)",
        );
        return None;
    }
    let name = format!(
        "stack_test_{}",
        uuid_like().chars().take(16).collect::<String>()
    );
    let out = Command::new("psql")
        .arg(&base)
        .args(["-qtAc", &format!("CREATE DATABASE {name}")])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        other => {
            skip_or_fail(
                test,
                &format!("cannot create a database at {base}: {other:?}"),
            );
            return None;
        }
    }
    let root = base.rsplit_once('/').map_or(base.as_str(), |(r, _)| r);
    Some(format!("{root}/{name}"))
}

/// 32 hex digits, different on every call.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:08x}{n:08x}", nanos as u64, std::process::id())
}
