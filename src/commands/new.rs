//! `stack new TEMPLATE [DIR]`: a project from a template embedded in the binary
//! (`templates/` in the repository).

use std::path::Path;
use std::process::ExitCode;

use include_dir::{Dir, include_dir};

use crate::cli::GlobalArgs;
use crate::cli::NewArgs;
use crate::error::{Error, Result};
use crate::ui::{Console, errln, outln};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Each template with a line about it.
pub(super) const CATALOG: &[(&str, &str)] = &[
    (
        "ai-stack",
        "context + model + gateway as processes, a sample client, .gitignore and README",
    ),
    (
        "ai-stack-containers",
        "the same AI stack as Docker containers (image built locally from `stack`)",
    ),
    (
        "ai-stack-postgres",
        "the AI stack in containers with the context store on PostgreSQL (two replicas once exported)",
    ),
    (
        "ai-stack-observability",
        "the AI stack in containers with Prometheus and Grafana (a provisioned dashboard)",
    ),
    ("minimal", "one process with an HTTP health check"),
];

pub(crate) fn run(global: &GlobalArgs, args: NewArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let quiet = global.quiet;
    if args.list {
        let width = CATALOG.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, about) in CATALOG {
            outln!(console, "{name:<width$}  {about}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.template.unwrap_or_default();
    let template = TEMPLATES
        .get_dir(&name)
        .filter(|_| CATALOG.iter().any(|(n, _)| *n == name))
        .ok_or_else(|| {
            let names: Vec<&str> = CATALOG.iter().map(|(n, _)| *n).collect();
            let hint = crate::config::diagnostic::did_you_mean(&name, names.iter().copied())
                .unwrap_or_else(|| format!("templates: {}", names.join(", ")));
            Error::input(format!("no template `{name}`"), Some(&hint))
        })?;
    let dir = args.dir.unwrap_or_else(|| name.clone().into());
    // Template files are stored without their leading dot (a `.gitignore` in the repository
    // would apply to the repository).
    let mut every = Vec::new();
    files_of(template, &mut every);
    let files: Vec<(String, &[u8])> = every
        .into_iter()
        .map(|f| {
            let rel = f.path().strip_prefix(template.path()).unwrap_or(f.path());
            let rel = rel.to_string_lossy().to_string();
            let rel = if rel == "gitignore" {
                ".gitignore".to_string()
            } else {
                rel
            };
            (rel, f.contents())
        })
        .collect();
    let schema = super::config::schema_json();
    let mut all: Vec<(String, &[u8])> = files;
    all.push(("stack.schema.json".into(), schema.as_bytes()));
    if !args.force {
        let existing: Vec<&str> = all
            .iter()
            .filter(|(rel, _)| dir.join(rel).exists())
            .map(|(rel, _)| rel.as_str())
            .collect();
        if !existing.is_empty() {
            return Err(Error::input(
                format!("{} already has {}", dir.display(), existing.join(", ")),
                Some("choose another folder, or pass `--force` to overwrite them"),
            ));
        }
    }
    for (rel, contents) in &all {
        write(&dir.join(rel), contents)?;
    }
    if !quiet {
        errln!(console, "created {} from `{name}`:", dir.display());
        for (rel, _) in &all {
            errln!(console, "  {rel}");
        }
        errln!(console, "next: cd {} && stack up", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Every file of `dir`, its subfolders' too.
fn files_of<'a>(dir: &'a include_dir::Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    out.extend(dir.files());
    for sub in dir.dirs() {
        files_of(sub, out);
    }
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            action: "cannot create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, contents).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "py") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    }
    Ok(())
}
