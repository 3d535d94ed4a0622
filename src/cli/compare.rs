//! `ezflt compare <runs|sweeps>...`: a table of configurations by metrics, seeds averaged
//! (mean ± sample std), for a terminal or as CSV, JSON or Markdown.

use crate::artifacts::compare::{self, Options};
use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::PathBuf;

pub fn cli() -> Command {
    Command::new("compare")
        .about("Compare runs and sweeps: final (or best) metrics per configuration, mean ± std over seeds")
        .arg(Arg::new("dirs").required(true).num_args(1..).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("by").long("by").value_name("KEYS").value_delimiter(',').action(ArgAction::Append).help("Group by these config keys (default: every override that varies, except seed)"))
        .arg(Arg::new("filter").long("filter").value_name("KEY=VALUE").action(ArgAction::Append).help("Only runs where KEY has VALUE (repeatable; numbers compare as numbers)"))
        .arg(Arg::new("metrics").long("metrics").value_name("NAMES").value_delimiter(',').action(ArgAction::Append).help("Metrics to show (default: all the runs report)"))
        .arg(Arg::new("best").long("best").action(ArgAction::SetTrue).help("The best value over training instead of the final one"))
        .arg(Arg::new("format").long("format").value_name("FMT").value_parser(["table", "csv", "json", "markdown"]).default_value("table"))
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let dirs: Vec<PathBuf> = m
        .get_many::<String>("dirs")
        .expect("required")
        .map(PathBuf::from)
        .collect();
    let list = |id: &str| -> Vec<String> {
        m.get_many::<String>(id)
            .map(|v| v.filter(|s| !s.is_empty()).cloned().collect())
            .unwrap_or_default()
    };
    let filters = list("filter")
        .iter()
        .map(|f| compare::parse_filter(f))
        .collect::<Result<Vec<_>>>()?;
    let opts = Options {
        by: list("by"),
        filters,
        metrics: list("metrics"),
        best: m.get_flag("best"),
    };
    let runs = compare::collect(&dirs)?;
    let table = compare::table(&runs, &opts)?;
    match m.get_one::<String>("format").map(|s| s.as_str()) {
        Some("csv") => out!("{}", table.csv()),
        Some("json") => outln!("{}", serde_json::to_string_pretty(&table.json())?),
        Some("markdown") => out!("{}", table.markdown()),
        _ => out!("{}", table.text()),
    }
    Ok(0)
}
