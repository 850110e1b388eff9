//! `env_file`: `KEY=VALUE` lines, `#` comments, optional `export `, quotes, escapes and
//! values over several lines, read by `dotenvy`.

use std::path::Path;

/// Reads a dotenv file; the error says which line is wrong and why.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read env file `{}`: {e}", path.display()))?;
    parse(&text).map_err(|(line, msg)| format!("`{}` line {line}: {msg}", path.display()))
}

/// Parses dotenv text with `dotenvy` (the syntax compose and Node accept: `export`,
/// quotes, escapes in double quotes, values over several lines, inline comments); errors
/// carry the 1-based line.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line, at)) => {
                return Err((line_of(text, &line), describe(&line, at)));
            }
            Err(e) => return Err((1, e.to_string())),
        }
    }
    Ok(vars)
}

/// The 1-based line where `logical` (a line as dotenvy read it, maybe several joined)
/// starts in `text`.
fn line_of(text: &str, logical: &str) -> usize {
    let first = logical.lines().next().unwrap_or(logical).trim();
    text.lines()
        .position(|l| !first.is_empty() && l.contains(first))
        .map_or(1, |i| i + 1)
}

/// What is wrong with `line`, whose parsing stopped at character `at`.
fn describe(line: &str, at: usize) -> String {
    let line = line.trim_end();
    if line.starts_with(['"', '\'']) {
        // dotenvy names the value alone when an escape in it is wrong.
        return format!(
            "cannot read the value {line} (at character {}): in double quotes the escapes are \\n \\\\ \\\" \\' \\$",
            at + 1
        );
    }
    if !line.contains('=') {
        return format!("`{line}` is not KEY=VALUE");
    }
    let key = line
        .trim_start()
        .strip_prefix("export ")
        .unwrap_or(line)
        .split('=')
        .next()
        .unwrap_or_default()
        .trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return format!("`{key}` is not a variable name");
    }
    format!("cannot read `{line}` (at character {})", at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let vars = parse("# c\nA=1\nexport B = two \nC=\"x y\"\nD='$raw'\nE=v # note\n\n")
            .expect("parses");
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "x y".into()),
                ("D".into(), "$raw".into()),
                ("E".into(), "v".into()),
            ]
        );
        assert_eq!(parse("ok=1\nbad line\n").expect_err("bad").0, 2);
    }

    #[test]
    fn multi_line_values_and_escapes() {
        let vars =
            parse("KEY=\"-----BEGIN\nline two\n-----END\"\nESC=\"a\\nb \\\"q\\\" \\$x\"\nNEXT=1\n")
                .expect("parses");
        assert_eq!(
            vars[0],
            ("KEY".into(), "-----BEGIN\nline two\n-----END".into())
        );
        assert_eq!(vars[1].1, "a\nb \"q\" $x");
        let (line, message) = parse("A=1\nB=\"tab\\there\"\n").expect_err("unknown escape");
        assert_eq!(line, 2, "{message}");
        assert!(message.contains("escapes"), "{message}");
        assert_eq!(vars[2], ("NEXT".into(), "1".into()));
        let (line, message) = parse("A=1\nB=2\nC D=3\n").expect_err("bad name");
        assert_eq!(line, 3, "{message}");
    }
}
