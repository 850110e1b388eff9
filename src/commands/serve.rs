//! `stack serve <kind>`: run one built-in service in the foreground until SIGTERM/SIGINT.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, LogFormat, ServeArgs};
use crate::error::Result;
use crate::services;

pub(crate) fn run(global: &GlobalArgs, args: ServeArgs) -> Result<ExitCode> {
    init_tracing(global, args.log_format);
    // One worker: a current-thread runtime, which skips the work-stealing machinery.
    let mut builder = match args.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
        let result = services::run(
            args.kind,
            services::ServeOptions {
                host: args.host,
                port: args.port,
                config: args.config,
            },
            shutdown,
        )
        .await;
        signals.abort();
        result?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Cancels `token` on the first SIGTERM or SIGINT.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}

fn init_tracing(global: &GlobalArgs, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let level = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // rmcp narrates every MCP message at info; its warnings are what matter here.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},rmcp=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Under the orchestrator every line is already timestamped in the log file.
    let orchestrated = std::env::var_os("STACK_SERVICE").is_some();
    let _ = match (format, orchestrated) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.with_ansi(false).without_time().try_init(),
        (LogFormat::Text, false) => builder.with_ansi(false).try_init(),
    };
}
