//! `stack run`, `stack env`, `stack completions`.

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use crate::cli::{Cli, CompletionsArgs, EnvArgs, EnvFormat, GlobalArgs, RunArgs, UpArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::events::report::PsDocument;
use crate::exit;
use crate::state::State;
use crate::ui::Console;
use crate::ui::{err, out};

/// `stack run CMD…`: up (a detached supervisor owned by this process), wait healthy, run
/// CMD with the endpoints in its environment, then down — always: when CMD fails, when the
/// stack does not come up, on SIGINT/SIGTERM; and if this process is SIGKILLed, the
/// supervisor notices its owner is gone and stops everything itself.
pub(crate) fn run(global: &GlobalArgs, args: RunArgs) -> Result<ExitCode> {
    if let Some(f) = &args.context_snapshot
        && !f.is_file()
    {
        return Err(Error::input(
            format!("--context-snapshot: `{}` is not a file", f.display()),
            Some("write one session per line, as `GET /v1/sessions/{id}` answers"),
        ));
    }
    let up = UpArgs {
        services: Vec::new(),
        detach: true,
        wait: true,
        timeout: args.timeout,
        runtime: args.runtime,
        profiles: args.profiles.clone(),
        json: false,
        llm: args.llm,
        // An ephemeral stack follows files only when asked.
        watch: args.watch,
        no_watch: !args.watch,
        dry_run: false,
        force_recreate: false,
        hermetic: Some(crate::plan::llm::Hermetic {
            snapshot: args
                .context_snapshot
                .as_ref()
                .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())),
        }),
    };
    let plan = Arc::new(super::up::prepare(global, &up)?);
    let socket = plan.state().socket();
    // Progress and the table go to stderr; stdout belongs to CMD.
    let console = Console::new(global);
    let (code, doc) = super::up::detached(&console, plan.clone(), &up, true)?;
    let Some(doc) = doc else {
        // The stack did not come up; the supervisor has already taken it down.
        return Ok(ExitCode::from(code));
    };
    // Read now: the supervisor removes `state.json` before it exits.
    let supervisor = State::read(&plan.state()).map(|s| s.supervisor);
    let rt = super::runtime()?;
    let code = rt.block_on(async {
        let code = run_command(&args.command, &stack_env(&doc, &plan.state())).await;
        let _ = control::client::call(&socket, &Request::Down { timeout_ms: None }).await;
        code
    });
    let code = match (code, plan.llm) {
        (Ok(code), Some(crate::services::cassette::Mode::Replay)) => {
            Ok(replay_summary(&console, &plan, code, args.allow_misses))
        }
        (code, _) => code,
    };
    // Wait until the supervisor is gone, so nothing outlives `stack run`.
    if let Some(supervisor) = supervisor {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while supervisor.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    Ok(ExitCode::from(code?))
}

/// `llm replay: 41 answered from cassettes, 0 missing`, each miss with its nearest
/// recording and how it differs; the exit code: CMD's, or 1 when it succeeded but requests
/// had no recording (unless `allow_misses`).
fn replay_summary(console: &Console, plan: &crate::plan::Plan, code: u8, allow_misses: bool) -> u8 {
    use crate::services::cassette::{self, Note};
    let notes = cassette::read_notes(&crate::plan::llm::notes_file(&plan.state_dir));
    let hits = notes.iter().filter(|n| matches!(n, Note::Hit(_))).count();
    let misses: Vec<&Note> = notes
        .iter()
        .filter(|n| matches!(n, Note::Miss { .. }))
        .collect();
    err!(
        console,
        "llm replay: {hits} answered from cassettes, {} missing\n",
        misses.len()
    );
    for m in &misses {
        if let Note::Miss {
            route,
            nearest,
            diff,
        } = m
        {
            let nearest = nearest
                .as_deref()
                .map_or("no recording on this route".to_string(), |n| {
                    format!("nearest {n}")
                });
            err!(console, "  {route}: {nearest}\n");
            for d in diff {
                err!(console, "    {d}\n");
            }
        }
    }
    if code == 0 && !misses.is_empty() && !allow_misses {
        exit::SERVICE_FAILED
    } else {
        code
    }
}

/// Runs CMD, passing SIGINT/SIGTERM on; its exit code (128+signal if killed).
///
/// Without a terminal (CI), CMD gets its own process group: a signal reaches all it
/// started, and whatever of it outlives CMD is killed, so the job ends cleanly. On a
/// terminal it stays in the foreground group, so it can read the keyboard and gets Ctrl-C
/// directly.
async fn run_command(command: &[String], env: &[(String, String)]) -> Result<u8> {
    use std::io::IsTerminal;
    use tokio::signal::unix::{SignalKind, signal};
    let Some((program, args)) = command.split_first() else {
        return Err(Error::input(
            "no command given",
            Some("write `stack run -- CMD ARGS…`"),
        ));
    };
    let own_group = !std::io::stdin().is_terminal();
    let mut cmd = if own_group {
        // Under the shim, like a service: if `stack run` is SIGKILLed, CMD's whole group goes.
        let mut c = tokio::process::Command::new(std::env::current_exe()?);
        c.arg(crate::runtime::shim::ARG).arg(program).env(
            crate::runtime::shim::PARENT_ENV,
            std::process::id().to_string(),
        );
        crate::runtime::unix::configure(&mut c);
        c
    } else {
        let mut c = tokio::process::Command::new(program);
        crate::runtime::unix::die_with_parent(&mut c);
        c
    };
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::input(format!("cannot run `{program}`: {e}"), None))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let pid = child.id();
    let pass_on = |sig: i32| {
        if let Some(pid) = pid {
            let _ = if own_group {
                crate::runtime::unix::signal_group(pid, sig)
            } else {
                crate::runtime::unix::signal_pid(pid, sig)
            };
        }
    };
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            // On a terminal, Ctrl-C has reached CMD already.
            _ = sigint.recv() => if own_group { pass_on(libc::SIGINT) },
            _ = sigterm.recv() => pass_on(libc::SIGTERM),
        }
    };
    if let (true, Some(pid)) = (own_group, pid)
        && !crate::procfs::group_members(pid).is_empty()
    {
        let _ = crate::runtime::unix::signal_group(pid, libc::SIGKILL);
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(exit::SERVICE_FAILED),
        (None, Some(sig)) => 128u8.saturating_add(u8::try_from(sig).unwrap_or(0)),
        _ => exit::SERVICE_FAILED,
    })
}

/// The endpoints ([`PsDocument::endpoint_env`]) and, when the stack has a gateway, what
/// the official SDKs read with no code change: `OPENAI_BASE_URL` (with `/v1`),
/// `ANTHROPIC_BASE_URL` (without), and `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` set to the
/// gateway's first key (from its configuration file under `.stack/run/`).
pub(super) fn stack_env(doc: &PsDocument, state: &crate::state::StateDir) -> Vec<(String, String)> {
    let mut env = doc.endpoint_env();
    let gateway = doc
        .services
        .iter()
        .find(|s| s.builtin == Some(crate::config::BuiltinKind::Gateway) && !s.ports.is_empty());
    let Some(gw) = gateway else {
        return env;
    };
    let Some(port) = gw.ports.get("main").or_else(|| gw.ports.values().next()) else {
        return env;
    };
    env.push(("OPENAI_BASE_URL".into(), format!("{}/v1", port.url)));
    env.push(("ANTHROPIC_BASE_URL".into(), port.url.clone()));
    let key = super::project::builtin_config::<crate::services::gateway::Config>(state, &gw.name)
        .and_then(|c| c.keys.first().map(|k| k.key().to_string()));
    if let Some(key) = key {
        env.push(("OPENAI_API_KEY".into(), key.clone()));
        env.push(("ANTHROPIC_API_KEY".into(), key));
    }
    env
}

/// `stack env`.
pub(crate) fn env(global: &GlobalArgs, args: EnvArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let rt = super::runtime()?;
    let doc: PsDocument =
        match rt.block_on(control::client::call(&project.state.socket(), &Request::Ps)) {
            Ok(Message::Ps(doc)) => doc,
            _ => {
                return Err(Error::Environment {
                    message: format!("project `{}` is not running", project.name),
                    hint: Some("start it with `stack up -d`".into()),
                });
            }
        };
    let vars = stack_env(&doc, &project.state);
    let text = match args.format {
        EnvFormat::Dotenv | EnvFormat::Github => vars
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>(),
        EnvFormat::Shell => vars
            .iter()
            .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''")))
            .collect(),
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            serde_json::to_string_pretty(&map).map_err(|e| Error::input(e.to_string(), None))?
                + "\n"
        }
    };
    if args.format == EnvFormat::Github {
        let path = std::env::var_os("GITHUB_ENV").ok_or_else(|| {
            Error::input(
                "`--format github` appends to the file `$GITHUB_ENV` names, and it is not set",
                Some("run it in a GitHub Actions step, or use `--format dotenv`"),
            )
        })?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io {
                action: "cannot append to",
                path: path.clone().into(),
                source,
            })?;
        f.write_all(text.as_bytes())?;
        if !global.quiet {
            err!(console, "{text}");
        }
    } else {
        out!(console, "{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `stack completions SHELL`.
pub(crate) fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "stack", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
