//! Dependency cycles among named nodes: the stack file's `depends_on` checked before any plan.

use std::collections::{HashMap, HashSet};

/// Every dependency cycle among `nodes` (name and the names it depends on), each as the
/// names along it with the first repeated at the end (`a → b → a`), each reported once.
pub(crate) fn cycles(nodes: &[(&str, Vec<&str>)]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; nodes.len()];
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for root in 0..nodes.len() {
        if state[root] != 0 {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (i, ref mut edge)) = stack.last_mut() {
            let deps = &nodes[i].1;
            if *edge == deps.len() {
                state[i] = 2;
                stack.pop();
                continue;
            }
            let dep = deps[*edge];
            *edge += 1;
            let Some(&j) = index.get(dep) else { continue };
            match state[j] {
                0 => {
                    state[j] = 1;
                    stack.push((j, 0));
                }
                1 => {
                    let start = stack.iter().position(|(k, _)| *k == j).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..]
                        .iter()
                        .map(|(k, _)| nodes[*k].0.to_string())
                        .collect();
                    let mut key = cycle.clone();
                    key.sort();
                    if seen.insert(key) {
                        cycle.push(nodes[j].0.to_string());
                        found.push(cycle);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cycle_once() {
        let nodes = vec![
            ("a", vec!["b"]),
            ("b", vec!["a"]),
            ("c", vec!["c2"]),
            ("c2", vec!["c3"]),
            ("c3", vec!["c"]),
            ("d", vec!["a", "x"]),
        ];
        let c = cycles(&nodes);
        assert_eq!(c, vec![vec!["a", "b", "a"], vec!["c", "c2", "c3", "c"]]);
        assert!(cycles(&[("a", vec![]), ("b", vec!["a"])]).is_empty());
    }
}
