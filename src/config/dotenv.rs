//! `env_file`: `KEY=VALUE` lines, `#` comments, optional `export ` and quotes.

use std::path::Path;

/// Reads a dotenv file; the error says which line is wrong and why.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read env file `{}`: {e}", path.display()))?;
    parse(&text).map_err(|(line, msg)| format!("`{}` line {line}: {msg}", path.display()))
}

/// Parses dotenv text; errors carry the 1-based line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err((i + 1, format!("`{line}` is not KEY=VALUE")));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((i + 1, format!("`{key}` is not a variable name")));
        }
        vars.push((key.to_string(), unquote(value.trim())));
    }
    Ok(vars)
}

fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        return v[1..v.len() - 1]
            .replace("\\n", "\n")
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
    }
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return v[1..v.len() - 1].to_string();
    }
    // An unquoted value ends at ` #` (an inline comment).
    match v.find(" #") {
        Some(i) => v[..i].trim_end().to_string(),
        None => v.to_string(),
    }
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
}
