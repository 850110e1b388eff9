//! `stack up` on a running project (SPEC §3.1): plans the edited stack file, each running
//! service keeping its ports, and has the supervisor apply the difference: added services
//! start, removed ones stop, changed ones restart, the rest keep running untouched.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{GlobalArgs, UpArgs};
use crate::config::Loaded;
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::events::diff::{Change, ChangeKind};
use crate::events::report::PsDocument;
use crate::exit;
use crate::plan::Plan;
use crate::state::{Remembered, StateDir};
use crate::supervisor::Observer;
use crate::ui::{Console, progress::Progress, table};

/// How long `up` waits for a reconcile to be through unless `--timeout` says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn run(
    console: &Console,
    loaded: &Loaded,
    args: &UpArgs,
    dir: &StateDir,
) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let socket = dir.socket();
        let running = match control::client::call(&socket, &Request::Ps).await {
            Ok(Message::Ps(doc)) => doc,
            _ if args.dry_run && !crate::state::is_locked(dir) => {
                // Nothing runs: everything would start.
                let plan = super::up::plan_for(loaded, args, &Remembered::new())?;
                for s in &plan.services {
                    console.out(&format!("+ {}\n", s.name));
                }
                return Ok(ExitCode::SUCCESS);
            }
            _ => {
                return Err(Error::Environment {
                    message: format!(
                        "project `{}` is up, and its supervisor does not answer on {}",
                        loaded.stack.name,
                        socket.display()
                    ),
                    hint: Some("it may still be starting: try again; `stack down` stops it".into()),
                });
            }
        };
        let plan = replan(loaded, args, &running)?;
        let request = |dry_run| Request::Reconcile {
            plan: Box::new(plan.clone()),
            dry_run,
            force: args.force_recreate,
            keep: in_file(loaded),
        };
        let (changes, _) = ask(&socket, &request(true)).await?;
        if !args.json {
            for c in &changes {
                console.out(&format!("{c}\n"));
            }
        }
        if args.dry_run {
            if args.json {
                print_json(console, &changes)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        if changes.iter().all(|c| c.kind == ChangeKind::Unchanged) {
            if args.json {
                print_json(console, &running)?;
            } else {
                console.err("nothing to change: every service is as the stack file says\n");
            }
            return Ok(ExitCode::SUCCESS);
        }
        super::up::write_configs(&plan)?;
        let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut progress = Progress::new(console.clone(), Arc::new(plan.clone()), false);
        let failed = match tokio::time::timeout(timeout, ask(&socket, &request(false))).await {
            Ok(answer) => answer?.1,
            Err(_) => {
                let message = format!(
                    "the changed services were not ready within {}",
                    humantime::format_duration(timeout)
                );
                progress.failed(None, &message, exit::HEALTH_TIMEOUT);
                return Ok(ExitCode::from(exit::HEALTH_TIMEOUT));
            }
        };
        let doc = match control::client::call(&socket, &Request::Ps).await {
            Ok(Message::Ps(doc)) => doc,
            _ => running,
        };
        if let Some(name) = failed.first() {
            progress.failed(
                Some(name),
                &format!("`{name}` did not come back with its new definition"),
                exit::SERVICE_FAILED,
            );
            return Ok(ExitCode::from(exit::SERVICE_FAILED));
        }
        if args.json {
            print_json(console, &doc)?;
        } else {
            console.out(&table::render(&doc, console.out_color()));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The plan of `loaded` for the running stack: each running service keeps its ports, and
/// the model switch stays where the running stack has it unless asked.
fn replan(loaded: &Loaded, args: &UpArgs, running: &PsDocument) -> Result<Plan> {
    let mut args = args.clone();
    args.llm = args.llm.or(running.llm);
    super::up::plan_for(loaded, &args, &held(running))
}

/// The running `plan`'s stack file changed: plans it again, as its `up` was asked, and
/// applies it; what changed, and the new plan.
pub(super) async fn again(plan: &Plan, socket: &Path) -> Result<(Vec<Change>, Plan)> {
    let global = GlobalArgs {
        file: Some(plan.file.clone()),
        project_name: Some(plan.project.clone()),
        no_color: true,
        quiet: true,
        verbose: 0,
    };
    let loaded = super::load::stack(&global, plan.selection.runtime)?;
    let running = match control::client::call(socket, &Request::Ps).await {
        Ok(Message::Ps(doc)) => doc,
        _ => {
            return Err(Error::Environment {
                message: "the supervisor does not answer".into(),
                hint: None,
            });
        }
    };
    let args = UpArgs {
        services: plan.selection.services.clone(),
        detach: false,
        wait: false,
        timeout: None,
        runtime: plan.selection.runtime,
        profiles: plan.selection.profiles.clone(),
        json: false,
        llm: None,
        watch: false,
        no_watch: false,
        dry_run: false,
        force_recreate: false,
        hermetic: None,
    };
    let new = replan(&loaded, &args, &running)?;
    super::up::write_configs(&new)?;
    let request = Request::Reconcile {
        plan: Box::new(new.clone()),
        dry_run: false,
        force: false,
        keep: in_file(&loaded),
    };
    let (changes, _) = ask(socket, &request).await?;
    Ok((changes, new))
}

/// Every service the stack file has (selected or not).
fn in_file(loaded: &Loaded) -> Vec<String> {
    loaded
        .stack
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

/// Each running service's ports, which its new plan keeps.
fn held(doc: &PsDocument) -> Remembered {
    let mut held: Remembered = doc
        .services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(|(name, p)| ((s.name.clone(), name.clone()), p.port))
        })
        .collect();
    if let Some(port) = doc.telemetry_port {
        held.insert(crate::plan::Telemetry::port_key(), port);
    }
    held
}

async fn ask(socket: &std::path::Path, request: &Request) -> Result<(Vec<Change>, Vec<String>)> {
    match control::client::call(socket, request).await {
        Ok(Message::Reconciled { changes, failed }) => Ok((changes, failed)),
        Ok(Message::Error { message }) => Err(Error::input(message, None)),
        Ok(other) => Err(Error::input(format!("unexpected answer: {other:?}"), None)),
        Err(e) => Err(Error::Environment {
            message: format!("the supervisor went away: {e}"),
            hint: None,
        }),
    }
}

fn print_json(console: &Console, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::input(format!("cannot print JSON: {e}"), None))?;
    console.out(&format!("{text}\n"));
    Ok(())
}
