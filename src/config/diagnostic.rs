//! Problems found in a stack file, each with its file, line, column, field path, message
//! and hint, rendered like a compiler diagnostic.

use std::fmt;
use std::path::{Path, PathBuf};

use super::source::{FieldPath, Location};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Nothing starts.
    Error,
    /// Worth saying; `up` goes on.
    Warning,
}

/// One problem in the stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The field (`services.gateway.port`); empty for the whole file.
    pub path: FieldPath,
    /// Where it is written.
    pub location: Option<Location>,
    /// What is wrong, as a lowercase fragment with names in backticks.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `path`.
    pub(crate) fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path,
            location: None,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `path`.
    pub(crate) fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, message)
        }
    }

    /// Adds a hint.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint when there is one.
    pub(crate) fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Sets the location.
    pub(crate) fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Renders this diagnostic against the file's text.
    pub(crate) fn render(&self, file: &Path, text: &str) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.path.0.is_empty() {
            out.push_str(&format!("{label}: {}\n", self.message));
        } else {
            out.push_str(&format!("{label}: `{}`: {}\n", self.path, self.message));
        }
        match self.location {
            Some(loc) => {
                out.push_str(&format!("  --> {}:{loc}\n", file.display()));
                if let Some(line) = text.lines().nth(loc.line.saturating_sub(1)) {
                    let n = loc.line.to_string();
                    let pad = " ".repeat(n.len());
                    let (line, column) = snippet(line, loc.column);
                    let caret_pad: String = line
                        .chars()
                        .take(column.saturating_sub(1))
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    out.push_str(&format!("{pad} |\n{n} | {line}\n{pad} | {caret_pad}^\n"));
                }
            }
            None => out.push_str(&format!("  --> {}\n", file.display())),
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  = hint: {hint}\n"));
        }
        out
    }
}

/// The widest snippet of a line shown under a diagnostic, in characters.
const SNIPPET_WIDTH: usize = 120;

/// At most [`SNIPPET_WIDTH`] characters of `line` around `column` (cuts marked `…`), and
/// the column within them.
fn snippet(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SNIPPET_WIDTH {
        return (line.to_string(), column);
    }
    let at = column.saturating_sub(1).min(chars.len());
    let start = at
        .saturating_sub(SNIPPET_WIDTH / 2)
        .min(chars.len() - SNIPPET_WIDTH);
    let end = start + SNIPPET_WIDTH;
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    (out, at - start + 1 + usize::from(start > 0))
}

/// How many diagnostics are shown; the rest are counted.
const MAX_SHOWN: usize = 50;

/// Every problem of one stack file.
#[derive(Debug, Clone)]
pub(crate) struct ConfigErrors {
    /// The stack file as the user named it.
    pub file: PathBuf,
    /// Its text, for the snippets.
    pub text: String,
    /// The problems, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// The number of errors (not warnings).
    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.diagnostics.iter().take(MAX_SHOWN) {
            writeln!(f, "{}", d.render(&self.file, &self.text))?;
        }
        if self.diagnostics.len() > MAX_SHOWN {
            writeln!(f, "… and {} more\n", self.diagnostics.len() - MAX_SHOWN)?;
        }
        let n = self.error_count();
        write!(
            f,
            "error: {} has {n} {}; nothing was started",
            self.file.display(),
            if n == 1 { "error" } else { "errors" }
        )
    }
}

impl std::error::Error for ConfigErrors {}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}
