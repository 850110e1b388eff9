//! What Linux's `/proc` tells about sockets and processes: who holds a port (as lsof does:
//! `/proc/net/tcp{,6}` inodes matched against `/proc/*/fd`), process start times (so a
//! reused pid is never mistaken for ours), and whether a process group still has members.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The address it is bound to (`0.0.0.0`, `127.0.0.1`, `::`…).
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// The socket's inode.
    pub inode: u64,
}

/// A process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// Its pid, when it could be found (another user's process may be hidden).
    pub pid: Option<u32>,
    /// Its command line.
    pub command: Option<String>,
    /// The address the socket is bound to.
    pub addr: IpAddr,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, &self.command) {
            (Some(pid), Some(cmd)) => write!(f, "pid {pid} (`{cmd}`)"),
            (Some(pid), None) => write!(f, "pid {pid}"),
            _ => f.write_str("a process this user cannot see"),
        }
    }
}

/// Every listening TCP socket on `port` (IPv4 and IPv6).
pub(crate) fn listeners(port: u16) -> Vec<Listener> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        out.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| parse_line(l, v6))
                .filter(|l| l.port == port),
        );
    }
    out
}

/// One line of `/proc/net/tcp{,6}` if it is a listening socket.
fn parse_line(line: &str, v6: bool) -> Option<Listener> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
    if cols.len() < 10 || cols[3] != "0A" {
        return None;
    }
    let (addr_hex, port_hex) = cols[1].split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let addr = if v6 {
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(addr_hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        let word = u32::from_str_radix(addr_hex, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(word.to_le_bytes()))
    };
    let inode = cols[9].parse().ok()?;
    Some(Listener { addr, port, inode })
}

/// Who listens on `port`, if anyone.
pub(crate) fn port_holder(port: u16) -> Option<Holder> {
    let listeners = listeners(port);
    let first = listeners.first()?;
    for l in &listeners {
        if let Some(pid) = pid_of_inode(l.inode) {
            return Some(Holder {
                pid: Some(pid),
                command: command_line(pid),
                addr: l.addr,
            });
        }
    }
    Some(Holder {
        pid: None,
        command: None,
        addr: first.addr,
    })
}

/// The process with a file descriptor on socket `inode`.
pub(crate) fn pid_of_inode(inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// A process's command line, arguments joined by spaces.
pub(crate) fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Fields of `/proc/<pid>/stat` after the command name: state is index 0.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// The process's start time in clock ticks since boot (field 22 of `stat`): with the pid,
/// it identifies a process across pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is alive (not a zombie) and, when `started` is given, is the process that
/// started then.
pub(crate) fn is_alive(pid: u32, started: Option<u64>) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    if fields.first().is_some_and(|s| s == "Z" || s == "X") {
        return false;
    }
    match started {
        Some(t) => fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(t),
        None => true,
    }
}

/// Live (non-zombie) members of process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|f| {
                f.first().is_some_and(|s| s != "Z" && s != "X")
                    && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// Live processes whose environment holds `key=value` (only those this user may read).
pub(crate) fn with_env(key: &str, value: &std::ffi::OsStr) -> Vec<u32> {
    use std::os::unix::ffi::OsStrExt;
    let mut needle = key.as_bytes().to_vec();
    needle.push(b'=');
    needle.extend_from_slice(value.as_bytes());
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_slice()))
                && is_alive(pid, None)
        })
        .collect()
}

/// The process group of `pid`.
pub(crate) fn pgid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// The resident set size of `pid`, in bytes (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_lines() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v4, false).expect("listener");
        assert_eq!(l.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((l.port, l.inode), (8080, 12345));
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v6, true).expect("listener");
        assert_eq!(l.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        let established = v4.replace(" 0A ", " 01 ");
        assert!(parse_line(&established, false).is_none());
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let h = port_holder(port).expect("holder");
        assert_eq!(h.pid, Some(std::process::id()));
        assert!(start_time(std::process::id()).is_some());
        assert!(is_alive(std::process::id(), start_time(std::process::id())));
    }
}
