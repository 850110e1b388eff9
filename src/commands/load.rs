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
    let bytes = std::fs::read(&file).map_err(|source| Error::Io {
        action: "cannot read",
        path: file.clone(),
        source,
    })?;
    let display = display_path(&file, &cwd);
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(&display, e.as_bytes(), e.utf8_error()))?;
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

/// A stack file that is not UTF-8, refused (exit 2) at its first bad byte's line and column.
fn not_utf8(display: &Path, bytes: &[u8], e: std::str::Utf8Error) -> Error {
    let good = &bytes[..e.valid_up_to()];
    let line = good.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
    let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
    Error::input(
        format!(
            "{}:{line}:{column}: the stack file is not UTF-8 (byte 0x{byte:02x})",
            display.display()
        ),
        Some("save it as UTF-8"),
    )
}

/// `file` relative to `cwd` when inside it, for shorter messages.
fn display_path(file: &Path, cwd: &Path) -> PathBuf {
    file.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| file.to_path_buf())
}
