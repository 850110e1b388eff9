//! Finding a project's state for commands that act on a running (or dead) stack: `ps`,
//! `logs`, `down`, `restart`… They must work even when the stack file has since become
//! invalid, so they fall back to reading only its `name:`.

use std::path::PathBuf;

use crate::cli::GlobalArgs;
use crate::config::validate::sanitize_project_name;
use crate::error::{Error, Result};
use crate::state::StateDir;

/// A project located from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// Its name (`-p`, else `name:`, else the folder).
    pub name: String,
    /// Its state folder.
    pub state: StateDir,
    /// Its stack file (absolute).
    pub file: PathBuf,
}

/// Locates the stack file and the project's state folder.
pub(crate) fn locate(global: &GlobalArgs) -> Result<Project> {
    let cwd = std::env::current_dir()?;
    let file = crate::config::locate(global.file.as_deref(), &cwd).map_err(|message| {
        Error::input(
            message,
            Some("run this in the project folder, or pass its stack file with `-f FILE`"),
        )
    })?;
    let dir = file.parent().map(PathBuf::from).unwrap_or_default();
    let own = own_name(&file).unwrap_or_else(|| {
        sanitize_project_name(dir.file_name().and_then(|s| s.to_str()).unwrap_or("stack"))
    });
    let name = global.project_name.clone().unwrap_or_else(|| own.clone());
    let state = StateDir::new(&dir, &name, &own);
    crate::state::check_access(&state).map_err(|denied| Error::Environment {
        message: format!(
            "permission denied: `{}` belongs to uid {}, and this user (uid {}) may not read it",
            denied.dir.display(),
            denied.owner,
            nix::unistd::geteuid()
        ),
        hint: Some(format!(
            "a stack's state and control socket are its owner's only: run this as uid {}",
            denied.owner
        )),
    })?;
    Ok(Project { state, name, file })
}

/// The `name:` of a stack file, read leniently (interpolated from the environment).
fn own_name(file: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let raw = doc.get("name")?.as_str()?;
    let env = |k: &str| std::env::var(k).ok();
    let expanded = crate::config::interpolate::expand_env(raw, &env).ok()?;
    Some(expanded.text.replace("$$", "$"))
}

/// The configuration file the running stack gave built-in `service` (under `.stack/run/`),
/// read back: a gateway's keys, a context server's token.
pub(crate) fn builtin_config<T: serde::de::DeserializeOwned + Default>(
    state: &StateDir,
    service: &str,
) -> Option<T> {
    let file = crate::plan::resolve::builtin_config_path(&state.dir, service);
    let text = std::fs::read_to_string(&file).ok()?;
    crate::services::config::parse_config(&file, &text).ok()
}
