//! `stack restart|stop|start SERVICE…`: single services of a running stack.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{GlobalArgs, ServicesArgs};
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::events::report::PsDocument;
use crate::events::{Health, State};
use crate::exit;
use crate::ui::{Console, table};
use crate::ui::{errln, out};

/// Which action.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Restart,
    Stop,
    Start,
}

pub(crate) fn run(global: &GlobalArgs, args: ServicesArgs, action: Action) -> Result<ExitCode> {
    let console = Console::new(global);
    let project = super::project::locate(global)?;
    let rt = super::runtime()?;
    let outcome = rt.block_on(act(&project, action, &args.services, args.timeout))?;
    match outcome {
        Outcome::Stopped => {
            if !global.quiet {
                errln!(console, "stopped {}", args.services.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Ready(shown) => {
            out!(
                console,
                "{}",
                table::render(&shown, Console::new(global).out_color())
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed(name) => {
            errln!(
                console,
                "error: `{name}` failed; `stack logs {name}` shows why"
            );
            Ok(ExitCode::from(exit::SERVICE_FAILED))
        }
        Outcome::TimedOut => {
            errln!(
                console,
                "error: not ready within {}",
                humantime::format_duration(args.timeout)
            );
            Ok(ExitCode::from(exit::HEALTH_TIMEOUT))
        }
    }
}

/// How an action on services ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Stopped.
    Stopped,
    /// Restarted or started, and ready: the `ps` document of just those services.
    Ready(PsDocument),
    /// This one failed.
    Failed(String),
    /// Not ready in time.
    TimedOut,
}

/// Asks the project's supervisor to act on `services` and, for a restart or a start,
/// waits (up to `timeout`) until they are ready again.
pub(crate) async fn act(
    project: &super::project::Project,
    action: Action,
    services: &[String],
    timeout: Duration,
) -> Result<Outcome> {
    let socket = project.state.socket();
    let list = services.to_vec();
    let request = match action {
        Action::Restart => Request::Restart { services: list },
        Action::Stop => Request::Stop { services: list },
        Action::Start => Request::Start { services: list },
    };
    match control::client::call(&socket, &request).await {
        Ok(Message::Ok) => {}
        Ok(Message::Error { message }) => return Err(Error::input(message, None)),
        Ok(other) => return Err(Error::input(format!("unexpected answer: {other:?}"), None)),
        Err(_) => return Err(not_running(project)),
    }
    if matches!(action, Action::Stop) {
        return Ok(Outcome::Stopped);
    }
    // Restarted or started: wait until they are ready again.
    let deadline = Instant::now() + timeout;
    // A restart first has to take the old run down: wait for a fresh start.
    tokio::time::sleep(Duration::from_millis(20)).await;
    loop {
        let doc = match control::client::call(&socket, &Request::Ps).await {
            Ok(Message::Ps(doc)) => doc,
            _ => {
                return Err(Error::Environment {
                    message: format!("the supervisor of `{}` went away", project.name),
                    hint: None,
                });
            }
        };
        match verdict(&doc, services) {
            Some(Ok(())) => {
                let mut shown = doc;
                shown.services.retain(|s| services.contains(&s.name));
                return Ok(Outcome::Ready(shown));
            }
            Some(Err(name)) => return Ok(Outcome::Failed(name)),
            None if Instant::now() > deadline => return Ok(Outcome::TimedOut),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// "Project X is not running", with how to start it.
pub(crate) fn not_running(project: &super::project::Project) -> Error {
    Error::Environment {
        message: format!("project `{}` is not running", project.name),
        hint: Some("start it with `stack up -d`".into()),
    }
}

/// All ready (Ok), one failed (Err(name)), or not yet (None).
fn verdict(doc: &PsDocument, names: &[String]) -> Option<std::result::Result<(), String>> {
    let mut all = true;
    for s in doc.services.iter().filter(|s| names.contains(&s.name)) {
        match (s.state, s.health) {
            (State::Failed, _) => return Some(Err(s.name.clone())),
            (State::Running, Health::Healthy | Health::None) => {}
            (State::Exited, _) => {}
            _ => all = false,
        }
    }
    all.then_some(Ok(()))
}
