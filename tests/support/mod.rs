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
pub fn stack_bin() -> &'static str {
    env!("CARGO_BIN_EXE_stack")
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is in CI, where nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reports a missing prerequisite: a skip on a laptop, a failure in CI.
/// Returns normally only when the test should return early (skipped).
pub fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why} (CI is set, so this test may not skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The SDK venvs `.ci/run` creates (`scripts/sdk-venv.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// openai 3.x, anthropic 2.x, mcp 2.x (the current majors).
    Current,
    /// openai 2.x, anthropic 1.x, mcp 1.x (the previous majors).
    Previous,
    /// openai 1.x, anthropic 0.x.
    Legacy,
}

impl Sdk {
    /// Every venv, newest first.
    pub const ALL: [Sdk; 3] = [Sdk::Current, Sdk::Previous, Sdk::Legacy];

    /// The venv's folder name.
    pub fn name(self) -> &'static str {
        match self {
            Sdk::Current => "current",
            Sdk::Previous => "previous",
            Sdk::Legacy => "legacy",
        }
    }

    /// The venv's python, or `None` after [`skip_or_fail`] when it is missing.
    pub fn python(self, test: &str) -> Option<PathBuf> {
        let base = std::env::var_os("STACK_SDK_VENVS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv"));
        let python = base.join(self.name()).join("bin/python");
        if python.exists() {
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
pub fn run_python(python: &Path, script: &str, env: &[(&str, &str)]) -> Output {
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
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The port.
    pub port: u16,
    /// A scratch folder the service runs in (its config file lives here).
    pub dir: tempfile::TempDir,
}

impl Served {
    /// Starts `stack serve <kind>` with `config` (YAML) written to a file, and waits for its
    /// readiness line.
    pub fn start(kind: &str, config: Option<&str>) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(kind, config, dir)
    }

    /// Like [`Served::start`], in a given folder (relative paths in `config` resolve there).
    pub fn start_in(kind: &str, config: Option<&str>, dir: tempfile::TempDir) -> Served {
        let mut cmd = Command::new(stack_bin());
        cmd.args(["serve", kind, "--port", "0"])
            .current_dir(dir.path())
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(config) = config {
            let path = dir.path().join(format!("{kind}.yaml"));
            std::fs::write(&path, config).expect("write config");
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd.spawn().expect("spawn stack serve");
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
        std::thread::spawn(move || for _ in lines {});
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
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self, timeout: Duration) -> bool {
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
    pub fn kill(&mut self) {
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
