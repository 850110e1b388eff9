//! The dependency graph: start order, and who depends on whom (cycles were refused by
//! `config::cycles`).

use std::collections::HashSet;

use crate::config::Service;

/// The services in an order where each comes after its dependencies (file order among
/// equals). Assumes no cycles.
pub(crate) fn start_order<'a>(services: &[&'a Service]) -> Vec<&'a Service> {
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
