//! `stack cassettes list|check|prune` (SPEC §4.4).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{CassettesAction, CassettesArgs, GlobalArgs};
use crate::error::{Error, Result};
use crate::plan::llm;
use crate::services::cassette::{self, Note};
use crate::ui::{Console, errln, outln};

pub(crate) fn run(global: &GlobalArgs, args: CassettesArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let (dir, notes) = folders(global, args.dir.clone())?;
    match args.action {
        CassettesAction::List => list(&console, &dir),
        CassettesAction::Check => check(&console, &dir),
        CassettesAction::Prune { dry_run } => prune(&console, &dir, notes, dry_run),
    }
}

/// The cassette folder, and the replay notes of the stack (when there is a stack file).
fn folders(global: &GlobalArgs, dir: Option<PathBuf>) -> Result<(PathBuf, Option<PathBuf>)> {
    let loaded = super::load::stack(global, None);
    let notes = loaded
        .as_ref()
        .ok()
        .map(|l| llm::notes_file(&crate::plan::state_dir(&l.stack).dir));
    let dir = match (dir, loaded) {
        (Some(d), _) => d,
        (None, Ok(l)) => {
            let services: Vec<&crate::config::Service> = l.stack.services.iter().collect();
            llm::cassettes(&services, &l.stack.dir).0
        }
        (None, Err(e)) => return Err(e),
    };
    Ok((dir, notes))
}

fn list(console: &Console, dir: &std::path::Path) -> Result<ExitCode> {
    let files = cassette::files(dir);
    if files.is_empty() {
        errln!(console, "no cassettes in {}", dir.display());
    }
    for (name, path) in files {
        let line = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| cassette::from_yaml(&t))
        {
            Ok(c) => {
                let answer = if c.response.streamed() {
                    format!("stream of {} frames", c.response.frames.len())
                } else {
                    "document".to_string()
                };
                format!("{name}  {}  {}  {answer}", c.route, c.response.status)
            }
            Err(e) => format!("{name}  (does not parse: {e})"),
        };
        outln!(console, "{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(console: &Console, dir: &std::path::Path) -> Result<ExitCode> {
    let files = cassette::files(dir);
    let mut problems = Vec::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for (name, path) in &files {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let c = match cassette::from_yaml(&text) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        let key = (c.route.clone(), cassette::fingerprint(&c.route, &c.request));
        if let Some(first) = seen.insert(key, name.clone()) {
            problems.push(format!(
                "{name}: records the same request as {first}; only one of them can answer"
            ));
        }
        if c.response.streamed() && c.response.frames.is_empty() {
            problems.push(format!("{name}: a stream with no frames"));
        }
        if !c.response.streamed() && c.response.body.is_none() {
            problems.push(format!("{name}: a document answer with no `body`"));
        }
        let expected = cassette::file_name(&c.route, &c.request);
        if expected.to_string_lossy() != name.as_str() {
            problems.push(format!(
                "{name}: its request now records as {} (edited by hand?); it still answers, `--llm record` would write the other file",
                expected.display()
            ));
        }
    }
    for p in &problems {
        errln!(console, "✘ {p}");
    }
    if problems.is_empty() {
        errln!(
            console,
            "✔ {} cassettes in {} check out",
            files.len(),
            dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(crate::exit::INVALID_INPUT))
    }
}

fn prune(
    console: &Console,
    dir: &std::path::Path,
    notes: Option<PathBuf>,
    dry_run: bool,
) -> Result<ExitCode> {
    let Some(notes) = notes.filter(|n| n.is_file()) else {
        return Err(Error::input(
            "no replay run to prune by: `--llm replay` notes which cassettes answer, and there are no notes",
            Some("run `stack run --llm replay -- CMD` first"),
        ));
    };
    let used: HashSet<String> = cassette::read_notes(&notes)
        .into_iter()
        .filter_map(|n| match n {
            Note::Hit(name) => Some(name),
            Note::Miss { .. } => None,
        })
        .collect();
    let mut removed = 0;
    for (name, path) in cassette::files(dir) {
        if used.contains(&name) {
            continue;
        }
        if !dry_run {
            std::fs::remove_file(&path).map_err(|source| Error::Io {
                action: "cannot delete",
                path: path.clone(),
                source,
            })?;
        }
        removed += 1;
        outln!(
            console,
            "{}{name}",
            if dry_run { "would delete " } else { "deleted " }
        );
    }
    errln!(
        console,
        "{removed} unused, {} used by the last replay run",
        used.len()
    );
    Ok(ExitCode::SUCCESS)
}
