//! A service's `watch:` rules: where they look, what they ignore, and whether their
//! action fits the service (`sync` and `rebuild` need a container; `rebuild` a `build:`).

use std::path::{Component, Path, PathBuf};

use super::Cx;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::source::FieldPath;

/// The rules of one service, each checked at its index.
pub(super) fn watch(
    cx: &mut Cx,
    dir: &Path,
    path: &FieldPath,
    runtime: RuntimeKind,
    kind: &ServiceKind,
    raw: &RawService,
) -> Vec<WatchRule> {
    let Some(rules) = &raw.watch else {
        return Vec::new();
    };
    let builds = matches!(
        kind,
        ServiceKind::Command {
            image: Some(Image::Build { .. }),
            ..
        } | ServiceKind::Image {
            image: Image::Build { .. }
        }
    );
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| rule(cx, dir, &path.key("watch").index(i), runtime, builds, r))
        .collect()
}

fn rule(
    cx: &mut Cx,
    dir: &Path,
    at: &FieldPath,
    runtime: RuntimeKind,
    builds: bool,
    r: &RawWatch,
) -> Option<WatchRule> {
    let before = cx.error_count();
    let (root, glob) = split_glob(&r.path);
    let root = dir.join(root);
    if r.path.trim().is_empty() {
        cx.error(at.key("path"), "`path` is empty").hint =
            Some("name a folder, file or glob relative to the stack file, e.g. `./src`".into());
    } else if !root.exists() {
        cx.error(
            at.key("path"),
            format!("`{}` does not exist (in {})", r.path, dir.display()),
        )
        .hint = Some("create it, or fix the path (relative to the stack file)".into());
    }
    if let Some(g) = &glob
        && let Err(e) = globset::Glob::new(g)
    {
        cx.error(
            at.key("path"),
            format!("`{}` is not a valid glob: {e}", r.path),
        );
    }
    for (j, pattern) in r.ignore.iter().enumerate() {
        let mut b = ignore::gitignore::GitignoreBuilder::new(&root);
        if let Err(e) = b.add_line(None, pattern) {
            cx.error(
                at.key("ignore").index(j),
                format!("`{pattern}` is not a valid pattern: {e}"),
            )
            .hint = Some("write `.gitignore` syntax, e.g. `**/__pycache__/**`".into());
        }
    }
    let action = r.action;
    let container = runtime == RuntimeKind::Container;
    if action != WatchAction::Restart && !container {
        cx.error(
            at.key("action"),
            format!(
                "`{}` needs a container; this service runs as a process",
                action.as_str()
            ),
        )
        .hint = Some("use `action: restart` for a process (it reads the files in place)".into());
    }
    if action == WatchAction::Rebuild && container && !builds {
        cx.error(
            at.key("action"),
            "`rebuild` rebuilds the service's image, and this service has no `build:`",
        )
        .hint = Some("give the service `build: ./folder`, or use `restart` or `sync`".into());
    }
    match (&r.target, action.syncs()) {
        (None, true) => {
            cx.error(
                at.clone(),
                format!(
                    "`{}` needs `target`: the folder in the container",
                    action.as_str()
                ),
            )
            .hint = Some("e.g. `target: /app`".into());
        }
        (Some(t), true) if !t.starts_with('/') => {
            cx.error(
                at.key("target"),
                format!("`{t}` is not an absolute path in the container"),
            )
            .hint = Some(format!("write `/{}`", t.trim_start_matches("./")));
        }
        (Some(_), false) => {
            cx.error(
                at.key("target"),
                "`target` is only used by `sync` and `sync+restart`",
            );
        }
        _ => {}
    }
    (cx.error_count() == before).then(|| WatchRule {
        root: normalize(&root),
        glob,
        ignore: r.ignore.clone(),
        action,
        target: r.target.clone(),
        cascade: r.cascade,
    })
}

/// `src/**/*.py` → (`src`, `**/*.py`); a path without glob characters has no glob.
fn split_glob(path: &str) -> (PathBuf, Option<String>) {
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    let mut root = PathBuf::new();
    let mut parts = path.split('/');
    for part in parts.by_ref() {
        if is_glob(part) {
            let rest: Vec<&str> = std::iter::once(part).chain(parts).collect();
            return (root, Some(rest.join("/")));
        }
        root.push(part);
    }
    (root, None)
}

/// `a/./b/../c` → `a/c`, without touching the file system (the path may be a symlink).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_splits_at_its_first_wild_part() {
        assert_eq!(
            split_glob("./src/**/*.py"),
            (PathBuf::from("./src"), Some("**/*.py".into()))
        );
        assert_eq!(split_glob("api"), (PathBuf::from("api"), None));
        assert_eq!(
            split_glob("*.toml"),
            (PathBuf::new(), Some("*.toml".into()))
        );
    }
}
