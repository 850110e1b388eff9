//! Options shared by every subcommand.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use tracing_subscriber::EnvFilter;

/// Global options (SPEC §2). As with docker compose, `-f`, `-p` and `-v` go before the
/// subcommand (`stack -f ci.yaml -p job1 up`), because `logs -f` (follow) and `down -v`
/// (volumes) mean something else after it; `--no-color` and `-q` go anywhere.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// The stack file [default: `stack.yaml`, searched upward from the current folder]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Project name [default: `name:` in the stack file, else the folder's name]
    #[arg(
        short = 'p',
        long = "project-name",
        env = "STACK_PROJECT_NAME",
        value_name = "NAME"
    )]
    pub project_name: Option<String>,
    /// Never colour the output (also: `NO_COLOR`)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print less
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more; repeat for more detail (`RUST_LOG` overrides)
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// Whether colour may be used on a stream that is a terminal.
    pub(crate) fn color(&self) -> bool {
        !self.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    /// Installs the tracing subscriber: `-v` counts levels, `RUST_LOG` overrides.
    pub(crate) fn init_tracing(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            _ => "trace",
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.color())
            .with_target(false)
            .try_init();
    }
}
