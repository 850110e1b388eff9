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
    let socket = project.state.socket();
    let services = args.services.clone();
    let request = match action {
        Action::Restart => Request::Restart { services },
        Action::Stop => Request::Stop { services },
        Action::Start => Request::Start { services },
    };
    let rt = super::runtime()?;
    rt.block_on(async {
        match control::client::call(&socket, &request).await {
            Ok(Message::Ok) => {}
            Ok(Message::Error { message }) => return Err(Error::input(message, None)),
            Ok(other) => return Err(Error::input(format!("unexpected answer: {other:?}"), None)),
            Err(_) => {
                return Err(Error::Environment {
                    message: format!("project `{}` is not running", project.name),
                    hint: Some("start it with `stack up -d`".into()),
                });
            }
        }
        if matches!(action, Action::Stop) {
            if !global.quiet {
                errln!(console, "stopped {}", args.services.join(", "));
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Restarted or started: wait until they are ready again.
        let since = Instant::now();
        let deadline = since + args.timeout;
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
            match verdict(&doc, &args.services) {
                Some(Ok(())) => {
                    let mut shown = doc.clone();
                    shown.services.retain(|s| args.services.contains(&s.name));
                    out!(
                        console,
                        "{}",
                        table::render(&shown, Console::new(global).out_color())
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Some(Err(name)) => {
                    errln!(
                        console,
                        "error: `{name}` failed; `stack logs {name}` shows why"
                    );
                    return Ok(ExitCode::from(exit::SERVICE_FAILED));
                }
                None if Instant::now() > deadline => {
                    errln!(
                        console,
                        "error: not ready within {}",
                        humantime::format_duration(args.timeout)
                    );
                    return Ok(ExitCode::from(exit::HEALTH_TIMEOUT));
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
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
