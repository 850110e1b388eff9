//! The code reads like its diagram (ARCHITECTURE.md): no import cycle between the
//! top-level modules of `src/`, only `runtime/docker*` names bollard, and the supervisor
//! names no concrete runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under `dir`, with its path relative to `src/`.
fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(base)
                .expect("under src")
                .display()
                .to_string();
            out.push((rel, std::fs::read_to_string(&path).expect("read")));
        }
    }
}

/// The top-level module a file belongs to (`plan/ports.rs` → `plan`, `error.rs` → `error`).
fn top(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap_or(rel)
        .trim_end_matches(".rs")
        .to_string()
}

/// Which top-level modules each top-level module names through `crate::…`.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let from = top(rel);
        if from == "lib" || from == "main" {
            continue;
        }
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                deps.entry(from.clone()).or_default().insert(name);
            }
        }
        deps.entry(from).or_default();
    }
    deps
}

/// A cycle through `start`, if there is one (as the path `a → b → a`).
fn cycle_from(deps: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in deps.get(&node).into_iter().flatten() {
            if next == start {
                let mut p = path.clone();
                p.push(next.clone());
                return Some(p);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let deps = edges();
    assert!(
        deps.contains_key("supervisor") && deps.contains_key("config"),
        "{deps:?}"
    );
    let cycles: Vec<String> = deps
        .keys()
        .filter_map(|m| cycle_from(&deps, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
    // The pure layers stay below the ones that act.
    for (low, high) in [
        ("config", "plan"),
        ("config", "services"),
        ("plan", "supervisor"),
        ("runtime", "supervisor"),
        ("events", "supervisor"),
        ("events", "ui"),
    ] {
        assert!(
            !deps[low].contains(high),
            "`{low}` must not import `{high}`"
        );
    }
}

#[test]
fn only_the_docker_runtime_names_bollard() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let outside: Vec<&String> = files
        .iter()
        .filter(|(rel, text)| text.contains("bollard") && !rel.starts_with("runtime/docker"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        outside.is_empty(),
        "bollard named outside runtime/docker*: {outside:?}"
    );
}

#[test]
fn the_supervisor_reaches_services_only_through_the_runtime_traits() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let concrete = [
        "runtime::docker",
        "runtime::process",
        "runtime::container",
        "runtime::local",
        "runtime::unix",
        "runtime::health",
    ];
    let naming: Vec<String> = files
        .iter()
        .filter(|(rel, _)| rel.starts_with("supervisor/"))
        .flat_map(|(rel, text)| {
            concrete
                .iter()
                .filter(|c| text.contains(*c))
                .map(move |c| format!("{rel} names {c}"))
        })
        .collect();
    assert!(naming.is_empty(), "{naming:?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("a".into()).or_default().insert("b".into());
    deps.entry("b".into()).or_default().insert("a".into());
    assert_eq!(
        cycle_from(&deps, "a"),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
