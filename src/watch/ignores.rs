//! What a watcher ignores: a rule's own patterns, the project's `.gitignore` and
//! `.stackignore` files (read once per folder, again when they change), and what is never
//! a source change (editors' temporary and backup files, `.git/`, `.stack/`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// A rule's `ignore:` patterns (`.gitignore` syntax, relative to its root).
#[derive(Debug)]
pub(crate) struct Ignores(Option<Gitignore>);

impl Ignores {
    /// The matcher of `patterns` rooted at `root`; invalid patterns (refused by validation
    /// already) are skipped.
    pub(crate) fn new(root: &Path, patterns: &[String]) -> Ignores {
        if patterns.is_empty() {
            return Ignores(None);
        }
        let mut b = GitignoreBuilder::new(root);
        for p in patterns {
            let _ = b.add_line(None, p);
        }
        Ignores(b.build().ok())
    }

    /// Whether `path` (or a folder it is in) is ignored.
    pub(crate) fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.0.as_ref().is_some_and(|g| {
            path.starts_with(g.path()) && g.matched_path_or_any_parents(path, is_dir).is_ignore()
        })
    }
}

/// Files no save of a source is made of: editors' swap, backup and temporary files
/// (vim's `.swp`, `~` and `4913`, JetBrains' `___jb_tmp___`, emacs' `.#` locks), and
/// what lives in `.git/` and `.stack/`.
pub(crate) fn is_noise(path: &Path) -> bool {
    if path
        .components()
        .any(|c| matches!(c.as_os_str().to_str(), Some(".git" | ".stack")))
    {
        return true;
    }
    let Some(name) = path.file_name().and_then(OsStr::to_str) else {
        return false;
    };
    name.ends_with('~')
        || name == "4913"
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name == ".DS_Store"
}

/// The `.gitignore` and `.stackignore` of each folder seen, read on first need.
#[derive(Debug, Default)]
pub(crate) struct ProjectIgnores {
    folders: HashMap<PathBuf, Option<Arc<Gitignore>>>,
}

impl ProjectIgnores {
    /// Forgets a folder's ignore files when one of them is what changed.
    pub(crate) fn changed(&mut self, path: &Path) {
        let name = path.file_name().and_then(OsStr::to_str);
        if matches!(name, Some(".gitignore" | ".stackignore"))
            && let Some(dir) = path.parent()
        {
            self.folders.remove(dir);
        }
    }

    /// Whether the ignore files of the folders from `project` (or `root`, when outside
    /// it) down to `path`'s own folder ignore `path`; a deeper file overrides a shallower
    /// one, as in git.
    pub(crate) fn ignored(
        &mut self,
        project: &Path,
        root: &Path,
        path: &Path,
        is_dir: bool,
    ) -> bool {
        let top = if root.starts_with(project) {
            project
        } else {
            root
        };
        let mut verdict = Match::None;
        let mut dir = top.to_path_buf();
        let rel = path.strip_prefix(top).unwrap_or(path);
        let mut parts = rel.components().peekable();
        loop {
            if let Some(g) = self.of(&dir) {
                match g.matched_path_or_any_parents(path, is_dir) {
                    Match::None => {}
                    m => verdict = m.map(|_| ()),
                }
            }
            match parts.next() {
                // The last part is the path itself, not a folder.
                Some(c) if parts.peek().is_some() => dir.push(c),
                _ => break,
            }
        }
        verdict.is_ignore()
    }

    fn of(&mut self, dir: &Path) -> Option<Arc<Gitignore>> {
        self.folders
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                let mut b = GitignoreBuilder::new(dir);
                let mut any = false;
                for name in [".gitignore", ".stackignore"] {
                    let file = dir.join(name);
                    if file.is_file() {
                        any = true;
                        if let Some(err) = b.add(&file) {
                            tracing::warn!(%err, file = %file.display(), "ignore file");
                        }
                    }
                }
                any.then(|| b.build().ok().map(Arc::new)).flatten()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_files_and_state_are_noise() {
        for p in [
            "/p/src/.app.py.swp",
            "/p/src/app.py~",
            "/p/src/4913",
            "/p/src/app.py___jb_tmp___",
            "/p/src/.#app.py",
            "/p/.git/index",
            "/p/.stack/logs/api.log",
        ] {
            assert!(is_noise(Path::new(p)), "{p}");
        }
        assert!(!is_noise(Path::new("/p/src/app.py")));
    }

    #[test]
    fn ignore_files_apply_below_their_folder_and_deeper_ones_win() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/keep")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join(".gitignore"), "*.log\nbuild/\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("src/keep/.stackignore"), "!*.log\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut ig = ProjectIgnores::default();
        let check = |ig: &mut ProjectIgnores, p: &str| ig.ignored(root, root, &root.join(p), false);
        assert!(check(&mut ig, "src/a.log"));
        assert!(check(&mut ig, "build/out.js"));
        assert!(!check(&mut ig, "src/app.py"));
        assert!(!check(&mut ig, "src/keep/b.log"));
    }
}
