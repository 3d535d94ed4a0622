//! ezflt: Hydra-style experiment runner for feature-learning-theory research.
//! Entry point: normalises argv, dispatches a subcommand, turns errors into clean messages.

#[macro_use]
mod shell;
mod artifacts;
mod backend;
mod cli;
mod config;
mod data;
#[cfg(test)]
mod fuzz;
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
    let code = match args().and_then(cli::run) {
        Ok(code) => code,
        Err(e) => {
            errln!("Error: {}", format_error(&e));
            1
        }
    };
    shell::flush();
    std::process::exit(code);
}

/// The command line as UTF-8 text; an argument that is not (a Latin-1 file name, a stray
/// byte) is an error naming it, not a panic.
fn args() -> anyhow::Result<Vec<String>> {
    std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|bad| {
                anyhow::anyhow!(
                    "argument {i} ({:?}) is not valid UTF-8: ezflt reads overrides and paths as UTF-8 text; \
                     rename the file or pass the value in UTF-8",
                    bad.to_string_lossy()
                )
            })
        })
        .collect()
}

/// One paragraph: the outermost message, then its causes, no backtrace; words over 200
/// characters (a pasted array) are cut.
fn format_error(e: &anyhow::Error) -> String {
    shell::clip(&format_chain(e))
}

fn format_chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        s.push_str(&format!("\n  caused by: {cause}"));
    }
    s
}
