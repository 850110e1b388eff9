//! The dependency graph: cycles, start order, and who depends on whom.

use std::collections::{HashMap, HashSet};

use crate::config::Service;

/// Every dependency cycle, each as the names along it with the first repeated at the end
/// (`a → b → a`), each reported once.
pub fn cycles(services: &[Service]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; services.len()];
    let mut path: Vec<usize> = Vec::new();
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();

    fn visit(
        i: usize,
        services: &[Service],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<String>>,
        seen: &mut HashSet<Vec<String>>,
    ) {
        state[i] = 1;
        path.push(i);
        for dep in &services[i].depends_on {
            let Some(&j) = index.get(dep.service.as_str()) else {
                continue;
            };
            match state[j] {
                0 => visit(j, services, index, state, path, found, seen),
                1 => {
                    let start = path.iter().position(|&k| k == j).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|&k| services[k].name.clone())
                        .collect();
                    // The same cycle found from another entry point is reported once.
                    let mut key = cycle.clone();
                    key.sort();
                    if seen.insert(key) {
                        cycle.push(services[j].name.clone());
                        found.push(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state[i] = 2;
    }

    for i in 0..services.len() {
        if state[i] == 0 {
            visit(
                i, services, &index, &mut state, &mut path, &mut found, &mut seen,
            );
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
