//! What a running stack leaves in `.stack/` so any shell can find it: `state.json`
//! (supervisor and service pids with their start times, container ids, resolved ports),
//! `ports.json` (auto ports to reuse next time), the lock that keeps two `up`s of one
//! project apart, and the control socket's path.
//!
//! The default project keeps its state in `.stack/` beside the stack file; another project
//! name (`-p`) gets `.stack/projects/<name>/`, so copies of one stack file run side by side.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::config::RuntimeKind;

/// The folders and files of one project's state.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    /// The folder itself.
    pub dir: PathBuf,
}

impl StateDir {
    /// The state folder of `project` for a stack file in `stack_dir` whose own project name
    /// is `default_project`.
    pub(crate) fn new(stack_dir: &Path, project: &str, default_project: &str) -> StateDir {
        let base = stack_dir.join(".stack");
        let dir = if project == default_project {
            base
        } else {
            base.join("projects").join(project)
        };
        StateDir { dir }
    }

    /// `state.json`.
    pub(crate) fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `ports.json`: ports of the last run, kept across `down`.
    pub(crate) fn ports_file(&self) -> PathBuf {
        self.dir.join("ports.json")
    }

    /// The lock file.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// `logs/`.
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// `run/`: generated files (built-in configs, the plan).
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `data/`: the services' data, deleted by `down -v`.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The supervisor's own log (detached mode).
    pub(crate) fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }

    /// The control socket. Unix socket paths are limited to ~108 bytes: a deep project
    /// folder gets a short path under the runtime folder instead, named by a hash.
    pub(crate) fn socket(&self) -> PathBuf {
        let p = self.dir.join("supervisor.sock");
        if p.as_os_str().len() < 100 {
            return p;
        }
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        base.join(format!(
            "stack-{:016x}.sock",
            fnv(self.dir.as_os_str().as_encoded_bytes())
        ))
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    /// The project name.
    pub project: String,
    /// The stack file.
    pub file: PathBuf,
    /// The supervisor.
    pub supervisor: ProcessId,
    /// When the stack was started.
    pub started_at: Timestamp,
    /// Services by name.
    pub services: BTreeMap<String, ServiceState>,
}

/// A pid with its start time (clock ticks since boot), so a reused pid is never mistaken
/// for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Its start time, when known.
    pub start_time: Option<u64>,
}

impl ProcessId {
    /// This process.
    pub(crate) fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            pid,
            start_time: crate::procfs::start_time(pid),
        }
    }

    /// Whether this very process still runs.
    pub(crate) fn alive(&self) -> bool {
        crate::procfs::is_alive(self.pid, self.start_time)
    }
}

/// One service in `state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ServiceState {
    /// Process or container.
    pub runtime: Option<RuntimeKind>,
    /// Its process group leader, when running as a process.
    pub process: Option<ProcessId>,
    /// Its container, when running as a container.
    pub container_id: Option<String>,
    /// Resolved ports: name → (host, container).
    pub ports: BTreeMap<String, (u16, u16)>,
}

impl State {
    /// Reads `state.json`, if there is one.
    pub(crate) fn read(dir: &StateDir) -> Option<State> {
        let text = std::fs::read_to_string(dir.state_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes `state.json` atomically.
    pub(crate) fn write(&self, dir: &StateDir) -> io::Result<()> {
        write_json(&dir.state_file(), self)
    }
}

/// Writes `value` as JSON to `path` (under `.stack/`, mode 0600: a plan holds every
/// interpolated variable) through a temporary file and a rename.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        private_dir(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, path)
}

// ---- private files ---------------------------------------------------------------------
//
// What a stack keeps under `.stack/` holds its secrets (the plan's interpolated `env:`, a
// built-in's keys, the context store, logs that print tokens): folders are 0700 and files
// 0600 whatever the umask, and an older, looser folder is tightened when it is next used.

/// Creates `dir` (and any missing parent) mode 0700, or tightens it to 0700.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Opens `path` for writing, only its owner able to read it, an existing file included;
/// truncated, or appended to with `append`.
pub(crate) fn open_private(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!append)
        .append(append)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    open_private(path, false)?.write_all(bytes)
}

/// Refuses a project whose state another user owns, instead of reading it as "no stack":
/// `down` by a user who cannot act must say so, not answer "is down".
pub(crate) fn check_access(dir: &StateDir) -> Result<(), AccessDenied> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(&dir.dir) else {
        return Ok(());
    };
    let denied =
        |r: io::Result<()>| matches!(r, Err(e) if e.kind() == io::ErrorKind::PermissionDenied);
    if denied(std::fs::read_dir(&dir.dir).map(drop))
        || denied(File::open(dir.state_file()).map(drop))
    {
        return Err(AccessDenied {
            dir: dir.dir.clone(),
            owner: meta.uid(),
        });
    }
    Ok(())
}

/// A project's state folder this user may not read.
#[derive(Debug)]
pub(crate) struct AccessDenied {
    /// The folder.
    pub dir: PathBuf,
    /// Its owner's uid.
    pub owner: u32,
}

/// Ports remembered from the last run (`ports.json`): (service, port name) → host port.
pub(crate) type Remembered = HashMap<(String, String), u16>;

/// Ports of the last run, to reuse when still free.
pub(crate) fn read_ports(dir: &StateDir) -> Remembered {
    let Ok(text) = std::fs::read_to_string(dir.ports_file()) else {
        return Remembered::new();
    };
    let map: BTreeMap<String, BTreeMap<String, u16>> =
        serde_json::from_str(&text).unwrap_or_default();
    map.into_iter()
        .flat_map(|(svc, ports)| {
            ports
                .into_iter()
                .map(move |(name, p)| ((svc.clone(), name), p))
        })
        .collect()
}

/// Records the ports of this run (merged with what was there, so services not started
/// this time keep theirs).
pub(crate) fn write_ports(dir: &StateDir, ports: &Remembered) -> io::Result<()> {
    let mut map: BTreeMap<String, BTreeMap<String, u16>> =
        std::fs::read_to_string(dir.ports_file())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    for (svc, _) in ports.keys() {
        map.remove(svc);
    }
    for ((svc, name), port) in ports {
        map.entry(svc.clone())
            .or_default()
            .insert(name.clone(), *port);
    }
    write_json(&dir.ports_file(), &map)
}

/// The exclusive lock of a running project, held for the supervisor's life.
#[derive(Debug)]
pub(crate) struct ProjectLock {
    _lock: Flock<File>,
}

/// Takes the project's lock without waiting; `None` when another supervisor holds it.
pub(crate) fn try_lock(dir: &StateDir) -> io::Result<Option<ProjectLock>> {
    private_dir(&dir.dir)?;
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.lock_file())?
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(ProjectLock { _lock: lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// Whether a supervisor holds the project's lock right now.
pub(crate) fn is_locked(dir: &StateDir) -> bool {
    matches!(try_lock(dir), Ok(None))
}
