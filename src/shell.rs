//! The one reporter: every message ezflt prints goes through here. It never panics (a reader
//! that goes away, `ezflt train | head -2`, or a closed stderr must not stop a run), it hides
//! status lines under `--quiet`, colours `warning:`/`Error:` by `--color`, and prints above a
//! live progress bar instead of through it.

use indicatif::ProgressBar;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);
/// The progress bars on screen, innermost last (a sweep's, then its job's): messages are
/// printed with the innermost suspended.
static BARS: Mutex<Vec<ProgressBar>> = Mutex::new(Vec::new());

/// When to colour messages: `auto` colours a terminal unless `NO_COLOR` is set (as cargo
/// and ripgrep do, by way of `anstream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// `auto`, `always` or `never`.
    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "auto" => Some(Color::Auto),
            "always" => Some(Color::Always),
            "never" => Some(Color::Never),
            _ => None,
        }
    }
}

/// Sets how the rest of the process reports: `quiet` drops status and progress lines
/// (results, warnings and errors still print).
pub fn configure(quiet: bool, color: Color) {
    QUIET.store(quiet, Ordering::Relaxed);
    anstream::ColorChoice::write_global(match color {
        Color::Auto => anstream::ColorChoice::Auto,
        Color::Always => anstream::ColorChoice::Always,
        Color::Never => anstream::ColorChoice::Never,
    });
}

/// Whether `--quiet` is on.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Messages printed from now on go above `bar` (a clone shares the bar).
pub fn attach_bar(bar: &ProgressBar) {
    if let Ok(mut b) = BARS.lock() {
        b.push(bar.clone());
    }
}

/// The innermost bar is gone; messages print above the one before it, or plainly.
pub fn detach_bar() {
    if let Ok(mut b) = BARS.lock() {
        b.pop();
    }
}

/// Runs `f` with the progress bar (if any) cleared from the screen, then redraws it.
fn above_bar(f: impl FnOnce()) {
    let bar = BARS.lock().ok().and_then(|b| b.last().cloned());
    match bar {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

/// Writes to stdout; after the first failed write (EPIPE: the reader is gone) output is dropped
/// for the rest of the process, like `rg | head` and `cargo build | head` do. Training goes on.
pub fn out(args: std::fmt::Arguments) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    above_bar(|| {
        // Plain std: results (configs, tables, scripts) go out byte for byte, never restyled.
        let mut o = std::io::stdout().lock();
        if o.write_fmt(args).is_err() {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    });
}

/// A status line on stdout (`Run: ... -> dir`, a job finished); dropped under `--quiet`.
pub fn status(args: std::fmt::Arguments) {
    if !quiet() {
        out(args);
    }
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it.
pub fn err(args: std::fmt::Arguments) {
    above_bar(|| {
        let _ = anstream::stderr().lock().write_fmt(args);
    });
}

/// A note on stderr (what a side channel is doing: W&B, a recovered archive); dropped under
/// `--quiet`.
pub fn note(args: std::fmt::Arguments) {
    if !quiet() {
        err(args);
    }
}

const WARN: anstyle::Style = anstyle::Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Yellow)));
const ERROR: anstyle::Style = anstyle::Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Red)));

/// `warning: <message>` on stderr; printed even under `--quiet`.
pub fn warn(args: std::fmt::Arguments) {
    err(format_args!("{WARN}warning:{WARN:#} {args}\n"));
}

/// `Error: <message>` on stderr (the words Python's tracebacks and Hydra end with).
pub fn error(args: std::fmt::Arguments) {
    err(format_args!("{ERROR}Error:{ERROR:#} {args}\n"));
}

/// Flushes stdout at exit; a reader that left early is not an error.
pub fn flush() {
    if std::io::stdout().lock().flush().is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Longest word echoed back whole in a message; longer ones are cut in the middle.
const MAX_WORD: usize = 200;

/// Cuts every word (whitespace-separated) longer than 200 characters to its first and last
/// 60, saying how much was left out: a 100 KB override is not echoed back whole.
pub fn clip(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        let n = word.chars().count();
        if n > MAX_WORD {
            let head: String = word.chars().take(60).collect();
            let last: String = word.chars().skip(n - 60).collect();
            out.push_str(&format!("{head}...({} characters cut)...{last}", n - 120));
        } else {
            out.push_str(word);
        }
        let ws = tail.len() - tail.trim_start().len();
        out.push_str(&tail[..ws]);
        rest = &tail[ws..];
    }
    out
}

/// `println!` that never panics.
macro_rules! outln {
    () => { $crate::shell::out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::shell::out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that never panics.
macro_rules! out {
    ($($t:tt)*) => { $crate::shell::out(format_args!($($t)*)) };
}

/// A status line (`println!` that never panics and is dropped under `--quiet`).
macro_rules! statusln {
    ($($t:tt)*) => { $crate::shell::status(format_args!("{}\n", format_args!($($t)*))) };
}

/// A note on stderr (`wandb: logging to ...`); dropped under `--quiet`.
macro_rules! noteln {
    ($($t:tt)*) => { $crate::shell::note(format_args!("{}\n", format_args!($($t)*))) };
}

/// `warning: ...` on stderr.
macro_rules! warnln {
    ($($t:tt)*) => { $crate::shell::warn(format_args!($($t)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => { $crate::shell::err(format_args!("\n")) };
    ($($t:tt)*) => { $crate::shell::err(format_args!("{}\n", format_args!($($t)*))) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_cuts_only_long_words() {
        assert_eq!(super::clip("a  b\nc"), "a  b\nc");
        let long = format!("lr={}", "9".repeat(100_000));
        let c = super::clip(&format!("Error parsing override '{long}': bad"));
        assert!(c.len() < 300, "{c}");
        assert!(c.contains("characters cut"), "{c}");
        assert!(c.ends_with("': bad"), "{c}");
    }
}
