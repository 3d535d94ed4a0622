//! ezflt: Hydra-style experiment runner for feature-learning-theory research.
//! Entry point: normalises argv, dispatches a subcommand, turns errors into clean messages.

mod artifacts;
mod backend;
mod cli;
mod config;
mod data;
mod launch;
mod model;
mod plan;
mod plot;
mod run;
mod track;
mod train;
mod wandb;

/// burn-flex allocates an output buffer per op; mimalloc makes steps 1.3-2.8x faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
