//! Port assignment: fixed ports are checked free before anything starts (naming the
//! holder when not), `auto` ports get a free port on 127.0.0.1 (the one remembered from
//! the last run when it is still free, so URLs stay stable).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use super::resolve::{PortTable, ResolvedPort};
use crate::config::{RuntimeKind, Service};
use crate::procfs::{self, Holder};

/// A fixed port that is already taken.
#[derive(Debug, Clone)]
pub(crate) struct PortInUse {
    /// The service that wants it.
    pub service: String,
    /// The port's name.
    pub name: String,
    /// The number.
    pub port: u16,
    /// Who holds it, when known.
    pub holder: Option<Holder>,
}

impl std::fmt::Display for PortInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = if self.name == "main" {
            format!("port {}", self.port)
        } else {
            format!("port {} (`{}`)", self.port, self.name)
        };
        write!(f, "{which} of `{}` is already in use", self.service)?;
        match &self.holder {
            Some(h) => write!(f, " by {h} on {}", h.addr),
            None => Ok(()),
        }
    }
}

pub(crate) use crate::state::Remembered;

/// The host ports of `table`, as `ports.json` remembers them.
pub(crate) fn remembered(table: &PortTable) -> Remembered {
    table
        .iter()
        .flat_map(|(svc, list)| list.iter().map(|p| ((svc.clone(), p.name.clone()), p.host)))
        .collect()
}

/// Assigns a host port to every declared port of `services`. Fails with every fixed port
/// that is taken. `running` are the ports the running stack's services hold (reconcile):
/// each keeps its own.
pub(crate) fn assign(
    services: &[&Service],
    remembered: &Remembered,
    running: &Remembered,
) -> Result<PortTable, Vec<PortInUse>> {
    let fixed: HashSet<u16> = services
        .iter()
        .flat_map(|s| s.ports.iter().filter_map(|p| p.host))
        .collect();
    let mut taken = Vec::new();
    for s in services {
        for p in &s.ports {
            let Some(port) = p.host else { continue };
            let own = running.get(&(s.name.clone(), p.name.clone())) == Some(&port);
            if !own && bind(port).is_none() {
                taken.push(PortInUse {
                    service: s.name.clone(),
                    name: p.name.clone(),
                    port,
                    holder: procfs::port_holder(port),
                });
            }
        }
    }
    if !taken.is_empty() {
        return Err(taken);
    }
    // Hold every auto port until all are chosen, so no two services get the same one.
    let mut held: Vec<TcpListener> = Vec::new();
    let mut table = PortTable::new();
    for s in services {
        let mut ports = Vec::new();
        for p in &s.ports {
            let host = match p.host {
                Some(port) => port,
                None if let Some(&port) = running.get(&(s.name.clone(), p.name.clone())) => port,
                None => {
                    let key = (s.name.clone(), p.name.clone());
                    let again = remembered
                        .get(&key)
                        .filter(|port| !fixed.contains(port))
                        .and_then(|&port| bind(port));
                    let listener = match again {
                        Some(l) => Some(l),
                        None => free(&fixed),
                    };
                    match listener {
                        Some(l) => {
                            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                            held.push(l);
                            port
                        }
                        None => 0,
                    }
                }
            };
            let container = match (s.runtime, p.container) {
                (RuntimeKind::Container, Some(c)) => c,
                _ => host,
            };
            ports.push(ResolvedPort {
                name: p.name.clone(),
                host,
                container,
            });
        }
        table.insert(s.name.clone(), ports);
    }
    drop(held);
    Ok(table)
}

/// A free loopback port: `remembered` when it is free, else one the OS picks (0 if none).
pub(crate) fn pick(remembered: Option<u16>) -> u16 {
    remembered
        .and_then(bind)
        .or_else(|| free(&HashSet::new()))
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |a| a.port())
}

fn bind(port: u16) -> Option<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).ok()
}

/// A listener on a free port the OS picked, avoiding the stack's fixed ports.
fn free(avoid: &HashSet<u16>) -> Option<TcpListener> {
    (0..16).find_map(|_| {
        let l = bind(0)?;
        let port = l.local_addr().ok()?.port();
        (!avoid.contains(&port)).then_some(l)
    })
}
