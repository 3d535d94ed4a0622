//! Command line: one file per subcommand, each with `cli()` (its clap definition) and
//! `exec()`. `train` is the default, so `ezflt lr=1e-3` and `ezflt -m seed=0,1` train.

pub mod completions;
pub mod inspect;
pub mod jobs;
pub mod plot;
pub mod sync;
pub mod train;

use anyhow::Result;
use clap::Command;

const SUBCOMMANDS: &[&str] = &[
    "train",
    "plot",
    "inspect",
    "status",
    "resume",
    "run-job",
    "sync",
    "completions",
    "help",
];

pub fn app() -> Command {
    Command::new("ezflt")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Feature-learning experiments with Hydra-compatible configs")
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .subcommand(train::cli())
        .subcommand(plot::cli())
        .subcommand(inspect::cli())
        .subcommand(jobs::status_cli())
        .subcommand(jobs::resume_cli())
        .subcommand(jobs::run_job_cli())
        .subcommand(sync::cli())
        .subcommand(completions::cli())
}

/// Hydra spells some flags `-cd`, `-cp`, `-cn`; clap's short flags are one letter.
fn normalise(mut args: Vec<String>) -> Vec<String> {
    for a in args.iter_mut().skip(1) {
        let long = match a.as_str() {
            "-cd" => Some("--config-dir"),
            "-cp" => Some("--config-path"),
            "-cn" => Some("--config-name"),
            _ => None,
        };
        if let Some(l) = long {
            *a = l.to_string();
        }
    }
    let first = args.get(1).map(|s| s.as_str());
    let explicit =
        matches!(first, Some(f) if SUBCOMMANDS.contains(&f) || f == "--version" || f == "-V");
    if !explicit {
        args.insert(1, "train".into());
    }
    args
}

pub fn run(args: Vec<String>) -> Result<i32> {
    let args = normalise(args);
    let m = match app().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
            let _ = e.print();
            return Ok(code);
        }
    };
    match m.subcommand() {
        Some(("train", sm)) => train::exec(sm),
        Some(("inspect", sm)) => inspect::exec(sm),
        Some(("plot", sm)) => plot::exec(sm),
        Some(("status", sm)) => jobs::status_exec(sm),
        Some(("resume", sm)) => jobs::resume_exec(sm),
        Some(("run-job", sm)) => jobs::run_job_exec(sm),
        Some(("sync", sm)) => sync::exec(sm),
        Some(("completions", sm)) => completions::exec(sm),
        _ => Ok(2),
    }
}
