//! The dependency graph: cycles, start order, and who depends on whom.

use std::collections::{HashMap, HashSet};

use crate::config::Service;

/// Every dependency cycle among `nodes` (name and the names it depends on), each as the
/// names along it with the first repeated at the end (`a → b → a`), each reported once.
pub fn cycles(nodes: &[(&str, Vec<&str>)]) -> Vec<Vec<String>> {
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

/// The services in an order where each comes after its dependencies (file order among
/// equals). Assumes no cycles.
pub fn start_order<'a>(services: &[&'a Service]) -> Vec<&'a Service> {
    let mut done: HashSet<&str> = HashSet::new();
    let mut order = Vec::with_capacity(services.len());
    let names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    while order.len() < services.len() {
        let before = order.len();
        for s in services {
            if done.contains(s.name.as_str()) {
                continue;
            }
            let ready = s
                .depends_on
                .iter()
                .all(|d| done.contains(d.service.as_str()) || !names.contains(d.service.as_str()));
            if ready {
                done.insert(s.name.as_str());
                order.push(*s);
            }
        }
        if order.len() == before {
            // A cycle: validation rejects these, but never loop forever.
            order.extend(
                services
                    .iter()
                    .filter(|s| !done.contains(s.name.as_str()))
                    .copied(),
            );
            break;
        }
    }
    order
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
