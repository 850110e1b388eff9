//! Everything `stack` writes to the terminal. Data (log lines, tables, JSON) goes to
//! stdout, messages and progress to stderr; colour only on a terminal and never with
//! `--no-color`/`NO_COLOR`; spinners (indicatif) only when stderr is a terminal.

mod log_observer;
pub(crate) mod logstream;
pub(crate) mod progress;
pub(crate) mod table;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anstyle::{AnsiColor, Style};
use indicatif::MultiProgress;

use crate::cli::GlobalArgs;

pub(crate) use log_observer::LogObserver;

/// `println!` through a [`Console`]: a line to stdout, above any spinners.
macro_rules! outln {
    ($console:expr, $($arg:tt)*) => {
        $console.out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through a [`Console`].
macro_rules! out {
    ($console:expr, $($arg:tt)*) => {
        $console.out(&format!($($arg)*))
    };
}

/// `eprintln!` through a [`Console`]: a line to stderr, above any spinners.
macro_rules! errln {
    ($console:expr, $($arg:tt)*) => {
        $console.err(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` through a [`Console`].
macro_rules! err {
    ($console:expr, $($arg:tt)*) => {
        $console.err(&format!($($arg)*))
    };
}

pub(crate) use {err, errln, out, outln};

/// The terminal, shared by the progress display and the log stream.
#[derive(Clone)]
pub(crate) struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    out_color: bool,
    err_color: bool,
    spinners: Option<MultiProgress>,
    quiet: bool,
}

impl Console {
    /// Detects terminals and colour settings.
    pub(crate) fn new(global: &GlobalArgs) -> Console {
        let color = global.color();
        let err_tty = std::io::stderr().is_terminal();
        let spinners = (err_tty && !global.quiet).then(MultiProgress::new);
        Console {
            inner: Arc::new(Inner {
                out_color: color && std::io::stdout().is_terminal(),
                err_color: color && err_tty,
                spinners,
                quiet: global.quiet,
            }),
        }
    }

    /// Whether stdout takes colour.
    pub(crate) fn out_color(&self) -> bool {
        self.inner.out_color
    }

    /// Whether stderr takes colour.
    pub(crate) fn err_color(&self) -> bool {
        self.inner.err_color
    }

    /// `-q`: progress is not shown.
    pub(crate) fn quiet(&self) -> bool {
        self.inner.quiet
    }

    /// The spinner area, when stderr is a terminal.
    pub(crate) fn spinners(&self) -> Option<&MultiProgress> {
        self.inner.spinners.as_ref()
    }

    /// Writes `text` (whole lines) to stdout, above any spinners. A closed stdout is
    /// ignored: the services must not notice.
    pub(crate) fn out(&self, text: &str) {
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        match &self.inner.spinners {
            Some(m) => m.suspend(write),
            None => write(),
        }
    }

    /// Writes `text` (whole lines) to stderr, above any spinners.
    pub(crate) fn err(&self, text: &str) {
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        };
        match &self.inner.spinners {
            Some(m) => m.suspend(write),
            None => write(),
        }
    }
}

const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::BrightRed,
];

/// The stable colour of a service: the same name always gets the same colour.
pub(crate) fn service_style(name: &str) -> Style {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    Style::new().fg_color(Some(PALETTE[(h as usize) % PALETTE.len()].into()))
}

/// `text` in `style` when `color`.
pub(crate) fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// Bold red `error:`.
pub(crate) fn error_label(color: bool) -> String {
    paint(
        color,
        Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
        "error:",
    )
}

/// Prints the tool's own error and its hint to stderr, coloured as the console says.
pub(crate) fn report(console: &Console, error: &crate::error::Error) {
    use crate::error::Error;
    let label = error_label(console.err_color());
    match error {
        // Diagnostics carry their own labels.
        Error::Config(errors) => errln!(console, "{errors}"),
        Error::PortsInUse(ports) => {
            for p in ports {
                errln!(console, "{label} {p}");
            }
        }
        _ => errln!(console, "{label} {error}"),
    }
    if let Some(hint) = error.hint() {
        errln!(console, "  = hint: {hint}");
    }
}
