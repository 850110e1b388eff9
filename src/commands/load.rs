//! Finding, reading and validating the stack file for a command.

use std::path::{Path, PathBuf};

use crate::cli::GlobalArgs;
use crate::config::{self, LoadOptions, Loaded, RuntimeKind};
use crate::error::{Error, Result};
use crate::ui::{Console, err};

/// Locates and validates the stack file; prints its warnings.
pub(crate) fn stack(global: &GlobalArgs, runtime: Option<RuntimeKind>) -> Result<Loaded> {
    let console = Console::new(global);
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        action: "cannot read the current folder",
        path: PathBuf::from("."),
        source,
    })?;
    let file = config::locate(global.file.as_deref(), &cwd).map_err(|message| {
        Error::input(
            message,
            Some("pass the stack file with `-f FILE`, or create one with `stack new minimal`"),
        )
    })?;
    let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
        action: "cannot read",
        path: file.clone(),
        source,
    })?;
    let display = display_path(&file, &cwd);
    let env = |name: &str| std::env::var(name).ok();
    let loaded = config::parse(
        &file,
        &display,
        &text,
        &LoadOptions {
            project_name: global.project_name.clone(),
            runtime,
            env: &env,
            check_builtin: Some(&crate::services::check_config),
        },
    )
    .map_err(Error::Config)?;
    if !loaded.warnings.diagnostics.is_empty() && !global.quiet {
        for d in &loaded.warnings.diagnostics {
            err!(
                console,
                "{}",
                d.render(&loaded.warnings.file, &loaded.warnings.text)
            );
        }
    }
    Ok(loaded)
}

/// `file` relative to `cwd` when inside it, for shorter messages.
fn display_path(file: &Path, cwd: &Path) -> PathBuf {
    file.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| file.to_path_buf())
}
