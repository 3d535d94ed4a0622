//! Sweep-level commands: `ezflt status <sweep>` (where each job stands), `ezflt resume
//! <run|sweep>` (continue), and the hidden `run-job` that worker processes execute.

use crate::launch::{self, records};
use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::Path;

pub fn status_cli() -> Command {
    Command::new("status")
        .about("Show where a sweep stands: each job's status, duration and overrides")
        .arg(Arg::new("dir").required(true).value_name("SWEEP_DIR"))
}

pub fn status_exec(m: &ArgMatches) -> Result<i32> {
    let root = Path::new(m.get_one::<String>("dir").expect("required"));
    let jobs = launch::jobs_of(root)?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    outln!("{:>4}  {:<11} {:>9}  overrides", "job", "status", "time_s");
    for j in &jobs {
        let st = launch::job_status(&j.dir);
        let secs = crate::artifacts::run::Summary::read(&j.dir)
            .map_or("-".to_string(), |s| format!("{:.1}", s.duration_s));
        outln!(
            "{:>4}  {:<11} {:>9}  {}",
            j.num,
            st,
            secs,
            j.lines.join(" ")
        );
        *counts.entry(st.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    outln!(
        "{} job(s): {} ({})",
        jobs.len(),
        summary.join(", "),
        root.join(records::CSV).display()
    );
    Ok(0)
}

pub fn resume_cli() -> Command {
    Command::new("resume")
        .about("Continue a run from its last checkpoint, or re-launch a sweep's jobs that did not complete")
        .arg(Arg::new("dir").required(true).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("fail-fast").long("fail-fast").action(ArgAction::SetTrue))
}

pub fn resume_exec(m: &ArgMatches) -> Result<i32> {
    let dir = m.get_one::<String>("dir").expect("required");
    if Path::new(dir).join("multirun.yaml").exists() {
        return launch::resume_sweep(Path::new(dir), m.get_flag("fail-fast"));
    }
    let dir = std::path::PathBuf::from(crate::run::settings::expand_home(dir));
    super::train::resume_run(&dir, &[], false, chrono::Local::now())
}

pub fn run_job_cli() -> Command {
    Command::new("run-job")
        .hide(true)
        .about(
            "Run prepared sweep jobs from their directories (what launcher workers execute); \
             several run as one batch when they can",
        )
        .arg(Arg::new("dir").required(true).num_args(1..))
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_parser(clap::value_parser!(usize)),
        )
}

pub fn run_job_exec(m: &ArgMatches) -> Result<i32> {
    let dirs: Vec<std::path::PathBuf> = m
        .get_many::<String>("dir")
        .expect("required")
        .map(std::path::PathBuf::from)
        .collect();
    let codes = launch::run_jobs(&dirs, m.get_one::<usize>("threads").copied(), true)?;
    // The worst: a failure (or a stop) of any member is the worker's.
    Ok(codes.into_iter().max_by_key(|c| *c != 0).unwrap_or(1))
}
