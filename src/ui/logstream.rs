//! The merged log stream on stdout: follows every service's log file and prints new lines
//! with a stable coloured prefix. It reads the files at its own pace, so a slow terminal
//! delays only this display, never the services or their files.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Console, paint, service_style};
use crate::logs::{Follower, Line, Stream};

/// Prints every new line of the `followers` until `stop`, then prints what is left.
pub(crate) async fn run(
    console: Console,
    mut followers: Vec<Follower>,
    state_dir: Option<std::path::PathBuf>,
    notify: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut width = followers.iter().map(|f| f.service.len()).max().unwrap_or(0);
    // Logs already there of services not followed: an earlier run's, left alone unless
    // a service of that name starts again (a new file).
    let inode = |dir: &std::path::Path, name: &str| {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(crate::logs::path(dir, name)).ok()?)
            .into()
    };
    let stale: Vec<(String, Option<u64>)> = state_dir
        .as_deref()
        .map(|dir| {
            crate::logs::services_in(&dir.join("logs"))
                .into_iter()
                .filter(|n| !followers.iter().any(|f| &f.service == n))
                .map(|n| {
                    let ino = inode(dir, &n);
                    (n, ino)
                })
                .collect()
        })
        .unwrap_or_default();
    loop {
        let (stopping, tick) = tokio::select! {
            () = notify.notified() => (false, false),
            () = stop.cancelled() => (true, false),
            // Files written by others (a restarted run) are caught up regularly too.
            () = tokio::time::sleep(std::time::Duration::from_millis(250)) => (false, true),
        };
        // A service added to the running stack (reconcile) has a new log: follow it too.
        if tick && let Some(dir) = &state_dir {
            for name in crate::logs::services_in(&dir.join("logs")) {
                let old = stale
                    .iter()
                    .any(|(n, ino)| n == &name && *ino == inode(dir, &name));
                if !old && !followers.iter().any(|f| f.service == name) {
                    followers.push(Follower::new(&name, &crate::logs::path(dir, &name), 0));
                }
            }
        }
        // Drain until nothing is new, batching lines of all services in one write.
        loop {
            let mut text = String::new();
            for f in &mut followers {
                for line in f.read_new().into_iter().filter(|l| !l.is_start_note()) {
                    // A log that joins later (`_stack`, an added service) widens the
                    // names' column once it has something to say.
                    width = width.max(line.service.len());
                    text.push_str(&format_line(&console, &line, width));
                }
            }
            if text.is_empty() {
                break;
            }
            let c = console.clone();
            // Writing may block on a slow terminal: keep it off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || c.out(&text)).await;
        }
        if stopping {
            return;
        }
    }
}

/// `name | text`, the name padded and coloured.
pub(crate) fn format_line(console: &Console, line: &Line, width: usize) -> String {
    let color = console.out_color();
    let name = format!("{:<width$}", line.service);
    let prefix = paint(color, service_style(&line.service), &format!("{name} |"));
    match line.stream {
        Stream::Stack => format!(
            "{prefix} {}\n",
            paint(
                color,
                anstyle::Style::new().dimmed(),
                &format!("[stack] {}", line.text)
            )
        ),
        _ => format!("{prefix} {}\n", line.text),
    }
}
