//! `stack up`: load → select → ports → plan → supervise in the foreground.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, UpArgs};
use crate::error::{Error, Result};
use crate::logs::{self, Follower};
use crate::plan::{self, Plan};
use crate::supervisor::{self, Options};
use crate::ui::{Console, logstream, progress::Progress};

pub(crate) fn run(global: &GlobalArgs, args: UpArgs) -> Result<ExitCode> {
    let plan = Arc::new(prepare(global, &args)?);
    let console = Console::new(global);
    let rt = super::runtime()?;
    let code = rt.block_on(async {
        let notify = Arc::new(Notify::new());
        let stop_logs = CancellationToken::new();
        let followers = plan
            .services
            .iter()
            .map(|s| Follower::new(&s.name, &logs::path(&plan.state_dir(), &s.name), 0))
            .collect();
        let stream = tokio::spawn(logstream::run(
            console.clone(),
            followers,
            notify.clone(),
            stop_logs.clone(),
        ));
        let mut progress = Progress::new(
            console.clone(),
            plan.clone(),
            args.json,
            Some(std::process::id()),
        );
        let code = supervisor::run(
            plan.clone(),
            notify,
            &mut progress,
            Options {
                timeout: args.timeout,
            },
        )
        .await;
        stop_logs.cancel();
        let _ = stream.await;
        code
    })?;
    Ok(ExitCode::from(code))
}

/// Loads the stack and resolves the plan: services, order, ports, environment.
pub(crate) fn prepare(global: &GlobalArgs, args: &UpArgs) -> Result<Plan> {
    let loaded = super::load::stack(global, args.runtime)?;
    let stack = &loaded.stack;
    let selected = plan::select(stack, &args.services, &args.profiles)
        .map_err(|e| Error::input(e.to_string(), Some("`stack config` lists the services")))?;
    let ports = plan::ports::assign(&selected, &Default::default()).map_err(Error::PortsInUse)?;
    let exe = std::env::current_exe()?;
    plan::build(stack, &selected, &ports, &exe).map_err(|e| Error::input(e.to_string(), None))
}
