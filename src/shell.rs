//! Console output that never panics: a reader that goes away (`ezflt train | head -2`) or a
//! closed stderr must not stop a run. Use `outln!`/`out!`/`errln!` instead of the std macros.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; after the first failed write (EPIPE: the reader is gone) output is dropped
/// for the rest of the process, like `rg | head` and `cargo build | head` do. Training goes on.
pub fn out(args: std::fmt::Arguments) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_fmt(args).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes to stderr, ignoring failure: there is nowhere left to report it.
pub fn err(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
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
