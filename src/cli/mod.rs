//! Command line: one file per subcommand, each with `cli()` (its clap definition) and
//! `exec()`. `train` is the default, so `ezflt lr=1e-3` and `ezflt -m seed=0,1` train.

pub mod compare;
pub mod completions;
pub mod inspect;
pub mod jobs;
pub mod plot;
pub mod report;
pub mod sync;
pub mod train;

use anyhow::Result;
use clap::{Arg, ArgAction, Command};

const SUBCOMMANDS: &[&str] = &[
    "train",
    "plot",
    "inspect",
    "status",
    "resume",
    "run-job",
    "sync",
    "compare",
    "report",
    "completions",
    "help",
];

pub fn app() -> Command {
    Command::new("ezflt")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Feature-learning experiments with Hydra-compatible configs")
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .arg(
            Arg::new("quiet")
                .short('q')
                .long("quiet")
                .global(true)
                .action(ArgAction::SetTrue)
                .help(
                    "Print no progress or status lines (results, warnings and errors still print)",
                ),
        )
        .arg(
            Arg::new("color")
                .long("color")
                .global(true)
                .value_name("WHEN")
                .value_parser(["auto", "always", "never"])
                .default_value("auto")
                .help(
                    "Colour warnings and errors: auto (a terminal without NO_COLOR), always, never",
                ),
        )
        .subcommand(train::cli())
        .subcommand(plot::cli())
        .subcommand(inspect::cli())
        .subcommand(jobs::status_cli())
        .subcommand(jobs::resume_cli())
        .subcommand(jobs::run_job_cli())
        .subcommand(sync::cli())
        .subcommand(compare::cli())
        .subcommand(report::cli())
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
    // `ezflt -q lr=1` trains: the subcommand is the first word after the global flags.
    let mut at = 1;
    while let Some(a) = args.get(at) {
        match a.as_str() {
            "-q" | "--quiet" => at += 1,
            "--color" => at += 2,
            a if a.starts_with("--color=") => at += 1,
            _ => break,
        }
    }
    let first = args.get(at).map(|s| s.as_str());
    let explicit =
        matches!(first, Some(f) if SUBCOMMANDS.contains(&f) || f == "--version" || f == "-V");
    if !explicit {
        args.insert(at.min(args.len()), "train".into());
    }
    args
}

/// The `--color` the command line asks for, read before clap parses so that clap's own
/// help and errors follow it too.
fn color_choice(args: &[String]) -> crate::shell::Color {
    let mut it = args.iter();
    let mut choice = crate::shell::Color::Auto;
    while let Some(a) = it.next() {
        let v = match a.strip_prefix("--color=") {
            Some(v) => Some(v),
            None if a == "--color" => it.next().map(|s| s.as_str()),
            None => None,
        };
        if let Some(c) = v.and_then(crate::shell::Color::parse) {
            choice = c;
        }
        if a == "--" {
            break;
        }
    }
    choice
}

pub fn run(args: Vec<String>) -> Result<i32> {
    let args = normalise(args);
    let color = color_choice(&args);
    crate::shell::configure(false, color);
    let app = app().color(match color {
        crate::shell::Color::Auto => clap::ColorChoice::Auto,
        crate::shell::Color::Always => clap::ColorChoice::Always,
        crate::shell::Color::Never => clap::ColorChoice::Never,
    });
    let m = match app.try_get_matches_from(&args) {
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
    crate::shell::configure(m.get_flag("quiet"), color);
    match m.subcommand() {
        Some(("train", sm)) => train::exec(sm),
        Some(("inspect", sm)) => inspect::exec(sm),
        Some(("plot", sm)) => plot::exec(sm),
        Some(("status", sm)) => jobs::status_exec(sm),
        Some(("resume", sm)) => jobs::resume_exec(sm),
        Some(("run-job", sm)) => jobs::run_job_exec(sm),
        Some(("sync", sm)) => sync::exec(sm),
        Some(("compare", sm)) => compare::exec(sm),
        Some(("report", sm)) => report::exec(sm),
        Some(("completions", sm)) => completions::exec(sm),
        _ => Ok(2),
    }
}
