//! `stack ps`: asks the supervisor; when it is gone, reports what `state.json` recorded.

use std::process::ExitCode;

use crate::cli::{GlobalArgs, PsArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::events::report::{PsDocument, PsPort, PsService};
use crate::events::{Health, State as Life};
use crate::state::State;
use crate::ui::{Console, table};
use crate::ui::{errln, out, outln};

pub(crate) fn run(global: &GlobalArgs, args: PsArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let rt = super::runtime()?;
    let doc = match rt.block_on(control::client::call(&project.state.socket(), &Request::Ps)) {
        Ok(Message::Ps(doc)) => doc,
        Ok(Message::Error { message }) => return Err(Error::input(message, None)),
        _ => {
            let state = State::read(&project.state);
            let running = rt.block_on(running_containers(&project.name, state.as_ref()));
            let doc = from_state(&project.name, state, &running);
            if !global.quiet {
                match &doc.supervisor_pid {
                    None if doc.services.is_empty() => {
                        errln!(console, "project `{}` is not running", project.name)
                    }
                    _ => errln!(
                        console,
                        "the supervisor of `{}` is not running; this is what it left in {} (`stack down` cleans up)",
                        project.name,
                        project.state.state_file().display()
                    ),
                }
            }
            doc
        }
    };
    if args.json {
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| Error::input(e.to_string(), None))?;
        outln!(console, "{text}");
    } else if !doc.services.is_empty() {
        out!(console, "{}", table::render(&doc, console.out_color()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The ids of the project's running containers, when the state names any container.
async fn running_containers(project: &str, state: Option<&State>) -> Vec<String> {
    if !state.is_some_and(|s| s.services.values().any(|s| s.container_id.is_some())) {
        return Vec::new();
    }
    let Ok(docker) = crate::runtime::docker::Docker::connect().await else {
        return Vec::new();
    };
    docker
        .containers(project)
        .await
        .map(|list| {
            list.into_iter()
                .filter(|c| c.running)
                .map(|c| c.id)
                .collect()
        })
        .unwrap_or_default()
}

/// The `ps` document of a stack whose supervisor is gone: services whose recorded process
/// (same pid and start time) or container (among `running`) still runs are `running`, the
/// others `exited`.
fn from_state(project: &str, state: Option<State>, running: &[String]) -> PsDocument {
    let Some(state) = state else {
        return PsDocument {
            project: project.to_string(),
            supervisor_pid: None,
            services: Vec::new(),
            llm: None,
            dashboard: None,
            telemetry_port: None,
        };
    };
    let services = state
        .services
        .into_iter()
        .map(|(name, s)| {
            let alive = s.process.is_some_and(|p| p.alive())
                || s.container_id
                    .as_ref()
                    .is_some_and(|id| running.iter().any(|r| r.starts_with(id.as_str())));
            PsService {
                name,
                runtime: s.runtime.unwrap_or_default(),
                builtin: None,
                state: if alive { Life::Running } else { Life::Exited },
                health: Health::None,
                pid: s.process.filter(|_| alive).map(|p| p.pid),
                container_id: s.container_id,
                ports: s
                    .ports
                    .into_iter()
                    .map(|(n, (host, _))| {
                        (
                            n,
                            PsPort {
                                port: host,
                                url: format!("http://127.0.0.1:{host}"),
                            },
                        )
                    })
                    .collect(),
                restarts: 0,
                started_at: None,
                exit_code: None,
                start_reason: None,
            }
        })
        .collect();
    PsDocument {
        project: state.project,
        supervisor_pid: state.supervisor.alive().then_some(state.supervisor.pid),
        services,
        llm: None,
        dashboard: None,
        telemetry_port: None,
    }
}
