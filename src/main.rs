//! ezflt: Hydra-style experiment runner for feature-learning-theory research.
//! Entry point: normalises argv, dispatches a subcommand, turns errors into clean messages.

mod cli;
mod config;
mod plan;

fn main() {
    let code = match cli::run(std::env::args().collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", format_error(&e));
            1
        }
    };
    std::process::exit(code);
}

/// One paragraph: the outermost message, then its causes, no backtrace.
fn format_error(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        s.push_str(&format!("\n  caused by: {cause}"));
    }
    s
}
