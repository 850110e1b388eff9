//! A short string that a regular expression matches, for JSON Schema `pattern`s: the
//! expression's syntax tree walked once, taking the first branch of every alternation,
//! the fewest repetitions allowed and a readable member of every class.

use std::convert::Infallible;

use regex_syntax::hir::{Class, Hir, HirKind};

use super::memo::Bounded;

/// Samples already made, by pattern: a schema's patterns are the same request after
/// request, and compiling the check costs more than the rest of a document.
#[derive(Debug)]
pub(crate) struct Samples(Bounded<String, Result<String, String>>);

impl Default for Samples {
    fn default() -> Self {
        Samples(Bounded::new(1024))
    }
}

impl Samples {
    /// [`sample`] of `pattern`, remembered (a refusal too).
    pub(crate) fn get(&self, pattern: &str) -> Result<String, String> {
        let made = self
            .0
            .get_or_make(pattern.to_string(), || Ok::<_, Infallible>(sample(pattern)));
        match made {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }
}

/// A string `pattern` matches (checked), or why none could be made.
pub(crate) fn sample(pattern: &str) -> Result<String, String> {
    let hir =
        regex_syntax::parse(pattern).map_err(|e| format!("invalid `pattern` {pattern:?}: {e}"))?;
    let mut out = String::new();
    write(&hir, &mut out)?;
    let re =
        regex::Regex::new(pattern).map_err(|e| format!("invalid `pattern` {pattern:?}: {e}"))?;
    if re.is_match(&out) {
        Ok(out)
    } else {
        Err(format!(
            "cannot make a string that matches `pattern` {pattern:?}"
        ))
    }
}

fn write(hir: &Hir, out: &mut String) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
        HirKind::Class(class) => out.push(pick(class).ok_or("a character class matches nothing")?),
        HirKind::Repetition(rep) => {
            // At least one, so `\w*` still gives something to read; never past `max`.
            let n = rep
                .min
                .max(u32::from(rep.max != Some(0)))
                .min(rep.max.unwrap_or(u32::MAX));
            for _ in 0..n {
                write(&rep.sub, out)?;
            }
        }
        HirKind::Capture(cap) => write(&cap.sub, out)?,
        HirKind::Concat(parts) => {
            for p in parts {
                write(p, out)?;
            }
        }
        HirKind::Alternation(branches) => {
            if let Some(first) = branches.first() {
                write(first, out)?;
            }
        }
    }
    Ok(())
}

/// A member of `class`, preferring a lower-case letter, then a digit, then the first.
fn pick(class: &Class) -> Option<char> {
    match class {
        Class::Unicode(c) => {
            let ranges = c.ranges();
            let within = |want: char| ranges.iter().any(|r| r.start() <= want && want <= r.end());
            ['a', 'x', '0', 'A']
                .into_iter()
                .find(|c| within(*c))
                .or_else(|| ranges.first().map(|r| r.start()))
        }
        Class::Bytes(c) => {
            let ranges = c.ranges();
            let within = |want: u8| ranges.iter().any(|r| r.start() <= want && want <= r.end());
            [b'a', b'x', b'0', b'A']
                .into_iter()
                .find(|b| within(*b))
                .or_else(|| {
                    ranges
                        .iter()
                        .find(|r| r.start().is_ascii())
                        .map(|r| r.start())
                })
                .map(char::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_match_their_patterns() {
        for p in [
            r"^[A-Z]{3}-\d{4}$",
            r"^\+?[1-9]\d{1,14}$",
            r"^(foo|bar)+baz?$",
            r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
            r"^#[0-9a-fA-F]{6}$",
            r"\w*",
            r"^v\d+\.\d+\.\d+(-[a-z]+)?$",
        ] {
            let s = sample(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert!(
                regex::Regex::new(p).expect("regex").is_match(&s),
                "{p}: {s}"
            );
        }
        assert!(sample("(").is_err());
    }
}
